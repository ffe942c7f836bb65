//! `ferry-bench move`: a live move of a running VM's multi-GiB chain with
//! the test guest writing as fast as it can, measured against the same
//! files copied by `cp`/`qemu-img` and against the same disk moved the
//! Proxmox way (`blockdev-mirror sync=full copy-mode=write-blocking`,
//! which flattens the chain), all in one run on one disk.
//!
//! Everything runs in this process, as `ferry up` does: an engine on a
//! fresh SQLite database and one local agent (ports 0, random tokens), so
//! the move goes through the real REST API, step persistence and agent
//! tasks. The mirror runs on a QEMU of the bench's own, started with
//! `ferry_qemu::Vm`, since no Ferry verb mirrors a multi-volume chain.
//!
//! The guest's side comes from `ferry-testkit`'s guest module (writer
//! configuration, serial-log parser, `max_stall`), which is why the bench
//! depends on ferry-testkit and is a binary of its own: the figures must
//! use the same oracle as the tests that quote them.
//!
//! How each figure is measured is written on the function that measures it;
//! in short: the writer's acks/s are acknowledged writes per host second
//! over the phase; a switch's pause is [`max_stall`] over the acks from the
//! last one seen before the step was seen started to a few after it was
//! seen done (the engine is polled every 20 ms, and so is the serial log).

use std::collections::BTreeMap;
use std::fs;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_api::engine::{
    AddHost, CreateDisk, CreateDomain, CreateVm, DirectBoot, Disk, Job, JobState, MoveRequest,
    StepState,
};
use ferry_api::VolumeFormat;
use ferry_engine::{EngineClient, EngineConfig};
use ferry_host::{Accel, AgentClient, AgentConfig, AgentState};
use ferry_qemu::block::{self, MirrorOptions};
use ferry_qemu::jobs::{self, JobStatus};
use ferry_qemu::{DiskSpec, Layer, NodeNames, Vm, VmSpec};
use ferry_testkit::guest::{max_stall, SerialLog, WriterConfig};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::common::{drop_caches, write_incompressible, RefCopy, GIB, MIB};

/// How often the bench looks at the engine's job, the agent's copy tasks
/// and the guest's console: fine enough to bracket a switch of a few
/// milliseconds by a handful of writes.
const POLL: Duration = Duration::from_millis(20);
/// How long the writer's idle rate is measured before each move.
const IDLE: Duration = Duration::from_secs(5);
/// Acks after a step was seen done that still count for its pause: a write
/// held up by the switch is acknowledged (and printed) only after it.
const AFTER_ACKS: u64 = 5;
/// Acks to wait for after boot before measuring, so the guest's start-up
/// is not in the idle rate.
const WARMUP_ACKS: usize = 20;
/// A TCG boot of the test guest takes seconds; this is for a loaded host.
const BOOT_LIMIT: Duration = Duration::from_secs(180);
/// The whole move or mirror; far above what either takes.
const MOVE_LIMIT: Duration = Duration::from_secs(1800);
/// The writer's region, past every layer's data.
const WRITER_LEN: u64 = 8 * MIB;
/// Room at the end of the disk for the writer's region.
const TAIL: u64 = 64 * MIB;
const DISK: &str = "bench-disk";
const VM: &str = "bench-vm";
const MIRROR_JOB: &str = "bench-mirror";
const MIRROR_DEVICE: &str = "disk0";
const VM_MEMORY_MIB: u64 = 256;
/// A file in the bench directory saying the bench made it, so clearing a
/// `--dir` never removes a directory someone else filled.
const MARKER: &str = ".ferry-bench-move";

/// Arguments of `ferry-bench move`.
#[derive(Debug, Args)]
pub struct MoveBenchArgs {
    /// Working directory (on the disk to measure): cleared first, removed
    /// afterwards (only the logs are kept if the bench fails).
    #[arg(long, default_value = "target/ferry-bench-move")]
    dir: PathBuf,
    /// GiB of incompressible data in the raw base (spread over twice that
    /// much virtual disk); the two qcow2 snapshots add a quarter and an
    /// eighth of it.
    #[arg(long, default_value_t = 2)]
    base_gib: u64,
    /// How the VMs run: tcg (software, works everywhere) or kvm.
    #[arg(long, default_value = "tcg", value_parser = ["kvm", "tcg"])]
    accel: String,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `ferry-bench move`.
pub fn run(args: &MoveBenchArgs) -> Result<()> {
    if args.base_gib == 0 {
        bail!("--base-gib must be at least 1");
    }
    let accel: Accel = args.accel.parse()?;
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    prepare_dir(&dir)?;
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        keep_logs: true,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-bench")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(bench(&dir, args.base_gib, accel));
    // A copy task still running on a blocking thread after a failure must
    // not hold the process: the guard below removes its files anyway.
    runtime.shutdown_timeout(Duration::from_secs(5));
    let report = result?;
    cleanup.keep_logs = false;
    drop(cleanup);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Empties (or creates) the bench directory. A non-empty directory without
/// the bench's marker is refused rather than cleared. QEMUs left by a run
/// that was killed (its guard never ran) are killed first: they are
/// daemonized and would go on writing to deleted files.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !dir.join(MARKER).exists() {
            bail!(
                "{} is not empty and was not made by ferry bench move; give an empty or new --dir",
                dir.display()
            );
        }
        for run_dir in [agent_run_dir(dir), mirror_run_root(dir)] {
            ferry_testkit::agent::kill_vms(&run_dir);
        }
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(
        dir.join(MARKER),
        "made by ferry bench move; removed when it ends\n",
    )
    .with_context(|| format!("cannot write in {}", dir.display()))?;
    Ok(())
}

/// However the bench ends: kills every QEMU it started (the agent's VMs and
/// the mirror VM, by the pid files in their run directories, since a
/// daemonized QEMU outlives this process) and removes the multi-GiB files.
/// After a failure the logs (agent, QEMU, serial consoles, engine.db) stay.
#[derive(Debug)]
struct Cleanup {
    dir: PathBuf,
    keep_logs: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for run_dir in [agent_run_dir(&self.dir), mirror_run_root(&self.dir)] {
            ferry_testkit::agent::kill_vms(&run_dir);
        }
        if self.keep_logs {
            for big in [
                self.dir.join("domains"),
                self.dir.join("refcopy"),
                mirror_target(&self.dir),
            ] {
                let _ = fs::remove_dir_all(&big).or_else(|_| fs::remove_file(&big));
            }
            eprintln!(
                "ferry bench move: logs kept in {} (agent/, mirror/)",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn agent_run_dir(dir: &Path) -> PathBuf {
    dir.join("agent")
}

/// The mirror VM's run directory sits at `<root>/vms/<name>` like an
/// agent's VMs, so `kill_vms(<root>)` finds it.
fn mirror_run_root(dir: &Path) -> PathBuf {
    dir.join("mirror")
}

fn mirror_target(dir: &Path) -> PathBuf {
    mirror_run_root(dir).join("target.raw")
}

/// The engine and the local agent, each in a task of this process.
struct Services {
    client: EngineClient,
    agent: AgentClient,
    agent_state: std::sync::Arc<AgentState>,
    stop_engine: oneshot::Sender<()>,
    engine_task: JoinHandle<ferry_engine::Result<()>>,
    stop_agent: oneshot::Sender<()>,
    agent_task: JoinHandle<ferry_host::Result<()>>,
}

fn secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

impl Services {
    /// Starts agent and engine as `ferry up` does, registers the agent as
    /// host `local` and creates domain1 and domain2 through the engine.
    async fn start(dir: &Path, accel: Accel) -> Result<Services> {
        let agent_token = secret();
        let agent = ferry_host::Server::bind(AgentConfig {
            name: "local".into(),
            listen: "127.0.0.1:0".parse().context("a literal address")?,
            token: agent_token.clone(),
            run_dir: agent_run_dir(dir),
            domains: Vec::new(),
            accel,
        })
        .await
        .context("cannot start the local agent")?;
        let agent_url = format!("http://{}", agent.local_addr());
        let agent_state = agent.agent().clone();
        let (stop_agent, agent_stopped) = oneshot::channel::<()>();
        let agent_task = tokio::spawn(agent.run_until(async move {
            let _ = agent_stopped.await;
        }));

        let engine_token = secret();
        let engine = ferry_engine::Server::bind(EngineConfig {
            listen: "127.0.0.1:0".parse().context("a literal address")?,
            token: engine_token.clone(),
            database: EngineConfig::sqlite_url(dir),
            max_moves: 0,
        })
        .await
        .context("cannot start the engine")?;
        let url = format!("http://{}", engine.local_addr());
        let (stop_engine, engine_stopped) = oneshot::channel::<()>();
        let engine_task = tokio::spawn(engine.run_until(async move {
            let _ = engine_stopped.await;
        }));

        let services = Services {
            client: EngineClient::new(&url, &engine_token),
            agent: AgentClient::new(&agent_url, &agent_token),
            agent_state,
            stop_engine,
            engine_task,
            stop_agent,
            agent_task,
        };
        let c = &services.client;
        c.add_host(&AddHost {
            name: "local".into(),
            url: agent_url,
            token: agent_token,
        })
        .await
        .context("cannot add the local agent to the engine")?;
        let domains = dir.join("domains");
        fs::create_dir_all(&domains)?;
        for name in ["domain1", "domain2"] {
            c.create_domain(&CreateDomain {
                name: name.into(),
                path: domains.clone(),
            })
            .await
            .with_context(|| format!("cannot create storage domain {name}"))?;
        }
        Ok(services)
    }

    /// Stops the engine, the agent's VMs and the agent.
    async fn stop(self) {
        let _ = self.stop_engine.send(());
        let _ = self.engine_task.await;
        self.agent_state
            .vms()
            .stop_all(Duration::from_secs(0))
            .await;
        let _ = self.stop_agent.send(());
        let _ = self.agent_task.await;
    }
}

/// Everything the bench measured, printed as a table or as JSON.
#[derive(Debug, Serialize)]
struct Report {
    accel: String,
    base_gib: u64,
    /// The disk's virtual size.
    virtual_bytes: u64,
    /// The chain as moved, base first.
    chain: Vec<LayerReport>,
    writer: WriterReport,
    /// Whether the page cache was dropped before each copy (needs root).
    caches_dropped: bool,
    rows: Vec<Row>,
    ratio: Ratio,
    ferry: FerryDetail,
    mirror: MirrorDetail,
}

#[derive(Debug, Serialize)]
struct LayerReport {
    format: VolumeFormat,
    allocated_bytes: u64,
}

#[derive(Debug, Serialize)]
struct WriterReport {
    offset: u64,
    len: u64,
    block_size: u64,
    /// 0: as fast as the disk acknowledges (`O_DIRECT` + `fdatasync`).
    rate: u64,
}

/// One line of the table.
#[derive(Debug, Serialize)]
struct Row {
    method: String,
    seconds: f64,
    bytes: Option<u64>,
    mib_per_s: Option<f64>,
    writer_acks_per_s: Option<f64>,
    /// The longest pause the writer saw at each switch of this method.
    pauses: Vec<Pause>,
    /// The longest single write (or gap between writes) while copying.
    worst_write_during_copy_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Pause {
    switch: String,
    ms: f64,
}

#[derive(Debug, Serialize)]
struct Ratio {
    ferry_copy_mib_per_s: f64,
    fastest_reference: String,
    fastest_reference_mib_per_s: f64,
    ratio: f64,
}

#[derive(Debug, Serialize)]
struct FerryDetail {
    job: Uuid,
    /// job.created → job.finished, by the engine's clock.
    total_seconds: f64,
    /// The job's total: what the chain took on disk at prepare.
    bytes: u64,
    /// The agent's clone tasks, each from the last poll that did not see it
    /// to the first that saw it finished, summed (they run one after the
    /// other: the early copy of the volumes under the leaf, then the leaf).
    copy_seconds: f64,
    /// `createVolumeCrossSD` started → `cloneInternalVolumes` finished, by
    /// the engine's step records: the copy plus the engine's own overhead
    /// (its 300 ms task polling, the volume create and the snapshot).
    copy_window_seconds: f64,
    steps: Vec<StepReport>,
}

#[derive(Debug, Serialize)]
struct StepReport {
    name: String,
    seconds: Option<f64>,
    /// The writer's acks bracketing the step (see [`StepWatch`]).
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    max_stall_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct MirrorDetail {
    /// blockdev-mirror → the job ready (source and target in sync).
    ready_seconds: f64,
    /// blockdev-mirror → pivoted and the job gone.
    total_seconds: f64,
    /// The job's `total-progress` at ready: every byte it went over,
    /// zeros included (it writes zero ranges as zeros).
    job_bytes: u64,
    /// What the flat target holds on disk afterwards.
    target_allocated_bytes: u64,
}

/// The writer's highest acknowledged write so far.
fn last_seq(log: &SerialLog) -> u64 {
    log.acks().iter().map(|a| a.seq).max().unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

fn allocated(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)
        .with_context(|| format!("cannot inspect {}", path.display()))?
        .blocks()
        * 512)
}

/// Waits (blocking: the engine and agent run on the runtime's workers) for
/// the writer's announcement and its first acks.
fn wait_writing(log: &mut SerialLog) -> Result<()> {
    log.wait_ready(BOOT_LIMIT)
        .map_err(|e| anyhow::anyhow!("the guest did not start writing: {e}"))?;
    let want = log.acks().len() + WARMUP_ACKS;
    log.wait_for_acks(want, BOOT_LIMIT)
        .map_err(|e| anyhow::anyhow!("the guest stopped writing: {e}"))
}

/// Waits until the writer acknowledged write `seq`, so a pause ending in
/// it is in the log.
fn wait_seq(log: &mut SerialLog, seq: u64) -> Result<()> {
    log.wait_until(Duration::from_secs(60), &format!("ack {seq}"), |l| {
        last_seq(l) >= seq
    })
    .map_err(|e| anyhow::anyhow!("the guest stopped writing: {e}"))
}

/// The writer's rate with nothing else going on: acknowledged writes per
/// host second over [`IDLE`].
async fn idle_rate(log: &mut SerialLog) -> f64 {
    log.poll();
    let (seq0, t0) = (last_seq(log), Instant::now());
    tokio::time::sleep(IDLE).await;
    log.poll();
    (last_seq(log) - seq0) as f64 / t0.elapsed().as_secs_f64()
}

/// Drives `fut` to completion while reading the guest's console every
/// [`POLL`], so the log keeps up during long QMP waits.
async fn polling<T>(log: &mut SerialLog, fut: impl Future<Output = T>) -> T {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            () = tokio::time::sleep(POLL) => { log.poll(); }
        }
    }
}

async fn bench(dir: &Path, base_gib: u64, accel: Accel) -> Result<Report> {
    let services = Services::start(dir, accel).await?;
    let result = phases(&services, dir, base_gib, accel).await;
    services.stop().await;
    result
}

async fn phases(s: &Services, dir: &Path, base_gib: u64, accel: Accel) -> Result<Report> {
    let c = &s.client;
    let span = 2 * base_gib * GIB;
    let writer = WriterConfig::new(span, WRITER_LEN);

    // The agent takes only absolute paths: it may run elsewhere.
    let guest = std::path::absolute(ferry_qemu::guest_dir())
        .context("cannot resolve the guest's directory")?;
    let (kernel, initrd) = (guest.join("vmlinuz"), guest.join("initrd.img"));
    if !kernel.is_file() || !initrd.is_file() {
        bail!(
            "the test guest is not built ({} missing); run scripts/build-guest, or set FERRY_GUEST_DIR",
            kernel.display()
        );
    }
    let boot = DirectBoot {
        kernel,
        initrd,
        append: writer.kernel_cmdline(),
    };

    eprintln!("building the chain ({base_gib} GiB of base data) ...");
    build_chain(c, span).await?;

    eprintln!("starting the VM and its writer ...");
    let vm = c
        .create_vm(&CreateVm {
            name: VM.into(),
            disks: vec![DISK.into()],
            memory_mib: Some(VM_MEMORY_MIB),
            host: Some("local".into()),
            boot: Some(boot.clone()),
        })
        .await
        .context("cannot create the VM")?;
    c.start_vm(VM).await.context("cannot start the VM")?;
    let status = s.agent.vm(vm.id).await.context("cannot ask the agent")?;
    let mut log = SerialLog::new(status.serial_log);
    wait_writing(&mut log)?;
    eprintln!("measuring the idle writer ({} s) ...", IDLE.as_secs());
    let idle = idle_rate(&mut log).await;

    let mut dropped = drop_caches();
    eprintln!("moving {DISK} to domain2 ...");
    let ferry = ferry_move(s, &mut log).await?;
    c.kill_vm(VM).await.context("cannot stop the VM")?;

    let moved = c.disk(DISK).await?;
    let chain: Vec<LayerReport> = moved
        .volumes
        .iter()
        .map(|v| {
            Ok(LayerReport {
                format: v.format,
                allocated_bytes: allocated(&v.path)?,
            })
        })
        .collect::<Result<_>>()?;

    eprintln!("reference copies of the same files ...");
    let mut refs = Vec::new();
    for method in RefCopy::ALL {
        let (secs, bytes, d) = reference_copy(dir, &moved, method)?;
        dropped &= d;
        refs.push((method, secs, bytes));
    }

    eprintln!("the Proxmox way: blockdev-mirror of the whole disk ...");
    let mirror = mirror_move(dir, &moved, accel, &boot, &mut dropped).await?;

    Ok(report(ReportParts {
        accel,
        base_gib,
        virtual_bytes: moved.size,
        chain,
        writer,
        dropped,
        idle,
        ferry,
        refs,
        mirror,
    }))
}

/// The disk and its chain, all made through the engine: a raw base of
/// `span` bytes (plus room for the writer) whose first 32 MiB of every
/// 64 MiB hold incompressible data, written straight into the file before
/// any VM opens it; then two engine snapshots, each written with
/// `qemu-io` on its leaf: snap1 16 MiB every 128 MiB (a quarter of the
/// base's data, half over base data, half over holes), snap2 16 MiB every
/// 256 MiB starting in a hole (an eighth).
async fn build_chain(c: &EngineClient, span: u64) -> Result<Disk> {
    let disk = c
        .create_disk(&CreateDisk {
            name: DISK.into(),
            domain: "domain1".into(),
            size: span + TAIL,
            format: VolumeFormat::Raw,
            preallocated: false,
        })
        .await
        .context("cannot create the disk")?;
    let base = disk.volumes.first().context("the new disk has no volume")?;
    write_incompressible(&base.path, span)?;
    let layers: [(&str, u64, u64); 2] = [("0x5a", 128 * MIB, 0), ("0x6b", 256 * MIB, 40 * MIB)];
    for (pattern, every, start) in layers {
        let d = c
            .snapshot_disk(DISK)
            .await
            .context("cannot snapshot the disk")?;
        let leaf = d.volumes.last().context("the disk has no leaf")?;
        let mut cmds = Vec::new();
        let mut off = start;
        while off < span {
            cmds.push(format!("write -P {pattern} {off} 16M"));
            off += every;
        }
        let mut cmd = std::process::Command::new("qemu-io");
        cmd.args(["-f", leaf.format.qemu_name()]);
        for c in &cmds {
            cmd.args(["-c", c]);
        }
        cmd.arg(&leaf.path);
        crate::common::run_tool(&mut cmd)?;
    }
    Ok(c.disk(DISK).await?)
}

/// What the bench saw of one step of the move, in writer seqs.
///
/// `start` is the last ack seen before the poll whose job query first
/// showed the step started (so no write of the step is before it); `end`
/// is the last ack seen at the poll after the query that first showed it
/// done. Its pause is [`max_stall`] over `start..=end + AFTER_ACKS`.
#[derive(Debug, Default)]
struct StepWatch {
    start: Option<u64>,
    end: Option<u64>,
    end_pending: bool,
}

/// One agent copy task as the bench saw it.
#[derive(Debug)]
struct TaskWatch {
    /// The query before the one that first listed it.
    appeared_after: Instant,
    /// The query that first saw it finished.
    finished_by: Option<Instant>,
}

struct FerryResult {
    job: Job,
    seconds_host: f64,
    acks_per_s: f64,
    copy_seconds: f64,
    steps: Vec<StepReport>,
}

/// Ferry's move through the engine, watched every [`POLL`]: the job (step
/// states), the agent's `clone-internal-volumes` tasks (the copy's own
/// duration, free of the engine's 300 ms task polling) and the console.
async fn ferry_move(s: &Services, log: &mut SerialLog) -> Result<FerryResult> {
    let c = &s.client;
    log.poll();
    let seq0 = last_seq(log);
    let t0 = Instant::now();
    let job = c
        .move_disk(
            DISK,
            &MoveRequest {
                to: "domain2".into(),
                bandwidth_mib_s: None,
            },
        )
        .await
        .context("cannot start the move")?;
    let mut watch: Vec<StepWatch> = job.steps.iter().map(|_| StepWatch::default()).collect();
    let mut tasks: BTreeMap<Uuid, TaskWatch> = BTreeMap::new();
    let mut prev_seq = seq0;
    let mut prev_query = t0;
    let done = loop {
        if t0.elapsed() > MOVE_LIMIT {
            bail!("the move did not finish within {MOVE_LIMIT:?}");
        }
        log.poll();
        let seq = last_seq(log);
        for w in watch.iter_mut().filter(|w| w.end_pending) {
            w.end = Some(seq);
            w.end_pending = false;
        }
        let j = c.job(job.id).await.context("cannot read the job")?;
        for (w, step) in watch.iter_mut().zip(&j.steps) {
            if step.state != StepState::Pending && w.start.is_none() {
                w.start = Some(prev_seq);
            }
            let over = !matches!(step.state, StepState::Pending | StepState::Running);
            if over && w.end.is_none() {
                w.end_pending = true;
            }
        }
        let asked = Instant::now();
        let listed = s
            .agent
            .tasks()
            .await
            .context("cannot list the agent's tasks")?;
        let answered = Instant::now();
        for t in listed.iter().filter(|t| t.verb == "clone-internal-volumes") {
            let w = tasks.entry(t.id).or_insert(TaskWatch {
                appeared_after: prev_query,
                finished_by: None,
            });
            if t.state.is_finished() && w.finished_by.is_none() {
                w.finished_by = Some(answered);
            }
        }
        prev_query = asked;
        if j.state.is_finished() {
            break j;
        }
        prev_seq = seq;
        tokio::time::sleep(POLL).await;
    };
    let seconds_host = t0.elapsed().as_secs_f64();
    log.poll();
    let seq_end = last_seq(log);
    if done.state != JobState::Succeeded {
        bail!(
            "the move ended {:?}: {}",
            done.state,
            done.error.as_deref().unwrap_or("no reason given")
        );
    }
    for w in &mut watch {
        if w.end.is_none() {
            w.end = Some(seq_end);
        }
    }
    let copy_seconds: f64 = tasks
        .values()
        .map(|t| {
            t.finished_by
                .map_or(0.0, |f| (f - t.appeared_after).as_secs_f64())
        })
        .sum();
    if tasks.is_empty() {
        bail!("the bench saw no copy task on the agent");
    }
    let last_end = watch.iter().filter_map(|w| w.end).max().unwrap_or(seq_end);
    wait_seq(log, last_end + AFTER_ACKS)?;
    let steps = done
        .steps
        .iter()
        .zip(&watch)
        .map(|(step, w)| StepReport {
            name: step.name.clone(),
            seconds: step
                .started
                .zip(step.finished)
                .map(|(a, b)| b.saturating_sub(a) as f64 / 1000.0),
            first_seq: w.start,
            last_seq: w.end,
            max_stall_ms: w
                .start
                .zip(w.end)
                .map(|(a, b)| ms(max_stall(log.acks(), a, b + AFTER_ACKS))),
        })
        .collect();
    Ok(FerryResult {
        acks_per_s: (seq_end - seq0) as f64 / seconds_host,
        job: done,
        seconds_host,
        copy_seconds,
        steps,
    })
}

/// One reference tool copying every volume file of the moved chain (on
/// domain2, VM stopped, so the files hold still) into a scratch directory,
/// page cache dropped first. Returns (seconds, bytes the sources take on
/// disk, whether the cache was dropped).
fn reference_copy(dir: &Path, disk: &Disk, method: RefCopy) -> Result<(f64, u64, bool)> {
    let out = dir.join("refcopy");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut bytes = 0;
    for v in &disk.volumes {
        bytes += allocated(&v.path)?;
    }
    let dropped = drop_caches();
    let t = Instant::now();
    for (i, v) in disk.volumes.iter().enumerate() {
        method.copy(&v.path, &out.join(format!("layer{i}")))?;
    }
    let secs = t.elapsed().as_secs_f64();
    fs::remove_dir_all(&out).with_context(|| format!("cannot remove {}", out.display()))?;
    Ok((secs, bytes, dropped))
}

struct MirrorResult {
    idle: f64,
    ready_seconds: f64,
    seconds: f64,
    job_bytes: u64,
    target_allocated: u64,
    acks_per_s: f64,
    pivot_stall: Duration,
    copy_stall: Duration,
}

/// The Proxmox way on the moved chain: a QEMU of the bench's own on the
/// same three volumes (domain2) with the same writer, a raw target of the
/// disk's size added with `blockdev-add`, `blockdev-mirror sync=full
/// copy-mode=write-blocking` from the active node (flattening the chain),
/// and `job-complete` once ready. Timed from the mirror command to the
/// job's end; the pivot's pause is [`max_stall`] from the last ack seen
/// at ready to [`AFTER_ACKS`] after the last one seen at the end.
async fn mirror_move(
    dir: &Path,
    disk: &Disk,
    accel: Accel,
    boot: &DirectBoot,
    dropped: &mut bool,
) -> Result<MirrorResult> {
    let run_dir = mirror_run_root(dir).join("vms").join("pve");
    let serial = run_dir.join("serial.log");
    let writer = WriterConfig::new(disk.size - TAIL, WRITER_LEN);
    let spec = VmSpec {
        name: "pve-mirror".into(),
        memory_mib: VM_MEMORY_MIB,
        cpus: 1,
        accel,
        disks: vec![DiskSpec {
            device: MIRROR_DEVICE.into(),
            chain: disk
                .volumes
                .iter()
                .map(|v| Layer {
                    path: v.path.clone(),
                    format: v.format,
                    nodes: NodeNames::for_volume(v.domain, v.id),
                })
                .collect(),
        }],
        boot: Some(ferry_qemu::DirectBoot {
            kernel: boot.kernel.clone(),
            initrd: boot.initrd.clone(),
            append: writer.kernel_cmdline(),
        }),
        serial_log: Some(serial.clone()),
        run_dir,
    };
    let vm = Vm::start(&spec)
        .await
        .context("cannot start the mirror VM")?
        .kill_on_drop();
    let mut log = SerialLog::new(&serial);
    wait_writing(&mut log)?;
    let idle = idle_rate(&mut log).await;

    let target_path = mirror_target(dir);
    fs::File::create(&target_path)
        .and_then(|f| f.set_len(disk.size))
        .with_context(|| format!("cannot create {}", target_path.display()))?;
    let target = Layer {
        path: target_path.clone(),
        format: VolumeFormat::Raw,
        nodes: NodeNames::for_volume(Uuid::new_v4(), Uuid::new_v4()),
    };
    let qmp = vm.qmp();
    block::add_layer(qmp, &target, None).await?;
    let active = block::active_node(qmp, MIRROR_DEVICE).await?;
    *dropped &= drop_caches();

    log.poll();
    let seq0 = last_seq(&log);
    let t0 = Instant::now();
    block::mirror(
        qmp,
        MIRROR_JOB,
        &active,
        &target.nodes.format,
        &MirrorOptions { speed: 0 },
    )
    .await?;
    let ready = polling(
        &mut log,
        jobs::wait_for(qmp, MIRROR_JOB, JobStatus::Ready, MOVE_LIMIT),
    )
    .await?;
    let ready_seconds = t0.elapsed().as_secs_f64();
    log.poll();
    let seq_ready = last_seq(&log);
    polling(&mut log, block::pivot_when_ready(qmp, MIRROR_JOB)).await?;
    let seconds = t0.elapsed().as_secs_f64();
    log.poll();
    let seq_end = last_seq(&log);
    if block::active_node(qmp, MIRROR_DEVICE).await? != target.nodes.format {
        bail!("the mirror ended but the VM does not write to its target");
    }
    wait_seq(&mut log, seq_end + AFTER_ACKS)?;
    let result = MirrorResult {
        idle,
        ready_seconds,
        seconds,
        job_bytes: ready.len,
        target_allocated: allocated(&target_path)?,
        acks_per_s: (seq_end - seq0) as f64 / seconds,
        pivot_stall: max_stall(log.acks(), seq_ready, seq_end + AFTER_ACKS),
        copy_stall: max_stall(log.acks(), seq0, seq_ready),
    };
    vm.stop(Duration::ZERO).await?;
    Ok(result)
}

struct ReportParts {
    accel: Accel,
    base_gib: u64,
    virtual_bytes: u64,
    chain: Vec<LayerReport>,
    writer: WriterConfig,
    dropped: bool,
    idle: f64,
    ferry: FerryResult,
    refs: Vec<(RefCopy, f64, u64)>,
    mirror: MirrorResult,
}

/// The switches of a live move and the names the table gives them.
const SWITCHES: [(&str, &str); 3] = [
    ("blockMigrate", "snapshot"),
    ("finalizeBlockMigrate", "reopen"),
    ("merge", "commit pivot"),
];

fn report(p: ReportParts) -> Report {
    let f = &p.ferry;
    let bytes = f.job.total_bytes;
    let step = |name: &str| f.job.steps.iter().find(|s| s.name == name);
    let copy_window_seconds = step("createVolumeCrossSD")
        .and_then(|s| s.started)
        .zip(step("cloneInternalVolumes").and_then(|s| s.finished))
        .map_or(0.0, |(a, b)| b.saturating_sub(a) as f64 / 1000.0);
    let total_seconds = f.job.finished.map_or(f.seconds_host, |end| {
        end.saturating_sub(f.job.created) as f64 / 1000.0
    });
    let pauses = SWITCHES
        .iter()
        .filter_map(|(name, label)| {
            let s = f.steps.iter().find(|s| s.name == *name)?;
            Some(Pause {
                switch: (*label).to_string(),
                ms: s.max_stall_ms?,
            })
        })
        .collect();
    let copy_stall = f
        .steps
        .iter()
        .find(|s| s.name == "cloneInternalVolumes")
        .and_then(|s| s.max_stall_ms);
    let ferry_rate = mib(bytes) / f.copy_seconds;

    let mut rows = vec![
        Row {
            method: "writer idle (engine's VM)".into(),
            seconds: IDLE.as_secs_f64(),
            bytes: None,
            mib_per_s: None,
            writer_acks_per_s: Some(p.idle),
            pauses: Vec::new(),
            worst_write_during_copy_ms: None,
        },
        Row {
            method: "ferry live move (whole job)".into(),
            seconds: total_seconds,
            bytes: Some(bytes),
            mib_per_s: Some(mib(bytes) / total_seconds),
            writer_acks_per_s: Some(f.acks_per_s),
            pauses,
            worst_write_during_copy_ms: copy_stall,
        },
        Row {
            method: "  ferry copy + verify (agent clone tasks)".into(),
            seconds: f.copy_seconds,
            bytes: Some(bytes),
            mib_per_s: Some(ferry_rate),
            writer_acks_per_s: None,
            pauses: Vec::new(),
            worst_write_during_copy_ms: None,
        },
    ];
    let mut best: Option<(RefCopy, f64)> = None;
    for (method, secs, b) in &p.refs {
        let rate = mib(*b) / secs;
        if best.is_none_or(|(_, r)| rate > r) {
            best = Some((*method, rate));
        }
        rows.push(Row {
            method: method.label().into(),
            seconds: *secs,
            bytes: Some(*b),
            mib_per_s: Some(rate),
            writer_acks_per_s: None,
            pauses: Vec::new(),
            worst_write_during_copy_ms: None,
        });
    }
    let m = &p.mirror;
    rows.push(Row {
        method: "writer idle (mirror's VM)".into(),
        seconds: IDLE.as_secs_f64(),
        bytes: None,
        mib_per_s: None,
        writer_acks_per_s: Some(m.idle),
        pauses: Vec::new(),
        worst_write_during_copy_ms: None,
    });
    rows.push(Row {
        method: "proxmox way: blockdev-mirror full write-blocking".into(),
        seconds: m.seconds,
        bytes: Some(m.job_bytes),
        mib_per_s: Some(mib(m.job_bytes) / m.seconds),
        writer_acks_per_s: Some(m.acks_per_s),
        pauses: vec![Pause {
            switch: "pivot".into(),
            ms: ms(m.pivot_stall),
        }],
        worst_write_during_copy_ms: Some(ms(m.copy_stall)),
    });
    let (best_method, best_rate) = best.unwrap_or((RefCopy::Cp, f64::NAN));
    Report {
        accel: match p.accel {
            Accel::Kvm => "kvm".into(),
            Accel::Tcg => "tcg".into(),
        },
        base_gib: p.base_gib,
        virtual_bytes: p.virtual_bytes,
        chain: p.chain,
        writer: WriterReport {
            offset: p.writer.offset,
            len: p.writer.len,
            block_size: p.writer.bs,
            rate: p.writer.rate,
        },
        caches_dropped: p.dropped,
        rows,
        ratio: Ratio {
            ferry_copy_mib_per_s: ferry_rate,
            fastest_reference: best_method.label().into(),
            fastest_reference_mib_per_s: best_rate,
            ratio: ferry_rate / best_rate,
        },
        ferry: FerryDetail {
            job: f.job.id,
            total_seconds,
            bytes,
            copy_seconds: f.copy_seconds,
            copy_window_seconds,
            steps: p.ferry.steps,
        },
        mirror: MirrorDetail {
            ready_seconds: m.ready_seconds,
            total_seconds: m.seconds,
            job_bytes: m.job_bytes,
            target_allocated_bytes: m.target_allocated,
        },
    }
}

fn print_table(r: &Report) {
    let data: u64 = r.chain.iter().map(|l| l.allocated_bytes).sum();
    let shape: Vec<String> = r
        .chain
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let name = if i == 0 {
                "base".to_string()
            } else {
                format!("snap{i}")
            };
            format!(
                "{name}({}, {:.0} MiB)",
                l.format.qemu_name(),
                mib(l.allocated_bytes)
            )
        })
        .collect();
    println!(
        "Ferry live-move benchmark: chain {}, {:.0} MiB on disk, {:.2} GiB virtual",
        shape.join(" <- "),
        mib(data),
        r.virtual_bytes as f64 / GIB as f64
    );
    println!(
        "guest writer: {} KiB O_DIRECT+fdatasync writes as fast as acknowledged, over {} MiB at {} MiB (no layer data there); accel {}; page cache dropped before each copy: {}",
        r.writer.block_size / 1024,
        r.writer.len / MIB,
        r.writer.offset / MIB,
        r.accel,
        if r.caches_dropped { "yes" } else { "no (not permitted here)" }
    );
    println!();
    let header = [
        "method",
        "seconds",
        "MiB",
        "MiB/s",
        "acks/s",
        "longest pause per switch",
        "worst write during copy",
    ];
    println!(
        "{:<50} {:>8} {:>7} {:>7} {:>9}  {:<52} {}",
        header[0], header[1], header[2], header[3], header[4], header[5], header[6]
    );
    let dash = "-";
    for row in &r.rows {
        let pauses = if row.pauses.is_empty() {
            dash.to_string()
        } else {
            row.pauses
                .iter()
                .map(|p| format!("{} {:.0} ms", p.switch, p.ms))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{:<50} {:>8.2} {:>7} {:>7} {:>9}  {:<52} {}",
            row.method,
            row.seconds,
            row.bytes
                .map_or(dash.to_string(), |b| format!("{:.0}", mib(b))),
            row.mib_per_s
                .map_or(dash.to_string(), |v| format!("{v:.0}")),
            row.writer_acks_per_s
                .map_or(dash.to_string(), |v| format!("{v:.1}")),
            pauses,
            row.worst_write_during_copy_ms
                .map_or(dash.to_string(), |v| format!("{v:.0} ms")),
        );
    }
    println!();
    println!(
        "ratio ferry copy / fastest reference ({}): {:.2}  ({:.0} vs {:.0} MiB/s; goal >= 0.90: {})",
        r.ratio.fastest_reference,
        r.ratio.ratio,
        r.ratio.ferry_copy_mib_per_s,
        r.ratio.fastest_reference_mib_per_s,
        if r.ratio.ratio >= 0.9 { "met" } else { "NOT met" }
    );
    let acks = |name: &str| {
        r.rows
            .iter()
            .find(|row| row.method.starts_with(name))
            .and_then(|row| row.writer_acks_per_s)
            .unwrap_or(f64::NAN)
    };
    println!(
        "writer during the move vs idle: ferry {:.0} %, proxmox way {:.0} %",
        100.0 * acks("ferry live move") / acks("writer idle (engine"),
        100.0 * acks("proxmox way") / acks("writer idle (mirror")
    );
    println!(
        "ferry copy window by the engine's steps (createVolumeCrossSD start -> cloneInternalVolumes end): {:.2} s ({:.0} MiB/s)",
        r.ferry.copy_window_seconds,
        mib(r.ferry.bytes) / r.ferry.copy_window_seconds
    );
    let steps: Vec<String> = r
        .ferry
        .steps
        .iter()
        .map(|s| match s.seconds {
            Some(secs) => format!("{} {secs:.2} s", s.name),
            None => format!("{} -", s.name),
        })
        .collect();
    println!("ferry steps: {}", steps.join(", "));
    println!(
        "mirror: ready after {:.2} s, pivoted at {:.2} s; its job went over {:.0} MiB (zeros included), the flat target holds {:.0} MiB",
        r.mirror.ready_seconds,
        r.mirror.total_seconds,
        mib(r.mirror.job_bytes),
        mib(r.mirror.target_allocated_bytes)
    );
}
