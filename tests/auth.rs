//! Authentication, authorization, user management, offboarding and the audit log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::TEST_PASSWORD;

/// Path parameters replaced by a syntactically valid id, so only authentication decides.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("0191c8a4-0000-7000-8000-000000000000");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

both_backends! {
    async fn every_api_route_refuses_anonymous_requests(app) {
        let doc: Value = app.get("/openapi.json").await.json().await.expect("json");
        let paths = doc["paths"].as_object().expect("paths");
        let mut checked = 0;
        let mut public_in_doc = Vec::new();
        for (path, item) in paths {
            if !path.starts_with("/api") {
                continue;
            }
            for (method, op) in item.as_object().expect("path item") {
                let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
                let public = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty())));
                if public {
                    public_in_doc.push(format!("{method} {path}"));
                    continue;
                }
                let response = app
                    .client
                    .request(method.clone(), app.url(&concrete(path)))
                    .json(&json!({"anything": 1}))
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} must require authentication");
                let body: Value = response.json().await.expect("json error");
                assert_eq!(body["code"], "unauthorized");
                checked += 1;
            }
        }
        assert!(checked >= 10, "the walk found only {checked} protected operations");
        let mut expected: Vec<String> = akis_engine::auth::middleware::PUBLIC_API
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        expected.sort();
        public_in_doc.sort();
        assert_eq!(public_in_doc, expected, "the OpenAPI document and the middleware agree on what is public");
        // Paths that match no route are refused too, before routing.
        let response = app.client.delete(app.url("/api/no/such/route")).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

both_backends! {
    async fn login_sets_an_httponly_samesite_cookie_and_returns_a_csrf_token(app) {
        app.create_user("ayse@test.local", "sales").await;
        let response = app
            .post_json("/api/auth/login", &json!({"email": "  AYSE@test.local ", "password": TEST_PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()["set-cookie"].to_str().expect("ascii").to_string();
        assert!(cookie.starts_with("akis_session="), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["csrf_token"].as_str().map(str::len), Some(64));
        assert_eq!(body["user"]["user"]["email"], "ayse@test.local");
        assert_eq!(body["user"]["scope"], "own");
        assert!(body["user"]["user"].get("password_hash").is_none());

        let over_tls = app
            .client
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-proto", "https")
            .json(&json!({"email": "ayse@test.local", "password": TEST_PASSWORD}))
            .send()
            .await
            .expect("sent");
        assert!(over_tls.headers()["set-cookie"].to_str().expect("ascii").contains("Secure"));
    }
}

both_backends! {
    async fn a_wrong_password_and_an_unknown_email_get_the_same_answer(app) {
        app.create_user("mehmet@test.local", "sales").await;
        let wrong = app.post_json("/api/auth/login", &json!({"email": "mehmet@test.local", "password": "nope-nope"})).await;
        let unknown = app.post_json("/api/auth/login", &json!({"email": "nobody@test.local", "password": "nope-nope"})).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        let wrong: Value = wrong.json().await.expect("json");
        let unknown: Value = unknown.json().await.expect("json");
        assert_eq!(wrong["message"], unknown["message"]);
        assert_eq!(wrong["code"], unknown["code"]);
    }
}

both_backends! {
    async fn brute_force_login_is_throttled_per_account(app) {
        app.create_user("target@test.local", "sales").await;
        for _ in 0..5 {
            let r = app.post_json("/api/auth/login", &json!({"email": "target@test.local", "password": "guess-guess"})).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        // Even the right password is refused while the account is locked.
        let r = app.post_json("/api/auth/login", &json!({"email": "target@test.local", "password": TEST_PASSWORD})).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        assert!(retry_after > 0 && retry_after <= 15 * 60);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "too_many_requests");
        assert!(body["message"].as_str().expect("message").contains("try again in"));
        // Another account from the same address is not locked by this one.
        app.create_user("other@test.local", "sales").await;
        app.login("other@test.local", TEST_PASSWORD).await;
    }
}

both_backends! {
    async fn state_changing_requests_with_a_cookie_need_the_csrf_token(app) {
        let session = app.login_as("sales").await;
        let body = json!({"name": "n", "scopes": ["*"]});
        let without = session.client.post(session.url("/api/me/tokens")).json(&body).send().await.expect("sent");
        assert_eq!(without.status(), StatusCode::FORBIDDEN);
        let err: Value = without.json().await.expect("json");
        assert_eq!(err["code"], "csrf_failed");
        let wrong = session
            .client
            .post(session.url("/api/me/tokens"))
            .header("x-csrf-token", "0".repeat(64))
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
        assert_eq!(session.post("/api/me/tokens", body).await.status(), StatusCode::CREATED);
        // Reads need no token; the session endpoint hands it out again.
        let state: Value = session.get("/api/auth/session").await.json().await.expect("json");
        assert_eq!(state["authenticated"], true);
        assert_eq!(state["csrf_token"], session.csrf.as_str());
    }
}

both_backends! {
    async fn api_tokens_work_without_csrf_and_stop_at_once_when_revoked(app) {
        let admin = app.login_as("admin").await;
        let created: Value = admin
            .post("/api/me/tokens", json!({"name": "integration", "scopes": ["*"], "expires_in_days": 30}))
            .await
            .json()
            .await
            .expect("json");
        let token = created["token"].as_str().expect("token shown once").to_string();
        assert!(token.starts_with("akis_"));
        let bare = reqwest::Client::new();
        let me = bare.get(app.url("/api/me")).bearer_auth(&token).send().await.expect("sent");
        assert_eq!(me.status(), StatusCode::OK);
        // No CSRF header needed with a bearer token.
        let team = bare
            .post(app.url("/api/admin/teams"))
            .bearer_auth(&token)
            .json(&json!({"name": "Ankara Ekibi"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(team.status(), StatusCode::CREATED);
        // Listing never shows the secret.
        let listed = admin.get("/api/me/tokens").await.text().await.expect("text");
        assert!(!listed.contains(&token));

        let id = created["id"].as_str().expect("id");
        assert_eq!(admin.delete(&format!("/api/me/tokens/{id}")).await.status(), StatusCode::NO_CONTENT);
        let after = bare.get(app.url("/api/me")).bearer_auth(&token).send().await.expect("sent");
        assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
        let err: Value = after.json().await.expect("json");
        assert_eq!(err["code"], "invalid_token");
        let garbage = bare.get(app.url("/api/me")).bearer_auth("akis_garbage").send().await.expect("sent");
        assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    }
}

both_backends! {
    async fn a_token_is_limited_to_its_scopes(app) {
        let admin = app.login_as("admin").await;
        let created: Value = admin
            .post("/api/me/tokens", json!({"name": "read-only", "scopes": ["customers:view"]}))
            .await
            .json()
            .await
            .expect("json");
        let token = created["token"].as_str().expect("token");
        let users = reqwest::Client::new().get(app.url("/api/admin/users")).bearer_auth(token).send().await.expect("sent");
        assert_eq!(users.status(), StatusCode::FORBIDDEN, "an admin's token without admin scope");
        let bad = admin.post("/api/me/tokens", json!({"name": "x", "scopes": ["everything:please"]})).await;
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

both_backends! {
    async fn logout_ends_the_session(app) {
        let session = app.login_as("sales").await;
        assert_eq!(session.get("/api/me").await.status(), StatusCode::OK);
        let out = session.send(Method::POST, "/api/auth/logout", None).await;
        assert_eq!(out.status(), StatusCode::NO_CONTENT);
        assert_eq!(session.get("/api/me").await.status(), StatusCode::UNAUTHORIZED);
        let state: Value = session.get("/api/auth/session").await.json().await.expect("json");
        assert_eq!(state["authenticated"], false);
    }
}

both_backends! {
    async fn changing_the_password_ends_the_other_sessions(app) {
        app.create_user("fatma@test.local", "sales").await;
        let laptop = app.login("fatma@test.local", TEST_PASSWORD).await;
        let phone = app.login("fatma@test.local", TEST_PASSWORD).await;
        let weak = laptop.post("/api/auth/password", json!({"current_password": TEST_PASSWORD, "new_password": "short"})).await;
        assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let wrong = laptop.post("/api/auth/password", json!({"current_password": "not-it-at-all", "new_password": "yeni-parola-99"})).await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let ok = laptop.post("/api/auth/password", json!({"current_password": TEST_PASSWORD, "new_password": "yeni-parola-99"})).await;
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        assert_eq!(laptop.get("/api/me").await.status(), StatusCode::OK, "this session stays");
        assert_eq!(phone.get("/api/me").await.status(), StatusCode::UNAUTHORIZED, "other sessions end");
        app.login("fatma@test.local", "yeni-parola-99").await;
    }
}

both_backends! {
    async fn only_admins_manage_users(app) {
        let rep = app.login_as("sales").await;
        let manager = app.login_as("manager").await;
        let admin = app.login_as("admin").await;
        for session in [&rep, &manager] {
            assert_eq!(session.get("/api/admin/users").await.status(), StatusCode::FORBIDDEN);
            let r = session
                .post("/api/admin/users", json!({"email": "x@test.local", "name": "X", "role": "sales", "password": "parola-1234"}))
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            assert_eq!(session.get("/api/admin/audit").await.status(), StatusCode::FORBIDDEN);
        }
        assert_eq!(admin.get("/api/admin/users").await.status(), StatusCode::OK);
        let me: Value = rep.get("/api/me").await.json().await.expect("json");
        assert_eq!(me["scope"], "own");
        assert!(me["permissions"].get("admin").is_none());
        assert_eq!(me["permissions"]["customers"], json!(["view", "edit"]));
    }
}

both_backends! {
    async fn admins_create_edit_and_audit_users(app) {
        let admin = app.login_as("admin").await;
        let created = admin
            .post("/api/admin/users", json!({"email": "Yeni@Test.local", "name": "Yeni Kişi", "role": "sales", "password": "parola-1234"}))
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let user: Value = created.json().await.expect("json");
        assert_eq!(user["email"], "yeni@test.local");
        let id = user["id"].as_str().expect("id").to_string();

        let dup = admin
            .post("/api/admin/users", json!({"email": "yeni@test.local", "name": "Dup", "role": "sales", "password": "parola-1234"}))
            .await;
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        let bad_role = admin
            .post("/api/admin/users", json!({"email": "z@test.local", "name": "Z", "role": "wizard", "password": "parola-1234"}))
            .await;
        assert_eq!(bad_role.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err: Value = bad_role.json().await.expect("json");
        assert!(err["fields"]["role"].as_str().expect("field error").contains("sales"));
        let unknown_field = admin
            .post("/api/admin/users", json!({"email": "q@test.local", "name": "Q", "role": "sales", "password": "parola-1234", "is_root": true}))
            .await;
        assert_eq!(unknown_field.status(), StatusCode::UNPROCESSABLE_ENTITY);

        let promoted = admin.patch(&format!("/api/admin/users/{id}"), json!({"expected_version": 1, "role": "manager"})).await;
        assert_eq!(promoted.status(), StatusCode::OK);
        let promoted: Value = promoted.json().await.expect("json");
        assert_eq!(promoted["role"], "manager");
        assert_eq!(promoted["version"], 2);
        let stale = admin.patch(&format!("/api/admin/users/{id}"), json!({"expected_version": 1, "name": "Eski"})).await;
        assert_eq!(stale.status(), StatusCode::CONFLICT);
        let err: Value = stale.json().await.expect("json");
        assert_eq!(err["code"], "stale_version");

        let audit: Value = admin.get("/api/admin/audit?action=user.role_changed").await.json().await.expect("json");
        let entry = &audit.as_array().expect("list")[0];
        assert_eq!(entry["target_id"], id.as_str());
        assert_eq!(entry["details"]["from"], "sales");
        assert_eq!(entry["details"]["to"], "manager");
        assert_eq!(entry["actor_id"], admin.user_id.as_str());
        assert!(entry["ip"].as_str().is_some());
        let all: Value = admin.get("/api/admin/audit").await.json().await.expect("json");
        let actions: Vec<&str> = all.as_array().expect("list").iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"user.created") && actions.contains(&"auth.login"), "{actions:?}");
    }
}

both_backends! {
    async fn offboarding_previews_then_ends_sessions_and_tokens_in_one_step(app) {
        let admin = app.login_as("admin").await;
        let leaving_id = app.create_user("ayrilan@test.local", "sales").await;
        let receiver_id = app.create_user("devralan@test.local", "sales").await;
        let leaving = app.login("ayrilan@test.local", TEST_PASSWORD).await;
        let token: Value = leaving.post("/api/me/tokens", json!({"name": "t", "scopes": ["*"]})).await.json().await.expect("json");
        let token = token["token"].as_str().expect("token").to_string();

        let preview: Value = admin
            .get(&format!("/api/admin/users/{leaving_id}/offboarding?to_user={receiver_id}"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(preview["sessions"], 1);
        assert_eq!(preview["tokens"], 1);
        assert_eq!(preview["recipients"][0]["id"], receiver_id.to_string());
        // The preview changed nothing.
        assert_eq!(leaving.get("/api/me").await.status(), StatusCode::OK);

        let to_self = admin.post(&format!("/api/admin/users/{leaving_id}/offboard"), json!({"to_user": leaving_id})).await;
        assert_eq!(to_self.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let both = admin.post(&format!("/api/admin/users/{leaving_id}/offboard"), json!({})).await;
        assert_eq!(both.status(), StatusCode::UNPROCESSABLE_ENTITY);

        let report = admin.post(&format!("/api/admin/users/{leaving_id}/offboard"), json!({"to_user": receiver_id})).await;
        assert_eq!(report.status(), StatusCode::OK);
        let report: Value = report.json().await.expect("json");
        assert_eq!(report["sessions_ended"], 1);
        assert_eq!(report["tokens_revoked"], 1);
        assert_eq!(report["user"]["active"], false);

        assert_eq!(leaving.get("/api/me").await.status(), StatusCode::UNAUTHORIZED, "session ended at once");
        let with_token = reqwest::Client::new().get(app.url("/api/me")).bearer_auth(&token).send().await.expect("sent");
        assert_eq!(with_token.status(), StatusCode::UNAUTHORIZED, "token revoked at once");
        let relogin = app.post_json("/api/auth/login", &json!({"email": "ayrilan@test.local", "password": TEST_PASSWORD})).await;
        assert_eq!(relogin.status(), StatusCode::UNAUTHORIZED);
        let err: Value = relogin.json().await.expect("json");
        assert_eq!(err["code"], "account_deactivated");

        let audit: Value = admin.get("/api/admin/audit?action=user.offboarded").await.json().await.expect("json");
        assert_eq!(audit[0]["target_id"], leaving_id.to_string());
        // Handing over to a deactivated user is refused.
        let third = app.create_user("ucuncu@test.local", "sales").await;
        let refused = admin.post(&format!("/api/admin/users/{third}/offboard"), json!({"to_user": leaving_id})).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

both_backends! {
    async fn offboarding_to_a_team_needs_another_active_member(app) {
        let admin = app.login_as("admin").await;
        let team: Value = admin.post("/api/admin/teams", json!({"name": "İzmir"})).await.json().await.expect("json");
        let team_id = team["id"].as_str().expect("id").to_string();
        let leaving = app.create_user("solo@test.local", "sales").await;
        let patched = admin.patch(&format!("/api/admin/users/{leaving}"), json!({"expected_version": 1, "team_id": team_id})).await;
        assert_eq!(patched.status(), StatusCode::OK);
        let alone = admin.get(&format!("/api/admin/users/{leaving}/offboarding?to_team={team_id}")).await;
        assert_eq!(alone.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let mate = app.create_user("mate@test.local", "sales").await;
        admin.patch(&format!("/api/admin/users/{mate}"), json!({"expected_version": 1, "team_id": team_id})).await;
        let preview: Value = admin
            .get(&format!("/api/admin/users/{leaving}/offboarding?to_team={team_id}"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(preview["recipients"].as_array().map(Vec::len), Some(1));
        assert_eq!(preview["recipients"][0]["id"], mate.to_string());
    }
}

both_backends! {
    async fn deactivating_a_user_ends_their_session_at_once(app) {
        let admin = app.login_as("admin").await;
        let rep = app.login_as("sales").await;
        assert_eq!(rep.get("/api/me").await.status(), StatusCode::OK);
        let r = admin.post(&format!("/api/admin/users/{}/deactivate", rep.user_id), json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(rep.get("/api/me").await.status(), StatusCode::UNAUTHORIZED);
        let own = admin.post(&format!("/api/admin/users/{}/deactivate", admin.user_id), json!({})).await;
        assert_eq!(own.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

both_backends! {
    async fn oversized_and_malformed_bodies_get_clear_json_errors(app) {
        let huge = "x".repeat(3 * 1024 * 1024);
        // The server answers 413 before reading the body and then closes that
        // connection; a pooled client could race to reuse it, so the oversized
        // request goes on a connection of its own.
        let r = reqwest::Client::new()
            .post(app.url("/api/auth/login"))
            .header("connection", "close")
            .json(&json!({"email": huge, "password": "p"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let err: Value = r.json().await.expect("json");
        assert_eq!(err["code"], "payload_too_large");
        let r = app
            .client
            .post(app.url("/api/auth/login"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let err: Value = r.json().await.expect("json");
        assert_eq!(err["code"], "malformed_json");
        let r = app.post_json("/api/auth/login", &json!({"email": 5})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

both_backends! {
    async fn the_demo_seed_creates_staff_once(app) {
        let definitions = akis_engine::app::load_definitions(&app.config).expect("definitions");
        akis_engine::demo::seed(&app.db, &definitions).await.expect("seed");
        akis_engine::demo::seed(&app.db, &definitions).await.expect("seeding twice is harmless");
        let admin = app.login(akis_engine::demo::ADMIN_EMAIL, akis_engine::demo::ADMIN_PASSWORD).await;
        let users: Value = admin.get("/api/admin/users").await.json().await.expect("json");
        let roles: Vec<&str> = users.as_array().expect("list").iter().filter_map(|u| u["role"].as_str()).collect();
        assert_eq!(roles.len(), akis_engine::demo::STAFF.len());
        assert_eq!(roles.iter().filter(|r| **r == "sales").count(), 2);
        assert!(roles.contains(&"manager") && roles.contains(&"operations"));
        // Demo customers: through the real intake, spread over the stages, seeded once.
        let customers: i64 = akis_engine::read!(&app.db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM customers").fetch_one(pool).await
        }).expect("count");
        assert!(customers >= akis_engine::demo::DEMO_CUSTOMERS as i64 - 10, "{customers} demo customers");
        let board: Value = admin.get("/api/pipelines/sales/board").await.json().await.expect("json");
        let filled = board["columns"].as_array().expect("columns").iter().filter(|c| c["count"].as_i64() > Some(0)).count();
        assert!(filled >= 6, "demo cards in every stage: {filled}");
        let moved: i64 = akis_engine::read!(&app.db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM timeline_events WHERE kind = 'stage_changed'").fetch_one(pool).await
        }).expect("count");
        assert!(moved > 100, "demo history: {moved} stage changes");
        // Sold demo customers have their delivery work orders, opened once.
        let orders: Value = admin.get("/api/work-orders").await.json().await.expect("json");
        let orders = orders.as_array().expect("list");
        assert!(!orders.is_empty() && orders.len() <= 3, "{} demo work orders", orders.len());
        assert!(orders.iter().all(|o| o["definition"] == "teslimat_kurulum" && o["card_id"].is_string()));
    }
}
