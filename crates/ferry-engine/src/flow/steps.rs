//! The steps of a move, one function each, named as the seed names them.
//! Each one only asks agents to do idempotent things, so running a step
//! again after an engine crash (the step is persisted `running`) is safe.

use ferry_agent_client::AgentClient;
use ferry_api::agent::{CloneInternalVolumes, CreateVolumeCrossSd, VolumeRef};
use ferry_api::engine::{MoveMode, Step, StepState};
use ferry_api::vm::{
    BlockMigrate, BlockMigrateDisk, FinalizeBlockMigrate, FinalizeDisk, Merge, VmState,
};
use uuid::Uuid;

use super::job::JobCtx;
use super::plan::DiskPlan;
use super::retry::{Failure, Patience};
use super::tasks::{wait_all, Ended, Watched};
use tokio::time::Instant;

/// How many clone tasks of one job run at once (a VM move copies its disks
/// in parallel up to this bound).
const PARALLEL_COPIES: usize = 2;

/// How many times a clone that failed for a reason other than space is
/// started again before the move is rolled back.
const CLONE_ATTEMPTS: u32 = 5;

fn clone_request(
    job: &JobCtx,
    d: &DiskPlan,
    volumes: Vec<Uuid>,
    parallel: usize,
) -> CloneInternalVolumes {
    CloneInternalVolumes {
        src_domain: job.plan.src,
        dst_domain: job.plan.dst,
        image: d.disk,
        volumes,
        bandwidth_mib_s: super::pacing::initial_limit(job, parallel).map(|bps| (bps >> 20).max(1)),
        io: super::pacing::copy_io(job),
    }
}

/// `createVolumeCrossSD`: first starts copying what is read-only already
/// (the volumes under the leaf: the seed's "copy the base"), then creates
/// each disk's new leaf on the destination over its leaf on the source.
pub async fn create_volume_cross_sd(job: &mut JobCtx) -> Result<(), Failure> {
    let spm = job.spm().await?;
    let parallel = job.plan.disks.len().min(PARALLEL_COPIES);
    super::pacing::watch_before_copy(job).await;
    for d in job.plan.disks.clone() {
        if let Some(task) = d.early_clone {
            let req = clone_request(job, &d, d.below_leaf().to_vec(), parallel);
            job.call(Step::CreateVolumeCrossSd, || {
                spm.clone_internal_volumes(task, &req)
            })
            .await?;
        }
        let Some(leaf) = d.leaf() else {
            return Err(Failure::Permanent(format!(
                "disk {} has no volumes",
                d.disk
            )));
        };
        let req = CreateVolumeCrossSd {
            dst_domain: job.plan.dst,
            image: d.disk,
            volume: d.new_leaf,
            parent: VolumeRef {
                domain: job.plan.src,
                image: d.disk,
                volume: leaf,
            },
        };
        job.call(Step::CreateVolumeCrossSd, || {
            spm.create_volume_cross_sd(&req)
        })
        .await?;
    }
    Ok(())
}

/// What `blockMigrate` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switched {
    /// The VM writes to the new leaves.
    Live,
    /// The VM is not running: the move goes on cold.
    VmDown,
}

/// `blockMigrate`: every disk of the job switches to its new leaf in one
/// call (one QMP transaction). Retried until it succeeds or the agent
/// says no; a VM that is not running makes the move a cold one.
pub async fn block_migrate(job: &mut JobCtx) -> Result<Switched, Failure> {
    let vm = job
        .plan
        .vm
        .ok_or_else(|| Failure::Permanent("a live move needs a VM".into()))?;
    let req = BlockMigrate {
        disks: job
            .plan
            .disks
            .iter()
            .map(|d| BlockMigrateDisk {
                image: d.disk,
                src_domain: job.plan.src,
                dst_domain: job.plan.dst,
                volume: d.new_leaf,
            })
            .collect(),
    };
    let id = job.id();
    let mut patience = Patience::new(job.engine.limits().unreachable_after);
    loop {
        let host = job.vm_host().await?;
        let running = job.call(Step::BlockMigrate, || host.vm(vm)).await?.state == VmState::Running;
        if !running {
            return Ok(Switched::VmDown);
        }
        let sent = Instant::now();
        // The early copies wait while QEMU switches, so the guest's own
        // writes do not queue behind theirs (best effort: the switch does
        // not wait for an SPM that does not answer).
        super::pacing::hold(job, true).await;
        let switched = host.block_migrate(vm, &req).await.map_err(Failure::from);
        super::pacing::hold(job, false).await;
        match switched {
            Ok(_) => {
                super::pacing::restart_after_switch(job).await;
                return Ok(Switched::Live);
            }
            Err(Failure::Transient(msg)) => {
                tracing::warn!(job = %id, "blockMigrate failed, retrying: {msg}");
                patience.failed(sent, Step::BlockMigrate, &msg)?;
                job.check_cancel().await?;
                tokio::time::sleep(super::retry::backoff(2)).await;
            }
            // A VM that stopped between the check and the call is refused
            // as not running; the loop's next check sees it stopped.
            Err(Failure::VmNotRunning(_)) => continue,
            Err(other) => return Err(other),
        }
    }
}

/// `cloneInternalVolumes`: waits for the early copies, then copies every
/// disk's whole chain under the new leaf (the early copies are skipped as
/// LEGAL, so only the old leaf is copied now), verified, up to
/// [`PARALLEL_COPIES`] disks at a time. A full destination ends the move
/// (rolled back); other failures start the copy again.
pub async fn clone_internal_volumes(job: &mut JobCtx) -> Result<(), Failure> {
    let spm = job.spm().await?;
    let total = job.plan.total_bytes();
    wait_early_copies(job, &spm, total).await?;
    let parallel = job.plan.disks.len().clamp(1, PARALLEL_COPIES);
    let indices: Vec<usize> = (0..job.plan.disks.len()).collect();
    for batch in indices.chunks(parallel) {
        copy_batch(job, &spm, batch, parallel, total).await?;
    }
    // A VM paused because its new leaf's domain is full is not switched
    // further onto it: the move rolls back, which puts the VM on the
    // source, where its host resumes it.
    if let Some(why) = super::tasks::paused_for_space(job).await {
        return Err(Failure::NoSpace(why));
    }
    job.progress(total, total).await.map_err(Failure::from)?;
    Ok(())
}

/// The early copies first: the later tasks must not copy the same volumes
/// at the same time. A failed early copy is redone by the full copy, but
/// a full destination ends the move.
async fn wait_early_copies(job: &mut JobCtx, spm: &AgentClient, total: u64) -> Result<(), Failure> {
    // Only `createVolumeCrossSD` starts them, and a move that was cold
    // from prepare never runs it: waiting for its early tasks there asked
    // the agent about tasks it never had, and the 404 failed every cold
    // move of a chain of two volumes or more.
    let early_started = job.row.mode == MoveMode::Live || job.plan.turned_cold;
    let early: Vec<Watched> = job
        .plan
        .disks
        .iter()
        .filter(|_| early_started)
        .filter_map(|d| d.early_clone)
        .map(|task| Watched {
            agent: spm.clone(),
            task,
        })
        .collect();
    if early.is_empty() {
        return Ok(());
    }
    for e in wait_all(job, &early, 0, total, true).await? {
        match e {
            Ended::Failed(Failure::NoSpace(m)) => return Err(Failure::NoSpace(m)),
            Ended::Failed(f) => {
                job.record(&format!(
                    "copies again in cloneInternalVolumes what an early copy failed to copy ({})",
                    f.message()
                ))
                .await;
            }
            Ended::Succeeded | Ended::Cancelled => {}
        }
    }
    Ok(())
}

/// Copies the whole chains of the disks at `batch` (indices into the
/// plan) at once, starting the copies again with new task ids after a
/// failure, up to [`CLONE_ATTEMPTS`] times.
async fn copy_batch(
    job: &mut JobCtx,
    spm: &AgentClient,
    batch: &[usize],
    parallel: usize,
    total: u64,
) -> Result<(), Failure> {
    let mut attempts = 0u32;
    loop {
        job.check_cancel().await?;
        let mut watched = Vec::new();
        for &i in batch {
            let d = job.plan.disks[i].clone();
            let req = clone_request(job, &d, d.chain.clone(), parallel);
            job.call(Step::CloneInternalVolumes, || {
                spm.clone_internal_volumes(d.clone, &req)
            })
            .await?;
            watched.push(Watched {
                agent: spm.clone(),
                task: d.clone,
            });
        }
        let base: u64 = job.plan.disks[..batch[0]].iter().map(|d| d.bytes).sum();
        let failures: Vec<Failure> = wait_all(job, &watched, base, total, true)
            .await?
            .into_iter()
            .filter_map(|e| match e {
                Ended::Failed(f) => Some(f),
                Ended::Cancelled => Some(Failure::Transient(
                    "the copy was cancelled on its host".into(),
                )),
                Ended::Succeeded => None,
            })
            .collect();
        if failures.is_empty() {
            return Ok(());
        }
        let msg = failures
            .iter()
            .map(Failure::message)
            .collect::<Vec<_>>()
            .join("; ");
        if failures.iter().any(|f| matches!(f, Failure::NoSpace(_))) {
            return Err(Failure::NoSpace(msg));
        }
        attempts += 1;
        if attempts >= CLONE_ATTEMPTS {
            return Err(Failure::Permanent(format!(
                "copying failed {attempts} times: {msg}"
            )));
        }
        // The operator sees it in the event log: a copy that read back
        // other bytes than it wrote says something about the storage.
        job.record(&format!(
            "copies again after cloneInternalVolumes failed ({msg}): attempt {} of {CLONE_ATTEMPTS}",
            attempts + 1
        ))
        .await;
        // A task id answers with its old result: new ids for the retry.
        for &i in batch {
            job.plan.renew_task(i, |d| &mut d.clone);
        }
        job.save().await.map_err(Failure::from)?;
        tokio::time::sleep(super::retry::backoff(attempts)).await;
    }
}

/// `finalizeBlockMigrate`: the VM's disks read from the copies. Retried
/// until it succeeds; the agent refuses (4xx) only before changing
/// anything, so a refusal can still be rolled back.
pub async fn finalize_block_migrate(job: &mut JobCtx) -> Result<(), Failure> {
    let vm = job
        .plan
        .vm
        .ok_or_else(|| Failure::Permanent("a live move needs a VM".into()))?;
    let req = FinalizeBlockMigrate {
        disks: job
            .plan
            .disks
            .iter()
            .map(|d| FinalizeDisk {
                image: d.disk,
                src_domain: job.plan.src,
                dst_domain: job.plan.dst,
            })
            .collect(),
    };
    let host = job.vm_host().await?;
    job.call(Step::FinalizeBlockMigrate, || {
        host.finalize_block_migrate(vm, &req)
    })
    .await?;
    switch(job).await
}

/// merge: each disk's move leaf folds into its parent on the destination,
/// so the chain has the shape it had. Retried until it succeeds.
pub async fn merge(job: &mut JobCtx) -> Result<(), Failure> {
    let vm = job
        .plan
        .vm
        .ok_or_else(|| Failure::Permanent("a live move needs a VM".into()))?;
    for i in 0..job.plan.disks.len() {
        let d = job.plan.disks[i].clone();
        let host = job.vm_host().await?;
        let req = Merge {
            vm,
            image: d.disk,
            domain: job.plan.dst,
            volume: d.new_leaf,
        };
        let mut attempts = 0u32;
        loop {
            job.call(Step::Merge, || host.merge(d.merge, &req)).await?;
            let ended = wait_all(
                job,
                &[Watched {
                    agent: host.clone(),
                    task: d.merge,
                }],
                0,
                0,
                false,
            )
            .await?;
            match ended.first() {
                Some(Ended::Succeeded) => break,
                // A full destination will not empty itself: the job fails
                // for a retry once there is room (the VM, paused if it
                // wrote there, resumes by itself then).
                Some(Ended::Failed(Failure::NoSpace(m))) => {
                    // The retry runs a new task: the agent answers this
                    // id with this failure for ever.
                    job.plan.renew_task(i, |d| &mut d.merge);
                    job.save().await.map_err(Failure::from)?;
                    return Err(Failure::NoSpace(format!(
                        "merge found the destination full: {m}; free space on it, then retry"
                    )));
                }
                other => {
                    attempts += 1;
                    let msg = format!("{other:?}");
                    if attempts >= CLONE_ATTEMPTS {
                        return Err(Failure::Permanent(format!("merge failed: {msg}")));
                    }
                    job.plan.renew_task(i, |d| &mut d.merge);
                    job.save().await.map_err(Failure::from)?;
                    tokio::time::sleep(super::retry::backoff(attempts)).await;
                }
            }
        }
    }
    Ok(())
}

/// The switch in the inventory: the disks' leaves are the destination's
/// now. All of a cold move's switch; the end of a live one's finalize.
pub async fn switch(job: &mut JobCtx) -> Result<(), Failure> {
    for d in job.plan.disks.clone() {
        job.engine
            .db()
            .set_disk_domain(d.disk, job.plan.dst)
            .await
            .map_err(Failure::from)?;
    }
    Ok(())
}

/// cleanup: the source's copies of the disks go (never a SHARED volume
/// another disk uses: the agent refuses that), the inventory is refreshed.
pub async fn cleanup(job: &mut JobCtx) -> Result<(), Failure> {
    let spm = job.spm().await?;
    for d in job.plan.disks.clone() {
        let req = ferry_api::agent::DeleteImage {
            domain: job.plan.src,
            image: d.disk,
            // The source's gigabytes go after the answer, a step at a
            // time: the guest writes to the same storage (docs/engine.md).
            release: ferry_api::agent::Release::Background,
        };
        job.call(Step::Cleanup, || spm.delete_image(&req)).await?;
        crate::refresh::refresh_disk(&job.engine, d.disk)
            .await
            .map_err(Failure::from)?;
    }
    Ok(())
}

/// Marks the live-only steps skipped when a move turns cold.
pub async fn turn_cold(job: &mut JobCtx) -> Result<(), Failure> {
    job.row.mode = MoveMode::Cold;
    job.plan.turned_cold = true;
    job.save().await.map_err(Failure::from)?;
    for step in [Step::BlockMigrate, Step::Merge] {
        job.step(
            step,
            StepState::Skipped,
            Some("the VM is not running: moved cold"),
        )
        .await
        .map_err(Failure::from)?;
    }
    job.step(
        Step::CreateVolumeCrossSd,
        StepState::RolledBack,
        Some("the VM is not running: moved cold"),
    )
    .await
    .map_err(Failure::from)?;
    Ok(())
}
