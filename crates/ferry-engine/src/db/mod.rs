//! The inventory database: hosts, storage domains, disks and their volume
//! chains, VMs, jobs with their steps, the short operations that lock a
//! disk (snapshots), and the event log.
//!
//! It is reached through `sqlx`'s `Any` driver, so the same code runs on
//! SQLite (the default: one file) and on PostgreSQL: queries use `$1, $2…`
//! placeholders, which both accept, and the schema only portable column
//! types (TEXT for UUIDs, names and JSON; BIGINT for numbers, flags and
//! epoch-millisecond times). `Any` has no unsigned or UUID types, so the
//! conversions live here, in one place ([`codec`]).
//!
//! One submodule per table family; each adds methods to [`Db`].

pub mod codec;
mod disks;
mod domains;
mod events;
mod hosts;
mod jobs;
mod operations;
mod retention;
mod schema;
mod vms;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

use crate::error::{Error, Result};

pub use disks::DiskRow;
pub use domains::DomainRow;
pub use hosts::{CertRow, HostRow};
pub use jobs::JobRow;
pub use operations::{OperationKind, OperationRow, OperationState};
pub use retention::Pruned;
pub use vms::VmRow;

/// How long a SQLite writer waits for another one before giving up: longer
/// than any transaction the engine runs.
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// A handle on the inventory database; cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
}

impl Db {
    /// Opens the database at `url` (`sqlite://<file>?mode=rwc`,
    /// `postgres://…`), creating a SQLite file's directory if needed, and
    /// creates the schema if it is not there.
    pub async fn open(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        if let Some(dir) = sqlite_dir(url) {
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::BadRequest(format!(
                    "cannot create the database directory {}: {e}; choose another --data-dir",
                    dir.display()
                ))
            })?;
        }
        let options: AnyConnectOptions = url.parse().map_err(|e| {
            Error::BadRequest(format!(
                "the database URL '{url}' is not usable ({e}); use sqlite://<file>?mode=rwc or postgres://user@host/db"
            ))
        })?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        // WAL lets the monitor's reads run beside a
                        // writer; the busy timeout makes writers queue
                        // instead of failing.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"))
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(Error::db(format!("open {}", redact(url))))?;
        let db = Db { pool };
        schema::create(&db).await?;
        Ok(db)
    }

    /// The pool, for the few queries that do not belong to a table module.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection (at shutdown, so a SQLite file is complete
    /// without its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The directory of a SQLite database file, to create before opening.
fn sqlite_dir(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let file = rest.split('?').next()?;
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 && url[scheme + 3..at].contains(':') => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
                }
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_directory_is_found_and_passwords_are_hidden() {
        assert_eq!(
            sqlite_dir("sqlite:///var/lib/ferry/engine.db?mode=rwc"),
            Some("/var/lib/ferry".into())
        );
        assert_eq!(sqlite_dir("sqlite://:memory:"), None);
        assert_eq!(sqlite_dir("postgres://u@h/db"), None);
        assert_eq!(
            redact("postgres://ferry:secret@db/ferry"),
            "postgres://ferry:***@db/ferry"
        );
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
