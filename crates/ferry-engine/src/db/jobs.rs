//! The `jobs`, `job_disks` and `job_steps` tables: the move flow persists
//! every job here before and after each step, so a restarted engine can
//! resume it (docs/architecture.md §5). The flow owns what the rows mean;
//! this module only stores and reads them.

use ferry_api::engine::{JobKind, JobState, JobStep, MoveMode, Step, StepState};
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::codec::{self, now_ms};
use crate::db::Db;
use crate::error::{Error, Result};

/// A row of `jobs`, with its disks from `job_disks`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// The job's UUID.
    pub id: Uuid,
    /// Disk move or VM move.
    pub kind: JobKind,
    /// Live or cold.
    pub mode: MoveMode,
    /// Where it stands.
    pub state: JobState,
    /// The disks it moves, in order (not changed by [`Db::update_job`]).
    pub disks: Vec<Uuid>,
    /// The VM whose disks move, if any.
    pub vm: Option<Uuid>,
    /// Where the disks were.
    pub src_domain: Uuid,
    /// Where they go.
    pub dst_domain: Uuid,
    /// Bandwidth limit in MiB/s.
    pub bandwidth_mib_s: Option<u64>,
    /// The step running now (or the last one).
    pub step: Step,
    /// Bytes copied so far.
    pub done_bytes: u64,
    /// Bytes to copy in all.
    pub total_bytes: u64,
    /// Copy rate over the last seconds, bytes per second (the flow
    /// measures it).
    pub rate_bps: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether a cancel was asked for (set only by
    /// [`Db::request_cancel`]).
    pub cancel_requested: bool,
    /// The flow's private state.
    pub data: serde_json::Value,
    /// When it was created, milliseconds since the epoch.
    pub created: u64,
    /// When it was last written.
    pub updated: u64,
    /// When it finished.
    pub finished: Option<u64>,
}

impl JobRow {
    /// A new running job at its first step, created now.
    pub fn new(
        kind: JobKind,
        mode: MoveMode,
        disks: Vec<Uuid>,
        src_domain: Uuid,
        dst_domain: Uuid,
        first_step: Step,
    ) -> JobRow {
        let now = now_ms();
        JobRow {
            id: Uuid::new_v4(),
            kind,
            mode,
            state: JobState::Running,
            disks,
            vm: None,
            src_domain,
            dst_domain,
            bandwidth_mib_s: None,
            step: first_step,
            done_bytes: 0,
            total_bytes: 0,
            rate_bps: 0,
            error: None,
            cancel_requested: false,
            data: serde_json::Value::Null,
            created: now,
            updated: now,
            finished: None,
        }
    }

    fn from_row(row: &AnyRow, disks: Vec<Uuid>) -> Result<JobRow> {
        let data = codec::text(row, "data")?;
        Ok(JobRow {
            id: codec::uuid(row, "id")?,
            kind: codec::word(row, "kind")?,
            mode: codec::word(row, "mode")?,
            state: codec::word(row, "state")?,
            disks,
            vm: codec::opt_uuid(row, "vm_id")?,
            src_domain: codec::uuid(row, "src_domain")?,
            dst_domain: codec::uuid(row, "dst_domain")?,
            bandwidth_mib_s: codec::opt_uint(row, "bandwidth_mib_s")?,
            step: step(row, "step")?,
            done_bytes: codec::uint(row, "done_bytes")?,
            total_bytes: codec::uint(row, "total_bytes")?,
            rate_bps: codec::uint(row, "rate_bps")?,
            error: codec::opt_text(row, "error")?,
            cancel_requested: codec::boolean(row, "cancel_requested")?,
            data: serde_json::from_str(&data)
                .map_err(|_| Error::Corrupt(format!("column data holds '{data}'")))?,
            created: codec::uint(row, "created")?,
            updated: codec::uint(row, "updated")?,
            finished: codec::opt_uint(row, "finished")?,
        })
    }
}

const COLUMNS: &str = "id, kind, mode, state, vm_id, src_domain, dst_domain, bandwidth_mib_s, \
    step, done_bytes, total_bytes, rate_bps, error, cancel_requested, data, created, updated, finished";

/// A step's name read back; one this engine does not know is corrupt.
fn step(row: &AnyRow, column: &str) -> Result<Step> {
    let name = codec::text(row, column)?;
    Step::from_name(&name)
        .ok_or_else(|| Error::Corrupt(format!("column {column} holds '{name}', which is no step")))
}

fn step_from_row(row: &AnyRow) -> Result<JobStep> {
    let attempts = codec::uint(row, "attempts")?;
    Ok(JobStep {
        name: step(row, "name")?,
        state: codec::word(row, "state")?,
        started: codec::opt_uint(row, "started")?,
        finished: codec::opt_uint(row, "finished")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        error: codec::opt_text(row, "error")?,
    })
}

impl Db {
    /// Persists a new job, its disks and its steps (all pending) in one
    /// transaction.
    pub async fn insert_job(&self, job: &JobRow, steps: &[Step]) -> Result<()> {
        let action = "record a new job";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        insert_rows(&mut tx, job, steps).await?;
        tx.commit().await.map_err(Error::db(action))
    }

    /// Persists a new job with its disks and steps and locks its disks, in
    /// one transaction: either the job exists and holds its locks, or
    /// nothing was written (a crash in between cannot leave a job without
    /// its locks, nor locks without their job).
    pub async fn insert_locked_job(&self, job: &JobRow, steps: &[Step]) -> Result<()> {
        let action = "record a new job";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        insert_rows(&mut tx, job, steps).await?;
        crate::db::disks::lock_in(&mut tx, job.id, &job.disks).await?;
        tx.commit().await.map_err(Error::db(action))
    }

    /// Records the mode a job's prepare decided, with that mode's steps
    /// (all pending but `prepare`, done), in one transaction: until then
    /// the job is at `prepare` and its disks are locked, so nothing can
    /// start its VM between the decision and this record.
    pub async fn decide_mode(&self, job: Uuid, mode: MoveMode, steps: &[Step]) -> Result<()> {
        let action = "record a job's mode";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        let now = codec::to_i64(now_ms(), "now")?;
        sqlx::query("UPDATE jobs SET mode = $1, updated = $2 WHERE id = $3")
            .bind(codec::enum_text(&mode)?)
            .bind(now)
            .bind(job.to_string())
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?;
        sqlx::query("DELETE FROM job_steps WHERE job_id = $1")
            .bind(job.to_string())
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?;
        insert_steps(&mut tx, job, steps).await?;
        sqlx::query(
            "UPDATE job_steps SET state = $1, started = $2, finished = $2, attempts = 1
             WHERE job_id = $3 AND name = $4",
        )
        .bind(codec::enum_text(&StepState::Done)?)
        .bind(now)
        .bind(job.to_string())
        .bind(Step::Prepare.name())
        .execute(&mut *tx)
        .await
        .map_err(Error::db(action))?;
        tx.commit().await.map_err(Error::db(action))
    }

    /// Removes a job whose prepare refused to go on, and unlocks its disks,
    /// in one transaction: a refused move leaves nothing behind.
    pub async fn forget_unstarted_job(&self, job: Uuid) -> Result<()> {
        let action = "remove a refused job";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        for sql in [
            "UPDATE disks SET locked_by = NULL WHERE locked_by = $1",
            "DELETE FROM job_steps WHERE job_id = $1",
            "DELETE FROM job_disks WHERE job_id = $1",
            "DELETE FROM jobs WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(job.to_string())
                .execute(&mut *tx)
                .await
                .map_err(Error::db(action))?;
        }
        tx.commit().await.map_err(Error::db(action))
    }

    async fn job_disks(&self, job: Uuid) -> Result<Vec<Uuid>> {
        let rows = sqlx::query("SELECT disk_id FROM job_disks WHERE job_id = $1 ORDER BY position")
            .bind(job.to_string())
            .fetch_all(self.pool())
            .await
            .map_err(Error::db("read a job's disks"))?;
        rows.iter().map(|r| codec::uuid(r, "disk_id")).collect()
    }

    async fn job_rows(&self, sql: &str, action: &str) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(sql)
            .fetch_all(self.pool())
            .await
            .map_err(Error::db(action))?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let disks = self.job_disks(codec::uuid(row, "id")?).await?;
            jobs.push(JobRow::from_row(row, disks)?);
        }
        Ok(jobs)
    }

    /// One job.
    pub async fn job(&self, id: Uuid) -> Result<Option<JobRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a job"))?;
        match row {
            Some(row) => Ok(Some(JobRow::from_row(&row, self.job_disks(id).await?)?)),
            None => Ok(None),
        }
    }

    /// Every job, newest first.
    pub async fn jobs(&self) -> Result<Vec<JobRow>> {
        self.job_rows(
            &format!("SELECT {COLUMNS} FROM jobs ORDER BY created DESC, id"),
            "list jobs",
        )
        .await
    }

    /// Jobs still running or rolling back, oldest first: what a restarted
    /// engine resumes.
    pub async fn unfinished_jobs(&self) -> Result<Vec<JobRow>> {
        self.job_rows(
            &format!(
                "SELECT {COLUMNS} FROM jobs WHERE state IN ('running', 'rolling_back') ORDER BY created, id"
            ),
            "list unfinished jobs",
        )
        .await
    }

    /// Jobs that ended failed, oldest first (a failed job past the switch
    /// still owns its disks).
    pub async fn failed_jobs(&self) -> Result<Vec<JobRow>> {
        self.job_rows(
            &format!("SELECT {COLUMNS} FROM jobs WHERE state = 'failed' ORDER BY created, id"),
            "list failed jobs",
        )
        .await
    }

    /// Writes every mutable field of `job` and stamps `updated`. It leaves
    /// `cancel_requested` alone, so a cancel asked while the flow holds an
    /// older copy of the row is not lost; and the disks, which do not
    /// change.
    pub async fn update_job(&self, job: &JobRow) -> Result<()> {
        let action = "record a job";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        update_in(&mut tx, job).await?;
        tx.commit().await.map_err(Error::db(action))
    }

    /// Records a job's end and releases its disks in one transaction: a
    /// crash cannot leave an ended job's disks locked, nor a running
    /// job's disks unlocked.
    pub async fn end_job(&self, job: &JobRow) -> Result<()> {
        let action = "record a job's end";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        update_in(&mut tx, job).await?;
        sqlx::query("UPDATE disks SET locked_by = NULL WHERE locked_by = $1")
            .bind(job.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?;
        tx.commit().await.map_err(Error::db(action))
    }

    /// Releases every disk lock whose holder is neither a running (or
    /// rolling back) job, nor a running operation, nor in `keep` (the
    /// flow's word for ended jobs that still own their disks: failed
    /// after the switch, waiting for a retry): the holder ended or never
    /// existed (an older engine's snapshot lock, or its crash between two
    /// writes). A running operation's lock is left to the operation's own
    /// sweep, which first finds out what it made. Only sound at start,
    /// before this engine takes any lock. Returns each released disk's
    /// name with the holder it had.
    pub async fn release_orphan_locks(&self, keep: &[Uuid]) -> Result<Vec<(String, Uuid)>> {
        let action = "release stale disk locks";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        let rows = sqlx::query(
            "SELECT id, name, locked_by FROM disks WHERE locked_by IS NOT NULL
                 AND locked_by NOT IN (SELECT id FROM jobs WHERE state IN ('running', 'rolling_back'))
                 AND locked_by NOT IN (SELECT id FROM operations WHERE state = 'running')",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::db(action))?;
        let mut released = Vec::new();
        for r in &rows {
            let (name, holder) = (codec::text(r, "name")?, codec::uuid(r, "locked_by")?);
            if keep.contains(&holder) {
                continue;
            }
            sqlx::query("UPDATE disks SET locked_by = NULL WHERE id = $1 AND locked_by = $2")
                .bind(codec::text(r, "id")?)
                .bind(holder.to_string())
                .execute(&mut *tx)
                .await
                .map_err(Error::db(action))?;
            released.push((name, holder));
        }
        tx.commit().await.map_err(Error::db(action))?;
        Ok(released)
    }

    /// Records a running job's copy progress only (`done_bytes`,
    /// `total_bytes`, `rate_bps`): cheap enough for every progress tick,
    /// and it cannot undo a state change written meanwhile.
    pub async fn update_progress(&self, job: &JobRow) -> Result<()> {
        let done = sqlx::query(
            "UPDATE jobs SET done_bytes = $1, total_bytes = $2, rate_bps = $3, updated = $4 WHERE id = $5",
        )
        .bind(codec::to_i64(job.done_bytes, "done_bytes")?)
        .bind(codec::to_i64(job.total_bytes, "total_bytes")?)
        .bind(codec::to_i64(job.rate_bps, "rate_bps")?)
        .bind(codec::to_i64(now_ms(), "updated")?)
        .bind(job.id.to_string())
        .execute(self.pool())
        .await
        .map_err(Error::db("record a job's progress"))?;
        if done.rows_affected() == 0 {
            return Err(no_job(job.id));
        }
        Ok(())
    }

    /// Records a step's new state. `Running` stamps `started`, clears
    /// `finished`, counts an attempt and makes it the job's current step;
    /// `Done`, `Failed`, `Skipped` and `RolledBack` stamp `finished`;
    /// `error` replaces the step's error in every case.
    pub async fn set_step(
        &self,
        job: Uuid,
        step: Step,
        state: StepState,
        error: Option<&str>,
    ) -> Result<()> {
        let action = "record a job's step";
        let now = codec::to_i64(now_ms(), "now")?;
        // Pending stamps nothing (PostgreSQL refuses a parameter a query
        // does not use, so it has its own statement).
        let stamp = match state {
            StepState::Running => Some(
                "UPDATE job_steps SET state = $1, error = $2, started = $3, finished = NULL,
                     attempts = attempts + 1
                 WHERE job_id = $4 AND name = $5",
            ),
            StepState::Pending => None,
            StepState::Done | StepState::Failed | StepState::Skipped | StepState::RolledBack => {
                Some(
                    "UPDATE job_steps SET state = $1, error = $2, finished = $3
                     WHERE job_id = $4 AND name = $5",
                )
            }
        };
        let query = match stamp {
            Some(sql) => sqlx::query(sql)
                .bind(codec::enum_text(&state)?)
                .bind(error.map(str::to_string))
                .bind(now),
            None => sqlx::query(
                "UPDATE job_steps SET state = $1, error = $2 WHERE job_id = $3 AND name = $4",
            )
            .bind(codec::enum_text(&state)?)
            .bind(error.map(str::to_string)),
        };
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        let done = query
            .bind(job.to_string())
            .bind(step.name())
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(Error::db(action))?;
            return Err(Error::NotFound(format!(
                "job {job} has no step named '{step}'"
            )));
        }
        if state == StepState::Running {
            sqlx::query("UPDATE jobs SET step = $1, updated = $2 WHERE id = $3")
                .bind(step.name())
                .bind(now)
                .bind(job.to_string())
                .execute(&mut *tx)
                .await
                .map_err(Error::db(action))?;
        }
        tx.commit().await.map_err(Error::db(action))
    }

    /// A job's steps in order.
    pub async fn steps(&self, job: Uuid) -> Result<Vec<JobStep>> {
        let rows = sqlx::query(
            "SELECT name, state, started, finished, attempts, error
             FROM job_steps WHERE job_id = $1 ORDER BY position",
        )
        .bind(job.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(Error::db("read a job's steps"))?;
        rows.iter().map(step_from_row).collect()
    }

    /// Turns a failed job back into a running (or rolling-back) one, if it
    /// is still failed:
    /// false when another request got there first (or it is not failed),
    /// so two retries at once start one runner, not two.
    pub async fn reopen_failed_job(&self, job: Uuid, state: JobState) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, error = NULL, finished = NULL, updated = $2
             WHERE id = $3 AND state = $4",
        )
        .bind(codec::enum_text(&state)?)
        .bind(codec::to_i64(now_ms(), "updated")?)
        .bind(job.to_string())
        .bind(codec::enum_text(&JobState::Failed)?)
        .execute(self.pool())
        .await
        .map_err(Error::db("reopen a job"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks that a cancel was asked for; the flow decides what it means.
    pub async fn request_cancel(&self, job: Uuid) -> Result<()> {
        let done = sqlx::query("UPDATE jobs SET cancel_requested = 1, updated = $1 WHERE id = $2")
            .bind(codec::to_i64(now_ms(), "updated")?)
            .bind(job.to_string())
            .execute(self.pool())
            .await
            .map_err(Error::db("record a cancel"))?;
        if done.rows_affected() == 0 {
            return Err(no_job(job));
        }
        Ok(())
    }
}

fn index(position: usize) -> Result<i64> {
    i64::try_from(position).map_err(|_| Error::Internal("more than 2^63 items".into()))
}

fn no_job(id: Uuid) -> Error {
    Error::NotFound(format!(
        "there is no job {id}; list the jobs with 'ferry job list'"
    ))
}

/// Writes a new job's row, disks and steps inside `tx`.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: &JobRow,
    steps: &[Step],
) -> Result<()> {
    let action = "record a new job";
    sqlx::query(&format!(
        "INSERT INTO jobs ({COLUMNS}) VALUES
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(job.id.to_string())
    .bind(codec::enum_text(&job.kind)?)
    .bind(codec::enum_text(&job.mode)?)
    .bind(codec::enum_text(&job.state)?)
    .bind(job.vm.map(|v| v.to_string()))
    .bind(job.src_domain.to_string())
    .bind(job.dst_domain.to_string())
    .bind(codec::opt_i64(job.bandwidth_mib_s, "bandwidth_mib_s")?)
    .bind(job.step.name())
    .bind(codec::to_i64(job.done_bytes, "done_bytes")?)
    .bind(codec::to_i64(job.total_bytes, "total_bytes")?)
    .bind(codec::to_i64(job.rate_bps, "rate_bps")?)
    .bind(job.error.clone())
    .bind(codec::flag(job.cancel_requested))
    .bind(job.data.to_string())
    .bind(codec::to_i64(job.created, "created")?)
    .bind(codec::to_i64(job.updated, "updated")?)
    .bind(codec::opt_i64(job.finished, "finished")?)
    .execute(&mut **tx)
    .await
    .map_err(Error::db(action))?;
    for (position, disk) in job.disks.iter().enumerate() {
        sqlx::query("INSERT INTO job_disks (job_id, disk_id, position) VALUES ($1, $2, $3)")
            .bind(job.id.to_string())
            .bind(disk.to_string())
            .bind(index(position)?)
            .execute(&mut **tx)
            .await
            .map_err(Error::db(action))?;
    }
    insert_steps(tx, job.id, steps).await
}

/// Writes a job's steps, all pending, inside `tx`.
async fn insert_steps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: Uuid,
    steps: &[Step],
) -> Result<()> {
    let action = "record a job's steps";
    for (position, step) in steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO job_steps (job_id, position, name, state, attempts) VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(job.to_string())
        .bind(index(position)?)
        .bind(step.name())
        .bind(codec::enum_text(&StepState::Pending)?)
        .execute(&mut **tx)
        .await
        .map_err(Error::db(action))?;
    }
    Ok(())
}

/// Writes every mutable field of `job` inside `tx` (see [`Db::update_job`]).
async fn update_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, job: &JobRow) -> Result<()> {
    let done = sqlx::query(
        "UPDATE jobs SET mode = $1, state = $2, vm_id = $3, src_domain = $4, dst_domain = $5,
             bandwidth_mib_s = $6, step = $7, done_bytes = $8, total_bytes = $9, rate_bps = $10,
             error = $11, data = $12, updated = $13, finished = $14
         WHERE id = $15",
    )
    .bind(codec::enum_text(&job.mode)?)
    .bind(codec::enum_text(&job.state)?)
    .bind(job.vm.map(|v| v.to_string()))
    .bind(job.src_domain.to_string())
    .bind(job.dst_domain.to_string())
    .bind(codec::opt_i64(job.bandwidth_mib_s, "bandwidth_mib_s")?)
    .bind(job.step.name())
    .bind(codec::to_i64(job.done_bytes, "done_bytes")?)
    .bind(codec::to_i64(job.total_bytes, "total_bytes")?)
    .bind(codec::to_i64(job.rate_bps, "rate_bps")?)
    .bind(job.error.clone())
    .bind(job.data.to_string())
    .bind(codec::to_i64(now_ms(), "updated")?)
    .bind(codec::opt_i64(job.finished, "finished")?)
    .bind(job.id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(Error::db("record a job"))?;
    if done.rows_affected() == 0 {
        return Err(no_job(job.id));
    }
    Ok(())
}
