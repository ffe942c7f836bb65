//! `/api/v1/domains`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_api::engine::{ApiError, CreateDomain, Domain};

use crate::api::extract::{ApiJson, ApiPath};
use crate::engine::Engine;
use crate::error::Result;
use crate::ops;

/// Create a storage domain; the first one becomes the master.
#[utoipa::path(post, path = "/api/v1/domains", tag = "domains", request_body = CreateDomain,
    responses(
        (status = 201, description = "The domain, connected on every host that is up", body = Domain),
        (status = 400, description = "Bad name, or a relative path", body = ApiError),
        (status = 404, description = "The path is not a directory", body = ApiError),
        (status = 409, description = "The name is taken, or the path is a system directory or holds other things", body = ApiError),
        (status = 503, description = "No host is up, or no host is SPM", body = ApiError),
    ))]
pub(crate) async fn create(
    State(engine): State<Arc<Engine>>,
    ApiJson(req): ApiJson<CreateDomain>,
) -> Result<(StatusCode, Json<Domain>)> {
    let domain = ops::domains::create_domain(&engine, req).await?;
    Ok((StatusCode::CREATED, Json(domain)))
}

/// Every storage domain.
#[utoipa::path(get, path = "/api/v1/domains", tag = "domains",
    responses((status = 200, description = "Every domain, oldest first", body = [Domain])))]
pub(crate) async fn list(State(engine): State<Arc<Engine>>) -> Result<Json<Vec<Domain>>> {
    ops::domains::domains(&engine).await.map(Json)
}

/// One storage domain.
#[utoipa::path(get, path = "/api/v1/domains/{domain}", tag = "domains",
    params(("domain" = String, Path, description = "The domain's name or UUID")),
    responses(
        (status = 200, description = "The domain", body = Domain),
        (status = 404, description = "No such domain", body = ApiError),
    ))]
pub(crate) async fn get(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Domain>> {
    ops::domains::domain(&engine, &key).await.map(Json)
}
