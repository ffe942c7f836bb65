//! Creating a volume: what to create ([`VolumeSpec`]), how the new volume
//! will name its parent, and [`StorageDomain::create_volume`], which makes
//! it all or nothing. Creation is above both domains and volumes: it needs
//! the domain to put the files in and the parent volume to build on.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_api::{Allocation, Legality, VolumeFormat, VolumeRole};
use uuid::Uuid;

use crate::domain::StorageDomain;
use crate::error::{Error, Result};
use crate::metadata::VolumeMetadata;
use crate::qemu_img;
use crate::test_hooks::{crash_point, CrashPoint};
use crate::volume::Volume;

/// What to create.
#[derive(Debug, Clone)]
pub struct VolumeSpec {
    /// The image (disk) the volume belongs to.
    pub image: Uuid,
    /// The volume's UUID; a new one when `None`.
    pub id: Option<Uuid>,
    /// Raw or qcow2.
    pub format: VolumeFormat,
    /// Sparse or preallocated.
    pub allocation: Allocation,
    /// Virtual size in bytes; for a child, `None` takes the parent's.
    pub capacity: Option<u64>,
    /// The parent (qcow2 only): in the same image on this domain, a SHARED
    /// template volume on this domain (hard-linked in), or a volume of the
    /// same image on another domain (a cross-domain leaf during a move).
    pub parent: Option<Volume>,
    /// LEAF for a disk's volumes, SHARED for a template's.
    pub role: VolumeRole,
    /// Free text, at most 210 characters.
    pub description: String,
}

impl VolumeSpec {
    /// A base volume of `image` with the given format and size.
    pub fn base(image: Uuid, format: VolumeFormat, capacity: u64) -> Self {
        VolumeSpec {
            image,
            id: None,
            format,
            allocation: Allocation::Sparse,
            capacity: Some(capacity),
            parent: None,
            role: VolumeRole::Leaf,
            description: String::new(),
        }
    }

    /// A qcow2 volume on top of `parent`, in `parent`'s image.
    pub fn child_of(parent: &Volume) -> Self {
        VolumeSpec {
            image: parent.image(),
            id: None,
            format: VolumeFormat::Qcow2,
            allocation: Allocation::Sparse,
            capacity: None,
            parent: Some(parent.clone()),
            role: VolumeRole::Leaf,
            description: String::new(),
        }
    }
}

impl StorageDomain {
    /// Creates a volume, all or nothing: the `.meta` is written ILLEGAL
    /// first, then the file; on any failure both are removed (and an image
    /// directory this call made). The volume turns LEGAL last.
    pub fn create_volume(&self, spec: &VolumeSpec) -> Result<Volume> {
        let vol = self.volume(spec.image, spec.id.unwrap_or_else(Uuid::new_v4));
        if vol.path().exists() || vol.meta_path().exists() {
            return Err(Error::VolumeExists { path: vol.path() });
        }
        let plan = plan_parent(self, spec)?;
        let capacity = new_capacity(spec, plan.as_ref())?;
        let md = new_metadata(self, spec, capacity, plan.as_ref());
        // Render first: a description that does not fit fails before any file exists.
        md.render(&vol.meta_path())?;

        let undo = Undo::note(&vol, plan.as_ref());
        if let Err(e) = write_volume(&vol, spec, md, plan.as_ref(), undo.template_to_link()) {
            undo.run();
            return Err(e);
        }
        tracing::info!(volume = %vol.id(), image = %spec.image, domain = %self.uuid(), format = %spec.format, "created volume");
        Ok(vol)
    }
}

/// The new volume's virtual size: the requested one, or the parent's; never
/// smaller than the parent's, never 0.
fn new_capacity(spec: &VolumeSpec, plan: Option<&ParentPlan>) -> Result<u64> {
    let capacity = match (spec.capacity, plan) {
        (Some(c), Some(p)) if c < p.capacity => {
            return Err(Error::InvalidRequest(format!(
                "a child volume cannot be smaller than its parent ({c} < {} bytes)",
                p.capacity
            )))
        }
        (Some(c), _) => c,
        (None, Some(p)) => p.capacity,
        (None, None) => {
            return Err(Error::InvalidRequest(
                "a volume without a parent needs a capacity".to_string(),
            ))
        }
    };
    if capacity == 0 {
        return Err(Error::InvalidRequest(
            "a volume's capacity must be more than 0 bytes".into(),
        ));
    }
    Ok(capacity)
}

/// The new volume's `.meta`, still ILLEGAL.
fn new_metadata(
    domain: &StorageDomain,
    spec: &VolumeSpec,
    capacity: u64,
    plan: Option<&ParentPlan>,
) -> VolumeMetadata {
    let mut md = VolumeMetadata::new(
        domain.uuid(),
        spec.image,
        spec.format,
        spec.allocation,
        capacity,
        plan.map(|p| p.parent.id()),
        spec.role,
        &spec.description,
    );
    md.parent_domain = plan.and_then(|p| p.parent_domain);
    md
}

/// Writes the new volume in the order that keeps a crash harmless: the
/// `.meta` ILLEGAL first, then the file, then the parent turns INTERNAL,
/// and the volume turns LEGAL last.
fn write_volume(
    vol: &Volume,
    spec: &VolumeSpec,
    mut md: VolumeMetadata,
    plan: Option<&ParentPlan>,
    template_to_link: Option<&Volume>,
) -> Result<()> {
    let dir = vol.domain().image_dir(spec.image);
    fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    if let Some(template) = template_to_link {
        template.link_into(spec.image)?;
    }
    vol.write_metadata(&md)?;
    let backing = plan.map(|p| (p.header_name.as_str(), p.format));
    qemu_img::create(
        &vol.path(),
        spec.format,
        md.capacity,
        backing,
        spec.allocation == Allocation::Preallocated,
    )?;
    if let Some(p) = plan.filter(|p| p.make_internal) {
        p.parent
            .update_metadata(|m| m.role = VolumeRole::Internal)?;
    }
    if md.parent_domain.is_some() {
        crash_point(CrashPoint::CreateCrossSd);
    }
    md.legality = Legality::Legal;
    md.bump_generation();
    vol.write_metadata(&md)
}

/// What a failed creation takes back, noted before anything is written so
/// that only what this call made is removed.
struct Undo<'a> {
    volume: &'a Volume,
    /// A template linked in by this call is unlinked again on failure:
    /// `(template, its link in the image)`.
    new_link: Option<(&'a Volume, &'a Volume)>,
    /// The image directory, when this call creates it.
    new_dir: Option<PathBuf>,
    /// The parent this call turns INTERNAL, turned LEAF again.
    demoted_parent: Option<&'a Volume>,
}

impl<'a> Undo<'a> {
    fn note(volume: &'a Volume, plan: Option<&'a ParentPlan>) -> Self {
        let dir = volume.domain().image_dir(volume.image());
        Undo {
            volume,
            new_link: plan
                .and_then(|p| p.link_from.as_ref().map(|t| (t, &p.parent)))
                .filter(|(_, linked)| !linked.exists()),
            new_dir: (!dir.exists()).then_some(dir),
            demoted_parent: plan.filter(|p| p.make_internal).map(|p| &p.parent),
        }
    }

    fn template_to_link(&self) -> Option<&'a Volume> {
        self.new_link.map(|(template, _)| template)
    }

    fn run(self) {
        let _ = fs::remove_file(self.volume.path());
        let _ = fs::remove_file(self.volume.meta_path());
        if let Some((_, linked)) = self.new_link {
            let _ = fs::remove_file(linked.path());
            let _ = fs::remove_file(linked.meta_path());
        }
        if let Some(dir) = &self.new_dir {
            let _ = fs::remove_dir(dir);
        }
        if let Some(parent) = self.demoted_parent {
            let _ = parent.update_metadata(|m| m.role = VolumeRole::Leaf);
        }
    }
}

/// How a new volume will refer to its parent.
struct ParentPlan {
    parent: Volume,
    format: VolumeFormat,
    capacity: u64,
    header_name: String,
    parent_domain: Option<Uuid>,
    make_internal: bool,
    /// The template volume to hard-link into the image as `parent`, once
    /// the request has been validated.
    link_from: Option<Volume>,
}

fn plan_parent(domain: &StorageDomain, spec: &VolumeSpec) -> Result<Option<ParentPlan>> {
    let Some(parent) = &spec.parent else {
        return Ok(None);
    };
    if spec.format == VolumeFormat::Raw {
        return Err(Error::InvalidRequest(
            "a raw volume cannot have a parent; create it as qcow2".to_string(),
        ));
    }
    let pmd = parent.ensure_legal()?;
    let same_domain = parent.domain().uuid() == domain.uuid();
    let mut link_from = None;
    let (parent, header_name, parent_domain) = if same_domain && parent.image() == spec.image {
        (parent.clone(), parent.id().to_string(), None)
    } else if same_domain {
        // A template's SHARED volume: it is linked in (by create_volume,
        // after validation), then named relatively.
        if pmd.role != VolumeRole::Shared {
            return Err(Error::InvalidRequest(format!(
                "volume {} is {:?}, not SHARED: only a template's volumes can be used by several disks",
                parent.path().display(),
                pmd.role
            )));
        }
        link_from = Some(parent.clone());
        (
            domain.volume(spec.image, parent.id()),
            parent.id().to_string(),
            None,
        )
    } else {
        if parent.image() != spec.image {
            return Err(Error::InvalidRequest(format!(
                "a parent on another domain must belong to the same image: {} is in image {}, the new volume in {}",
                parent.path().display(),
                parent.image(),
                spec.image
            )));
        }
        // Resolves from the destination whatever the two domains' mount points.
        let abs = absolute(&parent.path())?;
        (
            parent.clone(),
            abs.display().to_string(),
            Some(parent.domain().uuid()),
        )
    };
    Ok(Some(ParentPlan {
        format: pmd.format,
        capacity: pmd.capacity,
        make_internal: pmd.role == VolumeRole::Leaf,
        link_from,
        parent,
        header_name,
        parent_domain,
    }))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    fs::canonicalize(p).map_err(|e| Error::io("resolve", p, e))
}
