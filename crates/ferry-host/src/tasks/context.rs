//! What a running task sees: its id, the agent, a place to report progress
//! and a flag that asks it to stop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ferry_api::Progress;
use ferry_storage::throttle::Throttle;
use tokio::sync::watch;
use uuid::Uuid;

use crate::state::AgentState;

/// A slot of the control block: one assignment or clone under the lock,
/// so a poisoned lock still holds a consistent value.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a task is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The caller cancelled it: it ends `cancelled`.
    Cancel,
    /// The agent is shutting down: it stays `running` on disk and is
    /// resumed at the next start.
    Shutdown,
}

/// The shared control block of one task, between its runner, the manager
/// and the HTTP handlers.
#[derive(Debug)]
pub(crate) struct Control {
    done: AtomicU64,
    total: AtomicU64,
    /// Progress changed since it was last persisted.
    dirty: AtomicBool,
    /// Set once, with the first reason given.
    stop: watch::Sender<Option<StopReason>>,
    /// The same request as a plain flag, for blocking code (ferry-storage's
    /// `CopyControl::cancel`).
    stop_flag: Arc<AtomicBool>,
    /// The runner has been started (an SPM task waiting for the role has
    /// not).
    pub(crate) executing: AtomicBool,
    /// A copy's bandwidth limit, once its runner has made one: what
    /// `POST /v1/tasks/{id}/pace` changes.
    throttle: std::sync::Mutex<Option<Arc<Throttle>>>,
    /// The directory of the files a copy writes: they are flushed when the
    /// copy is held, so a switch that follows does not wait behind their
    /// writeback.
    writes_to: std::sync::Mutex<Option<std::path::PathBuf>>,
}

impl Control {
    pub(crate) fn new(done: u64, total: u64) -> Self {
        Control {
            done: AtomicU64::new(done),
            total: AtomicU64::new(total),
            dirty: AtomicBool::new(false),
            stop: watch::Sender::new(None),
            stop_flag: Arc::new(AtomicBool::new(false)),
            executing: AtomicBool::new(false),
            throttle: std::sync::Mutex::new(None),
            writes_to: std::sync::Mutex::new(None),
        }
    }

    /// The directory a copy writes under, if its runner said.
    pub(crate) fn writes_to(&self) -> Option<std::path::PathBuf> {
        lock(&self.writes_to).clone()
    }

    /// The copy's limit, if its runner made one.
    pub(crate) fn throttle(&self) -> Option<Arc<Throttle>> {
        lock(&self.throttle).clone()
    }

    pub(crate) fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    fn set_progress(&self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Whether progress changed since the last call.
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    /// Asks the task to stop; the first reason given wins.
    pub(crate) fn stop(&self, reason: StopReason) {
        self.stop.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
        self.stop_flag.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }

    pub(crate) fn watch_stop(&self) -> watch::Receiver<Option<StopReason>> {
        self.stop.subscribe()
    }
}

/// Handed to a [`TaskVerb`](crate::tasks::TaskVerb)'s runner.
#[derive(Debug, Clone)]
pub struct TaskContext {
    id: Uuid,
    agent: Arc<AgentState>,
    control: Arc<Control>,
}

impl TaskContext {
    pub(crate) fn new(id: Uuid, agent: Arc<AgentState>, control: Arc<Control>) -> Self {
        TaskContext { id, agent, control }
    }

    /// The task's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The agent running it: its domains, SPM role and (later) VMs.
    pub fn agent(&self) -> &Arc<AgentState> {
        &self.agent
    }

    /// Records progress in bytes; cheap, callable from any thread. The
    /// manager persists it at most every half second.
    pub fn set_progress(&self, done: u64, total: u64) {
        self.control.set_progress(done, total);
    }

    /// A progress callback for blocking code (ferry-storage's
    /// `CopyControl::progress`).
    pub fn progress_reporter(&self) -> impl Fn(Progress) + Send + Sync + 'static {
        let control = self.control.clone();
        move |p: Progress| control.set_progress(p.done, p.total)
    }

    /// A flag that turns true when the task is asked to stop, for blocking
    /// code that polls (ferry-storage's `CopyControl::cancel`).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.control.stop_flag.clone()
    }

    /// The copy's bandwidth limit: `limit_bps` bytes per second to begin
    /// with (`None`: none), changed or held while it runs through
    /// `POST /v1/tasks/{id}/pace`. Made once per task; a second call gets
    /// the same limit, set anew.
    pub fn throttle(&self, limit_bps: Option<u64>) -> Arc<Throttle> {
        let mut slot = lock(&self.control.throttle);
        let t = slot
            .get_or_insert_with(|| Arc::new(Throttle::unlimited()))
            .clone();
        t.set_rate(limit_bps.unwrap_or(u64::MAX));
        t
    }

    /// Says where the copy writes (the image's directory on its
    /// destination): holding the copy then also flushes the files there,
    /// and only those, so what the copy wrote is on disk before the switch
    /// the hold is for while other writers' dirty pages are left alone.
    pub fn set_writes_to(&self, dir: std::path::PathBuf) {
        *lock(&self.control.writes_to) = Some(dir);
    }

    /// Whether the task has been asked to stop.
    pub fn is_stopping(&self) -> bool {
        self.control.stop_reason().is_some()
    }

    /// Resolves when the task is asked to stop, for async runners that
    /// wait on something else (a QMP event) meanwhile.
    pub async fn stopping(&self) -> StopReason {
        let mut rx = self.control.watch_stop();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(r) => r.unwrap_or(StopReason::Cancel),
            // The sender lives in the control block we hold: never closed.
            Err(_) => StopReason::Shutdown,
        };
        reason
    }
}
