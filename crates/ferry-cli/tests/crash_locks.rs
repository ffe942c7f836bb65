//! No disk stays locked when the engine dies at any point of its own
//! writes (the engine's `FERRY_TEST_CRASH_AT` hook aborts it there).
//!
//! Given an engine, two agents and a running VM whose disk has a chain of
//! two volumes holding data, with the guest writing the whole time:
//!
//! - when the engine dies in a move's prepare (job and locks written, live
//!   or cold not decided) and at a job's end (every step done, the end not
//!   written), then after a restart each job is carried to its end, the
//!   disk is unlocked where the move put it, and a new move of it works;
//! - when the engine dies in a snapshot before its new leaf was made, then
//!   after a restart the snapshot is reported interrupted and the disk
//!   unlocked and unchanged; when it dies after the leaf was made and
//!   before the VM was switched onto it, the restarted engine finishes the
//!   snapshot (the VM writes the new leaf) and unlocks the disk; then a
//!   new snapshot and a move of the disk work, and every write the guest
//!   saw acknowledged is on the disk.

mod common;

use common::*;
use ferry_api::engine::{Disk, Job, JobState, MoveMode};
use uuid::Uuid;

/// The engine's hook that kills it at a named point.
const CRASH: &str = "FERRY_TEST_CRASH_AT";

/// Restarts the engine with the hook set to `point`.
async fn arm(cluster: &mut Cluster, point: &str) {
    cluster.restart_engine(&[(CRASH, point)]).await;
}

/// Waits until the armed engine has died at its point, then starts it
/// again without the hook.
async fn after_crash(cluster: &mut Cluster, point: &str) {
    assert!(
        cluster.engine.wait_exit(WAIT).await,
        "the engine did not die at {point}; its log:\n{}",
        tail(&cluster.engine.log())
    );
    assert!(
        cluster
            .engine
            .log()
            .contains("the engine dies here (FERRY_TEST_CRASH_AT)"),
        "the engine died, but not by the hook at {point}:\n{}",
        tail(&cluster.engine.log())
    );
    cluster.restart_engine(&[]).await;
}

/// The newest job the engine knows.
async fn newest_job(cluster: &Cluster) -> Job {
    let jobs = cluster.client().jobs().await.expect("list the jobs");
    jobs.into_iter()
        .max_by_key(|j| j.created)
        .expect("a job was recorded")
}

/// The event messages, newest first.
async fn events(cluster: &Cluster) -> Vec<String> {
    cluster
        .client()
        .events(Some(200))
        .await
        .expect("read the events")
        .into_iter()
        .map(|e| e.message)
        .collect()
}

/// Waits until the event log says `what`: a settled snapshot's event is
/// written after its lock is released (and the disk's chain refreshed
/// from the SPM), so it may come a moment after the disk is seen unlocked.
async fn wait_event(cluster: &Cluster, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let said = events(cluster).await;
        if said.iter().any(|m| m.contains(what)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event saying {what:?} within {WAIT:?}: {said:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The leaf the running VM writes for `disk`, as its host reports it.
async fn open_leaf(cluster: &Cluster, disk: &Disk) -> Uuid {
    let vm = cluster.client().vm("vm1").await.expect("read the VM");
    let status = cluster.host2.client().vm(vm.id).await.expect("VM on host2");
    let open = status
        .disks
        .iter()
        .find(|d| d.image == disk.id)
        .and_then(|d| d.open_chain.first())
        .unwrap_or_else(|| panic!("the VM has no open chain for {}: {status:#?}", disk.name));
    open.volume
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_killed_in_prepare_or_at_a_jobs_end_leaves_no_disk_locked() {
    let mut cluster = Cluster::start().await;
    let mut w = cluster.writing_vm().await;
    let shape: Vec<_> = w.disk.volumes.iter().map(|v| (v.id, v.format)).collect();

    for (point, to) in [("prepare-locked", "domain2"), ("job-end", "domain1")] {
        // Given an engine that dies at `point` of a live move...
        arm(&mut cluster, point).await;
        let _ = cluster.cli(&["disk", "move", "disk1", "--to", to]);
        after_crash(&mut cluster, point).await;

        // ...when it is started again, then the job is carried to its
        // end, and the disk is unlocked on the destination.
        let job = newest_job(&cluster).await;
        let job = cluster.wait_end(job.id).await;
        assert_succeeded(&job);
        assert_eq!(job.mode, MoveMode::Live, "killed at {point}: {job:#?}");
        cluster.assert_no_task_running().await;
        let dst = cluster.domain(to).await;
        let now = cluster.disk_now("disk1").await;
        assert!(now.locked_by.is_none(), "killed at {point}: {now:#?}");
        assert_eq!(now.domain, dst.id, "killed at {point}: {now:#?}");
        assert_eq!(
            now.volumes
                .iter()
                .map(|v| (v.id, v.format))
                .collect::<Vec<_>>(),
            shape,
            "killed at {point}: the chain changed shape"
        );
        cluster.assert_internal_layers(&w.before, &now);
        cluster.assert_vm_writing("vm1", &mut w.log).await;
    }

    // A new move of the disk works.
    let (ok, job): (bool, Job) =
        cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2", "--wait"]);
    assert!(ok, "{job:#?}");
    assert_job(&job, JobState::Succeeded);
    let now = cluster.disk_now("disk1").await;
    assert!(now.locked_by.is_none(), "{now:#?}");

    cluster.stop_now();
    w.log.poll();
    cluster.assert_all_layers(&w.before, &now, &w.cfg, w.log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_killed_in_a_snapshot_leaves_no_disk_locked() {
    let mut cluster = Cluster::start().await;
    let mut w = cluster.writing_vm().await;
    let layers = w.disk.volumes.len();

    // Given an engine that dies after a snapshot locked the disk and
    // before the SPM made anything...
    arm(&mut cluster, "snapshot-locked").await;
    let out = cluster.cli(&["disk", "snapshot", "disk1"]);
    assert!(
        !out.status.success(),
        "the engine answered a snapshot it died in"
    );
    after_crash(&mut cluster, "snapshot-locked").await;

    // ...then after the restart the disk is unlocked and unchanged, and
    // the snapshot is reported interrupted.
    let now = cluster
        .wait_disk_until("disk1", "unlocked", |d| d.locked_by.is_none())
        .await;
    let ids = |d: &Disk| d.volumes.iter().map(|v| v.id).collect::<Vec<_>>();
    assert_eq!(ids(&now), ids(&w.disk), "nothing was to change: {now:#?}");
    assert_eq!(
        open_leaf(&cluster, &now).await,
        w.disk.volumes[layers - 1].id
    );
    wait_event(
        &cluster,
        "was interrupted by an engine restart before its new leaf was made",
    )
    .await;
    cluster.assert_vm_writing("vm1", &mut w.log).await;

    // Given an engine that dies after the snapshot's new leaf was made and
    // before the VM was switched onto it...
    arm(&mut cluster, "snapshot-created").await;
    let out = cluster.cli(&["disk", "snapshot", "disk1"]);
    assert!(
        !out.status.success(),
        "the engine answered a snapshot it died in"
    );
    after_crash(&mut cluster, "snapshot-created").await;

    // ...then the restarted engine finishes it: one more layer, the VM
    // writes it, the disk unlocked. (The chain is refreshed from the SPM
    // just after the lock's release, so both are waited for.)
    let now = cluster
        .wait_disk_until("disk1", "unlocked with its new leaf", |d| {
            d.locked_by.is_none() && d.volumes.len() == layers + 1
        })
        .await;
    assert_eq!(now.volumes.len(), layers + 1, "{now:#?}");
    let leaf = now.volumes.last().expect("a leaf").id;
    assert_eq!(
        open_leaf(&cluster, &now).await,
        leaf,
        "the VM does not write the new leaf"
    );
    wait_event(&cluster, "finished after an engine restart (live)").await;
    cluster.assert_vm_writing("vm1", &mut w.log).await;

    // A new snapshot works, and so does a move of the disk.
    let (ok, snap): (bool, Disk) = cluster.cli_json(&["disk", "snapshot", "disk1"]);
    assert!(ok, "{snap:#?}");
    assert_eq!(snap.volumes.len(), layers + 2, "{snap:#?}");
    assert!(snap.locked_by.is_none(), "{snap:#?}");
    let (ok, job): (bool, Job) =
        cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2", "--wait"]);
    assert!(ok, "{job:#?}");
    assert_job(&job, JobState::Succeeded);
    let moved = cluster.disk_now("disk1").await;
    assert!(moved.locked_by.is_none(), "{moved:#?}");
    assert_eq!(moved.volumes.len(), layers + 2, "{moved:#?}");

    // Every write the guest saw acknowledged is on the disk, and the
    // layers under the snapshots read as before.
    cluster.stop_now();
    w.log.poll();
    let first = Disk {
        volumes: moved.volumes[..layers].to_vec(),
        ..moved.clone()
    };
    cluster.assert_internal_layers(&w.before, &first);
    let leaf = cluster.save_layers(
        &Disk {
            volumes: vec![moved.volumes.last().expect("a leaf").clone()],
            ..moved.clone()
        },
        "leaf",
    );
    let check = ferry_testkit::guest::verify_acked_writes(&leaf[0], &w.cfg, w.log.acks())
        .expect("every acknowledged write is on the disk");
    assert!(check.slots_checked > 0, "no acknowledged write was checked");
}
