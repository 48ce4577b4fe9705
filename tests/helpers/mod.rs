//! The test harness: [`spawn_app`] starts the real server on port 0 against a fresh
//! database, and [`both_backends!`] turns one test body into a SQLite and a PostgreSQL test.
//!
//! PostgreSQL databases are cloned from a migrated template (`CREATE DATABASE … TEMPLATE`),
//! which is cheap; creation is serialized across test processes with an advisory lock,
//! since cloning fails while another session is connected to the template. The server is
//! named by `AKIS_TEST_POSTGRES_URL`; when it is unset the PostgreSQL variants are skipped
//! with a loud notice, and when it is set but unreachable they fail.

#![allow(dead_code)]

use std::path::PathBuf;
use std::str::FromStr;

use akis_engine::App;
use akis_engine::config::{Config, DatabaseUrl};
use akis_engine::storage::{Backend, Db};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

/// Variable naming the PostgreSQL server for tests.
pub const PG_ENV: &str = "AKIS_TEST_POSTGRES_URL";

/// A running server and the database behind it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: Db,
    pub backend: Backend,
    pub config: Config,
    /// The server's running definitions (a reload swaps them).
    pub definitions: akis_engine::definitions::LiveDefinitions,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Kept until the test ends (dropping it removes the database).
    database: Option<TestDatabase>,
    /// A definitions folder of the test's own, when it edited a copy.
    files: Option<tempfile::TempDir>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Stops this server and starts a new one on the same database and definitions, as a
    /// process restart would (everything in memory is gone; what was committed stays).
    pub async fn restart(mut self) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.server.take() {
            handle.await.expect("server task ended cleanly");
        }
        let database = self.database.take().expect("database kept");
        let files = self.files.take();
        let mut next = spawn_with(self.config.clone(), database).await;
        next.files = files;
        next
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.server.take() {
            handle.await.expect("server task ended cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Where a test's data lives; dropping it removes the database.
pub enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    pub fn url(&self) -> String {
        match self {
            TestDatabase::Sqlite(dir) => format!("sqlite:{}", dir.path().join("akis.db").display()),
            TestDatabase::Postgres { admin_url, name } => {
                let opts = PgConnectOptions::from_str(admin_url).expect("valid PG url");
                opts.database(name).to_url_lossy().to_string()
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let admin_url = admin_url.clone();
            let name = name.clone();
            // Drop runs outside async context guarantees: use a private runtime on a thread.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(mut conn) = connect_admin(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The repository root: the definitions the tests run against.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The PostgreSQL admin URL, or None (after a loud notice) when tests should skip it.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "\n!!! {PG_ENV} is not set: SKIPPING the PostgreSQL variant of this test.\n!!! Set it (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run it; .ci/run always does.\n"
            );
            None
        }
    }
}

async fn connect_admin(admin_url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(admin_url)?.connect().await
}

/// A fresh database for one test. None only for PostgreSQL when it is not configured.
pub async fn fresh_database(backend: Backend) -> Option<TestDatabase> {
    match backend {
        Backend::Sqlite => Some(TestDatabase::Sqlite(tempfile::tempdir().expect("tempdir"))),
        Backend::Postgres => {
            let admin_url = postgres_admin_url()?;
            let name = create_postgres_database(&admin_url).await;
            Some(TestDatabase::Postgres { admin_url, name })
        }
    }
}

/// Clones a fresh database from the migrated template, creating the template first if
/// this set of migrations has none yet.
async fn create_postgres_database(admin_url: &str) -> String {
    let mut conn = connect_admin(admin_url)
        .await
        .unwrap_or_else(|e| panic!("{PG_ENV} is set but PostgreSQL is unreachable: {e}"));
    let template = format!(
        "akis_tmpl_{}",
        Db::migrations_fingerprint(Backend::Postgres)
    );
    let name = format!("akis_t_{}", uuid::Uuid::now_v7().simple());
    // One lock for every test process: template creation and cloning are serialized.
    sqlx::query("SELECT pg_advisory_lock(727001)")
        .execute(&mut conn)
        .await
        .expect("advisory lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut conn)
            .await
            .expect("query pg_database");
    if !exists {
        // Build under a temporary name and rename when complete, so a crash mid-way never
        // leaves a half-migrated template behind.
        let building = format!("{template}_building");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .expect("drop stale template");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{building}\""
        )))
        .execute(&mut conn)
        .await
        .expect("create template");
        let url = PgConnectOptions::from_str(admin_url)
            .expect("valid url")
            .database(&building)
            .to_url_lossy()
            .to_string();
        let db = Db::connect(&DatabaseUrl::new(url), &Default::default())
            .await
            .expect("connect to template");
        db.migrate().await.expect("migrate template");
        db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        )))
        .execute(&mut conn)
        .await
        .expect("rename template");
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    )))
    .execute(&mut conn)
    .await
    .expect("clone template");
    sqlx::query("SELECT pg_advisory_unlock(727001)")
        .execute(&mut conn)
        .await
        .expect("advisory unlock");
    name
}

/// A configuration for a test server: port 0, the repository's definitions, a private
/// data folder.
pub fn test_config(database: &TestDatabase, data_dir: &std::path::Path) -> Config {
    Config {
        database_url: DatabaseUrl::new(database.url()),
        listen: "127.0.0.1:0".parse().expect("valid addr"),
        definitions: repo_root(),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    }
}

/// Starts the server on a fresh database. None only for PostgreSQL when not configured.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let database = fresh_database(backend).await?;
    let data_dir =
        std::env::temp_dir().join(format!("akis-test-data-{}", uuid::Uuid::now_v7().simple()));
    let config = test_config(&database, &data_dir);
    Some(spawn_with(config, database).await)
}

/// Starts the server on a fresh database with a configuration `edit` adjusted first.
pub async fn spawn_app_with_config(
    backend: Backend,
    edit: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    let database = fresh_database(backend).await?;
    let data_dir =
        std::env::temp_dir().join(format!("akis-test-data-{}", uuid::Uuid::now_v7().simple()));
    let mut config = test_config(&database, &data_dir);
    edit(&mut config);
    Some(spawn_with(config, database).await)
}

/// Starts the server on a fresh database with a copy of the repository's definitions that
/// `edit` changed first (a test's own reminder offsets, a rule it needs).
pub async fn spawn_app_with_definitions(
    backend: Backend,
    edit: fn(&std::path::Path),
) -> Option<TestApp> {
    let database = fresh_database(backend).await?;
    let data_dir =
        std::env::temp_dir().join(format!("akis-test-data-{}", uuid::Uuid::now_v7().simple()));
    let files = definitions_copy();
    edit(files.path());
    let mut config = test_config(&database, &data_dir);
    config.definitions = files.path().to_path_buf();
    let mut app = spawn_with(config, database).await;
    app.files = Some(files);
    Some(app)
}

pub async fn spawn_with(config: Config, database: TestDatabase) -> TestApp {
    let app = App::build(config.clone()).await.expect("app builds");
    let address = format!("http://{}", app.local_addr());
    let db = app.state().db.clone();
    let definitions = app.state().definitions.clone();
    let backend = db.backend();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
        .await
        .expect("server ran");
    });
    TestApp {
        address,
        client: reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client"),
        db,
        backend,
        config,
        definitions,
        shutdown: Some(tx),
        server: Some(server),
        database: Some(database),
        files: None,
    }
}

/// Declares one test body that runs on SQLite and on PostgreSQL:
/// `both_backends! { async fn name(app) { … } }` gives `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app = $crate::helpers::spawn_app(akis_engine::storage::Backend::Sqlite)
                    .await
                    .expect("sqlite is always available");
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) = $crate::helpers::spawn_app(akis_engine::storage::Backend::Postgres).await else {
                    return;
                };
                $body
            }
        }
    };
}

/// Like [`both_backends!`] for storage tests that need a database but no server: the
/// body gets a migrated `Db`.
#[macro_export]
macro_rules! both_databases {
    ($(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let guard = $crate::helpers::fresh_database(akis_engine::storage::Backend::Sqlite)
                    .await
                    .expect("sqlite is always available");
                let $db = $crate::helpers::open(&guard).await;
                $body
                drop(guard);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(guard) = $crate::helpers::fresh_database(akis_engine::storage::Backend::Postgres).await else {
                    return;
                };
                let $db = $crate::helpers::open(&guard).await;
                $body
                $db.close().await;
                drop(guard);
            }
        }
    };
}

/// Opens (and migrates) a test database.
pub async fn open(database: &TestDatabase) -> Db {
    let db = Db::connect(&DatabaseUrl::new(database.url()), &Default::default())
        .await
        .expect("test database opens");
    db.migrate().await.expect("migrations apply");
    db
}

/// The repository's definitions as a running set, for tests that start workers on a bare
/// database.
pub fn live_definitions() -> akis_engine::definitions::LiveDefinitions {
    let config = Config {
        definitions: repo_root(),
        ..Config::default()
    };
    akis_engine::definitions::LiveDefinitions::new(
        akis_engine::app::load_definitions(&config).expect("the repository's definitions load"),
    )
}

/// Awaits a condition the test cannot be notified of (a row a background task writes, a
/// node picking up a change), checking it every few milliseconds up to ten seconds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A child process killed when the test ends, however it ends.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `akis` binary with a clean environment (no `AKIS_*` from the developer's shell).
pub fn akis_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_akis"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AKIS_") || key == "RUST_BACKTRACE" {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// Creates a user directly in the database (password [`TEST_PASSWORD`]).
pub async fn create_user(db: &Db, email: &str, role: &str) -> akis_engine::types::ids::UserId {
    let hash = akis_engine::auth::hash_password(TEST_PASSWORD)
        .await
        .expect("hash");
    let mut tx = db.begin().await.expect("begin");
    let user = akis_engine::users::store::insert(
        &mut tx,
        akis_engine::users::store::NewUser {
            email: akis_engine::types::Email::parse(email).expect("valid email"),
            name: format!("Test {role}"),
            role: role.to_string(),
            team_id: None,
            password_hash: hash,
            locale: "tr".into(),
        },
    )
    .await
    .expect("insert user");
    tx.commit().await.expect("commit");
    user.id
}

/// The password every test user gets.
pub const TEST_PASSWORD: &str = "parola-1234";

/// A logged-in browser: its own cookie jar and the session's CSRF token.
pub struct TestSession {
    pub client: reqwest::Client,
    pub csrf: String,
    pub user_id: String,
    /// `akis_session=…`, as a browser sends it (for Socket.IO clients).
    pub cookie: String,
    address: String,
}

/// The `name=value` of the session cookie a login answer set.
pub fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("akis_session="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string()
}

impl TestSession {
    /// A session from a login answer (`{user, csrf_token}`) made with `client`.
    pub fn new(
        client: reqwest::Client,
        login: serde_json::Value,
        address: &str,
        cookie: String,
    ) -> Self {
        TestSession {
            client,
            cookie,
            csrf: login["csrf_token"]
                .as_str()
                .expect("csrf token")
                .to_string(),
            user_id: login["user"]["user"]["id"]
                .as_str()
                .expect("user id")
                .to_string(),
            address: address.to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// A state-changing request with the CSRF header, as the web UI sends it.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

impl TestApp {
    /// Creates a user directly in the database (password [`TEST_PASSWORD`]).
    pub async fn create_user(&self, email: &str, role: &str) -> akis_engine::types::ids::UserId {
        create_user(&self.db, email, role).await
    }

    /// Logs in through the API with a fresh cookie jar.
    pub async fn login(&self, email: &str, password: &str) -> TestSession {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        let response = client
            .post(self.url("/api/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login sent");
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "login as {email}"
        );
        let cookie = session_cookie(&response);
        let body: serde_json::Value = response.json().await.expect("json");
        TestSession::new(client, body, &self.address, cookie)
    }

    /// Creates a user with `role` and logs them in.
    pub async fn login_as(&self, role: &str) -> TestSession {
        let email = format!("{role}-{}@test.local", uuid::Uuid::now_v7().simple());
        self.create_user(&email, role).await;
        self.login(&email, TEST_PASSWORD).await
    }
}

// ---------------------------------------------------------------- real processes

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `akis serve` on `url`, waiting until it answers.
pub async fn serve(
    url: &str,
    definitions: &std::path::Path,
    extra: &[&str],
) -> (ChildGuard, String) {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut cmd = akis_command();
    cmd.arg("serve")
        .args(["--listen", &address])
        .args(extra)
        .env("AKIS_DATABASE_URL", url)
        .env("AKIS_DEFINITIONS", definitions)
        .env("AKIS_DATA_DIR", tempfile::tempdir().expect("tmp").keep())
        .env("AKIS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("akis serve starts");
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            eprintln!("[akis serve {port}] {line}");
        }
    });
    let base = format!("http://{address}");
    let guard = ChildGuard(child);
    let probe = reqwest::Client::new();
    eventually("the server answers", || {
        let probe = probe.clone();
        let url = format!("{base}/healthz");
        async move {
            probe
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    (guard, base)
}

pub async fn login_at(base: &str, email: &str) -> TestSession {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": email, "password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK, "login at {base}");
    let cookie = session_cookie(&r);
    let body: serde_json::Value = r.json().await.unwrap();
    TestSession::new(client, body, base, cookie)
}

/// A copy of the repository's definitions in a temporary folder.
pub fn definitions_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for root in ["workflows", "rules", "templates"] {
        copy_tree(&repo_root().join(root), &dir.path().join(root));
    }
    dir
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
