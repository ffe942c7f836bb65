//! Finishing, at engine start, the snapshots an engine that died left
//! running. Their disks stay locked until what the snapshot made is
//! known, because a new leaf that exists but that the running VM does not
//! write would make the next move copy a leaf that is still changing:
//!
//! - the new leaf was never made: nothing changed; the snapshot ends
//!   `interrupted`;
//! - it was made: the snapshot is carried to its end, the running VM
//!   switched onto it (`blockMigrate` is idempotent by the VM's active
//!   node), or nothing more to do if the VM is down (it opens the chain's
//!   top at its next start); it ends `succeeded`;
//! - the VM's host refuses the switch: the unused leaf is removed and the
//!   snapshot ends `failed`, the disk as it was.
//!
//! Whatever cannot be decided yet (an agent that does not answer) is
//! asked again after a pause, the disk locked meanwhile.

use std::sync::Arc;
use std::time::Duration;

use ferry_api::ErrorKind;
use uuid::Uuid;

use super::{onto_new_leaf, remove_unused, running_vm};
use crate::db::{OperationRow, OperationState};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::refresh::refresh_disk;

/// The longest pause between two attempts to settle a snapshot.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// How an interrupted snapshot ends, and the event that says so.
struct Settled {
    state: OperationState,
    message: String,
}

/// Starts settling every snapshot a previous engine left running, each
/// in a task of its own, so the engine serves meanwhile.
pub async fn resume_interrupted(engine: &Arc<Engine>) {
    match engine.db().unfinished_operations().await {
        Ok(ops) => {
            for op in ops {
                tracing::info!(operation = %op.id, disk = %op.disk, "finishing an interrupted snapshot");
                tokio::spawn(settle_until_done(engine.clone(), op));
            }
        }
        Err(e) => tracing::error!("cannot list unfinished operations: {}", e.full_text()),
    }
}

/// Settles `op`, trying again after a pause for as long as what it made
/// cannot be known, then ends it and releases its disk in one write.
async fn settle_until_done(engine: Arc<Engine>, op: OperationRow) {
    let mut attempt = 0u32;
    let settled = loop {
        match settle(&engine, &op).await {
            Ok(settled) => break settled,
            Err(e) => {
                attempt = attempt.saturating_add(1);
                tracing::warn!(
                    operation = %op.id,
                    attempt,
                    "cannot finish the interrupted snapshot yet; its disk stays locked: {}",
                    e.full_text()
                );
                tokio::time::sleep(pause(attempt)).await;
            }
        }
    };
    let error = (settled.state != OperationState::Succeeded).then_some(settled.message.as_str());
    loop {
        match engine.db().end_operation(op.id, settled.state, error).await {
            Ok(()) => break,
            Err(e) => {
                attempt = attempt.saturating_add(1);
                tracing::error!(operation = %op.id, "cannot record the snapshot's end: {}", e.full_text());
                tokio::time::sleep(pause(attempt)).await;
            }
        }
    }
    let _ = refresh_disk(&engine, op.disk).await;
    engine
        .events()
        .record("disk", settled.message, Some(op.disk))
        .await;
}

/// 0.5 s, doubling, at most [`MAX_PAUSE`].
fn pause(attempt: u32) -> Duration {
    Duration::from_millis(500u64 << attempt.min(5)).min(MAX_PAUSE)
}

/// Finds out what `op` made and carries it to an end; an error means it
/// cannot be known now (an agent does not answer, the database failed).
async fn settle(engine: &Engine, op: &OperationRow) -> Result<Settled> {
    let id = op.id;
    let Some(disk) = engine.db().disk(op.disk).await? else {
        return Ok(Settled {
            state: OperationState::Interrupted,
            message: format!(
                "snapshot {id} was interrupted by an engine restart, and its disk {} no longer exists",
                op.disk
            ),
        });
    };
    let name = &disk.name;
    let Some(volume) = op.volume else {
        return Ok(interrupted_before_made(id, name));
    };
    let (spm, client) = engine.agents().spm_host().await?;
    let volumes = client
        .image_volumes(disk.domain, disk.id)
        .await
        .map_err(Error::agent(&spm.name))?;
    if !volumes.iter().any(|v| v.volume == volume) {
        return Ok(interrupted_before_made(id, name));
    }
    let Some((vm, host, vm_client)) = running_vm(engine, disk.id).await? else {
        return Ok(Settled {
            state: OperationState::Succeeded,
            message: format!(
                "snapshot {id} of disk {name} finished after an engine restart (offline): new leaf {volume}"
            ),
        });
    };
    match vm_client.block_migrate(vm, &onto_new_leaf(&disk, volume)).await {
        Ok(_) => Ok(Settled {
            state: OperationState::Succeeded,
            message: format!(
                "snapshot {id} of disk {name} finished after an engine restart (live): new leaf {volume}"
            ),
        }),
        // Stopped since it was seen running: it opens the chain's top,
        // the new leaf, at its next start.
        Err(e) if e.kind() == ErrorKind::VmNotRunning => Ok(Settled {
            state: OperationState::Succeeded,
            message: format!(
                "snapshot {id} of disk {name} finished after an engine restart (offline): new leaf {volume}"
            ),
        }),
        Err(e) if e.kind() == ErrorKind::Unavailable => Err(Error::agent(host)(e)),
        Err(e) => {
            // The VM still writes the old leaf: the new one goes, and
            // until it has, the disk stays locked.
            if !remove_unused(&client, &disk, volume).await {
                return Err(Error::Conflict(format!(
                    "the VM's host refused to switch disk {name} onto the snapshot's leaf {volume} ({}), and the unused leaf cannot be removed yet",
                    e.message()
                )));
            }
            Ok(Settled {
                state: OperationState::Failed,
                message: format!(
                    "snapshot {id} of disk {name} failed after an engine restart: host {host} refused to switch the VM onto the new leaf ({}); the disk is as it was",
                    e.message()
                ),
            })
        }
    }
}

/// The end of a snapshot whose new leaf was never made.
fn interrupted_before_made(id: Uuid, disk: &str) -> Settled {
    Settled {
        state: OperationState::Interrupted,
        message: format!(
            "snapshot {id} of disk {disk} was interrupted by an engine restart before its new leaf was made; nothing changed, the lock is released"
        ),
    }
}
