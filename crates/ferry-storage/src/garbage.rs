//! A domain's garbage collection: finishing the deletions a crash
//! interrupted and removing the temporary files of atomic writes a crash
//! left.
//!
//! What is collected, and why it is safe:
//! - **Deletions under way** (any `_remove_me_` entry, see `delete.rs`):
//!   such an entry exists only once a delete was decided, after the checks
//!   that nothing depends on the volume, so it is finished as the delete
//!   itself would have (the parent's role restored from the metadata,
//!   which goes last). Beside a whole volume of the same id, only the old
//!   `_remove_me_` entries go: they belong to an earlier volume.
//! - **Temporary files** `.<name>.tmp` of [`write_atomic`]: a writer
//!   writes its file and renames it within moments, so one not modified
//!   for `min_age` has no writer any more.
//!
//! Both only once every file of the thing is older than `min_age`, so a
//! delete or a write running right now, on this host or another sharing
//! the storage, is never raced. Never touched, at any age: whole volumes
//! (LEGAL or ILLEGAL: an ILLEGAL one may be a copy in progress; the
//! create's or the copy's own re-run deals with it), a `.meta` or a file
//! without the other and without a `_remove_me_` entry (an interrupted
//! create, which its re-run decides about), and anything not Ferry's.
//!
//! Only the SPM may change a domain's metadata, so only it runs this.
//!
//! [`write_atomic`]: crate::atomic

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::atomic::is_temp_name;
use crate::delete::{remove_if_there, Presence};
use crate::dir_entries::{doomed_volume, is_being_removed};
use crate::domain::{DomainSet, StorageDomain};
use crate::error::{Error, Result};
use crate::release::Retired;

/// What one garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Volumes whose interrupted deletion was finished.
    pub deletions_finished: usize,
    /// `_remove_me_` entries removed on their own: an earlier volume's
    /// beside a whole one of the same id, or a whole image directory.
    pub removed_entries: usize,
    /// Temporary files of interrupted atomic writes removed.
    pub temp_files: usize,
}

impl std::ops::AddAssign for Collected {
    fn add_assign(&mut self, other: Self) {
        self.deletions_finished += other.deletions_finished;
        self.removed_entries += other.removed_entries;
        self.temp_files += other.temp_files;
    }
}

/// How old a file is by one of its clocks; a time in the future (another
/// host's clock ahead of ours) counts as new.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// Last written: what a writer of a temporary file keeps fresh.
    Modified,
    /// Last renamed or linked: when a volume's file got its `_remove_me_`
    /// name (a rename keeps the modification time).
    Changed,
}

fn is_older(path: &Path, clock: Clock, min_age: Duration, now: SystemTime) -> bool {
    let Ok(m) = fs::symlink_metadata(path) else {
        // Gone meanwhile: someone else removed it; nothing to do.
        return false;
    };
    let stamp = match clock {
        Clock::Modified => m.modified().ok(),
        Clock::Changed => u64::try_from(m.ctime())
            .ok()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
    };
    stamp
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|age| age >= min_age)
}

impl StorageDomain {
    /// Finishes the deletions a crash interrupted and removes the
    /// temporary files no writer uses any more, touching only what has
    /// not changed for `min_age` (see the module's comment for what is
    /// collected and why it is safe). `domains` are those a deleted leaf's
    /// parent may be on. One thing that cannot be collected is logged and
    /// left for the next time; only an unreadable domain is an error.
    pub fn collect_garbage(&self, domains: &DomainSet, min_age: Duration) -> Result<Collected> {
        self.collect_garbage_with(domains, min_age, &mut |r| r.release_now())
    }

    /// Like [`StorageDomain::collect_garbage`], but a finished deletion's
    /// space is handed to `release` once the volume is retired (an agent
    /// queues it and gives it back a step at a time, as a move's cleanup;
    /// see `release.rs`). A deletion counts as finished once retired.
    pub fn collect_garbage_with(
        &self,
        domains: &DomainSet,
        min_age: Duration,
        release: &mut dyn FnMut(Retired) -> Result<()>,
    ) -> Result<Collected> {
        let now = SystemTime::now();
        let mut done = Collected {
            temp_files: remove_temp_files(&self.path().join("dom_md"), min_age, now)?,
            ..Collected::default()
        };
        let images = self.images_dir();
        for entry in fs::read_dir(&images).map_err(|e| Error::io("list", &images, e))? {
            let p = entry.map_err(|e| Error::io("list", &images, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if is_being_removed(&p) {
                if is_older(&p, Clock::Changed, min_age, now) {
                    let r = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                    match r {
                        Ok(()) => done.removed_entries += 1,
                        Err(e) => tracing::warn!(path = %p.display(), "could not remove: {e}"),
                    }
                }
            } else if let Some(image) = Uuid::parse_str(name).ok().filter(|_| p.is_dir()) {
                done += self.collect_image(domains, image, min_age, now, release)?;
            }
        }
        if done != Collected::default() {
            tracing::info!(domain = %self.uuid(), ?done, "collected garbage");
        }
        Ok(done)
    }

    fn collect_image(
        &self,
        domains: &DomainSet,
        image: Uuid,
        min_age: Duration,
        now: SystemTime,
        release: &mut dyn FnMut(Retired) -> Result<()>,
    ) -> Result<Collected> {
        let dir = self.image_dir(image);
        let mut done = Collected {
            temp_files: remove_temp_files(&dir, min_age, now)?,
            ..Collected::default()
        };
        let mut doomed = BTreeSet::new();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            if let Some(id) = entry.file_name().to_str().and_then(doomed_volume) {
                doomed.insert(id);
            }
        }
        for id in doomed {
            let v = self.volume(image, id);
            if v.presence() == Presence::Whole {
                for p in [v.doomed_path(), v.doomed_meta_path()] {
                    if is_older(&p, Clock::Changed, min_age, now) {
                        match remove_if_there(&p) {
                            Ok(()) => done.removed_entries += 1,
                            Err(e) => tracing::warn!("{e}"),
                        }
                    }
                }
                continue;
            }
            let settled = v
                .all_paths()
                .iter()
                .filter(|p| p.exists())
                .all(|p| is_older(p, Clock::Changed, min_age, now));
            if !settled {
                continue;
            }
            match v.retire_in(domains).and_then(&mut *release) {
                Ok(()) => done.deletions_finished += 1,
                Err(e) => {
                    tracing::warn!(volume = %id, "could not finish an interrupted deletion: {e}")
                }
            }
        }
        Ok(done)
    }
}

/// Removes the `.<name>.tmp` files in `dir` not written for `min_age`;
/// returns how many.
fn remove_temp_files(dir: &Path, min_age: Duration, now: SystemTime) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    for entry in entries {
        let p = entry.map_err(|e| Error::io("list", dir, e))?.path();
        let temp = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_temp_name);
        if temp && p.is_file() && is_older(&p, Clock::Modified, min_age, now) {
            match remove_if_there(&p) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
    Ok(removed)
}
