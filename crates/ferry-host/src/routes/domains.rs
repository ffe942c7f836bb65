//! Storage domains: list, connect, create (SPM), and an image's volumes.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_api::agent::{ConnectDomain, CreateDomain, DomainInfo, VolumeInfo};
use uuid::Uuid;

use crate::error::Result;
use crate::fsutil::blocking;
use crate::routes::extract::{ApiJson, ApiPath};
use crate::spm::volumes::image_volumes;
use crate::state::AgentState;

pub(crate) fn routes() -> Router<Arc<AgentState>> {
    Router::new()
        .route("/v1/domains", get(list))
        .route("/v1/domains/connect", post(connect))
        .route("/v1/domains/create", post(create))
        .route("/v1/domains/{domain}/images/{image}", get(image))
}

async fn list(State(agent): State<Arc<AgentState>>) -> Result<Json<Vec<DomainInfo>>> {
    blocking(move || {
        let mut domains = agent.domains().list()?;
        let releasing = agent.releases().pending_bytes();
        for d in &mut domains {
            d.releasing = releasing.get(&d.uuid).copied().unwrap_or(0);
        }
        Ok(domains)
    })
    .await
    .map(Json)
}

fn info(agent: &AgentState, uuid: Uuid) -> Result<DomainInfo> {
    agent
        .domains()
        .list()?
        .into_iter()
        .find(|d| d.uuid == uuid)
        .ok_or_else(|| crate::error::Error::Internal(format!("domain {uuid} vanished")))
}

async fn connect(
    State(agent): State<Arc<AgentState>>,
    ApiJson(req): ApiJson<ConnectDomain>,
) -> Result<Json<DomainInfo>> {
    blocking(move || {
        let d = agent.domains().connect(&req.path)?;
        info(&agent, d.uuid())
    })
    .await
    .map(Json)
}

async fn create(
    State(agent): State<Arc<AgentState>>,
    ApiJson(req): ApiJson<CreateDomain>,
) -> Result<Json<DomainInfo>> {
    // The first domain of a new data center is made before any host can be
    // SPM (the SPM lease lives on it): an agent that knows no domain at all
    // may create one; after that only the SPM may.
    let bootstrap = agent.domains().set().iter().next().is_none();
    if !bootstrap {
        agent.spm().require("create storage domains")?;
    }
    let _serial = agent.storage_lock().await;
    let a = agent.clone();
    blocking(move || {
        let d = a.domains().create(&req.path, &req.name, req.uuid)?;
        info(&a, d.uuid())
    })
    .await
    .map(Json)
}

async fn image(
    State(agent): State<Arc<AgentState>>,
    ApiPath((domain, image)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Vec<VolumeInfo>>> {
    let domain = agent.domains().get(domain)?;
    blocking(move || image_volumes(&domain, image))
        .await
        .map(Json)
}
