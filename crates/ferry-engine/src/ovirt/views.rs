//! Ferry's objects as oVirt shows them: pure translations, no I/O, so the
//! handlers read Ferry's inventory once and these say it in oVirt's words.

use std::collections::HashMap;

use ferry_api::engine::{Disk, Domain, Job, JobState, MoveMode, Step, StepState, Vm, VmState};
use ferry_api::{Legality, VolumeFormat};
use uuid::Uuid;

use crate::ovirt::xml::{self, Actions, Link, Ref, API};

/// Names of things by id, for the sentences a job is described with.
#[derive(Debug, Default)]
pub(crate) struct Names(pub HashMap<Uuid, String>);

impl Names {
    fn of(&self, id: Uuid) -> String {
        self.0.get(&id).cloned().unwrap_or_else(|| id.to_string())
    }
}

/// A storage domain: a data domain on a POSIX file system (VDSM's layout).
pub(crate) fn domain(d: &Domain) -> xml::StorageDomain {
    let r = Ref::to("storagedomains", d.id);
    xml::StorageDomain {
        link: vec![Link::new("disks", format!("{}/disks", r.href))],
        href: r.href,
        id: r.id,
        name: d.name.clone(),
        available: d.free,
        used: d.capacity.saturating_sub(d.free),
        external_status: "ok",
        master: d.master,
        status: "active",
        storage: xml::Storage {
            kind: "posixfs",
            path: d.path.display().to_string(),
        },
        storage_format: "v5",
        kind: "data",
    }
}

/// oVirt's disk status: `locked` while a job holds it, `illegal` when a
/// volume of its chain is not usable, `ok` otherwise.
pub(crate) fn disk_status(d: &Disk) -> &'static str {
    if d.locked_by.is_some() {
        "locked"
    } else if d.volumes.iter().any(|v| v.legality != Legality::Legal) {
        "illegal"
    } else {
        "ok"
    }
}

/// The domains a disk's chain is on, base first: one, or two while a live
/// move has its new leaf on the destination (as oVirt lists both during
/// a live storage migration).
fn disk_domains(d: &Disk) -> Vec<Ref> {
    let mut ids: Vec<Uuid> = Vec::new();
    for v in &d.volumes {
        if !ids.contains(&v.domain) {
            ids.push(v.domain);
        }
    }
    if ids.is_empty() {
        ids.push(d.domain);
    }
    ids.into_iter()
        .map(|id| Ref::to("storagedomains", id))
        .collect()
}

/// A disk: an image on one storage domain (two during a live move), its
/// format its leaf's.
pub(crate) fn disk(d: &Disk) -> xml::Disk {
    let r = Ref::to("disks", d.id);
    let leaf = d.volumes.last();
    let cow = leaf.is_some_and(|v| v.format == VolumeFormat::Qcow2);
    let allocated: u64 = d.volumes.iter().map(|v| v.allocated).sum();
    xml::Disk {
        actions: Actions {
            link: vec![Link::new("move", format!("{}/move", r.href))],
        },
        href: r.href,
        id: r.id,
        name: d.name.clone(),
        alias: d.name.clone(),
        actual_size: allocated,
        content_type: "data",
        format: if cow { "cow" } else { "raw" },
        image_id: leaf.map(|v| v.id.to_string()).unwrap_or_default(),
        propagate_errors: false,
        provisioned_size: d.size,
        qcow_version: cow.then_some("qcow2_v3"),
        shareable: false,
        sparse: cow || allocated < d.size,
        status: disk_status(d),
        storage_type: "image",
        total_size: allocated,
        wipe_after_delete: false,
        storage_domains: xml::StorageDomainRefs {
            storage_domain: disk_domains(d),
        },
    }
}

/// oVirt's VM status.
fn vm_status(v: &Vm) -> &'static str {
    match v.state {
        VmState::Running if v.paused.is_some() => "paused",
        VmState::Running => "up",
        VmState::Stopped => "down",
        VmState::Unknown => "unknown",
    }
}

/// A VM with the host it runs on (or will start on).
pub(crate) fn vm(v: &Vm) -> xml::Vm {
    let r = Ref::to("vms", v.id);
    xml::Vm {
        link: vec![Link::new(
            "diskattachments",
            format!("{}/diskattachments", r.href),
        )],
        href: r.href,
        id: r.id,
        name: v.name.clone(),
        memory: v.memory_mib.saturating_mul(1 << 20),
        status: vm_status(v),
        host: Some(Ref::to("hosts", v.host)),
    }
}

/// Disk `disk` as attached to VM `vm` (virtio, the first one bootable).
pub(crate) fn attachment(vm: Uuid, disk: Uuid, first: bool) -> xml::DiskAttachment {
    xml::DiskAttachment {
        href: format!("{API}/vms/{vm}/diskattachments/{disk}"),
        id: disk.to_string(),
        active: true,
        bootable: first,
        interface: "virtio",
        pass_discard: false,
        read_only: false,
        uses_scsi_reservation: false,
        disk: Ref::to("disks", disk),
        vm: Ref::to("vms", vm),
    }
}

/// oVirt's job status.
fn job_status(state: JobState) -> &'static str {
    match state {
        JobState::Running | JobState::RollingBack => "started",
        JobState::Succeeded => "finished",
        JobState::Failed => "failed",
        JobState::Cancelled => "aborted",
    }
}

/// The sentence oVirt describes a disk move with.
pub(crate) fn job_description(j: &Job, names: &Names) -> String {
    let disks: Vec<String> = j.disks.iter().map(|d| names.of(*d)).collect();
    let noun = if disks.len() == 1 { "Disk" } else { "Disks" };
    let (src, dst) = (names.of(j.src_domain), names.of(j.dst_domain));
    match (j.mode, j.vm) {
        (MoveMode::Live, Some(vm)) => format!(
            "Migrating {noun} {} from {src} to {dst} of VM {}",
            disks.join(", "),
            names.of(vm)
        ),
        _ => format!("Moving {noun} {} from {src} to {dst}", disks.join(", ")),
    }
}

/// A job, described in oVirt's words.
pub(crate) fn job(j: &Job, names: &Names) -> xml::Job {
    let r = Ref::to("jobs", j.id);
    let last = j
        .steps
        .iter()
        .filter_map(|s| s.finished.or(s.started))
        .max()
        .unwrap_or(j.created)
        .max(j.finished.unwrap_or(0));
    xml::Job {
        link: vec![Link::new("steps", format!("{}/steps", r.href))],
        href: r.href,
        id: r.id,
        description: job_description(j, names),
        auto_cleared: true,
        external: false,
        last_updated: xml::time(last),
        start_time: xml::time(j.created),
        end_time: j.finished.map(xml::time),
        status: job_status(j.state),
    }
}

/// What each of Ferry's steps does, as a step description.
fn step_text(step: Step) -> &'static str {
    match step {
        Step::Prepare => "Validating the move and locking the disks",
        Step::CreateVolumeCrossSd => "Creating the new leaf volume on the destination",
        Step::BlockMigrate => "Switching the VM's writes to the destination",
        Step::CloneInternalVolumes => "Copying the disk's volumes",
        Step::FinalizeBlockMigrate => "Finalizing the migration",
        Step::Merge => "Merging the source leaf",
        Step::Switch => "Switching the disk to the destination",
        Step::Cleanup => "Removing the source volumes",
    }
}

/// The job's steps that have begun, in order, as oVirt lists them.
pub(crate) fn steps(j: &Job) -> Vec<xml::JobStep> {
    let job = Ref::to("jobs", j.id);
    j.steps
        .iter()
        .zip(0u32..)
        .filter(|(s, _)| !matches!(s.state, StepState::Pending | StepState::Skipped))
        .map(|(s, number)| {
            let id = xml::step_id(j.id, number);
            let progress = match s.state {
                StepState::Done => 100,
                StepState::Running if s.name == Step::CloneInternalVolumes && j.total_bytes > 0 => {
                    u8::try_from(j.done_bytes.saturating_mul(100) / j.total_bytes)
                        .unwrap_or(100)
                        .min(99)
                }
                _ => 0,
            };
            xml::JobStep {
                href: format!("{}/steps/{id}", job.href),
                id: id.to_string(),
                description: format!("{} ({})", step_text(s.name), s.name),
                end_time: s.finished.map(xml::time),
                external: false,
                number,
                progress,
                start_time: s.started.map(xml::time),
                status: match s.state {
                    StepState::Running | StepState::Pending => "started",
                    StepState::Done | StepState::Skipped => "finished",
                    StepState::Failed => "failed",
                    StepState::RolledBack => "aborted",
                },
                kind: match s.name {
                    Step::Prepare => "validating",
                    Step::Cleanup => "finalizing",
                    _ => "executing",
                },
                job: job.clone(),
            }
        })
        .collect()
}
