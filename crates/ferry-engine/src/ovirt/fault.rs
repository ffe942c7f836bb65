//! oVirt's error answers: a `<fault>` with a reason and a detail, with
//! oVirt's status codes, except an unknown id, which is a 404 with an
//! empty body (what the SDK turns into its `NotFoundError`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ferry_api::ErrorKind;

use crate::error::Error;
use crate::ovirt::xml::{self, Fault};

/// A refused oVirt request.
#[derive(Debug)]
pub(crate) enum OvirtError {
    /// Nothing has that id or path: 404, no body.
    NotFound,
    /// A fault with its status.
    Fault {
        status: StatusCode,
        reason: &'static str,
        detail: String,
    },
}

/// What an oVirt handler returns.
pub(crate) type OvirtResult<T> = std::result::Result<T, OvirtError>;

impl OvirtError {
    /// A request missing what it needs (oVirt: "Incomplete parameters").
    pub fn incomplete(detail: impl Into<String>) -> OvirtError {
        OvirtError::Fault {
            status: StatusCode::BAD_REQUEST,
            reason: "Incomplete parameters",
            detail: detail.into(),
        }
    }

    /// A request that cannot be done as asked (oVirt: "Operation Failed").
    pub fn failed(status: StatusCode, detail: impl Into<String>) -> OvirtError {
        OvirtError::Fault {
            status,
            reason: "Operation Failed",
            detail: detail.into(),
        }
    }

    /// A request without a valid token or password.
    pub fn unauthorized(detail: impl Into<String>) -> OvirtError {
        OvirtError::Fault {
            status: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            detail: detail.into(),
        }
    }

    /// An engine error met while doing `action` (`"move Virtual Disk"`),
    /// worded as oVirt words a refused action: `[Cannot <action>. …]`.
    pub fn refused(action: &str, e: &Error) -> OvirtError {
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict | ErrorKind::Locked => StatusCode::CONFLICT,
            ErrorKind::BadRequest | ErrorKind::NoSpace => StatusCode::BAD_REQUEST,
            ErrorKind::Unavailable | ErrorKind::NotSpm | ErrorKind::VmNotRunning => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        OvirtError::failed(
            status,
            format!("[Cannot {action}. {}]", sentence(&e.full_text())),
        )
    }

    /// An engine error met while reading: an unknown object is a 404,
    /// anything else a fault.
    pub fn reading(e: &Error) -> OvirtError {
        match e.kind() {
            ErrorKind::NotFound => OvirtError::NotFound,
            _ => OvirtError::failed(StatusCode::INTERNAL_SERVER_ERROR, sentence(&e.full_text())),
        }
    }
}

/// `text` with a capital and a full stop, as oVirt's messages read.
fn sentence(text: &str) -> String {
    let mut s: String = text.trim().to_string();
    if let Some(first) = s.get(..1) {
        let upper = first.to_uppercase();
        s.replace_range(..1, &upper);
    }
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

impl IntoResponse for OvirtError {
    fn into_response(self) -> Response {
        match self {
            OvirtError::NotFound => StatusCode::NOT_FOUND.into_response(),
            OvirtError::Fault {
                status,
                reason,
                detail,
            } => {
                let fault = Fault {
                    reason: reason.into(),
                    detail,
                };
                match xml::render("fault", &fault) {
                    Ok(body) => xml_response(status, body),
                    Err(_) => status.into_response(),
                }
            }
        }
    }
}

/// An XML answer.
pub(crate) fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/xml;charset=UTF-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_disk_is_a_conflict_worded_as_ovirt_words_it() {
        let e = Error::Conflict("disk demo-disk is being moved".into());
        let OvirtError::Fault { status, detail, .. } = OvirtError::refused("move Virtual Disk", &e)
        else {
            panic!("a fault");
        };
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            detail,
            "[Cannot move Virtual Disk. Disk demo-disk is being moved.]"
        );
    }

    #[test]
    fn an_unknown_object_is_a_bare_404() {
        let r = OvirtError::reading(&Error::NotFound("no disk x".into())).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
