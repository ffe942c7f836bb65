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

/// An image directory's entries, or `None` if it is not there (any more).
/// The agent releases a deleted image's volumes in the background and
/// removes its directory with the last of them, so a listing that found the
/// directory a moment ago may not find it now: an image with no directory
/// has no volumes, which is not an error.
pub(crate) fn read_image_dir(dir: &Path) -> Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("list", dir, e)),
    }
}

/// Entries of `dir` whose names are UUIDs (so `_remove_me_*`, `*.meta`
/// and temporary files are skipped) and that satisfy `keep`.
pub(crate) fn uuid_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<Uuid>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    uuid_entries_of(dir, entries, keep)
}

/// [`uuid_entries`] of an image directory, none if it is not there (any
/// more, see [`read_image_dir`]).
pub(crate) fn image_uuid_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<Uuid>> {
    match read_image_dir(dir)? {
        Some(entries) => uuid_entries_of(dir, entries, keep),
        None => Ok(Vec::new()),
    }
}

fn uuid_entries_of(
    dir: &Path,
    entries: fs::ReadDir,
    keep: impl Fn(&Path) -> bool,
) -> Result<Vec<Uuid>> {
    let mut out = Vec::new();
    for entry in entries {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_directory_that_is_gone_has_no_volumes_but_one_that_cannot_be_read_is_an_error() {
        let scratch = tempfile::tempdir().expect("a scratch directory");
        let gone = scratch.path().join("gone");
        assert!(read_image_dir(&gone)
            .expect("a missing directory")
            .is_none());
        assert_eq!(
            image_uuid_entries(&gone, |_| true).expect("no volumes"),
            Vec::<Uuid>::new()
        );
        // The strict listing, for a domain's own directories, still says so.
        assert!(uuid_entries(&gone, |_| true).is_err());
        let file = scratch.path().join("a-file");
        fs::write(&file, b"not a directory").expect("write a file");
        assert!(read_image_dir(&file).is_err());

        let dir = scratch.path().join("image");
        fs::create_dir(&dir).expect("an image directory");
        let id = Uuid::new_v4();
        fs::write(dir.join(id.to_string()), b"").expect("a volume");
        fs::write(dir.join(format!("{id}.meta")), b"").expect("its metadata");
        assert_eq!(
            image_uuid_entries(&dir, |p| p.is_file()).expect("a listing"),
            [id]
        );
    }
}
