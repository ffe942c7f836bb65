//! The SPM role: status, acquire, release.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_api::agent::{AcquireSpm, SpmStatus};

use crate::error::Result;
use crate::fsutil::blocking;
use crate::gc;
use crate::routes::extract::ApiJson;
use crate::state::AgentState;

pub(crate) fn routes() -> Router<Arc<AgentState>> {
    Router::new()
        .route("/v1/spm", get(status))
        .route("/v1/spm/acquire", post(acquire))
        .route("/v1/spm/release", post(release))
}

fn current(agent: &AgentState) -> SpmStatus {
    let master_domain = agent.spm().domain();
    SpmStatus {
        host: agent.name().to_string(),
        spm: master_domain.is_some(),
        master_domain,
    }
}

async fn status(State(agent): State<Arc<AgentState>>) -> Json<SpmStatus> {
    Json(current(&agent))
}

async fn acquire(
    State(agent): State<Arc<AgentState>>,
    ApiJson(req): ApiJson<AcquireSpm>,
) -> Result<Json<SpmStatus>> {
    let master = agent.domains().get(req.master_domain)?;
    let a = agent.clone();
    let (status, gained) = blocking(move || {
        let was_spm = a.spm().domain().is_some();
        a.spm().acquire(&master)?;
        Ok((current(&a), !was_spm))
    })
    .await?;
    if gained {
        // The first moment after a start that this agent may change the
        // domains: finish what a crash left there.
        gc::spawn(&agent);
    }
    Ok(Json(status))
}

async fn release(State(agent): State<Arc<AgentState>>) -> Result<Json<SpmStatus>> {
    agent.spm().release(|| agent.tasks().busy_spm_tasks())?;
    Ok(Json(current(&agent)))
}
