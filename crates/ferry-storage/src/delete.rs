//! Deleting a volume so that a crash at any point leaves a state the next
//! call (or the domain's garbage collection) finishes, never a volume that
//! looks usable and never one that refuses every later call.
//!
//! A delete goes through these states, each made durable before the next:
//!
//! ```text
//! <id>            + <id>.meta             the volume
//! _remove_me_<id> + <id>.meta             its file renamed: no listing shows it
//! _remove_me_<id> + _remove_me_<id>.meta  both renamed: retired; the parent's
//!                                         role is restored next
//! _remove_me_<id> + _remove_me_<id>.meta  its file shrunk a step at a time
//!                   _remove_me_<id>.meta  data unlinked
//! (nothing)
//! ```
//!
//! Every state but the first and the last has a `_remove_me_` entry, and
//! such an entry is only ever made once the delete was decided (after the
//! checks that nothing depends on the volume), so [`Volume::delete_in`]
//! finishes it without checking again. The metadata goes last, so the
//! parent's role can be restored from it wherever the crash was.
//!
//! A delete is in two halves. [`Volume::retire_in`] takes the volume out
//! of the domain: renames, then the parent's role; it is quick, and once
//! it returns the delete is decided and durable. [`Retired`] then gives the
//! space back, at once or a step at a time (see `release.rs`), so an agent
//! can answer when the volume is gone and free its gigabytes gently.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_api::VolumeRole;
use uuid::Uuid;

use crate::atomic::sync_dir;
use crate::dir_entries::{any_volume, read_image_dir, REMOVE_PREFIX};
use crate::domain::{DomainSet, StorageDomain};
use crate::error::{Error, Result};
use crate::metadata::VolumeMetadata;
use crate::release::Retired;
use crate::test_hooks::{crash_point, CrashPoint};
use crate::volume::Volume;

/// What of a volume is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Its file and its `.meta`.
    Whole,
    /// Not whole, with a `_remove_me_` entry: a deletion that a crash left
    /// unfinished (or that is running right now).
    BeingDeleted,
    /// Only its `.meta`: what a create interrupted before `qemu-img create`
    /// (or its own undo) leaves.
    MetadataOnly,
    /// Only its file, which nothing Ferry writes leaves.
    FileOnly,
    /// Nothing at all.
    Absent,
}

impl Volume {
    /// The file's name while its deletion runs.
    pub(crate) fn doomed_path(&self) -> PathBuf {
        self.domain()
            .image_dir(self.image())
            .join(format!("{REMOVE_PREFIX}{}", self.id()))
    }

    /// The `.meta`'s name while its deletion runs.
    pub(crate) fn doomed_meta_path(&self) -> PathBuf {
        self.domain()
            .image_dir(self.image())
            .join(format!("{REMOVE_PREFIX}{}.meta", self.id()))
    }

    /// Every name this volume's files can have, whatever its state.
    pub(crate) fn all_paths(&self) -> [PathBuf; 4] {
        [
            self.path(),
            self.meta_path(),
            self.doomed_path(),
            self.doomed_meta_path(),
        ]
    }

    /// What of the volume is on disk.
    pub fn presence(&self) -> Presence {
        let file = self.path().is_file();
        let meta = self.meta_path().is_file();
        let doomed = self.doomed_path().exists() || self.doomed_meta_path().exists();
        match (file, meta, doomed) {
            (true, true, _) => Presence::Whole,
            (_, _, true) => Presence::BeingDeleted,
            (false, true, false) => Presence::MetadataOnly,
            (true, false, false) => Presence::FileOnly,
            (false, false, false) => Presence::Absent,
        }
    }

    /// Deletes the volume, crash-safely: both files are first renamed to
    /// `_remove_me_` names (after which no reader sees the volume), then
    /// unlinked, the metadata last.
    ///
    /// A volume with children in its image is refused. A SHARED template
    /// volume that other images still link to is refused in its own image;
    /// in a disk's image only the disk's link is removed. Deleting a leaf
    /// makes its parent (in the same image) the leaf again.
    pub fn delete(&self) -> Result<()> {
        self.delete_in(&DomainSet::new([self.domain().clone()]))
    }

    /// Like [`Volume::delete`], and a leaf whose parent is on another domain
    /// of `domains` (made by `createVolumeCrossSD`) makes that parent the
    /// leaf again too.
    ///
    /// Whatever is left of a volume that is not whole is removed without
    /// the checks, which a whole volume passed before its deletion began: a
    /// deletion a crash interrupted is finished, and the `.meta` or file a
    /// crashed create left is removed. Deciding whether such a leftover may
    /// go (a LEGAL `.meta` without its file, say) is the caller's; see
    /// [`Volume::presence`]. Nothing there at all is
    /// [`Error::VolumeNotFound`].
    pub fn delete_in(&self, domains: &DomainSet) -> Result<()> {
        self.retire_in(domains)?.release_now()
    }

    /// The first half of [`Volume::delete_in`], with the same checks: the
    /// volume is taken out of the domain (its files renamed, its parent's
    /// role restored), durably, and what its data holds is left for the
    /// returned [`Retired`] to give back. Until then the files keep their
    /// `_remove_me_` names, which a later delete or create of the volume,
    /// or the domain's garbage collection, finishes.
    pub fn retire_in(&self, domains: &DomainSet) -> Result<Retired> {
        match self.presence() {
            Presence::Absent => Err(self.not_found()),
            Presence::Whole => {
                let md = self.metadata()?;
                self.check_deletable(&md)?;
                self.retire_files(domains, Some(&md), true)
            }
            Presence::BeingDeleted | Presence::MetadataOnly | Presence::FileOnly => {
                let md = self.leftover_metadata();
                self.retire_files(domains, md.as_ref(), false)
            }
        }
    }

    /// Refuses a volume others depend on: one with children, a template's
    /// own volume that other disks link to.
    fn check_deletable(&self, md: &VolumeMetadata) -> Result<()> {
        let children = self.children()?;
        if !children.is_empty() {
            return Err(Error::VolumeInUse {
                path: self.path(),
                users: format!(
                    "its child volume(s) {}",
                    children
                        .iter()
                        .map(|c| c.id().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if md.role == VolumeRole::Shared && md.image == self.image() {
            let links = self.link_count()?;
            if links > 1 {
                return Err(Error::VolumeInUse {
                    path: self.path(),
                    users: format!("{} other disk(s) made from this template", links - 1),
                });
            }
        }
        Ok(())
    }

    /// The metadata of a volume that is not whole, from its `.meta` under
    /// either name; `None` when there is none or it cannot be read (then
    /// only the parent's role is left as it is).
    fn leftover_metadata(&self) -> Option<VolumeMetadata> {
        let path = [self.meta_path(), self.doomed_meta_path()]
            .into_iter()
            .find(|p| p.is_file())?;
        match read_metadata_at(&path) {
            Ok(md) => Some(md),
            Err(e) => {
                tracing::warn!(path = %path.display(), "removing a volume whose metadata cannot be read: {e}");
                None
            }
        }
    }

    /// Walks the states of the module's comment from wherever the volume
    /// is to "retired". Each step accepts that it was done already, by an
    /// earlier call that crashed.
    fn retire_files(
        &self,
        domains: &DomainSet,
        md: Option<&VolumeMetadata>,
        whole: bool,
    ) -> Result<Retired> {
        rename_if_there(&self.path(), &self.doomed_path())?;
        if whole {
            crash_point(CrashPoint::Delete);
        }
        rename_if_there(&self.meta_path(), &self.doomed_meta_path())?;
        sync_dir(&self.domain().image_dir(self.image()))?;
        if let Some(md) = md {
            self.restore_parent_role(domains, md)?;
        }
        if whole {
            tracing::info!(volume = %self.id(), image = %self.image(), domain = %self.domain().uuid(), "deleted volume");
        } else {
            tracing::info!(volume = %self.id(), image = %self.image(), domain = %self.domain().uuid(), "removed what an interrupted create or delete left of a volume");
        }
        Ok(Retired::new(self.clone()))
    }

    /// A deleted leaf's parent is the leaf again, when nothing else sits on
    /// it: the same-image parent, or the parent on another domain that
    /// `createVolumeCrossSD` turned INTERNAL (the rollback of a move that
    /// never switched). Harmless to repeat.
    fn restore_parent_role(&self, domains: &DomainSet, md: &VolumeMetadata) -> Result<()> {
        let Some(parent) = md.parent else {
            return Ok(());
        };
        let p = match md.parent_domain {
            None if md.role == VolumeRole::Leaf => self.domain().volume(self.image(), parent),
            None => return Ok(()),
            Some(pd) => match domains.get(pd) {
                Some(source) => source.volume(md.image, parent),
                None => return Ok(()),
            },
        };
        if p.exists() && p.metadata()?.role == VolumeRole::Internal && p.children()?.is_empty() {
            p.update_metadata(|m| m.role = VolumeRole::Leaf)?;
        }
        Ok(())
    }
}

impl StorageDomain {
    /// Every volume id of an image with any file in its directory, whole,
    /// in part or being deleted, in UUID order: what deleting a whole image
    /// must clear.
    pub fn volume_ids_in_any_state(&self, image: Uuid) -> Result<Vec<Uuid>> {
        let dir = self.image_dir(image);
        let mut ids = Vec::new();
        let Some(entries) = read_image_dir(&dir)? else {
            return Ok(ids);
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            if let Some(id) = entry.file_name().to_str().and_then(any_volume) {
                ids.push(id);
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// Parses a `.meta` file under any name.
fn read_metadata_at(path: &Path) -> Result<VolumeMetadata> {
    let bytes = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::CorruptMetadata {
        path: path.to_path_buf(),
        reason: "it is not UTF-8 text".to_string(),
    })?;
    VolumeMetadata::parse(&text, path)
}

/// Renames `from` to `to`; `from` missing means an earlier call did it.
fn rename_if_there(from: &Path, to: &Path) -> Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("rename for removal", from, e)),
    }
}

/// Unlinks `path`; missing means an earlier call did it.
pub(crate) fn remove_if_there(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}
