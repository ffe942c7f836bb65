//! Tasks: status, list, cancel, forget, and one start route per
//! registered verb (`POST /v1/tasks/{id}/<verb>`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_api::agent::{PaceTask, TaskStatus};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::routes::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AgentState;
use crate::tasks::VerbRegistry;

pub(crate) fn routes(verbs: &VerbRegistry) -> Router<Arc<AgentState>> {
    let mut router = Router::new()
        .route("/v1/tasks", get(list))
        .route("/v1/tasks/{id}", get(status).delete(forget))
        .route("/v1/tasks/{id}/cancel", post(cancel))
        .route("/v1/tasks/{id}/pace", post(pace));
    for verb in verbs.names() {
        router = router.route(
            &format!("/v1/tasks/{{id}}/{verb}"),
            post(
                move |State(agent): State<Arc<AgentState>>,
                      ApiPath(id): ApiPath<Uuid>,
                      ApiJson(params): ApiJson<Value>| async move {
                    start(agent, id, verb, params).await
                },
            ),
        );
    }
    router
}

/// 202 when the task was started by this request, 200 when it existed.
async fn start(
    agent: Arc<AgentState>,
    id: Uuid,
    verb: &'static str,
    params: Value,
) -> Result<(StatusCode, Json<TaskStatus>)> {
    let started = agent.tasks().start(&agent, id, verb, params).await?;
    let code = if started.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(started.status)))
}

async fn list(State(agent): State<Arc<AgentState>>) -> Json<Vec<TaskStatus>> {
    Json(agent.tasks().list())
}

/// `?wait_ms=N`: how long the answer may wait for a running task to end.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    wait_ms: Option<u64>,
}

/// The longest `wait_ms` taken: well within a status read's deadline.
const MAX_WAIT_MS: u64 = 5000;

async fn status(
    State(agent): State<Arc<AgentState>>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<StatusQuery>,
) -> Result<Json<TaskStatus>> {
    match query.wait_ms {
        None | Some(0) => agent.tasks().get(id).map(Json),
        Some(ms) if ms > MAX_WAIT_MS => Err(Error::BadRequest(format!(
            "wait_ms is {ms}; wait at most {MAX_WAIT_MS} ms per request and ask again"
        ))),
        Some(ms) => agent
            .tasks()
            .wait(id, Duration::from_millis(ms))
            .await
            .map(Json),
    }
}

async fn cancel(
    State(agent): State<Arc<AgentState>>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TaskStatus>> {
    agent.tasks().cancel(id).map(Json)
}

async fn pace(
    State(agent): State<Arc<AgentState>>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<PaceTask>,
) -> Result<Json<TaskStatus>> {
    agent.tasks().pace(id, req).await.map(Json)
}

async fn forget(
    State(agent): State<Arc<AgentState>>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode> {
    agent.tasks().forget(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
