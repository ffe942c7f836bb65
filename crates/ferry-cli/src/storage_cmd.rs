//! `ferry storage ...`: tools that act on domain directories directly, for
//! administrators and for tests (crash-safety tests kill `copy-image`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferry_storage::throttle::Throttle;
use ferry_storage::{copy_chain, Chain, CopyControl, DomainSet, StorageDomain};
use serde::Serialize;
use uuid::Uuid;

use crate::progress;
use crate::stdout::out;

/// Storage tools.
#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Create a file storage domain under a directory.
    CreateDomain {
        /// The directory the domain goes in (`<DIR>/<sd_uuid>`).
        #[arg(long)]
        path: PathBuf,
        /// The domain's name.
        name: String,
    },
    /// Show an image's chain, base first.
    Chain(ChainArgs),
    /// Copy an image's whole chain layer-exact to another domain and verify it.
    CopyImage(CopyImageArgs),
}

/// Arguments of `ferry storage chain`.
#[derive(Debug, Args)]
pub struct ChainArgs {
    /// The domain directory (`<root>/<sd_uuid>`).
    #[arg(long)]
    domain: PathBuf,
    /// The image (disk) UUID.
    #[arg(long)]
    image: Uuid,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ferry storage copy-image`.
#[derive(Debug, Args)]
pub struct CopyImageArgs {
    /// The source domain directory (`<root>/<sd_uuid>`).
    #[arg(long)]
    from: PathBuf,
    /// The destination domain directory.
    #[arg(long)]
    to: PathBuf,
    /// The image (disk) UUID.
    #[arg(long)]
    image: Uuid,
    /// Bandwidth limit in MiB/s.
    #[arg(long, value_name = "MIB_PER_S")]
    bandwidth: Option<u64>,
    /// Machine-readable output, no progress bar.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct VolumeRow {
    id: Uuid,
    domain: Uuid,
    path: PathBuf,
    format: ferry_api::VolumeFormat,
    parent: Option<Uuid>,
    legality: ferry_api::Legality,
    voltype: ferry_api::VolumeRole,
    capacity: u64,
}

fn rows(chain: &Chain) -> Vec<VolumeRow> {
    chain
        .links()
        .iter()
        .map(|l| VolumeRow {
            id: l.volume.id(),
            domain: l.volume.domain().uuid(),
            path: l.volume.path(),
            format: l.metadata.format,
            parent: l.metadata.parent,
            legality: l.metadata.legality,
            voltype: l.metadata.role,
            capacity: l.metadata.capacity,
        })
        .collect()
}

/// Prints a chain as a table, base first.
pub fn print_chain(chain: &Chain) {
    out!(
        "{:<38} {:<7} {:<9} {:<8} {:>10}",
        "VOLUME",
        "FORMAT",
        "VOLTYPE",
        "LEGALITY",
        "ALLOCATED"
    );
    for l in chain.links() {
        let alloc = l.volume.allocated_bytes().unwrap_or(0);
        out!(
            "{:<38} {:<7} {:<9} {:<8} {:>10}",
            l.volume.id(),
            l.metadata.format.qemu_name(),
            format!("{:?}", l.metadata.role).to_uppercase(),
            format!("{:?}", l.metadata.legality).to_uppercase(),
            indicatif::HumanBytes(alloc).to_string(),
        );
    }
}

pub fn run(cmd: StorageCommand) -> Result<()> {
    match cmd {
        StorageCommand::CreateDomain { path, name } => {
            let d = StorageDomain::create(&path, &name)?;
            out!("{}", d.path().display());
            Ok(())
        }
        StorageCommand::Chain(args) => {
            let domain = StorageDomain::open(&args.domain)?;
            let domains = sibling_domains(&domain)?;
            let chain = Chain::of_image(&domains, &domain, args.image)?;
            if args.json {
                out!("{}", serde_json::to_string_pretty(&rows(&chain))?);
            } else {
                print_chain(&chain);
            }
            Ok(())
        }
        StorageCommand::CopyImage(args) => copy_image(&args),
    }
}

/// The domain and every domain beside it under the same root, so a chain
/// with a cross-domain parent can be followed.
fn sibling_domains(domain: &StorageDomain) -> Result<DomainSet> {
    let mut set = DomainSet::new([domain.clone()]);
    if let Some(root) = domain.path().parent() {
        for d in StorageDomain::scan(root).unwrap_or_default() {
            set.insert(d);
        }
    }
    Ok(set)
}

fn copy_image(args: &CopyImageArgs) -> Result<()> {
    let src = StorageDomain::open(&args.from)?;
    let dst = StorageDomain::open(&args.to)?;
    if src.uuid() == dst.uuid() {
        bail!("--from and --to are the same domain ({src}); choose another destination");
    }
    let mut domains = sibling_domains(&src)?;
    domains.insert(dst.clone());
    let chain = Chain::of_image(&domains, &src, args.image)
        .with_context(|| format!("cannot read image {} on {src}", args.image))?;
    let pb = progress::bar("copying", args.json);
    let report = |p| progress::update(&pb, p);
    let cancel = Arc::new(AtomicBool::new(false));
    let throttle = args
        .bandwidth
        .map(|m| Throttle::new(m.saturating_mul(1 << 20)));
    let ctl = CopyControl {
        throttle: throttle.as_ref(),
        cancel: Some(&cancel),
        progress: Some(&report),
        workers: 0,
        ..CopyControl::default()
    };
    let outcomes = copy_chain(&domains, &chain, &dst, &ctl)?;
    pb.finish_and_clear();
    let copied = Chain::of_image(&domains, &dst, args.image)?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&rows(&copied))?);
    } else {
        let bytes: u64 = outcomes.iter().map(|o| o.bytes_copied).sum();
        out!(
            "copied image {} to {dst}: {} volumes, {} moved, every layer verified",
            args.image,
            outcomes.len(),
            indicatif::HumanBytes(bytes)
        );
        print_chain(&copied);
    }
    Ok(())
}
