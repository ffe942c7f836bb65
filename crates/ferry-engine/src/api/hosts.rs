//! `/api/v1/hosts`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_api::engine::{AddHost, ApiError, Host};

use crate::api::extract::{ApiJson, ApiPath};
use crate::engine::Engine;
use crate::error::Result;
use crate::ops;

/// Add a host whose agent already runs.
#[utoipa::path(post, path = "/api/v1/hosts", tag = "hosts", request_body = AddHost,
    responses(
        (status = 201, description = "The host, up", body = Host),
        (status = 400, description = "Bad input, or the agent does not answer with that token", body = ApiError),
        (status = 409, description = "The name or URL is taken", body = ApiError),
    ))]
pub(crate) async fn add(
    State(engine): State<Arc<Engine>>,
    ApiJson(req): ApiJson<AddHost>,
) -> Result<(StatusCode, Json<Host>)> {
    let host = ops::hosts::add_host(&engine, req).await?;
    Ok((StatusCode::CREATED, Json(host)))
}

/// Every host.
#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts",
    responses((status = 200, description = "Every host, oldest first", body = [Host])))]
pub(crate) async fn list(State(engine): State<Arc<Engine>>) -> Result<Json<Vec<Host>>> {
    ops::hosts::hosts(&engine).await.map(Json)
}

/// One host.
#[utoipa::path(get, path = "/api/v1/hosts/{host}", tag = "hosts",
    params(("host" = String, Path, description = "The host's name or UUID")),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 404, description = "No such host", body = ApiError),
    ))]
pub(crate) async fn get(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Host>> {
    ops::hosts::host(&engine, &key).await.map(Json)
}
