//! `ferry disk ...`

use anyhow::Result;
use clap::Subcommand;
use ferry_api::engine::{CreateDisk, Disk};
use ferry_api::VolumeFormat;
use ferry_engine::EngineClient;

use super::move_args::MoveArgs;
use super::output::{bytes, json, parse_size, short, table};
use super::wait::started_job;
use crate::stdout::out;

/// Disk commands.
#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Create a disk (one volume) on a storage domain.
    Create {
        /// Its name.
        name: String,
        /// The storage domain, by name or id.
        #[arg(long)]
        domain: String,
        /// Virtual size: bytes or a number with K, M, G, T (e.g. 10G).
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// raw or qcow2.
        #[arg(long, default_value = "raw")]
        format: VolumeFormat,
        /// Allocate the whole size now.
        #[arg(long)]
        preallocated: bool,
    },
    /// List disks.
    List,
    /// Show a disk and its chain, base first.
    Show {
        /// The disk, by name or id.
        disk: String,
    },
    /// Take a snapshot: a new qcow2 leaf (live when the disk's VM runs).
    Snapshot {
        /// The disk, by name or id.
        disk: String,
    },
    /// Move a disk to another storage domain (live when its VM runs).
    Move {
        /// The disk, by name or id.
        disk: String,
        #[command(flatten)]
        how: MoveArgs,
    },
}

/// One arm per subcommand; the longer ones are functions of their own, so
/// the match reads as the list of commands.
pub(super) async fn run(c: EngineClient, cmd: DiskCommand, as_json: bool) -> Result<()> {
    match cmd {
        DiskCommand::Create {
            name,
            domain,
            size,
            format,
            preallocated,
        } => {
            let d = c
                .create_disk(&CreateDisk {
                    name,
                    domain,
                    size,
                    format,
                    preallocated,
                })
                .await?;
            if as_json {
                return json(&d);
            }
            out!("created disk {} ({}), {}", d.name, d.id, bytes(d.size));
        }
        DiskCommand::List => list(&c, as_json).await?,
        DiskCommand::Show { disk } => {
            let d = c.disk(&disk).await?;
            if as_json {
                return json(&d);
            }
            print_disk(&c, &d).await?;
        }
        DiskCommand::Snapshot { disk } => {
            let d = c.snapshot_disk(&disk).await?;
            if as_json {
                return json(&d);
            }
            print_disk(&c, &d).await?;
        }
        DiskCommand::Move { disk, how } => {
            let (request, wait) = how.request();
            let job = c.move_disk(&disk, &request).await?;
            started_job(&c, job, wait, as_json).await?;
        }
    }
    Ok(())
}

/// `ferry disk list`: domains by name rather than UUID, since that is how
/// they are given on the command line, and a disk a job holds says so.
async fn list(c: &EngineClient, as_json: bool) -> Result<()> {
    let list = c.disks().await?;
    if as_json {
        return json(&list);
    }
    let domains = c.domains().await?;
    let name_of = |id: uuid::Uuid| {
        domains
            .iter()
            .find(|d| d.id == id)
            .map_or_else(|| short(&id), |d| d.name.clone())
    };
    let rows = list
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.id.to_string(),
                bytes(d.size),
                name_of(d.domain),
                d.volumes.len().to_string(),
                d.locked_by
                    .map(|j| format!("moving (job {})", short(&j)))
                    .unwrap_or_default(),
            ]
        })
        .collect::<Vec<_>>();
    table(&["NAME", "ID", "SIZE", "DOMAIN", "VOLUMES", "STATE"], &rows);
    Ok(())
}

async fn print_disk(c: &EngineClient, d: &Disk) -> Result<()> {
    let domains = c.domains().await?;
    let name_of = |id: uuid::Uuid| {
        domains
            .iter()
            .find(|x| x.id == id)
            .map_or_else(|| id.to_string(), |x| x.name.clone())
    };
    out!("disk {} ({})", d.name, d.id);
    out!("  size    {}", bytes(d.size));
    out!("  domain  {}", name_of(d.domain));
    if let Some(vm) = d.vm {
        let name = c
            .vm(&vm.to_string())
            .await
            .map_or_else(|_| vm.to_string(), |v| v.name);
        out!("  vm      {name}");
    }
    if let Some(job) = d.locked_by {
        out!("  locked  by job {job}");
    }
    out!("  chain (base first):");
    volume_table(&d.volumes, &name_of);
    if !d.outside_chain.is_empty() {
        out!("  outside the chain (a move's copies, or the source awaiting cleanup):");
        volume_table(&d.outside_chain, &name_of);
    }
    Ok(())
}

/// Prints volumes as a table, their domains by name.
fn volume_table(volumes: &[ferry_api::engine::Volume], name_of: &dyn Fn(uuid::Uuid) -> String) {
    let rows = volumes
        .iter()
        .map(|v| {
            vec![
                v.id.to_string(),
                name_of(v.domain),
                v.format.to_string(),
                format!("{:?}", v.legality).to_uppercase(),
                format!("{:?}", v.voltype).to_uppercase(),
                bytes(v.allocated),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &["VOLUME", "DOMAIN", "FORMAT", "LEGALITY", "TYPE", "DATA"],
        &rows,
    );
}
