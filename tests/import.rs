//! CSV lead import: header mapping, every row through intake (so de-duplication applies),
//! bad rows with their row numbers and reasons, all-or-nothing, partial, dry runs,
//! re-imports, the CLI.

use std::process::{Command, Stdio};

use akis_engine::storage::Db;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestSession, repo_root};

/// Good, duplicate and broken rows. An existing customer has 0532 111 22 33.
/// Row 2: new; 3: the existing customer's phone in another form (matched); 4: row 2's
/// phone in another form (matched); 5: no name; 6: a bad phone; 7: new, email only;
/// 8: blank (skipped); 9: neither phone nor email. Row 2's note spans two lines.
const MIXED: &str = r#"name,phone,email,source,notes,city,favourite colour
Ayşe Yılmaz,0532 100 00 01,ayse@example.com,web_form,"first line
second line",İstanbul,blue
Mehmet Demir,+90 (532) 111-22-33,,,,,
Ayşe Y.,905321000001,,,,,
,0532 100 00 02,,,,,
Ali Veli,12345,,,,,
Zeynep Kaya,,zeynep@example.com,,,,

No Contact,,,,,,
"#;

async fn count(db: &Db, sql: &'static str) -> i64 {
    akis_engine::read!(db, pool => {
        sqlx::query_scalar(sql).fetch_one(pool).await
    })
    .expect("count")
}

async fn customers(db: &Db) -> i64 {
    count(db, "SELECT COUNT(*) FROM customers").await
}

async fn imported_leads(db: &Db) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM leads WHERE external_key LIKE 'import:%'",
    )
    .await
}

async fn import(session: &TestSession, body: Value) -> (StatusCode, Value) {
    let r = session.post("/api/imports", body).await;
    let status = r.status();
    (status, r.json().await.expect("json"))
}

fn counts(report: &Value) -> [i64; 4] {
    ["created", "matched", "duplicate", "failed"].map(|k| report[k].as_i64().expect(k))
}

fn bad_rows(report: &Value) -> Vec<(i64, String)> {
    report["bad_rows"]
        .as_array()
        .expect("bad rows")
        .iter()
        .map(|b| {
            (
                b["row"].as_i64().expect("row"),
                b["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect()
}

both_backends! {
    async fn a_file_with_good_duplicate_and_broken_rows_is_reported_row_by_row(app) {
        let admin = app.login_as("admin").await;
        let r = admin
            .post("/api/leads", json!({"name": "Mehmet Demir", "phone": "0532 111 22 33"}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let before = customers(&app.db).await;

        // All-or-nothing (the default for small files): every bad row listed, nothing written.
        let (status, report) =
            import(&admin, json!({"file_name": "leads.csv", "csv": MIXED})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
        assert_eq!(report["state"], "rejected");
        assert_eq!(report["mode"], "all_or_nothing");
        assert_eq!(report["rejected"], true);
        assert_eq!(report["total_rows"], 7, "the blank row 8 is not a data row");
        assert_eq!(report["last_row"], 9);
        assert_eq!(counts(&report), [0, 0, 0, 3]);
        let bad = bad_rows(&report);
        assert_eq!(
            bad.iter().map(|(row, _)| *row).collect::<Vec<_>>(),
            [5, 6, 9],
            "{report}"
        );
        assert!(bad[0].1.contains("name"), "{:?}", bad[0]);
        assert!(bad[1].1.contains("phone (phone)") && bad[1].1.contains("not a valid phone"), "{:?}", bad[1]);
        assert!(bad[2].1.contains("a phone number or an email address is required"), "{:?}", bad[2]);
        assert_eq!(report["unknown_columns"], json!(["favourite colour"]));
        assert_eq!(customers(&app.db).await, before);
        assert_eq!(imported_leads(&app.db).await, 0);

        // A dry run of a partial import: the same counts as the real one, nothing written.
        let (status, dry) = import(
            &admin,
            json!({"file_name": "leads.csv", "csv": MIXED, "partial": true, "dry_run": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{dry}");
        assert_eq!(dry["state"], "dry_run");
        assert_eq!(counts(&dry), [2, 2, 0, 3], "{dry}");
        assert_eq!(customers(&app.db).await, before);
        assert_eq!(imported_leads(&app.db).await, 0);

        // Partial: the good rows land, the bad ones are reported.
        let (status, done) = import(
            &admin,
            json!({"file_name": "leads.csv", "csv": MIXED, "partial": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(done["state"], "done");
        assert_eq!(done["mode"], "partial");
        assert_eq!(counts(&done), counts(&dry));
        assert_eq!(bad_rows(&done), bad_rows(&report));
        assert_eq!(done["rows_done"], 9);
        assert_eq!(customers(&app.db).await, before + 2);
        assert_eq!(imported_leads(&app.db).await, 4);
        // The custom field column filled the field; the source column the source.
        let (fields, source): (String, String) = akis_engine::read!(&app.db, pool => {
            sqlx::query_as("SELECT fields, source FROM customers WHERE name = 'Ayşe Yılmaz'")
                .fetch_one(pool).await
        })
        .expect("customer");
        assert_eq!(source, "web_form");
        assert_eq!(serde_json::from_str::<Value>(&fields).expect("json")["city"], "İstanbul");
        let zeynep_source: String = akis_engine::read!(&app.db, pool => {
            sqlx::query_scalar("SELECT source FROM customers WHERE name = 'Zeynep Kaya'")
                .fetch_one(pool).await
        })
        .expect("customer");
        assert_eq!(zeynep_source, "import");

        // The record can be read back.
        let r = admin.get(&format!("/api/imports/{}", done["id"].as_str().expect("id"))).await;
        assert_eq!(r.status(), StatusCode::OK);
        let record: Value = r.json().await.expect("json");
        assert_eq!(counts(&record), counts(&done));
        assert_eq!(record["file_name"], "leads.csv");
        assert_eq!(record["bad_rows"], done["bad_rows"]);

        // The same file again: every good row is a duplicate, nothing changes.
        let (status, again) = import(
            &admin,
            json!({"file_name": "leads.csv", "csv": MIXED, "partial": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(counts(&again), [0, 0, 4, 3]);
        assert_eq!(customers(&app.db).await, before + 2);
        assert_eq!(imported_leads(&app.db).await, 4);
    }
}

both_backends! {
    async fn a_good_file_is_imported_whole(app) {
        let admin = app.login_as("admin").await;
        let good: String = MIXED
            .lines()
            .enumerate()
            .filter(|(i, _)| ![5, 6, 9].contains(i))
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        let (status, report) = import(&admin, json!({"file_name": "good.csv", "csv": good})).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["state"], "done");
        assert_eq!(report["mode"], "all_or_nothing");
        // Row 3's phone belongs to nobody here: it creates a customer.
        assert_eq!(counts(&report), [3, 1, 0, 0], "{report}");
        assert_eq!(imported_leads(&app.db).await, 4);
    }
}

both_backends! {
    async fn a_semicolon_file_with_turkish_headers_is_understood(app) {
        let admin = app.login_as("admin").await;
        let csv = "\u{feff}Ad Soyad;Telefon;E-posta;Kaynak;Şehir;İlgilendiği;Açıklama\r\n\
                   Çağrı Öztürk;0 (532) 200 00 01;cagri@example.com;Fuar İstanbul;Ankara;Villa;\"deniz; manzara\"\r\n\
                   Işık Şahin;0532 200 00 02;;;;arsa;\r\n";
        let (status, report) =
            import(&admin, json!({"file_name": "excel.csv", "csv": csv})).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["delimiter"], ";");
        assert_eq!(report["unknown_columns"], json!([]));
        let targets: Vec<&str> = report["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["target"].as_str().expect("target"))
            .collect();
        assert_eq!(
            targets,
            ["name", "phone", "email", "source", "fields.city", "fields.interested_in", "notes"]
        );
        assert_eq!(counts(&report), [2, 0, 0, 0]);
        let (fields, source): (String, String) = akis_engine::read!(&app.db, pool => {
            sqlx::query_as("SELECT fields, source FROM customers WHERE name = 'Çağrı Öztürk'")
                .fetch_one(pool).await
        })
        .expect("customer");
        assert_eq!(source, "fuar_istanbul");
        let fields: Value = serde_json::from_str(&fields).expect("json");
        assert_eq!(fields["city"], "Ankara");
        assert_eq!(fields["interested_in"], "villa");
        let phone: String = akis_engine::read!(&app.db, pool => {
            sqlx::query_scalar("SELECT p.e164 FROM customer_phones p JOIN customers c ON c.id = p.customer_id WHERE c.name = 'Işık Şahin'")
                .fetch_one(pool).await
        })
        .expect("phone");
        assert_eq!(phone, "+905322000002");
    }
}

both_backends! {
    async fn importing_needs_the_bulk_permission(app) {
        let sales = app.login_as("sales").await;
        let (status, _) = import(&sales, json!({"file_name": "x.csv", "csv": MIXED})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let admin = app.login_as("admin").await;
        let (status, body) = import(
            &admin,
            json!({"file_name": "x.csv", "csv": "favourite colour\nblue\n"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "import_invalid_file", "{body}");
        let r = admin.get("/api/imports/01890000-0000-7000-8000-000000000000").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}

both_backends! {
    async fn an_import_that_stopped_midway_is_resumed_after_its_last_committed_row(app) {
        use akis_engine::crm::import as csv_import;
        let admin = app.login_as("admin").await;
        let definitions = akis_engine::app::load_definitions(&app.config).expect("definitions");
        let file = "Ad Soyad;Telefon\nBir Kişi;0532 400 00 01\nİki Kişi;0532 400 00 02\nÜç Kişi;0532 400 00 03\n";
        let options = csv_import::ImportOptions {
            file_name: "resume.csv".into(),
            ..Default::default()
        };
        let prepared = csv_import::prepare(&app.db, &definitions, file.as_bytes(), &options)
            .await
            .expect("prepared");
        let id = prepared.report().id.clone();
        // The first batch (row 2) commits, then the process dies before the second.
        let parsed = csv_import::parse(&definitions, file.as_bytes(), None, false).expect("parsed");
        let first = parsed.rows[0].1.clone().expect("a good row");
        akis_engine::crm::intake::intake_all(&app.db, &definitions, &[first], true)
            .await
            .expect("row 2 lands");
        let mut tx = app.db.begin().await.expect("begin");
        akis_engine::exec!(&mut tx, conn => sqlx::query(
            "UPDATE imports SET rows_done = 2, created = 1 WHERE id = $1")
            .bind(&id).execute(conn).await.map(|r| r.rows_affected()))
        .expect("progress saved");
        tx.commit().await.expect("commit");
        drop(prepared);

        // Its heartbeat is fresh: it may still be running somewhere.
        let resume = json!({"file_name": "resume.csv", "csv": file, "resume": true});
        let (status, body) = import(&admin, resume.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "import_running");

        // Stopped (or silent for a minute): resume continues after row 2.
        let mut tx = app.db.begin().await.expect("begin");
        akis_engine::exec!(&mut tx, conn => sqlx::query("UPDATE imports SET state = 'failed' WHERE id = $1")
            .bind(&id).execute(conn).await.map(|r| r.rows_affected()))
        .expect("failed");
        tx.commit().await.expect("commit");
        let (status, report) = import(&admin, resume.clone()).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["id"], id.as_str(), "the same import record");
        assert_eq!(report["state"], "done");
        assert_eq!(report["rows_done"], 4);
        assert_eq!(counts(&report), [3, 0, 0, 0], "{report}");
        assert_eq!(imported_leads(&app.db).await, 3);

        // Nothing is left to resume.
        let (status, _) = import(&admin, resume).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

async fn execute(db: &Db, sql: &'static str) {
    let mut tx = db.begin().await.expect("begin");
    akis_engine::exec!(&mut tx, conn => sqlx::raw_sql(sql).execute(conn).await.map(|_| ()))
        .expect("sql");
    tx.commit().await.expect("commit");
}

both_backends! {
    /// A failure in the middle of an all-or-nothing import: the record says exactly which
    /// rows landed (it advances in each batch's transaction), the file is kept, and the
    /// server's resumer carries the import to its end without the user.
    async fn an_interrupted_import_is_carried_forward_to_its_end(app) {
        use akis_engine::crm::import as csv_import;
        let admin = app.login_as("admin").await;
        let definitions = akis_engine::app::load_definitions(&app.config).expect("definitions");
        let file: String = std::iter::once("Ad Soyad;Telefon\n".to_string())
            .chain((1..=7).map(|i| format!("Kişi {i};0532 500 00 0{i}\n")))
            .collect();
        // Row 6 (the fifth lead, in the third batch of two) cannot be written.
        match app.db {
            Db::Sqlite(_) => execute(&app.db, "CREATE TRIGGER fail_row BEFORE INSERT ON customer_phones WHEN NEW.e164 = '+905325000005' BEGIN SELECT RAISE(ABORT, 'injected failure'); END").await,
            Db::Postgres(_) => execute(&app.db, "CREATE FUNCTION fail_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; CREATE TRIGGER fail_row BEFORE INSERT ON customer_phones FOR EACH ROW WHEN (NEW.e164 = '+905325000005') EXECUTE FUNCTION fail_row()").await,
        }
        let options = csv_import::ImportOptions {
            file_name: "forward.csv".into(),
            batch_size: Some(2),
            ..Default::default()
        };
        let report = csv_import::import(&app.db, &definitions, file.as_bytes(), &options, |_| {})
            .await
            .expect("a report");
        assert_eq!(report.state, "failed", "{report:?}");
        assert_eq!(report.mode, csv_import::ImportMode::AllOrNothing);
        assert_eq!(report.rows_done, 5, "rows 2-5 landed in two batches: {report:?}");
        assert_eq!(report.created, 4);
        assert_eq!(imported_leads(&app.db).await, 4);
        assert!(!report.error.as_deref().unwrap_or("").contains("injected"), "internals never leak: {report:?}");
        let stored = csv_import::get(&app.db, &report.id).await.expect("get").expect("record");
        assert_eq!((stored.state.as_str(), stored.rows_done, stored.created), ("failed", 5, 4));
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM imports WHERE file IS NOT NULL").await, 1, "the file is kept");

        // Not yet a minute old: the resumer leaves it (it may be a person's to resume).
        assert!(csv_import::resume_interrupted(&app.db, &definitions).await.expect("resumer").is_empty());
        // The fault is gone and a minute has passed: the resumer finishes it.
        match app.db {
            Db::Sqlite(_) => execute(&app.db, "DROP TRIGGER fail_row").await,
            Db::Postgres(_) => execute(&app.db, "DROP TRIGGER fail_row ON customer_phones").await,
        }
        execute(&app.db, "UPDATE imports SET updated_at = '2026-01-01T00:00:00.000000Z'").await;
        let resumed = csv_import::resume_interrupted(&app.db, &definitions).await.expect("resumer");
        assert_eq!(resumed.len(), 1);
        let done = &resumed[0];
        assert_eq!((done.id.as_str(), done.state.as_str()), (report.id.as_str(), "done"));
        assert_eq!((done.rows_done, done.created, done.matched, done.duplicate, done.failed), (8, 7, 0, 0, 0));
        assert_eq!(imported_leads(&app.db).await, 7);
        assert_eq!(customers(&app.db).await, 7);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM imports WHERE file IS NOT NULL").await, 0, "the file goes with the end");
        assert_eq!(count(&app.db, "SELECT MAX(attempts) FROM imports").await, 1);
        assert!(csv_import::resume_interrupted(&app.db, &definitions).await.expect("resumer").is_empty());

        // The list shows it, newest first.
        let r = admin.get("/api/imports").await;
        assert_eq!(r.status(), StatusCode::OK);
        let list: Value = r.json().await.expect("json");
        assert_eq!(list[0]["id"], report.id.as_str());
        assert_eq!(list[0]["state"], "done");
    }
}

both_backends! {
    /// A resumer does not retry forever: after its attempts an import waits for a person.
    async fn the_resumer_gives_up_after_its_attempts(app) {
        use akis_engine::crm::import as csv_import;
        let definitions = akis_engine::app::load_definitions(&app.config).expect("definitions");
        let file = "Ad Soyad;Telefon\nBir Kişi;0532 600 00 01\n";
        match app.db {
            Db::Sqlite(_) => execute(&app.db, "CREATE TRIGGER fail_row BEFORE INSERT ON customer_phones BEGIN SELECT RAISE(ABORT, 'injected failure'); END").await,
            Db::Postgres(_) => execute(&app.db, "CREATE FUNCTION fail_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; CREATE TRIGGER fail_row BEFORE INSERT ON customer_phones FOR EACH ROW EXECUTE FUNCTION fail_row()").await,
        }
        let options = csv_import::ImportOptions { file_name: "stuck.csv".into(), ..Default::default() };
        let report = csv_import::import(&app.db, &definitions, file.as_bytes(), &options, |_| {})
            .await
            .expect("a report");
        assert_eq!(report.state, "failed");
        for attempt in 1..=csv_import::MAX_AUTO_ATTEMPTS {
            execute(&app.db, "UPDATE imports SET updated_at = '2026-01-01T00:00:00.000000Z'").await;
            let resumed = csv_import::resume_interrupted(&app.db, &definitions).await.expect("resumer");
            assert_eq!(resumed.len(), 1, "attempt {attempt}");
            assert_eq!(resumed[0].state, "failed");
        }
        execute(&app.db, "UPDATE imports SET updated_at = '2026-01-01T00:00:00.000000Z'").await;
        assert!(csv_import::resume_interrupted(&app.db, &definitions).await.expect("resumer").is_empty());
        assert_eq!(imported_leads(&app.db).await, 0);
    }
}

fn akis(database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_akis"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AKIS_") || key == "RUST_BACKTRACE" {
            cmd.env_remove(key);
        }
    }
    cmd.env("AKIS_LOG", "error")
        .env("AKIS_DATABASE_URL", database_url)
        .env("AKIS_DEFINITIONS", repo_root())
        .stdin(Stdio::null());
    cmd
}

/// The CLI on SQLite: dry run in one-row batches (a row matching a customer created by an
/// earlier, rolled-back batch still counts as matched), the all-or-nothing refusal, a
/// partial import, a re-run.
#[test]
fn the_cli_imports_a_file_and_reports_bad_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("leads.csv");
    std::fs::write(&file, MIXED).expect("write");
    let url = format!("sqlite:{}", dir.path().join("akis.db").display());
    let file = file.to_str().expect("utf-8 path");
    let run = |args: &[&str]| {
        let output = akis(&url)
            .args(["import", "leads", file])
            .args(args)
            .output()
            .expect("akis runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };

    let (ok, stdout, stderr) = run(&["--dry-run", "--partial", "--batch-size", "1"]);
    assert!(!ok, "bad rows make the exit code non-zero");
    assert!(stdout.contains("dry run: nothing written"), "{stdout}");
    assert!(
        stdout.contains("created 3  matched 1  duplicate 0  failed 3"),
        "{stdout}"
    );
    assert!(stdout.contains("row 5: name"), "{stdout}");
    assert!(stdout.contains("row 6: phone"), "{stdout}");
    assert!(stdout.contains("row 9: phone"), "{stdout}");
    assert!(
        stdout.contains("ignored columns: favourite colour"),
        "{stdout}"
    );
    assert!(
        stderr.trim_end().ends_with("3 row(s) would fail"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = run(&[]);
    assert!(!ok);
    assert!(
        stdout.contains("created 0  matched 0  duplicate 0  failed 3"),
        "{stdout}"
    );
    assert!(stderr.contains("nothing written"), "{stderr}");

    let (ok, stdout, _) = run(&["--partial", "--batch-size", "2"]);
    assert!(!ok);
    assert!(
        stdout.contains("created 3  matched 1  duplicate 0  failed 3"),
        "{stdout}"
    );
    assert!(stdout.contains("state done, rows done up to 9"), "{stdout}");

    let (ok, stdout, _) = run(&["--partial"]);
    assert!(!ok);
    assert!(
        stdout.contains("created 0  matched 0  duplicate 4  failed 3"),
        "{stdout}"
    );

    let (ok, _, stderr) = run(&["--resume"]);
    assert!(!ok);
    assert!(
        stderr.contains("unfinished import of this file not found"),
        "{stderr}"
    );
}
