//! The SPM's synchronous volume verbs. Handlers only translate: the work
//! is in `spm::volumes`.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ferry_api::agent::{
    CreateVolume, CreateVolumeCrossSd, DeleteImage, DeleteVolumes, Deleted, Release, VolumeInfo,
};

use crate::error::Result;
use crate::fsutil::blocking;
use crate::release;
use crate::routes::extract::ApiJson;
use crate::spm::volumes;
use crate::state::AgentState;

pub(crate) fn routes() -> Router<Arc<AgentState>> {
    Router::new()
        .route("/v1/volumes/create", post(create))
        .route("/v1/volumes/create-cross-sd", post(create_cross_sd))
        .route("/v1/volumes/delete", post(delete))
        .route("/v1/images/delete", post(delete_image))
}

async fn create(
    State(agent): State<Arc<AgentState>>,
    ApiJson(req): ApiJson<CreateVolume>,
) -> Result<Json<VolumeInfo>> {
    agent.spm().require("create volumes")?;
    let domain = agent.domains().get(req.domain)?;
    let _serial = agent.storage_lock().await;
    let domains = agent.domains().set();
    blocking(move || volumes::create_volume(&domains, &domain, &req))
        .await
        .map(Json)
}

async fn create_cross_sd(
    State(agent): State<Arc<AgentState>>,
    ApiJson(req): ApiJson<CreateVolumeCrossSd>,
) -> Result<Json<VolumeInfo>> {
    agent
        .spm()
        .require("create volumes (createVolumeCrossSD)")?;
    let dst = agent.domains().get(req.dst_domain)?;
    let parent = agent.domains().get(req.parent.domain)?;
    let _serial = agent.storage_lock().await;
    let domains = agent.domains().set();
    blocking(move || volumes::create_volume_cross_sd(&domains, &dst, &parent, &req))
        .await
        .map(Json)
}

async fn delete(
    State(agent): State<Arc<AgentState>>,
    ApiJson(req): ApiJson<DeleteVolumes>,
) -> Result<Json<Deleted>> {
    agent.spm().require("delete volumes")?;
    let domain = agent.domains().get(req.domain)?;
    let _serial = agent.storage_lock().await;
    let domains = agent.domains().set();
    blocking(move || {
        volumes::delete_volumes(&domains, &domain, req.image, &req.volumes, |r| {
            Ok(r.release_now()?)
        })
    })
    .await
    .map(Json)
}

async fn delete_image(
    State(agent): State<Arc<AgentState>>,
    ApiJson(req): ApiJson<DeleteImage>,
) -> Result<Json<Deleted>> {
    agent.spm().require("delete images")?;
    let domain = agent.domains().get(req.domain)?;
    let _serial = agent.storage_lock().await;
    let domains = agent.domains().set();
    if req.release == Release::Now {
        return blocking(move || {
            volumes::delete_image(&domains, &domain, req.image, |r| Ok(r.release_now()?))
        })
        .await
        .map(Json);
    }
    // What was retired before a failure is released all the same.
    let (deleted, retired) = blocking(move || {
        let mut retired = Vec::new();
        let deleted = volumes::delete_image(&domains, &domain, req.image, |r| {
            retired.push(r);
            Ok(())
        });
        Ok((deleted, retired))
    })
    .await?;
    let releasing = !retired.is_empty();
    release::spawn(&agent, retired);
    let mut deleted = deleted?;
    deleted.releasing_in_background = releasing;
    Ok(Json(deleted))
}
