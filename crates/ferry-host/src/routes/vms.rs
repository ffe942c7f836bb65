//! VM lifecycle and the synchronous HSM verbs over HTTP.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_api::vm::{
    BlockMigrate, FinalizeBlockMigrate, StopVm, SwitchReport, VmDefinition, VmIo, VmStatus,
};
use uuid::Uuid;

use crate::error::Result;
use crate::hsm;
use crate::routes::extract::{ApiJson, ApiPath};
use crate::state::AgentState;

pub(crate) fn routes() -> Router<Arc<AgentState>> {
    Router::new()
        .route("/v1/vms", get(list).post(define))
        .route("/v1/vms/{vm}", get(status).delete(undefine))
        .route("/v1/vms/{vm}/io", get(io))
        .route("/v1/vms/{vm}/start", post(start))
        .route("/v1/vms/{vm}/stop", post(stop))
        .route("/v1/vms/{vm}/block-migrate", post(block_migrate))
        .route(
            "/v1/vms/{vm}/finalize-block-migrate",
            post(finalize_block_migrate),
        )
}

async fn list(State(agent): State<Arc<AgentState>>) -> Result<Json<Vec<VmStatus>>> {
    agent.vms().list(&agent.domains().set()).await.map(Json)
}

async fn define(
    State(agent): State<Arc<AgentState>>,
    ApiJson(def): ApiJson<VmDefinition>,
) -> Result<Json<VmStatus>> {
    agent
        .vms()
        .define(&agent.domains().set(), def)
        .await
        .map(Json)
}

async fn status(
    State(agent): State<Arc<AgentState>>,
    ApiPath(vm): ApiPath<Uuid>,
) -> Result<Json<VmStatus>> {
    agent
        .vms()
        .status(&agent.domains().set(), vm)
        .await
        .map(Json)
}

async fn io(
    State(agent): State<Arc<AgentState>>,
    ApiPath(vm): ApiPath<Uuid>,
) -> Result<Json<VmIo>> {
    agent.vms().io(vm).await.map(Json)
}

async fn undefine(
    State(agent): State<Arc<AgentState>>,
    ApiPath(vm): ApiPath<Uuid>,
) -> Result<Json<serde_json::Value>> {
    agent.vms().undefine(vm).await?;
    Ok(Json(serde_json::json!({ "removed": vm })))
}

async fn start(
    State(agent): State<Arc<AgentState>>,
    ApiPath(vm): ApiPath<Uuid>,
) -> Result<Json<VmStatus>> {
    agent
        .vms()
        .start(&agent.domains().set(), vm)
        .await
        .map(Json)
}

async fn stop(
    State(agent): State<Arc<AgentState>>,
    ApiPath(vm): ApiPath<Uuid>,
    body: axum::body::Bytes,
) -> Result<Json<VmStatus>> {
    // The body is optional: no body stops with the default grace period.
    let grace = if body.iter().all(u8::is_ascii_whitespace) {
        30
    } else {
        serde_json::from_slice::<StopVm>(&body)
            .map_err(|e| {
                crate::error::Error::BadRequest(format!(
                    "the request body is not a stop request ({e}); send {{\"grace_secs\": N}} or nothing"
                ))
            })?
            .grace_secs
    };
    agent
        .vms()
        .stop(&agent.domains().set(), vm, Duration::from_secs(grace))
        .await
        .map(Json)
}

async fn block_migrate(
    State(agent): State<Arc<AgentState>>,
    ApiPath(vm): ApiPath<Uuid>,
    ApiJson(req): ApiJson<BlockMigrate>,
) -> Result<Json<SwitchReport>> {
    hsm::block_migrate(&agent, vm, req).await.map(Json)
}

async fn finalize_block_migrate(
    State(agent): State<Arc<AgentState>>,
    ApiPath(vm): ApiPath<Uuid>,
    ApiJson(req): ApiJson<FinalizeBlockMigrate>,
) -> Result<Json<SwitchReport>> {
    hsm::finalize_block_migrate(&agent, vm, req).await.map(Json)
}
