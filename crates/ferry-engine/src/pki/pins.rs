//! Which certificate the engine accepts from each host: the one pinned at
//! enrolment (and, during a renewal, the next one), kept in memory from
//! the `hosts` table and checked in every TLS handshake with an agent. A
//! host removed has no pin, so its certificate is accepted nowhere; a
//! host's certificate presented at another host's URL is refused, naming
//! whose it is.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ferry_pki::{CertInfo, Fingerprint, PeerCheck};
use uuid::Uuid;

use crate::db::HostRow;

#[derive(Debug, Clone, Default)]
struct Pin {
    name: String,
    accepted: Vec<Fingerprint>,
    /// The certificate its agent presented last.
    seen: Option<CertInfo>,
}

/// Every host's pinned certificates.
#[derive(Debug, Default)]
pub struct PinStore {
    pins: RwLock<HashMap<Uuid, Pin>>,
}

impl PinStore {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Pin>> {
        match self.pins.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Pin>> {
        match self.pins.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Pins what the row says: its certificate and, during a renewal, the
    /// next one.
    pub fn set(&self, host: &HostRow) {
        let accepted = host
            .cert
            .iter()
            .map(|c| c.fingerprint.as_str())
            .chain(host.next_fingerprint.as_deref())
            .filter_map(Fingerprint::parse)
            .collect();
        let mut pins = self.write();
        let seen = pins.get(&host.id).and_then(|p| p.seen.clone());
        pins.insert(
            host.id,
            Pin {
                name: host.name.clone(),
                accepted,
                seen,
            },
        );
    }

    /// Forgets a host: nothing of it is accepted any more.
    pub fn remove(&self, host: Uuid) {
        self.write().remove(&host);
    }

    /// The certificate host `host`'s agent presented last.
    pub fn seen(&self, host: Uuid) -> Option<CertInfo> {
        self.read().get(&host).and_then(|p| p.seen.clone())
    }

    fn check(&self, host: Uuid, name: &str, cert: &CertInfo) -> Result<(), String> {
        let mut pins = self.write();
        let whose = pins
            .iter()
            .find(|(id, p)| **id != host && p.accepted.contains(&cert.fingerprint))
            .map(|(_, p)| p.name.clone());
        let Some(pin) = pins.get_mut(&host) else {
            return Err(format!(
                "host {name} is not in the inventory any more (removed): its agent is not trusted"
            ));
        };
        if pin.accepted.contains(&cert.fingerprint) {
            pin.seen = Some(cert.clone());
            return Ok(());
        }
        Err(match whose {
            Some(other) => format!(
                "the agent at host {name}'s URL presented host {other}'s certificate; check the URL of host {name} (ferry host list), or enroll it again"
            ),
            None => format!(
                "the agent of host {name} presented a certificate the engine does not accept for it (sha256:{}, {:?}); if the host was set up again, enroll it again with `ferry host enroll {name}`",
                cert.fingerprint, cert.common_name
            ),
        })
    }
}

/// The check of one host's agent certificate, for its TLS client.
#[derive(Debug, Clone)]
pub struct HostPin {
    /// The host.
    pub host: Uuid,
    /// Its name, for messages.
    pub name: String,
    /// The pins.
    pub store: Arc<PinStore>,
}

impl PeerCheck for HostPin {
    fn check(&self, cert: &CertInfo) -> Result<(), String> {
        self.store.check(self.host, &self.name, cert)
    }
}
