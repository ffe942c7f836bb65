//! oVirt's single sign-on, the part its SDK and scripts use: a password
//! grant at `/ovirt-engine/sso/oauth/token` gives a bearer token, and
//! `/ovirt-engine/services/sso-logout` revokes it.
//!
//! There is one user, the administrator `admin@internal`, whose password
//! the operator gives at start (a file or an environment variable) and the
//! engine keeps only as an argon2 hash. Tokens live in memory: an engine
//! restart signs everyone out, and the SDK signs in again by itself on the
//! 401 that follows. The engine's own bearer token is accepted too.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use uuid::Uuid;

/// The administrator's user name, as oVirt spells it.
pub(crate) const ADMIN: &str = "admin@internal";

/// How long a token lasts: a working day, as oVirt's SSO tokens do.
const TOKEN_LIFE: Duration = Duration::from_secs(10 * 3600);

/// The signed-in sessions and the administrator's password hash.
#[derive(Default)]
pub struct Sso {
    admin_hash: OnceLock<String>,
    sessions: Mutex<HashMap<String, SystemTime>>,
}

impl std::fmt::Debug for Sso {
    /// Never prints a hash or a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sso")
            .field("admin_password_set", &self.admin_hash.get().is_some())
            .finish_non_exhaustive()
    }
}

/// A refused sign-in, in oVirt's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// oVirt's `error_code`.
    pub code: &'static str,
    /// oVirt's `error`: a sentence.
    pub message: String,
}

/// A granted token.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub token: String,
    /// When it expires, milliseconds since the epoch.
    pub expires_ms: u128,
}

impl Sso {
    /// Sets the administrator's password hash (a PHC string from
    /// [`hash_password`]); the first one set stays.
    pub fn set_admin_hash(&self, phc: String) {
        let _ = self.admin_hash.set(phc);
    }

    /// Checks a user and password: the administrator with its password.
    pub(crate) fn check_password(&self, user: &str, password: &str) -> Result<(), Refusal> {
        let Some(phc) = self.admin_hash.get() else {
            return Err(Refusal {
                code: "access_denied",
                message: "Cannot authenticate user: no administrator password is set on this Ferry engine. Start it with --admin-password-file or FERRY_ADMIN_PASSWORD, or use its bearer token.".into(),
            });
        };
        let wrong = || Refusal {
            code: "access_denied",
            message: "Cannot authenticate user: the user name or password is incorrect.".into(),
        };
        if !user.eq_ignore_ascii_case(ADMIN) && !user.eq_ignore_ascii_case("admin") {
            return Err(wrong());
        }
        let hash = PasswordHash::new(phc).map_err(|_| wrong())?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .map_err(|_| wrong())
    }

    /// A password grant: a new token for a valid user and password.
    pub(crate) fn grant(&self, user: &str, password: &str) -> Result<Grant, Refusal> {
        self.check_password(user, password)?;
        let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let expires = SystemTime::now() + TOKEN_LIFE;
        let mut sessions = self.lock();
        let now = SystemTime::now();
        sessions.retain(|_, until| *until > now);
        sessions.insert(token.clone(), expires);
        Ok(Grant {
            token,
            expires_ms: expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
        })
    }

    /// Whether `token` is a live session's.
    pub(crate) fn is_valid(&self, token: &str) -> bool {
        self.lock()
            .get(token)
            .is_some_and(|until| *until > SystemTime::now())
    }

    /// Ends a session; an unknown token is no error (it is gone either way).
    pub(crate) fn revoke(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SystemTime>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The argon2 hash (PHC string, random salt) of `password`, which is what
/// the engine keeps of it.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    // 16 random bytes (a v4 UUID's come from the OS's generator).
    let salt = SaltString::encode_b64(Uuid::new_v4().as_bytes())
        .map_err(|e| format!("cannot make a salt for the administrator password: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the administrator password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_administrator_with_its_password_gets_a_token() {
        let sso = Sso::default();
        let refused = sso.grant(ADMIN, "secret").expect_err("no password set");
        assert!(
            refused.message.contains("no administrator password"),
            "{refused:?}"
        );
        sso.set_admin_hash(hash_password("secret").expect("hash"));
        let grant = sso.grant(ADMIN, "secret").expect("granted");
        assert!(sso.is_valid(&grant.token));
        assert!(sso.grant(ADMIN, "wrong").is_err());
        assert!(sso.grant("someone@internal", "secret").is_err());
        sso.revoke(&grant.token);
        assert!(!sso.is_valid(&grant.token));
    }
}
