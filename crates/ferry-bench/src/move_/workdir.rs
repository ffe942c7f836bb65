//! The bench's working directory (`--dir`): what is in it, emptying it
//! safely before a run, and the guard that kills the bench's QEMUs and
//! removes its multi-GiB files however the run ends.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A file in the bench directory saying the bench made it, so clearing a
/// `--dir` never removes a directory someone else filled.
const MARKER: &str = ".ferry-bench-move";

/// Empties (or creates) the bench directory. A non-empty directory without
/// the bench's marker is refused rather than cleared. QEMUs left by a run
/// that was killed (its guard never ran) are killed first: they are
/// daemonized and would go on writing to deleted files.
pub(super) fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !dir.join(MARKER).exists() {
            bail!(
                "{} is not empty and was not made by ferry bench move; give an empty or new --dir",
                dir.display()
            );
        }
        kill_vms(dir);
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(
        dir.join(MARKER),
        "made by ferry bench move; removed when it ends\n",
    )
    .with_context(|| format!("cannot write in {}", dir.display()))?;
    Ok(())
}

/// Kills the agent's VMs and the mirror VM by the pid files in their run
/// directories, since a daemonized QEMU outlives this process.
fn kill_vms(dir: &Path) {
    for run_dir in [agent_run_dir(dir), mirror_run_root(dir)] {
        ferry_testkit::agent::kill_vms(&run_dir);
    }
}

/// However the bench ends: kills every QEMU it started and removes the
/// multi-GiB files. After a failure the logs (agent, QEMU, serial consoles,
/// engine.db) stay.
#[derive(Debug)]
pub(super) struct Cleanup {
    pub(super) dir: PathBuf,
    pub(super) keep_logs: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        kill_vms(&self.dir);
        if self.keep_logs {
            for big in [
                domains_dir(&self.dir),
                reference_dir(&self.dir),
                mirror_target(&self.dir),
            ] {
                let _ = fs::remove_dir_all(&big).or_else(|_| fs::remove_file(&big));
            }
            eprintln!(
                "ferry bench move: logs kept in {} (agent/, mirror/)",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The local agent's run directory.
pub(super) fn agent_run_dir(dir: &Path) -> PathBuf {
    dir.join("agent")
}

/// Where domain1 and domain2 are.
pub(super) fn domains_dir(dir: &Path) -> PathBuf {
    dir.join("domains")
}

/// Where the reference tools copy to.
pub(super) fn reference_dir(dir: &Path) -> PathBuf {
    dir.join("refcopy")
}

/// The mirror VM's run directory sits at `<root>/vms/<name>` like an
/// agent's VMs, so `kill_vms(<root>)` finds it.
pub(super) fn mirror_run_root(dir: &Path) -> PathBuf {
    dir.join("mirror")
}

/// The mirror's flat target file.
pub(super) fn mirror_target(dir: &Path) -> PathBuf {
    mirror_run_root(dir).join("target.raw")
}
