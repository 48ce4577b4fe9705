//! The web UI: pages need a session and carry a strict CSP, the preferences API on both
//! backends, and the real thing in a browser (`tests/ui/ui.mjs`: playwright-core driving
//! Debian's Chromium): log in, drag, a guard's refusal in Turkish, live moves between two
//! browsers, bulk move, filters in the URL, theme and language remembered, screenshots.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TEST_PASSWORD, TestApp, TestSession, repo_root};

/// The Chromium the browser tests drive (`AKIS_TEST_CHROMIUM` overrides).
pub fn chromium() -> PathBuf {
    std::env::var_os("AKIS_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether the browser tests can run here. In CI they must; elsewhere they are skipped
/// with a loud notice when Chromium, Node.js or the npm packages are missing.
pub fn browser_ready() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let playwright = repo_root()
        .join("tests/ui/node_modules/playwright-core")
        .is_dir();
    let ok = node && playwright && chromium().exists() && akis_engine::ui::assets::BUILT;
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI needs Chromium ({}), Node.js, `npm ci` in tests/ui and ui/, and the UI bundle built (node={node}, playwright-core={playwright}, bundle={})",
            chromium().display(),
            akis_engine::ui::assets::BUILT
        );
        eprintln!(
            "\n!!! Chromium, Node.js, tests/ui/node_modules or the UI bundle is missing: SKIPPING this browser test.\n!!! apt-get install -y chromium; (cd ui && npm ci); (cd tests/ui && npm ci); cargo build\n"
        );
    }
    ok
}

/// Runs `tests/ui/<script>` (`node SCRIPT BASE_URL CONFIG_JSON`) against `app` and returns
/// the steps it reported as passed; fails the test with the script's output when it fails
/// or when a step of `expected` is missing. `config` gets `chromium` and `artifacts`
/// (`target/ui-artifacts`, where screenshots go).
pub async fn run_browser_script(
    app: &TestApp,
    script: &str,
    mut config: Value,
    expected: &[&str],
) -> Vec<String> {
    let artifacts = repo_root().join("target/ui-artifacts");
    config["chromium"] = json!(chromium());
    config["artifacts"] = json!(artifacts);
    let base = app.address.clone();
    let script = repo_root().join("tests/ui").join(script);
    let name = script.display().to_string();
    // Every step of a script waits at most 10 s, so the run is bounded.
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg(script)
                .arg(&base)
                .arg(config.to_string())
                .output()
        }),
    )
    .await
    .expect("the browser run ends within 5 minutes")
    .expect("joined")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "browser run {name} failed (screenshots in {}):\n{stdout}",
        artifacts.display()
    );
    let steps: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["step"].as_str().map(str::to_string))
        .collect();
    for step in expected {
        assert!(
            steps.iter().any(|s| s == step),
            "step {step} of {name} did not pass: {steps:?}"
        );
    }
    steps
}

pub async fn lead(admin: &TestSession, name: &str, phone: &str, source: &str) -> (String, String) {
    let r = admin
        .post(
            "/api/leads",
            json!({"name": name, "phone": phone, "source": source}),
        )
        .await;
    assert!(r.status().is_success(), "lead: {}", r.status());
    let body: Value = r.json().await.unwrap();
    (
        body["card_id"].as_str().unwrap().to_string(),
        body["customer_id"].as_str().unwrap().to_string(),
    )
}

pub async fn card(session: &TestSession, id: &str) -> Value {
    session
        .get(&format!("/api/cards/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

pub async fn move_to(session: &TestSession, id: &str, to: &str, fields: Value) {
    let version = card(session, id).await["version"].as_i64().unwrap();
    let r = session
        .post(
            &format!("/api/cards/{id}/move"),
            json!({"to": to, "expected_version": version, "fields": fields}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

/// A client that shows redirects instead of following them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

both_backends! {
    async fn pages_send_a_browser_without_a_session_to_the_login_page(app) {
        let client = no_redirects();
        for path in ["/", "/board/sales", "/board/sales?q=a%20b"] {
            let r = client.get(app.url(path)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
            let location = r.headers()["location"].to_str().unwrap().to_string();
            assert!(location.starts_with("/login?next=/"), "{path} → {location}");
        }
        let r = client.get(app.url("/login?next=//evil.example")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        let html = r.text().await.unwrap();
        assert!(html.contains("<h2>Giriş yap</h2>"), "Turkish by default");
        assert!(!html.contains("evil.example"), "a foreign `next` is dropped");
        assert!(!html.contains("<script>") && !html.contains(" style="), "no inline script or style");
        let english = client.get(app.url("/login?lang=en")).send().await.unwrap().text().await.unwrap();
        assert!(english.contains("<h2>Log in</h2>"));
    }
}

both_backends! {
    async fn the_board_page_is_generated_from_the_pipeline_for_a_logged_in_user(app) {
        let admin = app.login_as("admin").await;
        let (_, _) = lead(&admin, "Çağla <b>Işık</b>", "0532 300 00 01", "web_form").await;
        let r = admin.get("/").await; // follows the redirect to the default board
        assert_eq!(r.url().path(), "/board/sales");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("default-src 'self'"));
        let html = r.text().await.unwrap();
        for stage in ["Potansiyel", "Görüşülüyor", "Takip Edilecek", "Randevu", "Kapora", "Satış Tamamlandı", "Uygun Değil"] {
            assert!(html.contains(&format!(">{stage}</h2>")), "column {stage}");
        }
        assert!(html.contains("data-wip=\"200\""), "the WIP limit from the YAML");
        assert!(html.contains("id=\"bulk-move\"") && html.contains("data-filter=\"owners\""), "an admin gets bulk actions and the owner filter");
        assert!(html.contains("href=\"&#x2f;docs\""), "and the admin's menu entry");
        let rep = app.login_as("sales").await;
        let theirs = rep.get("/board/sales").await.text().await.unwrap();
        assert!(!theirs.contains("id=\"bulk-move\""), "no bulk actions without the bulk permission");
        assert!(!theirs.contains("data-filter=\"owners\""), "a rep who sees only their own customers gets no owner filter");
        assert!(!theirs.contains("docs\""), "no admin entry in a rep's menu");
        assert!(html.contains("\\u003cb\\u003eIşık\\u003c/b\\u003e"), "card data is escaped inside the JSON block");
        assert!(!html.contains("<b>Işık</b>"));
        let css = admin.get("/assets/stages.css").await.text().await.unwrap();
        assert!(css.contains(".stage-gorusuluyor{--stage-color:#3b82f6}"), "{css}");
        let r = admin.get("/board/nope").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
        let r = admin.get("/board/sales?emotional_min=lots").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a malformed filter is a JSON error");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_filter");
    }
}

both_backends! {
    async fn preferences_are_stored_per_user_and_language_is_the_users_locale(app) {
        let anonymous = app.get("/api/me/preferences").await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let me = app.login_as("sales").await;
        let other = app.login_as("sales").await;
        let initial: Value = me.get("/api/me/preferences").await.json().await.unwrap();
        assert_eq!(initial, json!({"theme": "system", "language": "tr", "list_columns": [], "default_pipeline": null}));

        let r = me.send(reqwest::Method::PUT, "/api/me/preferences", Some(json!({"theme": "dark", "language": "en", "list_columns": ["name", "phone"], "default_pipeline": "sales"}))).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let r = me.send(reqwest::Method::PUT, "/api/me/preferences", Some(json!({"theme": "light"}))).await;
        let saved: Value = r.json().await.unwrap();
        assert_eq!(saved, json!({"theme": "light", "language": "en", "list_columns": ["name", "phone"], "default_pipeline": "sales"}), "omitted keys keep their value");
        let again: Value = me.get("/api/me/preferences").await.json().await.unwrap();
        assert_eq!(again, saved);
        let theirs: Value = other.get("/api/me/preferences").await.json().await.unwrap();
        assert_eq!(theirs["theme"], "system", "another user's preferences are their own");

        // The language is the user's locale: the API now answers in English.
        let session: Value = me.get("/api/auth/session").await.json().await.unwrap();
        assert!(session.to_string().contains("\"en\""), "{session}");
        let html = me.get("/board/sales").await.text().await.unwrap();
        assert!(html.contains("<html lang=\"en\" data-theme=\"light\">"), "the page uses them");
        assert!(html.contains(">Prospect</h2>"));

        for (body, code) in [
            (json!({"theme": "pink"}), 422),
            (json!({"language": "de"}), 422),
            (json!({"default_pipeline": "nope"}), 422),
            (json!({"list_columns": [""]}), 422),
            (json!({"colour": "x"}), 422),
        ] {
            let r = me.send(reqwest::Method::PUT, "/api/me/preferences", Some(body.clone())).await;
            assert_eq!(r.status().as_u16(), code, "{body}");
            assert!(r.json::<Value>().await.unwrap()["message"].is_string(), "JSON error for {body}");
        }
        let r = me.send(reqwest::Method::PUT, "/api/me/preferences", Some(json!({"default_pipeline": null}))).await;
        assert_eq!(r.json::<Value>().await.unwrap()["default_pipeline"], Value::Null);
    }
}

/// Everything a user does in the browser, on one server with prepared cards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_works_in_a_real_browser() {
    if !browser_ready() {
        return;
    }
    let app: TestApp = crate::helpers::spawn_app(akis_engine::storage::Backend::Sqlite)
        .await
        .expect("sqlite");
    let admin = app.login_as("admin").await;
    let manager_email = "zeynep.ui@test.local";
    let other_email = "can.ui@test.local";
    app.create_user(manager_email, "manager").await;
    app.create_user(other_email, "manager").await;

    let (drag, _) = lead(&admin, "Ahmet Sürükle", "0532 400 00 01", "web_form").await;
    let (guard, _) = lead(&admin, "Büşra Kapora", "0532 400 00 02", "web_form").await;
    move_to(&admin, &guard, "gorusuluyor", json!({})).await;
    move_to(
        &admin,
        &guard,
        "randevu",
        json!({"appointment_at": "2026-12-20T10:00:00Z"}),
    )
    .await;
    let (live, _) = lead(&admin, "Cem Canlı", "0532 400 00 03", "web_form").await;
    let mut bulk = Vec::new();
    for (i, name) in ["Deniz Toplu", "Ece Toplu", "Fatih Toplu"]
        .iter()
        .enumerate()
    {
        bulk.push(
            lead(&admin, name, &format!("0532 400 00 1{i}"), "web_form")
                .await
                .0,
        );
    }
    let (stale, _) = lead(&admin, "Gül Eski", "0532 400 00 30", "web_form").await;
    let (keyboard, _) = lead(&admin, "Hakan Klavye", "0532 400 00 40", "web_form").await;
    let (filtered, _) = lead(&admin, "Zeliha Süzgeç", "0532 400 00 20", "meta_lead_ad").await;

    let config = json!({
        "manager": {"email": manager_email, "password": TEST_PASSWORD},
        "other": {"email": other_email, "password": TEST_PASSWORD},
        "stage_names_tr": ["Potansiyel", "Görüşülüyor", "Takip Edilecek", "Randevu", "Kapora", "Satış Tamamlandı", "Uygun Değil"],
        "stage_names_en": ["Prospect", "In talks", "To follow up", "Appointment", "Deposit", "Sale completed", "Not suitable"],
        "cards": {"drag": drag, "guard": guard, "live": live, "bulk": bulk, "stale": stale, "keyboard": keyboard},
        "filter": {"source": "meta_lead_ad", "q": "zeliha", "expect": filtered},
    });
    run_browser_script(
        &app,
        "ui.mjs",
        config,
        &[
            "login_refuses_a_wrong_password_in_turkish",
            "login_opens_the_board",
            "drag_to_the_next_stage_persists_after_reload",
            "a_guard_refusal_is_shown_in_turkish_and_the_card_snaps_back",
            "a_move_in_one_browser_appears_in_another_without_reload",
            "a_stale_version_is_explained_and_the_card_snaps_back",
            "a_card_moves_with_the_keyboard_alone",
            "a_bulk_move_moves_every_selected_card",
            "filters_survive_a_reload_through_the_url",
            "dark_theme_persists",
            "english_persists",
            "phone_screenshot",
            "no_content_security_policy_violations",
        ],
    )
    .await;

    // What the browser did is what the server holds.
    assert_eq!(card(&admin, &drag).await["stage_id"], "gorusuluyor");
    assert_eq!(
        card(&admin, &guard).await["stage_id"],
        "randevu",
        "the refused move changed nothing"
    );
    assert_eq!(card(&admin, &live).await["stage_id"], "gorusuluyor");
    assert_eq!(
        card(&admin, &stale).await["stage_id"],
        "potansiyel",
        "the stale move changed nothing"
    );
    assert_eq!(card(&admin, &keyboard).await["stage_id"], "gorusuluyor");
    for id in &bulk {
        assert_eq!(card(&admin, id).await["stage_id"], "gorusuluyor");
    }
    let manager = app.login(manager_email, TEST_PASSWORD).await;
    let prefs: Value = manager
        .get("/api/me/preferences")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prefs["theme"], "dark");
    assert_eq!(prefs["language"], "en");
    let artifacts = repo_root().join("target/ui-artifacts");
    for shot in ["board-light.png", "board-dark.png", "board-phone.png"] {
        assert!(artifacts.join(shot).is_file(), "{shot}");
    }
}
