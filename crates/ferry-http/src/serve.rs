//! A daemon's life as an HTTP server: bind first (so a test can listen on
//! port 0 and learn the port), serve until a shutdown signal, let
//! in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use ferry_pki::ServerTls;
use tokio::net::TcpListener;

/// The listening socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("could not listen on {addr}; choose another address or stop what uses it")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

/// Listens on `addr`; returns the listener and the address it really has
/// (the port chosen when `addr` asked for port 0).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish: over TLS with `tls`, else plain HTTP (which
/// the daemons allow on loopback only, see [`is_loopback_only`]).
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
    tls: Option<ServerTls>,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    match tls {
        Some(tls) => crate::tls_serve::serve_tls(listener, router, shutdown, tls).await,
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Whether an address can be reached from this machine only: where plain
/// HTTP is allowed, since nothing it carries crosses a network.
pub fn is_loopback_only(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// SIGINT (Ctrl-C) and SIGTERM, watched from the moment this is made:
/// a daemon that makes it first hears a Ctrl-C during its own start-up,
/// and one started with SIGINT ignored (a shell script's background job)
/// hears it all the same, since watching replaces the inherited
/// disposition. Must be made inside a Tokio runtime.
#[derive(Debug)]
pub struct ShutdownSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    /// Starts watching both signals now.
    pub fn watch() -> ShutdownSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot watch for {name} ({e})");
                None
            }
        };
        ShutdownSignals {
            interrupt: watch(SignalKind::interrupt(), "Ctrl-C"),
            terminate: watch(SignalKind::terminate(), "SIGTERM"),
        }
    }

    /// Resolves at the next SIGINT or SIGTERM (never, for one that
    /// could not be watched).
    pub async fn recv(&mut self) {
        async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(self.interrupt.as_mut()) => tracing::info!("Ctrl-C received"),
            () = next(self.terminate.as_mut()) => tracing::info!("SIGTERM received"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): how an operator or systemd
/// stops a daemon.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch for SIGTERM ({e}); only Ctrl-C stops the daemon");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("Ctrl-C received"),
            Err(e) => {
                tracing::warn!("cannot watch for Ctrl-C ({e})");
                std::future::pending::<()>().await;
            }
        },
    }
}
