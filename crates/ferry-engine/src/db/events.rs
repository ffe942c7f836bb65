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

    /// The last `limit` events, newest first; with `after`, the first
    /// `limit` events after that one (still newest first), so that a
    /// reader following the log misses none however many came at once.
    pub async fn events(
        &self,
        limit: u32,
        object: Option<Uuid>,
        after: Option<i64>,
    ) -> Result<Vec<Event>> {
        let object = object.map(|o| o.to_string());
        // Placeholders numbered in the order they are bound below.
        let wanted = match (&object, after) {
            (None, None) => "1 = 1",
            (Some(_), None) => "object = $2",
            (None, Some(_)) => "id > $2",
            (Some(_), Some(_)) => "object = $2 AND id > $3",
        };
        // The oldest first after an id, the newest first otherwise.
        let order = if after.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT id, time, kind, message, object FROM events WHERE {wanted} ORDER BY id {order} LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(i64::from(limit));
        if let Some(o) = object {
            query = query.bind(o);
        }
        if let Some(a) = after {
            query = query.bind(a);
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(Error::db("read the event log"))?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        if after.is_some() {
            events.reverse();
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_reads_newest_first_and_after_an_event_misses_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/engine.db?mode=rwc", dir.path().display());
        let db = Db::open(&url).await.expect("a new database");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for (n, o) in [(1, a), (2, b), (3, a), (4, a), (5, b)] {
            db.insert_event("disk", &format!("event {n}"), Some(o))
                .await
                .expect("record");
        }
        let said =
            |events: Vec<Event>| -> Vec<String> { events.into_iter().map(|e| e.message).collect() };
        let all = db.events(10, None, None).await.expect("read");
        let first = all.last().expect("events").id;
        assert_eq!(
            said(all),
            ["event 5", "event 4", "event 3", "event 2", "event 1"]
        );
        assert_eq!(
            said(db.events(2, None, None).await.expect("read")),
            ["event 5", "event 4"]
        );
        // After event 1: the first two after it, newest first, not the
        // last two (a follower that asked late would miss events 2 and 3).
        assert_eq!(
            said(db.events(2, None, Some(first)).await.expect("read")),
            ["event 3", "event 2"]
        );
        assert_eq!(
            said(db.events(10, Some(a), Some(first)).await.expect("read")),
            ["event 4", "event 3"]
        );
        assert_eq!(
            said(db.events(10, Some(b), None).await.expect("read")),
            ["event 5", "event 2"]
        );
        assert!(db
            .events(10, None, Some(first + 4))
            .await
            .expect("read")
            .is_empty());
    }
}
