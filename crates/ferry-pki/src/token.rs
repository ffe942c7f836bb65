//! The one-time enrolment token, one definition for the engine that
//! issues it and the agent that reads it: `ferry1.<secret>.<sha256 of the
//! engine's CA>`. The agent trusts the engine it enrolls with because
//! that engine presents the CA the token names, so nothing but the token
//! has to be carried to the host.

use crate::cert::Fingerprint;

/// The prefix (and version) of every enrolment token.
pub const TOKEN_PREFIX: &str = "ferry1";

/// An enrolment token, read.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolToken {
    /// The one-time secret the engine checks (it keeps only its hash).
    pub secret: String,
    /// The fingerprint of the engine's CA.
    pub ca: Fingerprint,
}

impl std::fmt::Debug for EnrolToken {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolToken")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl EnrolToken {
    /// The token's text.
    pub fn text(&self) -> String {
        format!("{TOKEN_PREFIX}.{}.{}", self.secret, self.ca)
    }

    /// Reads a token; `None` if it is not one.
    pub fn parse(text: &str) -> Option<EnrolToken> {
        let mut parts = text.trim().split('.');
        let (Some(TOKEN_PREFIX), Some(secret), Some(ca), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if secret.len() < 32 || !secret.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        Some(EnrolToken {
            secret: secret.to_string(),
            ca: Fingerprint::parse(ca)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_and_others_do_not() {
        let t = EnrolToken {
            secret: crate::random::secret(),
            ca: Fingerprint::of(b"ca"),
        };
        assert_eq!(EnrolToken::parse(&t.text()), Some(t.clone()));
        assert!(!format!("{t:?}").contains(&t.secret));
        for bad in [
            String::new(),
            "ferry1.x.y".into(),
            format!("ferry1.{}", t.secret),
            format!("ferry2.{}.{}", t.secret, t.ca),
            format!("{}.extra", t.text()),
        ] {
            assert_eq!(EnrolToken::parse(&bad), None, "{bad}");
        }
    }
}
