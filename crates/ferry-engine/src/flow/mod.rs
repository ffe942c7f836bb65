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

mod forget;
mod job;
pub(crate) mod pace;
mod pacing;
mod plan;
mod progress;
pub(crate) mod queue;
mod retry;
mod rollback;
mod runner;
mod step;
mod steps;
mod tasks;
#[cfg(feature = "test-hooks")]
pub(crate) mod test_hooks;
pub mod view;
mod vm_start;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_agent_client::AgentClient;
use ferry_api::engine::{Job, JobKind, JobState, MoveMode, PaceMode};
use ferry_api::ErrorKind;
use uuid::Uuid;

use crate::db::{DomainRow, JobRow};
use crate::error::{Error, Result};
use crate::Engine;

pub use step::{past_point_of_no_return, Step, COLD_STEPS, LIVE_STEPS};
pub use vm_start::start_domain;

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
    /// How a live move's copy is paced.
    pub pace: PaceMode,
    /// With guest pacing, the share of its I/O rate the guest is to keep,
    /// percent (`None`: the default).
    pub guest_share_pct: Option<u64>,
    /// The caller's own id for the job (checked by
    /// [`ops::check_move_request`](crate::ops::check_move_request)).
    pub correlation_id: Option<String>,
}

/// Room left free on the destination beyond the chain's size: a copy that
/// would fill a domain to the last byte is refused up front.
const SPACE_SLACK_PERCENT: u64 = 5;

/// prepare: validates the move (disks exist and are not locked, the
/// destination is another active domain with room for the chains, the
/// disks of a VM move are all on one domain), locks the disks with the
/// job's row, then decides live or cold from the VM's state as its host
/// reports it, and starts the job's runner. Nothing is created anywhere
/// if any check fails, and a refused move leaves no job behind.
///
/// The decision comes after the lock, so a VM started meanwhile is
/// either seen running or refused its start (its disk is locked by a job
/// still at prepare); and a VM whose host does not answer is never
/// guessed down: the move is refused (503) instead of going cold under a
/// guest that may be writing.
pub async fn start_move(engine: &Arc<Engine>, spec: MoveSpec) -> Result<Job> {
    let (src, vm) = check_disks(engine, &spec).await?;
    let dst = destination(engine, &spec, src).await?;
    let host = vm_host(engine, vm).await?;
    let (_, spm) = engine.agents().spm().await?;
    let mut plan = plan::MovePlan::new(src, dst.id, vm, host);
    plan.pace = spec.pace;
    plan.guest_share_pct = spec.guest_share_pct;
    plan.correlation_id.clone_from(&spec.correlation_id);
    read_chains(&spm, &mut plan, &spec.disks).await?;
    let row = {
        // The space check and the job that reserves the space are one
        // step for concurrent moves: two cannot both count the same room.
        let _reserving = engine.moves().reserving().await;
        check_space(engine, &spm, &plan, &dst).await?;
        persist_and_lock(engine, &spec, vm, &plan).await?
    };
    #[cfg(feature = "test-hooks")]
    test_hooks::crash_at(test_hooks::CrashPoint::PrepareLocked);
    let mode = match live_or_cold(engine, vm, host).await {
        Ok(mode) => mode,
        Err(e) => {
            engine.db().forget_unstarted_job(row.id).await?;
            return Err(e);
        }
    };
    engine
        .db()
        .decide_mode(row.id, mode, steps_of(mode))
        .await?;
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

/// The steps of a move of `mode`.
fn steps_of(mode: MoveMode) -> &'static [Step] {
    match mode {
        MoveMode::Live => LIVE_STEPS,
        MoveMode::Cold => COLD_STEPS,
    }
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
        if row.locked_by.is_some() {
            return Err(db.lock_refusal(row.id).await?);
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

/// The host of the VM, if the move has one.
async fn vm_host(engine: &Engine, vm: Option<Uuid>) -> Result<Option<Uuid>> {
    let Some(v) = vm else {
        return Ok(None);
    };
    let row = engine
        .db()
        .vm(v)
        .await?
        .ok_or_else(|| Error::NotFound(format!("VM {v} does not exist")))?;
    Ok(Some(row.host))
}

/// How long prepare waits for the VM's host to say whether the VM runs:
/// a host that does not answer in this time is treated as unreachable.
const VM_STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Live or cold: the VM's state as its host reports it now. A disk of no
/// VM moves cold. A host that does not answer makes the move refused:
/// unknown is not down.
async fn live_or_cold(engine: &Engine, vm: Option<Uuid>, host: Option<Uuid>) -> Result<MoveMode> {
    let (Some(v), Some(h)) = (vm, host) else {
        return Ok(MoveMode::Cold);
    };
    let host = engine
        .db()
        .host(h)
        .await?
        .ok_or_else(|| Error::NotFound(format!("host {h} does not exist")))?;
    let agent = engine
        .agents()
        .client_for(&host)
        .with_timeout(VM_STATE_TIMEOUT);
    match agent.vm(v).await {
        Ok(s) if s.state == ferry_api::vm::VmState::Running => Ok(MoveMode::Live),
        Ok(_) => Ok(MoveMode::Cold),
        // The agent does not know the VM: it is not running there.
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(MoveMode::Cold),
        Err(e) => Err(Error::Unavailable(format!(
            "host {} of the VM does not answer ({}), so Ferry cannot tell whether the VM is running and writing to its disks; nothing was moved. Try again when the host is up (ferry host list)",
            host.name,
            e.message()
        ))),
    }
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
/// by the SPM's fresh look (the inventory's when it cannot say), less what
/// the moves already heading there have still to copy: the space a job
/// needs is reserved from its prepare to its end, so concurrent moves to
/// one domain are refused up front rather than filling it together.
async fn check_space(
    engine: &Engine,
    spm: &AgentClient,
    plan: &plan::MovePlan,
    dst: &DomainRow,
) -> Result<()> {
    let (free, releasing) = spm
        .domains()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot read the domains' free space: {e}")))?
        .into_iter()
        .find(|d| d.uuid == dst.id)
        .map_or((dst.free, 0), |d| (d.free, d.releasing));
    let reserved: u64 = engine
        .db()
        .unfinished_jobs()
        .await?
        .iter()
        .filter(|j| j.dst_domain == dst.id)
        .map(|j| j.total_bytes.saturating_sub(j.done_bytes))
        .sum();
    let needed = plan.total_bytes() + plan.total_bytes() * SPACE_SLACK_PERCENT / 100;
    if needed > free.saturating_sub(reserved) {
        let held = if reserved > 0 {
            format!(
                ", {} MiB of it reserved by the moves already heading there,",
                reserved.div_ceil(1 << 20)
            )
        } else {
            String::new()
        };
        let coming = if releasing > 0 {
            format!(
                " ({} MiB more, of volumes deleted there, are being given back now: try again in a moment)",
                releasing >> 20
            )
        } else {
            String::new()
        };
        return Err(Error::NoSpace(format!(
            "storage domain {} has {} MiB free{held} but the move needs {} MiB (the chains plus {SPACE_SLACK_PERCENT}%){coming}; free space there, wait for those moves, or choose another domain",
            dst.name,
            free >> 20,
            needed.div_ceil(1 << 20)
        )));
    }
    Ok(())
}

/// Persists the job with its plan and its disks' locks in one transaction
/// (a lost race for a lock writes nothing). The job is live until its
/// host says the VM is stopped: a crash before that decision is recorded
/// resumes it live, which turns cold by itself if the VM is down.
async fn persist_and_lock(
    engine: &Engine,
    spec: &MoveSpec,
    vm: Option<Uuid>,
    plan: &plan::MovePlan,
) -> Result<JobRow> {
    let provisional = if vm.is_some() {
        MoveMode::Live
    } else {
        MoveMode::Cold
    };
    let mut row = JobRow::new(
        spec.kind,
        provisional,
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
    engine
        .db()
        .insert_locked_job(&row, steps_of(provisional))
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
            "job {id} is {} at {}: only a job that failed after the switch to the destination, or whose rollback could not finish (its disks still locked), can be retried; a move that failed before the switch was rolled back, so start a new one",
            format!("{:?}", job.state).to_lowercase(),
            job.step
        )));
    }
    let (state, what) = if plan::rollback_halted(&job.data) {
        (JobState::RollingBack, "its rollback".to_string())
    } else {
        (JobState::Running, job.step.to_string())
    };
    if db.reopen_failed_job(id, state).await? {
        engine
            .events()
            .record("job", &format!("job {id} retried from {what}"), Some(id))
            .await;
        runner::spawn(engine.clone(), id);
    }
    view::job(engine, id).await
}

/// Releases, at engine start, every disk lock that no running job or
/// snapshot holds (its job ended, or an older engine crashed between two
/// writes), each with an event: no lock outlives its owner. A job that
/// failed after the switch keeps its disks: it has not ended for good,
/// and its disks' chains are half-merged until it is retried.
pub async fn release_orphan_locks(engine: &Arc<Engine>) {
    let keep: Vec<Uuid> = match engine.db().failed_jobs().await {
        Ok(failed) => failed
            .iter()
            .filter(|j| step::retryable(j))
            .map(|j| j.id)
            .collect(),
        Err(e) => {
            // Without knowing which locks are still owned, release none.
            tracing::error!(
                "cannot list failed jobs, so no stale lock is released: {}",
                e.full_text()
            );
            return;
        }
    };
    match engine.db().release_orphan_locks(&keep).await {
        Ok(released) => {
            for (disk, holder) in released {
                engine
                    .events()
                    .record(
                        "disk",
                        &format!(
                            "disk {disk} was left locked by {holder}, which no longer runs; the lock is released"
                        ),
                        None,
                    )
                    .await;
            }
        }
        Err(e) => tracing::error!("cannot release stale disk locks: {}", e.full_text()),
    }
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
