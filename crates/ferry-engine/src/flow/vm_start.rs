//! Where a VM must open each disk when it starts while a move holds the
//! disk: a VM always runs on its true chain, as it is on storage, never on
//! what the inventory believes. During a live move the inventory keeps the
//! disk on its source until the switch, while from `createVolumeCrossSD`
//! on the top of the chain on storage is the move's new leaf on the
//! destination (the guest's writes since `blockMigrate` are there). A
//! start that cannot be made safe at this instant is refused with a
//! sentence that says why and when it will be possible.

use ferry_api::engine::{JobState, MoveMode, Step, StepState};
use uuid::Uuid;

use crate::db::DiskRow;
use crate::error::{Error, Result};
use crate::Engine;

/// The domain whose leaf a VM starting now must open for `disk`.
pub async fn start_domain(engine: &Engine, disk: &DiskRow) -> Result<Uuid> {
    let Some(job_id) = disk.locked_by else {
        return Ok(disk.domain);
    };
    let Some(job) = engine.db().job(job_id).await? else {
        // A short operation's lock (a snapshot of the stopped VM's disk),
        // not a move: the inventory is the truth.
        return Ok(disk.domain);
    };
    if job.state.is_finished() {
        return Ok(disk.domain);
    }
    let steps = engine.db().steps(job_id).await?;
    let state = |step: Step| {
        steps
            .iter()
            .find(|s| s.name == step)
            .map_or(StepState::Pending, |s| s.state)
    };
    if state(Step::Prepare) != StepState::Done {
        return Err(Error::Conflict(format!(
            "disk {} is locked by job {job_id}, which is deciding whether to move it live or cold; start the VM in a moment",
            disk.name
        )));
    }
    if job.mode == MoveMode::Cold {
        return Err(Error::Conflict(format!(
            "the VM's disk {} is being moved while the VM is down (job {job_id}); start the VM when the job ends, or cancel it (ferry job cancel {job_id})",
            disk.name
        )));
    }
    if job.state == JobState::RollingBack {
        return Err(Error::Conflict(format!(
            "job {job_id} is putting disk {} back on its source; start the VM when the job ends (ferry job wait {job_id})",
            disk.name
        )));
    }
    if state(Step::CreateVolumeCrossSd) != StepState::Done {
        return Ok(disk.domain);
    }
    // The chain as storage has it (the move's new leaf on top once it is
    // complete there): the same reading the inventory shows.
    let chain = crate::refresh::refresh_disk(engine, disk.id).await?;
    Ok(chain.last().map_or(disk.domain, |top| top.domain))
}
