//! Keeping history for `retention` (`--retention-days`) and no longer:
//! finished jobs, ended snapshots and events older than that are pruned
//! at engine start and then every [`INTERVAL`], by a task that stops with
//! the server. Unfinished jobs, and failed ones still holding their disks,
//! are never pruned (`Db::prune_history`).

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::codec::now_ms;
use crate::db::Pruned;
use crate::engine::Engine;
use crate::error::Result;

/// How often history is pruned after the prune at start: often enough
/// that a day's retention is honoured within the hour, rarely enough to
/// cost nothing.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Prunes, now, what is older than the engine's retention.
pub async fn prune_now(engine: &Engine) -> Result<Pruned> {
    let keep = u64::try_from(engine.limits().retention.as_millis()).unwrap_or(u64::MAX);
    let pruned = engine
        .db()
        .prune_history(now_ms().saturating_sub(keep))
        .await?;
    if pruned != Pruned::default() {
        tracing::info!(
            jobs = pruned.jobs,
            operations = pruned.operations,
            events = pruned.events,
            "pruned history older than the retention"
        );
    }
    Ok(pruned)
}

/// Starts the periodic pruning (the one at start is [`prune_now`], which
/// the server awaits before it serves): one every [`INTERVAL`], until
/// `stop` turns true or the engine is dropped.
pub(crate) fn spawn(engine: Weak<Engine>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
            let Some(e) = engine.upgrade() else { break };
            if let Err(err) = prune_now(&e).await {
                tracing::warn!("pruning old history failed: {}", err.full_text());
            }
        }
        tracing::debug!("history pruning stopped");
    })
}
