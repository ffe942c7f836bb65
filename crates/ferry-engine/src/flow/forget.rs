//! Forgetting a job's agent tasks when it ends. Agents keep every task's
//! record (on disk, so a restarted agent can answer for it) until told to
//! forget it; an engine that never did would leave each host a record per
//! copy, merge and rollback forever.
//!
//! Best effort: a task not forgotten is only a record, so a failure is
//! logged and never fails the job. A job that failed after the switch
//! does not end for good (it can be retried, which needs its merge
//! task's record), so only [`JobCtx::finish`](super::job::JobCtx::finish)
//! calls this.

use std::time::Duration;

use ferry_api::engine::HostStatus;
use ferry_api::ErrorKind;
use uuid::Uuid;

use super::plan::MovePlan;
use crate::Engine;

/// How long one forget may take: the job's end waits for it, and a host
/// that does not answer only keeps a record.
const FORGET_TIMEOUT: Duration = Duration::from_secs(5);

/// Every task id the plan holds: the clones (run by the SPM), merge and
/// rollback (run by the VM's host), and those earlier attempts used.
fn task_ids(plan: &MovePlan) -> Vec<Uuid> {
    plan.disks
        .iter()
        .flat_map(|d| {
            [
                d.early_clone,
                Some(d.clone),
                Some(d.merge),
                Some(d.rollback),
            ]
        })
        .flatten()
        .chain(plan.retired_tasks.iter().copied())
        .collect()
}

/// Asks every host that is up to forget the job's tasks. Every host, not
/// only today's SPM and the VM's host: the SPM role may have moved during
/// the job, and a host asked for a task it never ran answers "not found",
/// which is as good as forgotten.
pub async fn forget_tasks(engine: &Engine, job: Uuid, plan: &MovePlan) {
    let hosts = match engine.db().hosts().await {
        Ok(hosts) => hosts,
        Err(e) => {
            tracing::warn!(%job, "cannot list the hosts to forget the job's tasks: {}", e.full_text());
            return;
        }
    };
    let tasks = task_ids(plan);
    for host in hosts.iter().filter(|h| h.status == HostStatus::Up) {
        let agent = engine
            .agents()
            .client_for(host)
            .with_timeout(FORGET_TIMEOUT);
        for &task in &tasks {
            match agent.forget_task(task).await {
                Ok(()) => tracing::debug!(%job, %task, host = %host.name, "task forgotten"),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(%job, %task, host = %host.name, "cannot forget the task: {}", e.message());
                    if e.kind() == ErrorKind::Unavailable {
                        // The host does not answer: its other tasks wait too.
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_of_every_disk_is_forgotten() {
        let mut plan = MovePlan::new(Uuid::new_v4(), Uuid::new_v4(), None, None);
        plan.add_disk(Uuid::new_v4(), vec![Uuid::new_v4(), Uuid::new_v4()], 1);
        plan.add_disk(Uuid::new_v4(), vec![Uuid::new_v4()], 1);
        let ids = task_ids(&plan);
        assert_eq!(ids.len(), 4 + 3, "{ids:?}");
        for d in &plan.disks {
            for id in [
                Some(d.clone),
                Some(d.merge),
                Some(d.rollback),
                d.early_clone,
            ]
            .into_iter()
            .flatten()
            {
                assert!(ids.contains(&id));
            }
        }
    }
}
