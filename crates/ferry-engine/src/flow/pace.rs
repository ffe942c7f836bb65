//! Guest-aware pacing of a live move's copy: the copy runs as fast as the
//! guest lets it. Every reading of the guest's I/O (QEMU's own counts on
//! the VM's host) gives its request latency since the last one; while that
//! stays near what the guest had before the move, the copy's limit grows,
//! and when it rises above, the limit halves. While the guest rests (too
//! few requests in an interval to say anything) the copy takes the whole
//! disk, and when the guest writes again the limit goes straight back to
//! where it was while it last wrote, not down from "unlimited" one halving
//! per reading: a guest whose I/O comes in bursts gives the copy its rests
//! and gets its own rate back at once. The job's `--bandwidth` stays an
//! upper bound. This is the controller alone, as a pure state
//! machine, so its behaviour is tested without a guest; the flow feeds it
//! readings and applies its limit to the copy tasks.

use ferry_api::vm::VmIo;

/// The limit a paced copy starts at: a fraction of a disk's speed, so the
/// first readings see the guest before the copy has flooded anything.
pub const START_BPS: u64 = 128 << 20;

/// The lowest limit: the copy always moves on.
pub const FLOOR_BPS: u64 = 8 << 20;

/// The highest limit the controller sets without a `--bandwidth`; above
/// it the copy runs unlimited, as the disks allow.
pub const UNLIMITED_ABOVE_BPS: u64 = 4 << 30;

/// How much slower than its baseline the guest's requests may get before
/// the copy backs off: 30 % and 300 µs (a fast disk's latency jitters by
/// more than a percentage of its few microseconds).
const TOLERANCE: f64 = 0.30;
const SLACK_NS: f64 = 300_000.0;

/// The weight of the newest latency in the smoothed one.
const SMOOTHING: f64 = 0.5;

/// The fewest guest requests in an interval for its latency to count: an
/// interval with fewer says little, and an idle guest is not in the way.
const MIN_REQUESTS: u64 = 3;

/// A paced copy's controller.
#[derive(Debug, Clone)]
pub struct Pacer {
    limit: u64,
    ceiling: Option<u64>,
    baseline_ns: Option<f64>,
    smoothed_ns: Option<f64>,
    last: Option<VmIo>,
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
    /// Its latency before the move, in microseconds.
    pub baseline_us: Option<u64>,
}

impl Pacer {
    /// A pacer under `ceiling` bytes per second (the job's bandwidth), or
    /// none.
    pub fn new(ceiling: Option<u64>) -> Self {
        Pacer {
            limit: ceiling.map_or(START_BPS, |c| c.min(START_BPS)),
            ceiling,
            baseline_ns: None,
            smoothed_ns: None,
            last: None,
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
        }
    }

    /// Takes a reading of the guest's cumulative I/O and returns the limit
    /// to apply. The first reading sets the baseline: the guest's average
    /// latency over its life so far, before this copy ran.
    pub fn observe(&mut self, now: VmIo) -> Option<u64> {
        let Some(last) = self.last.replace(now) else {
            self.baseline_ns = latency_ns(&VmIo::default(), &now, 1);
            return self.limit();
        };
        match latency_ns(&last, &now, MIN_REQUESTS) {
            None => self.rest(),
            Some(lat) => {
                if let Some(limit) = self.resting_from.take() {
                    self.limit = limit;
                }
                let smoothed = self
                    .smoothed_ns
                    .map_or(lat, |s| SMOOTHING * lat + (1.0 - SMOOTHING) * s);
                self.smoothed_ns = Some(smoothed);
                // A guest first seen idle learns its baseline now.
                let baseline = *self.baseline_ns.get_or_insert(lat);
                if smoothed > baseline * (1.0 + TOLERANCE) + SLACK_NS {
                    let halved = (self.limit / 2).max(FLOOR_BPS);
                    // The floor never lifts it above the job's bandwidth.
                    self.limit = self.ceiling.map_or(halved, |c| halved.min(c));
                    // Back off once per spike, not again on its echo in
                    // the smoothed value.
                    self.smoothed_ns = Some(lat.min(smoothed));
                } else {
                    self.increase();
                }
            }
        }
        self.limit()
    }

    /// A guest at rest is not in the way: the copy runs as fast as the
    /// job allows until it writes again.
    fn rest(&mut self) {
        self.resting_from.get_or_insert(self.limit);
        self.limit = self.ceiling.unwrap_or(UNLIMITED_ABOVE_BPS);
    }

    /// Grows the limit: by half, at least 16 MiB/s, up to the ceiling (a
    /// move is short: from the start to a fast disk's speed in a few
    /// readings).
    fn increase(&mut self) {
        let grown = self
            .limit
            .saturating_add((self.limit / 2).max(16 << 20))
            .min(UNLIMITED_ABOVE_BPS);
        self.limit = self.ceiling.map_or(grown, |c| grown.min(c));
    }
}

/// Nanoseconds as whole microseconds (a latency: finite, not negative,
/// far below `u64::MAX`; clamped all the same).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn micros(ns: f64) -> u64 {
    (ns / 1000.0).round().clamp(0.0, u64::MAX as f64) as u64
}

/// The mean latency of the guest's writes and flushes between two
/// readings (reads are served from the source and barely touched by the
/// copy's writes), or `None` with fewer than `min` requests.
fn latency_ns(before: &VmIo, after: &VmIo, min: u64) -> Option<f64> {
    let ops = (after.wr_operations + after.flush_operations)
        .saturating_sub(before.wr_operations + before.flush_operations);
    if ops < min.max(1) {
        return None;
    }
    let ns = (after.wr_total_time_ns + after.flush_total_time_ns)
        .saturating_sub(before.wr_total_time_ns + before.flush_total_time_ns);
    Some(ns as f64 / ops as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated guest whose writes take `base` ns plus a queueing delay
    /// that grows with the copy's rate past what its disk absorbs
    /// (`knee` bytes per second): the shape a shared disk has.
    struct Guest {
        io: VmIo,
        base: f64,
        knee: f64,
        spike: f64,
    }

    impl Guest {
        fn interval(&mut self, copy_bps: Option<u64>) -> VmIo {
            let rate = copy_bps.map_or(10e9, |r| r as f64);
            let queue = ((rate - self.knee).max(0.0) / self.knee) * 4.0 * self.base;
            let lat = self.base + queue + self.spike;
            let ops = 200u64;
            self.io.wr_operations += ops;
            self.io.wr_total_time_ns += micros(lat * ops as f64) * 1000;
            self.io
        }
    }

    fn guest() -> Guest {
        // Its life before the move: 1 ms writes.
        let io = VmIo {
            wr_operations: 10_000,
            wr_total_time_ns: 10_000 * 1_000_000,
            ..VmIo::default()
        };
        Guest {
            io,
            base: 1_000_000.0,
            knee: 200.0 * 1048576.0,
            spike: 0.0,
        }
    }

    /// `n` intervals of the guest under the pacer's limit (the pacer has
    /// taken its first reading).
    fn run(p: &mut Pacer, g: &mut Guest, n: usize) -> Option<u64> {
        let mut limit = p.limit();
        for _ in 0..n {
            limit = p.observe(g.interval(limit));
        }
        limit
    }

    #[test]
    fn it_settles_where_the_guest_keeps_its_latency() {
        let (mut p, mut g) = (Pacer::new(None), guest());
        p.observe(g.io);
        run(&mut p, &mut g, 60);
        // Over the last stretch the limit stays around the knee, and the
        // guest's latency near its baseline.
        let mut limits = Vec::new();
        for _ in 0..40 {
            let l = p.observe(g.interval(p.limit())).expect("a limit");
            limits.push(l);
        }
        let mean = limits.iter().sum::<u64>() as f64 / limits.len() as f64;
        let knee = g.knee;
        assert!(
            mean > 0.5 * knee && mean < 1.6 * knee,
            "mean limit {} MiB/s",
            mean / 1048576.0
        );
        let view = p.view();
        assert_eq!(view.baseline_us, Some(1000));
        assert!(view.latency_us.expect("a latency") < 2000, "{view:?}");
    }

    #[test]
    fn a_latency_spike_halves_the_limit_and_it_recovers_after() {
        let (mut p, mut g) = (Pacer::new(None), guest());
        p.observe(g.io);
        g.knee = 10e9; // the disk absorbs anything: the limit climbs
        let high = run(&mut p, &mut g, 20).map_or(u64::MAX, |l| l);
        assert!(high > 1 << 30, "{high}");
        g.spike = 5_000_000.0; // 5 ms more per write
        let low = p.observe(g.interval(p.limit())).expect("a limit");
        assert!(low <= high / 2, "{low} after {high}");
        let lower = run(&mut p, &mut g, 8).expect("a limit");
        assert_eq!(lower, FLOOR_BPS);
        g.spike = 0.0;
        run(&mut p, &mut g, 30);
        assert!(p.limit().is_none_or(|l| l > 1 << 30), "{:?}", p.limit());
    }

    #[test]
    fn a_guest_writing_in_bursts_gives_the_copy_its_rests_and_gets_its_rate_back_at_once() {
        let (mut p, mut g) = (Pacer::new(None), guest());
        p.observe(g.io);
        let settled = run(&mut p, &mut g, 60).expect("a limit under load");
        for _ in 0..3 {
            // A rest: no requests; the copy runs unlimited from the first
            // reading on.
            for _ in 0..5 {
                assert_eq!(p.observe(g.io), None, "unlimited while the guest rests");
            }
            // The guest writes again, its first interval under the copy
            // still unlimited: the limit goes back to where it was (and
            // backs off from there), not down from unlimited one halving
            // per reading.
            let back = p.observe(g.interval(p.limit())).expect("a limit");
            assert!(
                back <= settled,
                "{} MiB/s after the rest, {} before",
                back >> 20,
                settled >> 20
            );
            run(&mut p, &mut g, 10);
        }
        let view = p.view();
        assert!(view.latency_us.expect("a latency") < 2000, "{view:?}");
    }

    #[test]
    fn the_jobs_bandwidth_is_an_upper_bound_and_an_idle_guest_lets_it_run() {
        let cap = 100 << 20;
        let mut p = Pacer::new(Some(cap));
        let idle = VmIo::default();
        p.observe(idle);
        for _ in 0..20 {
            assert!(p.observe(idle).is_some_and(|l| l <= cap));
        }
        assert_eq!(p.limit(), Some(cap));
        assert_eq!(p.view().baseline_us, None);
    }

    #[test]
    fn a_spike_under_a_low_bandwidth_never_lifts_the_limit_above_it() {
        let cap = 1 << 20;
        let (mut p, mut g) = (Pacer::new(Some(cap)), guest());
        p.observe(g.io);
        g.spike = 5_000_000.0;
        for _ in 0..10 {
            assert!(p.observe(g.interval(p.limit())).is_some_and(|l| l <= cap));
        }
    }
}
