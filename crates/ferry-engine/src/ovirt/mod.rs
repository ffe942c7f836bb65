//! oVirt's REST API (v4, XML) for disk moves, so that scripts written for
//! oVirt, and its Python SDK, drive Ferry unchanged: sign in, find disks,
//! storage domains and VMs, `POST /disks/{id}/move`, follow the job and
//! its steps by correlation id.
//!
//! A thin layer: every request becomes the same `ops` call Ferry's own
//! API makes, and its answer is translated (`views`) into the XML shapes
//! of oVirt's model (`xml`). What is served, and what is not, is listed in
//! docs/ovirt-api.md.
//!
//! One route takes everything under `/ovirt-engine/` and dispatches on the
//! path's segments, so `/api` and `/api/v4` are the same and a double
//! slash (an SDK URL ending in `/`) changes nothing.

mod auth;
mod fault;
mod handlers;
mod search;
pub mod sso;
mod views;
mod xml;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::engine::Engine;
use fault::{OvirtError, OvirtResult};

pub use sso::{hash_password, Sso};

/// The paths this layer answers, all of them authenticated here (oVirt's
/// way: SSO tokens, the engine's own token, or the administrator's
/// password), not by the engine's bearer check.
pub(crate) const PREFIX: &str = "/ovirt-engine";

/// Whether `path` is this layer's (and so not checked for Ferry's token).
pub(crate) fn is_ovirt_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/ovirt-engine/")
}

/// The routes, for the engine's router.
pub(crate) fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route(PREFIX, any(dispatch))
        .route("/ovirt-engine/", any(dispatch))
        .route("/ovirt-engine/{*rest}", any(dispatch))
}

/// What a request asked, taken apart once for the handlers.
pub(crate) struct Call<'a> {
    pub engine: &'a Arc<Engine>,
    pub query: HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

async fn dispatch(
    State(engine): State<Arc<Engine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let query = Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let call = Call {
        engine: &engine,
        query,
        headers: &headers,
        body: &body,
    };
    match segments.get(1..).unwrap_or_default() {
        ["sso", "oauth", "token"] if method == Method::POST => sso_token(&engine, &body),
        ["services", "sso-logout"] if method == Method::POST => sso_logout(&engine, &body),
        ["api", rest @ ..] => {
            let rest = match rest {
                ["v4", rest @ ..] => rest,
                rest => rest,
            };
            match api(&call, &method, rest).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An authenticated API request, version 4.
async fn api(call: &Call<'_>, method: &Method, path: &[&str]) -> OvirtResult<Response> {
    auth::check(call.engine, call.headers)?;
    if let Some(v) = call.headers.get("version") {
        if v.to_str().ok().map(str::trim) != Some("4") {
            return Err(OvirtError::failed(
                StatusCode::BAD_REQUEST,
                "Version 4 of the API is the only one served: send 'Version: 4' or no Version header.",
            ));
        }
    }
    handlers::route(call, method, path).await
}

/// `POST /ovirt-engine/sso/oauth/token`: a password grant.
fn sso_token(engine: &Engine, body: &Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "password" {
        return sso_error(
            "unsupported_grant_type",
            "The grant type is not supported: use grant_type=password.",
        );
    }
    if field("scope").is_empty() || field("username").is_empty() {
        return sso_error(
            "invalid_request",
            "The request is incomplete: it needs scope, username and password.",
        );
    }
    match engine.sso().grant(field("username"), field("password")) {
        Ok(grant) => json(
            StatusCode::OK,
            serde_json::json!({
                "access_token": grant.token,
                "token_type": "bearer",
                "exp": grant.expires_ms.to_string(),
                "scope": field("scope"),
            }),
        ),
        Err(refused) => sso_error(refused.code, &refused.message),
    }
}

/// `POST /ovirt-engine/services/sso-logout`: revokes a token.
fn sso_logout(engine: &Engine, body: &Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    if let Some(token) = form.get("token") {
        engine.sso().revoke(token);
    }
    json(StatusCode::OK, serde_json::json!({}))
}

/// oVirt's SSO refusal: 400 with `{"error_code", "error"}`.
fn sso_error(code: &str, message: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "error_code": code, "error": message }),
    )
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}
