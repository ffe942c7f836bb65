//! Defining, starting, stopping and re-attaching VMs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_api::vm::{OpenVolume, VmDefinition, VmDiskStatus, VmIo, VmState, VmStatus};
use ferry_qemu::{block, Accel, DirectBoot, DiskSpec, NodeNames, Vm, VmSpec};
use ferry_storage::DomainSet;
use uuid::Uuid;

use super::chain::{device_id, layer_of, open_chain};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// One VM: its definition, its QEMU handle while it runs, and a lock that
/// serialises the operations that change its block graph or process.
#[derive(Debug)]
pub(crate) struct VmEntry {
    def: Mutex<VmDefinition>,
    vm: Mutex<Option<Arc<Vm>>>,
    /// Held by start, stop and every block-graph verb, so two never
    /// interleave on one VM.
    pub(crate) ops: tokio::sync::Mutex<()>,
}

impl VmEntry {
    /// The definition as it is now.
    pub(crate) fn definition(&self) -> VmDefinition {
        lock(&self.def).clone()
    }

    /// The running QEMU, if any.
    pub(crate) fn running(&self) -> Option<Arc<Vm>> {
        lock(&self.vm).clone().filter(|vm| vm.is_alive())
    }

    fn set_running(&self, vm: Option<Arc<Vm>>) {
        *lock(&self.vm) = vm;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a plain assignment or clone, so a
    // poisoned lock still holds a consistent value.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The VMs this host runs.
#[derive(Debug)]
pub struct VmManager {
    dir: PathBuf,
    accel: Accel,
    entries: Mutex<BTreeMap<Uuid, Arc<VmEntry>>>,
}

impl VmManager {
    /// Reads the VM definitions left in `run_dir` and re-attaches to every
    /// VM whose QEMU still runs; VMs that died meanwhile are reported
    /// stopped.
    pub(crate) async fn load(run_dir: &Path, accel: Accel) -> Result<Self> {
        let dir = run_dir.join("vms");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let manager = VmManager {
            dir,
            accel,
            entries: Mutex::new(BTreeMap::new()),
        };
        let listing =
            std::fs::read_dir(&manager.dir).map_err(|e| Error::io("read", &manager.dir, e))?;
        for item in listing {
            let path = item.map_err(|e| Error::io("read", &manager.dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let def: VmDefinition = match serde_json::from_slice(&text) {
                Ok(def) => def,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring an unreadable VM definition: {e}");
                    continue;
                }
            };
            let entry = Arc::new(VmEntry {
                def: Mutex::new(def.clone()),
                vm: Mutex::new(None),
                ops: tokio::sync::Mutex::new(()),
            });
            let run = manager.vm_dir(def.id);
            if Vm::is_running_in(&run) {
                match Vm::attach(&def.name, &run).await {
                    Ok(vm) => {
                        tracing::info!(
                            vm = def.name,
                            pid = vm.pid(),
                            "re-attached to a running VM"
                        );
                        watch(&entry, Arc::new(vm));
                    }
                    Err(e) => tracing::warn!(vm = def.name, "could not re-attach: {e}"),
                }
            }
            lock(&manager.entries).insert(def.id, entry);
        }
        Ok(manager)
    }

    /// The accelerator VMs are started with.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    fn vm_dir(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn def_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub(crate) fn get(&self, id: Uuid) -> Result<Arc<VmEntry>> {
        lock(&self.entries).get(&id).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "VM {id} is not defined on this host; define it first (POST /v1/vms)"
            ))
        })
    }

    /// Defines a VM, or redefines a stopped one. The same definition again
    /// is a no-op; a different one for a running VM is refused.
    pub(crate) async fn define(&self, domains: &DomainSet, def: VmDefinition) -> Result<VmStatus> {
        validate(domains, &def)?;
        let existing = lock(&self.entries).get(&def.id).cloned();
        if let Some(entry) = existing {
            let _ops = entry.ops.lock().await;
            if entry.definition() == def {
                drop(_ops);
                return self.status(domains, def.id).await;
            }
            if entry.running().is_some() {
                return Err(Error::Conflict(format!(
                    "VM {} is running; stop it before changing its definition",
                    def.name
                )));
            }
            self.persist(&def)?;
            *lock(&entry.def) = def.clone();
        } else {
            if lock(&self.entries)
                .values()
                .any(|e| e.definition().name == def.name)
            {
                return Err(Error::Conflict(format!(
                    "a VM named {} is already defined on this host; choose another name",
                    def.name
                )));
            }
            self.persist(&def)?;
            lock(&self.entries).insert(
                def.id,
                Arc::new(VmEntry {
                    def: Mutex::new(def.clone()),
                    vm: Mutex::new(None),
                    ops: tokio::sync::Mutex::new(()),
                }),
            );
        }
        self.status(domains, def.id).await
    }

    /// Persists a changed definition.
    fn update(&self, entry: &VmEntry, change: impl FnOnce(&mut VmDefinition)) -> Result<()> {
        let mut def = entry.definition();
        change(&mut def);
        self.persist(&def)?;
        *lock(&entry.def) = def;
        Ok(())
    }

    /// Records where disks' leaves are now, as `(image, domain)` pairs,
    /// after a switch, a finalize or a merge, so the agent reopens each
    /// disk from there after a restart.
    pub(crate) fn set_disk_domains(
        &self,
        entry: &VmEntry,
        disks: impl IntoIterator<Item = (Uuid, Uuid)>,
    ) -> Result<()> {
        self.update(entry, |d| {
            for (image, domain) in disks {
                if let Some(vd) = d.disks.iter_mut().find(|vd| vd.image == image) {
                    vd.domain = domain;
                }
            }
        })
    }

    fn persist(&self, def: &VmDefinition) -> Result<()> {
        let text = serde_json::to_vec_pretty(def)
            .map_err(|e| Error::Internal(format!("cannot encode VM {}: {e}", def.id)))?;
        write_atomic(&self.def_path(def.id), &text)
    }

    /// Removes a stopped VM's definition. Unknown VMs are fine.
    pub(crate) async fn undefine(&self, id: Uuid) -> Result<()> {
        let Ok(entry) = self.get(id) else {
            return Ok(());
        };
        let _ops = entry.ops.lock().await;
        if entry.running().is_some() {
            return Err(Error::Conflict(format!(
                "VM {} is running; stop it before removing it",
                entry.definition().name
            )));
        }
        let path = self.def_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path, e)),
        }
        let _ = std::fs::remove_dir_all(self.vm_dir(id));
        lock(&self.entries).remove(&id);
        Ok(())
    }

    /// Starts a VM; a running VM is left as it is.
    pub(crate) async fn start(&self, domains: &DomainSet, id: Uuid) -> Result<VmStatus> {
        let entry = self.get(id)?;
        {
            let _ops = entry.ops.lock().await;
            if entry.running().is_none() {
                let def = entry.definition();
                let spec = self.spec(domains, &def)?;
                let vm = Arc::new(Vm::start(&spec).await?);
                tracing::info!(vm = def.name, pid = vm.pid(), "VM started");
                watch(&entry, vm);
            }
        }
        self.status(domains, id).await
    }

    /// Stops a VM; a stopped VM is fine.
    pub(crate) async fn stop(
        &self,
        domains: &DomainSet,
        id: Uuid,
        grace: Duration,
    ) -> Result<VmStatus> {
        let entry = self.get(id)?;
        {
            let _ops = entry.ops.lock().await;
            if let Some(vm) = entry.running() {
                vm.stop(grace).await?;
                entry.set_running(None);
                tracing::info!(vm = vm.name(), "VM stopped");
            }
        }
        self.status(domains, id).await
    }

    fn spec(&self, domains: &DomainSet, def: &VmDefinition) -> Result<VmSpec> {
        let mut disks = Vec::new();
        for disk in &def.disks {
            let chain = open_chain(domains, disk)?;
            disks.push(DiskSpec {
                device: device_id(disk.image),
                chain: chain.iter().map(layer_of).collect::<Result<_>>()?,
            });
        }
        let run_dir = self.vm_dir(def.id);
        Ok(VmSpec {
            name: def.name.clone(),
            memory_mib: def.memory_mib,
            cpus: def.cpus,
            accel: self.accel,
            disks,
            boot: def.boot.as_ref().map(|b| DirectBoot {
                kernel: b.kernel.clone(),
                initrd: b.initrd.clone(),
                append: b.append.clone(),
            }),
            serial_log: Some(run_dir.join("serial.log")),
            run_dir,
        })
    }

    /// Every VM's status.
    pub(crate) async fn list(&self, domains: &DomainSet) -> Result<Vec<VmStatus>> {
        let ids: Vec<Uuid> = lock(&self.entries).keys().copied().collect();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(s) = self.status(domains, id).await {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// A VM's state and, while it runs, the chain QEMU has open per disk.
    pub(crate) async fn status(&self, domains: &DomainSet, id: Uuid) -> Result<VmStatus> {
        let entry = self.get(id)?;
        let def = entry.definition();
        let vm = entry.running();
        let mut disks = Vec::new();
        for disk in &def.disks {
            let device = device_id(disk.image);
            let mut open_chain = Vec::new();
            if let Some(vm) = &vm {
                // A VM may die between the check and the query: then it
                // simply has no open chain.
                if let Ok(active) = block::active_node(vm.qmp(), &device).await {
                    if let Ok(nodes) = block::chain_of(vm.qmp(), &active).await {
                        let names = Self::known_nodes(domains, disk.image);
                        open_chain = nodes.iter().filter_map(|n| names.get(n).copied()).collect();
                    }
                }
            }
            disks.push(VmDiskStatus {
                image: disk.image,
                domain: disk.domain,
                device,
                open_chain,
            });
        }
        Ok(VmStatus {
            id,
            name: def.name.clone(),
            state: if vm.is_some() {
                VmState::Running
            } else {
                VmState::Stopped
            },
            pid: vm.as_ref().map(|v| v.pid()),
            disks,
            serial_log: self.vm_dir(id).join("serial.log"),
            paused: match &vm {
                Some(vm) => super::pause::pause_of(vm).await,
                None => None,
            },
            block_jobs: match &vm {
                Some(vm) => ferry_qemu::run_state::block_job_ids(vm.qmp())
                    .await
                    .unwrap_or_default(),
                None => Vec::new(),
            },
        })
    }

    /// The guest's I/O counts and times so far (QEMU's
    /// `query-blockstats`); refused for a VM that does not run.
    pub(crate) async fn io(&self, id: Uuid) -> Result<VmIo> {
        let entry = self.get(id)?;
        let vm = entry.running().ok_or_else(|| Error::VmNotRunning {
            name: entry.definition().name,
            action: "it has no I/O to report".into(),
        })?;
        Ok(ferry_qemu::io_stats::io_totals(vm.qmp()).await?)
    }

    /// Node names of every volume of `image` in every known domain, mapped
    /// back to (domain, volume).
    fn known_nodes(domains: &DomainSet, image: Uuid) -> HashMap<String, OpenVolume> {
        let mut map = HashMap::new();
        for domain in domains.iter() {
            for v in domain.volumes(image).unwrap_or_default() {
                let names = NodeNames::for_volume(domain.uuid(), v.id());
                map.insert(
                    names.format,
                    OpenVolume {
                        domain: domain.uuid(),
                        volume: v.id(),
                    },
                );
            }
        }
        map
    }

    /// The names of the VMs whose QEMU runs, for a caller about to stop
    /// them to say which.
    pub fn running_names(&self) -> Vec<String> {
        lock(&self.entries)
            .values()
            .filter_map(|e| e.running().map(|vm| vm.name().to_string()))
            .collect()
    }

    /// Stops every VM (`ferry up`'s own end, and tests' teardown; never a
    /// real agent's shutdown: VMs outlive their agent).
    pub async fn stop_all(&self, grace: Duration) {
        let entries: Vec<Arc<VmEntry>> = lock(&self.entries).values().cloned().collect();
        for entry in entries {
            let _ops = entry.ops.lock().await;
            if let Some(vm) = entry.running() {
                let _ = vm.stop(grace).await;
                entry.set_running(None);
            }
        }
    }
}

/// Remembers a running VM and forgets it when its QEMU exits: the agent's
/// notice that a VM died. While it runs, a pause on a failed disk request
/// is undone once the disk can take writes ([`super::pause`]).
fn watch(entry: &Arc<VmEntry>, vm: Arc<Vm>) {
    entry.set_running(Some(vm.clone()));
    super::pause::keep_resuming(vm.clone());
    let entry = Arc::downgrade(entry);
    tokio::spawn(async move {
        vm.exited().await;
        if let Some(entry) = entry.upgrade() {
            let mut current = lock(&entry.vm);
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &vm)) {
                tracing::warn!(vm = vm.name(), "VM's QEMU exited");
                *current = None;
            }
        }
    });
}

fn validate(domains: &DomainSet, def: &VmDefinition) -> Result<()> {
    let name_ok = !def.name.is_empty()
        && def.name.len() <= 64
        && def.name.starts_with(|c: char| c.is_ascii_alphabetic())
        && def
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(Error::BadRequest(format!(
            "VM name {:?} is not usable: use 1 to 64 letters, digits, '-' and '_', starting with a letter",
            def.name
        )));
    }
    if def.memory_mib < 16 || def.cpus == 0 || def.cpus > 64 {
        return Err(Error::BadRequest(
            "a VM needs at least 16 MiB of memory and 1 to 64 CPUs".into(),
        ));
    }
    let mut seen = HashSet::new();
    for disk in &def.disks {
        if !seen.insert(disk.image) {
            return Err(Error::BadRequest(format!(
                "disk {} is listed twice; a VM uses each disk once",
                disk.image
            )));
        }
        let Some(domain) = domains.get(disk.domain) else {
            return Err(Error::NotFound(format!(
                "storage domain {} of disk {} is not connected to this host; connect it first (POST /v1/domains/connect)",
                disk.domain, disk.image
            )));
        };
        ferry_storage::find_top(domain, disk.image)?;
    }
    if let Some(boot) = &def.boot {
        for (what, path) in [("kernel", &boot.kernel), ("initrd", &boot.initrd)] {
            if !path.is_absolute() || !path.is_file() {
                return Err(Error::BadRequest(format!(
                    "the {what} {} is not an absolute path to a file on this host",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}
