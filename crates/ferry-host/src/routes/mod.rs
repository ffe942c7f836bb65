//! The HTTP API under `/v1`: one module per resource, each contributing
//! its routes; this module merges them, adds authentication and answers
//! unknown paths with the same JSON errors as everything else.
//!
//! The HSM half's routes (VMs, blockMigrate, finalizeBlockMigrate) live in
//! `vms::routes`; task verbs of both roles get routes from the registry.

mod domains;
pub(crate) mod extract;
mod health;
mod spm;
mod tasks;
mod volumes;

use std::sync::Arc;

use axum::http::{Method, Uri};
use axum::Router;

use crate::auth::require_token;
use crate::error::Error;
use crate::state::AgentState;

/// The whole API, authenticated, bound to `agent`.
pub(crate) fn router(agent: Arc<AgentState>) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(domains::routes())
        .merge(spm::routes())
        .merge(volumes::routes())
        .merge(crate::vms::routes::routes())
        .merge(tasks::routes(agent.tasks().verbs()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            agent.clone(),
            require_token,
        ))
        .with_state(agent)
}

async fn not_found(method: Method, uri: Uri) -> Error {
    Error::NotFound(format!(
        "there is no endpoint {method} {}; check the path against the agent's API under /v1",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Error {
    Error::MethodNotAllowed(format!(
        "{} does not accept {method}; use the method the agent's API gives for it",
        uri.path()
    ))
}
