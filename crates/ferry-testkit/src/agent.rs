//! Host agent processes for tests: start `ferry agent` as a real process,
//! learn the address it bound (it listens on port 0 and prints it), wait
//! until its health answers, talk to it with [`AgentClient`] over mutual
//! TLS, and stop it gently (SIGTERM) or not (SIGKILL).
//!
//! An agent started alone gets a certificate of the test process's CA
//! ([`crate::pki::shared`]); one started for an engine is enrolled with it
//! as an operator would (`ferry host add`, `ferry agent enroll`) and
//! called with the engine's client certificate.
//!
//! The agent's log (`FERRY_LOG=info`) goes to `<run_dir>/agent.log`, so a
//! failing test can show what the agent did.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_agent_client::AgentClient;
use ferry_api::agent::Health;
use ferry_http::ClientTls;

/// How long an agent may take to start listening and answer health.
const START_WITHIN: Duration = Duration::from_secs(30);

/// A running `ferry agent` process; killed when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    /// The host name it was given.
    pub name: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its run directory.
    pub run_dir: PathBuf,
    /// How a test calls it: as its engine (or the test CA's engine) would.
    tls: ClientTls,
}

impl AgentProcess {
    /// Starts `ferry agent` (the binary at `ferry`) named `name`, with its
    /// run directory and domains, listening on a free port of 127.0.0.1,
    /// with a certificate of the test CA; returns once it has printed its
    /// address and answers health.
    pub async fn start(
        ferry: impl AsRef<Path>,
        name: &str,
        run_dir: &Path,
        domains: &[&Path],
    ) -> Self {
        crate::pki::shared().enroll(run_dir, name);
        let tls = crate::pki::shared().client_tls();
        Self::start_on(ferry, name, run_dir, domains, "127.0.0.1:0", &[], tls).await
    }

    /// Adds host `name` to `engine` at a free port of 127.0.0.1, enrolls
    /// its agent with `ferry agent enroll` and the one-time token, and
    /// starts it there; returns once the engine sees the host up.
    pub async fn start_for_engine(
        ferry: impl AsRef<Path>,
        engine: &crate::engine::EngineProcess,
        name: &str,
        run_dir: &Path,
    ) -> Self {
        Self::start_for_engine_with_env(ferry, engine, name, run_dir, &[]).await
    }

    /// Like [`AgentProcess::start_for_engine`], with extra environment
    /// variables (a test hook such as `FERRY_TEST_AGENT_CORRUPT_READ_BACK`).
    pub async fn start_for_engine_with_env(
        ferry: impl AsRef<Path>,
        engine: &crate::engine::EngineProcess,
        name: &str,
        run_dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let ferry = ferry.as_ref();
        let port = free_port();
        let c = engine.client();
        let enrolment = c
            .add_host(&ferry_api::engine::AddHost {
                name: name.into(),
                url: format!("https://127.0.0.1:{port}"),
            })
            .await
            .expect("add host");
        enroll_with(ferry, &engine.url(), &enrolment.token, run_dir);
        let agent = Self::start_on(
            ferry,
            name,
            run_dir,
            &[],
            &format!("127.0.0.1:{port}"),
            env,
            engine.agent_tls(),
        )
        .await;
        c.wait_host_up(name, START_WITHIN)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "host {name} did not come up: {e}; its log:\n{}",
                    agent.log()
                )
            });
        agent
    }

    /// Like [`AgentProcess::start`], with extra environment variables (a
    /// test hook such as `FERRY_TEST_AGENT_ABORT_IN`).
    pub async fn start_with_env(
        ferry: impl AsRef<Path>,
        name: &str,
        run_dir: &Path,
        domains: &[&Path],
        env: &[(&str, &str)],
    ) -> Self {
        crate::pki::shared().enroll(run_dir, name);
        let tls = crate::pki::shared().client_tls();
        Self::start_on(ferry, name, run_dir, domains, "127.0.0.1:0", env, tls).await
    }

    /// Kills it with SIGKILL (its VMs keep running) and starts it again on
    /// the same run directory and address, so the engine finds it where
    /// it was; returns once it answers health.
    pub async fn restart(&mut self, ferry: impl AsRef<Path>) {
        self.restart_with_env(ferry, &[]).await;
    }

    /// Like [`AgentProcess::restart`], with extra environment variables
    /// for the new process (those of the old one are not kept).
    pub async fn restart_with_env(&mut self, ferry: impl AsRef<Path>, env: &[(&str, &str)]) {
        self.kill9();
        let listen = self.addr.to_string();
        *self = Self::start_on(
            ferry,
            &self.name,
            &self.run_dir,
            &[],
            &listen,
            env,
            self.tls.clone(),
        )
        .await;
    }

    /// Waits until the process exits on its own (a test hook aborted it)
    /// and returns how it ended; panics, with its log, if it still runs
    /// after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the agent") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ferry agent {} still runs after {within:?}; its log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn start_on(
        ferry: impl AsRef<Path>,
        name: &str,
        run_dir: &Path,
        domains: &[&Path],
        listen: &str,
        env: &[(&str, &str)],
        tls: ClientTls,
    ) -> Self {
        std::fs::create_dir_all(run_dir).expect("create the agent's run directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run_dir.join("agent.log"))
            .expect("open the agent's log");
        let mut cmd = Command::new(ferry.as_ref());
        cmd.args(["agent", "--name", name, "--listen", listen])
            .args(["--accel", &test_accel()])
            .arg("--run-dir")
            .arg(run_dir)
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for d in domains {
            cmd.arg("--domain").arg(d);
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("start ferry agent");
        let stdout = child.stdout.take().expect("the agent's stdout");
        // The first line says where it listens; the reader thread keeps
        // draining stdout so the agent never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(START_WITHIN) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ferry agent {name} did not print its address; its log:\n{}",
                    read_log(run_dir)
                );
            }
        };
        let addr: SocketAddr = line
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("ferry agent printed {line:?}, not 'listening on ADDR'"));
        let mut agent = AgentProcess {
            child,
            name: name.to_string(),
            addr,
            run_dir: run_dir.to_path_buf(),
            tls,
        };
        agent.wait_healthy().await;
        agent
    }

    /// The agent's base URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A client calling it as its engine does (mutual TLS).
    pub fn client(&self) -> AgentClient {
        AgentClient::new(self.url(), &self.tls)
    }

    /// Polls health until it answers; panics (with the agent's log) if the
    /// process exits or the deadline passes.
    pub async fn wait_healthy(&mut self) -> Health {
        let client = self.client();
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Ok(h) = client.health().await {
                return h;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ferry agent {} exited ({status}) before answering; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ferry agent {} did not answer health within {START_WITHIN:?}; its log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it with SIGKILL (no chance to clean up) and reaps it; one that
    /// already exited is only reaped.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill the agent");
        self.child.wait().expect("reap the agent");
    }

    /// Freezes it with SIGSTOP: its sockets stay open but nothing answers,
    /// as a host blocked on storage or cut off by the network.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused agent run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {which} failed");
    }

    /// Asks it to stop with SIGTERM and waits until it has.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.child.wait().expect("reap the agent")
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        read_log(&self.run_dir)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The accelerator test VMs run with: `FERRY_ACCEL` if set, else TCG, since
/// KVM on the test machines breaks real guests (ARCHITECTURE §8).
pub fn test_accel() -> String {
    std::env::var("FERRY_ACCEL").unwrap_or_else(|_| "tcg".into())
}

/// Kills (SIGKILL) every VM an agent with run directory `run_dir` started.
/// VMs outlive their agent by design, so a test must reap its own.
pub fn kill_vms(run_dir: &Path) {
    let Ok(dirs) = std::fs::read_dir(run_dir.join("vms")) else {
        return;
    };
    for dir in dirs.flatten() {
        let Ok(pid) = std::fs::read_to_string(dir.path().join("qemu.pid")) else {
            continue;
        };
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
    }
}

/// Kills the VMs of an agent's run directory when dropped, however the
/// test ends.
#[derive(Debug)]
pub struct KillVmsOnDrop(pub PathBuf);

impl Drop for KillVmsOnDrop {
    fn drop(&mut self) {
        kill_vms(&self.0);
    }
}

/// A port of 127.0.0.1 free now: the kernel's pick for a socket bound to
/// port 0, released at once (an agent added to an engine needs its URL
/// before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `ferry agent enroll` for the agent of `run_dir` against the
/// engine at `engine_url` with `token`; panics with its output if it
/// fails.
pub fn enroll_with(ferry: &Path, engine_url: &str, token: &str, run_dir: &Path) {
    let out = Command::new(ferry)
        .args(["agent", "enroll", "--engine", engine_url, "--run-dir"])
        .arg(run_dir)
        .env("FERRY_ENROLL_TOKEN", token)
        .output()
        .expect("run ferry agent enroll");
    assert!(
        out.status.success(),
        "ferry agent enroll failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_log(run_dir: &Path) -> String {
    std::fs::read_to_string(run_dir.join("agent.log")).unwrap_or_default()
}
