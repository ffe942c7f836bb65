//! A running job as its runner sees it: the persisted row and plan, and
//! the few things a step does besides its own work (record a step's state,
//! report progress, notice a cancel, reach the agents). Every change is
//! written to the database before the runner goes on, so a restarted
//! engine finds the job where it was.

use std::future::Future;
use std::sync::Arc;

use ferry_agent_client::AgentClient;
use ferry_api::engine::{JobState, Step, StepState};
use uuid::Uuid;

use super::pace::Pacer;
use super::plan::MovePlan;
use super::progress::RateMeter;
use super::retry::{agent_call, Failure};
use super::step::past_point_of_no_return;
use crate::db::JobRow;
use crate::error::{Error, Result};
use crate::Engine;

/// One job being run.
#[derive(Debug)]
pub struct JobCtx {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The row as last written.
    pub row: JobRow,
    /// The plan (the row's `data`).
    pub plan: MovePlan,
    meter: RateMeter,
    /// The guest-aware pacing of its copy, while a live copy runs.
    pub pacer: Option<Pacer>,
    /// The limit last sent to the copies (`Some(None)`: unlimited).
    pub paced: Option<Option<u64>>,
}

impl JobCtx {
    /// Loads job `id`.
    pub async fn load(engine: Arc<Engine>, id: Uuid) -> Result<JobCtx> {
        let row = engine
            .db()
            .job(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id} does not exist")))?;
        let plan: MovePlan = serde_json::from_value(row.data.clone()).map_err(|e| {
            Error::Corrupt(format!("the plan of job {id} cannot be read back: {e}"))
        })?;
        Ok(JobCtx {
            engine,
            row,
            plan,
            meter: RateMeter::default(),
            pacer: None,
            paced: None,
        })
    }

    /// The job's id.
    pub fn id(&self) -> Uuid {
        self.row.id
    }

    /// Records an event about the job: "job ID" and `what`.
    pub async fn record(&self, what: &str) {
        self.engine
            .events()
            .record(
                "job",
                format!("job {} {what}", self.row.id),
                Some(self.row.id),
            )
            .await;
    }

    /// Writes the row and plan back.
    pub async fn save(&mut self) -> Result<()> {
        self.row.data = serde_json::to_value(&self.plan)
            .map_err(|e| Error::Internal(format!("cannot encode a job plan: {e}")))?;
        self.engine.db().update_job(&self.row).await
    }

    /// Records a step's state (and makes a running step the current one).
    pub async fn step(&mut self, step: Step, state: StepState, error: Option<&str>) -> Result<()> {
        self.engine
            .db()
            .set_step(self.row.id, step, state, error)
            .await?;
        if state == StepState::Running {
            self.row.step = step;
        }
        Ok(())
    }

    /// The state of one step (pending if the job has no such step).
    pub async fn step_state(&self, step: Step) -> Result<StepState> {
        Ok(self
            .engine
            .db()
            .steps(self.row.id)
            .await?
            .into_iter()
            .find(|s| s.name == step)
            .map_or(StepState::Pending, |s| s.state))
    }

    /// One agent call of `step`, retried until it succeeds, fails for
    /// good, or its agent has not answered for the engine's
    /// `unreachable_after` ([`agent_call`]); while the job runs forwards
    /// before the switch, a cancel ends the retries. A rollback's calls are
    /// never cancelled: they are what a cancel asked for.
    pub async fn call<T, E, F, Fut>(&self, step: Step, call: F) -> std::result::Result<T, Failure>
    where
        E: Into<Failure>,
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let cancellable = self.row.state == JobState::Running && !past_point_of_no_return(step);
        let bound = self.engine.limits().unreachable_after;
        agent_call(self.id(), step, bound, call, || async move {
            cancellable && self.cancel_requested().await.unwrap_or(false)
        })
        .await
    }

    /// Records copy progress and the rate derived from it.
    pub async fn progress(&mut self, done: u64, total: u64) -> Result<()> {
        // A copy task that restarts (the full chain copy after the early
        // one) counts from 0 again before it skips what is already there;
        // the job's progress never goes backwards for that.
        let done = if total == self.row.total_bytes {
            done.max(self.row.done_bytes)
        } else {
            done
        };
        self.meter.sample(done);
        self.row.done_bytes = done;
        self.row.total_bytes = total.max(done);
        self.row.rate_bps = self.meter.rate();
        self.engine.db().update_progress(&self.row).await
    }

    /// Whether the user asked to cancel (read from the database, so a
    /// cancel sent to another engine process is seen too).
    pub async fn cancel_requested(&self) -> Result<bool> {
        Ok(self
            .engine
            .db()
            .job(self.row.id)
            .await?
            .is_some_and(|j| j.cancel_requested))
    }

    /// Fails with [`Failure::Cancelled`] when a cancel was asked for.
    pub async fn check_cancel(&self) -> std::result::Result<(), Failure> {
        if self.cancel_requested().await.map_err(Failure::from)? {
            return Err(Failure::Cancelled);
        }
        Ok(())
    }

    /// The SPM's agent, waited for (within the engine's bound) while no
    /// host holds the role: one is elected within seconds of a host
    /// coming back.
    pub async fn spm(&self) -> std::result::Result<AgentClient, Failure> {
        self.call(self.row.step, || async {
            self.engine.agents().spm().await.map(|(_, c)| c)
        })
        .await
    }

    /// The agent of the VM's host.
    pub async fn vm_host(&self) -> std::result::Result<AgentClient, Failure> {
        let host = self
            .plan
            .host
            .ok_or_else(|| Failure::Permanent("the job has no VM host".into()))?;
        self.engine
            .agents()
            .client(host)
            .await
            .map_err(Failure::from)
    }

    /// Ends the job: its agent tasks forgotten (best effort), then final
    /// state, error and disks unlocked in one write, then an event. The
    /// tasks go first so that a crash in between leaves a running job,
    /// whose resume forgets them again and ends it.
    pub async fn finish(&mut self, state: JobState, error: Option<String>) -> Result<()> {
        self.engine.set_pace(self.row.id, None);
        super::forget::forget_tasks(&self.engine, self.row.id, &self.plan).await;
        #[cfg(feature = "test-hooks")]
        super::test_hooks::crash_at(super::test_hooks::CrashPoint::JobEnd);
        self.row.state = state;
        self.row.error = error.clone();
        self.row.finished = Some(crate::db::codec::now_ms());
        self.row.rate_bps = 0;
        self.row.data = serde_json::to_value(&self.plan)
            .map_err(|e| Error::Internal(format!("cannot encode a job plan: {e}")))?;
        self.engine.db().end_job(&self.row).await?;
        let what = match state {
            JobState::Succeeded => "succeeded".to_string(),
            JobState::Cancelled => "was cancelled; the disks are where they were".to_string(),
            _ => format!(
                "failed ({}); the disks are where they were",
                error.unwrap_or_default()
            ),
        };
        self.record(&what).await;
        Ok(())
    }
}
