//! Start-up and shutdown: [`App::build`] does every start-up step (bind, connect, migrate,
//! load definitions) and only then does [`App::run_until_stopped`] accept requests, so
//! `/healthz` answers once the server is really ready. Tests bind port 0 and never sleep.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::definitions::{Definitions, LiveDefinitions};
use crate::runtime::{self, StartupMode, VersionCache};
use crate::storage::{Backend, Db, StorageOptions};

/// Shared state handed to every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    /// The running definition set; a reload swaps it (see [`crate::runtime`]).
    pub definitions: LiveDefinitions,
    /// Older stored versions, loaded on demand (diffs; work orders keep theirs).
    pub versions: VersionCache,
    /// This node's realtime hub (Socket.IO clients).
    pub realtime: crate::realtime::Realtime,
    /// Where file bytes live (drive).
    pub files: crate::drive::FileStore,
}

impl AppState {
    /// The definition set in force now. A handler takes it once and keeps it, so one
    /// request sees one version.
    pub fn defs(&self) -> Arc<Definitions> {
        self.definitions.current()
    }
}

/// A built, not yet running, server.
pub struct App {
    listener: TcpListener,
    state: AppState,
    hub: crate::realtime::Inbox,
}

/// Opens the database a configuration names and brings its schema up to date.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let options = StorageOptions {
        max_connections: config.db_max_connections,
        acquire_timeout: std::time::Duration::from_secs(config.db_acquire_timeout_secs.max(1)),
    };
    let db = Db::connect(&config.database_url, &options).await?;
    db.migrate().await?;
    Ok(db)
}

/// Whether a starting server applies its local definition files or serves the stored
/// version: `apply_definitions` when set, otherwise apply on SQLite (one node) and serve
/// the stored version on PostgreSQL (a node restarted with stale files must not roll the
/// cluster back).
pub fn startup_mode(config: &Config, db: &Db) -> StartupMode {
    if config
        .apply_definitions
        .unwrap_or(db.backend() == Backend::Sqlite)
    {
        StartupMode::ApplyLocal
    } else {
        StartupMode::Stored
    }
}

/// The definitions a command-line tool works with: the version in force in the database,
/// or — on a database that has none yet — the local files.
pub async fn definitions_for_tools(config: &Config, db: &Db) -> anyhow::Result<Arc<Definitions>> {
    if let Some((version, _)) = runtime::current_stored(db).await? {
        let sources = runtime::stored_sources(db, &version)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| {
                anyhow::anyhow!("the stored definitions version {version} is missing")
            })?;
        let (defs, _) = runtime::validate(sources).await.map_err(|e| {
            anyhow::anyhow!(
                "the stored definitions version {version} does not load with this version of akis:\n{}",
                e.report()
            )
        })?;
        return Ok(defs);
    }
    load_definitions(config)
}

/// Loads the local definition set, refusing an invalid one with every diagnostic.
pub fn load_definitions(config: &Config) -> anyhow::Result<Arc<Definitions>> {
    match Definitions::load_for_server(&config.definitions) {
        Ok((definitions, warnings)) => {
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            Ok(definitions)
        }
        Err(errors) => {
            let mut text = format!(
                "the definitions in {} are invalid ({} error(s)); fix them and start again:",
                config.definitions.display(),
                errors.len()
            );
            for error in errors {
                text.push('\n');
                text.push_str(&error.to_string());
            }
            anyhow::bail!(text)
        }
    }
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        // Bind first: a port in use is the most common mistake and the cheapest to report.
        // Metrics recorded from the first moment on are served at /api/admin/metrics.
        crate::telemetry::prometheus();
        crate::reminders::due::set_company_time_zone(config.timezone);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data folder {}",
                config.data_dir.display()
            )
        })?;
        let db = open_database(&config).await?;
        let definitions =
            runtime::startup(&db, &config.definitions, startup_mode(&config, &db)).await?;
        tracing::info!(
            database = %config.database_url.redacted(),
            backend = %db.backend(),
            definitions = %definitions.version(),
            "storage ready"
        );
        let (realtime, hub) = crate::realtime::Realtime::new();
        let files = crate::drive::FileStore::from_config(&config)?;
        Ok(App {
            listener,
            state: AppState {
                config: Arc::new(config),
                db,
                definitions,
                versions: VersionCache::default(),
                realtime,
                files,
            },
            hub,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the
    /// database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let db = self.state.db.clone();
        // Imports a crash stopped midway are carried to their end by some server.
        let resumer = tokio::spawn(crate::crm::import::resume_loop(
            db.clone(),
            self.state.definitions.clone(),
            crate::crm::import::STALE_AFTER,
        ));
        // Reloads made through any node (or `akis reload`) reach this one.
        let watcher = tokio::spawn(runtime::watch(
            db.clone(),
            self.state.definitions.clone(),
            runtime::POLL_INTERVAL,
        ));
        let hangup = tokio::spawn(reload_on_hangup(self.state.clone()));
        // Pushes the event log to this node's Socket.IO clients.
        let hub = tokio::spawn(crate::realtime::hub::run(self.state.clone(), self.hub));
        let router = crate::http::router(self.state);
        tracing::info!(%addr, "listening");
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("server error");
        resumer.abort();
        watcher.abort();
        hangup.abort();
        hub.abort();
        served?;
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// SIGHUP reloads the definitions from the server's folder (like `akis reload`).
async fn reload_on_hangup(state: AppState) {
    #[cfg(unix)]
    {
        let mut hangups =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGHUP: {e}");
                    return;
                }
            };
        while hangups.recv().await.is_some() {
            tracing::info!(dir = %state.config.definitions.display(), "SIGHUP: reloading the definitions");
            let sources = match runtime::local_sources(&state.config.definitions) {
                Ok(s) => s,
                Err(d) => {
                    tracing::error!("reload refused: {d}");
                    continue;
                }
            };
            let client = crate::audit::ClientInfo::default();
            let who = runtime::Who {
                actor: None,
                origin: runtime::Origin::Signal,
                client: &client,
            };
            match runtime::apply(&state.db, &state.definitions, sources, who).await {
                Ok(applied) if applied.changed => {}
                Ok(_) => tracing::info!("the definitions are unchanged"),
                Err(e) => tracing::error!(
                    "reload refused; the running version keeps serving:\n{}",
                    e.report()
                ),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        std::future::pending::<()>().await;
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
