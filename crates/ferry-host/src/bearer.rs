//! Checking a bearer token, shared by the agent's and the engine's APIs.
//!
//! The comparison takes the same time whatever the token's first
//! differing byte, so a token cannot be guessed byte by byte from response
//! times.

use axum::http::HeaderValue;

/// Checks an `Authorization` header against `token`. On refusal returns a
/// sentence for a 401 answer; `whose` names the service ("the agent's") and
/// `hint` says where the right token comes from.
pub fn check(
    header: Option<&HeaderValue>,
    token: &str,
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
    if constant_time_eq(presented.trim().as_bytes(), token.as_bytes()) {
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
        assert!(check(Some(&ok), "secret", "the agent's", "").is_ok());
        let basic = HeaderValue::from_static("Basic c2VjcmV0");
        let wrong = HeaderValue::from_static("Bearer nope");
        for (h, says) in [
            (None, "needs the agent's token"),
            (Some(&basic), "not 'Bearer <token>'"),
            (Some(&wrong), "token is wrong"),
        ] {
            let e = check(h, "secret", "the agent's", "use the right one").expect_err("refused");
            assert!(e.contains(says), "{e}");
        }
    }
}
