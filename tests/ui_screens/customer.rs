//! Browser tests of the CustomerViewer and the customers list (`tests/ui/customer.mjs`):
//! open a customer from the board, a note in the timeline of a second browser, inline edit,
//! tags, a call result, a reminder, drag-and-drop upload with a preview, Turkish search,
//! per-user columns, merge, CSV import. Plus the pages' access rules on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TEST_PASSWORD, TestApp};
use crate::ui::{browser_ready, lead, no_redirects, run_browser_script};

/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

both_backends! {
    async fn the_screens_need_a_session_and_the_permission(app) {
        let client = no_redirects();
        for path in ["/customers", "/customers/abc", "/agenda", "/work-orders", "/work-orders/abc", "/admin", "/admin/jobs"] {
            let r = client.get(app.url(path)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
            let location = r.headers()["location"].to_str().unwrap().to_string();
            assert!(location.starts_with("/login?next=/"), "{path} → {location}");
        }
        let admin = app.login_as("admin").await;
        let (_, customer) = lead(&admin, "Işık <i>Çağlar</i>", "0532 500 00 01", "web_form").await;
        for path in ["/customers".to_string(), format!("/customers/{customer}"), "/agenda".into(), "/work-orders".into(), "/admin".into(), "/admin/definitions".into()] {
            let r = admin.get(&path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
            assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
            let html = r.text().await.unwrap();
            assert!(html.contains("id=\"screen-root\""), "{path}");
            assert!(html.contains(">Müşteriler</a>") && html.contains(">Ajanda</a>"), "{path}: the side menu");
            assert!(!html.contains("<script>") && !html.contains(" style="), "{path}: no inline script or style");
        }
        let page = admin.get(&format!("/customers/{customer}")).await.text().await.unwrap();
        assert!(page.contains(&format!("\"id\":\"{customer}\"")), "the page names the customer for its script");
        assert!(page.contains("\"customer_fields\"") && page.contains("\"activity_kinds\""));
        let r = admin.get("/admin/nope").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");

        let rep = app.login_as("sales").await;
        let html = rep.get("/customers").await.text().await.unwrap();
        assert!(!html.contains(">Yönetim</a>"), "no admin entry for a sales rep");
        let r = rep.get("/admin").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "a sales rep may not open the admin screen");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Bu ekranı açma yetkiniz yok.");
    }
}

/// Everything about one customer in a real browser, then what the server holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_viewer_and_list_work_in_a_real_browser() {
    if !browser_ready() {
        return;
    }
    let app: TestApp = crate::helpers::spawn_app(akis_engine::storage::Backend::Sqlite)
        .await
        .expect("sqlite");
    let admin = app.login_as("admin").await;
    let manager = "selin.viewer@test.local";
    let other = "kaan.viewer@test.local";
    app.create_user(manager, "manager").await;
    app.create_user(other, "manager").await;
    let name = "Işık Çağlar";
    let (card, customer) = lead(&admin, name, "0532 510 00 01", "web_form").await;
    let (_, keep) = lead(&admin, "Merve Birleşen", "0532 510 00 02", "web_form").await;
    let (_, drop) = lead(&admin, "Merve Birleşik", "0532 510 00 03", "meta_lead_ad").await;
    let note = "7f3a";

    let config = json!({
        "manager": {"email": manager, "password": TEST_PASSWORD},
        "other": {"email": other, "password": TEST_PASSWORD},
        "customer": {"id": customer, "card": card, "name": name},
        "note": note,
        "png_base64": PNG,
        "search": {"q": "isik", "expect": [customer]},
        "merge": [keep, drop],
        "merge_search": "birleş",
        "csv": "Ad Soyad;Telefon;E-posta\nTuğba İçeri;0532 520 00 01;tugba@example.com\nBoş Satır;;\n",
    });
    run_browser_script(
        &app,
        "customer.mjs",
        config,
        &[
            "a_card_opens_the_customer_viewer",
            "the_viewer_has_its_own_url",
            "a_note_appears_in_the_timeline_and_in_a_second_browser",
            "an_inline_edit_is_saved_and_shown_live",
            "a_tag_is_added",
            "a_call_result_is_logged",
            "a_reminder_is_created_from_the_viewer",
            "a_dropped_file_is_uploaded_and_previewed",
            "escape_closes_the_panel_and_the_url_forgets_it",
            "enter_on_a_focused_card_opens_it_and_escape_returns_to_the_card",
            "screenshots_of_the_customer_page",
            "turkish_search_finds_the_customer_in_the_list",
            "chosen_columns_are_kept_per_user",
            "a_change_in_another_browser_updates_the_row_live",
            "a_row_opens_the_viewer_in_the_side_panel",
            "two_selected_customers_are_merged",
            "a_csv_import_previews_the_mapping_and_reports_each_row",
            "customers_dark_screenshot",
            "phone_viewer_is_full_screen",
            "no_content_security_policy_violations",
        ],
    )
    .await;

    // What the browser did is what the server holds.
    let detail: Value = admin
        .get(&format!("/api/customers/{customer}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["fields"]["city"], "Eskişehir",
        "edited in the viewer, then by the second browser"
    );
    assert!(
        detail["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("sıcak-müşteri")),
        "{detail}"
    );
    let timeline: Value = admin
        .get(&format!("/api/customers/{customer}/timeline?kinds=note"))
        .await
        .json()
        .await
        .unwrap();
    let notes: Vec<&Value> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"].to_string().contains(note))
        .collect();
    assert_eq!(notes.len(), 1, "one note, stored once: {timeline}");
    let activities: Value = admin
        .get(&format!("/api/customers/{customer}/activities"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        activities.to_string().contains("no_answer"),
        "the call result: {activities}"
    );
    let reminders: Value = admin
        .get(&format!("/api/reminders?customer={customer}&status=open"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        reminders.to_string().contains("Teklifi hatırlat"),
        "{reminders}"
    );
    let files: Value = admin
        .get(&format!("/api/customers/{customer}/files"))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"kimlik-ön.png") && names.contains(&"teklif.txt"),
        "{names:?}"
    );
    let absorbed: Value = admin
        .get(&format!("/api/customers/{drop}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(absorbed["merged_into"], json!(keep), "{absorbed}");
    let imported: Value = admin
        .get("/api/customers?q=tu%C4%9Fba")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        imported["customers"].as_array().unwrap().len(),
        1,
        "{imported}"
    );
    let selin = app.login(manager, TEST_PASSWORD).await;
    let prefs: Value = selin.get("/api/me/preferences").await.json().await.unwrap();
    let columns = prefs["list_columns"].as_array().unwrap();
    assert!(
        columns.contains(&json!("fields.city")) && !columns.contains(&json!("tags")),
        "{prefs}"
    );
}
