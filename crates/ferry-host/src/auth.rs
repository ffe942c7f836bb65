//! Bearer-token authentication of every request but health.
//!
//! The agent changes storage that many VMs depend on, so nothing but the
//! liveness probe is answered without the token (see `ferry_host::bearer`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::state::AgentState;

/// The only path answered without a token.
pub(crate) const HEALTH_PATH: &str = "/v1/health";

/// Middleware: lets a request through when it carries
/// `Authorization: Bearer <token>`, answers 401 otherwise.
pub(crate) async fn require_token(
    State(state): State<Arc<AgentState>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == HEALTH_PATH {
        return next.run(request).await;
    }
    match check(request.headers().get(AUTHORIZATION), state.token()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check(header: Option<&axum::http::HeaderValue>, token: &str) -> Result<(), Error> {
    crate::bearer::check(
        header,
        token,
        "the agent's",
        "use the token the agent was started with (--token or FERRY_AGENT_TOKEN)",
    )
    .map_err(Error::Unauthorized)
}
