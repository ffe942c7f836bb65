//! A move never loses a guest write when the VM or its host misbehaves in
//! the middle of it.
//!
//! Given an engine, two agents and a running VM whose disk has a chain of
//! three volumes holding data, with the guest writing and every
//! acknowledged write checked at the end:
//!
//! - when the VM is stopped and started again while a live move copies
//!   its chain, then it opens the chain as it is on storage (the move's
//!   new leaf on the destination, over the source), sees every write it
//!   made before, and the move completes live;
//! - when the VM's agent does not answer (SIGSTOP), then a move of its
//!   disk is refused (503) and leaves nothing behind, instead of going
//!   cold under a guest that may be writing; once the agent answers again
//!   the move goes live;
//! - when the engine dies right after `blockMigrate` switched the VM to
//!   its new leaf (before it recorded so), and the VM is stopped
//!   meanwhile, then the restarted engine folds what the guest wrote to
//!   the new leaf back into the chain and finishes cold: nothing the guest
//!   wrote is lost.

mod common;

use std::time::Duration;

use common::*;
use ferry_api::engine::{Disk, Job, JobState, MoveMode, Vm, VmState};

use ferry_testkit::guest::{self, Ack};

/// The engine's test hook that kills it right after a step's work.
const CRASH_AFTER: &str = "FERRY_TEST_CRASH_AFTER";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_restarted_in_the_middle_of_a_live_move_opens_its_true_chain() {
    let mut cluster = Cluster::start_with(&[(HOLD, "cloneInternalVolumes")]).await;
    let Writing {
        disk,
        before,
        vm,
        mut log,
        cfg,
    } = cluster.writing_vm().await;
    let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2"]);
    assert!(ok, "{job:#?}");
    assert_eq!(job.mode, MoveMode::Live);
    cluster
        .wait_step_running(job.id, "cloneInternalVolumes")
        .await;
    // These writes go to the move's new leaf on domain2.
    more_acks(&mut log, 10);
    let first_boot: Vec<Ack> = log.acks().to_vec();

    // The inventory shows the disk as it is on storage: its chain's top is
    // the new leaf on domain2 over the source, and the copies being made
    // on domain2 are listed outside the chain.
    let dst = cluster.domain("domain2").await;
    let src = cluster.domain("domain1").await;
    let (ok, shown): (bool, Disk) = cluster.cli_json(&["disk", "show", "disk1"]);
    assert!(ok, "{shown:#?}");
    let top = shown.volumes.last().expect("a chain");
    assert_eq!(top.domain, dst.id, "{shown:#?}");
    assert!(
        shown.volumes[..shown.volumes.len() - 1]
            .iter()
            .all(|v| v.domain == src.id),
        "{shown:#?}"
    );
    assert_eq!(shown.volumes.len(), disk.volumes.len() + 1, "{shown:#?}");
    assert!(!shown.outside_chain.is_empty(), "{shown:#?}");
    for copy in &shown.outside_chain {
        assert_eq!(copy.domain, dst.id, "{shown:#?}");
        assert!(
            disk.volumes.iter().any(|v| v.id == copy.id),
            "not a copy of the chain: {shown:#?}"
        );
    }

    // When the VM is stopped in the middle of the move, the top of its
    // chain on storage is the move's new leaf on domain2, and it holds
    // (through its parents) every write of the first boot...
    cluster.stop_now();
    let on_dst = cluster
        .host1
        .client()
        .image_volumes(dst.id, disk.id)
        .await
        .expect("the disk's volumes on domain2");
    let new_leaf = on_dst
        .iter()
        .find(|v| v.parent_domain == Some(src.id))
        .expect("the move's new leaf over the source");
    let top = cluster.lab.root().join("first-boot.raw");
    guest::guest_visible_raw(&new_leaf.path, &top);
    let check = guest::verify_acked_writes(&top, &cfg, &first_boot)
        .unwrap_or_else(|e| panic!("the first boot's writes are not in the true chain: {e}"));
    assert!(check.slots_checked > 0);

    // ...then the VM started again opens that chain, not the stale source.
    let (ok, started): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok, "{started:#?}");
    assert_eq!(started.state, VmState::Running);
    let status = cluster.host2.client().vm(vm.id).await.expect("VM status");
    let opened = status.disks[0].open_chain.first().expect("an open chain");
    assert_eq!(
        (opened.domain, opened.volume),
        (dst.id, new_leaf.volume),
        "the VM opened a stale chain: {status:#?}"
    );
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_ready(WAIT).expect("the guest writes again");
    more_acks(&mut log, 5);

    // The engine carries on (without the hook): the move completes live,
    // with every write of the second boot.
    cluster.restart_engine(&[]).await;
    let job = cluster.wait_end(job.id).await;
    assert_succeeded(&job);
    assert_eq!(job.mode, MoveMode::Live, "{job:#?}");
    more_acks(&mut log, 5);
    cluster.stop_now();
    let after = cluster.disk_now("disk1").await;
    assert_eq!(after.domain, dst.id);
    assert!(after.locked_by.is_none(), "{after:#?}");
    assert!(after.outside_chain.is_empty(), "{after:#?}");
    assert_no_leftovers(&cluster, &after).await;
    cluster.assert_all_layers(&before, &after, &cfg, log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_is_refused_while_the_vms_host_does_not_answer_and_goes_live_after() {
    let cluster = Cluster::start().await;
    let Writing {
        before,
        mut log,
        cfg,
        ..
    } = cluster.writing_vm().await;

    // When the VM's agent is frozen, a move of its disk is refused...
    cluster.host2.pause();
    let out = cluster.cli(&["disk", "move", "disk1", "--to", "domain2"]);
    cluster.host2.resume();
    let said = expect_failure(&out, "a move while the VM's host does not answer");
    assert!(said.contains("does not answer"), "{said}");
    assert!(said.contains("503"), "{said}");
    // ...and leaves nothing behind: no job, no lock.
    let jobs = cluster.client().jobs().await.expect("jobs");
    assert!(jobs.is_empty(), "a refused move left a job: {jobs:#?}");
    let now = cluster.disk_now("disk1").await;
    assert!(now.locked_by.is_none(), "{now:#?}");

    // Once the agent answers again, the move is live and keeps every write.
    more_acks(&mut log, 5);
    let (ok, job): (bool, Job) =
        cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2", "--wait"]);
    assert!(ok, "{job:#?}");
    let job = cluster.wait_end(job.id).await;
    assert_succeeded(&job);
    assert_eq!(job.mode, MoveMode::Live, "{job:#?}");
    more_acks(&mut log, 5);
    cluster.stop_now();
    let after = cluster.disk_now("disk1").await;
    assert_no_leftovers(&cluster, &after).await;
    cluster.assert_all_layers(&before, &after, &cfg, log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_an_unrecorded_switch_survive_a_vm_that_stopped_meanwhile() {
    let mut cluster = Cluster::start_with(&[(CRASH_AFTER, "blockMigrate")]).await;
    let Writing {
        before,
        vm,
        mut log,
        cfg,
        ..
    } = cluster.writing_vm().await;
    let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2"]);
    assert!(ok, "{job:#?}");
    assert!(
        cluster.engine.wait_exit(Duration::from_secs(60)).await,
        "the engine did not die after blockMigrate"
    );
    // The guest writes to its new leaf; the engine never recorded the
    // switch. Then the VM stops (through its agent: the engine is down).
    more_acks(&mut log, 10);
    cluster
        .host2
        .client()
        .stop_vm(vm.id, 0)
        .await
        .expect("stop the VM");

    // When the engine comes back, the move finds the VM down...
    cluster.restart_engine(&[]).await;
    let job = cluster.wait_end(job.id).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    assert_eq!(job.mode, MoveMode::Cold, "{job:#?}");

    // ...and every write the guest saw acknowledged is on the moved disk.
    let after = cluster.disk_now("disk1").await;
    assert_eq!(after.domain, cluster.domain("domain2").await.id);
    assert!(after.locked_by.is_none(), "{after:#?}");
    assert_no_leftovers(&cluster, &after).await;
    cluster.assert_all_layers(&before, &after, &cfg, log.acks());
    let (ok, again): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok, "{again:#?}");
    assert_eq!(again.state, VmState::Running);
}

/// Nothing of the disk is left on the domain it left.
async fn assert_no_leftovers(cluster: &Cluster, after: &Disk) {
    let other = if after.domain == cluster.domain("domain1").await.id {
        "domain2"
    } else {
        "domain1"
    };
    let left = cluster.files_of_disk_on(other, after).await;
    assert!(left.is_empty(), "left on {other}: {left:#?}");
}
