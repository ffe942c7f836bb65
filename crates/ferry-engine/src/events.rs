//! The event log as the rest of the engine uses it: one call records a
//! change in the database and in the engine's log.

use ferry_api::engine::Event;
use uuid::Uuid;

use crate::db::Db;
use crate::error::Result;

/// Records what changed: hosts up and down, SPM changes, VM state changes,
/// inventory changes, jobs.
#[derive(Debug, Clone)]
pub struct Events {
    db: Db,
}

impl Events {
    pub(crate) fn new(db: Db) -> Self {
        Events { db }
    }

    /// Records an event of `kind` (`host`, `vm`, `disk`, `domain`, `job`)
    /// about `object`. A failure to write it is logged, not returned: the
    /// change it describes has already happened and must not be reported
    /// as failed because its log entry could not be written.
    pub async fn record(&self, kind: &str, message: impl Into<String>, object: Option<Uuid>) {
        let message = message.into();
        tracing::info!(kind, object = ?object, "{message}");
        if let Err(e) = self.db.insert_event(kind, &message, object).await {
            tracing::warn!("could not record the event '{message}': {}", e.full_text());
        }
    }

    /// The last `limit` events, newest first; only those about `object`
    /// when it is given; with `after`, the first `limit` after that event.
    pub async fn list(
        &self,
        limit: u32,
        object: Option<Uuid>,
        after: Option<i64>,
    ) -> Result<Vec<Event>> {
        self.db.events(limit, object, after).await
    }
}
