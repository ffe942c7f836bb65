//! The engine's command-line client: `ferry domain|host|disk|vm|job|event ...`.
//!
//! Where the engine is and its token come from `--engine`/`--token`, else
//! `FERRY_URL`/`FERRY_TOKEN`, else the `client.json` that `ferry up` writes
//! in its data directory (`--data-dir` or `FERRY_DATA_DIR`). An `https://`
//! engine is trusted only if its certificate chains to the CA of `--ca`
//! (`FERRY_CA`) or of `client.json`: there is no way to skip the check.
//! Every command prints a table for people or, with `--json`, the API's
//! JSON for scripts.

mod disk;
mod domain;
mod event;
mod host;
mod job;
mod move_args;
mod names;
pub mod output;
mod vm;
mod wait;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferry_engine::EngineClient;
use serde::{Deserialize, Serialize};

pub use disk::DiskCommand;
pub use domain::DomainCommand;
pub use event::EventCommand;
pub use host::HostCommand;
pub use job::JobCommand;
pub use vm::VmCommand;

/// Where to reach the engine, shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The engine's URL (default: FERRY_URL, else client.json).
    #[arg(long, global = true, value_name = "URL")]
    pub engine: Option<String>,
    /// The engine's token (default: FERRY_TOKEN, else client.json).
    #[arg(long, global = true, value_name = "T")]
    pub token: Option<String>,
    /// The CA certificate (PEM) the engine's HTTPS certificate must chain
    /// to: the engine's DIR/pki/ca.pem (default: FERRY_CA, else the CA in
    /// client.json).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Ferry's data directory: `ferry up` keeps its state there and writes
    /// client.json, which client commands read.
    #[arg(long, global = true, value_name = "DIR", env = "FERRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `client.json`: how a client reaches the engine of a data directory. It
/// holds the engine's token, so it is written mode 0600.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClientFile {
    /// The engine's base URL.
    pub url: String,
    /// Its bearer token.
    pub token: String,
    /// The engine's CA certificate (PEM), which an `https://` engine's
    /// certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

impl std::fmt::Debug for ClientFile {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientFile")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ClientFile {
    /// Where `ferry up` writes it.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("client.json")
    }

    /// Writes it into `data_dir`, mode 0600, atomically.
    pub fn write(&self, data_dir: &Path) -> Result<()> {
        ferry_pki::files::write_private(&Self::path(data_dir), &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", Self::path(data_dir).display()))
    }

    /// Reads it.
    pub fn read(data_dir: &Path) -> Result<ClientFile> {
        let path = Self::path(data_dir);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {}; start Ferry there with `ferry up --data-dir {}`, or pass --engine and --token",
                path.display(),
                data_dir.display()
            )
        })?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a Ferry client file", path.display()))
    }
}

/// The default data directory when neither `--data-dir` nor
/// `FERRY_DATA_DIR` is given.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("ferry-data")
}

impl Connection {
    /// A client for the engine this connection names.
    pub fn client(&self) -> Result<EngineClient> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut url = self.engine.clone().or_else(|| env("FERRY_URL"));
        let mut token = self.token.clone().or_else(|| env("FERRY_TOKEN"));
        let mut ca = match self
            .ca
            .clone()
            .or_else(|| env("FERRY_CA").map(PathBuf::from))
        {
            Some(path) => Some(std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read the CA certificate {}; give the engine's pki/ca.pem",
                    path.display()
                )
            })?),
            None => None,
        };
        let dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        if url.is_none() || token.is_none() {
            let file = ClientFile::read(&dir)?;
            url.get_or_insert(file.url);
            token.get_or_insert(file.token);
            if ca.is_none() {
                ca = file.ca;
            }
        } else if ca.is_none() {
            ca = ClientFile::read(&dir).ok().and_then(|f| f.ca);
        }
        let (Some(url), Some(token)) = (url, token) else {
            bail!("no engine to talk to: pass --engine and --token, or --data-dir of a `ferry up`");
        };
        if !url.trim_start().starts_with("https://") {
            return Ok(EngineClient::new(url, token));
        }
        let Some(ca) = ca else {
            bail!(
                "the engine at {url} speaks HTTPS and no CA is given to check its certificate: pass --ca with the engine's DIR/pki/ca.pem (or set FERRY_CA), or use the client.json of its data directory"
            );
        };
        let tls = ferry_http::ClientTls::trusting(&ca)
            .context("the CA certificate given with --ca, FERRY_CA or client.json is not usable")?;
        Ok(EngineClient::with_tls(url, token, &tls))
    }
}

/// Runs a client command on a fresh runtime.
pub fn run<F, Fut>(conn: &Connection, f: F) -> Result<()>
where
    F: FnOnce(EngineClient, bool) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let client = conn.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(f(client, conn.json))
}

/// A group of client commands with the connection options, which every
/// command of the group accepts (`ferry disk list --json`).
#[derive(Debug, Args)]
pub struct Group<T: Subcommand> {
    #[command(subcommand)]
    cmd: T,
    #[command(flatten)]
    conn: Connection,
}

/// The client command groups.
#[derive(Debug)]
pub enum ClientCommand {
    /// Storage domains.
    Domain(DomainCommand),
    /// Hypervisor hosts.
    Host(HostCommand),
    /// Disks and their chains; move a disk.
    Disk(DiskCommand),
    /// VMs; move all of a VM's disks.
    Vm(VmCommand),
    /// Move jobs.
    Job(JobCommand),
    /// The event log.
    Event(EventCommand),
}

/// Runs a command of a group.
pub fn run_group<T: Subcommand>(group: Group<T>, wrap: fn(T) -> ClientCommand) -> Result<()> {
    dispatch(wrap(group.cmd), &group.conn)
}

/// Runs a client command.
pub fn dispatch(cmd: ClientCommand, conn: &Connection) -> Result<()> {
    match cmd {
        ClientCommand::Domain(c) => run(conn, |cl, json| domain::run(cl, c, json)),
        ClientCommand::Host(c) => run(conn, |cl, json| host::run(cl, c, json)),
        ClientCommand::Disk(c) => run(conn, |cl, json| disk::run(cl, c, json)),
        ClientCommand::Vm(c) => run(conn, |cl, json| vm::run(cl, c, json)),
        ClientCommand::Job(c) => run(conn, |cl, json| job::run(cl, c, json)),
        ClientCommand::Event(c) => run(conn, |cl, json| event::run(cl, c, json)),
    }
}
