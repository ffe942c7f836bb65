//! Reading certificates: PEM to DER, and what Ferry needs to know of one
//! (whose it is, until when, its fingerprint), with `x509-parser`.

use std::fmt;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// The SHA-256 of a certificate's DER: how the engine pins the one
/// certificate it accepts from each host.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Reads 64 hex digits (colons allowed, as `openssl x509 -fingerprint`
    /// prints them).
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let hex: String = text
            .trim()
            .trim_start_matches("sha256:")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    /// 64 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

/// What Ferry reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's common name (a host's name, `ferry-engine`).
    pub common_name: Option<String>,
    /// Its DNS and IP subject alternative names, as text.
    pub names: Vec<String>,
    /// The serial number in hex.
    pub serial: String,
    /// Valid from, seconds since the epoch.
    pub not_before: i64,
    /// Valid until, seconds since the epoch.
    pub not_after: i64,
    /// SHA-256 of its DER.
    pub fingerprint: Fingerprint,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
}

impl CertInfo {
    /// Reads a DER certificate; `what` names it in the error.
    pub fn from_der(der: &[u8], what: &str) -> Result<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| Error::Unreadable {
            what: what.to_string(),
            reason: e.to_string(),
            hint: "give a PEM file with an X.509 certificate",
        })?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => names.push((*d).to_string()),
                    GeneralName::IPAddress(ip) => {
                        if let Some(ip) = ip_text(ip) {
                            names.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(CertInfo {
            common_name,
            names,
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            fingerprint: Fingerprint::of(der),
            is_ca: cert.is_ca(),
        })
    }

    /// Reads the first certificate of a PEM text.
    pub fn from_pem(pem: &str, what: &str) -> Result<CertInfo> {
        let der = first_cert(pem, what)?;
        CertInfo::from_der(&der, what)
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => {
            let a: [u8; 4] = bytes.try_into().ok()?;
            Some(std::net::Ipv4Addr::from(a).to_string())
        }
        16 => {
            let a: [u8; 16] = bytes.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(a).to_string())
        }
        _ => None,
    }
}

/// Every certificate of a PEM text, in order; `what` names the text in
/// the error.
pub fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Unreadable {
            what: what.to_string(),
            reason: e.to_string(),
            hint: "give a PEM file of certificates",
        })?;
    if certs.is_empty() {
        return Err(Error::Unreadable {
            what: what.to_string(),
            reason: "it holds no certificate".into(),
            hint: "give a PEM file that starts with '-----BEGIN CERTIFICATE-----'",
        });
    }
    Ok(certs)
}

/// The first certificate of a PEM text.
pub fn first_cert(pem: &str, what: &str) -> Result<CertificateDer<'static>> {
    certs(pem, what)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::make("read a certificate", "none found"))
}

/// The private key of a PEM text (PKCS#8, SEC1 or PKCS#1).
pub fn private_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::Unreadable {
        what: what.to_string(),
        reason: e.to_string(),
        hint: "give a PEM file with an unencrypted private key",
    })
}

/// Whether the certificate `cert_pem` (its first) carries the signature of
/// the CA of `ca_pem`: whether that CA issued it.
pub fn signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    let (Ok(cert), Ok(ca)) = (
        first_cert(cert_pem, "the certificate"),
        first_cert(ca_pem, "the CA"),
    ) else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(&cert),
        X509Certificate::from_der(&ca),
    ) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// A DER certificate as PEM text.
pub fn der_to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// Reads the certificate file at `path` and what it says.
pub fn read_cert_file(path: &Path) -> Result<(String, CertInfo)> {
    let pem = crate::files::read_text(path)?;
    let info = CertInfo::from_pem(&pem, &format!("the certificate in {}", path.display()))?;
    Ok((pem, info))
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_reads_back_with_or_without_colons() {
        let f = Fingerprint::of(b"certificate");
        let text = f.to_string();
        assert_eq!(Fingerprint::parse(&text), Some(f));
        let colons = text
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(Fingerprint::parse(&colons), Some(f));
        assert_eq!(Fingerprint::parse("abc"), None);
    }
}
