//! Ferry's benchmarks: tables of figures measured on this machine in one
//! run, so every row shares the same disk and page cache conditions. Tests
//! never judge by these figures; the docs quote them.
//!
//! - `copy` ([`copy`]): the layer-exact copy alone against `cp` and
//!   `qemu-img convert` on the same files.
//! - `move` ([`move_`]): a whole live move of a running VM's chain through
//!   an in-process engine and agent, with the test guest writing, against
//!   the same copies by `cp`/`qemu-img` and against the Proxmox way
//!   (`blockdev-mirror`).
//!
//! A crate and a binary (`ferry-bench`) of their own because they use the
//! test kit (the guest writer and its oracle), which the release `ferry`
//! binary must not carry; `ferry bench ARGS` runs this binary.

mod common;
pub mod copy;
pub mod move_;

use anyhow::Result;
use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Copy a multi-GiB chain: Ferry's layer-exact copy vs cp and qemu-img.
    Copy(copy::CopyBenchArgs),
    /// Move a running VM's multi-GiB chain live while its guest writes:
    /// Ferry's move vs cp/qemu-img copies and a blockdev-mirror.
    Move(move_::MoveBenchArgs),
}

/// Runs one benchmark.
pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Copy(args) => copy::run(&args),
        BenchCommand::Move(args) => move_::run(&args),
    }
}
