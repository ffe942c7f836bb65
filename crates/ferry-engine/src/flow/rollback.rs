//! Undoing a move that has not reached `finalizeBlockMigrate`: the VM ends
//! on the source with all its data, nothing of the disks is left on the
//! destination, the disks are unlocked. Every part is idempotent, so a
//! rollback interrupted by an engine crash is simply run again.

use ferry_agent_client::AgentClient;
use ferry_api::agent::{DeleteImage, Release};
use ferry_api::engine::{MoveMode, Step, StepState};
use ferry_api::vm::RollbackBlockMigrate;

use super::job::JobCtx;
use super::retry::Failure;
use super::tasks::{stop_all, wait_all, Ended, Watched};

/// Undoes what the job did, in the reverse order of the steps: copies
/// stop, the VM goes back to its source leaf, the destination's volumes
/// go. Only transient failures are retried; the agents' verbs it uses
/// accept being called when there is nothing left to undo.
pub async fn roll_back(job: &mut JobCtx) -> Result<(), Failure> {
    let spm = job.spm().await?;
    stop_copies(job, &spm).await?;
    if may_use_new_leaf(job).await? {
        undo_block_migrate(job).await?;
    }
    delete_destination(job, &spm).await?;
    for step in [Step::CreateVolumeCrossSd, Step::CloneInternalVolumes] {
        if job.step_state(step).await.map_err(Failure::from)? != StepState::Pending {
            job.step(step, StepState::RolledBack, None)
                .await
                .map_err(Failure::from)?;
        }
    }
    Ok(())
}

/// Cancels the job's copies and waits until they have stopped (or the
/// engine's bound has passed: then the rollback stops here, deleting
/// nothing).
async fn stop_copies(job: &JobCtx, spm: &AgentClient) -> Result<(), Failure> {
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
    stop_all(
        spm,
        &copies,
        Step::CloneInternalVolumes,
        job.engine.limits().unreachable_after,
    )
    .await
}

/// Whether the VM may run on (or have written to) the new leaves: once
/// `createVolumeCrossSD` has made them, a VM started again opens them
/// (they are the top of its chain on storage), and once `blockMigrate`
/// has begun the running VM may have switched to them. Such a leaf is
/// folded back into its parent, never deleted with what it holds.
async fn may_use_new_leaf(job: &JobCtx) -> Result<bool, Failure> {
    if job.row.mode != MoveMode::Live {
        return Ok(false);
    }
    let created = job
        .step_state(Step::CreateVolumeCrossSd)
        .await
        .map_err(Failure::from)?
        == StepState::Done;
    let switching = matches!(
        job.step_state(Step::BlockMigrate)
            .await
            .map_err(Failure::from)?,
        StepState::Running | StepState::Done | StepState::Failed
    );
    Ok(created || switching)
}

/// Puts the VM back on its source leaves: the agent folds what the guest
/// wrote to each new leaf back into its parent (QEMU's commit while the
/// VM runs, `qemu-img commit` when it does not), then removes the leaf.
pub(super) async fn undo_block_migrate(job: &mut JobCtx) -> Result<(), Failure> {
    let vm = job
        .plan
        .vm
        .ok_or_else(|| Failure::Permanent("a live move needs a VM".into()))?;
    let host = job.vm_host().await?;
    for (i, d) in job.plan.disks.clone().into_iter().enumerate() {
        let req = RollbackBlockMigrate {
            vm,
            image: d.disk,
            src_domain: job.plan.src,
            dst_domain: job.plan.dst,
            volume: d.new_leaf,
        };
        job.call(Step::BlockMigrate, || {
            host.rollback_block_migrate(d.rollback, &req)
        })
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
        if let Some(Ended::Failed(f)) = ended.first() {
            // An agent answers a task id with its old result: the next
            // attempt gets a new id, so it runs again instead of repeating
            // this failure for ever.
            job.plan.renew_task(i, |d| &mut d.rollback);
            job.save().await.map_err(Failure::from)?;
            return Err(Failure::Permanent(format!(
                "the VM could not be put back on the source: {}",
                f.message()
            )));
        }
    }
    job.step(Step::BlockMigrate, StepState::RolledBack, None)
        .await
        .map_err(Failure::from)
}

/// Deletes what the move made on the destination and points the inventory
/// back at the source. The copies' space comes back after the agent's
/// answer, a step at a time, as in the cleanup: a cancelled move of a big
/// disk ends without waiting for it, and a guest writing to the same
/// storage does not stall behind it.
async fn delete_destination(job: &mut JobCtx, spm: &AgentClient) -> Result<(), Failure> {
    for d in job.plan.disks.clone() {
        let req = DeleteImage {
            domain: job.plan.dst,
            image: d.disk,
            release: Release::Background,
        };
        job.call(Step::CloneInternalVolumes, || spm.delete_image(&req))
            .await?;
        job.engine
            .db()
            .set_disk_domain(d.disk, job.plan.src)
            .await
            .map_err(Failure::from)?;
        crate::refresh::refresh_disk(&job.engine, d.disk)
            .await
            .map_err(Failure::from)?;
    }
    Ok(())
}
