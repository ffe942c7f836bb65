//! Storage domains: create one (the first becomes the master, whose lease
//! is the SPM lease), list them, show one.

use std::path::Path;

use ferry_api::agent::{CreateDomain as AgentCreateDomain, DomainInfo};
use ferry_api::engine::{CreateDomain, Domain, HostStatus};
use uuid::Uuid;

use crate::db::codec::now_ms;
use crate::db::{DomainRow, HostRow};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::monitor::election;
use crate::ops::{resolve_domain, validate_name};

/// Creates a storage domain under `req.path` and connects it on every host
/// that is up.
///
/// The SPM creates it. The first domain is the exception: there is no SPM
/// before there is a master domain to hold its lease, so the engine
/// creates that one itself (it must see the same path as the hosts, as in
/// `ferry up` and the tests), has the first host that is up connect it,
/// and then elects the SPM on it.
pub async fn create_domain(engine: &Engine, req: CreateDomain) -> Result<Domain> {
    validate_name("storage domain", &req.name)?;
    check_path(&req.path)?;
    let (row, first) = {
        let _inventory = engine.inventory_lock().await;
        let db = engine.db();
        if db.domain_by_name_or_id(&req.name).await?.is_some() {
            return Err(Error::Conflict(format!(
                "there is already a storage domain named {}; choose another name",
                req.name
            )));
        }
        let up = hosts_up(engine).await?;
        let id = Uuid::new_v4();
        let first = db.master_domain().await?.is_none();
        let (made_by, info) = if first {
            bootstrap(engine, &req, id).await?
        } else {
            by_spm(engine, &req, id).await?
        };
        connect_on_others(engine, &req.name, &info, &up, made_by).await;
        let row = DomainRow {
            id,
            name: req.name.clone(),
            path: info.path.clone(),
            capacity: info.capacity,
            free: info.free,
            master: first,
            created: now_ms(),
        };
        db.insert_domain(&row).await?;
        engine
            .events()
            .record("domain", created_event(&row), Some(row.id))
            .await;
        (row, first)
    };
    if first {
        if let Err(e) = election::ensure_spm(engine).await {
            tracing::warn!("no SPM after creating the master domain: {}", e.full_text());
        }
    }
    domain_view(engine, &row).await
}

/// The hosts that will use the new domain. A domain no host can reach is
/// of no use, so with none up nothing is made.
async fn hosts_up(engine: &Engine) -> Result<Vec<HostRow>> {
    let up: Vec<_> = engine
        .db()
        .hosts()
        .await?
        .into_iter()
        .filter(|h| h.status == HostStatus::Up)
        .collect();
    if up.is_empty() {
        return Err(Error::Unavailable(
            "no host is up to create the storage domain on; add a host first (ferry host add)"
                .into(),
        ));
    }
    Ok(up)
}

/// Creates any domain but the first: only the SPM may write storage
/// metadata once there is one.
async fn by_spm(engine: &Engine, req: &CreateDomain, id: Uuid) -> Result<(Uuid, DomainInfo)> {
    let (spm, client) = engine.agents().spm_host().await?;
    let info = client
        .create_domain(&agent_request(req, id))
        .await
        .map_err(Error::agent(&spm.name))?;
    Ok((spm.id, info))
}

/// Creates the first (master) domain: no host can be SPM before a domain
/// exists, so the first host that is up creates it as a bootstrap (an
/// agent with no domain at all accepts that without the SPM role).
async fn bootstrap(engine: &Engine, req: &CreateDomain, id: Uuid) -> Result<(Uuid, DomainInfo)> {
    let (host, client) = engine.agents().first_up().await?;
    let info = client
        .create_domain(&agent_request(req, id))
        .await
        .map_err(Error::agent(&host.name))?;
    Ok((host.id, info))
}

/// The engine picks the domain's UUID, so it is the same in the inventory
/// and in the domain's own metadata whichever host makes it.
fn agent_request(req: &CreateDomain, id: Uuid) -> AgentCreateDomain {
    AgentCreateDomain {
        path: req.path.clone(),
        name: req.name.clone(),
        uuid: id,
    }
}

/// Connects the new domain on every other host that is up. A host that
/// cannot is an event, not a failure: the domain is already made, and
/// the hosts that reach it can use it.
async fn connect_on_others(
    engine: &Engine,
    name: &str,
    info: &DomainInfo,
    up: &[HostRow],
    made_by: Uuid,
) {
    for h in up.iter().filter(|h| h.id != made_by) {
        let client = engine.agents().client_for(h);
        if let Err(e) = client.connect_domain(&info.path).await {
            engine
                .events()
                .record(
                    "host",
                    format!(
                        "host {} cannot use the new storage domain {} at {}: {}",
                        h.name,
                        name,
                        info.path.display(),
                        e.message()
                    ),
                    Some(h.id),
                )
                .await;
        }
    }
}

/// The event log's sentence for a new domain: it says which one is the
/// master, since the SPM lease lives there.
fn created_event(row: &DomainRow) -> String {
    let role = if row.master { " (master)" } else { "" };
    format!(
        "storage domain {}{role} created at {}",
        row.name,
        row.path.display()
    )
}

/// An absolute path without `..`, as the agents require.
fn check_path(path: &Path) -> Result<()> {
    if !path.is_absolute() {
        return Err(Error::BadRequest(format!(
            "'{}' is not a usable directory for a storage domain: give an absolute path",
            path.display()
        )));
    }
    Ok(())
}

/// A domain as the API shows it.
pub async fn domain_view(engine: &Engine, row: &DomainRow) -> Result<Domain> {
    let disks = engine.db().disks_on_domain(row.id).await?;
    Ok(row.to_api(disks))
}

/// Every domain, oldest first.
pub async fn domains(engine: &Engine) -> Result<Vec<Domain>> {
    let mut out = Vec::new();
    for row in engine.db().domains().await? {
        out.push(domain_view(engine, &row).await?);
    }
    Ok(out)
}

/// One domain, by name or UUID.
pub async fn domain(engine: &Engine, key: &str) -> Result<Domain> {
    let row = resolve_domain(engine, key).await?;
    domain_view(engine, &row).await
}
