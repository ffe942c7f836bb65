//! `ferry engine`: runs the engine daemon (inventory, move flow, REST API
//! and web UI over HTTPS) until SIGTERM or Ctrl-C, for set-ups with agents
//! on several hosts; `ferry engine rotate-certs` renews its certificates
//! and the hosts' while it runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferry_api::engine::RotateCertificates;
use ferry_engine::{EngineConfig, PkiConfig, Server};

use crate::client::{output, Connection};

use crate::stdout::note;

/// Arguments of `ferry engine`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EngineArgs {
    #[command(subcommand)]
    command: Option<EngineCommand>,
    #[command(flatten)]
    run: RunArgs,
}

/// What `ferry engine` does besides running.
#[derive(Debug, Subcommand)]
enum EngineCommand {
    /// Renew the running engine's certificates and every enrolled host's
    /// now (the engine also does it by itself within 30 days of their
    /// end); nothing stops, no VM or move notices.
    RotateCerts {
        /// Only this host (repeat for several; default: every host).
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Arguments of the engine daemon.
#[derive(Debug, Args)]
struct RunArgs {
    /// Address to listen on (the REST API and the web UI, over HTTPS).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The bearer token clients must present; prefer the environment
    /// variable, which other users cannot see in `ps`.
    #[arg(
        long,
        env = "FERRY_ENGINE_TOKEN",
        hide_env_values = true,
        required = true
    )]
    token: Option<String>,
    /// The database URL (default: SQLite in DIR/engine.db of --data-dir).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Where the engine keeps its state: engine.db and pki/ (its CA and
    /// certificates), mode 0700.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/ferry",
        alias = "db-dir"
    )]
    data_dir: PathBuf,
    /// A name or address clients and agents reach the engine by; its
    /// certificate names each (repeat; default: localhost, 127.0.0.1, ::1,
    /// this host's name and the --listen address).
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
    /// The operator's own CA certificate (PEM) to sign the engine's and
    /// the hosts' certificates with, instead of the CA the engine makes in
    /// DIR/pki; give --ca-key with it.
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// That CA's private key (PEM, unencrypted; keep it mode 0600).
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    #[command(flatten)]
    limits: crate::limits::LimitArgs,
    #[command(flatten)]
    admin: crate::admin_password::AdminPasswordArgs,
}

/// Runs the engine until it is told to stop, or rotates its certificates.
pub fn run(args: EngineArgs) -> Result<()> {
    if let Some(EngineCommand::RotateCerts { hosts, conn }) = args.command {
        return crate::client::run(&conn, |c, json| async move {
            let report = c.rotate_certificates(&RotateCertificates { hosts }).await?;
            if json {
                return output::json(&report);
            }
            output::certificates(&report);
            if report.hosts.iter().any(|h| h.error.is_some()) {
                bail!("some hosts' certificates could not be renewed (see ERROR); they keep their current ones");
            }
            Ok(())
        });
    }
    let args = args.run;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-engine")
        .build()
        .context("cannot start the engine's async runtime")?;
    runtime.block_on(async move {
        let admin = args.admin.hash()?;
        let database = args
            .database
            .unwrap_or_else(|| EngineConfig::sqlite_url(&args.data_dir));
        let names = if args.tls_names.is_empty() {
            PkiConfig::default_names(args.listen)
        } else {
            args.tls_names
        };
        let server = Server::bind(EngineConfig {
            listen: args.listen,
            token: args.token.unwrap_or_default(),
            database,
            limits: args.limits.limits(),
            pki: PkiConfig {
                dir: args.data_dir.join("pki"),
                names,
                https: true,
                ca_files: args.ca_cert.zip(args.ca_key),
            },
        })
        .await?;
        crate::admin_password::AdminPasswordArgs::apply(admin, &server);
        note!("listening on {}", server.local_addr());
        note!(
            "  API and web UI at {}; clients trust the CA in {}",
            server.url(),
            args.data_dir.join("pki/ca.pem").display()
        );
        server.run().await?;
        Ok(())
    })
}
