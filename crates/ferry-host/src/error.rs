//! The agent's errors, and the kind each is answered as.
//!
//! Every error reaches the caller as `{"error": "<sentence>", "kind":
//! "<kind>"}` with the status of its kind (`ferry_http::error`), so the
//! engine can tell "retry later" from "you asked for something wrong" or
//! "the destination is full" without parsing text.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::response::{IntoResponse, Response};
use ferry_api::ErrorKind;
pub use ferry_http::chain_text;
use uuid::Uuid;

/// What went wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or inconsistent; nothing was changed.
    #[error("{0}")]
    BadRequest(String),

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

    /// A verb that works on a running VM found it stopped.
    #[error("VM {name} is not running, so {action}")]
    VmNotRunning {
        /// The VM's name.
        name: String,
        /// What cannot be done, and what to do instead.
        action: String,
    },

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
    #[error(transparent)]
    Bind(#[from] ferry_http::BindError),

    /// Serving HTTP stopped with an error.
    #[error("the agent stopped serving on {addr}")]
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

    /// A key, certificate or secret file could not be made, read or
    /// written.
    #[error(transparent)]
    Pki(#[from] ferry_pki::Error),

    /// The agent has no certificate yet.
    #[error("the agent in {} is not enrolled: on the engine run `ferry host add NAME --url https://THIS_HOST:54321`, then here `ferry agent enroll --engine ENGINE_URL --token TOKEN --run-dir {}`", run_dir.display(), run_dir.display())]
    NotEnrolled {
        /// Its run directory.
        run_dir: PathBuf,
    },

    /// The engine could not be asked, or refused (enrolment).
    #[error("the engine refused or could not be reached")]
    Engine(#[source] ferry_http::ClientError),

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

    /// What kind of error this is: decides the HTTP status, and what the
    /// engine does about it.
    pub fn kind(&self) -> ErrorKind {
        use ferry_storage::Error as S;
        match self {
            Error::Http(e) => e.kind,
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::NotSpm { .. } | Error::LeaseHeld { .. } => ErrorKind::NotSpm,
            Error::VmNotRunning { .. } => ErrorKind::VmNotRunning,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::Qemu(e) if e.is_no_space() => ErrorKind::NoSpace,
            Error::Qemu(e) => match e {
                ferry_qemu::Error::InvalidRequest(_) => ErrorKind::BadRequest,
                ferry_qemu::Error::Command { .. } => ErrorKind::Conflict,
                // The host cannot run VMs as it is set up (503): not a
                // fault of the request, nor a bug of the agent.
                ferry_qemu::Error::KvmStart { .. } => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Error::Storage(e) if e.is_no_space() => ErrorKind::NoSpace,
            Error::Storage(e) => match e {
                S::InvalidRequest(_) | S::NotADomain { .. } => ErrorKind::BadRequest,
                S::VolumeNotFound { .. } | S::UnknownDomain { .. } | S::RootMissing { .. } => {
                    ErrorKind::NotFound
                }
                S::DomainExists { .. }
                | S::RootUnsuitable { .. }
                | S::VolumeExists { .. }
                | S::VolumeInUse { .. }
                | S::NotLegal { .. }
                | S::AmbiguousLeaf { .. } => ErrorKind::Conflict,
                S::Cancelled { .. } => ErrorKind::Cancelled,
                S::NoSpace { .. } => ErrorKind::NoSpace,
                S::Io { .. } => ErrorKind::Io,
                _ => ErrorKind::Internal,
            },
            Error::Io { .. } => ErrorKind::Io,
            Error::Pki(_) | Error::NotEnrolled { .. } => ErrorKind::BadRequest,
            Error::Engine(e) => e.kind(),
            Error::Bind(_) | Error::Serve { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The message with its causes, once each: what the caller reads.
    pub fn full_text(&self) -> String {
        chain_text(self)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ferry_http::error::respond(self.kind(), self.full_text())
    }
}
