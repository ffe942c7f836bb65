//! `ferry up --demo` as a test drives it: in a temporary data directory,
//! on a free port, stopped with SIGINT as an operator would, its VMs
//! reaped whatever happens.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_api::engine::{Disk, VmState};
use ferry_engine::EngineClient;
use ferry_testkit::agent::KillVmsOnDrop;
use serde_json::Value;

use super::{tail, FERRY, POLL, WAIT};

/// `ferry up --demo` in a temporary data directory, on a free port;
/// stopped with SIGINT (which stops the VMs it runs), its VMs reaped
/// whatever happens.
pub struct Demo {
    child: Option<Child>,
    pub url: String,
    pub token: String,
    output: Arc<Mutex<String>>,
    _reap: KillVmsOnDrop,
    pub data: tempfile::TempDir,
}

impl Demo {
    pub fn start() -> Demo {
        Demo::start_with(&[])
    }

    /// With extra environment for `ferry up` (the engine's test hooks).
    pub fn start_with(env: &[(&str, &str)]) -> Demo {
        let data = tempfile::Builder::new()
            .prefix("ferry-ui-")
            .tempdir_in(ferry_testkit::scratch_root())
            .expect("a data directory");
        // Panics if the guest is not built; `ferry up` finds it by the same
        // rule (ferry_qemu::guest_dir) from next to its executable.
        ferry_testkit::guest::artifacts();
        let mut child = Command::new(FERRY)
            .args(["up", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ferry up");
        let output = collect_output(&mut child);
        let mut demo = Demo {
            child: Some(child),
            url: String::new(),
            token: String::new(),
            output,
            _reap: KillVmsOnDrop(data.path().join("agent")),
            data,
        };
        let deadline = Instant::now() + WAIT;
        while !demo.log().contains("Ferry is up:") {
            if let Some(status) = demo
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("ferry up --demo exited {status}:\n{}", demo.log());
            }
            assert!(
                Instant::now() < deadline,
                "ferry up --demo was not up within {WAIT:?}:\n{}",
                demo.log()
            );
            std::thread::sleep(POLL);
        }
        let file: Value = serde_json::from_slice(
            &std::fs::read(demo.data.path().join("client.json")).expect("client.json"),
        )
        .expect("client.json is JSON");
        demo.url = file["url"].as_str().expect("url").to_string();
        demo.token = file["token"].as_str().expect("token").to_string();
        demo
    }

    pub fn log(&self) -> String {
        self.output.lock().map(|o| tail(&o)).unwrap_or_default()
    }

    pub fn client(&self) -> EngineClient {
        EngineClient::new(&self.url, &self.token)
    }

    pub async fn disk(&self, name: &str) -> Disk {
        self.client().disk(name).await.expect("read the disk")
    }

    /// The pid of a VM's QEMU, from the agent's run directory.
    pub async fn qemu_pid(&self, vm: &str) -> u32 {
        let v = self.client().vm(vm).await.expect("read the VM");
        assert_eq!(v.state, VmState::Running, "{vm} is not running");
        let file = self
            .data
            .path()
            .join("agent/vms")
            .join(v.id.to_string())
            .join("qemu.pid");
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    /// Ctrl-C, as an operator would; `ferry up` must exit cleanly.
    pub fn stop(mut self) {
        let child = self.child.take().expect("running");
        let status = interrupt(child, Duration::from_secs(60));
        assert!(
            status.is_some_and(|s| s.success()),
            "ferry up did not stop cleanly on SIGINT ({status:?}):\n{}",
            self.log()
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = interrupt(child, Duration::from_secs(30));
        }
        if std::thread::panicking() {
            eprintln!("ferry up's output:\n{}", self.log());
        }
    }
}

/// SIGINT, then SIGKILL if the process has not exited within `grace`.
pub fn interrupt(mut child: Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Everything `child` writes to stdout and stderr, line by line, as it
/// comes: a test reads it to wait for a line, and prints it on failure.
pub fn collect_output(child: &mut Child) -> Arc<Mutex<String>> {
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(mut o) = out.lock() {
                    o.push_str(&line);
                    o.push('\n');
                }
            }
        });
    }
    output
}
