//! The test guest's writer as the bench sees it: booted from
//! `scripts/build-guest`'s kernel, followed through its serial console.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ferry_api::engine::DirectBoot;
use ferry_testkit::guest::{max_stall, SerialLog, WriterConfig};

use super::{IDLE, POLL};

/// A TCG boot of the test guest takes seconds; this is for a loaded host.
const BOOT_LIMIT: Duration = Duration::from_secs(180);
/// Acks to wait for after boot before measuring, so the guest's start-up
/// is not in the idle rate.
const WARMUP_ACKS: usize = 20;

/// The guest's kernel and initramfs with `writer`'s command line. The
/// paths are absolute: the agent takes only those, since it may run
/// elsewhere.
pub(super) fn boot(writer: &WriterConfig) -> Result<DirectBoot> {
    let guest = std::path::absolute(ferry_qemu::guest_dir())
        .context("cannot resolve the guest's directory")?;
    let (kernel, initrd) = (guest.join("vmlinuz"), guest.join("initrd.img"));
    if !kernel.is_file() || !initrd.is_file() {
        bail!(
            "the test guest is not built ({} missing); run scripts/build-guest, or set FERRY_GUEST_DIR",
            kernel.display()
        );
    }
    Ok(DirectBoot {
        kernel,
        initrd,
        append: writer.kernel_cmdline(),
    })
}

/// The writer's highest acknowledged write so far.
pub(super) fn last_seq(log: &SerialLog) -> u64 {
    log.acks().iter().map(|a| a.seq).max().unwrap_or(0)
}

/// Waits (blocking: the engine and agent run on the runtime's workers) for
/// the writer's announcement and its first acks.
pub(super) fn wait_writing(log: &mut SerialLog) -> Result<()> {
    log.wait_ready(BOOT_LIMIT)
        .map_err(|e| anyhow!("the guest did not start writing: {e}"))?;
    let want = log.acks().len() + WARMUP_ACKS;
    log.wait_for_acks(want, BOOT_LIMIT)
        .map_err(|e| anyhow!("the guest stopped writing: {e}"))
}

/// Waits until the writer acknowledged write `seq`, so a pause ending in
/// it is in the log.
pub(super) fn wait_seq(log: &mut SerialLog, seq: u64) -> Result<()> {
    log.wait_until(Duration::from_secs(60), &format!("ack {seq}"), |l| {
        last_seq(l) >= seq
    })
    .map_err(|e| anyhow!("the guest stopped writing: {e}"))
}

/// The writer with nothing else going on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Idle {
    /// Acknowledged writes per host second over [`IDLE`].
    pub(super) acks_per_s: f64,
    /// Its longest write (or gap between writes) then: what a switch's
    /// pause is compared with, since the writer's own jitter is not the
    /// move's doing.
    pub(super) worst_write: Duration,
}

/// The writer's rate and worst write with nothing else going on, over
/// [`IDLE`] (whole bursts of a writer with rests, at least [`IDLE`]).
pub(super) async fn idle_rate(log: &mut SerialLog, writer: &WriterConfig) -> Idle {
    log.poll();
    let (seq0, t0) = (last_seq(log), Instant::now());
    tokio::time::sleep(idle_window(writer)).await;
    log.poll();
    let seq1 = last_seq(log);
    Idle {
        acks_per_s: acks_per_s(log, writer, seq0, seq1, t0.elapsed().as_secs_f64()),
        worst_write: max_stall(log.acks(), seq0, seq1),
    }
}

/// How long the idle writer is watched: [`IDLE`], or for a writer with
/// rests the fewest whole cycles of burst and rest that last as long.
pub(super) fn idle_window(writer: &WriterConfig) -> Duration {
    match writer.duty {
        None => IDLE,
        Some(d) => {
            let cycle = Duration::from_millis(d.busy_ms + d.quiet_ms);
            let cycles = IDLE.as_millis().div_ceil(cycle.as_millis().max(1));
            cycle * u32::try_from(cycles).unwrap_or(u32::MAX)
        }
    }
}

/// The writer's acknowledged writes per second from ack `seq0` to ack
/// `seq1`: by the host's clock over `host_seconds`, or, for a writer with
/// rests, per second of its own busy time (its clock leaves the rests
/// out), so where a window falls among its bursts does not change the
/// figure.
pub(super) fn acks_per_s(
    log: &SerialLog,
    writer: &WriterConfig,
    seq0: u64,
    seq1: u64,
    host_seconds: f64,
) -> f64 {
    let acks = (seq1 - seq0) as f64;
    if writer.duty.is_some() {
        let at = |seq| {
            log.acks()
                .iter()
                .find(|a| a.seq == seq)
                .map(|a| a.t_start_us)
        };
        if let Some(busy_us) = at(seq0).zip(at(seq1)).map(|(a, b)| b.saturating_sub(a)) {
            if busy_us > 0 {
                return acks / (busy_us as f64 / 1e6);
            }
        }
    }
    acks / host_seconds
}

/// Drives `fut` to completion while reading the guest's console every
/// [`POLL`], so the log keeps up during long QMP waits.
pub(super) async fn polling<T>(log: &mut SerialLog, fut: impl Future<Output = T>) -> T {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            () = tokio::time::sleep(POLL) => { log.poll(); }
        }
    }
}
