//! Error answers: one JSON body for every error of both daemons, its
//! status taken from its kind, and the answers to unknown paths and
//! methods.

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ferry_api::{ApiError, ErrorKind};

/// An error answer in the making: a kind and a sentence. The daemons'
/// own errors turn into one of these to be answered, and the shared
/// extractors reject with one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    /// What kind of error it is; decides the status.
    pub kind: ErrorKind,
    /// The sentence the caller reads.
    pub message: String,
}

impl HttpError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        HttpError {
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        respond(self.kind, self.message)
    }
}

/// The answer to an error: `ApiError` JSON with the status of its kind.
/// Server errors are logged as errors (someone must look), the others at
/// debug level (the caller was told).
pub fn respond(kind: ErrorKind, message: String) -> Response {
    let status =
        StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(%status, "{message}");
    } else {
        tracing::debug!(%status, "{message}");
    }
    (
        status,
        axum::Json(ApiError {
            error: message,
            kind,
        }),
    )
        .into_response()
}

/// An error and its sources joined by ": ", skipping a source whose text
/// the message already ends with (`transparent` wrappers): what a caller
/// reads of an error, its causes included, once each.
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

/// Where a caller who asked for an unknown path or method learns the
/// right ones: each daemon says it in its own words.
#[derive(Debug, Clone, Copy)]
pub struct ApiHints {
    /// Ends the answer to an unknown path.
    pub paths: &'static str,
    /// Ends the answer to a known path asked with the wrong method.
    pub methods: &'static str,
}

/// Answers unknown paths (404) and wrong methods (405) with the same JSON
/// errors as everything else, instead of axum's empty bodies.
pub fn with_fallbacks<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    hints: ApiHints,
) -> Router<S> {
    router
        .fallback(move |method: Method, uri: Uri| async move {
            HttpError::new(
                ErrorKind::NotFound,
                format!(
                    "there is no endpoint {method} {}; {}",
                    uri.path(),
                    hints.paths
                ),
            )
        })
        .method_not_allowed_fallback(move |method: Method, uri: Uri| async move {
            HttpError::new(
                ErrorKind::MethodNotAllowed,
                format!("{} does not accept {method}; {}", uri.path(), hints.methods),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not read the volume")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_chain_names_each_cause_once() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(chain_text(&e), "could not read the volume: disk on fire");
    }

    #[test]
    fn an_error_answer_has_its_kinds_status() {
        let r = HttpError::new(ErrorKind::NoSpace, "full").into_response();
        assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    }
}
