//! A VM as a QEMU process, started daemonized so that it outlives the agent
//! that started it: an agent restart must never stop a running VM, and a new
//! agent re-attaches through the QMP socket and the pid file in the VM's run
//! directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::node::Layer;
use crate::qmp::Qmp;

/// How QEMU runs guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation, for production hosts.
    Kvm,
    /// Software emulation: slow, but it works everywhere, and on the test
    /// machines KVM breaks real guests (ARCHITECTURE §8).
    Tcg,
}

impl std::str::FromStr for Accel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(Error::InvalidRequest(format!(
                "unknown accelerator {other:?}: use kvm or tcg"
            ))),
        }
    }
}

/// One virtio disk of a VM and the chain it opens, base first.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// The device id (`-device ...,id=`), which names the disk in QMP for
    /// the VM's whole life even as its block graph changes.
    pub device: String,
    /// The chain, base first; the last layer is the active one.
    pub chain: Vec<Layer>,
}

/// A Linux kernel booted directly, as the test guest is.
#[derive(Debug, Clone)]
pub struct DirectBoot {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel command line.
    pub append: String,
}

/// Everything needed to start a VM.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The VM's name, shown in `ps` and in QEMU's messages.
    pub name: String,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub cpus: u32,
    /// The accelerator.
    pub accel: Accel,
    /// Disks, in device order.
    pub disks: Vec<DiskSpec>,
    /// Direct kernel boot, if any; otherwise the firmware boots from disk.
    pub boot: Option<DirectBoot>,
    /// Where the first serial port's output goes, if anywhere.
    pub serial_log: Option<PathBuf>,
    /// A directory of this VM's own: QMP socket, pid file, QEMU's log.
    pub run_dir: PathBuf,
}

impl VmSpec {
    /// The QEMU command line, without the program name.
    pub fn qemu_args(&self) -> Vec<String> {
        let run = &self.run_dir;
        let mut args: Vec<String> = vec![
            "-name".into(),
            format!("guest={},debug-threads=on", self.name),
            "-machine".into(),
            "pc".into(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
            "-nodefaults".into(),
            "-display".into(),
            "none".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp_socket(run).display()),
            "-pidfile".into(),
            pid_file(run).display().to_string(),
            "-daemonize".into(),
            "-D".into(),
            log_file(run).display().to_string(),
        ];
        match self.accel {
            Accel::Kvm => args.extend(["-accel", "kvm", "-cpu", "host"].map(String::from)),
            Accel::Tcg => args.extend(["-accel", "tcg", "-cpu", "max"].map(String::from)),
        }
        args.push("-serial".into());
        args.push(match &self.serial_log {
            Some(path) => format!("file:{}", path.display()),
            None => "none".into(),
        });
        if let Some(boot) = &self.boot {
            args.extend([
                "-kernel".into(),
                boot.kernel.display().to_string(),
                "-initrd".into(),
                boot.initrd.display().to_string(),
                "-append".into(),
                boot.append.clone(),
            ]);
        }
        for disk in &self.disks {
            let mut backing: Option<&str> = None;
            for layer in &disk.chain {
                args.push("-blockdev".into());
                args.push(layer.file_options().to_string());
                args.push("-blockdev".into());
                args.push(layer.format_options(backing).to_string());
                backing = Some(&layer.nodes.format);
            }
            if let Some(top) = backing {
                args.push("-device".into());
                // A failed write or read pauses the VM instead of failing
                // the guest's request (QEMU keeps it and submits it again
                // on `cont`): a full destination must not corrupt a guest.
                args.push(format!(
                    "virtio-blk-pci,id={},drive={top},werror=stop,rerror=stop",
                    disk.device
                ));
            }
        }
        args
    }

    fn validate(&self) -> Result<()> {
        let bad_name = |s: &str| {
            s.is_empty()
                || !s.starts_with(|c: char| c.is_ascii_alphabetic())
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if bad_name(&self.name) {
            return Err(Error::InvalidRequest(format!(
                "VM name {:?} is not usable: use letters, digits, '-' and '_', starting with a letter",
                self.name
            )));
        }
        for disk in &self.disks {
            if bad_name(&disk.device) {
                return Err(Error::InvalidRequest(format!(
                    "device id {:?} is not usable: use letters, digits, '-' and '_', starting with a letter",
                    disk.device
                )));
            }
            if disk.chain.is_empty() {
                return Err(Error::InvalidRequest(format!(
                    "disk {} has no volumes to open",
                    disk.device
                )));
            }
        }
        Ok(())
    }
}

/// The QMP socket of a VM whose run directory is `run_dir`.
pub fn qmp_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("qmp.sock")
}

/// The pid file of a VM whose run directory is `run_dir`.
pub fn pid_file(run_dir: &Path) -> PathBuf {
    run_dir.join("qemu.pid")
}

/// QEMU's own log (and, once daemonized, its stderr) for the VM whose run
/// directory is `run_dir`: where to look when a VM misbehaves.
pub fn log_file(run_dir: &Path) -> PathBuf {
    run_dir.join("qemu.log")
}

/// Makes the VM's run directory ready for a new QEMU: refuses while one
/// still runs there, and removes the socket, pid file and log a previous
/// one left, so nothing stale is read for the new one.
fn prepare_run_dir(spec: &VmSpec) -> Result<()> {
    std::fs::create_dir_all(&spec.run_dir).map_err(|e| {
        Error::io(
            format!("creating run directory {}", spec.run_dir.display()),
            e,
        )
    })?;
    let socket = qmp_socket(&spec.run_dir);
    let pidfile = pid_file(&spec.run_dir);
    if let Some(pid) = read_pid(&pidfile) {
        if alive(pid) {
            return Err(Error::InvalidRequest(format!(
                "VM {} is already running as process {}",
                spec.name,
                pid.as_raw_nonzero()
            )));
        }
    }
    let log = log_file(&spec.run_dir);
    for stale in [&socket, &pidfile, &log] {
        match std::fs::remove_file(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", stale.display()), e)),
        }
    }
    Ok(())
}

/// Runs QEMU, daemonized, so the VM outlives the agent.
async fn launch_qemu(spec: &VmSpec) -> Result<()> {
    // With -daemonize the command returns once QEMU has initialised
    // (disks opened, monitor listening) or failed; its stderr carries
    // the reason of a failure.
    let output = tokio::process::Command::new("qemu-system-x86_64")
        .args(spec.qemu_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .map_err(|e| Error::Start {
            vm: spec.name.clone(),
            message: format!("could not run qemu-system-x86_64: {e}"),
        })?;
    if !output.status.success() {
        let message = start_failure(spec, &output);
        return Err(match spec.accel {
            // QEMU's words (an assertion deep in its KVM code) alone do
            // not tell an operator what to do; the accelerator does.
            Accel::Kvm => Error::KvmStart {
                vm: spec.name.clone(),
                message: first_lines(&message),
            },
            Accel::Tcg => Error::Start {
                vm: spec.name.clone(),
                message,
            },
        });
    }
    Ok(())
}

/// The first two lines of QEMU's complaint, without the trailing period
/// the sentence around it adds.
fn first_lines(message: &str) -> String {
    message
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join(" / ")
        .trim_end_matches('.')
        .to_string()
}

/// Why QEMU did not start, in QEMU's own words where it gave any.
fn start_failure(spec: &VmSpec, output: &std::process::Output) -> String {
    // A daemonized QEMU with -D writes its errors to that log.
    let mut message = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if message.is_empty() {
        message = std::fs::read_to_string(log_file(&spec.run_dir))
            .unwrap_or_default()
            .trim()
            .to_string();
    }
    if message.is_empty() {
        message = format!("qemu-system-x86_64 exited with {}", output.status);
    }
    message
}

/// The QEMU a start launched, until the start hands out its [`Vm`]: a
/// start that fails or is given up (its future dropped) kills it, so no
/// QEMU runs that nobody tracks while the caller was told the VM is down
/// (and might start it elsewhere on the same disks). It only ever kills
/// the process that wrote this VM's pid file with this VM's command line,
/// which `prepare_run_dir` made sure was not running before the launch:
/// a QEMU that an agent found running and adopted is never touched.
struct Launched<'a> {
    spec: &'a VmSpec,
    armed: bool,
}

impl Launched<'_> {
    /// The start succeeded: QEMU is the caller's now.
    fn disarm(mut self) {
        self.armed = false;
    }

    /// Kills the QEMU and waits until it is gone.
    async fn kill(mut self) {
        self.armed = false;
        let Some(pid) = self.signal_kill() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if alive(pid) {
            tracing::error!(
                vm = self.spec.name,
                pid = pid.as_raw_nonzero().get(),
                "the QEMU of a failed start did not exit after SIGKILL"
            );
        } else {
            let _ = std::fs::remove_file(pid_file(&self.spec.run_dir));
        }
    }

    /// Sends SIGKILL to the launched QEMU, if one runs; returns its pid.
    fn signal_kill(&self) -> Option<Pid> {
        let pidfile = pid_file(&self.spec.run_dir);
        let pid = read_pid(&pidfile).filter(|pid| alive(*pid))?;
        if !runs_with_pid_file(pid, &pidfile) {
            return None;
        }
        tracing::warn!(
            vm = self.spec.name,
            pid = pid.as_raw_nonzero().get(),
            "killing the QEMU of a start that failed"
        );
        let _ = rustix::process::kill_process(pid, Signal::KILL);
        Some(pid)
    }
}

impl Drop for Launched<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.signal_kill();
        }
    }
}

/// Whether process `pid` was started with `pidfile` on its command line:
/// that it is the QEMU of this VM, not a process that reused the pid.
fn runs_with_pid_file(pid: Pid, pidfile: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())) else {
        return false;
    };
    let wanted = pidfile.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == wanted)
}

/// A running VM: its QEMU process and a QMP connection to it.
#[derive(Debug)]
pub struct Vm {
    name: String,
    pid: Pid,
    run_dir: PathBuf,
    qmp: Qmp,
    kill_on_drop: bool,
}

impl Vm {
    /// Starts QEMU and connects to its monitor. Returns once QEMU has
    /// opened every disk and is running the guest; a configuration QEMU
    /// refuses comes back as [`Error::Start`] with QEMU's own message.
    ///
    /// A QEMU that began but whose start then fails (its monitor cannot be
    /// reached, or the caller gives up on the start) is killed: the start
    /// answers that the VM is not running, so it must not be.
    pub async fn start(spec: &VmSpec) -> Result<Vm> {
        Self::start_with(spec, |name, run_dir| async move {
            Vm::attach(&name, &run_dir).await
        })
        .await
    }

    /// [`Vm::start`] with the step that connects to the new QEMU passed in,
    /// so a test can make it fail once QEMU runs.
    async fn start_with<F, Fut>(spec: &VmSpec, attach: F) -> Result<Vm>
    where
        F: FnOnce(String, PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<Vm>>,
    {
        spec.validate()?;
        prepare_run_dir(spec)?;
        tracing::info!(vm = spec.name, "starting QEMU");
        let launched = Launched { spec, armed: true };
        let attached = match launch_qemu(spec).await {
            Ok(()) => attach(spec.name.clone(), spec.run_dir.clone()).await,
            Err(e) => Err(e),
        };
        match attached {
            Ok(vm) => {
                launched.disarm();
                vm.qmp.execute("cont", Value::Null).await.ok();
                Ok(vm)
            }
            Err(e) => {
                launched.kill().await;
                Err(e)
            }
        }
    }

    /// Connects to a VM started earlier, by this or a previous agent.
    pub async fn attach(name: &str, run_dir: &Path) -> Result<Vm> {
        let pid = read_pid(&pid_file(run_dir))
            .filter(|pid| alive(*pid))
            .ok_or_else(|| Error::Start {
                vm: name.to_string(),
                message: format!("no QEMU process is running for it in {}", run_dir.display()),
            })?;
        let qmp = Qmp::connect(&qmp_socket(run_dir)).await?;
        Ok(Vm {
            name: name.to_string(),
            pid,
            run_dir: run_dir.to_path_buf(),
            qmp,
            kill_on_drop: false,
        })
    }

    /// True when a QEMU process is running for the VM whose run directory
    /// is `run_dir`.
    pub fn is_running_in(run_dir: &Path) -> bool {
        read_pid(&pid_file(run_dir)).is_some_and(alive)
    }

    /// Kills QEMU when this handle is dropped: for tests, so a failing test
    /// leaves no VM behind. Agents never set it: a VM outlives its agent.
    pub fn kill_on_drop(mut self) -> Self {
        self.kill_on_drop = true;
        self
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The QEMU process id.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw_nonzero().get()
    }

    /// The VM's run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The monitor.
    pub fn qmp(&self) -> &Qmp {
        &self.qmp
    }

    /// True while the QEMU process exists.
    pub fn is_alive(&self) -> bool {
        alive(self.pid)
    }

    /// Resolves when QEMU exits (the monitor connection closes): the
    /// agent's notice that a VM died.
    pub async fn exited(&self) {
        self.qmp.closed().await;
    }

    /// Stops the VM: asks the guest to power down, and if it has not
    /// within `grace`, tells QEMU to quit (a guest without ACPI support
    /// never powers down). Returns once the process is gone.
    pub async fn stop(&self, grace: Duration) -> Result<()> {
        if !self.is_alive() {
            return Ok(());
        }
        if !grace.is_zero()
            && self
                .qmp
                .execute("system_powerdown", Value::Null)
                .await
                .is_ok()
        {
            let _ = tokio::time::timeout(grace, self.qmp.closed()).await;
        }
        if self.is_alive() {
            // The reply may never come: QEMU closes the socket as it quits.
            let _ = self.qmp.execute("quit", Value::Null).await;
        }
        self.wait_gone(Duration::from_secs(30)).await
    }

    /// Kills QEMU at once (SIGKILL), as a crash would.
    pub async fn kill(&self) -> Result<()> {
        let _ = rustix::process::kill_process(self.pid, Signal::KILL);
        self.wait_gone(Duration::from_secs(30)).await
    }

    async fn wait_gone(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while self.is_alive() {
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: format!("QEMU of VM {} to exit", self.name),
                    seconds: limit.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(pid_file(&self.run_dir));
        Ok(())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.kill_on_drop && alive(self.pid) {
            let _ = rustix::process::kill_process(self.pid, Signal::KILL);
        }
    }
}

fn read_pid(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    let raw: i32 = text.trim().parse().ok()?;
    Pid::from_raw(raw)
}

fn alive(pid: Pid) -> bool {
    // A daemonized QEMU is not our child, so signal 0 tells whether the process exists; a zombie (possible when
    // a test process is QEMU's reaper) counts as gone.
    rustix::process::test_kill_process(pid).is_ok() && !is_zombie(pid)
}

fn is_zombie(pid: Pid) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()));
    // The state follows the parenthesised command name.
    stat.ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn a_qemu_whose_start_fails_after_it_began_is_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = VmSpec {
            name: "orphan".into(),
            memory_mib: 32,
            cpus: 1,
            accel: Accel::Tcg,
            disks: Vec::new(),
            boot: None,
            serial_log: None,
            run_dir: dir.path().join("run"),
        };
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let err = Vm::start_with(&spec, |name, run_dir| async move {
            // QEMU began: it wrote its pid file and runs.
            let pid = read_pid(&pid_file(&run_dir)).filter(|p| alive(*p));
            *s.lock().unwrap_or_else(|p| p.into_inner()) = pid;
            Err(Error::Start {
                vm: name,
                message: "its monitor could not be reached".into(),
            })
        })
        .await
        .expect_err("the start fails");
        assert!(matches!(err, Error::Start { .. }), "{err}");
        let pid = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expect("QEMU was running when the attach failed");
        assert!(!alive(pid), "the QEMU of the failed start still runs");
        assert!(!Vm::is_running_in(&spec.run_dir));
    }
}
