//! The seed's `cloneInternalVolumes`, as a task: copy the volumes under a
//! moving disk's leaf to the destination domain, layer-exact, verify each
//! copy and mark it LEGAL.
//!
//! All the storage work is ferry-storage's `copy_chain`: base first, free
//! space checked up front, one bandwidth limit over the whole chain, LEGAL
//! copies skipped (so a resumed or repeated task copies only what is not
//! done), ILLEGAL leftovers of a crash redone, a template's SHARED volume
//! already on the destination linked instead of copied, and what this call
//! made removed again on cancel or failure.

use std::sync::Arc;

use ferry_api::agent::{CloneInternalVolumes, CopyIo};
use ferry_storage::sparse_copy::{FLAT_OUT_DIRECT_REQUEST, GENTLE_DIRECT_REQUEST};
use ferry_storage::{
    copy_chain, Chain, CopyControl, CopyKind, CopyMethod, DomainSet, StorageDomain,
};
use uuid::Uuid;

use crate::domains::connected;

use crate::error::{Error, Result};
use crate::fsutil::blocking;
use crate::state::AgentState;
use crate::tasks::{TaskContext, TaskVerb};

/// `POST /v1/tasks/{id}/clone-internal-volumes`.
#[derive(Debug)]
pub struct CloneInternalVolumesVerb;

impl TaskVerb for CloneInternalVolumesVerb {
    const NAME: &'static str = "clone-internal-volumes";
    const SPM_ONLY: bool = true;
    type Params = CloneInternalVolumes;

    async fn check(agent: Arc<AgentState>, params: CloneInternalVolumes) -> Result<()> {
        let domains = agent.domains().set();
        blocking(move || plan(&domains, &params).map(|_| ())).await
    }

    async fn run(ctx: TaskContext, params: CloneInternalVolumes) -> Result<()> {
        let domains = ctx.agent().domains().set();
        let cancel = ctx.stop_flag();
        let report = ctx.progress_reporter();
        let task = ctx.id();
        // Always a limit, even an unlimited one: the engine may set or
        // hold it while the copy runs.
        let throttle = ctx.throttle(params.bandwidth_mib_s.map(|m| m.saturating_mul(1 << 20)));
        if let Some(dest) = domains.get(params.dst_domain) {
            ctx.set_writes_to(dest.image_dir(params.image));
        }
        let (method, direct_request) = match params.io {
            CopyIo::Buffered => (CopyMethod::Chunks, 0),
            CopyIo::Kernel => (CopyMethod::Kernel, 0),
            CopyIo::Direct => (CopyMethod::Direct, GENTLE_DIRECT_REQUEST),
            CopyIo::DirectWhole => (CopyMethod::Direct, FLAT_OUT_DIRECT_REQUEST),
        };
        blocking(move || {
            let (chain, dest) = plan(&domains, &params)?;
            let throttle = throttle;
            let ctl = CopyControl {
                throttle: Some(&throttle),
                cancel: Some(&cancel),
                progress: Some(&report),
                workers: 0,
                method,
                direct_request,
            };
            let outcomes = copy_chain(&domains, &chain, &dest, &ctl)?;
            for o in &outcomes {
                let what = match o.kind {
                    CopyKind::Copied => "copied and verified",
                    CopyKind::AlreadyThere => "already there",
                    CopyKind::LinkedShared => "linked (shared template volume)",
                };
                tracing::info!(%task, volume = %o.copy.id(), bytes = o.bytes_copied, "{what}");
            }
            Ok(())
        })
        .await
    }
}

/// Checks the request against the domains and returns the chain to copy
/// and the destination. The listed volumes must be exactly the chain from
/// the image's base up to the last one listed: what the engine means by
/// "the internal volumes", and what makes a layer-by-layer copy valid.
fn plan(domains: &DomainSet, p: &CloneInternalVolumes) -> Result<(Chain, StorageDomain)> {
    let top = check_request(p)?;
    let src = connected(domains, p.src_domain)?;
    let dest = connected(domains, p.dst_domain)?;
    let leaf = src.volume(p.image, top);
    if !leaf.exists() {
        return Err(ferry_storage::Error::VolumeNotFound {
            domain: src.uuid(),
            image: p.image,
            volume: top,
            path: leaf.path(),
        }
        .into());
    }
    let chain = Chain::walk(domains, &leaf)?;
    check_chain_listed(&chain, p, top, src)?;
    Ok((chain, dest.clone()))
}

/// Refuses a request that is wrong in itself; returns the top volume to
/// copy, the last one listed.
fn check_request(p: &CloneInternalVolumes) -> Result<Uuid> {
    let Some(&top) = p.volumes.last() else {
        return Err(Error::BadRequest(
            "volumes is empty; list the volumes to copy, base first".into(),
        ));
    };
    if p.src_domain == p.dst_domain {
        return Err(Error::BadRequest(format!(
            "src_domain and dst_domain are both {}; choose another destination",
            p.src_domain
        )));
    }
    if p.bandwidth_mib_s == Some(0) {
        return Err(Error::BadRequest(
            "bandwidth_mib_s is 0, which would never finish; give a positive limit or leave it out"
                .into(),
        ));
    }
    Ok(top)
}

/// That the listed volumes are the whole chain up to `top`, base first,
/// every one on the source domain.
fn check_chain_listed(
    chain: &Chain,
    p: &CloneInternalVolumes,
    top: Uuid,
    src: &StorageDomain,
) -> Result<()> {
    let ids: Vec<_> = chain.volumes().map(|v| v.id()).collect();
    if ids != p.volumes {
        return Err(Error::BadRequest(format!(
            "volumes must be the chain from the base up to {top}, base first: [{}]",
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(link) = chain
        .links()
        .iter()
        .find(|l| l.volume.domain().uuid() != src.uuid())
    {
        return Err(Error::BadRequest(format!(
            "volume {} of the chain is on domain {}, not on the source domain {}; only volumes on the source can be cloned",
            link.volume.id(),
            link.volume.domain().uuid(),
            src.uuid()
        )));
    }
    Ok(())
}
