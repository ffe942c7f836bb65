//! The engine's errors, and the kind each is answered as.
//!
//! Every error reaches the caller as `ApiError` JSON (`{"error": ...,
//! "kind": ...}`) with the status of its kind (`ferry_http::error`): the
//! CLI and the UI show the sentence, and decide from the kind whether to
//! retry (`unavailable`), wait (`conflict`, `locked`) or fix the request
//! (`bad_request`, `not_found`).

use std::io;
use std::net::SocketAddr;

use axum::response::{IntoResponse, Response};
use ferry_agent_client::ClientError;
use ferry_api::ErrorKind;
use uuid::Uuid;

/// What went wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or inconsistent; nothing was changed.
    #[error("{0}")]
    BadRequest(String),

    /// The request names something the engine does not know.
    #[error("{0}")]
    NotFound(String),

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
    #[error(transparent)]
    Bind(#[from] ferry_http::BindError),

    /// Serving HTTP stopped with an error.
    #[error("the engine stopped serving on {addr}")]
    Serve {
        /// The address it listened on.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },

    /// A request the shared HTTP layer refused (an unreadable body or
    /// path, a missing token): its kind says which.
    #[error(transparent)]
    Http(#[from] ferry_http::HttpError),

    /// A credential was refused (an enrolment token unknown, used or
    /// expired).
    #[error("{0}")]
    Unauthorized(String),

    /// A key, certificate or secret file of the engine's PKI could not be
    /// made, read or written.
    #[error(transparent)]
    Pki(#[from] ferry_pki::Error),

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

    /// What kind of error this is: decides the HTTP status and what a
    /// client does about it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Http(e) => e.kind,
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::NoSpace(_) => ErrorKind::NoSpace,
            Error::Agent { cause, .. } => agent_kind(cause),
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::Pki(ferry_pki::Error::Io { .. }) => ErrorKind::Internal,
            Error::Pki(_) => ErrorKind::BadRequest,
            Error::Database { .. }
            | Error::Corrupt(_)
            | Error::Bind(_)
            | Error::Serve { .. }
            | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The message with its causes, once each: what the caller reads.
    pub fn full_text(&self) -> String {
        ferry_http::chain_text(self)
    }
}

/// An agent's refusal of what the engine asked on a user's behalf is
/// usually the user's to fix (a path that is not a directory, a conflict,
/// a full domain), so its kind passes on; an agent that does not answer,
/// or whose recorded URL is unusable, is a host that is down
/// (unavailable); an agent that refuses the engine's own token or method
/// is the engine's problem.
fn agent_kind(e: &ClientError) -> ErrorKind {
    // The host's recorded URL does not parse: the host cannot be reached
    // until it is enrolled again at a usable one, whatever was asked.
    if matches!(e, ClientError::BadUrl { .. }) {
        return ErrorKind::Unavailable;
    }
    match e.kind() {
        ErrorKind::Unauthorized | ErrorKind::MethodNotAllowed => ErrorKind::Internal,
        kind => kind,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ferry_http::error::respond(self.kind(), self.full_text())
    }
}
