//! `ferry-bench copy`: the layer-exact copy against `cp --sparse=always`
//! and `qemu-img convert -W -m 16` (buffered and through `O_DIRECT`) on
//! the same files, on the same disk, in one run. Prints a table; never
//! judges by wall-clock in tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_api::VolumeFormat;
use ferry_storage::sparse_copy::{
    copy_file_sparse, CopyControl, FLAT_OUT_DIRECT_REQUEST, GENTLE_DIRECT_REQUEST,
};
use ferry_storage::{
    copy_chain, data_bytes, Chain, CopyMethod, DomainSet, StorageDomain, Volume, VolumeSpec,
};
use uuid::Uuid;

use crate::common::{drop_caches, median, run_tool, write_incompressible, RefCopy, GIB, MIB};

/// Arguments of `ferry-bench copy`.
#[derive(Debug, Args)]
pub struct CopyBenchArgs {
    /// Scratch directory (on the disk to measure); removed afterwards.
    #[arg(long, default_value = "target/ferry-bench")]
    dir: PathBuf,
    /// GiB of data in the raw base (the two overlays add half and a quarter of it).
    #[arg(long, default_value_t = 2)]
    base_gib: u64,
    /// Runs of each method; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Copy workers (requests in flight) for Ferry's copy; 0 for the default.
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

/// Runs `ferry-bench copy`.
pub fn run(args: &CopyBenchArgs) -> Result<()> {
    copy_bench(args)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Ferry,
    Cp,
    QemuImg,
    QemuImgDirect,
}

impl Method {
    fn label(self) -> &'static str {
        match self {
            Method::Ferry => "ferry layer-exact copy",
            Method::Cp => RefCopy::Cp.label(),
            Method::QemuImg => RefCopy::QemuImg.label(),
            Method::QemuImgDirect => RefCopy::QemuImgDirect.label(),
        }
    }
}

fn copy_bench(args: &CopyBenchArgs) -> Result<()> {
    if args.runs == 0 || args.base_gib == 0 {
        bail!("--runs and --base-gib must be at least 1");
    }
    // Absolute: a storage domain refuses a relative root.
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let scratch = dir.join(format!("run-{}", Uuid::new_v4()));
    fs::create_dir(&scratch)?;
    let result = bench_in(&scratch, args);
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// What the bench measured, for [`print_table`].
#[derive(Debug)]
struct Figures<'a> {
    scratch: &'a Path,
    runs: usize,
    /// MiB of data in the chain.
    mib: f64,
    virtual_size: u64,
    /// Whether the page cache was dropped before every run.
    dropped: bool,
    /// Each method's median time, in the order of [`METHODS`]; `None`
    /// for the direct reference where the filesystem refuses `O_DIRECT`.
    seconds: Vec<Option<f64>>,
    /// A whole `copy_chain` (copy + verify + metadata).
    full: f64,
    /// Verification of the copied chain alone, right after the copy (what
    /// the copy left in the page cache is read from there).
    verify: f64,
    /// The same verification with the page cache dropped first: what it
    /// would cost after a copy that leaves nothing cached (`O_DIRECT`).
    verify_cold: f64,
    /// Whole `copy_chain`s as a live move copies, with the guest idle:
    /// each direct way ([`LIVE_COPIES`]) and its median time.
    live: Vec<(&'static str, f64)>,
}

/// How a live move's copy moves its data (`ferry-host`'s clone task),
/// each `O_DIRECT` with every chunk read back as it is written (so its
/// verification reads allocation only): in requests that leave a guest
/// room, as a guest-paced or capped copy does, in the larger ones of an
/// uncapped copy, and in whole chunks, as an uncapped one did until run 14
/// (docs/engine.md).
const LIVE_COPIES: [(&str, usize); 3] = [
    (
        "direct, 512 KiB requests (guest-paced)",
        GENTLE_DIRECT_REQUEST,
    ),
    ("direct, 2 MiB requests (no cap)", FLAT_OUT_DIRECT_REQUEST),
    ("direct, whole 8 MiB chunks", 0),
];

/// The methods, in the order the table shows them.
const METHODS: [Method; 4] = [
    Method::Ferry,
    Method::Cp,
    Method::QemuImg,
    Method::QemuImgDirect,
];

fn bench_in(scratch: &Path, args: &CopyBenchArgs) -> Result<()> {
    let d1 = StorageDomain::create(scratch, "domain1")?;
    let d2 = StorageDomain::create(scratch, "domain2")?;
    let live = StorageDomain::create(scratch, "live")?;
    eprintln!(
        "building the chain ({} GiB of base data) ...",
        args.base_gib
    );
    let chain = build_chain(&d1, args.base_gib)?;
    let domains = DomainSet::new([d1, d2.clone(), live.clone()]);
    let bytes: u64 = chain
        .volumes()
        .map(data_bytes)
        .collect::<ferry_storage::Result<Vec<_>>>()?
        .iter()
        .sum();
    let virtual_size: u64 = chain.links().iter().map(|l| l.metadata.capacity).sum();
    let (mut times, dropped) = time_methods(scratch, &chain, args)?;
    let (full, verify, verify_cold) = time_copy_chain(&domains, &chain, &d2, args.workers)?;
    let live = time_live_copies(&domains, &chain, &live, args)?;
    print_table(&Figures {
        scratch,
        runs: args.runs,
        mib: bytes as f64 / MIB as f64,
        virtual_size,
        dropped,
        seconds: times
            .iter_mut()
            .map(|t| (!t.is_empty()).then(|| median(t)))
            .collect(),
        full,
        verify,
        verify_cold,
        live,
    });
    Ok(())
}

/// Copies the chain's files `--runs` times with each method, the page
/// cache dropped before each copy. Returns each method's times (none for
/// the direct reference where the filesystem refuses `O_DIRECT`: the
/// table says so instead of failing the bench), and whether every drop
/// was permitted.
fn time_methods(
    scratch: &Path,
    chain: &Chain,
    args: &CopyBenchArgs,
) -> Result<(Vec<Vec<f64>>, bool)> {
    let sources: Vec<PathBuf> = chain.volumes().map(Volume::path).collect();
    let out_dir = scratch.join("out");
    fs::create_dir(&out_dir)?;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); METHODS.len()];
    let mut dropped = true;
    for run in 0..args.runs {
        // Rotate the order so no method always runs on the warmest disk.
        for k in 0..METHODS.len() {
            let i = (k + run) % METHODS.len();
            let _ = fs::remove_dir_all(&out_dir);
            fs::create_dir(&out_dir)?;
            dropped &= drop_caches();
            let t = Instant::now();
            let copied = sources.iter().enumerate().try_for_each(|(n, src)| {
                copy_with(METHODS[i], src, &dst_in(&out_dir, n), args.workers)
            });
            match copied {
                Ok(()) => times[i].push(t.elapsed().as_secs_f64()),
                Err(e) if METHODS[i] == Method::QemuImgDirect => {
                    eprintln!("{} not measured: {e:#}", METHODS[i].label());
                }
                Err(e) => return Err(e),
            }
        }
    }
    let _ = fs::remove_dir_all(&out_dir);
    Ok((times, dropped))
}

/// Whole `copy_chain`s to `dest` as a live move copies ([`LIVE_COPIES`]),
/// `--runs` times each, the order rotated per run; each way's label and
/// median time. The copy is removed before each run, or the next would
/// find the chain already there.
fn time_live_copies(
    domains: &DomainSet,
    chain: &Chain,
    dest: &StorageDomain,
    args: &CopyBenchArgs,
) -> Result<Vec<(&'static str, f64)>> {
    let image_dir = dest.image_dir(chain.leaf().volume.image());
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); LIVE_COPIES.len()];
    for run in 0..args.runs {
        for k in 0..LIVE_COPIES.len() {
            let i = (k + run) % LIVE_COPIES.len();
            let (label, request) = LIVE_COPIES[i];
            eprintln!("copy_chain as a live move copies: {label} ...");
            match fs::remove_dir_all(&image_dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e)
                        .with_context(|| format!("cannot remove {}", image_dir.display()));
                }
                _ => {}
            }
            let ctl = CopyControl {
                workers: args.workers,
                method: CopyMethod::Direct,
                direct_request: request,
                ..Default::default()
            };
            times[i].push(time_whole_copy(domains, chain, dest, &ctl)?);
        }
    }
    Ok(LIVE_COPIES
        .iter()
        .zip(&mut times)
        .map(|((label, _), t)| (*label, median(t)))
        .collect())
}

/// A whole `copy_chain` to `dest` from a cold cache, as `ctl` copies:
/// copy, verification and metadata, in seconds.
fn time_whole_copy(
    domains: &DomainSet,
    chain: &Chain,
    dest: &StorageDomain,
    ctl: &CopyControl,
) -> Result<f64> {
    drop_caches();
    let t = Instant::now();
    copy_chain(domains, chain, dest, ctl)?;
    Ok(t.elapsed().as_secs_f64())
}

/// A whole `copy_chain` to `d2` from a cold cache, then verification of
/// every copied layer alone, warm (as the copy left the cache) and cold.
/// Returns the three times in seconds.
fn time_copy_chain(
    domains: &DomainSet,
    chain: &Chain,
    d2: &StorageDomain,
    workers: usize,
) -> Result<(f64, f64, f64)> {
    let full = time_whole_copy(
        domains,
        chain,
        d2,
        &CopyControl {
            workers,
            ..Default::default()
        },
    )?;
    let copied = Chain::of_image(domains, d2, chain.leaf().volume.image())?;
    let verify_all = || -> Result<f64> {
        let t = Instant::now();
        for (s, c) in chain.volumes().zip(copied.volumes()) {
            let report = ferry_storage::verify_copy(domains, s, c)?;
            if !report.is_identical() {
                bail!("verification of the benchmark copy failed: {report:?}");
            }
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let warm = verify_all()?;
    drop_caches();
    let cold = verify_all()?;
    Ok((full, warm, cold))
}

fn print_table(f: &Figures) {
    let mib = f.mib;
    println!(
        "Ferry copy benchmark: chain base(raw) <- snap1(qcow2) <- snap2(qcow2), {:.0} MiB of data, {:.0} GiB virtual",
        mib,
        f.virtual_size as f64 / GIB as f64
    );
    println!(
        "directory {}; {} runs per method, median shown; page cache dropped before each run: {}",
        f.scratch.display(),
        f.runs,
        if f.dropped {
            "yes"
        } else {
            "no (not permitted here)"
        }
    );
    println!();
    println!(
        "{:<42} {:>10} {:>10} {:>10}",
        "method", "MiB", "seconds", "MiB/s"
    );
    let mut rates = Vec::new();
    for (m, s) in METHODS.iter().zip(&f.seconds) {
        match s {
            Some(s) => {
                let rate = mib / s;
                rates.push((*m, rate));
                println!("{:<42} {:>10.0} {:>10.2} {:>10.0}", m.label(), mib, s, rate);
            }
            None => println!(
                "{:<42} {:>10.0}  not measured: it failed here (O_DIRECT refused?), its error is above",
                m.label(),
                mib
            ),
        }
    }
    let ferry = rates.iter().find(|(m, _)| *m == Method::Ferry);
    let ferry = ferry.map_or(f64::NAN, |(_, r)| *r);
    let best = rates
        .iter()
        .filter(|(m, _)| *m != Method::Ferry)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let (best_label, best_other) =
        best.map_or(("no reference", f64::NAN), |(m, r)| (m.label(), *r));
    let direct_ref = rates.iter().find(|(m, _)| *m == Method::QemuImgDirect);
    let ratio = ferry / best_other;
    println!();
    println!(
        "ratio ferry / fastest other ({best_label}): {ratio:.2}  (goal >= 0.90: {})",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );
    println!(
        "full copy_chain (copy + verify + metadata), cold cache: {:.2} s; verify alone: {:.2} s ({:.0} MiB/s)",
        f.full,
        f.verify,
        mib / f.verify
    );
    let full_ratio = mib / f.full / best_other;
    println!(
        "ratio full copy_chain / fastest other ({best_label}), verification included: {full_ratio:.2}  (goal >= 0.90: {})",
        if full_ratio >= 0.9 { "met" } else { "NOT met" }
    );
    println!(
        "verify alone from a cold cache (what a copy that leaves nothing cached, O_DIRECT, would add): {:.2} s ({:.0} MiB/s), {:+.2} s against warm",
        f.verify_cold,
        mib / f.verify_cold,
        f.verify_cold - f.verify
    );
    for (label, seconds) in &f.live {
        let ratio = mib / seconds / best_other;
        println!(
            "ratio full copy_chain as a live move copies with the guest idle ({label}) / fastest other: {ratio:.2}  ({seconds:.2} s, {:.0} MiB/s; goal >= 0.90: {})",
            mib / seconds,
            if ratio >= 0.9 { "met" } else { "NOT met" }
        );
    }
    // What the live copy's own reading back costs on this disk: against a
    // copy that also bypasses the page cache but reads nothing back.
    if let Some((m, direct)) = direct_ref.filter(|(m, _)| best.map(|b| b.0) != Some(*m)) {
        for (label, seconds) in &f.live {
            println!(
                "ratio full copy_chain as a live move copies with the guest idle ({label}) / {}: {:.2}",
                m.label(),
                mib / seconds / direct
            );
        }
    }
}

/// Where a reference copy puts the chain's `n`th file.
fn dst_in(out_dir: &Path, n: usize) -> PathBuf {
    out_dir.join(format!("layer{n}"))
}

fn copy_with(method: Method, src: &Path, dst: &Path, workers: usize) -> Result<()> {
    match method {
        Method::Ferry => {
            copy_file_sparse(
                src,
                dst,
                false,
                &CopyControl {
                    workers,
                    ..Default::default()
                },
            )?;
            Ok(())
        }
        Method::Cp => RefCopy::Cp.copy(src, dst),
        Method::QemuImg => RefCopy::QemuImg.copy(src, dst),
        Method::QemuImgDirect => RefCopy::QemuImgDirect.copy(src, dst),
    }
}

/// base(raw): `gib` GiB of incompressible data in 32 MiB runs with 32 MiB
/// holes between; snap1 and snap2 (qcow2) overwrite a half and a quarter
/// of that with qemu-io, including zero writes over base data.
fn build_chain(d1: &StorageDomain, gib: u64) -> Result<Chain> {
    let image = Uuid::new_v4();
    let base = d1.create_volume(&VolumeSpec::base(image, VolumeFormat::Raw, 2 * gib * GIB))?;
    write_incompressible(&base.path(), 2 * gib * GIB)?;
    let snap1 = d1.create_volume(&VolumeSpec::child_of(&base))?;
    let mut cmds = Vec::new();
    let mut off = 0;
    while off < gib * GIB {
        cmds.push(format!("write -P 0x5a {} 32M", off * 2));
        off += 32 * MIB;
    }
    cmds.push(format!("write -z {} 16M", 96 * MIB));
    qemu_io(&snap1, &cmds)?;
    let snap2 = d1.create_volume(&VolumeSpec::child_of(&snap1))?;
    let mut cmds = Vec::new();
    let mut off = 0;
    while off < gib * GIB / 2 {
        cmds.push(format!("write -P 0x6b {} 16M", off * 4 + 16 * MIB));
        off += 16 * MIB;
    }
    qemu_io(&snap2, &cmds)?;
    let domains = DomainSet::new([d1.clone()]);
    Ok(Chain::of_image(&domains, d1, image)?)
}

fn qemu_io(volume: &Volume, commands: &[String]) -> Result<()> {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "qcow2"]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    cmd.arg(volume.path());
    run_tool(&mut cmd)
}
