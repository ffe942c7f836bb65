//! `ferry up`: the embedded default in one foreground process: the engine
//! with its SQLite database and one local agent, which becomes SPM once a
//! domain exists, until Ctrl-C. `--demo` also makes two domains, a disk
//! with a three-volume chain holding data and a running VM using it, ready
//! for `ferry disk move demo-disk --to domain2 --wait`.
//!
//! The local agent is enrolled with the engine as any other host is (a
//! one-time token, a signing request, a certificate of the engine's CA)
//! and spoken to over mutual TLS on loopback: one code path for every
//! agent. The engine's API is plain HTTP on loopback (the default, so the
//! first command needs no set-up) and HTTPS on any other address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_api::engine::{
    AddHost, CreateDisk, CreateDomain, CreateVm, DirectBoot, Reenrol, VmState,
};
use ferry_api::VolumeFormat;
use ferry_engine::{EngineClient, EngineConfig, PkiConfig};
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
    /// The engine's address (REST API and web UI): plain HTTP on loopback,
    /// HTTPS beyond it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve the API and web UI over HTTPS on loopback too.
    #[arg(long)]
    https: bool,
    /// A name or address the engine is reached by, for its certificate
    /// (repeat; default: localhost, 127.0.0.1, ::1, this host's name and
    /// the --listen address).
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
    /// Also create domain1, domain2, demo-disk and a running demo-vm.
    #[arg(long)]
    demo: bool,
    /// How VMs run: tcg (software, works everywhere) or kvm.
    #[arg(long, default_value = "tcg", value_parser = ["kvm", "tcg"])]
    accel: String,
    /// Seconds each VM's guest gets to shut down when Ferry stops, after
    /// which its QEMU is stopped.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    stop_timeout: u64,
    /// Leave the VMs running when Ferry stops; the next `ferry up` on the
    /// same data directory finds them again.
    #[arg(long)]
    keep_vms: bool,
    #[command(flatten)]
    limits: crate::limits::LimitArgs,
    #[command(flatten)]
    admin: crate::admin_password::AdminPasswordArgs,
}

/// What `ferry up` keeps between runs besides the database, so the
/// engine's record of the local host stays valid: where the local agent
/// listens (its identity is its certificate, in `agent/pki/`).
#[derive(Debug, Serialize, Deserialize)]
struct LocalAgent {
    addr: SocketAddr,
}

/// How long the local agent may take to come up after its start.
const AGENT_UP_WITHIN: Duration = Duration::from_secs(30);

/// Runs engine and agent until Ctrl-C.
pub fn run(args: UpArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-up")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(up(args))
}

async fn up(args: UpArgs) -> Result<()> {
    // Watched before anything starts: a Ctrl-C during start-up stops what
    // has started instead of killing the process under its VMs, and a
    // SIGINT that the shell which started us ignores is heard all the same.
    let mut signals = ferry_http::ShutdownSignals::watch();
    let mut started = Started::default();
    let outcome = tokio::select! {
        r = start_up(&args, &mut started) => r.map(|()| true),
        () = signals.recv() => {
            eprintln!("ferry: interrupted while starting");
            Ok(false)
        }
    };
    if let Ok(true) = outcome {
        if let Some(engine) = &started.engine {
            print_banner(&engine.url, &started.dir, engine.https, args.keep_vms);
        }
        signals.recv().await;
    }
    shut_down(started, &args).await;
    outcome.map(|_| ())
}

/// What `ferry up` has started so far, so that a stop at any moment stops
/// exactly that.
#[derive(Default)]
struct Started {
    dir: PathBuf,
    engine: Option<EngineRunning>,
    agent: Option<AgentRunning>,
}

/// Starts the engine and the local agent (and, with `--demo`, the demo),
/// recording each part in `started` as soon as it runs.
async fn start_up(args: &UpArgs, started: &mut Started) -> Result<()> {
    // It holds the database, client.json and keys: the owner's alone.
    ferry_pki::files::ensure_private_dir(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let dir = std::path::absolute(&args.data_dir)?;
    started.dir.clone_from(&dir);
    let (listener, agent_addr) = agent_listener(&dir).await?;
    let engine = started.engine.insert(start_engine(&dir, args).await?);
    let client = engine.client()?;
    let url = engine.url.clone();
    enroll_local(&client, &url, agent_addr, &dir).await?;
    started.agent = Some(start_agent(&dir, &args.accel, listener).await?);
    client
        .wait_host_up("local", AGENT_UP_WITHIN)
        .await
        .context("the local agent did not come up")?;
    if args.demo {
        demo(&client, &dir).await?;
    }
    Ok(())
}

/// Stops what was started, saying what it does: the engine first (its
/// requests in flight end), then the VMs, each guest asked to shut down
/// and its QEMU stopped after `--stop-timeout` (unless `--keep-vms`),
/// then the agent.
async fn shut_down(started: Started, args: &UpArgs) {
    if let Some(engine) = started.engine {
        eprintln!("ferry: stopping the engine");
        engine.server.stop_and_wait().await;
    }
    if let Some(agent) = started.agent {
        let running = agent.state.vms().running_names();
        if running.is_empty() {
            // Nothing to stop.
        } else if args.keep_vms {
            eprintln!(
                "ferry: leaving {} running (--keep-vms); the next `ferry up` finds them",
                running.join(", ")
            );
        } else {
            eprintln!(
                "ferry: stopping {}: asking the guest to shut down, then stopping QEMU after {} s",
                running.join(", "),
                args.stop_timeout
            );
            agent
                .state
                .vms()
                .stop_all(Duration::from_secs(args.stop_timeout))
                .await;
        }
        eprintln!("ferry: stopping the local agent");
        agent.server.stop_and_wait().await;
    }
    eprintln!("ferry: stopped");
}

/// A server on a task of its own that stops gracefully when told (its
/// `run_until` future resolves) instead of being cut off.
struct Running<T> {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<T>,
}

impl<T> Running<T> {
    /// Tells the server to stop and waits until it has, so the next step
    /// of the shutdown does not race it.
    async fn stop_and_wait(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The local agent while `up` runs: its state, whose VMs `up` stops on
/// the way out.
struct AgentRunning {
    state: Arc<AgentState>,
    server: Running<ferry_host::Result<()>>,
}

/// The engine while `up` runs, and how a client reaches it.
struct EngineRunning {
    url: String,
    token: String,
    https: bool,
    ca_pem: String,
    server: Running<ferry_engine::Result<()>>,
}

impl EngineRunning {
    /// A client of it, trusting its CA when it serves HTTPS.
    fn client(&self) -> Result<EngineClient> {
        if !self.https {
            return Ok(EngineClient::new(&self.url, &self.token));
        }
        let tls = ferry_http::ClientTls::trusting(&self.ca_pem)?;
        Ok(EngineClient::with_tls(&self.url, &self.token, &tls))
    }
}

/// The local agent's socket, on the address of the last run, which
/// agent.json keeps: the engine's database still records host `local`
/// there, so the same host keeps working across restarts. It listens
/// before the agent is enrolled, so the host's URL is known.
async fn agent_listener(dir: &Path) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let agent_file = dir.join("agent.json");
    let saved: Option<LocalAgent> = std::fs::read(&agent_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let listen = saved.map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)), |s| s.addr);
    let (listener, addr) = ferry_http::bind(listen)
        .await
        .context("cannot start the local agent")?;
    ferry_pki::files::write_private(
        &agent_file,
        &serde_json::to_vec_pretty(&LocalAgent { addr })?,
    )
    .with_context(|| format!("cannot write {}", agent_file.display()))?;
    Ok((listener, addr))
}

/// Enrolls the local agent unless the engine already accepts the
/// certificate it has: as a new host `local`, or (its certificate or its
/// address changed, or the database is new) with a new one-time token.
async fn enroll_local(
    c: &EngineClient,
    engine_url: &str,
    addr: SocketAddr,
    dir: &Path,
) -> Result<()> {
    let run_dir = dir.join("agent");
    let url = format!("https://{addr}");
    let have = ferry_host::identity::Identity::load(&run_dir)
        .ok()
        .map(|i| i.info().fingerprint.to_string());
    let token = match c.host("local").await {
        Ok(h) => {
            let pinned = h.certificate.as_ref().map(|c| c.fingerprint.clone());
            if have.is_some() && pinned == have && h.url == url {
                return Ok(());
            }
            c.reenrol_host("local", &Reenrol { url: Some(url) })
                .await
                .context("cannot enroll the local agent")?
                .token
        }
        Err(_) => {
            c.add_host(&AddHost {
                name: "local".into(),
                url,
            })
            .await
            .context("cannot add the local agent to the engine")?
            .token
        }
    };
    ferry_host::enroll::enroll(engine_url, &token, &run_dir)
        .await
        .map_err(|e| anyhow::anyhow!(e.full_text()))
        .context("cannot enroll the local agent")?;
    Ok(())
}

/// Starts the local agent, enrolled, on its socket.
async fn start_agent(
    dir: &Path,
    accel: &str,
    listener: tokio::net::TcpListener,
) -> Result<AgentRunning> {
    let listen = listener.local_addr()?;
    let agent = ferry_host::Server::bind_on(
        AgentConfig {
            name: Some("local".into()),
            listen,
            run_dir: dir.join("agent"),
            domains: Vec::new(),
            accel: accel.parse::<Accel>()?,
        },
        ferry_host::tasks::VerbRegistry::standard(),
        listener,
    )
    .await
    .context("cannot start the local agent")?;
    let state = agent.agent().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run_until(async move {
        let _ = stopped.await;
    }));
    Ok(AgentRunning {
        state,
        server: Running { stop, task },
    })
}

/// Starts the engine and writes client.json, which is how `ferry`'s
/// commands (and whoever opens the web UI) find it and sign in.
async fn start_engine(dir: &Path, args: &UpArgs) -> Result<EngineRunning> {
    // The engine keeps its token in client.json.
    let token = ClientFile::read(dir).map_or_else(|_| ferry_pki::random::secret(), |f| f.token);
    let admin = args.admin.hash()?;
    let https = args.https || !ferry_http::is_loopback_only(args.listen);
    let names = if args.tls_names.is_empty() {
        PkiConfig::default_names(args.listen)
    } else {
        args.tls_names.clone()
    };
    let engine = ferry_engine::Server::bind(EngineConfig {
        listen: args.listen,
        token: token.clone(),
        database: EngineConfig::sqlite_url(dir),
        limits: args.limits.limits(),
        pki: PkiConfig {
            dir: dir.join("pki"),
            names,
            https,
            ca_files: None,
        },
    })
    .await
    .context("cannot start the engine")?;
    crate::admin_password::AdminPasswordArgs::apply(admin, &engine);
    let url = engine.url();
    let ca_pem = engine.engine().pki().ca_pem().to_string();
    ClientFile {
        url: url.clone(),
        token: token.clone(),
        ca: https.then(|| ca_pem.clone()),
    }
    .write(dir)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(engine.run_until(async move {
        let _ = stopped.await;
    }));
    Ok(EngineRunning {
        url,
        token,
        https,
        ca_pem,
        server: Running { stop, task },
    })
}

/// Printed only once the setup worked, so "Ferry is up" means the engine
/// answers and the demo is ready (the tests wait for that line).
fn print_banner(url: &str, dir: &Path, https: bool, keep_vms: bool) {
    note!("Ferry is up: {url}");
    note!(
        "  web UI and REST API at {url} (token in {})",
        ClientFile::path(dir).display()
    );
    if https {
        note!(
            "  its certificate is signed by the CA in {} (trust it in the browser)",
            dir.join("pki/ca.pem").display()
        );
    }
    note!("  try: ferry disk list --data-dir {}", dir.display());
    if keep_vms {
        note!("  Ctrl-C stops Ferry and leaves its VMs running (--keep-vms)");
    } else {
        note!("  Ctrl-C stops Ferry and the VMs it runs");
    }
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
