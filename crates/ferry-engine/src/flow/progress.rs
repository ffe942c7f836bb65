//! Copy rate, from the bytes-done samples a job sees (the time left
//! follows from it in `JobRow::to_api`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the rate looks: long enough to smooth the copy's chunks,
/// short enough to follow a bandwidth change.
const WINDOW: Duration = Duration::from_secs(5);

/// A sliding window of (time, bytes done).
#[derive(Debug, Default)]
pub struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// Records that `done` bytes are done now.
    pub fn sample(&mut self, done: u64) {
        self.sample_at(Instant::now(), done);
    }

    fn sample_at(&mut self, at: Instant, done: u64) {
        if self.samples.back().is_some_and(|(_, d)| *d > done) {
            // A restarted copy starts counting again.
            self.samples.clear();
        }
        self.samples.push_back((at, done));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window (0 until two samples exist).
    pub fn rate(&self) -> u64 {
        let (Some((t0, d0)), Some((t1, d1))) = (self.samples.front(), self.samples.back()) else {
            return 0;
        };
        let micros = t1.duration_since(*t0).as_micros();
        if micros == 0 {
            return 0;
        }
        let bytes = u128::from(d1.saturating_sub(*d0));
        u64::try_from(bytes * 1_000_000 / micros).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_follows_the_samples() {
        let mut m = RateMeter::default();
        let t = Instant::now();
        assert_eq!(m.rate(), 0);
        m.sample_at(t, 0);
        m.sample_at(t + Duration::from_secs(1), 100);
        m.sample_at(t + Duration::from_secs(2), 200);
        assert_eq!(m.rate(), 100);
        // A restart of the count resets the window.
        m.sample_at(t + Duration::from_secs(3), 10);
        assert_eq!(m.rate(), 0);
    }
}
