//! The `domains` table: storage domains, their room, and which one is the
//! master (the one whose `dom_md/leases` is the SPM lease).

use std::path::PathBuf;

use ferry_api::engine::Domain;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::codec;
use crate::db::Db;
use crate::error::{Error, Result};

/// A row of `domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    /// The domain's UUID (its directory's name).
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Its directory, `<root>/<uuid>`, as the hosts see it.
    pub path: PathBuf,
    /// Size of its filesystem in bytes, as last reported.
    pub capacity: u64,
    /// Bytes free there, as last reported.
    pub free: u64,
    /// Whether it is the master domain.
    pub master: bool,
    /// When it was created, milliseconds since the epoch.
    pub created: u64,
}

impl DomainRow {
    /// The API's view, given the disks whose leaf is on it.
    pub fn to_api(&self, disks: Vec<Uuid>) -> Domain {
        Domain {
            id: self.id,
            name: self.name.clone(),
            path: self.path.clone(),
            capacity: self.capacity,
            free: self.free,
            master: self.master,
            disks,
        }
    }

    fn from_row(row: &AnyRow) -> Result<DomainRow> {
        Ok(DomainRow {
            id: codec::uuid(row, "id")?,
            name: codec::text(row, "name")?,
            path: PathBuf::from(codec::text(row, "path")?),
            capacity: codec::uint(row, "capacity")?,
            free: codec::uint(row, "free")?,
            master: codec::boolean(row, "master")?,
            created: codec::uint(row, "created")?,
        })
    }
}

const COLUMNS: &str = "id, name, path, capacity, free, master, created";

impl Db {
    /// Adds a domain.
    pub async fn insert_domain(&self, d: &DomainRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO domains (id, name, path, capacity, free, master, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(d.id.to_string())
        .bind(d.name.clone())
        .bind(d.path.to_string_lossy().into_owned())
        .bind(codec::to_i64(d.capacity, "capacity")?)
        .bind(codec::to_i64(d.free, "free")?)
        .bind(codec::flag(d.master))
        .bind(codec::to_i64(d.created, "created")?)
        .execute(self.pool())
        .await
        .map_err(Error::db(format!("add domain {}", d.name)))?;
        Ok(())
    }

    /// Every domain, oldest first.
    pub async fn domains(&self) -> Result<Vec<DomainRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM domains ORDER BY created, name"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(Error::db("list domains"))?;
        rows.iter().map(DomainRow::from_row).collect()
    }

    /// One domain by UUID.
    pub async fn domain(&self, id: Uuid) -> Result<Option<DomainRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM domains WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a domain"))?;
        row.as_ref().map(DomainRow::from_row).transpose()
    }

    /// One domain by name, or by UUID when `key` is one.
    pub async fn domain_by_name_or_id(&self, key: &str) -> Result<Option<DomainRow>> {
        if let Ok(id) = Uuid::parse_str(key) {
            if let Some(d) = self.domain(id).await? {
                return Ok(Some(d));
            }
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM domains WHERE name = $1"))
            .bind(key.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a domain"))?;
        row.as_ref().map(DomainRow::from_row).transpose()
    }

    /// The master domain, if any domain exists.
    pub async fn master_domain(&self) -> Result<Option<DomainRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM domains WHERE master <> 0 ORDER BY created LIMIT 1"
        ))
        .fetch_optional(self.pool())
        .await
        .map_err(Error::db("read the master domain"))?;
        row.as_ref().map(DomainRow::from_row).transpose()
    }

    /// Records a domain's room as a host reported it.
    pub async fn set_domain_space(&self, id: Uuid, capacity: u64, free: u64) -> Result<()> {
        sqlx::query("UPDATE domains SET capacity = $1, free = $2 WHERE id = $3")
            .bind(codec::to_i64(capacity, "capacity")?)
            .bind(codec::to_i64(free, "free")?)
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(Error::db("record a domain's free space"))?;
        Ok(())
    }

    /// The disks whose leaf is on `domain`, by name.
    pub async fn disks_on_domain(&self, domain: Uuid) -> Result<Vec<Uuid>> {
        let rows = sqlx::query("SELECT id FROM disks WHERE domain_id = $1 ORDER BY name")
            .bind(domain.to_string())
            .fetch_all(self.pool())
            .await
            .map_err(Error::db("list a domain's disks"))?;
        rows.iter().map(|r| codec::uuid(r, "id")).collect()
    }
}
