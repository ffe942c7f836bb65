//! The few `qemu-img` commands the storage layer needs, with their JSON
//! output decoded into types. Inspection always passes `-U` (force share):
//! a running QEMU holds locks on the images it has open.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_api::VolumeFormat;
use serde::Deserialize;

use crate::error::{Error, Result};

/// One image of `qemu-img info --backing-chain`, leaf first.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageInfo {
    /// The file as QEMU resolved it.
    pub filename: PathBuf,
    /// The format QEMU detected or was told.
    pub format: String,
    /// Virtual size in bytes.
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// The backing file name exactly as the header stores it.
    #[serde(rename = "backing-filename")]
    pub backing_filename: Option<String>,
    /// The backing file resolved against this image's directory.
    #[serde(rename = "full-backing-filename")]
    pub full_backing_filename: Option<PathBuf>,
}

/// One extent of `qemu-img map --output=json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct MapEntry {
    /// Guest offset.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// How many layers down the extent is allocated (0: in the image
    /// itself); with `present: false`, the chain's depth.
    pub depth: u32,
    /// Whether any layer of the chain allocates it.
    #[serde(default = "yes")]
    pub present: bool,
    /// Whether it reads as zeros.
    pub zero: bool,
    /// Whether it has data in a file.
    pub data: bool,
    /// Where that data is in the file of the layer at `depth`.
    #[serde(default)]
    pub offset: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Creates an image file.
pub fn create(
    path: &Path,
    format: VolumeFormat,
    size: u64,
    backing: Option<(&str, VolumeFormat)>,
    preallocate: bool,
) -> Result<()> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", format.qemu_name()]);
    let mut opts = Vec::new();
    if format == VolumeFormat::Qcow2 {
        opts.push("compat=1.1".to_string());
    }
    if preallocate {
        opts.push(match format {
            VolumeFormat::Raw => "preallocation=falloc".to_string(),
            VolumeFormat::Qcow2 => "preallocation=metadata".to_string(),
        });
    }
    if !opts.is_empty() {
        cmd.arg("-o").arg(opts.join(","));
    }
    if let Some((name, fmt)) = backing {
        cmd.args(["-b", name, "-F", fmt.qemu_name()]);
    }
    cmd.arg(path).arg(size.to_string());
    run(&mut cmd).map(|_| ())
}

/// The image and all its backing files, leaf first.
pub fn info_chain(path: &Path) -> Result<Vec<ImageInfo>> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["info", "-U", "--backing-chain", "--output=json"])
        .arg(path);
    let out = run(&mut cmd)?;
    serde_json::from_slice(&out).map_err(|e| Error::QemuImg {
        command: command_line(&cmd),
        stderr: format!("its output could not be decoded: {e}"),
    })
}

/// The allocation map of an image seen through its chain.
pub fn map(path: &Path, format: VolumeFormat) -> Result<Vec<MapEntry>> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["map", "-U", "--output=json", "-f", format.qemu_name()])
        .arg(path);
    let out = run(&mut cmd)?;
    serde_json::from_slice(&out).map_err(|e| Error::QemuImg {
        command: command_line(&cmd),
        stderr: format!("its output could not be decoded: {e}"),
    })
}

/// Rewrites only the backing file name in a qcow2 header (`rebase -u`).
pub fn set_backing_name(path: &Path, backing: &str, backing_format: VolumeFormat) -> Result<()> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["rebase", "-u", "-f", "qcow2", "-b", backing, "-F"])
        .arg(backing_format.qemu_name())
        .arg(path);
    run(&mut cmd).map(|_| ())
}

/// Commits a qcow2 image's data into its backing file (as its header
/// names it), offline: the cold form of a live merge, for a VM that is not
/// running. Leaves the image itself as it was (`-d`); the caller deletes it.
/// Running it twice writes the same data twice, so a retry is safe.
pub fn commit(path: &Path) -> Result<()> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["commit", "-d", "-f", "qcow2"]).arg(path);
    run(&mut cmd).map(|_| ())
}

fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let line = command_line(cmd);
    tracing::debug!(command = %line, "running qemu-img");
    let out = cmd.output().map_err(|e| Error::QemuImg {
        command: line.clone(),
        stderr: format!("it could not be started ({e}); is qemu-utils installed?"),
    })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::QemuImg {
            command: line,
            stderr: if stderr.is_empty() {
                format!("it exited with {}", out.status)
            } else {
                stderr
            },
        })
    }
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}
