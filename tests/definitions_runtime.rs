//! Definitions at run time: stored versions, reloads that refuse invalid sets and reach
//! every node, stage migration, dry runs, diffs, and the CLI (`akis reload`, `akis
//! simulate`, SIGHUP).

use akis_engine::storage::Db;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    TestSession, akis_command, definitions_copy, eventually, login_at, repo_root, serve,
};

/// A shipped definition file's text.
fn shipped(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).expect("shipped file")
}

/// `path` with its first `from` replaced by `to` (the replacement must apply).
fn edited(path: &str, from: &str, to: &str) -> String {
    let text = shipped(path);
    assert!(text.contains(from), "{path} has no `{from}`");
    text.replacen(from, to, 1)
}

async fn reload(admin: &TestSession, changes: Value) -> reqwest::Response {
    admin
        .post("/api/admin/definitions/reload", json!({"changes": changes}))
        .await
}

async fn current_version(session: &TestSession) -> String {
    let r = session.get("/api/admin/definitions").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    body["version"].as_str().expect("version").to_string()
}

async fn new_card(admin: &TestSession, name: &str, phone: &str) -> (String, i64) {
    let r = admin
        .post(
            "/api/leads",
            json!({"name": name, "phone": phone, "source": "web_form", "whatsapp_consent": true}),
        )
        .await;
    assert!(r.status().is_success(), "lead: {}", r.status());
    let body: Value = r.json().await.expect("json");
    let id = body["card_id"].as_str().expect("card id").to_string();
    (id, 1)
}

async fn move_card(
    session: &TestSession,
    id: &str,
    to: &str,
    version: i64,
    fields: Value,
) -> (StatusCode, Value) {
    let r = session
        .post(
            &format!("/api/cards/{id}/move"),
            json!({"to": to, "expected_version": version, "fields": fields}),
        )
        .await;
    let status = r.status();
    (status, r.json().await.expect("json"))
}

async fn card_version(session: &TestSession, id: &str) -> (String, i64) {
    let card: Value = session
        .get(&format!("/api/cards/{id}"))
        .await
        .json()
        .await
        .expect("json");
    (
        card["stage_id"].as_str().expect("stage").to_string(),
        card["version"].as_i64().expect("version"),
    )
}

async fn scalar_text(db: &Db, sql: &'static str, bind: &str) -> Option<String> {
    akis_engine::read!(db, pool => {
        sqlx::query_scalar::<_, Option<String>>(sql).bind(bind).fetch_optional(pool).await
    })
    .expect("query")
    .flatten()
}

/// Row counts of every table we own and the job tables: a dry run must leave them all as
/// they were.
async fn row_counts(db: &Db) -> Vec<(String, i64)> {
    let tables: Vec<String> = match db {
        Db::Sqlite(s) => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&s.reader)
        .await
        .expect("tables"),
        Db::Postgres(p) => sqlx::query_scalar(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables
             WHERE table_schema IN ('public', 'apalis') AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .fetch_all(p)
        .await
        .expect("tables"),
    };
    let mut out = Vec::new();
    for table in tables {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = match db {
            Db::Sqlite(s) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&s.reader)
                .await
                .expect("count"),
            Db::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(p)
                .await
                .expect("count"),
        };
        out.push((table, n));
    }
    out
}

both_backends! {
    async fn an_invalid_reload_changes_nothing_and_reports_every_error(app) {
        let admin = app.login_as("admin").await;
        let before = current_version(&admin).await;
        let (card, v) = new_card(&admin, "Deniz Aksoy", "0532 100 00 01").await;
        let r = reload(&admin, json!({
            "workflows/sales.yaml": edited("workflows/sales.yaml", "      - from: potansiyel\n        to: gorusuluyor", "      - from: potansiyel\n        to: gorusuluyr"),
            "rules/guards.rhai": format!("{}\nfn broken( {{", shipped("rules/guards.rhai")),
        })).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "invalid_definitions");
        let diagnostics = body["diagnostics"].as_array().expect("diagnostics");
        let texts: Vec<&str> = diagnostics.iter().map(|d| d["text"].as_str().unwrap()).collect();
        assert!(texts.iter().any(|t| t.starts_with("workflows/sales.yaml:") && t.contains("unknown stage `gorusuluyr`")), "{texts:?}");
        assert!(texts.iter().any(|t| t.starts_with("rules/guards.rhai:")), "{texts:?}");
        assert!(diagnostics.iter().all(|d| d["line"].as_u64().unwrap() > 0 && d["col"].as_u64().unwrap() > 0));
        // Nothing changed: same version, nothing stored, and moves follow the old set.
        assert_eq!(current_version(&admin).await, before);
        let versions: Value = admin.get("/api/admin/definitions/versions").await.json().await.unwrap();
        assert_eq!(versions["activations"].as_array().unwrap().len(), 1);
        let (status, _) = move_card(&admin, &card, "gorusuluyor", v, json!({})).await;
        assert_eq!(status, StatusCode::OK);
        // Validation alone reports the same, and a sales rep may not reload at all.
        let r = admin.post("/api/admin/definitions/validate", json!({"changes": {"rules/guards.rhai": "fn ("}})).await;
        let verdict: Value = r.json().await.unwrap();
        assert_eq!(verdict["valid"], false);
        let rep = app.login_as("sales").await;
        assert_eq!(reload(&rep, json!({})).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(rep.get("/api/admin/definitions").await.status(), StatusCode::FORBIDDEN);
        // A path outside the definition folders is refused.
        let r = reload(&admin, json!({"../etc/passwd": "x"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_path");
    }
}

both_backends! {
    async fn a_valid_reload_takes_effect_for_the_next_move(app) {
        let admin = app.login_as("admin").await;
        let before = current_version(&admin).await;
        let (card, v) = new_card(&admin, "Elif Şahin", "0532 100 00 02").await;
        let (status, body) = move_card(&admin, &card, "takip_edilecek", v, json!({})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "transition_not_allowed");
        let r = reload(&admin, json!({
            "workflows/sales.yaml": edited("workflows/sales.yaml", "      - from: potansiyel\n        to: gorusuluyor\n", "      - from: potansiyel\n        to: gorusuluyor\n      - from: potansiyel\n        to: takip_edilecek\n"),
        })).await;
        assert_eq!(r.status(), StatusCode::OK);
        let applied: Value = r.json().await.unwrap();
        assert_eq!(applied["changed"], true);
        assert_eq!(applied["previous_version"], before.as_str());
        let after = applied["version"].as_str().unwrap().to_string();
        assert_ne!(after, before);
        assert_eq!(current_version(&admin).await, after);
        let (status, moved) = move_card(&admin, &card, "takip_edilecek", v, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        // The card and its timeline entry record the version they changed under.
        assert_eq!(scalar_text(&app.db, "SELECT definitions_version FROM cards WHERE id = $1", &card).await.as_deref(), Some(after.as_str()));
        assert_eq!(
            scalar_text(&app.db, "SELECT definitions_version FROM timeline_events WHERE card_id = $1 AND kind = 'stage_changed'", &card).await.as_deref(),
            Some(after.as_str())
        );
        // Both versions are stored with their content and can be read back and compared.
        let old: Value = admin.get(&format!("/api/admin/definitions/versions/{before}")).await.json().await.unwrap();
        let old_sales = old["files"].as_array().unwrap().iter().find(|f| f["path"] == "workflows/sales.yaml").unwrap();
        assert_eq!(old_sales["content"].as_str().unwrap(), shipped("workflows/sales.yaml"));
        let versions: Value = admin.get("/api/admin/definitions/versions").await.json().await.unwrap();
        let list = versions["activations"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["version"], after.as_str());
        assert_eq!(list[0]["origin"], "api");
        assert_eq!(versions["current"], after.as_str());
        let diff: Value = admin.get(&format!("/api/admin/definitions/diff?from={before}&to={after}")).await.json().await.unwrap();
        assert_eq!(diff["files"]["changed"], json!(["workflows/sales.yaml"]));
        let sales = diff["pipelines"].as_array().unwrap().iter().find(|p| p["id"] == "sales").expect("sales changed");
        let added = sales["transitions"].as_array().unwrap();
        assert_eq!(added.len(), 1);
        assert_eq!(added[0]["id"], "potansiyel→takip_edilecek");
        assert_eq!(added[0]["change"], "added");
        // The reload is audited (as is the start-up's own activation).
        let audit: Value = admin.get("/api/admin/audit?action=definitions.reloaded").await.json().await.unwrap();
        let by_api: Vec<&Value> = audit.as_array().unwrap().iter().filter(|e| e["details"]["origin"] == "api").collect();
        assert_eq!(by_api.len(), 1);
        assert_eq!(by_api[0]["actor_id"], admin.user_id.as_str());
        assert_eq!(by_api[0]["details"]["version"], after.as_str());
        // Reloading the same set again changes nothing.
        let r = admin.post("/api/admin/definitions/reload", json!({"files": files_of(&admin, &after).await})).await;
        let again: Value = r.json().await.unwrap();
        assert_eq!(again["changed"], false);
    }
}

async fn files_of(admin: &TestSession, version: &str) -> Value {
    let v: Value = admin
        .get(&format!("/api/admin/definitions/versions/{version}"))
        .await
        .json()
        .await
        .unwrap();
    let mut files = serde_json::Map::new();
    for f in v["files"].as_array().unwrap() {
        files.insert(f["path"].as_str().unwrap().into(), f["content"].clone());
    }
    Value::Object(files)
}

both_backends! {
    async fn a_stage_removal_is_refused_then_accepted_with_a_mapping_that_moves_the_cards(app) {
        let admin = app.login_as("admin").await;
        let (card, v) = new_card(&admin, "Kemal Öztürk", "0532 100 00 03").await;
        let (status, _) = move_card(&admin, &card, "gorusuluyor", v, json!({})).await;
        assert_eq!(status, StatusCode::OK);
        let (other, _) = new_card(&admin, "Sevgi Kılıç", "0532 100 00 04").await;
        let before = current_version(&admin).await;

        // Rename `gorusuluyor` to `gorusme` everywhere, without a mapping: refused.
        let sales = shipped("workflows/sales.yaml").replace("gorusuluyor", "gorusme");
        let reminders = shipped("workflows/reminders.yaml").replace("gorusuluyor", "gorusme");
        let r = reload(&admin, json!({"workflows/sales.yaml": sales, "workflows/reminders.yaml": reminders})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = r.json().await.unwrap();
        let text = body["diagnostics"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("workflows/sales.yaml:"), "{text}");
        assert!(text.contains("stage `gorusuluyor` of pipeline `sales` still holds 1 open card(s)"), "{text}");
        assert!(body["diagnostics"][0]["help"].as_str().unwrap().contains("renamed_from"));
        assert_eq!(current_version(&admin).await, before);
        assert_eq!(card_version(&admin, &card).await.0, "gorusuluyor");

        // With `renamed_from`, the card moves in the same transaction, with a timeline entry.
        let mapped = sales.replacen(
            "      - id: gorusme\n",
            "      - id: gorusme\n        renamed_from: [gorusuluyor]\n",
            1,
        );
        let r = reload(&admin, json!({"workflows/sales.yaml": mapped, "workflows/reminders.yaml": reminders})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let (status, body) = (StatusCode::OK, current_version(&admin).await);
        assert_eq!(status, StatusCode::OK);
        assert_ne!(body, before);
        let versions: Value = admin.get("/api/admin/definitions/versions").await.json().await.unwrap();
        assert_eq!(versions["activations"][0]["moved_cards"], 1);
        let (stage, version) = card_version(&admin, &card).await;
        assert_eq!(stage, "gorusme");
        assert_eq!(version, 3, "a migration is a change of the card");
        assert_eq!(card_version(&admin, &other).await.0, "potansiyel", "other cards stay");
        let timeline: Value = admin
            .get(&format!("/api/customers/{}/timeline", card_customer(&admin, &card).await))
            .await.json().await.unwrap();
        let migrated = timeline["events"].as_array().unwrap().iter().find(|e| e["kind"] == "stage_migrated").expect("timeline entry");
        assert_eq!(migrated["data"]["from"], "gorusuluyor");
        assert_eq!(migrated["data"]["to"], "gorusme");
        let open: Option<String> = akis_engine::read!(&app.db, pool => {
            sqlx::query_scalar("SELECT stage_id FROM card_stage_history WHERE card_id = $1 AND left_at IS NULL").bind(&card).fetch_optional(pool).await
        }).unwrap();
        assert_eq!(open.as_deref(), Some("gorusme"), "one open history row, in the new stage");
        // The board has the renamed column with the card in it, and moves work from there.
        let board: Value = admin.get("/api/pipelines/sales/board").await.json().await.unwrap();
        let column = board["columns"].as_array().unwrap().iter().find(|c| c["stage"]["id"] == "gorusme").unwrap();
        assert_eq!(column["count"], 1);
        let (status, body) = move_card(&admin, &card, "takip_edilecek", version, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // A removed stage can be merged into another with `stage_migrations`.
        let current = files_of(&admin, &current_version(&admin).await).await;
        let sales_now = current["workflows/sales.yaml"].as_str().unwrap().to_string();
        let without = remove_stage_takip(&sales_now);
        let r = reload(&admin, json!({"workflows/sales.yaml": without, "rules/outcomes.rhai": shipped("rules/outcomes.rhai").replace("takip_edilecek", "gorusme")})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "the card in takip_edilecek has nowhere to go");
        let with_map = without.replacen("    card:\n", "    stage_migrations:\n      - {from: takip_edilecek, to: gorusme}\n\n    card:\n", 1);
        let r = reload(&admin, json!({"workflows/sales.yaml": with_map, "rules/outcomes.rhai": shipped("rules/outcomes.rhai").replace("takip_edilecek", "gorusme")})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        assert_eq!(card_version(&admin, &card).await.0, "gorusme");
    }
}

/// The sales pipeline without the `takip_edilecek` stage and the transitions that name it.
fn remove_stage_takip(sales: &str) -> String {
    fn flush(item: &mut Vec<String>, out: &mut Vec<String>) {
        let text = item.join("\n");
        if !item.is_empty() && !text.contains("takip_edilecek") {
            out.push(text);
        }
        item.clear();
    }
    let mut out = Vec::new();
    let mut item: Vec<String> = Vec::new();
    for line in sales.lines() {
        if line.starts_with("      - ") {
            flush(&mut item, &mut out);
            item.push(line.to_string());
        } else if !item.is_empty() && line.starts_with("        ") {
            item.push(line.to_string());
        } else {
            flush(&mut item, &mut out);
            out.push(line.to_string());
        }
    }
    flush(&mut item, &mut out);
    out.join("\n") + "\n"
}

async fn card_customer(session: &TestSession, id: &str) -> String {
    let card: Value = session
        .get(&format!("/api/cards/{id}"))
        .await
        .json()
        .await
        .unwrap();
    card["customer_id"].as_str().unwrap().to_string()
}

both_backends! {
    async fn a_role_still_held_by_users_cannot_be_removed(app) {
        let admin = app.login_as("admin").await;
        let roles = shipped("workflows/roles.yaml");
        let with_intern = format!("{roles}\n  - id: stajyer\n    name: {{tr: Stajyer, en: Intern}}\n    scope: own\n    permissions:\n      customers: [view]\n");
        let r = reload(&admin, json!({"workflows/roles.yaml": with_intern})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        app.create_user("stajyer@test.local", "stajyer").await;
        let r = reload(&admin, json!({"workflows/roles.yaml": roles})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = r.json().await.unwrap();
        let text = body["diagnostics"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("workflows/roles.yaml:"), "{text}");
        assert!(text.contains("role `stajyer` is gone from the new definitions but 1 active user(s) still have it"), "{text}");
    }
}

/// Normalizes a job payload for comparison: event ids, effect keys and times differ
/// between two runs of the same move.
fn comparable_job(job: &Value) -> Value {
    let mut job = job.clone();
    if let Some(o) = job.as_object_mut() {
        for key in ["effect_key", "event_time", "base"] {
            o.remove(key);
        }
    }
    job
}

fn comparable_event(event: &Value) -> Value {
    let mut e = json!({"kind": event["kind"], "data": event["data"]});
    if let Some(d) = e["data"].as_object_mut() {
        // Ids made fresh by each run.
        d.remove("transition_event");
        d.remove("reminder_id");
    }
    e
}

both_backends! {
    async fn a_dry_run_writes_nothing_and_predicts_what_the_move_then_does(app) {
        let admin = app.login_as("admin").await;
        let (card, v) = new_card(&admin, "Zeynep Arslan", "0532 100 00 05").await;
        let (status, _) = move_card(&admin, &card, "gorusuluyor", v, json!({})).await;
        assert_eq!(status, StatusCode::OK);
        let fields = json!({"appointment_at": "2026-12-20T10:30:00+03:00"});

        // Refused: no appointment date.
        let r = admin.post("/api/admin/definitions/dry-run", json!({"card_id": card, "to": "randevu"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let refused: Value = r.json().await.unwrap();
        assert_eq!(refused["allowed"], false);
        assert!(matches!(refused["refusal"]["code"].as_str(), Some("missing_fields" | "guard_refused")), "{refused}");

        let before = row_counts(&app.db).await;
        let r = admin.post("/api/admin/definitions/dry-run", json!({"card_id": card, "to": "randevu", "fields": fields})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let predicted: Value = r.json().await.unwrap();
        assert_eq!(predicted["allowed"], true, "{predicted}");
        assert_eq!(predicted["card"]["stage_id"], "randevu");
        let jobs = predicted["jobs"].as_array().unwrap();
        assert_eq!(jobs.iter().map(|j| j["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["conversion_event", "whatsapp_template"]);
        assert_eq!(jobs[0]["payload"]["event_name"], "Schedule");
        assert_eq!(jobs[1]["payload"]["template"], "randevu_onayi");
        assert_eq!(jobs[1]["payload"]["body_parameters"][0], "Zeynep Arslan");
        assert_eq!(row_counts(&app.db).await, before, "a dry run writes nothing");

        // The real move does exactly what was predicted.
        let (_, version) = card_version(&admin, &card).await;
        let (status, moved) = move_card(&admin, &card, "randevu", version, fields.clone()).await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        let real_jobs: Vec<Value> = queued_payloads(&app.db, &moved).await;
        assert_eq!(
            real_jobs.iter().map(comparable_job).collect::<Vec<_>>(),
            jobs.iter().map(|j| comparable_job(&j["payload"])).collect::<Vec<_>>()
        );
        let timeline: Value = admin
            .get(&format!("/api/customers/{}/timeline", card_customer(&admin, &card).await))
            .await.json().await.unwrap();
        let mut real_events: Vec<Value> = timeline["events"].as_array().unwrap().iter()
            .take_while(|e| e["kind"] != "stage_changed" || e["data"]["to"] == "randevu")
            .map(comparable_event)
            .collect();
        real_events.reverse();
        let predicted_events: Vec<Value> = predicted["timeline"].as_array().unwrap().iter().map(comparable_event).collect();
        assert_eq!(real_events, predicted_events);

        // A candidate set can be simulated before it is applied.
        let r = admin.post("/api/admin/definitions/dry-run", json!({
            "card_id": card, "to": "kapora",
            "fields": {"deposit_amount": {"amount": "5000", "currency": "TRY"}},
            "definitions": {"changes": {"workflows/sales.yaml": edited(
                "workflows/sales.yaml",
                "          - notify: {to: [owners, {role: manager}], message: kapora_alindi}\n",
                "",
            )}},
        })).await;
        let candidate: Value = r.json().await.unwrap();
        assert_eq!(candidate["allowed"], true, "{candidate}");
        assert_ne!(candidate["definitions_version"], predicted["definitions_version"]);
        let kinds: Vec<&str> = candidate["jobs"].as_array().unwrap().iter().map(|j| j["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["conversion_event"], "the candidate has no notify");
        let r = admin.post("/api/admin/definitions/dry-run", json!({"card_id": "01900000-0000-7000-8000-000000000000", "to": "kapora"})).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}

/// The payloads of the jobs a move queued, read from the job tables.
async fn queued_payloads(db: &Db, moved: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for job in moved["jobs"].as_array().unwrap() {
        let id = job["job_id"].as_str().unwrap().to_string();
        let raw: Vec<u8> = match db {
            Db::Sqlite(s) => sqlx::query_scalar("SELECT job FROM Jobs WHERE id = $1")
                .bind(&id)
                .fetch_one(&s.reader)
                .await
                .expect("job"),
            Db::Postgres(p) => sqlx::query_scalar("SELECT job FROM apalis.jobs WHERE id = $1")
                .bind(&id)
                .fetch_one(p)
                .await
                .expect("job"),
        };
        let envelope: Value = serde_json::from_slice(&raw).expect("envelope");
        out.push(envelope["job"].clone());
    }
    out
}

// ---------------------------------------------------------------------------------------
// Several processes, the CLI and SIGHUP.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_postgres_both_serve_a_reload_made_through_one() {
    let Some(database) =
        crate::helpers::fresh_database(akis_engine::storage::Backend::Postgres).await
    else {
        return;
    };
    let url = database.url();
    let files = definitions_copy();
    let (_one, first) = serve(&url, files.path(), &["--no-workers"]).await;
    // The second node starts with STALE files (a transition the cluster does not have);
    // serving the stored version, it must not roll anything back.
    let stale = definitions_copy();
    std::fs::write(
        stale.path().join("workflows/sales.yaml"),
        edited(
            "workflows/sales.yaml",
            "  - id: sales\n    name: {tr: Satış, en: Sales}",
            "  - id: sales\n    name: {tr: Eski Satış, en: Old sales}",
        ),
    )
    .unwrap();
    let (_two, second) = serve(&url, stale.path(), &[]).await;
    let db = crate::helpers::open(&database).await;
    crate::helpers::create_user(&db, "admin@iki.test", "admin").await;
    let a = login_at(&first, "admin@iki.test").await;
    let b = login_at(&second, "admin@iki.test").await;
    let start = current_version(&a).await;
    assert_eq!(
        current_version(&b).await,
        start,
        "the stale node serves the stored version"
    );
    let pipelines: Value = b.get("/api/pipelines").await.json().await.unwrap();
    assert_eq!(pipelines[0]["name_tr"], "Satış");

    let (card, v) = new_card(&a, "Murat Demir", "0532 100 00 06").await;
    let r = reload(&a, json!({
        "workflows/sales.yaml": edited("workflows/sales.yaml", "      - from: potansiyel\n        to: gorusuluyor\n", "      - from: potansiyel\n        to: gorusuluyor\n      - from: potansiyel\n        to: takip_edilecek\n"),
    })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let new_version = r.json::<Value>().await.unwrap()["version"]
        .as_str()
        .unwrap()
        .to_string();
    eventually("the second node serves the new version", || {
        let b = &b;
        let new_version = new_version.clone();
        async move { current_version(b).await == new_version }
    })
    .await;
    // …and applies it: the move only the new set allows goes through on the second node.
    let (status, body) = move_card(&b, &card, "takip_edilecek", v, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_akis_reload_apply_the_local_files_and_refuse_broken_ones() {
    let database = crate::helpers::fresh_database(akis_engine::storage::Backend::Sqlite)
        .await
        .expect("sqlite");
    let url = database.url();
    let files = definitions_copy();
    let (server, base) = serve(&url, files.path(), &[]).await;
    let db = crate::helpers::open(&database).await;
    crate::helpers::create_user(&db, "admin@hup.test", "admin").await;
    let admin = login_at(&base, "admin@hup.test").await;
    let start = current_version(&admin).await;

    // A broken edit + SIGHUP: refused, the running version keeps serving.
    let sales = files.path().join("workflows/sales.yaml");
    let good = std::fs::read_to_string(&sales).unwrap();
    std::fs::write(&sales, good.replacen("to: gorusuluyor", "to: nowhere", 1)).unwrap();
    let output = akis_command()
        .args(["reload"])
        .arg(files.path())
        .env("AKIS_DATABASE_URL", &url)
        .output()
        .expect("akis reload runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("workflows/sales.yaml:") && stderr.contains("unknown stage `nowhere`"),
        "{stderr}"
    );
    assert_eq!(current_version(&admin).await, start);

    // A good edit through SIGHUP.
    std::fs::write(
        &sales,
        good.replacen(
            "name: {tr: Satış, en: Sales}",
            "name: {tr: Satış Ekibi, en: Sales team}",
            1,
        ),
    )
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    eventually("SIGHUP reloads", || {
        let admin = &admin;
        let start = start.clone();
        async move { current_version(admin).await != start }
    })
    .await;
    let pipelines: Value = admin.get("/api/pipelines").await.json().await.unwrap();
    assert_eq!(pipelines[0]["name_tr"], "Satış Ekibi");
    let versions: Value = admin
        .get("/api/admin/definitions/versions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(versions["activations"][0]["origin"], "signal");

    // `akis reload` with another good edit: the running server follows within seconds.
    std::fs::write(
        &sales,
        good.replacen(
            "name: {tr: Satış, en: Sales}",
            "name: {tr: Satış Birimi, en: Sales unit}",
            1,
        ),
    )
    .unwrap();
    let output = akis_command()
        .args(["reload"])
        .arg(files.path())
        .env("AKIS_DATABASE_URL", &url)
        .output()
        .expect("akis reload runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("is now in force"));
    eventually("the server picks up the CLI reload", || {
        let admin = &admin;
        async move {
            let p: Value = admin.get("/api/pipelines").await.json().await.unwrap();
            p[0]["name_tr"] == "Satış Birimi"
        }
    })
    .await;

    // `akis simulate` prints a dry run and writes nothing.
    let (card, _) = new_card(&admin, "Hakan Yurt", "0532 100 00 07").await;
    let before = row_counts(&db).await;
    let output = akis_command()
        .args(["simulate", "--card", &card, "--to", "gorusuluyor", "--json"])
        .env("AKIS_DATABASE_URL", &url)
        .output()
        .expect("akis simulate runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(result["allowed"], true);
    assert_eq!(result["timeline"][0]["kind"], "stage_changed");
    assert_eq!(row_counts(&db).await, before);
    let output = akis_command()
        .args(["simulate", "--card", &card, "--to", "kapora"])
        .env("AKIS_DATABASE_URL", &url)
        .output()
        .expect("akis simulate runs");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("REFUSED (transition_not_allowed)"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    db.close().await;
}

both_backends! {
    async fn a_node_that_missed_a_reload_cannot_move_a_card_with_the_old_definitions(app) {
        let admin = app.login_as("admin").await;
        let old = akis_engine::app::load_definitions(&app.config).expect("definitions");
        let (card, v) = new_card(&admin, "Canan Er", "0532 100 00 08").await;
        let r = reload(&admin, json!({
            "workflows/sales.yaml": edited("workflows/sales.yaml", "name: {tr: Satış, en: Sales}", "name: {tr: Satış 2, en: Sales 2}"),
        })).await;
        assert_eq!(r.status(), StatusCode::OK);
        // What a node still running the old set would do: refused inside the transaction,
        // so it can never write a card into a stage the reload ruled out.
        let command = akis_engine::crm::transition::MoveCommand {
            card: card.parse().unwrap(),
            to: "gorusuluyor".into(),
            expected_version: v,
            fields: Default::default(),
            by: None,
            locale: "en".into(),
        };
        let refused = akis_engine::crm::transition::move_card(&app.db, &old, command, |_| Ok(())).await.expect_err("stale definitions");
        assert!(akis_engine::runtime::is_definitions_changed(&refused), "{refused:?}");
        assert_eq!(card_version(&admin, &card).await, ("potansiyel".to_string(), v));
        // A node that catches up moves it.
        let (status, _) = move_card(&admin, &card, "gorusuluyor", v, json!({})).await;
        assert_eq!(status, StatusCode::OK);
    }
}
