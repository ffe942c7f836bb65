//! Hosts: add one (it waits, `enrolling`, for its agent to enroll with
//! the one-time token the answer carries), give it a new token, remove it,
//! list them, show one.

use std::time::Duration;

use ferry_api::engine::{AddHost, Host, HostEnrolment, HostStatus, Reenrol};
use uuid::Uuid;

use crate::db::codec::now_ms;
use crate::db::HostRow;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::{resolve_host, validate_name};

/// How long a one-time enrolment token is accepted: long enough to walk
/// to the host and run one command, short enough that a token left in a
/// shell history is soon worthless.
pub const ENROL_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Adds a host, `enrolling`: nothing is asked of its agent until it
/// enrolls with the token of the answer (`ops::enrol`), after which the
/// monitor brings it up and connects it to every storage domain.
pub async fn add_host(engine: &Engine, req: AddHost) -> Result<HostEnrolment> {
    validate_name("host", &req.name)?;
    let url = check_url(&req.url)?;
    let _inventory = engine.inventory_lock().await;
    check_unique(engine, &req.name, &url, None).await?;
    let (secret, expires) = new_token();
    let row = HostRow {
        id: Uuid::new_v4(),
        name: req.name.clone(),
        url: url.clone(),
        cert: None,
        next_fingerprint: None,
        enrol_expires: Some(expires),
        status: HostStatus::Enrolling,
        spm: false,
        last_seen: None,
        error: Some("waiting for its agent to enroll (ferry agent enroll)".into()),
        created: now_ms(),
    };
    engine
        .db()
        .insert_host(&row, &ferry_pki::random::hash_secret(&secret))
        .await?;
    engine
        .events()
        .record(
            "host",
            format!(
                "host {} added ({url}); waiting for its agent to enroll",
                row.name
            ),
            Some(row.id),
        )
        .await;
    Ok(enrolment(engine, &row, &secret, expires))
}

/// A new one-time token for a host (and a new URL, when given). Its
/// current certificate stays accepted until the agent enrolls again, so a
/// host that runs keeps running meanwhile.
pub async fn reenrol(engine: &Engine, key: &str, req: Reenrol) -> Result<HostEnrolment> {
    let url = req.url.as_deref().map(check_url).transpose()?;
    let _inventory = engine.inventory_lock().await;
    let host = resolve_host(engine, key).await?;
    if let Some(url) = &url {
        check_unique(engine, &host.name, url, Some(host.id)).await?;
    }
    let (secret, expires) = new_token();
    engine
        .db()
        .set_host_enrolment(
            host.id,
            &ferry_pki::random::hash_secret(&secret),
            expires,
            url.as_deref(),
        )
        .await?;
    engine.agents().forget(host.id);
    engine
        .events()
        .record(
            "host",
            format!("host {}: a new enrolment token was issued", host.name),
            Some(host.id),
        )
        .await;
    let row = resolve_host(engine, &host.id.to_string()).await?;
    Ok(enrolment(engine, &row, &secret, expires))
}

/// Removes a host: its certificate is accepted no more, its client
/// forgotten. Refused while a VM is defined on it (move its disks' VMs
/// elsewhere first) and, for the SPM, while a move runs.
pub async fn remove_host(engine: &Engine, key: &str) -> Result<()> {
    let _inventory = engine.inventory_lock().await;
    let host = resolve_host(engine, key).await?;
    let vms: Vec<String> = engine
        .db()
        .vms()
        .await?
        .into_iter()
        .filter(|v| v.host == host.id)
        .map(|v| v.name)
        .collect();
    if !vms.is_empty() {
        return Err(Error::Conflict(format!(
            "host {} runs VMs {}; they would be left without a host: remove the host once no VM is defined on it",
            host.name,
            vms.join(", ")
        )));
    }
    if host.spm && !engine.db().unfinished_jobs().await?.is_empty() {
        return Err(Error::Conflict(format!(
            "host {} is the SPM and moves are running; wait until they end (ferry job list), then remove it",
            host.name
        )));
    }
    if host.spm && host.status == HostStatus::Up {
        // Best effort: a host that does not answer has lost the lease
        // with its process, or will when it is stopped.
        if let Err(e) = engine.agents().client_for(&host).release_spm().await {
            tracing::warn!(host = %host.name, "could not release the SPM role: {}", e.message());
        }
    }
    engine.db().delete_host(host.id).await?;
    engine.pki().pins().remove(host.id);
    engine.agents().forget(host.id);
    engine
        .events()
        .record(
            "host",
            format!(
                "host {} removed; its certificate is no longer accepted",
                host.name
            ),
            Some(host.id),
        )
        .await;
    if host.spm {
        if let Err(e) = crate::monitor::election::ensure_spm(engine).await {
            tracing::warn!("no SPM after removing a host: {}", e.full_text());
        }
    }
    Ok(())
}

fn new_token() -> (String, u64) {
    let lifetime = u64::try_from(ENROL_TOKEN_LIFETIME.as_millis()).unwrap_or(u64::MAX);
    (
        ferry_pki::random::secret(),
        now_ms().saturating_add(lifetime),
    )
}

fn enrolment(engine: &Engine, row: &HostRow, secret: &str, expires_ms: u64) -> HostEnrolment {
    HostEnrolment {
        host: row.to_api(),
        token: ferry_pki::EnrolToken {
            secret: secret.to_string(),
            ca: engine.pki().ca_fingerprint(),
        }
        .text(),
        expires: expires_ms / 1000,
    }
}

/// An agent's URL: `https://` (agents speak mutual TLS only), no trailing
/// `/`, so one agent cannot be added twice under two spellings.
fn check_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/').to_string();
    if url.starts_with("http://") {
        return Err(Error::BadRequest(format!(
            "'{url}' is plain HTTP, and agents speak HTTPS only (mutual TLS): give https://<host>:<port>"
        )));
    }
    let rest = url.strip_prefix("https://").unwrap_or_default();
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(Error::BadRequest(format!(
            "'{url}' is not an agent URL: give https://<host>:<port>"
        )));
    }
    Ok(url)
}

/// One host per name, and one host per agent: two hosts on one agent
/// would each think they run its VMs. Called under the inventory lock, so
/// no other add slips in between this check and the insert.
async fn check_unique(engine: &Engine, name: &str, url: &str, except: Option<Uuid>) -> Result<()> {
    let hosts = engine.db().hosts().await?;
    let others = hosts.iter().filter(|h| Some(h.id) != except);
    for h in others {
        if h.name == name {
            return Err(Error::Conflict(format!(
                "there is already a host named {name}; choose another name"
            )));
        }
        if h.url == url {
            return Err(Error::Conflict(format!(
                "the agent at {url} is already host {}",
                h.name
            )));
        }
    }
    Ok(())
}

/// Every host, oldest first.
pub async fn hosts(engine: &Engine) -> Result<Vec<Host>> {
    Ok(engine
        .db()
        .hosts()
        .await?
        .iter()
        .map(HostRow::to_api)
        .collect())
}

/// One host, by name or UUID.
pub async fn host(engine: &Engine, key: &str) -> Result<Host> {
    Ok(resolve_host(engine, key).await?.to_api())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_urls_must_be_https() {
        assert_eq!(check_url("https://h:1/").expect("ok"), "https://h:1");
        let e = check_url("http://h:1").expect_err("plain");
        assert!(e.to_string().contains("HTTPS only"), "{e}");
        assert!(check_url("h:1").is_err());
        assert!(check_url("https://").is_err());
    }
}
