//! Following a job to its end with a live progress bar.

use std::time::Duration;

use anyhow::{bail, Result};
use ferry_api::engine::{Job, JobKind, JobState, MoveMode, PaceMode, StepState};
use ferry_engine::EngineClient;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::names::Names;
use super::output::{bytes, json};
use crate::stdout::out;

/// How often a followed job is read.
const POLL: Duration = Duration::from_millis(500);

/// A job's state as one word.
pub fn state_word(s: JobState) -> &'static str {
    match s {
        JobState::Running => "running",
        JobState::RollingBack => "rolling back",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// A job's state in a word, "queued" for one waiting for a place.
pub fn job_word(job: &Job) -> &'static str {
    if job.queued {
        "queued"
    } else {
        state_word(job.state)
    }
}

/// Prints a job and its steps, things by name.
pub fn describe(job: &Job, names: &Names) {
    out!("job {} ({})", job.id, job_word(job));
    if job.queued {
        out!("  queued: as many moves as the engine runs at once are running; it starts when one ends");
    }
    let kind = match job.kind {
        JobKind::DiskMove => "disk move",
        JobKind::VmMove => "VM move",
    };
    let mode = match job.mode {
        MoveMode::Live => "live",
        MoveMode::Cold => "cold",
    };
    let vm = job
        .vm
        .map_or_else(String::new, |vm| format!(" (VM {})", names.of(vm)));
    out!(
        "  {mode} {kind} of {} from {} to {}{vm}",
        names.list(&job.disks),
        names.of(job.src_domain),
        names.of(job.dst_domain)
    );
    if let Some(id) = &job.correlation_id {
        out!("  correlation id {id}");
    }
    if let Some(pace) = pace_line(job) {
        out!("  {pace}");
    }
    out!(
        "  copied {} of {}",
        bytes(job.done_bytes),
        bytes(job.total_bytes)
    );
    for s in &job.steps {
        let took = match (s.started, s.finished) {
            (Some(a), Some(b)) => format!("{:.1} s", b.saturating_sub(a) as f64 / 1000.0),
            _ => String::new(),
        };
        let state = match s.state {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Skipped => "skipped",
            StepState::Failed => "FAILED",
            StepState::RolledBack => "rolled back",
        };
        out!(
            "  {:<22} {:<12} {:>8}  {}",
            s.name.name(),
            state,
            took,
            s.error.clone().unwrap_or_default()
        );
    }
    if let Some(e) = &job.error {
        out!("  error: {e}");
    }
}

/// How a live copy is paced, while it runs: its limit now, the guest's
/// latency against its level without the copy, and the share of its rate
/// it keeps against the share asked.
fn pace_line(job: &Job) -> Option<String> {
    let mode = match (job.pace, job.guest_share_pct) {
        (PaceMode::Guest, Some(aim)) => format!("paced by the guest (aims at {aim} % of its rate)"),
        (PaceMode::Guest, None) => "paced by the guest".to_string(),
        (PaceMode::Fixed, _) => "paced by --bandwidth only".to_string(),
    };
    if job.mode != MoveMode::Live || job.state.is_finished() {
        return None;
    }
    Some(match pace_short(job) {
        Some(now) => format!("{mode}: {now}"),
        None => mode,
    })
}

/// The pacing's figures in a few words, while it runs.
fn pace_short(job: &Job) -> Option<String> {
    let latency = job.guest_latency_us?;
    let limit = job
        .pace_limit_bps
        .map_or_else(|| "no limit".to_string(), |l| format!("{}/s", bytes(l)));
    let baseline = job
        .guest_baseline_us
        .map_or_else(String::new, |b| format!(" (without the copy: {b} µs)"));
    let kept = job
        .guest_kept_pct
        .map_or_else(String::new, |k| format!(", keeps ~{k} % of its rate"));
    Some(format!("copy {limit}, guest {latency} µs{baseline}{kept}"))
}

/// After a move started: print its id, and with `wait` follow it.
pub async fn started_job(c: &EngineClient, job: Job, wait: bool, as_json: bool) -> Result<()> {
    if !wait {
        if as_json {
            return json(&job);
        }
        out!("{}", job.id);
        return Ok(());
    }
    if !as_json {
        let mode = match job.mode {
            MoveMode::Live => "live",
            MoveMode::Cold => "cold",
        };
        eprintln!("job {} started ({mode} move)", job.id);
    }
    follow(c, job, as_json).await
}

/// Polls the job until it ends, drawing step, bytes, rate and ETA; fails
/// (non-zero exit) when the job fails or is cancelled.
pub async fn follow(c: &EngineClient, mut job: Job, as_json: bool) -> Result<()> {
    let bar = ProgressBar::new(job.total_bytes.max(1));
    if as_json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<24} [{bar:32}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    loop {
        bar.set_length(job.total_bytes.max(job.done_bytes).max(1));
        bar.set_position(job.done_bytes);
        bar.set_message(match job.state {
            JobState::RollingBack => format!("rolling back ({})", job.step),
            _ if job.queued => "queued".to_string(),
            _ => match pace_short(&job) {
                Some(p) => format!("{} ({p})", job.step),
                None => job.step.to_string(),
            },
        });
        if job.state.is_finished() {
            break;
        }
        tokio::time::sleep(POLL).await;
        job = c.job(job.id).await?;
    }
    bar.finish_and_clear();
    if as_json {
        json(&job)?;
    } else {
        describe(&job, &Names::load(c).await?);
    }
    match job.state {
        JobState::Succeeded => Ok(()),
        JobState::Cancelled => bail!(
            "job {} was cancelled; the disks are where they were",
            job.id
        ),
        _ => bail!(
            "job {} failed: {}",
            job.id,
            job.error.unwrap_or_else(|| "no reason recorded".into())
        ),
    }
}
