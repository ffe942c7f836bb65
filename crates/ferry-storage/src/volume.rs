//! Volumes: one layer of a disk, a raw or qcow2 file with its `.meta`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use ferry_api::{Legality, VolumeRole};
use uuid::Uuid;

use crate::atomic::{sync_dir, write_atomic};
use crate::dir_entries::image_uuid_entries;
use crate::domain::StorageDomain;
use crate::error::{Error, Result};
use crate::metadata::VolumeMetadata;

/// A volume: where it is and who it is. Cheap to clone; reads its
/// metadata from disk on demand, so it never holds stale state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    domain: StorageDomain,
    image: Uuid,
    id: Uuid,
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

/// A domain's volumes are handed out here, beside [`Volume`], so that the
/// domain module needs nothing of volumes.
impl StorageDomain {
    /// The volumes in one image directory, in UUID order. SHARED volumes
    /// hard-linked in from a template image are listed too.
    pub fn volumes(&self, image: Uuid) -> Result<Vec<Volume>> {
        let mut ids = image_uuid_entries(&self.image_dir(image), |p| p.is_file())?;
        ids.sort();
        Ok(ids
            .into_iter()
            .map(|id| Volume::new(self.clone(), image, id))
            .collect())
    }

    /// A handle on one volume; it need not exist yet.
    pub fn volume(&self, image: Uuid, id: Uuid) -> Volume {
        Volume::new(self.clone(), image, id)
    }
}
