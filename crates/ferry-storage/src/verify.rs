//! Checks a copied layer against its source without trusting the copy
//! routine: content is read through each chain with `imago` (an
//! independent qcow2 reader) and allocation is read with `qemu-img map`.
//!
//! A layer is only ever copied over a parent that is already a verified,
//! LEGAL copy, so what shows through from below is already known to be
//! equal. What is read is therefore what the layer itself holds as data
//! (on either side) and every range where the two sides disagree about
//! what the layer holds: a layer's verification costs its own data, not
//! the whole disk again.

use std::fs::File as StdFile;
use std::ops::Range;

use ferry_api::VolumeFormat;
use imago::file::File;
use imago::qcow2::Qcow2;
use imago::raw::Raw;
use imago::{FormatAccess, FormatDriverBuilder, PermissiveImplicitOpenGate};

use crate::chain::Chain;
use crate::domain::DomainSet;
use crate::error::{Error, Result};
use crate::qemu_img::{self, MapEntry};
use crate::volume::Volume;

/// How much is compared at once.
const STEP: u64 = 4 << 20;

/// The granularity at which differing content is reported.
const BLOCK: usize = 4096;

/// What a comparison of one layer found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Guest bytes read and compared (ranges that `qemu-img map` shows
    /// as zeros on both sides are equal without reading).
    pub bytes_compared: u64,
    /// Byte ranges whose guest-visible content differs.
    pub content: Vec<Range<u64>>,
    /// Byte ranges that the layer itself allocates differently (allocated
    /// vs. unallocated, zero cluster vs. data).
    pub allocation: Vec<Range<u64>>,
    /// Whether the content was compared as the copy wrote it, read back
    /// from the copy's storage ([`verify_read_back_copy`]), rather than
    /// read again through both chains afterwards.
    pub read_back: bool,
}

impl VerifyReport {
    /// Whether the copy reads and is allocated exactly as the source.
    pub fn is_identical(&self) -> bool {
        self.content.is_empty() && self.allocation.is_empty()
    }
}

/// Compares `copy` with `source`, each read through its own chain (which
/// `domains` must let the walk resolve). The copy may still be ILLEGAL;
/// the layers below it must already have been verified (see the module
/// doc).
pub fn verify_copy(domains: &DomainSet, source: &Volume, copy: &Volume) -> Result<VerifyReport> {
    let src_chain = Chain::walk(domains, source)?;
    let dst_chain = Chain::walk(domains, copy)?;
    compare_chains(&src_chain, &dst_chain)
}

/// Checks a copy whose content was read back from its storage and
/// compared with the source's bytes as it was written (a direct copy,
/// [`crate::CopyMethod::Direct`]), `copied` being the source file's
/// ranges it copied so (its data extents, `SEEK_DATA`). What is left is
/// what that does not see, read with `qemu-img map` (qemu's own reading
/// of the qcow2 tables or of a raw file's holes, not the copy's): the
/// layer's allocation on each side, and that every byte of data the
/// source's allocation places in its file was among the ranges copied.
/// And the file's length.
pub fn verify_read_back_copy(
    source: &Volume,
    copy: &Volume,
    copied: &[Range<u64>],
) -> Result<VerifyReport> {
    let (smd, cmd) = (source.metadata()?, copy.metadata()?);
    let a = qemu_img::map(&source.path(), smd.format)?;
    let b = qemu_img::map(&copy.path(), cmd.format)?;
    let len = |v: &Volume| {
        std::fs::metadata(v.path())
            .map(|m| m.len())
            .map_err(|e| Error::io("inspect", v.path(), e))
    };
    let (len_a, len_b) = (len(source)?, len(copy)?);
    let mut report = VerifyReport {
        bytes_compared: copied.iter().map(|r| r.end - r.start).sum(),
        content: data_not_copied(&a, copied),
        allocation: diff_own_allocation(&a, &b),
        read_back: true,
    };
    if len_a != len_b {
        push_range(&mut report.content, len_a.min(len_b)..len_a.max(len_b));
    }
    Ok(report)
}

/// The guest ranges whose data, by the layer's own map, lies in its file
/// outside the `copied` file ranges (sorted): data the copy would lack.
fn data_not_copied(map: &[MapEntry], copied: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    for e in map {
        let (own, zero, data) = own_state(e);
        let Some(offset) = e.offset.filter(|_| own && data && !zero) else {
            continue;
        };
        if !covered(copied, offset..offset + e.length) {
            push_range(&mut out, e.start..e.start + e.length);
        }
    }
    out
}

/// Whether the sorted, disjoint `ranges` cover all of `r`.
fn covered(ranges: &[Range<u64>], r: Range<u64>) -> bool {
    let mut pos = r.start;
    let first = ranges.partition_point(|c| c.end <= pos);
    for c in ranges.get(first..).unwrap_or(&[]) {
        if pos >= r.end || c.start > pos {
            break;
        }
        pos = pos.max(c.end);
    }
    pos >= r.end
}

/// Compares the leaves of two chains (content and own allocation).
pub fn compare_chains(source: &Chain, copy: &Chain) -> Result<VerifyReport> {
    let src = &source.leaf().volume;
    let dst = &copy.leaf().volume;
    let a = qemu_img::map(&src.path(), source.leaf().metadata.format)?;
    let b = qemu_img::map(&dst.path(), copy.leaf().metadata.format)?;
    let allocation = diff_own_allocation(&a, &b);
    // Zeros the layer holds on both sides are equal without reading;
    // ranges it holds on neither side are the verified parents'.
    let mut to_read = own_data(&a);
    to_read.extend(own_data(&b));
    to_read.extend(allocation.iter().cloned());
    let mut report = compare_content(source, copy, union(to_read))?;
    report.allocation = allocation;
    Ok(report)
}

/// Turns a failed report into the error that names the ranges.
pub fn ensure_identical(source: &Volume, copy: &Volume, report: VerifyReport) -> Result<()> {
    if report.is_identical() {
        Ok(())
    } else {
        Err(Error::VerifyFailed {
            source_path: source.path(),
            copy: copy.path(),
            content: report.content,
            allocation: report.allocation,
        })
    }
}

fn compare_content(source: &Chain, copy: &Chain, ranges: Vec<Range<u64>>) -> Result<VerifyReport> {
    let a = open_chain(source)?;
    let b = open_chain(copy)?;
    let mut report = VerifyReport::default();
    let (size_a, size_b) = (a.size(), b.size());
    let size = size_a.min(size_b);
    let mut buf_a = vec![0u8; usize::try_from(STEP).unwrap_or(4 << 20)];
    let mut buf_b = vec![0u8; buf_a.len()];
    let read_err = |v: &Volume, e| Error::io("read through the chain of", v.path(), e);
    let (va, vb) = (&source.leaf().volume, &copy.leaf().volume);
    for r in ranges {
        let mut off = r.start.min(size);
        let end = r.end.min(size);
        while off < end {
            let n = STEP.min(end - off);
            let len = usize::try_from(n).unwrap_or(buf_a.len());
            a.read(&mut buf_a[..len], off)
                .map_err(|e| read_err(va, e))?;
            b.read(&mut buf_b[..len], off)
                .map_err(|e| read_err(vb, e))?;
            report.bytes_compared += n;
            if buf_a[..len] != buf_b[..len] {
                for (i, (x, y)) in buf_a[..len]
                    .chunks(BLOCK)
                    .zip(buf_b[..len].chunks(BLOCK))
                    .enumerate()
                {
                    if x != y {
                        let s = off + (i * BLOCK) as u64;
                        push_range(&mut report.content, s..s + x.len() as u64);
                    }
                }
            }
            off += n;
        }
    }
    if size_a != size_b {
        push_range(&mut report.content, size..size_a.max(size_b));
    }
    Ok(report)
}

/// The ranges the layer itself holds as data (not as zero clusters).
fn own_data(map: &[MapEntry]) -> Vec<Range<u64>> {
    map.iter()
        .filter(|e| {
            let (own, zero, _) = own_state(e);
            own && !zero
        })
        .map(|e| e.start..e.start + e.length)
        .collect()
}

/// Sorted, merged union of ranges.
fn union(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Opens a chain base first, each layer explicitly backed by the one
/// below, so imago follows Ferry's metadata rather than the headers.
fn open_chain(chain: &Chain) -> Result<FormatAccess<File>> {
    let mut below: Option<FormatAccess<File>> = None;
    for link in chain.links() {
        let path = link.volume.path();
        let open_err = |e| Error::io("open for verification", &path, e);
        // imago opens files itself; make sure a missing file is reported plainly first.
        StdFile::open(&path).map_err(open_err)?;
        let layer = match link.metadata.format {
            VolumeFormat::Raw => FormatAccess::new(
                Raw::<File>::builder_path(&path)
                    .write(false)
                    .open(PermissiveImplicitOpenGate::default())
                    .map_err(open_err)?,
            ),
            VolumeFormat::Qcow2 => FormatAccess::new(
                Qcow2::<File>::builder_path(&path)
                    .write(false)
                    .backing(below.take())
                    .open(PermissiveImplicitOpenGate::default())
                    .map_err(open_err)?,
            ),
        };
        below = Some(layer);
    }
    below.ok_or_else(|| Error::InvalidRequest("cannot verify an empty chain".into()))
}

/// What a layer itself says about a range: unallocated (its parent shows
/// through), or allocated as zeros or data.
fn own_state(e: &MapEntry) -> (bool, bool, bool) {
    let own = e.depth == 0 && e.present;
    (own, own && e.zero, own && e.data)
}

/// The ranges where two maps of the same virtual size disagree about the
/// layer's own allocation.
pub(crate) fn diff_own_allocation(a: &[MapEntry], b: &[MapEntry]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let mut pos = 0u64;
    while i < a.len() && j < b.len() {
        let (ea, eb) = (&a[i], &b[j]);
        let end = (ea.start + ea.length).min(eb.start + eb.length);
        if own_state(ea) != own_state(eb) && end > pos {
            push_range(&mut out, pos..end);
        }
        pos = end;
        if ea.start + ea.length <= pos {
            i += 1;
        }
        if eb.start + eb.length <= pos {
            j += 1;
        }
    }
    let rest = |v: &[MapEntry], k: usize| {
        v.get(k..)
            .unwrap_or(&[])
            .iter()
            .map(|e| e.start + e.length)
            .max()
    };
    if let Some(end) = rest(a, i).max(rest(b, j)) {
        if end > pos {
            push_range(&mut out, pos..end);
        }
    }
    out
}

fn push_range(ranges: &mut Vec<Range<u64>>, r: Range<u64>) {
    if let Some(last) = ranges.last_mut() {
        if last.end == r.start {
            last.end = r.end;
            return;
        }
    }
    ranges.push(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(start: u64, length: u64, depth: u32, zero: bool, data: bool) -> MapEntry {
        MapEntry {
            start,
            length,
            depth,
            present: true,
            zero,
            data,
            offset: None,
        }
    }

    #[test]
    fn identical_maps_differ_nowhere_even_when_split_differently() {
        let a = vec![e(0, 100, 0, false, true), e(100, 100, 1, false, true)];
        let b = vec![
            e(0, 50, 0, false, true),
            e(50, 50, 0, false, true),
            e(100, 100, 1, false, true),
        ];
        assert!(diff_own_allocation(&a, &b).is_empty());
    }

    #[test]
    fn a_dropped_zero_cluster_is_reported() {
        // The source hides its parent's data with a zero cluster; a naive copy lets it show.
        let a = vec![e(0, 64, 0, true, false), e(64, 64, 1, false, true)];
        let b = vec![e(0, 128, 1, false, true)];
        assert_eq!(diff_own_allocation(&a, &b), vec![0..64]);
    }

    #[test]
    fn data_outside_the_copied_ranges_is_reported() {
        let at = |start, length, offset| MapEntry {
            offset: Some(offset),
            ..e(start, length, 0, false, true)
        };
        let map = vec![
            at(0, 4096, 8192),
            e(4096, 4096, 0, true, false),
            at(8192, 4096, 65536),
            at(12288, 8192, 12288),
        ];
        // The cluster at file offset 65536 was not copied.
        let copied = vec![8192..12288, 12288..20480];
        assert_eq!(data_not_copied(&map, &copied), vec![8192..12288]);
        assert!(data_not_copied(&map, &[0..4096, 4096..1 << 20]).is_empty());
        assert!(covered(&[0..10, 10..20], 5..15), "adjacent ranges");
        assert!(!covered(&[0..10, 11..20], 5..15), "a gap");
        assert!(covered(&[], 7..7), "nothing to cover");
    }

    #[test]
    fn union_merges_overlaps_and_keeps_gaps() {
        assert_eq!(
            union(vec![10..20, 0..5, 15..30, 40..50]),
            vec![0..5, 10..30, 40..50]
        );
    }

    #[test]
    fn a_shorter_map_is_reported_to_the_end() {
        let a = vec![e(0, 64, 0, false, true), e(64, 64, 0, false, true)];
        let b = vec![e(0, 64, 0, false, true)];
        assert_eq!(diff_own_allocation(&a, &b), vec![64..128]);
    }
}
