//! The `hosts` table: each agent's address, the certificate the engine
//! accepts from it (and, during a renewal, the next one), the hash of its
//! pending one-time enrolment token, whether it answers, and which one is
//! SPM. No secret is stored: a certificate is public, and of a token only
//! its hash is kept.

use ferry_api::engine::{Host, HostCertificate, HostStatus};
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::codec::{self, now_ms};
use crate::db::Db;
use crate::error::{Error, Result};

/// The certificate the engine accepts from a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    /// Its serial number, hex.
    pub serial: String,
    /// When it expires, seconds since the epoch.
    pub not_after: u64,
}

impl CertRow {
    /// The row of what a certificate says.
    pub fn of(info: &ferry_pki::CertInfo) -> CertRow {
        CertRow {
            fingerprint: info.fingerprint.to_string(),
            serial: info.serial.clone(),
            not_after: u64::try_from(info.not_after).unwrap_or(0),
        }
    }
}

/// A row of `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    /// The host's UUID, chosen by the engine.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// Its agent's base URL.
    pub url: String,
    /// The certificate its agent must present (none before enrolment).
    pub cert: Option<CertRow>,
    /// During a renewal, the fingerprint of the certificate signed and
    /// being installed: accepted too, until the renewal ends.
    pub next_fingerprint: Option<String>,
    /// Until when its pending enrolment token is accepted, milliseconds
    /// since the epoch (none: no token pending).
    pub enrol_expires: Option<u64>,
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

impl HostRow {
    /// The API's view (`last_seen` in seconds).
    pub fn to_api(&self) -> Host {
        Host {
            id: self.id,
            name: self.name.clone(),
            url: self.url.clone(),
            status: self.status,
            spm: self.spm,
            last_seen: self.last_seen.map(|ms| ms / 1000),
            error: self.error.clone(),
            certificate: self.cert.as_ref().map(|c| HostCertificate {
                fingerprint: c.fingerprint.clone(),
                serial: c.serial.clone(),
                not_after: c.not_after,
            }),
        }
    }

    fn from_row(row: &AnyRow) -> Result<HostRow> {
        let fingerprint = codec::opt_text(row, "cert_fingerprint")?;
        let cert = match fingerprint {
            Some(fingerprint) => Some(CertRow {
                fingerprint,
                serial: codec::opt_text(row, "cert_serial")?.unwrap_or_default(),
                not_after: codec::opt_uint(row, "cert_expires")?.unwrap_or(0),
            }),
            None => None,
        };
        Ok(HostRow {
            id: codec::uuid(row, "id")?,
            name: codec::text(row, "name")?,
            url: codec::text(row, "url")?,
            cert,
            next_fingerprint: codec::opt_text(row, "next_fingerprint")?,
            enrol_expires: codec::opt_uint(row, "enrol_expires")?,
            status: codec::word(row, "status")?,
            spm: codec::boolean(row, "spm")?,
            last_seen: codec::opt_uint(row, "last_seen")?,
            error: codec::opt_text(row, "error")?,
            created: codec::uint(row, "created")?,
        })
    }
}

const COLUMNS: &str = "id, name, url, status, spm, last_seen, error, created, cert_fingerprint, cert_serial, cert_expires, next_fingerprint, enrol_expires";

impl Db {
    /// Adds a host waiting for its enrolment: `enrol_hash` is the hash of
    /// its one-time token.
    pub async fn insert_host(&self, h: &HostRow, enrol_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO hosts (id, name, url, status, spm, last_seen, error, created, enrol_hash, enrol_expires)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(h.id.to_string())
        .bind(h.name.clone())
        .bind(h.url.clone())
        .bind(codec::enum_text(&h.status)?)
        .bind(codec::flag(h.spm))
        .bind(codec::opt_i64(h.last_seen, "last_seen")?)
        .bind(h.error.clone())
        .bind(codec::to_i64(h.created, "created")?)
        .bind(enrol_hash.to_string())
        .bind(codec::opt_i64(h.enrol_expires, "enrol_expires")?)
        .execute(self.pool())
        .await
        .map_err(Error::db(format!("add host {}", h.name)))?;
        Ok(())
    }

    /// Gives a host a new one-time enrolment token (its hash) and, when
    /// given, a new URL.
    pub async fn set_host_enrolment(
        &self,
        id: Uuid,
        enrol_hash: &str,
        expires_ms: u64,
        url: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE hosts SET enrol_hash = $1, enrol_expires = $2, url = COALESCE($3, url) WHERE id = $4",
        )
        .bind(enrol_hash.to_string())
        .bind(codec::to_i64(expires_ms, "enrol_expires")?)
        .bind(url.map(str::to_string))
        .bind(id.to_string())
        .execute(self.pool())
        .await
        .map_err(Error::db("record an enrolment token"))?;
        Ok(())
    }

    /// The host whose pending enrolment token has hash `enrol_hash`.
    pub async fn host_by_enrolment(&self, enrol_hash: &str) -> Result<Option<HostRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM hosts WHERE enrol_hash = $1"
        ))
        .bind(enrol_hash.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(Error::db("read a host"))?;
        row.as_ref().map(HostRow::from_row).transpose()
    }

    /// Completes an enrolment: the host's certificate becomes `cert`, and
    /// its token is used up, in one statement that only succeeds while
    /// the token is still pending (so a token enrolls once, even when two
    /// requests race). An enrolling host turns down until its agent
    /// answers. False when the token was used meanwhile.
    pub async fn complete_enrolment(
        &self,
        id: Uuid,
        enrol_hash: &str,
        cert: &CertRow,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE hosts SET cert_fingerprint = $1, cert_serial = $2, cert_expires = $3,
                 next_fingerprint = NULL, enrol_hash = NULL, enrol_expires = NULL,
                 status = CASE WHEN status = 'enrolling' THEN 'down' ELSE status END,
                 error = CASE WHEN status = 'enrolling' THEN 'enrolled; waiting for its agent to answer' ELSE error END
             WHERE id = $4 AND enrol_hash = $5",
        )
        .bind(cert.fingerprint.clone())
        .bind(cert.serial.clone())
        .bind(codec::to_i64(cert.not_after, "cert_expires")?)
        .bind(id.to_string())
        .bind(enrol_hash.to_string())
        .execute(self.pool())
        .await
        .map_err(Error::db("record an enrolment"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the certificate a renewal signed, accepted beside the
    /// current one until the renewal ends.
    pub async fn set_host_next_cert(&self, id: Uuid, fingerprint: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE hosts SET next_fingerprint = $1 WHERE id = $2")
            .bind(fingerprint.map(str::to_string))
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(Error::db("record a renewed certificate"))?;
        Ok(())
    }

    /// Ends a renewal: the host's certificate is now `cert`, the previous
    /// one no longer accepted.
    pub async fn set_host_cert(&self, id: Uuid, cert: &CertRow) -> Result<()> {
        sqlx::query(
            "UPDATE hosts SET cert_fingerprint = $1, cert_serial = $2, cert_expires = $3,
                 next_fingerprint = NULL
             WHERE id = $4",
        )
        .bind(cert.fingerprint.clone())
        .bind(cert.serial.clone())
        .bind(codec::to_i64(cert.not_after, "cert_expires")?)
        .bind(id.to_string())
        .execute(self.pool())
        .await
        .map_err(Error::db("record a renewed certificate"))?;
        Ok(())
    }

    /// Removes a host (the caller checked that nothing uses it).
    pub async fn delete_host(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM hosts WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(Error::db("remove a host"))?;
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

    /// Records that a host answered (`error` None) or did not. A host still
    /// enrolling stays so.
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
             WHERE id = $4 AND status <> 'enrolling'",
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
