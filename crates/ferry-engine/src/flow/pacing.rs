//! Applying the guest-aware pacing ([`super::pace`]) to a live move's
//! copies: reading the guest's I/O on the VM's host, and setting the
//! copies' limit on the SPM (two hosts or one: the engine carries the
//! loop). Best effort throughout: a reading or a setting that fails leaves
//! the copy at its last limit, and the next poll tries again.

use std::time::{Duration, Instant};

use ferry_agent_client::AgentClient;
use ferry_api::agent::{CopyIo, PaceTask};
use ferry_api::engine::{MoveMode, PaceMode};

use super::job::JobCtx;
use super::pace::{watched_enough, Pacer, START_BPS, WATCH_AT_MOST};
use super::tasks::Watched;

/// The longest a hold (which flushes the copy's writes) may delay a
/// switch.
const HOLD_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the guest is read while it is watched before its copy.
const WATCH_POLL: Duration = Duration::from_millis(50);

/// Whether the job's copies are paced by its guest: a live move (not
/// turned cold) whose pace is [`PaceMode::Guest`].
pub fn guest_paced(job: &JobCtx) -> bool {
    job.plan.pace == PaceMode::Guest && live_with_guest(job)
}

/// A live move (not turned cold) of a VM's disks: a guest shares them.
fn live_with_guest(job: &JobCtx) -> bool {
    job.row.mode == MoveMode::Live && !job.plan.turned_cold && job.plan.vm.is_some()
}

/// How the job's copies move their data ([`CopyIo`]): a copy that shares
/// its disks and host with a running guest (a live move, not turned cold,
/// of a VM) keeps off the host's page cache and CPU and leaves the guest
/// no writeback to wait behind (`O_DIRECT`), in small requests that the
/// guest's get in between unless told to go as fast as the disks go
/// (`pace: fixed` with no bandwidth limit); a copy with the disks to
/// itself goes through the page cache, the fastest with the CPU free.
pub fn copy_io(job: &JobCtx) -> CopyIo {
    io_for(live_with_guest(job), job.plan.pace, job.row.bandwidth_mib_s)
}

/// [`copy_io`]'s rule, on what it reads of the job.
fn io_for(guest_shares_disks: bool, pace: PaceMode, bandwidth_mib_s: Option<u64>) -> CopyIo {
    let flat_out = pace == PaceMode::Fixed && bandwidth_mib_s.is_none();
    match (guest_shares_disks, flat_out) {
        (false, _) => CopyIo::Buffered,
        (true, false) => CopyIo::Direct,
        (true, true) => CopyIo::DirectWhole,
    }
}

/// The limit a new copy of the job starts with, bytes per second, for one
/// of `parallel` copies at once: the pacer's limit (or where it starts)
/// when guest-paced, else the job's bandwidth.
pub fn initial_limit(job: &JobCtx, parallel: usize) -> Option<u64> {
    let ceiling = ceiling(job);
    let whole = if guest_paced(job) {
        Some(
            job.pacer
                .as_ref()
                .map_or(Some(START_BPS), Pacer::limit)
                .unwrap_or(u64::MAX)
                .min(ceiling.unwrap_or(u64::MAX)),
        )
    } else {
        ceiling
    };
    whole.filter(|&w| w != u64::MAX).map(|w| share(w, parallel))
}

/// One copy's share of a limit over `parallel` copies.
fn share(limit: u64, parallel: usize) -> u64 {
    (limit / u64::try_from(parallel.max(1)).unwrap_or(1)).max(1)
}

/// Reads the guest's I/O, lets the pacer decide, and sends the new limit
/// (shared evenly) to the `running` copies when it changed.
pub async fn pace(job: &mut JobCtx, running: &[&Watched]) {
    if running.is_empty() {
        return;
    }
    let Some((host, vm)) = guest_host(job).await else {
        return;
    };
    let Ok(io) = host.vm_io(vm).await else {
        return;
    };
    let fresh = new_pacer(job);
    let pacer = job.pacer.get_or_insert(fresh);
    let limit = pacer.observe(io, Instant::now());
    let (view, loss) = (pacer.view(), pacer.loss());
    tracing::debug!(
        job = %job.id(),
        limit_bps = ?limit,
        latency_us = ?view.latency_us,
        baseline_us = ?view.baseline_us,
        guest_loss = ?loss,
        "paced the copy by the guest"
    );
    job.engine.set_pace(job.id(), Some(view));
    if job.paced == Some(limit) {
        return;
    }
    let each = limit.map(|l| share(l, running.len()));
    let mut all = true;
    for w in running {
        all &= send(&w.agent, w.task, each, false).await;
    }
    if all {
        job.paced = Some(limit);
    }
}

/// The host of a guest-paced job's VM, and the VM; `None` for a job not
/// paced by its guest, or whose VM's host is not known now.
async fn guest_host(job: &JobCtx) -> Option<(AgentClient, uuid::Uuid)> {
    let vm = job.plan.vm.filter(|_| guest_paced(job))?;
    Some((job.vm_host().await.ok()?, vm))
}

/// A pacer for the job: under its bandwidth, keeping its guest's share.
fn new_pacer(job: &JobCtx) -> Pacer {
    Pacer::new(ceiling(job), job.plan.guest_share_pct)
}

/// The job's bandwidth, in bytes per second: the most its copies may go.
fn ceiling(job: &JobCtx) -> Option<u64> {
    job.row.bandwidth_mib_s.map(|m| m.saturating_mul(1 << 20))
}

/// Watches the guest of a guest-paced move before its copy begins (from a
/// fifth to half a second, [`super::pace::watched_enough`]), so the pacer
/// knows the guest's latency and CPU wait without the copy rather than
/// its life's averages. Before, not after `blockMigrate`: the guest's
/// first writes to its new leaves allocate their clusters, which read
/// half as slow again as its steady writes there (docs/engine.md, run
/// 12), and would hide the copy's cost for the whole move. Best effort: a
/// host that does not answer leaves the pacer to start from its first
/// reading under the copy, as a job resumed by a restarted engine does;
/// and a job whose copy has begun already (an engine restarted in
/// `createVolumeCrossSD`) is not watched, for the copy would be in the
/// baseline.
pub async fn watch_before_copy(job: &mut JobCtx) {
    if !guest_paced(job) || job.pacer.is_some() || copy_begun(job).await {
        return;
    }
    let Some((host, vm)) = guest_host(job).await else {
        return;
    };
    let host = host.with_timeout(WATCH_AT_MOST);
    let Ok(before) = host.vm_io(vm).await else {
        return;
    };
    let began = Instant::now();
    loop {
        tokio::time::sleep(WATCH_POLL).await;
        let Ok(now) = host.vm_io(vm).await else {
            return;
        };
        if watched_enough(&before, &now, began.elapsed()) {
            let mut pacer = new_pacer(job);
            pacer.watched(before, now, Instant::now());
            tracing::debug!(
                job = %job.id(),
                watched_ms = began.elapsed().as_millis(),
                baseline_us = ?pacer.view().baseline_us,
                "watched the guest before its copy"
            );
            job.pacer = Some(pacer);
            return;
        }
    }
}

/// Starts the pacer's next interval after `blockMigrate` switched the VM
/// ([`Pacer::restart`]): the switch's pause and the copy's hold are not
/// the copy's rate's doing. Best effort, as every reading.
pub async fn restart_after_switch(job: &mut JobCtx) {
    let Some((host, vm)) = guest_host(job).await else {
        return;
    };
    let Ok(io) = host.with_timeout(WATCH_AT_MOST).vm_io(vm).await else {
        return;
    };
    let fresh = new_pacer(job);
    job.pacer.get_or_insert(fresh).restart(io, Instant::now());
}

/// Whether an early copy of the job is known to the SPM (best effort: an
/// SPM that does not answer counts as not, the watch is brief).
async fn copy_begun(job: &JobCtx) -> bool {
    let Ok((_, spm)) = job.engine.agents().spm().await else {
        return false;
    };
    let spm = spm.with_timeout(WATCH_AT_MOST);
    for task in job.plan.disks.iter().filter_map(|d| d.early_clone) {
        if spm.task(task).await.is_ok() {
            return true;
        }
    }
    false
}

/// Holds the job's early copies (`held`) or lets them go at their current
/// limit: the quiet moment around a switch, so the guest's own writes do
/// not queue behind the copy's while QEMU switches. Best effort and
/// brief: an SPM that is not known or does not answer within
/// [`HOLD_TIMEOUT`] is not waited for.
pub async fn hold(job: &JobCtx, held: bool) {
    let tasks: Vec<_> = job
        .plan
        .disks
        .iter()
        .filter_map(|d| d.early_clone)
        .collect();
    if tasks.is_empty() {
        return;
    }
    let Ok((_, spm)) = job.engine.agents().spm().await else {
        return;
    };
    let spm = spm.with_timeout(HOLD_TIMEOUT);
    let each = initial_limit(job, tasks.len());
    for task in tasks {
        send(&spm, task, each, held).await;
    }
}

/// Sends one copy its limit; whether the agent took it (a copy that has
/// ended, or not begun, is refused, which is as good).
async fn send(agent: &AgentClient, task: uuid::Uuid, limit: Option<u64>, held: bool) -> bool {
    match agent
        .pace_task(
            task,
            &PaceTask {
                limit_bps: limit,
                held,
            },
        )
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(%task, "cannot pace the copy: {}", e.message());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_that_shares_the_host_with_a_guest_goes_direct() {
        assert_eq!(io_for(true, PaceMode::Guest, None), CopyIo::Direct);
        assert_eq!(io_for(true, PaceMode::Guest, Some(100)), CopyIo::Direct);
        assert_eq!(io_for(true, PaceMode::Fixed, Some(100)), CopyIo::Direct);
        assert_eq!(
            io_for(true, PaceMode::Fixed, None),
            CopyIo::DirectWhole,
            "as fast as the disks go"
        );
        for pace in [PaceMode::Guest, PaceMode::Fixed] {
            for limit in [None, Some(100)] {
                assert_eq!(
                    io_for(false, pace, limit),
                    CopyIo::Buffered,
                    "no guest shares the disks"
                );
            }
        }
    }
}
