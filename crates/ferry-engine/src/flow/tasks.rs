//! Waiting on the agents' tasks (clone, merge, rollback): poll their
//! status, pass their progress on to the job, and notice a cancel.

use std::time::Duration;

use ferry_api::engine::{MoveMode, Step};
use ferry_api::vm::PauseCause;
use tokio::time::Instant;

use ferry_agent_client::AgentClient;
use ferry_api::agent::{TaskState, TaskStatus};
use ferry_api::ErrorKind;
use uuid::Uuid;

use super::job::JobCtx;
use super::retry::{Failure, Patience};

/// How often a task's status is read.
const POLL: Duration = Duration::from_millis(300);

/// Every how many polls a live move's copy looks whether the VM paused.
const PAUSE_LOOK_EVERY: u32 = 3;

/// One agent task the job waits for, and the bytes it stands for in the
/// job's progress.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The agent running it.
    pub agent: AgentClient,
    /// The task.
    pub task: Uuid,
}

/// What a finished task came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It did its work.
    Succeeded,
    /// It failed: the agent's reason, judged by its kind.
    Failed(Failure),
    /// It was cancelled.
    Cancelled,
}

/// Waits until every task ended, reporting `base + Σ done` of `total` as
/// the job's progress. When `cancellable` and the user cancels, the tasks
/// are cancelled and [`Failure::Cancelled`] returned; and so they are,
/// with [`Failure::NoSpace`], when the VM of a live move paused because
/// the destination its new leaf is on is full ([`paused_for_space`]): the
/// guest must not wait for the end of a copy that cannot finish. An agent that does
/// not answer is asked again (it may be restarting) until the engine's
/// bound ([`JobCtx::call`]); a task it no longer knows is reported as
/// failed.
pub async fn wait_all(
    job: &mut JobCtx,
    tasks: &[Watched],
    base: u64,
    total: u64,
    cancellable: bool,
) -> Result<Vec<Ended>, Failure> {
    let mut ended: Vec<Option<Ended>> = vec![None; tasks.len()];
    let mut done: Vec<u64> = vec![0; tasks.len()];
    let mut polls = 0u32;
    loop {
        for (i, w) in tasks.iter().enumerate() {
            if ended[i].is_some() {
                continue;
            }
            let step = job.row.step;
            let status: TaskStatus = job
                .call(step, || w.agent.task(w.task))
                .await
                .map_err(|f| match f {
                    Failure::Permanent(m) => Failure::Permanent(format!(
                        "task {} is unknown to its agent ({m}): the agent lost it (its run directory was cleared?)",
                        w.task
                    )),
                    other => other,
                })?;
            done[i] = status.done_bytes;
            ended[i] = match status.state {
                TaskState::Running => None,
                TaskState::Succeeded => Some(Ended::Succeeded),
                TaskState::Cancelled => Some(Ended::Cancelled),
                TaskState::Failed => Some(Ended::Failed(Failure::of_kind(
                    status.error_kind.unwrap_or(ErrorKind::Internal),
                    status.error.unwrap_or_else(|| "no reason given".into()),
                ))),
            };
        }
        // Tasks that copy nothing the user waits for (merge, rollback)
        // pass a total of 0 and leave the job's progress alone.
        if total > 0 {
            let sum: u64 = base + done.iter().sum::<u64>();
            job.progress(sum.min(total), total)
                .await
                .map_err(Failure::from)?;
        }
        if ended.iter().all(Option::is_some) {
            return Ok(ended.into_iter().flatten().collect());
        }
        let stop = if cancellable && job.cancel_requested().await.map_err(Failure::from)? {
            Some(Failure::Cancelled)
        } else if cancellable && polls % PAUSE_LOOK_EVERY == 0 {
            paused_for_space(job).await.map(Failure::NoSpace)
        } else {
            None
        };
        if let Some(stop) = stop {
            for (i, w) in tasks.iter().enumerate() {
                if ended[i].is_none() {
                    let _ = w.agent.cancel_task(w.task).await;
                }
            }
            return Err(stop);
        }
        if cancellable {
            // A guest-paced copy reads the guest's I/O and sets its limit
            // at every poll, about three times a second.
            let running: Vec<&Watched> = tasks
                .iter()
                .zip(&ended)
                .filter(|(_, e)| e.is_none())
                .map(|(w, _)| w)
                .collect();
            super::pacing::pace(job, &running).await;
        }
        polls = polls.wrapping_add(1);
        until_next_poll(tasks, &ended).await;
    }
}

/// Waits one [`POLL`], or less when the first task still running ends
/// meanwhile (its agent answers a status read that may wait as soon as
/// the task has ended): a short task such as a merge is seen done when it
/// is, not up to a poll later. An agent that does not wait, or does not
/// answer, costs no more than the poll.
async fn until_next_poll(tasks: &[Watched], ended: &[Option<Ended>]) {
    let first_running = tasks.iter().zip(ended).find(|(_, e)| e.is_none());
    match first_running {
        Some((w, _)) => until_one_ends(&w.agent, w.task).await,
        None => tokio::time::sleep(POLL).await,
    }
}

/// Waits one [`POLL`], or less when `task` ends meanwhile.
async fn until_one_ends(agent: &AgentClient, task: Uuid) {
    let next = Instant::now() + POLL;
    let answer =
        tokio::time::timeout_at(next + LATE_ANSWER, agent.task_when_ended(task, POLL)).await;
    if let Ok(Ok(status)) = answer {
        if status.state != TaskState::Running {
            return;
        }
    }
    tokio::time::sleep_until(next).await;
}

/// How much later than the poll a waiting status read may answer before
/// it is given up (the next poll reads the status anyway).
const LATE_ANSWER: Duration = Duration::from_millis(200);

/// Waits until none of `tasks` (already asked to cancel) runs on `agent`
/// any more; a task the agent does not know (never started, or
/// forgotten) counts as stopped. A cancel is only a request: a copy
/// notices it between chunks (or within 100 ms of waiting out its
/// bandwidth limit), and until then it may still write, and once stopped
/// it removes "its" partial copy by path. The cancel is sent again now and
/// then while a task runs, in case its agent restarted and resumed it.
/// Gives up with [`Failure::Unreachable`] when the agent has not answered
/// for `bound`, or its tasks still run after `bound`: what they may still
/// write must not be deleted under them.
pub async fn stop_all(
    agent: &AgentClient,
    tasks: &[Uuid],
    step: Step,
    bound: Duration,
) -> Result<(), Failure> {
    let mut running: Vec<Uuid> = tasks.to_vec();
    let mut patience = Patience::new(bound);
    let started = Instant::now();
    let mut polls = 0u32;
    loop {
        let mut still = Vec::new();
        for &task in &running {
            let sent = Instant::now();
            match agent.task(task).await {
                Ok(s) if s.state == TaskState::Running => {
                    patience.answered();
                    if polls % 10 == 9 {
                        let _ = agent.cancel_task(task).await;
                    }
                    still.push(task);
                }
                Ok(_) => patience.answered(),
                Err(e) if e.kind() == ErrorKind::NotFound => patience.answered(),
                // The agent does not answer: the task may still run there.
                Err(e) => {
                    patience.failed(sent, step, &e.to_string())?;
                    still.push(task);
                }
            }
        }
        running = still;
        if running.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= bound {
            return Err(Failure::Unreachable(format!(
                "tasks {running:?} were cancelled {} s ago and still run on {}; look at the agent's log on that host",
                started.elapsed().as_secs(),
                agent.url()
            )));
        }
        polls += 1;
        if polls % 100 == 0 {
            tracing::warn!(
                ?running,
                "cancelled tasks have not stopped yet; still waiting"
            );
        }
        until_one_ends(agent, running[0]).await;
    }
}

/// Why the VM of a live move is paused for want of space, if it is: once
/// `blockMigrate` is done the VM writes to its new leaves on the
/// destination, so a pause for space there means the destination filled
/// up. Best effort: a host that does not answer says nothing here (the
/// step's own calls notice that).
pub(super) async fn paused_for_space(job: &JobCtx) -> Option<String> {
    if job.row.mode != MoveMode::Live || job.plan.turned_cold {
        return None;
    }
    let vm = job.plan.vm?;
    let host = job.vm_host().await.ok()?;
    let status = host.vm(vm).await.ok()?;
    let pause = status.paused.filter(|p| p.cause == PauseCause::NoSpace)?;
    Some(format!(
        "the destination is full: the VM {} was {}",
        status.name, pause.detail
    ))
}
