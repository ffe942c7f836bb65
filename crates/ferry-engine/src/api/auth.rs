//! Bearer-token authentication of every request but health and the web
//! UI's static files.
//!
//! The engine drives storage and VMs on every host, so nothing but the
//! liveness probe and the UI's page (which holds no data: it asks for the
//! token and sends it to the API) is answered without the token (see
//! `ferry_host::bearer`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::engine::Engine;
use crate::error::Error;

/// The only path answered without a token.
pub(crate) const HEALTH_PATH: &str = "/api/v1/health";

/// Middleware: lets a request through when it carries
/// `Authorization: Bearer <token>`, answers 401 otherwise.
pub(crate) async fn require_token(
    State(engine): State<Arc<Engine>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == HEALTH_PATH || super::ui::is_public(path) {
        return next.run(request).await;
    }
    match check(request.headers().get(AUTHORIZATION), engine.token()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check(header: Option<&axum::http::HeaderValue>, token: &str) -> Result<(), Error> {
    ferry_host::bearer::check(
        header,
        token,
        "the engine's",
        "use the token the engine was started with",
    )
    .map_err(Error::Unauthorized)
}
