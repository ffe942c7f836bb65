//! `--pace` of the move commands.

use clap::ValueEnum;
use ferry_api::engine::PaceMode;

/// How a live move's copy is paced (see [`PaceMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaceArg {
    /// As fast as the guest's own I/O latency allows (the default).
    Guest,
    /// Only by --bandwidth; without it, as fast as the disks go.
    Fixed,
}

impl From<PaceArg> for PaceMode {
    fn from(p: PaceArg) -> Self {
        match p {
            PaceArg::Guest => PaceMode::Guest,
            PaceArg::Fixed => PaceMode::Fixed,
        }
    }
}
