//! Jobs: list, show, cancel, retry. The flow (`crate::flow`) runs them;
//! these only read them and pass a cancel or a retry on.

use std::sync::Arc;

use ferry_api::engine::Job;
use uuid::Uuid;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::flow;

/// Every job, newest first.
pub async fn jobs(engine: &Engine) -> Result<Vec<Job>> {
    flow::view::jobs(engine).await
}

/// A job's UUID from a path segment (jobs have no names).
pub fn job_id(key: &str) -> Result<Uuid> {
    Uuid::parse_str(key).map_err(|_| {
        Error::NotFound(format!(
            "there is no job '{key}': jobs are named by their UUID; list them with 'ferry job list'"
        ))
    })
}

/// One job.
pub async fn job(engine: &Engine, key: &str) -> Result<Job> {
    flow::view::job(engine, job_id(key)?).await
}

/// Asks the flow to cancel a job.
pub async fn cancel(engine: &Arc<Engine>, key: &str) -> Result<Job> {
    let current = job(engine, key).await?;
    flow::cancel(engine, current.id).await
}

/// Asks the flow to carry on a job that failed after the switch point.
pub async fn retry(engine: &Arc<Engine>, key: &str) -> Result<Job> {
    let current = job(engine, key).await?;
    flow::retry(engine, current.id).await
}
