//! The REST API under `/api/v1`: one module per resource, each handler a
//! translation of a request into an `ops` or `flow` call. This module
//! merges the routes (and the web UI's, `ui`), adds authentication and
//! answers unknown paths and methods with the same JSON errors as
//! everything else.

mod auth;
mod disks;
mod domains;
pub mod extract;
mod health;
mod hosts;
mod jobs;
mod openapi;
mod ui;
mod vms;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use ferry_http::error::{with_fallbacks, ApiHints};

use crate::engine::Engine;

/// Where a caller who asked for an unknown path or method learns better.
const HINTS: ApiHints = ApiHints {
    paths: "see /api/v1/openapi.json for the API",
    methods: "see /api/v1/openapi.json for the methods it takes",
};

/// The whole API, authenticated, the web UI at `/` and oVirt's API under
/// `/ovirt-engine/` (which authenticates in oVirt's ways), bound to
/// `engine`.
pub fn router(engine: Arc<Engine>) -> Router {
    let routes = Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .route("/api/v1/hosts", get(hosts::list).post(hosts::add))
        .route(
            "/api/v1/hosts/{host}",
            get(hosts::get).delete(hosts::remove),
        )
        .route("/api/v1/hosts/{host}/enrolment", post(hosts::reenrol))
        .route(auth::ENROLL_PATH, post(hosts::enroll))
        .route(auth::CA_PATH, get(hosts::ca))
        .route("/api/v1/certificates", get(hosts::certificates))
        .route("/api/v1/certificates/rotate", post(hosts::rotate))
        .route("/api/v1/domains", get(domains::list).post(domains::create))
        .route("/api/v1/domains/{domain}", get(domains::get))
        .route("/api/v1/disks", get(disks::list).post(disks::create))
        .route("/api/v1/disks/{disk}", get(disks::get))
        .route("/api/v1/disks/{disk}/snapshot", post(disks::snapshot))
        .route("/api/v1/disks/{disk}/move", post(disks::move_disk))
        .route("/api/v1/vms", get(vms::list).post(vms::create))
        .route("/api/v1/vms/{vm}", get(vms::get))
        .route("/api/v1/vms/{vm}/start", post(vms::start))
        .route("/api/v1/vms/{vm}/stop", post(vms::stop))
        .route("/api/v1/vms/{vm}/move", post(vms::move_vm))
        .route("/api/v1/jobs", get(jobs::list))
        .route("/api/v1/jobs/{job}", get(jobs::get))
        .route("/api/v1/jobs/{job}/cancel", post(jobs::cancel))
        .route("/api/v1/jobs/{job}/retry", post(jobs::retry))
        .route("/api/v1/events", get(jobs::events))
        .merge(ui::routes())
        .merge(crate::ovirt::routes());
    auth::bearer(engine.token_hash())
        .protect(with_fallbacks(routes, HINTS))
        .with_state(engine)
}

/// The OpenAPI document, for tools that want it without a server.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    openapi::ApiDoc::openapi()
}
