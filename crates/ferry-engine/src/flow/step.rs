//! The steps of a move and the one rule that matters most about them: the
//! point of no return. Before `finalizeBlockMigrate` (a cold move's
//! `switch`) a failure or a cancel rolls everything back; from there the
//! destination is the truth, so the move can only go on (and, if a step
//! fails, be retried). Whether a job can be cancelled or retried follows
//! from that rule here, and only here.

pub use ferry_api::engine::Step;
use ferry_api::engine::{JobState, JobStep, StepState};

use crate::db::JobRow;

/// The steps of a live move, in order (the seed's names).
pub const LIVE_STEPS: &[Step] = &[
    Step::Prepare,
    Step::CreateVolumeCrossSd,
    Step::BlockMigrate,
    Step::CloneInternalVolumes,
    Step::FinalizeBlockMigrate,
    Step::Merge,
    Step::Cleanup,
];

/// The steps of a cold move: the live steps that touch the running VM are
/// skipped; `switch` points the disk at the destination copies.
pub const COLD_STEPS: &[Step] = &[
    Step::Prepare,
    Step::CloneInternalVolumes,
    Step::Switch,
    Step::Cleanup,
];

/// Whether a move at `step` is past the switch to the destination: a
/// cancel can no longer bring the disk back to the source without copying
/// it back, and a failure is not rolled back.
pub fn past_point_of_no_return(step: Step) -> bool {
    match step {
        Step::Prepare
        | Step::CreateVolumeCrossSd
        | Step::BlockMigrate
        | Step::CloneInternalVolumes => false,
        Step::FinalizeBlockMigrate | Step::Merge | Step::Switch | Step::Cleanup => true,
    }
}

/// Whether any step past the point of no return has begun (a skipped one
/// has not).
pub fn switch_begun(steps: &[JobStep]) -> bool {
    steps.iter().any(|s| {
        past_point_of_no_return(s.name)
            && !matches!(s.state, StepState::Pending | StepState::Skipped)
    })
}

/// Whether a cancel is still possible: the job runs forwards and has not
/// begun the switch.
pub fn cancellable(job: &JobRow, steps: &[JobStep]) -> bool {
    job.state == JobState::Running && !switch_begun(steps)
}

/// Whether a retry is possible: the job failed after the switch point, so
/// nothing was rolled back, its disks are still locked, and a retry
/// carries on from the failed step; or its rollback gave up, its disks
/// still locked, and a retry runs the rollback again.
pub fn retryable(job: &JobRow) -> bool {
    job.state == JobState::Failed
        && (past_point_of_no_return(job.step) || super::plan::rollback_halted(&job.data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_possible_until_the_switch() {
        for step in [
            Step::Prepare,
            Step::CreateVolumeCrossSd,
            Step::BlockMigrate,
            Step::CloneInternalVolumes,
        ] {
            assert!(!past_point_of_no_return(step));
        }
        for step in [
            Step::FinalizeBlockMigrate,
            Step::Merge,
            Step::Cleanup,
            Step::Switch,
        ] {
            assert!(past_point_of_no_return(step));
        }
    }

    fn step(name: Step, state: StepState) -> JobStep {
        JobStep {
            name,
            state,
            started: None,
            finished: None,
            attempts: 0,
            error: None,
        }
    }

    #[test]
    fn a_skipped_switch_step_has_not_begun_but_a_running_one_has() {
        let mut steps: Vec<JobStep> = LIVE_STEPS
            .iter()
            .map(|&s| step(s, StepState::Pending))
            .collect();
        assert!(!switch_begun(&steps));
        steps[4].state = StepState::Skipped;
        assert!(!switch_begun(&steps));
        steps[4].state = StepState::Running;
        assert!(switch_begun(&steps));
        let cold: Vec<JobStep> = COLD_STEPS
            .iter()
            .map(|&s| {
                step(
                    s,
                    if s == Step::Switch {
                        StepState::Running
                    } else {
                        StepState::Done
                    },
                )
            })
            .collect();
        assert!(switch_begun(&cold));
    }
}
