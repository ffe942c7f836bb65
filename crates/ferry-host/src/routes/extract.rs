//! Request extractors whose rejections are the agent's JSON errors
//! (`ferry_http::body` does the reading).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A JSON request body. The content type is not insisted on (a body is
/// JSON because the API says so); what it must be is valid JSON of the
/// right shape.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        Ok(ApiJson(ferry_http::body::read_json(req, state, "").await?))
    }
}

/// Path parameters, which are all UUIDs in this API.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Ok(ApiPath(
            ferry_http::body::read_path(
                parts,
                state,
                "names something that is not a UUID",
                "ids in paths are UUIDs such as 0f8fad5b-d9cb-469f-a165-70867728950e",
            )
            .await?,
        ))
    }
}

/// A query string of the shape `T` says; anything else (an unknown name, a
/// value of the wrong type) is refused with what was wrong.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(q)| ApiQuery(q))
            .map_err(|e| {
                Error::BadRequest(format!(
                    "the query string '{}' is not one this request takes: {}",
                    parts.uri.query().unwrap_or_default(),
                    e.body_text()
                ))
            })
    }
}
