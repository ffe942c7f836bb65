//! The `operations` table: the short operations that lock a disk outside
//! a move job (a snapshot). Each has a row written in the same
//! transaction as its lock and ended in the same transaction as its
//! unlock, so every lock has an owner a restarted engine can find and
//! finish, as oVirt keeps a task for each snapshot. The flow of an
//! operation lives in `ops`; this module only stores the rows.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::codec::{self, now_ms};
use crate::db::Db;
use crate::error::{Error, Result};

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// A new qcow2 leaf on top of a disk's chain.
    Snapshot,
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Under way; its disk is locked.
    Running,
    /// Done.
    Succeeded,
    /// It failed; what it made was removed.
    Failed,
    /// The engine stopped before it had made anything; a restarted
    /// engine ended it.
    Interrupted,
}

/// A row of `operations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRow {
    /// Its UUID, which is also the holder of its disk's lock.
    pub id: Uuid,
    /// What it does.
    pub kind: OperationKind,
    /// The disk it locks.
    pub disk: Uuid,
    /// Where it stands.
    pub state: OperationState,
    /// The volume it makes (a snapshot's new leaf), chosen before it is
    /// made, so a restarted engine can tell whether it exists.
    pub volume: Option<Uuid>,
    /// Why it failed or was interrupted.
    pub error: Option<String>,
    /// When it started, milliseconds since the epoch.
    pub started: u64,
    /// When it ended.
    pub finished: Option<u64>,
}

impl OperationRow {
    /// A snapshot of `disk` starting now, to make the leaf `volume`.
    pub fn snapshot(disk: Uuid, volume: Uuid) -> OperationRow {
        OperationRow {
            id: Uuid::new_v4(),
            kind: OperationKind::Snapshot,
            disk,
            state: OperationState::Running,
            volume: Some(volume),
            error: None,
            started: now_ms(),
            finished: None,
        }
    }

    fn from_row(row: &AnyRow) -> Result<OperationRow> {
        Ok(OperationRow {
            id: codec::uuid(row, "id")?,
            kind: codec::word(row, "kind")?,
            disk: codec::uuid(row, "disk_id")?,
            state: codec::word(row, "state")?,
            volume: codec::opt_uuid(row, "volume")?,
            error: codec::opt_text(row, "error")?,
            started: codec::uint(row, "started")?,
            finished: codec::opt_uint(row, "finished")?,
        })
    }
}

const COLUMNS: &str = "id, kind, disk_id, state, volume, error, started, finished";

impl Db {
    /// Records a new operation and locks its disk, in one transaction:
    /// either it exists and holds the lock, or nothing was written (the
    /// disk was locked by someone else: the refusal says by whom).
    pub async fn insert_locked_operation(&self, op: &OperationRow) -> Result<()> {
        let action = "record a new operation";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        sqlx::query(&format!(
            "INSERT INTO operations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(op.id.to_string())
        .bind(codec::enum_text(&op.kind)?)
        .bind(op.disk.to_string())
        .bind(codec::enum_text(&op.state)?)
        .bind(op.volume.map(|v| v.to_string()))
        .bind(op.error.clone())
        .bind(codec::to_i64(op.started, "started")?)
        .bind(codec::opt_i64(op.finished, "finished")?)
        .execute(&mut *tx)
        .await
        .map_err(Error::db(action))?;
        crate::db::disks::lock_in(&mut tx, op.id, &[op.disk]).await?;
        tx.commit().await.map_err(Error::db(action))
    }

    /// Records an operation's end and releases its disk in one
    /// transaction: a crash cannot leave an ended operation's disk
    /// locked, nor a running one's unlocked.
    pub async fn end_operation(
        &self,
        id: Uuid,
        state: OperationState,
        error: Option<&str>,
    ) -> Result<()> {
        let action = "record an operation's end";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        let done = sqlx::query(
            "UPDATE operations SET state = $1, error = $2, finished = $3 WHERE id = $4",
        )
        .bind(codec::enum_text(&state)?)
        .bind(error.map(str::to_string))
        .bind(codec::to_i64(now_ms(), "finished")?)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(Error::db(action))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("there is no operation {id}")));
        }
        sqlx::query("UPDATE disks SET locked_by = NULL WHERE locked_by = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?;
        tx.commit().await.map_err(Error::db(action))
    }

    /// One operation.
    pub async fn operation(&self, id: Uuid) -> Result<Option<OperationRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM operations WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read an operation"))?;
        row.as_ref().map(OperationRow::from_row).transpose()
    }

    /// Operations still running, oldest first: at engine start, those a
    /// previous engine left behind.
    pub async fn unfinished_operations(&self) -> Result<Vec<OperationRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM operations WHERE state = 'running' ORDER BY started, id"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(Error::db("list unfinished operations"))?;
        rows.iter().map(OperationRow::from_row).collect()
    }
}
