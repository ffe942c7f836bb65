//! A VM that QEMU paused on a failed disk request: reported with its
//! reason, and resumed by the agent once its disk can take writes again.
//!
//! Disks are attached with `werror=stop,rerror=stop`, so a full or failing
//! storage pauses the guest instead of failing its request; QEMU keeps the
//! request and submits it again on `cont`, so no acknowledged write is
//! lost and none is acknowledged before it is on disk. A pause for no
//! space ends as soon as the file the disk writes to now (after a move's
//! rollback that is the source again) has room; a pause for another I/O
//! error is retried with growing pauses, as oVirt resumes VMs once their
//! storage is back.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::vm::{PauseCause, VmPause};
use ferry_qemu::run_state::{self, DeviceIoError, IoStatus, RunState};
use ferry_qemu::Vm;

/// The room a disk's file needs before a VM paused because it was full is
/// resumed: a little more than a few guest writes, so a resume is not
/// followed at once by the next pause.
const ROOM_TO_RESUME: u64 = 16 << 20;

/// How often a paused VM is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// The longest pause between two tries to resume a VM whose storage
/// failed.
const RETRY_IO_AT_MOST: Duration = Duration::from_secs(60);

/// Why `vm`'s guest is paused, or `None` while it runs (or when QEMU does
/// not answer: its status says nothing then).
pub(crate) async fn pause_of(vm: &Vm) -> Option<VmPause> {
    match run_state::run_state(vm.qmp()).await.ok()? {
        RunState::Running => None,
        RunState::IoError => {
            let errors = run_state::io_errors(vm.qmp()).await.unwrap_or_default();
            let cause = if errors.iter().any(|e| e.status == IoStatus::NoSpace) {
                PauseCause::NoSpace
            } else {
                PauseCause::IoError
            };
            Some(VmPause {
                cause,
                detail: describe(&errors),
            })
        }
        RunState::Paused(state) => Some(VmPause {
            cause: PauseCause::Other,
            detail: format!("QEMU reports the VM {state}"),
        }),
    }
}

/// The failing devices as a sentence.
fn describe(errors: &[DeviceIoError]) -> String {
    if errors.is_empty() {
        return "paused on an I/O error".into();
    }
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let what = match e.status {
                IoStatus::NoSpace => "no space left",
                IoStatus::Failed => "an I/O error",
            };
            let file = e
                .file
                .as_deref()
                .map_or_else(String::new, |f| format!(" on {}", f.display()));
            format!("{what}{file}")
        })
        .collect();
    format!(
        "paused: {}; it resumes by itself once the disk can take writes again",
        parts.join(", ")
    )
}

/// Watches `vm` for the rest of its life: whenever QEMU has paused it on
/// an I/O error, resumes it once its disks can take writes again.
pub(crate) fn keep_resuming(vm: Arc<Vm>) {
    tokio::spawn(async move {
        let mut events = vm.qmp().events();
        let mut tries = 0u32;
        let mut next_io_retry = tokio::time::Instant::now();
        loop {
            if !vm.is_alive() || vm.qmp().is_closed() {
                return;
            }
            let paused = matches!(run_state::run_state(vm.qmp()).await, Ok(RunState::IoError));
            if !paused {
                tries = 0;
                // Sleep until QEMU says something (a BLOCK_IO_ERROR, a
                // STOP), or look again in a while anyway.
                tokio::select! {
                    () = vm.exited() => return,
                    _ = events.recv() => {}
                    () = tokio::time::sleep(LOOK_EVERY * 20) => {}
                }
                continue;
            }
            let errors = run_state::io_errors(vm.qmp()).await.unwrap_or_default();
            let ready = if errors.iter().all(|e| e.status == IoStatus::NoSpace) {
                errors
                    .iter()
                    .all(|e| e.file.as_deref().is_some_and(has_room))
            } else {
                tokio::time::Instant::now() >= next_io_retry
            };
            if ready {
                tries = tries.saturating_add(1);
                tracing::info!(
                    vm = vm.name(),
                    tries,
                    "resuming the VM: its disks can take writes again"
                );
                if let Err(e) = run_state::resume(vm.qmp()).await {
                    tracing::warn!(vm = vm.name(), "cannot resume the VM: {e}");
                }
                let wait = LOOK_EVERY
                    .saturating_mul(1u32 << tries.min(7))
                    .min(RETRY_IO_AT_MOST);
                next_io_retry = tokio::time::Instant::now() + wait;
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    });
}

/// Whether the filesystem holding `file` has room to resume writing.
fn has_room(file: &Path) -> bool {
    let dir = file.parent().unwrap_or(file);
    rustix::fs::statvfs(dir)
        .is_ok_and(|st| st.f_bavail.saturating_mul(st.f_frsize) >= ROOM_TO_RESUME)
}
