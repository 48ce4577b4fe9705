//! Real time over Socket.IO, tested with the real npm `socket.io-client`
//! (`tests/realtime/client.mjs`): authentication and Origin, policy-true audiences,
//! operation ids, resume without gaps, batching, reassignment, subscriptions, offboarding,
//! and delivery across server and worker processes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::both_backends;
use crate::helpers::{TestApp, TestSession, repo_root};

/// How long a client waits for an event it expects (a loaded CI machine can take seconds;
/// a correct run never waits this long).
const WAIT: Duration = Duration::from_secs(20);

/// Whether Node.js and the client package are here. CI must have them; elsewhere the
/// realtime tests are skipped with a loud notice.
fn node_ready() -> bool {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && repo_root()
            .join("tests/realtime/node_modules/socket.io-client")
            .is_dir();
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI needs Node.js and `npm ci` in tests/realtime (see .ci/run)"
        );
        eprintln!(
            "\n!!! Node.js or tests/realtime/node_modules is missing: SKIPPING this realtime test.\n!!! Run `npm ci` in tests/realtime.\n"
        );
    }
    ok
}

/// One socket.io-client process.
struct JsClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Events received and not yet consumed by an `expect`.
    seen: Vec<Value>,
}

impl Drop for JsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl JsClient {
    fn start(base: &str, args: &[&str]) -> JsClient {
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/realtime/client.mjs"))
            .arg(base)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        JsClient {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// A client logged in as `session` (its cookie), from this server's own origin.
    async fn connected(base: &str, session: &TestSession, after: Option<i64>) -> JsClient {
        let mut args = vec!["--cookie", session.cookie.as_str(), "--origin", base];
        let after = after.map(|a| a.to_string());
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let mut client = JsClient::start(base, &args);
        client.expect("connect").await;
        client.expect("ready").await;
        client
    }

    async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(WAIT, self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    /// The first not-yet-consumed event named `event` (waiting for it).
    async fn expect(&mut self, event: &str) -> Value {
        self.expect_where(event, |_| true).await
    }

    async fn expect_where(&mut self, event: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self
            .seen
            .iter()
            .position(|v| v["event"] == event && pred(&v["data"]))
        {
            return self.seen.remove(i);
        }
        loop {
            let Some(v) = self.next().await else {
                panic!("no `{event}` arrived; got {:#?}", self.seen);
            };
            if v["event"] == event && pred(&v["data"]) {
                return v;
            }
            self.seen.push(v);
        }
    }

    fn send(&mut self, command: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("command sent");
        stdin.flush().expect("flushed");
    }

    async fn close(mut self) {
        self.send(json!({"cmd": "close"}));
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.lines.recv().await.is_some() {}
        })
        .await;
    }

    /// Everything received so far and within `quiet` more (nothing consumed).
    async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        while let Ok(Some(v)) = tokio::time::timeout(quiet, self.lines.recv()).await {
            self.seen.push(v);
        }
        self.seen.clone()
    }
}

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

async fn assign(admin: &TestSession, customer: &str, owners: &[&str]) {
    let r = admin
        .post(
            "/api/customers/bulk-assign",
            json!({"customer_ids": [customer], "add": owners, "replace": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn version_of(session: &TestSession, card: &str) -> i64 {
    let c: Value = session
        .get(&format!("/api/cards/{card}"))
        .await
        .json()
        .await
        .unwrap();
    c["version"].as_i64().unwrap()
}

async fn move_with_op(session: &TestSession, card: &str, to: &str, op: &str) {
    let version = version_of(session, card).await;
    let r = session
        .client
        .post(session.url(&format!("/api/cards/{card}/move")))
        .header("x-csrf-token", &session.csrf)
        .header("x-client-op", op)
        .json(&json!({"to": to, "expected_version": version}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn user(app: &TestApp, role: &str) -> TestSession {
    app.login_as(role).await
}

both_backends! {
    async fn a_socket_needs_a_login_and_a_browser_origin_of_its_own(app) {
        if !node_ready() { return; }
        let mut anonymous = JsClient::start(&app.address, &[]);
        let refused = anonymous.expect("connect_error").await;
        assert!(refused["message"].as_str().unwrap().contains("not logged in"), "{refused}");

        let admin = user(&app, "admin").await;
        let mut foreign = JsClient::start(&app.address, &["--cookie", &admin.cookie, "--origin", "https://evil.example"]);
        let refused = foreign.expect("connect_error").await;
        assert!(refused["message"].as_str().unwrap().contains("origin https://evil.example is not allowed"), "{refused}");

        let mut stale = JsClient::start(&app.address, &["--cookie", "akis_session=not-a-session", "--origin", &app.address]);
        stale.expect("connect_error").await;

        JsClient::connected(&app.address, &admin, None).await.close().await;
        // A non-browser client (no Origin) with an API token.
        let r = admin.post("/api/me/tokens", json!({"name": "socket", "scopes": ["*"]})).await;
        let token: Value = r.json().await.unwrap();
        let mut bot = JsClient::start(&app.address, &["--token", token["token"].as_str().unwrap()]);
        bot.expect("connect").await;
        bot.expect("ready").await;
    }
}

both_backends! {
    async fn a_move_reaches_those_who_may_see_it_and_only_them(app) {
        if !node_ready() { return; }
        let admin = user(&app, "admin").await;
        let a = user(&app, "sales").await;
        let b = user(&app, "sales").await;
        let c = user(&app, "sales").await;
        let (card, customer) = lead(&admin, "Ayla Korkmaz", "0532 200 00 01").await;
        assign(&admin, &customer, &[&a.user_id, &b.user_id]).await;
        let mut on_a = JsClient::connected(&app.address, &a, None).await;
        let mut on_b = JsClient::connected(&app.address, &b, None).await;
        let mut on_c = JsClient::connected(&app.address, &c, None).await;

        move_with_op(&a, &card, "gorusuluyor", "op-move-1").await;
        let seen_by_a = on_a.expect("card.moved").await;
        assert_eq!(seen_by_a["data"]["op"], "op-move-1", "the mover gets its own op id back");
        assert_eq!(seen_by_a["data"]["data"]["card"]["id"], card.as_str());
        assert_eq!(seen_by_a["data"]["data"]["from"], "potansiyel");
        assert_eq!(seen_by_a["data"]["data"]["to"], "gorusuluyor");
        assert_eq!(seen_by_a["data"]["by"]["id"], a.user_id.as_str());
        assert_eq!(seen_by_a["data"]["data"]["card"]["fields"]["name"], "Ayla Korkmaz", "a patch with the card's layout fields");
        let seen_by_b = on_b.expect("card.moved").await;
        assert_eq!(seen_by_b["data"]["position"], seen_by_a["data"]["position"]);

        // Something C may see, made after the move: when it arrives, the move would have too.
        let (_, theirs) = lead(&admin, "Cem Yıldız", "0532 200 00 02").await;
        assign(&admin, &theirs, &[&c.user_id]).await;
        on_c.expect_where("card.added", |d| d["data"]["card"]["customer_id"] == theirs.as_str()).await;
        let everything = on_c.drain(Duration::from_millis(200)).await;
        assert!(
            !everything.iter().any(|e| e.to_string().contains(&card) || e.to_string().contains("Ayla")),
            "C may not see A's customer: {everything:#?}"
        );
    }
}

both_backends! {
    async fn a_reconnecting_client_gets_exactly_what_it_missed_in_order(app) {
        if !node_ready() { return; }
        let admin = user(&app, "admin").await;
        let (card, _) = lead(&admin, "Berk Aydın", "0532 200 00 03").await;
        let mut client = JsClient::connected(&app.address, &admin, None).await;
        move_with_op(&admin, &card, "gorusuluyor", "m0").await;
        let last = client.expect("card.moved").await["data"]["position"].as_i64().unwrap();
        client.close().await;

        move_with_op(&admin, &card, "takip_edilecek", "m1").await;
        move_with_op(&admin, &card, "gorusuluyor", "m2").await;
        move_with_op(&admin, &card, "takip_edilecek", "m3").await;

        let mut again = JsClient::start(&app.address, &["--cookie", &admin.cookie, "--origin", &app.address, "--after", &last.to_string()]);
        again.expect("connect").await;
        let ready = again.expect("ready").await;
        let replayed: Vec<Value> = again.seen.iter().filter(|e| e["event"] == "card.moved").cloned().collect();
        let ops: Vec<&str> = replayed.iter().map(|e| e["data"]["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["m1", "m2", "m3"], "exactly the missed moves, in order");
        let positions: Vec<i64> = replayed.iter().map(|e| e["data"]["position"].as_i64().unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]) && positions[0] > last);
        assert!(ready["data"]["position"].as_i64().unwrap() >= positions[2]);
        // The HTTP fallback says the same.
        let page: Value = admin.get(&format!("/api/events?after={last}")).await.json().await.unwrap();
        let http_ops: Vec<&str> = page["events"].as_array().unwrap().iter()
            .filter(|e| e["type"] == "card.moved").map(|e| e["op"].as_str().unwrap()).collect();
        assert_eq!(http_ops, ["m1", "m2", "m3"]);
    }
}

both_backends! {
    async fn reassignment_takes_the_card_from_the_old_owner_and_gives_it_to_the_new(app) {
        if !node_ready() { return; }
        let admin = user(&app, "admin").await;
        let a = user(&app, "sales").await;
        let c = user(&app, "sales").await;
        let (card, customer) = lead(&admin, "Deniz Uçar", "0532 200 00 04").await;
        assign(&admin, &customer, &[&a.user_id]).await;
        let mut on_a = JsClient::connected(&app.address, &a, None).await;
        let mut on_c = JsClient::connected(&app.address, &c, None).await;
        assign(&admin, &customer, &[&c.user_id]).await;
        let removed = on_a.expect("card.removed").await;
        assert_eq!(removed["data"]["data"]["card_id"], card.as_str());
        assert_eq!(removed["data"]["data"]["reason"], "reassigned");
        let added = on_c.expect("card.added").await;
        assert_eq!(added["data"]["data"]["card"]["id"], card.as_str());
        // The HTTP replay applies the same rule for a rep who lost the card.
        let page: Value = a.get("/api/events?after=0").await.json().await.unwrap();
        let kinds: Vec<&str> = page["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"card.removed"), "{kinds:?}");
    }
}

both_backends! {
    async fn a_bulk_move_reaches_each_client_as_one_event(app) {
        if !node_ready() { return; }
        let admin = user(&app, "admin").await;
        let mut cards = Vec::new();
        for i in 0..20 {
            cards.push(lead(&admin, &format!("Toplu {i}"), &format!("0532 300 00 {i:02}")).await.0);
        }
        let mut client = JsClient::connected(&app.address, &admin, None).await;
        let items: Vec<Value> = cards.iter().map(|c| json!({"card_id": c})).collect();
        let r = admin.post("/api/cards/bulk-move", json!({"cards": items, "to": "gorusuluyor"})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let batch = client.expect("cards.moved").await;
        let moves = batch["data"]["data"]["moves"].as_array().unwrap();
        assert_eq!(moves.len(), 20);
        assert!(moves.iter().all(|m| m["to"] == "gorusuluyor" && m["from"] == "potansiyel"));
        let rest = client.drain(Duration::from_millis(600)).await;
        assert!(!rest.iter().any(|e| e["event"] == "card.moved" || e["event"] == "cards.moved"), "{rest:#?}");
        // A single move stays a plain card.moved.
        move_with_op(&admin, &cards[0], "takip_edilecek", "single").await;
        client.expect_where("card.moved", |d| d["op"] == "single").await;
    }
}

both_backends! {
    async fn a_subscribed_customer_streams_its_timeline_to_those_who_may_see_it(app) {
        if !node_ready() { return; }
        let admin = user(&app, "admin").await;
        let a = user(&app, "sales").await;
        let c = user(&app, "sales").await;
        let (_, customer) = lead(&admin, "Ece Tan", "0532 200 00 05").await;
        assign(&admin, &customer, &[&a.user_id]).await;
        let mut on_a = JsClient::connected(&app.address, &a, None).await;
        let mut on_c = JsClient::connected(&app.address, &c, None).await;
        on_a.send(json!({"cmd": "subscribe", "customer_id": customer}));
        assert_eq!(on_a.expect("ack").await["reply"]["ok"], true);
        on_c.send(json!({"cmd": "subscribe", "customer_id": customer}));
        assert_eq!(on_c.expect("ack").await["reply"]["ok"], false, "C may not see the customer");
        let r = admin.post(&format!("/api/customers/{customer}/notes"), json!({"body": "Aradı, yarın uğrayacak"})).await;
        assert!(r.status().is_success());
        let added = on_a.expect("timeline.added").await;
        assert_eq!(added["data"]["data"]["event"]["kind"], "note");
        let r = admin.patch(&format!("/api/customers/{customer}"), json!({"expected_version": current_version(&admin, &customer).await, "name": "Ece Tan Yılmaz"})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let updated = on_a.expect("customer.updated").await;
        assert_eq!(updated["data"]["data"]["changes"]["name"]["to"], "Ece Tan Yılmaz");
        let rest = on_c.drain(Duration::from_millis(300)).await;
        assert!(!rest.iter().any(|e| e["event"] == "timeline.added" || e["event"] == "customer.updated"), "{rest:#?}");
        on_a.send(json!({"cmd": "unsubscribe", "customer_id": customer}));
        on_a.expect("ack").await;
    }
}

async fn current_version(session: &TestSession, customer: &str) -> i64 {
    let c: Value = session
        .get(&format!("/api/customers/{customer}"))
        .await
        .json()
        .await
        .unwrap();
    c["version"].as_i64().unwrap()
}

both_backends! {
    async fn offboarding_and_role_changes_reach_open_sockets_at_once(app) {
        if !node_ready() { return; }
        let admin = user(&app, "admin").await;
        let leaving = user(&app, "sales").await;
        let heir = user(&app, "sales").await;
        let mut socket = JsClient::connected(&app.address, &leaving, None).await;
        let r = admin.post(&format!("/api/admin/users/{}/offboard", leaving.user_id), json!({"to_user": heir.user_id})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let gone = socket.expect("disconnect").await;
        assert!(gone["reason"].is_string());

        // A manager (sees every customer) demoted to sales (own only) stops hearing others' moves.
        let manager_email = format!("yonetici-{}@test.local", uuid::Uuid::now_v7().simple());
        let manager_id = app.create_user(&manager_email, "manager").await;
        let manager = app.login(&manager_email, crate::helpers::TEST_PASSWORD).await;
        let (card, _) = lead(&admin, "Fırat Gül", "0532 200 00 06").await;
        let mut on_manager = JsClient::connected(&app.address, &manager, None).await;
        move_with_op(&admin, &card, "gorusuluyor", "before").await;
        on_manager.expect_where("card.moved", |d| d["op"] == "before").await;
        let u: Value = admin.get(&format!("/api/admin/users/{manager_id}")).await.json().await.unwrap();
        let r = admin.patch(&format!("/api/admin/users/{manager_id}"), json!({"role": "sales", "expected_version": u["version"]})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        // The role change reaches the socket before any later event is pushed.
        move_with_op(&admin, &card, "takip_edilecek", "after").await;
        let (own_card, own_customer) = lead(&admin, "Gizem Ak", "0532 200 00 07").await;
        assign(&admin, &own_customer, &[&manager_id.to_string()]).await;
        on_manager.expect_where("card.added", |d| d["data"]["card"]["id"] == own_card.as_str()).await;
        let rest = on_manager.drain(Duration::from_millis(200)).await;
        assert!(!rest.iter().any(|e| e["data"]["op"] == "after"), "a sales rep does not see others' cards: {rest:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// Several processes on PostgreSQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_clients_on_every_node_and_from_worker_processes() {
    if !node_ready() {
        return;
    }
    let Some(database) =
        crate::helpers::fresh_database(akis_engine::storage::Backend::Postgres).await
    else {
        return;
    };
    let url = database.url();
    let files = crate::helpers::definitions_copy();
    let (_one, first) = crate::helpers::serve(&url, files.path(), &["--no-workers"]).await;
    let (_two, second) = crate::helpers::serve(&url, files.path(), &["--no-workers"]).await;
    let db = crate::helpers::open(&database).await;
    crate::helpers::create_user(&db, "admin@cok.test", "admin").await;
    let rep_id = crate::helpers::create_user(&db, "temsilci@cok.test", "sales").await;
    let on_first = crate::helpers::login_at(&first, "admin@cok.test").await;
    let on_second = crate::helpers::login_at(&second, "admin@cok.test").await;
    let rep = crate::helpers::login_at(&first, "temsilci@cok.test").await;
    let mut client = JsClient::connected(&first, &on_first, None).await;
    let mut rep_client = JsClient::connected(&first, &rep, None).await;

    // A move made through the second node reaches a client of the first.
    let (card, customer) = lead(&on_second, "Hakan Ertaş", "0532 200 00 08").await;
    client
        .expect_where("card.added", |d| d["data"]["card"]["id"] == card.as_str())
        .await;
    move_with_op(&on_second, &card, "gorusuluyor", "via-second").await;
    client
        .expect_where("card.moved", |d| d["op"] == "via-second")
        .await;

    // A worker process (no HTTP server) writes a notification; the first node pushes it.
    let worker = {
        let mut cmd = crate::helpers::akis_command();
        cmd.arg("worker")
            .env("AKIS_DATABASE_URL", &url)
            .env("AKIS_DEFINITIONS", files.path())
            .env("AKIS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::helpers::ChildGuard(cmd.spawn().expect("akis worker starts"))
    };
    assign(&on_second, &customer, &[&rep_id.to_string()]).await;
    let r = on_second
        .post(
            &format!("/api/customers/{customer}/notes"),
            json!({"body": "@temsilci bu müşteriyi ara"}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let note = rep_client.expect("notification").await;
    assert!(note["data"]["data"]["body"].is_string(), "{note}");
    assert!(note["data"]["data"]["unread"].as_i64().unwrap() >= 1);
    drop(worker);
    db.close().await;
}
