//! An agent served in-process on 127.0.0.1:0 with a certificate of the
//! test CA, and raw HTTP (over TLS, as the engine) for the requests a
//! well-behaved client cannot send.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_agent_client::AgentClient;
use ferry_host::tasks::VerbRegistry;
use ferry_host::{AgentConfig, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Who a raw request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The engine: its client certificate of the agent's CA.
    Engine,
    /// A TLS client with no certificate.
    Anonymous,
}

/// Raw requests as the engine.
pub const ENGINE: Caller = Caller::Engine;

/// A running agent; stop it with [`TestAgent::stop`] to release its lease
/// and run directory.
pub struct TestAgent {
    pub addr: SocketAddr,
    pub url: String,
    pub client: AgentClient,
    pub run_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ferry_host::Error>>>,
}

/// The agent's settings, its run directory given a certificate of the
/// test CA for host `name`.
pub fn config(name: &str, run_dir: &Path, domains: &[&Path]) -> AgentConfig {
    ferry_testkit::pki::shared().enroll(run_dir, name);
    AgentConfig {
        name: Some(name.to_string()),
        listen: "127.0.0.1:0".parse().expect("an address"),
        run_dir: run_dir.to_path_buf(),
        domains: domains.iter().map(|d| d.to_path_buf()).collect(),
        accel: ferry_host::Accel::Tcg,
    }
}

pub async fn start(name: &str, run_dir: &Path, domains: &[&Path]) -> TestAgent {
    start_with(config(name, run_dir, domains), VerbRegistry::standard()).await
}

/// How long a restart waits for the run directory's lock.
const RELOCK_WAIT: Duration = Duration::from_secs(10);

pub async fn start_with(config: AgentConfig, verbs: VerbRegistry) -> TestAgent {
    let run_dir = config.run_dir.clone();
    // A stopped agent's run-directory lock can outlive it for a moment:
    // a child process another test forks in this process holds a copy of
    // every descriptor until it execs. Wait for it, with a deadline.
    let deadline = Instant::now() + RELOCK_WAIT;
    let server = loop {
        match Server::bind_with(config.clone(), verbs.clone()).await {
            Err(ferry_host::Error::Conflict(m))
                if m.contains("another agent is running") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other.expect("bind the agent"),
        }
    };
    let addr = server.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    let url = format!("https://{addr}");
    TestAgent {
        addr,
        client: AgentClient::new(url.clone(), &ferry_testkit::pki::shared().client_tls()),
        url,
        run_dir,
        stop: Some(tx),
        handle: Some(handle),
    }
}

impl TestAgent {
    /// Shuts the agent down gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("agent task").expect("agent stopped cleanly");
        }
    }
}

/// Sends one raw HTTP/1.1 request (the path is sent exactly as given, no
/// URL normalisation) over TLS as `caller` (plain TCP when `None`), and
/// returns the status and the body.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    caller: Option<Caller>,
    body: &str,
) -> (u16, String) {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut out = Vec::new();
    match caller {
        None => {
            let mut s = s;
            s.write_all(req.as_bytes()).await.expect("send");
            s.read_to_end(&mut out).await.expect("read");
        }
        Some(who) => {
            let pki = ferry_testkit::pki::shared();
            let tls = match who {
                Caller::Engine => pki.client_tls(),
                Caller::Anonymous => {
                    ferry_http::ClientTls::trusting(pki.ca.cert_pem()).expect("client TLS")
                }
            };
            let connector = tokio_rustls::TlsConnector::from(tls.0.clone());
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let mut s = connector.connect(name, s).await.expect("TLS handshake");
            s.write_all(req.as_bytes()).await.expect("send");
            // A peer that closes without close_notify still sent its answer.
            let _ = s.read_to_end(&mut out).await;
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Asserts a raw answer is `status` with a JSON error body mentioning
/// `says`, and returns the message.
pub fn assert_json_error(answer: &(u16, String), status: u16, says: &str) -> String {
    assert_eq!(answer.0, status, "body: {}", answer.1);
    let v: serde_json::Value = serde_json::from_str(&answer.1)
        .unwrap_or_else(|e| panic!("the error body is not JSON ({e}): {:?}", answer.1));
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {v}"))
        .to_string();
    assert!(msg.contains(says), "{msg:?} does not say {says:?}");
    let kind: ferry_api::ErrorKind = serde_json::from_value(v["kind"].clone())
        .unwrap_or_else(|e| panic!("no usable kind in {v} ({e})"));
    assert_eq!(kind.http_status(), answer.0, "{v}");
    msg
}

/// Asserts a client error has `status` and mentions `says`.
pub fn assert_refused<T: std::fmt::Debug>(
    r: Result<T, ferry_agent_client::ClientError>,
    status: u16,
    says: &str,
) -> String {
    let e = r.expect_err("the agent refuses");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(status), "{e}");
    assert_eq!(e.kind().http_status(), status, "{e}");
    let msg = e.message();
    assert!(msg.contains(says), "{msg:?} does not say {says:?}");
    msg
}

/// Polls `cond` until it holds or `within` passes.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A run directory for an agent, removed on drop.
pub fn run_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferry-agent-")
        .tempdir_in(ferry_testkit::scratch_root())
        .expect("a run directory")
}
