//! Browser tests of the work orders screen (tests/ui/work_orders.mjs): orders prepared
//! through the API as tests/work_orders.rs does, the browser lists, boards, calendars,
//! refuses, completes and comments, and afterwards the API holds what it did. Plus the
//! pages' plain HTTP behaviour: a session is needed; a role without `work_orders: edit`
//! gets no create ability on the page.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TEST_PASSWORD, TestSession};
use crate::ui::{browser_ready, lead, no_redirects, run_browser_script};

async fn open_order(session: &TestSession, customer: &str, title: Option<&str>) -> Value {
    let mut body = json!({"definition": "teslimat_kurulum", "customer_id": customer});
    if let Some(title) = title {
        body["title"] = json!(title);
    }
    let r = session.post("/api/work-orders", body).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    r.json().await.unwrap()
}

fn step<'a>(order: &'a Value, id: &str) -> &'a Value {
    order["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {order}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_order_screens_work_in_a_real_browser() {
    if !browser_ready() {
        return;
    }
    let app = crate::helpers::spawn_app(akis_engine::storage::Backend::Sqlite)
        .await
        .expect("sqlite");
    let admin = app.login_as("admin").await;
    let main_email = "deniz.is-emri@test.local";
    let other_email = "ozan.is-emri@test.local";
    let main_id = app.create_user(main_email, "manager").await;
    app.create_user(other_email, "manager").await;

    let (_, customer) = lead(&admin, "Şule Çınar", "0532 700 00 01", "web_form").await;
    let (_, customer2) = lead(&admin, "Ilgaz Öztürk", "0532 700 00 02", "web_form").await;
    let order = open_order(&admin, &customer, None).await;
    let id = order["id"].as_str().unwrap().to_string();
    let second = open_order(&admin, &customer2, Some("Villa kurulumu")).await;
    let second_id = second["id"].as_str().unwrap().to_string();
    // The second one is blocked, for the board to move back.
    let r = admin
        .patch(
            &format!("/api/work-orders/{second_id}"),
            json!({"status": "blocked", "expected_version": second["version"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    let comment = "Kurulum ekibi salı sabahı gidecek; müşteri İzmir'de.";
    let config = json!({
        "main": {"email": main_email, "password": TEST_PASSWORD},
        "other": {"email": other_email, "password": TEST_PASSWORD},
        "order": id,
        "customer": customer,
        "customer_name": "Şule Çınar",
        "second": second_id,
        "second_title": "Villa kurulumu",
        "payment_ref": "EFT-2026-555",
        "delivery_date": "2026-12-20",
        "comment": comment,
    });
    run_browser_script(
        &app,
        "work_orders.mjs",
        config,
        &[
            "the_work_order_list_shows_the_order",
            "the_board_and_calendar_views_render",
            "a_step_with_missing_requirements_is_refused_with_the_reason",
            "a_work_order_step_is_completed",
            "a_comment_is_added",
            "a_step_completed_elsewhere_appears_live",
            "a_file_dropped_on_a_step_is_uploaded",
            "dark_screenshots",
            "phone_screenshot",
            "no_content_security_policy_violations",
        ],
    )
    .await;

    // What the browser did is what the server holds.
    let order: Value = admin
        .get(&format!("/api/work-orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    for done in ["sozlesme", "odeme_kontrolu", "teslimat_planlama"] {
        assert_eq!(step(&order, done)["status"], "done", "{done}: {order}");
    }
    assert_eq!(
        step(&order, "sozlesme")["done_by"],
        main_id.to_string().as_str()
    );
    assert_eq!(step(&order, "kurulum")["status"], "ready");
    assert_eq!(order["status"], "in_progress");
    assert_eq!(order["progress"], 50);
    assert_eq!(order["fields"]["odeme_referansi"], "EFT-2026-555");
    assert_eq!(order["fields"]["teslimat_tarihi"], "2026-12-20");
    let comments = order["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 1, "{order}");
    assert_eq!(comments[0]["body"], comment);
    assert_eq!(comments[0]["author_id"], main_id.to_string().as_str());

    let files: Value = admin
        .get(&format!("/api/work-orders/{id}/files"))
        .await
        .json()
        .await
        .unwrap();
    let in_folder = |folder: &str| -> Vec<String> {
        files["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["folder"] == folder)
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(in_folder("sozlesme"), ["imzali-sozlesme.png"], "{files}");
    let mut photos = in_folder("kurulum_fotografi");
    photos.sort();
    assert_eq!(
        photos,
        ["salon.png", "uzaktan.png"],
        "dropped here, and uploaded by the second browser: {files}"
    );

    // The board's drag unblocked the second order.
    let second: Value = admin
        .get(&format!("/api/work-orders/{second_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["status"], "in_progress");
}

both_backends! {
    async fn work_order_pages_need_a_session_and_offer_creation_only_to_editors(app) {
        let client = no_redirects();
        for path in ["/work-orders", "/work-orders?view=board", "/work-orders/0190a0b0-0000-7000-8000-000000000000"] {
            let r = client.get(app.url(path)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
            let location = r.headers()["location"].to_str().unwrap().to_string();
            assert!(location.starts_with("/login?next=/work-orders"), "{path} → {location}");
        }
        // Operations may edit work orders; sales may only look.
        let operations = app.login_as("operations").await;
        let html = operations.get("/work-orders?view=calendar").await.text().await.unwrap();
        assert!(html.contains(r#""screen":"work_orders""#), "the list screen");
        assert!(html.contains(r#""work_orders_edit":true"#));
        assert!(html.contains(r#""view":"calendar""#), "the view reaches the script");
        let sales = app.login_as("sales").await;
        let r = sales.get("/work-orders").await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(html.contains(r#""work_orders_edit":false"#));
        assert!(!html.contains(" style="), "no inline style");
        let r = sales.get("/work-orders/0190a0b0-0000-7000-8000-000000000000").await;
        assert_eq!(r.status(), StatusCode::OK, "the page renders; the script says the order is missing");
        assert!(r.text().await.unwrap().contains(r#""screen":"work_order""#));
    }
}
