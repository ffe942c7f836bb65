//! Moves to a destination without room.
//!
//! Given an engine, two agents and a running VM whose disk has a chain of
//! two volumes holding 16 MiB of data, with the guest writing, and two
//! storage domains created through the engine on small `tmpfs` mounts:
//!
//! - when the disk is moved to a domain smaller than its chain, then the
//!   move is refused up front (507; the CLI exits non-zero with the reason)
//!   and nothing is created on that domain, no job is left, the disk is
//!   not locked;
//! - when the disk is moved to a domain with room for the chain at the
//!   start, which then fills up while the chain is being copied, then the
//!   job ends Failed with a reason about space, rolled back: the VM still
//!   runs on domain1 with the chain it had, every layer reads as before,
//!   nothing of the disk is on the full domain, the disk is unlocked, and
//!   `ferry job wait --json` exits non-zero with the job and the reason;
//!
//! then, with the VM stopped, every acknowledged write is on the disk.
//!
//! Mounting needs root: where it is refused, the test prints a note and
//! passes without checking anything.

mod common;

use common::*;
use ferry_api::engine::{Domain, Job, JobState, StepState, Vm};
use ferry_api::VolumeFormat;
use ferry_testkit::guest::WriterConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_a_domain_without_room_is_refused_or_rolled_back() {
    let Some(small) = Tmpfs::mount(8 * MIB) else {
        return;
    };
    let Some(filling) = Tmpfs::mount(64 * MIB) else {
        return;
    };
    let cluster = Cluster::start().await;
    for (name, fs) in [("small", &small), ("filling", &filling)] {
        let path = fs.path().to_str().expect("a UTF-8 path");
        let (ok, d): (bool, Domain) = cluster.cli_json(&["domain", "create", name, "--path", path]);
        assert!(ok, "{d:#?}");
    }
    let disk = cluster.disk("disk1", VolumeFormat::Raw, 2).await;
    // A small writer region: the guest soon has every block of it
    // allocated in whatever leaf it writes, so a full domain under that
    // leaf does not stop the guest (QEMU pauses a VM on ENOSPC).
    let writer = WriterConfig::new(48 * MIB, 256 << 10);
    cluster.vm("vm1", &["disk1"], &writer).await;
    let before = cluster.save_layers(&disk, "before");
    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok);
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_ready(WAIT).expect("the guest writes");
    more_acks(&mut log, 20);

    // Too small for the chain: refused before anything is made.
    let out = cluster.cli(&["disk", "move", "disk1", "--to", "small", "--wait"]);
    let stderr = expect_failure(&out, "a move to a domain too small");
    assert!(
        stderr.contains("507") && stderr.contains("free") && stderr.contains("small"),
        "{stderr}"
    );
    let err = cluster
        .client()
        .move_disk("disk1", &ferry_api::engine::MoveRequest::new("small"))
        .await
        .expect_err("a move to a domain too small, over REST");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(507), "{err}");
    let small_domain = cluster.domain("small").await;
    assert!(
        files_under(&small_domain.path.join("images")).is_empty(),
        "something was created on the small domain"
    );
    assert!(cluster.client().jobs().await.expect("jobs").is_empty());
    let now = cluster.disk_now("disk1").await;
    assert!(now.locked_by.is_none());
    assert_eq!(chain_shape(&now.volumes), chain_shape(&disk.volumes));
    cluster.assert_vm_writing("vm1", &mut log).await;

    // Room at the start, full in the middle of the copy (1 MiB/s), the
    // CLI following the move to its end.
    let follower = cluster.cli_spawn(&[
        "disk",
        "move",
        "disk1",
        "--to",
        "filling",
        "--bandwidth",
        "1",
        "--wait",
        "--json",
    ]);
    let locked = cluster
        .wait_disk_until("disk1", "locked by the move", |d| d.locked_by.is_some())
        .await;
    let job_id = locked.locked_by.expect("the move's job");
    let copying = cluster
        .wait_job_until(job_id, "a copy under way", |j| {
            j.step.name() == "cloneInternalVolumes" && j.done_bytes > 0
        })
        .await;
    assert!(copying.done_bytes < copying.total_bytes, "{copying:#?}");
    // The guest has rewritten its whole region in the new leaf on the
    // filling domain by now (256 KiB) and keeps writing there.
    more_acks(&mut log, 2 * usize::try_from(writer.slots()).expect("fits"));
    filling.fill_leaving(MIB);
    let out = follower.wait_with_output().expect("the CLI's output");
    let stderr = expect_failure(&out, "a move that ran out of room");
    let job: Job = serde_json::from_slice(&out.stdout).expect("the job as JSON");
    assert_eq!(job.id, job_id);
    assert_eq!(job.state, JobState::Failed, "{job:#?}");
    cluster.assert_no_task_running().await;
    let reason = job.error.clone().expect("a reason");
    eprintln!("the move that ran out of room failed with: {reason}");
    assert!(reason.to_lowercase().contains("space"), "{reason}");
    assert!(
        stderr.contains(&reason) && stderr.contains("failed"),
        "{stderr}"
    );
    assert_steps(
        &job,
        &[
            ("createVolumeCrossSD", StepState::RolledBack),
            ("blockMigrate", StepState::RolledBack),
            ("finalizeBlockMigrate", StepState::Pending),
            ("merge", StepState::Pending),
            ("cleanup", StepState::Pending),
        ],
    );
    assert!(
        matches!(
            step_state(&job, "cloneInternalVolumes"),
            StepState::Failed | StepState::RolledBack
        ),
        "{job:#?}"
    );
    let d1 = cluster.domain("domain1").await;
    let now = cluster.disk_now("disk1").await;
    assert_eq!(now.domain, d1.id, "{now:#?}");
    assert!(now.locked_by.is_none());
    assert_eq!(
        chain_shape(&now.volumes),
        chain_shape(&disk.volumes),
        "the source changed"
    );
    let left = cluster.files_of_disk_on("filling", &now).await;
    assert!(left.is_empty(), "left on the full domain: {left:?}");
    cluster.assert_internal_layers(&before, &now);
    cluster.assert_vm_writing("vm1", &mut log).await;

    expect_success(&cluster.cli(&["vm", "stop", "vm1", "--force"]), "vm stop");
    log.poll();
    cluster.assert_all_layers(&before, &now, &writer, log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_move_to_a_domain_with_room_for_one_is_refused_at_once() {
    // Given a domain with room for one disk's chain (16 MiB of data), and
    // a move of one disk there in progress (held before its copy)...
    let Some(room) = Tmpfs::mount(28 * MIB) else {
        return;
    };
    let cluster = Cluster::start_with(&[(HOLD, "cloneInternalVolumes")]).await;
    let path = room.path().to_str().expect("a UTF-8 path");
    let (ok, d): (bool, Domain) = cluster.cli_json(&["domain", "create", "room", "--path", path]);
    assert!(ok, "{d:#?}");
    cluster.disk("disk1", VolumeFormat::Raw, 2).await;
    cluster.disk("disk2", VolumeFormat::Raw, 2).await;
    let (ok, first): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "room"]);
    assert!(ok, "{first:#?}");
    cluster
        .wait_step_running(first.id, "cloneInternalVolumes")
        .await;

    // ...when a second disk is moved there, then it is refused at once
    // (507), naming the space the first move holds, and nothing is made.
    let out = cluster.cli(&["disk", "move", "disk2", "--to", "room"]);
    let said = expect_failure(&out, "a second move to a domain with room for one");
    assert!(
        said.contains("507") && said.contains("reserved by the moves already heading there"),
        "{said}"
    );
    let jobs = cluster.client().jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert!(cluster.disk_now("disk2").await.locked_by.is_none());

    // Once the first move is gone, its room is free again.
    expect_success(
        &cluster.cli(&["job", "cancel", &first.id.to_string()]),
        "job cancel",
    );
    let first = cluster.wait_end(first.id).await;
    assert_eq!(first.state, JobState::Cancelled, "{first:#?}");
    let (ok, second): (bool, Job) = cluster.cli_json(&["disk", "move", "disk2", "--to", "room"]);
    assert!(ok, "{second:#?}");
    expect_success(
        &cluster.cli(&["job", "cancel", &second.id.to_string()]),
        "job cancel",
    );
    assert_eq!(cluster.wait_end(second.id).await.state, JobState::Cancelled);
}
