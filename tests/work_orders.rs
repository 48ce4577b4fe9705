//! Work orders: steps in dependency order, required fields and files, effects once,
//! concurrent completion, the pipeline → work order path, versions kept across reloads,
//! visibility and offboarding.

use std::time::Duration;

use akis_engine::storage::Db;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestSession, eventually};

async fn lead(admin: &TestSession, name: &str, phone: &str) -> (String, String) {
    let r = admin
        .post(
            "/api/leads",
            json!({"name": name, "phone": phone, "source": "web_form"}),
        )
        .await;
    assert!(r.status().is_success(), "lead: {}", r.status());
    let body: Value = r.json().await.unwrap();
    (
        body["card_id"].as_str().unwrap().to_string(),
        body["customer_id"].as_str().unwrap().to_string(),
    )
}

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

async fn attach(session: &TestSession, order: &str, slot: &str, name: &str) {
    let form = Form::new().text("folder", slot.to_string()).part(
        "file",
        Part::bytes(format!("{}{slot}", String::from_utf8_lossy(PDF)).into_bytes())
            .file_name(name.to_string())
            .mime_str("application/pdf")
            .unwrap(),
    );
    let r = session
        .client
        .post(session.url(&format!("/api/work-orders/{order}/files")))
        .header("x-csrf-token", &session.csrf)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
}

async fn open_order(session: &TestSession, customer: &str) -> Value {
    let r = session
        .post(
            "/api/work-orders",
            json!({"definition": "teslimat_kurulum", "customer_id": customer}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    r.json().await.unwrap()
}

async fn complete(
    session: &TestSession,
    order: &Value,
    step: &str,
    fields: Value,
) -> reqwest::Response {
    session
        .post(
            &format!(
                "/api/work-orders/{}/steps/{step}/complete",
                order["id"].as_str().unwrap()
            ),
            json!({"expected_version": order["version"], "fields": fields}),
        )
        .await
}

fn step<'a>(order: &'a Value, id: &str) -> &'a Value {
    order["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == id)
        .unwrap()
}

async fn notify_jobs(db: &Db, order: &str) -> i64 {
    let pattern = format!("%wo:{order}:%");
    let live: i64 = match db {
        Db::Sqlite(s) => sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE job_type = 'notify' AND CAST(job AS TEXT) LIKE $1")
            .bind(&pattern).fetch_one(&s.reader).await.expect("count"),
        Db::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = 'notify' AND convert_from(job, 'UTF8') LIKE $1")
            .bind(&pattern).fetch_one(p).await.expect("count"),
    };
    live
}

both_backends! {
    async fn steps_go_in_dependency_order_with_their_fields_and_files_and_effects_run_once(app) {
        let admin = app.login_as("admin").await;
        // The order's completion notifies the owners and the managers.
        let _manager = app.login_as("manager").await;
        let (_, customer) = lead(&admin, "Ece Yurt", "0532 600 00 01").await;
        let order = open_order(&admin, &customer).await;
        let id = order["id"].as_str().unwrap().to_string();
        assert_eq!(order["status"], "open");
        assert_eq!(order["name"], "Teslimat ve Kurulum");
        assert_eq!(order["steps"].as_array().unwrap().len(), 6);
        assert_eq!(step(&order, "sozlesme")["status"], "ready");
        assert!(step(&order, "sozlesme")["due_at"].is_string(), "due from creation");
        assert_eq!(step(&order, "odeme_kontrolu")["status"], "waiting");

        // Out of order: refused, naming what comes first (in Turkish for a Turkish user).
        let r = complete(&admin, &order, "odeme_kontrolu", json!({"odeme_referansi": "X"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "step_not_ready");
        assert!(body["message"].as_str().unwrap().contains("Sözleşme imzası"), "{body}");
        // The contract needs its file.
        let r = complete(&admin, &order, "sozlesme", json!({})).await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "required_files", "{body}");
        assert!(body["fields"]["sozlesme"].is_string());
        attach(&admin, &id, "sozlesme", "imzali-sozlesme.pdf").await;
        let r = complete(&admin, &order, "sozlesme", json!({})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["status"], "in_progress");
        assert_eq!(step(&order, "sozlesme")["status"], "done");
        assert_eq!(step(&order, "sozlesme")["done_by"], admin.user_id.as_str());
        assert_eq!(step(&order, "odeme_kontrolu")["status"], "ready");
        assert!(step(&order, "odeme_kontrolu")["due_at"].is_string());
        // A stale version is a conflict.
        let r = admin.post(&format!("/api/work-orders/{id}/steps/odeme_kontrolu/complete"), json!({"expected_version": 1, "fields": {"odeme_referansi": "X"}})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        // Required fields.
        let r = complete(&admin, &order, "odeme_kontrolu", json!({"odeme_referansi": "  "})).await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "required_fields");
        assert!(body["fields"]["odeme_referansi"].is_string());
        let r = complete(&admin, &order, "odeme_kontrolu", json!({"odeme_referansi": "EFT-2026-114"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["fields"]["odeme_referansi"], "EFT-2026-114");

        // Two people check the same step off at once: one wins, the other is told.
        let (a, b) = tokio::join!(
            complete(&admin, &order, "teslimat_planlama", json!({"teslimat_tarihi": "2026-12-20"})),
            complete(&admin, &order, "teslimat_planlama", json!({"teslimat_tarihi": "2026-12-21"})),
        );
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
        let order: Value = admin.get(&format!("/api/work-orders/{id}")).await.json().await.unwrap();
        assert_eq!(step(&order, "teslimat_planlama")["status"], "done");

        attach(&admin, &id, "kurulum_fotografi", "salon.pdf").await;
        let order: Value = complete(&admin, &order, "kurulum", json!({})).await.json().await.unwrap();
        attach(&admin, &id, "teslim_tutanagi", "tutanak.pdf").await;
        let order: Value = complete(&admin, &order, "teslim_tutanagi", json!({})).await.json().await.unwrap();
        assert_eq!(notify_jobs(&app.db, &id).await, 0, "nothing queued before the end");
        let r = complete(&admin, &order, "memnuniyet_aramasi", json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["status"], "done");
        assert_eq!(order["progress"], 100);
        assert!(order["completed_at"].is_string());
        assert_eq!(notify_jobs(&app.db, &id).await, 1, "the order's on_complete notify, once");

        // Reopened and completed again: the effect is not repeated.
        let r = admin.post(&format!("/api/work-orders/{id}/steps/memnuniyet_aramasi/reopen"), json!({"expected_version": order["version"]})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["status"], "in_progress");
        // A step others depend on cannot be reopened while they are done.
        let r = admin.post(&format!("/api/work-orders/{id}/steps/sozlesme/reopen"), json!({"expected_version": order["version"]})).await;
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "dependents_done");
        let order: Value = complete(&admin, &order, "memnuniyet_aramasi", json!({})).await.json().await.unwrap();
        assert_eq!(order["status"], "done");
        assert_eq!(notify_jobs(&app.db, &id).await, 1, "still once");

        // Each completion is on the customer's timeline; comments too.
        let r = admin.post(&format!("/api/work-orders/{id}/comments"), json!({"body": "Müşteri çok memnun."})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["comments"][0]["body"], "Müşteri çok memnun.");
        let t: Value = admin.get(&format!("/api/customers/{customer}/timeline?kinds=work_order_step_done")).await.json().await.unwrap();
        assert_eq!(t["events"].as_array().unwrap().len(), 7, "six steps, one of them twice");
        // Filters, kanban and calendar.
        let done: Value = admin.get("/api/work-orders?status=done").await.json().await.unwrap();
        assert!(done.as_array().unwrap().iter().any(|o| o["id"] == id.as_str()));
        let open: Value = admin.get("/api/work-orders?status=open,in_progress").await.json().await.unwrap();
        assert!(!open.as_array().unwrap().iter().any(|o| o["id"] == id.as_str()));
        let board: Value = admin.get("/api/work-orders/board").await.json().await.unwrap();
        let done_col = board.as_array().unwrap().iter().find(|c| c["status"] == "done").unwrap();
        assert_eq!(done_col["count"], 1);
        assert_eq!(admin.get("/api/work-orders?status=nope").await.status(), StatusCode::BAD_REQUEST);
    }
}

both_backends! {
    async fn a_new_order_shows_on_the_calendar_and_can_be_blocked_assigned_and_cancelled(app) {
        let admin = app.login_as("admin").await;
        let ops = app.login_as("operations").await;
        let (_, customer) = lead(&admin, "Fırat Gül", "0532 600 00 02").await;
        let order = open_order(&admin, &customer).await;
        let id = order["id"].as_str().unwrap().to_string();
        let cal: Value = admin.get("/api/work-orders/calendar").await.json().await.unwrap();
        let entry = cal.as_array().unwrap().iter().find(|d| d["work_order_id"] == id.as_str()).expect("on the calendar");
        assert_eq!(entry["step_id"], "sozlesme");
        let r = admin.post(&format!("/api/work-orders/{id}/steps/odeme_kontrolu/assign"), json!({"user_id": ops.user_id, "expected_version": order["version"]})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let order: Value = r.json().await.unwrap();
        assert_eq!(step(&order, "odeme_kontrolu")["assignee_id"], ops.user_id.as_str());
        let mine: Value = ops.get("/api/work-orders?assignee=me").await.json().await.unwrap();
        assert_eq!(mine.as_array().unwrap().len(), 1);
        // The sales step is not the operations user's to check off.
        attach(&admin, &id, "sozlesme", "s.pdf").await;
        let r = complete(&ops, &order, "sozlesme", json!({})).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = admin.patch(&format!("/api/work-orders/{id}"), json!({"status": "blocked", "expected_version": order["version"]})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["status"], "blocked");
        let r = admin.patch(&format!("/api/work-orders/{id}"), json!({"status": "done", "expected_version": order["version"]})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "done comes from the steps");
        let r = admin.patch(&format!("/api/work-orders/{id}"), json!({"status": "cancelled", "expected_version": order["version"]})).await;
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["status"], "cancelled");
        let r = complete(&admin, &order, "sozlesme", json!({})).await;
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "work_order_closed");
        // Unknown definitions and customers are clear errors.
        let r = admin.post("/api/work-orders", json!({"definition": "yok_boyle"})).await;
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "unknown_work_order");
    }
}

both_backends! {
    async fn a_rep_without_the_customer_sees_no_order_and_offboarding_hands_steps_over(app) {
        let admin = app.login_as("admin").await;
        let stranger = app.login_as("sales").await;
        let leaving_email = format!("ops-{}@test.local", uuid::Uuid::now_v7().simple());
        app.create_user(&leaving_email, "operations").await;
        let leaving = app.login(&leaving_email, crate::helpers::TEST_PASSWORD).await;
        let heir = app.login_as("operations").await;
        let (_, customer) = lead(&admin, "Gül Kar", "0532 600 00 03").await;
        let r = admin.post("/api/customers/bulk-assign", json!({"customer_ids": [customer], "add": [admin.user_id], "replace": true})).await;
        assert!(r.status().is_success());
        let order = open_order(&admin, &customer).await;
        let id = order["id"].as_str().unwrap().to_string();
        assert_eq!(stranger.get(&format!("/api/work-orders/{id}")).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(stranger.get(&format!("/api/work-orders/{id}/files")).await.status(), StatusCode::NOT_FOUND);
        let list: Value = stranger.get("/api/work-orders").await.json().await.unwrap();
        assert!(list.as_array().unwrap().is_empty());
        let r = admin.post(&format!("/api/work-orders/{id}/steps/odeme_kontrolu/assign"), json!({"user_id": leaving.user_id, "expected_version": order["version"]})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let preview: Value = admin.get(&format!("/api/admin/users/{}/offboarding?to_user={}", leaving.user_id, heir.user_id)).await.json().await.unwrap();
        let steps = preview["records"].as_array().unwrap().iter().find(|r| r["kind"] == "work_order_steps").expect("counted").clone();
        assert_eq!(steps["count"], 1);
        let r = admin.post(&format!("/api/admin/users/{}/offboard", leaving.user_id), json!({"to_user": heir.user_id})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let order: Value = admin.get(&format!("/api/work-orders/{id}")).await.json().await.unwrap();
        assert_eq!(step(&order, "odeme_kontrolu")["assignee_id"], heir.user_id.as_str());
        // The heir sees the order through the step, though not an owner of the customer.
        assert_eq!(heir.get(&format!("/api/work-orders/{id}")).await.status(), StatusCode::OK);
    }
}

both_backends! {
    async fn a_sale_opens_the_delivery_order_once_and_running_orders_keep_their_version(app) {
        let admin = app.login_as("admin").await;
        let workers = akis_worker::start(app.db.clone(), &app.config, app.definitions.clone()).await.expect("workers");
        let (card, customer) = lead(&admin, "Hale Nur", "0532 600 00 04").await;
        let fields = json!({"appointment_at": "2026-12-01T10:00:00Z", "deposit_amount": 1000, "sale_amount": 5000});
        for (to, version) in [("gorusuluyor", 1), ("randevu", 2), ("kapora", 3), ("satis_tamamlandi", 4)] {
            let r = admin.post(&format!("/api/cards/{card}/move"), json!({"to": to, "expected_version": version, "fields": fields})).await;
            assert_eq!(r.status(), StatusCode::OK, "{to}: {}", r.text().await.unwrap());
        }
        eventually("the sale opens the delivery work order", || async {
            let orders: Value = admin.get(&format!("/api/work-orders?customer={customer}")).await.json().await.unwrap();
            orders.as_array().is_some_and(|o| !o.is_empty())
        }).await;
        // Every create_work_order job has finished (none left queued or running): what exists now is all.
        eventually("the create_work_order jobs are done", || async {
            let live: i64 = match &app.db {
                Db::Sqlite(s) => sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE job_type = 'create_work_order'").fetch_one(&s.reader).await.expect("count"),
                Db::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = 'create_work_order'").fetch_one(p).await.expect("count"),
            };
            live == 0
        }).await;
        let orders: Value = admin.get(&format!("/api/work-orders?customer={customer}")).await.json().await.unwrap();
        assert_eq!(orders.as_array().unwrap().len(), 1, "one order per sale");
        let running = orders[0].clone();
        assert_eq!(running["card_id"], card.as_str());
        assert_eq!(running["definition"], "teslimat_kurulum");
        let old_version = running["definitions_version"].as_str().unwrap().to_string();

        // A reload drops the satisfaction call: new orders have five steps, the running one six.
        let text = std::fs::read_to_string(crate::helpers::repo_root().join("workflows/work_orders.yaml")).unwrap();
        let cut = text.find("      - id: memnuniyet_aramasi").expect("the last step");
        let end = text.find("    on_complete:").expect("on_complete");
        let edited = format!("{}{}", &text[..cut], &text[end..]);
        let r = admin.post("/api/admin/definitions/reload", json!({"changes": {"workflows/work_orders.yaml": edited}})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let running: Value = admin.get(&format!("/api/work-orders/{}", running["id"].as_str().unwrap())).await.json().await.unwrap();
        assert_eq!(running["steps"].as_array().unwrap().len(), 6);
        assert_eq!(running["definitions_version"], old_version.as_str());
        assert!(step(&running, "memnuniyet_aramasi")["name"] == "Memnuniyet araması", "names from its own version");
        let fresh = open_order(&admin, &customer).await;
        assert_eq!(fresh["steps"].as_array().unwrap().len(), 5);
        assert_ne!(fresh["definitions_version"], old_version.as_str());
        // The running order still completes by its own rules (the removed step included).
        let mut order = running;
        attach(&admin, order["id"].as_str().unwrap(), "sozlesme", "s.pdf").await;
        order = complete(&admin, &order, "sozlesme", json!({})).await.json().await.unwrap();
        assert_eq!(step(&order, "odeme_kontrolu")["status"], "ready");
        workers.shutdown(Duration::from_secs(5)).await;
        let _: &TestApp = &app;
    }
}

both_backends! {
    async fn an_orders_files_are_announced_to_its_viewers(app) {
        // The event log is commit-ordered: an event can show up in it a moment after the
        // request that caused it has answered, so read it until it holds what we expect.
        async fn file_changes(admin: &TestSession, order: &str) -> (Vec<String>, i64) {
            let page: Value = admin.get("/api/events?after=0&limit=500").await.json().await.unwrap();
            let changes = page["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "work_order.updated" && e["data"]["work_order_id"] == json!(order))
                .filter_map(|e| e["data"]["change"].as_str().map(str::to_string))
                .filter(|c| c.starts_with("file_"))
                .collect();
            (changes, page["position"].as_i64().unwrap())
        }
        let admin = app.login_as("admin").await;
        let (_, customer) = lead(&admin, "Dosya Duyuru", "0532 620 00 01").await;
        let order = open_order(&admin, &customer).await;
        let id = order["id"].as_str().unwrap().to_string();
        attach(&admin, &id, "imzali_sozlesme", "sozlesme.pdf").await;
        let files: Value = admin.get(&format!("/api/work-orders/{id}/files")).await.json().await.unwrap();
        let file = files["files"][0]["id"].as_str().unwrap().to_string();
        let r = admin.delete(&format!("/api/files/{file}")).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        eventually("the order's file events are in the log", || async {
            file_changes(&admin, &id).await.0 == ["file_added", "file_deleted"]
        })
        .await;
        // A customer's own files are not work-order news.
        let form = Form::new().part("file", Part::bytes(PDF.to_vec()).file_name("kimlik.pdf").mime_str("application/pdf").unwrap());
        let r = admin.client.post(admin.url(&format!("/api/customers/{customer}/files"))).header("x-csrf-token", &admin.csrf).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        eventually("the customer's file upload is in the log", || async {
            let page: Value = admin.get("/api/events?after=0&limit=500").await.json().await.unwrap();
            page["events"].as_array().unwrap().iter().any(|e| e["type"] == "timeline.added" && e["data"]["event"]["data"]["name"] == "kimlik.pdf")
        })
        .await;
        let (changes, _) = file_changes(&admin, &id).await;
        assert_eq!(changes, ["file_added", "file_deleted"]);
        let page: Value = admin.get("/api/events?after=0&limit=500").await.json().await.unwrap();
        let order_events = page["events"].as_array().unwrap().iter().filter(|e| e["type"] == "work_order.updated").count();
        assert_eq!(order_events, 3, "created, file_added, file_deleted — nothing for the customer's file: {page}");
    }
}
