//! The agent's own files: crash-safe writes, exclusive locks, and running
//! blocking file work off the async threads.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

use crate::error::{Error, Result};

/// The name prefix of [`write_atomic`]'s temporary files: one left behind
/// is what a crash between writing and renaming leaves (`gc` removes them).
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Replaces `path` with `data` so a reader (or the next agent start) sees
/// the old file or the new one, never a torn mix: write a uniquely named
/// temporary file in the same directory, fsync it, rename it over the
/// target, fsync the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Internal(format!("{} has no directory", path.display())))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(data)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    sync_dir(dir)
}

/// Makes a directory's entries (new, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// Takes an exclusive `flock` on `file` without waiting. `Ok(false)` means
/// another open file description (another process, or another open in this
/// one) holds it. The lock lives as long as the file stays open, and dies
/// with the process, which is what makes it a lease.
pub(crate) fn try_lock_exclusive(file: &File, path: &Path) -> Result<bool> {
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(Error::io("lock", path, e.into())),
    }
}

/// Runs blocking work (storage, fsync) on tokio's blocking pool, so a slow
/// disk never stalls the HTTP server's threads.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("a blocking storage operation did not finish: {e}")))?
}

/// Seconds since the Unix epoch, the unit of every timestamp the agent
/// reports (as VDSM's `CTIME`).
pub(crate) fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
