//! `ferry engine`: runs the engine daemon (inventory, move flow, REST API)
//! until SIGTERM or Ctrl-C, for set-ups with agents on several hosts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ferry_engine::{EngineConfig, Server};

use crate::stdout::note;

/// Arguments of `ferry engine`.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Address to listen on (the REST API and the web UI).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The bearer token clients must present; prefer the environment
    /// variable, which other users cannot see in `ps`.
    #[arg(long, env = "FERRY_ENGINE_TOKEN", hide_env_values = true)]
    token: String,
    /// The database URL (default: SQLite in DIR/engine.db of --db-dir).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Where the default SQLite database lives.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ferry")]
    db_dir: PathBuf,
    #[command(flatten)]
    limits: crate::limits::LimitArgs,
    #[command(flatten)]
    admin: crate::admin_password::AdminPasswordArgs,
}

/// Runs the engine until it is told to stop.
pub fn run(args: EngineArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-engine")
        .build()
        .context("cannot start the engine's async runtime")?;
    runtime.block_on(async move {
        let admin = args.admin.hash()?;
        let database = args
            .database
            .unwrap_or_else(|| EngineConfig::sqlite_url(&args.db_dir));
        let server = Server::bind(EngineConfig {
            listen: args.listen,
            token: args.token,
            database,
            limits: args.limits.limits(),
        })
        .await?;
        crate::admin_password::AdminPasswordArgs::apply(admin, &server);
        note!("listening on {}", server.local_addr());
        server.run().await?;
        Ok(())
    })
}
