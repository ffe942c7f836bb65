//! A disk's chain of volumes, walked from the leaf down to the base by
//! metadata, and checked against what the qcow2 headers say.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::domain::{DomainSet, StorageDomain};
use crate::error::{Error, Result};
use crate::metadata::VolumeMetadata;
use crate::qemu_img::{self, ImageInfo};
use crate::volume::Volume;

/// A chain, base first: each volume reads through the ones before it.
#[derive(Debug, Clone)]
pub struct Chain {
    links: Vec<ChainLink>,
}

/// One volume of a chain with the metadata read during the walk.
#[derive(Debug, Clone)]
pub struct ChainLink {
    /// The volume.
    pub volume: Volume,
    /// Its metadata as read.
    pub metadata: VolumeMetadata,
}

impl Chain {
    /// The chain of `image` on `domain`: finds the image's one top volume
    /// (the one no other names as parent), then walks and checks it.
    pub fn of_image(domains: &DomainSet, domain: &StorageDomain, image: Uuid) -> Result<Self> {
        let leaf = find_top(domain, image)?;
        Self::walk(domains, &leaf)
    }

    /// Walks from `leaf` to the base by each `.meta`'s PUUID (following a
    /// parent onto another domain when the metadata says so), then checks
    /// the result against `qemu-img info --backing-chain`.
    pub fn walk(domains: &DomainSet, leaf: &Volume) -> Result<Self> {
        let chain = Self::walk_metadata(domains, leaf)?;
        chain.check_headers()?;
        Ok(chain)
    }

    /// The metadata half of [`Chain::walk`], without running qemu-img.
    pub fn walk_metadata(domains: &DomainSet, leaf: &Volume) -> Result<Self> {
        let mut links = Vec::new();
        let mut seen = HashSet::new();
        let mut current = leaf.clone();
        if !current.path().exists() {
            return Err(current.not_found());
        }
        loop {
            if !seen.insert((current.domain().uuid(), current.id())) {
                return Err(Error::ChainLoop {
                    path: leaf.path(),
                    volume: current.id(),
                });
            }
            let md = current.metadata()?;
            let parent = md.parent.map(|pid| -> Result<Volume> {
                let domain = match md.parent_domain {
                    Some(d) if d != current.domain().uuid() => {
                        domains.get(d).cloned().ok_or(Error::UnknownDomain {
                            domain: d,
                            volume: current.id(),
                        })?
                    }
                    _ => current.domain().clone(),
                };
                Ok(domain.volume(current.image(), pid))
            });
            let parent = parent.transpose()?;
            links.push(ChainLink {
                volume: current.clone(),
                metadata: md,
            });
            match parent {
                None => break,
                Some(p) => {
                    if !p.path().exists() || !p.meta_path().exists() {
                        return Err(Error::ParentMissing {
                            child: current.path(),
                            parent: p.id(),
                            expected: if p.path().exists() {
                                p.meta_path()
                            } else {
                                p.path()
                            },
                        });
                    }
                    current = p;
                }
            }
        }
        links.reverse();
        Ok(Chain { links })
    }

    /// Checks that the qcow2 headers describe the same chain as the
    /// metadata: same files in the same order, same formats, and each
    /// header naming its parent as Ferry writes it (relatively within a
    /// domain, by absolute path across domains).
    pub fn check_headers(&self) -> Result<()> {
        let leaf = self.leaf();
        let infos = qemu_img::info_chain(&leaf.volume.path())?;
        // `infos` is leaf first; `links` is base first.
        for (i, link) in self.links.iter().rev().enumerate() {
            let Some(info) = infos.get(i) else {
                return Err(parent_mismatch(link, "none".to_string()));
            };
            self.check_file(i, link, info)?;
            check_format(link, info)?;
            check_backing_name(link, info)?;
        }
        if infos.len() > self.links.len() {
            let base = &self.links[0];
            return Err(parent_mismatch(
                base,
                infos[self.links.len()].filename.display().to_string(),
            ));
        }
        Ok(())
    }

    /// That the `i`th header from the leaf is `link`'s file.
    fn check_file(&self, i: usize, link: &ChainLink, info: &ImageInfo) -> Result<()> {
        if canonical(&info.filename) != canonical(&link.volume.path()) {
            // The child one step up (leaf first: index i - 1) named this file.
            let child = self
                .links
                .len()
                .checked_sub(i)
                .and_then(|c| self.links.get(c));
            return Err(Error::ParentMismatch {
                path: child.map_or_else(|| link.volume.path(), |c| c.volume.path()),
                metadata: link.volume.id().to_string(),
                header: info.filename.display().to_string(),
            });
        }
        Ok(())
    }

    /// The volumes, base first.
    pub fn links(&self) -> &[ChainLink] {
        &self.links
    }

    /// The volumes, base first.
    pub fn volumes(&self) -> impl Iterator<Item = &Volume> {
        self.links.iter().map(|l| &l.volume)
    }

    /// The top volume, the one a VM writes.
    pub fn leaf(&self) -> &ChainLink {
        // A chain always has at least the volume the walk started from.
        &self.links[self.links.len() - 1]
    }

    /// The volume with no parent.
    pub fn base(&self) -> &ChainLink {
        &self.links[0]
    }

    /// The number of volumes.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Always false: a chain holds at least its leaf.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Whether any volume's parent is on another domain (a move in flight).
    pub fn spans_domains(&self) -> bool {
        self.links
            .iter()
            .any(|l| l.metadata.parent_domain.is_some())
    }
}

/// The top of `image`'s chain on `domain`: the one volume no other volume
/// there names as its parent.
///
/// While a move is in flight the destination holds two kinds of volumes
/// of the image: the move's new leaf, whose parent is on the source, and
/// copies (in progress or done) of the volumes under it, whose own top
/// no volume there names yet. The disk's top is then the volume whose
/// parent is on another domain: a VM started in the middle of a move
/// opens it, with everything the guest wrote since the switch.
pub fn find_top(domain: &StorageDomain, image: Uuid) -> Result<Volume> {
    let vols = domain.volumes(image)?;
    if vols.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "image {image} has no volumes on storage domain {domain}"
        )));
    }
    let mut parents = HashSet::new();
    let mut cross_domain = HashSet::new();
    for v in &vols {
        let md = v.metadata()?;
        if let Some(p) = md.parent {
            parents.insert(p);
        }
        if md.parent_domain.is_some() {
            cross_domain.insert(v.id());
        }
    }
    let mut tops: Vec<&Volume> = vols.iter().filter(|v| !parents.contains(&v.id())).collect();
    if tops.len() > 1 {
        let moving: Vec<&Volume> = tops
            .iter()
            .copied()
            .filter(|v| cross_domain.contains(&v.id()))
            .collect();
        if moving.len() == 1 {
            tops = moving;
        }
    }
    match tops.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(Error::AmbiguousLeaf {
            path: domain.image_dir(image),
            count: tops.len(),
            names: tops
                .iter()
                .map(|v| v.id().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// That the file's format is the one its `FORMAT` says.
fn check_format(link: &ChainLink, info: &ImageInfo) -> Result<()> {
    if info.format != link.metadata.format.qemu_name() {
        return Err(Error::CorruptMetadata {
            path: link.volume.meta_path(),
            reason: format!(
                "FORMAT says {} but the file is {}",
                link.metadata.format, info.format
            ),
        });
    }
    Ok(())
}

/// That the header names the parent the metadata names, as Ferry writes
/// it: by UUID within a domain, by a path ending in it across domains.
fn check_backing_name(link: &ChainLink, info: &ImageInfo) -> Result<()> {
    let header = info.backing_filename.clone();
    match (link.metadata.parent, header) {
        (None, None) => {}
        (None, Some(h)) => return Err(parent_mismatch(link, h)),
        (Some(_), None) => return Err(parent_mismatch(link, "none".to_string())),
        (Some(p), Some(h)) => {
            let expected_name = p.to_string();
            let names_parent = match link.metadata.parent_domain {
                None => h == expected_name,
                Some(_) => {
                    Path::new(&h).file_name().and_then(|n| n.to_str())
                        == Some(expected_name.as_str())
                }
            };
            if !names_parent {
                return Err(parent_mismatch(link, h));
            }
        }
    }
    Ok(())
}

/// `link`'s metadata and its header (`header`) disagree about its parent.
fn parent_mismatch(link: &ChainLink, header: String) -> Error {
    Error::ParentMismatch {
        path: link.volume.path(),
        metadata: link
            .metadata
            .parent
            .map_or_else(|| "none".to_string(), |p| p.to_string()),
        header,
    }
}

fn canonical(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
