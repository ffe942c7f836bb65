//! Whether this agent is the SPM, and the one place that changes it.

use std::sync::{Mutex, MutexGuard};

use ferry_storage::StorageDomain;
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::spm::lease::Lease;

/// The SPM role of this agent: the held lease, if any, and a channel that
/// tells waiting tasks when the role is gained or lost.
#[derive(Debug)]
pub struct SpmRole {
    host: String,
    lease: Mutex<Option<Lease>>,
    changes: watch::Sender<Option<Uuid>>,
}

impl SpmRole {
    pub(crate) fn new(host: &str) -> Self {
        SpmRole {
            host: host.to_string(),
            lease: Mutex::new(None),
            changes: watch::Sender::new(None),
        }
    }

    fn held(&self) -> MutexGuard<'_, Option<Lease>> {
        match self.lease.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The master domain whose lease this agent holds, if it is SPM.
    pub fn domain(&self) -> Option<Uuid> {
        self.held().as_ref().map(Lease::domain)
    }

    /// Errors with 409 unless this agent is SPM; `action` says what was
    /// refused ("create volumes").
    pub fn require(&self, action: &str) -> Result<Uuid> {
        self.domain().ok_or_else(|| Error::NotSpm {
            host: self.host.clone(),
            action: action.to_string(),
        })
    }

    /// Runs `enter` while the role is held and cannot be released, and
    /// returns whether it ran: how a task marks itself as executing
    /// without racing a release.
    pub(crate) fn while_held(&self, enter: impl FnOnce()) -> bool {
        let held = self.held();
        if held.is_some() {
            enter();
            true
        } else {
            false
        }
    }

    /// A receiver that sees every change of the role.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Uuid>> {
        self.changes.subscribe()
    }

    /// Takes the lease of `master`. Idempotent when already SPM there; a
    /// conflict when SPM on another domain. Blocking.
    pub(crate) fn acquire(&self, master: &StorageDomain) -> Result<Uuid> {
        let mut held = self.held();
        if let Some(lease) = held.as_ref() {
            if lease.domain() == master.uuid() {
                return Ok(lease.domain());
            }
            return Err(Error::Conflict(format!(
                "host {} is already SPM with the lease on domain {}; release it before taking the lease on {}",
                self.host,
                lease.domain(),
                master.uuid()
            )));
        }
        let lease = Lease::acquire(master, &self.host)?;
        let domain = lease.domain();
        *held = Some(lease);
        self.changes.send_replace(Some(domain));
        Ok(domain)
    }

    /// Gives the role up unless `busy` names work that needs it (checked
    /// while the role cannot change). Idempotent when not SPM.
    pub(crate) fn release(&self, busy: impl FnOnce() -> Option<String>) -> Result<()> {
        let mut held = self.held();
        if held.is_none() {
            return Ok(());
        }
        if let Some(work) = busy() {
            return Err(Error::Conflict(format!(
                "host {} cannot give up the SPM role while {work} running; wait for them to finish or cancel them",
                self.host
            )));
        }
        if let Some(lease) = held.take() {
            lease.release();
        }
        self.changes.send_replace(None);
        Ok(())
    }
}
