//! Guest-aware pacing of a live move's copy: the copy runs as fast as the
//! guest lets it keep most of its own I/O rate. Every reading of the
//! guest's I/O (QEMU's own counts on the VM's host) gives its requests'
//! latency since the last reading and the share of that time the guest
//! spent waiting on them. A guest that waits on one request at a time
//! loses, to the copy, the extra latency of each request times the
//! requests it makes: `busy × (1 − baseline / latency)` of its rate, where
//! `busy` is its time in requests over the interval (a guest with many
//! requests in flight, `busy` above 1, loses `1 − baseline / latency`).
//! A copy on the VM's own host also takes CPU from it: the time its
//! virtual CPUs waited for a host CPU beyond what they waited without the
//! copy, over the interval, is lost too, and is added. The baseline is
//! the guest watched for a fifth of a second before the copy begins
//! ([`Pacer::watched`]), or its life's average where the flow could not
//! watch it; under TCG on a fast disk the estimate then reads within a
//! few points of what a synchronous writer keeps (docs/engine.md, run
//! 12).
//! The controller keeps that estimated loss under the move's target (a
//! fifth unless it says: the guest keeps 80 %): it
//! raises the limit while the loss is well below it (quickly up to just
//! under where it last had to back off, then slowly, probing), holds it
//! within a band below, and cuts it in proportion to the excess above. A
//! guest that makes few requests loses little to a slower disk, so the
//! copy takes more of it; a guest whose every request waits gets its
//! rate kept. While the guest rests (too few requests in an interval to
//! say anything) the copy takes the whole disk, and when the guest writes
//! again the limit goes straight back to where it was while it last
//! wrote, not down from "unlimited" one cut per reading: a guest whose
//! I/O comes in bursts gives the copy its rests and gets its own rate
//! back at once. The job's `--bandwidth` stays an upper bound. This is the
//! controller alone, as a pure state machine, so its behaviour is tested
//! without a guest; the flow feeds it readings and applies its limit to
//! the copy tasks.

use std::time::{Duration, Instant};

use ferry_api::engine::{GUEST_SHARE_DEFAULT_PCT, GUEST_SHARE_PCT};
use ferry_api::vm::VmIo;

/// The limit a paced copy starts at: a fraction of a disk's speed, so the
/// first readings see the guest before the copy has flooded anything.
pub const START_BPS: u64 = 128 << 20;

/// The lowest limit: the copy always moves on.
pub const FLOOR_BPS: u64 = 8 << 20;

/// The highest limit the controller sets without a `--bandwidth`; above
/// it the copy runs unlimited, as the disks allow.
pub const UNLIMITED_ABOVE_BPS: u64 = 4 << 30;

/// At or below this limit the band does not hold it: a loss within the
/// band takes it on down to the floor ([`Pacer::cut`]).
const HOLD_ABOVE_BPS: u64 = 32 << 20;

/// Below this fraction of the target loss the limit grows; between it and
/// the target it holds (a band, so the limit settles instead of see-sawing
/// around the target).
const GROW_BELOW: f64 = 0.75;

/// Growing towards where it last backed off, the limit may go this close
/// to it quickly; above, it probes in small steps.
const NEAR_LAST_CUT: f64 = 0.85;

/// A latency this much above the baseline, in nanoseconds, plus
/// [`SLACK_SHARE`] of the baseline, is noise, not a cost: the baseline is
/// the least the guest has shown, which noise pulls down. It is small: a
/// fixed 20 µs hid half the loss of a guest whose writes take 73 µs
/// (docs/engine.md, run 12).
const SLACK_NS: f64 = 1_000.0;

/// The share of the baseline a latency may be above it as noise.
const SLACK_SHARE: f64 = 0.02;

/// The shortest interval between two readings that is judged (the flow
/// reads about every 300 ms).
const SHORTEST_INTERVAL: Duration = Duration::from_millis(100);

/// The weight of the newest latency in the smoothed one.
const SMOOTHING: f64 = 0.5;

/// The fewest guest requests in an interval for its latency to count: an
/// interval with fewer says little, and an idle guest is not in the way.
const MIN_REQUESTS: u64 = 3;

/// The fewest requests in an interval for its latency to lower the
/// baseline (a few lucky requests are not the guest's normal).
const BASELINE_REQUESTS: u64 = 20;

/// The least time a guest's vCPUs must have wanted a host CPU in an
/// interval for their wait to count: a guest that mostly sleeps loses
/// nothing to a busy host CPU, and a few lucky microseconds are noise.
const MIN_RUNNABLE_NS: u64 = 5_000_000;

/// The shortest watch of a guest before its copy.
pub const WATCH_AT_LEAST: Duration = Duration::from_millis(200);

/// The longest: the move waits this long at most for it.
pub const WATCH_AT_MOST: Duration = Duration::from_millis(500);

/// The requests that make a watch long enough after [`WATCH_AT_LEAST`].
const WATCH_REQUESTS: u64 = 200;

/// A paced copy's controller.
#[derive(Debug, Clone)]
pub struct Pacer {
    limit: u64,
    ceiling: Option<u64>,
    /// The most of its I/O rate the guest is to lose to the copy, as
    /// estimated from its latency (0 to 1).
    target_loss: f64,
    baseline_ns: Option<f64>,
    smoothed_ns: Option<f64>,
    /// The share of their runnable time the guest's vCPUs waited for a
    /// host CPU without the copy (their life's before the move, or the
    /// least since).
    cpu_baseline: Option<f64>,
    /// The share of the interval the guest lost waiting for a host CPU
    /// beyond that, smoothed.
    cpu_loss: Option<f64>,
    /// Whether the next reading starts the smoothing afresh: after a cut,
    /// so the spike that caused it is not cut for again in its echo.
    fresh: bool,
    loss: Option<f64>,
    last: Option<(VmIo, Instant)>,
    /// The limit at the last cut: growing back, the limit slows down
    /// before it.
    last_cut: Option<u64>,
    /// While the guest rests: the limit it had while it last wrote, which
    /// its next burst starts from.
    resting_from: Option<u64>,
}

/// What the pacer shows of itself (job view, events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceView {
    /// The copy's limit now, bytes per second (`None`: unlimited).
    pub limit_bps: Option<u64>,
    /// The guest's request latency over the last interval, smoothed, in
    /// microseconds.
    pub latency_us: Option<u64>,
    /// Its latency without the copy, in microseconds: its average before
    /// the move, or the lowest it has had since, if lower.
    pub baseline_us: Option<u64>,
    /// The share of its I/O rate the guest keeps, as estimated over the
    /// last interval, in percent: what the move costs the VM, in the
    /// terms the pacing steers by.
    pub kept_pct: Option<u8>,
}

impl Pacer {
    /// A pacer under `ceiling` bytes per second (the job's bandwidth), or
    /// none, that lets the guest keep `share_pct` percent of its I/O rate
    /// (`None`: [`GUEST_SHARE_DEFAULT_PCT`]; the API checked it is in
    /// [`GUEST_SHARE_PCT`], and it is clamped there all the same).
    pub fn new(ceiling: Option<u64>, share_pct: Option<u64>) -> Self {
        let share = share_pct
            .unwrap_or(GUEST_SHARE_DEFAULT_PCT)
            .clamp(*GUEST_SHARE_PCT.start(), *GUEST_SHARE_PCT.end());
        Pacer {
            limit: ceiling.map_or(START_BPS, |c| c.min(START_BPS)),
            ceiling,
            target_loss: 1.0 - share as f64 / 100.0,
            baseline_ns: None,
            smoothed_ns: None,
            cpu_baseline: None,
            cpu_loss: None,
            fresh: false,
            loss: None,
            last: None,
            last_cut: None,
            resting_from: None,
        }
    }

    /// The limit to apply now (`None`: unlimited).
    pub fn limit(&self) -> Option<u64> {
        match self.ceiling {
            None if self.limit >= UNLIMITED_ABOVE_BPS => None,
            _ => Some(self.limit),
        }
    }

    /// What it shows.
    pub fn view(&self) -> PaceView {
        PaceView {
            limit_bps: self.limit(),
            latency_us: self.smoothed_ns.map(micros),
            baseline_us: self.baseline_ns.map(micros),
            kept_pct: self.loss.map(percent_kept),
        }
    }

    /// The share of its I/O rate the guest lost to the copy over the last
    /// interval, as estimated (0 to 1), once it has written.
    pub fn loss(&self) -> Option<f64> {
        self.loss
    }

    /// Takes two readings of the guest made before the copy began,
    /// `before` and `now` (made `at`): what it did between them is what it
    /// does without the copy, a truer baseline than its life's average,
    /// which takes in whatever slowed it before (earlier moves among
    /// them). A window with too few requests, or too little time on its
    /// vCPUs, to say leaves the life's average for that figure. The next
    /// reading is judged from this one.
    pub fn watched(&mut self, before: VmIo, now: VmIo, at: Instant) {
        self.first_reading(now, at);
        if let Some((lat, _)) = latency_ns(&before, &now, BASELINE_REQUESTS) {
            self.baseline_ns = Some(lat);
        }
        if let Some(share) = cpu_wait_share(&before, &now) {
            self.cpu_baseline = Some(share);
        }
    }

    /// The first reading: the guest's averages over its life so far, as
    /// its baseline.
    fn first_reading(&mut self, now: VmIo, at: Instant) {
        let life = VmIo::default();
        self.last = Some((now, at));
        self.baseline_ns = latency_ns(&life, &now, 1).map(|(lat, _)| lat);
        self.cpu_baseline = cpu_wait_share(&life, &now);
    }

    /// Takes a reading without judging the interval before it: one that
    /// spans a switch of the VM's disks (`blockMigrate`'s snapshot, the
    /// copy held for it), whose cost to the guest is the switch's, not the
    /// copy's rate's, and which the copy cannot lower by slowing down.
    /// The next reading is judged from this one.
    pub fn restart(&mut self, now: VmIo, at: Instant) {
        if self.last.is_some() {
            self.last = Some((now, at));
        } else {
            self.first_reading(now, at);
        }
    }

    /// Takes a reading of the guest's cumulative I/O, made `at`, and
    /// returns the limit to apply. The first reading sets the baseline:
    /// the guest's average latency over its life so far, before this copy
    /// ran.
    pub fn observe(&mut self, now: VmIo, at: Instant) -> Option<u64> {
        let Some((last, then)) = self.last else {
            self.first_reading(now, at);
            return self.limit();
        };
        // Too short an interval says more about the moment than the copy:
        // the first reading after a switch comes milliseconds after it,
        // amid the guest's first writes to its new leaf. It is judged
        // with the next.
        let seconds = at.saturating_duration_since(then).as_secs_f64();
        if seconds < SHORTEST_INTERVAL.as_secs_f64() {
            return self.limit();
        }
        self.last = Some((now, at));
        let Some((lat, requests)) = latency_ns(&last, &now, MIN_REQUESTS) else {
            self.rest();
            return self.limit();
        };
        if let Some(limit) = self.resting_from.take() {
            self.limit = limit;
        }
        let fresh = std::mem::take(&mut self.fresh);
        let smoothed = self
            .smoothed_ns
            .filter(|_| !fresh)
            .map_or(lat, |s| SMOOTHING * lat + (1.0 - SMOOTHING) * s);
        self.smoothed_ns = Some(smoothed);
        // A guest first seen idle learns its baseline now; one seen faster
        // than its baseline shows a truer one (its life's average took in
        // whatever slowed it before, earlier moves among them).
        let baseline = match self.baseline_ns {
            Some(b) if requests >= BASELINE_REQUESTS => b.min(smoothed),
            Some(b) => b,
            None => smoothed,
        };
        self.baseline_ns = Some(baseline);
        let busy = busy_ns(&last, &now) / 1e9 / seconds;
        let slower = (1.0 - (baseline * (1.0 + SLACK_SHARE) + SLACK_NS) / smoothed).max(0.0);
        let (cpu_now, cpu) = self.cpu_lost(&last, &now, seconds, fresh);
        let loss = (busy.min(1.0) * slower + cpu).min(1.0);
        self.loss = Some(loss);
        if loss > self.target_loss {
            self.cut(loss);
            // Cut once per spike, not again on its echo in the smoothed
            // values (shown meanwhile at the lower of the two).
            self.smoothed_ns = Some(lat.min(smoothed));
            self.cpu_loss = Some(cpu_now.min(cpu));
            self.fresh = true;
        } else if loss < GROW_BELOW * self.target_loss {
            self.increase();
        } else if self.limit <= HOLD_ABOVE_BPS {
            // This slow, a copy held in the band would crawl for the rest
            // of the move for a loss it may not cause: on to the floor,
            // where a guest still losing is not losing to the copy.
            self.cut(loss);
        }
        self.limit()
    }

    /// The share of the interval the guest lost waiting for a host CPU
    /// beyond its baseline: this interval's and the smoothed one. Nothing
    /// where the host does not tell or the guest hardly ran.
    fn cpu_lost(&mut self, last: &VmIo, now: &VmIo, seconds: f64, fresh: bool) -> (f64, f64) {
        if now.vcpu_threads == 0 || now.vcpu_threads != last.vcpu_threads || seconds <= 0.0 {
            return (0.0, 0.0);
        }
        // vCPUs that hardly wanted a host CPU lost nothing to it.
        let lost = cpu_wait_share(last, now).map_or(0.0, |share| {
            let baseline = self.cpu_baseline.map_or(share, |b| b.min(share));
            self.cpu_baseline = Some(baseline);
            let runnable = (now.vcpu_run_ns.saturating_add(now.vcpu_wait_ns))
                .saturating_sub(last.vcpu_run_ns.saturating_add(last.vcpu_wait_ns))
                as f64;
            let extra = runnable * (share - baseline);
            (extra / (f64::from(now.vcpu_threads) * seconds * 1e9)).clamp(0.0, 1.0)
        });
        let smoothed = self
            .cpu_loss
            .filter(|_| !fresh)
            .map_or(lost, |s| SMOOTHING * lost + (1.0 - SMOOTHING) * s);
        self.cpu_loss = Some(smoothed);
        (lost, smoothed)
    }

    /// Lowers the limit in proportion to how far the guest's loss is over
    /// the target: by a quarter just over it, by half at twice the target.
    fn cut(&mut self, loss: f64) {
        let over = ((loss - self.target_loss) / self.target_loss).clamp(0.0, 1.0);
        let keep = 0.75 - 0.25 * over;
        if self.limit <= FLOOR_BPS {
            // Already as slow as a copy goes and the guest still slower
            // than its baseline: the copy is not what slows it (its
            // workload changed). Its latency now is its new baseline, or
            // the copy would crawl at the floor for the rest of the move.
            // The same for its wait for a host CPU: the next reading's
            // is its new baseline.
            self.baseline_ns = self.smoothed_ns;
            self.cpu_baseline = None;
            self.cpu_loss = None;
        }
        self.last_cut = Some(self.limit);
        let cut = scale(self.limit, keep).max(FLOOR_BPS);
        // The floor never lifts it above the job's bandwidth.
        self.limit = self.ceiling.map_or(cut, |c| cut.min(c));
    }

    /// A guest at rest is not in the way: the copy runs as fast as the
    /// job allows until it writes again.
    fn rest(&mut self) {
        self.resting_from.get_or_insert(self.limit);
        self.limit = self.ceiling.unwrap_or(UNLIMITED_ABOVE_BPS);
    }

    /// Grows the limit: by half (at least 16 MiB/s) away from where it
    /// last had to be cut (a move is short: from the start to a fast
    /// disk's speed in a few readings), by a sixteenth (at least 4 MiB/s)
    /// near it, so it stays near what the guest bears rather than
    /// overshooting it every few readings; well past it, the guest bears
    /// more now and the limit grows quickly again. Up to the ceiling.
    fn increase(&mut self) {
        if self
            .last_cut
            .is_some_and(|c| self.limit > scale(c, 1.0 / NEAR_LAST_CUT))
        {
            self.last_cut = None;
        }
        let quick = self
            .last_cut
            .is_none_or(|c| self.limit < scale(c, NEAR_LAST_CUT));
        let step = if quick {
            (self.limit / 2).max(16 << 20)
        } else {
            (self.limit / 16).max(4 << 20)
        };
        let mut grown = self.limit.saturating_add(step);
        if let Some(c) = self.last_cut.filter(|_| quick) {
            // Quickly up to just under the last cut, not past it.
            grown = grown.min(scale(c, NEAR_LAST_CUT).max(self.limit));
        }
        let grown = grown.min(UNLIMITED_ABOVE_BPS);
        self.limit = self.ceiling.map_or(grown, |c| grown.min(c));
    }
}

/// `bps` times `factor` (not negative), in whole bytes per second.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn scale(bps: u64, factor: f64) -> u64 {
    (bps as f64 * factor).clamp(0.0, u64::MAX as f64) as u64
}

/// What a guest keeps of its rate when it loses `loss` of it (0 to 1), in
/// whole percent.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn percent_kept(loss: f64) -> u8 {
    ((1.0 - loss) * 100.0).round().clamp(0.0, 100.0) as u8
}

/// Nanoseconds as whole microseconds (a latency: finite, not negative,
/// far below `u64::MAX`; clamped all the same).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn micros(ns: f64) -> u64 {
    (ns / 1000.0).round().clamp(0.0, u64::MAX as f64) as u64
}

/// Whether a guest watched before its copy from reading `before` to
/// `now`, for `elapsed`, has shown enough to be its baseline: a few
/// hundred requests (a busy guest, in a fifth of a second), or next to
/// none in a fifth of a second (an idle guest: there is nothing to learn,
/// and its move should not wait), or half a second of whatever it did (a
/// guest with a slow disk or a light load: what there is).
pub fn watched_enough(before: &VmIo, now: &VmIo, elapsed: Duration) -> bool {
    let seen = requests(before, now);
    elapsed >= WATCH_AT_MOST
        || (elapsed >= WATCH_AT_LEAST && !(MIN_REQUESTS..WATCH_REQUESTS).contains(&seen))
}

/// The guest's writes and flushes between two readings (reads are served
/// from the source and barely touched by the copy's writes): how many.
fn requests(before: &VmIo, after: &VmIo) -> u64 {
    (after.wr_operations + after.flush_operations)
        .saturating_sub(before.wr_operations + before.flush_operations)
}

/// The time the guest's writes and flushes between two readings took,
/// summed, in nanoseconds.
fn busy_ns(before: &VmIo, after: &VmIo) -> f64 {
    (after.wr_total_time_ns + after.flush_total_time_ns)
        .saturating_sub(before.wr_total_time_ns + before.flush_total_time_ns) as f64
}

/// The share of their runnable time the guest's vCPUs waited for a host
/// CPU between two readings, or `None` if they hardly wanted one (or the
/// host does not tell).
fn cpu_wait_share(before: &VmIo, after: &VmIo) -> Option<f64> {
    let wait = after.vcpu_wait_ns.saturating_sub(before.vcpu_wait_ns);
    let run = after.vcpu_run_ns.saturating_sub(before.vcpu_run_ns);
    let runnable = run.saturating_add(wait);
    (after.vcpu_threads > 0 && runnable >= MIN_RUNNABLE_NS).then(|| wait as f64 / runnable as f64)
}

/// The mean latency of the guest's writes and flushes between two
/// readings and how many there were, or `None` with fewer than `min`.
fn latency_ns(before: &VmIo, after: &VmIo, min: u64) -> Option<(f64, u64)> {
    let ops = requests(before, after);
    if ops < min.max(1) {
        return None;
    }
    Some((busy_ns(before, after) / ops as f64, ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long a simulated interval lasts: the flow polls about three
    /// times a second.
    const INTERVAL: Duration = Duration::from_millis(300);

    /// A simulated guest that writes and flushes one request at a time,
    /// thinking `think` ns between each pair, its requests taking `base`
    /// ns plus a queueing delay that grows with the copy's rate (equal to
    /// `base` at `knee` bytes per second: the shape a shared disk has)
    /// plus `spike`; its thinking runs on its vCPU, which waits for a host
    /// CPU as long again as it thinks at `cpu_knee` bytes per second of
    /// copy (the copy and the guest on one host's CPUs).
    struct Guest {
        io: VmIo,
        at: Instant,
        base: f64,
        think: f64,
        knee: f64,
        cpu_knee: f64,
        spike: f64,
    }

    impl Guest {
        /// One interval under the copy's limit: the reading at its end,
        /// and the guest's rate in it against its rate with no copy.
        // The simulation's figures are small, positive and finite.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        fn interval(&mut self, copy_bps: Option<u64>) -> (VmIo, Instant, f64) {
            let rate = copy_bps.map_or(10e9, |r| r as f64);
            let lat = self.base * (1.0 + rate / self.knee) + self.spike;
            let cpu_wait = self.think * rate / self.cpu_knee;
            let cycle = self.think + cpu_wait + 2.0 * lat;
            let pairs = (INTERVAL.as_nanos() as f64 / cycle).round() as u64;
            self.io.wr_operations += pairs;
            self.io.flush_operations += pairs;
            self.io.wr_total_time_ns += (lat * pairs as f64) as u64;
            self.io.flush_total_time_ns += (lat * pairs as f64) as u64;
            self.io.vcpu_run_ns += (self.think * pairs as f64) as u64;
            self.io.vcpu_wait_ns += (cpu_wait * pairs as f64) as u64;
            self.at += INTERVAL;
            (self.io, self.at, (self.think + 2.0 * self.base) / cycle)
        }

        /// An interval without a request.
        fn rest(&mut self) -> (VmIo, Instant) {
            self.at += INTERVAL;
            (self.io, self.at)
        }
    }

    /// A guest whose requests take 1 ms and that thinks 2 ms between
    /// each write and flush: half its time waits on its disk.
    fn guest() -> Guest {
        // Its life before the move: 1 ms requests, its one vCPU waiting
        // for a host CPU a hundredth of the time it wanted one.
        let io = VmIo {
            wr_operations: 10_000,
            wr_total_time_ns: 10_000 * 1_000_000,
            vcpu_threads: 1,
            vcpu_run_ns: 20_000_000_000,
            vcpu_wait_ns: 200_000_000,
            ..VmIo::default()
        };
        Guest {
            io,
            at: Instant::now(),
            base: 1_000_000.0,
            think: 2_000_000.0,
            knee: 200.0 * 1048576.0,
            cpu_knee: f64::INFINITY,
            spike: 0.0,
        }
    }

    /// A pacer with the default share that has taken its first reading of
    /// the guest.
    fn pacer(ceiling: Option<u64>, g: &Guest) -> Pacer {
        sharing(ceiling, None, g)
    }

    /// The same, keeping `share` percent for the guest.
    fn sharing(ceiling: Option<u64>, share: Option<u64>, g: &Guest) -> Pacer {
        let mut p = Pacer::new(ceiling, share);
        p.observe(g.io, g.at);
        p
    }

    /// `n` intervals of the guest under the pacer's limit: the limits it
    /// set and the guest's rate in each, against its rate alone.
    fn run(p: &mut Pacer, g: &mut Guest, n: usize) -> Vec<(Option<u64>, f64)> {
        (0..n)
            .map(|_| {
                let (io, at, kept) = g.interval(p.limit());
                (p.observe(io, at), kept)
            })
            .collect()
    }

    fn mean(v: impl Iterator<Item = f64>) -> f64 {
        let all: Vec<f64> = v.collect();
        all.iter().sum::<f64>() / all.len() as f64
    }

    #[test]
    fn it_settles_where_the_guest_keeps_most_of_its_rate() {
        let mut g = guest();
        let mut p = pacer(None, &g);
        run(&mut p, &mut g, 60);
        // Over the last stretch the guest keeps about four fifths of its
        // rate, and the copy is not starved for it.
        let last = run(&mut p, &mut g, 40);
        let kept = mean(last.iter().map(|(_, k)| *k));
        assert!((0.78..0.9).contains(&kept), "the guest kept {kept}");
        let limit = mean(last.iter().map(|(l, _)| l.expect("a limit") as f64));
        assert!(
            limit > 0.25 * g.knee && limit < 0.6 * g.knee,
            "mean limit {} MiB/s",
            limit / 1048576.0
        );
        // It settled: the limit moves little from reading to reading.
        let (lo, hi) = last
            .iter()
            .filter_map(|(l, _)| *l)
            .fold((u64::MAX, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
        assert!(hi < 2 * lo, "the limit swung from {lo} to {hi}");
        let view = p.view();
        assert_eq!(view.baseline_us, Some(1000));
        assert!(view.latency_us.expect("a latency") < 1600, "{view:?}");
        assert!(p.loss().is_some_and(|l| l <= 0.2), "{:?}", p.loss());
        // What the job shows the guest keeping is what it kept, within a
        // few points (this guest waits on one request at a time, as the
        // estimate takes it to).
        let truth = last.last().map_or(0.0, |(_, k)| k * 100.0);
        let shown = f64::from(view.kept_pct.expect("an estimate"));
        assert!(
            (shown - truth).abs() < 5.0,
            "shown {shown} %, kept {truth} %"
        );
    }

    #[test]
    fn a_smaller_share_for_the_guest_lets_the_copy_go_faster_and_is_kept() {
        let settle = |share: Option<u64>| {
            let mut g = guest();
            let mut p = sharing(None, share, &g);
            run(&mut p, &mut g, 60);
            let last = run(&mut p, &mut g, 40);
            let kept = mean(last.iter().map(|(_, k)| *k));
            let limit = mean(last.iter().map(|(l, _)| l.expect("a limit") as f64));
            (kept, limit)
        };
        let (kept80, limit80) = settle(None);
        let (kept60, limit60) = settle(Some(60));
        assert!((0.58..0.72).contains(&kept60), "the guest kept {kept60}");
        assert!(kept60 < kept80, "{kept60} against {kept80}");
        assert!(
            limit60 > 1.5 * limit80,
            "{} MiB/s against {} MiB/s",
            limit60 / 1048576.0,
            limit80 / 1048576.0
        );
        // Asked for all of it, the guest gets the most there is: 95 %.
        let (kept_all, _) = settle(Some(100));
        assert!(kept_all > kept80, "{kept_all} against {kept80}");
    }

    #[test]
    fn a_guest_whose_cpu_the_copy_takes_keeps_its_rate_all_the_same() {
        // Its disk does not mind the copy; its vCPU waits for a host CPU
        // as long as it thinks at 400 MiB/s of copy.
        let mut g = Guest {
            knee: f64::INFINITY,
            cpu_knee: 400.0 * 1048576.0,
            ..guest()
        };
        let mut p = pacer(None, &g);
        run(&mut p, &mut g, 60);
        let last = run(&mut p, &mut g, 40);
        let kept = mean(last.iter().map(|(_, k)| *k));
        assert!((0.78..0.92).contains(&kept), "the guest kept {kept}");
        let shown = f64::from(p.view().kept_pct.expect("an estimate")) / 100.0;
        assert!((shown - kept).abs() < 0.06, "shown {shown}, kept {kept}");
        // Its latency did not move: without the CPU's figures the copy
        // would have run unlimited.
        assert_eq!(p.view().latency_us, Some(1000));
        let mut blind = pacer(None, &g);
        let mut g_blind = Guest {
            io: VmIo {
                vcpu_threads: 0,
                ..g.io
            },
            ..g
        };
        run(&mut blind, &mut g_blind, 60);
        assert_eq!(blind.limit(), None, "{:?}", blind.view());
    }

    #[test]
    fn a_guest_that_seldom_waits_on_its_disk_lets_the_copy_go_faster() {
        let mut busy = guest();
        let mut pb = pacer(None, &busy);
        let mut sparse = guest();
        sparse.think = 50_000_000.0; // a request pair every 50 ms
        let mut ps = pacer(None, &sparse);
        run(&mut pb, &mut busy, 60);
        run(&mut ps, &mut sparse, 60);
        let limit = |r: Vec<(Option<u64>, f64)>| {
            mean(
                r.iter()
                    .map(|(l, _)| l.map_or(UNLIMITED_ABOVE_BPS as f64, |l| l as f64)),
            )
        };
        let (b, s) = (
            limit(run(&mut pb, &mut busy, 40)),
            limit(run(&mut ps, &mut sparse, 40)),
        );
        assert!(
            s > 3.0 * b,
            "{} MiB/s beside {} MiB/s",
            s / 1048576.0,
            b / 1048576.0
        );
        // And the sparse guest still keeps most of its (small) rate.
        let kept = mean(run(&mut ps, &mut sparse, 20).iter().map(|(_, k)| *k));
        assert!(kept > 0.78, "the sparse guest kept {kept}");
    }

    #[test]
    fn a_latency_spike_cuts_the_limit_and_it_recovers_after() {
        let mut g = guest();
        let mut p = pacer(None, &g);
        g.knee = 1e15; // the disk absorbs anything: the limit climbs
        run(&mut p, &mut g, 20);
        let high = p.limit().unwrap_or(UNLIMITED_ABOVE_BPS);
        assert!(high > 1 << 30, "{high}");
        g.spike = 5_000_000.0; // 5 ms more per request
        let (io, at, _) = g.interval(p.limit());
        let low = p.observe(io, at).expect("a limit");
        assert!(low <= high / 2, "{low} after {high}");
        let limits = run(&mut p, &mut g, 10);
        assert!(
            limits.iter().any(|(l, _)| *l == Some(FLOOR_BPS)),
            "{limits:?}"
        );
        g.spike = 0.0;
        run(&mut p, &mut g, 30);
        assert!(p.limit().is_none_or(|l| l > 1 << 30), "{:?}", p.limit());
        assert_eq!(p.view().baseline_us, Some(1000));
    }

    #[test]
    fn a_guest_slowed_by_something_else_does_not_keep_the_copy_at_the_floor() {
        let mut g = guest();
        let mut p = pacer(None, &g);
        g.knee = 1e15; // the copy costs the guest nothing
        run(&mut p, &mut g, 10);
        g.spike = 5_000_000.0; // its own workload got slower, for good
        let limits = run(&mut p, &mut g, 40);
        let floor_at = limits
            .iter()
            .position(|(l, _)| *l == Some(FLOOR_BPS))
            .expect("cut to the floor first");
        // Backing off did not help, so its slower latency is its new
        // baseline and the copy goes on at speed.
        assert!(
            limits[floor_at..]
                .iter()
                .any(|(l, _)| l.is_none_or(|l| l > 1 << 30)),
            "{limits:?}"
        );
        assert_eq!(p.view().baseline_us.map(|b| b > 5000), Some(true));
    }

    #[test]
    fn a_guest_writing_in_bursts_gives_the_copy_its_rests_and_gets_its_rate_back_at_once() {
        let mut g = guest();
        let mut p = pacer(None, &g);
        let settled = run(&mut p, &mut g, 60)
            .last()
            .and_then(|(l, _)| *l)
            .expect("a limit under load");
        for _ in 0..3 {
            // A rest: no requests; the copy runs unlimited from the first
            // reading on.
            for _ in 0..5 {
                let (io, at) = g.rest();
                assert_eq!(p.observe(io, at), None, "unlimited while the guest rests");
            }
            // The guest writes again, its first interval under the copy
            // still unlimited: the limit goes back to where it was (and
            // backs off from there), not down from unlimited one cut per
            // reading.
            let (io, at, _) = g.interval(p.limit());
            let back = p.observe(io, at).expect("a limit");
            assert!(
                back <= settled,
                "{} MiB/s after the rest, {} before",
                back >> 20,
                settled >> 20
            );
            let kept = mean(run(&mut p, &mut g, 10).iter().map(|(_, k)| *k));
            assert!(kept > 0.75, "the guest kept {kept} after a rest");
        }
    }

    #[test]
    fn the_jobs_bandwidth_is_an_upper_bound_and_an_idle_guest_lets_it_run() {
        let cap = 100 << 20;
        let mut p = Pacer::new(Some(cap), None);
        let idle = VmIo::default();
        let mut at = Instant::now();
        p.observe(idle, at);
        for _ in 0..20 {
            at += INTERVAL;
            assert!(p.observe(idle, at).is_some_and(|l| l <= cap));
        }
        assert_eq!(p.limit(), Some(cap));
        assert_eq!(p.view().baseline_us, None);
        assert_eq!(p.loss(), None);
        assert_eq!(p.view().kept_pct, None);
    }

    #[test]
    fn a_spike_under_a_low_bandwidth_never_lifts_the_limit_above_it() {
        let cap = 1 << 20;
        let mut g = guest();
        let mut p = pacer(Some(cap), &g);
        g.spike = 5_000_000.0;
        for (l, _) in run(&mut p, &mut g, 20) {
            assert!(l.is_some_and(|l| l <= cap), "{l:?}");
        }
    }

    #[test]
    fn a_reading_soon_after_the_last_is_judged_with_the_next() {
        let mut g = guest();
        let mut p = pacer(None, &g);
        g.knee = 1e15;
        run(&mut p, &mut g, 20);
        let before = p.limit().unwrap_or(UNLIMITED_ABOVE_BPS);
        g.spike = 10_000_000.0;
        let (io, at, _) = g.interval(p.limit());
        // Read a few milliseconds after the last reading: not judged.
        let soon = p
            .observe(io, at - INTERVAL + Duration::from_millis(10))
            .unwrap_or(UNLIMITED_ABOVE_BPS);
        assert_eq!(soon, before);
        // The next reading takes the spike in: the interval runs from the
        // last reading judged.
        g.spike = 0.0;
        let (io, at, _) = g.interval(p.limit());
        let after = p.observe(io, at).unwrap_or(UNLIMITED_ABOVE_BPS);
        assert!(after < before, "{after} after {before}");
    }

    /// A guest on a fast disk: 70 µs requests, 280 µs of thinking between
    /// each write and flush (the bench's guest, about), a disk whose
    /// latency doubles at 400 MiB/s of copy.
    fn fast_disk_guest() -> Guest {
        let mut g = guest();
        g.io.wr_total_time_ns = g.io.wr_operations * 70_000;
        g.base = 70_000.0;
        g.think = 280_000.0;
        g.knee = 400.0 * 1048576.0;
        g
    }

    #[test]
    fn the_estimate_follows_what_a_fast_disks_guest_keeps() {
        for mib_s in [100u64, 200, 400, 800] {
            let mut g = fast_disk_guest();
            let mut p = pacer(None, &g);
            let mut last = 0.0;
            for _ in 0..5 {
                let (io, at, kept) = g.interval(Some(mib_s << 20));
                p.observe(io, at);
                last = kept;
            }
            let estimated = 1.0 - p.loss().expect("the guest wrote");
            // A fixed noise allowance of 20 µs read this guest at 100 %
            // at 100 MiB/s, where it keeps 92 %.
            assert!(
                (estimated - last).abs() < 0.03,
                "at {mib_s} MiB/s the guest kept {last:.3}, estimated {estimated:.3}"
            );
        }
    }

    #[test]
    fn a_guest_watched_before_the_copy_is_paced_by_its_own_baseline_not_its_lifes() {
        // Its life's average took in an earlier move: 200 µs a request.
        let mut g = fast_disk_guest();
        g.io.wr_total_time_ns = g.io.wr_operations * 200_000;
        let life = g.io;
        let (before, _, _) = g.interval(Some(0));
        let (now, at, _) = g.interval(Some(0));
        let mut watched = Pacer::new(None, None);
        watched.observe(life, at);
        watched.watched(before, now, at);
        assert_eq!(watched.view().baseline_us, Some(70));
        let mut blind = Pacer::new(None, None);
        blind.observe(now, at);
        assert!(blind.view().baseline_us > Some(150));
        // Under a copy that costs the guest a third of its rate, the
        // watched pacer sees it and cuts; the blind one sees the guest
        // faster than its life's average and lets the copy grow.
        let mut blind_g = Guest {
            io: now,
            at,
            ..fast_disk_guest()
        };
        let (io, at2, kept) = g.interval(Some(800 << 20));
        let (blind_io, blind_at, _) = blind_g.interval(Some(800 << 20));
        assert!(kept < 0.7, "the guest kept {kept}");
        let start = watched.limit();
        assert!(watched.observe(io, at2) < start);
        assert!(
            watched.loss().is_some_and(|l| l > 0.25),
            "{:?}",
            watched.loss()
        );
        assert!(blind.observe(blind_io, blind_at) > start);
    }

    #[test]
    fn a_watch_ends_once_the_guest_has_shown_enough_or_nothing_or_at_half_a_second() {
        let io = |requests: u64| VmIo {
            wr_operations: requests,
            ..VmIo::default()
        };
        let ms = Duration::from_millis;
        assert!(!watched_enough(&io(0), &io(1000), ms(150)), "too short");
        assert!(watched_enough(&io(0), &io(1000), ms(200)), "a busy guest");
        assert!(watched_enough(&io(0), &io(1), ms(200)), "an idle guest");
        assert!(!watched_enough(&io(0), &io(50), ms(300)), "a light load");
        assert!(watched_enough(&io(0), &io(50), ms(500)), "at most");
    }

    #[test]
    fn a_spike_in_the_first_reading_under_the_copy_is_cut_for_once() {
        let mut g = guest();
        let mut p = pacer(None, &g);
        g.spike = 3_000_000.0;
        let (io, at, _) = g.interval(p.limit());
        let cut = p.observe(io, at).expect("a limit");
        assert!(cut < START_BPS, "{cut}");
        g.spike = 0.0;
        let (io, at, _) = g.interval(p.limit());
        let next = p.observe(io, at).expect("a limit");
        assert!(
            next >= cut,
            "cut again on the spike's echo: {next} after {cut}"
        );
    }

    #[test]
    fn the_interval_over_a_switch_is_not_judged_and_the_next_one_is() {
        let mut g = guest();
        let mut p = pacer(None, &g);
        run(&mut p, &mut g, 3);
        let before = p.limit();
        // The switch: the guest's requests wait behind QEMU's snapshot.
        g.spike = 3_000_000.0;
        let (io, at, _) = g.interval(p.limit());
        p.restart(io, at);
        assert_eq!(p.limit(), before);
        // The next interval is judged, from the reading at the switch.
        g.spike = 0.0;
        let (io, at, _) = g.interval(p.limit());
        p.observe(io, at);
        let loss = p.loss().expect("the guest wrote");
        assert!(loss < 0.2, "the switch's wait counted: {loss}");
        // A pacer with no reading yet takes the switch's as its first.
        let mut q = Pacer::new(None, None);
        q.restart(g.io, g.at);
        assert!(q.view().baseline_us.is_some());
    }

    #[test]
    fn a_guest_slowed_a_little_by_something_else_does_not_keep_the_copy_crawling() {
        let mut g = guest();
        let mut p = sharing(None, Some(90), &g);
        g.knee = 1e15; // the copy costs the guest nothing
                       // A burst of its own cut the copy down.
        g.spike = 1_000_000.0;
        for _ in 0..20 {
            if p.limit().is_some_and(|l| l <= HOLD_ABOVE_BPS) {
                break;
            }
            run(&mut p, &mut g, 1);
        }
        assert!(p.limit().is_some_and(|l| l <= HOLD_ABOVE_BPS));
        // Then its own requests stayed a fifth slower, for good: a loss
        // within the band of a guest that keeps 90 %, at any rate.
        g.spike = 220_000.0;
        let limits = run(&mut p, &mut g, 60);
        assert!(
            limits.iter().any(|(l, _)| l.is_none_or(|l| l > 1 << 30)),
            "{limits:?}"
        );
    }
}
