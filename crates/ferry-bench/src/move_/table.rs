//! The report as a table for people: a heading saying what was measured,
//! one row per method, and a summary of what the rows mean.

use super::report::{LayerReport, Report, Row};
use super::{mib, GIB, MIB};

/// What a cell shows when there is nothing to show.
const DASH: &str = "-";

/// Prints the report as a table.
pub(super) fn print_table(r: &Report) {
    for line in heading(r)
        .into_iter()
        .chain(rows(&r.rows))
        .chain(summary(r))
    {
        println!("{line}");
    }
}

/// The chain, the writer and the conditions, then a blank line.
fn heading(r: &Report) -> Vec<String> {
    let data: u64 = r.chain.iter().map(|l| l.allocated_bytes).sum();
    vec![
        format!(
            "Ferry live-move benchmark: chain {}, {:.0} MiB on disk, {:.2} GiB virtual",
            chain_shape(&r.chain),
            mib(data),
            r.virtual_bytes as f64 / GIB as f64
        ),
        format!(
            "guest writer: {} KiB O_DIRECT+fdatasync writes as fast as acknowledged, over {} MiB at {} MiB (no layer data there); accel {}; page cache dropped before each copy: {}",
            r.writer.block_size / 1024,
            r.writer.len / MIB,
            r.writer.offset / MIB,
            r.accel,
            if r.caches_dropped { "yes" } else { "no (not permitted here)" }
        ),
        String::new(),
    ]
}

/// `base(raw, N MiB) <- snap1(qcow2, N MiB) <- ...`
fn chain_shape(chain: &[LayerReport]) -> String {
    let layers: Vec<String> = chain
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let name = if i == 0 {
                "base".to_string()
            } else {
                format!("snap{i}")
            };
            format!(
                "{name}({}, {:.0} MiB)",
                l.format.qemu_name(),
                mib(l.allocated_bytes)
            )
        })
        .collect();
    layers.join(" <- ")
}

/// The column headers and one line per row.
fn rows(rows: &[Row]) -> Vec<String> {
    let header = [
        "method",
        "seconds",
        "MiB",
        "MiB/s",
        "acks/s",
        "longest pause per switch",
        "worst write during copy",
    ];
    let mut lines = vec![format!(
        "{:<50} {:>8} {:>7} {:>7} {:>9}  {:<52} {}",
        header[0], header[1], header[2], header[3], header[4], header[5], header[6]
    )];
    lines.extend(rows.iter().map(row_line));
    lines
}

fn row_line(row: &Row) -> String {
    format!(
        "{:<50} {:>8.2} {:>7} {:>7} {:>9}  {:<52} {}",
        row.method,
        row.seconds,
        row.bytes
            .map_or(DASH.to_string(), |b| format!("{:.0}", mib(b))),
        row.mib_per_s
            .map_or(DASH.to_string(), |v| format!("{v:.0}")),
        row.writer_acks_per_s
            .map_or(DASH.to_string(), |v| format!("{v:.1}")),
        pauses_cell(row),
        row.worst_write_during_copy_ms
            .map_or(DASH.to_string(), |v| format!("{v:.0} ms")),
    )
}

/// `snapshot 42 ms, reopen 63 ms, ...`
fn pauses_cell(row: &Row) -> String {
    if row.pauses.is_empty() {
        return DASH.to_string();
    }
    row.pauses
        .iter()
        .map(|p| format!("{} {:.0} ms", p.switch, p.ms))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A blank line, then the ratio against the goal, the writer's share of
/// its idle rate, Ferry's copy window and steps, and the mirror's times.
fn summary(r: &Report) -> Vec<String> {
    vec![
        String::new(),
        format!(
            "ratio ferry copy / fastest reference ({}): {:.2}  ({:.0} vs {:.0} MiB/s; goal >= 0.90: {})",
            r.ratio.fastest_reference,
            r.ratio.ratio,
            r.ratio.ferry_copy_mib_per_s,
            r.ratio.fastest_reference_mib_per_s,
            if r.ratio.ratio >= 0.9 { "met" } else { "NOT met" }
        ),
        writer_share(&r.rows),
        format!(
            "ferry copy window by the engine's steps (createVolumeCrossSD start -> cloneInternalVolumes end): {:.2} s ({:.0} MiB/s)",
            r.ferry.copy_window_seconds,
            mib(r.ferry.bytes) / r.ferry.copy_window_seconds
        ),
        steps_line(r),
        format!(
            "mirror: ready after {:.2} s, pivoted at {:.2} s; its job went over {:.0} MiB (zeros included), the flat target holds {:.0} MiB",
            r.mirror.ready_seconds,
            r.mirror.total_seconds,
            mib(r.mirror.job_bytes),
            mib(r.mirror.target_allocated_bytes)
        ),
    ]
}

/// The writer's rate during each move as a share of its idle rate on the
/// same VM.
fn writer_share(rows: &[Row]) -> String {
    let acks = |name: &str| {
        rows.iter()
            .find(|row| row.method.starts_with(name))
            .and_then(|row| row.writer_acks_per_s)
            .unwrap_or(f64::NAN)
    };
    format!(
        "writer during the move vs idle: ferry {:.0} %, proxmox way {:.0} %",
        100.0 * acks("ferry live move") / acks("writer idle (engine"),
        100.0 * acks("proxmox way") / acks("writer idle (mirror")
    )
}

/// Each of Ferry's steps with its time by the engine's records.
fn steps_line(r: &Report) -> String {
    let steps: Vec<String> = r
        .ferry
        .steps
        .iter()
        .map(|s| match s.seconds {
            Some(secs) => format!("{} {secs:.2} s", s.name),
            None => format!("{} -", s.name),
        })
        .collect();
    format!("ferry steps: {}", steps.join(", "))
}
