//! The event log as the API shows it.

use ferry_api::engine::Event;
use uuid::Uuid;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// Events listed when the request does not say how many.
pub const DEFAULT_LIMIT: u32 = 100;

/// The most events one request returns.
pub const MAX_LIMIT: u32 = 10_000;

/// The last `limit` events, newest first; with `after`, the first `limit`
/// events after that one, newest first too (a reader following the log
/// asks for what came after the last event it saw).
pub async fn events(
    engine: &Engine,
    limit: Option<u32>,
    object: Option<Uuid>,
    after: Option<i64>,
) -> Result<Vec<Event>> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::BadRequest(format!(
            "limit={limit} is out of range: ask for 1 to {MAX_LIMIT} events"
        )));
    }
    engine.events().list(limit, object, after).await
}
