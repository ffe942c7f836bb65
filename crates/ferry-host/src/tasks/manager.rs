//! The task table: starts tasks idempotently by caller-chosen id, answers
//! their status, cancels and forgets them, persists them, and resumes the
//! unfinished ones when the agent starts again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferry_api::agent::{PaceTask, TaskState, TaskStatus};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use ferry_api::ErrorKind;

use crate::error::{chain_text, Error, Result};
use crate::fsutil::{blocking, now_epoch};
use crate::state::AgentState;
use crate::tasks::context::{Control, StopReason, TaskContext};
use crate::tasks::store::{TaskRecord, TaskStore};
use crate::tasks::verb::{VerbEntry, VerbRegistry};

/// Progress is written to disk at most this often: often enough that a
/// restarted agent reports roughly where it was, rarely enough not to
/// compete with the copy for the disk.
const PERSIST_EVERY: Duration = Duration::from_millis(500);

/// How long a shutdown waits for running tasks to notice the request.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// One task in memory.
#[derive(Debug)]
struct Task {
    id: Uuid,
    verb: String,
    params: Value,
    started: u64,
    control: Arc<Control>,
    end: Mutex<Ending>,
    /// True once `end` holds how the task ended: what a caller waiting for
    /// the end ([`TaskManager::wait`]) watches.
    ended: watch::Sender<bool>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

/// A task's state and how it ended.
#[derive(Debug, Clone)]
struct Ending {
    state: TaskState,
    error: Option<String>,
    /// What kind of failure `error` is, for the engine to decide on.
    error_kind: Option<ErrorKind>,
    finished: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Task {
    fn status_with(&self, end: &Ending) -> TaskStatus {
        let (done, total) = self.control.progress();
        TaskStatus {
            id: self.id,
            verb: self.verb.clone(),
            state: end.state,
            done_bytes: done,
            total_bytes: total,
            error: end.error.clone(),
            error_kind: end.error_kind,
            started: self.started,
            finished: end.finished,
            limit_bps: self
                .control
                .throttle()
                .map(|t| t.rate())
                .filter(|&r| r != u64::MAX),
            held: self.control.throttle().is_some_and(|t| t.is_paused()),
        }
    }

    fn status(&self) -> TaskStatus {
        self.status_with(&lock(&self.end))
    }

    fn record_with(&self, end: &Ending) -> TaskRecord {
        TaskRecord {
            status: self.status_with(end),
            params: self.params.clone(),
        }
    }
}

/// The answer of [`TaskManager::start`].
#[derive(Debug, Clone)]
pub struct Started {
    /// The task's status.
    pub status: TaskStatus,
    /// False when a task with this id, verb and parameters already existed
    /// and nothing new was started.
    pub created: bool,
}

/// Every task this agent knows, running or finished.
#[derive(Debug)]
pub struct TaskManager {
    store: TaskStore,
    verbs: VerbRegistry,
    tasks: Mutex<BTreeMap<Uuid, Arc<Task>>>,
}

impl TaskManager {
    /// A manager keeping its records in `run_dir/tasks`. Blocking.
    pub(crate) fn open(run_dir: &Path, verbs: VerbRegistry) -> Result<Self> {
        Ok(TaskManager {
            store: TaskStore::open(run_dir)?,
            verbs,
            tasks: Mutex::new(BTreeMap::new()),
        })
    }

    /// The verbs tasks can run.
    pub fn verbs(&self) -> &VerbRegistry {
        &self.verbs
    }

    fn find(&self, id: Uuid) -> Result<Arc<Task>> {
        lock(&self.tasks)
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("there is no task {id} on this host")))
    }

    /// One task's status.
    pub fn get(&self, id: Uuid) -> Result<TaskStatus> {
        Ok(self.find(id)?.status())
    }

    /// One task's status once it has ended, or after `at_most` if it
    /// still runs then: what lets the engine see a task end when it ends
    /// rather than at its next poll.
    pub async fn wait(&self, id: Uuid, at_most: Duration) -> Result<TaskStatus> {
        let task = self.find(id)?;
        let mut ended = task.ended.subscribe();
        let _ = tokio::time::timeout(at_most, ended.wait_for(|e| *e)).await;
        Ok(task.status())
    }

    /// Every task's status, oldest first.
    pub fn list(&self) -> Vec<TaskStatus> {
        let mut all: Vec<TaskStatus> = lock(&self.tasks).values().map(|t| t.status()).collect();
        all.sort_by_key(|s| (s.started, s.id));
        all
    }

    /// Starts task `id` running `verb` with `params`, or, when that task
    /// exists already with the same verb and parameters, answers its
    /// status without running anything again. The same id with another
    /// verb or other parameters is a conflict. The task is persisted
    /// before this returns, so a crash right after still resumes it.
    pub async fn start(
        &self,
        agent: &Arc<AgentState>,
        id: Uuid,
        verb: &str,
        params: Value,
    ) -> Result<Started> {
        let entry = self.verbs.get(verb).ok_or_else(|| {
            Error::NotFound(format!(
                "this agent has no task verb '{verb}'; it knows: {}",
                self.verbs.names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let params = (entry.normalize)(params)?;
        if let Some(same) = self.existing(id, verb, &params)? {
            return Ok(same);
        }
        if entry.spm_only {
            agent.spm().require(&format!("run {verb}"))?;
        }
        (entry.check)(agent.clone(), params.clone()).await?;

        let task = Arc::new(Task {
            id,
            verb: verb.to_string(),
            params: params.clone(),
            started: now_epoch(),
            control: Arc::new(Control::new(0, 0)),
            end: Mutex::new(Ending {
                state: TaskState::Running,
                error: None,
                error_kind: None,
                finished: None,
            }),
            ended: watch::Sender::new(false),
            handle: Mutex::new(None),
        });
        {
            let mut tasks = lock(&self.tasks);
            if tasks.contains_key(&id) {
                drop(tasks);
                // Started by a concurrent identical request meanwhile.
                return self
                    .existing(id, verb, &params)?
                    .ok_or_else(|| Error::Internal(format!("task {id} vanished")));
            }
            tasks.insert(id, task.clone());
        }
        let record = task.record_with(&lock(&task.end));
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.save(&record)).await {
            lock(&self.tasks).remove(&id);
            return Err(e);
        }
        tracing::info!(task = %id, verb, "started task");
        self.spawn(agent, &task, entry);
        Ok(Started {
            status: task.status(),
            created: true,
        })
    }

    /// The status of task `id` if it exists with this verb and parameters;
    /// a conflict if it exists with others.
    fn existing(&self, id: Uuid, verb: &str, params: &Value) -> Result<Option<Started>> {
        let Some(task) = lock(&self.tasks).get(&id).cloned() else {
            return Ok(None);
        };
        if task.verb != verb || &task.params != params {
            return Err(Error::Conflict(format!(
                "task {id} already exists as {} with other parameters; choose a new task id for a new task",
                task.verb
            )));
        }
        Ok(Some(Started {
            status: task.status(),
            created: false,
        }))
    }

    /// Asks a running task to stop; it ends `cancelled` once its runner
    /// notices (answer: its status, still `running` until then). Cancelling
    /// a cancelled task is a no-op; a finished one is a conflict.
    pub fn cancel(&self, id: Uuid) -> Result<TaskStatus> {
        let task = self.find(id)?;
        let state = lock(&task.end).state;
        match state {
            TaskState::Running => {
                task.control.stop(StopReason::Cancel);
                tracing::info!(task = %id, "cancel requested");
            }
            TaskState::Cancelled => {}
            done => {
                return Err(Error::Conflict(format!(
                    "task {id} has already {}: there is nothing to cancel",
                    state_word(done)
                )))
            }
        }
        Ok(task.status())
    }

    /// Changes a running copy's limit or holds it (answer: its status); a
    /// copy newly held has the files it writes flushed before the answer.
    /// Refused for a task that has ended, and for one that copies nothing
    /// (or has not begun to).
    pub async fn pace(&self, id: Uuid, pace: PaceTask) -> Result<TaskStatus> {
        let task = self.find(id)?;
        let state = lock(&task.end).state;
        if state != TaskState::Running {
            return Err(Error::Conflict(format!(
                "task {id} has already {}: there is no copy to pace",
                state_word(state)
            )));
        }
        let Some(throttle) = task.control.throttle() else {
            return Err(Error::Conflict(format!(
                "task {id} ({}) has no copy under way to pace; pace a clone-internal-volumes task once it runs",
                task.verb
            )));
        };
        if pace.limit_bps == Some(0) {
            return Err(Error::BadRequest(
                "limit_bps is 0, which would never finish; hold the copy instead (held: true)"
                    .into(),
            ));
        }
        throttle.set_rate(pace.limit_bps.unwrap_or(u64::MAX));
        let newly_held = pace.held && !throttle.is_paused();
        throttle.set_paused(pace.held);
        if let Some(dir) = task.control.writes_to().filter(|_| newly_held) {
            // What the copy wrote reaches the disk now, while it is held,
            // not during the switch the hold is for. Best effort: a flush
            // that fails only loses the quiet.
            let flushed = blocking(move || flush_held_copy(&throttle, &dir)).await;
            if let Err(e) = flushed {
                tracing::warn!(task = %id, "cannot flush the held copy's writes: {}", e.full_text());
            }
        }
        Ok(task.status())
    }

    /// Forgets a finished task (memory and disk). A running task must be
    /// cancelled first.
    pub async fn forget(&self, id: Uuid) -> Result<()> {
        let task = self.find(id)?;
        if lock(&task.end).state == TaskState::Running {
            return Err(Error::Conflict(format!(
                "task {id} is still running; cancel it (POST /v1/tasks/{id}/cancel) and wait for it to end before forgetting it"
            )));
        }
        let store = self.store.clone();
        blocking(move || store.remove(id)).await?;
        lock(&self.tasks).remove(&id);
        Ok(())
    }

    /// Names the SPM tasks that are executing, for a refused release.
    pub(crate) fn busy_spm_tasks(&self) -> Option<String> {
        let busy: Vec<String> = lock(&self.tasks)
            .values()
            .filter(|t| {
                lock(&t.end).state == TaskState::Running
                    && t.control
                        .executing
                        .load(std::sync::atomic::Ordering::Relaxed)
                    && self.verbs.get(&t.verb).is_some_and(|v| v.spm_only)
            })
            .map(|t| format!("{} ({})", t.id, t.verb))
            .collect();
        match busy.len() {
            0 => None,
            1 => Some(format!("task {} is", busy.join(""))),
            _ => Some(format!("tasks {} are", busy.join(", "))),
        }
    }

    /// Loads the persisted tasks and re-runs those that were running when
    /// the previous agent stopped. Blocking reads; call once at start.
    pub(crate) fn resume(&self, agent: &Arc<AgentState>) -> Result<()> {
        for record in self.store.load_all()? {
            let s = record.status;
            let entry = self.verbs.get(&s.verb);
            let mut end = Ending {
                state: s.state,
                error: s.error,
                error_kind: s.error_kind,
                finished: s.finished,
            };
            if s.state == TaskState::Running && entry.is_none() {
                end = Ending {
                    state: TaskState::Failed,
                    error: Some(format!(
                        "this agent no longer knows the task verb '{}', so the task cannot be resumed",
                        s.verb
                    )),
                    error_kind: Some(ErrorKind::Internal),
                    finished: Some(now_epoch()),
                };
            }
            let task = Arc::new(Task {
                id: s.id,
                verb: s.verb,
                params: record.params,
                started: s.started,
                control: Arc::new(Control::new(s.done_bytes, s.total_bytes)),
                ended: watch::Sender::new(end.state != TaskState::Running),
                end: Mutex::new(end),
                handle: Mutex::new(None),
            });
            lock(&self.tasks).insert(task.id, task.clone());
            let state = lock(&task.end).state;
            match entry {
                Some(entry) if state == TaskState::Running => {
                    tracing::info!(task = %task.id, verb = %task.verb, "resuming task");
                    self.spawn(agent, &task, entry);
                }
                None if s.state == TaskState::Running => {
                    let record = task.record_with(&lock(&task.end));
                    self.store.save(&record)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Asks every running task to stop for a shutdown (they stay `running`
    /// on disk, to be resumed) and waits a while for them to let go.
    pub(crate) async fn shutdown(&self) {
        let tasks: Vec<Arc<Task>> = lock(&self.tasks).values().cloned().collect();
        let mut handles = Vec::new();
        for t in &tasks {
            t.control.stop(StopReason::Shutdown);
            if let Some(h) = lock(&t.handle).take() {
                handles.push((t.id, h));
            }
        }
        for (id, h) in handles {
            match tokio::time::timeout(SHUTDOWN_WAIT, h).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(task = %id, "task did not stop within {SHUTDOWN_WAIT:?}; leaving it")
                }
            }
        }
    }

    fn spawn(&self, agent: &Arc<AgentState>, task: &Arc<Task>, entry: VerbEntry) {
        let handle = tokio::spawn(supervise(
            agent.clone(),
            task.clone(),
            entry,
            self.store.clone(),
        ));
        *lock(&task.handle) = Some(handle);
    }
}

fn state_word(state: TaskState) -> &'static str {
    match state {
        TaskState::Running => "not finished",
        TaskState::Succeeded => "succeeded",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "been cancelled",
    }
}

/// Runs one task to its end: waits for the SPM role if the verb needs it,
/// runs the verb, persists progress now and then and the outcome at the
/// end.
async fn supervise(agent: Arc<AgentState>, task: Arc<Task>, entry: VerbEntry, store: TaskStore) {
    let outcome = drive(&agent, &task, entry, &store).await;
    let reason = task.control.stop_reason();
    let end = match (outcome, reason) {
        (Ok(()), _) => Ending {
            state: TaskState::Succeeded,
            error: None,
            error_kind: None,
            finished: Some(now_epoch()),
        },
        (Err(_), Some(StopReason::Shutdown)) => {
            // Left `running` on disk with its latest progress: resumed at
            // the next start.
            let record = task.record_with(&lock(&task.end));
            persist(&store, record).await;
            tracing::info!(task = %task.id, "task stopped for shutdown; it resumes at the next start");
            return;
        }
        (Err(_), Some(StopReason::Cancel)) => Ending {
            state: TaskState::Cancelled,
            error: None,
            error_kind: None,
            finished: Some(now_epoch()),
        },
        (Err(e), None) => Ending {
            state: TaskState::Failed,
            error: Some(e.full_text()),
            error_kind: Some(e.kind()),
            finished: Some(now_epoch()),
        },
    };
    match &end.error {
        Some(e) => tracing::warn!(task = %task.id, verb = %task.verb, "task failed: {e}"),
        None => {
            tracing::info!(task = %task.id, verb = %task.verb, state = ?end.state, "task ended")
        }
    }
    // On disk first, then in memory: a forget that sees the task finished
    // can never be followed by this write resurrecting its record.
    persist(&store, task.record_with(&end)).await;
    *lock(&task.end) = end;
    task.ended.send_replace(true);
    // A task's end is when what it may have left half-done (a copy, a
    // merge's delete) can be collected, if it is old enough.
    crate::gc::spawn(&agent);
}

async fn drive(
    agent: &Arc<AgentState>,
    task: &Arc<Task>,
    entry: VerbEntry,
    store: &TaskStore,
) -> Result<()> {
    let mut stop = task.control.watch_stop();
    if entry.spm_only {
        let mut spm = agent.spm().subscribe();
        let mut told = false;
        while !agent.spm().while_held(|| {
            task.control
                .executing
                .store(true, std::sync::atomic::Ordering::Relaxed)
        }) {
            if !told {
                tracing::info!(task = %task.id, verb = %task.verb, "task waits until this host is SPM");
                told = true;
            }
            tokio::select! {
                changed = spm.changed() => {
                    if changed.is_err() {
                        return Err(Error::Internal("the SPM role went away".into()));
                    }
                }
                _ = stop.wait_for(Option::is_some) => return Err(Error::Cancelled(task.id)),
            }
        }
    } else {
        task.control
            .executing
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let ctx = TaskContext::new(task.id, agent.clone(), task.control.clone());
    // Its own tokio task, so a panicking runner fails its task instead of
    // leaving it `running` for ever.
    let mut run = tokio::spawn((entry.run)(ctx, task.params.clone()));
    let mut tick = tokio::time::interval(PERSIST_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            joined = &mut run => {
                return joined.unwrap_or_else(|e| Err(Error::Internal(format!("the task's runner stopped: {}", chain_text(&e)))));
            }
            _ = tick.tick() => {
                if task.control.take_dirty() {
                    let record = task.record_with(&lock(&task.end));
                    persist(store, record).await;
                }
            }
        }
    }
}

/// Writes a record, logging (not failing the task) when the run directory
/// is unwritable: the work itself is what matters.
async fn persist(store: &TaskStore, record: TaskRecord) {
    let id = record.status.id;
    let store = store.clone();
    if let Err(e) = blocking(move || store.save(&record)).await {
        tracing::error!(task = %id, "could not persist the task: {}", e.full_text());
    }
}

/// How long a hold waits for what is already being written (a request per
/// worker of a direct copy, a chunk per worker of another) before it
/// flushes anyway.
const HOLD_STILL_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Flushes the files of a held copy (`fdatasync` of each file in `dir`,
/// the image's directory on the destination) once the requests it had in
/// flight are written: the copy's own dirty pages, not the filesystem's.
fn flush_held_copy(
    throttle: &ferry_storage::throttle::Throttle,
    dir: &std::path::Path,
) -> Result<()> {
    let still = throttle.wait_until_still(std::time::Instant::now() + HOLD_STILL_WITHIN);
    if !still {
        tracing::debug!(dir = %dir.display(), "the held copy was still writing; flushing what is there");
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // The copy has not created its image directory yet: nothing to flush.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Removed meanwhile (a temporary file): nothing of it to flush.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        file.sync_data().map_err(|e| Error::io("flush", &path, e))?;
    }
    Ok(())
}
