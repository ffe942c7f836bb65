//! The `hosts` table: each agent's address and token, whether it answers,
//! and which one is SPM.

use ferry_api::engine::{Host, HostStatus};
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::codec::{self, now_ms};
use crate::db::Db;
use crate::error::{Error, Result};

/// A row of `hosts`.
#[derive(Clone, PartialEq, Eq)]
pub struct HostRow {
    /// The host's UUID, chosen by the engine.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Its agent's base URL.
    pub url: String,
    /// Its agent's token.
    pub token: String,
    /// Up or down, as the monitor last saw it.
    pub status: HostStatus,
    /// Whether it holds the SPM role.
    pub spm: bool,
    /// When its agent last answered, milliseconds since the epoch.
    pub last_seen: Option<u64>,
    /// Why it is down, when it is.
    pub error: Option<String>,
    /// When it was added, milliseconds since the epoch (the election
    /// order: the oldest host that is up is asked first).
    pub created: u64,
}

impl std::fmt::Debug for HostRow {
    /// Never prints the token, so rows can be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &"<hidden>")
            .field("status", &self.status)
            .field("spm", &self.spm)
            .field("last_seen", &self.last_seen)
            .field("error", &self.error)
            .finish()
    }
}

impl HostRow {
    /// The API's view (no token; `last_seen` in seconds).
    pub fn to_api(&self) -> Host {
        Host {
            id: self.id,
            name: self.name.clone(),
            url: self.url.clone(),
            status: self.status,
            spm: self.spm,
            last_seen: self.last_seen.map(|ms| ms / 1000),
            error: self.error.clone(),
        }
    }

    fn from_row(row: &AnyRow) -> Result<HostRow> {
        Ok(HostRow {
            id: codec::uuid(row, "id")?,
            name: codec::text(row, "name")?,
            url: codec::text(row, "url")?,
            token: codec::text(row, "token")?,
            status: codec::word(row, "status")?,
            spm: codec::boolean(row, "spm")?,
            last_seen: codec::opt_uint(row, "last_seen")?,
            error: codec::opt_text(row, "error")?,
            created: codec::uint(row, "created")?,
        })
    }
}

const COLUMNS: &str = "id, name, url, token, status, spm, last_seen, error, created";

impl Db {
    /// Adds a host.
    pub async fn insert_host(&self, h: &HostRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO hosts (id, name, url, token, status, spm, last_seen, error, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(h.id.to_string())
        .bind(h.name.clone())
        .bind(h.url.clone())
        .bind(h.token.clone())
        .bind(codec::enum_text(&h.status)?)
        .bind(codec::flag(h.spm))
        .bind(codec::opt_i64(h.last_seen, "last_seen")?)
        .bind(h.error.clone())
        .bind(codec::to_i64(h.created, "created")?)
        .execute(self.pool())
        .await
        .map_err(Error::db(format!("add host {}", h.name)))?;
        Ok(())
    }

    /// Every host, oldest first.
    pub async fn hosts(&self) -> Result<Vec<HostRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM hosts ORDER BY created, name"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(Error::db("list hosts"))?;
        rows.iter().map(HostRow::from_row).collect()
    }

    /// One host by UUID.
    pub async fn host(&self, id: Uuid) -> Result<Option<HostRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM hosts WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a host"))?;
        row.as_ref().map(HostRow::from_row).transpose()
    }

    /// One host by name, or by UUID when `key` is one.
    pub async fn host_by_name_or_id(&self, key: &str) -> Result<Option<HostRow>> {
        if let Ok(id) = Uuid::parse_str(key) {
            if let Some(h) = self.host(id).await? {
                return Ok(Some(h));
            }
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM hosts WHERE name = $1"))
            .bind(key.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a host"))?;
        row.as_ref().map(HostRow::from_row).transpose()
    }

    /// Records that a host answered (`error` None) or did not.
    pub async fn set_host_status(
        &self,
        id: Uuid,
        status: HostStatus,
        error: Option<&str>,
    ) -> Result<()> {
        let seen = if status == HostStatus::Up {
            Some(codec::to_i64(now_ms(), "last_seen")?)
        } else {
            None
        };
        sqlx::query(
            "UPDATE hosts SET status = $1, error = $2, last_seen = COALESCE($3, last_seen),
                 spm = CASE WHEN $1 = 'down' THEN 0 ELSE spm END
             WHERE id = $4",
        )
        .bind(codec::enum_text(&status)?)
        .bind(error.map(str::to_string))
        .bind(seen)
        .bind(id.to_string())
        .execute(self.pool())
        .await
        .map_err(Error::db("record a host's status"))?;
        Ok(())
    }

    /// Makes `host` the only SPM (None: no host is SPM).
    pub async fn set_spm(&self, host: Option<Uuid>) -> Result<()> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(Error::db("record the SPM"))?;
        sqlx::query("UPDATE hosts SET spm = 0 WHERE spm <> 0")
            .execute(&mut *tx)
            .await
            .map_err(Error::db("record the SPM"))?;
        if let Some(id) = host {
            sqlx::query("UPDATE hosts SET spm = 1 WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(Error::db("record the SPM"))?;
        }
        tx.commit().await.map_err(Error::db("record the SPM"))
    }
}
