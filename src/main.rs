//! `akis`: one binary for the server, the workers and the admin's tools.
//!
//! Every option can also come from `akis.toml` or an `AKIS_*` environment variable (see
//! `akis_engine::config`); command-line flags win.

use std::path::PathBuf;
use std::process::ExitCode;

use akis_engine::config::{Config, Overrides};
use akis_engine::crm::import;
use akis_engine::{App, app};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "akis",
    version,
    about = "Akış CRM: a workflow engine configured by declarative files"
)]
struct Cli {
    /// Configuration file (default: ./akis.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: sqlite:FILE or postgres://… [env: AKIS_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Folder holding workflows/, rules/ and templates/ [env: AKIS_DEFINITIONS]
    #[arg(long, global = true, value_name = "DIR")]
    definitions: Option<PathBuf>,
    /// Folder for uploaded files and local state [env: AKIS_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (and, by default, the job workers).
    Serve {
        /// Address to listen on [env: AKIS_LISTEN]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Do not run job workers in this process (run `akis worker` elsewhere). Such an
        /// API node always serves the definitions stored in the database.
        #[arg(long)]
        no_workers: bool,
        /// Apply the local definition files as a reload at start-up (`true`), or serve the
        /// version stored in the database (`false`). Default: true on SQLite, false on
        /// PostgreSQL [env: AKIS_APPLY_DEFINITIONS]
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        apply_definitions: Option<bool>,
    },
    /// Run job workers only.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the definition files and print diagnostics.
    Check {
        /// Folder holding workflows/, rules/ and templates/ (default: AKIS_DEFINITIONS or .)
        dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of the definition files (for editor autocompletion).
    Schema,
    /// Validate the definition files and put them in force on every running node (through
    /// the database: servers and workers pick the new version up within seconds).
    Reload {
        /// Folder holding workflows/, rules/ and templates/ (default: AKIS_DEFINITIONS or .)
        dir: Option<PathBuf>,
    },
    /// Dry-run a card move: the guard's verdict, missing fields, the timeline entries and
    /// jobs it would write — without writing anything. Simulates the stored definitions,
    /// or the files of `--definitions DIR` when given.
    Simulate {
        /// The card id.
        #[arg(long)]
        card: String,
        /// The target stage id.
        #[arg(long)]
        to: String,
        /// A card field entered with the move, `name=value` (JSON values allowed:
        /// `deposit_amount={"amount":"5000","currency":"TRY"}`). Repeatable.
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// Move as this user (email); default: the system.
        #[arg(long = "as", value_name = "EMAIL")]
        as_user: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage users (e.g. create the first admin).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Import data from files (e.g. leads from a CSV export).
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Run Akış with demo data on the embedded SQLite database.
    Demo {
        /// Address to listen on [env: AKIS_LISTEN]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from standard input when it is not a terminal
    /// (`echo "$PW" | akis user create …`), otherwise asked for.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// A role id from the definitions (admin, manager, sales, operations).
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import leads from a CSV file (UTF-8; `,` or `;`; Turkish or English headers such as
    /// Ad Soyad;Telefon;E-posta;Kaynak). Every row goes through lead intake, so existing
    /// customers are matched by phone or email; importing the same file again changes
    /// nothing. Exits non-zero when any row failed.
    Leads {
        /// The CSV file.
        file: PathBuf,
        /// Report what would happen; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import the good rows even if some are bad (default for files over 10,000 rows).
        #[arg(long, conflicts_with = "all_or_nothing")]
        partial: bool,
        /// Write nothing if any row is bad (default for files up to 10,000 rows).
        #[arg(long)]
        all_or_nothing: bool,
        /// Rows per transaction (default: adapts so one holds the write lock ~0.5 s).
        #[arg(long, value_name = "N")]
        batch_size: Option<usize>,
        /// Continue the unfinished import of this same file after its last committed row.
        #[arg(long, conflicts_with = "dry_run")]
        resume: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve { listen, .. } | Command::Demo { listen } => listen.clone(),
        _ => None,
    };
    let apply_definitions = match &cli.command {
        Command::Serve {
            no_workers: true,
            apply_definitions: Some(true),
            ..
        } => {
            return fail(&anyhow::anyhow!(
                "an API node started with --no-workers serves the definitions stored in the database; put new files in force with `akis reload` or POST /api/admin/definitions/reload"
            ));
        }
        Command::Serve {
            no_workers: true, ..
        } => Some(false),
        Command::Serve {
            apply_definitions, ..
        } => *apply_definitions,
        _ => None,
    };
    let overrides = Overrides {
        database_url: cli.database_url.clone(),
        listen,
        definitions: cli.definitions.clone(),
        data_dir: cli.data_dir.clone(),
        apply_definitions,
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => return fail(&anyhow::Error::new(e)),
    };
    akis_engine::telemetry::init(&config);
    akis_engine::reminders::due::set_company_time_zone(config.timezone);

    // Commands that need no runtime.
    match &cli.command {
        Command::Check { dir } => {
            let dir = dir.clone().unwrap_or_else(|| config.definitions.clone());
            return akis_engine::definitions::cli::check(&dir);
        }
        Command::Schema => {
            println!("{}", akis_engine::definitions::cli::schema());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let explicit_definitions = cli.definitions.clone();
    let result = runtime.block_on(run(cli.command, config, explicit_definitions));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run(
    command: Command,
    config: Config,
    explicit_definitions: Option<PathBuf>,
) -> anyhow::Result<()> {
    match command {
        Command::Serve { no_workers, .. } => {
            let app = App::build(config).await?;
            // Workers stop before the server closes the database they write to.
            let workers = if no_workers {
                None
            } else {
                let state = app.state();
                Some(
                    akis_worker::start(state.db.clone(), &state.config, state.definitions.clone())
                        .await?,
                )
            };
            app.run_until_stopped(async move {
                app::shutdown_signal().await;
                if let Some(workers) = workers {
                    workers.shutdown(akis_worker::SHUTDOWN_GRACE).await;
                }
            })
            .await
        }
        Command::Demo { .. } => {
            let app = App::build(config).await?;
            akis_engine::demo::seed(&app.state().db, &app.state().defs()).await?;
            eprintln!(
                "Akış demo: http://{} — log in as {} / {} (API reference at /docs)",
                app.local_addr(),
                akis_engine::demo::ADMIN_EMAIL,
                akis_engine::demo::ADMIN_PASSWORD
            );
            app.run_until_stopped(app::shutdown_signal()).await
        }
        Command::Worker => {
            let db = app::open_database(&config).await?;
            akis_worker::run(db, &config, app::shutdown_signal()).await
        }
        Command::Migrate => {
            let db = app::open_database(&config).await?;
            let applied = db.applied_migrations().await?;
            println!(
                "database {} is up to date: {} migration(s) applied",
                config.database_url.redacted(),
                applied.len()
            );
            db.close().await;
            Ok(())
        }
        Command::User {
            command: UserCommand::Create { email, name, role },
        } => {
            let password = read_password()?;
            let db = app::open_database(&config).await?;
            let definitions = app::definitions_for_tools(&config, &db).await?;
            let user = akis_engine::users::store::create_from_cli(
                &db,
                &definitions,
                &email,
                &name,
                &role,
                &password,
            )
            .await?;
            println!(
                "created user {} <{}> with role {}",
                user.id, user.email, user.role
            );
            db.close().await;
            Ok(())
        }
        Command::Import {
            command:
                ImportCommand::Leads {
                    file,
                    dry_run,
                    partial,
                    all_or_nothing,
                    batch_size,
                    resume,
                },
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let db = app::open_database(&config).await?;
            let definitions = app::definitions_for_tools(&config, &db).await?;
            let options = import::ImportOptions {
                file_name: file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into(),
                ),
                dry_run,
                partial: if partial {
                    Some(true)
                } else if all_or_nothing {
                    Some(false)
                } else {
                    None
                },
                batch_size,
                resume,
                resume_id: None,
                created_by: None,
                entered_by_owns: false,
            };
            let result = import_leads(&db, &definitions, &bytes, &options).await;
            db.close().await;
            result
        }
        Command::Reload { dir } => {
            let dir = dir.unwrap_or_else(|| config.definitions.clone());
            let db = app::open_database(&config).await?;
            let result = reload(&db, &config, &dir).await;
            db.close().await;
            result
        }
        Command::Simulate {
            card,
            to,
            fields,
            as_user,
            json,
        } => {
            let db = app::open_database(&config).await?;
            let result = simulate(
                &db,
                &config,
                explicit_definitions,
                card,
                to,
                fields,
                as_user,
                json,
            )
            .await;
            db.close().await;
            result
        }
        Command::Check { .. } | Command::Schema => Ok(()),
    }
}

/// `akis reload [DIR]`: validate, store and activate; every running node follows.
async fn reload(
    db: &akis_engine::storage::Db,
    config: &Config,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    use akis_engine::runtime;
    let sources = runtime::local_sources(dir).map_err(|d| anyhow::anyhow!("{d}"))?;
    let live = akis_engine::definitions::LiveDefinitions::new(
        app::definitions_for_tools(config, db).await?,
    );
    let client = akis_engine::audit::ClientInfo::default();
    let who = runtime::Who {
        actor: None,
        origin: runtime::Origin::Cli,
        client: &client,
    };
    match runtime::apply(db, &live, sources, who).await {
        Ok(applied) => {
            for w in &applied.warnings {
                eprintln!("{}", w.text);
            }
            if !applied.changed {
                println!(
                    "the definitions in {} are already in force (version {})",
                    dir.display(),
                    applied.version
                );
                return Ok(());
            }
            println!(
                "version {} is now in force (was {}); running servers and workers pick it up within {} s",
                applied.version,
                applied.previous_version.as_deref().unwrap_or("none"),
                runtime::POLL_INTERVAL.as_secs().max(1)
            );
            for m in &applied.moved {
                println!(
                    "moved {} card(s) of pipeline {} from {} to {}",
                    m.cards, m.pipeline, m.from, m.to
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("{}", e.report());
            anyhow::bail!(
                "the definitions in {} were not accepted; the running version keeps serving",
                dir.display()
            )
        }
    }
}

/// `akis simulate`: a dry run of one move, printed for people (or as JSON).
#[allow(clippy::too_many_arguments)]
async fn simulate(
    db: &akis_engine::storage::Db,
    config: &Config,
    explicit_definitions: Option<PathBuf>,
    card: String,
    to: String,
    fields: Vec<String>,
    as_user: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use akis_engine::runtime::{self, dry_run};
    let definitions = match explicit_definitions {
        Some(dir) => {
            let sources = runtime::local_sources(&dir).map_err(|d| anyhow::anyhow!("{d}"))?;
            runtime::validate(sources)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the definitions in {} are invalid:\n{}",
                        dir.display(),
                        e.report()
                    )
                })?
                .0
        }
        None => app::definitions_for_tools(config, db).await?,
    };
    let card = card
        .parse()
        .map_err(|_| anyhow::anyhow!("`{card}` is not a card id"))?;
    let mut values = serde_json::Map::new();
    for f in fields {
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--field takes name=value, got `{f}`"))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        values.insert(name.to_string(), value);
    }
    let (by, locale) = match as_user {
        Some(email) => {
            let email = email.trim().to_lowercase();
            let (user, _) = akis_engine::users::store::find_for_login(db, &email)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with the email {email}"))?;
            (Some(user.id), user.locale)
        }
        None => (None, "tr".to_string()),
    };
    let simulation = dry_run::Simulation {
        card,
        to,
        fields: values,
        by,
        locale,
    };
    let result = dry_run::simulate(db, &definitions, simulation)
        .await
        .map_err(plain)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    println!(
        "card {}: {} → {} under definitions {}",
        result.card_id, result.from, result.to, result.definitions_version
    );
    match &result.refusal {
        Some(r) => {
            println!("REFUSED ({}): {}", r.code, r.message);
            for (field, why) in &r.fields {
                println!("  {field}: {why}");
            }
        }
        None => {
            println!("allowed; nothing was written");
            for e in &result.timeline {
                println!("timeline: {} {}", e.kind, e.data);
            }
            for j in &result.jobs {
                match &j.skipped {
                    Some(why) => println!("job {}: skipped ({why})", j.kind),
                    None => println!(
                        "job {}: {}",
                        j.kind,
                        j.payload
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    ),
                }
            }
        }
    }
    Ok(())
}

fn plain(e: akis_engine::http::ApiError) -> anyhow::Error {
    match e {
        akis_engine::http::ApiError::Client { message, .. }
        | akis_engine::http::ApiError::Definitions { message, .. } => anyhow::anyhow!(message),
        akis_engine::http::ApiError::Internal(e) => e,
    }
}

/// `akis import leads`: a progress bar on a terminal, then the report on standard output.
async fn import_leads(
    db: &akis_engine::storage::Db,
    definitions: &akis_engine::definitions::Definitions,
    bytes: &[u8],
    options: &import::ImportOptions,
) -> anyhow::Result<()> {
    let plain = |e: akis_engine::http::ApiError| match e {
        akis_engine::http::ApiError::Client { message, .. } => anyhow::anyhow!(message),
        akis_engine::http::ApiError::Definitions { message, .. } => anyhow::anyhow!(message),
        akis_engine::http::ApiError::Internal(e) => e,
    };
    let prepared = import::prepare(db, definitions, bytes, options)
        .await
        .map_err(plain)?;
    let bar = indicatif::ProgressBar::new(prepared.pending_rows() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = import::execute(db, definitions, prepared, |done| {
        bar.set_position(done as u64)
    })
    .await
    .map_err(plain)?;
    bar.finish_and_clear();
    print_import_report(&report);
    let verb = if report.dry_run {
        "would fail"
    } else {
        "failed"
    };
    if report.state == "failed" {
        anyhow::bail!(
            "the import stopped at row {} of {}: {}; run the same command with --resume to continue",
            report.rows_done,
            report.last_row,
            report.error.as_deref().unwrap_or("unknown error")
        );
    }
    if report.rejected {
        anyhow::bail!(
            "{} bad row(s) and the import is all-or-nothing: nothing {}written; fix them, or use --partial",
            report.failed,
            if report.dry_run { "would be " } else { "" }
        );
    }
    if report.failed > 0 {
        anyhow::bail!("{} row(s) {verb}", report.failed);
    }
    Ok(())
}

fn print_import_report(report: &import::ImportReport) {
    println!(
        "import {} of {} ({} rows, {}{})",
        report.id,
        report.file_name,
        report.total_rows,
        match report.mode {
            import::ImportMode::AllOrNothing => "all-or-nothing",
            import::ImportMode::Partial => "partial",
        },
        if report.dry_run {
            ", dry run: nothing written"
        } else {
            ""
        }
    );
    if !report.unknown_columns.is_empty() {
        println!("ignored columns: {}", report.unknown_columns.join(", "));
    }
    println!(
        "created {}  matched {}  duplicate {}  failed {}  (state {}, rows done up to {})",
        report.created,
        report.matched,
        report.duplicate,
        report.failed,
        report.state,
        report.rows_done
    );
    for bad in &report.bad_rows {
        println!("row {}: {}", bad.row, bad.reason);
    }
    if report.bad_rows_unlisted > 0 {
        println!("… and {} more bad row(s)", report.bad_rows_unlisted);
    }
}

/// The new user's password: a line on standard input, or a prompt on a terminal.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ")?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// One line, no backtrace: the causes joined by ": ".
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}
