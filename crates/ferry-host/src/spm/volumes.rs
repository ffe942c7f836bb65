//! The SPM's synchronous volume verbs: create, `createVolumeCrossSD`,
//! delete. Each is a thin, idempotent wrapper around ferry-storage: the
//! retry of a verb that succeeded answers as the first call did, the retry
//! of one that a crash interrupted anywhere inside finishes it, and a
//! request that cannot be done changes nothing. All blocking.
//!
//! A create that finds an ILLEGAL volume made by the same request (same
//! image, parent and format) removes it and makes it again: ILLEGAL means
//! its creation never finished, so no answer said it exists, no VM opened
//! it (VM start and `blockMigrate` open LEGAL volumes only) and it holds no
//! data but an empty qcow2 or raw file. Making it afresh is one path that
//! is always right, where completing it would have to trust a file
//! `qemu-img create` may have left half-written.

use std::collections::BTreeSet;

use ferry_api::agent::{CreateVolume, CreateVolumeCrossSd, Deleted, VolumeInfo};
use ferry_api::{Legality, VolumeFormat, VolumeRole};
use ferry_storage::{
    DomainSet, Presence, Retired, StorageDomain, Volume, VolumeMetadata, VolumeSpec,
};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A volume's metadata as the API reports it.
pub(crate) fn volume_info(v: &Volume) -> Result<VolumeInfo> {
    let md = v.metadata()?;
    Ok(VolumeInfo {
        domain: v.domain().uuid(),
        image: v.image(),
        volume: v.id(),
        format: md.format,
        allocation: md.allocation,
        capacity: md.capacity,
        legality: md.legality,
        role: md.role,
        parent: md.parent,
        parent_domain: md.parent_domain,
        path: v.path(),
        allocated: v.allocated_bytes()?,
    })
}

/// Every volume of an image on a domain.
pub(crate) fn image_volumes(domain: &StorageDomain, image: Uuid) -> Result<Vec<VolumeInfo>> {
    domain.volumes(image)?.iter().map(volume_info).collect()
}

/// Creates a volume, or finds it already made by an earlier call with the
/// same request.
pub(crate) fn create_volume(
    domains: &DomainSet,
    domain: &StorageDomain,
    req: &CreateVolume,
) -> Result<VolumeInfo> {
    let vol = domain.volume(req.image, req.volume);
    let found = existing(&vol, domains, |md| {
        let mut diffs = Vec::new();
        if md.format != req.format {
            diffs.push(format!("format {} (asked: {})", md.format, req.format));
        }
        if md.allocation != req.allocation {
            diffs.push(format!(
                "allocation {:?} (asked: {:?})",
                md.allocation, req.allocation
            ));
        }
        if let Some(size) = req.size.filter(|s| *s != md.capacity) {
            diffs.push(format!("size {} (asked: {size})", md.capacity));
        }
        if md.parent != req.parent || md.parent_domain.is_some() {
            diffs.push(format!(
                "parent {} (asked: {})",
                describe(md.parent),
                describe(req.parent)
            ));
        }
        diffs
    })?;
    if let Some(done) = found {
        return Ok(done);
    }
    if req.parent.is_none() && req.size.is_none() {
        return Err(Error::BadRequest(
            "a volume without a parent needs a size: give size in bytes".into(),
        ));
    }
    let parent = match (req.parent, req.parent_image) {
        (Some(p), image) => Some(domain.volume(image.unwrap_or(req.image), p)),
        (None, Some(_)) => {
            return Err(Error::BadRequest(
                "parent_image was given without parent; name the parent volume too".into(),
            ))
        }
        (None, None) => None,
    };
    if let Some(p) = &parent {
        if !p.exists() {
            return Err(not_found(p));
        }
    }
    let spec = VolumeSpec {
        image: req.image,
        id: Some(req.volume),
        format: req.format,
        allocation: req.allocation,
        capacity: req.size,
        parent,
        role: VolumeRole::Leaf,
        description: req.description.clone(),
    };
    let created = domain.create_volume(&spec)?;
    volume_info(&created)
}

/// The seed's `createVolumeCrossSD`: a qcow2 leaf on `dst` whose parent is
/// the given volume on `parent_domain`; ferry-storage records the parent's
/// domain (`PDOMAIN`) and names it by absolute path in the header.
pub(crate) fn create_volume_cross_sd(
    domains: &DomainSet,
    dst: &StorageDomain,
    parent_domain: &StorageDomain,
    req: &CreateVolumeCrossSd,
) -> Result<VolumeInfo> {
    if req.parent.image != req.image {
        return Err(Error::BadRequest(format!(
            "the parent {} is in image {}, but the new volume is in image {}; a cross-domain parent must belong to the same image",
            req.parent.volume, req.parent.image, req.image
        )));
    }
    if req.parent.domain == req.dst_domain {
        return Err(Error::BadRequest(format!(
            "the parent {} is on the destination domain {} itself; use POST /v1/volumes/create for a volume on the same domain",
            req.parent.volume, req.dst_domain
        )));
    }
    let vol = dst.volume(req.image, req.volume);
    let found = existing(&vol, domains, |md| {
        let mut diffs = Vec::new();
        if md.format != VolumeFormat::Qcow2 {
            diffs.push(format!("format {}", md.format));
        }
        if md.parent != Some(req.parent.volume) || md.parent_domain != Some(req.parent.domain) {
            diffs.push(format!(
                "parent {} on domain {} (asked: {} on domain {})",
                describe(md.parent),
                describe(md.parent_domain),
                req.parent.volume,
                req.parent.domain
            ));
        }
        diffs
    })?;
    if let Some(done) = found {
        return Ok(done);
    }
    let parent = parent_domain.volume(req.parent.image, req.parent.volume);
    if !parent.exists() {
        return Err(not_found(&parent));
    }
    let mut spec = VolumeSpec::child_of(&parent);
    spec.id = Some(req.volume);
    let created = dst.create_volume(&spec)?;
    volume_info(&created)
}

/// Deletes volumes of one image, children before parents. Idempotent:
/// volumes already gone are reported as missing, and a delete a crash
/// interrupted (a `_remove_me_` entry left) is finished. Checked first as
/// a whole, so a volume still used by a child outside the request, or a
/// template volume other disks use, refuses the request before anything is
/// deleted.
///
/// Each volume is retired (out of the domain, durably) and then handed to
/// `release`, which gives its space back at once or queues it (see
/// `crate::release`).
pub(crate) fn delete_volumes(
    domains: &DomainSet,
    domain: &StorageDomain,
    image: Uuid,
    ids: &[Uuid],
    mut release: impl FnMut(Retired) -> Result<()>,
) -> Result<Deleted> {
    let wanted: BTreeSet<Uuid> = ids.iter().copied().collect();
    let Requested {
        present,
        leftovers,
        missing,
    } = find_requested(domain, image, &wanted);
    for v in &present {
        check_deletable(v, image, &wanted)?;
    }
    for v in &leftovers {
        check_leftover(v)?;
    }
    // What an interrupted call left goes first, so a parent's role is
    // restored in the order the first call would have.
    let mut deleted = Vec::new();
    for v in leftovers {
        release(v.retire_in(domains)?)?;
        deleted.push(v.id());
    }
    deleted.extend(delete_children_first(domains, present, &mut release)?);
    Ok(Deleted {
        deleted,
        missing,
        releasing_in_background: false,
    })
}

/// The volumes a delete request names, by what is on disk.
struct Requested {
    /// Whole volumes, file and metadata.
    present: Vec<Volume>,
    /// Part of a volume, what an interrupted create or delete left.
    leftovers: Vec<Volume>,
    /// Nothing there: already deleted.
    missing: Vec<Uuid>,
}

fn find_requested(domain: &StorageDomain, image: Uuid, wanted: &BTreeSet<Uuid>) -> Requested {
    let mut found = Requested {
        present: Vec::new(),
        leftovers: Vec::new(),
        missing: Vec::new(),
    };
    for id in wanted {
        let v = domain.volume(image, *id);
        match v.presence() {
            Presence::Whole => found.present.push(v),
            Presence::Absent => found.missing.push(*id),
            Presence::BeingDeleted | Presence::MetadataOnly | Presence::FileOnly => {
                found.leftovers.push(v)
            }
        }
    }
    found
}

/// Refuses a volume with a child the request does not delete, and a
/// template's own volume that other disks still use.
fn check_deletable(v: &Volume, image: Uuid, wanted: &BTreeSet<Uuid>) -> Result<()> {
    for c in v.children()? {
        if !wanted.contains(&c.id()) {
            return Err(ferry_storage::Error::VolumeInUse {
                path: v.path(),
                users: format!(
                    "its child volume {}, which this request does not delete",
                    c.id()
                ),
            }
            .into());
        }
    }
    let md = v.metadata()?;
    if md.role == VolumeRole::Shared && md.image == image && v.link_count()? > 1 {
        return Err(ferry_storage::Error::VolumeInUse {
            path: v.path(),
            users: format!(
                "{} other disk(s) made from this template",
                v.link_count()? - 1
            ),
        }
        .into());
    }
    Ok(())
}

/// Deletes `present`, always a volume without children next; returns the
/// ids deleted, in order. A leaf made by `createVolumeCrossSD` gives its
/// parent on the source domain the leaf role back (ferry-storage does it
/// through `domains`), as the rollback of a move that never switched needs.
fn delete_children_first(
    domains: &DomainSet,
    mut present: Vec<Volume>,
    release: &mut impl FnMut(Retired) -> Result<()>,
) -> Result<Vec<Uuid>> {
    let mut deleted = Vec::new();
    while !present.is_empty() {
        let mut next = None;
        for (i, v) in present.iter().enumerate() {
            if v.children()?.is_empty() {
                next = Some(i);
                break;
            }
        }
        // Every volume has a child: only a loop in the metadata does that;
        // let ferry-storage's delete name the offender.
        let v = present.remove(next.unwrap_or(0));
        release(v.retire_in(domains)?)?;
        deleted.push(v.id());
    }
    Ok(deleted)
}

/// Deletes every volume of an image on a domain, including what an
/// interrupted create or delete left of one; `release` as for
/// [`delete_volumes`].
pub(crate) fn delete_image(
    domains: &DomainSet,
    domain: &StorageDomain,
    image: Uuid,
    release: impl FnMut(Retired) -> Result<()>,
) -> Result<Deleted> {
    let ids = domain.volume_ids_in_any_state(image)?;
    delete_volumes(domains, domain, image, &ids, release)
}

/// What a create finds where its volume goes: `Some` answer when the
/// volume is there, complete and as asked; `None` when there is nothing,
/// or nothing left once what an interrupted create or delete of it left
/// is removed; a conflict when something else is there.
fn existing(
    vol: &Volume,
    domains: &DomainSet,
    differences: impl FnOnce(&VolumeMetadata) -> Vec<String>,
) -> Result<Option<VolumeInfo>> {
    match vol.presence() {
        Presence::Absent => Ok(None),
        // Its deletion was decided; finishing it is what any retry does.
        Presence::BeingDeleted => {
            vol.delete_in(domains)?;
            Ok(None)
        }
        Presence::FileOnly => Err(Error::Conflict(format!(
            "volume {} has a file but no metadata, which Ferry never leaves; inspect it, delete it (POST /v1/volumes/delete) and create it again",
            vol.path().display()
        ))),
        Presence::Whole | Presence::MetadataOnly => {
            let md = vol.metadata()?;
            if md.legality == Legality::Legal && vol.presence() == Presence::MetadataOnly {
                return Err(Error::Conflict(format!(
                    "volume {} says it is LEGAL but its file is missing; inspect the domain by hand before deleting it",
                    vol.path().display()
                )));
            }
            let diffs = differences(&md);
            if !diffs.is_empty() && md.legality == Legality::Legal {
                return Err(Error::Conflict(format!(
                    "volume {} already exists with {}; choose a new volume UUID",
                    vol.path().display(),
                    diffs.join(", ")
                )));
            }
            if !diffs.is_empty() {
                return Err(Error::Conflict(format!(
                    "volume {} exists, {:?} (not finished), with {}: another request's; delete it (POST /v1/volumes/delete) or choose a new volume UUID",
                    vol.path().display(),
                    md.legality,
                    diffs.join(", ")
                )));
            }
            if md.legality == Legality::Legal {
                return volume_info(vol).map(Some);
            }
            tracing::info!(volume = %vol.id(), image = %vol.image(), "making again a volume whose creation a crash interrupted");
            vol.delete_in(domains)?;
            Ok(None)
        }
    }
}

/// A volume with only one of its two files, or ILLEGAL metadata without a
/// file, is what a crash during create, copy or delete leaves, and so is
/// anything with a `_remove_me_` entry; a LEGAL `.meta` alone with no sign
/// of a delete is not Ferry's and is left for a human.
fn check_leftover(v: &Volume) -> Result<()> {
    if v.presence() == Presence::MetadataOnly && v.metadata()?.legality == Legality::Legal {
        return Err(Error::Conflict(format!(
            "volume {} says it is LEGAL but its file is missing; inspect the domain by hand before deleting it",
            v.path().display()
        )));
    }
    Ok(())
}

fn not_found(v: &Volume) -> Error {
    ferry_storage::Error::VolumeNotFound {
        domain: v.domain().uuid(),
        image: v.image(),
        volume: v.id(),
        path: v.path(),
    }
    .into()
}

fn describe(id: Option<Uuid>) -> String {
    id.map_or_else(|| "none".to_string(), |u| u.to_string())
}
