//! `ferry`: moves the disks of running QEMU VMs between storage domains.
//!
//! `ferry up` runs everything on one machine; `ferry engine` and
//! `ferry agent` run the daemons separately; the client commands (`domain`,
//! `host`, `disk`, `vm`, `job`) talk to an engine; `storage` and `demo`
//! work on storage domains directly; `bench` runs the `ferry-bench` binary.

mod admin_password;
mod agent_cmd;
mod bench;
mod client;
mod demo;
mod engine_cmd;
mod limits;
mod progress;
mod shell_docs;
mod stdout;
mod storage_cmd;
mod up;

use clap::{Parser, Subcommand};

/// Ferry moves the disks of running QEMU/KVM VMs between storage domains.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine and a local agent in the foreground until Ctrl-C.
    Up(up::UpArgs),
    /// Storage domains.
    Domain(client::Group<client::DomainCommand>),
    /// Hypervisor hosts.
    Host(client::Group<client::HostCommand>),
    /// Disks and their chains; move a disk.
    Disk(client::Group<client::DiskCommand>),
    /// VMs; move all of a VM's disks together.
    Vm(client::Group<client::VmCommand>),
    /// Move jobs: list, show, wait, cancel.
    Job(client::Group<client::JobCommand>),
    /// The event log: what happened to hosts, VMs, disks, domains and jobs.
    Event(client::Group<client::EventCommand>),
    /// Run the engine daemon (inventory, move flow, REST API).
    Engine(engine_cmd::EngineArgs),
    /// Create two domains and a disk with a three-volume chain, copy it
    /// layer-exact to the second domain and verify it (storage only).
    Demo(demo::DemoArgs),
    /// Low-level tools that work on storage domain directories directly.
    #[command(subcommand)]
    Storage(storage_cmd::StorageCommand),
    /// Benchmarks whose output is a table of figures (the ferry-bench binary).
    ///
    /// Runs ferry-bench, found next to this executable or on PATH, with the
    /// same arguments: `ferry bench --help` shows its help.
    #[command(disable_help_flag = true)]
    Bench(bench::BenchArgs),
    /// Run the host agent daemon (VMs, HSM and SPM verbs) on this host.
    Agent(agent_cmd::AgentArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish,
    /// powershell).
    Completions(shell_docs::CompletionArgs),
    /// Print the man page, or write one per command with --out-dir.
    Man(shell_docs::ManArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Domain(g) => client::run_group(g, client::ClientCommand::Domain),
        Command::Host(g) => client::run_group(g, client::ClientCommand::Host),
        Command::Disk(g) => client::run_group(g, client::ClientCommand::Disk),
        Command::Vm(g) => client::run_group(g, client::ClientCommand::Vm),
        Command::Job(g) => client::run_group(g, client::ClientCommand::Job),
        Command::Event(g) => client::run_group(g, client::ClientCommand::Event),
        Command::Engine(args) => engine_cmd::run(args),
        Command::Demo(args) => demo::run(&args),
        Command::Storage(cmd) => storage_cmd::run(cmd),
        Command::Bench(args) => bench::run(args),
        Command::Agent(args) => agent_cmd::run(args),
        Command::Completions(args) => shell_docs::completions::<Cli>(&args),
        Command::Man(args) => shell_docs::man::<Cli>(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
