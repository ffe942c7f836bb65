//! A terminal progress bar fed by the storage layer's byte progress.

use ferry_api::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar showing bytes, rate and ETA; hidden when stderr is not a terminal
/// or `quiet` is set, so scripts and `--json` output stay clean.
pub fn bar(label: &str, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::new(0);
    if quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(label.to_string());
    pb
}

/// Moves `pb` to `p`.
pub fn update(pb: &ProgressBar, p: Progress) {
    if pb.length() != Some(p.total) {
        pb.set_length(p.total);
    }
    pb.set_position(p.done);
}
