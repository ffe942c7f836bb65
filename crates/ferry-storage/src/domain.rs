//! File storage domains: a directory laid out as VDSM lays out a
//! file-based (NFS/POSIX/local) domain.
//!
//! ```text
//! <root>/<sd_uuid>/dom_md/metadata    KEY=VALUE lines, with VDSM's checksum
//! <root>/<sd_uuid>/dom_md/leases      the SPM lease file
//! <root>/<sd_uuid>/images/<img_uuid>/<vol_uuid>[.meta]
//! ```
//!
//! A domain here is its identity and its layout, nothing about volumes:
//! the methods that hand out volumes (`volume`, `volumes`) live beside
//! `Volume` in `volume.rs`, and `create_volume` in `create_volume.rs`, so
//! volumes depend on domains and never the other way round.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::atomic::{sync_dir, write_atomic};
use crate::dir_entries::uuid_entries;
use crate::error::{Error, Result};
use crate::metadata::parse_key_values;

/// The metadata version written, VDSM's current one for file domains.
const DOMAIN_VERSION: &str = "5";

/// The longest domain name accepted (VDSM's DESCRIPTION limit).
const MAX_NAME_CHARS: usize = 50;

/// An opened storage domain: its identity and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageDomain {
    uuid: Uuid,
    name: String,
    path: PathBuf,
}

/// What a domain holds and has room for, as `statvfs` sees its filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Size of the filesystem in bytes.
    pub total: u64,
    /// Bytes an unprivileged writer can still use.
    pub free: u64,
}

impl StorageDomain {
    /// Creates a new domain named `name` under `root`, all or nothing: the
    /// layout is built under a temporary name and renamed into place.
    pub fn create(root: &Path, name: &str) -> Result<Self> {
        Self::create_with_uuid(root, name, Uuid::new_v4())
    }

    /// Like [`StorageDomain::create`], with a chosen UUID (for tests and for
    /// re-creating a domain a database already knows).
    pub fn create_with_uuid(root: &Path, name: &str, uuid: Uuid) -> Result<Self> {
        validate_name(name)?;
        let root = &crate::domain_root::check_root(root, name)?;
        let path = root.join(uuid.to_string());
        if path.exists() {
            return Err(Error::DomainExists { path });
        }
        let tmp = root.join(format!(".{uuid}.creating"));
        let result = (|| {
            let _ = fs::remove_dir_all(&tmp);
            let dom_md = tmp.join("dom_md");
            fs::create_dir_all(&dom_md).map_err(|e| Error::io("create", &dom_md, e))?;
            let images = tmp.join("images");
            fs::create_dir(&images).map_err(|e| Error::io("create", &images, e))?;
            let leases = dom_md.join("leases");
            fs::File::create(&leases)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("create", &leases, e))?;
            let mut keys = BTreeMap::new();
            keys.insert("CLASS".to_string(), "Data".to_string());
            keys.insert("DESCRIPTION".to_string(), name.to_string());
            keys.insert("POOL_UUID".to_string(), String::new());
            keys.insert("REMOTE_PATH".to_string(), root.display().to_string());
            keys.insert("ROLE".to_string(), "Regular".to_string());
            keys.insert("SDUUID".to_string(), uuid.to_string());
            keys.insert("TYPE".to_string(), "LOCALFS".to_string());
            keys.insert("VERSION".to_string(), DOMAIN_VERSION.to_string());
            write_atomic(
                &dom_md.join("metadata"),
                render_domain_metadata(&keys).as_bytes(),
            )?;
            sync_dir(&tmp)?;
            fs::rename(&tmp, &path).map_err(|e| Error::io("rename into place", &path, e))?;
            sync_dir(root)
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        tracing::info!(domain = %uuid, name, path = %path.display(), "created storage domain");
        Self::open(&path)
    }

    /// Opens and validates the domain whose directory is `path`
    /// (`<root>/<sd_uuid>`).
    pub fn open(path: &Path) -> Result<Self> {
        let not_domain = |reason: String| Error::NotADomain {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_dir() {
            return Err(not_domain("the directory does not exist".into()));
        }
        let md_path = path.join("dom_md").join("metadata");
        let text = fs::read_to_string(&md_path)
            .map_err(|e| not_domain(format!("cannot read {}: {e}", md_path.display())))?;
        let mut keys = parse_key_values(&text, &md_path, false)?;
        let corrupt = |reason: String| Error::CorruptMetadata {
            path: md_path.clone(),
            reason,
        };
        if let Some(sum) = keys.remove("_SHA_CKSUM") {
            let expected = checksum(&keys);
            if sum != expected {
                return Err(corrupt(format!(
                    "its checksum is {sum} but its content sums to {expected}; it was edited by hand or damaged"
                )));
            }
        }
        let uuid_text = keys
            .get("SDUUID")
            .ok_or_else(|| corrupt("the key SDUUID is missing".into()))?;
        let uuid = Uuid::parse_str(uuid_text)
            .map_err(|_| corrupt(format!("SDUUID is {uuid_text:?}; expected a UUID")))?;
        let dir_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if dir_name.as_deref() != Some(uuid_text.as_str()) {
            return Err(not_domain(format!(
                "its metadata says it is domain {uuid}, but the directory is named {}",
                dir_name.unwrap_or_default()
            )));
        }
        match keys.get("CLASS").map(String::as_str) {
            Some("Data") => {}
            other => {
                return Err(not_domain(format!(
                    "its CLASS is {other:?}; Ferry stores disks only on Data domains"
                )))
            }
        }
        let name = keys.get("DESCRIPTION").cloned().unwrap_or_default();
        if !path.join("images").is_dir() {
            return Err(not_domain("it has no images/ directory".into()));
        }
        Ok(StorageDomain {
            uuid,
            name,
            path: path.to_path_buf(),
        })
    }

    /// Opens every domain directly under `root`, skipping other entries.
    pub fn scan(root: &Path) -> Result<Vec<Self>> {
        let mut found = Vec::new();
        let entries = fs::read_dir(root).map_err(|e| Error::io("list", root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", root, e))?;
            let p = entry.path();
            let is_uuid = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| Uuid::parse_str(n).is_ok());
            if is_uuid && p.join("dom_md").is_dir() {
                found.push(Self::open(&p)?);
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// The domain's UUID (`SDUUID`).
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The domain's name (VDSM keeps it in `DESCRIPTION`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The domain directory, `<root>/<sd_uuid>`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SPM lease file (ARCHITECTURE.md §6).
    pub fn leases_path(&self) -> PathBuf {
        self.path.join("dom_md").join("leases")
    }

    /// `images/`, holding one directory per image (disk).
    pub fn images_dir(&self) -> PathBuf {
        self.path.join("images")
    }

    /// The directory of one image.
    pub fn image_dir(&self, image: Uuid) -> PathBuf {
        self.images_dir().join(image.to_string())
    }

    /// Size and free space of the filesystem under the domain.
    pub fn capacity(&self) -> Result<Capacity> {
        let st = rustix::fs::statvfs(&self.path)
            .map_err(|e| Error::io("query free space of", &self.path, e.into()))?;
        Ok(Capacity {
            total: st.f_blocks.saturating_mul(st.f_frsize),
            free: st.f_bavail.saturating_mul(st.f_frsize),
        })
    }

    /// The images (disks) on the domain, in UUID order; images being
    /// removed are not listed.
    pub fn images(&self) -> Result<Vec<Uuid>> {
        let mut images = uuid_entries(&self.images_dir(), |p| p.is_dir())?;
        images.sort();
        Ok(images)
    }
}

impl std::fmt::Display for StorageDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.uuid)
    }
}

/// The domains a caller knows, by UUID: what a chain walk needs to follow a
/// parent that lives on another domain.
#[derive(Debug, Clone, Default)]
pub struct DomainSet {
    domains: BTreeMap<Uuid, StorageDomain>,
}

impl DomainSet {
    /// A set of the given domains.
    pub fn new(domains: impl IntoIterator<Item = StorageDomain>) -> Self {
        DomainSet {
            domains: domains.into_iter().map(|d| (d.uuid(), d)).collect(),
        }
    }

    /// Adds (or replaces) a domain.
    pub fn insert(&mut self, domain: StorageDomain) {
        self.domains.insert(domain.uuid(), domain);
    }

    /// The domain with this UUID, if known.
    pub fn get(&self, uuid: Uuid) -> Option<&StorageDomain> {
        self.domains.get(&uuid)
    }

    /// The domain named `name` (or whose UUID is `name`), if known.
    pub fn find(&self, name: &str) -> Option<&StorageDomain> {
        self.domains
            .values()
            .find(|d| d.name() == name || d.uuid().to_string() == name)
    }

    /// All known domains, by UUID.
    pub fn iter(&self) -> impl Iterator<Item = &StorageDomain> {
        self.domains.values()
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "'{name}' is not a valid domain name: use 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'"
        )))
    }
}

/// VDSM's `_SHA_CKSUM`: SHA-1 over the sorted `KEY=VALUE` lines without
/// their line ends.
fn checksum(keys: &BTreeMap<String, String>) -> String {
    let mut h = Sha1::new();
    for (k, v) in keys {
        h.update(format!("{k}={v}").as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn render_domain_metadata(keys: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (k, v) in keys {
        text.push_str(&format!("{k}={v}\n"));
    }
    text.push_str(&format!("_SHA_CKSUM={}\n", checksum(keys)));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_domain_reopens_with_its_name_and_layout() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = StorageDomain::create(root.path(), "domain1").expect("create");
        assert!(d.leases_path().is_file());
        assert!(d.images_dir().is_dir());
        let again = StorageDomain::open(d.path()).expect("open");
        assert_eq!(again, d);
        assert_eq!(
            StorageDomain::scan(root.path()).expect("scan"),
            vec![d.clone()]
        );
        let cap = d.capacity().expect("capacity");
        assert!(cap.total >= cap.free && cap.free > 0);
        assert!(matches!(
            StorageDomain::create_with_uuid(root.path(), "again", d.uuid()),
            Err(Error::DomainExists { .. })
        ));
    }

    #[test]
    fn bad_names_and_roots_are_refused_without_leaving_anything() {
        let root = tempfile::tempdir().expect("tempdir");
        for bad in ["", "../up", "a b", &"x".repeat(51)] {
            let err = StorageDomain::create(root.path(), bad).expect_err(bad);
            assert!(err.to_string().contains("not a valid domain name"), "{err}");
        }
        let missing = root.path().join("missing");
        let err = StorageDomain::create(&missing, "d").expect_err("missing root");
        assert!(err.to_string().contains("is not a directory"), "{err}");
        assert_eq!(fs::read_dir(root.path()).expect("ls").count(), 0);
    }

    #[test]
    fn edited_metadata_fails_its_checksum() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = StorageDomain::create(root.path(), "domain1").expect("create");
        let md = d.path().join("dom_md/metadata");
        let text = fs::read_to_string(&md).expect("read");
        fs::write(&md, text.replace("domain1", "domainX")).expect("write");
        let err = StorageDomain::open(d.path())
            .expect_err("tampered")
            .to_string();
        assert!(err.contains("checksum"), "{err}");
        assert!(err.contains("dom_md/metadata"), "{err}");
    }
}
