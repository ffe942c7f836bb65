//! Files that hold a secret (a private key, a token, the database that
//! records who may do what): created mode 0600 in a directory of mode
//! 0700, written atomically, so that no other user can read them, not
//! even for the moment between create and chmod, whatever the umask.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// The mode of a file that holds a secret: its owner reads and writes it.
pub const PRIVATE_FILE: u32 = 0o600;
/// The mode of a directory that holds such files.
pub const PRIVATE_DIR: u32 = 0o700;

/// Creates `dir` (and its parents) if missing, and makes `dir` itself mode
/// 0700: a directory of secrets whose names alone (host names in
/// certificates) are the owner's business. An existing directory that is
/// more open is closed, with a log line saying so.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        match DirBuilder::new().mode(PRIVATE_DIR).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create", dir, e)),
        }
    }
    restrict(dir, PRIVATE_DIR)
}

/// Gives `path` (a file or directory that exists) `mode` if it has more
/// permissions than that; a missing path is left alone.
pub fn restrict(path: &Path, mode: u32) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read the mode of", path, e)),
    };
    let now = meta.permissions().mode() & 0o777;
    if now & !mode != 0 {
        std::fs::set_permissions(path, Permissions::from_mode(mode))
            .map_err(|e| Error::io("set the mode of", path, e))?;
        tracing::info!(path = %path.display(), "closed mode {now:o} to {mode:o}: it holds secrets");
    }
    Ok(())
}

/// Replaces `path` with `data`, mode 0600, atomically: a temporary file
/// created 0600 beside it (never more open, whatever the umask), synced,
/// renamed over `path`, the directory synced. Its directory is made 0700.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    ensure_private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(Permissions::from_mode(PRIVATE_FILE))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(data)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync the directory", dir, e))
}

/// Makes sure `path` exists as a file of mode 0600 before another program
/// (SQLite) opens it and would create it with its own, wider mode: a
/// missing file is created empty with mode 0600 (`O_EXCL`, so a file that
/// appears meanwhile is not truncated); an existing one more open than
/// that is closed. Its directory is made 0700.
pub fn ensure_private_file(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_private_dir(dir)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(path)
    {
        Ok(f) => f.sync_all().map_err(|e| Error::io("sync", path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create", path, e)),
    }
    restrict(path, PRIVATE_FILE)
}

/// Reads a file as text, with an error naming it.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn secrets_are_written_0600_in_a_0700_directory_and_open_ones_are_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a/pki");
        write_private(&sub.join("key.pem"), b"secret").expect("write");
        assert_eq!(mode(&sub.join("key.pem")), 0o600);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(std::fs::read(sub.join("key.pem")).expect("read"), b"secret");

        let db = dir.path().join("db/engine.db");
        ensure_private_file(&db).expect("create");
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).expect("open it up");
        ensure_private_file(&db).expect("close");
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.path().join("db")), 0o700);
    }
}
