//! The PostgreSQL backend: one pool; the database is created when missing.

use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{StorageError, StorageOptions};
use crate::config::DatabaseUrl;

/// SQLSTATE for "database does not exist".
const INVALID_CATALOG_NAME: &str = "3D000";

pub async fn connect(url: &DatabaseUrl, options: &StorageOptions) -> Result<PgPool, StorageError> {
    let connect_options =
        PgConnectOptions::from_str(url.expose()).map_err(|e| StorageError::InvalidUrl {
            url: url.redacted(),
            reason: e.to_string(),
        })?;
    match open_pool(&connect_options, options).await {
        Ok(pool) => Ok(pool),
        Err(e) if is_missing_database(&e) => {
            create_database(&connect_options, url).await?;
            open_pool(&connect_options, options)
                .await
                .map_err(|e| connect_error(url, e))
        }
        Err(e) => Err(connect_error(url, e)),
    }
}

async fn open_pool(
    connect_options: &PgConnectOptions,
    options: &StorageOptions,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect_options.clone())
        .await
}

fn is_missing_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(INVALID_CATALOG_NAME))
}

fn connect_error(url: &DatabaseUrl, e: sqlx::Error) -> StorageError {
    let reason = match &e {
        sqlx::Error::Io(io) => format!("{io} (is the server running and reachable?)"),
        sqlx::Error::PoolTimedOut => "timed out (is the server running and reachable?)".to_string(),
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    };
    StorageError::PostgresConnect {
        url: url.redacted(),
        reason,
    }
}

/// Creates the database named in the URL through the server's `postgres` database.
async fn create_database(
    connect_options: &PgConnectOptions,
    url: &DatabaseUrl,
) -> Result<(), StorageError> {
    let name = connect_options
        .get_database()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(StorageError::InvalidUrl {
            url: url.redacted(),
            reason: "no database name".into(),
        });
    }
    let maintenance = connect_options.clone().database("postgres");
    let mut conn = maintenance
        .connect()
        .await
        .map_err(|e| connect_error(url, e))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&mut conn)
        .await;
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "created PostgreSQL database");
            Ok(())
        }
        // Another node created it between our two attempts.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(StorageError::PostgresConnect {
            url: url.redacted(),
            reason: format!(
                "database `{name}` does not exist and could not be created ({}); create it with `createdb {name}` or grant CREATEDB",
                match &e {
                    sqlx::Error::Database(db) => db.message().to_string(),
                    other => other.to_string(),
                }
            ),
        }),
    }
}
