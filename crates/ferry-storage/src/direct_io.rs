//! The copy's `O_DIRECT` path: each chunk is read from the source and
//! written to the copy without passing through the page cache, then read
//! back from the copy's storage and compared with what was written.
//!
//! Why: a buffered copy pays for every byte twice in the CPU (into the
//! page cache and out of it) and again in the kernel's writeback; on a
//! host whose other core runs the guest that is what limits an uncapped
//! copy (docs/engine.md, run 8). It also leaves dirty pages that the
//! guest's own `fdatasync` must wait behind. Direct I/O moves the data by
//! DMA and leaves nothing to write back. Since nothing of the copy is then
//! in the page cache, the copy is checked as it goes, against the bytes it
//! read, instead of by reading both sides again afterwards.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// The alignment of `O_DIRECT` offsets, lengths and buffers: the page
/// size, which covers devices with 512-byte and 4 KiB logical blocks.
pub(crate) const ALIGN: u64 = 4096;

/// The source and the copy opened a second time, with `O_DIRECT`.
#[derive(Debug)]
pub(crate) struct DirectFiles {
    input: File,
    output: File,
}

impl DirectFiles {
    /// Opens `src` for reading and the already created `dst` for reading
    /// and writing, both with `O_DIRECT`; `None` where the filesystem does
    /// not do direct I/O (`tmpfs`, some FUSE filesystems), whose copy then
    /// goes through the page cache.
    pub(crate) fn open(src: &Path, dst: &Path) -> io::Result<Option<Self>> {
        let open = |path: &Path, flags: OFlags| {
            rustix::fs::open(
                path,
                flags | OFlags::DIRECT | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        match (open(src, OFlags::RDONLY), open(dst, OFlags::RDWR)) {
            (Ok(input), Ok(output)) => Ok(Some(DirectFiles {
                input: input.into(),
                output: output.into(),
            })),
            (Err(rustix::io::Errno::INVAL), _) | (_, Err(rustix::io::Errno::INVAL)) => Ok(None),
            (Err(e), _) | (_, Err(e)) => Err(e.into()),
        }
    }
}

/// Whether a range can go through [`DirectFiles`]: offset and length
/// aligned. The data extents of a file start on filesystem blocks, so in
/// practice only a file's last, partial block is not.
pub(crate) fn is_aligned(range: &Range<u64>) -> bool {
    range.start % ALIGN == 0 && range.end % ALIGN == 0
}

/// A worker's two buffers, aligned for `O_DIRECT`: what was read from the
/// source, and what the copy read back.
#[derive(Debug, Default)]
pub(crate) struct DirectBuffers {
    written: AlignedBuf,
    read_back: AlignedBuf,
}

/// How one chunk's read-back went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadBack {
    /// The copy holds what was written.
    Same,
    /// The copy reads back differently at these bytes (file offsets).
    Differs(Range<u64>),
    /// `between_steps` stopped the copy part-way (it was cancelled).
    Stopped,
}

/// Copies `range` (aligned, see [`is_aligned`]) from the source to the
/// copy at the same offset in requests of `step` bytes, reading each back
/// and comparing it as it goes. `between_steps` runs before every request
/// after the first, where the copy may wait for a hold to be let go;
/// `false` stops it there.
pub(crate) fn copy_and_read_back(
    files: &DirectFiles,
    range: Range<u64>,
    bufs: &mut DirectBuffers,
    step: usize,
    between_steps: &mut dyn FnMut() -> bool,
) -> io::Result<ReadBack> {
    let mut pos = range.start;
    while pos < range.end {
        if pos > range.start && !between_steps() {
            return Ok(ReadBack::Stopped);
        }
        let n = usize::try_from(range.end - pos)
            .unwrap_or(usize::MAX)
            .min(step);
        let written = bufs.written.slice(n);
        files.input.read_exact_at(written, pos)?;
        files.output.write_all_at(written, pos)?;
        if let ReadBack::Differs(at) = read_back(files, pos, n, bufs)? {
            return Ok(ReadBack::Differs(at));
        }
        pos += n as u64;
    }
    Ok(ReadBack::Same)
}

/// Reads `n` bytes at `pos` back from the copy and compares them with the
/// first `n` bytes of what was written from `bufs`.
fn read_back(
    files: &DirectFiles,
    pos: u64,
    n: usize,
    bufs: &mut DirectBuffers,
) -> io::Result<ReadBack> {
    files.output.read_exact_at(bufs.read_back.slice(n), pos)?;
    crate::test_hooks::corrupt_read_back(bufs.read_back.slice(n));
    Ok(
        match first_difference(bufs.written.slice(n), bufs.read_back.slice(n)) {
            Some(at) => ReadBack::Differs(pos + at.start..pos + at.end),
            None => ReadBack::Same,
        },
    )
}

/// The first 4 KiB block where `a` and `b` differ, as offsets into them.
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> Option<Range<u64>> {
    if a == b {
        return None;
    }
    let block = usize::try_from(ALIGN).unwrap_or(4096);
    let i = a
        .chunks(block)
        .zip(b.chunks(block))
        .position(|(x, y)| x != y)
        .unwrap_or(0);
    let start = (i * block) as u64;
    Some(start..(start + block as u64).min(a.len().max(b.len()) as u64))
}

/// A byte buffer whose usable part starts on an [`ALIGN`] boundary, made
/// without `unsafe`: a `Vec` one alignment longer, used from the first
/// aligned byte.
#[derive(Debug, Default)]
struct AlignedBuf {
    raw: Vec<u8>,
}

impl AlignedBuf {
    /// The first `n` aligned bytes, growing the buffer when needed.
    fn slice(&mut self, n: usize) -> &mut [u8] {
        let align = usize::try_from(ALIGN).unwrap_or(4096);
        if self.raw.len() < n + align {
            self.raw = vec![0u8; n + align];
        }
        let off = self.raw.as_ptr().align_offset(align);
        &mut self.raw[off..off + n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_aligned_whatever_their_size() {
        let mut b = AlignedBuf::default();
        for n in [4096, 8 << 20, 65536, 12288] {
            let s = b.slice(n);
            assert_eq!(s.len(), n);
            assert_eq!(s.as_ptr() as usize % 4096, 0);
        }
    }

    #[test]
    fn the_first_differing_block_is_named() {
        let a = vec![0u8; 3 * 4096];
        let mut b = a.clone();
        assert_eq!(first_difference(&a, &b), None);
        b[4096 + 17] = 1;
        b[2 * 4096] = 1;
        assert_eq!(first_difference(&a, &b), Some(4096..8192));
    }

    /// A source holding `data` and an empty copy of its length in a new
    /// directory, opened for direct I/O; `None` on a filesystem without
    /// it (nothing to test there).
    fn direct_pair(data: &[u8]) -> Option<(tempfile::TempDir, std::path::PathBuf, DirectFiles)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::write(&src, data).expect("write");
        File::create(&dst)
            .and_then(|f| f.set_len(data.len() as u64))
            .expect("create");
        let files = DirectFiles::open(&src, &dst).expect("open")?;
        Some((dir, dst, files))
    }

    #[test]
    fn a_chunk_is_copied_and_read_back_and_a_changed_block_is_caught() {
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        let Some((_dir, dst, files)) = direct_pair(&data) else {
            return;
        };
        let mut bufs = DirectBuffers::default();
        let r = copy_and_read_back(&files, 4096..(1 << 20), &mut bufs, 256 << 10, &mut || true)
            .expect("copy");
        assert_eq!(r, ReadBack::Same);
        let copy = std::fs::read(&dst).expect("read");
        assert_eq!(copy[4096..], data[4096..]);
        assert!(copy[..4096].iter().all(|b| *b == 0), "outside the range");

        // Storage that returns other bytes than were written is caught:
        // one block of the copy changed behind the copy's back (through
        // the page cache, which a direct read writes back first).
        let last = (1 << 20) - (256 << 10);
        let r = copy_and_read_back(&files, last..(1 << 20), &mut bufs, 256 << 10, &mut || true)
            .expect("copy");
        assert_eq!(r, ReadBack::Same);
        File::options()
            .write(true)
            .open(&dst)
            .and_then(|f| f.write_all_at(&[0xee; 10], last + 8192 + 5))
            .expect("corrupt the copy");
        assert_eq!(
            read_back(&files, last, 256 << 10, &mut bufs).expect("read back"),
            ReadBack::Differs(last + 8192..last + 12288)
        );
    }

    #[test]
    fn a_chunk_can_be_stopped_between_two_requests() {
        let Some((_dir, dst, files)) = direct_pair(&vec![0x5a; 1 << 20]) else {
            return;
        };
        let mut bufs = DirectBuffers::default();
        let mut asked = 0;
        // Goes on once, then stops: two requests of 64 KiB are copied.
        let mut between = || {
            asked += 1;
            asked < 2
        };
        let r = copy_and_read_back(&files, 0..(1 << 20), &mut bufs, 64 << 10, &mut between)
            .expect("copy");
        assert_eq!(r, ReadBack::Stopped);
        assert_eq!(asked, 2, "asked before the second and third requests");
        let copy = std::fs::read(&dst).expect("read");
        assert!(copy[..128 << 10].iter().all(|b| *b == 0x5a));
        assert!(copy[128 << 10..].iter().all(|b| *b == 0), "stopped there");
    }
}
