//! TLS settings for every connection Ferry makes or accepts, in one place:
//!
//! | who → whom | the client checks | the server checks |
//! |---|---|---|
//! | engine → agent | the agent's certificate chains to the engine's CA *and* is the one pinned for that host ([`PeerCheck`]) | the client's certificate chains to the CA and is the engine's client certificate ([`ENGINE_CLIENT_NAME`], `clientAuth`) |
//! | CLI, UI → engine API | the engine's certificate chains to the CA in `client.json` and names the host in the URL | nothing (the bearer token is checked per request) |
//! | agent → engine, enrolling | the engine's chain holds the CA whose fingerprint the one-time token carries | nothing (the one-time token is checked) |

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, WebPkiServerVerifier};
use rustls::crypto::{ring, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};

use crate::ca::ENGINE_CLIENT_NAME;
use crate::cert::{certs, CertInfo, Fingerprint};
use crate::error::{Error, Result};
use crate::live::LiveCert;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    ring::default_provider().signature_verification_algorithms
}

/// A root store holding the CA certificates of `ca_pem`.
fn roots(ca_pem: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for c in certs(ca_pem, "the CA certificate")? {
        store
            .add(c)
            .map_err(|e| Error::tls("the CA certificate", e))?;
    }
    Ok(store)
}

/// A refusal carrying Ferry's own sentence, which reaches the caller's
/// error text through rustls and reqwest.
fn refuse(message: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal(
        message,
    )))))
}

#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// The settings of a TLS server.
#[derive(Debug, Clone)]
pub struct ServerTls(pub Arc<ServerConfig>);

impl ServerTls {
    /// A server presenting `cert` to anyone (the engine's API: its callers
    /// prove themselves with the bearer token).
    pub fn open(cert: Arc<LiveCert>) -> Result<ServerTls> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::tls("the server", e))?
            .with_no_client_auth()
            .with_cert_resolver(cert);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls(Arc::new(config)))
    }

    /// A server presenting `cert` that accepts only the engine: a client
    /// certificate signed by the CA of `ca_pem`, for `clientAuth`, naming
    /// [`ENGINE_CLIENT_NAME`] (an agent).
    pub fn engine_only(cert: Arc<LiveCert>, ca_pem: &str) -> Result<ServerTls> {
        let inner =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider())
                .build()
                .map_err(|e| Error::tls("the CA certificate", e))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::tls("the server", e))?
            .with_client_cert_verifier(Arc::new(EngineClientVerifier { inner }))
            .with_cert_resolver(cert);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls(Arc::new(config)))
    }
}

/// Accepts a client certificate that webpki accepts (it chains to the CA
/// and is for `clientAuth`) and that is the engine's.
#[derive(Debug)]
struct EngineClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for EngineClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let info = CertInfo::from_der(end_entity, "the client certificate")
            .map_err(|e| refuse(e.to_string()))?;
        if info.common_name.as_deref() != Some(ENGINE_CLIENT_NAME) {
            return Err(refuse(format!(
                "the client certificate is {}'s, not the engine's: only the engine may call an agent",
                info.common_name.as_deref().unwrap_or("nobody")
            )));
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a client accepts of a server's certificate once it chains to the
/// CA: the engine checks that an agent's certificate is the one pinned for
/// that host.
pub trait PeerCheck: std::fmt::Debug + Send + Sync {
    /// `Ok` to accept the certificate; else a sentence saying why not and
    /// what to do.
    fn check(&self, cert: &CertInfo) -> std::result::Result<(), String>;
}

/// Accepts any certificate the CA signed (tests that call an agent
/// directly, as the engine would).
#[derive(Debug, Clone, Copy)]
pub struct AnyFromCa;

impl PeerCheck for AnyFromCa {
    fn check(&self, _cert: &CertInfo) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The settings of a TLS client.
#[derive(Debug, Clone)]
pub struct ClientTls(pub Arc<ClientConfig>);

impl ClientTls {
    /// A client that trusts servers whose certificate chains to the CA of
    /// `ca_pem` and names the host it was asked for (the CLI and tests
    /// calling the engine's API).
    pub fn trusting(ca_pem: &str) -> Result<ClientTls> {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider())
                .build()
                .map_err(|e| Error::tls("the CA certificate", e))?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::tls("the client", e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(ClientTls(Arc::new(config)))
    }

    /// The engine's client of an agent: presents `identity` (the engine's
    /// client certificate) and accepts a server whose certificate chains
    /// to the CA of `ca_pem` and passes `check`. The host name of the URL
    /// is not what decides: the pinned certificate is stronger, and a
    /// host's URL may use any name or address.
    pub fn to_agent(
        ca_pem: &str,
        identity: Arc<LiveCert>,
        check: Arc<dyn PeerCheck>,
    ) -> Result<ClientTls> {
        let verifier = Arc::new(PinnedVerifier {
            roots: roots(ca_pem)?,
            check,
        });
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::tls("the client", e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(identity);
        Ok(ClientTls(Arc::new(config)))
    }

    /// A client for the one enrolment request: it accepts a server whose
    /// chain holds the CA certificate of fingerprint `ca` and whose own
    /// certificate that CA signed (the fingerprint comes with the one-time
    /// token, so the agent needs nothing else to trust the engine).
    pub fn enrolling(ca: Fingerprint) -> Result<ClientTls> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::tls("the client", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaInChainVerifier { ca }))
            .with_no_client_auth();
        Ok(ClientTls(Arc::new(config)))
    }
}

fn verify_signatures_12(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
}

fn verify_signatures_13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
}

/// Chains to the CA, then asks the [`PeerCheck`].
#[derive(Debug)]
struct PinnedVerifier {
    roots: RootCertStore,
    check: Arc<dyn PeerCheck>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            algorithms().all,
        )?;
        let info = CertInfo::from_der(end_entity, "the agent's certificate")
            .map_err(|e| refuse(e.to_string()))?;
        self.check.check(&info).map_err(refuse)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_signatures_12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_signatures_13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

/// Finds the CA of the pinned fingerprint in the server's chain and
/// checks the server's certificate against it.
#[derive(Debug)]
struct CaInChainVerifier {
    ca: Fingerprint,
}

impl ServerCertVerifier for CaInChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates.iter().find(|c| Fingerprint::of(c) == self.ca) else {
            return Err(refuse(format!(
                "the engine did not present the CA of the enrolment token (sha256:{}); is this the engine that issued the token?",
                self.ca
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&parsed, &roots, &[], now, algorithms().all)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_signatures_12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_signatures_13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

/// Checks that the certificate `cert_pem` was signed by the CA of
/// `ca_pem` and is valid now (for a server), before it is installed.
pub fn check_issued_by(cert_pem: &str, ca_pem: &str) -> Result<()> {
    let chain = certs(cert_pem, "the certificate")?;
    let parsed =
        ParsedCertificate::try_from(&chain[0]).map_err(|e| Error::tls("the certificate", e))?;
    verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots(ca_pem)?,
        &chain[1..],
        UnixTime::now(),
        algorithms().all,
    )
    .map_err(|e| Error::Tls {
        what: "the certificate",
        reason: format!("it does not chain to the CA ({e})"),
    })
}
