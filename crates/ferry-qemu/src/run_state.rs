//! Whether the guest runs, and why not: QEMU pauses a VM whose disk write
//! failed (Ferry attaches disks with `werror=stop,rerror=stop`, as oVirt
//! does, so a full or failing storage never shows the guest an I/O error;
//! the request is kept and retried on `cont`). The agent reports such a
//! pause and resumes the VM once its disk can take writes again.

use std::path::PathBuf;

use serde_json::Value;

use crate::error::Result;
use crate::qmp::Qmp;

/// QEMU's run state, decoded leniently (`query-status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// The guest runs.
    Running,
    /// Paused because a disk request failed (`io-error`).
    IoError,
    /// Paused for another reason (QEMU's name for it: `paused`,
    /// `prelaunch`, `suspended`, ...).
    Paused(String),
}

/// Asks QEMU for its run state.
pub async fn run_state(qmp: &Qmp) -> Result<RunState> {
    let status = qmp.execute("query-status", Value::Null).await?;
    let name = status
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let running = status
        .get("running")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(match name {
        _ if running => RunState::Running,
        "io-error" => RunState::IoError,
        other => RunState::Paused(other.to_string()),
    })
}

/// What a device's last failed request ran into (`io-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStatus {
    /// Its storage is full.
    NoSpace,
    /// Any other I/O error.
    Failed,
}

/// A disk device whose requests are failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIoError {
    /// The device's qdev path (`/machine/peripheral/<id>/…`).
    pub qdev: String,
    /// What its requests ran into.
    pub status: IoStatus,
    /// The file the device writes to now (the top of its chain).
    pub file: Option<PathBuf>,
}

/// The devices whose last request failed (their `io-status` is not `ok`).
pub async fn io_errors(qmp: &Qmp) -> Result<Vec<DeviceIoError>> {
    let block = qmp.execute("query-block", Value::Null).await?;
    Ok(block
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let status = match d.get("io-status").and_then(Value::as_str)? {
                "nospace" => IoStatus::NoSpace,
                "failed" => IoStatus::Failed,
                _ => return None,
            };
            Some(DeviceIoError {
                qdev: d
                    .get("qdev")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                status,
                file: d
                    .get("inserted")
                    .and_then(|i| i.get("file"))
                    .and_then(Value::as_str)
                    .and_then(active_file),
            })
        })
        .collect())
}

/// The file a device writes to, from `query-block`'s `file`: a plain
/// path, or (a node opened with its backing given, as Ferry opens every
/// chain) QEMU's `json:{…}` description of the node, whose top-level
/// `file.filename` is the active layer's file.
fn active_file(file: &str) -> Option<PathBuf> {
    let Some(json) = file.strip_prefix("json:") else {
        return Some(PathBuf::from(file));
    };
    let node: Value = serde_json::from_str(json).ok()?;
    node.get("file")
        .and_then(|f| f.get("filename"))
        .and_then(Value::as_str)
        .map(PathBuf::from)
}

/// Resumes the guest (`cont`); the requests that failed are submitted
/// again.
pub async fn resume(qmp: &Qmp) -> Result<()> {
    qmp.execute("cont", Value::Null).await.map(|_| ())
}

/// The ids of the block jobs QEMU has (running or concluded, not yet
/// dismissed): after a move there should be none.
pub async fn block_job_ids(qmp: &Qmp) -> Result<Vec<String>> {
    let jobs = qmp.execute("query-jobs", Value::Null).await?;
    Ok(jobs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j.get("id").and_then(Value::as_str).map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_file_is_read_from_a_plain_path_or_a_json_description() {
        assert_eq!(active_file("/d/v"), Some(PathBuf::from("/d/v")));
        let json = r#"json:{"backing": {"driver": "raw", "file": {"driver": "file", "filename": "/d/base"}}, "driver": "qcow2", "file": {"driver": "file", "filename": "/d/top"}}"#;
        assert_eq!(active_file(json), Some(PathBuf::from("/d/top")));
        assert_eq!(active_file("json:{not json"), None);
    }
}
