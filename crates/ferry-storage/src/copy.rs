//! Layer-exact copy of volumes to another domain, restartable and verified.
//!
//! A copy is created ILLEGAL, filled by [`copy_file_sparse`], checked by
//! [`verify`](crate::verify) (which does not trust the copy), and only then
//! marked LEGAL. A copy that a crash interrupted is still ILLEGAL and is
//! redone from the start by the next call; a copy that is already LEGAL is
//! not copied again.

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_api::{Allocation, Legality, Progress, VolumeFormat, VolumeRole};

use crate::chain::Chain;
use crate::domain::{DomainSet, StorageDomain};
use crate::error::{Error, Result};
use crate::sparse_copy::{copy_file_sparse, data_extents, CopyControl};
use crate::verify::{ensure_identical, verify_copy, VerifyReport};
use crate::volume::Volume;

/// What happened to one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// Its data was copied and verified.
    Copied,
    /// A LEGAL copy was already on the destination; nothing was done.
    AlreadyThere,
    /// A SHARED template volume already on the destination was hard-linked
    /// into the image instead of copied (the seed's "copy the base").
    LinkedShared,
}

/// The result of copying one volume.
#[derive(Debug, Clone)]
pub struct CopyOutcome {
    /// The copy on the destination.
    pub copy: Volume,
    /// Bytes of data moved.
    pub bytes_copied: u64,
    /// What was done.
    pub kind: CopyKind,
    /// The verification of a fresh copy.
    pub verify: Option<VerifyReport>,
}

/// Bytes of data (not holes) in a volume's file: what copying it moves.
pub fn data_bytes(volume: &Volume) -> Result<u64> {
    let path = volume.path();
    let file = fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("inspect", &path, e))?
        .len();
    let extents = data_extents(&file, len).map_err(|e| Error::io("map the data of", &path, e))?;
    Ok(extents.iter().map(|r| r.end - r.start).sum())
}

/// Copies one volume of a chain to `dest`, into the same image and with
/// the same UUID; its parent must already be there. See the module doc.
pub fn copy_volume(
    domains: &DomainSet,
    source: &Volume,
    dest: &StorageDomain,
    ctl: &CopyControl,
) -> Result<CopyOutcome> {
    let smd = source.ensure_legal()?;
    if smd.parent_domain.is_some() {
        return Err(Error::InvalidRequest(format!(
            "volume {} has its parent on another domain (a move is in flight); it cannot be copied until the move is finalized",
            source.path().display()
        )));
    }
    if dest.uuid() == source.domain().uuid() {
        return Err(Error::InvalidRequest(format!(
            "volume {} is already on storage domain {dest}; choose another destination",
            source.id()
        )));
    }
    // A template's volume used through a hard link: copy (or find) the
    // template's own volume on the destination, then link it in.
    if smd.role == VolumeRole::Shared && smd.image != source.image() {
        let template = source.domain().volume(smd.image, source.id());
        let there = dest.volume(smd.image, source.id());
        let (kind, bytes, verify) =
            if there.exists() && there.metadata()?.legality == Legality::Legal {
                (CopyKind::LinkedShared, 0, None)
            } else {
                let o = copy_volume(domains, &template, dest, ctl)?;
                (o.kind, o.bytes_copied, o.verify)
            };
        let copy = there.link_into(source.image())?;
        return Ok(CopyOutcome {
            copy,
            bytes_copied: bytes,
            kind,
            verify,
        });
    }

    let target = dest.volume(source.image(), source.id());
    if target.meta_path().exists() {
        if target.metadata()?.legality == Legality::Legal && target.path().exists() {
            return Ok(CopyOutcome {
                copy: target,
                bytes_copied: 0,
                kind: CopyKind::AlreadyThere,
                verify: None,
            });
        }
        tracing::info!(volume = %target.id(), "redoing an interrupted copy");
    }
    if let Some(parent) = smd.parent {
        let p = dest.volume(source.image(), parent);
        if !p.exists() || p.metadata()?.legality != Legality::Legal {
            return Err(Error::InvalidRequest(format!(
                "cannot copy volume {} before its parent {parent}: copy the chain base first",
                source.id()
            )));
        }
    }
    let needed = if smd.allocation == Allocation::Preallocated && smd.format == VolumeFormat::Raw {
        smd.capacity
    } else {
        data_bytes(source)?
    };
    let free = dest.capacity()?.free;
    if needed > free {
        return Err(Error::NoSpace {
            domain: dest.to_string(),
            needed,
            free,
        });
    }

    let dir = dest.image_dir(source.image());
    let created_dir = !dir.exists();
    let remove_partial = || {
        let _ = fs::remove_file(target.path());
        let _ = fs::remove_file(target.meta_path());
        if created_dir {
            let _ = fs::remove_dir(&dir);
        }
    };
    let result = (|| {
        fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let mut tmd = smd.clone();
        tmd.domain = dest.uuid();
        tmd.legality = Legality::Illegal;
        tmd.generation = 0;
        target.write_metadata(&tmd)?;
        let preallocate =
            smd.allocation == Allocation::Preallocated && smd.format == VolumeFormat::Raw;
        let bytes = copy_file_sparse(&source.path(), &target.path(), preallocate, ctl)?;
        let mut with_dest = domains.clone();
        with_dest.insert(dest.clone());
        with_dest.insert(source.domain().clone());
        let report = verify_copy(&with_dest, source, &target)?;
        ensure_identical(source, &target, report.clone())?;
        target.set_legality(Legality::Legal)?;
        Ok((bytes, report))
    })();
    match result {
        Ok((bytes, report)) => {
            tracing::info!(volume = %source.id(), bytes, to = %dest, "copied and verified volume");
            Ok(CopyOutcome {
                copy: target,
                bytes_copied: bytes,
                kind: CopyKind::Copied,
                verify: Some(report),
            })
        }
        Err(e) => {
            remove_partial();
            Err(e)
        }
    }
}

/// Copies every volume of `chain`, base first, to `dest`. Progress covers
/// the whole chain. On failure the volumes this call created are removed
/// again (copies that were already there stay), so the destination is as
/// it was.
pub fn copy_chain(
    domains: &DomainSet,
    chain: &Chain,
    dest: &StorageDomain,
    ctl: &CopyControl,
) -> Result<Vec<CopyOutcome>> {
    let sizes = chain
        .volumes()
        .map(data_bytes)
        .collect::<Result<Vec<u64>>>()?;
    let grand: u64 = sizes.iter().sum();
    let needed: u64 = chain
        .volumes()
        .zip(&sizes)
        .filter(|(v, _)| !dest.volume(v.image(), v.id()).exists())
        .map(|(_, s)| *s)
        .sum();
    let free = dest.capacity()?.free;
    if needed > free {
        return Err(Error::NoSpace {
            domain: dest.to_string(),
            needed,
            free,
        });
    }
    let finished = AtomicU64::new(0);
    let mut outcomes: Vec<CopyOutcome> = Vec::new();
    for (link, size) in chain.links().iter().zip(&sizes) {
        let base = finished.load(Ordering::Relaxed);
        let report = |p: Progress| {
            if let Some(r) = ctl.progress {
                r(Progress {
                    done: base + p.done.min(*size),
                    total: grand,
                });
            }
        };
        let sub = CopyControl {
            progress: Some(&report),
            ..*ctl
        };
        match copy_volume(domains, &link.volume, dest, &sub) {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                for o in outcomes
                    .iter()
                    .rev()
                    .filter(|o| o.kind != CopyKind::AlreadyThere)
                {
                    let _ = o.copy.delete();
                }
                return Err(e);
            }
        }
        finished.fetch_add(*size, Ordering::Relaxed);
        report(Progress {
            done: *size,
            total: *size,
        });
    }
    Ok(outcomes)
}
