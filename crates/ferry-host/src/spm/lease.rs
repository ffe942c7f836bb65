//! The SPM lease: an exclusive `flock` on the master domain's
//! `dom_md/leases` (ARCHITECTURE §6).
//!
//! The lock belongs to the open file, so it is held for exactly as long as
//! the agent keeps the file open and is freed by the kernel when the agent
//! dies, however it dies: a dead SPM never blocks the election of the next
//! one. The file is opened close-on-exec, so no child process (qemu-img,
//! QEMU) can inherit and outlive the lock. The holder writes its name into
//! the file so a refused host can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use ferry_storage::StorageDomain;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::fsutil::try_lock_exclusive;

/// The longest holder description read back from a lease file.
const MAX_HOLDER_CHARS: usize = 200;

/// A held SPM lease; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct Lease {
    domain: Uuid,
    path: PathBuf,
    file: File,
}

impl Lease {
    /// Takes the lease of `domain` for `host` without waiting. Blocking
    /// (file I/O on shared storage).
    pub(crate) fn acquire(domain: &StorageDomain, host: &str) -> Result<Lease> {
        let path = domain.leases_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open the SPM lease file", &path, e))?;
        if !try_lock_exclusive(&file, &path)? {
            return Err(Error::LeaseHeld {
                host: host.to_string(),
                domain: domain.uuid(),
                holder: read_holder(&file),
            });
        }
        let holder = format!("{host} (pid {})\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all_at(holder.as_bytes(), 0))
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io("write the holder into", &path, e))?;
        tracing::info!(domain = %domain.uuid(), host, "acquired the SPM lease");
        Ok(Lease {
            domain: domain.uuid(),
            path,
            file,
        })
    }

    /// The master domain.
    pub(crate) fn domain(&self) -> Uuid {
        self.domain
    }

    /// Gives the lease up: clears the holder's name, then unlocks by
    /// closing the file.
    pub(crate) fn release(self) {
        if let Err(e) = self.file.set_len(0) {
            tracing::warn!(path = %self.path.display(), "could not clear the SPM lease holder: {e}");
        }
        tracing::info!(domain = %self.domain, "released the SPM lease");
    }
}

/// The holder's description, as it wrote it, if there is one.
fn read_holder(mut file: &File) -> Option<String> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let line: String = text
        .lines()
        .next()?
        .trim()
        .chars()
        .take(MAX_HOLDER_CHARS)
        .collect();
    (!line.is_empty()).then_some(line)
}
