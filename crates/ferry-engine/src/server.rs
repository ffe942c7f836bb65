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
        } = config;
        if token.trim().is_empty() {
            return Err(Error::BadRequest(
                "the engine's token is empty; give it a secret that the CLI and the UI will present".into(),
            ));
        }
        let engine = Engine::open(&database, token, limits).await?;
        let (listener, addr) = ferry_http::bind(listen).await?;
        let (stop_monitor, stop) = watch::channel(false);
        let monitor = monitor::spawn(Arc::downgrade(&engine), stop.clone());
        flow::release_orphan_locks(&engine).await;
        flow::resume_all(&engine).await;
        ops::snapshot::resume_interrupted(&engine).await;
        if let Err(e) = retention::prune_now(&engine).await {
            tracing::warn!("pruning old history failed: {}", e.full_text());
        }
        let pruner = retention::spawn(Arc::downgrade(&engine), stop);
        tracing::info!(%addr, "engine listening");
        Ok(Server {
            listener,
            addr,
            engine,
            stop_monitor,
            monitor,
            pruner,
        })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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
        } = self;
        let served = ferry_http::serve(listener, api::router(engine.clone()), shutdown).await;
        tracing::info!("engine stopping");
        let _ = stop_monitor.send(true);
        if let Err(e) = monitor.await {
            tracing::warn!("the host monitor ended badly: {e}");
        }
        if let Err(e) = pruner.await {
            tracing::warn!("the history pruning ended badly: {e}");
        }
        engine.db().close().await;
        served.map_err(|source| Error::Serve { addr, source })
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> Result<()> {
        self.run_until(ferry_http::shutdown_signal()).await
    }
}
