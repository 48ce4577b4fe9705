//! The `akis` binary: bad configuration fails fast with one human line; the server starts,
//! answers and stops gracefully.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn akis() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_akis"));
    // Never inherit the developer's configuration.
    for (key, _) in std::env::vars() {
        if key.starts_with("AKIS_") || key == "RUST_BACKTRACE" {
            cmd.env_remove(key);
        }
    }
    cmd.env("AKIS_LOG", "error");
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs to completion and checks the failure contract: non-zero exit, exactly one
/// `error:` line (the last), no panic, no backtrace, and within 30 s.
fn assert_fails_with(cmd: &mut Command, expected: &str) -> Output {
    let started = Instant::now();
    let output = cmd.output().expect("akis runs");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        error_lines.len(),
        1,
        "one error line expected; stderr: {stderr}"
    );
    assert_eq!(stderr.lines().last(), Some(error_lines[0]), "{stderr}");
    assert!(
        error_lines[0].contains(expected),
        "expected {expected:?} in {stderr}"
    );
    output
}

#[test]
fn an_unknown_database_scheme_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_fails_with(
        akis()
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("AKIS_DATABASE_URL", "mysql://root@localhost/akis"),
        "unsupported database URL scheme `mysql`",
    );
}

#[test]
fn an_unwritable_sqlite_path_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_fails_with(
        akis().current_dir(dir.path()).args([
            "migrate",
            "--database-url",
            "sqlite:/proc/akis-test/akis.db",
        ]),
        "cannot open SQLite database /proc/akis-test/akis.db",
    );
}

#[test]
fn an_unreachable_postgres_is_refused_quickly() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_fails_with(
        akis().current_dir(dir.path()).args(["migrate"]).env(
            "AKIS_DATABASE_URL",
            "postgres://postgres:secretpw@127.0.0.1:1/akis",
        ),
        "cannot connect to PostgreSQL at postgres://postgres:***@127.0.0.1:1/akis",
    );
}

#[test]
fn the_database_password_is_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = akis()
        .current_dir(dir.path())
        .args(["migrate"])
        .env(
            "AKIS_DATABASE_URL",
            "postgres://postgres:secretpw@127.0.0.1:1/akis",
        )
        .output()
        .expect("runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains("secretpw"), "{all}");
}

#[test]
fn a_port_in_use_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    assert_fails_with(
        akis()
            .current_dir(dir.path())
            .args(["serve", "--listen", &addr]),
        &format!("cannot listen on {addr}"),
    );
}

#[test]
fn a_bad_listen_address_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_fails_with(
        akis()
            .current_dir(dir.path())
            .args(["serve"])
            .env("AKIS_LISTEN", "nowhere"),
        "listen",
    );
}

#[test]
fn migrate_creates_the_default_sqlite_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = akis()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("up to date"));
    assert!(
        dir.path().join("akis.db").exists(),
        "default database is ./akis.db"
    );
}

#[test]
fn migrate_creates_a_missing_postgres_database() {
    let Some(admin) = crate::helpers::postgres_admin_url() else {
        return;
    };
    let name = format!("akis_cli_{}", uuid::Uuid::now_v7().simple());
    let url = url_with_database(&admin, &name);
    let dir = tempfile::tempdir().expect("tempdir");
    let output = akis()
        .current_dir(dir.path())
        .args(["migrate", "--database-url", &url])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Clean up through the test harness's drop logic.
    drop(crate::helpers::TestDatabase::Postgres {
        admin_url: admin,
        name,
    });
}

fn url_with_database(admin: &str, name: &str) -> String {
    let (base, _) = admin.rsplit_once('/').expect("url has a database part");
    format!("{base}/{name}")
}

/// Starts the real binary on port 0, reads the bound address from its log, checks
/// `/healthz`, then stops it with SIGTERM and expects a clean exit.
#[tokio::test]
async fn serve_starts_answers_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = akis()
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("AKIS_LOG", "info")
        .env("AKIS_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server logs its address");
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if json["message"] == "listening" {
            break json["addr"].as_str().expect("addr field").to_string();
        }
    };
    let body: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "ok");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}

#[test]
fn user_create_makes_an_admin_who_can_log_in_and_refuses_bad_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str], password: &str| {
        let mut child = akis()
            .current_dir(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write");
        child.wait_with_output().expect("output")
    };
    let ok = run(
        &[
            "user",
            "create",
            "--email",
            "Kurucu@Firma.com.tr",
            "--name",
            "Kurucu",
        ],
        "ilk-parola-1",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("kurucu@firma.com.tr"));
    let dup = run(
        &[
            "user",
            "create",
            "--email",
            "kurucu@firma.com.tr",
            "--name",
            "Again",
        ],
        "ilk-parola-1",
    );
    assert!(!dup.status.success());
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("already"),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );
    let role = run(
        &[
            "user",
            "create",
            "--email",
            "x@firma.com.tr",
            "--name",
            "X",
            "--role",
            "wizard",
        ],
        "ilk-parola-1",
    );
    assert!(String::from_utf8_lossy(&role.stderr).contains("unknown role `wizard`"));
    let weak = run(
        &["user", "create", "--email", "y@firma.com.tr", "--name", "Y"],
        "123",
    );
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 8"));
}

fn fixture(name: &str) -> std::path::PathBuf {
    crate::helpers::repo_root()
        .join("engine/tests/fixtures/definitions")
        .join(name)
}

#[test]
fn check_accepts_the_shipped_definitions() {
    let output = akis()
        .arg("check")
        .arg(crate::helpers::repo_root())
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("error:"));
}

#[test]
fn check_reports_errors_like_a_compiler_and_exits_1() {
    let output = akis()
        .arg("check")
        .arg(fixture("unknown_stage"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("workflows/sales.yaml:18:13: error: unknown stage `randvu`"),
        "{stderr}"
    );
    assert!(stderr.contains("help: did you mean `randevu`?"), "{stderr}");
}

#[test]
fn serve_refuses_to_start_on_invalid_definitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = akis()
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--definitions")
        .arg(fixture("rhai_syntax_error"))
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("definitions") && stderr.contains(".rhai:"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn schema_prints_a_json_schema() {
    let output = akis().arg("schema").output().expect("runs");
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert!(
        schema["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("json-schema")),
        "{schema}"
    );
}
