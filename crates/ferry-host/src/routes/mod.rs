//! The HTTP API under `/v1`: one module per resource, each contributing
//! its routes; this module merges them and answers unknown paths with the
//! same JSON errors as everything else. Who may call is decided before
//! any route, by mutual TLS (`identity`): only the engine gets this far.
//!
//! The HSM half's routes (VMs, blockMigrate, finalizeBlockMigrate) are in
//! `vms`; task verbs of both roles get routes from the registry.

mod domains;
pub(crate) mod extract;
mod health;
mod pki;
mod spm;
mod tasks;
mod vms;
mod volumes;

use std::sync::Arc;

use axum::Router;
use ferry_http::error::{with_fallbacks, ApiHints};

use crate::state::AgentState;

/// Where a caller who asked for an unknown path or method learns better.
const HINTS: ApiHints = ApiHints {
    paths: "check the path against the agent's API under /v1",
    methods: "use the method the agent's API gives for it",
};

/// The whole API, bound to `agent`.
pub(crate) fn router(agent: Arc<AgentState>) -> Router {
    let routes = Router::new()
        .merge(health::routes())
        .merge(pki::routes())
        .merge(domains::routes())
        .merge(spm::routes())
        .merge(volumes::routes())
        .merge(vms::routes())
        .merge(tasks::routes(agent.tasks().verbs()));
    with_fallbacks(routes, HINTS).with_state(agent)
}
