//! Volumes: one layer of a disk, a raw or qcow2 file with its `.meta`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferry_api::{Allocation, Legality, VolumeFormat, VolumeRole};
use uuid::Uuid;

use crate::atomic::{sync_dir, write_atomic};
use crate::domain::StorageDomain;
use crate::error::{Error, Result};
use crate::metadata::VolumeMetadata;
use crate::qemu_img;

/// The prefix a volume or image gets while it is being deleted, so a crash
/// mid-delete leaves something [`StorageDomain::collect_garbage`] finishes,
/// never a half-deleted volume that looks usable.
pub const REMOVE_PREFIX: &str = "_remove_me_";

/// A volume: where it is and who it is. Cheap to clone; reads its
/// metadata from disk on demand, so it never holds stale state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    domain: StorageDomain,
    image: Uuid,
    id: Uuid,
}

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

impl Volume {
    /// A handle; the volume need not exist.
    pub fn new(domain: StorageDomain, image: Uuid, id: Uuid) -> Self {
        Volume { domain, image, id }
    }

    /// The domain the volume is on.
    pub fn domain(&self) -> &StorageDomain {
        &self.domain
    }

    /// The image (disk) directory it is in.
    pub fn image(&self) -> Uuid {
        self.image
    }

    /// The volume's UUID.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The image file.
    pub fn path(&self) -> PathBuf {
        self.domain.image_dir(self.image).join(self.id.to_string())
    }

    /// The `.meta` file.
    pub fn meta_path(&self) -> PathBuf {
        self.domain
            .image_dir(self.image)
            .join(format!("{}.meta", self.id))
    }

    /// Whether both the image file and its metadata are there.
    pub fn exists(&self) -> bool {
        self.path().is_file() && self.meta_path().is_file()
    }

    /// Reads and parses the `.meta` file.
    pub fn metadata(&self) -> Result<VolumeMetadata> {
        let path = self.meta_path();
        if !path.exists() {
            return Err(self.not_found());
        }
        let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| Error::CorruptMetadata {
            path: path.clone(),
            reason: "it is not UTF-8 text".to_string(),
        })?;
        VolumeMetadata::parse(&text, &path)
    }

    /// Changes the metadata atomically, bumping `GEN`.
    pub fn update_metadata(
        &self,
        change: impl FnOnce(&mut VolumeMetadata),
    ) -> Result<VolumeMetadata> {
        let mut md = self.metadata()?;
        change(&mut md);
        md.bump_generation();
        self.write_metadata(&md)?;
        Ok(md)
    }

    /// Sets `LEGALITY`.
    pub fn set_legality(&self, legality: Legality) -> Result<()> {
        self.update_metadata(|md| md.legality = legality)
            .map(|_| ())
    }

    /// Errors unless the volume is LEGAL.
    pub fn ensure_legal(&self) -> Result<VolumeMetadata> {
        let md = self.metadata()?;
        if md.legality != Legality::Legal {
            return Err(Error::NotLegal {
                path: self.path(),
                legality: md.legality,
            });
        }
        Ok(md)
    }

    pub(crate) fn write_metadata(&self, md: &VolumeMetadata) -> Result<()> {
        let path = self.meta_path();
        write_atomic(&path, md.render(&path)?.as_bytes())
    }

    /// How many directory entries name this volume's file: more than one
    /// for a SHARED volume hard-linked into other images.
    pub fn link_count(&self) -> Result<u64> {
        let p = self.path();
        fs::metadata(&p)
            .map(|m| m.nlink())
            .map_err(|e| Error::io("inspect", &p, e))
    }

    /// Bytes the file takes on disk (not its virtual size).
    pub fn allocated_bytes(&self) -> Result<u64> {
        let p = self.path();
        fs::metadata(&p)
            .map(|m| m.blocks() * 512)
            .map_err(|e| Error::io("inspect", &p, e))
    }

    pub(crate) fn not_found(&self) -> Error {
        Error::VolumeNotFound {
            domain: self.domain.uuid(),
            image: self.image,
            volume: self.id,
            path: self.path(),
        }
    }

    /// The other volumes of this image directory whose parent is this one.
    pub fn children(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        for v in self.domain.volumes(self.image)? {
            if v.id != self.id && v.metadata()?.parent == Some(self.id) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Deletes the volume, crash-safely: both files are first renamed to
    /// `_remove_me_` names (a durable point after which the volume is gone
    /// for every reader), then unlinked.
    ///
    /// A volume with children in its image is refused. A SHARED template
    /// volume that other images still link to is refused in its own image;
    /// in a disk's image only the disk's link is removed. Deleting a leaf
    /// makes its parent (in the same image) the leaf again.
    pub fn delete(&self) -> Result<()> {
        let md = self.metadata()?;
        let children = self.children()?;
        if !children.is_empty() {
            return Err(Error::VolumeInUse {
                path: self.path(),
                users: format!(
                    "its child volume(s) {}",
                    children
                        .iter()
                        .map(|c| c.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if md.role == VolumeRole::Shared && md.image == self.image {
            let links = self.link_count()?;
            if links > 1 {
                return Err(Error::VolumeInUse {
                    path: self.path(),
                    users: format!("{} other disk(s) made from this template", links - 1),
                });
            }
        }
        let dir = self.domain.image_dir(self.image);
        let doomed_file = dir.join(format!("{REMOVE_PREFIX}{}", self.id));
        let doomed_meta = dir.join(format!("{REMOVE_PREFIX}{}.meta", self.id));
        fs::rename(self.path(), &doomed_file)
            .map_err(|e| Error::io("rename for removal", self.path(), e))?;
        fs::rename(self.meta_path(), &doomed_meta)
            .map_err(|e| Error::io("rename for removal", self.meta_path(), e))?;
        sync_dir(&dir)?;
        fs::remove_file(&doomed_file).map_err(|e| Error::io("remove", &doomed_file, e))?;
        fs::remove_file(&doomed_meta).map_err(|e| Error::io("remove", &doomed_meta, e))?;
        sync_dir(&dir)?;
        tracing::info!(volume = %self.id, image = %self.image, domain = %self.domain.uuid(), "deleted volume");
        if md.role == VolumeRole::Leaf {
            if let Some(parent) = md.parent.filter(|_| md.parent_domain.is_none()) {
                let p = self.domain.volume(self.image, parent);
                if p.exists()
                    && p.metadata()?.role == VolumeRole::Internal
                    && p.children()?.is_empty()
                {
                    p.update_metadata(|m| m.role = VolumeRole::Leaf)?;
                }
            }
        }
        // An image directory left empty is removed with the disk's last volume.
        if fs::read_dir(&dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
        {
            let _ = fs::remove_dir(&dir);
        }
        Ok(())
    }

    /// Hard-links this SHARED template volume (file and metadata) into
    /// `image` on the same domain, so a disk made from the template can
    /// name it relatively. Linking twice is a no-op.
    pub fn link_into(&self, image: Uuid) -> Result<Volume> {
        let md = self.ensure_legal()?;
        if md.role != VolumeRole::Shared {
            return Err(Error::InvalidRequest(format!(
                "volume {} is {:?}, not SHARED: only a template's volumes can be used by several disks",
                self.path().display(),
                md.role
            )));
        }
        let linked = self.domain.volume(image, self.id);
        if linked.exists() {
            return Ok(linked);
        }
        let dir = self.domain.image_dir(image);
        let created_dir = !dir.exists();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let res = fs::hard_link(self.path(), linked.path())
            .map_err(|e| Error::io("link", linked.path(), e))
            .and_then(|()| {
                fs::hard_link(self.meta_path(), linked.meta_path())
                    .map_err(|e| Error::io("link", linked.meta_path(), e))
            })
            .and_then(|()| sync_dir(&dir));
        if let Err(e) = res {
            let _ = fs::remove_file(linked.path());
            let _ = fs::remove_file(linked.meta_path());
            if created_dir {
                let _ = fs::remove_dir(&dir);
            }
            return Err(e);
        }
        Ok(linked)
    }
}

impl StorageDomain {
    /// Creates a volume, all or nothing: the `.meta` is written ILLEGAL
    /// first, then the file; on any failure both are removed (and an image
    /// directory this call made). The volume turns LEGAL last.
    pub fn create_volume(&self, spec: &VolumeSpec) -> Result<Volume> {
        let id = spec.id.unwrap_or_else(Uuid::new_v4);
        let vol = self.volume(spec.image, id);
        if vol.path().exists() || vol.meta_path().exists() {
            return Err(Error::VolumeExists { path: vol.path() });
        }
        let plan = plan_parent(self, spec)?;
        let capacity = match (spec.capacity, &plan) {
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
        let mut md = VolumeMetadata::new(
            self.uuid(),
            spec.image,
            spec.format,
            spec.allocation,
            capacity,
            plan.as_ref().map(|p| p.parent.id()),
            spec.role,
            &spec.description,
        );
        md.parent_domain = plan.as_ref().and_then(|p| p.parent_domain);
        // Render first: a description that does not fit fails before any file exists.
        md.render(&vol.meta_path())?;

        let dir = self.image_dir(spec.image);
        let created_dir = !dir.exists();
        // A template linked in by this call is unlinked again on failure.
        let link = plan
            .as_ref()
            .and_then(|p| p.link_from.as_ref().map(|t| (t, p.parent.clone())))
            .filter(|(_, linked)| !linked.exists());
        let cleanup = || {
            let _ = fs::remove_file(vol.path());
            let _ = fs::remove_file(vol.meta_path());
            if let Some((_, linked)) = &link {
                let _ = fs::remove_file(linked.path());
                let _ = fs::remove_file(linked.meta_path());
            }
            if created_dir {
                let _ = fs::remove_dir(&dir);
            }
        };
        let result = (|| {
            fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
            if let Some((template, _)) = &link {
                template.link_into(spec.image)?;
            }
            vol.write_metadata(&md)?;
            let backing = plan.as_ref().map(|p| (p.header_name.as_str(), p.format));
            qemu_img::create(
                &vol.path(),
                spec.format,
                capacity,
                backing,
                spec.allocation == Allocation::Preallocated,
            )?;
            if let Some(p) = &plan {
                if p.make_internal {
                    p.parent
                        .update_metadata(|m| m.role = VolumeRole::Internal)?;
                }
            }
            md.legality = Legality::Legal;
            md.bump_generation();
            vol.write_metadata(&md)
        })();
        if let Err(e) = result {
            cleanup();
            if let Some(p) = plan.filter(|p| p.make_internal) {
                let _ = p.parent.update_metadata(|m| m.role = VolumeRole::Leaf);
            }
            return Err(e);
        }
        tracing::info!(volume = %id, image = %spec.image, domain = %self.uuid(), format = %spec.format, "created volume");
        Ok(vol)
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
