//! The SPM's synchronous volume verbs: create, `createVolumeCrossSD`,
//! delete. Each is a thin, idempotent wrapper around ferry-storage: the
//! retry of a verb that succeeded answers as the first call did, and a
//! request that cannot be done changes nothing. All blocking.

use std::collections::BTreeSet;

use ferry_api::agent::{CreateVolume, CreateVolumeCrossSd, Deleted, VolumeInfo};
use ferry_api::{Legality, VolumeFormat, VolumeRole};
use ferry_storage::{DomainSet, StorageDomain, Volume, VolumeMetadata, VolumeSpec};
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
pub(crate) fn create_volume(domain: &StorageDomain, req: &CreateVolume) -> Result<VolumeInfo> {
    let vol = domain.volume(req.image, req.volume);
    if vol.path().exists() || vol.meta_path().exists() {
        return existing_matches(&vol, |md| {
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
        });
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
    if vol.path().exists() || vol.meta_path().exists() {
        return existing_matches(&vol, |md| {
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
        });
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
/// volumes already gone are reported as missing. Checked first as a
/// whole, so a volume still used by a child outside the request, or a
/// template volume other disks use, refuses the request before anything is
/// deleted.
pub(crate) fn delete_volumes(
    domains: &DomainSet,
    domain: &StorageDomain,
    image: Uuid,
    ids: &[Uuid],
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
    let mut deleted = delete_children_first(domains, present)?;
    for v in leftovers {
        remove_leftover(&v)?;
        deleted.push(v.id());
    }
    Ok(Deleted { deleted, missing })
}

/// The volumes a delete request names, by what is on disk.
struct Requested {
    /// Whole volumes, file and metadata.
    present: Vec<Volume>,
    /// Half a volume, what an interrupted create or delete left.
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
        if v.exists() {
            found.present.push(v);
        } else if v.path().exists() || v.meta_path().exists() {
            found.leftovers.push(v);
        } else {
            found.missing.push(*id);
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
/// ids deleted, in order.
fn delete_children_first(domains: &DomainSet, mut present: Vec<Volume>) -> Result<Vec<Uuid>> {
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
        let md = v.metadata()?;
        v.delete()?;
        deleted.push(v.id());
        restore_cross_domain_parent(domains, &md)?;
    }
    Ok(deleted)
}

/// A leaf made by `createVolumeCrossSD` turned its parent on the source
/// domain INTERNAL; deleting it (the rollback of a move that never
/// switched) makes that parent the leaf again, as a same-domain delete
/// does in ferry-storage.
fn restore_cross_domain_parent(domains: &DomainSet, md: &VolumeMetadata) -> Result<()> {
    let (Some(parent), Some(pd)) = (md.parent, md.parent_domain) else {
        return Ok(());
    };
    let Some(source) = domains.get(pd) else {
        return Ok(());
    };
    let p = source.volume(md.image, parent);
    if p.exists() && p.metadata()?.role == VolumeRole::Internal && p.children()?.is_empty() {
        p.update_metadata(|m| m.role = VolumeRole::Leaf)?;
    }
    Ok(())
}

/// Deletes every volume of an image on a domain.
pub(crate) fn delete_image(
    domains: &DomainSet,
    domain: &StorageDomain,
    image: Uuid,
) -> Result<Deleted> {
    let ids: Vec<Uuid> = domain.volumes(image)?.iter().map(Volume::id).collect();
    delete_volumes(domains, domain, image, &ids)
}

/// Answers a create whose volume exists: success when it is complete and
/// as asked (`differences` lists how it is not), a conflict otherwise.
fn existing_matches(
    vol: &Volume,
    differences: impl FnOnce(&VolumeMetadata) -> Vec<String>,
) -> Result<VolumeInfo> {
    if !vol.exists() {
        return Err(Error::Conflict(format!(
            "volume {} exists only in part (a crash interrupted its creation or copy); delete it (POST /v1/volumes/delete) and create it again",
            vol.path().display()
        )));
    }
    let md = vol.metadata()?;
    if md.legality != Legality::Legal {
        return Err(Error::Conflict(format!(
            "volume {} exists but is {:?}: it is being created or copied, or a crash interrupted that; delete it and create it again",
            vol.path().display(),
            md.legality
        )));
    }
    let diffs = differences(&md);
    if !diffs.is_empty() {
        return Err(Error::Conflict(format!(
            "volume {} already exists with {}; choose a new volume UUID",
            vol.path().display(),
            diffs.join(", ")
        )));
    }
    volume_info(vol)
}

/// A volume with only one of its two files, or ILLEGAL metadata without a
/// file, is what a crash during create or copy leaves; anything else
/// incomplete is not Ferry's and is left for a human.
fn check_leftover(v: &Volume) -> Result<()> {
    if v.meta_path().exists() {
        let md = v.metadata()?;
        if md.legality == Legality::Legal {
            return Err(Error::Conflict(format!(
                "volume {} says it is LEGAL but its file is missing; inspect the domain by hand before deleting it",
                v.path().display()
            )));
        }
    }
    Ok(())
}

fn remove_leftover(v: &Volume) -> Result<()> {
    for p in [v.path(), v.meta_path()] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", p, e)),
        }
    }
    let dir = v.domain().image_dir(v.image());
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(&dir);
    }
    tracing::info!(volume = %v.id(), image = %v.image(), "removed an incomplete volume");
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
