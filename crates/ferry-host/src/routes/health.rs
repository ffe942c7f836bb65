//! `GET /v1/health`: the one unauthenticated endpoint, for liveness probes
//! and for the engine to see which host is SPM.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ferry_api::agent::Health;

use crate::auth::HEALTH_PATH;
use crate::state::AgentState;

pub(crate) fn routes() -> Router<Arc<AgentState>> {
    Router::new().route(HEALTH_PATH, get(health))
}

async fn health(State(agent): State<Arc<AgentState>>) -> Json<Health> {
    let spm_domain = agent.spm().domain();
    Json(Health {
        name: agent.name().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        spm: spm_domain.is_some(),
        spm_domain,
    })
}
