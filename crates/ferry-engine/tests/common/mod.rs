//! A real engine on a temporary SQLite file and real agents, all served
//! in-process on 127.0.0.1:0, each agent enrolled with the engine (one-time
//! token, signing request) and driven over mutual TLS, plus raw HTTP for
//! the requests a well-behaved client cannot send.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_agent_client::AgentClient;
use ferry_api::engine::{AddHost, CreateDomain, Domain, Host};
use ferry_engine::{
    ClientError as EngineClientError, Engine, EngineClient, EngineConfig, PkiConfig,
};
use ferry_host::AgentConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ENGINE_TOKEN: &str = "engine-token-7c2e";

/// A temporary directory under the test scratch root.
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(ferry_testkit::scratch_root())
        .expect("a temporary directory")
}

/// An agent: listening from [`TestAgent::start`], serving once an engine
/// added and enrolled it ([`TestEngine::add`]); [`TestAgent::stop`] shuts
/// it down like a host going away (its SPM lease is freed).
pub struct TestAgent {
    pub name: String,
    pub url: String,
    /// Calls it as its engine does (set when it is added to one).
    pub client: AgentClient,
    listener: Option<tokio::net::TcpListener>,
    /// Kills any QEMU this agent started if the test fails half-way;
    /// declared before `run_dir` so it runs while the pid files exist.
    _vms: ferry_testkit::agent::KillVmsOnDrop,
    pub run_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ferry_host::Error>>>,
}

impl TestAgent {
    /// An agent's socket on 127.0.0.1, its host named `name`; it serves
    /// once enrolled ([`TestEngine::add`]).
    pub async fn start(name: &str) -> TestAgent {
        let run_dir = scratch("ferry-engine-agent-");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the agent's socket");
        let url = format!("https://{}", listener.local_addr().expect("its address"));
        TestAgent {
            name: name.to_string(),
            client: AgentClient::new(url.clone(), &ferry_testkit::pki::shared().client_tls()),
            url,
            listener: Some(listener),
            _vms: ferry_testkit::agent::KillVmsOnDrop(run_dir.path().to_path_buf()),
            run_dir,
            stop: None,
            handle: None,
        }
    }

    /// The request that adds this agent's host to an engine.
    pub fn add_request(&self) -> AddHost {
        AddHost {
            name: self.name.clone(),
            url: self.url.clone(),
        }
    }

    /// Enrolls it with the engine of `e` with `token` (from an add or a
    /// re-enrolment).
    pub async fn enroll(&self, e: &TestEngine, token: &str) -> Result<(), ferry_host::Error> {
        ferry_host::enroll::enroll(&e.url, token, self.run_dir.path()).await?;
        Ok(())
    }

    /// Starts serving, enrolled, and calls it as the engine of `e` does.
    pub async fn serve(&mut self, e: &TestEngine) {
        let listener = self.listener.take().expect("not serving yet");
        let server = ferry_host::Server::bind_on(
            AgentConfig {
                name: Some(self.name.clone()),
                listen: listener.local_addr().expect("its address"),
                run_dir: self.run_dir.path().to_path_buf(),
                domains: Vec::new(),
                accel: ferry_host::Accel::Tcg,
            },
            ferry_host::tasks::VerbRegistry::standard(),
            listener,
        )
        .await
        .expect("bind the agent");
        let (tx, rx) = oneshot::channel::<()>();
        self.handle = Some(tokio::spawn(server.run_until(async {
            let _ = rx.await;
        })));
        self.stop = Some(tx);
        self.client = AgentClient::new(
            self.url.clone(),
            &ferry_testkit::pki::engine_client_tls(e.data_dir.path()),
        );
    }

    /// Shuts the agent down and waits until it has: its port closes and
    /// its lease is released, as when a host dies.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("agent task").expect("agent stopped cleanly");
        }
    }
}

/// A running engine on its own SQLite file.
pub struct TestEngine {
    pub url: String,
    pub client: EngineClient,
    pub engine: Arc<Engine>,
    pub data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ferry_engine::Error>>>,
}

impl TestEngine {
    pub async fn start() -> TestEngine {
        Self::start_on(
            scratch("ferry-engine-data-"),
            ferry_engine::EngineLimits::default(),
        )
        .await
    }

    /// An engine on the database a stopped one left in `dir`
    /// ([`TestEngine::stop_keeping_data`]): the files move into a fresh
    /// scratch directory, removed with the engine.
    #[allow(dead_code)] // not every test binary restarts an engine
    pub async fn restart_in(dir: PathBuf) -> TestEngine {
        Self::restart_in_with(dir, ferry_engine::EngineLimits::default()).await
    }

    /// As [`TestEngine::restart_in`], with other limits (a short
    /// retention).
    #[allow(dead_code)] // not every test binary restarts an engine
    pub async fn restart_in_with(dir: PathBuf, limits: ferry_engine::EngineLimits) -> TestEngine {
        let data_dir = scratch("ferry-engine-data-");
        for entry in std::fs::read_dir(&dir).expect("the kept data") {
            let from = entry.expect("an entry").path();
            let name = from.file_name().expect("a file name").to_owned();
            std::fs::rename(&from, data_dir.path().join(name)).expect("move the data");
        }
        std::fs::remove_dir(&dir).expect("remove the kept directory");
        Self::start_on(data_dir, limits).await
    }

    async fn start_on(
        data_dir: tempfile::TempDir,
        limits: ferry_engine::EngineLimits,
    ) -> TestEngine {
        let listen = "127.0.0.1:0".parse().expect("an address");
        let server = ferry_engine::Server::bind(EngineConfig {
            listen,
            token: ENGINE_TOKEN.to_string(),
            database: EngineConfig::sqlite_url(data_dir.path()),
            limits,
            pki: PkiConfig {
                dir: data_dir.path().join("pki"),
                names: PkiConfig::default_names(listen),
                https: false,
                ca_files: None,
            },
        })
        .await
        .expect("bind the engine");
        let url = server.url();
        let engine = server.engine().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run_until(async {
            let _ = rx.await;
        }));
        TestEngine {
            client: EngineClient::new(url.clone(), ENGINE_TOKEN),
            url,
            engine,
            data_dir,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await
                .expect("engine task")
                .expect("engine stopped cleanly");
        }
    }

    /// Stops the engine and keeps its data directory (the caller removes
    /// it), to open the database again.
    pub async fn stop_keeping_data(mut self) -> PathBuf {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await
                .expect("engine task")
                .expect("engine stopped cleanly");
        }
        self.data_dir.keep()
    }

    /// Adds the agent's host, enrolls the agent with the one-time token,
    /// starts it and polls once: the host is up, connected to every domain.
    pub async fn add(&self, agent: &mut TestAgent) -> Host {
        let enrolment = self
            .client
            .add_host(&agent.add_request())
            .await
            .expect("add the host");
        agent
            .enroll(self, &enrolment.token)
            .await
            .expect("enroll the agent");
        agent.serve(self).await;
        ferry_engine::monitor::poll_now(&self.engine)
            .await
            .expect("a poll");
        self.client.host(&agent.name).await.expect("the host")
    }

    pub async fn create_domain(&self, name: &str, root: &Path) -> Domain {
        self.client
            .create_domain(&CreateDomain {
                name: name.to_string(),
                path: root.to_path_buf(),
            })
            .await
            .expect("create a domain")
    }
}

/// Sends a request with reqwest, the body as given, and returns the
/// status and the body.
pub async fn raw(
    url: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut req = reqwest::Client::new().request(method, format!("{url}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("a body"))
}

/// Asserts a raw answer is `status` with `ApiError` JSON mentioning
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
    assert_eq!(kind.http_status(), status, "{v}");
    msg
}

/// Asserts a client call was refused with `status` and a message
/// mentioning `says`.
pub fn assert_refused<T: std::fmt::Debug>(
    r: Result<T, EngineClientError>,
    status: u16,
    says: &str,
) -> String {
    let e = r.expect_err("the engine refuses");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(status), "{e:?}");
    assert_eq!(e.kind().http_status(), status, "{e:?}");
    let msg = e.message();
    assert!(msg.contains(says), "{msg:?} does not say {says:?}");
    msg
}

/// The event messages, newest first.
pub async fn event_messages(engine: &TestEngine) -> Vec<String> {
    engine
        .client
        .events(Some(1000))
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.message)
        .collect()
}

/// Whether some event says `what`.
pub fn said(events: &[String], what: &str) -> bool {
    events.iter().any(|m| m.contains(what))
}

/// A domain root that outlives the test's agents (they keep files open).
pub fn domain_root() -> (tempfile::TempDir, PathBuf) {
    let dir = scratch("ferry-engine-domains-");
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Two domains and `N` disks on the first, written straight into the
/// database: `(domain1, domain2, disks)`.
pub async fn seed<const N: usize>(
    db: &ferry_engine::db::Db,
) -> (uuid::Uuid, uuid::Uuid, [uuid::Uuid; N]) {
    use ferry_engine::db::{DiskRow, DomainRow};
    let domain = |name: &str, master| DomainRow {
        id: uuid::Uuid::new_v4(),
        name: name.into(),
        path: format!("/srv/{name}").into(),
        capacity: 1 << 30,
        free: 1 << 29,
        master,
        created: 1,
    };
    let (src, dst) = (domain("domain1", true), domain("domain2", false));
    db.insert_domain(&src).await.expect("domain1");
    db.insert_domain(&dst).await.expect("domain2");
    let mut disks = [uuid::Uuid::nil(); N];
    for (i, id) in disks.iter_mut().enumerate() {
        let row = DiskRow {
            id: uuid::Uuid::new_v4(),
            name: format!("disk{i}"),
            size: 1 << 20,
            domain: src.id,
            locked_by: None,
            created: 1,
        };
        db.insert_disk(&row).await.expect("a disk");
        *id = row.id;
    }
    (src.id, dst.id, disks)
}
