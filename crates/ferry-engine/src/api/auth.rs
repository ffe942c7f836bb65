//! Bearer-token authentication of every request but health, the web
//! UI's static files and oVirt's API (which checks its own credentials,
//! the engine's token among them: `crate::ovirt`).
//!
//! The engine drives storage and VMs on every host, so nothing but the
//! liveness probe and the UI's page (which holds no data: it asks for the
//! token and sends it to the API) is answered without the token
//! (`ferry_http::auth`).

use ferry_http::auth::BearerAuth;

/// The only API path answered without a token.
pub(crate) const HEALTH_PATH: &str = "/api/v1/health";

/// The engine's token check: every path but health, the UI's files and
/// oVirt's API.
pub(crate) fn bearer(token: &str) -> BearerAuth {
    BearerAuth::new(
        token,
        "the engine's",
        "use the token the engine was started with",
        |path| {
            path == HEALTH_PATH || super::ui::is_public(path) || crate::ovirt::is_ovirt_path(path)
        },
    )
}
