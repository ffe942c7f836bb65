//! The `events` table: the log of everything that changed, newest last.

use ferry_api::engine::Event;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::codec::{self, now_ms};
use crate::db::Db;
use crate::error::{Error, Result};

fn event_from_row(row: &AnyRow) -> Result<Event> {
    Ok(Event {
        id: codec::int(row, "id")?,
        time: codec::uint(row, "time")?,
        kind: codec::text(row, "kind")?,
        message: codec::text(row, "message")?,
        object: codec::opt_uuid(row, "object")?,
    })
}

impl Db {
    /// Appends an event stamped now.
    pub async fn insert_event(
        &self,
        kind: &str,
        message: &str,
        object: Option<Uuid>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO events (time, kind, message, object) VALUES ($1, $2, $3, $4)")
            .bind(codec::to_i64(now_ms(), "time")?)
            .bind(kind.to_string())
            .bind(message.to_string())
            .bind(object.map(|o| o.to_string()))
            .execute(self.pool())
            .await
            .map_err(Error::db("record an event"))?;
        Ok(())
    }

    /// The last `limit` events, newest first.
    pub async fn events(&self, limit: u32, object: Option<Uuid>) -> Result<Vec<Event>> {
        let rows = match object {
            None => sqlx::query(
                "SELECT id, time, kind, message, object FROM events ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit)),
            Some(o) => sqlx::query(
                "SELECT id, time, kind, message, object FROM events WHERE object = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(o.to_string())
            .bind(i64::from(limit)),
        }
        .fetch_all(self.pool())
        .await
        .map_err(Error::db("read the event log"))?;
        rows.iter().map(event_from_row).collect()
    }
}
