//! A bandwidth limit shared by all workers of one copy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a paced wait looks at the cancel switch: a cancelled copy
/// under a low limit stops this soon, not after its whole booked wait
/// (which with several workers can be seconds).
const CANCEL_CHECK: Duration = Duration::from_millis(100);

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

    /// Books `bytes` and sleeps until they may move. Returns false, at
    /// once or within [`CANCEL_CHECK`], if `cancel` is or becomes set.
    pub fn acquire(&self, bytes: u64, cancel: Option<&AtomicBool>) -> bool {
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let until = Instant::now() + self.book(bytes);
        loop {
            if cancelled() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(CANCEL_CHECK));
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

    #[test]
    fn a_cancelled_wait_gives_up_instead_of_sleeping_out_its_booking() {
        let t = Throttle::new(1_000_000);
        assert!(t.acquire(1_000_000, None), "the first second is free");
        let cancel = AtomicBool::new(true);
        // Ten seconds booked; a wait that ignored the switch would sleep them.
        assert!(!t.acquire(10_000_000, Some(&cancel)));
    }
}
