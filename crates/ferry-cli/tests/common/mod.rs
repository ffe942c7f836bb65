//! A whole Ferry on one machine for end-to-end tests: an engine process,
//! two agent processes sharing the storage domains (TCG), the `ferry` CLI,
//! disks whose chains hold known data, and the test guest writing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ferry_api::engine::{CreateDisk, CreateDomain, CreateVm, DirectBoot, Disk, Job};
use ferry_api::VolumeFormat;
use ferry_engine::EngineClient;
use ferry_testkit::agent::{AgentProcess, KillVmsOnDrop};
use ferry_testkit::engine::{EngineProcess, TOKEN};
use ferry_testkit::guest::{self, SerialLog, WriterConfig};
use ferry_testkit::Lab;

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
pub const MIB: u64 = 1 << 20;
pub const WAIT: Duration = Duration::from_secs(180);

/// Engine + two agents (host1 becomes SPM, VMs go on host2).
pub struct Cluster {
    pub lab: Lab,
    pub engine: EngineProcess,
    pub host1: AgentProcess,
    pub host2: AgentProcess,
    _reap1: KillVmsOnDrop,
    _reap2: KillVmsOnDrop,
}

impl Cluster {
    /// Starts everything and creates domain1 and domain2 (through the
    /// engine) under the lab's directory.
    pub async fn start() -> Cluster {
        Self::start_with(&[]).await
    }

    /// As [`Cluster::start`], the engine with extra environment.
    pub async fn start_with(engine_env: &[(&str, &str)]) -> Cluster {
        let lab = Lab::new();
        let root = lab.root().to_path_buf();
        let host1 = AgentProcess::start(FERRY, "host1", &root.join("run-host1"), &[]).await;
        let host2 = AgentProcess::start(FERRY, "host2", &root.join("run-host2"), &[]).await;
        let engine = EngineProcess::start(FERRY, &root.join("engine"), engine_env).await;
        let c = engine.client();
        for (name, agent) in [("host1", &host1), ("host2", &host2)] {
            c.add_host(&ferry_api::engine::AddHost {
                name: name.into(),
                url: agent.url(),
                token: ferry_testkit::agent::TOKEN.into(),
            })
            .await
            .expect("add host");
        }
        std::fs::create_dir_all(root.join("domains")).expect("domains dir");
        for name in ["domain1", "domain2"] {
            c.create_domain(&CreateDomain {
                name: name.into(),
                path: root.join("domains"),
            })
            .await
            .expect("create domain");
        }
        Cluster {
            _reap1: KillVmsOnDrop(root.join("run-host1")),
            _reap2: KillVmsOnDrop(root.join("run-host2")),
            lab,
            engine,
            host1,
            host2,
        }
    }

    pub fn client(&self) -> EngineClient {
        self.engine.client()
    }

    /// Kills the engine and starts it again on the same database.
    pub async fn restart_engine(&mut self, env: &[(&str, &str)]) {
        self.engine.kill9();
        let dir = self.engine.dir.clone();
        self.engine = EngineProcess::start(FERRY, &dir, env).await;
    }

    /// Runs the `ferry` CLI against the engine.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(FERRY)
            .args(args)
            .env("FERRY_URL", self.engine.url())
            .env("FERRY_TOKEN", TOKEN)
            .output()
            .expect("run ferry")
    }

    /// Runs the CLI with `--json` and parses its standard output.
    pub fn cli_json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> (bool, T) {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        let parsed = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ferry {args:?} printed no JSON ({e}): stdout {} stderr {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), parsed)
    }

    /// A disk on domain1 whose chain has `layers` volumes, each holding a
    /// pattern (layer i writes byte 0x10+i over [i*8, i*8+8) MiB), a raw
    /// or qcow2 base.
    pub async fn disk(&self, name: &str, base: VolumeFormat, layers: usize) -> Disk {
        let c = self.client();
        let d = c
            .create_disk(&CreateDisk {
                name: name.into(),
                domain: "domain1".into(),
                size: 64 * MIB,
                format: base,
                preallocated: false,
            })
            .await
            .expect("create disk");
        for i in 0..layers {
            let disk = if i == 0 {
                c.disk(&d.id.to_string()).await.expect("disk")
            } else {
                c.snapshot_disk(name).await.expect("snapshot")
            };
            let leaf = disk.volumes.last().expect("a leaf");
            let byte = 0x10 + i;
            let off = i as u64 * 8 * MIB;
            ferry_testkit::qemu_io_path(
                &leaf.path,
                leaf.format,
                &[&format!("write -P {byte:#x} {off} 8M")],
            );
        }
        c.disk(name).await.expect("disk")
    }

    /// A VM on host2 whose guest writes to its first disk.
    pub async fn vm(&self, name: &str, disks: &[&str], writer: &WriterConfig) {
        let art = guest::artifacts();
        self.client()
            .create_vm(&CreateVm {
                name: name.into(),
                disks: disks.iter().map(|d| d.to_string()).collect(),
                memory_mib: Some(256),
                host: Some("host2".into()),
                boot: Some(DirectBoot {
                    kernel: art.kernel,
                    initrd: art.initrd,
                    append: writer.kernel_cmdline(),
                }),
            })
            .await
            .expect("create vm");
    }

    /// The serial log of a VM running on host2.
    pub async fn serial_log(&self, vm: uuid::Uuid) -> SerialLog {
        let status = self
            .host2
            .client()
            .vm(vm)
            .await
            .expect("vm status on host2");
        SerialLog::new(status.serial_log)
    }
}

/// The writer's region: above every layer's data.
pub fn writer() -> WriterConfig {
    WriterConfig::new(48 * MIB, 8 * MIB)
}

/// Waits for `n` more acks.
pub fn more_acks(log: &mut SerialLog, n: usize) {
    log.poll();
    let want = log.acks().len() + n;
    log.wait_for_acks(want, WAIT)
        .unwrap_or_else(|e| panic!("the guest stopped writing: {e}"));
}

/// The guest-visible content of every volume of a disk, base first, each
/// read through its own chain.
pub fn layer_contents(disk: &Disk) -> Vec<Vec<u8>> {
    disk.volumes
        .iter()
        .map(|v| ferry_testkit::guest_content_of(&v.path))
        .collect()
}

/// Asserts a job ended as expected, with its error in the message.
pub fn assert_job(job: &Job, state: ferry_api::engine::JobState) {
    assert_eq!(
        job.state, state,
        "job {}: {:?}\n{job:#?}",
        job.id, job.error
    );
}

/// Files under a path, for "nothing left here" checks.
pub fn files_under(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(path) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
