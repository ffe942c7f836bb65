//! The pacing settings `ferry-bench move` compares (`--settings`): the
//! default (the copy paced by the guest: it keeps 80 % of its I/O rate)
//! and other shares against fixed
//! bandwidth caps, each a whole live move of the same disk in the same run,
//! so the trade-off between move time and what the guest keeps is seen
//! side by side.

use std::fmt;
use std::str::FromStr;

use ferry_api::engine::{MoveRequest, PaceMode, GUEST_SHARE_PCT};

/// What `--settings` holds when not given: the default and the caps issue
/// 13 asks the default to be compared with.
pub(super) const ALL: &str = "default,fixed-50,fixed-100,fixed-200,fixed-400,fixed-none";

/// One way of pacing a live move's copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Setting {
    /// What a move gets when the user says nothing: paced by the guest,
    /// no bandwidth limit.
    Default,
    /// Paced by the guest under this bandwidth cap in MiB/s (`--pace guest
    /// --bandwidth N`): what the controller makes of a cap, and the guest's
    /// latency at a known rate.
    Guest(u64),
    /// Paced by the guest, which is to keep this percent of its I/O rate
    /// (`--guest-share P`), no cap.
    Share(u64),
    /// `pace: fixed` with this cap in MiB/s, or none (as fast as the disks
    /// go).
    Fixed(Option<u64>),
}

impl Setting {
    /// The move request this setting makes.
    pub(super) fn request(self, to: &str) -> MoveRequest {
        let (pace, bandwidth_mib_s, guest_share_pct) = match self {
            Setting::Default => (PaceMode::Guest, None, None),
            Setting::Guest(cap) => (PaceMode::Guest, Some(cap), None),
            Setting::Share(pct) => (PaceMode::Guest, None, Some(pct)),
            Setting::Fixed(cap) => (PaceMode::Fixed, cap, None),
        };
        MoveRequest {
            bandwidth_mib_s,
            pace,
            guest_share_pct,
            ..MoveRequest::new(to)
        }
    }

    /// Its row in the main table. The default keeps the name the row had
    /// before there were settings, so scripts reading the table still find
    /// it; the others start the same way, so they sort beside it.
    pub(super) fn row_name(self) -> String {
        match self {
            Setting::Default => "ferry live move (whole job)".into(),
            Setting::Guest(cap) => format!("ferry live move, guest-paced under {cap} MiB/s"),
            Setting::Share(pct) => format!("ferry live move, guest keeps {pct} %"),
            Setting::Fixed(Some(cap)) => format!("ferry live move, fixed {cap} MiB/s"),
            Setting::Fixed(None) => "ferry live move, fixed, no cap".into(),
        }
    }

    /// How the trade-off table names it.
    pub(super) fn describe(self) -> String {
        match self {
            Setting::Default => "default (guest-paced, no cap)".into(),
            Setting::Guest(cap) => format!("guest-paced under {cap} MiB/s"),
            Setting::Share(pct) => format!("guest-paced, keeps {pct} %"),
            Setting::Fixed(Some(cap)) => format!("fixed {cap} MiB/s"),
            Setting::Fixed(None) => "fixed, no cap".into(),
        }
    }

    /// The pace mode it asks for.
    pub(super) fn pace(self) -> PaceMode {
        self.request("").pace
    }

    /// The bandwidth cap it asks for, MiB/s.
    pub(super) fn cap_mib_s(self) -> Option<u64> {
        self.request("").bandwidth_mib_s
    }
}

/// The spelling `--settings` takes, and the JSON's `setting`.
impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Default => f.write_str("default"),
            Setting::Guest(cap) => write!(f, "guest-{cap}"),
            Setting::Share(pct) => write!(f, "share-{pct}"),
            Setting::Fixed(Some(cap)) => write!(f, "fixed-{cap}"),
            Setting::Fixed(None) => f.write_str("fixed-none"),
        }
    }
}

impl FromStr for Setting {
    type Err = String;

    /// `default`, `fixed-none`, `fixed-N` or `guest-N` with N MiB/s (at
    /// least 1), or `share-P` with P percent (10 to 95).
    fn from_str(s: &str) -> Result<Setting, String> {
        let (lo, hi) = (GUEST_SHARE_PCT.start(), GUEST_SHARE_PCT.end());
        let bad = || {
            format!(
                "unknown setting {s:?}: expected default, fixed-none, fixed-N or guest-N (N in MiB/s, at least 1), or share-P (P in percent, {lo} to {hi})"
            )
        };
        let cap = |n: &str| n.parse::<u64>().ok().filter(|&c| c > 0).ok_or_else(bad);
        let share = |p: &str| {
            p.parse::<u64>()
                .ok()
                .filter(|p| GUEST_SHARE_PCT.contains(p))
                .ok_or_else(bad)
        };
        let s = s.trim();
        if let Some(n) = s.strip_prefix("fixed-").filter(|&n| n != "none") {
            return Ok(Setting::Fixed(Some(cap(n)?)));
        }
        if let Some(n) = s.strip_prefix("guest-") {
            return Ok(Setting::Guest(cap(n)?));
        }
        if let Some(p) = s.strip_prefix("share-") {
            return Ok(Setting::Share(share(p)?));
        }
        match s {
            "default" => Ok(Setting::Default),
            "fixed-none" => Ok(Setting::Fixed(None)),
            _ => Err(bad()),
        }
    }
}

/// The settings in the order they run: the default first, as the bench's
/// only move ran before there were settings (its row, ratio and steps are
/// measured as they always were), then the others in the order given,
/// each once. `None` if the default is missing: the main table's rows are
/// its move.
pub(super) fn run_order(given: &[Setting]) -> Option<Vec<Setting>> {
    if !given.contains(&Setting::Default) {
        return None;
    }
    let mut order = vec![Setting::Default];
    for s in given {
        if !order.contains(s) {
            order.push(*s);
        }
    }
    Some(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(list: &str) -> Vec<Setting> {
        list.split(',')
            .map(|s| s.parse().expect("a setting"))
            .collect()
    }

    #[test]
    fn every_setting_reads_back_as_written() {
        let all = parse_all(ALL);
        assert_eq!(
            all,
            [
                Setting::Default,
                Setting::Fixed(Some(50)),
                Setting::Fixed(Some(100)),
                Setting::Fixed(Some(200)),
                Setting::Fixed(Some(400)),
                Setting::Fixed(None),
            ]
        );
        let written: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(written.join(","), ALL);
        let paced: Setting = "guest-200".parse().expect("a setting");
        assert_eq!(paced, Setting::Guest(200));
        assert_eq!(paced.to_string(), "guest-200");
        let shared: Setting = "share-60".parse().expect("a setting");
        assert_eq!(shared, Setting::Share(60));
        assert_eq!(shared.to_string(), "share-60");
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "fixed",
            "fixed-0",
            "fixed-x",
            "guest-0",
            "guest-none",
            "share-5",
            "share-96",
            "share-",
            "fast",
        ] {
            assert!(bad.parse::<Setting>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_default_runs_first_and_each_setting_once() {
        let order = run_order(&parse_all("fixed-none,default,fixed-100,fixed-none"));
        assert_eq!(
            order,
            Some(vec![
                Setting::Default,
                Setting::Fixed(None),
                Setting::Fixed(Some(100)),
            ])
        );
        assert_eq!(run_order(&parse_all("fixed-100")), None);
    }

    #[test]
    fn requests_and_row_names() {
        let r = Setting::Default.request("domain2");
        assert_eq!((r.pace, r.bandwidth_mib_s), (PaceMode::Guest, None));
        let r = Setting::Fixed(Some(100)).request("domain1");
        assert_eq!((r.pace, r.bandwidth_mib_s), (PaceMode::Fixed, Some(100)));
        assert_eq!(r.to, "domain1");
        let r = Setting::Guest(200).request("domain1");
        assert_eq!((r.pace, r.bandwidth_mib_s), (PaceMode::Guest, Some(200)));
        let r = Setting::Share(60).request("domain1");
        assert_eq!(
            (r.pace, r.bandwidth_mib_s, r.guest_share_pct),
            (PaceMode::Guest, None, Some(60))
        );
        assert_eq!(Setting::Default.row_name(), "ferry live move (whole job)");
        assert_eq!(
            Setting::Fixed(Some(100)).row_name(),
            "ferry live move, fixed 100 MiB/s"
        );
    }
}
