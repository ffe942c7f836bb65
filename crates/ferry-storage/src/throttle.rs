//! A bandwidth limit shared by all workers of one copy.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Paces callers so that, on average, no more than `rate` bytes per second
/// pass. Each caller books its bytes and waits until their due time; the
/// wait is the limit itself, not a synchronisation.
#[derive(Debug)]
pub struct Throttle {
    rate: u64,
    state: Mutex<(Instant, u64)>,
}

impl Throttle {
    /// A limit of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        Throttle {
            rate: bytes_per_second.max(1),
            state: Mutex::new((Instant::now(), 0)),
        }
    }

    /// The limit in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Books `bytes` and returns how long to wait before moving them.
    pub fn book(&self, bytes: u64) -> Duration {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (start, booked) = *guard;
        let due = Duration::from_secs_f64(booked as f64 / self.rate as f64);
        guard.1 = booked + bytes;
        due.saturating_sub(start.elapsed())
    }

    /// Books `bytes` and sleeps until they may move.
    pub fn acquire(&self, bytes: u64) {
        let wait = self.book(bytes);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookings_past_the_rate_must_wait() {
        let t = Throttle::new(1_000_000);
        assert!(t.book(1_000_000).is_zero(), "the first second is free");
        let wait = t.book(1_000_000);
        assert!(wait > Duration::from_millis(900), "{wait:?}");
        let wait = t.book(1);
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
    }
}
