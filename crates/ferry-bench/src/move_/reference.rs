//! The reference copies: the moved chain's files copied by `cp` and
//! `qemu-img convert`, the rates Ferry's copy is measured against.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ferry_api::engine::Disk;

use super::allocated;
use super::workdir::reference_dir;
use crate::common::{drop_caches, RefCopy};

/// One reference copy: the tool, its seconds, and the bytes it copied.
pub(super) type RefResult = (RefCopy, f64, u64);

/// Every reference tool in turn on the moved chain; `dropped` stays true
/// only if the page cache was dropped before each.
pub(super) fn copies(dir: &Path, disk: &Disk, dropped: &mut bool) -> Result<Vec<RefResult>> {
    let mut refs = Vec::new();
    for method in RefCopy::ALL {
        let (secs, bytes, d) = reference_copy(dir, disk, method)?;
        *dropped &= d;
        refs.push((method, secs, bytes));
    }
    Ok(refs)
}

/// One reference tool copying every volume file of the moved chain (where
/// the last move left it, VM stopped, so the files hold still) into a
/// scratch directory, page cache dropped first. Returns (seconds, bytes
/// the sources take on disk, whether the cache was dropped).
fn reference_copy(dir: &Path, disk: &Disk, method: RefCopy) -> Result<(f64, u64, bool)> {
    let out = reference_dir(dir);
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut bytes = 0;
    for v in &disk.volumes {
        bytes += allocated(&v.path)?;
    }
    let dropped = drop_caches();
    let t = Instant::now();
    for (i, v) in disk.volumes.iter().enumerate() {
        method.copy(&v.path, &out.join(format!("layer{i}")))?;
    }
    let secs = t.elapsed().as_secs_f64();
    fs::remove_dir_all(&out).with_context(|| format!("cannot remove {}", out.display()))?;
    Ok((secs, bytes, dropped))
}
