//! The block-graph operations of a live disk move, each one QMP exchange
//! (or a short, undoable sequence of them):
//!
//! - [`snapshot`]: switch the active layer of one or more disks onto new
//!   overlays at once (`blockMigrate`);
//! - [`add_chain`], [`reopen_backing`], [`set_backing_file`]: put a leaf on
//!   another copy of its backing chain and rewrite its header
//!   (`finalizeBlockMigrate`);
//! - [`commit_active`]: fold the active layer into its parent and pivot
//!   (merge, and the rollback of `blockMigrate`);
//! - [`mirror`]: copy a whole disk to a target and pivot (the Proxmox way,
//!   for comparison and single-volume disks).

use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::jobs::{self, JobStatus};
use crate::node::Layer;
use crate::qmp::Qmp;

/// How long a block job may run. Generous: a commit or mirror copies data.
const JOB_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// The backing link of every node that has one, as (node, backing node):
/// QEMU's own view of each disk's chain. `query-named-block-nodes` names a
/// backing only by file name, so this reads the graph's edges.
pub async fn backing_links(qmp: &Qmp) -> Result<Vec<(String, String)>> {
    let graph = qmp
        .execute("x-debug-query-block-graph", Value::Null)
        .await?;
    let mut names = std::collections::HashMap::new();
    for node in graph["nodes"].as_array().into_iter().flatten() {
        if let (Some(id), Some(name)) = (node["id"].as_u64(), node["name"].as_str()) {
            names.insert(id, name.to_string());
        }
    }
    let mut links = Vec::new();
    for edge in graph["edges"].as_array().into_iter().flatten() {
        if edge["name"].as_str() != Some("backing") {
            continue;
        }
        let parent = edge["parent"].as_u64().and_then(|id| names.get(&id));
        let child = edge["child"].as_u64().and_then(|id| names.get(&id));
        if let (Some(parent), Some(child)) = (parent, child) {
            links.push((parent.clone(), child.clone()));
        }
    }
    Ok(links)
}

/// Names of every node QEMU has open.
pub async fn node_names(qmp: &Qmp) -> Result<Vec<String>> {
    let reply = qmp
        .execute("query-named-block-nodes", json!({ "flat": true }))
        .await?;
    Ok(reply
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["node-name"].as_str().map(str::to_string))
        .collect())
}

/// The format node a device writes to now (the top of its chain), found
/// by the device id given at start.
pub async fn active_node(qmp: &Qmp, device: &str) -> Result<String> {
    let block = qmp.execute("query-block", Value::Null).await?;
    let wanted = format!("/machine/peripheral/{device}/");
    block
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| {
            d.get("qdev")
                .and_then(Value::as_str)
                .is_some_and(|q| q.starts_with(&wanted) || q == device)
        })
        .and_then(|d| d.get("inserted"))
        .and_then(|i| i.get("node-name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            Error::InvalidRequest(format!("the VM has no disk device {device} with a medium"))
        })
}

/// The backing chain under a node, top first, by node name: the VM's view
/// of a disk, used to decide whether a step already happened.
pub async fn chain_of(qmp: &Qmp, top: &str) -> Result<Vec<String>> {
    let links = backing_links(qmp).await?;
    let mut chain = vec![top.to_string()];
    let mut current = top.to_string();
    while let Some(next) = links
        .iter()
        .find(|(node, _)| *node == current)
        .map(|(_, backing)| backing.clone())
    {
        if chain.contains(&next) {
            break;
        }
        chain.push(next.clone());
        current = next;
    }
    Ok(chain)
}

/// Opens a layer (file node, then format node) on top of `backing`, or
/// with no backing at all. If the format node fails, the file node is
/// removed again, so a failure leaves the graph as it was.
pub async fn add_layer(qmp: &Qmp, layer: &Layer, backing: Option<&str>) -> Result<()> {
    qmp.execute("blockdev-add", layer.file_options()).await?;
    if let Err(e) = qmp
        .execute("blockdev-add", layer.format_options(backing))
        .await
    {
        let _ = qmp
            .execute("blockdev-del", json!({ "node-name": layer.nodes.file }))
            .await;
        return Err(e);
    }
    Ok(())
}

/// Closes a layer opened by [`add_layer`] or on QEMU's command line: the
/// format node, then its file node. Nodes that are already gone are fine.
pub async fn del_layer(qmp: &Qmp, layer: &Layer) -> Result<()> {
    for node in [&layer.nodes.format, &layer.nodes.file] {
        match qmp
            .execute("blockdev-del", json!({ "node-name": node }))
            .await
        {
            Ok(_) => {}
            Err(Error::Command { desc, .. }) if desc.contains("Failed to find node") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens a whole chain, base first, each layer backed by the previous;
/// returns nothing on failure but removes what it opened.
pub async fn add_chain(qmp: &Qmp, chain: &[Layer]) -> Result<()> {
    let mut backing: Option<&str> = None;
    for (i, layer) in chain.iter().enumerate() {
        if let Err(e) = add_layer(qmp, layer, backing).await {
            for added in chain[..i].iter().rev() {
                let _ = del_layer(qmp, added).await;
            }
            return Err(e);
        }
        backing = Some(&layer.nodes.format);
    }
    Ok(())
}

/// Closes a chain opened by [`add_chain`], top first.
pub async fn del_chain(qmp: &Qmp, chain: &[Layer]) -> Result<()> {
    for layer in chain.iter().rev() {
        del_layer(qmp, layer).await?;
    }
    Ok(())
}

/// One disk's switch onto a new overlay.
#[derive(Debug, Clone)]
pub struct SnapshotTarget {
    /// The format node the disk writes to now.
    pub active: String,
    /// The new volume, already created with the active volume as parent.
    pub overlay: Layer,
}

/// Live snapshot of one or more disks at once: opens every overlay, then
/// switches all disks in one `transaction`, so they stay consistent with
/// each other (the seed's single `blockMigrate` call for all drives). On
/// failure nothing is switched and the overlays are closed again.
pub async fn snapshot(qmp: &Qmp, targets: &[SnapshotTarget]) -> Result<()> {
    for (i, t) in targets.iter().enumerate() {
        if let Err(e) = add_layer(qmp, &t.overlay, None).await {
            for added in targets[..i].iter().rev() {
                let _ = del_layer(qmp, &added.overlay).await;
            }
            return Err(e);
        }
    }
    let actions: Vec<Value> = targets
        .iter()
        .map(|t| {
            json!({
                "type": "blockdev-snapshot",
                "data": { "node": t.active, "overlay": t.overlay.nodes.format },
            })
        })
        .collect();
    if let Err(e) = qmp
        .execute("transaction", json!({ "actions": actions }))
        .await
    {
        for t in targets.iter().rev() {
            let _ = del_layer(qmp, &t.overlay).await;
        }
        return Err(e);
    }
    Ok(())
}

/// Puts `layer` (an open qcow2 node) on a new backing node. The header is
/// not touched: follow with [`set_backing_file`].
pub async fn reopen_backing(qmp: &Qmp, layer: &Layer, new_backing: &str) -> Result<()> {
    // blockdev-reopen takes the node's full option set; Ferry's layers have
    // no options beyond those of Layer::format_options.
    qmp.execute(
        "blockdev-reopen",
        json!({ "options": [layer.format_options(Some(new_backing))] }),
    )
    .await?;
    Ok(())
}

/// Rewrites the backing file name in an open qcow2 node's header (the
/// relative name VDSM writes), so the image opens the same way after a
/// restart. `root` is the top node of the device that owns `node` (the
/// node itself when it is the active one). Writing the same name again is
/// harmless, so a retried step may call it again.
pub async fn set_backing_file(qmp: &Qmp, root: &str, node: &str, name: &str) -> Result<()> {
    qmp.execute(
        "change-backing-file",
        json!({
            "device": root,
            "image-node-name": node,
            "backing-file": name,
        }),
    )
    .await?;
    Ok(())
}

/// Active commit: copies the active layer `top` into its backing node
/// `base`, then pivots the device onto `base`. Returns once the device
/// writes to `base`; `top` is then out of the chain (close it with
/// [`del_layer`]). A job of that id still running (the caller restarted)
/// is waited for, not started twice; one that concluded without being
/// dismissed (an earlier attempt failed, or its caller died before the
/// dismiss) is dismissed and the commit started afresh, so a merge can
/// always be run again once its cause is fixed.
pub async fn commit_active(qmp: &Qmp, job: &str, top: &str, base: &str) -> Result<()> {
    commit_active_then(qmp, job, top, base, async {}).await
}

/// [`commit_active`], running `before_pivot` once the job is ready and
/// before it is completed: the moment to write back what the commit wrote
/// into `base`, so the flush QEMU makes while the device is drained for
/// the pivot finds little to do.
pub async fn commit_active_then(
    qmp: &Qmp,
    job: &str,
    top: &str,
    base: &str,
    before_pivot: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let existing = jobs::get(qmp, job).await?;
    if let Some(old) = &existing {
        if old.status == JobStatus::Concluded {
            tracing::info!(job, error = ?old.error, "dismissing an earlier attempt's concluded job");
            jobs::dismiss(qmp, job).await?;
        }
    }
    let running = existing.is_some_and(|old| old.status != JobStatus::Concluded);
    if !running {
        qmp.execute(
            "block-commit",
            json!({
                "job-id": job,
                "device": top,
                "base-node": base,
                "auto-dismiss": false,
            }),
        )
        .await?;
    }
    let info = ready(qmp, job).await?;
    before_pivot.await;
    pivot(qmp, job, &info).await
}

/// Options of a mirror started by [`mirror`].
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// Bytes per second, 0 for no limit.
    pub speed: u64,
}

/// Starts a full mirror of `device`'s active node into `target` (already
/// opened, with no backing): `sync=full`, `copy-mode=write-blocking`, which
/// always converges, unlike `background` under a heavy writer. Follow with
/// [`pivot_when_ready`] or [`jobs::cancel`].
pub async fn mirror(
    qmp: &Qmp,
    job: &str,
    active: &str,
    target: &str,
    options: &MirrorOptions,
) -> Result<()> {
    qmp.execute(
        "blockdev-mirror",
        json!({
            "job-id": job,
            "device": active,
            "target": target,
            "sync": "full",
            "copy-mode": "write-blocking",
            "speed": options.speed,
            "auto-dismiss": false,
        }),
    )
    .await?;
    Ok(())
}

/// Waits for a commit or mirror job to become ready, completes it (the
/// pivot) and waits for it to end.
pub async fn pivot_when_ready(qmp: &Qmp, job: &str) -> Result<()> {
    let info = ready(qmp, job).await?;
    pivot(qmp, job, &info).await
}

/// Waits for `job` to become ready (or to conclude); a job that failed is
/// dismissed at once, as it would otherwise answer every later attempt of
/// the same id with its failure.
async fn ready(qmp: &Qmp, job: &str) -> Result<jobs::JobInfo> {
    match jobs::wait_for(qmp, job, JobStatus::Ready, JOB_LIMIT).await {
        Ok(info) => Ok(info),
        Err(e) => {
            dismiss_if_concluded(qmp, job).await;
            Err(e)
        }
    }
}

/// Completes a ready job (the pivot) and waits for it to end.
async fn pivot(qmp: &Qmp, job: &str, info: &jobs::JobInfo) -> Result<()> {
    if info.status == JobStatus::Ready {
        jobs::complete(qmp, job).await?;
    }
    jobs::finish(qmp, job, JOB_LIMIT).await
}

/// Dismisses `job` if QEMU holds it concluded; errors are only logged (the
/// caller is already reporting the job's own failure).
async fn dismiss_if_concluded(qmp: &Qmp, job: &str) {
    if let Ok(Some(info)) = jobs::get(qmp, job).await {
        if info.status == JobStatus::Concluded {
            if let Err(e) = jobs::dismiss(qmp, job).await {
                tracing::warn!(job, "cannot dismiss a failed job: {e}");
            }
        }
    }
}

/// Cancels a job and waits for it to end. Cancelling a ready mirror leaves
/// the VM on its source.
pub async fn cancel_job(qmp: &Qmp, job: &str) -> Result<()> {
    if jobs::get(qmp, job).await?.is_none() {
        return Ok(());
    }
    jobs::cancel(qmp, job).await?;
    match jobs::finish(qmp, job, JOB_LIMIT).await {
        // A cancelled job reports "operation canceled": that is success.
        Ok(()) | Err(Error::JobFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
