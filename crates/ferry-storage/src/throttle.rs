//! A bandwidth limit shared by all workers of one copy, which its owner
//! may change or pause while the copy runs (the engine's guest-aware
//! pacing, the quiet moments around a switch).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// Bookings let through whose bytes are still being moved: a holder
    /// waits for none to be left before it flushes what the copy wrote.
    in_flight: AtomicUsize,
}

/// Bytes let through by [`Throttle::acquire`], being moved until this is
/// dropped.
#[derive(Debug)]
#[must_use = "the bytes count as moving until the passage is dropped"]
pub struct Passage<'a>(&'a Throttle);

impl Drop for Passage<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

impl Passage<'_> {
    /// Steps aside while the throttle is held, between two requests of the
    /// bytes let through: they stop counting as moving until it is let go.
    /// A hold then takes effect after the request each worker is in, not
    /// after its whole chunk (up to 8 MiB each for an uncapped copy, whose
    /// last chunks the guest's writes queued behind for tens of ms before
    /// a switch: docs/engine.md, run 13). Returns at once when not held;
    /// `false` if `cancel` is or becomes set while held.
    pub fn step_aside_while_held(&mut self, cancel: Option<&AtomicBool>) -> bool {
        let throttle = self.0;
        if !throttle.is_paused() {
            return true;
        }
        throttle.in_flight.fetch_sub(1, Ordering::AcqRel);
        loop {
            let let_go = throttle.wait_while_paused(cancel);
            // Counted again either way: the drop of this passage takes it off.
            throttle.in_flight.fetch_add(1, Ordering::AcqRel);
            // A hold set again between the wait and the count must not see
            // these bytes as still: step aside once more.
            if !let_go || !throttle.is_paused() {
                return let_go;
            }
            throttle.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
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
            in_flight: AtomicUsize::new(0),
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

    /// Holds the workers (`true`: each before its next chunk, a direct
    /// copy's before its next request, [`Passage::step_aside_while_held`])
    /// or lets them go.
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

    /// Waits while paused; `false` if `cancel` is or becomes set meanwhile.
    fn wait_while_paused(&self, cancel: Option<&AtomicBool>) -> bool {
        while self.is_paused() {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return false;
            }
            std::thread::sleep(CANCEL_CHECK);
        }
        true
    }

    /// Waits while paused, then books `bytes` and sleeps until they may
    /// move; a limit changed meanwhile books them again at the new rate.
    /// The bytes count as in flight until the returned passage is dropped.
    /// Returns `None`, at once or within [`CANCEL_CHECK`], if `cancel` is
    /// or becomes set.
    pub fn acquire(&self, bytes: u64, cancel: Option<&AtomicBool>) -> Option<Passage<'_>> {
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        'booking: loop {
            if !self.wait_while_paused(cancel) {
                return None;
            }
            let since = self.pace().since;
            let until = Instant::now() + self.book(bytes);
            loop {
                if cancelled() {
                    return None;
                }
                if self.is_paused() || self.pace().since != since {
                    continue 'booking;
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.in_flight.fetch_add(1, Ordering::AcqRel);
                    // A hold set between the check and the count must not
                    // see this passage as already done: look once more.
                    if self.is_paused() {
                        self.in_flight.fetch_sub(1, Ordering::AcqRel);
                        continue 'booking;
                    }
                    return Some(Passage(self));
                }
                std::thread::sleep(left.min(CANCEL_CHECK));
            }
        }
    }

    /// Waits, until `deadline`, for a held throttle's last passages to be
    /// dropped: after that no byte moves until it is let go. Returns
    /// whether that point was reached (false: not held, or still moving at
    /// the deadline).
    pub fn wait_until_still(&self, deadline: Instant) -> bool {
        loop {
            if !self.is_paused() {
                return false;
            }
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
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
        assert!(
            t.acquire(1_000_000, None).is_some(),
            "the first second is free"
        );
        let cancel = AtomicBool::new(true);
        // Ten seconds booked; a wait that ignored the switch would sleep them.
        assert!(t.acquire(10_000_000, Some(&cancel)).is_none());
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
        assert!(
            t.acquire(1, Some(&cancel)).is_none(),
            "cancelled while paused"
        );
        let worker = {
            let t = t.clone();
            std::thread::spawn(move || t.acquire(1, None).is_some())
        };
        std::thread::sleep(Duration::from_millis(250));
        assert!(!worker.is_finished(), "a paused worker went on");
        t.set_paused(false);
        assert!(worker.join().expect("the worker"));
    }

    #[test]
    fn a_passage_steps_aside_for_a_hold_and_goes_on_when_let_go() {
        let t = std::sync::Arc::new(Throttle::unlimited());
        let deadline = || Instant::now() + Duration::from_millis(50);
        let mut moving = t.acquire(1, None).expect("unlimited");
        assert!(moving.step_aside_while_held(None), "not held: goes on");
        t.set_paused(true);
        assert!(!t.wait_until_still(deadline()), "still moving");
        let cancel = AtomicBool::new(true);
        assert!(
            !moving.step_aside_while_held(Some(&cancel)),
            "cancelled while held"
        );
        assert!(!t.wait_until_still(deadline()), "counted again");
        drop(moving);

        let (moving_tx, moving_rx) = std::sync::mpsc::channel();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let worker = {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut moving = t.acquire(1, None).expect("let go");
                moving_tx.send(()).expect("the test waits");
                held_rx.recv().expect("the test holds");
                let went_on = moving.step_aside_while_held(None);
                went_on && !t.is_paused()
            })
        };
        t.set_paused(false);
        moving_rx.recv().expect("the worker is moving");
        t.set_paused(true);
        held_tx.send(()).expect("the worker waits");
        assert!(
            t.wait_until_still(Instant::now() + Duration::from_secs(5)),
            "the held worker stepped aside mid-way"
        );
        assert!(!worker.is_finished(), "a held worker went on");
        t.set_paused(false);
        assert!(worker.join().expect("the worker"), "went on once let go");
    }

    #[test]
    fn a_holder_waits_for_the_bytes_already_let_through() {
        let t = Throttle::unlimited();
        let deadline = || Instant::now() + Duration::from_millis(50);
        assert!(
            !t.wait_until_still(deadline()),
            "not held: nothing to wait for"
        );
        let moving = t.acquire(1, None).expect("unlimited");
        t.set_paused(true);
        assert!(
            !t.wait_until_still(deadline()),
            "a chunk is still being moved"
        );
        drop(moving);
        assert!(t.wait_until_still(deadline()));
    }
}
