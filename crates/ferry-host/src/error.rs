//! The agent's errors, and how each becomes an HTTP answer.
//!
//! Every error reaches the caller as `{"error": "<sentence>"}` with a status
//! that says what kind of error it is, so the engine can tell "retry later"
//! (409) from "you asked for something wrong" (400) without parsing text.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_api::agent::ErrorBody;
use uuid::Uuid;

/// What went wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request carried no token or the wrong one.
    #[error("{0}")]
    Unauthorized(String),

    /// The request is malformed or inconsistent; nothing was changed.
    #[error("{0}")]
    BadRequest(String),

    /// The endpoint exists but not with this HTTP method.
    #[error("{0}")]
    MethodNotAllowed(String),

    /// The request names something the agent does not know.
    #[error("{0}")]
    NotFound(String),

    /// The request conflicts with what exists or is running; nothing was
    /// changed.
    #[error("{0}")]
    Conflict(String),

    /// An SPM verb reached an agent that is not the SPM.
    #[error("host {host} is not SPM: it cannot {action}; ask the SPM, or make this host SPM first (POST /v1/spm/acquire)")]
    NotSpm {
        /// This host's name.
        host: String,
        /// What was asked, as a verb phrase.
        action: String,
    },

    /// Another process holds the SPM lease.
    #[error("host {host} is not SPM: the SPM lease on domain {domain} is held by another host{}; release the SPM role there first", holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    LeaseHeld {
        /// This host's name.
        host: String,
        /// The master domain.
        domain: Uuid,
        /// The holder's name, as it wrote it into the lease file.
        holder: Option<String>,
    },

    /// The storage layer refused or failed.
    #[error(transparent)]
    Storage(#[from] ferry_storage::Error),

    /// QEMU refused or failed.
    #[error(transparent)]
    Qemu(#[from] ferry_qemu::Error),

    /// A task was cancelled on request.
    #[error("task {0} was cancelled")]
    Cancelled(Uuid),

    /// A file of the agent's own (run directory, task record) could not be
    /// used.
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done, as a verb phrase.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The listening socket could not be opened.
    #[error("could not listen on {addr}; choose another address or stop what uses it")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Serving HTTP stopped with an error.
    #[error("the agent stopped serving on {addr}")]
    Serve {
        /// The address it listened on.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },

    /// Something that should not happen did (a worker thread panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the agent's error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with what was done to which path.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        use ferry_storage::Error as S;
        match self {
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) | Error::NotSpm { .. } | Error::LeaseHeld { .. } => {
                StatusCode::CONFLICT
            }
            Error::Cancelled(_) => StatusCode::CONFLICT,
            Error::Qemu(e) => match e {
                ferry_qemu::Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
                ferry_qemu::Error::Command { .. } => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::Storage(e) if e.is_no_space() => StatusCode::INSUFFICIENT_STORAGE,
            Error::Storage(e) => match e {
                S::InvalidRequest(_) | S::NotADomain { .. } => StatusCode::BAD_REQUEST,
                S::VolumeNotFound { .. } | S::UnknownDomain { .. } => StatusCode::NOT_FOUND,
                S::DomainExists { .. }
                | S::VolumeExists { .. }
                | S::VolumeInUse { .. }
                | S::NotLegal { .. }
                | S::Cancelled { .. }
                | S::AmbiguousLeaf { .. } => StatusCode::CONFLICT,
                S::NoSpace { .. } => StatusCode::INSUFFICIENT_STORAGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::Io { .. } | Error::Bind { .. } | Error::Serve { .. } | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The message with its causes, once each: what the caller reads.
    pub fn full_text(&self) -> String {
        chain_text(self)
    }
}

/// An error and its sources joined by ": ", skipping a source whose text
/// the message already ends with (`transparent` wrappers).
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = self.full_text();
        if status.is_server_error() {
            tracing::error!(%status, "{error}");
        } else {
            tracing::debug!(%status, "{error}");
        }
        (status, axum::Json(ErrorBody { error })).into_response()
    }
}
