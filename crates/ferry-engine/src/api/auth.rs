//! Bearer-token authentication of every request but health.
//!
//! The engine drives storage and VMs on every host, so nothing but the
//! liveness probe is answered without the token, not even the API
//! document. The comparison takes the same time whatever the first
//! differing byte, so the token cannot be guessed byte by byte.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderValue;
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
    if request.uri().path() == HEALTH_PATH {
        return next.run(request).await;
    }
    match check(request.headers().get(AUTHORIZATION), engine.token()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check(header: Option<&HeaderValue>, token: &str) -> Result<(), Error> {
    let Some(header) = header else {
        return Err(Error::Unauthorized(
            "this request needs the engine's token: send the header 'Authorization: Bearer <token>'"
                .into(),
        ));
    };
    let presented = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Error::Unauthorized(
                "the Authorization header is not 'Bearer <token>': send the engine's token as a bearer token"
                    .into(),
            )
        })?;
    if constant_time_eq(presented.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(Error::Unauthorized(
            "the bearer token is wrong: use the token the engine was started with".into(),
        ))
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        // Compare against something even when b is shorter, so the loop
        // always runs over all of a.
        let y = b.get(i).copied().unwrap_or(!x);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"secret2", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn missing_malformed_and_wrong_headers_are_refused_with_a_reason() {
        let ok = HeaderValue::from_static("Bearer secret");
        assert!(check(Some(&ok), "secret").is_ok());
        let basic = HeaderValue::from_static("Basic c2VjcmV0");
        let wrong = HeaderValue::from_static("Bearer nope");
        for (h, says) in [
            (None, "needs the engine's token"),
            (Some(&basic), "not 'Bearer <token>'"),
            (Some(&wrong), "token is wrong"),
        ] {
            let e = check(h, "secret").expect_err("refused");
            assert!(e.to_string().contains(says), "{e}");
        }
    }
}
