//! An engine that dies in the middle of a move picks it up again.
//!
//! Given an engine, two agents and a running VM whose disk has a chain of
//! two volumes holding data, with the guest writing the whole time:
//!
//! - when a live move is held at each of its steps in turn (the engine's
//!   `FERRY_TEST_HOLD_STEP` hook), the engine is killed with SIGKILL there
//!   and started again without the hook, then every job completes, the
//!   disk is on the destination with the chain it had, nothing of it is
//!   left on the source, it is unlocked, every layer reads as before and
//!   every write the guest saw acknowledged is on the disk. The disk goes
//!   back and forth between the two domains, one move per step, under one
//!   boot of the guest, so the final check covers every write of all six
//!   moves.
//! - when the engine is killed while a bandwidth-limited copy of 200 MiB
//!   is half done, then the restarted engine finishes the move, with the
//!   same checks.

mod common;

use common::*;
use ferry_api::engine::{Job, JobState, MoveMode, StepState, Vm, VmState};
use ferry_api::VolumeFormat;
use ferry_testkit::guest::WriterConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_killed_at_each_step_of_a_live_move_finishes_every_move() {
    let mut cluster = Cluster::start_with(&[(HOLD, LIVE_STEPS[0])]).await;
    let disk = cluster.disk("disk1", VolumeFormat::Raw, 2).await;
    let writer = writer();
    cluster.vm("vm1", &["disk1"], &writer).await;
    let before = cluster.save_layers(&disk, "before");
    let volume_ids: Vec<_> = disk.volumes.iter().map(|v| (v.id, v.format)).collect();

    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok);
    assert_eq!(vm.state, VmState::Running);
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_ready(WAIT).expect("the guest writes");
    more_acks(&mut log, 20);

    let (mut here, mut there) = ("domain1", "domain2");
    for (i, step) in LIVE_STEPS.iter().enumerate() {
        if i > 0 {
            cluster.hold_engine_at(step).await;
        }
        // Given a live move held at `step`, with the guest writing...
        let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", there]);
        assert!(ok, "{job:#?}");
        assert_eq!(job.mode, MoveMode::Live);
        assert_eq!(job.state, JobState::Running);
        let held = cluster.wait_step_running(job.id, step).await;
        for s in &held.steps {
            let want = match LIVE_STEPS.iter().position(|n| *n == s.name.name()) {
                None => StepState::Done, // prepare
                Some(p) if p < i => StepState::Done,
                Some(p) if p == i => StepState::Running,
                Some(_) => StepState::Pending,
            };
            assert_eq!(s.state, want, "held at {step}: {held:#?}");
        }
        more_acks(&mut log, 5);

        // ...when the engine dies there and comes back without the hook...
        cluster.restart_engine(&[]).await;
        let job = cluster.wait_end(job.id).await;

        // ...then the move completes, as if nothing had happened.
        assert_succeeded(&job);
        assert_eq!(job.mode, MoveMode::Live, "{job:#?}");
        cluster.assert_no_task_running().await;
        let (ok, shown): (bool, Job) = cluster.cli_json(&["job", "show", &job.id.to_string()]);
        assert!(ok);
        assert_eq!(shown.state, JobState::Succeeded);
        let dst = cluster.domain(there).await;
        let now = cluster.disk_now("disk1").await;
        assert_eq!(now.domain, dst.id, "killed at {step}: {now:#?}");
        assert!(now.locked_by.is_none(), "killed at {step}: {now:#?}");
        assert_eq!(
            now.volumes
                .iter()
                .map(|v| (v.id, v.format))
                .collect::<Vec<_>>(),
            volume_ids,
            "killed at {step}: the chain changed shape"
        );
        assert!(now.volumes.iter().all(|v| v.domain == dst.id), "{now:#?}");
        let left = cluster.files_of_disk_on(here, &now).await;
        assert!(
            left.is_empty(),
            "killed at {step}: left on {here}: {left:?}"
        );
        cluster.assert_internal_layers(&before, &now);
        cluster.assert_vm_writing("vm1", &mut log).await;
        std::mem::swap(&mut here, &mut there);
    }

    // Every write of the six moves is on the disk.
    expect_success(&cluster.cli(&["vm", "stop", "vm1", "--force"]), "vm stop");
    log.poll();
    let now = cluster.disk_now("disk1").await;
    cluster.assert_all_layers(&before, &now, &writer, log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_killed_in_the_middle_of_a_copy_finishes_the_move() {
    let mut cluster = Cluster::start().await;
    // 2 x 100 MiB of data, the writer above it.
    let disk = cluster
        .disk_sized("big", VolumeFormat::Raw, 2, 256 * MIB, 100 * MIB)
        .await;
    let writer = WriterConfig::new(240 * MIB, 8 * MIB);
    cluster.vm("vm-big", &["big"], &writer).await;
    let before = cluster.save_layers(&disk, "before");

    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm-big"]);
    assert!(ok);
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_ready(WAIT).expect("the guest writes");
    more_acks(&mut log, 20);

    // Given a move copying at 20 MiB/s (about ten seconds for the chain)...
    let (ok, job): (bool, Job) = cluster.cli_json(&[
        "disk",
        "move",
        "big",
        "--to",
        "domain2",
        "--bandwidth",
        "20",
    ]);
    assert!(ok, "{job:#?}");
    assert_eq!(job.bandwidth_mib_s, Some(20));
    let copying = cluster
        .wait_job_until(job.id, "a copy under way", |j| {
            j.step.name() == "cloneInternalVolumes" && j.done_bytes > 0
        })
        .await;
    assert!(
        copying.done_bytes < copying.total_bytes,
        "the copy was over before the kill: {copying:#?}"
    );

    // ...when the engine is killed in the middle of it and started again...
    cluster.restart_engine(&[]).await;
    let job = cluster.wait_end(job.id).await;

    // ...then the move completes with everything in place.
    assert_succeeded(&job);
    assert_eq!(job.done_bytes, job.total_bytes, "{job:#?}");
    cluster.assert_no_task_running().await;
    let d2 = cluster.domain("domain2").await;
    let now = cluster.disk_now("big").await;
    assert_eq!(now.domain, d2.id);
    assert!(now.locked_by.is_none());
    assert!(cluster.files_of_disk_on("domain1", &now).await.is_empty());
    cluster.assert_internal_layers(&before, &now);
    cluster.assert_vm_writing("vm-big", &mut log).await;

    expect_success(
        &cluster.cli(&["vm", "stop", "vm-big", "--force"]),
        "vm stop",
    );
    log.poll();
    cluster.assert_all_layers(&before, &now, &writer, log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_that_fails_after_the_switch_keeps_its_disk_locked_until_retried() {
    // Merge fails for good (the engine's FERRY_TEST_FAIL_STEP hook) as
    // long as the engine runs with the hook: the "cause" an operator fixes.
    let mut cluster = Cluster::start_with(&[(FAIL, "merge")]).await;
    let disk = cluster.disk("disk1", VolumeFormat::Raw, 2).await;
    let writer = writer();
    cluster.vm("vm1", &["disk1"], &writer).await;
    let before = cluster.save_layers(&disk, "before");
    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok);
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_ready(WAIT).expect("the guest writes");
    more_acks(&mut log, 20);

    // Given a live move whose merge fails after the switch...
    let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2"]);
    assert!(ok, "{job:#?}");
    let id = job.id.to_string();
    let failed = cluster.wait_end(job.id).await;

    // ...then the job has failed at merge, says how to go on, and the disk
    // stays locked with the VM running on the destination.
    assert_job(&failed, JobState::Failed);
    assert_eq!(failed.step.name(), "merge", "{failed:#?}");
    assert_eq!(step_state(&failed, "merge"), StepState::Failed);
    assert_eq!(step_state(&failed, "finalizeBlockMigrate"), StepState::Done);
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("after the switch") && error.contains(&format!("ferry job retry {id}")),
        "{error}"
    );
    assert!(!failed.cancellable);
    let locked = cluster.disk_now("disk1").await;
    assert_eq!(locked.locked_by, Some(job.id), "{locked:#?}");
    let refused = expect_failure(
        &cluster.cli(&["disk", "move", "disk1", "--to", "domain1"]),
        "a move of the locked disk",
    );
    assert!(refused.contains(&id), "{refused}");
    cluster.assert_vm_writing("vm1", &mut log).await;

    // A retry while the cause is still there runs merge again, which fails again.
    let (ok, again): (bool, Job) = cluster.cli_json(&["job", "retry", &id]);
    assert!(ok, "{again:#?}");
    let again = cluster.wait_end(job.id).await;
    assert_job(&again, JobState::Failed);
    assert_eq!(again.step.name(), "merge");
    let merge = again
        .steps
        .iter()
        .find(|s| s.name.name() == "merge")
        .expect("merge");
    assert_eq!(merge.attempts, 2, "{again:#?}");

    // When the cause is gone (the engine runs without the hook) and the
    // job is retried, it finishes: merge, cleanup, unlocked, data intact.
    cluster.restart_engine(&[]).await;
    expect_success(
        &cluster.cli(&["job", "retry", &id, "--wait"]),
        "job retry --wait",
    );
    let done = cluster.wait_end(job.id).await;
    assert_succeeded(&done);
    let d2 = cluster.domain("domain2").await;
    let now = cluster.disk_now("disk1").await;
    assert_eq!(now.domain, d2.id);
    assert!(now.locked_by.is_none(), "{now:#?}");
    assert!(now.volumes.iter().all(|v| v.domain == d2.id), "{now:#?}");
    assert_eq!(now.volumes.len(), disk.volumes.len(), "{now:#?}");
    assert!(cluster.files_of_disk_on("domain1", &now).await.is_empty());
    cluster.assert_internal_layers(&before, &now);
    cluster.assert_vm_writing("vm1", &mut log).await;

    // A job that succeeded, or one that did not fail past the switch, is
    // not retried.
    let refused = expect_failure(
        &cluster.cli(&["job", "retry", &id]),
        "retry of a succeeded job",
    );
    assert!(
        refused.contains("only a job that failed after the switch"),
        "{refused}"
    );

    expect_success(&cluster.cli(&["vm", "stop", "vm1", "--force"]), "vm stop");
    log.poll();
    cluster.assert_all_layers(&before, &now, &writer, log.acks());
}
