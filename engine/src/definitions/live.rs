//! The definition set a process is running, swappable at run time.
//!
//! Every request, job and loop reads the current set through a [`LiveDefinitions`] handle
//! and keeps the `Arc` it got for the rest of its work, so one request always sees one
//! version even when a reload lands in the middle of it. A reload ([`super::runtime`])
//! replaces the set atomically; subscribers (loops that derive state from the definitions,
//! such as schedules) are told through a watch channel, which never loses the latest value.

use std::sync::Arc;

use tokio::sync::watch;

use super::Definitions;

/// A cheap-to-clone handle on the running definition set.
#[derive(Clone)]
pub struct LiveDefinitions {
    tx: Arc<watch::Sender<Arc<Definitions>>>,
}

impl std::fmt::Debug for LiveDefinitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveDefinitions")
            .field(&self.current().version)
            .finish()
    }
}

impl LiveDefinitions {
    pub fn new(definitions: Arc<Definitions>) -> Self {
        let (tx, _) = watch::channel(definitions);
        Self { tx: Arc::new(tx) }
    }

    /// The set in force now. Hold on to it for the duration of one piece of work.
    pub fn current(&self) -> Arc<Definitions> {
        self.tx.borrow().clone()
    }

    /// The version id of the set in force now.
    pub fn version(&self) -> String {
        self.tx.borrow().version.clone()
    }

    /// Puts `definitions` in force; returns the set it replaced. Callers validate and
    /// store a set before they swap it in (see `runtime::apply`).
    pub fn replace(&self, definitions: Arc<Definitions>) -> Arc<Definitions> {
        self.tx.send_replace(definitions)
    }

    /// A receiver that sees every later swap (and the current set at once).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Definitions>> {
        self.tx.subscribe()
    }
}

impl From<Arc<Definitions>> for LiveDefinitions {
    fn from(definitions: Arc<Definitions>) -> Self {
        Self::new(definitions)
    }
}
