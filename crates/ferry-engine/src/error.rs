//! The engine's errors, and how each becomes an HTTP answer.
//!
//! Every error reaches the caller as `ApiError` JSON (`{"error": ...}`)
//! with a status that says what kind of error it is: the CLI and the UI
//! show the sentence, and decide from the status whether to retry (503),
//! wait (409) or fix the request (400, 404).

use std::io;
use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_api::engine::ApiError;
use ferry_host::ClientError;
use uuid::Uuid;

/// What went wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request carried no token or the wrong one.
    #[error("{0}")]
    Unauthorized(String),

    /// The request is malformed or inconsistent; nothing was changed.
    #[error("{0}")]
    BadRequest(String),

    /// The request names something the engine does not know.
    #[error("{0}")]
    NotFound(String),

    /// The endpoint exists but not with this HTTP method.
    #[error("{0}")]
    MethodNotAllowed(String),

    /// The request conflicts with what exists or is running; nothing was
    /// changed.
    #[error("{0}")]
    Conflict(String),

    /// A disk is locked by a running job.
    #[error("disk {disk} is being moved by job {job}; wait for it or cancel it (ferry job cancel {job})")]
    Locked {
        /// The locked disk's name.
        disk: String,
        /// The job holding its lock.
        job: Uuid,
    },

    /// Something the request needs is not there now (no host up, no SPM);
    /// the same request may succeed later.
    #[error("{0}")]
    Unavailable(String),

    /// A storage domain has no room for what was asked.
    #[error("{0}")]
    NoSpace(String),

    /// A host's agent refused or failed a request.
    #[error("host {host}: {}", cause.message())]
    Agent {
        /// The host's name.
        host: String,
        /// The agent's answer; its sentence is already in the message, so
        /// it is not a `#[source]` (it would be printed twice).
        cause: ClientError,
    },

    /// The storage layer refused or failed (creating the first domain,
    /// before any host can be SPM).
    #[error(transparent)]
    Storage(#[from] ferry_storage::Error),

    /// The database failed.
    #[error("the engine's database failed to {action}")]
    Database {
        /// What was being done, as a verb phrase.
        action: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A value in the database cannot be read back (edited by hand, or
    /// written by a newer engine).
    #[error("the engine's database holds an unreadable value: {0}")]
    Corrupt(String),

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
    #[error("the engine stopped serving on {addr}")]
    Serve {
        /// The address it listened on.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },

    /// Something that should not happen did.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the engine's error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps a database error with what was being done.
    pub fn db(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
        let action = action.into();
        move |source| Error::Database { action, source }
    }

    /// Wraps an agent's error with the host's name.
    pub fn agent(host: impl Into<String>) -> impl FnOnce(ClientError) -> Error {
        let host = host.into();
        move |cause| Error::Agent { host, cause }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) | Error::Locked { .. } => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Agent { cause, .. } => agent_status(cause),
            Error::Storage(e) => storage_status(e),
            Error::Database { .. }
            | Error::Corrupt(_)
            | Error::Bind { .. }
            | Error::Serve { .. }
            | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message with its causes, once each: what the caller reads.
    pub fn full_text(&self) -> String {
        ferry_host::chain_text(self)
    }
}

/// An agent's refusal of what the engine asked on a user's behalf is
/// usually the user's to fix (a path that is not a directory: 400; a
/// conflict: 409; a full domain: 507); an agent that does not answer is a
/// host that is down (503); anything else is the engine's problem.
fn agent_status(e: &ClientError) -> StatusCode {
    match e {
        ClientError::Agent { status, .. } => match status.as_u16() {
            400 => StatusCode::BAD_REQUEST,
            404 => StatusCode::NOT_FOUND,
            409 => StatusCode::CONFLICT,
            507 => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        ClientError::Transport { .. } | ClientError::Timeout { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

fn storage_status(e: &ferry_storage::Error) -> StatusCode {
    use ferry_storage::Error as S;
    if e.is_no_space() {
        return StatusCode::INSUFFICIENT_STORAGE;
    }
    match e {
        S::InvalidRequest(_) | S::NotADomain { .. } => StatusCode::BAD_REQUEST,
        S::DomainExists { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
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
        (status, axum::Json(ApiError { error })).into_response()
    }
}
