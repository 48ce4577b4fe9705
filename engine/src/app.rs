//! Start-up and shutdown: [`App::build`] does every start-up step (bind, connect, migrate,
//! load definitions) and only then does [`App::run_until_stopped`] accept requests, so
//! `/healthz` answers once the server is really ready. Tests bind port 0 and never sleep.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::definitions::Definitions;
use crate::storage::{Db, StorageOptions};

/// Shared state handed to every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub definitions: Arc<Definitions>,
}

/// A built, not yet running, server.
pub struct App {
    listener: TcpListener,
    state: AppState,
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

/// Loads the definition set the server will run, refusing an invalid one with every
/// diagnostic.
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
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let definitions = load_definitions(&config)?;
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data folder {}",
                config.data_dir.display()
            )
        })?;
        let db = open_database(&config).await?;
        tracing::info!(
            database = %config.database_url.redacted(),
            backend = %db.backend(),
            definitions = %definitions.version,
            "storage ready"
        );
        Ok(App {
            listener,
            state: AppState {
                config: Arc::new(config),
                db,
                definitions,
            },
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
        served?;
        db.close().await;
        tracing::info!("stopped");
        Ok(())
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
