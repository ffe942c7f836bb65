//! The guest's own I/O as QEMU counts it (`query-blockstats`): how many
//! requests each disk device served and the time they took, cumulative
//! since QEMU started; and, from the host's kernel, how long its virtual
//! CPUs ran and waited for a host CPU (`/proc/<tid>/schedstat` of the
//! threads `query-cpus-fast` names). Two readings give the guest's latency
//! and its CPU wait over the time between them, which is what a move's
//! copy is paced by: a copy on the VM's own host takes CPU from the guest
//! as well as disk time.

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
    add_vcpu_times(qmp, &mut t).await?;
    Ok(t)
}

/// Adds the vCPU threads' run and wait times. A thread whose figures the
/// kernel does not give (no `schedstat`, a thread gone) leaves all three
/// at zero: the guest's CPU is then not weighed, rather than weighed from
/// part of it.
async fn add_vcpu_times(qmp: &Qmp, t: &mut VmIo) -> Result<()> {
    let cpus = qmp.execute("query-cpus-fast", Value::Null).await?;
    let threads: Vec<u64> = cpus
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("thread-id").and_then(Value::as_u64))
        .collect();
    let mut sum = (0u64, 0u64);
    for tid in &threads {
        let read = tokio::fs::read_to_string(format!("/proc/{tid}/schedstat")).await;
        let Some((run, wait)) = read.ok().as_deref().and_then(parse_schedstat) else {
            return Ok(());
        };
        sum = (sum.0.saturating_add(run), sum.1.saturating_add(wait));
    }
    t.vcpu_threads = u32::try_from(threads.len()).unwrap_or(0);
    (t.vcpu_run_ns, t.vcpu_wait_ns) = sum;
    Ok(())
}

/// A thread's `schedstat`: nanoseconds run on a CPU, nanoseconds waited
/// for one, time slices.
fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(run)), Some(Ok(wait))) => Some((run, wait)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_schedstat;

    #[test]
    fn schedstat_gives_run_and_wait_or_nothing() {
        assert_eq!(
            parse_schedstat("999529 193183 7\n"),
            Some((999_529, 193_183))
        );
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("12"), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }
}
