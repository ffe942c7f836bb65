//! Random bytes and one-time secrets from the operating system's secure
//! generator (through rustls' ring provider, so no other crate is needed).

use rustls::crypto::ring::default_provider;
use sha2::{Digest, Sha256};

/// `N` random bytes. Panics only if the operating system has no secure
/// random source, in which case nothing about TLS could work either.
#[allow(clippy::expect_used)]
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    default_provider()
        .secure_random
        .fill(&mut out)
        .expect("the operating system's secure random generator works");
    out
}

/// A random secret of 256 bits as 64 hex digits: a bearer token or a
/// one-time enrolment token.
pub fn secret() -> String {
    bytes::<32>().iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a secret in hex: what is stored of a secret that only
/// has to be checked. The secrets are 256 random bits, so a plain hash
/// cannot be reversed by guessing.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
