//! Moves of a VM that is not running, or stops running.
//!
//! Given an engine, two agents and VMs whose disks have chains of two
//! volumes holding data:
//!
//! - when the disk of a VM that is down is moved to domain2
//!   (`ferry disk move --wait --json`), then the job is a cold one
//!   (prepare, cloneInternalVolumes, switch, cleanup), it succeeds, every
//!   layer reads exactly as before, nothing is left on domain1, the disk is
//!   unlocked, and the VM then starts from domain2 and its guest writes;
//! - when a running VM's move is held at `blockMigrate`,
//!   `cloneInternalVolumes`, `finalizeBlockMigrate` or merge, the VM is
//!   stopped there (`vm stop --force`) and the engine restarted without
//!   the hook, then the move completes (as a cold move when the VM was down
//!   before the switch), it is not a failure, every layer reads as before,
//!   every write the guest saw acknowledged is on the disk, nothing is left
//!   on domain1 and the disk is unlocked.

mod common;

use common::*;
use ferry_api::engine::{Job, JobState, MoveMode, StepState, Vm, VmState};
use ferry_api::VolumeFormat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_vm_moves_cold_and_starts_from_the_destination() {
    let cluster = Cluster::start().await;
    let disk = cluster.disk("disk1", VolumeFormat::Raw, 2).await;
    cluster.vm("vm1", &["disk1"], &writer()).await;
    let before = cluster.save_layers(&disk, "before");

    let (ok, job): (bool, Job) =
        cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2", "--wait"]);
    assert!(ok, "{job:#?}");
    assert_succeeded(&job);
    assert_eq!(job.mode, MoveMode::Cold);
    cluster.assert_no_task_running().await;
    let names: Vec<&str> = job.steps.iter().map(|s| s.name.name()).collect();
    assert_eq!(
        names,
        ["prepare", "cloneInternalVolumes", "switch", "cleanup"],
        "{job:#?}"
    );
    assert_eq!(job.done_bytes, job.total_bytes, "{job:#?}");
    let d2 = cluster.domain("domain2").await;
    let now = cluster.disk_now("disk1").await;
    assert_eq!(now.domain, d2.id);
    assert!(now.locked_by.is_none());
    assert!(now.volumes.iter().all(|v| v.domain == d2.id), "{now:#?}");
    assert_eq!(
        now.volumes.iter().map(|v| v.id).collect::<Vec<_>>(),
        disk.volumes.iter().map(|v| v.id).collect::<Vec<_>>()
    );
    assert!(cluster.files_of_disk_on("domain1", &now).await.is_empty());
    let after = cluster.save_layers(&now, "after");
    for (i, (a, b)) in before.iter().zip(&after).enumerate() {
        if let Err(e) = same_bytes(a, b, None) {
            panic!("layer {i} changed in the cold move: {e}");
        }
    }

    // It starts from domain2 alone.
    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok);
    assert_eq!(vm.state, VmState::Running);
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_for_acks(20, WAIT)
        .expect("the guest writes from domain2");
    expect_success(&cluster.cli(&["vm", "stop", "vm1", "--force"]), "vm stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_stopped_in_the_middle_of_a_move_still_moves() {
    let mut cluster = Cluster::start().await;
    let steps = [
        "blockMigrate",
        "cloneInternalVolumes",
        "finalizeBlockMigrate",
        "merge",
    ];
    for (n, step) in steps.iter().enumerate() {
        let (disk_name, vm_name) = (format!("disk{n}"), format!("vm{n}"));
        let disk = cluster.disk(&disk_name, VolumeFormat::Raw, 2).await;
        let writer = writer();
        cluster.vm(&vm_name, &[&disk_name], &writer).await;
        let before = cluster.save_layers(&disk, "before");
        let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", &vm_name]);
        assert!(ok);
        let mut log = cluster.serial_log(vm.id).await;
        log.wait_ready(WAIT).expect("the guest writes");
        more_acks(&mut log, 20);

        // Given a live move held at `step`, when the VM stops there...
        cluster.hold_engine_at(step).await;
        let (ok, job): (bool, Job) = cluster.cli_json(&["vm", "move", &vm_name, "--to", "domain2"]);
        assert!(ok, "{job:#?}");
        assert_eq!(job.mode, MoveMode::Live);
        cluster.wait_step_running(job.id, step).await;
        more_acks(&mut log, 10);
        let (ok, stopped): (bool, Vm) = cluster.cli_json(&["vm", "stop", &vm_name, "--force"]);
        assert!(ok);
        assert_eq!(stopped.state, VmState::Stopped);
        log.poll();
        cluster.restart_engine(&[]).await;

        // ...then the move completes.
        let out = cluster.cli(&["job", "wait", &job.id.to_string(), "--json"]);
        let stdout = expect_success(&out, &format!("ferry job wait (VM stopped at {step})"));
        let job: Job = serde_json::from_str(&stdout).expect("the job as JSON");
        assert_eq!(
            job.state,
            JobState::Succeeded,
            "stopped at {step}: {job:#?}"
        );
        assert!(job.error.is_none(), "{job:#?}");
        cluster.assert_no_task_running().await;
        if *step == "blockMigrate" {
            // Down before the switch: the rest is a cold move.
            assert_eq!(job.mode, MoveMode::Cold, "{job:#?}");
            assert_steps(
                &job,
                &[
                    ("createVolumeCrossSD", StepState::RolledBack),
                    ("blockMigrate", StepState::Skipped),
                    ("cloneInternalVolumes", StepState::Done),
                    ("finalizeBlockMigrate", StepState::Done),
                    ("merge", StepState::Skipped),
                    ("cleanup", StepState::Done),
                ],
            );
        } else {
            assert_succeeded(&job);
        }
        let d2 = cluster.domain("domain2").await;
        let now = cluster.disk_now(&disk_name).await;
        assert_eq!(now.domain, d2.id, "stopped at {step}: {now:#?}");
        assert!(now.locked_by.is_none());
        assert!(now.volumes.iter().all(|v| v.domain == d2.id), "{now:#?}");
        let left = cluster.files_of_disk_on("domain1", &now).await;
        assert!(
            left.is_empty(),
            "stopped at {step}: left on domain1: {left:?}"
        );
        cluster.assert_all_layers(&before, &now, &writer, log.acks());
    }
}
