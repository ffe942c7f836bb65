//! The schema, created by the engine at start (`CREATE TABLE IF NOT
//! EXISTS`), and its version.
//!
//! Column types are the portable subset of SQLite and PostgreSQL: TEXT and
//! BIGINT. The one thing the two spell differently is an auto-numbered key
//! (the event log's id): SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT`,
//! PostgreSQL's `BIGSERIAL PRIMARY KEY`; [`serial_key`] picks it.

use sqlx::Row;

use crate::db::Db;
use crate::error::{Error, Result};

/// The schema this engine writes. A database with a higher version was
/// written by a newer engine, which this one must not touch.
pub const SCHEMA_VERSION: i64 = 1;

/// The tables, in an order that satisfies their references.
const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS schema_version (
        version BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS hosts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        token TEXT NOT NULL,
        status TEXT NOT NULL,
        spm BIGINT NOT NULL DEFAULT 0,
        last_seen BIGINT,
        error TEXT,
        created BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS domains (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        capacity BIGINT NOT NULL,
        free BIGINT NOT NULL,
        master BIGINT NOT NULL DEFAULT 0,
        created BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS disks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        size BIGINT NOT NULL,
        domain_id TEXT NOT NULL REFERENCES domains(id),
        locked_by TEXT,
        created BIGINT NOT NULL
    )",
    // A disk's chain as the SPM last reported it, base first (position 0).
    "CREATE TABLE IF NOT EXISTS volumes (
        disk_id TEXT NOT NULL REFERENCES disks(id) ON DELETE CASCADE,
        id TEXT NOT NULL,
        domain_id TEXT NOT NULL,
        position BIGINT NOT NULL,
        path TEXT NOT NULL,
        format TEXT NOT NULL,
        parent TEXT,
        legality TEXT NOT NULL,
        voltype TEXT NOT NULL,
        PRIMARY KEY (disk_id, position)
    )",
    "CREATE TABLE IF NOT EXISTS vms (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        host_id TEXT NOT NULL REFERENCES hosts(id),
        memory_mib BIGINT NOT NULL,
        boot TEXT,
        state TEXT NOT NULL,
        created BIGINT NOT NULL
    )",
    // A disk belongs to at most one VM: the UNIQUE makes two VMs claiming
    // one disk at the same moment fail in the database, not only in a
    // check that both could pass.
    "CREATE TABLE IF NOT EXISTS vm_disks (
        vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
        disk_id TEXT NOT NULL UNIQUE REFERENCES disks(id),
        position BIGINT NOT NULL,
        PRIMARY KEY (vm_id, position)
    )",
    "CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        mode TEXT NOT NULL,
        state TEXT NOT NULL,
        vm_id TEXT,
        src_domain TEXT NOT NULL,
        dst_domain TEXT NOT NULL,
        bandwidth_mib_s BIGINT,
        step TEXT NOT NULL,
        done_bytes BIGINT NOT NULL DEFAULT 0,
        total_bytes BIGINT NOT NULL DEFAULT 0,
        rate_bps BIGINT NOT NULL DEFAULT 0,
        error TEXT,
        cancel_requested BIGINT NOT NULL DEFAULT 0,
        data TEXT NOT NULL,
        created BIGINT NOT NULL,
        updated BIGINT NOT NULL,
        finished BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state)",
    "CREATE TABLE IF NOT EXISTS job_disks (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        disk_id TEXT NOT NULL,
        position BIGINT NOT NULL,
        PRIMARY KEY (job_id, disk_id)
    )",
    "CREATE TABLE IF NOT EXISTS job_steps (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        position BIGINT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        started BIGINT,
        finished BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (job_id, position),
        UNIQUE (job_id, name)
    )",
];

/// The auto-numbered key of the event log, as each backend spells it
/// (PostgreSQL would use BIGSERIAL; SQLite's AUTOINCREMENT never reuses a
/// number, so event ids only grow).
fn serial_key(backend: &str) -> &'static str {
    if backend == "PostgreSQL" {
        "BIGSERIAL PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    }
}

/// Creates what is missing and checks the version.
pub(crate) async fn create(db: &Db) -> Result<()> {
    let backend = {
        let conn = db.pool().acquire().await.map_err(Error::db("connect"))?;
        conn.backend_name().to_string()
    };
    for ddl in TABLES {
        sqlx::query(ddl)
            .execute(db.pool())
            .await
            .map_err(Error::db("create its tables"))?;
    }
    let events = format!(
        "CREATE TABLE IF NOT EXISTS events (
            id {},
            time BIGINT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            object TEXT
        )",
        serial_key(&backend)
    );
    sqlx::query(&events)
        .execute(db.pool())
        .await
        .map_err(Error::db("create its tables"))?;
    check_version(db).await
}

async fn check_version(db: &Db) -> Result<()> {
    let row = sqlx::query("SELECT MAX(version) AS v FROM schema_version")
        .fetch_one(db.pool())
        .await
        .map_err(Error::db("read the schema version"))?;
    let found: Option<i64> = row
        .try_get("v")
        .map_err(|e| Error::Corrupt(format!("schema_version: {e}")))?;
    match found {
        None => {
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(SCHEMA_VERSION)
                .execute(db.pool())
                .await
                .map_err(Error::db("record the schema version"))?;
            Ok(())
        }
        Some(v) if v > SCHEMA_VERSION => Err(Error::Conflict(format!(
            "the database was written by a newer engine (schema {v}, this engine knows {SCHEMA_VERSION}); run that engine or a newer one"
        ))),
        Some(_) => Ok(()),
    }
}
