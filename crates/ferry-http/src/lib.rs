//! The HTTP plumbing Ferry's two daemons share, so the engine and the host
//! agent answer, authenticate, fail and shut down the same way, and their
//! typed clients read answers the same way (the split cloud-hypervisor
//! draws with its `api_client` crate):
//!
//! - [`serve`]: bind, serve (plain HTTP, or TLS with or without client
//!   certificates) until a shutdown signal, stop gracefully.
//! - [`auth`]: the bearer-token check and the middleware that applies it.
//! - [`error`]: every error answer is [`ferry_api::ApiError`] JSON whose
//!   status comes from its [`ferry_api::ErrorKind`]; unknown paths and
//!   methods are answered the same way.
//! - [`body`]: reading JSON bodies and path parameters with errors a
//!   person can act on.
//! - [`client`]: a base client with timeouts that keeps an error answer's
//!   kind, for the agent's and the engine's typed clients.

pub mod auth;
pub mod body;
pub mod client;
pub mod error;
pub mod serve;
mod tls_serve;

pub use client::{ClientError, HttpClient};
pub use error::{chain_text, HttpError};
pub use ferry_pki::{ClientTls, ServerTls};
pub use serve::{bind, is_loopback_only, serve, shutdown_signal, BindError, ShutdownSignals};
