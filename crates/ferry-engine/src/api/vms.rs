//! `/api/v1/vms`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_api::engine::{ApiError, CreateVm, Job, MoveRequest, Vm};

use crate::api::extract::{ApiJson, ApiPath};
use crate::engine::Engine;
use crate::error::Result;
use crate::ops;

/// Create a VM on its disks (defined on its host, stopped).
#[utoipa::path(post, path = "/api/v1/vms", tag = "vms", request_body = CreateVm,
    responses(
        (status = 201, description = "The VM, stopped", body = Vm),
        (status = 400, description = "Bad name, memory or disk list", body = ApiError),
        (status = 404, description = "No such disk or host", body = ApiError),
        (status = 409, description = "The name is taken, or a disk belongs to another VM", body = ApiError),
        (status = 503, description = "No host is up", body = ApiError),
    ))]
pub(crate) async fn create(
    State(engine): State<Arc<Engine>>,
    ApiJson(req): ApiJson<CreateVm>,
) -> Result<(StatusCode, Json<Vm>)> {
    let vm = ops::vms::create_vm(&engine, req).await?;
    Ok((StatusCode::CREATED, Json(vm)))
}

/// Every VM.
#[utoipa::path(get, path = "/api/v1/vms", tag = "vms",
    responses((status = 200, description = "Every VM, by name", body = [Vm])))]
pub(crate) async fn list(State(engine): State<Arc<Engine>>) -> Result<Json<Vec<Vm>>> {
    ops::vms::vms(&engine).await.map(Json)
}

/// One VM.
#[utoipa::path(get, path = "/api/v1/vms/{vm}", tag = "vms",
    params(("vm" = String, Path, description = "The VM's name or UUID")),
    responses(
        (status = 200, description = "The VM", body = Vm),
        (status = 404, description = "No such VM", body = ApiError),
    ))]
pub(crate) async fn get(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Vm>> {
    ops::vms::vm(&engine, &key).await.map(Json)
}

/// Start a VM on its host.
#[utoipa::path(post, path = "/api/v1/vms/{vm}/start", tag = "vms",
    params(("vm" = String, Path, description = "The VM's name or UUID")),
    responses(
        (status = 200, description = "The VM, running", body = Vm),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 503, description = "Its host is down", body = ApiError),
    ))]
pub(crate) async fn start(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Vm>> {
    ops::vms::start_vm(&engine, &key).await.map(Json)
}

/// Stop a VM (the guest gets 30 s to power down; `force=true` quits QEMU at
/// once, as pulling the plug).
#[utoipa::path(post, path = "/api/v1/vms/{vm}/stop", tag = "vms",
    params(
        ("vm" = String, Path, description = "The VM's name or UUID"),
        ("force" = Option<bool>, Query, description = "Quit at once instead of asking the guest to power down"),
    ),
    responses(
        (status = 200, description = "The VM, stopped", body = Vm),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 503, description = "Its host is down", body = ApiError),
    ))]
pub(crate) async fn stop(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
    query: axum::extract::RawQuery,
) -> Result<Json<Vm>> {
    let force = match query.0.as_deref() {
        None | Some("") | Some("force=false") => false,
        Some("force=true") => true,
        Some(other) => {
            return Err(crate::error::Error::BadRequest(format!(
                "unknown query '{other}'; the only option is force=true"
            )))
        }
    };
    ops::vms::stop_vm(&engine, &key, force).await.map(Json)
}

/// Move every disk of a VM to another storage domain, together.
#[utoipa::path(post, path = "/api/v1/vms/{vm}/move", tag = "vms", request_body = MoveRequest,
    params(("vm" = String, Path, description = "The VM's name or UUID")),
    responses(
        (status = 202, description = "The job, started", body = Job),
        (status = 404, description = "No such VM or domain", body = ApiError),
        (status = 409, description = "A disk is being moved already", body = ApiError),
        (status = 507, description = "The destination has no room", body = ApiError),
    ))]
pub(crate) async fn move_vm(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
    ApiJson(req): ApiJson<MoveRequest>,
) -> Result<(StatusCode, Json<Job>)> {
    let job = ops::vms::move_vm(&engine, &key, req).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}
