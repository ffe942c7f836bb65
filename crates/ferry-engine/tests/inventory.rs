//! Given one host, when its domains, disks, snapshots and a VM are created
//! through the REST API, then the inventory, the agent and the event log
//! agree on them.

mod common;

use common::*;
use ferry_api::engine::{CreateDisk, CreateVm, HostStatus, VmState};
use ferry_api::{Legality, VolumeFormat, VolumeRole};

const MIB: u64 = 1 << 20;

fn disk_request(name: &str, domain: &str, format: VolumeFormat) -> CreateDisk {
    CreateDisk {
        name: name.to_string(),
        domain: domain.to_string(),
        size: 16 * MIB,
        format,
        preallocated: false,
    }
}

fn vm_request(name: &str, disks: &[&str]) -> CreateVm {
    CreateVm {
        name: name.to_string(),
        disks: disks.iter().map(|d| d.to_string()).collect(),
        memory_mib: None,
        host: None,
        boot: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_its_domains_disks_snapshots_and_a_vm_are_recorded_and_logged() {
    let (_root_dir, root) = domain_root();
    let mut agent = TestAgent::start("host1").await;
    let e = TestEngine::start().await;
    let c = &e.client;

    // A host without domains is up but cannot be SPM yet.
    let host = e.add(&mut agent).await;
    assert_eq!(host.status, HostStatus::Up);
    assert!(!host.spm, "no domain, no lease, no SPM");

    // The first domain is the master, and the host becomes SPM on it.
    let d1 = e.create_domain("domain1", &root).await;
    assert!(d1.master);
    assert_eq!(d1.path, root.join(d1.id.to_string()));
    assert!(d1.path.join("dom_md/metadata").is_file());
    assert!(c.host("host1").await.expect("host").spm);
    let spm = agent.client.spm().await.expect("spm status");
    assert!(spm.spm);
    assert_eq!(spm.master_domain, Some(d1.id));

    // The second is made by the SPM, and is not the master.
    let d2 = e.create_domain("domain2", &root).await;
    assert!(!d2.master);
    let known: Vec<_> = agent
        .client
        .domains()
        .await
        .expect("agent domains")
        .into_iter()
        .map(|d| d.uuid)
        .collect();
    assert!(
        known.contains(&d1.id) && known.contains(&d2.id),
        "{known:?}"
    );
    assert!(d2.capacity > 0 && d2.free > 0);

    // A raw disk on domain1 (by name) and a qcow2 disk on domain2 (by UUID).
    let raw = c
        .create_disk(&disk_request("disk-raw", "domain1", VolumeFormat::Raw))
        .await
        .expect("a raw disk");
    assert_eq!(raw.domain, d1.id);
    assert_eq!(raw.size, 16 * MIB);
    assert_eq!(raw.volumes.len(), 1);
    let base = &raw.volumes[0];
    assert_eq!(
        (base.format, base.legality, base.voltype, base.parent),
        (VolumeFormat::Raw, Legality::Legal, VolumeRole::Leaf, None)
    );
    assert!(base.path.is_file(), "{}", base.path.display());
    let qcow = c
        .create_disk(&disk_request(
            "disk-qcow",
            &d2.id.to_string(),
            VolumeFormat::Qcow2,
        ))
        .await
        .expect("a qcow2 disk");
    assert_eq!(qcow.domain, d2.id);
    assert_eq!(qcow.volumes[0].format, VolumeFormat::Qcow2);
    // What each volume takes is known (a move's space check and the UI's
    // "will it fit" use it): next to nothing for a sparse raw file (qemu-img
    // writes its first block), the header and tables for an empty qcow2.
    assert!(base.allocated < MIB, "{base:?}");
    assert!(qcow.volumes[0].allocated > 0, "{:?}", qcow.volumes[0]);

    // A snapshot of a disk without a VM: a qcow2 leaf over the raw base.
    let snap = c.snapshot_disk("disk-raw").await.expect("a snapshot");
    assert_eq!(snap.volumes.len(), 2);
    assert_eq!(snap.volumes[0].id, base.id);
    assert_eq!(snap.volumes[0].voltype, VolumeRole::Internal);
    let leaf = &snap.volumes[1];
    assert_eq!(
        (leaf.format, leaf.voltype, leaf.parent),
        (VolumeFormat::Qcow2, VolumeRole::Leaf, Some(base.id))
    );

    // Names and UUIDs name the same disk; the domain lists its disks.
    assert_eq!(
        c.disk(&raw.id.to_string()).await.expect("by id"),
        c.disk("disk-raw").await.expect("by name")
    );
    let d1_now = c.domain("domain1").await.expect("domain1");
    assert_eq!(d1_now.disks, vec![raw.id]);

    // A VM on the raw disk, defined on the host, stopped.
    let vm = c
        .create_vm(&vm_request("vm1", &["disk-raw"]))
        .await
        .expect("a VM");
    assert_eq!(vm.host, host.id);
    assert_eq!(vm.state, VmState::Stopped);
    assert_eq!(vm.disks, vec![raw.id]);
    assert_eq!(vm.memory_mib, 256);
    let defined = agent.client.vm(vm.id).await.expect("defined on the host");
    assert_eq!(defined.disks[0].image, raw.id);
    assert_eq!(c.disk("disk-raw").await.expect("disk").vm, Some(vm.id));

    // A second VM cannot claim the same disk, and nothing of it is left.
    assert_refused(
        c.create_vm(&vm_request("vm2", &["disk-qcow", "disk-raw"]))
            .await,
        409,
        "disk disk-raw already belongs to VM vm1",
    );
    assert_eq!(c.vms().await.expect("vms").len(), 1);
    assert_eq!(c.disk("disk-qcow").await.expect("disk").vm, None);
    assert_eq!(agent.client.vms().await.expect("agent vms").len(), 1);

    // A snapshot of the stopped VM's disk: offline, three layers now.
    let snap2 = c
        .snapshot_disk("disk-raw")
        .await
        .expect("a second snapshot");
    assert_eq!(snap2.volumes.len(), 3);
    assert_eq!(snap2.volumes[2].parent, Some(leaf.id));
    assert_eq!(snap2.locked_by, None, "the snapshot's lock is released");

    // A poll changes none of it.
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("a poll");
    let h = c.host("host1").await.expect("host");
    assert!(h.status == HostStatus::Up && h.spm && h.error.is_none());
    assert!(h.last_seen.is_some());
    assert_eq!(c.vm("vm1").await.expect("vm").state, VmState::Stopped);

    let events = event_messages(&e).await;
    for what in [
        "host host1 added",
        "storage domain domain1 (master) created",
        "host host1 is now SPM",
        "storage domain domain2 created",
        "disk disk-raw created on storage domain domain1",
        "disk disk-qcow created on storage domain domain2",
        "snapshot of disk disk-raw taken (offline)",
        "VM vm1 created on host host1",
    ] {
        assert!(said(&events, what), "no event says {what:?}: {events:#?}");
    }
    let newest_first = c.events(Some(2)).await.expect("events");
    assert_eq!(newest_first.len(), 2);
    assert!(newest_first[0].id > newest_first[1].id);

    e.stop().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_vm_is_snapshotted_live_and_its_state_follows_start_and_stop() {
    let (_root_dir, root) = domain_root();
    let mut agent = TestAgent::start("host1").await;
    let e = TestEngine::start().await;
    let c = &e.client;
    e.add(&mut agent).await;
    e.create_domain("domain1", &root).await;
    let disk = c
        .create_disk(&disk_request("disk1", "domain1", VolumeFormat::Raw))
        .await
        .expect("a disk");
    let vm = c
        .create_vm(&vm_request("vm1", &["disk1"]))
        .await
        .expect("a VM");

    let started = c.start_vm("vm1").await.expect("start");
    assert_eq!(started.state, VmState::Running);
    let status = agent.client.vm(vm.id).await.expect("status");
    assert_eq!(status.state, ferry_api::vm::VmState::Running);

    // The live snapshot switches the running VM onto the new leaf.
    let snap = c.snapshot_disk("disk1").await.expect("a live snapshot");
    assert_eq!(snap.volumes.len(), 2);
    let leaf = snap.volumes[1].id;
    let status = agent.client.vm(vm.id).await.expect("status");
    assert_eq!(status.state, ferry_api::vm::VmState::Running);
    assert_eq!(status.disks[0].open_chain[0].volume, leaf, "{status:?}");
    assert_eq!(status.disks[0].image, disk.id);

    // Start is idempotent; the monitor agrees it runs.
    c.start_vm("vm1").await.expect("start again");
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("a poll");
    assert_eq!(c.vm("vm1").await.expect("vm").state, VmState::Running);

    // Forced: the VM has no OS to power down for the 30 s grace.
    let stopped = c.kill_vm(&vm.id.to_string()).await.expect("stop");
    assert_eq!(stopped.state, VmState::Stopped);
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("a poll");
    assert_eq!(c.vm("vm1").await.expect("vm").state, VmState::Stopped);

    let events = event_messages(&e).await;
    for what in [
        "VM vm1 started on host host1",
        "snapshot of disk disk1 taken (live)",
        "VM vm1 stopped on host host1",
    ] {
        assert!(said(&events, what), "no event says {what:?}: {events:#?}");
    }

    e.stop().await;
    agent.stop().await;
}
