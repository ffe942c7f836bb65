//! Bearer-token authentication of every request but health.
//!
//! The agent changes storage that many VMs depend on, so nothing but the
//! liveness probe is answered without the token (`ferry_http::auth`).

use ferry_http::auth::BearerAuth;

/// The only path answered without a token.
pub(crate) const HEALTH_PATH: &str = "/v1/health";

/// The agent's token check: every path but health.
pub(crate) fn bearer(token: &str) -> BearerAuth {
    BearerAuth::new(
        token,
        "the agent's",
        "use the token the agent was started with (--token or FERRY_AGENT_TOKEN)",
        |path| path == HEALTH_PATH,
    )
}
