//! `ferry up`: the embedded default in one foreground process: the engine
//! with its SQLite database and one local agent, which becomes SPM once a
//! domain exists, until Ctrl-C. `--demo` also makes two domains, a disk
//! with a three-volume chain holding data and a running VM using it, ready
//! for `ferry disk move demo-disk --to domain2 --wait`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_api::engine::{AddHost, CreateDisk, CreateDomain, CreateVm, DirectBoot, VmState};
use ferry_api::VolumeFormat;
use ferry_engine::{EngineClient, EngineConfig};
use ferry_host::{Accel, AgentConfig};
use serde::{Deserialize, Serialize};

use crate::client::ClientFile;

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
    /// How many moves copy at once; more wait, queued, and start as
    /// others end.
    #[arg(long, value_name = "N", env = "FERRY_MAX_MOVES", default_value_t = ferry_engine::DEFAULT_MAX_MOVES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_moves: u64,
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

    // The agent keeps its address and token across runs.
    let agent_file = dir.join("agent.json");
    let saved: Option<LocalAgent> = std::fs::read(&agent_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let agent_token = saved.as_ref().map_or_else(secret, |s| s.token.clone());
    let listen = saved.as_ref().map_or_else(
        || "127.0.0.1:0".parse().expect("a literal address"),
        |s| s.addr,
    );
    let agent = ferry_host::Server::bind(AgentConfig {
        name: "local".into(),
        listen,
        token: agent_token.clone(),
        run_dir: dir.join("agent"),
        domains: Vec::new(),
        accel: args.accel.parse::<Accel>()?,
    })
    .await
    .context("cannot start the local agent")?;
    let agent_addr = agent.local_addr();
    std::fs::write(
        &agent_file,
        serde_json::to_vec_pretty(&LocalAgent {
            addr: agent_addr,
            token: agent_token.clone(),
        })?,
    )?;
    let agent_state = agent.agent().clone();
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_task = tokio::spawn(agent.run_until(async move {
        let _ = agent_stopped.await;
    }));

    // The engine keeps its token in client.json.
    let engine_token = ClientFile::read(&dir).map_or_else(|_| secret(), |f| f.token);
    let engine = ferry_engine::Server::bind(EngineConfig {
        listen: args.listen,
        token: engine_token.clone(),
        database: EngineConfig::sqlite_url(&dir),
        max_moves: usize::try_from(args.max_moves).unwrap_or(usize::MAX),
    })
    .await
    .context("cannot start the engine")?;
    let url = format!("http://{}", engine.local_addr());
    let client_file = ClientFile {
        url: url.clone(),
        token: engine_token.clone(),
    };
    std::fs::write(
        ClientFile::path(&dir),
        serde_json::to_vec_pretty(&client_file)?,
    )?;
    let (stop_engine, engine_stopped) = tokio::sync::oneshot::channel::<()>();
    let engine_task = tokio::spawn(engine.run_until(async move {
        let _ = engine_stopped.await;
    }));

    let client = EngineClient::new(&url, &engine_token);
    let setup = async {
        ensure_local_host(&client, agent_addr, &agent_token).await?;
        if args.demo {
            demo(&client, &dir).await?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = setup.await {
        let _ = stop_engine.send(());
        let _ = stop_agent.send(());
        return Err(e);
    }

    println!("Ferry is up: {url}");
    println!(
        "  web UI and REST API at {url} (token in {})",
        ClientFile::path(&dir).display()
    );
    println!("  try: ferry --data-dir {} disk list", dir.display());
    println!("  Ctrl-C stops Ferry and the VMs it runs");
    ferry_http::shutdown_signal().await;
    eprintln!("ferry: stopping");
    let _ = stop_engine.send(());
    let _ = engine_task.await;
    // `up` owns its VMs: they stop with it (a real agent leaves them).
    agent_state.vms().stop_all(Duration::from_secs(10)).await;
    let _ = stop_agent.send(());
    let _ = agent_task.await;
    Ok(())
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

/// The demo's data: 0x11 over the base's first 64 MiB, 0x22 over 16 MiB
/// in the first snapshot, 0x33 over 8 MiB in the second; the guest writes
/// at 512 MiB.
async fn demo(c: &EngineClient, dir: &Path) -> Result<()> {
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
    if c.disk("demo-disk").await.is_err() {
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
        let layers: [(&str, &str); 3] =
            [("0x11", "0 64M"), ("0x22", "32M 16M"), ("0x33", "40M 8M")];
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
    }
    if c.vm("demo-vm").await.is_err() {
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
    }
    if c.vm("demo-vm").await?.state != VmState::Running {
        c.start_vm("demo-vm")
            .await
            .context("cannot start demo-vm")?;
    }
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
