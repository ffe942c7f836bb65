//! Block jobs (commit, mirror): their state, progress and end.
//!
//! Jobs are started with `auto-dismiss: false`, so a job that failed stays
//! queryable with its error until Ferry has read it and dismissed it. Waits
//! are driven by `JOB_STATUS_CHANGE`/`BLOCK_JOB_READY` events, with a query
//! on every wake-up (and at least every half second), so a missed event
//! costs a little latency, never a hang.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::qmp::Qmp;

/// The life-cycle states of a QEMU job that Ferry cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Copying, or about to.
    Running,
    /// Source and target are in sync; `complete` will pivot.
    Ready,
    /// Paused by the user or by an error policy.
    Paused,
    /// Finishing (`waiting`, `pending`, `aborting`).
    Finishing,
    /// Ended; `error` tells whether it succeeded.
    Concluded,
    /// Anything else QEMU reports (`created`, `undefined`, `null`).
    Other,
}

impl JobStatus {
    fn parse(s: &str) -> Self {
        match s {
            "running" => JobStatus::Running,
            "ready" | "standby" => JobStatus::Ready,
            "paused" => JobStatus::Paused,
            "waiting" | "pending" | "aborting" => JobStatus::Finishing,
            "concluded" => JobStatus::Concluded,
            _ => JobStatus::Other,
        }
    }
}

/// A job as `query-jobs` reports it, decoded leniently: QEMU versions
/// differ in which members they send.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// The job id.
    pub id: String,
    /// `commit`, `mirror`, ...
    pub kind: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Bytes done.
    pub offset: u64,
    /// Bytes to do; it can grow while the guest writes.
    pub len: u64,
    /// The error it ended with, if it failed.
    pub error: Option<String>,
}

impl JobInfo {
    fn from_value(v: &Value) -> Option<JobInfo> {
        Some(JobInfo {
            id: v.get("id")?.as_str()?.to_string(),
            kind: v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            status: JobStatus::parse(v.get("status").and_then(Value::as_str).unwrap_or("")),
            offset: v
                .get("current-progress")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            len: v.get("total-progress").and_then(Value::as_u64).unwrap_or(0),
            error: v.get("error").and_then(Value::as_str).map(str::to_string),
        })
    }
}

/// Every job QEMU knows of.
pub async fn list(qmp: &Qmp) -> Result<Vec<JobInfo>> {
    let reply = qmp.execute("query-jobs", Value::Null).await?;
    Ok(reply
        .as_array()
        .map(|jobs| jobs.iter().filter_map(JobInfo::from_value).collect())
        .unwrap_or_default())
}

/// One job, or `None` if QEMU does not know it (never started, or
/// dismissed).
pub async fn get(qmp: &Qmp, id: &str) -> Result<Option<JobInfo>> {
    Ok(list(qmp).await?.into_iter().find(|j| j.id == id))
}

/// Waits until the job reaches `want` (or concludes). A job that
/// concludes with an error, or disappears, is [`Error::JobFailed`].
pub async fn wait_for(qmp: &Qmp, id: &str, want: JobStatus, limit: Duration) -> Result<JobInfo> {
    let mut events = qmp.events();
    let deadline = Instant::now() + limit;
    loop {
        let Some(job) = get(qmp, id).await? else {
            return Err(Error::JobFailed {
                job: id.to_string(),
                message: "QEMU no longer knows this job".into(),
            });
        };
        if job.status == JobStatus::Concluded {
            if let Some(error) = job.error {
                return Err(Error::JobFailed {
                    job: id.to_string(),
                    message: error,
                });
            }
            return Ok(job);
        }
        if job.status == want {
            return Ok(job);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                what: format!("block job {id} to become {want:?}"),
                seconds: limit.as_secs(),
            });
        }
        let tick = (deadline - now).min(Duration::from_millis(500));
        // Wake on any event about this job; the loop re-queries anyway.
        let _ = tokio::time::timeout(tick, async {
            loop {
                match events.recv().await {
                    Ok(e) if e.data_str("id") == Some(id) || e.data_str("device") == Some(id) => {
                        break
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
        .await;
        if qmp.is_closed() {
            return Err(Error::Closed {
                socket: qmp.socket().to_path_buf(),
            });
        }
    }
}

/// Asks a ready job to finish (pivot for mirror and active commit).
pub async fn complete(qmp: &Qmp, id: &str) -> Result<()> {
    qmp.execute("job-complete", json!({ "id": id })).await?;
    Ok(())
}

/// Cancels a job. A mirror that was ready ends without pivoting: the VM
/// stays on its source.
pub async fn cancel(qmp: &Qmp, id: &str) -> Result<()> {
    qmp.execute("job-cancel", json!({ "id": id })).await?;
    Ok(())
}

/// Forgets a concluded job.
pub async fn dismiss(qmp: &Qmp, id: &str) -> Result<()> {
    qmp.execute("job-dismiss", json!({ "id": id })).await?;
    Ok(())
}

/// Waits for the job to conclude, then dismisses it; its error, if any,
/// comes back as [`Error::JobFailed`].
pub async fn finish(qmp: &Qmp, id: &str, limit: Duration) -> Result<()> {
    let outcome = wait_for(qmp, id, JobStatus::Concluded, limit).await;
    if let Ok(Some(job)) = get(qmp, id).await {
        if job.status == JobStatus::Concluded {
            dismiss(qmp, id).await?;
        }
    }
    outcome.map(|_| ())
}
