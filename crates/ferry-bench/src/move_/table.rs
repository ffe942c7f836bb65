//! The report as a table for people: a heading saying what was measured,
//! one row per method, a summary of what the rows mean, then the
//! trade-off: one row per pacing setting, and how the guest-paced
//! controller steered.

use super::ferry_move::{StepReport, RELEASE};
use super::report::{LayerReport, PaceSummary, Report, Row, SettingMedians, Spread, TradeoffRow};
use super::settings::Setting;
use super::{mib, GIB, MIB};

/// What a cell shows when there is nothing to show.
const DASH: &str = "-";

/// Prints the report as a table.
pub(super) fn print_table(r: &Report) {
    for line in heading(r)
        .into_iter()
        .chain(rows(&r.rows))
        .chain(summary(r))
        .chain(tradeoff(&r.tradeoff))
        .chain(medians(&r.medians))
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
            "guest writer: {} KiB O_DIRECT+fdatasync writes as fast as acknowledged{}, over {} MiB at {} MiB (no layer data there); accel {}; page cache dropped before each copy: {}",
            r.writer.block_size / 1024,
            r.writer.duty.map_or_else(String::new, |(busy, quiet)| format!(
                " in bursts of {busy} ms with {quiet} ms rests (its rates per second of writing)"
            )),
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
            "ratio ferry copy ({}, the fastest setting, guest writing) / fastest reference ({}): {:.2}  ({:.0} vs {:.0} MiB/s; goal >= 0.90: {})",
            r.ratio.setting,
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
        cleanup_line(r),
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
        "writer during the move vs idle: ferry (default) {:.0} %, proxmox way {:.0} %",
        100.0 * acks(&Setting::Default.row_name()) / acks("writer idle (engine"),
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

/// What the guest felt of the source's deletion: the cleanup step, which
/// retires the source's volumes, and the release of their space after the
/// job.
fn cleanup_line(r: &Report) -> String {
    let step = |name: &str| r.ferry.steps.iter().find(|s| s.name == name);
    let cell = |s: Option<&StepReport>| match s {
        Some(s) => format!(
            "{:.2} s, worst write {}",
            s.seconds.unwrap_or(f64::NAN),
            s.max_stall_ms
                .map_or_else(|| "-".to_string(), |ms| format!("{ms:.0} ms"))
        ),
        None => "-".to_string(),
    };
    format!(
        "ferry cleanup: the step {}; then the {} {}",
        cell(step("cleanup")),
        RELEASE,
        cell(step(RELEASE))
    )
}

/// A blank line, the trade-off table (one row per setting and round), then
/// for each guest-paced move how its controller steered.
fn tradeoff(rows: &[TradeoffRow]) -> Vec<String> {
    let rounds = rows.iter().any(|r| r.round > 1);
    let mut lines = vec![
        String::new(),
        format!(
            "the trade-off: one live move of the same disk per pacing setting{}, back and forth between the domains; writer idle measured before each",
            if rounds { " and round" } else { "" }
        ),
        format!(
            "{}{:<31} {:>8} {:>10} {:>11}  {:<34} {:>11} {:>11}",
            if rounds { "round  " } else { "" },
            "setting",
            "move s",
            "copy MiB/s",
            "writer/idle",
            "worst pause at a switch",
            "worst write",
            "idle worst"
        ),
    ];
    lines.extend(rows.iter().map(|row| {
        let line = tradeoff_line(row);
        if rounds {
            format!("{:>5}  {line}", row.round)
        } else {
            line
        }
    }));
    lines.extend(
        rows.iter()
            .filter_map(|row| {
                let p = row.pace_summary.as_ref()?;
                Some(controller_lines(row, p))
            })
            .flatten(),
    );
    lines
}

/// The setting as the trade-off table names it.
fn describe(setting: &str) -> String {
    setting
        .parse::<Setting>()
        .map_or_else(|_| setting.to_string(), Setting::describe)
}

fn tradeoff_line(row: &TradeoffRow) -> String {
    let worst = row
        .pauses
        .iter()
        .max_by(|a, b| a.ms.total_cmp(&b.ms))
        .map_or(DASH.to_string(), |p| {
            format!("{:.0} ms ({})", p.ms, p.switch)
        });
    format!(
        "{:<31} {:>8.2} {:>10.0} {:>9.0} %  {:<34} {:>11} {:>8.0} ms",
        describe(&row.setting),
        row.seconds,
        row.copy_mib_per_s,
        row.writer_percent_of_idle,
        worst,
        row.worst_write_during_copy_ms
            .map_or(DASH.to_string(), |v| format!("{v:.0} ms")),
        row.idle_worst_write_ms,
    )
}

/// How the controller of a guest-paced move steered: its limits, the
/// guest's latency it saw, and the limit over time.
fn controller_lines(row: &TradeoffRow, p: &PaceSummary) -> Vec<String> {
    let us = |v: Option<u64>| v.map_or(DASH.to_string(), |v| format!("{v} us"));
    let mibs = |v: Option<f64>| v.map_or("unlimited".to_string(), |v| format!("{v:.0}"));
    vec![
        format!(
            "controller ({}): limit min {} / mean {} / max {} MiB/s, unlimited {:.1} s, lowered {} times; guest write latency baseline {}, median {}, max {}; guest's rate kept, as estimated: {}",
            row.setting,
            mibs(p.limit_min_mib_s),
            mibs(p.limit_mean_mib_s),
            mibs(p.limit_max_mib_s),
            p.unlimited_seconds,
            p.decreases,
            us(p.guest_baseline_us),
            us(p.guest_latency_median_us),
            us(p.guest_latency_max_us),
            p.guest_kept_estimate_pct
                .map_or(DASH.to_string(), |k| format!("{k:.0} %")),
        ),
        format!("  limit over the copy (s since start: MiB/s): {}", timeline(row)),
    ]
}

/// With more than one round, a blank line and each setting's medians
/// over its rounds, with their ranges; nothing otherwise (the trade-off
/// rows are the figures).
fn medians(settings: &[SettingMedians]) -> Vec<String> {
    let Some(runs) = settings.iter().map(|m| m.runs).max().filter(|&n| n > 1) else {
        return Vec::new();
    };
    let mut lines = vec![
        String::new(),
        format!("each setting over its {runs} rounds: median (lowest-highest)"),
        format!(
            "{:<31} {:>20} {:>16} {:>17} {:>17} {:>15} {:>14}",
            "setting",
            "move s",
            "copy MiB/s",
            "writer/idle %",
            "worst switch ms",
            "idle worst ms",
            "estimate %"
        ),
    ];
    lines.extend(settings.iter().map(|m| {
        let cell = |s: Option<Spread>, decimals: usize| {
            s.map_or(DASH.to_string(), |s| spread(s, decimals))
        };
        format!(
            "{:<31} {:>20} {:>16} {:>17} {:>17} {:>15} {:>14}",
            describe(&m.setting),
            spread(m.seconds, 2),
            spread(m.copy_mib_per_s, 0),
            spread(m.writer_percent_of_idle, 0),
            cell(m.worst_switch_pause_ms, 0),
            spread(m.idle_worst_write_ms, 0),
            cell(m.guest_kept_estimate_pct, 0),
        )
    }));
    lines
}

/// `7.23 (6.46-8.27)`.
fn spread(s: Spread, decimals: usize) -> String {
    format!(
        "{:.d$} ({:.d$}-{:.d$})",
        s.median,
        s.min,
        s.max,
        d = decimals
    )
}

/// The most entries the limit's timeline shows; longer ones are thinned.
const TIMELINE_MAX: usize = 40;

/// `1.2: 64, 1.7: 96, 2.2: -` (`-`: unlimited).
fn timeline(row: &TradeoffRow) -> String {
    let n = row.pace_samples.len();
    let step = n.div_ceil(TIMELINE_MAX).max(1);
    row.pace_samples
        .iter()
        .step_by(step)
        .map(|s| {
            let limit = s
                .limit_bps
                .map_or("unlimited".to_string(), |l| format!("{:.0}", mib(l)));
            format!("{:.1}: {limit}", s.seconds)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
