//! The disk the bench moves: a raw base of incompressible data and two
//! qcow2 snapshots holding data, all made through the engine.

use std::process::Command;

use anyhow::{Context, Result};
use ferry_api::engine::{CreateDisk, Disk, Volume};
use ferry_api::VolumeFormat;
use ferry_engine::EngineClient;

use super::{DISK, TAIL};
use crate::common::{run_tool, write_incompressible, MIB};

/// The disk and its chain: a raw base of `span` bytes (plus room for the
/// writer) whose first 32 MiB of every 64 MiB hold incompressible data,
/// written straight into the file before any VM opens it; then two engine
/// snapshots, each written with `qemu-io` on its leaf: snap1 16 MiB every
/// 128 MiB (a quarter of the base's data, half over base data, half over
/// holes), snap2 16 MiB every 256 MiB starting in a hole (an eighth).
pub(super) async fn build(c: &EngineClient, span: u64) -> Result<Disk> {
    let disk = c
        .create_disk(&CreateDisk {
            name: DISK.into(),
            domain: "domain1".into(),
            size: span + TAIL,
            format: VolumeFormat::Raw,
            preallocated: false,
        })
        .await
        .context("cannot create the disk")?;
    let base = disk.volumes.first().context("the new disk has no volume")?;
    write_incompressible(&base.path, span)?;
    let layers: [(&str, u64, u64); 2] = [("0x5a", 128 * MIB, 0), ("0x6b", 256 * MIB, 40 * MIB)];
    for (pattern, every, start) in layers {
        let d = c
            .snapshot_disk(DISK)
            .await
            .context("cannot snapshot the disk")?;
        let leaf = d.volumes.last().context("the disk has no leaf")?;
        write_every(leaf, pattern, every, start, span)?;
    }
    Ok(c.disk(DISK).await?)
}

/// Writes 16 MiB of `pattern` into `leaf` at `start` and every `every`
/// bytes after it, up to `span`, with `qemu-io`.
fn write_every(leaf: &Volume, pattern: &str, every: u64, start: u64, span: u64) -> Result<()> {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", leaf.format.qemu_name()]);
    let mut off = start;
    while off < span {
        cmd.args(["-c", &format!("write -P {pattern} {off} 16M")]);
        off += every;
    }
    cmd.arg(&leaf.path);
    run_tool(&mut cmd)
}
