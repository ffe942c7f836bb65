//! Who may call oVirt's API: a bearer token from oVirt's SSO (`sso`), the
//! engine's own token (Ferry's CLI and UI credential), or the
//! administrator's user and password as HTTP Basic, which oVirt accepts
//! too and older scripts send.

use axum::http::{header, HeaderMap};
use base64::Engine as _;
use ferry_http::auth::constant_time_eq;

use crate::engine::Engine;
use crate::ovirt::fault::OvirtError;

/// Passes a request with a valid credential; refuses it (401) otherwise.
pub(crate) fn check(engine: &Engine, headers: &HeaderMap) -> Result<(), OvirtError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(OvirtError::unauthorized(
            "No credentials were sent: sign in at /ovirt-engine/sso/oauth/token and send 'Authorization: Bearer <token>'.",
        ));
    };
    let (scheme, credential) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credential = credential.trim();
    let good = if scheme.eq_ignore_ascii_case("bearer") {
        let presented = ferry_pki::random::hash_secret(credential);
        constant_time_eq(presented.as_bytes(), engine.token_hash().as_bytes())
            || engine.sso().is_valid(credential)
    } else if scheme.eq_ignore_ascii_case("basic") {
        basic(engine, credential)
    } else {
        false
    };
    if good {
        Ok(())
    } else {
        Err(OvirtError::unauthorized(
            "The credentials are not valid: the token has expired or was revoked, or the user name or password is wrong. Sign in again.",
        ))
    }
}

/// `user:password`, base64, checked against the administrator's.
fn basic(engine: &Engine, credential: &str) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(credential) else {
        return false;
    };
    let Ok(text) = String::from_utf8(raw) else {
        return false;
    };
    let Some((user, password)) = text.split_once(':') else {
        return false;
    };
    engine.sso().check_password(user, password).is_ok()
}
