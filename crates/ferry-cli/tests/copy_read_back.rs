//! A live move whose destination storage returns other bytes than the
//! copy wrote.
//!
//! Given an engine and two agents whose storage reads back a changed byte
//! (ferry-storage's `FERRY_TEST_AGENT_CORRUPT_READ_BACK` hook) where a live
//! move's direct copy reads back what it wrote, and a running VM whose
//! disk has a chain of three volumes holding data, with the guest writing
//! the whole time:
//!
//! - when the first three read-backs are changed, the copies that read
//!   them fail, the job's events (REST and `ferry job show`) say why, the
//!   volumes are copied again, and
//!   the move ends succeeded, nothing of the disk left on the source, every
//!   layer as it was;
//! - when every read-back is changed, the move gives up after its copy
//!   attempts and ends failed and rolled back, saying why: the VM runs on
//!   the source with the chain it had, the destination holds nothing of
//!   the disk, and the disk is unlocked;
//!
//! and then, with the VM stopped, every write the guest saw acknowledged
//! is on the disk, read through its chain.

mod common;

use common::*;
use ferry_api::engine::{Disk, Job, JobState};

/// The agents' test hook (ferry-storage's `test_hooks`).
const CORRUPT_READ_BACK: &str = "FERRY_TEST_AGENT_CORRUPT_READ_BACK";

/// What a copy's refusal of a changed read-back says, in the job's error
/// and its events.
const DIFFERS: &str = "differs from its source";

/// The events the engine recorded about `job` (`GET /api/v1/events?object=`),
/// oldest first.
async fn job_events(cluster: &Cluster, job: &Job) -> Vec<String> {
    let mut events = cluster
        .client()
        .events_about(job.id, Some(1000))
        .await
        .expect("the job's events");
    events.reverse();
    assert!(
        events.iter().all(|e| e.object == Some(job.id)),
        "events about other things: {events:#?}"
    );
    events.into_iter().map(|e| e.message).collect()
}

/// A cluster whose agents change the read-backs `corrupt` says, its VM
/// writing, and the move of its disk to domain2, ended.
async fn move_with(corrupt: &str) -> (Cluster, Writing, Job) {
    let cluster = Cluster::start_with_agent_env(&[], &[(CORRUPT_READ_BACK, corrupt)]).await;
    let writing = cluster.writing_vm().await;
    let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2"]);
    assert!(ok, "{job:#?}");
    let ended = cluster.wait_end(job.id).await;
    (cluster, writing, ended)
}

/// Asserts `now` is on domain `on`, unlocked, with nothing of it left on
/// domain `not_on`, its internal layers as before and the VM writing; then
/// stops the VM and asserts every acknowledged write is on the disk.
async fn assert_disk_whole(cluster: &Cluster, w: &mut Writing, now: &Disk, on: &str, not_on: &str) {
    let domain = cluster.domain(on).await;
    assert_eq!(now.domain, domain.id, "{now:#?}");
    assert!(now.locked_by.is_none(), "{now:#?}");
    let left = cluster.files_of_disk_on(not_on, now).await;
    assert!(left.is_empty(), "left on {not_on}: {left:?}");
    cluster.assert_internal_layers(&w.before, now);
    cluster.assert_vm_writing("vm1", &mut w.log).await;

    cluster.stop_now();
    w.log.poll();
    cluster.assert_all_layers(&w.before, now, &w.cfg, w.log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_reads_back_wrong_is_copied_again_and_the_move_succeeds() {
    let (cluster, mut writing, done) = move_with("3").await;
    assert_succeeded(&done);
    let events = job_events(&cluster, &done).await;
    assert!(
        events
            .iter()
            .any(|m| m.contains(DIFFERS) && m.contains("cloneInternalVolumes")),
        "no event says a copy read back wrong: {events:#?}"
    );
    let shown = expect_success(
        &cluster.cli(&["job", "show", &done.id.to_string()]),
        "job show",
    );
    assert!(
        shown.contains("events") && shown.contains(DIFFERS),
        "ferry job show does not show the failed copy: {shown}"
    );
    let now = cluster.disk_now("disk1").await;
    assert_disk_whole(&cluster, &mut writing, &now, "domain2", "domain1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_always_reads_back_wrong_ends_the_move_rolled_back() {
    let (cluster, mut writing, failed) = move_with("always").await;
    assert_job(&failed, JobState::Failed);
    assert!(!failed.retryable, "nothing past the switch: {failed:#?}");
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("copying failed 5 times") && error.contains(DIFFERS),
        "{error}"
    );
    let events = job_events(&cluster, &failed).await;
    assert!(
        events.iter().any(|m| m.contains("attempt 5 of 5")),
        "the event log does not show the copy's attempts: {events:#?}"
    );
    cluster.assert_no_task_running().await;
    let now = cluster.disk_now("disk1").await;
    assert_eq!(
        chain_shape(&now.volumes),
        chain_shape(&writing.disk.volumes),
        "the chain changed"
    );
    assert_disk_whole(&cluster, &mut writing, &now, "domain1", "domain2").await;
}
