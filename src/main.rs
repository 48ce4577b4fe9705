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
        /// Do not run job workers in this process (run `akis worker` elsewhere).
        #[arg(long)]
        no_workers: bool,
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
    let overrides = Overrides {
        database_url: cli.database_url.clone(),
        listen,
        definitions: cli.definitions.clone(),
        data_dir: cli.data_dir.clone(),
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => return fail(&anyhow::Error::new(e)),
    };
    akis_engine::telemetry::init(&config);

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
    let result = runtime.block_on(run(cli.command, config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { no_workers, .. } => {
            let app = App::build(config).await?;
            // Workers stop before the server closes the database they write to.
            let workers = if no_workers {
                None
            } else {
                let state = app.state();
                Some(akis_worker::start(state.db.clone(), &state.config).await?)
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
            akis_engine::demo::seed(&app.state().db, &app.state().definitions).await?;
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
            let definitions = app::load_definitions(&config)?;
            let db = app::open_database(&config).await?;
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
            let definitions = app::load_definitions(&config)?;
            let db = app::open_database(&config).await?;
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
        Command::Check { .. } | Command::Schema => Ok(()),
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
