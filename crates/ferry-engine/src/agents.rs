//! The agents the engine talks to: one [`AgentClient`] per host of the
//! `hosts` table, each speaking mutual TLS (the engine's client
//! certificate; only the certificate pinned for that host accepted), and
//! the answers to "who is SPM" and "where does this VM run", which every
//! storage or VM operation starts with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_agent_client::AgentClient;
use ferry_api::engine::HostStatus;
use ferry_http::ClientTls;
use uuid::Uuid;

use crate::db::{Db, HostRow};
use crate::error::{Error, Result};
use crate::pki::EnginePki;

/// The registry of agent clients, built from the `hosts` table on demand.
#[derive(Debug)]
pub struct Agents {
    db: Db,
    pki: Arc<EnginePki>,
    clients: Mutex<HashMap<Uuid, AgentClient>>,
    /// Settings that no agent accepts (no client certificate), for the
    /// case that cannot happen once the PKI opened: a host whose TLS
    /// settings cannot be built is then refused rather than trusted.
    refused: ClientTls,
    /// No request to an agent waits longer than this (the operator's
    /// bound for a host that does not answer).
    cap: Duration,
}

impl Agents {
    pub(crate) fn new(db: Db, pki: Arc<EnginePki>, cap: Duration) -> Result<Self> {
        let refused = ClientTls::trusting(pki.ca_pem())?;
        Ok(Agents {
            db,
            pki,
            clients: Mutex::new(HashMap::new()),
            refused,
            cap,
        })
    }

    /// Forgets the client of `host` (its URL changed, it was removed or
    /// enrolled again), so the next call builds one afresh.
    pub fn forget(&self, host: Uuid) {
        self.cache().remove(&host);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, AgentClient>> {
        match self.clients.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The client of a host's agent (a client is a connection pool, so it
    /// is kept and shared).
    pub fn client_for(&self, host: &HostRow) -> AgentClient {
        self.cache()
            .entry(host.id)
            .or_insert_with(|| {
                let tls = self.pki.agent_tls(host).unwrap_or_else(|e| {
                    tracing::error!(host = %host.name, "cannot set up TLS to the agent: {e}");
                    self.refused.clone()
                });
                AgentClient::new(host.url.clone(), &tls).with_timeout(self.cap)
            })
            .clone()
    }

    /// The client of the host `host`, up or not.
    pub async fn client(&self, host: Uuid) -> Result<AgentClient> {
        let row = self.db.host(host).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "there is no host {host}; list the hosts with 'ferry host list'"
            ))
        })?;
        Ok(self.client_for(&row))
    }

    /// The SPM host and its client. 503 when no host is SPM (none is up,
    /// there is no storage domain yet, or the monitor has not elected one
    /// since the last SPM went down).
    pub async fn spm(&self) -> Result<(Uuid, AgentClient)> {
        let (host, client) = self.spm_host().await?;
        Ok((host.id, client))
    }

    /// Like [`Agents::spm`], with the host's row (for its name in
    /// messages).
    pub async fn spm_host(&self) -> Result<(HostRow, AgentClient)> {
        let hosts = self.db.hosts().await?;
        if let Some(h) = hosts.iter().find(|h| h.spm && h.status == HostStatus::Up) {
            return Ok((h.clone(), self.client_for(h)));
        }
        let why = if hosts.is_empty() {
            "there are no hosts; add one (ferry host add)"
        } else if !hosts.iter().any(|h| h.status == HostStatus::Up) {
            "every host is down; start an agent"
        } else {
            "the SPM role is not held (it is elected once a storage domain exists, within seconds of a host coming up); create a storage domain or try again shortly"
        };
        Err(Error::Unavailable(format!("no host is SPM; {why}")))
    }

    /// The first host that is up (the oldest added), with its client.
    pub async fn first_up(&self) -> Result<(HostRow, AgentClient)> {
        let hosts = self.db.hosts().await?;
        let host = hosts
            .into_iter()
            .find(|h| h.status == HostStatus::Up)
            .ok_or_else(|| {
                Error::Unavailable(
                    "no host is up; add a host (ferry host add) or start the agents of the hosts"
                        .into(),
                )
            })?;
        let client = self.client_for(&host);
        Ok((host, client))
    }

    /// The host a VM runs (or will start) on and its client, whether that
    /// host is up or not (the caller decides what a down host means).
    pub async fn host_of_vm(&self, vm: Uuid) -> Result<(HostRow, AgentClient)> {
        let row = self.db.vm(vm).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "there is no VM {vm}; list the VMs with 'ferry vm list'"
            ))
        })?;
        let host = self.db.host(row.host).await?.ok_or_else(|| {
            Error::Corrupt(format!(
                "VM {vm} is on host {}, which is not in the hosts table",
                row.host
            ))
        })?;
        let client = self.client_for(&host);
        Ok((host, client))
    }
}
