//! A certificate and key that can be replaced while servers and clients
//! use them: renewing a certificate takes effect at the next handshake,
//! with no restart, so no VM or move notices.

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use crate::cert::{certs, private_key, CertInfo};
use crate::error::{Error, Result};

/// A certificate chain and its key, swappable at run time.
pub struct LiveCert {
    current: RwLock<(Arc<CertifiedKey>, CertInfo)>,
}

impl std::fmt::Debug for LiveCert {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCert")
            .field("info", &self.info())
            .finish_non_exhaustive()
    }
}

impl LiveCert {
    /// The certificate chain `cert_pem` (leaf first) with `key_pem`.
    pub fn new(cert_pem: &str, key_pem: &str, what: &str) -> Result<Arc<LiveCert>> {
        Ok(Arc::new(LiveCert {
            current: RwLock::new(load(cert_pem, key_pem, what)?),
        }))
    }

    /// Uses `cert_pem` and `key_pem` from the next handshake on.
    pub fn replace(&self, cert_pem: &str, key_pem: &str, what: &str) -> Result<()> {
        let next = load(cert_pem, key_pem, what)?;
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    /// What the current leaf certificate says.
    pub fn info(&self) -> CertInfo {
        self.get().1
    }

    fn get(&self) -> (Arc<CertifiedKey>, CertInfo) {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn load(cert_pem: &str, key_pem: &str, what: &str) -> Result<(Arc<CertifiedKey>, CertInfo)> {
    let chain = certs(cert_pem, what)?;
    let info = CertInfo::from_der(&chain[0], what)?;
    let key = private_key(key_pem, &format!("the key of {what}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| Error::tls("this key", e))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| Error::Tls {
        what: "this certificate",
        reason: format!("{what} is not the certificate of that key ({e})"),
    })?;
    Ok((Arc::new(ck), info))
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get().0)
    }
}

impl ResolvesClientCert for LiveCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get().0)
    }

    fn has_certs(&self) -> bool {
        true
    }
}
