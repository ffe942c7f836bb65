//! The `vms` and `vm_disks` tables: each VM's definition, host and last
//! known state, and its disks in device order.

use ferry_api::engine::{DirectBoot, Vm, VmState};
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::codec;
use crate::db::Db;
use crate::error::{Error, Result};

/// A row of `vms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRow {
    /// The VM's UUID.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// The host it runs (or will start) on.
    pub host: Uuid,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Direct kernel boot, if any (stored as JSON).
    pub boot: Option<DirectBoot>,
    /// Its state as last seen.
    pub state: VmState,
    /// When it was created, milliseconds since the epoch.
    pub created: u64,
}

impl VmRow {
    /// The API's view, given its disks.
    pub fn to_api(&self, disks: Vec<Uuid>) -> Vm {
        Vm {
            id: self.id,
            name: self.name.clone(),
            host: self.host,
            state: self.state,
            paused: None,
            memory_mib: self.memory_mib,
            disks,
        }
    }

    fn from_row(row: &AnyRow) -> Result<VmRow> {
        Ok(VmRow {
            id: codec::uuid(row, "id")?,
            name: codec::text(row, "name")?,
            host: codec::uuid(row, "host_id")?,
            memory_mib: codec::uint(row, "memory_mib")?,
            boot: codec::opt_json(row, "boot")?,
            state: codec::word(row, "state")?,
            created: codec::uint(row, "created")?,
        })
    }
}

const COLUMNS: &str = "id, name, host_id, memory_mib, boot, state, created";

impl Db {
    /// Adds a VM and its disks in one transaction. A disk another VM
    /// claimed meanwhile fails the whole insert (the UNIQUE on
    /// `vm_disks.disk_id`) with a conflict.
    pub async fn insert_vm(&self, vm: &VmRow, disks: &[Uuid]) -> Result<()> {
        let action = format!("add VM {}", vm.name);
        let boot = vm
            .boot
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Internal(format!("cannot encode the boot settings: {e}")))?;
        let mut tx = self.pool().begin().await.map_err(Error::db(&action))?;
        sqlx::query(
            "INSERT INTO vms (id, name, host_id, memory_mib, boot, state, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(vm.id.to_string())
        .bind(vm.name.clone())
        .bind(vm.host.to_string())
        .bind(codec::to_i64(vm.memory_mib, "memory_mib")?)
        .bind(boot)
        .bind(codec::enum_text(&vm.state)?)
        .bind(codec::to_i64(vm.created, "created")?)
        .execute(&mut *tx)
        .await
        .map_err(|e| claim_error(e, &action))?;
        for (position, disk) in disks.iter().enumerate() {
            sqlx::query("INSERT INTO vm_disks (vm_id, disk_id, position) VALUES ($1, $2, $3)")
                .bind(vm.id.to_string())
                .bind(disk.to_string())
                .bind(
                    i64::try_from(position)
                        .map_err(|_| Error::Internal("too many disks".into()))?,
                )
                .execute(&mut *tx)
                .await
                .map_err(|e| claim_error(e, &action))?;
        }
        tx.commit().await.map_err(Error::db(&action))
    }

    /// Every VM, by name.
    pub async fn vms(&self) -> Result<Vec<VmRow>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM vms ORDER BY name"))
            .fetch_all(self.pool())
            .await
            .map_err(Error::db("list VMs"))?;
        rows.iter().map(VmRow::from_row).collect()
    }

    /// One VM by UUID.
    pub async fn vm(&self, id: Uuid) -> Result<Option<VmRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM vms WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a VM"))?;
        row.as_ref().map(VmRow::from_row).transpose()
    }

    /// One VM by name, or by UUID when `key` is one.
    pub async fn vm_by_name_or_id(&self, key: &str) -> Result<Option<VmRow>> {
        if let Ok(id) = Uuid::parse_str(key) {
            if let Some(v) = self.vm(id).await? {
                return Ok(Some(v));
            }
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM vms WHERE name = $1"))
            .bind(key.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("read a VM"))?;
        row.as_ref().map(VmRow::from_row).transpose()
    }

    /// A VM's disks in device order.
    pub async fn vm_disks(&self, vm: Uuid) -> Result<Vec<Uuid>> {
        let rows = sqlx::query("SELECT disk_id FROM vm_disks WHERE vm_id = $1 ORDER BY position")
            .bind(vm.to_string())
            .fetch_all(self.pool())
            .await
            .map_err(Error::db("read a VM's disks"))?;
        rows.iter().map(|r| codec::uuid(r, "disk_id")).collect()
    }

    /// The VM using `disk`, if any.
    pub async fn vm_of_disk(&self, disk: Uuid) -> Result<Option<Uuid>> {
        let row = sqlx::query("SELECT vm_id FROM vm_disks WHERE disk_id = $1")
            .bind(disk.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::db("find a disk's VM"))?;
        row.as_ref().map(|r| codec::uuid(r, "vm_id")).transpose()
    }

    /// Records a VM's state; returns the state it had before, if it
    /// changed (None: unchanged or no such VM).
    pub async fn set_vm_state(&self, vm: Uuid, state: VmState) -> Result<Option<VmState>> {
        let Some(before) = self.vm(vm).await? else {
            return Ok(None);
        };
        if before.state == state {
            return Ok(None);
        }
        sqlx::query("UPDATE vms SET state = $1 WHERE id = $2")
            .bind(codec::enum_text(&state)?)
            .bind(vm.to_string())
            .execute(self.pool())
            .await
            .map_err(Error::db("record a VM's state"))?;
        Ok(Some(before.state))
    }
}

/// A unique violation while adding a VM is a conflict a person can act
/// on; anything else is the database's failure.
fn claim_error(e: sqlx::Error, action: &str) -> Error {
    let unique = matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation());
    if unique {
        Error::Conflict(
            "another VM took this name or one of these disks at the same moment; list the VMs and try again"
                .into(),
        )
    } else {
        Error::db(action)(e)
    }
}
