//! How entries in a domain's directories are named, which both a domain
//! (listing images, collecting garbage) and a volume (listing its siblings,
//! deleting itself) need to agree on: live images and volumes are named by
//! UUID, and anything being deleted carries [`REMOVE_PREFIX`].

use std::fs;
use std::path::Path;

use uuid::Uuid;

use crate::error::{Error, Result};

/// The prefix a volume or image gets while it is being deleted, so a crash
/// mid-delete leaves something the domain's garbage collection finishes,
/// never a half-deleted volume that looks usable.
pub(crate) const REMOVE_PREFIX: &str = "_remove_me_";

/// Whether `path` names an entry whose deletion was started (and perhaps
/// interrupted by a crash).
pub(crate) fn is_being_removed(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(REMOVE_PREFIX))
}

/// The volume a `_remove_me_<id>` or `_remove_me_<id>.meta` entry was,
/// if `name` is one.
pub(crate) fn doomed_volume(name: &str) -> Option<Uuid> {
    let rest = name.strip_prefix(REMOVE_PREFIX)?;
    Uuid::parse_str(rest.strip_suffix(".meta").unwrap_or(rest)).ok()
}

/// The volume any entry of an image directory belongs to, whatever its
/// state: `<id>`, `<id>.meta`, or either with the `_remove_me_` prefix.
pub(crate) fn any_volume(name: &str) -> Option<Uuid> {
    let rest = name.strip_prefix(REMOVE_PREFIX).unwrap_or(name);
    Uuid::parse_str(rest.strip_suffix(".meta").unwrap_or(rest)).ok()
}

/// Entries of `dir` whose names are UUIDs (so `_remove_me_*`, `*.meta`
/// and temporary files are skipped) and that satisfy `keep`.
pub(crate) fn uuid_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<Uuid>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let p = entry.map_err(|e| Error::io("list", dir, e))?.path();
        let id = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| Uuid::parse_str(n).ok());
        if let Some(id) = id {
            if keep(&p) {
                out.push(id);
            }
        }
    }
    Ok(out)
}
