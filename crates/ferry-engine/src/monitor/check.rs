//! Asking each agent whether it is alive, and recording the answer.
//!
//! A host is up when its agent answers health and, with the engine's
//! token, its VM list: an agent that answers but refuses the token cannot
//! be driven, so it counts as down, with the reason.

use std::time::Duration;

use ferry_api::agent::Health;
use ferry_api::engine::HostStatus;
use ferry_api::vm::VmStatus;
use tokio::task::JoinSet;

use crate::db::HostRow;
use crate::engine::Engine;
use crate::error::Result;

/// How long one host's answers may take before it counts as down: shorter
/// than the poll interval's worth of patience a user has.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// What one poll learnt about one host.
#[derive(Debug)]
pub(crate) struct HostCheck {
    /// The host as the database had it before this poll.
    pub host: HostRow,
    /// Its health and VMs, or why it did not answer.
    pub answer: std::result::Result<(Health, Vec<VmStatus>), String>,
}

impl HostCheck {
    pub(crate) fn is_up(&self) -> bool {
        self.answer.is_ok()
    }
}

/// Asks every host at once (a down host costs one timeout, not one per
/// host), and returns the answers in the hosts' order.
pub(crate) async fn check_all(engine: &Engine, hosts: Vec<HostRow>) -> Vec<HostCheck> {
    let mut set = JoinSet::new();
    for (i, host) in hosts.into_iter().enumerate() {
        let client = engine.agents().client_for(&host);
        set.spawn(async move {
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
                let health = client.health().await.map_err(|e| e.message())?;
                let vms = client.vms().await.map_err(|e| e.message())?;
                Ok((health, vms))
            })
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the agent did not answer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                ))
            });
            (i, HostCheck { host, answer })
        });
    }
    let mut checks = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(c) => checks.push(c),
            Err(e) => tracing::warn!("a host check panicked: {e}"),
        }
    }
    checks.sort_by_key(|(i, _)| *i);
    checks.into_iter().map(|(_, c)| c).collect()
}

/// Records a host's status, and what its coming up or going down means.
pub(crate) async fn apply(engine: &Engine, c: &HostCheck) -> Result<()> {
    let h = &c.host;
    match &c.answer {
        Ok(_) => {
            engine
                .db()
                .set_host_status(h.id, HostStatus::Up, None)
                .await?;
            if h.status == HostStatus::Down {
                engine
                    .events()
                    .record("host", format!("host {} is up", h.name), Some(h.id))
                    .await;
                connect_domains(engine, h).await?;
            }
        }
        Err(why) => {
            engine
                .db()
                .set_host_status(h.id, HostStatus::Down, Some(why))
                .await?;
            if h.status == HostStatus::Up {
                engine
                    .events()
                    .record(
                        "host",
                        format!("host {} is down: {why}", h.name),
                        Some(h.id),
                    )
                    .await;
                if h.spm {
                    engine
                        .events()
                        .record(
                            "host",
                            format!("host {} is no longer SPM: it is down", h.name),
                            Some(h.id),
                        )
                        .await;
                }
            }
        }
    }
    Ok(())
}

/// A host that comes back (a restarted agent, a new machine behind the
/// same address) is told about every domain again; connecting is
/// idempotent.
async fn connect_domains(engine: &Engine, h: &HostRow) -> Result<()> {
    let client = engine.agents().client_for(h);
    for d in engine.db().domains().await? {
        if let Err(e) = client.connect_domain(&d.path).await {
            engine
                .events()
                .record(
                    "host",
                    format!(
                        "host {} cannot use storage domain {} at {}: {}",
                        h.name,
                        d.name,
                        d.path.display(),
                        e.message()
                    ),
                    Some(h.id),
                )
                .await;
        }
    }
    Ok(())
}
