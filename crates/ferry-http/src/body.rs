//! Reading what a request carries (a JSON body, path parameters) with
//! errors a person can act on: axum's own `Json` and `Path` reject with
//! plain text, and `Json` insists on a content type.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use ferry_api::ErrorKind;
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// Reads and decodes the body of `req`. On failure a bad request whose
/// sentence ends with `docs` (where the fields are documented).
pub async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
    docs: &str,
) -> Result<T, HttpError> {
    let bad = |m: String| HttpError::new(ErrorKind::BadRequest, m);
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            bad(format!(
                "the request body could not be read: {}",
                e.body_text()
            ))
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(format!(
            "the request body is empty; send a JSON object with the documented fields{docs}"
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let what = if e.is_data() {
            "does not have the expected fields"
        } else {
            "is not valid JSON"
        };
        bad(format!(
            "the request body {what} ({e}); send a JSON object with the documented fields{docs}"
        ))
    })
}

/// Reads the path parameters as `T`. On failure a bad request: the path
/// and its `problem`, why it does not read, and `what_to_do`.
pub async fn read_path<T: DeserializeOwned + Send, S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    problem: &str,
    what_to_do: &str,
) -> Result<T, HttpError> {
    axum::extract::Path::<T>::from_request_parts(parts, state)
        .await
        .map(|p| p.0)
        .map_err(|e| {
            HttpError::new(
                ErrorKind::BadRequest,
                format!(
                    "the path {} {problem} ({}); {what_to_do}",
                    parts.uri.path(),
                    e.body_text()
                ),
            )
        })
}
