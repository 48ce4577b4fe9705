//! Runs one external call under the effect ledger's rules (see
//! `akis_engine::jobs::effects`): claim, decide from what an earlier run left, commit
//! `sending`, call (no transaction open), record the result.

use std::future::Future;

use akis_engine::jobs::effects::{self, Claim, Decision, EffectKey, Resend};
use akis_engine::jobs::{JobError, JobId};
use akis_engine::storage::Db;

use crate::graph::Failure;

/// A successful call.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// The remote side's id for what it did (a WhatsApp message id).
    pub external_id: Option<String>,
}

/// Crash points for the crash-window tests, compiled in only with the `failpoints` feature
/// (enabled for the workspace's own tests, never in a release build):
/// `AKIS_TEST_FAILPOINT=<name>` aborts the process there, as a power cut would.
#[cfg(feature = "failpoints")]
fn fail_point(name: &str) {
    if std::env::var("AKIS_TEST_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("fail point {name}: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn fail_point(_: &str) {}

fn db_error(e: impl std::fmt::Display) -> JobError {
    JobError::transient(format!("effect ledger: {e}"))
}

/// Runs `call` at most as the ledger allows. `call` receives true when it repeats an
/// earlier, possibly successful, call (it must reuse the same remote id).
pub async fn run_effect<F, Fut>(
    db: &Db,
    key: &EffectKey,
    kind: &str,
    job: JobId,
    resend: Resend,
    call: F,
) -> Result<(), JobError>
where
    F: FnOnce(bool) -> Fut,
    Fut: Future<Output = Result<Sent, Failure>>,
{
    let claim = effects::claim(db, key, kind, job).await.map_err(db_error)?;
    let repeat = match claim.decide(resend) {
        Decision::Skip => {
            tracing::info!(effect = %key, ?claim, "effect already settled; skipping");
            return Ok(());
        }
        Decision::MarkUnknown => {
            effects::mark_unknown(
                db,
                key,
                "a previous run died during the call; not resent (it may have been delivered)",
            )
            .await
            .map_err(db_error)?;
            return Err(JobError::permanent(
                "outcome unknown: a previous run died during the call; marked `unknown` for an admin to resolve",
            ));
        }
        Decision::Proceed => matches!(claim, Claim::Sending { .. }),
        Decision::ResendSameId => true,
    };
    fail_point("effect_claimed");
    // Committed before the call: if we die during it, the next run knows.
    if !effects::mark_sending(db, key).await.map_err(db_error)? {
        return Ok(());
    }
    match call(repeat).await {
        Ok(sent) => {
            fail_point("effect_called");
            effects::mark_done(db, key, sent.external_id.as_deref())
                .await
                .map_err(db_error)?;
            Ok(())
        }
        Err(Failure::Permanent(reason)) => {
            effects::mark_failed(db, key, &reason)
                .await
                .map_err(db_error)?;
            Err(JobError::permanent(reason))
        }
        Err(Failure::Transient(reason)) => {
            // The remote side did not act: the next run may call again.
            effects::release(db, key, &reason).await.map_err(db_error)?;
            Err(JobError::transient(reason))
        }
        Err(Failure::Ambiguous(reason)) => match resend {
            // Stays `sending`: the retry resends with the same id.
            Resend::SameId => Err(JobError::transient(reason)),
            Resend::Never => {
                effects::mark_unknown(db, key, &reason)
                    .await
                    .map_err(db_error)?;
                Err(JobError::permanent(format!(
                    "outcome unknown ({reason}); marked `unknown` for an admin to resolve"
                )))
            }
        },
    }
}
