//! VMs: create (define on its host), list, show, start, stop, and move
//! all their disks together.

use std::collections::HashSet;
use std::sync::Arc;

use ferry_agent_client::AgentClient;
use ferry_api::engine::{CreateVm, HostStatus, Job, JobKind, MoveRequest, Vm, VmState};
use ferry_api::vm::{VmBoot, VmDefinition, VmDisk};
use ferry_api::ErrorKind;
use uuid::Uuid;

use crate::db::codec::now_ms;
use crate::db::{DiskRow, HostRow, VmRow};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::flow::{self, MoveSpec};
use crate::ops::{resolve_disk, resolve_domain, resolve_host, resolve_vm, validate_name};

/// Guest memory when the request gives none.
const DEFAULT_MEMORY_MIB: u64 = 256;

/// How long a stop waits for the guest to power down before QEMU quits.
const STOP_GRACE_SECS: u64 = 30;

/// Creates a VM: checks its disks exist and belong to no other VM, defines
/// it on its host (default: the first host that is up) and records it,
/// stopped.
pub async fn create_vm(engine: &Engine, req: CreateVm) -> Result<Vm> {
    let memory_mib = check_request(&req)?;
    let _inventory = engine.inventory_lock().await;
    if engine.db().vm_by_name_or_id(&req.name).await?.is_some() {
        return Err(Error::Conflict(format!(
            "there is already a VM named {}; choose another name",
            req.name
        )));
    }
    let disks = unowned_disks(engine, &req.disks).await?;
    let (host, client) = chosen_host(engine, req.host.as_deref()).await?;
    require_up(&host)?;
    let row = VmRow {
        id: Uuid::new_v4(),
        name: req.name.clone(),
        host: host.id,
        memory_mib,
        boot: req.boot.clone(),
        state: VmState::Stopped,
        created: now_ms(),
    };
    let def = definition(&row, disks.iter().map(|d| (d.id, d.domain)));
    client
        .define_vm(&def)
        .await
        .map_err(Error::agent(&host.name))?;
    let ids: Vec<Uuid> = disks.iter().map(|d| d.id).collect();
    if let Err(e) = engine.db().insert_vm(&row, &ids).await {
        // Not recorded, so not defined either: bad input changes nothing.
        let _ = client.undefine_vm(row.id).await;
        return Err(e);
    }
    engine
        .events()
        .record(
            "vm",
            format!("VM {} created on host {}", row.name, host.name),
            Some(row.id),
        )
        .await;
    vm_view(engine, &row).await
}

/// The checks that need nothing but the request come first, before the
/// inventory lock is taken: a bad request changes nothing and waits for
/// nobody. Returns the guest memory, the default filled in.
fn check_request(req: &CreateVm) -> Result<u64> {
    validate_vm_name(&req.name)?;
    if req.disks.is_empty() {
        return Err(Error::BadRequest(
            "a VM needs at least one disk: list them in 'disks'".into(),
        ));
    }
    let memory_mib = req.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB);
    if !(16..=MAX_MEMORY_MIB).contains(&memory_mib) {
        return Err(Error::BadRequest(format!(
            "{memory_mib} MiB of memory is out of range: give 16 to {MAX_MEMORY_MIB} MiB"
        )));
    }
    Ok(memory_mib)
}

/// The requested disks, in device order. A disk belongs to one VM: two
/// VMs writing one chain would corrupt it, and a move would take it from
/// under the other. Called under the inventory lock, so no other create
/// can take a disk between this check and the insert.
async fn unowned_disks(engine: &Engine, keys: &[String]) -> Result<Vec<DiskRow>> {
    let mut disks = Vec::new();
    let mut seen = HashSet::new();
    for key in keys {
        let d = resolve_disk(engine, key).await?;
        if !seen.insert(d.id) {
            return Err(Error::BadRequest(format!(
                "disk {} is listed twice; give each disk once",
                d.name
            )));
        }
        if let Some(owner) = engine.db().vm_of_disk(d.id).await? {
            let owner = engine
                .db()
                .vm(owner)
                .await?
                .map_or(owner.to_string(), |v| v.name);
            return Err(Error::Conflict(format!(
                "disk {} already belongs to VM {owner}; a disk belongs to one VM",
                d.name
            )));
        }
        disks.push(d);
    }
    Ok(disks)
}

/// The host the request names, or the first that is up: a VM needs a
/// host, and one that answers is the only useful default.
async fn chosen_host(engine: &Engine, key: Option<&str>) -> Result<(HostRow, AgentClient)> {
    match key {
        Some(key) => {
            let h = resolve_host(engine, key).await?;
            let c = engine.agents().client_for(&h);
            Ok((h, c))
        }
        None => engine.agents().first_up().await,
    }
}

/// VM names go into QEMU's command line and the agent's files: the agent
/// takes letters, digits, `-` and `_`, starting with a letter.
/// The most memory a VM may be given, MiB (1 TiB).
const MAX_MEMORY_MIB: u64 = 1 << 20;

fn validate_vm_name(name: &str) -> Result<()> {
    validate_name("VM", name)?;
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || name.contains('.') {
        return Err(Error::BadRequest(format!(
            "'{name}' is not a valid VM name: use letters, digits, '-' and '_', starting with a letter"
        )));
    }
    Ok(())
}

fn require_up(host: &HostRow) -> Result<()> {
    if host.status != HostStatus::Up {
        return Err(Error::Unavailable(format!(
            "host {} is down ({}); start its agent or choose another host",
            host.name,
            host.error.as_deref().unwrap_or("it does not answer")
        )));
    }
    Ok(())
}

/// The agent's definition of a VM whose disks are `(image, leaf domain)`.
fn definition(row: &VmRow, disks: impl Iterator<Item = (Uuid, Uuid)>) -> VmDefinition {
    VmDefinition {
        id: row.id,
        name: row.name.clone(),
        memory_mib: row.memory_mib,
        cpus: 1,
        disks: disks
            .map(|(image, domain)| VmDisk { image, domain })
            .collect(),
        boot: row.boot.as_ref().map(|b| VmBoot {
            kernel: b.kernel.clone(),
            initrd: b.initrd.clone(),
            append: b.append.clone(),
        }),
    }
}

/// The VM's definition with each disk where its chain's top is on storage
/// now (`flow::start_domain`: a move's new leaf included).
async fn current_definition(engine: &Engine, row: &VmRow) -> Result<VmDefinition> {
    let mut disks = Vec::new();
    for id in engine.db().vm_disks(row.id).await? {
        let d = engine.db().disk(id).await?.ok_or_else(|| {
            Error::Corrupt(format!(
                "VM {} uses disk {id}, which is not in the disks table",
                row.name
            ))
        })?;
        disks.push((d.id, flow::start_domain(engine, &d).await?));
    }
    Ok(definition(row, disks.into_iter()))
}

/// A VM as the API shows it.
pub async fn vm_view(engine: &Engine, row: &VmRow) -> Result<Vm> {
    let disks = engine.db().vm_disks(row.id).await?;
    let mut vm = row.to_api(disks);
    if vm.state == ferry_api::engine::VmState::Running {
        vm.paused = engine.vm_pause(vm.id);
    }
    Ok(vm)
}

/// Every VM, by name.
pub async fn vms(engine: &Engine) -> Result<Vec<Vm>> {
    let mut out = Vec::new();
    for row in engine.db().vms().await? {
        out.push(vm_view(engine, &row).await?);
    }
    Ok(out)
}

/// One VM, by name or UUID.
pub async fn vm(engine: &Engine, key: &str) -> Result<Vm> {
    let row = resolve_vm(engine, key).await?;
    vm_view(engine, &row).await
}

/// Starts a VM on its host. It is defined again first with its disks
/// where they really are (a disk moved while the VM was down, or in the
/// middle of a live move); a start that a move makes unsafe is refused
/// (409). A VM already running is left as it is.
pub async fn start_vm(engine: &Engine, key: &str) -> Result<Vm> {
    let row = resolve_vm(engine, key).await?;
    let (host, client) = engine.agents().host_of_vm(row.id).await?;
    require_up(&host)?;
    if !is_running(&client, &host, row.id).await? {
        let def = current_definition(engine, &row).await?;
        client
            .define_vm(&def)
            .await
            .map_err(Error::agent(&host.name))?;
        client
            .start_vm(row.id)
            .await
            .map_err(Error::agent(&host.name))?;
    }
    record_state(engine, &row, &host, VmState::Running, "started").await
}

/// Records a VM's new state, logs the change (only when it is one) and
/// answers the VM as the API shows it.
async fn record_state(
    engine: &Engine,
    row: &VmRow,
    host: &HostRow,
    state: VmState,
    what: &str,
) -> Result<Vm> {
    if engine.db().set_vm_state(row.id, state).await?.is_some() {
        engine
            .events()
            .record(
                "vm",
                format!("VM {} {what} on host {}", row.name, host.name),
                Some(row.id),
            )
            .await;
    }
    vm(engine, &row.id.to_string()).await
}

async fn is_running(client: &AgentClient, host: &HostRow, vm: Uuid) -> Result<bool> {
    match client.vm(vm).await {
        Ok(s) => Ok(s.state == ferry_api::vm::VmState::Running),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::agent(&host.name)(e)),
    }
}

/// Stops a VM: the guest is asked to power down, and QEMU quits after
/// [`STOP_GRACE_SECS`] if it has not.
pub async fn stop_vm(engine: &Engine, key: &str, force: bool) -> Result<Vm> {
    let row = resolve_vm(engine, key).await?;
    let (host, client) = engine.agents().host_of_vm(row.id).await?;
    require_up(&host)?;
    if is_running(&client, &host, row.id).await? {
        client
            .stop_vm(row.id, if force { 0 } else { STOP_GRACE_SECS })
            .await
            .map_err(Error::agent(&host.name))?;
    }
    record_state(engine, &row, &host, VmState::Stopped, "stopped").await
}

/// Starts moving every disk of a VM together.
pub async fn move_vm(engine: &Arc<Engine>, key: &str, req: MoveRequest) -> Result<Job> {
    super::check_move_request(&req)?;
    let row = resolve_vm(engine, key).await?;
    let dst = resolve_domain(engine, &req.to).await?;
    super::check_guest_share_paced(&req)?;
    let disks = engine.db().vm_disks(row.id).await?;
    flow::start_move(
        engine,
        MoveSpec {
            kind: JobKind::VmMove,
            disks,
            vm: Some(row.id),
            dst_domain: dst.id,
            bandwidth_mib_s: req.bandwidth_mib_s,
            pace: req.pace,
            guest_share_pct: req.guest_share_pct,
            correlation_id: req.correlation_id,
        },
    )
    .await
}
