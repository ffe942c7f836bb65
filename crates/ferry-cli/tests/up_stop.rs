//! `ferry up` stops fast and predictably at any moment: a Ctrl-C during
//! its start-up stops what has started (even when the shell that started
//! it ignores SIGINT, as a script's background job does), a Ctrl-C once
//! it is up stops its VMs after `--stop-timeout`, and `--keep-vms` leaves
//! them running. No QEMU is ever left behind unless asked.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{FERRY, POLL};
use ferry_testkit::agent::KillVmsOnDrop;

/// How long a stop may take here, with a 1 s stop timeout and a slow,
/// shared test machine: far less than the 10 s and more it took before.
const STOPS_WITHIN: Duration = Duration::from_secs(30);

/// `ferry up --demo` in `data`, with SIGINT ignored by the shell that
/// starts it, its output in `data/../up.log`.
fn start(data: &Path, extra: &str) -> Child {
    let log = data.with_extension("log");
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' INT; exec {FERRY} up --demo --listen 127.0.0.1:0 --stop-timeout 1 {extra} --data-dir {} > {} 2>&1",
            data.display(),
            log.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("run ferry up")
}

fn log_of(data: &Path) -> String {
    std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
}

/// Waits until `what` holds, or panics with the log after `within`.
fn wait_for(data: &Path, what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}; ferry up said:\n{}",
            log_of(data)
        );
        std::thread::sleep(POLL);
    }
}

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits for `child` to exit within [`STOPS_WITHIN`] and says how.
fn stopped(data: &Path, child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + STOPS_WITHIN;
    loop {
        if let Some(status) = child.try_wait().expect("poll ferry up") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "ferry up still ran {STOPS_WITHIN:?} after Ctrl-C; it said:\n{}",
                log_of(data)
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The VMs whose QEMU runs for the agent of `data`, by the pid files.
fn running_qemus(data: &Path) -> Vec<u32> {
    let Ok(dirs) = std::fs::read_dir(data.join("agent/vms")) else {
        return Vec::new();
    };
    dirs.flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join("qemu.pid")).ok())
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
        .collect()
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferry-up-stop-")
        .tempdir_in(ferry_testkit::scratch_root())
        .expect("a directory")
}

#[test]
fn a_ctrl_c_during_start_up_stops_what_has_started() {
    ferry_testkit::guest::artifacts();
    let dir = scratch();
    let data = dir.path().join("data");
    let _reap = KillVmsOnDrop(data.join("agent"));
    let mut up = start(&data, "");
    // client.json is written once the engine runs, before the local agent
    // and the demo: the Ctrl-C comes in the middle of the start-up.
    wait_for(&data, "client.json", Duration::from_secs(60), || {
        data.join("client.json").exists()
    });
    interrupt(&up);
    let status = stopped(&data, &mut up);
    let said = log_of(&data);
    assert!(status.success(), "{status:?}:\n{said}");
    assert!(
        said.contains("interrupted while starting") || said.contains("stopping demo-vm"),
        "{said}"
    );
    assert!(said.contains("ferry: stopped"), "{said}");
    assert!(running_qemus(&data).is_empty(), "a QEMU was left:\n{said}");
}

#[test]
fn a_ctrl_c_once_up_stops_the_vms_unless_told_to_keep_them() {
    ferry_testkit::guest::artifacts();
    let dir = scratch();
    for keep in [false, true] {
        let data = dir.path().join(format!("data-{keep}"));
        let _reap = KillVmsOnDrop(data.join("agent"));
        let mut up = start(&data, if keep { "--keep-vms" } else { "" });
        wait_for(&data, "Ferry is up", Duration::from_secs(180), || {
            log_of(&data).contains("Ferry is up")
        });
        assert_eq!(running_qemus(&data).len(), 1, "the demo VM runs");
        interrupt(&up);
        let status = stopped(&data, &mut up);
        let said = log_of(&data);
        assert!(status.success(), "{status:?}:\n{said}");
        if keep {
            assert!(
                said.contains("leaving demo-vm running (--keep-vms)"),
                "{said}"
            );
            assert_eq!(running_qemus(&data).len(), 1, "--keep-vms kept it:\n{said}");
        } else {
            assert!(
                said.contains(
                    "stopping demo-vm: asking the guest to shut down, then stopping QEMU after 1 s"
                ),
                "{said}"
            );
            assert!(running_qemus(&data).is_empty(), "a QEMU was left:\n{said}");
        }
    }
}
