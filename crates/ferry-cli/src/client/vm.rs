//! `ferry vm ...`

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use ferry_api::engine::{CreateVm, DirectBoot, Vm, VmState};
use ferry_engine::EngineClient;

use super::move_args::MoveArgs;
use super::output::{json, short, table};
use super::wait::started_job;
use crate::stdout::out;

/// VM commands.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Define a VM with its disks on a host.
    Create {
        /// Its name.
        name: String,
        /// A disk, by name or id; repeat in device order.
        #[arg(long = "disk", required = true)]
        disks: Vec<String>,
        /// Guest memory in MiB.
        #[arg(long, value_name = "MIB")]
        memory: Option<u64>,
        /// The host, by name or id (default: the first host that is up).
        #[arg(long)]
        host: Option<String>,
        /// Boot this kernel directly (with --initrd).
        #[arg(long, requires = "initrd")]
        kernel: Option<PathBuf>,
        /// The initramfs for --kernel.
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
        /// The kernel command line for --kernel.
        #[arg(long, default_value = "")]
        append: String,
    },
    /// Start a VM.
    Start {
        /// The VM, by name or id.
        vm: String,
    },
    /// Stop a VM (the guest gets 30 s to power down).
    Stop {
        /// The VM, by name or id.
        vm: String,
        /// Quit at once instead of asking the guest to power down.
        #[arg(long)]
        force: bool,
    },
    /// Show a VM.
    Show {
        /// The VM, by name or id.
        vm: String,
    },
    /// List VMs.
    List,
    /// Move all of a VM's disks to another storage domain, together.
    Move {
        /// The VM, by name or id.
        vm: String,
        #[command(flatten)]
        how: MoveArgs,
    },
}

fn state(s: VmState) -> &'static str {
    match s {
        VmState::Running => "running",
        VmState::Stopped => "stopped",
        VmState::Unknown => "unknown",
    }
}

/// The state as a word, `paused` for a guest its host paused.
fn state_word(vm: &Vm) -> &'static str {
    if vm.paused.is_some() {
        "paused"
    } else {
        state(vm.state)
    }
}

async fn print_vm(c: &EngineClient, vm: &Vm, as_json: bool) -> Result<()> {
    if as_json {
        return json(vm);
    }
    let hosts = c.hosts().await?;
    let host = hosts
        .iter()
        .find(|h| h.id == vm.host)
        .map_or_else(|| vm.host.to_string(), |h| h.name.clone());
    out!("vm {} ({})", vm.name, vm.id);
    out!("  state   {}", state_word(vm));
    if let Some(why) = &vm.paused {
        out!("  paused  {why}");
    }
    out!("  host    {host}");
    out!("  memory  {} MiB", vm.memory_mib);
    for d in &vm.disks {
        let disk = c.disk(&d.to_string()).await?;
        out!("  disk    {} ({})", disk.name, disk.id);
    }
    Ok(())
}

/// One arm per subcommand; the longer ones are functions of their own, so
/// the match reads as the list of commands.
pub(super) async fn run(c: EngineClient, cmd: VmCommand, as_json: bool) -> Result<()> {
    match cmd {
        VmCommand::Create {
            name,
            disks,
            memory,
            host,
            kernel,
            initrd,
            append,
        } => {
            let boot = direct_boot(kernel, initrd, append)?;
            let vm = c
                .create_vm(&CreateVm {
                    name,
                    disks,
                    memory_mib: memory,
                    host,
                    boot,
                })
                .await?;
            print_vm(&c, &vm, as_json).await?;
        }
        VmCommand::Start { vm } => {
            let vm = c.start_vm(&vm).await?;
            print_vm(&c, &vm, as_json).await?;
        }
        VmCommand::Stop { vm, force } => {
            let vm = if force {
                c.kill_vm(&vm).await?
            } else {
                c.stop_vm(&vm).await?
            };
            print_vm(&c, &vm, as_json).await?;
        }
        VmCommand::Show { vm } => {
            let vm = c.vm(&vm).await?;
            print_vm(&c, &vm, as_json).await?;
        }
        VmCommand::List => list(&c, as_json).await?,
        VmCommand::Move { vm, how } => {
            let (request, wait) = how.request();
            let job = c.move_vm(&vm, &request).await?;
            started_job(&c, job, wait, as_json).await?;
        }
    }
    Ok(())
}

/// The kernel and initrd are made absolute here, since the engine and the
/// VM's host resolve paths from their own directories, not the caller's.
fn direct_boot(
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: String,
) -> Result<Option<DirectBoot>> {
    Ok(match (kernel, initrd) {
        (Some(kernel), Some(initrd)) => Some(DirectBoot {
            kernel: std::path::absolute(kernel)?,
            initrd: std::path::absolute(initrd)?,
            append,
        }),
        _ => None,
    })
}

/// `ferry vm list`: hosts by name rather than UUID, since that is how
/// they are given on the command line.
async fn list(c: &EngineClient, as_json: bool) -> Result<()> {
    let list = c.vms().await?;
    if as_json {
        return json(&list);
    }
    let hosts = c.hosts().await?;
    let rows = list
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.id.to_string(),
                state_word(v).to_string(),
                hosts
                    .iter()
                    .find(|h| h.id == v.host)
                    .map_or_else(|| short(&v.host), |h| h.name.clone()),
                v.disks.len().to_string(),
            ]
        })
        .collect::<Vec<_>>();
    table(&["NAME", "ID", "STATE", "HOST", "DISKS"], &rows);
    Ok(())
}
