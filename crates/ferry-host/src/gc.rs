//! The agent's garbage collection: what a crash left behind goes, and
//! nothing that may still be in use does.
//!
//! - **At start**, before the agent writes anything: every temporary file
//!   (`.tmp-*`) of its own atomic writes in its run directory. The run
//!   directory's lock is held, so no other writer of those files exists.
//! - **When the SPM role is taken and after every task ends**: the run
//!   directory's temporary files not written for [`GRACE`], and, while this
//!   agent is SPM, [`StorageDomain::collect_garbage_with`] on every
//!   connected domain with the same grace: deletions a crash interrupted
//!   are finished (their volumes retired, their space then given back in
//!   the background by `release`, a step at a time) and stale
//!   `.<name>.tmp` files removed (what it touches and
//!   why that is safe is in ferry-storage's `garbage` module). Only the
//!   SPM changes shared storage, so an agent that is not SPM leaves the
//!   domains alone; right after a start no agent is SPM, so a restarted
//!   SPM collects when the engine gives it the role back.
//!
//! A collection runs in the background, one at a time, holding the lock
//! of the synchronous metadata verbs so it never interleaves with a create
//! or a delete. It never removes a volume that is whole (LEGAL or
//! ILLEGAL), so no volume a QEMU may write is touched.
//!
//! [`StorageDomain::collect_garbage_with`]: ferry_storage::StorageDomain::collect_garbage_with

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::fsutil::{blocking, TEMP_PREFIX};
use crate::state::AgentState;

/// How long a file must have been left alone before it is collected: a
/// writer renames its temporary file, and a delete unlinks its
/// `_remove_me_` files, within moments; ten minutes also covers clocks of
/// hosts sharing the storage that disagree by a few minutes.
pub(crate) const GRACE: Duration = Duration::from_secs(10 * 60);

/// The subdirectories of the run directory the agent writes atomically.
const RUN_DIR_PARTS: [&str; 3] = ["", "tasks", "vms"];

/// Whether a collection is running, so triggers that come meanwhile do not
/// start a second one (what they would collect must be [`GRACE`] old, so
/// the running one or the next one gets it).
#[derive(Debug, Default)]
pub(crate) struct Collector {
    running: AtomicBool,
}

/// Starts a collection in the background unless one is running.
pub(crate) fn spawn(agent: &Arc<AgentState>) {
    if agent.gc().running.swap(true, Ordering::SeqCst) {
        return;
    }
    let agent = agent.clone();
    tokio::spawn(async move {
        collect(&agent).await;
        agent.gc().running.store(false, Ordering::SeqCst);
    });
}

async fn collect(agent: &Arc<AgentState>) {
    let run_dir = agent.run_dir().to_path_buf();
    if let Err(e) = blocking(move || clean_run_dir(&run_dir, GRACE)).await {
        tracing::warn!(
            "could not collect the run directory's garbage: {}",
            e.full_text()
        );
    }
    if agent.spm().domain().is_none() {
        return;
    }
    let _serial = agent.storage_lock().await;
    let a = agent.clone();
    // A finished deletion's space comes back a step at a time, as a
    // move's cleanup's does: gigabytes unlinked at once stall the guests.
    let retired = blocking(move || {
        let domains = a.domains().set();
        let mut retired = Vec::new();
        for domain in domains.iter() {
            // The role may be given up meanwhile; stop where it was.
            if a.spm().domain().is_none() {
                break;
            }
            let mut queue = |r| {
                retired.push(r);
                Ok(())
            };
            if let Err(e) = domain.collect_garbage_with(&domains, GRACE, &mut queue) {
                tracing::warn!(domain = %domain, "could not collect garbage: {}", Error::from(e).full_text());
            }
        }
        Ok(retired)
    })
    .await
    .unwrap_or_default();
    crate::release::spawn(agent, retired);
}

/// Removes the temporary files of the agent's atomic writes in its run
/// directory that were not written for `min_age` (all of them at start,
/// with zero); returns how many. Blocking.
pub(crate) fn clean_run_dir(run_dir: &Path, min_age: Duration) -> Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for part in RUN_DIR_PARTS {
        let dir = run_dir.join(part);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let temp = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TEMP_PREFIX));
            let old = entry
                .metadata()
                .ok()
                .filter(std::fs::Metadata::is_file)
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= min_age);
            if temp && old {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", &path, e)),
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, run_dir = %run_dir.display(), "removed temporary files a crash left");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_of_the_run_directory_go_when_old_enough() {
        let run = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(run.path().join("tasks")).expect("mkdir");
        let left = run.path().join("tasks").join(".tmp-a1b2c3");
        let kept = run
            .path()
            .join("tasks")
            .join("0f8fad5b-d9cb-469f-a165-70867728950e.json");
        let other = run.path().join(".hidden");
        for p in [&left, &kept, &other] {
            std::fs::write(p, b"{}").expect("write");
        }
        assert_eq!(
            clean_run_dir(run.path(), GRACE).expect("clean"),
            0,
            "too young"
        );
        assert_eq!(clean_run_dir(run.path(), Duration::ZERO).expect("clean"), 1);
        assert!(!left.exists() && kept.exists() && other.exists());
    }
}
