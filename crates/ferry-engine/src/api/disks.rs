//! `/api/v1/disks`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_api::engine::{ApiError, CreateDisk, Disk, Job, MoveRequest};

use crate::api::extract::{ApiJson, ApiPath};
use crate::engine::Engine;
use crate::error::Result;
use crate::ops;

/// Create a disk (one base volume).
#[utoipa::path(post, path = "/api/v1/disks", tag = "disks", request_body = CreateDisk,
    responses(
        (status = 201, description = "The disk", body = Disk),
        (status = 400, description = "Bad name or size", body = ApiError),
        (status = 404, description = "No such domain", body = ApiError),
        (status = 409, description = "The name is taken", body = ApiError),
        (status = 503, description = "No host is SPM", body = ApiError),
        (status = 507, description = "A preallocated disk does not fit", body = ApiError),
    ))]
pub(crate) async fn create(
    State(engine): State<Arc<Engine>>,
    ApiJson(req): ApiJson<CreateDisk>,
) -> Result<(StatusCode, Json<Disk>)> {
    let disk = ops::disks::create_disk(&engine, req).await?;
    Ok((StatusCode::CREATED, Json(disk)))
}

/// Every disk.
#[utoipa::path(get, path = "/api/v1/disks", tag = "disks",
    responses((status = 200, description = "Every disk, by name", body = [Disk])))]
pub(crate) async fn list(State(engine): State<Arc<Engine>>) -> Result<Json<Vec<Disk>>> {
    ops::disks::disks(&engine).await.map(Json)
}

/// One disk with its chain, base first.
#[utoipa::path(get, path = "/api/v1/disks/{disk}", tag = "disks",
    params(("disk" = String, Path, description = "The disk's name or UUID")),
    responses(
        (status = 200, description = "The disk", body = Disk),
        (status = 404, description = "No such disk", body = ApiError),
    ))]
pub(crate) async fn get(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Disk>> {
    ops::disks::disk(&engine, &key).await.map(Json)
}

/// Snapshot a disk: a new qcow2 leaf, live if its VM runs.
#[utoipa::path(post, path = "/api/v1/disks/{disk}/snapshot", tag = "disks",
    params(("disk" = String, Path, description = "The disk's name or UUID")),
    responses(
        (status = 200, description = "The disk with its new leaf", body = Disk),
        (status = 404, description = "No such disk", body = ApiError),
        (status = 409, description = "The disk is locked by a job", body = ApiError),
        (status = 503, description = "No SPM, or the VM's host is down", body = ApiError),
    ))]
pub(crate) async fn snapshot(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Disk>> {
    ops::snapshot::snapshot_disk(&engine, &key).await.map(Json)
}

/// Move a disk to another storage domain (live if its VM runs).
#[utoipa::path(post, path = "/api/v1/disks/{disk}/move", tag = "disks", request_body = MoveRequest,
    params(("disk" = String, Path, description = "The disk's name or UUID")),
    responses(
        (status = 202, description = "The job, started", body = Job),
        (status = 404, description = "No such disk or domain", body = ApiError),
        (status = 409, description = "The disk is being moved already", body = ApiError),
        (status = 507, description = "The destination has no room", body = ApiError),
    ))]
pub(crate) async fn move_disk(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
    ApiJson(req): ApiJson<MoveRequest>,
) -> Result<(StatusCode, Json<Job>)> {
    let job = ops::disks::move_disk(&engine, &key, req).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}
