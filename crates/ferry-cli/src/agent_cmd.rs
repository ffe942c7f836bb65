//! `ferry agent`: runs the host agent daemon on this host until SIGTERM or
//! Ctrl-C, then stops gracefully (tasks stop and resume at the next start,
//! the SPM lease is released). `ferry agent enroll` gets the agent its
//! certificate from the engine first, once: the agent speaks mutual TLS
//! only.
//!
//! The rest of the CLI is synchronous; the agent gets its own tokio
//! runtime here.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ferry_host::{AgentConfig, Server};

use crate::stdout::out;

/// How long the exit waits for blocking work after the agent stopped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Arguments of `ferry agent`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    #[command(flatten)]
    run: RunArgs,
}

/// What `ferry agent` does besides running.
#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Get this host's certificate from the engine, once, before the
    /// agent's first start: a key is made here (it never leaves the host)
    /// and only a signing request is sent, with the one-time token that
    /// `ferry host add` printed on the engine. Stop the agent first.
    Enroll(EnrollArgs),
}

/// Arguments of `ferry agent enroll`.
#[derive(Debug, Args)]
struct EnrollArgs {
    /// The engine's URL (https://engine:8443; http:// only for an engine
    /// on this machine's loopback).
    #[arg(long, value_name = "URL")]
    engine: String,
    /// The one-time enrolment token; prefer the environment variable,
    /// which other users cannot see in `ps`.
    #[arg(long, env = "FERRY_ENROLL_TOKEN", hide_env_values = true)]
    token: String,
    /// The agent's own directory; the key and certificates go to its pki/.
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
}

/// Arguments of the agent daemon.
#[derive(Debug, Args)]
struct RunArgs {
    /// This host's name, as the engine knows it (default: the name in its
    /// certificate, which must match).
    #[arg(long)]
    name: Option<String>,
    /// Address to listen on; use 0.0.0.0:54321 for a remote engine, port 0
    /// for any free port. The bound address is printed on standard output.
    /// The agent speaks HTTPS with client certificates only.
    #[arg(long, default_value = "127.0.0.1:54321")]
    listen: SocketAddr,
    /// The agent's own directory (its certificate, task records, connected
    /// domains).
    #[arg(long, value_name = "DIR", required = true)]
    run_dir: Option<PathBuf>,
    /// A storage domain directory (`<root>/<sd_uuid>`) to connect at start;
    /// repeat for several.
    #[arg(long = "domain", value_name = "PATH")]
    domains: Vec<PathBuf>,
    /// How VMs run: kvm on production hosts; tcg (software emulation) where
    /// KVM cannot run guests, such as nested test machines.
    #[arg(long, default_value = "kvm", value_parser = ["kvm", "tcg"])]
    accel: String,
}

/// Runs the agent until it is told to stop, or enrolls it. Set
/// `FERRY_LOG=info` to see what it does.
pub fn run(args: AgentArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-agent")
        .build()
        .context("cannot start the agent's async runtime")?;
    let result = match args.command {
        Some(AgentCommand::Enroll(e)) => runtime.block_on(enroll(e)),
        None => runtime.block_on(serve(args.run)),
    };
    // The agent has stopped its tasks; do not let a blocking storage call
    // that ignores the stop request (a long verify) hold the exit forever.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

async fn enroll(args: EnrollArgs) -> Result<()> {
    let info = ferry_host::enroll::enroll(&args.engine, &args.token, &args.run_dir)
        .await
        .map_err(|e| anyhow::anyhow!(e.full_text()))
        .context("enrolment failed; nothing was changed")?;
    out!(
        "enrolled as host {}: certificate sha256:{} valid until {} (epoch {}); start the agent with `ferry agent --run-dir {}`",
        info.common_name.as_deref().unwrap_or("?"),
        info.fingerprint,
        ferry_engine::ops::certs::date(u64::try_from(info.not_after).unwrap_or(0)),
        info.not_after,
        args.run_dir.display()
    );
    Ok(())
}

async fn serve(args: RunArgs) -> Result<()> {
    let run_dir = args
        .run_dir
        .context("give the agent's directory with --run-dir")?;
    let domains = args
        .domains
        .iter()
        .map(|d| std::path::absolute(d).with_context(|| format!("cannot resolve {}", d.display())))
        .collect::<Result<Vec<_>>>()?;
    let config = AgentConfig {
        name: args.name,
        listen: args.listen,
        run_dir,
        domains,
        accel: args.accel.parse()?,
    };
    let server = Server::bind(config).await?;
    // The one line on standard output: scripts and tests read the port
    // from it when listening on port 0.
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", server.local_addr()).context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")?;
    server.run().await?;
    Ok(())
}
