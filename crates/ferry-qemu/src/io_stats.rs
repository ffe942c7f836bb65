//! The guest's own I/O as QEMU counts it (`query-blockstats`): how many
//! requests each disk device served and the time they took, cumulative
//! since QEMU started. Two readings give the guest's latency over the time
//! between them, which is what a move's copy is paced by.

use serde_json::Value;

use crate::error::Result;
use crate::qmp::Qmp;

/// Cumulative request counts and times of one VM's disks, summed over its
/// devices (a move paces by the whole VM's experience).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoTotals {
    /// Reads served.
    pub rd_operations: u64,
    /// Time reads took, in nanoseconds.
    pub rd_total_time_ns: u64,
    /// Writes served.
    pub wr_operations: u64,
    /// Time writes took, in nanoseconds.
    pub wr_total_time_ns: u64,
    /// Flushes served (a guest's `fdatasync`).
    pub flush_operations: u64,
    /// Time flushes took, in nanoseconds.
    pub flush_total_time_ns: u64,
}

/// Reads the totals of every disk device the guest has (entries without a
/// device, such as nodes of a running job, are not the guest's I/O).
pub async fn io_totals(qmp: &Qmp) -> Result<IoTotals> {
    let stats = qmp.execute("query-blockstats", Value::Null).await?;
    let mut t = IoTotals::default();
    for entry in stats.as_array().into_iter().flatten() {
        let is_device = entry
            .get("qdev")
            .and_then(Value::as_str)
            .is_some_and(|q| !q.is_empty());
        if !is_device {
            continue;
        }
        let Some(s) = entry.get("stats") else {
            continue;
        };
        let n = |key: &str| s.get(key).and_then(Value::as_u64).unwrap_or(0);
        t.rd_operations += n("rd_operations");
        t.rd_total_time_ns += n("rd_total_time_ns");
        t.wr_operations += n("wr_operations");
        t.wr_total_time_ns += n("wr_total_time_ns");
        t.flush_operations += n("flush_operations");
        t.flush_total_time_ns += n("flush_total_time_ns");
    }
    Ok(t)
}
