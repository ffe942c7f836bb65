//! The live move flow of the seed, as a persisted state machine: one job
//! row, one row per step written before and after each step, and a runner
//! per job that carries on from the persisted step after an engine
//! restart. Steps (the seed's names): prepare → `createVolumeCrossSD` →
//! `blockMigrate` → `cloneInternalVolumes` → `finalizeBlockMigrate` →
//! merge → cleanup; a VM that is down makes it a cold move (prepare →
//! `cloneInternalVolumes` → switch → cleanup). Until
//! `finalizeBlockMigrate` starts, a failure or a cancel rolls everything
//! back; after it, the destination is the truth and the remaining steps
//! are retried until they succeed.

mod job;
pub(crate) mod plan;
mod progress;
pub(crate) mod queue;
mod retry;
mod rollback;
mod runner;
mod step;
mod steps;
mod tasks;
#[cfg(feature = "test-hooks")]
mod test_hooks;
pub mod view;

use std::collections::HashSet;
use std::sync::Arc;

use ferry_agent_client::AgentClient;
use ferry_api::engine::{Job, JobKind, JobState, MoveMode, StepState, VmState};
use uuid::Uuid;

use crate::db::{DomainRow, JobRow};
use crate::error::{Error, Result};
use crate::Engine;

pub use step::{past_point_of_no_return, Step, COLD_STEPS, LIVE_STEPS};

/// A move to start: which disks, from which VM, to which domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveSpec {
    /// Disk move or VM move.
    pub kind: JobKind,
    /// The disks, in the VM's device order for a VM move.
    pub disks: Vec<Uuid>,
    /// The VM, for a VM move.
    pub vm: Option<Uuid>,
    /// The destination domain.
    pub dst_domain: Uuid,
    /// Bandwidth limit of the copy, MiB/s.
    pub bandwidth_mib_s: Option<u64>,
}

/// Room left free on the destination beyond the chain's size: a copy that
/// would fill a domain to the last byte is refused up front.
const SPACE_SLACK_PERCENT: u64 = 5;

/// prepare: validates the move (disks exist and are not locked, the
/// destination is another active domain with room for the chains, the
/// disks of a VM move are all on one domain), decides live or cold from
/// the VM's state, locks the disks, persists the job with its plan and
/// starts its runner. Nothing is created anywhere if any check fails.
pub async fn start_move(engine: &Arc<Engine>, spec: MoveSpec) -> Result<Job> {
    let (src, vm) = check_disks(engine, &spec).await?;
    let dst = destination(engine, &spec, src).await?;
    let (mode, host) = live_or_cold(engine, vm).await?;
    let (_, spm) = engine.agents().spm().await?;
    let mut plan = plan::MovePlan::new(src, dst.id, vm, host);
    read_chains(&spm, &mut plan, &spec.disks).await?;
    check_space(&spm, &plan, &dst).await?;
    let row = persist_and_lock(engine, &spec, mode, vm, &plan).await?;
    engine
        .events()
        .record(
            "job",
            &format!(
                "job {} started: {} move of {} disk(s) to {}",
                row.id,
                match mode {
                    MoveMode::Live => "live",
                    MoveMode::Cold => "cold",
                },
                spec.disks.len(),
                dst.name
            ),
            Some(row.id),
        )
        .await;
    runner::spawn(engine.clone(), row.id);
    view::job(engine, row.id).await
}

/// The disks exist, are listed once, are not locked, share one source
/// domain and at most one VM: returns that domain and VM.
async fn check_disks(engine: &Engine, spec: &MoveSpec) -> Result<(Uuid, Option<Uuid>)> {
    if spec.disks.is_empty() {
        return Err(Error::BadRequest("a move needs at least one disk".into()));
    }
    let db = engine.db();
    let mut src = None;
    let mut vm = spec.vm;
    let mut seen = HashSet::new();
    for disk in &spec.disks {
        if !seen.insert(*disk) {
            return Err(Error::BadRequest(format!("disk {disk} is listed twice")));
        }
        let row = db
            .disk(*disk)
            .await?
            .ok_or_else(|| Error::NotFound(format!("disk {disk} does not exist")))?;
        if let Some(job) = row.locked_by {
            return Err(Error::Locked {
                disk: row.name.clone(),
                job,
            });
        }
        match src {
            None => src = Some(row.domain),
            Some(s) if s != row.domain => {
                return Err(Error::BadRequest(format!(
                    "the disks of this move are on different domains; move them one by one (disk {} is on {})",
                    row.name, row.domain
                )))
            }
            Some(_) => {}
        }
        match (vm, db.vm_of_disk(*disk).await?) {
            (None, Some(o)) => vm = Some(o),
            (Some(v), Some(o)) if v != o => {
                return Err(Error::BadRequest(format!(
                    "disk {} belongs to another VM; move each VM's disks separately",
                    row.name
                )))
            }
            _ => {}
        }
    }
    let src = src.ok_or_else(|| Error::Internal("no source domain".into()))?;
    Ok((src, vm))
}

/// The destination: a known domain other than the source.
async fn destination(engine: &Engine, spec: &MoveSpec, src: Uuid) -> Result<DomainRow> {
    let dst = engine.db().domain(spec.dst_domain).await?.ok_or_else(|| {
        Error::NotFound(format!("storage domain {} does not exist", spec.dst_domain))
    })?;
    if dst.id == src {
        return Err(Error::BadRequest(format!(
            "the disks are already on storage domain {}; choose another destination",
            dst.name
        )));
    }
    Ok(dst)
}

/// Live or cold: the VM's state as its host reports it now (as the
/// inventory has it when the host does not answer), and the VM's host.
async fn live_or_cold(engine: &Engine, vm: Option<Uuid>) -> Result<(MoveMode, Option<Uuid>)> {
    let Some(v) = vm else {
        return Ok((MoveMode::Cold, None));
    };
    let row = engine
        .db()
        .vm(v)
        .await?
        .ok_or_else(|| Error::NotFound(format!("VM {v} does not exist")))?;
    let running = match engine.agents().client(row.host).await {
        Ok(agent) => agent
            .vm(v)
            .await
            .map(|s| s.state == ferry_api::vm::VmState::Running)
            .unwrap_or(row.state == VmState::Running),
        Err(_) => row.state == VmState::Running,
    };
    let mode = if running {
        MoveMode::Live
    } else {
        MoveMode::Cold
    };
    Ok((mode, Some(row.host)))
}

/// The disks' chains as the SPM sees them, each one chain, into the plan
/// with the bytes each takes.
async fn read_chains(spm: &AgentClient, plan: &mut plan::MovePlan, disks: &[Uuid]) -> Result<()> {
    for disk in disks {
        let volumes = spm
            .image_volumes(plan.src, *disk)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot read disk {disk}'s chain: {e}")))?;
        let chain = order_chain(&volumes).ok_or_else(|| {
            Error::Conflict(format!(
                "disk {disk}'s volumes on its domain do not form one chain (an earlier move may have left it split); check `ferry disk show`"
            ))
        })?;
        let bytes: u64 = volumes.iter().map(|v| v.allocated).sum();
        plan.add_disk(*disk, chain, bytes);
    }
    Ok(())
}

/// The destination has room for the chains plus [`SPACE_SLACK_PERCENT`],
/// by the SPM's fresh look (the inventory's when it cannot say).
async fn check_space(spm: &AgentClient, plan: &plan::MovePlan, dst: &DomainRow) -> Result<()> {
    let free = spm
        .domains()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot read the domains' free space: {e}")))?
        .into_iter()
        .find(|d| d.uuid == dst.id)
        .map_or(dst.free, |d| d.free);
    let needed = plan.total_bytes() + plan.total_bytes() * SPACE_SLACK_PERCENT / 100;
    if needed > free {
        return Err(Error::NoSpace(format!(
            "storage domain {} has {} MiB free but the move needs {} MiB (the chains plus {SPACE_SLACK_PERCENT}%); free space there or choose another domain",
            dst.name,
            free >> 20,
            needed.div_ceil(1 << 20)
        )));
    }
    Ok(())
}

/// Persists the job with its plan and steps, then locks its disks (the
/// lock names the job, so the row comes first); a lost race for the lock
/// deletes nothing but marks this job failed. `prepare` is then done.
async fn persist_and_lock(
    engine: &Engine,
    spec: &MoveSpec,
    mode: MoveMode,
    vm: Option<Uuid>,
    plan: &plan::MovePlan,
) -> Result<JobRow> {
    let db = engine.db();
    let steps = match mode {
        MoveMode::Live => LIVE_STEPS,
        MoveMode::Cold => COLD_STEPS,
    };
    let mut row = JobRow::new(
        spec.kind,
        mode,
        spec.disks.clone(),
        plan.src,
        plan.dst,
        Step::Prepare,
    );
    row.vm = vm;
    row.bandwidth_mib_s = spec.bandwidth_mib_s;
    row.total_bytes = plan.total_bytes();
    row.data = serde_json::to_value(plan)
        .map_err(|e| Error::Internal(format!("cannot encode a job plan: {e}")))?;
    db.insert_job(&row, steps).await?;
    if let Err(e) = db.lock_disks(row.id, &spec.disks).await {
        row.state = JobState::Failed;
        row.error = Some(e.to_string());
        db.update_job(&row).await?;
        return Err(e);
    }
    db.set_step(row.id, Step::Prepare, StepState::Done, None)
        .await?;
    Ok(row)
}

/// Orders an image's volumes on one domain base first; `None` unless they
/// form exactly one chain.
fn order_chain(volumes: &[ferry_api::agent::VolumeInfo]) -> Option<Vec<Uuid>> {
    let ids: HashSet<Uuid> = volumes.iter().map(|v| v.volume).collect();
    let base = volumes
        .iter()
        .filter(|v| v.parent.is_none_or(|p| !ids.contains(&p)) && v.parent_domain.is_none())
        .collect::<Vec<_>>();
    let [base] = base.as_slice() else {
        return None;
    };
    let mut chain = vec![base.volume];
    while let Some(next) = volumes
        .iter()
        .find(|v| v.parent == chain.last().copied() && v.parent_domain.is_none())
    {
        if chain.contains(&next.volume) {
            return None;
        }
        chain.push(next.volume);
    }
    (chain.len() == volumes.len()).then_some(chain)
}

/// Asks a job to stop and roll back. Refused once the switch to the
/// destination has begun: from there the move completes.
pub async fn cancel(engine: &Arc<Engine>, id: Uuid) -> Result<Job> {
    let db = engine.db();
    let job = db
        .job(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("job {id} does not exist")))?;
    if job.state.is_finished() {
        return Err(Error::Conflict(format!(
            "job {id} has already ended ({:?}); there is nothing to cancel",
            job.state
        )));
    }
    if past_point_of_no_return(job.step) || step::switch_begun(&db.steps(id).await?) {
        return Err(Error::Conflict(format!(
            "job {id} is at {}, past the switch to the destination; it can no longer be cancelled and will complete",
            job.step
        )));
    }
    db.request_cancel(id).await?;
    engine
        .events()
        .record("job", &format!("cancel of job {id} requested"), Some(id))
        .await;
    view::job(engine, id).await
}

/// Carries on a job that failed after the switch to the destination (its
/// disks still locked), from the step that failed: for when an operator
/// has fixed what made `merge` or `cleanup` fail. Those steps are
/// idempotent, so running one again is safe. A job that failed before the
/// switch was rolled back; it is not retried but started anew.
pub async fn retry(engine: &Arc<Engine>, id: Uuid) -> Result<Job> {
    let db = engine.db();
    let job = db
        .job(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("job {id} does not exist")))?;
    if !step::retryable(&job) {
        return Err(Error::Conflict(format!(
            "job {id} is {} at {}: only a job that failed after the switch to the destination (its disks still locked) can be retried; a move that failed before it was rolled back, so start a new one",
            format!("{:?}", job.state).to_lowercase(),
            job.step
        )));
    }
    if db.reopen_failed_job(id).await? {
        engine
            .events()
            .record(
                "job",
                &format!("job {id} retried from {}", job.step),
                Some(id),
            )
            .await;
        runner::spawn(engine.clone(), id);
    }
    view::job(engine, id).await
}

/// Starts a runner for every job a previous engine left unfinished.
pub async fn resume_all(engine: &Arc<Engine>) {
    match engine.db().unfinished_jobs().await {
        Ok(jobs) => {
            for job in jobs {
                tracing::info!(job = %job.id, step = %job.step, "resuming job");
                runner::spawn(engine.clone(), job.id);
            }
        }
        Err(e) => tracing::error!("cannot list unfinished jobs: {e}"),
    }
}
