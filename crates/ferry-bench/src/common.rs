//! What `ferry-bench copy` and `ferry-bench move` share: the incompressible
//! test data, the reference copies (`cp`, `qemu-img convert`) every Ferry
//! figure is compared with, and dropping the page cache so each method
//! starts cold.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// The tools Ferry's copy is measured against, each copying one file to
/// another as bytes (a qcow2 layer stays a qcow2 file), so all methods move
/// exactly the same data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefCopy {
    /// `cp --sparse=always`: what an administrator would do by hand.
    Cp,
    /// `qemu-img convert -W -m 16`: QEMU's fastest file copy (out-of-order
    /// writes, 16 requests in flight).
    QemuImg,
    /// The same with `O_DIRECT` on both sides (`-t none -T none`): what a
    /// copy that leaves nothing in the page cache, as a live move's does,
    /// reaches on this disk before it reads anything back. Only
    /// `bench copy` shows it; it is not one of [`RefCopy::ALL`].
    QemuImgDirect,
}

impl RefCopy {
    /// Both, in the order the tables show them.
    pub const ALL: [RefCopy; 2] = [RefCopy::Cp, RefCopy::QemuImg];

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            RefCopy::Cp => "cp --sparse=always",
            RefCopy::QemuImg => "qemu-img convert -W -m 16",
            RefCopy::QemuImgDirect => "qemu-img convert -W -m 16 -t none -T none",
        }
    }

    /// Copies `src` to `dst` and makes the copy durable.
    pub fn copy(self, src: &Path, dst: &Path) -> Result<()> {
        match self {
            RefCopy::Cp => run_tool(Command::new("cp").arg("--sparse=always").arg(src).arg(dst))?,
            RefCopy::QemuImg => run_tool(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "raw", "-W", "-m", "16"])
                    .arg(src)
                    .arg(dst),
            )?,
            RefCopy::QemuImgDirect => run_tool(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "raw", "-W", "-m", "16"])
                    .args(["-t", "none", "-T", "none"])
                    .arg(src)
                    .arg(dst),
            )?,
        }
        fsync(dst)
    }
}

/// Every method pays for making its copy durable, as Ferry's copy does.
pub fn fsync(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot fsync {}", path.display()))
}

/// Runs a tool to completion; its stderr becomes the error.
pub fn run_tool(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Writes back and drops the page cache, so the next method reads from
/// the disk as the first one did. False where that is not permitted (not
/// root, a container without /proc/sys write access): the figures are then
/// warm-cache figures and the tables say so.
pub fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// The median of some timings (sorts them).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Fills `[0, span)` of an existing raw file with incompressible data in
/// 32 MiB runs with 32 MiB holes between (xorshift64, so no copier can win
/// by compressing or deduplicating), then syncs it. Writing the file
/// directly is many times faster than going through `qemu-io`, which
/// matters for multi-GiB bases. Returns the bytes of data written.
pub fn write_incompressible(path: &Path, span: u64) -> Result<u64> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; 8 << 20];
    let mut off = 0;
    let mut written = 0;
    while off < span {
        for piece in 0..4 {
            for word in buf.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            file.write_all_at(&buf, off + piece * 8 * MIB)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written += 8 * MIB;
        }
        off += 64 * MIB;
    }
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    Ok(written)
}
