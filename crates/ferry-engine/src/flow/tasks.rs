//! Waiting on the agents' tasks (clone, merge, rollback): poll their
//! status, pass their progress on to the job, and notice a cancel.

use std::time::Duration;

use ferry_agent_client::AgentClient;
use ferry_api::agent::{TaskState, TaskStatus};
use ferry_api::ErrorKind;
use uuid::Uuid;

use super::job::JobCtx;
use super::retry::{retry, Failure};

/// How often a task's status is read.
const POLL: Duration = Duration::from_millis(300);

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
/// are cancelled and [`Failure::Cancelled`] returned. An agent that does
/// not answer is asked again (it may be restarting); a task it no longer
/// knows is reported as failed.
pub async fn wait_all(
    job: &mut JobCtx,
    tasks: &[Watched],
    base: u64,
    total: u64,
    cancellable: bool,
) -> Result<Vec<Ended>, Failure> {
    let mut ended: Vec<Option<Ended>> = vec![None; tasks.len()];
    let mut done: Vec<u64> = vec![0; tasks.len()];
    loop {
        for (i, w) in tasks.iter().enumerate() {
            if ended[i].is_some() {
                continue;
            }
            let status: TaskStatus = retry(
                None,
                |_, _| {},
                || async { w.agent.task(w.task).await.map_err(Failure::from) },
            )
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
        if cancellable && job.cancel_requested().await.map_err(Failure::from)? {
            for (i, w) in tasks.iter().enumerate() {
                if ended[i].is_none() {
                    let _ = w.agent.cancel_task(w.task).await;
                }
            }
            return Err(Failure::Cancelled);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until none of `tasks` (already asked to cancel) runs on `agent`
/// any more; a task the agent does not know (never started, or
/// forgotten) counts as stopped. A cancel is only a request: a copy
/// notices it between chunks (or within 100 ms of waiting out its
/// bandwidth limit), and until
/// then it may still write, and once stopped it removes "its" partial copy
/// by path. The cancel is sent again now and then while a task runs, in
/// case its agent restarted and resumed it.
pub async fn stop_all(agent: &AgentClient, tasks: &[Uuid]) {
    let mut running: Vec<Uuid> = tasks.to_vec();
    let mut polls = 0u32;
    loop {
        let mut still = Vec::new();
        for &task in &running {
            match agent.task(task).await {
                Ok(s) if s.state == TaskState::Running => {
                    if polls % 10 == 9 {
                        let _ = agent.cancel_task(task).await;
                    }
                    still.push(task);
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                // The agent does not answer: the task may still run there.
                Err(_) => still.push(task),
            }
        }
        running = still;
        if running.is_empty() {
            return;
        }
        polls += 1;
        if polls % 100 == 0 {
            tracing::warn!(
                ?running,
                "cancelled tasks have not stopped yet; still waiting"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
