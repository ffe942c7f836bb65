//! `ferry demo`: the storage layer's main job on its own — a disk with a
//! three-volume chain copied layer-exact to another domain and verified.
//! (`ferry up --demo` replaces it once the engine and agent exist.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_api::VolumeFormat;
use ferry_storage::{copy_chain, Chain, CopyControl, DomainSet, StorageDomain, Volume, VolumeSpec};
use uuid::Uuid;

use crate::progress;
use crate::stdout::out;
use crate::storage_cmd::print_chain;

/// The file that marks a directory as made by `ferry demo`, so a rerun may
/// clear it and nothing else is ever removed.
const MARKER: &str = ".ferry-demo";

/// Arguments of `ferry demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo's domains go (cleared first if an earlier demo made it).
    #[arg(long, env = "FERRY_DATA_DIR", default_value = "ferry-demo")]
    data_dir: PathBuf,
    /// Virtual size of the demo disk in GiB.
    #[arg(long, default_value_t = 4)]
    size_gib: u64,
}

/// Runs the demo. Every step prints what it did, and the copy is checked
/// once more with `qemu-img compare`, apart from the copy's own checks,
/// so the demo shows the result rather than asserting it.
pub fn run(args: &DemoArgs) -> Result<()> {
    let root = prepare_dir(&args.data_dir)?;
    out!("== Ferry storage demo in {}", root.display());
    let d1 = StorageDomain::create(&root, "domain1")?;
    let d2 = StorageDomain::create(&root, "domain2")?;
    out!("created storage domains {d1} and {d2}");

    let image = Uuid::new_v4();
    let size = args.size_gib.max(1) << 30;
    make_chain(&d1, image, size)?;
    let domains = DomainSet::new([d1.clone(), d2.clone()]);
    let chain = Chain::of_image(&domains, &d1, image)?;
    out!(
        "\ndisk demo-disk (image {image}, {} virtual) on domain1: base(raw) <- snap1(qcow2) <- snap2(qcow2)",
        indicatif::HumanBytes(size)
    );
    print_chain(&chain);

    copy(&domains, &chain, &d2, size)?;
    let copied = Chain::of_image(&domains, &d2, image)?;
    out!("\ndisk demo-disk on domain2:");
    print_chain(&copied);

    compare_layers(&chain, &copied)?;
    out!("\ndemo finished: demo-disk's whole chain is on domain2, byte for byte as the guest sees it.");
    Ok(())
}

/// Makes demo-disk's three layers on `domain`, each written through its
/// chain as a guest would. The writes are the cases a careless copy gets
/// wrong: data over the parent's, zeroes over the parent's data, a
/// discard.
fn make_chain(domain: &StorageDomain, image: Uuid, size: u64) -> Result<()> {
    let mut spec = VolumeSpec::base(image, VolumeFormat::Raw, size);
    spec.description = "demo-disk base".into();
    let base = domain.create_volume(&spec)?;
    write(
        &base,
        &[
            "write -P 0xa1 0 96M",
            "write -P 0xa2 512M 32M",
            "write -P 0xa3 1G 16M",
        ],
    )?;
    let snap1 = domain.create_volume(&VolumeSpec::child_of(&base))?;
    // Zero writes over base data: a naive copy that drops them lets 0xa1 show through.
    write(
        &snap1,
        &[
            "write -P 0xb1 8M 24M",
            "write -z 64M 8M",
            "write -P 0xb2 520M 4M",
        ],
    )?;
    let snap2 = domain.create_volume(&VolumeSpec::child_of(&snap1))?;
    write(
        &snap2,
        &["write -P 0xc1 16M 8M", "write -z 0 1M", "discard 8M 64k"],
    )?;
    Ok(())
}

/// Copies the whole chain to `dst` with a progress bar, and says how much
/// was copied against how much is virtual: the gap is what a layer-exact
/// copy saves.
fn copy(domains: &DomainSet, chain: &Chain, dst: &StorageDomain, size: u64) -> Result<()> {
    out!("\ncopying every layer of demo-disk to domain2, layer-exact ...");
    let pb = progress::bar("copying", false);
    let report = |p| progress::update(&pb, p);
    let ctl = CopyControl {
        progress: Some(&report),
        ..CopyControl::default()
    };
    let started = Instant::now();
    let outcomes = copy_chain(domains, chain, dst, &ctl)?;
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes_copied).sum();
    out!(
        "copied {} of data ({} virtual) in {secs:.2} s; each copy verified (imago content + qemu-img map allocation) and marked LEGAL",
        indicatif::HumanBytes(bytes),
        indicatif::HumanBytes(size * 3)
    );
    Ok(())
}

/// Compares each copied layer with its source, each read through its own
/// chain, so a layer that is wrong shows even where a layer above hides
/// it.
fn compare_layers(chain: &Chain, copied: &Chain) -> Result<()> {
    out!("\nindependent check with `qemu-img compare`, every layer through its own chain:");
    for (src, dst) in chain.volumes().zip(copied.volumes()) {
        let same = compare(&src.path(), &dst.path())?;
        out!(
            "  {}  {}",
            src.id(),
            if same { "identical" } else { "DIFFERENT" }
        );
        if !same {
            bail!("layer {} differs after the copy", src.id());
        }
    }
    Ok(())
}

/// Makes `dir/domains` empty and marked, refusing to clear anything an
/// earlier demo did not make.
fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("domains");
    if root.exists() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and was not made by `ferry demo`; choose another --data-dir",
                root.display()
            );
        }
        fs::remove_dir_all(&root).with_context(|| format!("cannot clear {}", root.display()))?;
    }
    fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    fs::write(dir.join(MARKER), "made by ferry demo; safe to delete\n")
        .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))?;
    Ok(root.canonicalize().unwrap_or(root))
}

/// Writes as a guest would, through the volume's chain, with `qemu-io`.
fn write(volume: &Volume, commands: &[&str]) -> Result<()> {
    let format = volume.metadata()?.format;
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", format.qemu_name()]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd
        .arg(volume.path())
        .output()
        .context("cannot run qemu-io; is qemu-utils installed?")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.contains("failed") {
        bail!(
            "qemu-io {commands:?} on {} failed: {stdout}{}",
            volume.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `qemu-img compare`: true when both read the same.
fn compare(a: &Path, b: &Path) -> Result<bool> {
    let out = Command::new("qemu-img")
        .args(["compare", "-U"])
        .arg(a)
        .arg(b)
        .output()
        .context("cannot run qemu-img")?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => bail!(
            "qemu-img compare failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
