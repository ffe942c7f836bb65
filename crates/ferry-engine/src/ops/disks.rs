//! Disks: create one (a base volume made by the SPM), list them, show one,
//! and start a move.

use ferry_api::agent::{CreateVolume, DeleteImage, Release, VolumeInfo};
use ferry_api::engine::{CreateDisk, Disk, Job, JobKind, MoveRequest};
use ferry_api::Allocation;
use uuid::Uuid;

use crate::db::codec::now_ms;
use crate::db::{DiskRow, DomainRow};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::flow::{self, MoveSpec};
use crate::ops::{resolve_disk, resolve_domain, validate_name};
use crate::refresh::volume_from_info;

/// Creates a disk: one base volume of a new image on the domain. A
/// preallocated disk that does not fit in the domain's free space is
/// refused (507) before anything is made.
pub async fn create_disk(engine: &Engine, req: CreateDisk) -> Result<Disk> {
    check_request(&req)?;
    let domain = resolve_domain(engine, &req.domain).await?;
    let row = {
        let _inventory = engine.inventory_lock().await;
        if engine.db().disk_by_name_or_id(&req.name).await?.is_some() {
            return Err(Error::Conflict(format!(
                "there is already a disk named {}; choose another name",
                req.name
            )));
        }
        let (spm, client) = engine.agents().spm_host().await?;
        if req.preallocated {
            check_fits(engine, &client, &domain, &req).await?;
        }
        let id = Uuid::new_v4();
        let base = client
            .create_volume(&base_volume(&req, domain.id, id))
            .await
            .map_err(Error::agent(&spm.name))?;
        let row = DiskRow {
            id,
            name: req.name.clone(),
            size: req.size,
            domain: domain.id,
            locked_by: None,
            created: now_ms(),
        };
        record_disk(engine, &client, &row, &base).await?;
        engine
            .events()
            .record("disk", created_event(&row, &domain, &req), Some(row.id))
            .await;
        row
    };
    disk_view(engine, &row).await
}

/// The checks that need nothing but the request come first, before the
/// inventory lock is taken or any agent asked: a bad request changes
/// nothing and waits for nobody.
fn check_request(req: &CreateDisk) -> Result<()> {
    validate_name("disk", &req.name)?;
    if req.size == 0 || req.size > ferry_api::engine::MAX_DISK_SIZE {
        return Err(Error::BadRequest(format!(
            "a disk's size must be 1 byte to 8 TiB, not {} bytes",
            req.size
        )));
    }
    Ok(())
}

/// A preallocated disk takes its whole size at once, so one that cannot
/// fit is refused (507) with what would fit, rather than left to fail half
/// allocated on the SPM.
async fn check_fits(
    engine: &Engine,
    client: &ferry_agent_client::AgentClient,
    domain: &DomainRow,
    req: &CreateDisk,
) -> Result<()> {
    let free = current_free(engine, client, domain).await;
    if req.size > free {
        return Err(Error::NoSpace(format!(
            "disk {} needs {} bytes preallocated, but storage domain {} has only {free} bytes free; choose another domain, a smaller size, or a sparse disk",
            req.name, req.size, domain.name
        )));
    }
    Ok(())
}

/// What the SPM is asked for: the base of a new image, named after the
/// disk so a domain's volumes can be told apart by hand.
fn base_volume(req: &CreateDisk, domain: Uuid, image: Uuid) -> CreateVolume {
    CreateVolume {
        domain,
        image,
        volume: Uuid::new_v4(),
        format: req.format,
        size: Some(req.size),
        allocation: if req.preallocated {
            Allocation::Preallocated
        } else {
            Allocation::Sparse
        },
        parent: None,
        parent_image: None,
        description: format!("ferry disk {}", req.name),
    }
}

/// Records the new disk with its chain; if the inventory cannot take it,
/// the SPM's image goes again, so a failed create leaves nothing behind.
async fn record_disk(
    engine: &Engine,
    client: &ferry_agent_client::AgentClient,
    row: &DiskRow,
    base: &VolumeInfo,
) -> Result<()> {
    // The SPM's answer is the new disk's whole chain.
    let recorded = match engine.db().insert_disk(row).await {
        Ok(()) => {
            engine
                .db()
                .replace_volumes(row.id, &[volume_from_info(base)], &[])
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        // Unrecorded storage would be invisible: remove it.
        let undo = client
            .delete_image(&DeleteImage {
                domain: row.domain,
                image: row.id,
                release: Release::Now,
            })
            .await;
        if let Err(u) = undo {
            let id = row.id;
            tracing::warn!("cannot remove the unrecorded image {id}: {}", u.message());
        }
        return Err(e);
    }
    Ok(())
}

/// The event log's sentence for a new disk: it names the domain and the
/// allocation, since those decide where and whether the disk can move.
fn created_event(row: &DiskRow, domain: &DomainRow, req: &CreateDisk) -> String {
    format!(
        "disk {} created on storage domain {} ({} bytes, {}{})",
        row.name,
        domain.name,
        row.size,
        req.format,
        if req.preallocated {
            ", preallocated"
        } else {
            ""
        }
    )
}

/// The domain's free space as the SPM sees it now (the stored figure is up
/// to one poll old), falling back to the stored one.
async fn current_free(
    engine: &Engine,
    client: &ferry_agent_client::AgentClient,
    domain: &DomainRow,
) -> u64 {
    match client.domains().await {
        Ok(infos) => match infos.into_iter().find(|d| d.uuid == domain.id) {
            Some(d) => {
                if let Err(e) = engine
                    .db()
                    .set_domain_space(d.uuid, d.capacity, d.free)
                    .await
                {
                    tracing::warn!("cannot record domain space: {}", e.full_text());
                }
                d.free
            }
            None => domain.free,
        },
        Err(_) => domain.free,
    }
}

/// A disk as the API shows it: its stored chain (and, during a move, the
/// volumes outside it), its VM and its lock.
pub async fn disk_view(engine: &Engine, row: &DiskRow) -> Result<Disk> {
    Ok(Disk {
        id: row.id,
        name: row.name.clone(),
        domain: row.domain,
        size: row.size,
        volumes: engine.db().volumes(row.id).await?,
        outside_chain: engine.db().outside_volumes(row.id).await?,
        vm: engine.db().vm_of_disk(row.id).await?,
        locked_by: row.locked_by,
    })
}

/// Every disk, by name.
pub async fn disks(engine: &Engine) -> Result<Vec<Disk>> {
    let mut out = Vec::new();
    for row in engine.db().disks().await? {
        out.push(disk_view(engine, &row).await?);
    }
    Ok(out)
}

/// One disk, by name or UUID.
pub async fn disk(engine: &Engine, key: &str) -> Result<Disk> {
    let row = resolve_disk(engine, key).await?;
    disk_view(engine, &row).await
}

/// Starts moving one disk (with its VM, if it has one, running or not).
pub async fn move_disk(
    engine: &std::sync::Arc<Engine>,
    key: &str,
    req: MoveRequest,
) -> Result<Job> {
    super::check_move_request(&req)?;
    let disk = resolve_disk(engine, key).await?;
    let dst = resolve_domain(engine, &req.to).await?;
    super::check_guest_share_paced(&req)?;
    let vm = engine.db().vm_of_disk(disk.id).await?;
    flow::start_move(
        engine,
        MoveSpec {
            kind: JobKind::DiskMove,
            disks: vec![disk.id],
            vm,
            dst_domain: dst.id,
            bandwidth_mib_s: req.bandwidth_mib_s,
            pace: req.pace,
            guest_share_pct: req.guest_share_pct,
            correlation_id: req.correlation_id,
        },
    )
    .await
}
