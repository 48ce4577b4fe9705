//! Definitions at run time: stored versions, safe reloads that reach every node, stage
//! migration on reload, dry runs and version diffs.
//!
//! # How it fits together
//! - **Stored versions.** Every set that is put in force is stored whole in
//!   `definition_versions` (path → text) under its version id, the content hash; the row of
//!   `definitions_current` names the one in force and a `generation` that grows with every
//!   activation; `definition_activations` keeps the history. The database's current version
//!   is authoritative: a node serves what it says.
//! - **Apply** ([`apply`]): the whole candidate set is validated first (an invalid one
//!   changes nothing and comes back with every diagnostic); then, in ONE transaction, the
//!   stages and pipelines that disappear are checked against the cards still in them (a
//!   stage holding open cards must be mapped with `renamed_from:` or `stage_migrations:`,
//!   and a role still held by an active user must stay), the version is stored and made
//!   current, mapped cards move (each with a timeline entry), the reload is audited and —
//!   on PostgreSQL — `NOTIFY akis_definitions` is sent. After the commit the receiving node
//!   swaps its [`LiveDefinitions`].
//! - **Every node** runs [`watch`]: PostgreSQL's notification wakes it at once, and it also
//!   polls `definitions_current` every few seconds (SQLite, or a lost notification), loads
//!   the new version's content from the database and swaps it in.
//! - **No orphan cards across nodes.** Writers that put a card into a stage (moves, intake)
//!   call [`ensure_current`] inside their transaction: it reads `definitions_current` (on
//!   PostgreSQL with `FOR KEY SHARE`, which an activation's `FOR UPDATE` waits for) and
//!   refuses with 409 `definitions_changed` when the writer's set is no longer the current
//!   one, so a node that has not caught up yet cannot move a card into a stage a reload just
//!   removed.
//! - **Start-up** ([`startup`]): a node either applies its local files as a reload
//!   (`--apply-definitions`, the default for a single SQLite node) or serves the stored
//!   version (API nodes with `--no-workers`, `akis worker`); an empty database is
//!   bootstrapped from the local files either way.
//!
//! # Layout
//! - [`diff`]: what changed between two versions (files, stages, transitions, actions, …).
//! - [`dry_run`]: "what would happen if this card moved there?" without doing any of it.
//! - [`http`]: the admin routes.

pub mod diff;
pub mod dry_run;
pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, AuditEntry, ClientInfo};
use crate::crm::cards;
use crate::crm::timeline::{self, NewEvent};
pub use crate::definitions::diagnostic::DiagnosticInfo;
use crate::definitions::{Definitions, Diagnostic, LiveDefinitions, Pos, SourceSet};
use crate::exec;
use crate::http::ApiError;
use crate::policy::Actor;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CardId, UserId};

/// The PostgreSQL channel an activation notifies.
pub const CHANNEL: &str = "akis_definitions";

/// How often every node compares its version with the stored one (a notification on
/// PostgreSQL usually wakes it long before).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Timeline kind written on each card a reload moves.
pub const STAGE_MIGRATED: &str = "stage_migrated";

/// What started an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `serve --apply-definitions` at start-up.
    Startup,
    /// The first start on an empty database.
    Bootstrap,
    /// `POST /api/admin/definitions/reload`.
    Api,
    /// `akis reload`.
    Cli,
    /// SIGHUP.
    Signal,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Startup => "startup",
            Origin::Bootstrap => "bootstrap",
            Origin::Api => "api",
            Origin::Cli => "cli",
            Origin::Signal => "signal",
        }
    }
}

/// Who asks for an activation.
#[derive(Clone, Copy)]
pub struct Who<'a> {
    pub actor: Option<&'a Actor>,
    pub origin: Origin,
    pub client: &'a ClientInfo,
}

/// Cards a reload moved out of a stage that no longer exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MovedStage {
    pub pipeline: String,
    pub from: String,
    pub to: String,
    pub cards: u64,
}

/// The result of a successful activation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Applied {
    /// The version now in force.
    pub version: String,
    /// The version in force before (none on a first start).
    pub previous_version: Option<String>,
    /// False when the candidate was the version already in force (nothing was written).
    pub changed: bool,
    pub moved: Vec<MovedStage>,
    pub warnings: Vec<DiagnosticInfo>,
}

/// Why an activation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The set (or what it would do to live data) is invalid: every error, then warnings.
    #[error("the definitions were not accepted ({} error(s))", .0.iter().filter(|d| d.is_error()).count())]
    Invalid(Vec<Diagnostic>),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        ApplyError::Api(e.into())
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Invalid(diagnostics) => ApiError::definitions(
                format!(
                    "the definitions were not accepted: {} error(s); the running version keeps serving",
                    diagnostics.iter().filter(|d| d.is_error()).count()
                ),
                diagnostics.iter().map(DiagnosticInfo::from).collect(),
            ),
            ApplyError::Api(e) => e,
        }
    }
}

impl ApplyError {
    /// Every diagnostic, one per line, as `akis check` prints them.
    pub fn report(&self) -> String {
        match self {
            ApplyError::Invalid(ds) => ds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            ApplyError::Api(ApiError::Client { message, .. }) => message.clone(),
            ApplyError::Api(e) => e.to_string(),
        }
    }
}

// ---------------------------------------------------------------- loading

/// The files a node has locally: `dir` when it holds `workflows/`, else the defaults
/// embedded in the binary.
pub fn local_sources(dir: &Path) -> Result<SourceSet, Diagnostic> {
    if dir.join("workflows").is_dir() {
        SourceSet::from_dir(dir).map_err(|e| {
            Diagnostic::error(
                &dir.display().to_string(),
                Pos::new(1, 1),
                format!("cannot read the definitions folder: {e}"),
            )
        })
    } else {
        Ok(SourceSet::embedded())
    }
}

/// Validates a set off the async threads (a load compiles every rule and template).
/// Ok carries the set and its warnings; Err every diagnostic, errors first.
pub async fn validate(
    sources: SourceSet,
) -> Result<(Arc<Definitions>, Vec<Diagnostic>), ApplyError> {
    let report = tokio::task::spawn_blocking(move || Definitions::load(sources))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("definitions loader stopped: {e}")))?;
    let has_errors = report.has_errors();
    match report.definitions {
        Some(defs) if !has_errors => Ok((Arc::new(defs), report.diagnostics)),
        _ => Err(ApplyError::Invalid(errors_first(report.diagnostics))),
    }
}

fn errors_first(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by_key(|d| !d.is_error());
    diagnostics
}

/// `definitions_current`: the version in force and its generation.
pub async fn current_stored(db: &Db) -> Result<Option<(String, i64)>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as::<_, (String, i64)>("SELECT version, generation FROM definitions_current WHERE id = 1")
            .fetch_optional(pool)
            .await
    })
}

/// The files of a stored version, checked against its hash.
pub async fn stored_sources(db: &Db, version: &str) -> Result<Option<SourceSet>, ApiError> {
    let files: Option<String> = crate::read!(db, pool => {
        sqlx::query_scalar("SELECT files FROM definition_versions WHERE version = $1")
            .bind(version)
            .fetch_optional(pool)
            .await
    })?;
    files.map(|f| decode_files(version, &f)).transpose()
}

fn encode_files(sources: &SourceSet) -> String {
    let map: BTreeMap<&str, std::borrow::Cow<'_, str>> = sources
        .files()
        .map(|(path, bytes)| (path, String::from_utf8_lossy(bytes)))
        .collect();
    serde_json::Value::from_iter(map.into_iter().map(|(k, v)| (k.to_string(), json!(v))))
        .to_string()
}

fn decode_files(version: &str, text: &str) -> Result<SourceSet, ApiError> {
    let map: BTreeMap<String, String> = serde_json::from_str(text).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!(
            "stored definitions {version} are unreadable: {e}"
        ))
    })?;
    let mut set = SourceSet::new();
    for (path, content) in map {
        set.insert(path, content);
    }
    if set.version() != version {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "stored definitions {version} do not match their hash"
        )));
    }
    Ok(set)
}

/// Loads (and caches) any stored version: running work orders keep the version they
/// started with, and diffs compare old versions.
#[derive(Clone, Default)]
pub struct VersionCache {
    inner: Arc<Mutex<HashMap<String, Arc<Definitions>>>>,
}

impl VersionCache {
    const CAPACITY: usize = 16;

    /// The set of `version`: the live one when it matches, else from the database.
    pub async fn get(
        &self,
        db: &Db,
        live: &LiveDefinitions,
        version: &str,
    ) -> Result<Option<Arc<Definitions>>, ApiError> {
        let current = live.current();
        if current.version == version {
            return Ok(Some(current));
        }
        if let Some(hit) = self.lock().get(version).cloned() {
            return Ok(Some(hit));
        }
        let Some(sources) = stored_sources(db, version).await? else {
            return Ok(None);
        };
        let defs = validate(sources).await.map_err(|e| {
            ApiError::Internal(anyhow::anyhow!(
                "stored definitions {version} no longer load: {}",
                e.report()
            ))
        })?;
        let mut cache = self.lock();
        if cache.len() >= Self::CAPACITY {
            cache.clear();
        }
        cache.insert(version.to_string(), defs.0.clone());
        Ok(Some(defs.0))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Definitions>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ---------------------------------------------------------------- apply

/// Validates `sources`, checks what the change would do to live data, stores the set,
/// makes it current (moving mapped cards) and swaps it into `live`. See the module docs.
pub async fn apply(
    db: &Db,
    live: &LiveDefinitions,
    sources: SourceSet,
    who: Who<'_>,
) -> Result<Applied, ApplyError> {
    let (new, warnings) = validate(sources).await?;
    let mut tx = db.begin().await?;
    if let Tx::Postgres(t) = &mut tx {
        // Activations queue behind each other (also the very first one, which has no row
        // to lock yet).
        sqlx::query("SELECT pg_advisory_xact_lock(727100)")
            .execute(&mut **t)
            .await?;
    }
    let current: Option<String> = exec!(&mut tx, conn => sqlx::query_scalar(
        if matches!(db, Db::Postgres(_)) {
            "SELECT version FROM definitions_current WHERE id = 1 FOR UPDATE"
        } else {
            "SELECT version FROM definitions_current WHERE id = 1"
        })
        .fetch_optional(conn).await)?;
    let warnings: Vec<DiagnosticInfo> = warnings.iter().map(DiagnosticInfo::from).collect();
    if current.as_deref() == Some(new.version.as_str()) {
        drop(tx);
        if live.version() != new.version {
            live.replace(new.clone());
        }
        return Ok(Applied {
            version: new.version.clone(),
            previous_version: current,
            changed: false,
            moved: Vec::new(),
            warnings,
        });
    }
    let old = match &current {
        None => None,
        Some(v) if *v == live.version() => Some(live.current()),
        Some(v) => {
            // Another node activated a version this one has not picked up yet.
            let sources = stored_sources(db, v).await?;
            match sources {
                Some(s) => validate(s).await.ok().map(|(d, _)| d),
                None => None,
            }
        }
    };
    let plan = match &old {
        Some(old) => plan_changes(&mut tx, old, &new).await?,
        None => Plan::default(),
    };
    if !plan.problems.is_empty() {
        return Err(ApplyError::Invalid(plan.problems));
    }

    let now = Timestamp::now();
    let by = who.actor.map(|a| a.user_id);
    let files = encode_files(&new.sources);
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO definition_versions (version, files, file_count, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (version) DO NOTHING")
        .bind(&new.version).bind(&files).bind(new.sources.len() as i64).bind(now).bind(by)
        .execute(conn).await.map(|_| ()))?;
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO definitions_current (id, version, generation, activated_at) VALUES (1, $1, 1, $2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version,
             generation = definitions_current.generation + 1, activated_at = excluded.activated_at")
        .bind(&new.version).bind(now)
        .execute(conn).await.map(|_| ()))?;

    let mut moved = Vec::new();
    let mut moved_cards = 0u64;
    for mapping in &plan.mappings {
        let count = move_cards(&mut tx, &new, mapping, by, now).await?;
        if count > 0 {
            moved_cards += count;
            moved.push(MovedStage {
                pipeline: mapping.pipeline.clone(),
                from: mapping.from.clone(),
                to: mapping.to.clone(),
                cards: count,
            });
        }
    }
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO definition_activations (id, version, previous_version, activated_at, activated_by, origin, moved_cards)
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(uuid::Uuid::now_v7().to_string()).bind(&new.version).bind(&current).bind(now).bind(by)
        .bind(who.origin.as_str()).bind(moved_cards as i64)
        .execute(conn).await.map(|_| ()))?;
    let label = format!("akis {}", who.origin.as_str());
    let mut entry = AuditEntry::new("definitions.reloaded", who.actor, who.client)
        .target("definitions", &new.version)
        .details(json!({
            "version": new.version,
            "previous_version": current,
            "origin": who.origin.as_str(),
            "files": new.sources.len(),
            "moved": moved,
        }));
    if who.actor.is_none() {
        entry = entry.label(&label);
    }
    audit::record(&mut tx, entry).await?;
    // Open screens reload pipeline metadata (stages, layouts) on every node.
    crate::realtime::record(
        &mut tx,
        crate::realtime::NewEvent::new(
            crate::realtime::kinds::DEFINITIONS_CHANGED,
            crate::realtime::Audience::Everyone,
            json!({"version": new.version, "previous_version": current}),
        ),
    )
    .await?;
    if let Tx::Postgres(t) = &mut tx {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&new.version)
            .execute(&mut **t)
            .await?;
    }
    tx.commit().await?;
    live.replace(new.clone());
    tracing::info!(
        version = %new.version,
        previous = current.as_deref().unwrap_or("-"),
        origin = who.origin.as_str(),
        moved_cards,
        "definitions now in force"
    );
    Ok(Applied {
        version: new.version.clone(),
        previous_version: current,
        changed: true,
        moved,
        warnings,
    })
}

/// A stage that disappears and where its cards go.
#[derive(Debug, Clone)]
struct Mapping {
    pipeline: String,
    from: String,
    to: String,
}

#[derive(Default)]
struct Plan {
    mappings: Vec<Mapping>,
    problems: Vec<Diagnostic>,
}

/// What a change from `old` to `new` does to live data: the stage moves it implies, and
/// the reasons it must be refused.
async fn plan_changes(
    tx: &mut Tx,
    old: &Definitions,
    new: &Definitions,
) -> Result<Plan, ApplyError> {
    let counts: Vec<(String, String, i64)> = exec!(&mut *tx, conn => sqlx::query_as(
        "SELECT pipeline_id, stage_id, COUNT(*) FROM cards WHERE closed_at IS NULL GROUP BY pipeline_id, stage_id")
        .fetch_all(conn).await)?;
    let all_stages: Vec<(String, String)> = exec!(&mut *tx, conn => sqlx::query_as(
        "SELECT DISTINCT pipeline_id, stage_id FROM cards")
        .fetch_all(conn).await)?;
    let open: BTreeMap<(&str, &str), i64> = counts
        .iter()
        .map(|(p, s, n)| ((p.as_str(), s.as_str()), *n))
        .collect();
    let mut plan = Plan::default();
    let roles_file = new
        .roles
        .first()
        .map_or_else(|| "workflows/roles.yaml".to_string(), |r| r.file.clone());
    for old_pipeline in &old.pipelines {
        let pid = old_pipeline.id.as_str();
        let Some(new_pipeline) = new.pipeline(pid) else {
            let held: i64 = old_pipeline
                .stages
                .iter()
                .filter_map(|s| open.get(&(pid, s.id.as_str())))
                .sum();
            if held > 0 {
                let file = new
                    .pipelines
                    .first()
                    .map_or(old_pipeline.file.as_str(), |p| p.file.as_str());
                plan.problems.push(
                    Diagnostic::error(
                        file,
                        Pos::new(1, 1),
                        format!(
                            "pipeline `{pid}` is gone from the new definitions but still holds {held} open card(s)"
                        ),
                    )
                    .with_help(format!("keep the pipeline `{pid}`; a pipeline with cards cannot be removed")),
                );
            }
            continue;
        };
        for stage in &old_pipeline.stages {
            let sid = stage.id.as_str();
            if new_pipeline.stage(sid).is_some() {
                continue;
            }
            let held = open.get(&(pid, sid)).copied().unwrap_or(0);
            match new_pipeline.stage_mapping(sid) {
                Some(to) => plan.mappings.push(Mapping {
                    pipeline: pid.to_string(),
                    from: sid.to_string(),
                    to: to.to_string(),
                }),
                None if held > 0 => plan.problems.push(
                    Diagnostic::error(
                        &new_pipeline.file,
                        new_pipeline.id.pos,
                        format!(
                            "stage `{sid}` of pipeline `{pid}` still holds {held} open card(s) and is missing from the new definitions"
                        ),
                    )
                    .with_help(format!(
                        "if it was renamed, add `renamed_from: [{sid}]` to the new stage; if it was removed, add `stage_migrations: [{{from: {sid}, to: <stage>}}]` to the pipeline so its cards have somewhere to go"
                    )),
                ),
                None => {}
            }
        }
        // Closed cards (merged duplicates) in stages that vanished earlier follow a
        // mapping too, so history reads in current stage names where one exists.
        for (p, s) in &all_stages {
            if p == pid
                && new_pipeline.stage(s).is_none()
                && old_pipeline.stage(s).is_none()
                && let Some(to) = new_pipeline.stage_mapping(s)
            {
                plan.mappings.push(Mapping {
                    pipeline: pid.to_string(),
                    from: s.clone(),
                    to: to.to_string(),
                });
            }
        }
    }
    for old_role in &old.roles {
        let rid = old_role.id.as_str();
        if new.role(rid).is_some() {
            continue;
        }
        let holders: i64 = exec!(&mut *tx, conn => sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = $1 AND active")
            .bind(rid).fetch_one(conn).await)?;
        if holders > 0 {
            plan.problems.push(
                Diagnostic::error(
                    &roles_file,
                    Pos::new(1, 1),
                    format!("role `{rid}` is gone from the new definitions but {holders} active user(s) still have it"),
                )
                .with_help("give those users another role first (Admin → Users), or keep the role"),
            );
        }
    }
    Ok(plan)
}

/// Moves every card (open or closed) of a vanished stage, each with a timeline entry and
/// a new stage-history row. Returns how many moved.
async fn move_cards(
    tx: &mut Tx,
    new: &Definitions,
    mapping: &Mapping,
    by: Option<UserId>,
    now: Timestamp,
) -> Result<u64, ApplyError> {
    let cards: Vec<(CardId, crate::types::ids::CustomerId, bool)> = exec!(&mut *tx, conn => sqlx::query_as(
        "SELECT id, customer_id, closed_at IS NULL FROM cards WHERE pipeline_id = $1 AND stage_id = $2 ORDER BY id")
        .bind(&mapping.pipeline).bind(&mapping.from)
        .fetch_all(conn).await)?;
    for (card, customer, open) in &cards {
        exec!(&mut *tx, conn => sqlx::query(
            "UPDATE cards SET stage_id = $1, version = version + 1, definitions_version = $2, updated_at = $3 WHERE id = $4")
            .bind(&mapping.to).bind(&new.version).bind(now).bind(card)
            .execute(conn).await.map(|_| ()))?;
        let event = timeline::append(
            tx,
            NewEvent {
                customer_id: *customer,
                card_id: Some(*card),
                kind: STAGE_MIGRATED,
                actor: by,
                definitions_version: &new.version,
                data: json!({
                    "pipeline": mapping.pipeline,
                    "from": mapping.from,
                    "to": mapping.to,
                    "version": new.version,
                }),
            },
        )
        .await?;
        if *open {
            cards::open_stage(tx, *card, &mapping.pipeline, &mapping.to, by, event, now).await?;
        }
    }
    Ok(cards.len() as u64)
}

/// Inside a transaction that puts a card into a stage: refuses (409
/// `definitions_changed`) when `defs` is no longer the version in force, so a node that
/// has not caught up with a reload cannot write what the reload ruled out. On PostgreSQL
/// the read takes `FOR KEY SHARE`, which an activation's `FOR UPDATE` waits for (and
/// waits behind), so the two never interleave.
pub async fn ensure_current(tx: &mut Tx, defs: &Definitions) -> Result<(), ApiError> {
    let current: Option<String> = match tx {
        Tx::Sqlite(t) => {
            sqlx::query_scalar("SELECT version FROM definitions_current WHERE id = 1")
                .fetch_optional(&mut **t)
                .await?
        }
        Tx::Postgres(t) => {
            sqlx::query_scalar("SELECT version FROM definitions_current WHERE id = 1 FOR KEY SHARE")
                .fetch_optional(&mut **t)
                .await?
        }
    };
    match current {
        Some(v) if v != defs.version => Err(definitions_changed()),
        _ => Ok(()),
    }
}

/// 409: the definitions changed under a request; trying again uses the new ones.
pub fn definitions_changed() -> ApiError {
    ApiError::conflict(
        "definitions_changed",
        "the workflow definitions were updated a moment ago; try again",
    )
}

/// True for the error [`ensure_current`] gives.
pub fn is_definitions_changed(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Client {
            code: "definitions_changed",
            ..
        }
    )
}

/// Runs `work` with the definitions in force; when it fails with `definitions_changed`
/// (this node had not caught up with a reload yet), catches up and runs it once more.
pub async fn retry_on_reload<T, F, Fut>(
    db: &Db,
    live: &LiveDefinitions,
    mut work: F,
) -> Result<T, ApiError>
where
    F: FnMut(Arc<Definitions>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    match work(live.current()).await {
        Err(e) if is_definitions_changed(&e) => {
            refresh(db, live).await?;
            work(live.current()).await
        }
        other => other,
    }
}

// ---------------------------------------------------------------- every node

/// Brings `live` up to the stored current version when they differ. Returns true when it
/// swapped. A stored version this binary cannot load is logged and left alone (the node
/// keeps serving what it has).
pub async fn refresh(db: &Db, live: &LiveDefinitions) -> Result<bool, ApiError> {
    let Some((version, _)) = current_stored(db).await? else {
        return Ok(false);
    };
    if version == live.version() {
        return Ok(false);
    }
    let Some(sources) = stored_sources(db, &version).await? else {
        return Ok(false);
    };
    match validate(sources).await {
        Ok((defs, _)) => {
            // A concurrent refresh may have won; either way the same version goes in.
            if live.version() != defs.version {
                live.replace(defs);
                tracing::info!(%version, "picked up definitions activated elsewhere");
            }
            Ok(true)
        }
        Err(e) => {
            tracing::error!(%version, problems = %e.report(), "the stored definitions do not load with this binary; still serving the previous version");
            Ok(false)
        }
    }
}

/// A listener on [`CHANNEL`] over a connection of its own: it must not hold one of the
/// application pool's connections forever (closing the pool would wait for it).
async fn listen(pool: &sqlx::PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Runs on every node for as long as it lives: picks up activations made anywhere, at
/// once on a PostgreSQL notification, otherwise within `every`.
pub async fn watch(db: Db, live: LiveDefinitions, every: Duration) {
    let mut listener = match &db {
        Db::Postgres(pool) => match listen(pool).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for definition reloads; polling only");
                None
            }
        },
        Db::Sqlite(_) => None,
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match &mut listener {
            Some(l) => {
                tokio::select! {
                    n = l.try_recv() => {
                        if let Err(e) = n {
                            tracing::warn!(error = %e, "definition reload listener failed; reconnecting");
                            tokio::time::sleep(every).await;
                        }
                    }
                    _ = tick.tick() => {}
                }
            }
            None => {
                tick.tick().await;
            }
        }
        if let Err(e) = refresh(&db, &live).await {
            tracing::warn!(error = %e, "cannot check the stored definitions version");
        }
    }
}

// ---------------------------------------------------------------- start-up

/// Which definitions a starting node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupMode {
    /// Apply the local files as a reload (validated like any reload), then serve them.
    ApplyLocal,
    /// Serve the stored current version (the local files only bootstrap an empty database).
    Stored,
}

/// The definitions a starting node serves, per `mode`. Any failure is one human message
/// (with every diagnostic) that start-up prints before it exits.
pub async fn startup(db: &Db, dir: &Path, mode: StartupMode) -> anyhow::Result<LiveDefinitions> {
    let stored = current_stored(db).await?;
    let client = ClientInfo::default();
    let apply_local = |origin| async move {
        let sources = local_sources(dir).map_err(|d| anyhow::anyhow!("{d}"))?;
        let (candidate, _) = validate(sources.clone())
            .await
            .map_err(|e| invalid_local(dir, &e))?;
        let live = LiveDefinitions::new(candidate);
        let who = Who {
            actor: None,
            origin,
            client: &client,
        };
        apply(db, &live, sources, who)
            .await
            .map_err(|e| invalid_local(dir, &e))?;
        Ok::<_, anyhow::Error>(live)
    };
    match (mode, stored) {
        (_, None) => apply_local(Origin::Bootstrap).await,
        (StartupMode::ApplyLocal, Some(_)) => apply_local(Origin::Startup).await,
        (StartupMode::Stored, Some((version, _))) => {
            let sources = stored_sources(db, &version)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .ok_or_else(|| {
                    anyhow::anyhow!("the stored definitions version {version} is missing")
                })?;
            let (defs, _) = validate(sources).await.map_err(|e| {
                anyhow::anyhow!(
                    "the stored definitions version {version} does not load with this version of akis:\n{}",
                    e.report()
                )
            })?;
            tracing::info!(%version, "serving the stored definitions");
            Ok(LiveDefinitions::new(defs))
        }
    }
}

fn invalid_local(dir: &Path, e: &ApplyError) -> anyhow::Error {
    anyhow::anyhow!(
        "the definitions in {} were not accepted; fix them and start again:\n{}",
        dir.display(),
        e.report()
    )
}
