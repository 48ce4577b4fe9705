//! Login throttling per account and per client address, shared by every node (it lives in
//! the database). After too many failures in a window the key is locked for a while and
//! login answers 429 with `Retry-After` before even checking the password.

use chrono::Duration;

use crate::exec;
use crate::http::ApiError;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_failures: i64,
    pub window: Duration,
    pub lock_for: Duration,
}

/// Five wrong passwords for one account in 15 minutes lock it for 15 minutes.
pub const ACCOUNT: Limit = Limit {
    max_failures: 5,
    window: Duration::minutes(15),
    lock_for: Duration::minutes(15),
};

/// Twenty failures from one address in 15 minutes lock that address for 15 minutes.
pub const ADDRESS: Limit = Limit {
    max_failures: 20,
    window: Duration::minutes(15),
    lock_for: Duration::minutes(15),
};

pub fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

pub fn address_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// 429 when the account or the address is locked.
pub async fn check(db: &Db, account: &str, address: Option<&str>) -> Result<(), ApiError> {
    let now = Timestamp::now();
    let rows: Vec<(String, Timestamp)> = crate::read!(db, pool => {
        sqlx::query_as(
            "SELECT key, locked_until FROM login_throttle
             WHERE (key = $1 OR key = $2) AND locked_until IS NOT NULL AND locked_until > $3",
        )
        .bind(account)
        .bind(address)
        .bind(now)
        .fetch_all(pool)
        .await
    })?;
    let Some((key, until)) = rows.into_iter().max_by_key(|(_, until)| *until) else {
        return Ok(());
    };
    let secs = (until.as_datetime() - now.as_datetime())
        .num_seconds()
        .max(1) as u64;
    let minutes = secs.div_ceil(60);
    let whom = if key.starts_with("ip:") {
        "from your address"
    } else {
        "for this account"
    };
    Err(ApiError::too_many_requests(
        format!("too many failed login attempts {whom}; try again in {minutes} minute(s)"),
        secs,
    ))
}

/// Counts one failure; locks the key when it reaches the limit. Returns true when this
/// failure locked it.
pub async fn record_failure(tx: &mut Tx, key: &str, limit: Limit) -> Result<bool, sqlx::Error> {
    let now = Timestamp::now();
    let window_start = Timestamp::from(now.as_datetime() - limit.window);
    let failures: i64 = exec!(tx, conn => sqlx::query_scalar(
        "INSERT INTO login_throttle (key, failures, window_started_at, locked_until) VALUES ($1, 1, $2, NULL)
         ON CONFLICT (key) DO UPDATE SET
           failures = CASE WHEN login_throttle.window_started_at < $3 THEN 1 ELSE login_throttle.failures + 1 END,
           window_started_at = CASE WHEN login_throttle.window_started_at < $3 THEN $2 ELSE login_throttle.window_started_at END
         RETURNING failures",
    )
    .bind(key)
    .bind(now)
    .bind(window_start)
    .fetch_one(conn)
    .await)?;
    if failures >= limit.max_failures {
        let until = Timestamp::from(now.as_datetime() + limit.lock_for);
        exec!(tx, conn => sqlx::query(
            "UPDATE login_throttle SET locked_until = $2, failures = 0, window_started_at = $3 WHERE key = $1",
        )
        .bind(key)
        .bind(until)
        .bind(now)
        .execute(conn)
        .await.map(|r| r.rows_affected()))?;
        return Ok(true);
    }
    Ok(false)
}

/// Forgets the failures of a key (after a successful login).
pub async fn clear(tx: &mut Tx, key: &str) -> Result<(), sqlx::Error> {
    exec!(tx, conn => sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(key).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(())
}
