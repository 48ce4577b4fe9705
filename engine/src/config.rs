//! Typed configuration, loaded in one place: defaults → optional `akis.toml` → `AKIS_*`
//! environment variables (and `AKIS_*_FILE` files for secrets) → command-line overrides.
//! Nothing else in the code base reads environment variables.
//!
//! Secrets are wrapped so `Debug` never prints them, and a database URL's password is
//! redacted wherever the URL is shown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Everything the server, the worker and the CLI need to start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite:akis.db` (the default: a file in the working directory) or `postgres://…`.
    pub database_url: DatabaseUrl,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Folder holding `workflows/`, `rules/` and `templates/`.
    pub definitions: PathBuf,
    /// Where uploaded files and other local state live.
    pub data_dir: PathBuf,
    /// The company's time zone (IANA name).
    pub timezone: chrono_tz::Tz,
    /// Log filter in `tracing` syntax (`info`, `akis_engine=debug,sqlx=warn`).
    pub log: String,
    /// `auto` (human on a terminal, JSON otherwise), `human` or `json`.
    pub log_format: LogFormat,
    /// Largest request body accepted by JSON endpoints, in bytes.
    pub request_body_limit: usize,
    /// Upper bound on handling one request, in seconds.
    pub request_timeout_secs: u64,
    /// Connections in the PostgreSQL pool, or SQLite read connections.
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before failing, in seconds.
    pub db_acquire_timeout_secs: u64,
    /// Job workers and the external services their handlers call (flattened: the keys
    /// are top-level, e.g. `AKIS_GRAPH_BASE_URL`).
    #[serde(flatten)]
    pub jobs: JobsConfig,
    /// Trust `X-Forwarded-For` / `X-Forwarded-Proto` (only behind a reverse proxy you run).
    pub trust_proxy_headers: bool,
    /// Session cookies: `auto` (Secure when the request came over HTTPS), `always`, `never`.
    pub secure_cookies: SecureCookies,
    /// A browser session ends after this many hours without activity.
    pub session_idle_hours: u64,
    /// …and after this many days in any case.
    pub session_max_days: u64,
    /// At start-up, apply the local definition files as a reload (true) or serve the
    /// version stored in the database (false). Unset: apply on SQLite (a single node),
    /// serve the stored version on PostgreSQL. An empty database is always bootstrapped
    /// from the local files.
    pub apply_definitions: Option<bool>,
    /// Browser origins allowed to open a Socket.IO connection besides the server's own,
    /// comma-separated (`https://crm.example.com,https://admin.example.com`).
    pub allowed_origins: String,
    /// How long the realtime event log keeps events for reconnecting clients, in hours.
    pub event_retention_hours: u64,
    /// Where uploaded files are kept: unset for `data_dir/files` on local disk, or an
    /// object store URL (`s3://bucket/prefix`, with the usual `AWS_*` variables for
    /// credentials, region and endpoint; `file:///srv/akis-files`; `memory:///` for tests).
    pub storage_url: Option<String>,
    /// Largest file an upload may carry, in megabytes.
    pub max_upload_mb: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    Auto,
    Always,
    Never,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DatabaseUrl::new("sqlite:akis.db"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            definitions: PathBuf::from("."),
            data_dir: PathBuf::from("./data"),
            timezone: chrono_tz::Europe::Istanbul,
            log: "info,sqlx=warn".into(),
            log_format: LogFormat::Auto,
            request_body_limit: 2 * 1024 * 1024,
            request_timeout_secs: 30,
            db_max_connections: 10,
            db_acquire_timeout_secs: 10,
            jobs: JobsConfig::default(),
            trust_proxy_headers: false,
            secure_cookies: SecureCookies::Auto,
            session_idle_hours: 72,
            session_max_days: 30,
            apply_definitions: None,
            allowed_origins: String::new(),
            event_retention_hours: 72,
            storage_url: None,
            max_upload_mb: 25,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Human,
    Json,
}

/// Values given on the command line; they win over every other source.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definitions: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_definitions: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot read secret file {path} (from {var}): {source}")]
    SecretFile {
        var: String,
        path: String,
        source: std::io::Error,
    },
}

impl Config {
    /// [`Config::event_retention_hours`] as a duration (at least one hour).
    pub fn event_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.event_retention_hours.max(1) * 3600)
    }

    /// [`Config::allowed_origins`], split and trimmed.
    pub fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect()
    }

    /// Loads from `akis.toml` (or `config_file`), the process environment and `overrides`.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(config_file, std::env::vars(), overrides)
    }

    /// Like [`Config::load`] with an explicit environment (tests).
    pub fn load_from(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match config_file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            // Only the working directory's file: never search parent folders.
            None if Path::new("akis.toml").is_file() => {
                figment = figment.merge(Toml::file_exact("akis.toml"))
            }
            None => {}
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("AKIS_") && !k.starts_with("AKIS_TEST_"))
            .collect();
        // `AKIS_FOO_FILE=/run/secrets/foo` sets `foo` from the file's content (Docker/K8s secrets).
        for (key, path) in &env {
            if let Some(name) = key
                .strip_suffix("_FILE")
                .and_then(|k| k.strip_prefix("AKIS_"))
            {
                let value =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                        var: key.clone(),
                        path: path.clone(),
                        source,
                    })?;
                figment =
                    figment.merge(Serialized::default(&name.to_lowercase(), value.trim_end()));
            }
        }
        let plain: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| !k.ends_with("_FILE"))
            .collect();
        figment = figment.merge(EnvSnapshot { vars: plain });
        figment = figment.merge(Serialized::defaults(overrides));
        figment.extract::<Config>().map_err(|e| {
            let mut msg = String::new();
            for (i, err) in e.into_iter().enumerate() {
                if i > 0 {
                    msg.push_str("; ");
                }
                // One line: figment puts the source on a second line.
                msg.push_str(
                    &err.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            ConfigError::Invalid(msg)
        })
    }
}

/// Environment provider over an explicit list of variables, so tests never depend on the
/// process environment and the config module stays the only reader of `std::env`.
struct EnvSnapshot {
    vars: Vec<(String, String)>,
}

impl figment::Provider for EnvSnapshot {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable(s)")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (key, value) in &self.vars {
            let Some(name) = key.strip_prefix("AKIS_") else {
                continue;
            };
            let name = name.to_lowercase();
            if name.is_empty() {
                continue;
            }
            // Values are kept as strings; serde converts where a number is expected.
            let parsed: figment::value::Value =
                value.parse().unwrap_or_else(|_| value.clone().into());
            // Paths and URLs must stay strings even when they look like numbers or booleans.
            let parsed = match parsed {
                figment::value::Value::String(..) => parsed,
                _ if matches!(
                    name.as_str(),
                    "database_url"
                        | "listen"
                        | "definitions"
                        | "data_dir"
                        | "graph_base_url"
                        | "whatsapp_phone_number_id"
                        | "meta_pixel_id"
                        | "meta_access_token"
                        | "meta_app_secret"
                        | "meta_verify_token"
                        | "webhook_secret"
                ) =>
                {
                    value.clone().into()
                }
                other => other,
            };
            dict.insert(name, parsed);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Job workers and the Meta / webhook settings their handlers use.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct JobsConfig {
    /// Graph API base URL (tests point it at a local fake server).
    pub graph_base_url: String,
    /// Graph API version path segment.
    pub graph_api_version: String,
    pub meta_access_token: Option<Secret>,
    pub meta_app_secret: Option<Secret>,
    pub meta_verify_token: Option<Secret>,
    pub whatsapp_phone_number_id: Option<String>,
    pub meta_pixel_id: Option<String>,
    /// Key for the HMAC-SHA256 signature of outgoing webhooks.
    pub webhook_secret: Option<Secret>,
    /// Concurrent jobs per queue in one worker process.
    pub job_concurrency: usize,
    /// A dead worker's running jobs return to the queue after this many seconds without a
    /// heartbeat (never below 60).
    pub job_orphan_timeout_secs: u64,
    /// Days finished jobs stay in `job_history`.
    pub job_history_days: u64,
    /// Days dead jobs stay in `job_history`.
    pub job_dead_days: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            graph_base_url: "https://graph.facebook.com".into(),
            graph_api_version: "v21.0".into(),
            meta_access_token: None,
            meta_app_secret: None,
            meta_verify_token: None,
            whatsapp_phone_number_id: None,
            meta_pixel_id: None,
            webhook_secret: None,
            job_concurrency: 8,
            job_orphan_timeout_secs: 120,
            job_history_days: 7,
            job_dead_days: 30,
        }
    }
}

/// A secret from the environment or a `*_FILE`: never printed by `Debug`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<Secret> for String {
    fn from(s: Secret) -> String {
        s.expose().to_string()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A database URL. Its password never appears in `Debug` or [`DatabaseUrl::redacted`].
#[derive(Clone, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    /// The full URL, password included: only for opening connections.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with its password replaced by `***`, for logs and error messages.
    pub fn redacted(&self) -> String {
        let raw = self.expose();
        match url::Url::parse(raw) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => raw.to_string(),
        }
    }

    pub fn scheme(&self) -> &str {
        self.expose().split(':').next().unwrap_or("")
    }
}

impl From<String> for DatabaseUrl {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<DatabaseUrl> for String {
    fn from(d: DatabaseUrl) -> String {
        d.expose().to_string()
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing_toml = dir.path().join("absent.toml");
        std::fs::write(&missing_toml, "").expect("write");
        Config::load_from(
            Some(&missing_toml),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = load(&[]).expect("defaults load");
        assert_eq!(c.database_url.expose(), "sqlite:akis.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.definitions, PathBuf::from("."));
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.timezone, chrono_tz::Europe::Istanbul);
    }

    #[test]
    fn environment_overrides_defaults_and_cli_overrides_environment() {
        let c = load(&[
            ("AKIS_DATABASE_URL", "postgres://u:pw@db/akis"),
            ("AKIS_LISTEN", "0.0.0.0:9000"),
            ("AKIS_TIMEZONE", "Europe/Berlin"),
            ("AKIS_DATA_DIR", "/var/lib/akis"),
        ])
        .expect("loads");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/akis"));

        let overrides = Overrides {
            listen: Some("127.0.0.1:7000".into()),
            ..Default::default()
        };
        let c = Config::load_from(
            None,
            [("AKIS_LISTEN".to_string(), "0.0.0.0:9000".to_string())],
            &overrides,
        )
        .expect("loads");
        assert_eq!(c.listen.port(), 7000);
    }

    #[test]
    fn the_database_password_never_prints() {
        let c =
            load(&[("AKIS_DATABASE_URL", "postgres://akis:s3cret@db:5432/akis")]).expect("loads");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert_eq!(
            c.database_url.redacted(),
            "postgres://akis:***@db:5432/akis"
        );
        assert_eq!(
            c.database_url.expose(),
            "postgres://akis:s3cret@db:5432/akis"
        );
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("db_url");
        std::fs::write(&secret, "postgres://a:b@c/d\n").expect("write");
        let c = load(&[("AKIS_DATABASE_URL_FILE", secret.to_str().expect("utf8"))]).expect("loads");
        assert_eq!(c.database_url.expose(), "postgres://a:b@c/d");
        let err =
            load(&[("AKIS_DATABASE_URL_FILE", "/nonexistent/secret")]).expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/secret"));
    }

    #[test]
    fn bad_values_are_reported_by_name() {
        let err = load(&[("AKIS_LISTEN", "not an address")]).expect_err("invalid");
        assert!(err.to_string().contains("listen"), "{err}");
        let err = load(&[("AKIS_TIMEZONE", "Mars/Olympus")]).expect_err("invalid");
        assert!(err.to_string().contains("timezone"), "{err}");
    }

    #[test]
    fn a_toml_file_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("akis.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:8181\"\nlog = \"debug\"\n").expect("write");
        let c = Config::load_from(
            Some(&file),
            Vec::<(String, String)>::new(),
            &Overrides::default(),
        )
        .expect("loads");
        assert_eq!(c.listen.port(), 8181);
        assert_eq!(c.log, "debug");
    }
}
