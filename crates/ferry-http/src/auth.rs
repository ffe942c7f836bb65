//! Bearer-token authentication, the same for the agent's and the engine's
//! APIs: every request but the public paths must carry
//! `Authorization: Bearer <token>`.
//!
//! Only the token's SHA-256 is kept: the check compares hashes, in the
//! same time whatever their first differing byte, so a token cannot be
//! guessed byte by byte from response times, and a memory dump does not
//! show it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use ferry_api::ErrorKind;

use crate::error::HttpError;

/// Whose token a service wants and where the right one comes from, for the
/// sentences of its 401 answers.
#[derive(Clone)]
pub struct BearerAuth {
    /// The token's SHA-256, hex.
    token_hash: Arc<str>,
    /// Names the service ("the agent's").
    whose: &'static str,
    /// Says where the right token comes from.
    hint: &'static str,
    /// Paths answered without a token (health, the UI's static files).
    public: fn(&str) -> bool,
}

impl std::fmt::Debug for BearerAuth {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("whose", &self.whose)
            .finish_non_exhaustive()
    }
}

impl BearerAuth {
    /// Requires `token` on every path for which `public` is false.
    pub fn new(
        token: impl Into<Arc<str>>,
        whose: &'static str,
        hint: &'static str,
        public: fn(&str) -> bool,
    ) -> Self {
        let token: Arc<str> = token.into();
        BearerAuth {
            token_hash: ferry_pki::random::hash_secret(&token).into(),
            whose,
            hint,
            public,
        }
    }

    /// Like [`BearerAuth::new`] from the token's SHA-256 (hex,
    /// `ferry_pki::random::hash_secret`), for a holder that keeps only the
    /// hash.
    pub fn from_hash(
        token_hash: impl Into<Arc<str>>,
        whose: &'static str,
        hint: &'static str,
        public: fn(&str) -> bool,
    ) -> Self {
        BearerAuth {
            token_hash: token_hash.into(),
            whose,
            hint,
            public,
        }
    }

    /// Puts the check in front of every route of `router`.
    pub fn protect<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(axum::middleware::from_fn_with_state(self, require_token))
    }

    /// Checks an `Authorization` header; on refusal, a sentence that says
    /// what to send.
    pub fn check(&self, header: Option<&HeaderValue>) -> Result<(), HttpError> {
        check_hashed(header, &self.token_hash, self.whose, self.hint)
            .map_err(|m| HttpError::new(ErrorKind::Unauthorized, m))
    }
}

async fn require_token(State(auth): State<BearerAuth>, request: Request, next: Next) -> Response {
    if (auth.public)(request.uri().path()) {
        return next.run(request).await;
    }
    match auth.check(request.headers().get(AUTHORIZATION)) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Checks an `Authorization` header against `token`. On refusal returns a
/// sentence for a 401 answer; `whose` names the service ("the engine's")
/// and `hint` says where the right token comes from.
pub fn check(
    header: Option<&HeaderValue>,
    token: &str,
    whose: &str,
    hint: &str,
) -> Result<(), String> {
    check_hashed(header, &ferry_pki::random::hash_secret(token), whose, hint)
}

/// [`check`] against the token's SHA-256 (hex) instead of the token.
fn check_hashed(
    header: Option<&HeaderValue>,
    token_hash: &str,
    whose: &str,
    hint: &str,
) -> Result<(), String> {
    let Some(header) = header else {
        return Err(format!(
            "this request needs {whose} token: send the header 'Authorization: Bearer <token>'"
        ));
    };
    let presented = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            format!(
                "the Authorization header is not 'Bearer <token>': send {whose} token as a bearer token"
            )
        })?;
    let presented = ferry_pki::random::hash_secret(presented);
    if constant_time_eq(presented.as_bytes(), token_hash.as_bytes()) {
        Ok(())
    } else {
        Err(format!("the bearer token is wrong: {hint}"))
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
        assert!(check(Some(&ok), "secret", "the engine's", "").is_ok());
        let basic = HeaderValue::from_static("Basic c2VjcmV0");
        let wrong = HeaderValue::from_static("Bearer nope");
        for (h, says) in [
            (None, "needs the engine's token"),
            (Some(&basic), "not 'Bearer <token>'"),
            (Some(&wrong), "token is wrong"),
        ] {
            let e = check(h, "secret", "the engine's", "use the right one").expect_err("refused");
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn a_refusal_is_unauthorized() {
        let auth = BearerAuth::new("secret", "the engine's", "ask", |p| p == "/health");
        let e = auth.check(None).expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Unauthorized);
    }
}
