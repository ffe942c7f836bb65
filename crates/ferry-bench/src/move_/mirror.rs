//! The Proxmox way on the moved chain: a QEMU of the bench's own (no Ferry
//! verb mirrors a multi-volume chain) with the same writer, the disk
//! flattened onto one raw file with `blockdev-mirror sync=full
//! copy-mode=write-blocking`, then pivoted.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ferry_api::engine::{DirectBoot, Disk};
use ferry_api::VolumeFormat;
use ferry_qemu::block::{self, MirrorOptions};
use ferry_qemu::jobs::{self, JobStatus};
use ferry_qemu::{Accel, DiskSpec, Layer, NodeNames, Qmp, Vm, VmSpec};
use ferry_testkit::guest::{max_stall, SerialLog, WriterConfig};
use uuid::Uuid;

use super::guest::{acks_per_s, idle_rate, last_seq, polling, wait_seq, wait_writing};
use super::workdir::{mirror_run_root, mirror_target};
use super::{allocated, AFTER_ACKS, MOVE_LIMIT, TAIL, VM_MEMORY_MIB, WRITER_LEN};
use crate::common::drop_caches;

const MIRROR_JOB: &str = "bench-mirror";
const MIRROR_DEVICE: &str = "disk0";

/// What the bench measured of the mirror.
pub(super) struct MirrorResult {
    pub(super) idle: f64,
    pub(super) ready_seconds: f64,
    pub(super) seconds: f64,
    pub(super) job_bytes: u64,
    pub(super) target_allocated: u64,
    pub(super) acks_per_s: f64,
    pub(super) pivot_stall: Duration,
    pub(super) copy_stall: Duration,
}

/// The writer's acks and the clock at the mirror's milestones.
struct MirrorRun {
    /// The last ack seen before the mirror command.
    seq0: u64,
    /// The last ack seen when the job was ready.
    seq_ready: u64,
    /// The last ack seen when the job was gone.
    seq_end: u64,
    ready_seconds: f64,
    seconds: f64,
    /// The job's `total-progress` at ready.
    job_bytes: u64,
}

/// The Proxmox way on the moved chain: a QEMU of the bench's own on the
/// same three volumes (where the last move left them) with the same
/// writer, a raw target of the disk's size added with `blockdev-add`,
/// `blockdev-mirror sync=full copy-mode=write-blocking` from the active
/// node (flattening the chain), and `job-complete` once ready. Timed from
/// the mirror command to the job's end; the pivot's pause is
/// [`max_stall`] from the last ack seen at ready to [`AFTER_ACKS`] after
/// the last one seen at the end.
pub(super) async fn mirror_move(
    dir: &Path,
    disk: &Disk,
    accel: Accel,
    boot: &DirectBoot,
    writer: &WriterConfig,
    dropped: &mut bool,
) -> Result<MirrorResult> {
    let (spec, serial) = vm_spec(dir, disk, accel, boot);
    let vm = Vm::start(&spec)
        .await
        .context("cannot start the mirror VM")?
        .kill_on_drop();
    let mut log = SerialLog::new(&serial);
    wait_writing(&mut log)?;
    let idle = idle_rate(&mut log, writer).await.acks_per_s;

    let qmp = vm.qmp();
    let target = add_target(qmp, dir, disk.size).await?;
    let active = block::active_node(qmp, MIRROR_DEVICE).await?;
    *dropped &= drop_caches();
    let run = run_mirror(qmp, &mut log, &active, &target).await?;
    let result = MirrorResult {
        idle,
        ready_seconds: run.ready_seconds,
        seconds: run.seconds,
        job_bytes: run.job_bytes,
        target_allocated: allocated(&target.path)?,
        acks_per_s: acks_per_s(&log, writer, run.seq0, run.seq_end, run.seconds),
        pivot_stall: max_stall(log.acks(), run.seq_ready, run.seq_end + AFTER_ACKS),
        copy_stall: max_stall(log.acks(), run.seq0, run.seq_ready),
    };
    vm.stop(Duration::ZERO).await?;
    Ok(result)
}

/// The mirror VM: the moved chain layer by layer, the test guest writing
/// where the engine's VM wrote. Returns its spec and its serial log.
fn vm_spec(dir: &Path, disk: &Disk, accel: Accel, boot: &DirectBoot) -> (VmSpec, PathBuf) {
    let run_dir = mirror_run_root(dir).join("vms").join("pve");
    let serial = run_dir.join("serial.log");
    let writer = WriterConfig::new(disk.size - TAIL, WRITER_LEN);
    let chain = disk
        .volumes
        .iter()
        .map(|v| Layer {
            path: v.path.clone(),
            format: v.format,
            nodes: NodeNames::for_volume(v.domain, v.id),
        })
        .collect();
    let spec = VmSpec {
        name: "pve-mirror".into(),
        memory_mib: VM_MEMORY_MIB,
        cpus: 1,
        accel,
        disks: vec![DiskSpec {
            device: MIRROR_DEVICE.into(),
            chain,
        }],
        boot: Some(ferry_qemu::DirectBoot {
            kernel: boot.kernel.clone(),
            initrd: boot.initrd.clone(),
            append: writer.kernel_cmdline(),
        }),
        serial_log: Some(serial.clone()),
        run_dir,
    };
    (spec, serial)
}

/// A raw file of the disk's size, added to the VM's block graph as the
/// mirror's target.
async fn add_target(qmp: &Qmp, dir: &Path, size: u64) -> Result<Layer> {
    let path = mirror_target(dir);
    fs::File::create(&path)
        .and_then(|f| f.set_len(size))
        .with_context(|| format!("cannot create {}", path.display()))?;
    let target = Layer {
        path,
        format: VolumeFormat::Raw,
        nodes: NodeNames::for_volume(Uuid::new_v4(), Uuid::new_v4()),
    };
    block::add_layer(qmp, &target, None).await?;
    Ok(target)
}

/// Mirrors `active` onto `target` until ready, pivots, and checks the VM
/// then writes to the target; reads the console all along.
async fn run_mirror(
    qmp: &Qmp,
    log: &mut SerialLog,
    active: &str,
    target: &Layer,
) -> Result<MirrorRun> {
    log.poll();
    let seq0 = last_seq(log);
    let t0 = Instant::now();
    block::mirror(
        qmp,
        MIRROR_JOB,
        active,
        &target.nodes.format,
        &MirrorOptions { speed: 0 },
    )
    .await?;
    let ready = polling(
        log,
        jobs::wait_for(qmp, MIRROR_JOB, JobStatus::Ready, MOVE_LIMIT),
    )
    .await?;
    let ready_seconds = t0.elapsed().as_secs_f64();
    log.poll();
    let seq_ready = last_seq(log);
    polling(log, block::pivot_when_ready(qmp, MIRROR_JOB)).await?;
    let seconds = t0.elapsed().as_secs_f64();
    log.poll();
    let seq_end = last_seq(log);
    if block::active_node(qmp, MIRROR_DEVICE).await? != target.nodes.format {
        bail!("the mirror ended but the VM does not write to its target");
    }
    wait_seq(log, seq_end + AFTER_ACKS)?;
    Ok(MirrorRun {
        seq0,
        seq_ready,
        seq_end,
        ready_seconds,
        seconds,
        job_bytes: ready.len,
    })
}
