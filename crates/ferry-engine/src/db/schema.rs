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
pub const SCHEMA_VERSION: i64 = 5;

/// What brings a database of an older schema up to the next version:
/// `(version it produces, statements)`, in order. A fresh database gets
/// the current tables directly and skips them.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        2,
        &["ALTER TABLE volumes ADD COLUMN allocated BIGINT NOT NULL DEFAULT 0"],
    ),
    (
        3,
        &["ALTER TABLE volumes ADD COLUMN in_chain BIGINT NOT NULL DEFAULT 1"],
    ),
    (4, &[OPERATIONS, OPERATIONS_BY_STATE]),
    // Mutual TLS replaces the agents' bearer tokens (issue 14): no token
    // is kept; a host recorded before must enroll (`ferry host enroll`).
    (
        5,
        &[
            "ALTER TABLE hosts ADD COLUMN cert_fingerprint TEXT",
            "ALTER TABLE hosts ADD COLUMN cert_serial TEXT",
            "ALTER TABLE hosts ADD COLUMN cert_expires BIGINT",
            "ALTER TABLE hosts ADD COLUMN next_fingerprint TEXT",
            "ALTER TABLE hosts ADD COLUMN enrol_hash TEXT",
            "ALTER TABLE hosts ADD COLUMN enrol_expires BIGINT",
            "ALTER TABLE hosts DROP COLUMN token",
            "UPDATE hosts SET status = 'enrolling', spm = 0, error = 'recorded before mutual TLS: enroll it with ferry host enroll NAME --url https://HOST:PORT'",
        ],
    ),
];

/// The short operations that lock a disk outside a move job (a
/// snapshot), schema 4: the lock's owner, so that no lock is ever held by
/// nothing a restarted engine can find.
const OPERATIONS: &str = "CREATE TABLE IF NOT EXISTS operations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        disk_id TEXT NOT NULL,
        state TEXT NOT NULL,
        volume TEXT,
        error TEXT,
        started BIGINT NOT NULL,
        finished BIGINT
    )";
const OPERATIONS_BY_STATE: &str =
    "CREATE INDEX IF NOT EXISTS operations_by_state ON operations (state)";

/// The tables, in an order that satisfies their references.
const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS schema_version (
        version BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS hosts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        status TEXT NOT NULL,
        spm BIGINT NOT NULL DEFAULT 0,
        last_seen BIGINT,
        error TEXT,
        created BIGINT NOT NULL,
        cert_fingerprint TEXT,
        cert_serial TEXT,
        cert_expires BIGINT,
        next_fingerprint TEXT,
        enrol_hash TEXT,
        enrol_expires BIGINT
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
        allocated BIGINT NOT NULL DEFAULT 0,
        in_chain BIGINT NOT NULL DEFAULT 1,
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
    OPERATIONS,
    OPERATIONS_BY_STATE,
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
    // A job's (or a host's) own events are read by their object.
    for ddl in [
        events.as_str(),
        "CREATE INDEX IF NOT EXISTS events_by_object ON events (object)",
    ] {
        sqlx::query(ddl)
            .execute(db.pool())
            .await
            .map_err(Error::db("create its tables"))?;
    }
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
        Some(v) => migrate(db, v).await,
    }
}

/// Applies the migrations after `from`, each with its version record in
/// one transaction, so a crash leaves the database at one version or the
/// next.
async fn migrate(db: &Db, from: i64) -> Result<()> {
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        let action = "upgrade its schema";
        let mut tx = db.pool().begin().await.map_err(Error::db(action))?;
        for ddl in *statements {
            sqlx::query(ddl)
                .execute(&mut *tx)
                .await
                .map_err(Error::db(action))?;
        }
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(*version)
            .execute(&mut *tx)
            .await
            .map_err(Error::db(action))?;
        tx.commit().await.map_err(Error::db(action))?;
        tracing::info!(version, "upgraded the database schema");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `volumes` table as schema 1 made it.
    const V1_VOLUMES: &str = "CREATE TABLE volumes (
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
    )";

    /// The `hosts` table as schemas 1 to 4 made it, with the agent's token.
    const V1_HOSTS: &str = "CREATE TABLE hosts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        token TEXT NOT NULL,
        status TEXT NOT NULL,
        spm BIGINT NOT NULL DEFAULT 0,
        last_seen BIGINT,
        error TEXT,
        created BIGINT NOT NULL
    )";

    async fn version(db: &Db) -> i64 {
        sqlx::query("SELECT MAX(version) AS v FROM schema_version")
            .fetch_one(db.pool())
            .await
            .expect("read the version")
            .try_get("v")
            .expect("a version")
    }

    #[tokio::test]
    async fn a_schema_1_database_is_upgraded_in_place_its_tokens_dropped_and_a_newer_one_is_refused(
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/engine.db?mode=rwc", dir.path().display());
        let db = Db::open(&url).await.expect("a new database");
        assert_eq!(version(&db).await, SCHEMA_VERSION);
        for sql in [
            "DROP TABLE volumes",
            "DROP TABLE operations",
            "DROP TABLE hosts",
            V1_HOSTS,
            "INSERT INTO hosts (id, name, url, token, status, created) VALUES ('0f8fad5b-d9cb-469f-a165-70867728950e', 'host1', 'http://h:1', 'secret', 'up', 0)",
            V1_VOLUMES,
            "DELETE FROM schema_version",
            "INSERT INTO schema_version (version) VALUES (1)",
        ] {
            sqlx::query(sql).execute(db.pool()).await.expect(sql);
        }
        db.close().await;

        let db = Db::open(&url).await.expect("the schema 1 database");
        assert_eq!(version(&db).await, SCHEMA_VERSION);
        sqlx::query("SELECT allocated, in_chain FROM volumes")
            .fetch_all(db.pool())
            .await
            .expect("the new columns are there");
        sqlx::query("SELECT id, kind, disk_id, state, volume FROM operations")
            .fetch_all(db.pool())
            .await
            .expect("the operations table is there");
        sqlx::query("SELECT cert_fingerprint, next_fingerprint, enrol_hash FROM hosts")
            .fetch_all(db.pool())
            .await
            .expect("the certificate columns are there");
        let hosts = db.hosts().await.expect("hosts");
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].status, ferry_api::engine::HostStatus::Enrolling);
        assert!(
            sqlx::query("SELECT token FROM hosts")
                .fetch_all(db.pool())
                .await
                .is_err(),
            "no agent token is kept"
        );
        sqlx::query("INSERT INTO schema_version (version) VALUES (99)")
            .execute(db.pool())
            .await
            .expect("pretend a newer engine wrote it");
        db.close().await;

        let err = Db::open(&url).await.expect_err("a newer schema");
        assert!(err.to_string().contains("newer engine"), "{err}");
    }
}
