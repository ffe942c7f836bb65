//! Bearer-token authentication of every request but health, the web
//! UI's static files and oVirt's API (which checks its own credentials,
//! the engine's token among them: `crate::ovirt`).
//!
//! The engine drives storage and VMs on every host, so nothing but the
//! liveness probe, the UI's page (which holds no data: it asks for the
//! token and sends it to the API) and enrolment (whose one-time token is
//! its credential) is answered without the token (`ferry_http::auth`).

use ferry_http::auth::BearerAuth;

/// The health path, answered without a token.
pub(crate) const HEALTH_PATH: &str = "/api/v1/health";

/// Where agents enroll: its credential is the one-time token in the body,
/// checked by the enrolment itself (`ops::enrol`).
pub(crate) const ENROLL_PATH: &str = "/api/v1/enroll";

/// The engine's CA certificate: public, what clients and agents trust.
pub(crate) const CA_PATH: &str = "/api/v1/ca";

/// The engine's token check: every path but health, enrolment, the CA
/// certificate, the UI's files and oVirt's API (which checks its own
/// credentials, the engine's token among them).
pub(crate) fn bearer(token_hash: &str) -> BearerAuth {
    BearerAuth::from_hash(
        token_hash,
        "the engine's",
        "use the token the engine was started with",
        |path| {
            path == HEALTH_PATH
                || path == ENROLL_PATH
                || path == CA_PATH
                || super::ui::is_public(path)
                || crate::ovirt::is_ovirt_path(path)
        },
    )
}
