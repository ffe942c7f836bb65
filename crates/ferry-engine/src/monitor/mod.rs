//! Host monitoring: every [`INTERVAL`] the engine asks each agent whether
//! it is alive, marks hosts up or down, keeps exactly one SPM among the
//! hosts that are up, and refreshes domain space and VM states.
//!
//! A poll is one pass of [`poll_now`]; the background task only repeats
//! it, so tests call it and see the same behaviour without waiting. The
//! monitor uses the engine; the engine knows nothing of the monitor.

mod check;
pub(crate) mod election;
mod sync;

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use ferry_api::engine::HostStatus;

use crate::engine::Engine;
use crate::error::Result;

/// How often the monitor polls.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Polls every host once, now: their health, the SPM role, domain space
/// and VM states (what the monitor does every [`INTERVAL`]).
pub async fn poll_now(engine: &Engine) -> Result<()> {
    let _one_at_a_time = engine.poll_lock().await;
    // A host still enrolling has no certificate the engine would accept.
    let hosts = engine
        .db()
        .hosts()
        .await?
        .into_iter()
        .filter(|h| h.status != HostStatus::Enrolling)
        .collect();
    let checks = check::check_all(engine, hosts).await;
    for c in &checks {
        check::apply(engine, c).await?;
    }
    election::reconcile(engine, &checks).await?;
    sync::domain_space(engine, &checks).await?;
    sync::vm_states(engine, &checks).await?;
    Ok(())
}

/// Starts the background monitor. It holds the engine weakly, so it ends
/// when the engine is dropped, or when `stop` turns true.
pub(crate) fn spawn(engine: Weak<Engine>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Some(e) = engine.upgrade() else { break };
            if let Err(err) = poll_now(&e).await {
                tracing::warn!("host monitoring failed: {}", err.full_text());
            }
            drop(e);
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        tracing::debug!("host monitor stopped");
    })
}
