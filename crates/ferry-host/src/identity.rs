//! Who the agent is to the engine: its private key and the certificate the
//! engine's CA signed for it, and the CA, whose engine client certificate
//! is the only caller it accepts (mutual TLS).
//!
//! They live in `<run_dir>/pki/` (mode 0700): `host.pem` (the certificate
//! followed by its key, one file so a renewal replaces both at once,
//! mode 0600), `ca.pem`, and while a renewal is under way `pending.key`
//! (the new key, waiting for its certificate). The key is made here and
//! never leaves the host: the engine only ever sees signing requests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_pki::files::{read_text, write_private};
use ferry_pki::{CertInfo, KeyRequest, LiveCert, ServerTls};

use crate::error::{Error, Result};

/// The directory of the agent's keys and certificates.
pub fn pki_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("pki")
}

fn host_file(run_dir: &Path) -> PathBuf {
    pki_dir(run_dir).join("host.pem")
}

fn ca_file(run_dir: &Path) -> PathBuf {
    pki_dir(run_dir).join("ca.pem")
}

fn pending_file(run_dir: &Path) -> PathBuf {
    pki_dir(run_dir).join("pending.key")
}

/// Whether the agent of `run_dir` has a certificate.
pub fn is_enrolled(run_dir: &Path) -> bool {
    host_file(run_dir).is_file() && ca_file(run_dir).is_file()
}

/// Stores what an enrolment gave: the certificate for `key_pem` and the
/// CA, each file 0600 in a 0700 directory. Checks first that the
/// certificate is the key's and the CA signed it, so a bad answer changes
/// nothing. Returns what the certificate says.
pub fn store(run_dir: &Path, cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<CertInfo> {
    ferry_pki::tls::check_issued_by(cert_pem, ca_pem)?;
    let info = LiveCert::new(cert_pem, key_pem, "the agent's new certificate")?.info();
    write_private(&ca_file(run_dir), ca_pem.as_bytes())?;
    write_private(&host_file(run_dir), combined(cert_pem, key_pem).as_bytes())?;
    Ok(info)
}

fn combined(cert_pem: &str, key_pem: &str) -> String {
    format!("{}\n{}\n", cert_pem.trim_end(), key_pem.trim_end())
}

/// The agent's live identity while it runs.
pub struct Identity {
    run_dir: PathBuf,
    cert: Arc<LiveCert>,
    ca_pem: String,
    /// Serialises renewals (request, then install).
    renewal: Mutex<()>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert", &self.cert.info())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads the identity of the agent of `run_dir`; an agent that has
    /// none is told how to enroll.
    pub fn load(run_dir: &Path) -> Result<Identity> {
        if !is_enrolled(run_dir) {
            return Err(Error::NotEnrolled {
                run_dir: run_dir.to_path_buf(),
            });
        }
        let host = host_file(run_dir);
        let text = read_text(&host)?;
        let cert = LiveCert::new(
            &text,
            &text,
            &format!("the certificate in {}", host.display()),
        )?;
        let ca_pem = read_text(&ca_file(run_dir))?;
        // Files an older version or an operator left open are closed.
        ferry_pki::files::ensure_private_dir(&pki_dir(run_dir))?;
        ferry_pki::files::restrict(&host, ferry_pki::files::PRIVATE_FILE)?;
        Ok(Identity {
            run_dir: run_dir.to_path_buf(),
            cert,
            ca_pem,
            renewal: Mutex::new(()),
        })
    }

    /// The host's name: its certificate's common name, given by the CA.
    pub fn name(&self) -> Option<String> {
        self.cert.info().common_name
    }

    /// What the certificate served now says.
    pub fn info(&self) -> CertInfo {
        self.cert.info()
    }

    /// The TLS settings of the agent's server: its certificate, and only
    /// the engine's client certificate from its CA accepted.
    pub fn server_tls(&self) -> Result<ServerTls> {
        Ok(ServerTls::engine_only(self.cert.clone(), &self.ca_pem)?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.renewal.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A signing request for a new key, which is kept in `pending.key`
    /// until its certificate is installed (the current one is served
    /// meanwhile). Asking again makes another key.
    pub fn request(&self) -> Result<String> {
        let _g = self.lock();
        let req = KeyRequest::generate(&self.name().unwrap_or_default())?;
        write_private(&pending_file(&self.run_dir), req.key_pem.as_bytes())?;
        Ok(req.csr_pem)
    }

    /// Installs the certificate signed for the pending key: checked to be
    /// that key's, signed by the CA and for this host, written, then
    /// served from the next connection on. Nothing changes when it is
    /// refused.
    pub fn install(&self, cert_pem: &str) -> Result<CertInfo> {
        let _g = self.lock();
        let pending = pending_file(&self.run_dir);
        let key_pem = read_text(&pending).map_err(|_| {
            Error::Conflict(
                "there is no key waiting for a certificate; ask for a signing request first (POST /v1/pki/request)".into(),
            )
        })?;
        ferry_pki::tls::check_issued_by(cert_pem, &self.ca_pem)?;
        let new = LiveCert::new(cert_pem, &key_pem, "the renewed certificate")?;
        let info = new.info();
        if info.common_name != self.name() {
            return Err(Error::BadRequest(format!(
                "the certificate is for {:?}, not this host ({:?}); sign the request for this host",
                info.common_name,
                self.name()
            )));
        }
        write_private(
            &host_file(&self.run_dir),
            combined(cert_pem, &key_pem).as_bytes(),
        )?;
        self.cert
            .replace(cert_pem, &key_pem, "the renewed certificate")?;
        if let Err(e) = std::fs::remove_file(&pending) {
            tracing::warn!("could not remove {}: {e}", pending.display());
        }
        tracing::info!(fingerprint = %info.fingerprint, not_after = info.not_after, "installed a renewed certificate");
        Ok(info)
    }
}
