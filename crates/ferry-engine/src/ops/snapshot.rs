//! Snapshots: a new qcow2 leaf on top of a disk's chain. For a running VM
//! its host switches the VM onto the new leaf live (the agent's
//! `blockMigrate` with the same source and destination domain is exactly
//! that: `blockdev-snapshot` onto a new overlay).

use ferry_agent_client::AgentClient;
use ferry_api::agent::{CreateVolume, DeleteVolumes};
use ferry_api::engine::{Disk, HostStatus, VmState, Volume};
use ferry_api::vm::{BlockMigrate, BlockMigrateDisk, VmState as AgentVmState};
use ferry_api::{Allocation, VolumeFormat};
use uuid::Uuid;

use crate::db::DiskRow;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::disks::disk_view;
use crate::ops::resolve_disk;
use crate::refresh::refresh_disk;

/// Takes a snapshot of a disk. Refused (409) while a job has the disk
/// locked; the disk is locked for the snapshot's few seconds, so a move
/// cannot start under it.
pub async fn snapshot_disk(engine: &Engine, key: &str) -> Result<Disk> {
    let disk = resolve_disk(engine, key).await?;
    let op = Uuid::new_v4();
    engine.db().lock_disks(op, &[disk.id]).await?;
    let done = snapshot_locked(engine, &disk).await;
    if let Err(e) = engine.db().unlock_disks(op).await {
        tracing::error!(
            "disk {} stays locked after its snapshot: {}",
            disk.name,
            e.full_text()
        );
    }
    done?;
    let row = resolve_disk(engine, &disk.id.to_string()).await?;
    disk_view(engine, &row).await
}

/// The snapshot itself, under the disk's lock: a new leaf from the SPM,
/// the running VM switched onto it, the chain read back. Every check runs
/// before the SPM is asked for anything.
async fn snapshot_locked(engine: &Engine, disk: &DiskRow) -> Result<()> {
    let chain = refresh_disk(engine, disk.id).await?;
    let leaf = leaf_to_snapshot(disk, &chain)?;
    let running = running_vm(engine, disk.id).await?;
    let (spm, client) = engine.agents().spm_host().await?;
    let volume = Uuid::new_v4();
    client
        .create_volume(&new_leaf(disk, leaf, volume))
        .await
        .map_err(Error::agent(&spm.name))?;
    if let Some((vm, host, vm_client)) = &running {
        let switched = vm_client
            .block_migrate(*vm, &onto_new_leaf(disk, volume))
            .await
            .map_err(Error::agent(host));
        if let Err(e) = switched {
            // The VM still writes the old leaf: the new one is unused and
            // goes, so the disk is as it was.
            remove_unused(&client, disk, volume).await;
            let _ = refresh_disk(engine, disk.id).await;
            return Err(e);
        }
    }
    refresh_disk(engine, disk.id).await?;
    let how = if running.is_some() { "live" } else { "offline" };
    engine
        .events()
        .record(
            "disk",
            format!(
                "snapshot of disk {} taken ({how}): new leaf {volume}",
                disk.name
            ),
            Some(disk.id),
        )
        .await;
    Ok(())
}

/// The leaf the new volume goes on top of. A leaf on another domain means
/// a move is half done: a snapshot there would be a volume the move does
/// not know of.
fn leaf_to_snapshot(disk: &DiskRow, chain: &[Volume]) -> Result<Uuid> {
    let leaf = chain
        .last()
        .ok_or_else(|| Error::Conflict(format!("disk {} has no volumes to snapshot", disk.name)))?;
    if leaf.domain != disk.domain {
        return Err(Error::Conflict(format!(
            "disk {}'s leaf is on domain {}, not on its domain {}; wait for its move to finish",
            disk.name, leaf.domain, disk.domain
        )));
    }
    Ok(leaf.id)
}

/// The SPM's request for the snapshot: an empty qcow2 overlay of `leaf`
/// (its size is the parent's), so the old leaf stops changing from here on.
fn new_leaf(disk: &DiskRow, leaf: Uuid, volume: Uuid) -> CreateVolume {
    CreateVolume {
        domain: disk.domain,
        image: disk.id,
        volume,
        format: VolumeFormat::Qcow2,
        size: None,
        allocation: Allocation::Sparse,
        parent: Some(leaf),
        parent_image: None,
        description: format!("snapshot of {}", disk.name),
    }
}

/// `blockMigrate` with the same source and destination domain: the VM's
/// host puts the new leaf on top of the running chain
/// (`blockdev-snapshot`), so the VM writes it from now on.
fn onto_new_leaf(disk: &DiskRow, volume: Uuid) -> BlockMigrate {
    BlockMigrate {
        disks: vec![BlockMigrateDisk {
            image: disk.id,
            src_domain: disk.domain,
            dst_domain: disk.domain,
            volume,
        }],
    }
}

/// Removes a snapshot volume the VM never wrote. Failing to is only a
/// warning: the volume holds nothing, and the snapshot's own error is what
/// the caller needs to see.
async fn remove_unused(client: &AgentClient, disk: &DiskRow, volume: Uuid) {
    let undo = client
        .delete_volumes(&DeleteVolumes {
            domain: disk.domain,
            image: disk.id,
            volumes: vec![volume],
        })
        .await;
    if let Err(u) = undo {
        tracing::warn!(
            "cannot remove the unused snapshot volume {volume}: {}",
            u.message()
        );
    }
}

/// The disk's VM if it runs now, with its host's name and client. A VM
/// whose host is down cannot be snapshotted safely: its QEMU may still be
/// writing the leaf.
async fn running_vm(engine: &Engine, disk: Uuid) -> Result<Option<(Uuid, String, AgentClient)>> {
    let Some(vm) = engine.db().vm_of_disk(disk).await? else {
        return Ok(None);
    };
    let (host, client) = engine.agents().host_of_vm(vm).await?;
    let row = engine.db().vm(vm).await?;
    if host.status == HostStatus::Down || row.map(|r| r.state) == Some(VmState::Unknown) {
        return Err(Error::Unavailable(format!(
            "the host {} of this disk's VM is down, so whether the VM writes the disk is unknown; wait for the host to come back",
            host.name
        )));
    }
    match client.vm(vm).await {
        Ok(status) => {
            Ok((status.state == AgentVmState::Running).then_some((vm, host.name, client)))
        }
        // Not defined there (yet): it cannot be running.
        Err(e) if e.kind() == ferry_api::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::agent(&host.name)(e)),
    }
}
