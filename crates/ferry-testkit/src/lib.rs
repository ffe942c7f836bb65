//! Helpers for Ferry's tests: temporary storage domains, volumes written
//! with `qemu-io`, and the guest-visible content and allocation of a volume
//! read with `qemu-img`, the oracle every copy is checked against.
//!
//! Everything here runs the real tools on real files; failures panic with
//! the tool's own message, since this is only ever used from tests.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_api::VolumeFormat;
use ferry_storage::qemu_img::{self, MapEntry};
use ferry_storage::{DomainSet, StorageDomain, Volume, VolumeSpec};
use uuid::Uuid;

pub mod agent;
pub mod engine;
pub mod guest;
pub mod pki;

/// Two fresh storage domains in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct Lab {
    dir: tempfile::TempDir,
    /// The source domain.
    pub d1: StorageDomain,
    /// The destination domain.
    pub d2: StorageDomain,
}

impl Lab {
    /// Creates `domain1` and `domain2` under one temporary root.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ferry-lab-")
            .tempdir_in(scratch_root())
            .expect("create a temporary directory");
        let d1 = StorageDomain::create(dir.path(), "domain1").expect("create domain1");
        let d2 = StorageDomain::create(dir.path(), "domain2").expect("create domain2");
        Lab { dir, d1, d2 }
    }

    /// The directory holding both domains.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Both domains, for chain walks.
    pub fn domains(&self) -> DomainSet {
        DomainSet::new([self.d1.clone(), self.d2.clone()])
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

/// Where tests put their files: `FERRY_TEST_DIR` if set, else the system's
/// temporary directory.
pub fn scratch_root() -> PathBuf {
    std::env::var_os("FERRY_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// Creates a base volume of a new image on `domain`.
pub fn base(domain: &StorageDomain, format: VolumeFormat, size: u64) -> Volume {
    domain
        .create_volume(&VolumeSpec::base(Uuid::new_v4(), format, size))
        .expect("create a base volume")
}

/// Creates a qcow2 child on top of `parent`.
pub fn child(parent: &Volume) -> Volume {
    parent
        .domain()
        .create_volume(&VolumeSpec::child_of(parent))
        .expect("create a child volume")
}

/// Runs `qemu-io` commands (`write -P 0xab 0 64k`, `write -z ...`,
/// `discard ...`) on one volume, opened through its chain.
pub fn qemu_io(volume: &Volume, commands: &[&str]) {
    let format = volume.metadata().expect("read metadata").format;
    qemu_io_path(&volume.path(), format, commands);
}

/// [`qemu_io`] on an image file named by path (a volume the test knows
/// from the engine's API rather than from a domain handle).
pub fn qemu_io_path(path: &Path, format: VolumeFormat, commands: &[&str]) {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", format.qemu_name()]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    cmd.arg(path);
    let out = cmd.output().expect("run qemu-io");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("failed"),
        "qemu-io {commands:?} on {} failed: {stdout}{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bytes a guest sees through the volume's chain.
pub fn guest_content(volume: &Volume) -> Vec<u8> {
    guest_content_of(&volume.path())
}

/// The bytes a guest sees through the image at `path`, any format.
pub fn guest_content_of(path: &Path) -> Vec<u8> {
    let out = tempfile::NamedTempFile::new_in(scratch_root()).expect("temporary file");
    let status = Command::new("qemu-img")
        .args(["convert", "-U", "-O", "raw"])
        .arg(path)
        .arg(out.path())
        .status()
        .expect("run qemu-img convert");
    assert!(
        status.success(),
        "qemu-img convert {} failed",
        path.display()
    );
    std::fs::read(out.path()).expect("read converted image")
}

/// Whether two images read the same through their chains, per
/// `qemu-img compare` (for disks too large to read into memory).
pub fn same_guest_content(a: &Path, b: &Path) -> bool {
    let out = Command::new("qemu-img")
        .args(["compare", "-U"])
        .arg(a)
        .arg(b)
        .output()
        .expect("run qemu-img compare");
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!(
            "qemu-img compare {} {} failed: {}",
            a.display(),
            b.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// What the layer itself allocates, as `(start, length, allocated_here,
/// zero)` runs merged so that equal layouts compare equal however qemu-img
/// splits them.
pub fn own_allocation(volume: &Volume) -> Vec<(u64, u64, bool, bool)> {
    let format = volume.metadata().expect("read metadata").format;
    let map = qemu_img::map(&volume.path(), format).expect("qemu-img map");
    merge_runs(&map)
}

fn merge_runs(map: &[MapEntry]) -> Vec<(u64, u64, bool, bool)> {
    let mut out: Vec<(u64, u64, bool, bool)> = Vec::new();
    for e in map {
        let own = e.depth == 0 && e.present;
        let state = (own, own && e.zero);
        match out.last_mut() {
            Some(last) if (last.2, last.3) == state && last.0 + last.1 == e.start => {
                last.1 += e.length
            }
            _ => out.push((e.start, e.length, state.0, state.1)),
        }
    }
    out
}

/// A buffer of `len` bytes filled with `byte`.
pub fn pattern(byte: u8, len: usize) -> Vec<u8> {
    vec![byte; len]
}

/// Everything under `dir`, by path relative to it: directories as `dir`,
/// `.meta` files with their text, other files with their size and link
/// count. Two snapshots are equal when nothing under `dir` changed that a
/// storage operation could change.
pub fn tree_snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("list a directory") {
            let p = entry.expect("read a directory entry").path();
            let rel = p
                .strip_prefix(dir)
                .expect("entry under the snapshot root")
                .display()
                .to_string();
            let md = std::fs::symlink_metadata(&p).expect("inspect an entry");
            let what = if md.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else if rel.ends_with(".meta") {
                std::fs::read_to_string(&p).expect("read a .meta file")
            } else {
                format!("{} bytes, {} links", md.len(), md.nlink())
            };
            out.insert(rel, what);
        }
    }
    out
}

/// Where in the volume's own file the guest byte at `guest_offset` is
/// stored, per `qemu-img map` (the layer must allocate it with data).
pub fn host_offset(volume: &Volume, guest_offset: u64) -> u64 {
    let format = volume.metadata().expect("read metadata").format;
    let out = Command::new("qemu-img")
        .args(["map", "-U", "--output=json", "-f", format.qemu_name()])
        .arg(volume.path())
        .output()
        .expect("run qemu-img map");
    assert!(out.status.success(), "qemu-img map failed");
    let map: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("decode qemu-img map");
    for e in map {
        let start = e["start"].as_u64().expect("start");
        let length = e["length"].as_u64().expect("length");
        if (start..start + length).contains(&guest_offset) {
            assert_eq!(
                e["depth"].as_u64(),
                Some(0),
                "{guest_offset} is not in this layer"
            );
            let offset = e["offset"]
                .as_u64()
                .expect("the range has data in the file");
            return offset + (guest_offset - start);
        }
    }
    panic!(
        "{guest_offset} is beyond the end of {}",
        volume.path().display()
    );
}
