//! Runs a job from wherever its persisted steps say it is to its end:
//! forwards through the steps, or backwards through the rollback after a
//! failure or a cancel before `finalizeBlockMigrate`.

use std::sync::Arc;

use ferry_api::engine::{JobState, MoveMode, Step, StepState};
use uuid::Uuid;

use super::job::JobCtx;
use super::plan::RollbackCause;
use super::retry::Failure;
use super::rollback::roll_back;
use super::step::{past_point_of_no_return, COLD_STEPS, LIVE_STEPS};
use super::steps::{self, Switched};
use crate::Engine;

/// Runs job `id` in the background until it ends. A runner that meets an
/// error of its own (the database refused a write) starts again from what
/// is persisted after a pause, instead of leaving the job `running` with
/// nothing driving it; every step is idempotent, so that is safe.
pub fn spawn(engine: Arc<Engine>, id: Uuid) {
    tokio::spawn(async move {
        let mut attempt = 0u32;
        while let Err(e) = run(engine.clone(), id).await {
            if matches!(e, crate::Error::NotFound(_) | crate::Error::Corrupt(_)) {
                // Nothing to run again: the job is gone, or its record
                // cannot be read (it is left for an operator to look at).
                tracing::error!(job = %id, "the job runner stopped: {}", e.full_text());
                return;
            }
            attempt = attempt.saturating_add(1);
            tracing::error!(job = %id, attempt, "the job runner failed, starting it again: {}", e.full_text());
            tokio::time::sleep(super::retry::backoff(attempt)).await;
        }
    });
}

/// Runs a job to its end: forwards through the steps not done yet; on a
/// failure or cancel before the switch point, backwards through the
/// rollback; past it, stops failed for an operator to retry.
async fn run(engine: Arc<Engine>, id: Uuid) -> crate::Result<()> {
    let mut job = JobCtx::load(engine, id).await?;
    if job.row.state.is_finished() {
        return Ok(());
    }
    // A place in the move queue, held until the job ends (its copies and
    // any rollback included).
    let _place = if job.row.state == JobState::Running {
        admit(&job).await?
    } else {
        None
    };
    if job.row.state == JobState::Running {
        match forwards(&mut job).await {
            Ok(()) => return job.finish(JobState::Succeeded, None).await,
            Err((step, failure)) => {
                let cancelled = failure == Failure::Cancelled;
                tracing::warn!(job = %id, %step, "{}", failure.message());
                if !cancelled {
                    job.step(step, StepState::Failed, Some(&failure.message()))
                        .await?;
                }
                if past_point_of_no_return(step) {
                    return fail_after_switch(&mut job, step, &failure).await;
                }
                job.plan.rollback = Some(if cancelled {
                    RollbackCause::Cancelled
                } else {
                    RollbackCause::Failed(failure.message())
                });
                job.row.state = JobState::RollingBack;
                job.save().await?;
            }
        }
    }
    // Rolling back (now, or resumed after a restart).
    roll_back_to_the_end(&mut job).await
}

/// Past the switch point the destination is the truth: nothing to roll
/// back. The job ends failed, its disks stay locked until an operator has
/// fixed the cause and retries it.
async fn fail_after_switch(job: &mut JobCtx, step: Step, failure: &Failure) -> crate::Result<()> {
    let id = job.id();
    let error = format!(
        "{step} failed after the switch to the destination: {}; the VM already uses the destination. Fix the cause, then run 'ferry job retry {id}' to carry on from {step} (the disks stay locked until the job ends)",
        failure.message()
    );
    stop_failed_locked(job, error).await
}

/// Stops a job `failed` with `error` but its disks still locked (it has
/// not ended for good: a retry carries it on), with an event.
async fn stop_failed_locked(job: &mut JobCtx, error: String) -> crate::Result<()> {
    let id = job.id();
    job.row.error = Some(error.clone());
    job.row.state = JobState::Failed;
    job.row.finished = Some(crate::db::codec::now_ms());
    job.row.rate_bps = 0;
    job.save().await?;
    job.engine
        .events()
        .record("job", &format!("job {id} failed: {error}"), Some(id))
        .await;
    Ok(())
}

/// How many times a rollback that fails is run again before the job
/// stops, failed with its disks locked, for an operator.
const ROLLBACK_ATTEMPTS: u32 = 5;

/// Rolls the job back, then ends it as its rollback cause says: cancelled,
/// or failed with the reason. A rollback that fails is run again (every
/// part of it is idempotent) up to [`ROLLBACK_ATTEMPTS`] times, but not
/// after an agent went unanswered for the engine's whole bound: then, or
/// after the last attempt, the job stops failed with its disks locked
/// ([`halt_rollback`]).
async fn roll_back_to_the_end(job: &mut JobCtx) -> crate::Result<()> {
    if job.plan.rollback_halted {
        // Retried: the rollback runs again.
        job.plan.rollback_halted = false;
        job.save().await?;
    }
    let mut attempts = 0u32;
    loop {
        match roll_back(job).await {
            Ok(()) => break,
            Err(f) => {
                attempts += 1;
                if matches!(f, Failure::Unreachable(_)) || attempts >= ROLLBACK_ATTEMPTS {
                    return halt_rollback(job, &f, attempts).await;
                }
                tracing::error!(job = %job.id(), attempts, "rollback failed, trying again: {}", f.message());
                tokio::time::sleep(super::retry::backoff(attempts + 2)).await;
            }
        }
    }
    match job.plan.rollback.clone() {
        Some(RollbackCause::Cancelled) => job.finish(JobState::Cancelled, None).await,
        Some(RollbackCause::Failed(reason)) => job.finish(JobState::Failed, Some(reason)).await,
        None => {
            job.finish(
                JobState::Failed,
                Some("the job was rolled back for a reason it did not record".into()),
            )
            .await
        }
    }
}

/// A rollback that cannot finish now: the job ends failed, its disks stay
/// locked (the VM may still use the destination's leaf, a copy may still
/// write there), and the error says why and how to finish it.
async fn halt_rollback(job: &mut JobCtx, failure: &Failure, attempts: u32) -> crate::Result<()> {
    let id = job.id();
    let why = match job.plan.rollback.as_ref() {
        Some(RollbackCause::Failed(reason)) => format!("the move failed ({reason}) and "),
        Some(RollbackCause::Cancelled) => "the move was cancelled and ".into(),
        None => String::new(),
    };
    let error = format!(
        "{why}its rollback could not finish after {attempts} attempt(s): {}. The disks stay locked and may still use the destination; fix the cause, then run 'ferry job retry {id}' to finish the rollback",
        failure.message()
    );
    tracing::error!(job = %id, "{error}");
    job.plan.rollback_halted = true;
    stop_failed_locked(job, error).await
}

/// Takes the job's place in the move queue. A job that has not started
/// its first step waits (shown queued) until a place is free or it is
/// cancelled (then `forwards` ends it, with nothing to undo). One that
/// has started (resumed after a restart, or retried) takes a free place
/// if there is one but never waits: its VM may already depend on both
/// domains.
async fn admit(job: &JobCtx) -> crate::Result<Option<tokio::sync::OwnedSemaphorePermit>> {
    let queue = job.engine.moves();
    let started = job
        .engine
        .db()
        .steps(job.id())
        .await?
        .iter()
        .any(|s| s.name != Step::Prepare && s.state != StepState::Pending);
    if started {
        return Ok(queue.try_take());
    }
    if let Some(place) = queue.try_take() {
        return Ok(Some(place));
    }
    let id = job.id();
    job.engine
        .events()
        .record(
            "job",
            &format!(
                "job {id} is queued: {} moves are running, the most the engine runs at once",
                queue.limit()
            ),
            Some(id),
        )
        .await;
    Ok(queue
        .take(id, || async {
            job.cancel_requested().await.unwrap_or(false)
        })
        .await)
}

/// The steps not done yet, in order; the first failure with the step it
/// happened in.
async fn forwards(job: &mut JobCtx) -> Result<(), (Step, Failure)> {
    if job.plan.turned_cold {
        return forwards_cold_rest(job).await;
    }
    let steps = match job.row.mode {
        MoveMode::Live => LIVE_STEPS,
        MoveMode::Cold => COLD_STEPS,
    };
    for &name in steps {
        let state = job
            .step_state(name)
            .await
            .map_err(|e| (name, Failure::from(e)))?;
        if matches!(
            state,
            StepState::Done | StepState::Skipped | StepState::RolledBack
        ) {
            continue;
        }
        begin(job, name).await?;
        let ran = run_step(job, name).await;
        if name == Step::CloneInternalVolumes {
            // The copy is over: its pacing figures are no longer news.
            job.engine.set_pace(job.id(), None);
        }
        ran.map_err(|f| (name, f))?;
        if job.plan.turned_cold {
            // The VM was down at blockMigrate: finish with the cold steps.
            return forwards_cold_rest(job).await;
        }
        done(job, name).await?;
    }
    Ok(())
}

/// A step starts: a last look for a cancel (while one is still possible),
/// then it is recorded running.
async fn begin(job: &mut JobCtx, name: Step) -> Result<(), (Step, Failure)> {
    if !past_point_of_no_return(name) {
        job.check_cancel().await.map_err(|f| (name, f))?;
    }
    job.step(name, StepState::Running, None)
        .await
        .map_err(|e| (name, Failure::from(e)))
}

/// A step is recorded done, and the inventory's view of the job's disks
/// brought up to date with what the step changed on storage.
async fn done(job: &mut JobCtx, name: Step) -> Result<(), (Step, Failure)> {
    job.step(name, StepState::Done, None)
        .await
        .map_err(|e| (name, Failure::from(e)))?;
    refresh_disks(job).await;
    Ok(())
}

/// Reads the job's disks back from storage into the inventory (their
/// chain and the volumes outside it). Best effort: it is a cache that the
/// next step refreshes again, so a failure is only logged.
async fn refresh_disks(job: &JobCtx) {
    for d in &job.plan.disks {
        if let Err(e) = crate::refresh::refresh_disk(&job.engine, d.disk).await {
            tracing::warn!(job = %job.id(), disk = %d.disk, "cannot refresh the disk's chain: {}", e.full_text());
        }
    }
}

/// A live move whose VM was down at `blockMigrate` continues here: the
/// copy of the whole chain, the switch, the cleanup.
async fn forwards_cold_rest(job: &mut JobCtx) -> Result<(), (Step, Failure)> {
    for (name, stand_in) in [
        (Step::CloneInternalVolumes, Step::CloneInternalVolumes),
        (Step::FinalizeBlockMigrate, Step::Switch),
        (Step::Cleanup, Step::Cleanup),
    ] {
        let state = job
            .step_state(name)
            .await
            .map_err(|e| (name, Failure::from(e)))?;
        if state == StepState::Done {
            continue;
        }
        begin(job, name).await?;
        run_step(job, stand_in).await.map_err(|f| (name, f))?;
        done(job, name).await?;
    }
    Ok(())
}

/// Runs one step's work.
async fn run_step(job: &mut JobCtx, step: Step) -> Result<(), Failure> {
    #[cfg(feature = "test-hooks")]
    super::test_hooks::before_step(job, step).await?;
    match step {
        Step::Prepare => Ok(()),
        Step::CreateVolumeCrossSd => steps::create_volume_cross_sd(job).await,
        Step::BlockMigrate => match steps::block_migrate(job).await? {
            Switched::Live => Ok(()),
            Switched::VmDown => {
                // The VM may have written to its new leaves before it
                // stopped (a switch whose answer was lost): they are
                // folded into their parents, never deleted.
                super::rollback::undo_block_migrate(job).await?;
                steps::turn_cold(job).await
            }
        },
        Step::CloneInternalVolumes => steps::clone_internal_volumes(job).await,
        Step::FinalizeBlockMigrate => steps::finalize_block_migrate(job).await,
        Step::Merge => steps::merge(job).await,
        Step::Switch => steps::switch(job).await,
        Step::Cleanup => steps::cleanup(job).await,
    }?;
    #[cfg(feature = "test-hooks")]
    super::test_hooks::after_step(step);
    Ok(())
}
