//! Pipeline core: intake with de-duplication, customers, cards, moves with the outbox,
//! the timeline, the board, bulk operations and record visibility.

use akis_engine::crm::intake::{self, Lead};
use akis_engine::crm::transition::{self, MoveCommand};
use akis_engine::storage::Db;
use akis_engine::types::ids::{CardId, CustomerId};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestSession};

fn definitions(app: &TestApp) -> std::sync::Arc<akis_engine::definitions::Definitions> {
    akis_engine::app::load_definitions(&app.config).expect("definitions")
}

async fn lead(session: &TestSession, body: Value) -> Value {
    let r = session.post("/api/leads", body).await;
    let status = r.status();
    let body: Value = r.json().await.expect("json");
    assert!(status.is_success(), "lead refused: {status} {body}");
    body
}

async fn card(session: &TestSession, id: &str) -> Value {
    let r = session.get(&format!("/api/cards/{id}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn move_card(
    session: &TestSession,
    id: &str,
    to: &str,
    version: i64,
    fields: Value,
) -> reqwest::Response {
    session
        .post(
            &format!("/api/cards/{id}/move"),
            json!({"to": to, "expected_version": version, "fields": fields}),
        )
        .await
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    akis_engine::read!(db, pool => {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await
    })
    .expect("count")
}

async fn jobs_of(db: &Db, kind: &str) -> i64 {
    match db {
        Db::Sqlite(s) => sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE job_type = $1")
            .bind(kind)
            .fetch_one(&s.reader)
            .await
            .expect("count"),
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1")
                .bind(kind)
                .fetch_one(p)
                .await
                .expect("count")
        }
    }
}

async fn execute(db: &Db, sql: &'static str) {
    let mut tx = db.begin().await.expect("begin");
    akis_engine::exec!(&mut tx, conn => sqlx::raw_sql(sql).execute(conn).await.map(|_| ()))
        .expect("sql");
    tx.commit().await.expect("commit");
}

both_backends! {
    async fn turkish_phone_variants_are_one_customer(app) {
        let admin = app.login_as("admin").await;
        let variants = ["0532 123 45 67", "532 123 4567", "+90 (532) 123-45-67", "0090 532 123 45 67", "905321234567"];
        let first = lead(&admin, json!({"name": "Ayşe Yılmaz", "phone": variants[0], "source": "web_form"})).await;
        assert_eq!(first["matched"], false);
        assert_eq!(first["matched_by"], Value::Null);
        for v in &variants[1..] {
            let again = lead(&admin, json!({"name": "Ayşe Y.", "phone": v})).await;
            assert_eq!(again["customer_id"], first["customer_id"], "{v} is the same number");
            assert_eq!(again["card_id"], first["card_id"], "one card per customer per pipeline");
            assert_eq!(again["matched_by"], "phone");
        }
        // The email path: trimmed and lower-cased.
        let by_email = lead(&admin, json!({"name": "Ali Kaya", "email": " Ali.Kaya@Örnek.com "})).await;
        let again = lead(&admin, json!({"name": "Ali", "email": "ali.kaya@örnek.com", "phone": "0533 000 00 01"})).await;
        assert_eq!(again["customer_id"], by_email["customer_id"]);
        assert_eq!(again["matched_by"], "email");
        let customer: Value = admin.get(&format!("/api/customers/{}", first["customer_id"].as_str().unwrap())).await.json().await.unwrap();
        assert_eq!(customer["phones"][0]["e164"], "+905321234567");
        assert_eq!(customer["phones"][0]["raw"], "0532 123 45 67", "the raw input is kept");
        assert_eq!(customer["source"], "web_form", "first touch keeps its source");
        assert_eq!(customer["cards"].as_array().unwrap().len(), 1);
        // A matched lead's new email joins the customer.
        let ali: Value = admin.get(&format!("/api/customers/{}", by_email["customer_id"].as_str().unwrap())).await.json().await.unwrap();
        assert_eq!(ali["phones"][0]["e164"], "+905330000001");
        // Bad input: a clear 422 per field, nothing stored.
        let before = count(&app.db, "SELECT COUNT(*) FROM customers").await;
        let r = admin.post("/api/leads", json!({"name": "", "phone": "12", "email": "not-an-email"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err: Value = r.json().await.unwrap();
        assert!(err["fields"]["phone"].is_string() && err["fields"]["email"].is_string() && err["fields"]["name"].is_string(), "{err}");
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM customers").await, before);
    }
}

both_backends! {
    async fn concurrent_intake_of_one_new_phone_creates_one_customer(app) {
        let defs = definitions(&app);
        let formats = ["0542 765 43 21", "542 765 4321", "+90 542 765 43 21", "905427654321", "0090 542 765 43 21", "(0542) 765-43-21"];
        let mut tasks = Vec::new();
        for i in 0..12 {
            let db = app.db.clone();
            let defs = defs.clone();
            let phone = formats[i % formats.len()].to_string();
            tasks.push(tokio::spawn(async move {
                intake::intake(&db, &defs, Lead {
                    name: format!("Mehmet Öztürk {i}"),
                    phone: Some(phone),
                    source: Some("meta_lead_ad".into()),
                    ..Lead::default()
                })
                .await
            }));
        }
        let mut customers = std::collections::HashSet::new();
        let mut new = 0;
        for t in tasks {
            let outcome = t.await.expect("task").expect("intake succeeds");
            customers.insert(outcome.customer_id);
            if !outcome.matched {
                new += 1;
            }
        }
        assert_eq!(customers.len(), 1, "exactly one customer");
        assert_eq!(new, 1, "exactly one intake created it");
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM customers").await, 1);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM cards").await, 1);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM leads").await, 12, "every lead is recorded");
    }
}

both_backends! {
    async fn a_repeated_delivery_is_absorbed(app) {
        let admin = app.login_as("admin").await;
        let body = json!({"name": "Zeynep Ak", "phone": "0555 111 22 33", "external_id": "form-77"});
        let first = lead(&admin, body.clone()).await;
        let second = lead(&admin, body).await;
        assert_eq!(second["duplicate"], true);
        assert_eq!(second["customer_id"], first["customer_id"]);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM leads").await, 1);
    }
}

both_backends! {
    async fn two_concurrent_movers_one_wins(app) {
        let admin = app.login_as("admin").await;
        let manager = app.login_as("manager").await;
        let l = lead(&admin, json!({"name": "Can Demir", "phone": "0532 999 88 77"})).await;
        let id = l["card_id"].as_str().unwrap().to_string();
        let version = card(&admin, &id).await["version"].as_i64().unwrap();
        let (a, b) = tokio::join!(
            move_card(&admin, &id, "gorusuluyor", version, json!({})),
            move_card(&manager, &id, "uygun_degil", version, json!({"lost_reason": "butce"})),
        );
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "exactly one mover wins");
        let loser = if a.status() == StatusCode::CONFLICT { a } else { b };
        let err: Value = loser.json().await.unwrap();
        assert_eq!(err["code"], "stale_version");
        let now = card(&admin, &id).await;
        assert_eq!(now["version"], version + 1);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM timeline_events WHERE kind = 'stage_changed'").await, 1);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM card_stage_history").await, 2);
    }
}

both_backends! {
    async fn moves_check_transitions_fields_and_guards_in_the_users_language(app) {
        let admin = app.login_as("admin").await;
        let l = lead(&admin, json!({"name": "Elif Şahin", "phone": "0532 444 55 66"})).await;
        let id = l["card_id"].as_str().unwrap().to_string();
        // Not a declared transition.
        let r = move_card(&admin, &id, "kapora", 1, json!({})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "transition_not_allowed");
        let r = move_card(&admin, &id, "gorusuluyor", 1, json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let moved: Value = r.json().await.unwrap();
        assert_eq!(moved["card"]["stage_id"], "gorusuluyor");
        assert_eq!(moved["card"]["version"], 2);
        // Missing required fields are listed.
        let r = move_card(&admin, &id, "randevu", 2, json!({})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["code"], "missing_fields");
        assert!(err["fields"]["appointment_at"].is_string(), "{err}");
        // Invalid field values are refused per field.
        let r = move_card(&admin, &id, "randevu", 2, json!({"appointment_at": "yarın"})).await;
        assert!(r.json::<Value>().await.unwrap()["fields"]["appointment_at"].is_string());
        let r = move_card(&admin, &id, "randevu", 2, json!({"appointment_at": "2026-12-01T10:00:00+03:00"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        // The guard refuses a zero deposit: Turkish for a Turkish user…
        let r = move_card(&admin, &id, "kapora", 3, json!({"deposit_amount": 0})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["code"], "guard_refused");
        assert_eq!(err["message"], "Kapora tutarı sıfırdan büyük olmalı.");
        // …English for an English one.
        execute(&app.db, "UPDATE users SET locale = 'en'").await;
        let en = app.login(&admin_email(&app, &admin).await, crate::helpers::TEST_PASSWORD).await;
        let r = move_card(&en, &id, "kapora", 3, json!({"deposit_amount": "0"})).await;
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["message"], "The deposit amount must be greater than zero.");
        // Refusals changed nothing.
        assert_eq!(card(&admin, &id).await["version"], 3);
        let r = move_card(&en, &id, "kapora", 3, json!({"deposit_amount": "25.000,00"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let moved: Value = r.json().await.unwrap();
        assert_eq!(moved["card"]["fields"]["deposit_amount"], json!({"minor": 2500000, "currency": "TRY"}));
        assert!(moved["jobs"].as_array().unwrap().iter().any(|j| j["kind"] == "conversion_event" && j["job_id"].is_string()), "{moved}");
        // Stale version.
        let r = move_card(&admin, &id, "satis_tamamlandi", 3, json!({"sale_amount": 1})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
    }
}

async fn admin_email(app: &TestApp, session: &TestSession) -> String {
    let _ = app;
    let me: Value = session.get("/api/me").await.json().await.expect("json");
    me["user"]["email"]
        .as_str()
        .or_else(|| me["email"].as_str())
        .expect("email")
        .to_string()
}

both_backends! {
    async fn a_failed_move_leaves_no_orphan_job_history_or_event(app) {
        let admin = app.login_as("admin").await;
        app.login_as("manager").await;
        let l = lead(&admin, json!({"name": "Burak Aydın", "phone": "0532 777 66 55"})).await;
        let id = l["card_id"].as_str().unwrap().to_string();
        for (to, version, fields) in [
            ("gorusuluyor", 1, json!({})),
            ("randevu", 2, json!({"appointment_at": "2027-12-01T10:00:00Z"})),
            ("kapora", 3, json!({"deposit_amount": 1000})),
        ] {
            assert_eq!(move_card(&admin, &id, to, version, fields).await.status(), StatusCode::OK, "to {to}");
        }
        // Make the last write of the next move fail: the WhatsApp action is skipped (no
        // consent), and recording the skip happens after the notify and conversion jobs
        // were pushed on the same transaction.
        match app.db {
            Db::Sqlite(_) => execute(&app.db, "CREATE TRIGGER fail_skip BEFORE INSERT ON timeline_events WHEN NEW.kind = 'action_skipped' BEGIN SELECT RAISE(ABORT, 'injected failure'); END").await,
            Db::Postgres(_) => execute(&app.db, "CREATE FUNCTION fail_skip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; CREATE TRIGGER fail_skip BEFORE INSERT ON timeline_events FOR EACH ROW WHEN (NEW.kind = 'action_skipped') EXECUTE FUNCTION fail_skip()").await,
        }
        let events = count(&app.db, "SELECT COUNT(*) FROM timeline_events").await;
        let skipped = count(&app.db, "SELECT COUNT(*) FROM timeline_events WHERE kind = 'action_skipped'").await;
        let history = count(&app.db, "SELECT COUNT(*) FROM card_stage_history").await;
        let (notify, conversion) = (jobs_of(&app.db, "notify").await, jobs_of(&app.db, "conversion_event").await);
        let r = move_card(&admin, &id, "satis_tamamlandi", 4, json!({"sale_amount": 90000})).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let err: Value = r.json().await.unwrap();
        assert!(!err["message"].as_str().unwrap().contains("injected"), "internals never leak: {err}");
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM timeline_events").await, events);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM card_stage_history").await, history);
        assert_eq!(jobs_of(&app.db, "notify").await, notify, "no orphan notify job");
        assert_eq!(jobs_of(&app.db, "conversion_event").await, conversion, "no orphan conversion job");
        let now = card(&admin, &id).await;
        assert_eq!(now["stage_id"], "kapora");
        assert_eq!(now["version"], 4);
        // Without the fault the same move commits everything together.
        match app.db {
            Db::Sqlite(_) => execute(&app.db, "DROP TRIGGER fail_skip").await,
            Db::Postgres(_) => execute(&app.db, "DROP TRIGGER fail_skip ON timeline_events").await,
        }
        let r = move_card(&admin, &id, "satis_tamamlandi", 4, json!({"sale_amount": 90000})).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(jobs_of(&app.db, "notify").await, notify + 1);
        assert_eq!(jobs_of(&app.db, "conversion_event").await, conversion + 1);
        assert_eq!(jobs_of(&app.db, "create_work_order").await, 1);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM timeline_events WHERE kind = 'action_skipped'").await, skipped + 1);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM card_stage_history WHERE left_at IS NULL").await, 1);
    }
}

both_backends! {
    async fn any_sequence_of_moves_keeps_the_card_consistent(app) {
        use proptest::strategy::{Strategy, ValueTree};
        let defs = definitions(&app);
        let pipeline = defs.pipeline("sales").expect("sales pipeline");
        let stages: Vec<String> = pipeline.stages.iter().map(|s| s.id.as_str().to_string()).chain(["nowhere".to_string()]).collect();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = proptest::collection::vec(0..stages.len(), 1..14);
        let fields = json!({"appointment_at": "2026-12-01T10:00:00Z", "deposit_amount": 1000, "sale_amount": 5000, "lost_reason": "rakip"});
        for case in 0..8 {
            let seq = strategy.new_tree(&mut runner).expect("sequence").current();
            let outcome = intake::intake(&app.db, &defs, Lead {
                name: format!("Deneme {case}"),
                phone: Some(format!("0532 100 00 {:02}", case)),
                ..Lead::default()
            }).await.expect("intake");
            let card_id: CardId = outcome.card_id;
            let mut stage = pipeline.initial_stage().unwrap().id.as_str().to_string();
            let mut version = 1;
            for target in seq.iter().map(|i| stages[*i].clone()).collect::<Vec<String>>() {
                let allowed = pipeline.transition(&stage, &target).is_some();
                let result = transition::move_card(&app.db, &defs, MoveCommand {
                    card: card_id,
                    to: target.clone(),
                    expected_version: version,
                    fields: fields.as_object().unwrap().clone(),
                    by: None,
                    locale: "en".into(),
                }, |_| Ok(())).await;
                match result {
                    Ok(moved) => {
                        assert!(allowed, "{stage} → {target} is not declared but succeeded");
                        stage = target;
                        version = moved.card.version;
                    }
                    Err(e) => assert!(!allowed, "{stage} → {target} is declared but failed: {e}"),
                }
                let now = akis_engine::crm::cards::get(&app.db, card_id).await.unwrap().unwrap();
                assert!(pipeline.stage(&now.stage_id).is_some(), "the card is always in a declared stage");
                assert_eq!(now.stage_id, stage);
                assert_eq!(now.version, version);
            }
            let page = akis_engine::crm::timeline::list(&app.db, outcome.customer_id, &["stage_changed".to_string()], None, 1).await.unwrap();
            match page.events.first() {
                Some(last) => assert_eq!(last.data["to"], json!(stage), "the last stage change is the card's stage"),
                None => assert_eq!(stage, pipeline.initial_stage().unwrap().id.as_str()),
            }
            let open: Vec<String> = akis_engine::read!(&app.db, pool => {
                sqlx::query_scalar("SELECT stage_id FROM card_stage_history WHERE card_id = $1 AND left_at IS NULL")
                    .bind(card_id).fetch_all(pool).await
            }).unwrap();
            assert_eq!(open, vec![stage.clone()], "exactly one open stay, in the card's stage");
        }
    }
}

both_backends! {
    async fn a_sales_rep_sees_only_their_own_customers(app) {
        let admin = app.login_as("admin").await;
        let ayse = app.login_as("sales").await;
        let mehmet = app.login_as("sales").await;
        let own = lead(&ayse, json!({"name": "Selin Koç", "phone": "0532 200 00 01"})).await;
        let other = lead(&mehmet, json!({"name": "Oğuz Işık", "phone": "0532 200 00 02"})).await;
        let other_customer = other["customer_id"].as_str().unwrap();
        let other_card = other["card_id"].as_str().unwrap();
        // Read, edit, move: 404, as if it did not exist.
        assert_eq!(ayse.get(&format!("/api/customers/{other_customer}")).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(ayse.get(&format!("/api/customers/{other_customer}/timeline")).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(ayse.get(&format!("/api/cards/{other_card}")).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(move_card(&ayse, other_card, "gorusuluyor", 1, json!({})).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(ayse.patch(&format!("/api/customers/{other_customer}"), json!({"expected_version": 1, "name": "x"})).await.status(), StatusCode::NOT_FOUND);
        // Not in the list, the search or the board.
        let list: Value = ayse.get("/api/customers").await.json().await.unwrap();
        let ids: Vec<&str> = list["customers"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![own["customer_id"].as_str().unwrap()]);
        let search: Value = ayse.get("/api/customers?q=isik").await.json().await.unwrap();
        assert!(search["customers"].as_array().unwrap().is_empty());
        let board: Value = ayse.get("/api/pipelines/sales/board").await.json().await.unwrap();
        let total: i64 = board["columns"].as_array().unwrap().iter().map(|c| c["count"].as_i64().unwrap()).sum();
        assert_eq!(total, 1);
        let found = ayse.get("/api/pipelines/sales/board?q=Isik").await.json::<Value>().await.unwrap();
        assert!(found["columns"].as_array().unwrap().iter().all(|c| c["cards"].as_array().unwrap().is_empty()));
        // The admin sees both, and Turkish-aware search finds "Oğuz Işık" from "ISIK" or "oguz".
        for q in ["ISIK", "oguz", "Işık", "0532%20200%2000%2002", "5322000002"] {
            let found: Value = admin.get(&format!("/api/customers?q={q}")).await.json().await.unwrap();
            let ids: Vec<&str> = found["customers"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
            assert_eq!(ids, vec![other_customer], "search {q}");
        }
        // Bulk is permission-gated.
        let r = ayse.post("/api/cards/bulk-move", json!({"cards": [{"card_id": own["card_id"]}], "to": "gorusuluyor"})).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
}

both_backends! {
    async fn the_board_shows_the_declared_layout_with_filters_and_paging(app) {
        let admin = app.login_as("admin").await;
        let mut cards = Vec::new();
        for i in 0..7 {
            let source = if i % 2 == 0 { "meta_lead_ad" } else { "web_form" };
            let l = lead(&admin, json!({"name": format!("Müşteri {i}"), "phone": format!("0532 300 00 {i:02}"), "source": source, "utm_campaign": "kis-2026"})).await;
            cards.push(l);
        }
        // Created after the leads, so the assignment rule gave them nothing.
        let rep = app.login_as("sales").await;
        let rep_id = rep.user_id.clone();
        let board: Value = admin.get("/api/pipelines/sales/board?limit=3").await.json().await.unwrap();
        let columns = board["columns"].as_array().unwrap();
        let stage_ids: Vec<&str> = columns.iter().map(|c| c["stage"]["id"].as_str().unwrap()).collect();
        assert_eq!(stage_ids, ["potansiyel", "gorusuluyor", "takip_edilecek", "randevu", "kapora", "satis_tamamlandi", "uygun_degil"]);
        assert_eq!(columns[0]["count"], 7);
        let first = &columns[0]["cards"][0];
        let keys: Vec<&String> = first["fields"].as_object().unwrap().keys().collect();
        let mut expected = vec!["name", "phone", "owners", "source", "last_contact_at", "next_reminder_at", "appointment_at"];
        expected.sort();
        let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, expected, "exactly the declared card fields");
        // Column paging walks every card once.
        let mut seen: Vec<String> = columns[0]["cards"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
        let mut cursor = columns[0]["next_cursor"].as_str().map(str::to_string);
        while let Some(c) = cursor {
            let page: Value = admin.get(&format!("/api/pipelines/sales/board/potansiyel?limit=3&cursor={c}")).await.json().await.unwrap();
            seen.extend(page["cards"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()));
            cursor = page["next_cursor"].as_str().map(str::to_string);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 7);
        // Filters with several values, combined.
        let ids: Vec<CustomerId> = cards.iter().take(3).map(|c| c["customer_id"].as_str().unwrap().parse().unwrap()).collect();
        let r = admin.post("/api/customers/bulk-assign", json!({"customer_ids": ids, "add": [rep_id]})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = admin.post("/api/customers/bulk-tag", json!({"customer_ids": [ids[0]], "add": ["vip"]})).await;
        assert_eq!(r.json::<Value>().await.unwrap()["done"], 1);
        let filtered: Value = admin.get(&format!("/api/pipelines/sales/board?owners={rep_id}&sources=meta_lead_ad,whatsapp")).await.json().await.unwrap();
        assert_eq!(filtered["columns"][0]["count"], 2, "customers 0 and 2 are the rep's meta leads");
        let tagged: Value = admin.get("/api/pipelines/sales/board?tags=vip,none-such").await.json().await.unwrap();
        assert_eq!(tagged["columns"][0]["count"], 1);
        let campaign: Value = admin.get("/api/pipelines/sales/board?campaigns=kis-2026").await.json().await.unwrap();
        assert_eq!(campaign["columns"][0]["count"], 7);
        let owners = &filtered["columns"][0]["cards"][0]["fields"]["owners"];
        assert_eq!(owners[0]["id"], json!(rep_id));
        // The rep now sees exactly their three.
        let theirs: Value = rep.get("/api/pipelines/sales/board").await.json().await.unwrap();
        assert_eq!(theirs["columns"][0]["count"], 3);
        // An owner-restricted board is read in one pass; it pages exactly like a column.
        let two: Value = rep.get("/api/pipelines/sales/board?limit=2").await.json().await.unwrap();
        let column: Value = rep.get("/api/pipelines/sales/board/potansiyel?limit=2").await.json().await.unwrap();
        assert_eq!(two["columns"][0]["cards"], column["cards"]);
        assert_eq!(two["columns"][0]["next_cursor"], column["next_cursor"]);
        assert_eq!(two["columns"][0]["count"], 3);
        assert_eq!(two["columns"][1]["count"], 0);
        assert_eq!(two["columns"][1]["next_cursor"], Value::Null);
        let c = two["columns"][0]["next_cursor"].as_str().expect("a next page");
        let rest: Value = rep.get(&format!("/api/pipelines/sales/board/potansiyel?limit=2&cursor={c}")).await.json().await.unwrap();
        assert_eq!(rest["cards"].as_array().unwrap().len(), 1);
        assert_eq!(rest["next_cursor"], Value::Null);
        let all: Value = rep.get("/api/pipelines/sales/board?limit=3").await.json().await.unwrap();
        assert_eq!(all["columns"][0]["next_cursor"], Value::Null, "no next page when the column fits");
        // Bulk move: a result per item.
        let card_ids: Vec<Value> = cards.iter().take(2).map(|c| json!({"card_id": c["card_id"]})).collect::<Vec<_>>();
        let mut items = card_ids.clone();
        items.push(json!({"card_id": cards[2]["card_id"], "expected_version": 99}));
        let r: Value = admin.post("/api/cards/bulk-move", json!({"cards": items, "to": "gorusuluyor"})).await.json().await.unwrap();
        assert_eq!(r["done"], 2);
        assert_eq!(r["results"][2]["status"], "refused");
        assert_eq!(r["results"][2]["code"], "stale_version");
        let board: Value = admin.get("/api/pipelines/sales/board").await.json().await.unwrap();
        assert_eq!(board["columns"][1]["count"], 2);
        // A bad cursor or filter is a clear 400.
        assert_eq!(admin.get("/api/pipelines/sales/board/potansiyel?cursor=zz").await.status(), StatusCode::BAD_REQUEST);
        assert_eq!(admin.get("/api/pipelines/sales/board?owners=nobody").await.status(), StatusCode::BAD_REQUEST);
        assert_eq!(admin.get("/api/pipelines/nope/board").await.status(), StatusCode::NOT_FOUND);
    }
}

both_backends! {
    async fn customers_edit_with_versions_and_the_timeline_pages(app) {
        let admin = app.login_as("admin").await;
        let l = lead(&admin, json!({"name": "Deniz Arslan", "phone": "0532 500 00 01", "fields": {"budget": "3.500.000", "city": "İzmir"}})).await;
        let id = l["customer_id"].as_str().unwrap();
        let c: Value = admin.get(&format!("/api/customers/{id}")).await.json().await.unwrap();
        assert_eq!(c["fields"]["budget"], json!({"minor": 350000000, "currency": "TRY"}));
        assert!(c["emotional_score"].is_i64() && c["logical_score"].as_i64().unwrap() >= 55, "scored on intake: {c}");
        let v = c["version"].as_i64().unwrap();
        let r = admin.patch(&format!("/api/customers/{id}"), json!({"expected_version": v, "name": "Deniz Arslan Kaya", "fields": {"city": null, "interested_in": "villa"}, "tags": ["vip", " sıcak "]})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let c: Value = r.json().await.unwrap();
        assert_eq!(c["version"], v + 1);
        assert_eq!(c["tags"], json!(["sıcak", "vip"]));
        assert!(c["fields"].get("city").is_none());
        let r = admin.patch(&format!("/api/customers/{id}"), json!({"expected_version": v, "name": "Eski"})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = admin.patch(&format!("/api/customers/{id}"), json!({"expected_version": v + 1, "fields": {"interested_in": "castle"}})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        // A returning lead after the sale re-opens the card (pipeline's on_return).
        let card_id = l["card_id"].as_str().unwrap();
        let fields = json!({"appointment_at": "2026-12-01T10:00:00Z", "deposit_amount": 1000, "sale_amount": 5000});
        for (to, version) in [("gorusuluyor", 1), ("randevu", 2), ("kapora", 3), ("satis_tamamlandi", 4)] {
            assert_eq!(move_card(&admin, card_id, to, version, fields.clone()).await.status(), StatusCode::OK);
        }
        let again = lead(&admin, json!({"name": "Deniz", "phone": "+90 532 500 00 01", "source": "web_form", "utm_campaign": "bahar"})).await;
        assert_eq!(again["card_id"], l["card_id"]);
        assert_eq!(card(&admin, card_id).await["stage_id"], "gorusuluyor");
        let c: Value = admin.get(&format!("/api/customers/{id}")).await.json().await.unwrap();
        assert_eq!(c["last_touch"]["utm_campaign"], "bahar");
        assert_eq!(c["first_touch"]["source"], "manual");
        // The timeline, newest first, filtered and paged.
        let all: Value = admin.get(&format!("/api/customers/{id}/timeline?limit=3")).await.json().await.unwrap();
        assert_eq!(all["events"][0]["kind"], "reapplied");
        assert_eq!(all["events"][1]["kind"], "stage_changed");
        assert_eq!(all["events"][1]["data"]["reason"], "reapplied");
        assert_eq!(all["events"][2]["kind"], "lead");
        assert!(all["next_before"].is_string());
        let stage: Value = admin.get(&format!("/api/customers/{id}/timeline?kinds=stage_changed")).await.json().await.unwrap();
        let tos: Vec<&str> = stage["events"].as_array().unwrap().iter().map(|e| e["data"]["to"].as_str().unwrap()).collect();
        assert_eq!(tos, ["gorusuluyor", "satis_tamamlandi", "kapora", "randevu", "gorusuluyor"]);
        let mut before = None::<String>;
        let mut total = 0;
        loop {
            let path = match &before { Some(b) => format!("/api/customers/{id}/timeline?limit=2&before={b}"), None => format!("/api/customers/{id}/timeline?limit=2") };
            let page: Value = admin.get(&path).await.json().await.unwrap();
            total += page["events"].as_array().unwrap().len();
            match page["next_before"].as_str() { Some(b) => before = Some(b.to_string()), None => break }
        }
        assert_eq!(total as i64, count(&app.db, "SELECT COUNT(*) FROM timeline_events").await);
        // Timeline events are append-only.
        let denied = {
            let mut tx = app.db.begin().await.unwrap();
            akis_engine::exec!(&mut tx, conn => sqlx::query("DELETE FROM timeline_events").execute(conn).await.map(|_| ()))
        };
        assert!(denied.is_err());
    }
}

both_backends! {
    async fn offboarding_hands_customers_over_with_a_timeline_entry(app) {
        let admin = app.login_as("admin").await;
        let leaving = app.login_as("sales").await;
        let staying = app.login_as("sales").await;
        for i in 0..3 {
            lead(&leaving, json!({"name": format!("Devredilen {i}"), "phone": format!("0532 600 00 {i:02}")})).await;
        }
        let preview: Value = admin.get(&format!("/api/admin/users/{}/offboarding?to_user={}", leaving.user_id, staying.user_id)).await.json().await.unwrap();
        let customers = preview["records"].as_array().unwrap().iter().find(|r| r["kind"] == "customers").cloned().unwrap_or(Value::Null);
        assert!(customers["count"].as_i64().unwrap() >= 3, "{preview}");
        let r = admin.post(&format!("/api/admin/users/{}/offboard", leaving.user_id), json!({"to_user": staying.user_id})).await;
        assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
        let theirs: Value = staying.get("/api/customers").await.json().await.unwrap();
        let names: Vec<&str> = theirs["customers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert!(names.iter().filter(|n| n.starts_with("Devredilen")).count() == 3, "{names:?}");
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM timeline_events WHERE kind = 'owners_changed'").await, 3);
    }
}

/// Copies the shipped definitions to a temporary folder with `guards.rhai` replaced.
fn definitions_with_guards(guards: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = crate::helpers::repo_root();
    for folder in ["workflows", "rules", "templates"] {
        copy_tree(&root.join(folder), &dir.path().join(folder));
    }
    std::fs::write(dir.path().join("rules/guards.rhai"), guards).expect("write guards");
    dir
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

both_backends! {
    async fn a_looping_guard_is_cut_off_and_the_server_keeps_answering(app) {
        // Stop the default app and start one whose Kapora guard never returns.
        let backend = app.backend;
        app.stop().await;
        let defs = definitions_with_guards(
            "fn randevu_icin_tarih_gerekli(ctx) { allow() }\n\
             fn kapora_tutari_gerekli(ctx) { let x = 0; loop { x += 1; } }\n",
        );
        let Some(database) = crate::helpers::fresh_database(backend).await else { return };
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::helpers::test_config(&database, data_dir.path());
        config.definitions = defs.path().to_path_buf();
        let app = crate::helpers::spawn_with(config, database).await;
        let admin = app.login_as("admin").await;
        let l = lead(&admin, json!({"name": "Sonsuz Döngü", "phone": "0532 800 00 01"})).await;
        let id = l["card_id"].as_str().unwrap().to_string();
        for (to, version, fields) in [("gorusuluyor", 1, json!({})), ("randevu", 2, json!({"appointment_at": "2026-12-01T10:00:00Z"}))] {
            assert_eq!(move_card(&admin, &id, to, version, fields).await.status(), StatusCode::OK);
        }
        // Several looping moves at once, while other requests keep being served.
        let started = std::time::Instant::now();
        let moves = futures::future::join_all((0..4).map(|_| move_card(&admin, &id, "kapora", 3, json!({"deposit_amount": 100}))));
        let others = async {
            let mut slowest = std::time::Duration::ZERO;
            for _ in 0..10 {
                let t = std::time::Instant::now();
                assert_eq!(admin.get("/api/pipelines").await.status(), StatusCode::OK);
                slowest = slowest.max(t.elapsed());
            }
            slowest
        };
        let (responses, slowest) = tokio::join!(moves, others);
        for r in responses {
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let err: Value = r.json().await.unwrap();
            assert_eq!(err["code"], "guard_failed", "{err}");
            assert!(err["message"].as_str().unwrap().contains("guards.rhai#kapora_tutari_gerekli"), "{err}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "rule deadline enforced: {:?}", started.elapsed());
        assert!(slowest < std::time::Duration::from_secs(2), "other requests kept flowing: {slowest:?}");
        assert_eq!(card(&admin, &id).await["stage_id"], "randevu");
    }
}

both_backends! {
    async fn notifications_reach_only_their_user_in_their_language(app) {
        let rep = app.login_as("sales").await;
        let other = app.login_as("manager").await;
        let admin = app.login_as("admin").await;
        execute(&app.db, "UPDATE users SET locale = 'en' WHERE role = 'manager'").await;
        let system = akis_worker::start(app.db.clone(), &app.config, app.definitions.clone()).await.expect("workers");
        // The only sales rep gets the new lead by the assignment rule: a `yeni_lead` job.
        lead(&admin, json!({"name": "Hakan Ateş", "phone": "0532 900 00 01", "source": "web_form"})).await;
        let mut unread = 0;
        for _ in 0..100 {
            let count: Value = rep.get("/api/notifications/unread-count").await.json().await.unwrap();
            unread = count["unread"].as_i64().unwrap();
            if unread > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(unread, 1);
        let list: Value = rep.get("/api/notifications").await.json().await.unwrap();
        let body = list[0]["body"].as_str().unwrap();
        assert!(body.contains("Hakan Ateş") && body.contains("atandı"), "Turkish for a Turkish user: {body}");
        let id = list[0]["id"].as_str().unwrap().to_string();
        // Nobody else sees it or can mark it.
        let theirs: Value = other.get("/api/notifications").await.json().await.unwrap();
        assert!(theirs.as_array().unwrap().is_empty());
        assert_eq!(other.post(&format!("/api/notifications/{id}/read"), json!({})).await.status(), StatusCode::NOT_FOUND);
        let r: Value = rep.post(&format!("/api/notifications/{id}/read"), json!({})).await.json().await.unwrap();
        assert_eq!(r["unread"], 0);
        // A transition's notify action reaches owners and managers, each in their language.
        let card_id = {
            let list: Value = admin.get("/api/customers?q=hakan").await.json().await.unwrap();
            let customer: Value = admin.get(&format!("/api/customers/{}", list["customers"][0]["id"].as_str().unwrap())).await.json().await.unwrap();
            customer["cards"][0]["id"].as_str().unwrap().to_string()
        };
        for (to, version, fields) in [
            ("gorusuluyor", 1, json!({})),
            ("randevu", 2, json!({"appointment_at": "2027-12-01T10:00:00Z"})),
            ("kapora", 3, json!({"deposit_amount": 1000})),
        ] {
            assert_eq!(move_card(&admin, &card_id, to, version, fields).await.status(), StatusCode::OK);
        }
        let mut manager_list = Value::Null;
        for _ in 0..100 {
            manager_list = other.get("/api/notifications?unread=true").await.json().await.unwrap();
            if !manager_list.as_array().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(manager_list[0]["kind"], "kapora_alindi");
        let body = manager_list[0]["body"].as_str().unwrap();
        assert!(body.starts_with("A deposit of 1000.00 TRY was received for Hakan Ateş (Test admin)"), "English for an English user: {body}");
        let all: Value = other.post("/api/notifications/read-all", json!({})).await.json().await.unwrap();
        assert_eq!(all["unread"], 0);
        system.shutdown(std::time::Duration::from_secs(5)).await;
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM notifications").await, 3, "one per recipient, never twice");
    }
}

both_backends! {
    async fn outcomes_move_cards_through_rules_and_calls_touch_contact(app) {
        let admin = app.login_as("admin").await;
        let l = lead(&admin, json!({"name": "Gelmeyen Müşteri", "phone": "0532 700 00 01"})).await;
        let customer = l["customer_id"].as_str().unwrap().to_string();
        let card_id = l["card_id"].as_str().unwrap().to_string();
        // A call without an answer is not contact; an answered one is.
        let r = admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "arama", "outcome": "no_answer", "note": "Açmadı"})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let closed: Value = r.json().await.unwrap();
        assert_eq!(closed["activity"]["status"], "closed");
        let c: Value = admin.get(&format!("/api/customers/{customer}")).await.json().await.unwrap();
        assert_eq!(c["last_contact_at"], Value::Null);
        admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "arama", "outcome": "answered"})).await;
        let c: Value = admin.get(&format!("/api/customers/{customer}")).await.json().await.unwrap();
        assert!(c["last_contact_at"].is_string());
        // A wrong number on a new lead: the rule wants Uygun Değil, but that stage needs a
        // reason, so the move is refused and recorded, and the card stays.
        let closed: Value = admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "arama", "outcome": "wrong_number"})).await.json().await.unwrap();
        assert_eq!(closed["moved_to"], Value::Null);
        assert!(closed["move_refused"].is_string(), "{closed}");
        assert_eq!(card(&admin, &card_id).await["stage_id"], "potansiyel");
        // No-show at an appointment: back to follow-up through a declared transition.
        for (to, version, fields) in [("gorusuluyor", 1, json!({})), ("randevu", 2, json!({"appointment_at": "2026-12-01T10:00:00Z"}))] {
            assert_eq!(move_card(&admin, &card_id, to, version, fields).await.status(), StatusCode::OK);
        }
        let opened: Value = admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "randevu", "card_id": card_id})).await.json().await.unwrap();
        assert_eq!(opened["status"], "open");
        let activity = opened["id"].as_str().unwrap();
        let r = admin.post(&format!("/api/activities/{activity}/close"), json!({"outcome": "uydurma"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let closed: Value = admin.post(&format!("/api/activities/{activity}/close"), json!({"outcome": "gelmedi", "expected_version": 1})).await.json().await.unwrap();
        assert_eq!(closed["moved_to"], "takip_edilecek", "{closed}");
        assert_eq!(card(&admin, &card_id).await["stage_id"], "takip_edilecek");
        assert_eq!(jobs_of(&app.db, "follow_up").await, 1, "the transition's follow-up was queued");
        assert_eq!(closed["jobs"][0]["kind"], "notify", "the outcome's own action: {closed}");
        let again = admin.post(&format!("/api/activities/{activity}/close"), json!({"outcome": "geldi"})).await;
        assert_eq!(again.status(), StatusCode::CONFLICT);
        let events: Value = admin.get(&format!("/api/customers/{customer}/timeline?kinds=activity_closed,outcome_move_refused,note")).await.json().await.unwrap();
        let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["activity_closed", "outcome_move_refused", "activity_closed", "activity_closed", "activity_closed"]);
        // Notes.
        assert_eq!(admin.post(&format!("/api/customers/{customer}/notes"), json!({"body": "  "})).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(admin.post(&format!("/api/customers/{customer}/notes"), json!({"body": "Eşiyle birlikte gelecek."})).await.status(), StatusCode::CREATED);
        let notes: Value = admin.get(&format!("/api/customers/{customer}/timeline?kinds=note")).await.json().await.unwrap();
        assert_eq!(notes["events"][0]["data"]["body"], "Eşiyle birlikte gelecek.");
    }
}

both_backends! {
    async fn appointments_keep_their_reschedule_history(app) {
        let admin = app.login_as("admin").await;
        let l = lead(&admin, json!({"name": "Randevulu Müşteri", "phone": "0532 710 00 01"})).await;
        // Created after the lead, so the assignment rule did not give it to them.
        let rep = app.login_as("sales").await;
        let customer = l["customer_id"].as_str().unwrap().to_string();
        let r = admin.post(&format!("/api/customers/{customer}/appointments"), json!({"place": "Ofis"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "a start time is required");
        let r = admin.post(&format!("/api/customers/{customer}/appointments"), json!({"starts_at": "2026-12-02T10:00:00+03:00", "ends_at": "2026-12-02T09:00:00+03:00"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "ends before it starts");
        let r = admin.post(&format!("/api/customers/{customer}/appointments"), json!({"starts_at": "2026-12-02T10:00:00+03:00", "place": "Satış ofisi", "card_id": l["card_id"]})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let a: Value = r.json().await.unwrap();
        assert_eq!(a["status"], "planned");
        assert_eq!(a["starts_at"], "2026-12-02T07:00:00Z");
        let id = a["id"].as_str().unwrap();
        let r = admin.patch(&format!("/api/appointments/{id}"), json!({"expected_version": 1, "starts_at": "2026-12-03T14:00:00+03:00"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = admin.patch(&format!("/api/appointments/{id}"), json!({"expected_version": 1, "status": "done"})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = admin.patch(&format!("/api/appointments/{id}"), json!({"expected_version": 2, "status": "gone"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = admin.patch(&format!("/api/appointments/{id}"), json!({"expected_version": 2, "status": "done", "place": null})).await;
        let done: Value = r.json().await.unwrap();
        assert_eq!(done["status"], "done");
        assert_eq!(done["place"], Value::Null);
        let events: Value = admin.get(&format!("/api/customers/{customer}/timeline?kinds=appointment_created,appointment_rescheduled,appointment_status")).await.json().await.unwrap();
        let e = events["events"].as_array().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1]["kind"], "appointment_rescheduled");
        assert_eq!(e[1]["data"]["from"], "2026-12-02T07:00:00Z");
        assert_eq!(e[1]["data"]["to"], "2026-12-03T11:00:00Z");
        let c: Value = admin.get(&format!("/api/customers/{customer}")).await.json().await.unwrap();
        assert!(c["last_contact_at"].is_string(), "a held appointment is contact");
        // The agenda: the admin sees it, a rep who does not own the customer does not.
        let agenda: Value = admin.get("/api/agenda?from=2026-12-01T00:00:00Z&to=2026-12-08T00:00:00Z").await.json().await.unwrap();
        assert_eq!(agenda["appointments"].as_array().unwrap().len(), 1);
        let theirs: Value = rep.get("/api/agenda?from=2026-12-01T00:00:00Z&to=2026-12-08T00:00:00Z").await.json().await.unwrap();
        assert!(theirs["appointments"].as_array().unwrap().is_empty());
        assert_eq!(rep.get(&format!("/api/customers/{customer}/appointments")).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(rep.patch(&format!("/api/appointments/{id}"), json!({"expected_version": 3, "status": "cancelled"})).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(admin.get("/api/agenda?from=2026-12-01T00:00:00Z&to=2027-12-01T00:00:00Z").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

both_backends! {
    async fn a_merge_moves_everything_and_keeps_one_card_per_pipeline(app) {
        let admin = app.login_as("admin").await;
        let a = lead(&admin, json!({"name": "Seda Yurt", "phone": "0532 720 00 01", "source": "web_form", "fields": {"city": "Bursa"}})).await;
        let b = lead(&admin, json!({"name": "Seda Yurt (2)", "phone": "0533 720 00 02", "email": "seda@ornek.com", "source": "meta_lead_ad", "fields": {"budget": 1000000}})).await;
        let (survivor, other) = (a["customer_id"].as_str().unwrap(), b["customer_id"].as_str().unwrap());
        // Some history on the absorbed one.
        assert_eq!(move_card(&admin, b["card_id"].as_str().unwrap(), "gorusuluyor", 1, json!({})).await.status(), StatusCode::OK);
        admin.post(&format!("/api/customers/{other}/notes"), json!({"body": "İkinci kayıt"})).await;
        admin.post(&format!("/api/customers/{other}/appointments"), json!({"starts_at": "2026-12-05T10:00:00Z"})).await;
        admin.post("/api/customers/bulk-tag", json!({"customer_ids": [other], "add": ["yatırımcı"]})).await;
        let version = |c: &Value| c["version"].as_i64().unwrap();
        let sa: Value = admin.get(&format!("/api/customers/{survivor}")).await.json().await.unwrap();
        let sb: Value = admin.get(&format!("/api/customers/{other}")).await.json().await.unwrap();
        let events_before = count(&app.db, "SELECT COUNT(*) FROM timeline_events").await;
        // Stale versions and self-merges are refused.
        let r = admin.post(&format!("/api/customers/{survivor}/merge"), json!({"other_id": other, "expected_version": version(&sa) - 1, "other_expected_version": version(&sb)})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = admin.post(&format!("/api/customers/{survivor}/merge"), json!({"other_id": survivor, "expected_version": version(&sa), "other_expected_version": version(&sa)})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = admin.post(&format!("/api/customers/{survivor}/merge"), json!({"other_id": other, "expected_version": version(&sa), "other_expected_version": version(&sb)})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let report: Value = r.json().await.unwrap();
        assert_eq!(report["cards_closed"].as_array().unwrap().len(), 1, "{report}");
        let merged: Value = admin.get(&format!("/api/customers/{survivor}")).await.json().await.unwrap();
        let phones: Vec<&str> = merged["phones"].as_array().unwrap().iter().map(|p| p["e164"].as_str().unwrap()).collect();
        assert_eq!(phones, ["+905327200001", "+905337200002"]);
        assert_eq!(merged["emails"], json!(["seda@ornek.com"]));
        assert_eq!(merged["tags"], json!(["yatırımcı"]));
        assert_eq!(merged["fields"]["city"], "Bursa");
        assert_eq!(merged["fields"]["budget"]["minor"], 100000000);
        let cards = merged["cards"].as_array().unwrap();
        assert_eq!(cards.len(), 2);
        assert_eq!(cards.iter().filter(|c| c["closed_at"].is_null()).count(), 1, "one open card per pipeline");
        // Everything re-attached; nothing rewritten or lost.
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM timeline_events").await, events_before + 2, "a card-closed note and the merge event");
        let timeline: Value = admin.get(&format!("/api/customers/{survivor}/timeline?limit=200")).await.json().await.unwrap();
        let kinds: Vec<&str> = timeline["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds[0], "merged");
        assert!(kinds.contains(&"note") && kinds.contains(&"appointment_created") && kinds.contains(&"card_closed"));
        assert_eq!(timeline["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "lead").count(), 2);
        let appointments: Value = admin.get(&format!("/api/customers/{survivor}/appointments")).await.json().await.unwrap();
        assert_eq!(appointments.as_array().unwrap().len(), 1);
        // The absorbed one is a tombstone: hidden from lists, pointing at the survivor.
        let gone: Value = admin.get(&format!("/api/customers/{other}")).await.json().await.unwrap();
        assert_eq!(gone["merged_into"], json!(survivor));
        let list: Value = admin.get("/api/customers?q=seda").await.json().await.unwrap();
        let ids: Vec<&str> = list["customers"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [survivor]);
        // New leads with either phone reach the survivor; the board counts one card.
        let again = lead(&admin, json!({"name": "Seda", "phone": "0533 720 00 02"})).await;
        assert_eq!(again["customer_id"], json!(survivor));
        let board: Value = admin.get("/api/pipelines/sales/board?q=seda").await.json().await.unwrap();
        let total: i64 = board["columns"].as_array().unwrap().iter().map(|c| c["count"].as_i64().unwrap()).sum();
        assert_eq!(total, 1);
        let closed = report["cards_closed"][0].as_str().unwrap();
        let r = move_card(&admin, closed, "takip_edilecek", 3, json!({})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

both_backends! {
    async fn a_mention_in_a_note_notifies_only_users_who_may_see_the_customer(app) {
        let admin = app.login_as("admin").await;
        let owner = app.login_as("sales").await;
        let l = lead(&admin, json!({"name": "Bahsi Geçen", "phone": "0532 730 00 01"})).await;
        // Created after the lead, so they do not own it.
        let outsider = app.login_as("sales").await;
        let manager = app.login_as("manager").await;
        let (o, x, m) = (local_part(&owner).await, local_part(&outsider).await, local_part(&manager).await);
        let customer = l["customer_id"].as_str().unwrap();
        let body = format!("@{o} lütfen yarın ara; @{x} ve @{m}, bilginiz olsun. @kimse-yok");
        assert_eq!(admin.post(&format!("/api/customers/{customer}/notes"), json!({"body": body})).await.status(), StatusCode::CREATED);
        assert_eq!(mentions(&owner).await, 1, "the owner is told");
        assert_eq!(mentions(&manager).await, 1, "a manager sees every customer");
        assert_eq!(mentions(&outsider).await, 0, "a rep who cannot see the customer is not told about it");
        let n: Value = owner.get("/api/notifications").await.json().await.unwrap();
        assert!(n[0]["body"].as_str().unwrap().contains("Bahsi Geçen"), "{n}");
    }
}

async fn local_part(s: &TestSession) -> String {
    let me: Value = s.get("/api/me").await.json().await.unwrap();
    let email = me["user"]["email"]
        .as_str()
        .or_else(|| me["email"].as_str())
        .unwrap()
        .to_string();
    email.split('@').next().unwrap().to_string()
}

async fn mentions(s: &TestSession) -> usize {
    let n: Value = s.get("/api/notifications").await.json().await.unwrap();
    n.as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "bahsedildi")
        .count()
}
