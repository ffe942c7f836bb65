//! Merge and the rollback of `blockMigrate`: both fold a disk's leaf into
//! its parent and leave the VM writing to the parent. Merge does it on the
//! destination after finalize (so the disk keeps its chain shape); the
//! rollback does it across domains, back into the source leaf (so the VM
//! ends where it started). On a running VM it is QEMU's active commit with
//! a pivot; on a stopped one, `qemu-img commit`.

use std::sync::Arc;
use std::time::Duration;

use ferry_api::vm::{Merge, RollbackBlockMigrate};
use ferry_api::VolumeRole;
use ferry_qemu::{block, jobs, Vm};
use ferry_storage::{qemu_img, Volume};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::fsutil::blocking;
use crate::state::AgentState;
use crate::tasks::{TaskContext, TaskVerb};
use crate::test_hooks::HoldPoint;
use crate::vms::{device_id, layer_of, VmEntry};

/// The merge task (`POST /v1/tasks/{id}/merge`).
#[derive(Debug)]
pub(crate) struct MergeVerb;

impl TaskVerb for MergeVerb {
    const NAME: &'static str = "merge";
    const SPM_ONLY: bool = false;
    type Params = Merge;

    async fn check(agent: Arc<AgentState>, p: Merge) -> Result<()> {
        agent.vms().get(p.vm)?;
        let domain = agent.domains().get(p.domain)?;
        let leaf = domain.volume(p.image, p.volume);
        if leaf.exists() {
            blocking(move || merge_parent(&leaf).map(|_| ())).await?;
        }
        Ok(())
    }

    async fn run(ctx: TaskContext, p: Merge) -> Result<()> {
        let agent = ctx.agent().clone();
        let entry = agent.vms().get(p.vm)?;
        let domain = agent.domains().get(p.domain)?;
        let leaf = domain.volume(p.image, p.volume);
        if !leaf.exists() {
            return Ok(()); // merged by an earlier run
        }
        let l = leaf.clone();
        let parent = blocking(move || merge_parent(&l)).await?;
        commit_leaf(&ctx, &agent, &entry, p.image, leaf, parent, None).await
    }
}

/// The parent of a merge's leaf: on the same domain (finalize has run).
fn merge_parent(leaf: &Volume) -> Result<Volume> {
    let md = leaf.metadata()?;
    let parent = md.parent.ok_or_else(|| {
        Error::Conflict(format!("volume {} has no parent to merge into", leaf.id()))
    })?;
    if md.parent_domain.is_some() {
        return Err(Error::Conflict(format!(
            "volume {} still reads its parent from another domain; run finalizeBlockMigrate before merging",
            leaf.id()
        )));
    }
    Ok(leaf.domain().volume(leaf.image(), parent))
}

/// The rollback task (`POST /v1/tasks/{id}/rollback-block-migrate`).
#[derive(Debug)]
pub(crate) struct RollbackVerb;

impl TaskVerb for RollbackVerb {
    const NAME: &'static str = "rollback-block-migrate";
    const SPM_ONLY: bool = false;
    type Params = RollbackBlockMigrate;

    async fn check(agent: Arc<AgentState>, p: RollbackBlockMigrate) -> Result<()> {
        agent.vms().get(p.vm)?;
        agent.domains().get(p.src_domain)?;
        let dst = agent.domains().get(p.dst_domain)?;
        let leaf = dst.volume(p.image, p.volume);
        if leaf.exists() {
            let domains = agent.domains().set();
            blocking(move || rollback_parent(&domains, &leaf, p.src_domain).map(|_| ())).await?;
        }
        Ok(())
    }

    async fn run(ctx: TaskContext, p: RollbackBlockMigrate) -> Result<()> {
        let agent = ctx.agent().clone();
        let entry = agent.vms().get(p.vm)?;
        let dst = agent.domains().get(p.dst_domain)?;
        let leaf = dst.volume(p.image, p.volume);
        if !leaf.exists() {
            // Rolled back by an earlier run; make sure the definition
            // points at the source again.
            return agent
                .vms()
                .set_disk_domains(&entry, [(p.image, p.src_domain)]);
        }
        let domains = agent.domains().set();
        let l = leaf.clone();
        let parent = blocking(move || rollback_parent(&domains, &l, p.src_domain)).await?;
        commit_leaf(
            &ctx,
            &agent,
            &entry,
            p.image,
            leaf,
            parent,
            Some(HoldPoint::RollbackCommit),
        )
        .await
    }
}

/// The parent of a rollback's leaf: the old leaf on the source domain.
fn rollback_parent(domains: &ferry_storage::DomainSet, leaf: &Volume, src: Uuid) -> Result<Volume> {
    let md = leaf.metadata()?;
    match (md.parent, md.parent_domain) {
        (Some(parent), Some(d)) if d == src => {
            let domain = domains.get(src).ok_or_else(|| {
                Error::NotFound(format!("storage domain {src} is not connected to this host"))
            })?;
            Ok(domain.volume(leaf.image(), parent))
        }
        _ => Err(Error::Conflict(format!(
            "volume {} is not a cross-domain leaf over domain {src}; finalizeBlockMigrate may already have run, so the move can no longer be rolled back",
            leaf.id()
        ))),
    }
}

/// Folds `leaf` into `parent` and leaves the disk on `parent`: QEMU's
/// active commit and pivot when the VM runs, `qemu-img commit` when not;
/// then `leaf` is closed and deleted and `parent` is the leaf again. Safe
/// to run again at any point: a commit job already running in QEMU (the
/// agent restarted) is waited for rather than started twice.
async fn commit_leaf(
    ctx: &TaskContext,
    agent: &AgentState,
    entry: &Arc<VmEntry>,
    image: Uuid,
    leaf: Volume,
    parent: Volume,
    hold: Option<HoldPoint>,
) -> Result<()> {
    let _ops = entry.ops.lock().await;
    let leaf_layer = layer_of(&leaf)?;
    let parent_layer = layer_of(&parent)?;
    if let Some(vm) = entry.running() {
        if let Some(point) = hold {
            crate::test_hooks::hold_while_running(point, &vm).await;
        }
        let qmp = vm.qmp();
        let active = block::active_node(qmp, &device_id(image)).await?;
        if active == leaf_layer.nodes.format {
            let job = format!("commit-{}", &leaf.id().simple().to_string()[..12]);
            let progress = report_progress(ctx.clone(), vm.clone(), job.clone());
            let outcome = block::commit_active_then(
                qmp,
                &job,
                &leaf_layer.nodes.format,
                &parent_layer.nodes.format,
                write_back(parent.path()),
            )
            .await;
            progress.abort();
            outcome?;
        } else if active != parent_layer.nodes.format {
            return Err(Error::Conflict(format!(
                "disk {image} is writing to neither volume {} nor its parent {} (active node {active})",
                leaf.id(),
                parent.id()
            )));
        }
        block::del_layer(qmp, &leaf_layer).await?;
    } else {
        let l = leaf.clone();
        blocking(move || qemu_img::commit(&l.path()).map_err(Error::from)).await?;
    }

    let parent_domain = parent.domain().uuid();
    blocking(move || {
        parent.update_metadata(|m| m.role = VolumeRole::Leaf)?;
        // The parent is the leaf again before the old leaf goes, so a
        // crash in between leaves a chain that still opens.
        match leaf.delete() {
            Ok(()) => Ok(()),
            Err(ferry_storage::Error::VolumeNotFound { .. }) => Ok(()),
            Err(e) => Err(Error::from(e)),
        }
    })
    .await?;
    agent
        .vms()
        .set_disk_domains(entry, [(image, parent_domain)])
}

/// Copies the commit job's progress into the task's, twice a second.
fn report_progress(ctx: TaskContext, vm: Arc<Vm>, job: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(Some(info)) = jobs::get(vm.qmp(), &job).await {
                ctx.set_progress(info.offset, info.len);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// Writes back what the commit wrote into the parent's file, before the
/// pivot: QEMU flushes the parent while the guest's I/O is drained for the
/// pivot, and that flush then finds little to do. Best effort: a failure
/// only loses the quiet (QEMU's own flush still makes the data durable).
async fn write_back(parent: std::path::PathBuf) {
    let synced = blocking(move || {
        std::fs::File::open(&parent)
            .and_then(|f| f.sync_data())
            .map_err(|e| Error::Internal(format!("cannot flush {}: {e}", parent.display())))
    })
    .await;
    if let Err(e) = synced {
        tracing::warn!("before the merge's pivot: {e}");
    }
}
