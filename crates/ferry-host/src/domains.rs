//! The storage domains an agent knows: those given at start and those
//! connected since, remembered in the run directory so that a restarted
//! agent can resume tasks on them.
//!
//! A domain is only ever reached through a path that was checked here:
//! absolute, without `..`, canonicalised, and holding a valid domain. Every
//! volume is then addressed by UUIDs under that directory, so no request
//! can name a file outside a domain.

use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

use ferry_api::agent::DomainInfo;
use ferry_storage::{DomainSet, StorageDomain};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The file in the run directory listing connected domain paths.
const DOMAINS_FILE: &str = "domains.json";

/// The domain with this UUID in a snapshot of the known domains (taken
/// with [`DomainRegistry::set`] for work off the async runtime), or a 404
/// saying how to connect it.
pub(crate) fn connected(domains: &DomainSet, uuid: Uuid) -> Result<&StorageDomain> {
    domains.get(uuid).ok_or_else(|| {
        Error::NotFound(format!(
            "storage domain {uuid} is not connected to this host; connect it first (POST /v1/domains/connect)"
        ))
    })
}

/// The known domains, by UUID.
#[derive(Debug)]
pub struct DomainRegistry {
    host: String,
    store: PathBuf,
    known: RwLock<DomainSet>,
}

impl DomainRegistry {
    /// Opens the domains given at start (each must be valid: a typo should
    /// stop the agent, not surface later) and those remembered from a
    /// previous run (skipped with a warning if they went away).
    pub(crate) fn load(host: &str, run_dir: &Path, initial: &[PathBuf]) -> Result<Self> {
        let store = run_dir.join(DOMAINS_FILE);
        let registry = DomainRegistry {
            host: host.to_string(),
            store,
            known: RwLock::new(DomainSet::default()),
        };
        for path in registry.remembered()? {
            if let Err(e) = registry.insert_checked(&path) {
                tracing::warn!(path = %path.display(), "not reconnecting a remembered storage domain: {}", e.full_text());
            }
        }
        for path in initial {
            registry.insert_checked(path)?;
        }
        registry.remember()?;
        Ok(registry)
    }

    /// The domain with this UUID, or a 404 saying how to connect it.
    pub fn get(&self, uuid: Uuid) -> Result<StorageDomain> {
        self.set().get(uuid).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "storage domain {uuid} is not connected to host {}; connect it first (POST /v1/domains/connect)",
                self.host
            ))
        })
    }

    /// Every known domain, for chain walks that cross domains.
    pub fn set(&self) -> DomainSet {
        match self.known.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Every known domain with its capacity.
    pub fn list(&self) -> Result<Vec<DomainInfo>> {
        self.set()
            .iter()
            .map(|d| {
                let cap = d.capacity()?;
                Ok(DomainInfo {
                    uuid: d.uuid(),
                    name: d.name().to_string(),
                    path: d.path().to_path_buf(),
                    capacity: cap.total,
                    free: cap.free,
                    releasing: 0,
                })
            })
            .collect()
    }

    /// Connects the domain at `path` (idempotent) and remembers it.
    /// Blocking: touches the filesystem.
    pub(crate) fn connect(&self, path: &Path) -> Result<StorageDomain> {
        let domain = self.insert_checked(path)?;
        self.remember()?;
        tracing::info!(domain = %domain, path = %domain.path().display(), "connected storage domain");
        Ok(domain)
    }

    /// Creates a domain `<root>/<uuid>` and connects it. Idempotent: a
    /// domain with that UUID and name already there is connected and
    /// returned; one with another name is a conflict. Blocking.
    pub(crate) fn create(&self, root: &Path, name: &str, uuid: Uuid) -> Result<StorageDomain> {
        if root.is_absolute() && !root.is_dir() {
            // Nothing there (404), rather than a malformed request.
            return Err(ferry_storage::Error::RootMissing {
                name: name.to_string(),
                path: root.to_path_buf(),
            }
            .into());
        }
        let root = checked_path(root, "directory for the new domain")?;
        let path = root.join(uuid.to_string());
        if path.exists() {
            let existing = StorageDomain::open(&path)?;
            if existing.name() != name {
                return Err(Error::Conflict(format!(
                    "storage domain {uuid} already exists at {} with the name '{}', not '{name}'",
                    path.display(),
                    existing.name()
                )));
            }
            return self.connect(&path);
        }
        let created = StorageDomain::create_with_uuid(&root, name, uuid)?;
        self.connect(created.path())
    }

    fn insert_checked(&self, path: &Path) -> Result<StorageDomain> {
        let canonical = checked_path(path, "storage domain path")?;
        let domain = StorageDomain::open(&canonical).map_err(|e| match e {
            ferry_storage::Error::NotADomain { .. }
            | ferry_storage::Error::CorruptMetadata { .. } => Error::BadRequest(format!(
                "{}; give the directory of a storage domain (<root>/<uuid>)",
                e
            )),
            other => other.into(),
        })?;
        let mut known = match self.known.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(existing) = known.get(domain.uuid()) {
            if existing.path() != domain.path() {
                return Err(Error::Conflict(format!(
                    "storage domain {} is already connected from {}; it cannot also be connected from {}",
                    domain.uuid(),
                    existing.path().display(),
                    domain.path().display()
                )));
            }
        }
        known.insert(domain.clone());
        Ok(domain)
    }

    fn remembered(&self) -> Result<Vec<PathBuf>> {
        match std::fs::read(&self.store) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Conflict(format!(
                    "{} is not a JSON list of domain paths ({e}); fix or remove it",
                    self.store.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("read", &self.store, e)),
        }
    }

    fn remember(&self) -> Result<()> {
        let paths: Vec<PathBuf> = self.set().iter().map(|d| d.path().to_path_buf()).collect();
        let text = serde_json::to_vec_pretty(&paths)
            .map_err(|e| Error::Internal(format!("cannot encode the domain list: {e}")))?;
        write_atomic(&self.store, &text)
    }
}

/// Checks a path that came from a request: absolute, no `..` component,
/// and existing; returns it canonicalised (symlinks resolved), so what is
/// used later is exactly what was checked.
pub(crate) fn checked_path(path: &Path, what: &str) -> Result<PathBuf> {
    if !path.is_absolute() {
        return Err(Error::BadRequest(format!(
            "the {what} {} is relative; give an absolute path",
            path.display()
        )));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Error::BadRequest(format!(
            "the {what} {} contains '..'; give the path without it",
            path.display()
        )));
    }
    std::fs::canonicalize(path).map_err(|e| {
        Error::BadRequest(format!(
            "the {what} {} cannot be used ({e}); give an existing directory",
            path.display()
        ))
    })
}
