//! A whole Ferry on one machine for end-to-end tests: an engine process,
//! two agent processes sharing the storage domains (TCG), the `ferry` CLI,
//! disks whose chains hold known data, and the test guest writing.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_api::engine::{
    CreateDisk, CreateDomain, CreateVm, DirectBoot, Disk, Domain, Job, JobState, StepState, Vm,
};
use ferry_api::VolumeFormat;
use ferry_engine::EngineClient;
use ferry_testkit::agent::{AgentProcess, KillVmsOnDrop};
use ferry_testkit::engine::{EngineProcess, TOKEN};
use ferry_testkit::guest::{self, Ack, SerialLog, WriterConfig};
use ferry_testkit::Lab;

pub mod demo;
use uuid::Uuid;

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
pub const MIB: u64 = 1 << 20;
pub const WAIT: Duration = Duration::from_secs(180);
/// How often the tests read a job.
pub const POLL: Duration = Duration::from_millis(100);

/// The engine's test hook: with it, the engine holds a job at the start of
/// the step it names (persisted `running`) until the job is cancelled or
/// the engine killed.
pub const HOLD: &str = "FERRY_TEST_HOLD_STEP";
/// The engine's hook that makes a step fail for good.
pub const FAIL: &str = "FERRY_TEST_FAIL_STEP";

/// The steps of a live move after prepare, in order.
pub const LIVE_STEPS: [&str; 6] = [
    "createVolumeCrossSD",
    "blockMigrate",
    "cloneInternalVolumes",
    "finalizeBlockMigrate",
    "merge",
    "cleanup",
];

/// Engine + two agents (host1 becomes SPM, VMs go on host2).
pub struct Cluster {
    // Fields drop in this order: the VMs are reaped while their pid files
    // still exist (the lab, which holds them, goes last).
    _reap1: KillVmsOnDrop,
    _reap2: KillVmsOnDrop,
    pub engine: EngineProcess,
    pub host1: AgentProcess,
    pub host2: AgentProcess,
    pub lab: Lab,
}

impl Cluster {
    /// Starts everything and creates domain1 and domain2 (through the
    /// engine) under the lab's directory.
    pub async fn start() -> Cluster {
        Self::start_with(&[]).await
    }

    /// As [`Cluster::start`], the engine with extra environment.
    pub async fn start_with(engine_env: &[(&str, &str)]) -> Cluster {
        Self::start_with_agent_env(engine_env, &[]).await
    }

    /// As [`Cluster::start_with`], both agents with extra environment too
    /// (an agent's test hook).
    pub async fn start_with_agent_env(
        engine_env: &[(&str, &str)],
        agent_env: &[(&str, &str)],
    ) -> Cluster {
        let lab = Lab::new();
        let root = lab.root().to_path_buf();
        let engine = EngineProcess::start(FERRY, &root.join("engine"), engine_env).await;
        // Each agent enrolled with the engine as an operator would, and
        // driven over mutual TLS.
        let agent = |name: &'static str| {
            let run_dir = root.join(format!("run-{name}"));
            let engine = &engine;
            async move {
                AgentProcess::start_for_engine_with_env(FERRY, engine, name, &run_dir, agent_env)
                    .await
            }
        };
        let host1 = agent("host1").await;
        let host2 = agent("host2").await;
        let c = engine.client();
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
            .env("FERRY_CA", self.engine.ca_file())
            .output()
            .expect("run ferry")
    }

    /// Starts the `ferry` CLI against the engine without waiting for it
    /// (a `--wait` that follows a job), its output captured.
    pub fn cli_spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(FERRY)
            .args(args)
            .env("FERRY_URL", self.engine.url())
            .env("FERRY_TOKEN", TOKEN)
            .env("FERRY_CA", self.engine.ca_file())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start ferry")
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
        self.disk_sized(name, base, layers, 64 * MIB, 8 * MIB).await
    }

    /// As [`Cluster::disk`] with another virtual size and amount of data
    /// per layer: layer i writes byte 0x10+i over
    /// `[i*layer_len, (i+1)*layer_len)`.
    pub async fn disk_sized(
        &self,
        name: &str,
        base: VolumeFormat,
        layers: usize,
        size: u64,
        layer_len: u64,
    ) -> Disk {
        let c = self.client();
        let d = c
            .create_disk(&CreateDisk {
                name: name.into(),
                domain: "domain1".into(),
                size,
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
            let off = i as u64 * layer_len;
            ferry_testkit::qemu_io_path(
                &leaf.path,
                leaf.format,
                &[&format!("write -P {byte:#x} {off} {layer_len}")],
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

    /// Kills the engine (SIGKILL) and starts it again holding every job
    /// at the start of `step` (the flow's `FERRY_TEST_HOLD_STEP` hook).
    pub async fn hold_engine_at(&mut self, step: &str) {
        self.restart_engine(&[(HOLD, step)]).await;
    }

    /// Polls job `id` until `done` holds, at most [`WAIT`]; panics with
    /// the job and the engine's log otherwise, or when the job ends
    /// without `done` holding.
    pub async fn wait_job_until(&self, id: Uuid, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        let c = self.client();
        let deadline = Instant::now() + WAIT;
        loop {
            let job = c.job(id).await.expect("read the job");
            if done(&job) {
                return job;
            }
            assert!(
                !job.state.is_finished(),
                "job {id} ended before {what}: {job:#?}\nengine log:\n{}",
                tail(&self.engine.log())
            );
            assert!(
                Instant::now() < deadline,
                "job {id} did not reach {what} within {WAIT:?}: {job:#?}\nengine log:\n{}",
                tail(&self.engine.log())
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls disk `name` until `done` holds, at most [`WAIT`].
    pub async fn wait_disk_until(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&Disk) -> bool,
    ) -> Disk {
        let deadline = Instant::now() + WAIT;
        loop {
            let disk = self.disk_now(name).await;
            if done(&disk) {
                return disk;
            }
            assert!(
                Instant::now() < deadline,
                "disk {name} was not {what} within {WAIT:?}: {disk:#?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until job `id` is at `step` and that step is `running` (a
    /// job held there by the hook).
    pub async fn wait_step_running(&self, id: Uuid, step: &str) -> Job {
        self.wait_job_until(id, &format!("{step} running"), |j| {
            j.step.name() == step && step_state(j, step) == StepState::Running
        })
        .await
    }

    /// Waits until job `id` ended, at most [`WAIT`].
    pub async fn wait_end(&self, id: Uuid) -> Job {
        match self.client().wait_job(id, WAIT).await {
            Ok(job) => job,
            Err(e) => panic!(
                "job {id} did not end: {e}\nengine log:\n{}",
                tail(&self.engine.log())
            ),
        }
    }

    /// A storage domain as the engine shows it.
    pub async fn domain(&self, name: &str) -> Domain {
        self.client().domain(name).await.expect("read the domain")
    }

    /// The files of `disk` left on domain `name`, once the agent has
    /// given back the space of what a cleanup retired: `_remove_me_` files
    /// are waited for (up to [`WAIT`]), since a move's cleanup answers
    /// before they go.
    pub async fn files_of_disk_on(&self, name: &str, disk: &Disk) -> Vec<PathBuf> {
        let d = self.domain(name).await;
        let dir = d.path.join("images").join(disk.id.to_string());
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = files_under(&dir);
            if !left.iter().any(|p| is_being_released(p)) || std::time::Instant::now() > deadline {
                return left;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A disk as the engine shows it.
    pub async fn disk_now(&self, name: &str) -> Disk {
        self.client().disk(name).await.expect("read the disk")
    }

    /// The guest-visible content of each volume of `disk`, base first,
    /// each read through its own chain, saved as raw files in the lab (so
    /// big disks cost no memory).
    pub fn save_layers(&self, disk: &Disk, tag: &str) -> Vec<PathBuf> {
        static N: AtomicUsize = AtomicUsize::new(0);
        disk.volumes
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let n = N.fetch_add(1, Ordering::Relaxed);
                let out = self
                    .lab
                    .root()
                    .join(format!("{}-{tag}-{i}-{n}.raw", disk.name));
                guest::guest_visible_raw(&v.path, &out);
                out
            })
            .collect()
    }

    /// Asserts that every volume of `after` under its leaf reads as it
    /// did in `before` (what [`Cluster::save_layers`] saved). Safe while
    /// the VM runs: those volumes are read-only.
    pub fn assert_internal_layers(&self, before: &[PathBuf], after: &Disk) {
        assert_eq!(
            after.volumes.len(),
            before.len(),
            "disk {} has another chain shape: {after:#?}",
            after.name
        );
        let below_leaf = &after.volumes[..after.volumes.len() - 1];
        for (i, v) in below_leaf.iter().enumerate() {
            let now = self.save_layers(
                &Disk {
                    volumes: vec![v.clone()],
                    ..after.clone()
                },
                "internal",
            );
            if let Err(e) = same_bytes(&before[i], &now[0], None) {
                panic!("layer {i} ({}) of disk {} changed: {e}", v.id, after.name);
            }
            let _ = std::fs::remove_file(&now[0]);
        }
    }

    /// With the VM stopped: every volume of `after` reads as in `before`,
    /// the leaf too outside the writer's region, and the leaf holds every
    /// write the guest saw acknowledged.
    pub fn assert_all_layers(
        &self,
        before: &[PathBuf],
        after: &Disk,
        writer: &WriterConfig,
        acks: &[Ack],
    ) {
        self.assert_internal_layers(before, after);
        let leaf = after.volumes.last().expect("a leaf");
        let now = self.save_layers(
            &Disk {
                volumes: vec![leaf.clone()],
                ..after.clone()
            },
            "leaf",
        );
        let region = writer.offset..writer.offset + writer.len;
        if let Err(e) = same_bytes(&before[before.len() - 1], &now[0], Some(&region)) {
            panic!(
                "the leaf of disk {} changed outside the writer's region: {e}",
                after.name
            );
        }
        let check = guest::verify_acked_writes(&now[0], writer, acks)
            .unwrap_or_else(|e| panic!("disk {}: {e}", after.name));
        assert!(check.slots_checked > 0, "no acknowledged write was checked");
        let _ = std::fs::remove_file(&now[0]);
    }

    /// Asserts no agent task runs any more (no copy, merge or rollback of
    /// a job that has ended goes on behind its back).
    pub async fn assert_no_task_running(&self) {
        for agent in [&self.host1, &self.host2] {
            let tasks = agent.client().tasks().await.expect("list the tasks");
            let running: Vec<_> = tasks
                .iter()
                .filter(|t| t.state == ferry_api::agent::TaskState::Running)
                .collect();
            assert!(
                running.is_empty(),
                "tasks still run on {} after the job ended: {running:#?}",
                agent.name
            );
        }
    }

    /// Asserts the VM runs on host2 (its agent's word and the engine's)
    /// and its guest still gets writes acknowledged.
    pub async fn assert_vm_writing(&self, vm: &str, log: &mut SerialLog) {
        let v = self.client().vm(vm).await.expect("read the VM");
        let status = self.host2.client().vm(v.id).await.expect("VM on host2");
        assert_eq!(
            status.state,
            ferry_api::vm::VmState::Running,
            "VM {vm} is not running on host2"
        );
        more_acks(log, 10);
    }

    /// Starts `vm1` on `disk1` (a raw base and two qcow2 layers with data)
    /// and waits until its guest writes.
    pub async fn writing_vm(&self) -> Writing {
        let disk = self.disk("disk1", VolumeFormat::Raw, 2).await;
        let cfg = writer();
        self.vm("vm1", &["disk1"], &cfg).await;
        let before = self.save_layers(&disk, "before");
        let (ok, vm): (bool, Vm) = self.cli_json(&["vm", "start", "vm1"]);
        assert!(ok, "{vm:#?}");
        let mut log = self.serial_log(vm.id).await;
        log.wait_ready(WAIT).expect("the guest writes");
        more_acks(&mut log, 10);
        Writing {
            disk,
            before,
            vm,
            log,
            cfg,
        }
    }

    /// Stops `vm1` at once (QEMU quits; every acknowledged write is on
    /// disk).
    pub fn stop_now(&self) {
        expect_success(&self.cli(&["vm", "stop", "vm1", "--force"]), "vm stop");
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

impl Drop for Cluster {
    /// A failing test keeps what the processes logged: copied out of the
    /// lab (which is removed) into a directory named on stderr.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(keep) = tempfile::Builder::new()
            .prefix("ferry-failed-")
            .tempdir_in(ferry_testkit::scratch_root())
        else {
            return;
        };
        let keep = keep.keep();
        let root = self.lab.root();
        let mut logs = vec![
            (self.engine.dir.join("engine.log"), "engine.log".to_string()),
            (root.join("run-host1/agent.log"), "host1-agent.log".into()),
            (root.join("run-host2/agent.log"), "host2-agent.log".into()),
        ];
        for host in ["run-host1", "run-host2"] {
            for vm in std::fs::read_dir(root.join(host).join("vms"))
                .into_iter()
                .flatten()
                .flatten()
            {
                for f in files_under(&vm.path()) {
                    let name = f.file_name().map(|n| n.to_string_lossy().to_string());
                    if let Some(name) = name.filter(|n| n.ends_with(".log")) {
                        let vm_name = vm.file_name().to_string_lossy().to_string();
                        logs.push((f, format!("{host}-{vm_name}-{name}")));
                    }
                }
            }
        }
        for (from, to) in logs {
            let _ = std::fs::copy(&from, keep.join(to));
        }
        eprintln!("the cluster's logs are kept in {}", keep.display());
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

/// Asserts that a move's cleanup took every volume out of `image_dir`
/// (what is left carries the `_remove_me_` name of a volume whose space
/// the agent still gives back), then waits until nothing is left at all.
pub async fn assert_released(image_dir: &Path, what: &str) {
    let left = files_under(image_dir);
    let volumes: Vec<_> = left.iter().filter(|p| !is_being_released(p)).collect();
    assert!(volumes.is_empty(), "{what} left volumes: {volumes:?}");
    let deadline = std::time::Instant::now() + WAIT;
    while image_dir.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the space of {:?} was not given back within {WAIT:?}",
            files_under(image_dir)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `path` is a deleted volume's file whose space the agent still
/// gives back.
fn is_being_released(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("_remove_me_"))
}

/// The state of a job's step by name.
pub fn step_state(job: &Job, name: &str) -> StepState {
    job.steps
        .iter()
        .find(|s| s.name.name() == name)
        .unwrap_or_else(|| panic!("job {} has no step {name}: {job:#?}", job.id))
        .state
}

/// Asserts each named step of `job` is in the given state.
pub fn assert_steps(job: &Job, want: &[(&str, StepState)]) {
    for (name, state) in want {
        assert_eq!(
            step_state(job, name),
            *state,
            "step {name} of job {}: {job:#?}",
            job.id
        );
    }
}

/// Asserts a job succeeded with every step done.
pub fn assert_succeeded(job: &Job) {
    assert_job(job, JobState::Succeeded);
    for step in &job.steps {
        assert_eq!(step.state, StepState::Done, "{step:?}\n{job:#?}");
    }
    assert!(job.error.is_none(), "{job:#?}");
}

/// The last lines of a log, for failure messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Compares two files chunk by chunk, skipping `except` (a byte range),
/// and says where they first differ.
pub fn same_bytes(a: &Path, b: &Path, except: Option<&std::ops::Range<u64>>) -> Result<(), String> {
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (la, lb) = (
        fa.metadata().map_err(|e| e.to_string())?.len(),
        fb.metadata().map_err(|e| e.to_string())?.len(),
    );
    if la != lb {
        return Err(format!("sizes differ: {la} and {lb}"));
    }
    let chunk = usize::try_from(MIB).expect("fits");
    let (mut ba, mut bb) = (vec![0u8; chunk], vec![0u8; chunk]);
    let mut at = 0u64;
    while at < la {
        let n = usize::try_from((la - at).min(MIB)).expect("fits");
        fa.read_exact(&mut ba[..n]).map_err(|e| e.to_string())?;
        fb.read_exact(&mut bb[..n]).map_err(|e| e.to_string())?;
        if ba[..n] == bb[..n] {
            at += n as u64;
            continue;
        }
        for (i, (x, y)) in ba[..n].iter().zip(&bb[..n]).enumerate() {
            let off = at + i as u64;
            if x != y && !except.as_ref().is_some_and(|r| r.contains(&off)) {
                return Err(format!("first difference at byte {off}: {x:#x} vs {y:#x}"));
            }
        }
        at += n as u64;
    }
    Ok(())
}

/// Runs `ferry` and asserts it failed; returns its standard error.
pub fn expect_failure(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "{what} should have failed; stdout {} stderr {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Asserts `ferry` succeeded; returns its standard output.
pub fn expect_success(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A `tmpfs` mounted on a directory of its own for the length of a test:
/// a storage domain that is easy to fill. Unmounted when dropped, however
/// the test ends.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes; `None` (with a note printed) where
    /// mounting is not allowed (not root, no CAP_SYS_ADMIN).
    pub fn mount(size: u64) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-tmpfs-")
            .tempdir_in(ferry_testkit::scratch_root())
            .expect("a mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "note: cannot mount a tmpfs here ({}); skipping the full-domain scenarios",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("note: cannot run mount ({e}); skipping the full-domain scenarios");
                None
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free on it.
    pub fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .expect("run df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("df printed {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Fills it until `leave` bytes are free, with a file outside any
    /// domain.
    pub fn fill_leaving(&self, leave: u64) {
        let len = self.free().saturating_sub(leave);
        let out = Command::new("fallocate")
            .args(["-l", &len.to_string()])
            .arg(self.path().join("filler"))
            .output()
            .expect("run fallocate");
        assert!(
            out.status.success(),
            "fallocate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Tmpfs {
    /// Fills it to the last block (whatever writes there meanwhile): one
    /// file written in MiB pieces, then 64 KiB, then 4 KiB ones, each size
    /// until the filesystem says no. Written, not `fallocate`d: tmpfs
    /// undoes the whole of a `fallocate` that runs out of room, so one that
    /// the guest's writes made fail left the domain nearly empty while the
    /// guest wrote on: the likely cause of both full_destination cases
    /// failing once in a full suite (the guest paused, was resumed within
    /// 500 ms, and never paused again).
    pub fn fill_up(&self) {
        use std::io::Write;
        let mut filler =
            std::fs::File::create(self.path().join("filler-up")).expect("create the filler");
        for piece in [1usize << 20, 64 << 10, 4 << 10] {
            let zeros = vec![0u8; piece];
            while filler.write_all(&zeros).is_ok() {}
        }
    }

    /// Removes what [`Tmpfs::fill_up`] and [`Tmpfs::fill_leaving`] wrote.
    pub fn drain(&self) {
        for f in std::fs::read_dir(self.path())
            .expect("list the tmpfs")
            .flatten()
        {
            if f.file_name().to_string_lossy().starts_with("filler") {
                std::fs::remove_file(f.path()).expect("remove a filler");
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still has a file open there must not keep
        // the mount alive past the test.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A chain as compared before and after: everything but each volume's
/// `allocated`, which grows while a guest writes.
pub fn chain_shape(volumes: &[ferry_api::engine::Volume]) -> Vec<ferry_api::engine::Volume> {
    volumes
        .iter()
        .cloned()
        .map(|mut v| {
            v.allocated = 0;
            v
        })
        .collect()
}

/// A VM whose guest writes, and what the checks need of it
/// ([`Cluster::writing_vm`]).
#[allow(dead_code)] // not every test binary reads every field
pub struct Writing {
    /// Its disk as it was created.
    pub disk: Disk,
    /// The disk's layers before the guest started.
    pub before: Vec<PathBuf>,
    /// The VM.
    pub vm: Vm,
    /// The guest's console.
    pub log: SerialLog,
    /// What its writer writes.
    pub cfg: WriterConfig,
}
