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
        let AgentConfig {
            name,
            listen,
            token,
            run_dir,
            domains,
            accel,
        } = config;
        if name.trim().is_empty() {
            return Err(Error::BadRequest(
                "the agent's name is empty; give it the host's name (--name)".into(),
            ));
        }
        if token.trim().is_empty() {
            return Err(Error::BadRequest(
                "the agent's token is empty; set --token or FERRY_AGENT_TOKEN to a secret the engine shares".into(),
            ));
        }
        let host = name.clone();
        let (run_dir, run_lock, domains, tasks) = blocking(move || {
            let run_dir = open_run_dir(&run_dir)?;
            let lock = lock_run_dir(&run_dir)?;
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
            Ok((run_dir, lock, domains, tasks))
        })
        .await?;
        let vms = VmManager::load(&run_dir, accel).await?;
        let agent = Arc::new(AgentState::new(name, token, run_dir, domains, tasks, vms));
        let (listener, addr) = ferry_http::bind(listen).await?;
        let a = agent.clone();
        blocking(move || a.tasks().resume(&a)).await?;
        tracing::info!(host = agent.name(), %addr, run_dir = %agent.run_dir().display(), "agent listening");
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
        let served = ferry_http::serve(listener, routes::router(agent.clone()), shutdown).await;
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

/// Two agents on one run directory would run each other's tasks twice;
/// the lock makes the second one stop at start with a clear message.
fn lock_run_dir(run_dir: &std::path::Path) -> Result<File> {
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
