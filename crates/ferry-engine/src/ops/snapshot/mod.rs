//! Snapshots: a new qcow2 leaf on top of a disk's chain. For a running VM
//! its host switches the VM onto the new leaf live (the agent's
//! `blockMigrate` with the same source and destination domain is exactly
//! that: `blockdev-snapshot` onto a new overlay).
//!
//! A snapshot is an operation with its own row (`db::OperationRow`),
//! written with the disk's lock in one transaction and ended with its
//! release in one transaction, and the new leaf's UUID is chosen and
//! recorded before the SPM is asked for it: an engine that dies in the
//! middle leaves a row that the next start finishes ([`resume`]).

mod resume;

use ferry_agent_client::AgentClient;
use ferry_api::agent::{CreateVolume, DeleteVolumes};
use ferry_api::engine::{Disk, HostStatus, VmState, Volume};
use ferry_api::vm::{BlockMigrate, BlockMigrateDisk, VmState as AgentVmState};
use ferry_api::{Allocation, VolumeFormat};
use uuid::Uuid;

use crate::db::{DiskRow, OperationRow, OperationState};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::disks::disk_view;
use crate::ops::resolve_disk;
use crate::refresh::refresh_disk;

pub use resume::resume_interrupted;

/// Takes a snapshot of a disk. Refused (409) while a job or another
/// snapshot has the disk locked; the disk is locked by the snapshot's
/// operation for its few seconds, so a move cannot start under it.
pub async fn snapshot_disk(engine: &Engine, key: &str) -> Result<Disk> {
    let disk = resolve_disk(engine, key).await?;
    let volume = Uuid::new_v4();
    let op = OperationRow::snapshot(disk.id, volume);
    engine.db().insert_locked_operation(&op).await?;
    #[cfg(feature = "test-hooks")]
    crate::flow::test_hooks::crash_at(crate::flow::test_hooks::CrashPoint::SnapshotLocked);
    let done = snapshot_locked(engine, &disk, op.id, volume).await;
    let (state, error) = match &done {
        Ok(()) => (OperationState::Succeeded, None),
        Err(e) => (OperationState::Failed, Some(e.full_text())),
    };
    if let Err(e) = engine
        .db()
        .end_operation(op.id, state, error.as_deref())
        .await
    {
        tracing::error!(
            "disk {} stays locked by its snapshot {} until the engine restarts: {}",
            disk.name,
            op.id,
            e.full_text()
        );
    }
    if let Some(error) = error {
        engine
            .events()
            .record(
                "disk",
                format!(
                    "snapshot {} of disk {} failed: {error}; the disk is as it was",
                    op.id, disk.name
                ),
                Some(disk.id),
            )
            .await;
    }
    done?;
    let row = resolve_disk(engine, &disk.id.to_string()).await?;
    disk_view(engine, &row).await
}

/// The snapshot itself, under the disk's lock: a new leaf `volume` from
/// the SPM, the running VM switched onto it, the chain read back. Every
/// check runs before the SPM is asked for anything.
async fn snapshot_locked(engine: &Engine, disk: &DiskRow, op: Uuid, volume: Uuid) -> Result<()> {
    let chain = refresh_disk(engine, disk.id).await?;
    let leaf = leaf_to_snapshot(disk, &chain)?;
    let running = running_vm(engine, disk.id).await?;
    let (spm, client) = engine.agents().spm_host().await?;
    client
        .create_volume(&new_leaf(disk, leaf, volume))
        .await
        .map_err(Error::agent(&spm.name))?;
    #[cfg(feature = "test-hooks")]
    crate::flow::test_hooks::crash_at(crate::flow::test_hooks::CrashPoint::SnapshotCreated);
    if let Some((vm, host, vm_client)) = &running {
        let switched = vm_client
            .block_migrate(*vm, &onto_new_leaf(disk, volume))
            .await
            .map_err(Error::agent(host));
        if let Err(e) = switched {
            // The VM still writes the old leaf: the new one is unused and
            // goes, so the disk is as it was.
            let _ = remove_unused(&client, disk, volume).await;
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
                "snapshot of disk {} taken ({how}): new leaf {volume} (snapshot {op})",
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

/// Removes a snapshot volume the VM never wrote; true if it is gone.
/// Failing to is only a warning: the volume holds nothing, and the
/// snapshot's own error is what the caller needs to see.
async fn remove_unused(client: &AgentClient, disk: &DiskRow, volume: Uuid) -> bool {
    let undo = client
        .delete_volumes(&DeleteVolumes {
            domain: disk.domain,
            image: disk.id,
            volumes: vec![volume],
        })
        .await;
    if let Err(u) = &undo {
        tracing::warn!(
            "cannot remove the unused snapshot volume {volume}: {}",
            u.message()
        );
    }
    undo.is_ok()
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
    if host.status != HostStatus::Up || row.map(|r| r.state) == Some(VmState::Unknown) {
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
