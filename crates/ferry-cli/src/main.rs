//! `ferry`: moves the disks of running QEMU VMs between storage domains.
//!
//! Until the engine lands, the command offers the storage layer on its
//! own: a demo of a layer-exact chain copy, low-level storage tools, and the
//! copy benchmark.

mod agent_cmd;
mod bench;
mod demo;
mod progress;
mod storage_cmd;

use clap::{Parser, Subcommand};

/// Ferry moves the disks of running QEMU/KVM VMs between storage domains.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create two domains and a disk with a three-volume chain, copy it
    /// layer-exact to the second domain and verify it.
    Demo(demo::DemoArgs),
    /// Low-level tools that work on storage domain directories directly.
    #[command(subcommand)]
    Storage(storage_cmd::StorageCommand),
    /// Benchmarks whose output is a table of figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the host agent daemon (SPM verbs, tasks) on this host.
    Agent(agent_cmd::AgentArgs),
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
        Command::Demo(args) => demo::run(&args),
        Command::Storage(cmd) => storage_cmd::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Agent(args) => agent_cmd::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
