//! Reading a disk's chain back from the agents into the inventory's cache
//! (the `volumes` table), after every change of the chain.

use std::collections::HashMap;

use ferry_agent_client::AgentClient;
use ferry_api::agent::VolumeInfo;
use ferry_api::engine::Volume;
use ferry_api::{Legality, VolumeRole};
use uuid::Uuid;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// No real chain is this long; a longer walk is a loop in the metadata.
const MAX_CHAIN: usize = 1000;

/// Reads the chain of `disk` from the SPM (or, with no SPM, from any host
/// that is up: reading is not an SPM verb) as it is on storage, and
/// stores it base first with the disk's volumes outside it; returns the
/// chain.
///
/// The chain's top is the disk's leaf on its domain, except while a move
/// holds the disk and its new leaf, complete (LEGAL), sits on the move's
/// other domain over that leaf: then the chain starts there (the guest's
/// writes since `blockMigrate` are in it). The volumes of the image on the
/// move's other domain that the chain does not use are the copies in
/// progress (or, past the switch, the source's volumes awaiting cleanup).
pub async fn refresh_disk(engine: &Engine, disk: Uuid) -> Result<Vec<Volume>> {
    let row = engine.db().disk(disk).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "there is no disk {disk}; list the disks with 'ferry disk list'"
        ))
    })?;
    let (host, client) = match engine.agents().spm_host().await {
        Ok(found) => found,
        Err(_) => engine.agents().first_up().await?,
    };
    let other = other_domain(engine, row.domain, row.locked_by).await?;
    let (chain, outside) =
        read_disk(&client, row.domain, other, disk)
            .await
            .map_err(|e| match e {
                Error::Agent { cause, .. } => Error::Agent {
                    host: host.name.clone(),
                    cause,
                },
                other => other,
            })?;
    engine.db().replace_volumes(disk, &chain, &outside).await?;
    Ok(chain)
}

/// The other domain of the move that holds the disk, if one does.
async fn other_domain(engine: &Engine, domain: Uuid, lock: Option<Uuid>) -> Result<Option<Uuid>> {
    let Some(job) = lock else {
        return Ok(None);
    };
    Ok(engine
        .db()
        .job(job)
        .await?
        .filter(|j| !j.state.is_finished())
        .map(|j| {
            if j.dst_domain == domain {
                j.src_domain
            } else {
                j.dst_domain
            }
        }))
}

/// The chain (base first) and the volumes outside it on `other`.
async fn read_disk(
    client: &AgentClient,
    domain: Uuid,
    other: Option<Uuid>,
    image: Uuid,
) -> Result<(Vec<Volume>, Vec<Volume>)> {
    let mut by_domain: HashMap<Uuid, Vec<VolumeInfo>> = HashMap::new();
    let here = volumes_of(client, &mut by_domain, domain, image).await?;
    let mut top_domain = domain;
    if let Some(o) = other {
        let there = volumes_of(client, &mut by_domain, o, image).await?;
        let over_here = there
            .iter()
            .any(|v| v.parent_domain == Some(domain) && v.legality == Legality::Legal);
        if over_here || here.is_empty() {
            top_domain = o;
        }
    }
    let chain = read_chain(client, &mut by_domain, top_domain, image).await?;
    let outside = match other {
        Some(o) => by_domain
            .get(&o)
            .into_iter()
            .flatten()
            .filter(|v| {
                !chain
                    .iter()
                    .any(|c| c.id == v.volume && c.domain == v.domain)
            })
            .map(volume_from_info)
            .collect(),
        None => Vec::new(),
    };
    Ok((chain, outside))
}

async fn read_chain(
    client: &AgentClient,
    by_domain: &mut HashMap<Uuid, Vec<VolumeInfo>>,
    leaf_domain: Uuid,
    image: Uuid,
) -> Result<Vec<Volume>> {
    let here = volumes_of(client, by_domain, leaf_domain, image).await?;
    let mut current = top(&here, leaf_domain, image)?;
    let mut chain = vec![volume_from_info(&current)];
    while let Some(parent) = current.parent {
        if chain.len() > MAX_CHAIN {
            return Err(Error::Conflict(format!(
                "the chain of disk {image} is longer than {MAX_CHAIN} volumes: its metadata has a loop; inspect it with 'ferry storage chain'"
            )));
        }
        let domain = current.parent_domain.unwrap_or(current.domain);
        let there = volumes_of(client, by_domain, domain, image).await?;
        let next = there
            .iter()
            .find(|v| v.volume == parent)
            .cloned()
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "the chain of disk {image} is broken: volume {} names parent {parent} on domain {domain}, which is not there",
                    current.volume
                ))
            })?;
        chain.push(volume_from_info(&next));
        current = next;
    }
    chain.reverse();
    Ok(chain)
}

async fn volumes_of(
    client: &AgentClient,
    cache: &mut HashMap<Uuid, Vec<VolumeInfo>>,
    domain: Uuid,
    image: Uuid,
) -> Result<Vec<VolumeInfo>> {
    if let Some(v) = cache.get(&domain) {
        return Ok(v.clone());
    }
    let vols = client
        .image_volumes(domain, image)
        .await
        .map_err(|cause| Error::Agent {
            host: client.url().to_string(),
            cause,
        })?;
    cache.insert(domain, vols.clone());
    Ok(vols)
}

/// The leaf of an image on one domain: the one volume marked LEAF, or else
/// the one volume no other volume there names as parent (during a move
/// the old leaf is no longer marked LEAF while its child is elsewhere).
fn top(vols: &[VolumeInfo], domain: Uuid, image: Uuid) -> Result<VolumeInfo> {
    if vols.is_empty() {
        return Err(Error::Conflict(format!(
            "disk {image} has no volumes on domain {domain}; its storage was changed outside the engine"
        )));
    }
    let leaves: Vec<&VolumeInfo> = vols.iter().filter(|v| v.role == VolumeRole::Leaf).collect();
    if let [one] = leaves.as_slice() {
        return Ok((*one).clone());
    }
    let tops: Vec<&VolumeInfo> = vols
        .iter()
        .filter(|v| {
            !vols
                .iter()
                .any(|c| c.parent == Some(v.volume) && c.parent_domain.is_none())
        })
        .collect();
    match tops.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(Error::Conflict(format!(
            "disk {image} has {} top volumes on domain {domain}; its chain is ambiguous, inspect it with 'ferry storage chain'",
            tops.len()
        ))),
    }
}

/// The inventory's record of a volume the agent reported.
pub(crate) fn volume_from_info(v: &VolumeInfo) -> Volume {
    Volume {
        id: v.volume,
        domain: v.domain,
        path: v.path.clone(),
        format: v.format,
        parent: v.parent,
        legality: v.legality,
        voltype: v.role,
        allocated: v.allocated,
    }
}
