//! Reminders, the agenda and schedules: manual reminders and their life cycle, rule
//! triggers (field set, activity outcome, no contact, follow-ups), firing exactly once
//! (rescheduled, restarted), the overdue list, offboarding, and cron ticks across
//! processes.

use std::time::Duration;

use akis_engine::storage::{Backend, Db};
use akis_engine::types::Timestamp;
use reqwest::StatusCode;
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

async fn reminders_of(session: &TestSession, query: &str) -> Vec<Value> {
    let r = session.get(&format!("/api/reminders?{query}")).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap().as_array().unwrap().clone()
}

async fn count(db: &Db, sql: &'static str, bind: &str) -> i64 {
    akis_engine::read!(db, pool => {
        sqlx::query_scalar::<_, i64>(sql).bind(bind).fetch_one(pool).await
    })
    .expect("count")
}

fn in_seconds(s: i64) -> String {
    Timestamp::from_datetime(Timestamp::now().as_datetime() + chrono::Duration::seconds(s))
        .to_canonical_string()
}

async fn timeline_kinds(session: &TestSession, customer: &str) -> Vec<String> {
    let t: Value = session
        .get(&format!("/api/customers/{customer}/timeline"))
        .await
        .json()
        .await
        .unwrap();
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

both_backends! {
    async fn a_manual_reminder_lives_through_snooze_reassign_and_completion(app) {
        let admin = app.login_as("admin").await;
        let rep = app.login_as("sales").await;
        let other = app.login_as("sales").await;
        let (card, customer) = lead(&admin, "Nur Demir", "0532 400 00 01").await;
        let r = admin.post("/api/customers/bulk-assign", json!({"customer_ids": [customer], "add": [rep.user_id], "replace": true})).await;
        assert_eq!(r.status(), StatusCode::OK);

        // Bad input first: no due time, a bad expression, an unknown assignee.
        let r = rep.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Ara"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = rep.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Ara", "due": "+2x"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.json::<Value>().await.unwrap()["fields"]["due"].is_string());
        let r = rep.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Ara", "due": "+1d", "assignees": ["01900000-0000-7000-8000-000000000000"]})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        // Another rep may not touch this customer at all.
        let r = other.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Ara", "due": "+1d"})).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        let r = rep.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Teklifi sor", "title_en": "Ask about the offer", "due": "+2d at 10:00", "card_id": card})).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let reminder: Value = r.json().await.unwrap();
        assert_eq!(reminder["status"], "open");
        assert_eq!(reminder["assignees"][0]["id"], rep.user_id.as_str(), "the creator by default");
        assert!(reminder["due_at"].as_str().unwrap().contains("T07:00:00"), "10:00 in Istanbul: {}", reminder["due_at"]);
        let id = reminder["id"].as_str().unwrap().to_string();
        // The card shows it; the other rep does not see it.
        let c: Value = admin.get("/api/pipelines/sales/board").await.json().await.unwrap();
        let shown = c["columns"][0]["cards"].as_array().unwrap().iter().find(|x| x["id"] == card.as_str()).unwrap().clone();
        assert_eq!(shown["fields"]["next_reminder_at"], reminder["due_at"]);
        assert!(reminders_of(&other, "").await.is_empty());
        assert_eq!(reminders_of(&rep, "assignee=me").await.len(), 1);

        // Snooze, reassign (stale version refused), complete.
        let r = rep.post(&format!("/api/reminders/{id}/snooze"), json!({"expected_version": 1, "by": "+3d"})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let snoozed: Value = r.json().await.unwrap();
        assert_eq!(snoozed["snoozes"], 1);
        let r = rep.post(&format!("/api/reminders/{id}/reassign"), json!({"expected_version": 1, "assignees": [admin.user_id]})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = rep.post(&format!("/api/reminders/{id}/reassign"), json!({"expected_version": 2, "assignees": [admin.user_id, rep.user_id]})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let r = rep.post(&format!("/api/reminders/{id}/complete"), json!({"expected_version": 3, "note": "Aradım"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "done");
        let r = rep.post(&format!("/api/reminders/{id}/complete"), json!({"expected_version": 4})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT, "done is done");
        let kinds = timeline_kinds(&admin, &customer).await;
        for k in ["reminder_created", "reminder_snoozed", "reminder_reassigned", "reminder_completed"] {
            assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        }
        let c: Value = admin.get("/api/pipelines/sales/board").await.json().await.unwrap();
        let shown = c["columns"][0]["cards"].as_array().unwrap().iter().find(|x| x["id"] == card.as_str()).unwrap().clone();
        assert_eq!(shown["fields"]["next_reminder_at"], Value::Null, "no open reminder left");

        // A personal reminder: only its assignee sees it; cancelling it.
        let r = rep.post("/api/reminders", json!({"title": "Rapor hazırla", "due_at": in_seconds(3600)})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let personal: Value = r.json().await.unwrap();
        assert!(reminders_of(&admin, "").await.iter().all(|x| x["id"] != personal["id"]));
        let r = rep.delete(&format!("/api/reminders/{}?expected_version=1", personal["id"].as_str().unwrap())).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    }
}

both_backends! {
    async fn rules_create_reschedule_and_cancel_reminders_as_their_triggers_change(app) {
        let admin = app.login_as("admin").await;
        let (card, customer) = lead(&admin, "Ozan Kurt", "0532 400 00 02").await;
        // A call without an answer: call back in two days.
        let r = admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "arama", "outcome": "no_answer"})).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let open = reminders_of(&admin, &format!("customer={customer}")).await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0]["rule"], "satis_hatirlaticilari/geri_arama");
        // Busy again: the call-back stands (rescheduled, not doubled); answered: cancelled.
        admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "arama", "outcome": "no_answer"})).await;
        assert_eq!(reminders_of(&admin, &format!("customer={customer}")).await.len(), 1);
        admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "arama", "outcome": "busy"})).await;
        assert_eq!(reminders_of(&admin, &format!("customer={customer}")).await.len(), 1);
        admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "arama", "outcome": "answered"})).await;
        assert!(reminders_of(&admin, &format!("customer={customer}")).await.is_empty());
        let cancelled = reminders_of(&admin, &format!("customer={customer}&status=cancelled")).await;
        assert_eq!(cancelled[0]["cancel_reason"], "other_outcome");

        // An appointment date on the move into Randevu: confirm it the day before at 10:00.
        let moved = admin.post(&format!("/api/cards/{card}/move"), json!({"to": "gorusuluyor", "expected_version": 1})).await;
        assert_eq!(moved.status(), StatusCode::OK);
        let v = moved.json::<Value>().await.unwrap()["card"]["version"].as_i64().unwrap();
        let r = admin.post(&format!("/api/cards/{card}/move"), json!({"to": "randevu", "expected_version": v, "fields": {"appointment_at": "2027-03-10T14:30:00+03:00"}})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let open = reminders_of(&admin, &format!("customer={customer}")).await;
        let confirm = open.iter().find(|x| x["rule"] == "satis_hatirlaticilari/randevu_teyidi").expect("confirmation reminder");
        assert_eq!(confirm["due_at"], "2027-03-09T07:00:00Z");
        // Moving the date reschedules the same reminder.
        let v = r.json::<Value>().await.unwrap()["card"]["version"].as_i64().unwrap();
        let r = admin.patch(&format!("/api/cards/{card}"), json!({"expected_version": v, "fields": {"appointment_at": "2027-03-12T11:00:00+03:00"}})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let open = reminders_of(&admin, &format!("customer={customer}")).await;
        let confirms: Vec<&Value> = open.iter().filter(|x| x["rule"] == "satis_hatirlaticilari/randevu_teyidi").collect();
        assert_eq!(confirms.len(), 1);
        assert_eq!(confirms[0]["due_at"], "2027-03-11T07:00:00Z");
        assert!(timeline_kinds(&admin, &customer).await.iter().any(|k| k == "reminder_rescheduled"));

        // A booked appointment drives the same rule through the card's appointment field.
        let (card2, other) = lead(&admin, "Pelin Su", "0532 400 00 03").await;
        let r = admin.post(&format!("/api/customers/{other}/appointments"), json!({"starts_at": "2027-04-06T15:00:00+03:00", "card_id": card2})).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let appointment: Value = r.json().await.unwrap();
        let open = reminders_of(&admin, &format!("customer={other}")).await;
        assert_eq!(open.iter().filter(|x| x["rule"] == "satis_hatirlaticilari/randevu_teyidi").count(), 1);
        let r = admin.patch(&format!("/api/appointments/{}", appointment["id"].as_str().unwrap()), json!({"expected_version": 1, "status": "cancelled"})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        assert!(reminders_of(&admin, &format!("customer={other}")).await.is_empty(), "a cancelled appointment needs no confirmation");
    }
}

both_backends! {
    async fn the_overdue_sweep_finds_cards_without_contact_once_and_contact_clears_them(app) {
        let admin = app.login_as("admin").await;
        let (card, customer) = lead(&admin, "Rıza Ateş", "0532 400 00 04").await;
        let r = admin.post(&format!("/api/cards/{card}/move"), json!({"to": "gorusuluyor", "expected_version": 1})).await;
        assert_eq!(r.status(), StatusCode::OK);
        // Four days in the stage without contact.
        let four_days_ago = Timestamp::from_datetime(Timestamp::now().as_datetime() - chrono::Duration::days(4));
        let mut tx = app.db.begin().await.unwrap();
        akis_engine::exec!(&mut tx, conn => sqlx::query("UPDATE cards SET stage_entered_at = $1 WHERE id = $2").bind(four_days_ago).bind(&card).execute(conn).await.map(|_| ())).unwrap();
        tx.commit().await.unwrap();
        let defs = app.definitions.current();
        let swept = akis_engine::reminders::schedules::overdue_sweep(&app.db, &defs).await.expect("sweep");
        assert_eq!(swept.created, 1);
        let again = akis_engine::reminders::schedules::overdue_sweep(&app.db, &defs).await.expect("sweep");
        assert_eq!(again.created, 0, "once while the condition holds");
        let overdue: Value = admin.get("/api/agenda/overdue").await.json().await.unwrap();
        assert!(overdue["stale_cards"].as_array().unwrap().iter().any(|c| c["card_id"] == card.as_str()));
        let open = reminders_of(&admin, &format!("customer={customer}")).await;
        assert_eq!(open[0]["rule"], "satis_hatirlaticilari/temas_gecikti");
        // Contact: the reminder no longer holds.
        admin.post(&format!("/api/customers/{customer}/activities"), json!({"kind": "arama", "outcome": "answered"})).await;
        assert!(reminders_of(&admin, &format!("customer={customer}")).await.is_empty());
        let overdue: Value = admin.get("/api/agenda/overdue").await.json().await.unwrap();
        assert!(!overdue["stale_cards"].as_array().unwrap().iter().any(|c| c["card_id"] == card.as_str()));
    }
}

both_backends! {
    async fn overdue_and_agenda_show_what_each_user_may_see_and_offboarding_hands_reminders_over(app) {
        let admin = app.login_as("admin").await;
        let rep_email = format!("ayrilan-{}@test.local", uuid::Uuid::now_v7().simple());
        app.create_user(&rep_email, "sales").await;
        let rep = app.login(&rep_email, crate::helpers::TEST_PASSWORD).await;
        let heir = app.login_as("sales").await;
        let (_, customer) = lead(&admin, "Sibel Koç", "0532 400 00 05").await;
        admin.post("/api/customers/bulk-assign", json!({"customer_ids": [customer], "add": [rep.user_id], "replace": true})).await;
        let r = rep.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Dün aranacaktı", "due_at": in_seconds(-3600)})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = rep.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Yarın ara", "due": "+1d"})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let overdue: Value = admin.get("/api/agenda/overdue").await.json().await.unwrap();
        assert_eq!(overdue["reminders"].as_array().unwrap().len(), 1);
        let mine = overdue["counts"].as_array().unwrap().iter().find(|c| c["user_id"] == rep.user_id.as_str()).expect("rep counted");
        assert_eq!(mine["overdue_reminders"], 1);
        let from = in_seconds(-7200);
        let agenda: Value = admin.get(&format!("/api/agenda?from={from}&user={}", rep.user_id)).await.json().await.unwrap();
        assert_eq!(agenda["reminders"].as_array().unwrap().len(), 2);
        let not_theirs: Value = heir.get("/api/agenda/overdue").await.json().await.unwrap();
        assert!(not_theirs["reminders"].as_array().unwrap().is_empty(), "another rep sees none of it");

        let preview: Value = admin.get(&format!("/api/admin/users/{}/offboarding?to_user={}", rep.user_id, heir.user_id)).await.json().await.unwrap();
        let reminders = preview["records"].as_array().unwrap().iter().find(|r| r["kind"] == "reminders").unwrap().clone();
        assert_eq!(reminders["count"], 2);
        let r = admin.post(&format!("/api/admin/users/{}/offboard", rep.user_id), json!({"to_user": heir.user_id})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let handed = reminders_of(&heir, "assignee=me").await;
        assert_eq!(handed.len(), 2, "open reminders went to the heir");
    }
}

async fn with_workers(app: &TestApp) -> akis_engine::jobs::JobSystem {
    akis_worker::start(app.db.clone(), &app.config, app.definitions.clone())
        .await
        .expect("workers")
}

async fn notifications(db: &Db, user: &str) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND kind = 'hatirlatma'",
        user,
    )
    .await
}

/// Reminders due `appointment_at - 1d` exactly (no time of day), so a test can put the
/// due time seconds away.
fn quick_confirmation(dir: &std::path::Path) {
    let path = dir.join("workflows/reminders.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            "due: \"appointment_at - 1d at 10:00\"",
            "due: \"appointment_at - 1d\"",
            1,
        ),
    )
    .unwrap();
}

fn a_day_and(seconds: i64) -> String {
    Timestamp::from_datetime(
        Timestamp::now().as_datetime()
            + chrono::Duration::days(1)
            + chrono::Duration::seconds(seconds),
    )
    .to_canonical_string()
}

macro_rules! with_quick_definitions {
    ($(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app =
                    crate::helpers::spawn_app_with_definitions(Backend::Sqlite, quick_confirmation)
                        .await
                        .expect("sqlite");
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) = crate::helpers::spawn_app_with_definitions(
                    Backend::Postgres,
                    quick_confirmation,
                )
                .await
                else {
                    return;
                };
                $body
            }
        }
    };
}

with_quick_definitions! {
    async fn a_rescheduled_appointment_fires_only_its_new_reminder(app) {
        let admin = app.login_as("admin").await;
        let workers = with_workers(&app).await;
        let (card, customer) = lead(&admin, "Tuna Er", "0532 400 00 06").await;
        let r = admin.post(&format!("/api/customers/{customer}/appointments"), json!({"starts_at": a_day_and(2), "card_id": card})).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let appointment: Value = r.json().await.unwrap();
        let r = admin.patch(&format!("/api/appointments/{}", appointment["id"].as_str().unwrap()), json!({"expected_version": 1, "starts_at": a_day_and(4)})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let open = reminders_of(&admin, &format!("customer={customer}")).await;
        assert_eq!(open.len(), 1);
        let due_at = open[0]["due_at"].as_str().unwrap().to_string();
        // The first due time passes: nothing fires.
        tokio::time::sleep(Duration::from_millis(2_800)).await;
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM reminders WHERE customer_id = $1 AND fired_at IS NOT NULL", &customer).await, 0, "the old time never fires");
        // The new one does, once, and the owner is told.
        eventually("the rescheduled reminder fires", || async {
            count(&app.db, "SELECT COUNT(*) FROM reminders WHERE customer_id = $1 AND fired_at IS NOT NULL", &customer).await == 1
        }).await;
        let fired = reminders_of(&admin, &format!("customer={customer}")).await;
        assert_eq!(fired[0]["due_at"], due_at.as_str());
        assert!(timeline_kinds(&admin, &customer).await.iter().any(|k| k == "reminder_due"));
        workers.shutdown(Duration::from_secs(5)).await;
    }
}

both_backends! {
    async fn a_restart_between_scheduling_and_due_time_fires_exactly_once(app) {
        let admin = app.login_as("admin").await;
        let (_, customer) = lead(&admin, "Ufuk Han", "0532 400 00 07").await;
        let r = admin.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Kontrol et", "due_at": in_seconds(3)})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let admin_id = admin.user_id.clone();
        // The process stops before the due time; a new one takes over.
        let app = app.restart().await;
        let workers = with_workers(&app).await;
        eventually("the reminder fires after the restart", || async {
            notifications(&app.db, &admin_id).await == 1
        }).await;
        // A second worker set and the overdue sweep find nothing more to fire.
        let defs = app.definitions.current();
        let swept = akis_engine::reminders::schedules::overdue_sweep(&app.db, &defs).await.expect("sweep");
        assert_eq!(swept.fired, 0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(notifications(&app.db, &admin_id).await, 1, "exactly once");
        workers.shutdown(Duration::from_secs(5)).await;
    }
}

both_backends! {
    async fn a_follow_up_action_becomes_a_reminder_on_the_card(app) {
        let admin = app.login_as("admin").await;
        let workers = with_workers(&app).await;
        let (card, customer) = lead(&admin, "Vildan Ay", "0532 400 00 08").await;
        let r = admin.post(&format!("/api/cards/{card}/move"), json!({"to": "gorusuluyor", "expected_version": 1})).await;
        let v = r.json::<Value>().await.unwrap()["card"]["version"].as_i64().unwrap();
        let r = admin.post(&format!("/api/cards/{card}/move"), json!({"to": "takip_edilecek", "expected_version": v})).await;
        assert_eq!(r.status(), StatusCode::OK);
        eventually("the follow-up becomes a reminder", || async {
            count(&app.db, "SELECT COUNT(*) FROM reminders WHERE customer_id = $1 AND origin = 'follow_up'", &customer).await == 1
        }).await;
        let open = reminders_of(&admin, &format!("customer={customer}")).await;
        let follow = open.iter().find(|x| x["origin"] == "follow_up").unwrap();
        assert_eq!(follow["title_tr"], "Tekrar ara");
        assert!(follow["due_at"].as_str().unwrap().contains("T07:00:00"), "+2d at 10:00 Istanbul");
        workers.shutdown(Duration::from_secs(5)).await;
    }
}

both_backends! {
    async fn the_daily_digest_tells_each_user_about_their_day(app) {
        let admin = app.login_as("admin").await;
        let (_, customer) = lead(&admin, "Yeşim Bal", "0532 400 00 09").await;
        admin.post(&format!("/api/customers/{customer}/reminders"), json!({"title": "Geçti", "due_at": in_seconds(-7200)})).await;
        let defs = app.definitions.current();
        let sent = akis_engine::reminders::schedules::daily_digest(&app.db, &defs).await.expect("digest");
        assert!(sent >= 1);
        let n = count(&app.db, "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND kind = 'gunluk_ozet'", &admin.user_id).await;
        assert_eq!(n, 1);
        // The same day twice: one digest.
        akis_engine::reminders::schedules::daily_digest(&app.db, &defs).await.expect("digest");
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND kind = 'gunluk_ozet'", &admin.user_id).await, 1);
        let list: Value = admin.get("/api/notifications").await.json().await.unwrap();
        assert!(list.as_array().unwrap().iter().any(|n| n["body"].as_str().unwrap().contains("gecikmiş")), "{list}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_postgres_run_each_cron_tick_once() {
    let Some(database) = crate::helpers::fresh_database(Backend::Postgres).await else {
        return;
    };
    let url = database.url();
    let files = crate::helpers::definitions_copy();
    std::fs::write(
        files.path().join("workflows/schedules.yaml"),
        "schedules:\n  - {id: every_second, cron: \"* * * * * *\", run: overdue_sweep}\n",
    )
    .unwrap();
    let (_one, _) = crate::helpers::serve(&url, files.path(), &[]).await;
    let (_two, _) = crate::helpers::serve(&url, files.path(), &[]).await;
    let db = crate::helpers::open(&database).await;
    eventually("several ticks ran", || async {
        count(
            &db,
            "SELECT COUNT(*) FROM job_history WHERE queue = $1 AND state = 'done'",
            "scheduled_task",
        )
        .await
            >= 4
    })
    .await;
    let ticks: Vec<(String, String)> = akis_engine::read!(&db, pool => {
        sqlx::query_as::<_, (String, String)>("SELECT tick_at::text, node FROM schedule_ticks WHERE schedule = 'every_second' ORDER BY tick_at")
            .fetch_all(pool).await
    })
    .unwrap();
    let runs: Vec<String> = akis_engine::read!(&db, pool => {
        sqlx::query_scalar::<_, String>("SELECT payload FROM job_history WHERE queue = 'scheduled_task'")
            .fetch_all(pool).await
    })
    .unwrap();
    let mut run_ticks: Vec<String> = runs
        .iter()
        .map(|p| {
            serde_json::from_str::<Value>(p).unwrap()["job"]["tick_at"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let total = run_ticks.len();
    run_ticks.sort();
    run_ticks.dedup();
    assert_eq!(run_ticks.len(), total, "no tick ran twice: {runs:?}");
    assert!(ticks.len() >= total, "every run was a claimed tick");
    let nodes: std::collections::HashSet<&str> = ticks.iter().map(|(_, n)| n.as_str()).collect();
    eprintln!("{} ticks claimed by {} node(s)", ticks.len(), nodes.len());
    db.close().await;
}
