//! The guest's own I/O as QEMU counts it (`query-blockstats`): how many
//! requests each disk device served and the time they took, cumulative
//! since QEMU started. Two readings give the guest's latency over the time
//! between them, which is what a move's copy is paced by.

use ferry_api::vm::VmIo;
use serde_json::Value;

use crate::error::Result;
use crate::qmp::Qmp;

/// Reads the guest's cumulative request counts and times, summed over
/// every disk device it has (entries without a device, such as nodes of
/// a running job, are not the guest's I/O): a move paces by the whole
/// VM's experience.
pub async fn io_totals(qmp: &Qmp) -> Result<VmIo> {
    let stats = qmp.execute("query-blockstats", Value::Null).await?;
    let mut t = VmIo::default();
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
