//! The engine's PKI (oVirt's engine PKI): the engine is a certificate
//! authority. At its first start it makes a CA (or takes the operator's
//! own), a server certificate for its API naming every name and address
//! clients use, and a client certificate it presents to agents; it signs
//! each host's certificate from the host's signing request at enrolment
//! (`ops::enrol`), and renews its own and the hosts' certificates before
//! they expire (`ops::certs`, and hourly by itself) while everything runs.
//!
//! Files, in `<data_dir>/pki/` (mode 0700, every file 0600): `ca.pem` and
//! `ca.key` (unless `--ca-cert`/`--ca-key` name the operator's), `api.pem`
//! (the API's certificate followed by the CA's) and `api.key`,
//! `client.pem` and `client.key`.

pub mod pins;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_api::engine::CertificateSummary;
use ferry_pki::ca::{check_name, Usage, CERT_LIFETIME, ENGINE_CLIENT_NAME, RENEW_BEFORE};
use ferry_pki::cert::{now_secs, signed_by};
use ferry_pki::files::{ensure_private_dir, read_text, restrict, write_private, PRIVATE_FILE};
use ferry_pki::{Authority, CertInfo, ClientTls, Fingerprint, Issued, LiveCert, ServerTls};

use crate::db::HostRow;
use crate::error::{Error, Result};
use pins::{HostPin, PinStore};

/// How the engine's PKI is set up.
#[derive(Debug, Clone)]
pub struct PkiConfig {
    /// Where its CA and certificates are kept (`<data_dir>/pki`).
    pub dir: PathBuf,
    /// The names and addresses clients reach the API by: its server
    /// certificate names them all (see [`PkiConfig::default_names`]).
    pub names: Vec<String>,
    /// Serve the API and the web UI over HTTPS (required when the engine
    /// listens beyond loopback).
    pub https: bool,
    /// The operator's own CA, certificate and key files, used instead of
    /// the one the engine would make.
    pub ca_files: Option<(PathBuf, PathBuf)>,
}

impl PkiConfig {
    /// The names an engine listening on `listen` is reached by, unless
    /// told: `localhost`, the loopback addresses, this machine's host
    /// name and the listening address itself when it is a specific one.
    pub fn default_names(listen: SocketAddr) -> Vec<String> {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim().to_string();
            if check_name(&h).is_ok() && !names.contains(&h) {
                names.push(h);
            }
        }
        let ip = listen.ip();
        if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
            names.push(ip.to_string());
        }
        names
    }
}

impl PkiConfig {
    /// Checks what can be checked without writing anything (the names,
    /// the operator's CA files), so a bad setting is refused before the
    /// engine creates its files.
    pub fn check(&self) -> Result<()> {
        for n in &self.names {
            check_name(n).map_err(|e| Error::BadRequest(format!("{e} (--tls-name)")))?;
        }
        if let Some((cert, key)) = &self.ca_files {
            let what = format!("the CA certificate {}", cert.display());
            Authority::from_pem(&read_text(cert)?, &read_text(key)?, &what)?;
        }
        Ok(())
    }
}

const API: &str = "api";
const CLIENT: &str = "client";

/// The engine's CA and certificates while it runs.
pub struct EnginePki {
    dir: PathBuf,
    names: Vec<String>,
    https: bool,
    ca: Authority,
    api: Arc<LiveCert>,
    client: Arc<LiveCert>,
    pins: Arc<PinStore>,
    /// One renewal of the engine's certificates at a time.
    renewing: Mutex<()>,
}

impl std::fmt::Debug for EnginePki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnginePki")
            .field("dir", &self.dir)
            .field("ca", &self.ca.info().fingerprint)
            .finish_non_exhaustive()
    }
}

impl EnginePki {
    /// Opens the PKI in `config.dir`, making what is missing: the CA at
    /// the first start, the engine's certificates whenever they are
    /// missing, unreadable, not the CA's, near their end, or (the API's)
    /// not naming `config.names`.
    pub fn open(config: &PkiConfig) -> Result<EnginePki> {
        config.check()?;
        ensure_private_dir(&config.dir)?;
        let ca = match &config.ca_files {
            Some((cert, key)) => load_ca(cert, key)?,
            None => own_ca(&config.dir)?,
        };
        let (api_pem, api_key) = ensure_cert(&config.dir, API, &ca, &config.names, false)?;
        let api = LiveCert::new(&api_pem, &api_key, "the engine's API certificate")?;
        let (client_pem, client_key) = ensure_cert(&config.dir, CLIENT, &ca, &[], false)?;
        let client = LiveCert::new(&client_pem, &client_key, "the engine's client certificate")?;
        Ok(EnginePki {
            dir: config.dir.clone(),
            names: config.names.clone(),
            https: config.https,
            ca,
            api,
            client,
            pins: Arc::new(PinStore::default()),
            renewing: Mutex::new(()),
        })
    }

    /// The CA certificate, PEM: what the CLI (`client.json`) and agents
    /// trust.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The CA certificate's fingerprint, which enrolment tokens carry.
    pub fn ca_fingerprint(&self) -> Fingerprint {
        self.ca.info().fingerprint
    }

    /// The pinned certificates of the hosts.
    pub fn pins(&self) -> &Arc<PinStore> {
        &self.pins
    }

    /// The API's TLS settings when it serves HTTPS.
    pub fn api_tls(&self) -> Result<Option<ServerTls>> {
        if !self.https {
            return Ok(None);
        }
        Ok(Some(ServerTls::open(self.api.clone())?))
    }

    /// Whether the API serves HTTPS.
    pub fn https(&self) -> bool {
        self.https
    }

    /// The TLS settings of the engine's client of `host`'s agent: its
    /// client certificate, and only the certificate pinned for that host.
    pub fn agent_tls(&self, host: &HostRow) -> Result<ClientTls> {
        Ok(ClientTls::to_agent(
            self.ca.cert_pem(),
            self.client.clone(),
            Arc::new(HostPin {
                host: host.id,
                name: host.name.clone(),
                store: self.pins.clone(),
            }),
        )?)
    }

    /// Signs a host's certificate from its agent's signing request: for
    /// the host's name, and the name or address of its URL, as a server
    /// only.
    pub fn sign_host(&self, csr_pem: &str, host: &HostRow) -> Result<Issued> {
        let mut names = Vec::new();
        if check_name(&host.name).is_ok() {
            names.push(host.name.clone());
        }
        if let Some(h) = url_host(&host.url) {
            if check_name(&h).is_ok() && !names.contains(&h) {
                names.push(h);
            }
        }
        self.ca
            .sign_request(csr_pem, &host.name, &names, Usage::Server, CERT_LIFETIME)
            .map_err(|e| Error::BadRequest(e.to_string()))
    }

    /// Renews the engine's own certificates (`force`: now; else only
    /// those near their end), which servers and clients use from their
    /// next connection on.
    pub fn renew_engine(&self, force: bool) -> Result<bool> {
        let _g = match self.renewing.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut renewed = false;
        for (stem, live, names) in [
            (API, &self.api, self.names.as_slice()),
            (CLIENT, &self.client, &[][..]),
        ] {
            if force || near_end(&live.info()) {
                let (pem, key) = ensure_cert(&self.dir, stem, &self.ca, names, true)?;
                live.replace(&pem, &key, "the engine's renewed certificate")?;
                tracing::info!(which = stem, "renewed the engine's certificate");
                renewed = true;
            }
        }
        Ok(renewed)
    }

    /// The CA's and the engine's certificates, with their ends.
    pub fn summaries(&self) -> Vec<CertificateSummary> {
        [
            ("CA", self.ca.info().clone()),
            ("engine API", self.api.info()),
            ("engine client", self.client.info()),
        ]
        .into_iter()
        .map(|(owner, info)| summary(owner, &info, None))
        .collect()
    }
}

/// A certificate's summary for the API.
pub fn summary(owner: &str, info: &CertInfo, error: Option<String>) -> CertificateSummary {
    CertificateSummary {
        owner: owner.to_string(),
        fingerprint: info.fingerprint.to_string(),
        not_after: u64::try_from(info.not_after).unwrap_or(0),
        error,
    }
}

/// Whether a certificate should be renewed now.
pub fn near_end(info: &CertInfo) -> bool {
    due(u64::try_from(info.not_after).unwrap_or(0))
}

/// Whether a certificate ending at `not_after` (epoch seconds) should be
/// renewed now: it is within `RENEW_BEFORE` of its end.
pub fn due(not_after: u64) -> bool {
    let now = u64::try_from(now_secs()).unwrap_or(0);
    not_after < now.saturating_add(RENEW_BEFORE.as_secs())
}

/// The host part of a URL (`https://host1:54321/` → `host1`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_string())
}

fn load_ca(cert: &Path, key: &Path) -> Result<Authority> {
    let what = format!("the CA certificate {}", cert.display());
    restrict(key, PRIVATE_FILE)?;
    Ok(Authority::from_pem(
        &read_text(cert)?,
        &read_text(key)?,
        &what,
    )?)
}

/// The engine's own CA: made at the first start, read after.
fn own_ca(dir: &Path) -> Result<Authority> {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    if cert.exists() || key.exists() {
        return load_ca(&cert, &key).map_err(|e| {
            Error::BadRequest(format!(
                "{e}; the engine's CA in {} is damaged: restore ca.pem and ca.key from a backup (a new CA would mean enrolling every host again)",
                dir.display()
            ))
        });
    }
    let ca = Authority::generate("Ferry engine CA")?;
    // The key first: a crash before the certificate leaves a key alone,
    // which the next start refuses instead of silently making a new CA.
    write_private(&key, ca.key_pem().as_bytes())?;
    write_private(&cert, ca.cert_pem().as_bytes())?;
    tracing::info!(fingerprint = %ca.info().fingerprint, "made the engine's CA");
    Ok(ca)
}

/// The engine's certificate `stem` (`api` or `client`): the one on disk
/// while it is good, else a new one (always one with `force`). Returns its
/// PEM (for the API: followed by the CA's, so that enrolling agents find
/// the CA in the chain) and its key's.
fn ensure_cert(
    dir: &Path,
    stem: &str,
    ca: &Authority,
    names: &[String],
    force: bool,
) -> Result<(String, String)> {
    let (cert_file, key_file) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    if !force {
        if let (Ok(pem), Ok(key)) = (read_text(&cert_file), read_text(&key_file)) {
            let good = LiveCert::new(&pem, &key, "the engine's certificate")
                .ok()
                .map(|l| l.info())
                .filter(|info| {
                    signed_by(&pem, ca.cert_pem())
                        && !near_end(info)
                        && (stem != API || same_names(&info.names, names))
                });
            if good.is_some() {
                restrict(&key_file, PRIVATE_FILE)?;
                return Ok((pem, key));
            }
        }
    }
    let (common_name, usage) = if stem == API {
        ("ferry-engine-api", Usage::Server)
    } else {
        (ENGINE_CLIENT_NAME, Usage::Client)
    };
    let (issued, key) = ca.issue_with_new_key(common_name, names, usage, CERT_LIFETIME)?;
    let pem = if stem == API {
        format!("{}\n{}", issued.cert_pem.trim_end(), ca.cert_pem())
    } else {
        issued.cert_pem
    };
    write_private(&key_file, key.as_bytes())?;
    write_private(&cert_file, pem.as_bytes())?;
    tracing::info!(which = stem, fingerprint = %issued.info.fingerprint, "made the engine's certificate");
    Ok((pem, key))
}

fn same_names(have: &[String], want: &[String]) -> bool {
    let mut a = have.to_vec();
    let mut b = want.to_vec();
    a.sort();
    b.sort();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_are_read() {
        assert_eq!(url_host("https://host1:54321").as_deref(), Some("host1"));
        assert_eq!(url_host("https://10.0.0.5:1/").as_deref(), Some("10.0.0.5"));
        assert_eq!(url_host("https://[::1]:1").as_deref(), Some("::1"));
        assert_eq!(url_host("nope"), None);
    }

    #[test]
    fn bad_names_and_ca_files_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = PkiConfig {
            dir: dir.path().join("pki"),
            names: vec!["not a name".into()],
            https: true,
            ca_files: None,
        };
        let e = EnginePki::open(&bad).expect_err("a bad name");
        assert!(e.to_string().contains("--tls-name"), "{e}");
        let missing = PkiConfig {
            names: vec!["localhost".into()],
            ca_files: Some((dir.path().join("ca.pem"), dir.path().join("ca.key"))),
            ..bad
        };
        let e = EnginePki::open(&missing).expect_err("no CA files");
        assert!(e.to_string().contains("ca.pem"), "{e}");
        assert!(!dir.path().join("pki").exists(), "nothing was written");
    }

    #[test]
    fn the_ca_and_certificates_are_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = PkiConfig {
            dir: dir.path().join("pki"),
            names: vec!["localhost".into(), "127.0.0.1".into()],
            https: true,
            ca_files: None,
        };
        let a = EnginePki::open(&config).expect("made");
        let b = EnginePki::open(&config).expect("kept");
        assert_eq!(a.ca_fingerprint(), b.ca_fingerprint());
        assert_eq!(a.api.info().fingerprint, b.api.info().fingerprint);
        let renamed = PkiConfig {
            names: vec!["engine.example.com".into()],
            ..config
        };
        let c = EnginePki::open(&renamed).expect("renamed");
        assert_eq!(c.ca_fingerprint(), a.ca_fingerprint());
        assert_ne!(c.api.info().fingerprint, a.api.info().fingerprint);
        assert_eq!(c.api.info().names, vec!["engine.example.com"]);
        assert!(c.renew_engine(true).expect("renewed"));
        assert_ne!(c.client.info().fingerprint, b.client.info().fingerprint);
    }
}
