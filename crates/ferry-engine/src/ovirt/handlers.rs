//! The served requests, each a read of Ferry's inventory (or one move)
//! through `ops`, answered in oVirt's XML.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use ferry_api::engine::{Disk, MoveRequest, PaceMode};
use serde::Serialize;
use uuid::Uuid;

use crate::ops;
use crate::ovirt::fault::{xml_response, OvirtError, OvirtResult};
use crate::ovirt::search::Search;
use crate::ovirt::views::{self, Names};
use crate::ovirt::xml::{self, Link, Ref, API};
use crate::ovirt::Call;

/// The collections served, for the root's links and for telling a wrong
/// method (405) from an unknown path (404).
const COLLECTIONS: [&str; 4] = ["disks", "jobs", "storagedomains", "vms"];

/// Answers `method` on `path` (the segments after `/api`).
pub(crate) async fn route(
    call: &Call<'_>,
    method: &Method,
    path: &[&str],
) -> OvirtResult<Response> {
    if *method == Method::POST {
        return match path {
            ["disks", id, "move"] => move_disk(call, id).await,
            [first, ..] if COLLECTIONS.contains(first) => Err(not_allowed(method)),
            _ => Err(OvirtError::NotFound),
        };
    }
    if *method != Method::GET {
        return match path {
            [] => Err(not_allowed(method)),
            [first, ..] if COLLECTIONS.contains(first) => Err(not_allowed(method)),
            _ => Err(OvirtError::NotFound),
        };
    }
    match path {
        [] => root(),
        ["storagedomains"] => storage_domains(call).await,
        ["storagedomains", id] => storage_domain(call, id).await,
        ["storagedomains", id, "disks"] => domain_disks(call, id).await,
        ["disks"] => disks(call).await,
        ["disks", id] => disk(call, id).await,
        ["vms"] => vms(call).await,
        ["vms", id] => vm(call, id).await,
        ["vms", id, "diskattachments"] => attachments(call, id).await,
        ["vms", id, "diskattachments", disk] => attachment(call, id, disk).await,
        ["jobs"] => jobs(call).await,
        ["jobs", id] => job(call, id).await,
        ["jobs", id, "steps"] => steps(call, id).await,
        ["jobs", id, "steps", step] => one_step(call, id, step).await,
        _ => Err(OvirtError::NotFound),
    }
}

fn not_allowed(method: &Method) -> OvirtError {
    OvirtError::failed(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("The method {method} is not served on this path by Ferry: see docs/ovirt-api.md for what is."),
    )
}

/// 200 with `value` as the document `root`.
fn ok<T: Serialize>(root: &str, value: &T) -> OvirtResult<Response> {
    xml::render(root, value)
        .map(|body| xml_response(StatusCode::OK, body))
        .map_err(|e| {
            OvirtError::failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The answer could not be written as XML: {e}."),
            )
        })
}

/// An id in a path: oVirt's ids are UUIDs, so anything else names nothing.
fn id(text: &str) -> OvirtResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| OvirtError::NotFound)
}

/// The `search` query, checked against the fields a collection takes.
fn search(call: &Call<'_>, fields: &[&str]) -> OvirtResult<Search> {
    let text = call.query.get("search").map(String::as_str).unwrap_or("");
    Search::parse(text, fields)
        .map_err(|e| OvirtError::failed(StatusCode::BAD_REQUEST, format!("[Cannot search. {e}.]")))
}

/// `GET /`: the entry point, with links to what is served.
fn root() -> OvirtResult<Response> {
    let mut link = Vec::new();
    for c in COLLECTIONS {
        link.push(Link::new(c, format!("{API}/{c}")));
        link.push(Link::new(
            &format!("{c}/search"),
            format!("{API}/{c}?search={{query}}"),
        ));
    }
    ok(
        "api",
        &xml::Api {
            link,
            product_info: xml::ProductInfo {
                name: "Ferry".into(),
                vendor: "Ferry".into(),
                version: xml::Version {
                    build: 0,
                    full_version: format!("4.5.0 (Ferry {})", env!("CARGO_PKG_VERSION")),
                    major: 4,
                    minor: 5,
                    revision: 0,
                },
            },
            time: xml::time(now_ms()),
        },
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn storage_domains(call: &Call<'_>) -> OvirtResult<Response> {
    let s = search(call, &["name", "id"])?;
    let all = ops::domains::domains(call.engine)
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    let storage_domain = all
        .iter()
        .filter(|d| s.matches(by_name_or_id(&d.name, &d.id.to_string())))
        .map(views::domain)
        .collect();
    ok("storage_domains", &xml::StorageDomains { storage_domain })
}

async fn storage_domain(call: &Call<'_>, key: &str) -> OvirtResult<Response> {
    let d = ops::domains::domain(call.engine, &id(key)?.to_string())
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    ok("storage_domain", &views::domain(&d))
}

async fn domain_disks(call: &Call<'_>, key: &str) -> OvirtResult<Response> {
    let domain = id(key)?;
    ops::domains::domain(call.engine, &domain.to_string())
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    let all = all_disks(call).await?;
    let disk = all
        .iter()
        .filter(|d| d.domain == domain)
        .map(views::disk)
        .collect();
    ok("disks", &xml::Disks { disk })
}

async fn all_disks(call: &Call<'_>) -> OvirtResult<Vec<Disk>> {
    ops::disks::disks(call.engine)
        .await
        .map_err(|e| OvirtError::reading(&e))
}

/// A search's view of an object with a name and an id.
fn by_name_or_id<'a>(name: &'a str, id: &'a str) -> impl Fn(&str) -> Option<&'a str> {
    move |field| match field {
        "name" | "alias" => Some(name),
        "id" => Some(id),
        _ => None,
    }
}

async fn disks(call: &Call<'_>) -> OvirtResult<Response> {
    let s = search(call, &["name", "alias", "id"])?;
    let all = all_disks(call).await?;
    let disk = all
        .iter()
        .filter(|d| s.matches(by_name_or_id(&d.name, &d.id.to_string())))
        .map(views::disk)
        .collect();
    ok("disks", &xml::Disks { disk })
}

async fn disk(call: &Call<'_>, key: &str) -> OvirtResult<Response> {
    let d = ops::disks::disk(call.engine, &id(key)?.to_string())
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    ok("disk", &views::disk(&d))
}

async fn vms(call: &Call<'_>) -> OvirtResult<Response> {
    let s = search(call, &["name", "id"])?;
    let all = ops::vms::vms(call.engine)
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    let vm = all
        .iter()
        .filter(|v| s.matches(by_name_or_id(&v.name, &v.id.to_string())))
        .map(views::vm)
        .collect();
    ok("vms", &xml::Vms { vm })
}

async fn vm(call: &Call<'_>, key: &str) -> OvirtResult<Response> {
    let v = ops::vms::vm(call.engine, &id(key)?.to_string())
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    ok("vm", &views::vm(&v))
}

async fn attachments(call: &Call<'_>, key: &str) -> OvirtResult<Response> {
    let v = ops::vms::vm(call.engine, &id(key)?.to_string())
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    let disk_attachment = v
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| views::attachment(v.id, *d, i == 0))
        .collect();
    ok(
        "disk_attachments",
        &xml::DiskAttachments { disk_attachment },
    )
}

async fn attachment(call: &Call<'_>, key: &str, disk: &str) -> OvirtResult<Response> {
    let v = ops::vms::vm(call.engine, &id(key)?.to_string())
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    let disk = id(disk)?;
    let position = v
        .disks
        .iter()
        .position(|d| *d == disk)
        .ok_or(OvirtError::NotFound)?;
    ok(
        "disk_attachment",
        &views::attachment(v.id, disk, position == 0),
    )
}

/// Every name a job description may use: disks, domains and VMs.
async fn names(call: &Call<'_>) -> OvirtResult<Names> {
    let read = |e: crate::error::Error| OvirtError::reading(&e);
    let mut names = Names::default();
    for d in ops::disks::disks(call.engine).await.map_err(read)? {
        names.0.insert(d.id, d.name);
    }
    for d in ops::domains::domains(call.engine).await.map_err(read)? {
        names.0.insert(d.id, d.name);
    }
    for v in ops::vms::vms(call.engine).await.map_err(read)? {
        names.0.insert(v.id, v.name);
    }
    Ok(names)
}

async fn jobs(call: &Call<'_>) -> OvirtResult<Response> {
    let s = search(call, &["correlation_id", "id"])?;
    let all = ops::jobs::jobs(call.engine)
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    let names = names(call).await?;
    let job = all
        .iter()
        .filter(|j| {
            let id = j.id.to_string();
            let correlation = j.correlation_id.as_deref();
            s.matches(|field| match field {
                "id" => Some(id.as_str()),
                "correlation_id" => correlation,
                _ => None,
            })
        })
        .map(|j| views::job(j, &names))
        .collect();
    ok("jobs", &xml::Jobs { job })
}

async fn read_job(call: &Call<'_>, key: &str) -> OvirtResult<ferry_api::engine::Job> {
    ops::jobs::job(call.engine, &id(key)?.to_string())
        .await
        .map_err(|e| OvirtError::reading(&e))
}

async fn job(call: &Call<'_>, key: &str) -> OvirtResult<Response> {
    let j = read_job(call, key).await?;
    let names = names(call).await?;
    ok("job", &views::job(&j, &names))
}

async fn steps(call: &Call<'_>, key: &str) -> OvirtResult<Response> {
    let j = read_job(call, key).await?;
    ok(
        "steps",
        &xml::Steps {
            step: views::steps(&j),
        },
    )
}

async fn one_step(call: &Call<'_>, key: &str, step: &str) -> OvirtResult<Response> {
    let j = read_job(call, key).await?;
    let wanted = id(step)?.to_string();
    let s = views::steps(&j)
        .into_iter()
        .find(|s| s.id == wanted)
        .ok_or(OvirtError::NotFound)?;
    ok("step", &s)
}

/// The correlation id a request gives (`?correlation_id=` or a
/// `Correlation-Id` header).
fn correlation_id(call: &Call<'_>) -> Option<String> {
    call.query.get("correlation_id").cloned().or_else(|| {
        call.headers
            .get("correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    })
}

/// `POST /disks/{id}/move`: Ferry's move of that disk, live if its VM
/// runs, under the request's correlation id.
async fn move_disk(call: &Call<'_>, key: &str) -> OvirtResult<Response> {
    const ACTION: &str = "move Virtual Disk";
    let disk = ops::disks::disk(call.engine, &id(key)?.to_string())
        .await
        .map_err(|e| OvirtError::reading(&e))?;
    let action: xml::ActionRequest = if call.body.is_empty() {
        xml::ActionRequest::default()
    } else {
        let text = std::str::from_utf8(call.body).map_err(|_| {
            OvirtError::failed(
                StatusCode::BAD_REQUEST,
                "The request body is not UTF-8 text.",
            )
        })?;
        quick_xml::de::from_str(text).map_err(|e| {
            OvirtError::failed(
                StatusCode::BAD_REQUEST,
                format!("The request body is not an <action> document: {e}."),
            )
        })?
    };
    let choice = action.storage_domain.unwrap_or_default();
    let key = match (choice.id, choice.name) {
        (Some(id), _) if !id.trim().is_empty() => id,
        (_, Some(name)) if !name.trim().is_empty() => name,
        _ => {
            return Err(OvirtError::incomplete(
                "Action [storageDomain.id|name] required for move",
            ))
        }
    };
    let dst = ops::domains::domain(call.engine, key.trim())
        .await
        .map_err(|e| match e.kind() {
            ferry_api::ErrorKind::NotFound => OvirtError::failed(
                StatusCode::BAD_REQUEST,
                format!("[Cannot {ACTION}. Storage Domain {key} doesn't exist.]"),
            ),
            _ => OvirtError::reading(&e),
        })?;
    if dst.id == disk.domain {
        return Err(OvirtError::failed(
            StatusCode::BAD_REQUEST,
            format!(
                "[Cannot {ACTION}. The source and target storage domains are the same ({}).]",
                dst.name
            ),
        ));
    }
    if disk.locked_by.is_some() {
        return Err(locked(&disk));
    }
    let request = MoveRequest {
        to: dst.id.to_string(),
        bandwidth_mib_s: None,
        pace: PaceMode::default(),
        guest_share_pct: None,
        correlation_id: correlation_id(call),
    };
    let job = ops::disks::move_disk(call.engine, &disk.id.to_string(), request)
        .await
        .map_err(|e| match e.kind() {
            ferry_api::ErrorKind::Locked => locked(&disk),
            _ => OvirtError::refused(ACTION, &e),
        })?;
    ok(
        "action",
        &xml::ActionReply {
            run_async: action.run_async.unwrap_or(false),
            job: Ref::to("jobs", job.id),
            status: "complete",
            storage_domain: Ref::to("storagedomains", dst.id),
        },
    )
}

/// oVirt's refusal of an action on a locked disk.
fn locked(disk: &Disk) -> OvirtError {
    OvirtError::failed(
        StatusCode::CONFLICT,
        format!(
            "[Cannot move Virtual Disk. The following disks are locked: {}. Please try again in a few minutes.]",
            disk.name
        ),
    )
}
