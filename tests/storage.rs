//! Storage: migrations, canonical encodings on both backends, transactions.

use akis_engine::storage::{Backend, Db};
use akis_engine::transaction;
use akis_engine::types::{Currency, Email, Phone, Timestamp, ids::CustomerId};

use crate::both_databases;

both_databases! {
    async fn our_migrations_are_recorded_in_our_own_table(db) {
        let applied = db.applied_migrations().await.expect("read applied");
        assert_eq!(applied.len(), db.known_migrations().len());
        assert!(!applied.is_empty());
        // apalis owns `_sqlx_migrations`; we must never create it.
        let sqlx_table: Option<String> = akis_engine::read!(&db, pool => {
            match db.backend() {
                Backend::Sqlite => sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = '_sqlx_migrations'")
                    .fetch_optional(pool).await,
                Backend::Postgres => sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE tablename = '_sqlx_migrations'")
                    .fetch_optional(pool).await,
            }
        }).expect("query catalog");
        assert_eq!(sqlx_table, None);
        // Running again is a no-op.
        db.migrate().await.expect("second run");
        assert_eq!(db.applied_migrations().await.expect("read").len(), applied.len());
    }
}

both_databases! {
    async fn canonical_encodings_round_trip(db) {
        let id = CustomerId::new();
        let at = Timestamp::parse("2026-11-25T09:50:45.123456Z").expect("valid");
        let phone = Phone::parse("0532 123 45 67").expect("valid");
        let email = Email::parse("Ayse@Example.com").expect("valid");
        let currency = Currency::TRY;
        transaction!(&db, tx => {
            for (key, value) in [
                (format!("id:{id}"), id.to_string()),
                ("phone".to_string(), phone.to_string()),
                ("email".to_string(), email.to_string()),
                ("currency".to_string(), currency.to_string()),
            ] {
                sqlx::query("INSERT INTO app_meta (key, value, updated_at) VALUES ($1, $2, $3)")
                    .bind(key).bind(value).bind(at)
                    .execute(&mut *tx).await?;
            }
            Ok::<_, sqlx::Error>(())
        }).expect("insert");

        let (read_id, read_at): (CustomerId, Timestamp) = akis_engine::read!(&db, pool => {
            sqlx::query_as("SELECT value, updated_at FROM app_meta WHERE key = $1")
                .bind(format!("id:{id}"))
                .fetch_one(pool).await
        }).expect("read back");
        assert_eq!(read_id, id);
        assert_eq!(read_at, at);
        let read_phone: Phone = akis_engine::read!(&db, pool => {
            sqlx::query_scalar("SELECT value FROM app_meta WHERE key = 'phone'").fetch_one(pool).await
        }).expect("read phone");
        assert_eq!(read_phone, phone);
        let read_email: Email = akis_engine::read!(&db, pool => {
            sqlx::query_scalar("SELECT value FROM app_meta WHERE key = 'email'").fetch_one(pool).await
        }).expect("read email");
        assert_eq!(read_email.as_str(), "ayse@example.com");
        let read_currency: Currency = akis_engine::read!(&db, pool => {
            sqlx::query_scalar("SELECT value FROM app_meta WHERE key = 'currency'").fetch_one(pool).await
        }).expect("read currency");
        assert_eq!(read_currency, Currency::TRY);
    }
}

both_databases! {
    async fn timestamps_sort_in_time_order_in_sql(db) {
        let instants = [
            "2026-01-01T00:00:00.999999Z",
            "2026-01-01T00:00:01Z",
            "2025-12-31T23:59:59.5+00:00",
            "2026-01-01T03:00:00.5+03:00",
        ];
        transaction!(&db, tx => {
            for (i, text) in instants.iter().enumerate() {
                sqlx::query("INSERT INTO app_meta (key, value, updated_at) VALUES ($1, '', $2)")
                    .bind(format!("t{i}"))
                    .bind(Timestamp::parse(text).expect("valid"))
                    .execute(&mut *tx).await?;
            }
            Ok::<_, sqlx::Error>(())
        }).expect("insert");
        let keys: Vec<String> = akis_engine::read!(&db, pool => {
            sqlx::query_scalar("SELECT key FROM app_meta ORDER BY updated_at, key").fetch_all(pool).await
        }).expect("read");
        assert_eq!(keys, ["t2", "t3", "t0", "t1"]);
        if let Db::Sqlite(s) = &db {
            let widths: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT length(updated_at) FROM app_meta")
                .fetch_all(&s.reader).await.expect("widths");
            assert_eq!(widths, [27], "fixed-width text");
        }
    }
}

both_databases! {
    async fn a_failed_transaction_leaves_nothing_behind(db) {
        let result: Result<(), sqlx::Error> = transaction!(&db, tx => {
            sqlx::query("INSERT INTO app_meta (key, value, updated_at) VALUES ('a', '1', $1)")
                .bind(Timestamp::now())
                .execute(&mut *tx).await?;
            // The same key again: a unique violation aborts the whole transaction.
            sqlx::query("INSERT INTO app_meta (key, value, updated_at) VALUES ('a', '2', $1)")
                .bind(Timestamp::now())
                .execute(&mut *tx).await?;
            Ok(())
        });
        let err = result.expect_err("duplicate key fails");
        assert!(akis_engine::http::error::is_unique_violation(&err, "app_meta") || akis_engine::http::error::is_unique_violation(&err, "key"), "{err}");
        let count: i64 = akis_engine::read!(&db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM app_meta").fetch_one(pool).await
        }).expect("count");
        assert_eq!(count, 0);
    }
}

/// SQLite: transactions that read and then write, many at once, all succeed (single writer
/// connection + `BEGIN IMMEDIATE`; a deferred transaction would fail with SQLITE_BUSY).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_read_then_write_transactions_never_fail_with_busy() {
    let guard = crate::helpers::fresh_database(Backend::Sqlite)
        .await
        .expect("sqlite");
    let db = crate::helpers::open(&guard).await;
    transaction!(&db, tx => {
        sqlx::query("INSERT INTO app_meta (key, value, updated_at) VALUES ('counter', '0', $1)")
            .bind(Timestamp::now()).execute(&mut *tx).await?;
        Ok::<_, sqlx::Error>(())
    })
    .expect("seed");
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            transaction!(&db, tx => {
                let value: String = sqlx::query_scalar("SELECT value FROM app_meta WHERE key = 'counter'")
                    .fetch_one(&mut *tx).await?;
                let next = value.parse::<i64>().unwrap_or(0) + 1;
                tokio::task::yield_now().await;
                sqlx::query("UPDATE app_meta SET value = $1, updated_at = $2 WHERE key = 'counter'")
                    .bind(next.to_string()).bind(Timestamp::now())
                    .execute(&mut *tx).await?;
                Ok::<_, sqlx::Error>(())
            })
        }));
    }
    for task in tasks {
        task.await
            .expect("task")
            .expect("no SQLITE_BUSY, no lost update");
    }
    let value: String = akis_engine::read!(&db, pool => {
        sqlx::query_scalar("SELECT value FROM app_meta WHERE key = 'counter'").fetch_one(pool).await
    })
    .expect("read");
    assert_eq!(value, "64");
}

/// SQLite: readers are not blocked by an open write transaction (WAL + separate read pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_proceed_while_a_write_transaction_is_open() {
    let guard = crate::helpers::fresh_database(Backend::Sqlite)
        .await
        .expect("sqlite");
    let db = crate::helpers::open(&guard).await;
    let Db::Sqlite(sqlite) = &db else {
        panic!("sqlite expected")
    };
    let mut tx = sqlite.begin_write().await.expect("begin");
    sqlx::query("INSERT INTO app_meta (key, value, updated_at) VALUES ('pending', 'x', $1)")
        .bind(Timestamp::now())
        .execute(&mut *tx)
        .await
        .expect("insert");
    let count = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM app_meta").fetch_one(&sqlite.reader),
    )
    .await
    .expect("read not blocked")
    .expect("read ok");
    assert_eq!(count, 0, "uncommitted rows are invisible to readers");
    tx.commit().await.expect("commit");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM app_meta")
        .fetch_one(&sqlite.reader)
        .await
        .expect("read");
    assert_eq!(count, 1);
    // The read pool is read-only: a write through it is refused.
    let write = sqlx::query("DELETE FROM app_meta")
        .execute(&sqlite.reader)
        .await;
    assert!(write.is_err(), "read pool must not write");
}
