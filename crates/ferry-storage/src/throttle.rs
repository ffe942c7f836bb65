//! A bandwidth limit shared by all workers of one copy, which its owner
//! may change or pause while the copy runs (the engine's guest-aware
//! pacing, the quiet moments around a switch).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a paced wait looks at the cancel switch, the pause and a new
/// rate: a cancelled copy under a low limit stops this soon, not after its
/// whole booked wait (which with several workers can be seconds).
const CANCEL_CHECK: Duration = Duration::from_millis(100);

/// Paces callers so that, on average, no more than `rate` bytes per second
/// pass. Each caller books its bytes and waits until their due time; the
/// wait is the limit itself, not a synchronisation. A new rate counts from
/// the moment it is set; while paused, no booking goes through.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<Pace>,
    paused: AtomicBool,
}

/// The current rate and what was booked since it was set.
#[derive(Debug, Clone, Copy)]
struct Pace {
    rate: u64,
    since: Instant,
    booked: u64,
}

impl Throttle {
    /// A limit of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        Throttle {
            state: Mutex::new(Pace {
                rate: bytes_per_second.max(1),
                since: Instant::now(),
                booked: 0,
            }),
            paused: AtomicBool::new(false),
        }
    }

    /// No limit to begin with: a copy whose limit may be set later.
    pub fn unlimited() -> Self {
        Throttle::new(u64::MAX)
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The limit in bytes per second (`u64::MAX`: none).
    pub fn rate(&self) -> u64 {
        self.pace().rate
    }

    /// Sets a new limit (at least 1 byte per second; `u64::MAX` for none),
    /// counted from now: what was booked at the old rate is forgiven.
    pub fn set_rate(&self, bytes_per_second: u64) {
        *self.pace() = Pace {
            rate: bytes_per_second.max(1),
            since: Instant::now(),
            booked: 0,
        };
    }

    /// Holds every worker before its next chunk (`true`) or lets them go.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
        if !paused {
            // The time paused is not owed as a burst afterwards.
            let rate = self.rate();
            self.set_rate(rate);
        }
    }

    /// Whether the workers are held.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Books `bytes` and returns how long to wait before moving them.
    pub fn book(&self, bytes: u64) -> Duration {
        let mut pace = self.pace();
        let due = Duration::from_secs_f64(pace.booked as f64 / pace.rate as f64);
        pace.booked = pace.booked.saturating_add(bytes);
        due.saturating_sub(pace.since.elapsed())
    }

    /// Waits while paused, then books `bytes` and sleeps until they may
    /// move; a limit changed meanwhile books them again at the new rate.
    /// Returns false, at once or within [`CANCEL_CHECK`], if `cancel` is or
    /// becomes set.
    pub fn acquire(&self, bytes: u64, cancel: Option<&AtomicBool>) -> bool {
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        'booking: loop {
            while self.is_paused() {
                if cancelled() {
                    return false;
                }
                std::thread::sleep(CANCEL_CHECK);
            }
            let since = self.pace().since;
            let until = Instant::now() + self.book(bytes);
            loop {
                if cancelled() {
                    return false;
                }
                if self.is_paused() || self.pace().since != since {
                    continue 'booking;
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return true;
                }
                std::thread::sleep(left.min(CANCEL_CHECK));
            }
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

    #[test]
    fn a_new_rate_counts_from_when_it_is_set() {
        let t = Throttle::new(1_000_000);
        t.book(10_000_000);
        assert!(t.book(1) > Duration::from_secs(9));
        t.set_rate(100_000_000);
        assert!(t.book(50_000_000).is_zero(), "the old booking is forgiven");
        assert!(t.book(1) > Duration::from_millis(400));
    }

    #[test]
    fn a_paused_throttle_holds_its_workers_until_let_go_or_cancelled() {
        let t = std::sync::Arc::new(Throttle::unlimited());
        t.set_paused(true);
        let cancel = AtomicBool::new(true);
        assert!(!t.acquire(1, Some(&cancel)), "cancelled while paused");
        let worker = {
            let t = t.clone();
            std::thread::spawn(move || t.acquire(1, None))
        };
        std::thread::sleep(Duration::from_millis(250));
        assert!(!worker.is_finished(), "a paused worker went on");
        t.set_paused(false);
        assert!(worker.join().expect("the worker"));
    }
}
