//! The one error body of both HTTP APIs (the agent's and the engine's),
//! and the error kinds callers decide on.
//!
//! A caller never reads the sentence to decide what to do: a full
//! destination, a VM that is not running or a conflict each have their
//! own [`ErrorKind`], sent next to the sentence, and the HTTP status is
//! derived from the kind in one place ([`ErrorKind::http_status`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer of the agent and the engine: a sentence a person can
/// act on, and the kind a program decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// What was wrong and what to do about it.
    pub error: String,
    /// What kind of error it is (an answer without one, from an older
    /// peer, reads as `internal`).
    #[serde(default)]
    pub kind: ErrorKind,
}

/// What kind of error an answer (or a failed task) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or inconsistent; nothing was changed.
    BadRequest,
    /// The request carried no token or the wrong one.
    Unauthorized,
    /// The request names something that does not exist.
    NotFound,
    /// The endpoint exists, but not with this HTTP method.
    MethodNotAllowed,
    /// The request conflicts with what exists or runs now; nothing was
    /// changed, and the same request may pass later.
    Conflict,
    /// A disk is locked by a running job.
    Locked,
    /// An SPM verb reached a host that is not (or can no longer be) SPM.
    NotSpm,
    /// The VM the request needs running is not running.
    VmNotRunning,
    /// The work was cancelled on request.
    Cancelled,
    /// A storage domain has no room for what was asked.
    NoSpace,
    /// Something the request needs is not reachable now (a host down, no
    /// SPM); the same request may pass later.
    Unavailable,
    /// A file or device failed (other than running out of space).
    Io,
    /// Something failed that should not have.
    #[default]
    Internal,
}

impl ErrorKind {
    /// The HTTP status an answer of this kind carries: the only mapping
    /// from kinds to statuses, for both APIs.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict
            | ErrorKind::Locked
            | ErrorKind::NotSpm
            | ErrorKind::VmNotRunning
            | ErrorKind::Cancelled => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::NoSpace => 507,
            ErrorKind::Io | ErrorKind::Internal => 500,
        }
    }

    /// The kind an answer without a body of ours most likely is (a proxy's
    /// error page, an older peer), judged by its status alone.
    pub fn from_http_status(status: u16) -> ErrorKind {
        match status {
            400 | 422 => ErrorKind::BadRequest,
            401 | 403 => ErrorKind::Unauthorized,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            409 => ErrorKind::Conflict,
            502..=504 => ErrorKind::Unavailable,
            507 => ErrorKind::NoSpace,
            _ => ErrorKind::Internal,
        }
    }

    /// Whether the same request may pass later without anyone changing
    /// anything (the flow retries these).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::Io | ErrorKind::Internal
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_travel_as_snake_case_words_and_default_to_internal() {
        let body = ApiError {
            error: "full".into(),
            kind: ErrorKind::NoSpace,
        };
        let json = serde_json::to_string(&body).expect("encode");
        assert_eq!(json, r#"{"error":"full","kind":"no_space"}"#);
        let old: ApiError = serde_json::from_str(r#"{"error":"x"}"#).expect("decode");
        assert_eq!(old.kind, ErrorKind::Internal);
    }

    #[test]
    fn every_kind_maps_to_a_status_that_maps_back_to_a_kind_of_the_same_family() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Unauthorized,
            ErrorKind::NotFound,
            ErrorKind::MethodNotAllowed,
            ErrorKind::Conflict,
            ErrorKind::Locked,
            ErrorKind::NotSpm,
            ErrorKind::VmNotRunning,
            ErrorKind::Cancelled,
            ErrorKind::NoSpace,
            ErrorKind::Unavailable,
            ErrorKind::Io,
            ErrorKind::Internal,
        ] {
            let back = ErrorKind::from_http_status(kind.http_status());
            assert_eq!(back.http_status(), kind.http_status(), "{kind:?}");
        }
    }
}
