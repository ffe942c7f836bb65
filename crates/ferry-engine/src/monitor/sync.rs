//! What the monitor copies from the agents into the inventory besides host
//! status: each domain's room, and each VM's state (and why its guest is
//! paused, if it is).

use std::collections::HashMap;

use ferry_api::engine::VmState;
use ferry_api::vm::{VmState as AgentVmState, VmStatus};
use uuid::Uuid;

use crate::db::VmRow;
use crate::engine::Engine;
use crate::error::Result;
use crate::monitor::check::HostCheck;

/// Records each domain's capacity and free space as one host sees them
/// (the SPM if it is up, else the first host up). Not an event: space
/// changes with every write.
pub(crate) async fn domain_space(engine: &Engine, checks: &[HostCheck]) -> Result<()> {
    let source = checks
        .iter()
        .filter(|c| c.is_up())
        .find(|c| matches!(&c.answer, Ok((h, _)) if h.spm))
        .or_else(|| checks.iter().find(|c| c.is_up()));
    let Some(c) = source else {
        return Ok(());
    };
    let infos = match engine.agents().client_for(&c.host).domains().await {
        Ok(infos) => infos,
        Err(e) => {
            tracing::debug!(
                "cannot read domain space from {}: {}",
                c.host.name,
                e.message()
            );
            return Ok(());
        }
    };
    let known: HashMap<Uuid, (u64, u64)> = engine
        .db()
        .domains()
        .await?
        .into_iter()
        .map(|d| (d.id, (d.capacity, d.free)))
        .collect();
    for info in infos {
        match known.get(&info.uuid) {
            Some(&(capacity, free)) if (capacity, free) != (info.capacity, info.free) => {
                engine
                    .db()
                    .set_domain_space(info.uuid, info.capacity, info.free)
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Records each VM's state as its host reports it; the VMs of a host that
/// is down are unknown. Every change is an event: a VM that went down by
/// itself is news.
pub(crate) async fn vm_states(engine: &Engine, checks: &[HostCheck]) -> Result<()> {
    let vms = engine.db().vms().await?;
    for c in checks {
        let reported: Option<HashMap<Uuid, &VmStatus>> = c
            .answer
            .as_ref()
            .ok()
            .map(|(_, list)| list.iter().map(|v| (v.id, v)).collect());
        for vm in vms.iter().filter(|v| v.host == c.host.id) {
            let state = match &reported {
                None => VmState::Unknown,
                Some(map) => match map.get(&vm.id).map(|s| s.state) {
                    Some(AgentVmState::Running) => VmState::Running,
                    Some(AgentVmState::Stopped) | None => VmState::Stopped,
                },
            };
            if let Some(map) = &reported {
                pause_changed(engine, vm, map.get(&vm.id).copied()).await;
            }
            let Some(before) = engine.db().set_vm_state(vm.id, state).await? else {
                continue;
            };
            let message = match (before, state) {
                (VmState::Running, VmState::Stopped) => {
                    format!("VM {} went down on host {}", vm.name, c.host.name)
                }
                (_, VmState::Unknown) => format!(
                    "VM {} is in an unknown state: its host {} is down",
                    vm.name, c.host.name
                ),
                (_, VmState::Running) => {
                    format!("VM {} is running on host {}", vm.name, c.host.name)
                }
                (_, VmState::Stopped) => {
                    format!("VM {} is stopped on host {}", vm.name, c.host.name)
                }
            };
            engine.events().record("vm", message, Some(vm.id)).await;
        }
    }
    Ok(())
}

/// Records why a VM is paused as its host reports it, with an event when
/// that changes: a guest paused on a full disk is news, and so is its
/// resume.
async fn pause_changed(engine: &Engine, vm: &VmRow, status: Option<&VmStatus>) {
    let now = status
        .filter(|s| s.state == AgentVmState::Running)
        .and_then(|s| s.paused.as_ref())
        .map(|p| p.detail.clone());
    let before = engine.set_vm_pause(vm.id, now.clone());
    let message = match (before, now) {
        (None, Some(why)) => format!("VM {} is {why}", vm.name),
        (Some(_), None) if status.is_some_and(|s| s.state == AgentVmState::Running) => {
            format!("VM {} runs again", vm.name)
        }
        _ => return,
    };
    engine.events().record("vm", message, Some(vm.id)).await;
}
