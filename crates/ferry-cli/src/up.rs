//! `ferry up`: the embedded default in one foreground process: the engine
//! with its SQLite database and one local agent, which becomes SPM once a
//! domain exists, until Ctrl-C. `--demo` also makes two domains, a disk
//! with a three-volume chain holding data and a running VM using it, ready
//! for `ferry disk move demo-disk --to domain2 --wait`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_api::engine::{AddHost, CreateDisk, CreateDomain, CreateVm, DirectBoot, VmState};
use ferry_api::VolumeFormat;
use ferry_engine::{EngineClient, EngineConfig};
use ferry_host::{Accel, AgentConfig, AgentState};
use serde::{Deserialize, Serialize};

use crate::client::ClientFile;
use crate::stdout::note;

/// Arguments of `ferry up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where Ferry keeps its state: engine.db, the agent's run directory,
    /// client.json (and, with --demo, the storage domains).
    #[arg(
        long,
        value_name = "DIR",
        env = "FERRY_DATA_DIR",
        default_value = "ferry-data"
    )]
    data_dir: PathBuf,
    /// The engine's address (REST API and web UI).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Also create domain1, domain2, demo-disk and a running demo-vm.
    #[arg(long)]
    demo: bool,
    /// How VMs run: tcg (software, works everywhere) or kvm.
    #[arg(long, default_value = "tcg", value_parser = ["kvm", "tcg"])]
    accel: String,
    #[command(flatten)]
    limits: crate::limits::LimitArgs,
    #[command(flatten)]
    admin: crate::admin_password::AdminPasswordArgs,
}

/// What `ferry up` keeps between runs besides the database, so the
/// engine's record of the local host stays valid.
#[derive(Debug, Serialize, Deserialize)]
struct LocalAgent {
    addr: SocketAddr,
    token: String,
}

/// Runs engine and agent until Ctrl-C.
pub fn run(args: UpArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-up")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(up(args))
}

fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

async fn up(args: UpArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let dir = std::path::absolute(&args.data_dir)?;
    let agent = start_agent(&dir, &args.accel).await?;
    let engine = start_engine(&dir, &args).await?;

    let client = EngineClient::new(&engine.url, &engine.token);
    let setup = async {
        ensure_local_host(&client, agent.addr, &agent.token).await?;
        if args.demo {
            demo(&client, &dir).await?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = setup.await {
        engine.server.stop();
        agent.server.stop();
        return Err(e);
    }

    print_banner(&engine.url, &dir);
    ferry_http::shutdown_signal().await;
    eprintln!("ferry: stopping");
    engine.server.stop_and_wait().await;
    // `up` owns its VMs: they stop with it (a real agent leaves them).
    agent.state.vms().stop_all(Duration::from_secs(10)).await;
    agent.server.stop_and_wait().await;
    Ok(())
}

/// A server on a task of its own that stops gracefully when told (its
/// `run_until` future resolves) instead of being cut off.
struct Running<T> {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<T>,
}

impl<T> Running<T> {
    /// Tells the server to stop, not waiting: on a failed setup `up`
    /// returns the error at once.
    fn stop(self) {
        let _ = self.stop.send(());
    }

    /// Tells the server to stop and waits until it has, so the next step
    /// of the shutdown does not race it.
    async fn stop_and_wait(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The local agent while `up` runs: how the engine reaches it, and its
/// state, whose VMs `up` stops on the way out.
struct AgentRunning {
    addr: SocketAddr,
    token: String,
    state: Arc<AgentState>,
    server: Running<ferry_host::Result<()>>,
}

/// The engine while `up` runs, and how a client reaches it.
struct EngineRunning {
    url: String,
    token: String,
    server: Running<ferry_engine::Result<()>>,
}

/// Starts the local agent on the address and token of the last run, which
/// agent.json keeps: the engine's database still records host `local`
/// there, so the same host keeps working across restarts.
async fn start_agent(dir: &Path, accel: &str) -> Result<AgentRunning> {
    // The agent keeps its address and token across runs.
    let agent_file = dir.join("agent.json");
    let saved: Option<LocalAgent> = std::fs::read(&agent_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let token = saved.as_ref().map_or_else(secret, |s| s.token.clone());
    let listen = saved.as_ref().map_or_else(
        || "127.0.0.1:0".parse().expect("a literal address"),
        |s| s.addr,
    );
    let agent = ferry_host::Server::bind(AgentConfig {
        name: "local".into(),
        listen,
        token: token.clone(),
        run_dir: dir.join("agent"),
        domains: Vec::new(),
        accel: accel.parse::<Accel>()?,
    })
    .await
    .context("cannot start the local agent")?;
    let addr = agent.local_addr();
    std::fs::write(
        &agent_file,
        serde_json::to_vec_pretty(&LocalAgent {
            addr,
            token: token.clone(),
        })?,
    )?;
    let state = agent.agent().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run_until(async move {
        let _ = stopped.await;
    }));
    Ok(AgentRunning {
        addr,
        token,
        state,
        server: Running { stop, task },
    })
}

/// Starts the engine and writes client.json, which is how `ferry`'s
/// commands (and whoever opens the web UI) find it and sign in.
async fn start_engine(dir: &Path, args: &UpArgs) -> Result<EngineRunning> {
    // The engine keeps its token in client.json.
    let token = ClientFile::read(dir).map_or_else(|_| secret(), |f| f.token);
    let admin = args.admin.hash()?;
    let engine = ferry_engine::Server::bind(EngineConfig {
        listen: args.listen,
        token: token.clone(),
        database: EngineConfig::sqlite_url(dir),
        limits: args.limits.limits(),
    })
    .await
    .context("cannot start the engine")?;
    crate::admin_password::AdminPasswordArgs::apply(admin, &engine);
    let url = format!("http://{}", engine.local_addr());
    let client_file = ClientFile {
        url: url.clone(),
        token: token.clone(),
    };
    std::fs::write(
        ClientFile::path(dir),
        serde_json::to_vec_pretty(&client_file)?,
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(engine.run_until(async move {
        let _ = stopped.await;
    }));
    Ok(EngineRunning {
        url,
        token,
        server: Running { stop, task },
    })
}

/// Printed only once the setup worked, so "Ferry is up" means the engine
/// answers and the demo is ready (the tests wait for that line).
fn print_banner(url: &str, dir: &Path) {
    note!("Ferry is up: {url}");
    note!(
        "  web UI and REST API at {url} (token in {})",
        ClientFile::path(dir).display()
    );
    note!("  try: ferry disk list --data-dir {}", dir.display());
    note!("  Ctrl-C stops Ferry and the VMs it runs");
}

async fn ensure_local_host(c: &EngineClient, addr: SocketAddr, token: &str) -> Result<()> {
    if c.host("local").await.is_ok() {
        return Ok(());
    }
    c.add_host(&AddHost {
        name: "local".into(),
        url: format!("http://{addr}"),
        token: token.into(),
    })
    .await
    .context("cannot add the local agent to the engine")?;
    Ok(())
}

/// Makes whatever of the demo is missing and starts its VM, so
/// `ferry up --demo` on a data directory that has it already reuses it.
async fn demo(c: &EngineClient, dir: &Path) -> Result<()> {
    demo_domains(c, dir).await?;
    if c.disk("demo-disk").await.is_err() {
        demo_disk(c).await?;
    }
    if c.vm("demo-vm").await.is_err() {
        demo_vm(c).await?;
    }
    if c.vm("demo-vm").await?.state != VmState::Running {
        c.start_vm("demo-vm")
            .await
            .context("cannot start demo-vm")?;
    }
    Ok(())
}

/// Both demo domains share one directory: a domain is `<root>/<uuid>`, so
/// they do not collide, and a move between them still crosses domains.
async fn demo_domains(c: &EngineClient, dir: &Path) -> Result<()> {
    let domains_dir = dir.join("domains");
    std::fs::create_dir_all(&domains_dir)?;
    for name in ["domain1", "domain2"] {
        if c.domain(name).await.is_err() {
            c.create_domain(&CreateDomain {
                name: name.into(),
                path: domains_dir.clone(),
            })
            .await
            .with_context(|| format!("cannot create storage domain {name}"))?;
        }
    }
    Ok(())
}

/// The demo's data: 0x11 over the base's first 64 MiB, 0x22 over 16 MiB
/// in the first snapshot, 0x33 over 8 MiB in the second: each layer holds
/// data of its own, partly over its parent's, so a move that loses or
/// flattens a layer shows.
async fn demo_disk(c: &EngineClient) -> Result<()> {
    let disk = c
        .create_disk(&CreateDisk {
            name: "demo-disk".into(),
            domain: "domain1".into(),
            size: 1 << 30,
            format: VolumeFormat::Raw,
            preallocated: false,
        })
        .await
        .context("cannot create demo-disk")?;
    let layers: [(&str, &str); 3] = [("0x11", "0 64M"), ("0x22", "32M 16M"), ("0x33", "40M 8M")];
    for (i, (pattern, range)) in layers.iter().enumerate() {
        let d = if i == 0 {
            c.disk(&disk.id.to_string()).await?
        } else {
            c.snapshot_disk("demo-disk").await?
        };
        let leaf = d.volumes.last().context("demo-disk has no volumes")?;
        qemu_io(
            &leaf.path,
            leaf.format,
            &format!("write -P {pattern} {range}"),
        )?;
    }
    Ok(())
}

/// The demo VM runs the test guest, writing 16 MiB at 512 MiB, clear of
/// the layers' data: a move then runs under a live writer, and the layers
/// still read as they were written.
async fn demo_vm(c: &EngineClient) -> Result<()> {
    let guest = ferry_qemu::guest_dir();
    let (kernel, initrd) = (guest.join("vmlinuz"), guest.join("initrd.img"));
    if !kernel.is_file() || !initrd.is_file() {
        bail!(
            "the demo guest is not built ({} missing); run scripts/build-guest, or set FERRY_GUEST_DIR",
            kernel.display()
        );
    }
    c.create_vm(&CreateVm {
        name: "demo-vm".into(),
        disks: vec!["demo-disk".into()],
        memory_mib: Some(256),
        host: Some("local".into()),
        boot: Some(DirectBoot {
            kernel,
            initrd,
            append: format!(
                "console=ttyS0 quiet panic=-1 ferry.dev=/dev/vda ferry.offset={} ferry.len={} ferry.bs=4096 ferry.seed=1 ferry.rate=50",
                512u64 << 20,
                16u64 << 20
            ),
        }),
    })
    .await
    .context("cannot create demo-vm")?;
    Ok(())
}

fn qemu_io(path: &Path, format: VolumeFormat, command: &str) -> Result<()> {
    let out = Command::new("qemu-io")
        .args(["-f", format.qemu_name(), "-c", command])
        .arg(path)
        .output()
        .context("cannot run qemu-io")?;
    if !out.status.success() {
        bail!(
            "qemu-io {command} on {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
