//! Crash-safe file writes: a reader sees the old file or the new one, never
//! a torn mix, even if the machine dies mid-write.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Whether `name` is the temporary file of [`write_atomic`]: `.<name>.tmp`.
/// One left behind is what a crash between writing and renaming leaves.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.len() >= ".x.tmp".len() && name.starts_with('.') && name.ends_with(".tmp")
}

/// Replaces `path` with `data`: write a temporary file, fsync it, rename it
/// over the target, fsync the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::InvalidRequest(format!("{} has no directory", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("write", &tmp, e)
        })?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("rename into place", path, e)
    })?;
    sync_dir(dir)
}

/// Makes a directory's entries (new, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}
