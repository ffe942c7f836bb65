//! Cancelling a move, and what cannot be cancelled or started twice.
//!
//! Given an engine, two agents and a running VM whose disk has a chain of
//! two volumes holding data, with the guest writing the whole time, under
//! one boot of the guest:
//!
//! - when a move is held at `createVolumeCrossSD`, a second move of the
//!   same disk (by disk or by VM, CLI or REST) is refused with 409 naming
//!   the running job, and nothing changes;
//! - when a move is cancelled (`ferry job cancel`) while held at
//!   `createVolumeCrossSD`, `blockMigrate` or `cloneInternalVolumes`, or in
//!   the middle of a bandwidth-limited copy, then the job ends Cancelled,
//!   the VM still runs on domain1 with the chain it had, every layer reads
//!   as before, domain2 holds nothing of the disk and the disk is
//!   unlocked; `ferry job wait` on it exits non-zero saying so;
//! - when a move is at `finalizeBlockMigrate`, a cancel is refused with
//!   409 (CLI non-zero, with the reason) and the move completes after an
//!   engine restart;
//!
//! then, with the VM stopped, every write the guest saw acknowledged over
//! all of it is on the disk.
//!
//! And, with an engine that runs one move at a time, a second move waits
//! queued (making nothing), can be cancelled there, and a third starts
//! and completes when the first ends.

mod common;

use common::*;
use ferry_api::engine::{Job, JobState, MoveMode, MoveRequest, StepState, Vm};
use ferry_api::VolumeFormat;
use ferry_engine::ClientError as EngineClientError;
use ferry_testkit::guest::SerialLog;

/// Asserts a move cancelled at step `at` left everything as it was: the
/// steps up to `at` rolled back, the later ones never run.
async fn assert_rolled_back(
    cluster: &Cluster,
    job: &Job,
    at: &str,
    before: &[std::path::PathBuf],
    original: &ferry_api::engine::Disk,
    log: &mut SerialLog,
) {
    let what = format!("cancel at {at}");
    assert_eq!(job.state, JobState::Cancelled, "{what}: {job:#?}");
    assert!(job.error.is_none(), "{what}: {job:#?}");
    cluster.assert_no_task_running().await;
    let reached = LIVE_STEPS
        .iter()
        .position(|s| *s == at)
        .expect("a live step");
    for (i, step) in LIVE_STEPS.iter().enumerate() {
        let want = if i <= reached {
            StepState::RolledBack
        } else {
            StepState::Pending
        };
        assert_eq!(step_state(job, step), want, "{what}: {step}\n{job:#?}");
    }
    assert_eq!(step_state(job, "prepare"), StepState::Done);
    let d1 = cluster.domain("domain1").await;
    let now = cluster.disk_now("disk1").await;
    assert_eq!(now.domain, d1.id, "{what}: {now:#?}");
    assert!(now.locked_by.is_none(), "{what}: {now:#?}");
    assert_eq!(
        chain_shape(&now.volumes),
        chain_shape(&original.volumes),
        "{what}: the chain changed"
    );
    let left = cluster.files_of_disk_on("domain2", &now).await;
    assert!(left.is_empty(), "{what}: left on domain2: {left:?}");
    cluster.assert_internal_layers(before, &now);
    cluster.assert_vm_writing("vm1", log).await;
    // Waiting on a cancelled job is a failure for scripts.
    let out = cluster.cli(&["job", "wait", &job.id.to_string()]);
    let stderr = expect_failure(&out, "ferry job wait on a cancelled job");
    assert!(stderr.contains("cancelled"), "{stderr}");
}

/// The HTTP status of an engine's refusal.
fn status(e: &EngineClientError) -> Option<u16> {
    e.status().map(|s| s.as_u16())
}

/// Cancels `job` through the CLI (`--json` parsed).
fn cancel(cluster: &Cluster, job: &Job) {
    let (ok, asked): (bool, Job) = cluster.cli_json(&["job", "cancel", &job.id.to_string()]);
    assert!(ok, "{asked:#?}");
    assert_eq!(asked.id, job.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_cancelled_before_finalize_leaves_the_vm_where_it_was() {
    let mut cluster = Cluster::start_with(&[(HOLD, "createVolumeCrossSD")]).await;
    let original = cluster.disk("disk1", VolumeFormat::Qcow2, 2).await;
    let writer = writer();
    cluster.vm("vm1", &["disk1"], &writer).await;
    let before = cluster.save_layers(&original, "before");
    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok);
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_ready(WAIT).expect("the guest writes");
    more_acks(&mut log, 20);
    // (Good until the first engine restart, which moves it to a new port.)
    let c = cluster.client();

    // Held at createVolumeCrossSD: a second move is refused, naming the job.
    let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2"]);
    assert!(ok, "{job:#?}");
    assert_eq!(job.mode, MoveMode::Live);
    cluster
        .wait_step_running(job.id, "createVolumeCrossSD")
        .await;
    let locked = cluster.disk_now("disk1").await;
    assert_eq!(locked.locked_by, Some(job.id));
    let out = cluster.cli(&["disk", "move", "disk1", "--to", "domain2"]);
    let stderr = expect_failure(&out, "a second move of a locked disk");
    assert!(
        stderr.contains(&job.id.to_string()) && stderr.contains("409"),
        "the refusal should name the running job: {stderr}"
    );
    let out = cluster.cli(&["vm", "move", "vm1", "--to", "domain2", "--wait"]);
    let stderr = expect_failure(&out, "a VM move of a locked disk");
    assert!(stderr.contains(&job.id.to_string()), "{stderr}");
    let req = MoveRequest::new("domain2");
    let err = c
        .move_disk("disk1", &req)
        .await
        .expect_err("a second move over REST");
    assert_eq!(status(&err), Some(409), "{err}");
    assert!(err.message().contains(&job.id.to_string()), "{err}");
    let err = c
        .move_vm("vm1", &req)
        .await
        .expect_err("a VM move over REST");
    assert_eq!(status(&err), Some(409), "{err}");
    let jobs = c.jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 1, "a refused move made a job: {jobs:#?}");

    // ...and a cancel there undoes the move.
    cancel(&cluster, &job);
    let ended = cluster.wait_end(job.id).await;
    assert_rolled_back(
        &cluster,
        &ended,
        "createVolumeCrossSD",
        &before,
        &original,
        &mut log,
    )
    .await;

    // Cancel while held at blockMigrate, then at cloneInternalVolumes
    // (the VM writes to domain2 by then).
    for step in ["blockMigrate", "cloneInternalVolumes"] {
        cluster.hold_engine_at(step).await;
        let (ok, job): (bool, Job) =
            cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2"]);
        assert!(ok, "{job:#?}");
        cluster.wait_step_running(job.id, step).await;
        more_acks(&mut log, 5);
        cancel(&cluster, &job);
        let ended = cluster.wait_end(job.id).await;
        assert_rolled_back(&cluster, &ended, step, &before, &original, &mut log).await;
    }

    // Cancel in the middle of a copy limited to 1 MiB/s.
    cluster.restart_engine(&[]).await;
    let (ok, job): (bool, Job) = cluster.cli_json(&[
        "disk",
        "move",
        "disk1",
        "--to",
        "domain2",
        "--bandwidth",
        "1",
    ]);
    assert!(ok, "{job:#?}");
    let copying = cluster
        .wait_job_until(job.id, "a copy under way", |j| {
            j.step.name() == "cloneInternalVolumes" && j.done_bytes > 0
        })
        .await;
    assert!(copying.done_bytes < copying.total_bytes, "{copying:#?}");
    assert!(copying.cancellable);
    cancel(&cluster, &job);
    let ended = cluster.wait_end(job.id).await;
    assert_rolled_back(
        &cluster,
        &ended,
        "cloneInternalVolumes",
        &before,
        &original,
        &mut log,
    )
    .await;

    // At finalizeBlockMigrate a cancel is refused and the move completes.
    cluster.hold_engine_at("finalizeBlockMigrate").await;
    let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2"]);
    assert!(ok, "{job:#?}");
    let held = cluster
        .wait_step_running(job.id, "finalizeBlockMigrate")
        .await;
    assert!(!held.cancellable, "{held:#?}");
    let out = cluster.cli(&["job", "cancel", &job.id.to_string()]);
    let stderr = expect_failure(&out, "a cancel at finalizeBlockMigrate");
    assert!(
        stderr.contains("409") && stderr.contains("can no longer be cancelled"),
        "{stderr}"
    );
    let err = cluster
        .client()
        .cancel_job(job.id)
        .await
        .expect_err("a cancel over REST");
    assert_eq!(status(&err), Some(409), "{err}");
    cluster.restart_engine(&[]).await;
    let job = cluster.wait_end(job.id).await;
    assert_succeeded(&job);
    let d2 = cluster.domain("domain2").await;
    let now = cluster.disk_now("disk1").await;
    assert_eq!(now.domain, d2.id);
    assert!(now.locked_by.is_none());
    assert!(cluster.files_of_disk_on("domain1", &now).await.is_empty());
    cluster.assert_internal_layers(&before, &now);
    cluster.assert_vm_writing("vm1", &mut log).await;

    expect_success(&cluster.cli(&["vm", "stop", "vm1", "--force"]), "vm stop");
    log.poll();
    cluster.assert_all_layers(&before, &now, &writer, log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_beyond_the_engines_bound_wait_queued_and_start_as_others_end() {
    let cluster = Cluster::start_with(&[("FERRY_MAX_MOVES", "1")]).await;
    cluster
        .disk_sized("slow", VolumeFormat::Raw, 2, 64 * MIB, 24 * MIB)
        .await;
    let second = cluster.disk("second", VolumeFormat::Raw, 2).await;
    let third = cluster.disk("third", VolumeFormat::Qcow2, 2).await;
    let before = cluster.save_layers(&third, "before");

    // Given a move holding the engine's only place, copying at 1 MiB/s...
    let (ok, first): (bool, Job) = cluster.cli_json(&[
        "disk",
        "move",
        "slow",
        "--to",
        "domain2",
        "--bandwidth",
        "1",
    ]);
    assert!(ok, "{first:#?}");
    cluster
        .wait_job_until(first.id, "the first copy under way", |j| j.done_bytes > 0)
        .await;

    // ...a second move waits queued at prepare and makes nothing...
    let (ok, queued): (bool, Job) =
        cluster.cli_json(&["disk", "move", "second", "--to", "domain2"]);
    assert!(ok, "{queued:#?}");
    let queued = cluster
        .wait_job_until(queued.id, "the second move queued", |j| j.queued)
        .await;
    assert_eq!(queued.state, JobState::Running);
    assert!(
        queued
            .steps
            .iter()
            .filter(|s| s.name.name() != "prepare")
            .all(|s| s.state == StepState::Pending),
        "{queued:#?}"
    );
    assert!(cluster
        .files_of_disk_on("domain2", &second)
        .await
        .is_empty());
    let out = expect_success(&cluster.cli(&["job", "list"]), "job list");
    assert!(
        out.lines()
            .any(|l| l.contains(&queued.id.to_string()) && l.contains("queued")),
        "{out}"
    );

    // ...and is cancelled there with nothing to undo.
    expect_success(
        &cluster.cli(&["job", "cancel", &queued.id.to_string()]),
        "cancel of the queued move",
    );
    let cancelled = cluster.wait_end(queued.id).await;
    assert_job(&cancelled, JobState::Cancelled);
    let now = cluster.disk_now("second").await;
    assert!(now.locked_by.is_none(), "{now:#?}");
    assert_eq!(now.domain, cluster.domain("domain1").await.id);
    assert!(cluster.files_of_disk_on("domain2", &now).await.is_empty());

    // A third waits too, and starts and completes when the first ends.
    let (ok, third_job): (bool, Job) =
        cluster.cli_json(&["disk", "move", "third", "--to", "domain2"]);
    assert!(ok, "{third_job:#?}");
    cluster
        .wait_job_until(third_job.id, "the third move queued", |j| j.queued)
        .await;
    expect_success(
        &cluster.cli(&["job", "cancel", &first.id.to_string()]),
        "cancel of the first move",
    );
    assert_job(&cluster.wait_end(first.id).await, JobState::Cancelled);
    let done = cluster.wait_end(third_job.id).await;
    assert_succeeded(&done);
    assert!(!done.queued);
    let now = cluster.disk_now("third").await;
    assert_eq!(now.domain, cluster.domain("domain2").await.id);
    assert!(now.locked_by.is_none(), "{now:#?}");
    cluster.assert_internal_layers(&before, &now);
    let events = cluster.client().events(Some(50)).await.expect("events");
    assert!(
        events.iter().any(|e| e.message.contains("is queued")),
        "{events:#?}"
    );
}
