//! `ferry agent`: runs the host agent daemon on this host until SIGTERM or
//! Ctrl-C, then stops gracefully (tasks stop and resume at the next start,
//! the SPM lease is released).
//!
//! The rest of the CLI is synchronous; the agent gets its own tokio
//! runtime here.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ferry_host::{AgentConfig, Server};

/// How long the exit waits for blocking work after the agent stopped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Arguments of `ferry agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// This host's name, as the engine knows it.
    #[arg(long)]
    name: String,
    /// Address to listen on; use 0.0.0.0:54321 for a remote engine, port 0
    /// for any free port. The bound address is printed on standard output.
    #[arg(long, default_value = "127.0.0.1:54321")]
    listen: SocketAddr,
    /// The bearer token every request (but health) must carry; prefer the
    /// environment variable, which other users cannot see in `ps`.
    #[arg(long, env = "FERRY_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// The agent's own directory (task records, connected domains).
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
    /// A storage domain directory (`<root>/<sd_uuid>`) to connect at start;
    /// repeat for several.
    #[arg(long = "domain", value_name = "PATH")]
    domains: Vec<PathBuf>,
    /// How VMs run: kvm on production hosts; tcg (software emulation) where
    /// KVM cannot run guests, such as nested test machines.
    #[arg(long, default_value = "kvm", value_parser = ["kvm", "tcg"])]
    accel: String,
}

/// Runs the agent until it is told to stop. Set `FERRY_LOG=info` to see
/// what it does.
pub fn run(args: AgentArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-agent")
        .build()
        .context("cannot start the agent's async runtime")?;
    let result = runtime.block_on(serve(args));
    // The agent has stopped its tasks; do not let a blocking storage call
    // that ignores the stop request (a long verify) hold the exit forever.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

async fn serve(args: AgentArgs) -> Result<()> {
    let domains = args
        .domains
        .iter()
        .map(|d| std::path::absolute(d).with_context(|| format!("cannot resolve {}", d.display())))
        .collect::<Result<Vec<_>>>()?;
    let config = AgentConfig {
        name: args.name,
        listen: args.listen,
        token: args.token,
        run_dir: args.run_dir,
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
