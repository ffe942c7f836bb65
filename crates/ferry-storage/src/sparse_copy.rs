//! Copies one file's data extents, and only those, with several requests
//! in flight.
//!
//! A qcow2 file copied byte for byte is layer-exact: its L1/L2 tables,
//! zero-cluster flags and unallocated clusters travel unchanged, and its
//! header names the parent relatively, so the copy reads through the
//! destination's copy of the parent. A raw file's holes stay holes. What is
//! copied is what `SEEK_DATA`/`SEEK_HOLE` call data, so a 64 GiB disk with
//! 10 MiB written moves 10 MiB.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use ferry_api::Progress;
use rustix::fs::SeekFrom;

use crate::direct_io::{self, DirectBuffers, DirectFiles, ReadBack};
use crate::error::{Error, Result};
use crate::throttle::Throttle;

/// The unit of work handed to one worker: big enough to keep the kernel's
/// copy path efficient, small enough for smooth progress, cancel and
/// bandwidth pacing.
const CHUNK: u64 = 8 << 20;

/// The largest single request of a direct copy.
const STEP: usize = 8 << 20;

/// The smallest chunk used under a bandwidth limit.
const MIN_THROTTLED_CHUNK: u64 = 64 << 10;

/// Workers used when the caller does not say: several requests in flight
/// is what lets a copy keep up with QEMU's mirror (16 in flight).
pub const DEFAULT_WORKERS: usize = 4;

/// How a copy is run: its limits, its cancel switch and where its progress
/// goes.
#[derive(Clone, Copy, Default)]
pub struct CopyControl<'a> {
    /// The bandwidth limit, shared by all workers and by every volume of
    /// a chain copy; `None` for no limit.
    pub throttle: Option<&'a Throttle>,
    /// Set to true to stop the copy at the next chunk.
    pub cancel: Option<&'a AtomicBool>,
    /// Called with bytes done and bytes to do after every chunk.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    /// Requests in flight; 0 means [`DEFAULT_WORKERS`].
    pub workers: usize,
    /// How the data is moved: the caller knows whether a guest shares the
    /// disks.
    pub method: CopyMethod,
    /// The largest single read or write of a [`CopyMethod::Direct`] copy,
    /// bytes (a multiple of 4 KiB); 0 means a whole chunk (8 MiB). Smaller
    /// requests let a guest's requests in between: 512 KiB gave the
    /// guest three to five times its share under the same caps
    /// (docs/engine.md, run 9).
    pub direct_request: usize,
}

/// The largest single request of a direct copy that leaves a guest room,
/// for [`CopyControl::direct_request`] (`ferry bench move`,
/// docs/engine.md, run 9: 512 KiB kept the guest writing at 66–94 % of its
/// idle rate under 100–400 MiB/s caps, where 8 MiB requests and
/// `copy_file_range` kept 42–71 %).
pub const GENTLE_DIRECT_REQUEST: usize = 512 << 10;

/// The largest single request of a direct copy told to go as fast as the
/// disks go. Not a whole 8 MiB chunk: a hold before a switch takes effect
/// between two requests, and the guest's writes waited behind each
/// worker's last 8 MiB (the uncapped move's worst switch 8–12 ms with
/// them, 4–8 ms with 2 MiB ones, and the move no slower: docs/engine.md,
/// run 14).
pub const FLAT_OUT_DIRECT_REQUEST: usize = 2 << 20;

/// How a copy moves its data between the files.
///
/// `ferry bench move` measured them with a guest writing 4 KiB
/// synchronous writes to the same disk (docs/engine.md, runs 7 and 8):
/// the kernel's own copy gives the guest about a third more of its rate
/// than whole chunks, paced or not; uncapped, the direct copy is the
/// fastest while the guest takes a core, and whole chunks are with the CPU
/// free.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CopyMethod {
    /// Whole chunks with `pread`/`pwrite` through the page cache: the
    /// fastest here when the copy has the disks and the CPU to itself (a
    /// cold move). Each read is one multi-MiB request, and a guest's write
    /// waits behind it.
    #[default]
    Chunks,
    /// `copy_file_range`, which moves the data inside the kernel in
    /// read-ahead-sized pieces: the guest's requests get in between, and
    /// no user-space copy competes with the guest for the CPU. For a copy
    /// that shares its disks with a running guest. Where the kernel cannot
    /// copy between the two files (another filesystem), the copy falls
    /// back to [`CopyMethod::Chunks`].
    Kernel,
    /// `O_DIRECT` reads and writes of chunks, in requests of
    /// [`CopyControl::direct_request`], each read back from the copy and
    /// compared as it is written (`direct_io`), a hold taking effect
    /// between two requests: no byte
    /// passes through the page cache, so the copy costs little CPU and
    /// leaves no writeback behind for the guest's flushes to wait on. The
    /// copy's verification then checks allocation and size only, its
    /// content having been read back already. Where the filesystem does
    /// not do direct I/O, the copy falls back to [`CopyMethod::Chunks`]
    /// and the full verification.
    Direct,
}

impl std::fmt::Debug for CopyControl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyControl")
            .field("throttle", &self.throttle)
            .field("workers", &self.workers)
            .field("method", &self.method)
            .field("direct_request", &self.direct_request)
            .finish_non_exhaustive()
    }
}

impl CopyControl<'_> {
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// The byte ranges of `file` that hold data, in order.
pub fn data_extents(file: &File, len: u64) -> io::Result<Vec<Range<u64>>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if start >= len {
            break;
        }
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            Ok(e) => e.min(len),
            Err(rustix::io::Errno::NXIO) => len,
            Err(e) => return Err(e.into()),
        };
        out.push(start..end);
        pos = end;
    }
    Ok(out)
}

/// Copies `src` to a new file `dst` (replacing any partial one): same
/// length, same data at the same offsets, holes where `src` has holes
/// (and, with `preallocate`, space reserved for the whole length).
/// Returns the bytes copied. The copy is fsynced before this returns.
pub fn copy_file_sparse(
    src: &Path,
    dst: &Path,
    preallocate: bool,
    ctl: &CopyControl,
) -> Result<u64> {
    let copied = copy_file_data(src, dst, preallocate, ctl)?;
    copied
        .file
        .sync_all()
        .map_err(|e| Error::io("flush", dst, e))?;
    Ok(copied.bytes)
}

/// What [`copy_file_data`] did.
#[derive(Debug)]
pub struct FileCopy {
    /// Bytes of data copied.
    pub bytes: u64,
    /// The copy, open, not yet synced.
    pub file: File,
    /// Whether every chunk was read back from the copy and compared with
    /// what was written ([`CopyMethod::Direct`] on a filesystem that does
    /// direct I/O): its content needs no second reading.
    pub read_back: bool,
    /// The source's data extents, the file ranges copied.
    pub extents: Vec<Range<u64>>,
}

/// [`copy_file_sparse`] without the final fsync, for a caller that syncs
/// the copy later (a chain copy syncs and verifies one layer while it
/// copies the next, so the disk never waits for a flush with nothing
/// queued behind it).
pub fn copy_file_data(
    src: &Path,
    dst: &Path,
    preallocate: bool,
    ctl: &CopyControl,
) -> Result<FileCopy> {
    let input = File::open(src).map_err(|e| Error::io("open", src, e))?;
    let len = input
        .metadata()
        .map_err(|e| Error::io("inspect", src, e))?
        .len();
    let output = create_destination(dst, len, preallocate)?;
    let extents = data_extents(&input, len).map_err(|e| Error::io("map the data of", src, e))?;
    let direct = match ctl.method {
        CopyMethod::Direct => {
            DirectFiles::open(src, dst).map_err(|e| Error::io("open for direct I/O", dst, e))?
        }
        CopyMethod::Chunks | CopyMethod::Kernel => None,
    };
    let files = Files {
        input,
        output,
        direct,
    };
    let copy = ChunkedCopy::new(src, dst, files, chunks(&extents, ctl), ctl);
    if let Some(report) = ctl.progress {
        report(Progress {
            done: 0,
            total: copy.total,
        });
    }
    copy.run(worker_count(ctl, copy.chunks.len()))?;
    Ok(FileCopy {
        bytes: copy.total,
        read_back: copy.files.direct.is_some(),
        file: copy.files.output,
        extents,
    })
}

/// The source and the copy, open, and opened again for direct I/O when
/// the copy is [`CopyMethod::Direct`] and the filesystem allows it.
struct Files {
    input: File,
    output: File,
    direct: Option<DirectFiles>,
}

/// Creates (or truncates) `dst` at the source's length, its space reserved
/// up front when the copy is preallocated.
fn create_destination(dst: &Path, len: u64, preallocate: bool) -> Result<File> {
    // Readable too: a direct copy reads back its unaligned tail.
    let output = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)
        .map_err(|e| Error::io("create", dst, e))?;
    output.set_len(len).map_err(|e| Error::io("size", dst, e))?;
    if preallocate && len > 0 {
        rustix::fs::fallocate(&output, rustix::fs::FallocateFlags::empty(), 0, len)
            .map_err(|e| Error::io("reserve space for", dst, e.into()))?;
    }
    Ok(output)
}

/// The data extents cut into the chunks the workers take one at a time.
fn chunks(extents: &[Range<u64>], ctl: &CopyControl) -> Vec<Range<u64>> {
    // The throttle lets a chunk through before pacing it, so under a limit
    // a chunk is at most one second's worth: the burst stays within the
    // limit's first second instead of a whole 8 MiB chunk per worker.
    // Whole pages, so that a direct copy's chunks stay aligned.
    let chunk_len = ctl.throttle.map_or(CHUNK, |t| {
        CHUNK.min(t.rate().max(MIN_THROTTLED_CHUNK)) / direct_io::ALIGN * direct_io::ALIGN
    });
    extents
        .iter()
        .flat_map(|r| {
            (r.start..r.end)
                .step_by(usize::try_from(chunk_len).unwrap_or(usize::MAX))
                .map(move |s| s..(s + chunk_len).min(r.end))
        })
        .collect()
}

/// The caller's worker count (or [`DEFAULT_WORKERS`]), no more than there
/// are chunks and at least one.
fn worker_count(ctl: &CopyControl, chunks: usize) -> usize {
    if ctl.workers == 0 {
        DEFAULT_WORKERS
    } else {
        ctl.workers
    }
    .min(chunks)
    .max(1)
}

/// One file's copy, shared by its workers: the chunks, the next one to
/// take, and the bytes done so far.
struct ChunkedCopy<'a> {
    src: &'a Path,
    dst: &'a Path,
    files: Files,
    chunks: Vec<Range<u64>>,
    total: u64,
    ctl: &'a CopyControl<'a>,
    next: AtomicUsize,
    done: AtomicU64,
    /// Serialises counting and reporting, so reports never go backwards.
    report_lock: Mutex<()>,
    /// Set by the first worker that fails, so the others stop taking chunks.
    stop: AtomicBool,
}

impl<'a> ChunkedCopy<'a> {
    fn new(
        src: &'a Path,
        dst: &'a Path,
        files: Files,
        chunks: Vec<Range<u64>>,
        ctl: &'a CopyControl<'a>,
    ) -> Self {
        ChunkedCopy {
            src,
            dst,
            files,
            total: chunks.iter().map(|c| c.end - c.start).sum(),
            chunks,
            ctl,
            next: AtomicUsize::new(0),
            done: AtomicU64::new(0),
            report_lock: Mutex::new(()),
            stop: AtomicBool::new(false),
        }
    }

    /// Runs `workers` threads until every chunk is copied or one fails;
    /// the first failure is returned.
    fn run(&self, workers: usize) -> Result<()> {
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let r = self.work();
                        if r.is_err() {
                            self.stop.store(true, Ordering::Relaxed);
                        }
                        r
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::InvalidRequest("a copy worker panicked".into()))
                    })
                })
                .collect()
        });
        for r in results {
            r?;
        }
        Ok(())
    }

    /// One worker: takes chunks until none is left or another worker failed.
    fn work(&self) -> Result<()> {
        let mut bufs = Buffers::default();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let Some(chunk) = self.chunks.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(());
            };
            self.copy_chunk(chunk, &mut bufs)?;
        }
    }

    /// Copies one chunk, unless the copy is cancelled (also while waiting
    /// for the throttle), then counts it.
    fn copy_chunk(&self, chunk: &Range<u64>, bufs: &mut Buffers) -> Result<()> {
        if self.ctl.cancelled() {
            return Err(Error::Cancelled {
                path: self.src.to_path_buf(),
            });
        }
        let n = chunk.end - chunk.start;
        let mut moving = match self.ctl.throttle {
            Some(t) => Some(
                t.acquire(n, self.ctl.cancel)
                    .ok_or_else(|| Error::Cancelled {
                        path: self.src.to_path_buf(),
                    })?,
            ),
            None => None,
        };
        let (input, output) = (&self.files.input, &self.files.output);
        let moved = match (&self.files.direct, self.ctl.method) {
            (Some(direct), _) if direct_io::is_aligned(chunk) => {
                let step = match self.ctl.direct_request {
                    0 => STEP,
                    n => n,
                };
                // A hold takes effect between two requests of the chunk.
                let mut between_steps = || {
                    moving
                        .as_mut()
                        .is_none_or(|m| m.step_aside_while_held(self.ctl.cancel))
                };
                direct_io::copy_and_read_back(
                    direct,
                    chunk.clone(),
                    &mut bufs.direct,
                    step,
                    &mut between_steps,
                )
            }
            (Some(_), _) => copy_and_read_back(input, output, chunk.clone(), bufs),
            (None, CopyMethod::Kernel) => {
                kernel_copy_range(input, output, chunk.clone(), &mut bufs.plain)
                    .map(|()| ReadBack::Same)
            }
            (None, _) => {
                copy_range(input, output, chunk.clone(), &mut bufs.plain).map(|()| ReadBack::Same)
            }
        }
        .map_err(|e| Error::io("copy data into", self.dst, e))?;
        match moved {
            ReadBack::Same => {}
            ReadBack::Differs(at) => {
                return Err(Error::VerifyFailed {
                    source_path: self.src.to_path_buf(),
                    copy: self.dst.to_path_buf(),
                    content: vec![at],
                    allocation: Vec::new(),
                })
            }
            ReadBack::Stopped => {
                return Err(Error::Cancelled {
                    path: self.src.to_path_buf(),
                })
            }
        }
        if self.files.direct.is_none() {
            start_writeback(output, chunk);
        }
        self.count_done(n);
        Ok(())
    }

    fn count_done(&self, n: u64) {
        let _in_order = self.report_lock.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(report) = self.ctl.progress {
            report(Progress {
                done: now,
                total: self.total,
            });
        }
    }
}

/// A worker's buffers: one for a copy through the page cache (and the
/// read-back of a direct copy's unaligned tail), two aligned ones for a
/// direct copy.
#[derive(Default)]
struct Buffers {
    plain: Vec<u8>,
    read_back: Vec<u8>,
    direct: DirectBuffers,
}

/// A direct copy's unaligned piece (a file's last, partial block), copied
/// through the page cache and read back from it.
fn copy_and_read_back(
    input: &File,
    output: &File,
    range: Range<u64>,
    bufs: &mut Buffers,
) -> io::Result<ReadBack> {
    copy_range(input, output, range.clone(), &mut bufs.plain)?;
    // A chunk is never longer than the buffer, so `copy_range` moved it in
    // one piece and the buffer holds all of it.
    let n = bufs.plain.len();
    bufs.read_back.resize(n, 0);
    output.read_exact_at(&mut bufs.read_back[..n], range.start)?;
    Ok(
        match direct_io::first_difference(&bufs.plain[..n], &bufs.read_back[..n]) {
            Some(at) => ReadBack::Differs(range.start + at.start..range.start + at.end),
            None => ReadBack::Same,
        },
    )
}

/// Asks the kernel to write a copied chunk back now rather than when
/// GiBs of dirty pages have piled up: the disk then writes while the copy
/// reads, the final fsync has little left to do, and the guest's own
/// `fdatasync`s do not queue behind a multi-GiB flush. (`DONTNEED` starts
/// the writeback of dirty pages and drops only pages already clean, so
/// most of the copy is still cached for verification.) `ferry bench copy`
/// measured the whole `copy_chain` of 5 GiB at 16.0 s with it and 20.2 s
/// without. Advice only: an error changes nothing about the copy.
fn start_writeback(output: &File, chunk: &Range<u64>) {
    let _ = rustix::fs::fadvise(
        output,
        chunk.start,
        std::num::NonZeroU64::new(chunk.end - chunk.start),
        rustix::fs::Advice::DontNeed,
    );
}

/// Copies one range at the same offset through `buf`. Plain `pread` and
/// `pwrite` of whole chunks beat `copy_file_range` (whose in-kernel splice
/// reads in read-ahead-sized pieces) and `O_DIRECT` on a cold cache here
/// when the CPU is free; `ferry bench copy` measured all three.
fn copy_range(input: &File, output: &File, range: Range<u64>, buf: &mut Vec<u8>) -> io::Result<()> {
    let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
    buf.resize(len.min(usize::try_from(CHUNK).unwrap_or(usize::MAX)), 0);
    let mut pos = range.start;
    while pos < range.end {
        let n = usize::try_from(range.end - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        input.read_exact_at(&mut buf[..n], pos)?;
        output.write_all_at(&buf[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

/// Copies one range at the same offset with `copy_file_range`; whatever
/// the kernel cannot copy between these two files (`EXDEV`, `EOPNOTSUPP`,
/// `ENOSYS`, `EINVAL`: another filesystem, an old kernel) is copied by
/// [`copy_range`] instead.
fn kernel_copy_range(
    input: &File,
    output: &File,
    range: Range<u64>,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    use rustix::io::Errno;
    let mut pos = range.start;
    while pos < range.end {
        let want = usize::try_from(range.end - pos).unwrap_or(usize::MAX);
        let (mut from, mut to) = (pos, pos);
        match rustix::fs::copy_file_range(input, Some(&mut from), output, Some(&mut to), want) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => pos += n as u64,
            Err(Errno::XDEV | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
                return copy_range(input, output, pos..range.end, buf);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn holes_stay_holes_and_data_is_copied() {
        holes_stay_holes_and_data_is_copied_by(CopyMethod::Chunks);
    }

    #[test]
    fn the_kernel_copy_keeps_holes_and_data_too() {
        holes_stay_holes_and_data_is_copied_by(CopyMethod::Kernel);
    }

    #[test]
    fn the_direct_copy_keeps_holes_and_data_too() {
        holes_stay_holes_and_data_is_copied_by(CopyMethod::Direct);
    }

    #[test]
    fn a_direct_copy_reads_back_every_chunk_its_unaligned_tail_included() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        let f = File::create(&src).expect("create");
        let len = (20 << 20) + 100;
        f.set_len(len).expect("len");
        f.write_all_at(&[3u8; 12 << 20], 1 << 20).expect("write");
        f.write_all_at(&[5u8; 4196], len - 4196).expect("write");
        drop(f);
        let ctl = CopyControl {
            method: CopyMethod::Direct,
            ..Default::default()
        };
        let copied = copy_file_data(&src, &dst, false, &ctl).expect("copy");
        let direct_io = DirectFiles::open(&src, &dst).expect("probe").is_some();
        assert_eq!(
            copied.read_back, direct_io,
            "read back where direct I/O works"
        );
        assert_eq!(copied.bytes, (12 << 20) + 4096 + 100);
        assert_eq!(copied.extents.len(), 2, "{:?}", copied.extents);
        drop(copied);
        assert_eq!(
            std::fs::read(&src).expect("read"),
            std::fs::read(&dst).expect("read")
        );
    }

    fn holes_stay_holes_and_data_is_copied_by(method: CopyMethod) {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        let f = File::create(&src).expect("create");
        f.set_len(64 << 20).expect("len");
        f.write_all_at(&[7u8; 4096], 1 << 20).expect("write");
        f.write_all_at(&[9u8; 100], (40 << 20) + 5).expect("write");
        drop(f);
        let seen = Mutex::new(Vec::new());
        let report = |p: Progress| seen.lock().expect("lock").push(p);
        let ctl = CopyControl {
            progress: Some(&report),
            method,
            ..Default::default()
        };
        let copied = copy_file_sparse(&src, &dst, false, &ctl).expect("copy");
        assert!(
            copied < 1 << 20,
            "copied {copied} bytes of a 64 MiB sparse file"
        );
        assert_eq!(
            std::fs::read(&src).expect("read"),
            std::fs::read(&dst).expect("read")
        );
        let out = File::open(&dst).expect("open");
        let extents = data_extents(&out, 64 << 20).expect("extents");
        assert_eq!(extents.len(), 2, "{extents:?}");
        // The copy's data lies where the source's does, no more.
        let source = File::open(&src).expect("open");
        assert_eq!(
            extents,
            data_extents(&source, 64 << 20).expect("extents"),
            "the copy's data lies where the source's does"
        );
        let last = *seen
            .lock()
            .expect("lock")
            .last()
            .expect("progress reported");
        assert_eq!(last.done, last.total);
        assert_eq!(last.total, copied);
    }

    #[test]
    fn a_cancelled_copy_stops_with_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, vec![1u8; 4 << 20]).expect("write");
        let cancel = AtomicBool::new(true);
        let ctl = CopyControl {
            cancel: Some(&cancel),
            ..Default::default()
        };
        let err =
            copy_file_sparse(&src, &dir.path().join("dst"), false, &ctl).expect_err("cancelled");
        assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    }
}
