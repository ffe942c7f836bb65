//! What `ferry-bench move` reports, as JSON or as a table: the rows (each
//! method's time, bytes, rate, the writer's throughput and pauses), the
//! trade-off between the pacing settings, and the details behind them,
//! derived from what each phase measured.

use ferry_api::engine::{Job, PaceMode};
use ferry_api::VolumeFormat;
use ferry_host::Accel;
use ferry_testkit::guest::WriterConfig;
use serde::Serialize;
use uuid::Uuid;

use super::ferry_move::{FerryResult, PaceSample, StepReport};
use super::guest::idle_window;
use super::guest::Idle;
use super::mirror::MirrorResult;
use super::reference::RefResult;
use super::settings::Setting;
use super::{mib, ms};
use crate::common::RefCopy;

/// Everything the bench measured, printed as a table or as JSON.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) accel: String,
    pub(super) base_gib: u64,
    /// The disk's virtual size.
    pub(super) virtual_bytes: u64,
    /// The chain as moved, base first.
    pub(super) chain: Vec<LayerReport>,
    pub(super) writer: WriterReport,
    /// Whether the page cache was dropped before each copy (needs root).
    pub(super) caches_dropped: bool,
    pub(super) rows: Vec<Row>,
    /// One live move per pacing setting and round, in the order they ran:
    /// round 1's default first (its figures are also the row `ferry live
    /// move (whole job)`).
    pub(super) tradeoff: Vec<TradeoffRow>,
    /// Each setting over its rounds, in the order the settings ran.
    pub(super) medians: Vec<SettingMedians>,
    pub(super) ratio: Ratio,
    pub(super) ferry: FerryDetail,
    pub(super) mirror: MirrorDetail,
}

#[derive(Debug, Serialize)]
pub(super) struct LayerReport {
    pub(super) format: VolumeFormat,
    pub(super) allocated_bytes: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct WriterReport {
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) block_size: u64,
    /// 0: as fast as the disk acknowledges (`O_DIRECT` + `fdatasync`).
    pub(super) rate: u64,
    /// Writing in bursts: ms of writing, ms of rest (`--writer-duty`);
    /// its rates are then per second of writing.
    pub(super) duty: Option<(u64, u64)>,
}

/// One line of the table.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    pub(super) method: String,
    pub(super) seconds: f64,
    pub(super) bytes: Option<u64>,
    pub(super) mib_per_s: Option<f64>,
    pub(super) writer_acks_per_s: Option<f64>,
    /// The longest pause the writer saw at each switch of this method.
    pub(super) pauses: Vec<Pause>,
    /// The longest single write (or gap between writes) while copying.
    pub(super) worst_write_during_copy_ms: Option<f64>,
}

/// One pacing setting's live move: what it cost the guest, and what it
/// took.
#[derive(Debug, Serialize)]
pub(super) struct TradeoffRow {
    /// As `--settings` spells it: `default`, `fixed-100`, `fixed-none`.
    pub(super) setting: String,
    /// Which round of `--rounds` it ran in, from 1.
    pub(super) round: u32,
    /// Its row in `rows` (round 1's move has it).
    pub(super) method: String,
    pub(super) pace: PaceMode,
    pub(super) bandwidth_mib_s: Option<u64>,
    pub(super) job: Uuid,
    /// From where to where, by domain name.
    pub(super) to: String,
    /// job.created → job.finished, by the engine's clock.
    pub(super) seconds: f64,
    /// The agent's clone tasks (see [`FerryDetail::copy_seconds`]).
    pub(super) copy_seconds: f64,
    pub(super) copy_mib_per_s: f64,
    /// The writer just before this move, idle.
    pub(super) idle_acks_per_s: f64,
    pub(super) idle_worst_write_ms: f64,
    /// The writer during the whole move.
    pub(super) writer_acks_per_s: f64,
    /// `writer_acks_per_s` as a percentage of `idle_acks_per_s`.
    pub(super) writer_percent_of_idle: f64,
    /// The longest pause the writer saw at each switch.
    pub(super) pauses: Vec<Pause>,
    /// The longest of `pauses`.
    pub(super) worst_switch_pause_ms: Option<f64>,
    pub(super) worst_write_during_copy_ms: Option<f64>,
    pub(super) steps: Vec<StepReport>,
    /// The guest-paced copy's limit over the move, as the job showed it.
    pub(super) pace_summary: Option<PaceSummary>,
    pub(super) pace_samples: Vec<PaceSample>,
}

/// The controller of a guest-paced copy, over the copy.
#[derive(Debug, Serialize)]
pub(super) struct PaceSummary {
    /// The lowest and highest limit it set, MiB/s (the highest is `None`
    /// if it let the copy run unlimited).
    pub(super) limit_min_mib_s: Option<f64>,
    pub(super) limit_max_mib_s: Option<f64>,
    /// The limit weighted by how long it held, MiB/s, over the time it was
    /// a limit (unlimited time left out).
    pub(super) limit_mean_mib_s: Option<f64>,
    /// How long (of what the bench saw) the copy ran unlimited.
    pub(super) unlimited_seconds: f64,
    /// How often it lowered the limit.
    pub(super) decreases: usize,
    pub(super) guest_baseline_us: Option<u64>,
    /// The guest's latency as the controller saw it: median and highest.
    pub(super) guest_latency_median_us: Option<u64>,
    pub(super) guest_latency_max_us: Option<u64>,
    /// The share of its rate the controller estimated the guest kept,
    /// weighted by how long each estimate held, percent: to set beside
    /// the writer's measured share.
    pub(super) guest_kept_estimate_pct: Option<f64>,
}

/// One setting's figures over every round it ran in: what to compare the
/// settings by, since one run of each is at the mercy of the disk's
/// minute.
#[derive(Debug, Serialize)]
pub(super) struct SettingMedians {
    /// As `--settings` spells it.
    pub(super) setting: String,
    pub(super) runs: usize,
    pub(super) seconds: Spread,
    pub(super) copy_mib_per_s: Spread,
    pub(super) writer_percent_of_idle: Spread,
    /// Of each run's longest pause at a switch.
    pub(super) worst_switch_pause_ms: Option<Spread>,
    /// Of each run's worst idle write before it: the switches' yardstick.
    pub(super) idle_worst_write_ms: Spread,
    /// What the controller estimated the guest kept (guest-paced only).
    pub(super) guest_kept_estimate_pct: Option<Spread>,
}

/// The median of some runs' figure and its range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct Spread {
    pub(super) median: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct Pause {
    pub(super) switch: String,
    pub(super) ms: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct Ratio {
    /// The setting whose copy was fastest, by its median over the rounds
    /// (as `--settings` spells it), which the ratio is of: the goal is for
    /// the fastest setting.
    pub(super) setting: String,
    pub(super) ferry_copy_mib_per_s: f64,
    pub(super) fastest_reference: String,
    pub(super) fastest_reference_mib_per_s: f64,
    pub(super) ratio: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct FerryDetail {
    pub(super) job: Uuid,
    /// job.created → job.finished, by the engine's clock.
    pub(super) total_seconds: f64,
    /// The job's total: what the chain took on disk at prepare.
    pub(super) bytes: u64,
    /// The agent's clone tasks, each from the last poll that did not see it
    /// to the first that saw it finished, summed (they run one after the
    /// other: the early copy of the volumes under the leaf, then the leaf).
    pub(super) copy_seconds: f64,
    /// `createVolumeCrossSD` started → `cloneInternalVolumes` finished, by
    /// the engine's step records: the copy plus the engine's own overhead
    /// (its 300 ms task polling, the volume create and the snapshot).
    pub(super) copy_window_seconds: f64,
    pub(super) steps: Vec<StepReport>,
}

#[derive(Debug, Serialize)]
pub(super) struct MirrorDetail {
    /// blockdev-mirror → the job ready (source and target in sync).
    pub(super) ready_seconds: f64,
    /// blockdev-mirror → pivoted and the job gone.
    pub(super) total_seconds: f64,
    /// The job's `total-progress` at ready: every byte it went over,
    /// zeros included (it writes zero ranges as zeros).
    pub(super) job_bytes: u64,
    /// What the flat target holds on disk afterwards.
    pub(super) target_allocated_bytes: u64,
}

/// One setting's move in one round and the writer's idle rate just before
/// it.
pub(super) struct SettingRun {
    pub(super) setting: Setting,
    /// From 1.
    pub(super) round: u32,
    pub(super) idle: Idle,
    pub(super) ferry: FerryResult,
}

/// What each phase of the bench measured, for [`report`].
pub(super) struct ReportParts {
    pub(super) accel: Accel,
    pub(super) base_gib: u64,
    pub(super) virtual_bytes: u64,
    pub(super) chain: Vec<LayerReport>,
    pub(super) writer: WriterConfig,
    pub(super) dropped: bool,
    /// The default setting's move in round 1: the main rows, the steps.
    pub(super) default: SettingRun,
    /// Every other move, in the order they ran (round 1's other settings,
    /// then each later round's, the default first).
    pub(super) others: Vec<SettingRun>,
    pub(super) refs: Vec<RefResult>,
    pub(super) mirror: MirrorResult,
}

/// The switches of a live move and the names the table gives them.
const SWITCHES: [(&str, &str); 3] = [
    ("blockMigrate", "snapshot"),
    ("finalizeBlockMigrate", "reopen"),
    ("merge", "commit pivot"),
];

/// The report: every row of the table (round 1's moves), the trade-off of
/// the settings (every round's, and each setting's medians), the ratio of
/// Ferry's copy rate to the fastest reference, and the details of Ferry's
/// move and the mirror.
pub(super) fn report(p: ReportParts) -> Report {
    let ferry = &p.default.ferry;
    let total_seconds = total_seconds(ferry);
    let bytes = ferry.job.total_bytes;
    let ferry_rate = mib(bytes) / ferry.copy_seconds;
    let mut rows = ferry_rows(&p, ferry_rate);
    // One row per setting, so scripts find each by its name.
    rows.extend(
        p.others
            .iter()
            .filter(|run| run.round == 1)
            .map(|run| move_row(run, &run.setting.row_name())),
    );
    let tradeoff: Vec<TradeoffRow> = std::iter::once(&p.default)
        .chain(&p.others)
        .map(TradeoffRow::of)
        .collect();
    let medians = medians(&tradeoff);
    let (reference_rows, best) = reference_rows(&p.refs);
    rows.extend(reference_rows);
    rows.extend(mirror_rows(&p.mirror, idle_window(&p.writer).as_secs_f64()));
    let (best_method, best_rate) = best.unwrap_or((RefCopy::Cp, f64::NAN));
    let (fastest_setting, fastest_rate) = medians
        .iter()
        .map(|m| (m.setting.clone(), m.copy_mib_per_s.median))
        .fold((String::new(), f64::NAN), |best, this| {
            if best.1.is_nan() || this.1 > best.1 {
                this
            } else {
                best
            }
        });
    Report {
        accel: accel_name(p.accel),
        base_gib: p.base_gib,
        virtual_bytes: p.virtual_bytes,
        chain: p.chain,
        writer: WriterReport::of(&p.writer),
        caches_dropped: p.dropped,
        rows,
        tradeoff,
        medians,
        ratio: Ratio {
            setting: fastest_setting,
            ferry_copy_mib_per_s: fastest_rate,
            fastest_reference: best_method.label().into(),
            fastest_reference_mib_per_s: best_rate,
            ratio: fastest_rate / best_rate,
        },
        ferry: FerryDetail::of(p.default.ferry, total_seconds),
        mirror: MirrorDetail::of(&p.mirror),
    }
}

fn accel_name(accel: Accel) -> String {
    match accel {
        Accel::Kvm => "kvm".into(),
        Accel::Tcg => "tcg".into(),
    }
}

/// job.created → job.finished by the engine's clock; the host's time of
/// the watch if the job has no end.
fn total_seconds(f: &FerryResult) -> f64 {
    f.job.finished.map_or(f.seconds_host, |end| {
        end.saturating_sub(f.job.created) as f64 / 1000.0
    })
}

/// The writer idle on the engine's VM before the default setting's move,
/// that whole move, and its copy alone.
fn ferry_rows(p: &ReportParts, ferry_rate: f64) -> Vec<Row> {
    let f = &p.default.ferry;
    let bytes = f.job.total_bytes;
    let idle_seconds = idle_window(&p.writer).as_secs_f64();
    vec![
        Row::idle(
            "writer idle (engine's VM)",
            p.default.idle.acks_per_s,
            idle_seconds,
        ),
        move_row(&p.default, &p.default.setting.row_name()),
        Row {
            bytes: Some(bytes),
            mib_per_s: Some(ferry_rate),
            ..Row::plain("  ferry copy + verify (agent clone tasks)", f.copy_seconds)
        },
    ]
}

/// One setting's whole move as a row of the main table.
fn move_row(run: &SettingRun, method: &str) -> Row {
    let f = &run.ferry;
    let bytes = f.job.total_bytes;
    let seconds = total_seconds(f);
    Row {
        bytes: Some(bytes),
        mib_per_s: Some(mib(bytes) / seconds),
        writer_acks_per_s: Some(f.acks_per_s),
        pauses: switch_pauses(&f.steps),
        worst_write_during_copy_ms: step_stall(&f.steps, "cloneInternalVolumes"),
        ..Row::plain(method, seconds)
    }
}

impl TradeoffRow {
    fn of(run: &SettingRun) -> TradeoffRow {
        let f = &run.ferry;
        let pauses = switch_pauses(&f.steps);
        TradeoffRow {
            setting: run.setting.to_string(),
            round: run.round,
            method: run.setting.row_name(),
            pace: run.setting.pace(),
            bandwidth_mib_s: run.setting.cap_mib_s(),
            job: f.job.id,
            to: f.to.clone(),
            seconds: total_seconds(f),
            copy_seconds: f.copy_seconds,
            copy_mib_per_s: mib(f.job.total_bytes) / f.copy_seconds,
            idle_acks_per_s: run.idle.acks_per_s,
            idle_worst_write_ms: ms(run.idle.worst_write),
            writer_acks_per_s: f.acks_per_s,
            writer_percent_of_idle: 100.0 * f.acks_per_s / run.idle.acks_per_s,
            worst_switch_pause_ms: pauses.iter().map(|p| p.ms).reduce(f64::max),
            pauses,
            worst_write_during_copy_ms: step_stall(&f.steps, "cloneInternalVolumes"),
            steps: f.steps.clone(),
            pace_summary: PaceSummary::of(&f.pace, f.copy_end_seconds),
            pace_samples: f.pace.clone(),
        }
    }
}

impl PaceSummary {
    /// Over `samples` (each holding until the next; the last until
    /// `end`, seconds since the move began). `None` without samples: the
    /// copy was not paced by the guest.
    fn of(samples: &[PaceSample], end: f64) -> Option<PaceSummary> {
        let first = samples.first()?;
        let mbps = |bps: u64| mib(bps);
        let mut held = 0.0;
        let mut weighted = 0.0;
        let mut unlimited_seconds = 0.0;
        let (mut estimated, mut kept) = (0.0, 0.0);
        for (i, s) in samples.iter().enumerate() {
            let until = samples.get(i + 1).map_or(end, |n| n.seconds);
            let d = (until - s.seconds).max(0.0);
            if let Some(k) = s.guest_kept_pct {
                estimated += d;
                kept += d * f64::from(k);
            }
            match s.limit_bps {
                Some(l) => {
                    held += d;
                    weighted += d * mbps(l);
                }
                None => unlimited_seconds += d,
            }
        }
        let limits: Vec<u64> = samples.iter().filter_map(|s| s.limit_bps).collect();
        let decreases = samples
            .windows(2)
            .filter(|w| match (w[0].limit_bps, w[1].limit_bps) {
                (Some(a), Some(b)) => b < a,
                (None, Some(_)) => true,
                _ => false,
            })
            .count();
        let mut lat: Vec<u64> = samples.iter().filter_map(|s| s.guest_latency_us).collect();
        lat.sort_unstable();
        let all_limited = samples.iter().all(|s| s.limit_bps.is_some());
        Some(PaceSummary {
            limit_min_mib_s: limits.iter().min().map(|&l| mbps(l)),
            limit_max_mib_s: if all_limited {
                limits.iter().max().map(|&l| mbps(l))
            } else {
                None
            },
            limit_mean_mib_s: (held > 0.0).then(|| weighted / held),
            unlimited_seconds,
            decreases,
            guest_baseline_us: samples
                .iter()
                .rev()
                .find_map(|s| s.guest_baseline_us)
                .or(first.guest_baseline_us),
            guest_latency_median_us: lat.get(lat.len() / 2).copied(),
            guest_latency_max_us: lat.last().copied(),
            guest_kept_estimate_pct: (estimated > 0.0).then(|| kept / estimated),
        })
    }
}

/// Each setting's medians over its runs in `runs`, in the order the
/// settings first ran.
fn medians(runs: &[TradeoffRow]) -> Vec<SettingMedians> {
    let mut settings: Vec<&str> = Vec::new();
    for run in runs {
        if !settings.contains(&run.setting.as_str()) {
            settings.push(&run.setting);
        }
    }
    settings
        .into_iter()
        .filter_map(|setting| {
            let mine: Vec<&TradeoffRow> = runs.iter().filter(|r| r.setting == setting).collect();
            let of = |f: &dyn Fn(&TradeoffRow) -> Option<f64>| {
                Spread::of(mine.iter().filter_map(|r| f(r)).collect())
            };
            Some(SettingMedians {
                setting: setting.to_string(),
                runs: mine.len(),
                seconds: of(&|r| Some(r.seconds))?,
                copy_mib_per_s: of(&|r| Some(r.copy_mib_per_s))?,
                writer_percent_of_idle: of(&|r| Some(r.writer_percent_of_idle))?,
                worst_switch_pause_ms: of(&|r| r.worst_switch_pause_ms),
                idle_worst_write_ms: of(&|r| Some(r.idle_worst_write_ms))?,
                guest_kept_estimate_pct: of(&|r| r.pace_summary.as_ref()?.guest_kept_estimate_pct),
            })
        })
        .collect()
}

impl Spread {
    /// The median (of an even count, the mean of the middle two) and
    /// range of `values`; `None` if there are none. NaNs sort last.
    fn of(mut values: Vec<f64>) -> Option<Spread> {
        values.sort_by(f64::total_cmp);
        let (first, last) = (*values.first()?, *values.last()?);
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 0 {
            (values[mid - 1] + values[mid]) / 2.0
        } else {
            values[mid]
        };
        Some(Spread {
            median,
            min: first,
            max: last,
        })
    }
}

/// The longest pause at each switch of the move that has one.
fn switch_pauses(steps: &[StepReport]) -> Vec<Pause> {
    SWITCHES
        .iter()
        .filter_map(|(name, label)| {
            Some(Pause {
                switch: (*label).to_string(),
                ms: step_stall(steps, name)?,
            })
        })
        .collect()
}

/// The longest pause the writer saw during step `name`.
fn step_stall(steps: &[StepReport], name: &str) -> Option<f64> {
    steps
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.max_stall_ms)
}

/// One row per reference copy, and the fastest of them (the first one on
/// a tie).
fn reference_rows(refs: &[RefResult]) -> (Vec<Row>, Option<(RefCopy, f64)>) {
    let mut rows = Vec::new();
    let mut best: Option<(RefCopy, f64)> = None;
    for (method, secs, b) in refs {
        let rate = mib(*b) / secs;
        if best.is_none_or(|(_, r)| rate > r) {
            best = Some((*method, rate));
        }
        rows.push(Row {
            bytes: Some(*b),
            mib_per_s: Some(rate),
            ..Row::plain(method.label(), *secs)
        });
    }
    (rows, best)
}

/// The writer idle on the mirror's VM, and the mirror.
fn mirror_rows(m: &MirrorResult, idle_seconds: f64) -> [Row; 2] {
    [
        Row::idle("writer idle (mirror's VM)", m.idle, idle_seconds),
        Row {
            bytes: Some(m.job_bytes),
            mib_per_s: Some(mib(m.job_bytes) / m.seconds),
            writer_acks_per_s: Some(m.acks_per_s),
            pauses: vec![Pause {
                switch: "pivot".into(),
                ms: ms(m.pivot_stall),
            }],
            worst_write_during_copy_ms: Some(ms(m.copy_stall)),
            ..Row::plain(
                "proxmox way: blockdev-mirror full write-blocking",
                m.seconds,
            )
        },
    ]
}

impl Row {
    /// A row with only a method and its time.
    fn plain(method: &str, seconds: f64) -> Row {
        Row {
            method: method.into(),
            seconds,
            bytes: None,
            mib_per_s: None,
            writer_acks_per_s: None,
            pauses: Vec::new(),
            worst_write_during_copy_ms: None,
        }
    }

    /// The writer's rate over `seconds` with nothing else going on.
    fn idle(method: &str, acks_per_s: f64, seconds: f64) -> Row {
        Row {
            writer_acks_per_s: Some(acks_per_s),
            ..Row::plain(method, seconds)
        }
    }
}

impl WriterReport {
    fn of(w: &WriterConfig) -> WriterReport {
        WriterReport {
            offset: w.offset,
            len: w.len,
            block_size: w.bs,
            rate: w.rate,
            duty: w.duty.map(|d| (d.busy_ms, d.quiet_ms)),
        }
    }
}

impl FerryDetail {
    fn of(f: FerryResult, total_seconds: f64) -> FerryDetail {
        FerryDetail {
            job: f.job.id,
            total_seconds,
            bytes: f.job.total_bytes,
            copy_seconds: f.copy_seconds,
            copy_window_seconds: copy_window_seconds(&f.job),
            steps: f.steps,
        }
    }
}

/// `createVolumeCrossSD` started → `cloneInternalVolumes` finished, by the
/// engine's step records.
fn copy_window_seconds(job: &Job) -> f64 {
    let step = |name: &str| job.steps.iter().find(|s| s.name.name() == name);
    step("createVolumeCrossSD")
        .and_then(|s| s.started)
        .zip(step("cloneInternalVolumes").and_then(|s| s.finished))
        .map_or(0.0, |(a, b)| b.saturating_sub(a) as f64 / 1000.0)
}

impl MirrorDetail {
    fn of(m: &MirrorResult) -> MirrorDetail {
        MirrorDetail {
            ready_seconds: m.ready_seconds,
            total_seconds: m.seconds,
            job_bytes: m.job_bytes,
            target_allocated_bytes: m.target_allocated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(median: f64, min: f64, max: f64) -> Spread {
        Spread { median, min, max }
    }

    #[test]
    fn a_spread_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(Spread::of(vec![]), None);
        assert_eq!(Spread::of(vec![4.0]), Some(spread(4.0, 4.0, 4.0)));
        assert_eq!(Spread::of(vec![9.0, 1.0, 5.0]), Some(spread(5.0, 1.0, 9.0)));
        assert_eq!(
            Spread::of(vec![8.0, 2.0, 4.0, 6.0]),
            Some(spread(5.0, 2.0, 8.0))
        );
    }

    /// A move of `setting` in `round` that took `seconds`, its writer
    /// keeping `kept` % and, if guest-paced, estimated to keep `estimate`.
    fn run(
        setting: &str,
        round: u32,
        seconds: f64,
        kept: f64,
        estimate: Option<f64>,
    ) -> TradeoffRow {
        TradeoffRow {
            setting: setting.into(),
            round,
            method: String::new(),
            pace: PaceMode::Guest,
            bandwidth_mib_s: None,
            job: Uuid::nil(),
            to: String::new(),
            seconds,
            copy_seconds: seconds,
            copy_mib_per_s: 2000.0 / seconds,
            idle_acks_per_s: 2000.0,
            idle_worst_write_ms: 4.0,
            writer_acks_per_s: 20.0 * kept,
            writer_percent_of_idle: kept,
            pauses: Vec::new(),
            worst_switch_pause_ms: estimate.map(|_| 6.0),
            worst_write_during_copy_ms: None,
            steps: Vec::new(),
            pace_summary: estimate.map(|e| PaceSummary {
                limit_min_mib_s: None,
                limit_max_mib_s: None,
                limit_mean_mib_s: None,
                unlimited_seconds: 0.0,
                decreases: 0,
                guest_baseline_us: None,
                guest_latency_median_us: None,
                guest_latency_max_us: None,
                guest_kept_estimate_pct: Some(e),
            }),
            pace_samples: Vec::new(),
        }
    }

    #[test]
    fn each_setting_is_summed_up_over_its_rounds_in_the_order_it_first_ran() {
        let runs = [
            run("default", 1, 17.0, 76.0, Some(84.0)),
            run("fixed-400", 1, 7.2, 82.0, None),
            run("default", 2, 5.5, 82.0, Some(85.0)),
            run("fixed-400", 2, 7.3, 76.0, None),
            run("default", 3, 7.5, 84.0, Some(86.0)),
        ];
        let m = medians(&runs);
        let names: Vec<&str> = m.iter().map(|m| m.setting.as_str()).collect();
        assert_eq!(names, ["default", "fixed-400"]);
        let (default, fixed) = (&m[0], &m[1]);
        assert_eq!(default.runs, 3);
        assert_eq!(default.seconds, spread(7.5, 5.5, 17.0));
        assert_eq!(default.writer_percent_of_idle, spread(82.0, 76.0, 84.0));
        assert_eq!(
            default.guest_kept_estimate_pct,
            Some(spread(85.0, 84.0, 86.0))
        );
        assert_eq!(default.worst_switch_pause_ms, Some(spread(6.0, 6.0, 6.0)));
        assert_eq!(fixed.runs, 2);
        assert_eq!(fixed.writer_percent_of_idle, spread(79.0, 76.0, 82.0));
        // A fixed cap has no controller, and this one no switch seen.
        assert_eq!(fixed.guest_kept_estimate_pct, None);
        assert_eq!(fixed.worst_switch_pause_ms, None);
    }
}
