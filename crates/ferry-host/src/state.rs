//! The agent's shared state, handed to every HTTP handler and task.
//!
//! Each role keeps its state in its own field: the domains, the SPM role,
//! the tasks. The HSM half (VMs over QMP) adds its own field here and its
//! own routes, without touching the others.

use std::path::{Path, PathBuf};

use crate::domains::DomainRegistry;
use crate::gc::Collector;
use crate::identity::Identity;
use crate::release::ReleaseQueue;
use crate::spm::SpmRole;
use crate::tasks::TaskManager;
use crate::vms::VmManager;

/// Everything an agent knows while it runs.
#[derive(Debug)]
pub struct AgentState {
    name: String,
    identity: Identity,
    run_dir: PathBuf,
    domains: DomainRegistry,
    spm: SpmRole,
    tasks: TaskManager,
    vms: VmManager,
    /// Serialises the synchronous metadata verbs (create, delete), which
    /// read a volume's neighbours and then change them.
    storage_lock: tokio::sync::Mutex<()>,
    /// Its garbage collection.
    gc: Collector,
    /// Deleted volumes whose space it still gives back.
    releases: ReleaseQueue,
}

impl AgentState {
    pub(crate) fn new(
        name: String,
        identity: Identity,
        run_dir: PathBuf,
        domains: DomainRegistry,
        tasks: TaskManager,
        vms: VmManager,
    ) -> Self {
        AgentState {
            spm: SpmRole::new(&name),
            name,
            identity,
            run_dir,
            domains,
            tasks,
            vms,
            storage_lock: tokio::sync::Mutex::new(()),
            gc: Collector::default(),
            releases: ReleaseQueue::default(),
        }
    }

    /// The host's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its certificate, which the engine renews (`routes::pki`).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The agent's own directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The storage domains it knows.
    pub fn domains(&self) -> &DomainRegistry {
        &self.domains
    }

    /// Its SPM role.
    pub fn spm(&self) -> &SpmRole {
        &self.spm
    }

    /// Its tasks.
    pub fn tasks(&self) -> &TaskManager {
        &self.tasks
    }

    /// Its VMs (the HSM role).
    pub fn vms(&self) -> &VmManager {
        &self.vms
    }

    /// Its garbage collection.
    pub(crate) fn gc(&self) -> &Collector {
        &self.gc
    }

    /// Deleted volumes whose space it still gives back.
    pub(crate) fn releases(&self) -> &ReleaseQueue {
        &self.releases
    }

    /// Held while a synchronous metadata verb runs.
    pub(crate) async fn storage_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.storage_lock.lock().await
    }
}
