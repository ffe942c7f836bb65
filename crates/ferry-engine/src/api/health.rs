//! `GET /api/v1/health`: the one request answered without a token, for
//! load balancers and `ferry up` to see that the engine is there.

use axum::Json;
use ferry_api::engine::EngineHealth;

/// Whether the engine answers, and its version.
#[utoipa::path(get, path = "/api/v1/health", tag = "engine", security(()),
    responses((status = 200, description = "The engine answers", body = EngineHealth)))]
pub(crate) async fn health() -> Json<EngineHealth> {
    Json(EngineHealth {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
