//! Browser tests of the admin screen (tests/ui/admin.mjs): the users list, creating a user,
//! job queue counts with retry and cancel, a broken definitions reload that shows its
//! diagnostic and keeps the old set, the audit log, and offboarding a user whose own open
//! browser is sent to the login page — each checked through the API afterwards. Plus the
//! plain HTTP rules of the admin pages (a session, the permission, the sections).

use std::time::Duration;

use akis_engine::jobs::effects::{self, EffectKey, EffectState};
use akis_engine::jobs::store::JobState;
use akis_engine::jobs::{JobId, WebhookJob};
use akis_engine::storage::Backend;
use akis_engine::transaction;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TEST_PASSWORD, TestApp, TestSession, eventually};
use crate::ui::no_redirects;

async fn json_of(session: &TestSession, path: &str) -> Value {
    let r = session.get(path).await;
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    r.json().await.expect("json")
}

/// Gives a test user a name of their own (test users are all called `Test <role>`).
async fn rename(admin: &TestSession, id: &str, name: &str) {
    let user = json_of(admin, &format!("/api/admin/users/{id}")).await;
    let r = admin
        .patch(
            &format!("/api/admin/users/{id}"),
            json!({"expected_version": user["version"], "name": name}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "rename {name}");
}

fn webhook(key: &str) -> WebhookJob {
    WebhookJob {
        effect_key: EffectKey::new(key.to_string()),
        url: "http://127.0.0.1:9/hook".into(),
        event: "card.moved".into(),
        data: json!({}),
    }
}

async fn enqueue(app: &TestApp, key: &str) -> JobId {
    let job = webhook(key);
    transaction!(&app.db, tx => { akis_engine::jobs::enqueue(&mut *tx, &job).await })
        .expect("enqueue")
}

async fn job_state(admin: &TestSession, id: &str) -> String {
    json_of(admin, &format!("/api/admin/jobs/{id}")).await["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_screen_manages_users_definitions_jobs_and_the_audit_log() {
    if !crate::ui::browser_ready() {
        return;
    }
    let Some(app) = crate::helpers::spawn_app(Backend::Sqlite).await else {
        return;
    };
    app.create_user("yonetici@test.local", "admin").await;
    let admin = app.login("yonetici@test.local", TEST_PASSWORD).await;
    rename(&admin, &admin.user_id, "Yönetici Zeynep").await;
    let leaver_id = app
        .create_user("ayrilan@test.local", "sales")
        .await
        .to_string();
    let heir_id = app
        .create_user("devralan@test.local", "sales")
        .await
        .to_string();
    rename(&admin, &leaver_id, "Ayrılan Işık").await;
    rename(&admin, &heir_id, "Devralan Çağatay").await;

    // A webhook job that dies (no webhook secret is configured), run by real workers.
    let dead_job = enqueue(&app, "admin-ui:dead").await;
    let dead_id = dead_job.to_string();
    let workers = akis_worker::start(app.db.clone(), &app.config, app.definitions.clone())
        .await
        .expect("workers");
    eventually("the webhook job dies", || {
        let db = app.db.clone();
        async move {
            akis_engine::jobs::store::find_job(&db, dead_job)
                .await
                .expect("find job")
                .is_some_and(|j| j.state == JobState::Dead)
        }
    })
    .await;
    workers.shutdown(Duration::from_secs(5)).await;

    // The leaver owns two customers and has a session of their own (the browser logs in
    // again; the preview counts the browser's session).
    let leaver = app.login("ayrilan@test.local", TEST_PASSWORD).await;
    let mut customers = Vec::new();
    for i in 0..2 {
        let r = leaver
            .post(
                "/api/leads",
                json!({"name": format!("Devredilecek Müşteri {i}"), "phone": format!("0532 700 00 {i:02}")}),
            )
            .await;
        assert!(r.status().is_success(), "lead {i}: {}", r.status());
        let body: Value = r.json().await.expect("json");
        customers.push(
            body["customer_id"]
                .as_str()
                .expect("customer id")
                .to_string(),
        );
    }
    let r = leaver.post("/api/auth/logout", json!({})).await;
    assert!(r.status().is_success(), "logout: {}", r.status());

    // Waiting webhook jobs (no workers run now): one of them is cancelled in the browser.
    let cancel_id = enqueue(&app, "admin-ui:cancel").await.to_string();
    enqueue(&app, "admin-ui:wait").await;
    let health = json_of(&admin, "/api/admin/jobs/health").await;
    let webhook_pending = health
        .as_array()
        .expect("health")
        .iter()
        .find(|q| q["queue"] == "webhook")
        .and_then(|q| q["pending"].as_i64())
        .expect("webhook queue");

    // A WhatsApp send interrupted mid-call: a person decides whether it happened.
    let in_doubt = EffectKey::new("admin-ui:whatsapp".to_string());
    effects::claim(&app.db, &in_doubt, "whatsapp_template", dead_job)
        .await
        .expect("claim");
    effects::mark_sending(&app.db, &in_doubt)
        .await
        .expect("sending");
    effects::mark_unknown(&app.db, &in_doubt, "connection reset mid-call")
        .await
        .expect("unknown");

    // A manager may read the definitions, nothing else here.
    app.create_user("mudur@test.local", "manager").await;

    let before = json_of(&admin, "/api/admin/definitions").await["version"]
        .as_str()
        .expect("version")
        .to_string();

    let config = json!({
        "admin": {"email": "yonetici@test.local", "password": TEST_PASSWORD},
        "leaver": {"email": "ayrilan@test.local", "password": TEST_PASSWORD, "id": leaver_id, "name": "Ayrılan Işık", "customers": customers.len()},
        "heir": {"email": "devralan@test.local", "id": heir_id, "name": "Devralan Çağatay"},
        "new_user": {"email": "yeni.kullanici@test.local", "name": "Yeni Kullanıcı Şule", "role": "operations"},
        "jobs": {"webhook_pending": webhook_pending, "dead_id": dead_id, "cancel_id": cancel_id},
        "effect": {"key": "admin-ui:whatsapp", "note": "Müşteri mesajı aldığını telefonda söyledi"},
        "manager": {"email": "mudur@test.local", "password": TEST_PASSWORD},
        "definitions_version": before,
        "broken": {
            "file": "workflows/sales.yaml",
            "find": "        to: gorusuluyor\n",
            "replace": "        to: gorusuluyr\n",
            "line_offset": 0,
            "message": "unknown stage `gorusuluyr`",
        },
    });
    crate::ui::run_browser_script(
        &app,
        "admin.mjs",
        config,
        &[
            "the_users_list_shows_the_team",
            "a_user_is_created",
            "the_job_queues_show_their_counts",
            "a_dead_job_is_retried_and_a_pending_one_cancelled",
            "an_in_doubt_send_is_resolved_with_a_reason",
            "a_broken_reload_shows_the_diagnostic_and_keeps_the_old_set",
            "the_audit_log_lists_recent_actions",
            "offboarding_logs_the_users_open_browser_out",
            "the_screen_in_dark_english_and_on_a_phone",
            "a_manager_sees_only_the_definitions_read_only",
            "no_csp_violations",
        ],
    )
    .await;

    // The new user exists with what the form said, and can log in.
    let users = json_of(&admin, "/api/admin/users").await;
    let created = users
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["email"] == "yeni.kullanici@test.local")
        .cloned()
        .expect("the user created in the browser");
    assert_eq!(created["name"], "Yeni Kullanıcı Şule");
    assert_eq!(created["role"], "operations");
    assert_eq!(created["active"], true);
    app.login("yeni.kullanici@test.local", "yeni-parola-123")
        .await;

    // The broken reload changed nothing.
    let after = json_of(&admin, "/api/admin/definitions").await;
    assert_eq!(
        after["version"],
        before.as_str(),
        "the old set stays in force"
    );
    let versions = json_of(&admin, "/api/admin/definitions/versions").await;
    assert_eq!(
        versions["activations"]
            .as_array()
            .expect("activations")
            .len(),
        1
    );

    // The dead job was put back in its queue, the waiting one cancelled.
    assert_eq!(job_state(&admin, &dead_id).await, "pending");
    assert_eq!(job_state(&admin, &cancel_id).await, "cancelled");

    // The in-doubt send is resolved as done, with the reason in the audit log.
    let effect = effects::get(&app.db, &in_doubt)
        .await
        .expect("effect")
        .expect("the effect exists");
    assert_eq!(effect.state, EffectState::Done);
    let audit = json_of(&admin, "/api/admin/audit?action=effect.resolved").await;
    assert_eq!(
        audit[0]["details"]["note"],
        "Müşteri mesajı aldığını telefonda söyledi"
    );

    // The leaver is inactive and their customers belong to the heir now.
    let gone = json_of(&admin, &format!("/api/admin/users/{leaver_id}")).await;
    assert_eq!(gone["active"], false);
    for id in &customers {
        let customer = json_of(&admin, &format!("/api/customers/{id}")).await;
        let owners: Vec<&str> = customer["owners"]
            .as_array()
            .expect("owners")
            .iter()
            .filter_map(|o| o["id"].as_str())
            .collect();
        assert_eq!(owners, vec![heir_id.as_str()], "customer {id}");
    }
    let audit = json_of(&admin, "/api/admin/audit?action=user.offboarded").await;
    assert_eq!(audit[0]["target_id"], leaver_id.as_str());
    let relogin = app
        .post_json(
            "/api/auth/login",
            &json!({"email": "ayrilan@test.local", "password": TEST_PASSWORD}),
        )
        .await;
    assert_eq!(relogin.status(), StatusCode::UNAUTHORIZED);
}

both_backends! {
    async fn admin_pages_need_a_session_and_the_permission(app) {
        let client = no_redirects();
        for path in ["/admin", "/admin/jobs", "/admin/definitions?x=1"] {
            let r = client.get(app.url(path)).send().await.expect("sent");
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
            let location = r.headers()["location"].to_str().expect("ascii").to_string();
            assert!(location.starts_with("/login?next=/admin"), "{path} → {location}");
        }
        let rep = app.login_as("sales").await;
        for path in ["/admin", "/admin/users", "/admin/definitions", "/admin/audit"] {
            let r = rep.get(path).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "a sales rep on {path}");
        }
        // A manager may view the definitions but not administer users: the page opens,
        // and the script shows only the sections the abilities allow.
        let manager = app.login_as("manager").await;
        let r = manager.get("/admin/definitions").await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.expect("html");
        assert!(html.contains("\"definitions_view\":true") && html.contains("\"admin_view\":false"), "abilities in the page data");
        assert!(html.contains("\"section\":\"definitions\""), "the section in the page data");
        assert_eq!(manager.get("/api/admin/users").await.status(), StatusCode::FORBIDDEN);
        let admin = app.login_as("admin").await;
        for (path, section) in [("/admin", "users"), ("/admin/users", "users"), ("/admin/jobs", "jobs"), ("/admin/audit?action=user.created", "audit")] {
            let r = admin.get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let html = r.text().await.expect("html");
            assert!(html.contains(&format!("\"section\":\"{section}\"")), "{path}");
            assert!(html.contains("\"screen\":\"admin\""), "{path}");
        }
        let r = admin.get("/admin/nope").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
