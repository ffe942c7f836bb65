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
//! over the phase; a switch's pause is
//! [`max_stall`](ferry_testkit::guest::max_stall) over the acks from the
//! last one seen before the step was seen started to a few after it was
//! seen done (the engine is polled every 20 ms, and so is the serial log).
//!
//! Ferry's move runs once per pacing setting (`--settings`: the default,
//! paced by the guest, and fixed caps) and round (`--rounds`, each setting
//! again in the same order, so a slow minute of the disk falls on every
//! setting alike and each setting's median and range are reported), the
//! disk going back and forth between domain1 and domain2 on the same VM,
//! so every setting moves the same chain on the same disk under the same
//! writer. Before each move the
//! previous one's writeback is flushed (`sync`), the writer's idle rate
//! measured afresh (the disk is not the same after gigabytes were written)
//! and the page cache dropped, as before every other phase.
//!
//! Each phase is a module: `services` (engine and agent), `chain` (the
//! disk), `guest` (the writer), `settings` (the pacing settings),
//! `ferry_move`, `reference` (`cp`, `qemu-img`), `mirror`; `report` and
//! `table` say what they measured; `workdir` holds the files.

mod chain;
mod ferry_move;
mod guest;
mod mirror;
mod reference;
mod report;
mod services;
mod settings;
mod table;
mod workdir;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_api::engine::{CreateVm, DirectBoot, Disk};
use ferry_host::Accel;
use ferry_testkit::guest::{Duty, SerialLog, WriterConfig};

use crate::common::{drop_caches, GIB, MIB};
use report::{LayerReport, Report, ReportParts, SettingRun};
use services::Services;
use settings::Setting;
use workdir::{prepare_dir, Cleanup};

/// How often the bench looks at the engine's job, the agent's copy tasks
/// and the guest's console: fine enough to bracket a switch of a few
/// milliseconds by a handful of writes.
const POLL: Duration = Duration::from_millis(20);
/// How long the writer's idle rate is measured before each move.
const IDLE: Duration = Duration::from_secs(5);
/// Acks after a step was seen done that still count for its pause: a write
/// held up by the switch is acknowledged (and printed) only after it.
const AFTER_ACKS: u64 = 5;
/// The whole move or mirror; far above what either takes.
const MOVE_LIMIT: Duration = Duration::from_secs(1800);
/// The writer's region, past every layer's data.
const WRITER_LEN: u64 = 8 * MIB;
/// Room at the end of the disk for the writer's region.
const TAIL: u64 = 64 * MIB;
const DISK: &str = "bench-disk";
const VM: &str = "bench-vm";
const VM_MEMORY_MIB: u64 = 256;

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
    /// The pacing settings to move the disk with, comma-separated, each a
    /// whole live move: `default` (paced by the guest, no cap; required:
    /// the main table's rows are its move, and it runs first), `fixed-N`
    /// (`pace: fixed`, N MiB/s), `fixed-none` (as fast as the disks go),
    /// `guest-N` (paced by the guest under N MiB/s) and `share-P` (paced by
    /// the guest, which keeps P % of its I/O rate; the default is 80).
    #[arg(long, value_delimiter = ',', default_value = settings::ALL)]
    settings: Vec<Setting>,
    /// Let the guest write in bursts, `BUSY_MS/QUIET_MS` (say 2000/2000):
    /// writing for BUSY_MS, resting for QUIET_MS, and again. A steady
    /// writer (the default) leaves a guest-aware copy nothing to use that a
    /// fixed cap does not; a guest whose I/O comes and goes does. The
    /// writer's rates are then per second of writing.
    #[arg(long, value_parser = parse_duty)]
    writer_duty: Option<Duty>,
    /// Run every setting this many times, round after round (the default
    /// first in each), and report each setting's median and range beside
    /// every run. One disk's speed drifts by tens of percent from minute
    /// to minute (a neighbour's writeback, the host's own cache); one run
    /// per setting then says as much about the minute as about the setting.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
}

/// Parses `BUSY_MS/QUIET_MS`.
fn parse_duty(text: &str) -> Result<Duty, String> {
    let bad = || {
        format!("{text:?} is not BUSY_MS/QUIET_MS (two whole numbers of ms from 1 to 3600000, say 2000/2000)")
    };
    let (busy, quiet) = text.split_once('/').ok_or_else(bad)?;
    let ms = |s: &str| {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|v| (1..=3_600_000).contains(v))
            .ok_or_else(bad)
    };
    Ok(Duty {
        busy_ms: ms(busy)?,
        quiet_ms: ms(quiet)?,
    })
}

/// Runs `ferry-bench move`.
pub fn run(args: &MoveBenchArgs) -> Result<()> {
    if args.base_gib == 0 {
        bail!("--base-gib must be at least 1");
    }
    let accel: Accel = args.accel.parse()?;
    let Some(settings) = settings::run_order(&args.settings) else {
        bail!("--settings must include default: the main table's rows are its move");
    };
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
    let plan = Plan {
        base_gib: args.base_gib,
        accel,
        settings: &settings,
        duty: args.writer_duty,
        rounds: args.rounds,
    };
    let result = runtime.block_on(bench(&dir, &plan));
    // A copy task still running on a blocking thread after a failure must
    // not hold the process: the guard below removes its files anyway.
    runtime.shutdown_timeout(Duration::from_secs(5));
    let report = result?;
    cleanup.keep_logs = false;
    drop(cleanup);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        table::print_table(&report);
    }
    Ok(())
}

/// What one run of the bench measures, from its arguments.
#[derive(Debug)]
struct Plan<'a> {
    base_gib: u64,
    accel: Accel,
    /// The default first (`settings::run_order`).
    settings: &'a [Setting],
    duty: Option<Duty>,
    /// How many times every setting moves the disk.
    rounds: u32,
}

async fn bench(dir: &Path, plan: &Plan<'_>) -> Result<Report> {
    let services = Services::start(dir, plan.accel).await?;
    let result = phases(&services, dir, plan).await;
    services.stop().await;
    result
}

/// The bench's phases in order: the chain, the writing VM, Ferry's move
/// once per setting and round (each after the writer's idle rate), the
/// reference copies, the mirror.
async fn phases(s: &Services, dir: &Path, plan: &Plan<'_>) -> Result<Report> {
    let Plan {
        base_gib,
        accel,
        settings,
        duty,
        rounds,
    } = *plan;
    let c = &s.client;
    let span = 2 * base_gib * GIB;
    let writer = WriterConfig {
        duty,
        ..WriterConfig::new(span, WRITER_LEN)
    };
    let boot = guest::boot(&writer)?;

    eprintln!("building the chain ({base_gib} GiB of base data) ...");
    chain::build(c, span).await?;

    eprintln!("starting the VM and its writer ...");
    let mut log = start_vm(s, &boot).await?;
    let mut dropped = true;
    let mut moves = Vec::new();
    for round in 1..=rounds {
        for &setting in settings {
            // Back and forth: the first move goes to domain2, as it always
            // did.
            let to = if moves.len() % 2 == 0 {
                "domain2"
            } else {
                "domain1"
            };
            let run = (setting, round);
            moves.push(move_with(s, &mut log, &writer, run, to, &mut dropped).await?);
        }
    }
    c.kill_vm(VM).await.context("cannot stop the VM")?;
    let mut moves = moves.into_iter();
    let default = moves.next().context("no move ran")?;

    let moved = c.disk(DISK).await?;
    let chain = layers(&moved)?;

    eprintln!("reference copies of the same files ...");
    let refs = reference::copies(dir, &moved, &mut dropped)?;

    eprintln!("the Proxmox way: blockdev-mirror of the whole disk ...");
    let mirror = mirror::mirror_move(dir, &moved, accel, &boot, &writer, &mut dropped).await?;

    Ok(report::report(ReportParts {
        accel,
        base_gib,
        virtual_bytes: moved.size,
        chain,
        writer,
        dropped,
        default,
        others: moves.collect(),
        refs,
        mirror,
    }))
}

/// One setting's move of the disk to `to` in a round: the previous move's
/// writeback flushed, the writer's idle rate measured, the page cache
/// dropped, then the move, watched. `dropped` stays true only if every
/// drop worked.
async fn move_with(
    s: &Services,
    log: &mut SerialLog,
    writer: &WriterConfig,
    (setting, round): (Setting, u32),
    to: &str,
    dropped: &mut bool,
) -> Result<SettingRun> {
    // The idle rate must not pay for the last move's dirty pages.
    let _ = std::process::Command::new("sync").status();
    eprintln!(
        "measuring the idle writer ({} s) ...",
        guest::idle_window(writer).as_secs()
    );
    let idle = guest::idle_rate(log, writer).await;
    *dropped &= drop_caches();
    eprintln!(
        "moving {DISK} to {to}, {} (round {round}) ...",
        setting.describe()
    );
    let ferry = ferry_move::ferry_move(s, log, writer, &setting.request(to))
        .await
        .with_context(|| format!("the move with setting {setting} in round {round}"))?;
    Ok(SettingRun {
        setting,
        round,
        idle,
        ferry,
    })
}

/// Creates and starts the bench's VM on the local host through the engine
/// and waits until its guest writes; returns its console.
async fn start_vm(s: &Services, boot: &DirectBoot) -> Result<SerialLog> {
    let c = &s.client;
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
    guest::wait_writing(&mut log)?;
    Ok(log)
}

/// Each volume of the moved chain, base first, with what it takes on disk.
fn layers(moved: &Disk) -> Result<Vec<LayerReport>> {
    moved
        .volumes
        .iter()
        .map(|v| {
            Ok(LayerReport {
                format: v.format,
                allocated_bytes: allocated(&v.path)?,
            })
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// What a file takes on disk.
fn allocated(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)
        .with_context(|| format!("cannot inspect {}", path.display()))?
        .blocks()
        * 512)
}
