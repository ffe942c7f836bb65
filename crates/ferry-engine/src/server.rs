//! Starting and stopping an engine: bind first (so a test can listen on
//! port 0 and learn the port), then serve until a shutdown signal, then
//! stop the monitor and the history pruning and close the database.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::{api, flow, monitor, ops, retention};

/// An engine bound to its address, its monitor running and its unfinished
/// jobs resumed, answering requests once [`Server::run_until`] or
/// [`Server::run`] is called.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    engine: Arc<Engine>,
    stop_monitor: watch::Sender<bool>,
    monitor: JoinHandle<()>,
    pruner: JoinHandle<()>,
    renewer: JoinHandle<()>,
    tls: Option<ferry_http::ServerTls>,
}

impl Server {
    /// Opens the database (creating its schema), listens, starts the host
    /// monitor and resumes the jobs a previous run left unfinished.
    pub async fn bind(config: EngineConfig) -> Result<Server> {
        let EngineConfig {
            listen,
            token,
            database,
            limits,
            pki,
        } = config;
        if token.trim().is_empty() {
            return Err(Error::BadRequest(
                "the engine's token is empty; give it a secret that the CLI and the UI will present".into(),
            ));
        }
        if !pki.https && !ferry_http::is_loopback_only(listen) {
            return Err(Error::BadRequest(format!(
                "the engine would serve plain HTTP on {listen}, beyond loopback, where its token and the agents' enrolment would cross the network in clear; serve HTTPS there, or listen on 127.0.0.1"
            )));
        }
        // Bad settings are refused before anything is written.
        pki.check()?;
        secure_sqlite(&database)?;
        let pki = tokio::task::spawn_blocking(move || crate::pki::EnginePki::open(&pki))
            .await
            .map_err(|e| Error::Internal(format!("opening the PKI did not finish: {e}")))??;
        let tls = pki.api_tls()?;
        let engine = Engine::open(&database, token, limits, pki).await?;
        let (listener, addr) = ferry_http::bind(listen).await?;
        let (stop_monitor, stop) = watch::channel(false);
        let monitor = monitor::spawn(Arc::downgrade(&engine), stop.clone());
        flow::release_orphan_locks(&engine).await;
        flow::resume_all(&engine).await;
        ops::snapshot::resume_interrupted(&engine).await;
        if let Err(e) = retention::prune_now(&engine).await {
            tracing::warn!("pruning old history failed: {}", e.full_text());
        }
        let pruner = retention::spawn(Arc::downgrade(&engine), stop.clone());
        let renewer = ops::certs::spawn(Arc::downgrade(&engine), stop);
        tracing::info!(%addr, "engine listening");
        Ok(Server {
            listener,
            addr,
            engine,
            stop_monitor,
            monitor,
            pruner,
            renewer,
            tls,
        })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL: `https://` when the API serves HTTPS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The engine, for embedding (tests, `ferry up`).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Serves requests until `shutdown` resolves, then stops: in-flight
    /// requests finish, the monitor stops and the database is closed.
    /// Jobs stay as recorded, to be resumed by the next start.
    pub async fn run_until<F>(self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Server {
            listener,
            addr,
            engine,
            stop_monitor,
            monitor,
            pruner,
            renewer,
            tls,
        } = self;
        let served = ferry_http::serve(listener, api::router(engine.clone()), shutdown, tls).await;
        tracing::info!("engine stopping");
        let _ = stop_monitor.send(true);
        if let Err(e) = monitor.await {
            tracing::warn!("the host monitor ended badly: {e}");
        }
        if let Err(e) = pruner.await {
            tracing::warn!("the history pruning ended badly: {e}");
        }
        if let Err(e) = renewer.await {
            tracing::warn!("the certificate renewal ended badly: {e}");
        }
        engine.db().close().await;
        served.map_err(|source| Error::Serve { addr, source })
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> Result<()> {
        self.run_until(ferry_http::shutdown_signal()).await
    }
}

/// A SQLite database records who may do what (hosts' pinned certificates,
/// enrolment tokens' hashes): its file is created 0600 before SQLite opens
/// it, in a 0700 directory; SQLite gives its `-wal` and `-shm` files the
/// database's mode. Existing files that are more open are closed.
fn secure_sqlite(url: &str) -> Result<()> {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let file = rest.split('?').next().unwrap_or_default();
    if file.is_empty() || file == ":memory:" {
        return Ok(());
    }
    let path = std::path::Path::new(file);
    ferry_pki::files::ensure_private_file(path)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        ferry_pki::files::restrict(std::path::Path::new(&side), ferry_pki::files::PRIVATE_FILE)?;
    }
    Ok(())
}
