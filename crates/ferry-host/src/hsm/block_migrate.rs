//! `blockMigrate`: the VM's disks start writing to new leaves on the
//! destination domain, all at once. With the destination equal to the
//! source it is a plain live snapshot (the engine's `disk snapshot`).

use std::collections::HashSet;
use std::time::Instant;

use ferry_api::vm::{BlockMigrate, BlockMigrateDisk, SwitchReport, VmDefinition};
use ferry_qemu::block::{self, SnapshotTarget};
use ferry_qemu::Vm;
use ferry_storage::Volume;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::state::AgentState;
use crate::vms::{device_id, layer_of};

/// Switches every listed disk of VM `id` onto its new leaf in one QMP
/// transaction. Disks already switched are skipped, so a retry after a
/// lost answer is harmless. The VM must be running: for a stopped VM the
/// engine turns the move into a cold move.
pub(crate) async fn block_migrate(
    agent: &AgentState,
    id: Uuid,
    req: BlockMigrate,
) -> Result<SwitchReport> {
    if req.disks.is_empty() {
        return Err(Error::BadRequest(
            "blockMigrate needs at least one disk to switch".into(),
        ));
    }
    let entry = agent.vms().get(id)?;
    let _ops = entry.ops.lock().await;
    let def = entry.definition();
    let vm = entry.running().ok_or_else(|| Error::VmNotRunning {
        name: def.name.clone(),
        action: "its disks cannot be switched live; move them cold instead".into(),
    })?;

    let mut seen = HashSet::new();
    let mut targets = Vec::new();
    for disk in &req.disks {
        check_listed_once(&def, disk, &mut seen)?;
        if let Some(target) = switch_target(agent, &vm, &def, disk).await? {
            targets.push(target);
        }
    }
    let qemu_ms = snapshot_all(&vm, &targets).await?;
    tracing::info!(
        vm = def.name,
        disks = targets.len(),
        qemu_ms,
        "blockMigrate switched disks"
    );
    agent
        .vms()
        .set_disk_domains(&entry, req.disks.iter().map(|d| (d.image, d.dst_domain)))?;
    Ok(SwitchReport {
        switched: targets.len(),
        qemu_ms,
    })
}

/// Refuses a disk listed twice (`seen` holds those listed before it) or
/// one the VM does not have.
fn check_listed_once(
    def: &VmDefinition,
    disk: &BlockMigrateDisk,
    seen: &mut HashSet<Uuid>,
) -> Result<()> {
    if !seen.insert(disk.image) {
        return Err(Error::BadRequest(format!(
            "disk {} is listed twice",
            disk.image
        )));
    }
    if !def.disks.iter().any(|d| d.image == disk.image) {
        return Err(Error::BadRequest(format!(
            "VM {} has no disk {}",
            def.name, disk.image
        )));
    }
    Ok(())
}

/// What to snapshot for `disk`: its active node and the new leaf as the
/// overlay; `None` when an earlier call already switched it.
async fn switch_target(
    agent: &AgentState,
    vm: &Vm,
    def: &VmDefinition,
    disk: &BlockMigrateDisk,
) -> Result<Option<SnapshotTarget>> {
    let (new_leaf, parent) = new_leaf_and_parent(agent, disk)?;
    let new_layer = layer_of(&new_leaf)?;
    let old_node = ferry_qemu::NodeNames::for_volume(disk.src_domain, parent).format;
    let active = block::active_node(vm.qmp(), &device_id(disk.image)).await?;
    if active == new_layer.nodes.format {
        return Ok(None); // switched by an earlier call
    }
    if active != old_node {
        return Err(Error::Conflict(format!(
            "disk {} of VM {} is not writing to volume {parent} on domain {} (its active node is {active}); the new leaf's parent must be the disk's current leaf",
            disk.image, def.name, disk.src_domain
        )));
    }
    Ok(Some(SnapshotTarget {
        active,
        overlay: new_layer,
    }))
}

/// The new leaf of `disk` and the parent its metadata names, which must
/// be the disk's leaf on the source domain.
fn new_leaf_and_parent(agent: &AgentState, disk: &BlockMigrateDisk) -> Result<(Volume, Uuid)> {
    let dst = agent.domains().get(disk.dst_domain)?;
    agent.domains().get(disk.src_domain)?;
    let new_leaf = dst.volume(disk.image, disk.volume);
    if !new_leaf.exists() {
        return Err(Error::NotFound(format!(
            "the new leaf {} of disk {} does not exist on domain {}; create it with createVolumeCrossSD first",
            disk.volume, disk.image, disk.dst_domain
        )));
    }
    // An ILLEGAL leaf never finished its creation, and a create's retry
    // may remove and make it again: QEMU must never have it open.
    let md = new_leaf.ensure_legal()?;
    // Across domains the new leaf's parent is on the source (a move);
    // on one domain it is beside it (a live snapshot).
    let expected_parent_domain = (disk.src_domain != disk.dst_domain).then_some(disk.src_domain);
    let Some(parent) = md
        .parent
        .filter(|_| md.parent_domain == expected_parent_domain)
    else {
        return Err(Error::Conflict(format!(
            "volume {} on domain {} is not a new leaf over the disk's leaf on domain {}; it cannot take the disk's writes",
            disk.volume, disk.dst_domain, disk.src_domain
        )));
    };
    Ok((new_leaf, parent))
}

/// Switches every target in one QMP transaction (none to switch, no
/// transaction); returns how long QEMU took, in milliseconds.
async fn snapshot_all(vm: &Vm, targets: &[SnapshotTarget]) -> Result<u64> {
    let started = Instant::now();
    if !targets.is_empty() {
        block::snapshot(vm.qmp(), targets).await?;
    }
    Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
}
