//! Hooks the acceptance tests use to stop or break a job at a chosen step,
//! compiled only with the `test-hooks` feature (the tests' build turns it
//! on; the release binary has none, so no environment variable can change
//! how a production move runs). See docs/testing.md.
//!
//! - `FERRY_TEST_HOLD_STEP=<step>`: a runner entering that step waits there
//!   (persisted as running) until the job is cancelled or the engine
//!   killed.
//! - `FERRY_TEST_FAIL_STEP=<step>`: that step fails at once, every time, as
//!   if its agent had said no (which past the switch point leaves the job
//!   failed for an operator to retry).
//! - `FERRY_TEST_CRASH_AFTER=<step>`: the engine process dies (abort) right
//!   after that step's work, before the step is recorded done: an engine
//!   killed after an agent did something and before the engine wrote it
//!   down.
//! - `FERRY_TEST_CRASH_AT=<point>`: the engine process dies (abort) at a
//!   [`CrashPoint`] of its own writes: `prepare-locked` (a move's job and
//!   locks written, live or cold not decided yet), `job-end` (a job's
//!   last step done and its agent tasks forgotten, its end not written),
//!   `snapshot-locked` (a snapshot's row and lock written, nothing asked
//!   of the SPM), `snapshot-created` (the snapshot's new leaf made, the
//!   VM not switched onto it).

use std::time::Duration;

use ferry_api::engine::Step;

use super::job::JobCtx;
use super::retry::Failure;
use super::step::past_point_of_no_return;

/// Whether the environment variable `var` names `step`.
fn names(var: &str, step: Step) -> bool {
    std::env::var(var).ok().as_deref() == Some(step.name())
}

/// Runs the hooks set for `step`, before the step's own work.
pub async fn before_step(job: &JobCtx, step: Step) -> Result<(), Failure> {
    if names("FERRY_TEST_FAIL_STEP", step) {
        return Err(Failure::Permanent(format!(
            "{step} failed on purpose (FERRY_TEST_FAIL_STEP)"
        )));
    }
    if !names("FERRY_TEST_HOLD_STEP", step) {
        return Ok(());
    }
    tracing::warn!(job = %job.id(), %step, "holding the job here (FERRY_TEST_HOLD_STEP)");
    loop {
        if !past_point_of_no_return(step) {
            job.check_cancel().await?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A point where `FERRY_TEST_CRASH_AT` kills the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// A move's job row and locks are written; its mode is not.
    PrepareLocked,
    /// A job has done its work; its end is not written.
    JobEnd,
    /// A snapshot's row and lock are written; the SPM was not asked.
    SnapshotLocked,
    /// A snapshot's new leaf exists; the VM was not switched onto it.
    SnapshotCreated,
}

impl CrashPoint {
    /// The point's name in `FERRY_TEST_CRASH_AT`.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::PrepareLocked => "prepare-locked",
            CrashPoint::JobEnd => "job-end",
            CrashPoint::SnapshotLocked => "snapshot-locked",
            CrashPoint::SnapshotCreated => "snapshot-created",
        }
    }
}

/// Kills the engine if `FERRY_TEST_CRASH_AT` names `point`.
pub fn crash_at(point: CrashPoint) {
    if std::env::var("FERRY_TEST_CRASH_AT").ok().as_deref() == Some(point.name()) {
        tracing::warn!(
            point = point.name(),
            "the engine dies here (FERRY_TEST_CRASH_AT)"
        );
        std::process::abort();
    }
}

/// Runs the hooks set for after `step`'s work, before it is recorded done.
pub fn after_step(step: Step) {
    if names("FERRY_TEST_CRASH_AFTER", step) {
        tracing::warn!(%step, "the engine dies here (FERRY_TEST_CRASH_AFTER)");
        std::process::abort();
    }
}
