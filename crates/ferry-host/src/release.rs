//! Giving back, in the background, the space of volumes a delete retired
//! (`Release::Background`): the delete answers once the volumes are out of
//! the domain, durably, and this frees their gigabytes a bounded step at a
//! time, so the guests writing to the same filesystem barely notice (why
//! and what it costs: ferry-storage's `release` module).
//!
//! One release runs at a time, in the order the deletes came. Each step
//! holds the lock of the synchronous metadata verbs, so it never
//! interleaves with a create or a delete of the same names; between steps
//! the lock is free and a short pause lets the guests' writes through.
//!
//! What is queued is in memory only. A release the agent's stop or crash
//! interrupts, one whose step fails, and what is queued when the agent
//! stops being SPM (only the SPM changes shared storage) are left as they
//! are: `_remove_me_` files, which a later delete or create of the volume
//! finishes, and the domain's garbage collection after its grace
//! (`gc::GRACE`). Nothing retired is ever a volume again, so leaving it is
//! safe; it only keeps the space a little longer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_storage::{Released, Retired};
use uuid::Uuid;

use crate::error::Error;
use crate::fsutil::blocking;
use crate::state::AgentState;

/// Space given back per step: 32 MiB cuts stalled a synchronous writer
/// 8–9 ms on ext4 with `discard`, where unlinking 2 GiB at once stalled it
/// 41–71 ms.
const STEP: u64 = 32 << 20;
/// The pause between steps, when the guests' writes go first.
const PAUSE: Duration = Duration::from_millis(5);

/// The volumes whose space is still to be given back.
#[derive(Debug, Default)]
pub(crate) struct ReleaseQueue {
    inner: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Retired>,
    /// The one being released now.
    current: Option<Retired>,
    /// Whether a worker drains `waiting`; set and cleared under the lock,
    /// so a volume queued as the worker stops is never stranded.
    working: bool,
}

impl ReleaseQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A worker that panicked left the queue consistent: each change is
        // a single push or pop.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `retired`; true when no worker runs and the caller must
    /// start one.
    fn push(&self, retired: Vec<Retired>) -> bool {
        let mut q = self.lock();
        q.waiting.extend(retired);
        !std::mem::replace(&mut q.working, true)
    }

    /// The next volume, or `None` with the worker marked stopped.
    fn next(&self) -> Option<Retired> {
        let mut q = self.lock();
        let next = q.waiting.pop_front();
        if next.is_none() {
            q.working = false;
        }
        q.current.clone_from(&next);
        next
    }

    /// The space still to be given back, by domain: what the files of the
    /// queued volumes and the one in release take on disk now. Blocking
    /// (a `stat` per volume).
    pub(crate) fn pending_bytes(&self) -> HashMap<Uuid, u64> {
        let q = self.lock();
        let mut out = HashMap::new();
        for r in q.current.iter().chain(&q.waiting) {
            *out.entry(r.volume().domain().uuid()).or_insert(0) += r.allocated_bytes();
        }
        out
    }

    /// Forgets what is queued (left to the garbage collection).
    fn drop_all(&self) -> usize {
        let mut q = self.lock();
        let n = q.waiting.len();
        q.waiting.clear();
        q.current = None;
        n
    }
}

/// Queues `retired` for release and starts the worker unless it runs.
pub(crate) fn spawn(agent: &Arc<AgentState>, retired: Vec<Retired>) {
    if retired.is_empty() || !agent.releases().push(retired) {
        return;
    }
    let agent = agent.clone();
    tokio::spawn(async move {
        while let Some(r) = agent.releases().next() {
            release(&agent, r).await;
        }
    });
}

/// Releases one volume to the end, or until a step fails or the SPM role
/// is gone.
async fn release(agent: &Arc<AgentState>, r: Retired) {
    loop {
        if agent.spm().domain().is_none() {
            let left = agent.releases().drop_all() + 1;
            tracing::warn!(
                volumes = left,
                "no longer SPM: the deleted volumes' space is left for the garbage collection"
            );
            return;
        }
        let step = {
            let _serial = agent.storage_lock().await;
            let r = r.clone();
            blocking(move || r.release_step(STEP).map_err(Error::from)).await
        };
        match step {
            Ok(Released::Done) => return,
            Ok(Released::More) => tokio::time::sleep(PAUSE).await,
            Err(e) => {
                let v = r.volume();
                tracing::warn!(volume = %v.id(), image = %v.image(), domain = %v.domain().uuid(),
                    "could not give a deleted volume's space back; the garbage collection will: {}", e.full_text());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::VolumeFormat;
    use ferry_testkit::{base, qemu_io, Lab};

    #[test]
    fn the_space_still_to_come_back_is_counted_by_domain_until_it_is_released() {
        let lab = Lab::new();
        let domains = lab.domains();
        let v = base(&lab.d1, VolumeFormat::Raw, 16 << 20);
        qemu_io(&v, &["write -P 0x51 0 8M"]);
        let retired = v.retire_in(&domains).expect("retire");
        let q = ReleaseQueue::default();
        assert!(q.push(vec![retired]), "the first push starts a worker");
        let pending = q.pending_bytes();
        assert!(
            pending.get(&lab.d1.uuid()).is_some_and(|&b| b >= 8 << 20),
            "{pending:?}"
        );
        assert!(!pending.contains_key(&lab.d2.uuid()));
        // The worker takes it: still counted while it is being released.
        let taken = q.next().expect("the queued volume");
        assert!(q.pending_bytes().contains_key(&lab.d1.uuid()));
        taken.release_now().expect("release");
        assert_eq!(q.pending_bytes().get(&lab.d1.uuid()), Some(&0));
        assert!(q.next().is_none(), "the queue is empty");
        assert!(q.pending_bytes().is_empty());
    }
}
