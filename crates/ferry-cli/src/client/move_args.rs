//! What `disk move` and `vm move` take beyond what they move: the
//! destination, how the copy is paced, and whether to wait.

use clap::{Args, ValueEnum};
use ferry_api::engine::{MoveRequest, PaceMode, GUEST_SHARE_PCT};

/// How a live move's copy is paced (see [`PaceMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaceArg {
    /// As fast as the guest keeps its share of its I/O rate (the default).
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

/// The options of a move.
#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The destination domain, by name or id.
    #[arg(long)]
    pub to: String,
    /// Wait for the move, showing its progress; fail if it fails.
    #[arg(long)]
    pub wait: bool,
    /// Bandwidth limit of the copy in MiB/s (with `--pace guest`, an
    /// upper bound).
    #[arg(long, value_name = "MIB_PER_S")]
    pub bandwidth: Option<u64>,
    /// How a live move's copy is paced: `guest` (as fast as the VM keeps
    /// its share of its own I/O rate, --guest-share) or `fixed` (only by
    /// --bandwidth; without it, as fast as the disks go).
    #[arg(long, value_enum, default_value_t = PaceArg::Guest)]
    pub pace: PaceArg,
    /// With `--pace guest`: the percent of its I/O rate the guest keeps
    /// while its disk is copied, 10 to 95 (default 80). Lower ends the
    /// move sooner; higher spares the guest.
    #[arg(long, value_name = "PERCENT", value_parser = share_pct)]
    pub guest_share: Option<u64>,
    /// Your own id for the job (1 to 50 letters, digits, '.', '_' or
    /// '-'), as oVirt's correlation id: jobs can be found by it.
    #[arg(long, value_name = "ID")]
    pub correlation_id: Option<String>,
}

impl MoveArgs {
    /// The request these options make, and whether to wait for its job.
    pub fn request(self) -> (MoveRequest, bool) {
        let request = MoveRequest {
            to: self.to,
            bandwidth_mib_s: self.bandwidth,
            pace: self.pace.into(),
            guest_share_pct: self.guest_share,
            correlation_id: self.correlation_id,
        };
        (request, self.wait)
    }
}

/// A `--guest-share` within what the engine takes, refused here with the
/// range rather than after a round trip.
fn share_pct(s: &str) -> Result<u64, String> {
    let (lo, hi) = (GUEST_SHARE_PCT.start(), GUEST_SHARE_PCT.end());
    s.trim_end_matches('%')
        .parse::<u64>()
        .ok()
        .filter(|p| GUEST_SHARE_PCT.contains(p))
        .ok_or_else(|| {
            format!(
                "{s:?} is not a share the guest can keep: give a whole percent from {lo} to {hi}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_a_whole_percent_in_range() {
        assert_eq!(share_pct("60"), Ok(60));
        assert_eq!(share_pct("95%"), Ok(95));
        for bad in ["", "5", "96", "100", "-1", "sixty", "60.5"] {
            let said = share_pct(bad).expect_err(bad);
            assert!(said.contains("from 10 to 95"), "{bad}: {said}");
        }
    }
}
