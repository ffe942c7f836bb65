//! Engine processes for tests: `ferry engine` on a free port of 127.0.0.1
//! (HTTPS, its CA and certificates made in its directory's `pki/`) with
//! its SQLite database in a directory of the test's, killed with SIGKILL
//! and started again on the same database to test resume.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_engine::EngineClient;

/// The token test engines are started with.
pub const TOKEN: &str = "ferry-test-engine-token-58e1";

/// How long an engine may take to start listening.
const START_WITHIN: Duration = Duration::from_secs(30);

/// A running `ferry engine`; killed when dropped.
#[derive(Debug)]
pub struct EngineProcess {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its data directory (database, log).
    pub dir: PathBuf,
}

impl EngineProcess {
    /// Starts `ferry engine` with its database in `dir`, and the extra
    /// environment `env` (such as `FERRY_TEST_HOLD_STEP`); returns once it
    /// answers health.
    pub async fn start(ferry: impl AsRef<Path>, dir: &Path, env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(dir).expect("create the engine's directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("engine.log"))
            .expect("open the engine's log");
        let mut cmd = Command::new(ferry.as_ref());
        cmd.args(["engine", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("FERRY_ENGINE_TOKEN", TOKEN)
            .env("FERRY_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("start ferry engine");
        let stdout = child.stdout.take().expect("the engine's stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let Ok(line) = rx.recv_timeout(START_WITHIN) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ferry engine did not print its address; its log:\n{}",
                std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default()
            );
        };
        let addr: SocketAddr = line
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("ferry engine printed {line:?}, not 'listening on ADDR'"));
        let engine = EngineProcess {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        let client = engine.client();
        let deadline = Instant::now() + START_WITHIN;
        while client.health().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "ferry engine did not answer health"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        engine
    }

    /// The engine's base URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Its CA certificate file, which its clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("pki/ca.pem")
    }

    /// A client presenting the test token and trusting the engine's CA.
    pub fn client(&self) -> EngineClient {
        let ca = std::fs::read_to_string(self.ca_file()).expect("the engine's CA");
        let tls = ferry_http::ClientTls::trusting(&ca).expect("client TLS");
        EngineClient::with_tls(self.url(), TOKEN, &tls)
    }

    /// TLS settings to call its agents as it does.
    pub fn agent_tls(&self) -> ferry_http::ClientTls {
        crate::pki::engine_client_tls(&self.dir)
    }

    /// Kills it with SIGKILL and reaps it (an engine that already died,
    /// by a test hook, is only reaped).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.child.wait().expect("reap the engine");
    }

    /// Waits until the engine exits by itself (a test hook ends it), at
    /// most `within`; true if it did.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("engine.log")).unwrap_or_default()
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
