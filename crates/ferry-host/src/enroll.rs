//! Enrolment, run once on a host before its agent first starts: make a
//! key here, send only a signing request to the engine with the one-time
//! token `ferry host add` printed, and keep the certificate and CA the
//! engine answers with (`identity`).
//!
//! The token (`ferry_pki::EnrolToken`) carries the fingerprint of the
//! engine's CA: the agent trusts the engine it talks to because that
//! engine presents the CA the token names (and its answer's CA must be
//! that one), so nothing but the token has to be copied to the host.

use std::path::Path;

use ferry_api::engine::{EngineCa, EnrolAnswer, EnrolRequest};
use ferry_http::{ClientTls, HttpClient};
use ferry_pki::{CertInfo, EnrolToken, Fingerprint, KeyRequest};

use crate::error::{Error, Result};
use crate::identity;

/// Enrolls the agent of `run_dir` with the engine at `engine_url` using
/// `token`; returns what its new certificate says. Nothing is written
/// unless the engine signed a certificate for this host's new key with
/// the CA the token names.
pub async fn enroll(engine_url: &str, token: &str, run_dir: &Path) -> Result<CertInfo> {
    let token = EnrolToken::parse(token).ok_or_else(|| {
        Error::BadRequest(
            "the enrolment token is not one `ferry host add` printed (ferry1.<secret>.<CA fingerprint>); copy it whole, or get a new one with `ferry host enroll NAME` on the engine".into(),
        )
    })?;
    std::fs::create_dir_all(run_dir)
        .map_err(|e| Error::io("create the run directory", run_dir, e))?;
    // A running agent would go on serving its old certificate: enrolment
    // waits until it is stopped.
    let _lock = crate::server::lock_run_dir(run_dir)?;
    let tls = ClientTls::enrolling(token.ca)?;
    let url = engine_url.trim();
    let plain = url.starts_with("http://");
    let client = HttpClient::new(
        "the engine",
        url,
        &["api", "v1"],
        None,
        (!plain).then_some(&tls),
    );
    // The token goes only to the engine of the token's CA: over HTTPS the
    // handshake proved it; over plain HTTP (an engine on loopback) its CA
    // is asked for and checked first.
    let ca: EngineCa = client.get(&["ca"]).await.map_err(Error::Engine)?;
    let served = CertInfo::from_pem(&ca.ca_pem, "the engine's CA certificate")?;
    if served.fingerprint != token.ca {
        return Err(wrong_ca(url, served.fingerprint, token.ca));
    }
    let request = KeyRequest::generate("ferry-agent")?;
    let answer: EnrolAnswer = client
        .post(
            &["enroll"],
            &EnrolRequest {
                token: token.secret.clone(),
                csr_pem: request.csr_pem.clone(),
            },
        )
        .await
        .map_err(Error::Engine)?;
    let ca = CertInfo::from_pem(&answer.ca_pem, "the engine's CA certificate")?;
    if ca.fingerprint != token.ca {
        return Err(wrong_ca(url, ca.fingerprint, token.ca));
    }
    let info = identity::store(run_dir, &answer.cert_pem, &request.key_pem, &answer.ca_pem)?;
    tracing::info!(host = %answer.host, fingerprint = %info.fingerprint, "enrolled");
    Ok(info)
}

fn wrong_ca(url: &str, served: Fingerprint, expected: Fingerprint) -> Error {
    Error::BadRequest(format!(
        "the engine at {url} has CA sha256:{served}, not the CA of the token (sha256:{expected}); check that the URL is the engine that issued the token. Nothing was sent or changed"
    ))
}
