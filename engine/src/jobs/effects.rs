//! The effect ledger: one row per external effect (a WhatsApp message, a conversion event, a
//! webhook delivery), keyed by a deterministic [`EffectKey`], so that a job run twice —
//! delivery is at-least-once — never blindly repeats what the first run did.
//!
//! States: `claimed` → `sending` → `done` / `failed` / `unknown`.
//! - [`claim`] before anything else. It tells the handler what an earlier run left behind
//!   ([`Claim`]) and, through [`Claim::decide`], what to do about it.
//! - [`mark_sending`] commits on its own, immediately before the external call.
//! - After the call: [`mark_done`], [`mark_failed`], or [`release`] when the remote side
//!   certainly did not act (e.g. a rate-limit error) so a retry may send again.
//!
//! Re-run rules ([`Claim::decide`]): `done` or `failed` → skip; `claimed` (the previous run
//! died before calling) → proceed; `sending` (died mid-call: the effect may or may not have
//! happened) → never blindly resend: an idempotent remote (the Conversions API deduplicates
//! by `event_id`; webhook receivers by delivery id) is called again with the same id, a
//! non-idempotent one (WhatsApp) is marked `unknown` for an admin to resolve.
//! `unknown` → skip until resolved ([`resolve`]).
//!
//! No database transaction is held across the external call: every function here is one
//! short transaction of its own.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::JobId;
use crate::storage::Db;
use crate::types::Timestamp;
use crate::types::ids::{CardId, EventId};

/// A deterministic effect key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EffectKey(String);

impl EffectKey {
    /// The key of a transition's action: definition version + card + transition event +
    /// the action's index in the transition's effect list. The same move re-run gives the
    /// same key; a later move of the same card gives another.
    pub fn for_action(
        definition_version: &str,
        card: CardId,
        transition_event: EventId,
        action_index: usize,
    ) -> Self {
        Self(format!(
            "{definition_version}:{card}:{transition_event}:{action_index}"
        ))
    }

    /// A key built by other callers (broadcasts: campaign + recipient, …).
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stable, opaque 32-hex-digit id derived from the key: the Conversions API
    /// `event_id`, the webhook delivery id.
    pub fn derived_id(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Display for EffectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An effect's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EffectState {
    Claimed,
    Sending,
    Done,
    Failed,
    Unknown,
}

impl EffectState {
    pub fn as_str(self) -> &'static str {
        match self {
            EffectState::Claimed => "claimed",
            EffectState::Sending => "sending",
            EffectState::Done => "done",
            EffectState::Failed => "failed",
            EffectState::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "claimed" => EffectState::Claimed,
            "sending" => EffectState::Sending,
            "done" => EffectState::Done,
            "failed" => EffectState::Failed,
            "unknown" => EffectState::Unknown,
            _ => return None,
        })
    }
}

/// One ledger row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Effect {
    #[schema(value_type = String)]
    pub effect_key: EffectKey,
    pub kind: String,
    pub state: EffectState,
    #[schema(value_type = Option<String>)]
    pub job_id: Option<JobId>,
    /// How many times `sending` was entered.
    pub attempts: u32,
    pub external_id: Option<String>,
    pub detail: Option<String>,
    pub claimed_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No earlier run: the row is now `claimed` by this run.
    Fresh,
    /// An earlier run claimed but never started the call.
    Claimed,
    /// An earlier run died mid-call (`attempts` calls were started).
    Sending {
        attempts: u32,
    },
    Done {
        external_id: Option<String>,
    },
    Failed {
        detail: Option<String>,
    },
    Unknown,
}

/// How the remote side treats a repeated call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A repeat with the same id is deduplicated remotely (Conversions API `event_id`).
    SameId,
    /// A repeat would act twice (a WhatsApp message).
    Never,
}

/// What the handler should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Call the remote side (after [`mark_sending`]).
    Proceed,
    /// Call again with the same id: the remote side deduplicates.
    ResendSameId,
    /// The effect already happened, failed for good, or awaits an admin: do nothing.
    Skip,
    /// Record `unknown` (with [`mark_unknown`]) and do nothing.
    MarkUnknown,
}

impl Claim {
    /// The re-run rule (see the module docs).
    pub fn decide(&self, resend: Resend) -> Decision {
        match self {
            Claim::Fresh | Claim::Claimed => Decision::Proceed,
            Claim::Sending { .. } => match resend {
                Resend::SameId => Decision::ResendSameId,
                Resend::Never => Decision::MarkUnknown,
            },
            Claim::Done { .. } | Claim::Failed { .. } | Claim::Unknown => Decision::Skip,
        }
    }
}

#[derive(sqlx::FromRow)]
struct EffectRow {
    effect_key: String,
    kind: String,
    state: String,
    job_id: Option<JobId>,
    attempts: i32,
    external_id: Option<String>,
    detail: Option<String>,
    claimed_at: Timestamp,
    updated_at: Timestamp,
}

impl EffectRow {
    fn into_effect(self) -> Option<Effect> {
        Some(Effect {
            effect_key: EffectKey(self.effect_key),
            kind: self.kind,
            state: EffectState::parse(&self.state)?,
            job_id: self.job_id,
            attempts: self.attempts.max(0) as u32,
            external_id: self.external_id,
            detail: self.detail,
            claimed_at: self.claimed_at,
            updated_at: self.updated_at,
        })
    }
}

const SELECT: &str = "SELECT effect_key, kind, state, job_id, attempts, external_id, detail, claimed_at, updated_at FROM job_effects";

/// Claims an effect for a run, or reports what an earlier run left.
pub async fn claim(db: &Db, key: &EffectKey, kind: &str, job: JobId) -> Result<Claim, sqlx::Error> {
    let now = Timestamp::now();
    crate::transaction!(db, tx => {
        let inserted = sqlx::query(
            "INSERT INTO job_effects (effect_key, kind, state, job_id, attempts, claimed_at, updated_at) \
             VALUES ($1, $2, 'claimed', $3, 0, $4, $4) ON CONFLICT (effect_key) DO NOTHING",
        )
        .bind(key.as_str())
        .bind(kind)
        .bind(job)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        let (state, attempts, external_id, detail): (String, i32, Option<String>, Option<String>) =
            sqlx::query_as("SELECT state, attempts, external_id, detail FROM job_effects WHERE effect_key = $1")
                .bind(key.as_str())
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE job_effects SET job_id = $2 WHERE effect_key = $1")
            .bind(key.as_str())
            .bind(job)
            .execute(&mut *tx)
            .await?;
        Ok::<_, sqlx::Error>(match EffectState::parse(&state) {
            Some(EffectState::Claimed) => Claim::Claimed,
            Some(EffectState::Sending) => Claim::Sending { attempts: attempts.max(0) as u32 },
            Some(EffectState::Done) => Claim::Done { external_id },
            Some(EffectState::Failed) => Claim::Failed { detail },
            Some(EffectState::Unknown) | None => Claim::Unknown,
        })
    })
}

async fn set_state(
    db: &Db,
    key: &EffectKey,
    from: &'static [&'static str],
    to: EffectState,
    external_id: Option<&str>,
    detail: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let now = Timestamp::now();
    // `from` is a fixed list of state names: rendered as literals, not user input.
    let allowed = from
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let bump = if to == EffectState::Sending {
        ", attempts = attempts + 1"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE job_effects SET state = $2, updated_at = $3, \
         external_id = COALESCE($4, external_id), detail = COALESCE($5, detail){bump} \
         WHERE effect_key = $1 AND state IN ({allowed})"
    );
    let n = crate::transaction!(db, tx => {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(key.as_str())
            .bind(to.as_str())
            .bind(now)
            .bind(external_id)
            .bind(detail)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(n == 1)
}

/// Commits `sending` right before the external call. False when the effect is not in
/// `claimed` or `sending` (another run finished it meanwhile): do not call.
pub async fn mark_sending(db: &Db, key: &EffectKey) -> Result<bool, sqlx::Error> {
    set_state(
        db,
        key,
        &["claimed", "sending"],
        EffectState::Sending,
        None,
        None,
    )
    .await
}

/// The call succeeded.
pub async fn mark_done(
    db: &Db,
    key: &EffectKey,
    external_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    set_state(
        db,
        key,
        &["claimed", "sending", "unknown"],
        EffectState::Done,
        external_id,
        None,
    )
    .await
}

/// The call failed for good (a permanent error).
pub async fn mark_failed(db: &Db, key: &EffectKey, detail: &str) -> Result<bool, sqlx::Error> {
    set_state(
        db,
        key,
        &["claimed", "sending", "unknown"],
        EffectState::Failed,
        None,
        Some(detail),
    )
    .await
}

/// Whether the call happened cannot be known (died mid-call, or a timeout on a
/// non-idempotent call). Visible to admins, never resent automatically.
pub async fn mark_unknown(db: &Db, key: &EffectKey, detail: &str) -> Result<bool, sqlx::Error> {
    set_state(
        db,
        key,
        &["claimed", "sending"],
        EffectState::Unknown,
        None,
        Some(detail),
    )
    .await
}

/// The remote side certainly did not act (it answered with a retryable error): back to
/// `claimed`, so the next run proceeds normally.
pub async fn release(db: &Db, key: &EffectKey, detail: &str) -> Result<bool, sqlx::Error> {
    set_state(
        db,
        key,
        &["sending"],
        EffectState::Claimed,
        None,
        Some(detail),
    )
    .await
}

/// An admin's resolution of an `unknown` effect: it did happen (`done`) or it did not
/// (`failed`; send it again by enqueueing a new effect).
pub async fn resolve(
    db: &Db,
    key: &EffectKey,
    happened: bool,
    note: &str,
) -> Result<bool, sqlx::Error> {
    let to = if happened {
        EffectState::Done
    } else {
        EffectState::Failed
    };
    set_state(db, key, &["unknown"], to, None, Some(note)).await
}

pub async fn get(db: &Db, key: &EffectKey) -> Result<Option<Effect>, sqlx::Error> {
    let row: Option<EffectRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE effect_key = $1")))
            .bind(key.as_str())
            .fetch_optional(pool)
            .await?
    });
    Ok(row.and_then(EffectRow::into_effect))
}

/// Effects in one state, most recently updated first (the admin's `unknown` list).
pub async fn list(db: &Db, state: EffectState, limit: u32) -> Result<Vec<Effect>, sqlx::Error> {
    let rows: Vec<EffectRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE state = $1 ORDER BY updated_at DESC LIMIT $2"
        )))
        .bind(state.as_str())
        .bind(limit.clamp(1, 1000) as i64)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .filter_map(EffectRow::into_effect)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rerun_rule_never_blindly_resends() {
        assert_eq!(Claim::Fresh.decide(Resend::Never), Decision::Proceed);
        assert_eq!(Claim::Claimed.decide(Resend::Never), Decision::Proceed);
        assert_eq!(
            Claim::Sending { attempts: 1 }.decide(Resend::Never),
            Decision::MarkUnknown
        );
        assert_eq!(
            Claim::Sending { attempts: 1 }.decide(Resend::SameId),
            Decision::ResendSameId
        );
        assert_eq!(
            Claim::Done { external_id: None }.decide(Resend::SameId),
            Decision::Skip
        );
        assert_eq!(Claim::Unknown.decide(Resend::SameId), Decision::Skip);
        assert_eq!(
            Claim::Failed { detail: None }.decide(Resend::SameId),
            Decision::Skip
        );
    }

    #[test]
    fn effect_keys_and_derived_ids_are_deterministic() {
        let card = CardId::new();
        let event = EventId::new();
        let a = EffectKey::for_action("v1", card, event, 2);
        let b = EffectKey::for_action("v1", card, event, 2);
        assert_eq!(a, b);
        assert_eq!(a.derived_id(), b.derived_id());
        assert_eq!(a.derived_id().len(), 32);
        assert_ne!(
            a.derived_id(),
            EffectKey::for_action("v1", card, event, 3).derived_id()
        );
    }
}
