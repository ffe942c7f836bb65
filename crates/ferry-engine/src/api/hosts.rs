//! `/api/v1/hosts`, `/api/v1/enroll` and `/api/v1/certificates`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_api::engine::{
    AddHost, ApiError, Certificates, EngineCa, EnrolAnswer, EnrolRequest, Host, HostEnrolment,
    Reenrol, RotateCertificates,
};

use crate::api::extract::{ApiJson, ApiPath};
use crate::engine::Engine;
use crate::error::Result;
use crate::ops;

/// Add a host: recorded `enrolling`, with a one-time token for its agent.
#[utoipa::path(post, path = "/api/v1/hosts", tag = "hosts", request_body = AddHost,
    responses(
        (status = 201, description = "The host, enrolling, and its agent's one-time enrolment token (shown once)", body = HostEnrolment),
        (status = 400, description = "Bad input (a name, a URL that is not https://)", body = ApiError),
        (status = 409, description = "The name or URL is taken", body = ApiError),
    ))]
pub(crate) async fn add(
    State(engine): State<Arc<Engine>>,
    ApiJson(req): ApiJson<AddHost>,
) -> Result<(StatusCode, Json<HostEnrolment>)> {
    let host = ops::hosts::add_host(&engine, req).await?;
    Ok((StatusCode::CREATED, Json(host)))
}

/// A new one-time enrolment token for a host (and a new URL).
#[utoipa::path(post, path = "/api/v1/hosts/{host}/enrolment", tag = "hosts", request_body = Reenrol,
    params(("host" = String, Path, description = "The host's name or UUID")),
    responses(
        (status = 200, description = "The host and its new token (shown once)", body = HostEnrolment),
        (status = 404, description = "No such host", body = ApiError),
    ))]
pub(crate) async fn reenrol(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
    ApiJson(req): ApiJson<Reenrol>,
) -> Result<Json<HostEnrolment>> {
    ops::hosts::reenrol(&engine, &key, req).await.map(Json)
}

/// Remove a host: its certificate is no longer accepted.
#[utoipa::path(delete, path = "/api/v1/hosts/{host}", tag = "hosts",
    params(("host" = String, Path, description = "The host's name or UUID")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such host", body = ApiError),
        (status = 409, description = "VMs are defined on it, or it is the SPM while moves run", body = ApiError),
    ))]
pub(crate) async fn remove(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<StatusCode> {
    ops::hosts::remove_host(&engine, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An agent enrolls: no bearer token, the one-time token is the
/// credential.
#[utoipa::path(post, path = "/api/v1/enroll", tag = "hosts", request_body = EnrolRequest,
    security(()),
    responses(
        (status = 200, description = "The agent's certificate and the engine's CA", body = EnrolAnswer),
        (status = 400, description = "The signing request is unreadable", body = ApiError),
        (status = 401, description = "The token is unknown, used or expired", body = ApiError),
    ))]
pub(crate) async fn enroll(
    State(engine): State<Arc<Engine>>,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> Result<Json<EnrolAnswer>> {
    ops::enrol::enroll(&engine, req).await.map(Json)
}

/// The engine's CA certificate (no token needed).
#[utoipa::path(get, path = "/api/v1/ca", tag = "hosts", security(()),
    responses((status = 200, description = "The CA certificate every peer trusts", body = EngineCa)))]
pub(crate) async fn ca(State(engine): State<Arc<Engine>>) -> Json<EngineCa> {
    Json(EngineCa {
        ca_pem: engine.pki().ca_pem().to_string(),
        fingerprint: engine.pki().ca_fingerprint().to_string(),
    })
}

/// Every certificate the engine knows, with its end.
#[utoipa::path(get, path = "/api/v1/certificates", tag = "hosts",
    responses((status = 200, description = "The engine's certificates and each enrolled host's", body = Certificates)))]
pub(crate) async fn certificates(State(engine): State<Arc<Engine>>) -> Result<Json<Certificates>> {
    ops::certs::certificates(&engine).await.map(Json)
}

/// Renew the engine's certificates and the hosts' now, without a restart.
#[utoipa::path(post, path = "/api/v1/certificates/rotate", tag = "hosts", request_body = RotateCertificates,
    responses(
        (status = 200, description = "What was renewed; a host that could not be says why", body = Certificates),
        (status = 404, description = "No such host", body = ApiError),
    ))]
pub(crate) async fn rotate(
    State(engine): State<Arc<Engine>>,
    ApiJson(req): ApiJson<RotateCertificates>,
) -> Result<Json<Certificates>> {
    ops::certs::rotate(&engine, req).await.map(Json)
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
