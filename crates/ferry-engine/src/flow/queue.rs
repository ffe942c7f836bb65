//! How many moves copy at once. Emptying a storage array means moving many
//! disks; started together, their copies would share the disks' bandwidth
//! and every guest would feel all of them. A job takes a place before its
//! first step and keeps it to its end; the others wait, queued, at
//! `prepare`, and can be cancelled there with nothing to undo.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Moves that copy at once when the operator does not say.
pub const DEFAULT_MAX_MOVES: usize = 4;

/// How often a queued job looks for a cancel.
const CANCEL_CHECK: Duration = Duration::from_millis(300);

/// The places, and which jobs wait for one.
#[derive(Debug)]
pub struct MoveQueue {
    places: Arc<Semaphore>,
    limit: usize,
    waiting: Mutex<HashSet<Uuid>>,
    /// Held while a prepare checks its destination's room and records the
    /// job that reserves it.
    reserving: tokio::sync::Mutex<()>,
}

impl MoveQueue {
    /// `limit` moves at once; 0 means [`DEFAULT_MAX_MOVES`].
    pub fn new(limit: usize) -> MoveQueue {
        let limit = if limit == 0 { DEFAULT_MAX_MOVES } else { limit };
        MoveQueue {
            places: Arc::new(Semaphore::new(limit)),
            limit,
            reserving: tokio::sync::Mutex::new(()),
            waiting: Mutex::new(HashSet::new()),
        }
    }

    /// How many moves run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether `job` waits for a place now.
    pub fn is_waiting(&self, job: Uuid) -> bool {
        self.waiting.lock().is_ok_and(|w| w.contains(&job))
    }

    /// One prepare at a time between its space check and the record of
    /// its job, so two moves cannot both count the same free space.
    pub async fn reserving(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reserving.lock().await
    }

    /// A place at once, if one is free.
    pub fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.places.clone().try_acquire_owned().ok()
    }

    /// Waits for a place for `job`, shown as queued meanwhile; gives up
    /// (None) as soon as `cancelled` says so.
    pub async fn take<F, Fut>(&self, job: Uuid, mut cancelled: F) -> Option<OwnedSemaphorePermit>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        if let Some(place) = self.try_take() {
            return Some(place);
        }
        self.set_waiting(job, true);
        // One acquire for the whole wait: it keeps the job's turn, so jobs
        // start in the order they were queued.
        let acquire = self.places.clone().acquire_owned();
        tokio::pin!(acquire);
        let place = loop {
            tokio::select! {
                place = &mut acquire => break place.ok(),
                () = tokio::time::sleep(CANCEL_CHECK) => {
                    if cancelled().await {
                        break None;
                    }
                }
            }
        };
        self.set_waiting(job, false);
        place
    }

    fn set_waiting(&self, job: Uuid, waiting: bool) {
        if let Ok(mut w) = self.waiting.lock() {
            if waiting {
                w.insert(job);
            } else {
                w.remove(&job);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_move_waits_for_the_first_and_a_cancel_ends_the_wait() {
        let q = Arc::new(MoveQueue::new(1));
        let first = q.try_take().expect("a free place");
        let job = Uuid::new_v4();

        // Cancelled while queued: no place, and no longer shown queued.
        assert!(q.take(job, || async { true }).await.is_none());
        assert!(!q.is_waiting(job));

        // Queued until the first ends.
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.take(job, || async { false }).await.is_some() })
        };
        while !q.is_waiting(job) {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert!(waiter.await.expect("the waiter"), "it got the freed place");
        assert!(!q.is_waiting(job));
    }

    #[tokio::test(start_paused = true)]
    async fn queued_moves_start_in_the_order_they_were_queued() {
        let q = Arc::new(MoveQueue::new(1));
        let first = q.try_take().expect("a free place");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for job in [a, b] {
            let (queue, tx) = (q.clone(), tx.clone());
            tokio::spawn(async move {
                let place = queue.take(job, || async { false }).await;
                let _ = tx.send(job);
                drop(place);
            });
            while !q.is_waiting(job) {
                tokio::task::yield_now().await;
            }
            // Several cancel checks pass while both wait.
            tokio::time::sleep(CANCEL_CHECK * 3).await;
        }
        drop(first);
        assert_eq!(rx.recv().await, Some(a));
        assert_eq!(rx.recv().await, Some(b));
    }
}
