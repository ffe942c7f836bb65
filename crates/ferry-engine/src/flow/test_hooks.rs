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

/// Runs the hooks set for after `step`'s work, before it is recorded done.
pub fn after_step(step: Step) {
    if names("FERRY_TEST_CRASH_AFTER", step) {
        tracing::warn!(%step, "the engine dies here (FERRY_TEST_CRASH_AFTER)");
        std::process::abort();
    }
}
