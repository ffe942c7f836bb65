//! Conversions between Rust values and the portable column types: UUIDs
//! and enums as TEXT, unsigned numbers, flags and times as BIGINT.
//!
//! A value that does not convert back is reported as a corrupt database
//! naming the column, never unwrapped.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A number for a BIGINT column; `what` names it if it does not fit.
pub fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| {
        Error::BadRequest(format!(
            "{what} is {v}, more than the largest number the engine stores ({})",
            i64::MAX
        ))
    })
}

/// An optional number for a BIGINT column.
pub fn opt_i64(v: Option<u64>, what: &str) -> Result<Option<i64>> {
    v.map(|v| to_i64(v, what)).transpose()
}

/// A flag for a BIGINT column (0 or 1: portable where BOOLEAN is not).
pub fn flag(v: bool) -> i64 {
    i64::from(v)
}

/// An enum as the lowercase word it has on the wire.
pub fn enum_text<T: Serialize>(v: &T) -> Result<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(Error::Internal(format!(
            "{other} is not a word; only unit enums are stored as text"
        ))),
        Err(e) => Err(Error::Internal(format!("cannot encode a value: {e}"))),
    }
}

/// Reads a TEXT column holding a UUID.
pub fn uuid(row: &AnyRow, col: &str) -> Result<Uuid> {
    let text = text(row, col)?;
    Uuid::parse_str(&text).map_err(|_| corrupt(col, &text))
}

/// Reads a nullable TEXT column holding a UUID.
pub fn opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>> {
    opt_text(row, col)?
        .map(|t| Uuid::parse_str(&t).map_err(|_| corrupt(col, &t)))
        .transpose()
}

/// Reads a TEXT column.
pub fn text(row: &AnyRow, col: &str) -> Result<String> {
    row.try_get::<String, _>(col)
        .map_err(|e| Error::Corrupt(format!("column {col}: {e}")))
}

/// Reads a nullable TEXT column.
pub fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(col)
        .map_err(|e| Error::Corrupt(format!("column {col}: {e}")))
}

/// Reads a BIGINT column.
pub fn int(row: &AnyRow, col: &str) -> Result<i64> {
    row.try_get::<i64, _>(col)
        .map_err(|e| Error::Corrupt(format!("column {col}: {e}")))
}

/// Reads a BIGINT column holding a non-negative number.
pub fn uint(row: &AnyRow, col: &str) -> Result<u64> {
    let v = int(row, col)?;
    u64::try_from(v).map_err(|_| corrupt(col, &v.to_string()))
}

/// Reads a nullable BIGINT column holding a non-negative number.
pub fn opt_uint(row: &AnyRow, col: &str) -> Result<Option<u64>> {
    row.try_get::<Option<i64>, _>(col)
        .map_err(|e| Error::Corrupt(format!("column {col}: {e}")))?
        .map(|v| u64::try_from(v).map_err(|_| corrupt(col, &v.to_string())))
        .transpose()
}

/// Reads a flag column.
pub fn boolean(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(int(row, col)? != 0)
}

/// Reads a TEXT column holding an enum's word.
pub fn word<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    let text = text(row, col)?;
    parse_word(&text).ok_or_else(|| corrupt(col, &text))
}

/// An enum from its wire word.
pub fn parse_word<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

/// Reads a nullable TEXT column holding JSON.
pub fn opt_json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<Option<T>> {
    opt_text(row, col)?
        .map(|t| serde_json::from_str(&t).map_err(|_| corrupt(col, &t)))
        .transpose()
}

fn corrupt(col: &str, value: &str) -> Error {
    Error::Corrupt(format!("column {col} holds '{value}'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::engine::JobState;

    #[test]
    fn enums_are_stored_as_their_wire_words() {
        assert_eq!(
            enum_text(&JobState::RollingBack).ok().as_deref(),
            Some("rolling_back")
        );
        assert_eq!(
            parse_word::<JobState>("rolling_back"),
            Some(JobState::RollingBack)
        );
        assert_eq!(parse_word::<JobState>("nonsense"), None);
    }

    #[test]
    fn numbers_too_large_for_bigint_are_refused_with_their_name() {
        let e = to_i64(u64::MAX, "the disk's size").expect_err("too large");
        assert!(e.to_string().contains("the disk's size"), "{e}");
        assert_eq!(to_i64(5, "x").ok(), Some(5));
    }
}
