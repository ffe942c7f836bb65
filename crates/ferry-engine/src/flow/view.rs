//! A job as the API shows it: the stored row and steps, with what the flow
//! says can be done with it (cancel, retry) and whether it waits queued.

use ferry_api::engine::{Job, JobStep, MoveMode, PaceMode, GUEST_SHARE_DEFAULT_PCT};
use uuid::Uuid;

use super::step::{cancellable, retryable};
use crate::db::JobRow;
use crate::error::{Error, Result};
use crate::Engine;

/// The API's view of `row` with its `steps`. `eta_secs` follows from the
/// rate.
pub fn job_view(engine: &Engine, row: &JobRow, steps: Vec<JobStep>) -> Job {
    let left = row.total_bytes.saturating_sub(row.done_bytes);
    let pace = engine.pace_of(row.id).filter(|_| !row.state.is_finished());
    let flags = super::plan::flags_of(&row.data);
    let eta_secs =
        (row.rate_bps > 0 && !row.state.is_finished()).then(|| left.div_ceil(row.rate_bps));
    Job {
        id: row.id,
        kind: row.kind,
        mode: row.mode,
        state: row.state,
        disks: row.disks.clone(),
        vm: row.vm,
        src_domain: row.src_domain,
        dst_domain: row.dst_domain,
        step: row.step,
        cancellable: cancellable(row, &steps),
        retryable: retryable(row),
        steps,
        done_bytes: row.done_bytes,
        total_bytes: row.total_bytes,
        rate_bps: row.rate_bps,
        eta_secs,
        bandwidth_mib_s: row.bandwidth_mib_s,
        pace: flags.pace,
        pacing: pace.is_some(),
        pace_limit_bps: pace.and_then(|p| p.limit_bps),
        guest_latency_us: pace.and_then(|p| p.latency_us),
        guest_baseline_us: pace.and_then(|p| p.baseline_us),
        guest_kept_pct: pace.and_then(|p| p.kept_pct),
        guest_share_pct: (row.mode == MoveMode::Live && flags.pace == PaceMode::Guest)
            .then(|| flags.guest_share_pct.unwrap_or(GUEST_SHARE_DEFAULT_PCT)),
        queued: engine.moves().is_waiting(row.id),
        error: row.error.clone(),
        correlation_id: flags.correlation_id,
        created: row.created,
        finished: row.finished,
    }
}

/// Job `id` as the API shows it.
pub async fn job(engine: &Engine, id: Uuid) -> Result<Job> {
    let row = engine.db().job(id).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "there is no job {id}; list the jobs with 'ferry job list'"
        ))
    })?;
    let steps = engine.db().steps(id).await?;
    Ok(job_view(engine, &row, steps))
}

/// Every job as the API shows it, newest first.
pub async fn jobs(engine: &Engine) -> Result<Vec<Job>> {
    let mut out = Vec::new();
    for row in engine.db().jobs().await? {
        let steps = engine.db().steps(row.id).await?;
        out.push(job_view(engine, &row, steps));
    }
    Ok(out)
}
