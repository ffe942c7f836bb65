//! Where a storage domain may be created: a directory the operator made
//! for storage, never `/` or a system directory, and empty or holding
//! only storage domains. A domain is a directory named by its UUID made
//! inside the root, so a wrong root would scatter Ferry's directories
//! through the system, as root.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::error::{Error, Result};

/// Directories that are never a domain root themselves.
const SYSTEM_DIRS: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
    "/var/lib", "/var/tmp",
];

/// Virtual file systems: nothing under them is storage.
const VIRTUAL_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// Entries a domain root may hold besides domains: a file system's
/// `lost+found`, VDSM's direct I/O probe on NFS roots.
const ALLOWED_ENTRIES: &[&str] = &["lost+found", "__DIRECT_IO_TEST__"];

/// Checks `root` for a new domain named `name`; returns it canonical.
pub(crate) fn check_root(root: &Path, name: &str) -> Result<PathBuf> {
    let refuse = |why: String| Error::RootUnsuitable {
        name: name.to_string(),
        path: root.to_path_buf(),
        why,
    };
    if !root.is_absolute() {
        return Err(Error::InvalidRequest(format!(
            "cannot create storage domain '{name}' in {}: the path is relative; give an absolute path, as every host must see the domain at the same place",
            root.display()
        )));
    }
    if !root.is_dir() {
        return Err(Error::RootMissing {
            name: name.to_string(),
            path: root.to_path_buf(),
        });
    }
    let canonical = root
        .canonicalize()
        .map_err(|e| Error::io("resolve", root, e))?;
    if SYSTEM_DIRS.iter().any(|d| canonical == Path::new(d))
        || VIRTUAL_TREES.iter().any(|d| canonical.starts_with(d))
    {
        return Err(refuse(format!(
            "{} is a system directory; make a directory for storage (for example /srv/ferry/{name}) or mount the storage somewhere of its own",
            canonical.display()
        )));
    }
    let strangers = strangers(&canonical)?;
    if !strangers.is_empty() {
        return Err(refuse(format!(
            "it holds other things ({}); give an empty directory, or one that holds only storage domains",
            strangers.join(", ")
        )));
    }
    Ok(canonical)
}

/// The first few entries of `dir` that are neither a storage domain nor
/// one of [`ALLOWED_ENTRIES`] (nor a domain being created).
fn strangers(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if ALLOWED_ENTRIES.contains(&name.as_str()) || is_domain(&entry.path(), &name) {
            continue;
        }
        found.push(name);
        if found.len() == 3 {
            found.push("...".into());
            break;
        }
    }
    Ok(found)
}

/// A domain (`<uuid>/dom_md/metadata`) or one being created
/// (`.<uuid>.creating`).
fn is_domain(path: &Path, name: &str) -> bool {
    if let Some(uuid) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".creating"))
    {
        return Uuid::parse_str(uuid).is_ok();
    }
    Uuid::parse_str(name).is_ok() && path.join("dom_md").join("metadata").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StorageDomain;

    fn refused(root: &Path) -> String {
        match check_root(root, "d") {
            Err(
                e @ (Error::InvalidRequest(_)
                | Error::RootMissing { .. }
                | Error::RootUnsuitable { .. }),
            ) => e.to_string(),
            other => panic!("{} was not refused: {other:?}", root.display()),
        }
    }

    #[test]
    fn system_directories_and_relative_paths_are_refused() {
        for dir in ["/", "/etc", "/usr", "/var", "/tmp", "/proc/self"] {
            let why = refused(Path::new(dir));
            assert!(why.contains("system directory"), "{dir}: {why}");
        }
        assert!(refused(Path::new("relative/dir")).contains("relative"));
        assert!(refused(Path::new("/nonexistent/ferry")).contains("not a directory"));
    }

    #[test]
    fn a_root_must_be_empty_or_hold_only_domains() {
        let dir = tempfile::tempdir().expect("tempdir");
        check_root(dir.path(), "d").expect("an empty directory");
        std::fs::create_dir(dir.path().join("lost+found")).expect("lost+found");
        let d1 = StorageDomain::create(dir.path(), "d1").expect("a domain");
        check_root(dir.path(), "d2").expect("a root holding a domain and lost+found");
        drop(d1);
        std::fs::write(dir.path().join("notes.txt"), b"x").expect("a file");
        let why = refused(dir.path());
        assert!(
            why.contains("notes.txt") && why.contains("only storage domains"),
            "{why}"
        );
    }
}
