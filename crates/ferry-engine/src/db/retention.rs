//! Pruning history: finished jobs (with their disks and steps), ended
//! operations and events older than a cutoff. The database would
//! otherwise grow with every move and every host poll's event forever.

use crate::db::codec;
use crate::db::Db;
use crate::error::{Error, Result};

/// What one prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Finished jobs, with their steps and disks.
    pub jobs: u64,
    /// Ended operations (snapshots).
    pub operations: u64,
    /// Events.
    pub events: u64,
}

/// The jobs a prune may remove: ended before the cutoff (`$1`) and
/// holding no disk. A job that failed after the switch keeps its disks
/// locked until it is retried, so it is unfinished business however old
/// it is; forgetting it would orphan its locks.
const OLD_JOBS: &str = "SELECT id FROM jobs
     WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished IS NOT NULL AND finished < $1
       AND id NOT IN (SELECT locked_by FROM disks WHERE locked_by IS NOT NULL)";

impl Db {
    /// Removes, in one transaction, the jobs that ended before `cutoff`
    /// (milliseconds since the epoch) and hold no disk, the operations
    /// that ended before it, and the events written before it. A job or
    /// operation that has not ended is never removed, however old.
    pub async fn prune_history(&self, cutoff: u64) -> Result<Pruned> {
        let action = "prune old history";
        let cutoff = codec::to_i64(cutoff, "cutoff")?;
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        for child in ["job_steps", "job_disks"] {
            sqlx::query(&format!("DELETE FROM {child} WHERE job_id IN ({OLD_JOBS})"))
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(Error::db(action))?;
        }
        let jobs = sqlx::query(&format!("DELETE FROM jobs WHERE id IN ({OLD_JOBS})"))
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?
            .rows_affected();
        let operations = sqlx::query(
            "DELETE FROM operations WHERE state <> 'running' AND finished IS NOT NULL AND finished < $1
               AND id NOT IN (SELECT locked_by FROM disks WHERE locked_by IS NOT NULL)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(Error::db(action))?
        .rows_affected();
        let events = sqlx::query("DELETE FROM events WHERE time < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?
            .rows_affected();
        tx.commit().await.map_err(Error::db(action))?;
        Ok(Pruned {
            jobs,
            operations,
            events,
        })
    }
}
