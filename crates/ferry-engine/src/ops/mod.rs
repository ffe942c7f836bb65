//! The inventory operations behind the REST API, one module per resource.
//! They take the `ferry_api::engine` request types and return its
//! response types; the HTTP layer only translates (firecracker's split of
//! `api_server` and `vmm`).
//!
//! Every operation checks its input before it changes anything, so a bad
//! request changes nothing; every change is recorded in the event log.

pub mod certs;
pub mod disks;
pub mod domains;
pub mod enrol;
pub mod events;
pub mod hosts;
pub mod jobs;
pub mod snapshot;
pub mod vms;

use ferry_api::engine::{MoveRequest, PaceMode, GUEST_SHARE_DEFAULT_PCT, GUEST_SHARE_PCT};
use uuid::Uuid;

use crate::db::{DiskRow, DomainRow, HostRow, VmRow};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// The longest name the engine accepts (a domain's name goes into VDSM
/// metadata, which allows 50).
const MAX_NAME: usize = 50;

/// Checks a host, domain or disk name: 1 to 50 letters, digits, `-`, `_`
/// or `.`, the first a letter or a digit (a name starting with `-` reads
/// as an option on a command line, one starting with `.` as a hidden
/// file), and not a UUID (a UUID-shaped name would be ambiguous wherever
/// a name or a UUID is accepted). The OpenAPI document states the same
/// rule as [`ferry_api::engine::NAME_PATTERN`] (it cannot say "not a
/// UUID").
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > MAX_NAME || !ok_chars || !first_ok {
        return Err(Error::BadRequest(format!(
            "'{name}' is not a valid {what} name: use 1 to {MAX_NAME} letters, digits, '-', '_' or '.', starting with a letter or a digit"
        )));
    }
    if Uuid::parse_str(name).is_ok() {
        return Err(Error::BadRequest(format!(
            "'{name}' is not a valid {what} name: it looks like a UUID, and things are named by name or UUID; choose a word"
        )));
    }
    Ok(())
}

/// Checks what a move request asks beyond its names: a bandwidth limit
/// of at least 1 MiB/s, a guest share of 10 to 95 %, and a correlation id
/// (a caller's own id for the job, as oVirt's API takes it) of 1 to 50
/// letters, digits, `.`, `_` or `-`.
pub fn check_move_request(req: &MoveRequest) -> Result<()> {
    if req.bandwidth_mib_s == Some(0) {
        return Err(Error::BadRequest(
            "a bandwidth limit of 0 MiB/s would never finish: give at least 1, or leave it out for no limit".into(),
        ));
    }
    if let Some(share) = req.guest_share_pct.filter(|s| !GUEST_SHARE_PCT.contains(s)) {
        let (lo, hi) = (GUEST_SHARE_PCT.start(), GUEST_SHARE_PCT.end());
        return Err(Error::BadRequest(format!(
            "a guest share of {share} % is out of range: give {lo} to {hi} (the percent of its I/O rate the guest keeps), or leave it out for {GUEST_SHARE_DEFAULT_PCT}"
        )));
    }
    let Some(id) = req.correlation_id.as_deref() else {
        return Ok(());
    };
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if id.is_empty() || id.len() > MAX_NAME || !ok_chars {
        return Err(Error::BadRequest(format!(
            "'{id}' is not a valid correlation id: use 1 to {MAX_NAME} letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(())
}

/// Checks that a guest share is asked only of a guest-paced move. After
/// the names are resolved, so that a request the API's schema allows is
/// answered about its names first (an unknown disk is a 404, not this).
pub fn check_guest_share_paced(req: &MoveRequest) -> Result<()> {
    let Some(share) = req.guest_share_pct else {
        return Ok(());
    };
    if req.pace == PaceMode::Fixed {
        return Err(Error::BadRequest(format!(
            "a guest share of {share} % needs the copy paced by the guest, and this move asks for a fixed pace: leave the share out, or pace it by the guest"
        )));
    }
    Ok(())
}

/// Finds a host by name or UUID, or says how to find the right one.
pub async fn resolve_host(engine: &Engine, key: &str) -> Result<HostRow> {
    engine
        .db()
        .host_by_name_or_id(key)
        .await?
        .ok_or_else(|| not_found("host", key, "ferry host list"))
}

/// Finds a storage domain by name or UUID.
pub async fn resolve_domain(engine: &Engine, key: &str) -> Result<DomainRow> {
    engine
        .db()
        .domain_by_name_or_id(key)
        .await?
        .ok_or_else(|| not_found("storage domain", key, "ferry domain list"))
}

/// Finds a disk by name or UUID.
pub async fn resolve_disk(engine: &Engine, key: &str) -> Result<DiskRow> {
    engine
        .db()
        .disk_by_name_or_id(key)
        .await?
        .ok_or_else(|| not_found("disk", key, "ferry disk list"))
}

/// Finds a VM by name or UUID.
pub async fn resolve_vm(engine: &Engine, key: &str) -> Result<VmRow> {
    engine
        .db()
        .vm_by_name_or_id(key)
        .await?
        .ok_or_else(|| not_found("VM", key, "ferry vm list"))
}

fn not_found(what: &str, key: &str, list: &str) -> Error {
    Error::NotFound(format!(
        "there is no {what} named or numbered '{key}'; list them with '{list}'"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_words_not_paths_or_uuids() {
        for ok in ["domain1", "disk-a", "vm_1", "a.b"] {
            assert!(validate_name("disk", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "-rf",
            "a/b",
            "a b",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            &"x".repeat(51),
        ] {
            assert!(validate_name("disk", bad).is_err(), "{bad}");
        }
    }
}
