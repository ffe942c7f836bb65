//! `finalizeBlockMigrate`: the VM's leaf leaves the source chain for the
//! verified copies on the destination. This is the switch point of a move:
//! before it the source holds the truth, after it the destination.

use std::time::Instant;

use ferry_api::vm::{FinalizeBlockMigrate, FinalizeDisk, SwitchReport};
use ferry_qemu::{block, Layer, Vm};
use ferry_storage::{find_top, qemu_img, Chain, DomainSet, StorageDomain, Volume};

use crate::domains::connected;
use crate::error::{Error, Result};
use crate::fsutil::blocking;
use crate::state::AgentState;
use crate::vms::{device_id, layer_of};
use uuid::Uuid;

/// Finalizes every listed disk of VM `id`: on a running VM the domain2
/// chain is opened, the leaf reopened onto it and the domain1 chain
/// closed; then the leaf's header names its parent relatively and its
/// metadata loses the cross-domain parent. Each part is skipped when
/// already done.
pub(crate) async fn finalize_block_migrate(
    agent: &AgentState,
    id: Uuid,
    req: FinalizeBlockMigrate,
) -> Result<SwitchReport> {
    if req.disks.is_empty() {
        return Err(Error::BadRequest(
            "finalizeBlockMigrate needs at least one disk".into(),
        ));
    }
    let entry = agent.vms().get(id)?;
    let _ops = entry.ops.lock().await;
    let def = entry.definition();
    let domains = agent.domains().set();
    let vm = entry.running();

    // Check every disk before changing any.
    let mut plans = Vec::new();
    for disk in &req.disks {
        if !def.disks.iter().any(|d| d.image == disk.image) {
            return Err(Error::BadRequest(format!(
                "VM {} has no disk {}",
                def.name, disk.image
            )));
        }
        let d = domains.clone();
        let disk = *disk;
        plans.push(blocking(move || plan(&d, &disk)).await?);
    }

    let started = Instant::now();
    let mut switched = 0;
    for plan in &plans {
        if let Some(vm) = &vm {
            if switch_running(vm, plan).await? {
                switched += 1;
            }
        }
    }
    let qemu_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    for plan in plans {
        let running = vm.is_some();
        blocking(move || settle_storage(&plan, running)).await?;
    }
    agent
        .vms()
        .set_disk_domains(&entry, req.disks.iter().map(|d| (d.image, d.dst_domain)))?;
    tracing::info!(
        vm = def.name,
        switched,
        qemu_ms,
        "finalizeBlockMigrate done"
    );
    Ok(SwitchReport { switched, qemu_ms })
}

/// What finalizing one disk means, read from the metadata.
struct Plan {
    disk: FinalizeDisk,
    leaf: Volume,
    /// The copies on the destination under the leaf, base first.
    dst_chain: Vec<Volume>,
    /// The source volumes under the leaf, base first (may be gone after a
    /// finished finalize plus cleanup).
    src_chain: Vec<Volume>,
}

/// Reads what finalizing `disk` means, refusing a disk that is not ready
/// (no move in flight, copies missing or unverified) before anything is
/// changed.
fn plan(domains: &DomainSet, disk: &FinalizeDisk) -> Result<Plan> {
    let dst = connected(domains, disk.dst_domain)?;
    let src = connected(domains, disk.src_domain)?;
    let leaf = find_top(dst, disk.image)?;
    let parent = leaf_parent(&leaf, disk)?;
    let dst_chain = verified_copies(domains, dst, disk, parent)?;
    let src_parent = src.volume(disk.image, parent);
    let src_chain = if src_parent.exists() {
        Chain::walk_metadata(domains, &src_parent)?
            .volumes()
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    Ok(Plan {
        disk: *disk,
        leaf,
        dst_chain,
        src_chain,
    })
}

/// The parent of the move's leaf, which must be read from the source
/// domain (or, after an earlier finalize, from beside it).
fn leaf_parent(leaf: &Volume, disk: &FinalizeDisk) -> Result<Uuid> {
    let md = leaf.metadata()?;
    let Some(parent) = md.parent else {
        return Err(Error::Conflict(format!(
            "the leaf {} of disk {} on domain {} has no parent; there is nothing to finalize",
            leaf.id(),
            disk.image,
            disk.dst_domain
        )));
    };
    if md.parent_domain.is_some_and(|p| p != disk.src_domain) {
        return Err(Error::Conflict(format!(
            "the leaf {} of disk {} reads from domain {}, not {}",
            leaf.id(),
            disk.image,
            md.parent_domain.unwrap_or_default(),
            disk.src_domain
        )));
    }
    Ok(parent)
}

/// The copies of the leaf's parent chain on the destination, base first:
/// all there, all on the destination, all LEGAL (complete and verified).
fn verified_copies(
    domains: &DomainSet,
    dst: &StorageDomain,
    disk: &FinalizeDisk,
    parent: Uuid,
) -> Result<Vec<Volume>> {
    let dst_parent = dst.volume(disk.image, parent);
    if !dst_parent.exists() {
        return Err(Error::Conflict(format!(
            "volume {parent} of disk {} has no copy on domain {} yet; run cloneInternalVolumes first",
            disk.image, disk.dst_domain
        )));
    }
    let dst_chain: Vec<Volume> = Chain::walk_metadata(domains, &dst_parent)?
        .volumes()
        .cloned()
        .collect();
    for v in &dst_chain {
        if v.domain().uuid() != disk.dst_domain {
            return Err(Error::Conflict(format!(
                "the copy of volume {} is on domain {}, not {}; cloneInternalVolumes must copy the whole chain",
                v.id(),
                v.domain().uuid(),
                disk.dst_domain
            )));
        }
        v.ensure_legal().map_err(|_| {
            Error::Conflict(format!(
                "the copy of volume {} on domain {} is not complete and verified (ILLEGAL); run cloneInternalVolumes until it succeeds",
                v.id(),
                disk.dst_domain
            ))
        })?;
    }
    Ok(dst_chain)
}

/// Puts the running VM's leaf onto the destination chain. Returns whether
/// anything changed.
async fn switch_running(vm: &Vm, plan: &Plan) -> Result<bool> {
    let qmp = vm.qmp();
    let leaf = layer_of(&plan.leaf)?;
    let active = block::active_node(qmp, &device_id(plan.disk.image)).await?;
    if active != leaf.nodes.format {
        return Err(Error::Conflict(format!(
            "disk {} is not writing to the move's leaf {} (its active node is {active}); run blockMigrate first",
            plan.disk.image,
            plan.leaf.id()
        )));
    }
    let dst_layers: Vec<Layer> = plan.dst_chain.iter().map(layer_of).collect::<Result<_>>()?;
    let mut expected: Vec<String> = vec![leaf.nodes.format.clone()];
    expected.extend(dst_layers.iter().rev().map(|l| l.nodes.format.clone()));
    let current = block::chain_of(qmp, &leaf.nodes.format).await?;
    let changed = current != expected;
    if changed {
        let open = block::node_names(qmp).await?;
        if !dst_layers.iter().all(|l| open.contains(&l.nodes.format)) {
            // A half-open chain from an interrupted call is closed first.
            block::del_chain(qmp, &dst_layers).await?;
            block::add_chain(qmp, &dst_layers).await?;
        }
        let parent = dst_layers
            .last()
            .ok_or_else(|| Error::Internal("empty destination chain".into()))?;
        block::reopen_backing(qmp, &leaf, &parent.nodes.format).await?;
        let src_layers: Vec<Layer> = plan
            .src_chain
            .iter()
            .map(|v| Layer {
                path: v.path(),
                format: ferry_api::VolumeFormat::Qcow2,
                nodes: ferry_qemu::NodeNames::for_volume(v.domain().uuid(), v.id()),
            })
            .collect();
        block::del_chain(qmp, &src_layers).await?;
    }
    // Idempotent, so always: a crash may have come between reopen and here.
    let parent_id = plan
        .dst_chain
        .last()
        .map(|v| v.id().to_string())
        .unwrap_or_default();
    block::set_backing_file(qmp, &leaf.nodes.format, &leaf.nodes.format, &parent_id).await?;
    Ok(changed)
}

/// Header (for a stopped VM) and metadata: the leaf's parent is now the
/// copy beside it.
fn settle_storage(plan: &Plan, running: bool) -> Result<()> {
    let parent = plan
        .dst_chain
        .last()
        .ok_or_else(|| Error::Internal("empty destination chain".into()))?;
    if !running {
        let format = parent.metadata()?.format;
        qemu_img::set_backing_name(&plan.leaf.path(), &parent.id().to_string(), format)?;
    }
    if plan.leaf.metadata()?.parent_domain.is_some() {
        plan.leaf.update_metadata(|m| m.parent_domain = None)?;
    }
    Ok(())
}
