//! Layer-exact copy of volumes to another domain, restartable and verified.
//!
//! A copy is created ILLEGAL, filled by [`copy_file_data`], checked by
//! [`verify`](crate::verify) (which does not trust the copy; a direct copy,
//! which read its content back as it wrote it, has its allocation checked
//! there), and only then marked LEGAL. A copy that a crash interrupted is still ILLEGAL and is
//! redone from the start by the next call; a copy that is already LEGAL is
//! not copied again.

use std::fs;

use ferry_api::{Allocation, Legality, Progress, VolumeFormat, VolumeRole};
use uuid::Uuid;

use crate::chain::Chain;
use crate::domain::{DomainSet, StorageDomain};
use crate::error::{Error, Result};
use crate::metadata::VolumeMetadata;
use crate::sparse_copy::{copy_file_data, data_extents, CopyControl};
use crate::verify::{ensure_identical, verify_copy, verify_read_back_copy, VerifyReport};
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
    match begin_copy(domains, source, dest, ctl, None)? {
        Begun::Done(outcome) => Ok(outcome),
        Begun::Filled(filled) => finish_copy(domains, filled),
    }
}

/// How far [`begin_copy`] took a volume.
enum Begun {
    /// Nothing is left to do: the copy was there already or is linked.
    Done(CopyOutcome),
    /// Its data is written, not yet synced, verified or LEGAL: hand it to
    /// [`finish_copy`].
    Filled(Filled),
}

/// A copy whose data is written but which is still ILLEGAL.
struct Filled {
    source: Volume,
    target: Volume,
    file: fs::File,
    bytes: u64,
    /// Whether the copy read its content back as it wrote it, so that its
    /// verification has only allocation left to check.
    read_back: bool,
    /// The source file's ranges that were copied.
    extents: Vec<std::ops::Range<u64>>,
    /// Whether this copy made the image's directory on the destination,
    /// so that a failure removes it again.
    created_dir: bool,
}

impl Filled {
    /// Removes the unfinished copy (and the directory it made).
    fn discard(self) {
        drop(self.file);
        remove_unfinished(&self.target, self.created_dir);
    }
}

/// Everything of a volume's copy up to its data being written: the checks,
/// the ILLEGAL `.meta`, the data. `parent_in_flight` names a parent that
/// the same chain copy has filled and is verifying now: its copy counts as
/// there, since a failure of its verification fails the chain copy and
/// removes this copy too.
fn begin_copy(
    domains: &DomainSet,
    source: &Volume,
    dest: &StorageDomain,
    ctl: &CopyControl,
    parent_in_flight: Option<Uuid>,
) -> Result<Begun> {
    let smd = source.ensure_legal()?;
    refuse_unmovable(source, &smd, dest)?;
    // A template's volume used through a hard link: copy (or find) the
    // template's own volume on the destination, then link it in.
    if is_template_link(source, &smd) {
        return copy_template_and_link(domains, source, &smd, dest, ctl).map(Begun::Done);
    }

    let target = dest.volume(source.image(), source.id());
    if is_already_copied(&target)? {
        return Ok(Begun::Done(CopyOutcome {
            copy: target,
            bytes_copied: 0,
            kind: CopyKind::AlreadyThere,
            verify: None,
        }));
    }
    if smd.parent.is_none() || smd.parent != parent_in_flight {
        ensure_parent_copied(source, &smd, dest)?;
    }
    ensure_room(source, &smd, dest)?;
    fill(source, &smd, target, ctl).map(Begun::Filled)
}

/// A SHARED volume of a template, hard-linked into this image.
fn is_template_link(source: &Volume, smd: &VolumeMetadata) -> bool {
    smd.role == VolumeRole::Shared && smd.image != source.image()
}

/// Syncs, verifies (without trusting the copy) and marks LEGAL a filled
/// copy, or removes it.
fn finish_copy(domains: &DomainSet, filled: Filled) -> Result<CopyOutcome> {
    let checked = filled
        .file
        .sync_all()
        .map_err(|e| Error::io("flush", filled.target.path(), e))
        .and_then(|()| {
            let report = if filled.read_back {
                verify_read_back_copy(&filled.source, &filled.target, &filled.extents)?
            } else {
                let mut with_dest = domains.clone();
                with_dest.insert(filled.target.domain().clone());
                with_dest.insert(filled.source.domain().clone());
                verify_copy(&with_dest, &filled.source, &filled.target)?
            };
            ensure_identical(&filled.source, &filled.target, report.clone())?;
            filled.target.set_legality(Legality::Legal)?;
            Ok(report)
        });
    match checked {
        Ok(report) => {
            tracing::info!(volume = %filled.source.id(), bytes = filled.bytes, to = %filled.target.domain(), read_back = report.read_back, "copied and verified volume");
            Ok(CopyOutcome {
                copy: filled.target,
                bytes_copied: filled.bytes,
                kind: CopyKind::Copied,
                verify: Some(report),
            })
        }
        Err(e) => {
            filled.discard();
            Err(e)
        }
    }
}

/// Refuses a volume whose parent is still on another domain (finalize the
/// move first) and a destination the volume is already on.
fn refuse_unmovable(source: &Volume, smd: &VolumeMetadata, dest: &StorageDomain) -> Result<()> {
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
    Ok(())
}

/// Copies (or finds) the template's own volume on `dest`, then hard-links
/// it into the source's image there, as the source is linked on its domain.
fn copy_template_and_link(
    domains: &DomainSet,
    source: &Volume,
    smd: &VolumeMetadata,
    dest: &StorageDomain,
    ctl: &CopyControl,
) -> Result<CopyOutcome> {
    let template = source.domain().volume(smd.image, source.id());
    let there = dest.volume(smd.image, source.id());
    let (kind, bytes, verify) = if there.exists() && there.metadata()?.legality == Legality::Legal {
        (CopyKind::LinkedShared, 0, None)
    } else {
        let o = copy_volume(domains, &template, dest, ctl)?;
        (o.kind, o.bytes_copied, o.verify)
    };
    let copy = there.link_into(source.image())?;
    Ok(CopyOutcome {
        copy,
        bytes_copied: bytes,
        kind,
        verify,
    })
}

/// Whether a LEGAL copy is already at `target`. An ILLEGAL one is what an
/// interrupted copy left, and is redone.
fn is_already_copied(target: &Volume) -> Result<bool> {
    if !target.meta_path().exists() {
        return Ok(false);
    }
    if target.metadata()?.legality == Legality::Legal && target.path().exists() {
        return Ok(true);
    }
    tracing::info!(volume = %target.id(), "redoing an interrupted copy");
    Ok(false)
}

/// Refuses to copy a layer before its parent's LEGAL copy is on `dest`.
fn ensure_parent_copied(source: &Volume, smd: &VolumeMetadata, dest: &StorageDomain) -> Result<()> {
    if let Some(parent) = smd.parent {
        let p = dest.volume(source.image(), parent);
        if !p.exists() || p.metadata()?.legality != Legality::Legal {
            return Err(Error::InvalidRequest(format!(
                "cannot copy volume {} before its parent {parent}: copy the chain base first",
                source.id()
            )));
        }
    }
    Ok(())
}

/// Refuses, before anything is written, a copy that `dest` has no room for.
fn ensure_room(source: &Volume, smd: &VolumeMetadata, dest: &StorageDomain) -> Result<()> {
    let needed = if is_preallocated_raw(smd) {
        smd.capacity
    } else {
        data_bytes(source)?
    };
    ensure_free(dest, needed)
}

/// A preallocated raw volume takes its whole size, holes or not, and its
/// copy is preallocated too.
fn is_preallocated_raw(md: &VolumeMetadata) -> bool {
    md.allocation == Allocation::Preallocated && md.format == VolumeFormat::Raw
}

/// Writes `target`'s ILLEGAL `.meta` and its data; on failure removes
/// whatever of it was made (and an image directory this call created).
fn fill(
    source: &Volume,
    smd: &VolumeMetadata,
    target: Volume,
    ctl: &CopyControl,
) -> Result<Filled> {
    let dest = target.domain();
    let dir = dest.image_dir(target.image());
    let created_dir = !dir.exists();
    let written = fs::create_dir_all(&dir)
        .map_err(|e| Error::io("create", &dir, e))
        .and_then(|()| {
            let mut tmd = smd.clone();
            tmd.domain = dest.uuid();
            tmd.legality = Legality::Illegal;
            tmd.generation = 0;
            target.write_metadata(&tmd)
        })
        .and_then(|()| {
            copy_file_data(
                &source.path(),
                &target.path(),
                is_preallocated_raw(smd),
                ctl,
            )
        });
    match written {
        Ok(copied) => Ok(Filled {
            source: source.clone(),
            target,
            file: copied.file,
            bytes: copied.bytes,
            read_back: copied.read_back,
            extents: copied.extents,
            created_dir,
        }),
        Err(e) => {
            remove_unfinished(&target, created_dir);
            Err(e)
        }
    }
}

/// Removes an ILLEGAL copy's files, and its image directory if the copy
/// made it (and nothing else is in it now).
fn remove_unfinished(target: &Volume, created_dir: bool) {
    let _ = fs::remove_file(target.path());
    let _ = fs::remove_file(target.meta_path());
    if created_dir {
        let _ = fs::remove_dir(target.domain().image_dir(target.image()));
    }
}

/// Copies every volume of `chain`, base first, to `dest`. Progress covers
/// the whole chain. On failure the volumes this call created are removed
/// again (copies that were already there stay), so the destination is as
/// it was.
///
/// A layer is synced and verified on a second thread while the next one
/// is copied: the disk keeps writing instead of waiting for a flush, and
/// the verification's reads (mostly from the page cache) overlap the
/// copy's. A layer still becomes LEGAL only once verified, its parent
/// first; a failed verification fails the chain copy and removes every
/// copy it made, the one filled over it included.
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
    ensure_room_for_chain(chain, &sizes, dest)?;
    let grand: u64 = sizes.iter().sum();
    let dir = dest.image_dir(chain.leaf().volume.image());
    let dir_was_there = dir.exists();
    let mut outcomes: Vec<CopyOutcome> = Vec::new();
    let copied = std::thread::scope(|s| -> Result<()> {
        // The previous layer's sync and verification, running.
        let mut checking: Option<(Uuid, Checking<'_>)> = None;
        let mut base = 0;
        for (link, size) in chain.links().iter().zip(&sizes) {
            if is_template_link(&link.volume, &link.metadata) {
                // Linking needs the layers below verified first.
                if let Some((_, c)) = checking.take() {
                    outcomes.push(joined(c)?);
                }
            }
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
            let in_flight = checking.as_ref().map(|(id, _)| *id);
            let begun = begin_copy(domains, &link.volume, dest, &sub, in_flight);
            if let Some((_, c)) = checking.take() {
                match joined(c) {
                    Ok(o) => outcomes.push(o),
                    Err(e) => {
                        if let Ok(Begun::Filled(f)) = begun {
                            f.discard();
                        } else if let Ok(Begun::Done(o)) = begun {
                            outcomes.push(o);
                        }
                        return Err(e);
                    }
                }
            }
            match begun? {
                Begun::Done(o) => outcomes.push(o),
                Begun::Filled(f) => {
                    let id = link.volume.id();
                    checking = Some((id, s.spawn(move || finish_copy(domains, f))));
                }
            }
            report(Progress {
                done: *size,
                total: *size,
            });
            base += size;
        }
        if let Some((_, c)) = checking {
            outcomes.push(joined(c)?);
        }
        Ok(())
    });
    if let Err(e) = copied {
        remove_copies_made(&outcomes);
        // A layer's own clean-up cannot remove the directory while the
        // layer filled over it is still in it.
        if !dir_was_there {
            let _ = fs::remove_dir(&dir);
        }
        return Err(e);
    }
    Ok(outcomes)
}

/// A layer's [`finish_copy`] on its own thread.
type Checking<'scope> = std::thread::ScopedJoinHandle<'scope, Result<CopyOutcome>>;

/// The outcome of a layer's sync and verification.
fn joined(checking: Checking<'_>) -> Result<CopyOutcome> {
    checking.join().unwrap_or_else(|_| {
        Err(Error::InvalidRequest(
            "a copy's verification panicked".into(),
        ))
    })
}

/// Refuses, before anything is written, a chain whose layers not yet on
/// `dest` (`sizes` in chain order) do not fit there.
fn ensure_room_for_chain(chain: &Chain, sizes: &[u64], dest: &StorageDomain) -> Result<()> {
    let needed: u64 = chain
        .volumes()
        .zip(sizes)
        .filter(|(v, _)| !dest.volume(v.image(), v.id()).exists())
        .map(|(_, s)| *s)
        .sum();
    ensure_free(dest, needed)
}

/// Removes, top first, the copies a failed chain copy made; copies that
/// were already there stay.
fn remove_copies_made(outcomes: &[CopyOutcome]) {
    for o in outcomes
        .iter()
        .rev()
        .filter(|o| o.kind != CopyKind::AlreadyThere)
    {
        let _ = o.copy.delete();
    }
}

/// Refuses a copy of `needed` bytes that `dest` has no room for, before
/// anything is written there.
fn ensure_free(dest: &StorageDomain, needed: u64) -> Result<()> {
    let free = dest.capacity()?.free;
    if needed > free {
        return Err(Error::NoSpace {
            domain: dest.to_string(),
            needed,
            free,
        });
    }
    Ok(())
}
