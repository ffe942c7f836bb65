//! Serving over TLS: each accepted connection is handshaken on a task of
//! its own (a slow or hostile client holds up no other), then served by
//! hyper with the same router as plain HTTP; a shutdown stops accepting
//! and waits for the connections in flight, as `axum::serve` does.
//!
//! A client that speaks plain HTTP to a TLS port gets a plain-HTTP 400
//! answer saying to use `https://`, instead of a connection closed
//! without a word.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use ferry_api::{ApiError, ErrorKind};
use ferry_pki::ServerTls;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How long a client may take to say its first byte and finish the TLS
/// handshake: a peer that stalls there is dropped.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then
/// lets in-flight connections finish.
pub async fn serve_tls<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
    tls: ServerTls,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(tls.0);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before it
                    // was accepted: the listener itself is fine.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, acceptor, router, watcher).await {
                tracing::debug!(%peer, "TLS connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    router: Router,
    watcher: Watcher,
) -> Result<(), String> {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(HANDSHAKE_WITHIN, stream.peek(&mut first))
        .await
        .map_err(|_| "the client said nothing".to_string())?
        .map_err(|e| e.to_string())?;
    if peeked == 0 {
        return Ok(());
    }
    if first[0] != TLS_HANDSHAKE {
        return plain_http_refused(stream).await;
    }
    let tls = tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(stream))
        .await
        .map_err(|_| "the TLS handshake did not finish in time".to_string())?
        .map_err(|e| format!("TLS handshake refused: {e}"))?;
    let service = TowerToHyperService::new(router);
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    watcher
        .watch(conn.into_owned())
        .await
        .map_err(|e| e.to_string())
}

/// Answers a plain-HTTP request on the TLS port with a JSON 400 that says
/// what to do, then closes.
async fn plain_http_refused(mut stream: TcpStream) -> Result<(), String> {
    let body = serde_json::to_string(&ApiError {
        error: "this port speaks HTTPS only; use an https:// URL".into(),
        kind: ErrorKind::BadRequest,
    })
    .map_err(|e| e.to_string())?;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(answer.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.shutdown().await;
    Ok(())
}
