//! Runs a job from wherever its persisted steps say it is to its end:
//! forwards through the steps, or backwards through the rollback after a
//! failure or a cancel before `finalizeBlockMigrate`.

use std::sync::Arc;

use ferry_api::engine::{JobState, MoveMode, StepState};
use uuid::Uuid;

use super::job::JobCtx;
use super::plan::{self, past_point_of_no_return};
use super::retry::Failure;
use super::rollback::roll_back;
use super::steps::{self, Switched};
use crate::Engine;

/// Runs job `id` in the background until it ends.
pub fn spawn(engine: Arc<Engine>, id: Uuid) {
    tokio::spawn(async move {
        if let Err(e) = run(engine, id).await {
            tracing::error!(job = %id, "the job runner stopped: {e}");
        }
    });
}

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
                tracing::warn!(job = %id, step, "{}", failure.message());
                if !cancelled {
                    job.step(&step, StepState::Failed, Some(&failure.message()))
                        .await?;
                }
                if past_point_of_no_return(&step) {
                    // Past the switch point the destination is the truth:
                    // nothing to roll back; the disks stay locked until an
                    // operator has fixed the cause and retries the job.
                    let error = format!(
                        "{step} failed after the switch to the destination: {}; the VM already uses the destination. Fix the cause, then run 'ferry job retry {id}' to carry on from {step} (the disks stay locked until the job ends)",
                        failure.message()
                    );
                    job.row.error = Some(error.clone());
                    job.row.state = JobState::Failed;
                    job.row.finished = Some(crate::db::codec::now_ms());
                    job.row.rate_bps = 0;
                    job.save().await?;
                    job.engine
                        .events()
                        .record("job", &format!("job {id} failed: {error}"), Some(id))
                        .await;
                    return Ok(());
                }
                job.plan.failed_step = Some(if cancelled {
                    "cancel".into()
                } else {
                    failure.message()
                });
                job.row.state = JobState::RollingBack;
                job.save().await?;
            }
        }
    }
    // Rolling back (now, or resumed after a restart).
    loop {
        match roll_back(&mut job).await {
            Ok(()) => break,
            Err(f) => {
                tracing::error!(job = %id, "rollback failed, trying again: {}", f.message());
                tokio::time::sleep(super::retry::backoff(4)).await;
            }
        }
    }
    let reason = job.plan.failed_step.clone().unwrap_or_default();
    if reason == "cancel" {
        job.finish(JobState::Cancelled, None).await
    } else {
        job.finish(JobState::Failed, Some(reason)).await
    }
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
        .any(|s| s.name != plan::PREPARE && s.state != StepState::Pending);
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
async fn forwards(job: &mut JobCtx) -> Result<(), (String, Failure)> {
    if job.plan.turned_cold {
        return forwards_cold_rest(job).await;
    }
    let names: Vec<&'static str> = match job.row.mode {
        MoveMode::Live => plan::LIVE_STEPS.to_vec(),
        MoveMode::Cold => plan::COLD_STEPS.to_vec(),
    };
    for name in names {
        let state = job
            .step_state(name)
            .await
            .map_err(|e| (name.to_string(), Failure::from(e)))?;
        if matches!(
            state,
            StepState::Done | StepState::Skipped | StepState::RolledBack
        ) {
            continue;
        }
        begin(job, name).await?;
        run_step(job, name)
            .await
            .map_err(|f| (name.to_string(), f))?;
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
async fn begin(job: &mut JobCtx, name: &str) -> Result<(), (String, Failure)> {
    if !past_point_of_no_return(name) {
        job.check_cancel()
            .await
            .map_err(|f| (name.to_string(), f))?;
    }
    job.step(name, StepState::Running, None)
        .await
        .map_err(|e| (name.to_string(), Failure::from(e)))
}

/// A step is recorded done.
async fn done(job: &mut JobCtx, name: &str) -> Result<(), (String, Failure)> {
    job.step(name, StepState::Done, None)
        .await
        .map_err(|e| (name.to_string(), Failure::from(e)))
}

/// A live move whose VM was down at `blockMigrate` continues here: the
/// copy of the whole chain, the switch, the cleanup.
async fn forwards_cold_rest(job: &mut JobCtx) -> Result<(), (String, Failure)> {
    for (name, stand_in) in [
        (plan::CLONE_INTERNAL_VOLUMES, plan::CLONE_INTERNAL_VOLUMES),
        (plan::FINALIZE_BLOCK_MIGRATE, plan::SWITCH),
        (plan::CLEANUP, plan::CLEANUP),
    ] {
        let state = job
            .step_state(name)
            .await
            .map_err(|e| (name.to_string(), Failure::from(e)))?;
        if state == StepState::Done {
            continue;
        }
        begin(job, name).await?;
        run_step(job, stand_in)
            .await
            .map_err(|f| (name.to_string(), f))?;
        done(job, name).await?;
    }
    Ok(())
}

/// Tests kill or cancel a job at a chosen step: with
/// `FERRY_TEST_HOLD_STEP=<step>` in the engine's environment, a runner
/// entering that step waits there (persisted as running) until the job is
/// cancelled or the engine killed. Never set in production.
async fn hold_for_tests(job: &JobCtx, name: &str) -> Result<(), Failure> {
    if std::env::var("FERRY_TEST_HOLD_STEP").ok().as_deref() != Some(name) {
        return Ok(());
    }
    tracing::warn!(job = %job.id(), step = name, "holding the job here (FERRY_TEST_HOLD_STEP)");
    loop {
        if !past_point_of_no_return(name) {
            job.check_cancel().await?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Tests make a step fail for good: with `FERRY_TEST_FAIL_STEP=<step>` in
/// the engine's environment, that step fails at once, every time, as if
/// its agent had said no (which past the switch point leaves the job
/// failed for an operator to retry). Never set in production.
fn fail_for_tests(name: &str) -> Result<(), Failure> {
    if std::env::var("FERRY_TEST_FAIL_STEP").ok().as_deref() == Some(name) {
        return Err(Failure::Permanent(format!(
            "{name} failed on purpose (FERRY_TEST_FAIL_STEP)"
        )));
    }
    Ok(())
}

async fn run_step(job: &mut JobCtx, name: &str) -> Result<(), Failure> {
    fail_for_tests(name)?;
    hold_for_tests(job, name).await?;
    match name {
        plan::PREPARE => Ok(()),
        plan::CREATE_VOLUME_CROSS_SD => steps::create_volume_cross_sd(job).await,
        plan::BLOCK_MIGRATE => match steps::block_migrate(job).await? {
            Switched::Live => Ok(()),
            Switched::VmDown => {
                steps::undo_create_volume_cross_sd(job).await?;
                steps::turn_cold(job).await
            }
        },
        plan::CLONE_INTERNAL_VOLUMES => steps::clone_internal_volumes(job).await,
        plan::FINALIZE_BLOCK_MIGRATE => steps::finalize_block_migrate(job).await,
        plan::MERGE => steps::merge(job).await,
        plan::SWITCH => steps::switch(job).await,
        plan::CLEANUP => steps::cleanup(job).await,
        other => Err(Failure::Permanent(format!("unknown step {other}"))),
    }
}
