//! Keeping exactly one SPM (docs/architecture.md §6): the engine picks it
//! among the hosts that are up; the agent's lease on the master domain's
//! `dom_md/leases` makes sure two agents can never both act as SPM, so the
//! engine's choice can only fail safe (the second acquire is refused).
//!
//! The agents are the truth: an agent that says it holds the lease is
//! recorded as SPM; a recorded SPM whose agent lost the role takes it
//! again or is replaced; a dead SPM's lease is freed with its process, and
//! the first host that is up (the oldest added) is asked next.

use ferry_api::engine::HostStatus;
use uuid::Uuid;

use crate::db::{DomainRow, HostRow};
use crate::engine::Engine;
use crate::error::Result;
use crate::monitor::check::HostCheck;

/// After a poll: makes the recorded SPM match the agents, electing one if
/// none holds the role.
pub(crate) async fn reconcile(engine: &Engine, checks: &[HostCheck]) -> Result<()> {
    let _one_election = engine.election_lock().await;
    let Some(master) = engine.db().master_domain().await? else {
        // No domain, no lease to hold: nobody can be SPM yet.
        return Ok(());
    };
    let holder = checks
        .iter()
        .find(|c| matches!(&c.answer, Ok((health, _)) if health.spm));
    if let Some(c) = holder {
        record_holder(engine, &master, &c.host).await?;
        return Ok(());
    }
    if let Some(c) = checks.iter().find(|c| c.host.spm && c.is_up()) {
        // Recorded as SPM, up, but its agent says it is not: an agent
        // restart loses the role. Give it back if the lease is free.
        if retake(engine, &master, &c.host).await? {
            return Ok(());
        }
    }
    let candidates = checks
        .iter()
        .filter(|c| c.is_up())
        .map(|c| c.host.clone())
        .collect();
    elect(engine, &master, candidates).await.map(|_| ())
}

/// An agent that holds the lease is the SPM whatever the database says:
/// the lease, not the record, is what keeps two SPMs apart.
async fn record_holder(engine: &Engine, master: &DomainRow, host: &HostRow) -> Result<()> {
    if host.spm {
        return Ok(());
    }
    engine.db().set_spm(Some(host.id)).await?;
    engine
        .events()
        .record(
            "host",
            format!(
                "host {} is SPM (its agent holds the lease on master domain {})",
                host.name, master.name
            ),
            Some(host.id),
        )
        .await;
    Ok(())
}

/// Asks the recorded SPM to take the role again, so a restarted agent
/// keeps it rather than the role moving for nothing. True if it did;
/// otherwise it is no longer recorded as SPM and an election follows.
async fn retake(engine: &Engine, master: &DomainRow, host: &HostRow) -> Result<bool> {
    let client = engine.agents().client_for(host);
    match client.acquire_spm(master.id).await {
        Ok(s) if s.spm => {
            engine
                .events()
                .record(
                    "host",
                    format!(
                        "host {} took the SPM role again (its agent had lost it)",
                        host.name
                    ),
                    Some(host.id),
                )
                .await;
            Ok(true)
        }
        answer => {
            let why = match answer {
                Err(e) => e.message(),
                Ok(_) => "its agent did not take the role".to_string(),
            };
            engine.db().set_spm(None).await?;
            engine
                .events()
                .record(
                    "host",
                    format!("host {} is no longer SPM: {why}", host.name),
                    Some(host.id),
                )
                .await;
            Ok(false)
        }
    }
}

/// Makes sure a host is SPM if one can be: after the first domain is
/// created, or a host added. Returns the SPM, if there is one.
pub(crate) async fn ensure_spm(engine: &Engine) -> Result<Option<Uuid>> {
    let _one_election = engine.election_lock().await;
    let Some(master) = engine.db().master_domain().await? else {
        return Ok(None);
    };
    let hosts = engine.db().hosts().await?;
    if let Some(h) = hosts.iter().find(|h| h.spm && h.status == HostStatus::Up) {
        return Ok(Some(h.id));
    }
    let up = hosts
        .into_iter()
        .filter(|h| h.status == HostStatus::Up)
        .collect();
    elect(engine, &master, up).await
}

/// Asks each candidate in turn to take the lease on `master`; the first
/// that does is recorded as the only SPM.
async fn elect(
    engine: &Engine,
    master: &DomainRow,
    candidates: Vec<HostRow>,
) -> Result<Option<Uuid>> {
    let mut refusals = Vec::new();
    for h in candidates {
        let client = engine.agents().client_for(&h);
        match client.acquire_spm(master.id).await {
            Ok(s) if s.spm => {
                engine.db().set_spm(Some(h.id)).await?;
                engine
                    .events()
                    .record(
                        "host",
                        format!(
                            "host {} is now SPM (lease on master domain {})",
                            h.name, master.name
                        ),
                        Some(h.id),
                    )
                    .await;
                return Ok(Some(h.id));
            }
            Ok(_) => refusals.push(format!("{}: its agent did not take the role", h.name)),
            Err(e) => refusals.push(format!("{}: {}", h.name, e.message())),
        }
    }
    if !refusals.is_empty() {
        tracing::warn!("no host could take the SPM role: {}", refusals.join("; "));
    }
    Ok(None)
}
