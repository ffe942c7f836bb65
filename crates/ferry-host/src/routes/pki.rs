//! Certificate renewal, driven by the engine over the mutual TLS it
//! already has: `POST /v1/pki/request` makes a new key here and answers
//! its signing request; `POST /v1/pki/install` installs the certificate
//! the engine's CA signed for it, served from the next connection on. No
//! VM, task or connection in flight notices.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ferry_api::agent::{CertRequest, CertStatus, InstallCert};
use ferry_pki::CertInfo;

use crate::error::Result;
use crate::fsutil::blocking;
use crate::routes::extract::ApiJson;
use crate::state::AgentState;

pub(crate) fn routes() -> Router<Arc<AgentState>> {
    Router::new()
        .route("/v1/pki/request", post(request))
        .route("/v1/pki/install", post(install))
}

fn status(info: &CertInfo) -> CertStatus {
    CertStatus {
        fingerprint: info.fingerprint.to_string(),
        not_after: u64::try_from(info.not_after).unwrap_or(0),
    }
}

async fn request(State(agent): State<Arc<AgentState>>) -> Result<Json<CertRequest>> {
    let csr_pem = blocking(move || agent.identity().request()).await?;
    Ok(Json(CertRequest { csr_pem }))
}

async fn install(
    State(agent): State<Arc<AgentState>>,
    ApiJson(req): ApiJson<InstallCert>,
) -> Result<Json<CertStatus>> {
    let info = blocking(move || agent.identity().install(&req.cert_pem)).await?;
    Ok(Json(status(&info)))
}
