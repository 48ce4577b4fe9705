//! Realtime delivery benchmark: N real socket.io-client connections (Node.js,
//! `tests/realtime/load.mjs`) on loopback; one card move → the time until every client has
//! the `card.moved` event (p50 / p99 / max over all clients), and the server's memory.
//! Baseline in the same run: raw socketioxide (one room, one `emit` of a payload of the
//! same shape and size), in its own process like ours.
//!
//! ```text
//! cargo bench --bench realtime -- [--clients 1000] [--runs 7] [--backend sqlite|postgres]
//! ```
//! PostgreSQL comes from `AKIS_BENCH_POSTGRES_URL` (or `AKIS_TEST_POSTGRES_URL`); a fresh
//! database is created for the run. Needs Node.js and `npm ci` in `tests/realtime`.
//!
//! Ours is the whole path: the move's transaction writes the event, the node's hub reads
//! the log, checks each socket's permission with the policy and emits to it. All clients
//! share one admin API token (1,000 logins would only measure argon2).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

struct Args {
    clients: usize,
    runs: usize,
    backend: String,
}

fn args() -> Args {
    let mut out = Args {
        clients: 1000,
        runs: 7,
        backend: "sqlite".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--clients" => out.clients = it.next().and_then(|v| v.parse().ok()).unwrap_or(1000),
            "--runs" => out.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(7),
            "--backend" => out.backend = it.next().unwrap_or_else(|| "sqlite".into()),
            _ => {}
        }
    }
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Node.js load generator.
struct Load {
    _child: Guard,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
}

impl Load {
    fn start(url: &str, clients: usize, token: Option<&str>) -> Load {
        let mut cmd = Command::new("node");
        cmd.arg(repo().join("tests/realtime/load.mjs"))
            .arg(url)
            .arg(clients.to_string())
            .arg("card.moved");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts (install Node.js and run `npm ci` in tests/realtime)");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Load {
            _child: Guard(child),
            stdin,
            lines: rx,
        }
    }

    fn next(&self, within: Duration) -> Value {
        self.lines
            .recv_timeout(within)
            .expect("the load generator answered in time")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        drop(self.stdin.take());
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Run {
    p50: f64,
    p99: f64,
    max: f64,
    received: usize,
    /// When the HTTP answer to the change came back (ms after it was sent).
    answered: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run_of(line: &Value, t0: f64) -> Run {
    let mut latencies: Vec<f64> = line["times"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).map(|t| t - t0).collect())
        .unwrap_or_default();
    latencies.sort_by(f64::total_cmp);
    Run {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or(f64::NAN),
        received: latencies.len(),
        answered: f64::NAN,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

struct Measured {
    runs: Vec<Run>,
    rss_idle: f64,
    rss_connected: f64,
    rss_after: f64,
}

fn wait_healthy(base: &str) {
    let client = reqwest::blocking::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{base} never became healthy");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

// ------------------------------------------------------------------ raw socketioxide

/// The baseline server: socketioxide with one room and an `/emit?seq=` trigger.
fn raw_server() {
    use axum::extract::{Query, State};
    use socketioxide::SocketIo;
    use socketioxide::extract::SocketRef;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (layer, io) = SocketIo::builder().max_buffer_size(1024).build_layer();
        io.ns("/", async |s: SocketRef| {
            s.join("all");
        });
        let app = axum::Router::new()
            .route(
                "/emit",
                axum::routing::get(
                    async |State(io): State<SocketIo>, Query(q): Query<std::collections::HashMap<String, i64>>| {
                        let seq = q.get("seq").copied().unwrap_or(0);
                        let _ = io.to("all").emit("card.moved", &raw_payload(seq)).await;
                        "ok"
                    },
                ),
            )
            .route("/healthz", axum::routing::get(async || "ok"))
            .with_state(io)
            .layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr").port());
        let _ = std::io::stdout().flush();
        axum::serve(listener, app).await.expect("serve");
    });
}

/// A payload of the same shape and size as our `card.moved` envelope.
fn raw_payload(seq: i64) -> Value {
    json!({
        "position": seq, "type": "card.moved", "at": "2026-12-02T18:00:00.123456Z",
        "by": {"id": "019ad4a0-0000-7000-8000-000000000001", "name": "Bench Admin"}, "op": null,
        "data": {
            "pipeline_id": "sales", "from": "potansiyel", "to": "gorusuluyor",
            "card": {
                "id": "019ad4a0-0000-7000-8000-000000000002", "customer_id": "019ad4a0-0000-7000-8000-000000000003",
                "stage_id": "gorusuluyor", "version": 2, "sort_key": "0000000000000000",
                "fields": {"name": "Ayşe Yılmaz", "phone": "+905321234567", "owners": [], "source": "web_form",
                           "last_contact_at": null, "next_reminder_at": null, "appointment_at": null},
                "badges": [{"tr": "Sıcak", "en": "Hot", "color": "#ef4444"}]
            }
        }
    })
}

fn measure_raw(a: &Args) -> Measured {
    let exe = std::env::current_exe().expect("bench binary");
    let mut child = Command::new(exe)
        .env("AKIS_BENCH_ROLE", "raw-server")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("raw server");
    let mut port = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port");
    let pid = child.id();
    let _server = Guard(child);
    let base = format!("http://127.0.0.1:{}", port.trim());
    wait_healthy(&base);
    let rss_idle = rss_mb(pid);
    let load = Load::start(&base, a.clients, None);
    let ready = load.next(Duration::from_secs(120));
    assert_eq!(ready["ready"], a.clients, "every client connected");
    std::thread::sleep(Duration::from_millis(500));
    let rss_connected = rss_mb(pid);
    let http = reqwest::blocking::Client::new();
    let mut runs = Vec::new();
    for seq in 1..=a.runs as i64 {
        std::thread::sleep(Duration::from_millis(300));
        let t0 = now_ms();
        http.get(format!("{base}/emit?seq={seq}"))
            .send()
            .expect("emit");
        runs.push(run_of(&load.next(Duration::from_secs(30)), t0));
    }
    Measured {
        runs,
        rss_idle,
        rss_connected,
        rss_after: rss_mb(pid),
    }
}

// ------------------------------------------------------------------ ours

fn measure_ours(a: &Args) -> Measured {
    let tmp = tempfile::tempdir().expect("tmp");
    let url = match a.backend.as_str() {
        "postgres" => {
            let admin = std::env::var("AKIS_BENCH_POSTGRES_URL")
                .or_else(|_| std::env::var("AKIS_TEST_POSTGRES_URL"))
                .expect("set AKIS_BENCH_POSTGRES_URL for --backend postgres");
            let (base, _) = admin.rsplit_once('/').expect("url with a database");
            format!("{base}/akis_bench_rt_{}", uuid::Uuid::now_v7().simple())
        }
        _ => format!("sqlite:{}", tmp.path().join("akis.db").display()),
    };
    let akis = env!("CARGO_BIN_EXE_akis");
    let env = |cmd: &mut Command| {
        cmd.env("AKIS_DATABASE_URL", &url)
            .env("AKIS_DEFINITIONS", repo())
            .env("AKIS_DATA_DIR", tmp.path().join("data"))
            .env("AKIS_LOG", "warn");
    };
    let mut create = Command::new(akis);
    env(&mut create);
    let mut user = create
        .args([
            "user",
            "create",
            "--email",
            "bench@akis.local",
            "--name",
            "Bench Admin",
            "--role",
            "admin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("akis user create");
    user.stdin
        .take()
        .expect("stdin")
        .write_all(b"bench-password-1\n")
        .expect("password");
    assert!(user.wait().expect("wait").success(), "user created");
    let port = free_port();
    let mut serve = Command::new(akis);
    env(&mut serve);
    let child = serve
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("akis serve");
    let pid = child.id();
    let _server = Guard(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base);
    let http = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "bench@akis.local", "password": "bench-password-1"}))
        .send()
        .and_then(|r| r.json())
        .expect("login");
    let csrf = login["csrf_token"].as_str().expect("csrf").to_string();
    let token: Value = http
        .post(format!("{base}/api/me/tokens"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "bench", "scopes": ["*"]}))
        .send()
        .and_then(|r| r.json())
        .expect("token");
    let token = token["token"].as_str().expect("token").to_string();
    let lead: Value = http
        .post(format!("{base}/api/leads"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "Ayşe Yılmaz", "phone": "0532 123 45 67", "source": "web_form"}))
        .send()
        .and_then(|r| r.json())
        .expect("lead");
    let card = lead["card_id"].as_str().expect("card").to_string();
    let rss_idle = rss_mb(pid);
    let load = Load::start(&base, a.clients, Some(&token));
    let ready = load.next(Duration::from_secs(120));
    assert_eq!(ready["ready"], a.clients, "every client connected");
    std::thread::sleep(Duration::from_millis(500));
    let rss_connected = rss_mb(pid);
    let mut runs = Vec::new();
    let mut version = 1;
    for i in 0..a.runs {
        std::thread::sleep(Duration::from_millis(300));
        let to = if i % 2 == 0 {
            "gorusuluyor"
        } else {
            "takip_edilecek"
        };
        let t0 = now_ms();
        let moved: Value = http
            .post(format!("{base}/api/cards/{card}/move"))
            .header("x-csrf-token", &csrf)
            .json(&json!({"to": to, "expected_version": version}))
            .send()
            .and_then(|r| r.json())
            .expect("move");
        let answered = now_ms() - t0;
        version = moved["card"]["version"].as_i64().expect("moved");
        let mut run = run_of(&load.next(Duration::from_secs(30)), t0);
        run.answered = answered;
        runs.push(run);
    }
    Measured {
        runs,
        rss_idle,
        rss_connected,
        rss_after: rss_mb(pid),
    }
}

fn report(name: &str, m: &Measured, clients: usize) {
    let complete = m.runs.iter().all(|r| r.received == clients);
    println!(
        "{name:<24} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  (medians of {} runs; every client got every event: {complete})  RSS idle {:.0} MB, {clients} connected {:.0} MB, after {:.0} MB",
        median(m.runs.iter().map(|r| r.p50).collect()),
        median(m.runs.iter().map(|r| r.p99).collect()),
        median(m.runs.iter().map(|r| r.max).collect()),
        m.runs.len(),
        m.rss_idle,
        m.rss_connected,
        m.rss_after,
    );
    for (i, r) in m.runs.iter().enumerate() {
        println!(
            "    run {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} clients, change answered after {:.1} ms",
            i + 1,
            r.p50,
            r.p99,
            r.max,
            r.received,
            r.answered
        );
    }
}

fn main() {
    if std::env::var("AKIS_BENCH_ROLE").as_deref() == Ok("raw-server") {
        raw_server();
        return;
    }
    // `cargo bench` passes `--bench`; a plain run with no flags is fine too.
    let a = args();
    println!(
        "realtime delivery: {} clients, {} runs, backend {}",
        a.clients, a.runs, a.backend
    );
    let raw = measure_raw(&a);
    report("raw socketioxide", &raw, a.clients);
    let ours = measure_ours(&a);
    report(&format!("akis ({})", a.backend), &ours, a.clients);
    let p99 = |m: &Measured| median(m.runs.iter().map(|r| r.p99).collect());
    println!(
        "ours/raw p99: {:.2}x (goal: p99 < 100 ms and within 2x raw; RSS < 150 MB)",
        p99(&ours) / p99(&raw)
    );
}
