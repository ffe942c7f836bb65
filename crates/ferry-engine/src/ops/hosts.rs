//! Hosts: add one whose agent already runs, list them, show one.

use ferry_agent_client::AgentClient;
use ferry_api::engine::{AddHost, Host, HostStatus};
use ferry_api::ErrorKind;
use uuid::Uuid;

use crate::db::codec::now_ms;
use crate::db::HostRow;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::monitor::election;
use crate::ops::{resolve_host, validate_name};

/// Adds a host after checking that its agent answers with that token and
/// can use every known storage domain; nothing is recorded otherwise.
/// The new host may become SPM at once if none is.
pub async fn add_host(engine: &Engine, req: AddHost) -> Result<Host> {
    let url = check_request(&req)?;
    let id = {
        let _inventory = engine.inventory_lock().await;
        check_unique(engine, &req.name, &url).await?;
        let client = AgentClient::new(url.clone(), req.token.clone());
        check_agent(&client, &url).await?;
        check_domains(engine, &client, &url).await?;
        let row = HostRow {
            id: Uuid::new_v4(),
            name: req.name.clone(),
            url: url.clone(),
            token: req.token.clone(),
            status: HostStatus::Up,
            spm: false,
            last_seen: Some(now_ms()),
            error: None,
            created: now_ms(),
        };
        engine.db().insert_host(&row).await?;
        engine
            .events()
            .record(
                "host",
                format!("host {} added ({url})", row.name),
                Some(row.id),
            )
            .await;
        row.id
    };
    if let Err(e) = election::ensure_spm(engine).await {
        tracing::warn!("no SPM after adding a host: {}", e.full_text());
    }
    host(engine, &id.to_string()).await
}

/// The checks that need nothing but the request come first, before the
/// inventory lock is taken or the agent asked: a bad request changes
/// nothing and waits for nobody. Returns the URL without a trailing `/`,
/// so one agent cannot be added twice under two spellings.
fn check_request(req: &AddHost) -> Result<String> {
    validate_name("host", &req.name)?;
    let url = req.url.trim().trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::BadRequest(format!(
            "'{}' is not an agent URL: give http://<host>:<port>",
            req.url
        )));
    }
    if req.token.trim().is_empty() {
        return Err(Error::BadRequest(
            "the agent's token is empty: give the token the agent was started with (its --token)"
                .into(),
        ));
    }
    Ok(url)
}

/// One host per name, and one host per agent: two hosts on one agent
/// would each think they run its VMs. Called under the inventory lock, so
/// no other add slips in between this check and the insert.
async fn check_unique(engine: &Engine, name: &str, url: &str) -> Result<()> {
    let hosts = engine.db().hosts().await?;
    if hosts.iter().any(|h| h.name == name) {
        return Err(Error::Conflict(format!(
            "there is already a host named {name}; choose another name"
        )));
    }
    if let Some(h) = hosts.iter().find(|h| h.url == url) {
        return Err(Error::Conflict(format!(
            "the agent at {url} is already host {}",
            h.name
        )));
    }
    Ok(())
}

/// A host that cannot reach every storage domain could not run or move
/// the disks on it, so it is refused before it is recorded.
async fn check_domains(engine: &Engine, client: &AgentClient, url: &str) -> Result<()> {
    for d in engine.db().domains().await? {
        client.connect_domain(&d.path).await.map_err(|e| {
            Error::BadRequest(format!(
                "the agent at {url} cannot use storage domain {} at {} ({}); make it reachable there, then add the host again",
                d.name,
                d.path.display(),
                e.message()
            ))
        })?;
    }
    Ok(())
}

/// Health proves the agent is there; an authenticated call proves the
/// token (health answers without one).
async fn check_agent(client: &AgentClient, url: &str) -> Result<()> {
    client.health().await.map_err(|e| {
        Error::BadRequest(format!(
            "the agent at {url} does not answer ({}); start it, or give the URL it listens on",
            e.message()
        ))
    })?;
    client.spm().await.map_err(|e| {
        if e.kind() == ErrorKind::Unauthorized {
            Error::BadRequest(format!(
                "the agent at {url} refused the token; give the token it was started with (its --token)"
            ))
        } else {
            Error::BadRequest(format!(
                "the agent at {url} answered health but not its API ({}); is it a Ferry agent?",
                e.message()
            ))
        }
    })?;
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
