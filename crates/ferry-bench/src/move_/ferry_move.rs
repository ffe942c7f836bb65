//! Ferry's live move through the engine, watched as it runs: the job's
//! steps, the agent's copy tasks, the guest-paced copy's limit and the
//! guest's console, every [`POLL`].

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ferry_api::agent::TaskStatus;
use ferry_api::engine::{Job, JobState, MoveRequest, Step, StepState};
use ferry_engine::EngineClient;
use ferry_testkit::guest::{max_stall, SerialLog, WriterConfig};
use serde::Serialize;
use uuid::Uuid;

use super::guest::{acks_per_s, last_seq, wait_seq};
use super::services::Services;
use super::{ms, AFTER_ACKS, DISK, MOVE_LIMIT, POLL};

/// What the bench measured of Ferry's move.
pub(super) struct FerryResult {
    pub(super) job: Job,
    pub(super) seconds_host: f64,
    pub(super) acks_per_s: f64,
    pub(super) copy_seconds: f64,
    pub(super) steps: Vec<StepReport>,
    /// The guest-paced copy's limit and the guest's latency as the job
    /// showed them, each time they changed (empty for a fixed pace).
    pub(super) pace: Vec<PaceSample>,
    /// When the job was first seen past `cloneInternalVolumes`, seconds
    /// since the move was asked for: where the last sample of `pace` ends.
    pub(super) copy_end_seconds: f64,
    /// The destination domain's name.
    pub(super) to: String,
}

/// What the bench saw of one step of the move, in writer seqs.
///
/// `start` is the last ack seen before the poll whose job query first
/// showed the step started (so no write of the step is before it); `end`
/// is the last ack seen at the poll after the query that first showed it
/// done. Its pause is [`max_stall`] over `start..=end + AFTER_ACKS`.
#[derive(Debug, Default)]
struct StepWatch {
    start: Option<u64>,
    end: Option<u64>,
    end_pending: bool,
}

/// One agent copy task as the bench saw it.
#[derive(Debug)]
struct TaskWatch {
    /// The query before the one that first listed it.
    appeared_after: Instant,
    /// The query that first saw it finished.
    finished_by: Option<Instant>,
}

/// Everything the bench saw of the move so far.
#[derive(Debug)]
struct Watch {
    /// One per step of the job, in order.
    steps: Vec<StepWatch>,
    /// The agent's `clone-internal-volumes` tasks.
    tasks: BTreeMap<Uuid, TaskWatch>,
    /// The last ack seen at the previous poll.
    prev_seq: u64,
    /// When the previous task query was sent.
    prev_query: Instant,
    /// When the move was asked for.
    t0: Instant,
    /// The pacing as the job showed it, on each change.
    pace: Vec<PaceSample>,
    /// When the job was first seen past `cloneInternalVolumes`.
    copy_end: Option<f64>,
}

/// Ferry's move `req` through the engine, watched every [`POLL`]: the job
/// (step states, the pacing), the agent's `clone-internal-volumes` tasks
/// (the copy's own duration, free of the engine's 300 ms task polling) and
/// the console.
pub(super) async fn ferry_move(
    s: &Services,
    log: &mut SerialLog,
    writer: &WriterConfig,
    req: &MoveRequest,
) -> Result<FerryResult> {
    log.poll();
    let seq0 = last_seq(log);
    let t0 = Instant::now();
    let job = start_move(&s.client, req).await?;
    let mut watch = Watch::new(&job, seq0, t0);
    let done = watch_until_finished(s, log, &mut watch, job.id, t0).await?;
    let seconds_host = t0.elapsed().as_secs_f64();
    log.poll();
    let seq_end = last_seq(log);
    if done.state != JobState::Succeeded {
        bail!(
            "the move ended {:?}: {}",
            done.state,
            done.error.as_deref().unwrap_or("no reason given")
        );
    }
    watch.end_all(seq_end);
    let copy_seconds = watch.copy_seconds();
    if watch.tasks.is_empty() {
        bail!("the bench saw no copy task on the agent");
    }
    let release = watch_release(s, log, &done, seq_end).await?;
    let last = watch.last_end(seq_end).max(release.last_seq.unwrap_or(0));
    wait_seq(log, last + AFTER_ACKS)?;
    let mut steps = watch.step_reports(&done, log);
    steps.push(StepReport {
        max_stall_ms: Some(ms(max_stall(log.acks(), seq_end, last + AFTER_ACKS))),
        ..release
    });
    Ok(FerryResult {
        acks_per_s: acks_per_s(log, writer, seq0, seq_end, seconds_host),
        job: done,
        seconds_host,
        copy_seconds,
        steps,
        copy_end_seconds: watch.copy_end.unwrap_or(seconds_host),
        pace: watch.pace,
        to: req.to.clone(),
    })
}

/// The name of the release's entry among the steps.
pub(super) const RELEASE: &str = "source space released (after the job)";

/// Follows the source's space coming back after the job ended (the
/// cleanup only retires the source's volumes; the agent frees their
/// space in the background, see docs/engine.md) until the source's image
/// directories are gone: its time, and the writer's acks over it, so the
/// report shows what the guest felt of it too. Its pause is filled in by
/// the caller once the acks after it are in.
async fn watch_release(
    s: &Services,
    log: &mut SerialLog,
    job: &Job,
    seq_from: u64,
) -> Result<StepReport> {
    let dirs = job
        .disks
        .iter()
        .map(|d| s.image_dir(job.src_domain, *d))
        .collect::<Result<Vec<_>>>()?;
    let t0 = Instant::now();
    while dirs.iter().any(|d| d.exists()) {
        if t0.elapsed() > RELEASE_LIMIT {
            bail!(
                "the source's space was not given back within {RELEASE_LIMIT:?} of the job's end: {} is still there",
                dirs[0].display()
            );
        }
        tokio::time::sleep(POLL).await;
        log.poll();
    }
    log.poll();
    Ok(StepReport {
        name: RELEASE.to_string(),
        seconds: Some(t0.elapsed().as_secs_f64()),
        first_seq: Some(seq_from),
        last_seq: Some(last_seq(log)),
        max_stall_ms: None,
    })
}

/// How long the background release of a few GiB may take on a loaded host.
const RELEASE_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Asks the engine to move the bench's disk.
async fn start_move(c: &EngineClient, req: &MoveRequest) -> Result<Job> {
    c.move_disk(DISK, req)
        .await
        .with_context(|| format!("cannot start the move to {}", req.to))
}

/// Polls the console, the job and the agent's tasks until the job is
/// finished (whichever way); returns it as last seen.
async fn watch_until_finished(
    s: &Services,
    log: &mut SerialLog,
    watch: &mut Watch,
    job: Uuid,
    t0: Instant,
) -> Result<Job> {
    loop {
        if t0.elapsed() > MOVE_LIMIT {
            bail!("the move did not finish within {MOVE_LIMIT:?}");
        }
        log.poll();
        let seq = last_seq(log);
        watch.end_pending(seq);
        let j = s.client.job(job).await.context("cannot read the job")?;
        watch.see_steps(&j);
        watch.see_pace(&j);
        let asked = Instant::now();
        let listed = s
            .agent
            .tasks()
            .await
            .context("cannot list the agent's tasks")?;
        watch.see_tasks(&listed, asked, Instant::now());
        if j.state.is_finished() {
            return Ok(j);
        }
        watch.prev_seq = seq;
        tokio::time::sleep(POLL).await;
    }
}

impl Watch {
    fn new(job: &Job, seq0: u64, t0: Instant) -> Watch {
        Watch {
            steps: job.steps.iter().map(|_| StepWatch::default()).collect(),
            tasks: BTreeMap::new(),
            prev_seq: seq0,
            prev_query: t0,
            t0,
            pace: Vec::new(),
            copy_end: None,
        }
    }

    /// Records the pacing the job shows while it copies, when it changed.
    /// Only during `cloneInternalVolumes`: the engine steers the copy
    /// there, and keeps showing its last figures until the job ends.
    fn see_pace(&mut self, j: &Job) {
        let at = self.t0.elapsed().as_secs_f64();
        let copy_step = j
            .steps
            .iter()
            .find(|s| s.name == Step::CloneInternalVolumes);
        if copy_step.is_some_and(|s| !matches!(s.state, StepState::Pending | StepState::Running)) {
            self.copy_end.get_or_insert(at);
        }
        if j.step != Step::CloneInternalVolumes {
            return;
        }
        let shown = PaceSample {
            seconds: at,
            limit_bps: j.pace_limit_bps,
            guest_latency_us: j.guest_latency_us,
            guest_baseline_us: j.guest_baseline_us,
            guest_kept_pct: j.guest_kept_pct,
        };
        let figures = |p: &PaceSample| {
            (
                p.limit_bps,
                p.guest_latency_us,
                p.guest_baseline_us,
                p.guest_kept_pct,
            )
        };
        if figures(&shown) == (None, None, None, None) {
            return; // not paced (yet)
        }
        if self.pace.last().map(figures) != Some(figures(&shown)) {
            self.pace.push(shown);
        }
    }

    /// Steps the previous job query showed done end at `seq`, the last ack
    /// seen at this poll.
    fn end_pending(&mut self, seq: u64) {
        for w in self.steps.iter_mut().filter(|w| w.end_pending) {
            w.end = Some(seq);
            w.end_pending = false;
        }
    }

    /// A step seen started for the first time starts at the last ack of
    /// the previous poll; one seen over for the first time ends at the
    /// next poll.
    fn see_steps(&mut self, j: &Job) {
        for (w, step) in self.steps.iter_mut().zip(&j.steps) {
            if step.state != StepState::Pending && w.start.is_none() {
                w.start = Some(self.prev_seq);
            }
            let over = !matches!(step.state, StepState::Pending | StepState::Running);
            if over && w.end.is_none() {
                w.end_pending = true;
            }
        }
    }

    /// Records the copy tasks of a task list asked for at `asked` and
    /// answered at `answered`.
    fn see_tasks(&mut self, listed: &[TaskStatus], asked: Instant, answered: Instant) {
        for t in listed.iter().filter(|t| t.verb == "clone-internal-volumes") {
            let w = self.tasks.entry(t.id).or_insert(TaskWatch {
                appeared_after: self.prev_query,
                finished_by: None,
            });
            if t.state.is_finished() && w.finished_by.is_none() {
                w.finished_by = Some(answered);
            }
        }
        self.prev_query = asked;
    }

    /// Steps still open when the job finished end at `seq_end`.
    fn end_all(&mut self, seq_end: u64) {
        for w in &mut self.steps {
            if w.end.is_none() {
                w.end = Some(seq_end);
            }
        }
    }

    /// The copy tasks' durations, summed: they run one after the other.
    fn copy_seconds(&self) -> f64 {
        self.tasks
            .values()
            .map(|t| {
                t.finished_by
                    .map_or(0.0, |f| (f - t.appeared_after).as_secs_f64())
            })
            .sum()
    }

    /// The last ack any step's pause reaches.
    fn last_end(&self, seq_end: u64) -> u64 {
        self.steps
            .iter()
            .filter_map(|w| w.end)
            .max()
            .unwrap_or(seq_end)
    }

    /// Each step's time by the engine's records and its pause by the
    /// writer's acks.
    fn step_reports(&self, done: &Job, log: &SerialLog) -> Vec<StepReport> {
        done.steps
            .iter()
            .zip(&self.steps)
            .map(|(step, w)| StepReport {
                name: step.name.to_string(),
                seconds: step
                    .started
                    .zip(step.finished)
                    .map(|(a, b)| b.saturating_sub(a) as f64 / 1000.0),
                first_seq: w.start,
                last_seq: w.end,
                max_stall_ms: w
                    .start
                    .zip(w.end)
                    .map(|(a, b)| ms(max_stall(log.acks(), a, b + AFTER_ACKS))),
            })
            .collect()
    }
}

/// One step of the move as the report shows it: its time and the
/// longest pause the guest's writer saw in it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct StepReport {
    pub(super) name: String,
    pub(super) seconds: Option<f64>,
    /// The writer's acks bracketing the step (see `StepWatch`).
    pub(super) first_seq: Option<u64>,
    pub(super) last_seq: Option<u64>,
    pub(super) max_stall_ms: Option<f64>,
}

/// The guest-paced copy as the job showed it at one moment.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PaceSample {
    /// Since the move was asked for, by the bench's clock.
    pub(super) seconds: f64,
    /// The copy's limit, bytes per second; `None`: unlimited (the
    /// controller lets the disks decide).
    pub(super) limit_bps: Option<u64>,
    /// The guest's write latency the controller last saw, smoothed.
    pub(super) guest_latency_us: Option<u64>,
    /// Its latency without the copy (before the move, or the lowest
    /// since).
    pub(super) guest_baseline_us: Option<u64>,
    /// The share of its rate the controller estimated the guest kept,
    /// percent.
    pub(super) guest_kept_pct: Option<u8>,
}
