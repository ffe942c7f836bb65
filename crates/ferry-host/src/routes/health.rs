//! `GET /v1/health`: for liveness probes and for the engine to see which
//! host is SPM (over mutual TLS like everything else).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ferry_api::agent::Health;

use crate::state::AgentState;

pub(crate) fn routes() -> Router<Arc<AgentState>> {
    Router::new().route("/v1/health", get(health))
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
