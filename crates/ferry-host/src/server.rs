//! Starting and stopping an agent: bind first (so a test can listen on
//! port 0 and learn the port), then serve until a shutdown signal, then
//! stop the tasks (they resume at the next start) and release the SPM
//! lease.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_http::shutdown_signal;
use tokio::net::TcpListener;

use crate::config::AgentConfig;
use crate::domains::DomainRegistry;
use crate::error::{Error, Result};
use crate::fsutil::{blocking, try_lock_exclusive};
use crate::gc;
use crate::identity::Identity;
use crate::routes;
use crate::state::AgentState;
use crate::tasks::{TaskManager, VerbRegistry};
use crate::vms::VmManager;

/// An agent bound to its address, its tasks resumed, not yet answering
/// requests until [`Server::run_until`] or [`Server::run`].
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    agent: Arc<AgentState>,
    /// The run directory's lock, held for the agent's life.
    _run_lock: File,
}

impl Server {
    /// Binds an agent with the standard verbs.
    pub async fn bind(config: AgentConfig) -> Result<Server> {
        Self::bind_with(config, VerbRegistry::standard()).await
    }

    /// Binds an agent that runs the given task verbs: opens (and locks) its
    /// run directory, connects its domains, listens, and resumes the tasks
    /// a previous run left unfinished.
    pub async fn bind_with(config: AgentConfig, verbs: VerbRegistry) -> Result<Server> {
        let (listener, _) = ferry_http::bind(config.listen).await?;
        Self::bind_on(config, verbs, listener).await
    }

    /// Like [`Server::bind_with`] on a socket already listening (its
    /// address is known before the agent is enrolled: `ferry up` adds its
    /// local host at that address first).
    pub async fn bind_on(
        config: AgentConfig,
        verbs: VerbRegistry,
        listener: TcpListener,
    ) -> Result<Server> {
        let AgentConfig {
            name,
            listen,
            run_dir,
            domains,
            accel,
        } = config;
        let addr = listener
            .local_addr()
            .map_err(|source| ferry_http::BindError {
                addr: listen,
                source,
            })?;
        // An agent that is not enrolled is told how, with nothing made.
        if !crate::identity::is_enrolled(&run_dir) {
            return Err(Error::NotEnrolled { run_dir });
        }
        let (run_dir, run_lock, identity) = blocking(move || {
            let run_dir = open_run_dir(&run_dir)?;
            let lock = lock_run_dir(&run_dir)?;
            let identity = Identity::load(&run_dir)?;
            Ok((run_dir, lock, identity))
        })
        .await?;
        let name = checked_name(name, &identity)?;
        let host = name.clone();
        let (run_dir, domains, tasks) = blocking(move || {
            // Nothing of this agent writes yet and the lock keeps others
            // out: every temporary file there is a crash's leftover.
            if let Err(e) = gc::clean_run_dir(&run_dir, Duration::ZERO) {
                tracing::warn!(
                    "could not collect the run directory's garbage: {}",
                    e.full_text()
                );
            }
            let domains = DomainRegistry::load(&host, &run_dir, &domains)?;
            let tasks = TaskManager::open(&run_dir, verbs)?;
            Ok((run_dir, domains, tasks))
        })
        .await?;
        let vms = VmManager::load(&run_dir, accel).await?;
        let tls = identity.server_tls()?;
        let agent = Arc::new(AgentState::new(
            name, identity, run_dir, domains, tasks, vms,
        ));
        let a = agent.clone();
        blocking(move || a.tasks().resume(&a)).await?;
        tracing::info!(host = agent.name(), %addr, run_dir = %agent.run_dir().display(), "agent listening");
        drop(tls);
        Ok(Server {
            listener,
            addr,
            agent,
            _run_lock: run_lock,
        })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The agent's state, for embedding (tests, `ferry up`).
    pub fn agent(&self) -> &Arc<AgentState> {
        &self.agent
    }

    /// Serves requests until `shutdown` resolves, then stops gracefully:
    /// in-flight requests finish, running tasks stop (staying `running` on
    /// disk, to be resumed by the next start) and the SPM lease is
    /// released.
    pub async fn run_until<F>(self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Server {
            listener,
            addr,
            agent,
            _run_lock,
        } = self;
        let tls = agent.identity().server_tls()?;
        let served =
            ferry_http::serve(listener, routes::router(agent.clone()), shutdown, Some(tls)).await;
        tracing::info!(host = agent.name(), "agent stopping");
        agent.tasks().shutdown().await;
        // Nothing is running any more, so the release cannot be refused.
        let _ = agent.spm().release(|| None);
        served.map_err(|source| Error::Serve { addr, source })
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Runs an agent with the standard verbs until SIGTERM or Ctrl-C.
pub async fn serve(config: AgentConfig) -> Result<()> {
    Server::bind(config).await?.run().await
}

fn open_run_dir(run_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(run_dir)
        .map_err(|e| Error::io("create the run directory", run_dir, e))?;
    std::fs::canonicalize(run_dir).map_err(|e| Error::io("resolve the run directory", run_dir, e))
}

/// The host's name: the one its certificate gives, which a name given
/// must match (the engine knows the host by that name).
fn checked_name(given: Option<String>, identity: &Identity) -> Result<String> {
    let Some(in_cert) = identity.name() else {
        return Err(Error::BadRequest(
            "the agent's certificate names no host; enroll it again (ferry agent enroll)".into(),
        ));
    };
    match given.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) {
        Some(n) if n != in_cert => Err(Error::BadRequest(format!(
            "this agent's certificate is host {in_cert}'s, not {n}'s; start it with --name {in_cert} (or none), or enroll it as {n}"
        ))),
        _ => Ok(in_cert),
    }
}

/// Two agents on one run directory would run each other's tasks twice;
/// the lock makes the second one stop at start with a clear message (and
/// an enrolment wait until the agent has stopped).
pub(crate) fn lock_run_dir(run_dir: &std::path::Path) -> Result<File> {
    let path = run_dir.join("agent.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    if !try_lock_exclusive(&file, &path)? {
        return Err(Error::Conflict(format!(
            "another agent is running with the run directory {}; stop it or give this one another --run-dir",
            run_dir.display()
        )));
    }
    Ok(file)
}
