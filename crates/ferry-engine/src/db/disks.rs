//! The `disks` and `volumes` tables: each disk, the domain of its leaf,
//! the job that has it locked, and its chain as the SPM last reported it.

use std::path::PathBuf;

use ferry_api::engine::Volume;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::codec;
use crate::db::Db;
use crate::error::{Error, Result};

/// A row of `disks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRow {
    /// The disk's UUID (the image UUID on the domains).
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Virtual size in bytes.
    pub size: u64,
    /// The domain of its leaf volume.
    pub domain: Uuid,
    /// The job (or short operation) that has it locked.
    pub locked_by: Option<Uuid>,
    /// When it was created, milliseconds since the epoch.
    pub created: u64,
}

impl DiskRow {
    fn from_row(row: &AnyRow) -> Result<DiskRow> {
        Ok(DiskRow {
            id: codec::uuid(row, "id")?,
            name: codec::text(row, "name")?,
            size: codec::uint(row, "size")?,
            domain: codec::uuid(row, "domain_id")?,
            locked_by: codec::opt_uuid(row, "locked_by")?,
            created: codec::uint(row, "created")?,
        })
    }
}

const COLUMNS: &str = "id, name, size, domain_id, locked_by, created";

fn volume_from_row(row: &AnyRow) -> Result<Volume> {
    Ok(Volume {
        id: codec::uuid(row, "id")?,
        domain: codec::uuid(row, "domain_id")?,
        path: PathBuf::from(codec::text(row, "path")?),
        format: codec::word(row, "format")?,
        parent: codec::opt_uuid(row, "parent")?,
        legality: codec::word(row, "legality")?,
        voltype: codec::word(row, "voltype")?,
        allocated: codec::uint(row, "allocated")?,
    })
}

impl Db {
    /// Adds a disk (its volumes come with [`Db::replace_volumes`]).
    pub async fn insert_disk(&self, d: &DiskRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO disks (id, name, size, domain_id, locked_by, created)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(d.id.to_string())
        .bind(d.name.clone())
        .bind(codec::to_i64(d.size, "the disk's size")?)
        .bind(d.domain.to_string())
        .bind(d.locked_by.map(|j| j.to_string()))
        .bind(codec::to_i64(d.created, "created")?)
        .execute(self.pool())
        .await
        .map_err(Error::db(format!("add disk {}", d.name)))?;
        Ok(())
    }

    /// Every disk, by name.
    pub async fn disks(&self) -> Result<Vec<DiskRow>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM disks ORDER BY name"))
            .fetch_all(self.pool())
            .await
            .map_err(Error::db("list disks"))?;
        rows.iter().map(DiskRow::from_row).collect()
    }

    /// One disk by UUID.
    pub async fn disk(&self, id: Uuid) -> Result<Option<DiskRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM disks WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a disk"))?;
        row.as_ref().map(DiskRow::from_row).transpose()
    }

    /// One disk by name, or by UUID when `key` is one.
    pub async fn disk_by_name_or_id(&self, key: &str) -> Result<Option<DiskRow>> {
        if let Ok(id) = Uuid::parse_str(key) {
            if let Some(d) = self.disk(id).await? {
                return Ok(Some(d));
            }
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM disks WHERE name = $1"))
            .bind(key.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a disk"))?;
        row.as_ref().map(DiskRow::from_row).transpose()
    }

    /// Records that a disk's leaf is now on `domain`.
    pub async fn set_disk_domain(&self, disk: Uuid, domain: Uuid) -> Result<()> {
        sqlx::query("UPDATE disks SET domain_id = $1 WHERE id = $2")
            .bind(domain.to_string())
            .bind(disk.to_string())
            .execute(self.pool())
            .await
            .map_err(Error::db("record a disk's domain"))?;
        Ok(())
    }

    /// A disk's chain, base first, as last stored.
    pub async fn volumes(&self, disk: Uuid) -> Result<Vec<Volume>> {
        self.volumes_where(disk, 1).await
    }

    /// The disk's volumes outside its chain (a move's copies in progress,
    /// or past the switch the source's volumes awaiting cleanup).
    pub async fn outside_volumes(&self, disk: Uuid) -> Result<Vec<Volume>> {
        self.volumes_where(disk, 0).await
    }

    async fn volumes_where(&self, disk: Uuid, in_chain: i64) -> Result<Vec<Volume>> {
        let rows = sqlx::query(
            "SELECT id, domain_id, path, format, parent, legality, voltype, allocated
             FROM volumes WHERE disk_id = $1 AND in_chain = $2 ORDER BY position",
        )
        .bind(disk.to_string())
        .bind(in_chain)
        .fetch_all(self.pool())
        .await
        .map_err(Error::db("read a disk's volumes"))?;
        rows.iter().map(volume_from_row).collect()
    }

    /// Replaces a disk's stored chain with `chain` (base first) and its
    /// volumes outside the chain with `outside`, in one transaction so a
    /// reader never sees half a chain.
    pub async fn replace_volumes(
        &self,
        disk: Uuid,
        chain: &[Volume],
        outside: &[Volume],
    ) -> Result<()> {
        let action = "store a disk's volumes";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        sqlx::query("DELETE FROM volumes WHERE disk_id = $1")
            .bind(disk.to_string())
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?;
        let all = chain
            .iter()
            .map(|v| (v, 1i64))
            .chain(outside.iter().map(|v| (v, 0i64)));
        for (position, (v, in_chain)) in all.enumerate() {
            sqlx::query(
                "INSERT INTO volumes (disk_id, id, domain_id, position, path, format, parent, legality, voltype, allocated, in_chain)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(disk.to_string())
            .bind(v.id.to_string())
            .bind(v.domain.to_string())
            .bind(i64::try_from(position).map_err(|_| Error::Internal("a chain of more than 2^63 volumes".into()))?)
            .bind(v.path.to_string_lossy().into_owned())
            .bind(codec::enum_text(&v.format)?)
            .bind(v.parent.map(|p| p.to_string()))
            .bind(codec::enum_text(&v.legality)?)
            .bind(codec::enum_text(&v.voltype)?)
            .bind(codec::to_i64(v.allocated, "a volume's allocation")?)
            .bind(in_chain)
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?;
        }
        tx.commit().await.map_err(Error::db(action))
    }

    /// Locks `disks` for `job`, all or none: if any of them is locked by
    /// another holder, nothing changes and the answer names that holder
    /// ([`Error::Locked`] for a job: 409). Locking again for the same job
    /// is a no-op, so a resumed job can call it again.
    pub async fn lock_disks(&self, job: Uuid, disks: &[Uuid]) -> Result<()> {
        let action = "lock disks";
        let mut tx = self.pool().begin().await.map_err(Error::db(action))?;
        lock_in(&mut tx, job, disks).await?;
        tx.commit().await.map_err(Error::db(action))
    }

    /// Releases every disk `job` has locked.
    pub async fn unlock_disks(&self, job: Uuid) -> Result<()> {
        sqlx::query("UPDATE disks SET locked_by = NULL WHERE locked_by = $1")
            .bind(job.to_string())
            .execute(self.pool())
            .await
            .map_err(Error::db("unlock disks"))?;
        Ok(())
    }
}

/// Locks `disks` for `job` inside `tx` (see [`Db::lock_disks`]); on a
/// refusal the caller drops `tx`, which undoes whatever it wrote.
pub(crate) async fn lock_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: Uuid,
    disks: &[Uuid],
) -> Result<()> {
    let action = "lock disks";
    for disk in disks {
        // A write first: it takes SQLite's write lock at once, so the
        // check and the lock cannot be split by another writer.
        let done = sqlx::query(
            "UPDATE disks SET locked_by = $1
             WHERE id = $2 AND (locked_by IS NULL OR locked_by = $1)",
        )
        .bind(job.to_string())
        .bind(disk.to_string())
        .execute(&mut **tx)
        .await
        .map_err(Error::db(action))?;
        if done.rows_affected() == 1 {
            continue;
        }
        return Err(lock_refusal(tx, *disk).await?);
    }
    Ok(())
}

/// Why `disk` cannot be locked: it does not exist, a job holds it, or
/// another operation (a snapshot) does.
async fn lock_refusal(tx: &mut sqlx::Transaction<'_, sqlx::Any>, disk: Uuid) -> Result<Error> {
    let action = "lock disks";
    let holder = sqlx::query("SELECT name, locked_by FROM disks WHERE id = $1")
        .bind(disk.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(Error::db(action))?;
    let holder = holder
        .as_ref()
        .map(|r| Ok::<_, Error>((codec::text(r, "name")?, codec::opt_uuid(r, "locked_by")?)))
        .transpose()?;
    let is_job = match &holder {
        Some((_, Some(h))) => sqlx::query("SELECT id FROM jobs WHERE id = $1")
            .bind(h.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(Error::db(action))?
            .is_some(),
        _ => false,
    };
    Ok(match holder {
        None => Error::NotFound(format!(
            "there is no disk {disk}; list the disks with 'ferry disk list'"
        )),
        Some((name, Some(h))) if is_job => Error::Locked { disk: name, job: h },
        Some((name, Some(h))) => Error::Conflict(format!(
            "disk {name} is busy with another operation (snapshot {h}); try again in a moment"
        )),
        Some((name, None)) => Error::Conflict(format!(
            "disk {name} was busy with another operation; try again"
        )),
    })
}

impl Db {
    /// Why `disk` is locked now, as the refusal a new lock of it would
    /// get (a job's [`Error::Locked`], or a snapshot's conflict).
    pub async fn lock_refusal(&self, disk: Uuid) -> Result<Error> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(Error::db("read a disk's lock"))?;
        lock_refusal(&mut tx, disk).await
    }
}
