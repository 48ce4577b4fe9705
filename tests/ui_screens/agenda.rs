//! Browser tests of the agenda screen and the bell's panel (tests/ui/agenda.mjs): a rep's
//! reminders (a personal one, one on their customer, one overdue) and an appointment are
//! made through the API as tests/reminders.rs does, with the job workers running so the
//! new-lead notification and the due reminders arrive; the browser completes, snoozes,
//! creates, switches to the week and reloads, hears a reminder fall due, and reads a
//! notification from the bell; afterwards the API holds what it did. Plus the page's plain
//! HTTP behaviour: it needs a session and carries its period in the page data.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TEST_PASSWORD, TestSession, eventually};
use crate::ui::{browser_ready, lead, no_redirects, run_browser_script};

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn created(r: reqwest::Response) -> Value {
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn reminders(session: &TestSession, query: &str) -> Vec<Value> {
    let r = session.get(&format!("/api/reminders?{query}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap().as_array().unwrap().clone()
}

fn find<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {list:?}"))
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("an instant"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

both_backends! {
    async fn the_agenda_page_needs_a_session_and_keeps_its_period(app) {
        let client = no_redirects();
        let r = client.get(app.url("/agenda?view=week&date=2026-12-03")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with("/login?next=/agenda"), "{location}");
        // Every role has an agenda; the page carries the period of its URL.
        for role in ["sales", "operations", "manager"] {
            let session = app.login_as(role).await;
            let r = session.get("/agenda?view=week&date=2026-12-03").await;
            assert_eq!(r.status(), StatusCode::OK, "{role}");
            let html = r.text().await.unwrap();
            assert!(html.contains("data-screen=\"agenda\""), "{role}");
            assert!(html.contains("\"view\":\"week\"") && html.contains("\"date\":\"2026-12-03\""), "{role}: the query is in the page data");
            assert!(!html.contains(" style="), "no inline style");
            // What the screen asks for answers for this role.
            let r = session.get("/api/agenda?from=2026-11-30T00:00:00Z&to=2026-12-07T00:00:00Z&user=me").await;
            assert_eq!(r.status(), StatusCode::OK, "{role}");
            assert_eq!(session.get("/api/agenda/overdue").await.status(), StatusCode::OK, "{role}");
        }
    }
}

/// Everything a rep does with their agenda in a browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agenda_works_in_a_real_browser() {
    if !browser_ready() {
        return;
    }
    let app = crate::helpers::spawn_app(akis_engine::storage::Backend::Sqlite)
        .await
        .expect("sqlite");
    let admin = app.login_as("admin").await;
    let rep_email = "ayse.ajanda@test.local";
    let rep_id = app.create_user(rep_email, "sales").await.to_string();
    let rep = app.login(rep_email, TEST_PASSWORD).await;
    let workers = akis_worker::start(app.db.clone(), &app.config, app.definitions.clone())
        .await
        .expect("workers");

    // A new lead: the assignment rule gives it to the only rep, who is told so.
    let customer_name = "Çiğdem Ajanda";
    let (_, customer) = lead(&admin, customer_name, "0532 500 00 01", "web_form").await;
    assert_eq!(
        rep.get(&format!("/api/customers/{customer}"))
            .await
            .status(),
        StatusCode::OK,
        "the rep owns the new lead"
    );

    // Today's work, a few minutes ahead, on one calendar day of the organisation.
    let tz = app.config.timezone;
    let day = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
    let mut base = Utc::now() + Duration::minutes(5);
    if day(base) != day(base + Duration::minutes(4)) {
        base += Duration::minutes(5);
    }
    let personal = created(
        rep.post(
            "/api/reminders",
            json!({"title": "Haftalık raporu gönder", "due_at": rfc(base)}),
        )
        .await,
    )
    .await;
    let call = created(
        rep.post(
            &format!("/api/customers/{customer}/reminders"),
            json!({"title": "Çiğdem Hanım'ı ara", "due_at": rfc(base + Duration::minutes(1))}),
        )
        .await,
    )
    .await;
    let overdue_due = Utc::now() - Duration::hours(26);
    let overdue = created(
        rep.post(
            &format!("/api/customers/{customer}/reminders"),
            json!({"title": "Dünkü teklifi sor", "due_at": rfc(overdue_due)}),
        )
        .await,
    )
    .await;
    let appointment = created(
        rep.post(
            &format!("/api/customers/{customer}/appointments"),
            json!({"starts_at": rfc(base + Duration::minutes(2)), "place": "Ofis – Kadıköy"}),
        )
        .await,
    )
    .await;

    // The jobs settle first: the lead's notification is there and every reminder already
    // due has fired (each telling the rep), so the bell's count holds still.
    eventually(
        "the notifications of the lead and the due reminders",
        || async {
            let due = reminders(&rep, "overdue=true").await;
            let fired = due.iter().all(|r| r["fired_at"].is_string());
            let list: Value = rep
                .get("/api/notifications?limit=50")
                .await
                .json()
                .await
                .unwrap();
            let list = list.as_array().unwrap();
            fired && list.iter().any(|n| n["kind"] == "yeni_lead") && list.len() == 1 + due.len()
        },
    )
    .await;
    let list: Value = rep.get("/api/notifications").await.json().await.unwrap();
    let assigned = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "yeni_lead")
        .unwrap()
        .clone();
    assert_eq!(assigned["customer_id"], customer.as_str());
    assert!(assigned["read_at"].is_null());
    let notification = assigned["id"].as_str().unwrap().to_string();

    let new_title = "Müşteri listesini güncelle";
    let config = json!({
        "rep": {"email": rep_email, "password": TEST_PASSWORD, "id": rep_id},
        "date": day(base).to_string(),
        "overdue_day": day(overdue_due).to_string(),
        "customer_id": customer,
        "customer_name": customer_name,
        "complete": {"id": personal["id"], "title": "Haftalık raporu gönder"},
        "snooze": {"id": call["id"], "title": "Çiğdem Hanım'ı ara", "version": call["version"]},
        "overdue": {"id": overdue["id"]},
        "appointment": {"id": appointment["id"]},
        "notification": {"id": notification, "body_part": customer_name},
        "new_title": new_title,
        "new_time": (base + Duration::minutes(3)).with_timezone(&tz).format("%H:%M").to_string(),
        "live_title": "Şimdi ara",
    });
    run_browser_script(
        &app,
        "agenda.mjs",
        config,
        &[
            "the_day_view_shows_todays_reminders_and_appointment",
            "a_stale_completion_is_rolled_back_with_the_servers_message",
            "a_reminder_is_completed_in_the_agenda",
            "a_reminder_is_snoozed_in_the_agenda",
            "the_overdue_list_shows_a_past_reminder",
            "a_personal_reminder_is_created_from_the_agenda",
            "a_due_reminder_flashes_in_the_agenda_live",
            "screenshot_light",
            "the_week_view_survives_a_reload",
            "screenshot_dark",
            "phone_screenshot",
            "a_notification_is_marked_read_from_the_bell",
            "mark_all_read_empties_the_badge",
            "no_content_security_policy_violations",
        ],
    )
    .await;

    // What the browser did is what the server holds.
    let all = reminders(&rep, "status=all").await;
    let done = find(&all, personal["id"].as_str().unwrap());
    assert_eq!(done["status"], "done", "completed in the agenda");
    assert_eq!(done["done_by"], rep_id.as_str());
    let snoozed = find(&all, call["id"].as_str().unwrap());
    assert_eq!(
        snoozed["status"], "open",
        "the stale completion changed nothing"
    );
    assert_eq!(snoozed["snoozes"], 1, "snoozed once");
    assert!(
        instant(&snoozed["due_at"]) >= instant(&call["due_at"]) + Duration::minutes(30),
        "snoozed by an hour from now: {} → {}",
        call["due_at"],
        snoozed["due_at"]
    );
    assert_eq!(
        find(&all, overdue["id"].as_str().unwrap())["status"],
        "open"
    );
    let made: Vec<&Value> = all.iter().filter(|r| r["title_tr"] == new_title).collect();
    assert_eq!(made.len(), 1, "one reminder made in the agenda");
    assert_eq!(made[0]["customer_id"], Value::Null, "a personal one");
    assert_eq!(made[0]["assignees"][0]["id"], rep_id.as_str());
    let list: Value = rep
        .get("/api/notifications?limit=50")
        .await
        .json()
        .await
        .unwrap();
    let read = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == notification.as_str())
        .unwrap();
    assert!(read["read_at"].is_string(), "read from the bell");
    let unread: Value = rep
        .get("/api/notifications/unread-count")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unread["unread"], 0, "all read");
    let artifacts = crate::helpers::repo_root().join("target/ui-artifacts");
    for shot in ["agenda-light.png", "agenda-dark.png", "agenda-phone.png"] {
        assert!(artifacts.join(shot).is_file(), "{shot}");
    }
    workers.shutdown(std::time::Duration::from_secs(5)).await;
}
