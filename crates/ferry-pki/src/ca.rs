//! The engine's certificate authority: it signs the engine's own
//! certificates (its API's server certificate, the client certificate it
//! presents to agents) and each host's certificate from the host's signing
//! request, so a host's private key never leaves the host.
//!
//! Every certificate it issues says what it is for: a host's is a server
//! certificate only (`serverAuth`), the engine's client certificate a
//! client certificate only (`clientAuth`), so no host can present its own
//! certificate to another host as if it were the engine.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::cert::CertInfo;
use crate::error::{Error, Result};

/// How long the CA Ferry makes is valid: replacing a CA means enrolling
/// every host again, so it is long.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// How long the certificates the CA issues are valid; the engine renews
/// them well before (see [`RENEW_BEFORE`]).
pub const CERT_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// A certificate closer than this to its end is renewed by the engine.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// The common name of the engine's client certificate, which agents
/// require of whoever calls them.
pub const ENGINE_CLIENT_NAME: &str = "ferry-engine";

/// What a certificate may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server: the engine's API, a host's agent.
    Server,
    /// A TLS client: the engine calling agents.
    Client,
}

/// A certificate the CA issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// What it says.
    pub info: CertInfo,
}

/// A certificate authority: its certificate and its key.
pub struct Authority {
    cert_pem: String,
    key: KeyPair,
    info: CertInfo,
}

impl std::fmt::Debug for Authority {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A new CA named `common_name`, valid [`CA_LIFETIME`].
    pub fn generate(common_name: &str) -> Result<Authority> {
        let key = KeyPair::generate().map_err(|e| Error::make("make the CA's key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_LIFETIME);
        params.serial_number = Some(serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::make("make the CA's certificate", e))?;
        let cert_pem = cert.pem();
        let info = CertInfo::from_der(cert.der(), "the new CA certificate")?;
        Ok(Authority {
            cert_pem,
            key,
            info,
        })
    }

    /// The CA of `cert_pem` (first certificate) and `key_pem`, checked to
    /// belong together and to be a CA.
    pub fn from_pem(cert_pem: &str, key_pem: &str, what: &str) -> Result<Authority> {
        let info = CertInfo::from_pem(cert_pem, what)?;
        if !info.is_ca {
            return Err(Error::Unreadable {
                what: what.to_string(),
                reason: "it is not a CA certificate (no basicConstraints CA:TRUE)".into(),
                hint: "give the certificate of a CA that may sign certificates",
            });
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::Unreadable {
            what: format!("the key of {what}"),
            reason: e.to_string(),
            hint: "give the CA's unencrypted private key in PEM form",
        })?;
        let der = crate::cert::first_cert(cert_pem, what)?;
        let (_, parsed) =
            <x509_parser::prelude::X509Certificate as x509_parser::prelude::FromDer<
                '_,
                x509_parser::error::X509Error,
            >>::from_der(&der)
            .map_err(|e| Error::make("read the CA certificate", e))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(Error::Unreadable {
                what: what.to_string(),
                reason: "its key is not the one given".into(),
                hint: "give the CA certificate and the key it was made with",
            });
        }
        Ok(Authority {
            cert_pem: first_pem(cert_pem, what)?,
            key,
            info,
        })
    }

    /// The CA's certificate, PEM: what every peer trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM, to be kept in a 0600 file.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// What the CA certificate says.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>> {
        Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|e| Error::make("read the CA certificate to sign with", e))
    }

    /// Signs the public key of a certificate signing request (PEM) for
    /// `common_name` and `names` (DNS names or IPs), for `usage`. Only the
    /// request's key is taken: what the certificate says and may do is
    /// the CA's decision, not the requester's. The request's signature
    /// is checked, so it proves the requester holds the key.
    pub fn sign_request(
        &self,
        csr_pem: &str,
        common_name: &str,
        names: &[String],
        usage: Usage,
        lifetime: Duration,
    ) -> Result<Issued> {
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| Error::Unreadable {
                what: "the certificate signing request".into(),
                reason: e.to_string(),
                hint: "send the request `ferry agent enroll` makes, unchanged",
            })?;
        let params = leaf_params(common_name, names, usage, lifetime)?;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer()?)
            .map_err(|e| Error::make("sign the certificate", e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            info: CertInfo::from_der(cert.der(), "the new certificate")?,
        })
    }

    /// A new key and a certificate for it: for the engine's own
    /// certificates, whose key is made where the CA is. Returns the
    /// certificate and the key's PEM.
    pub fn issue_with_new_key(
        &self,
        common_name: &str,
        names: &[String],
        usage: Usage,
        lifetime: Duration,
    ) -> Result<(Issued, String)> {
        let key = KeyPair::generate().map_err(|e| Error::make("make a key", e))?;
        let params = leaf_params(common_name, names, usage, lifetime)?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(|e| Error::make("sign the certificate", e))?;
        Ok((
            Issued {
                cert_pem: cert.pem(),
                info: CertInfo::from_der(cert.der(), "the new certificate")?,
            },
            key.serialize_pem(),
        ))
    }
}

/// A private key and a certificate signing request for it, made on the
/// host that will hold the key: only the request leaves the host.
#[derive(Clone)]
pub struct KeyRequest {
    /// The private key, PEM, to be kept in a 0600 file.
    pub key_pem: String,
    /// The signing request, PEM, to send to the CA.
    pub csr_pem: String,
}

impl std::fmt::Debug for KeyRequest {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRequest").finish_non_exhaustive()
    }
}

impl KeyRequest {
    /// A new key and a request naming `common_name`.
    pub fn generate(common_name: &str) -> Result<KeyRequest> {
        let key = KeyPair::generate().map_err(|e| Error::make("make a key", e))?;
        Self::for_key(&key, common_name)
    }

    /// A request for an existing key (PEM).
    pub fn for_key_pem(key_pem: &str, common_name: &str) -> Result<KeyRequest> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::Unreadable {
            what: "the host's private key".into(),
            reason: e.to_string(),
            hint: "remove the key file and enroll again to make a new one",
        })?;
        Self::for_key(&key, common_name)
    }

    fn for_key(key: &KeyPair, common_name: &str) -> Result<KeyRequest> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        let csr = params
            .serialize_request(key)
            .map_err(|e| Error::make("make a certificate signing request", e))?;
        Ok(KeyRequest {
            key_pem: key.serialize_pem(),
            csr_pem: csr
                .pem()
                .map_err(|e| Error::make("write the signing request", e))?,
        })
    }
}

/// Checks a name for a certificate: an IP address or a DNS name of
/// letters, digits, `-` and `.` (and a leading `*.`).
pub fn check_name(name: &str) -> Result<()> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.to_string()))
    }
}

fn leaf_params(
    common_name: &str,
    names: &[String],
    usage: Usage,
    lifetime: Duration,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match usage {
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    for n in names {
        check_name(n)?;
        params.subject_alt_names.push(match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                n.as_str()
                    .try_into()
                    .map_err(|_| Error::BadName(n.clone()))?,
            ),
        });
    }
    validity(&mut params, lifetime);
    params.serial_number = Some(serial());
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Ferry");
    dn
}

/// Valid from an hour ago (clocks of hosts differ a little) for
/// `lifetime`.
fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + lifetime;
}

/// A random 127-bit serial number (positive, as RFC 5280 wants).
fn serial() -> SerialNumber {
    let mut bytes = crate::random::bytes::<16>();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// The first certificate of a PEM text, as PEM (a chain file may hold
/// more).
fn first_pem(pem: &str, what: &str) -> Result<String> {
    let der = crate::cert::first_cert(pem, what)?;
    Ok(crate::cert::der_to_pem(&der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_signed_for_the_name_and_use_the_ca_decides() {
        let ca = Authority::generate("Ferry test CA").expect("a CA");
        let req = KeyRequest::generate("asks-for-anything").expect("a request");
        let issued = ca
            .sign_request(
                &req.csr_pem,
                "host1",
                &["host1".into(), "10.0.0.5".into()],
                Usage::Server,
                CERT_LIFETIME,
            )
            .expect("signed");
        assert_eq!(issued.info.common_name.as_deref(), Some("host1"));
        assert_eq!(issued.info.names, vec!["host1", "10.0.0.5"]);
        assert!(!issued.info.is_ca);
        assert!(issued.info.not_after > crate::cert::now_secs() + 300 * 86_400);

        let again = Authority::from_pem(ca.cert_pem(), &ca.key_pem(), "the CA").expect("reload");
        assert_eq!(again.info().fingerprint, ca.info().fingerprint);
        let other = Authority::generate("other").expect("another CA");
        let err = Authority::from_pem(ca.cert_pem(), &other.key_pem(), "the CA")
            .expect_err("a key of another CA");
        assert!(err.to_string().contains("not the one given"), "{err}");
        assert!(ca
            .sign_request("not a request", "h", &[], Usage::Server, CERT_LIFETIME)
            .is_err());
        assert!(check_name("bad name").is_err());
        assert!(check_name("engine.example.com").is_ok());
        assert!(check_name("::1").is_ok());
    }
}
