//! Undoing a move that has not reached `finalizeBlockMigrate`: the VM ends
//! on the source with all its data, nothing of the disks is left on the
//! destination, the disks are unlocked. Every part is idempotent, so a
//! rollback interrupted by an engine crash is simply run again.

use ferry_api::agent::DeleteImage;
use ferry_api::engine::{MoveMode, StepState};
use ferry_api::vm::RollbackBlockMigrate;

use super::job::JobCtx;
use super::plan;
use super::retry::{retry, Failure};
use super::tasks::{stop_all, wait_all, Ended, Watched};

/// Undoes what the job did. Only transient failures are retried; the
/// agents' verbs it uses accept being called when there is nothing left to
/// undo.
pub async fn roll_back(job: &mut JobCtx) -> Result<(), Failure> {
    let spm = job.spm().await?;
    // Copies in flight stop first (they would recreate what is deleted).
    // Asking them to stop was not enough: a throttled copy went on for
    // seconds after its cancel, past the end of the rollback and the
    // disk's unlock, and when it finally stopped it removed its partial
    // copy by path: the copy a next move of the same disk had made there
    // in the meantime. That move then failed at finalize for ever, or,
    // when finalize had already run, deleted the source in cleanup while
    // the destination had lost its base. So wait until they have ended.
    let copies: Vec<_> = job
        .plan
        .disks
        .iter()
        .flat_map(|d| d.early_clone.into_iter().chain([d.clone]))
        .collect();
    for task in &copies {
        let _ = spm.cancel_task(*task).await;
    }
    stop_all(&spm, &copies).await;

    let switched = job.row.mode == MoveMode::Live
        && matches!(
            job.step_state(plan::BLOCK_MIGRATE)
                .await
                .map_err(Failure::from)?,
            StepState::Running | StepState::Done | StepState::Failed
        );
    if switched {
        let vm = job
            .plan
            .vm
            .ok_or_else(|| Failure::Permanent("a live move needs a VM".into()))?;
        let host = job.vm_host().await?;
        for d in job.plan.disks.clone() {
            let req = RollbackBlockMigrate {
                vm,
                image: d.disk,
                src_domain: job.plan.src,
                dst_domain: job.plan.dst,
                volume: d.new_leaf,
            };
            retry(
                None,
                |_, m| tracing::warn!("rollback retry: {m}"),
                || async {
                    host.rollback_block_migrate(d.rollback, &req)
                        .await
                        .map_err(Failure::from)
                },
            )
            .await?;
            let ended = wait_all(
                job,
                &[Watched {
                    agent: host.clone(),
                    task: d.rollback,
                }],
                0,
                0,
                false,
            )
            .await?;
            if let Some(Ended::Failed(msg)) = ended.first() {
                return Err(Failure::Permanent(format!(
                    "the VM could not be put back on the source: {msg}"
                )));
            }
        }
        job.step(plan::BLOCK_MIGRATE, StepState::RolledBack, None)
            .await
            .map_err(Failure::from)?;
    }

    for d in job.plan.disks.clone() {
        let req = DeleteImage {
            domain: job.plan.dst,
            image: d.disk,
        };
        retry(
            None,
            |_, m| tracing::warn!("rollback retry: {m}"),
            || async { spm.delete_image(&req).await.map_err(Failure::from) },
        )
        .await?;
        job.engine
            .db()
            .set_disk_domain(d.disk, job.plan.src)
            .await
            .map_err(Failure::from)?;
        crate::ops::disks::refresh_disk(&job.engine, d.disk)
            .await
            .map_err(Failure::from)?;
    }
    for step in [plan::CREATE_VOLUME_CROSS_SD, plan::CLONE_INTERNAL_VOLUMES] {
        if job.step_state(step).await.map_err(Failure::from)? != StepState::Pending {
            job.step(step, StepState::RolledBack, None)
                .await
                .map_err(Failure::from)?;
        }
    }
    Ok(())
}
