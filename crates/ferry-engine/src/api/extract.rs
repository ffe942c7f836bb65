//! Request extractors whose rejections are the engine's JSON errors.
//!
//! axum's own `Json`, `Path` and `Query` reject with plain text; a caller
//! of this API always gets `ApiError` JSON with a sentence it can show.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A JSON request body. The content type is not insisted on (the body is
/// JSON because the API says so); it must be valid JSON of the right shape,
/// without unknown fields (the request types refuse them).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        Ok(ApiJson(
            ferry_http::body::read_json(req, state, " (see /api/v1/openapi.json)").await?,
        ))
    }
}

/// One path parameter: a name or a UUID.
#[derive(Debug)]
pub struct ApiPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Ok(ApiPath(
            ferry_http::body::read_path(
                parts,
                state,
                "cannot be read",
                "name things by their name or UUID",
            )
            .await?,
        ))
    }
}

/// Query parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| {
                Error::BadRequest(format!(
                    "the query string of {} is not usable ({}); see /api/v1/openapi.json for the parameters",
                    parts.uri,
                    e.body_text()
                ))
            })
    }
}
