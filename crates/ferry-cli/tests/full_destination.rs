//! A destination that fills up during a live move, with the guest
//! writing: the VM pauses (its disks are attached `werror=stop`), the
//! engine and the CLI say why, and the move either rolls back (before the
//! switch) or fails for a retry (the merge, after it); the agent resumes
//! the VM by itself as soon as its disk can take writes again, and every
//! write the guest saw acknowledged is on the disk. Each test mounts a
//! small tmpfs as the destination domain (skipped where mounting is not
//! allowed).

mod common;

use common::*;
use ferry_api::engine::{Domain, Job, JobState, Vm};
use ferry_api::VolumeFormat;
use ferry_testkit::guest::{SerialLog, WriterConfig};

/// The destination's size: room for the disk's chain (about 16 MiB
/// allocated) and, twice, all the guest may write fresh (its 48 MiB
/// region, see [`fresh_writer`]): once in the move's new leaf, once more
/// in the parent the merge commits that leaf into. With less, whether the
/// retried merge finds room depended on how far the guest had written
/// (96 MiB: once in a full suite's run, the retry failed for want of
/// room too).
const ROOM: u64 = 160 * MIB;

/// A writer over fresh ground, above the layers' data (0..16 MiB): the
/// guest keeps allocating new clusters, in whatever leaf it writes, so a
/// full domain under that leaf stops it, and a merge into a parent that
/// lacks those clusters needs room.
fn fresh_writer() -> WriterConfig {
    WriterConfig::new(16 * MIB, 48 * MIB)
}

/// A cluster with a `filling` domain on `tmpfs`, `vm1` writing to
/// `disk1` (raw base + one qcow2 layer on domain1), and a move of the
/// disk to `filling` held at `step`.
struct Scene {
    cluster: Cluster,
    filling: Tmpfs,
    before: Vec<std::path::PathBuf>,
    cfg: WriterConfig,
    log: SerialLog,
    vm: Vm,
    job: Job,
}

async fn scene(step: &str) -> Option<Scene> {
    let filling = Tmpfs::mount(ROOM)?;
    let cluster = Cluster::start_with(&[(HOLD, step)]).await;
    let path = filling.path().to_str().expect("a UTF-8 path");
    let (ok, d): (bool, Domain) =
        cluster.cli_json(&["domain", "create", "filling", "--path", path]);
    assert!(ok, "{d:#?}");
    let disk = cluster.disk("disk1", VolumeFormat::Raw, 2).await;
    let cfg = fresh_writer();
    cluster.vm("vm1", &["disk1"], &cfg).await;
    let before = cluster.save_layers(&disk, "before");
    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok, "{vm:#?}");
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_ready(WAIT).expect("the guest writes");
    more_acks(&mut log, 10);
    let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "filling"]);
    assert!(ok, "{job:#?}");
    cluster.wait_step_running(job.id, step).await;
    // The guest writes to the move's new leaf on `filling` by now.
    more_acks(&mut log, 10);
    Some(Scene {
        cluster,
        filling,
        before,
        cfg,
        log,
        vm,
        job,
    })
}

/// Waits until the engine shows `vm1` paused (returns why) or running
/// again (`paused` false).
async fn wait_paused(cluster: &Cluster, paused: bool) -> Option<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let vm = cluster.client().vm("vm1").await.expect("read the VM");
        if vm.paused.is_some() == paused {
            return vm.paused;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "vm1 was not {} within {WAIT:?}: {vm:#?}\nengine log:\n{}",
            if paused { "paused" } else { "resumed" },
            tail(&cluster.engine.log())
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Fills `filling` and waits until the guest is paused for it: reported
/// by the engine with the reason, and by `ferry vm show`.
async fn fill_until_paused(s: &Scene) {
    s.filling.fill_up();
    let why = wait_paused(&s.cluster, true).await.unwrap_or_default();
    assert!(why.contains("no space left"), "{why}");
    let shown = expect_success(&s.cluster.cli(&["vm", "show", "vm1"]), "vm show");
    assert!(shown.contains("paused"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_fills_under_the_guest_rolls_the_move_back_and_the_vm_resumes() {
    let Some(mut s) = scene("cloneInternalVolumes").await else {
        return;
    };
    fill_until_paused(&s).await;

    // The engine carries on: the copy sees the VM paused for space and
    // the move rolls back, which puts the VM on its source leaf.
    s.cluster.restart_engine(&[]).await;
    let job = s.cluster.wait_end(s.job.id).await;
    assert_eq!(job.state, JobState::Failed, "{job:#?}");
    let error = job.error.clone().unwrap_or_default();
    assert!(error.contains("full"), "{error}");
    // The VM resumed by itself, on the source.
    wait_paused(&s.cluster, false).await;
    s.cluster.assert_vm_writing("vm1", &mut s.log).await;
    let now = s.cluster.disk_now("disk1").await;
    assert_eq!(now.domain, s.cluster.domain("domain1").await.id, "{now:#?}");
    assert!(now.locked_by.is_none(), "{now:#?}");
    let left = s.cluster.files_of_disk_on("filling", &now).await;
    assert!(left.is_empty(), "left on the full domain: {left:#?}");
    s.cluster.assert_no_task_running().await;

    s.cluster.stop_now();
    s.log.poll();
    let after = s.cluster.disk_now("disk1").await;
    s.cluster
        .assert_all_layers(&s.before, &after, &s.cfg, s.log.acks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_that_finds_the_destination_full_is_retried_once_there_is_room() {
    let Some(mut s) = scene("merge").await else {
        return;
    };
    fill_until_paused(&s).await;

    // Past the switch nothing is rolled back: the merge fails for want of
    // room, the job waits for a retry with its disk locked.
    s.cluster.restart_engine(&[]).await;
    let failed = s.cluster.wait_end(s.job.id).await;
    assert_eq!(failed.state, JobState::Failed, "{failed:#?}");
    assert!(failed.retryable, "{failed:#?}");
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("full"), "{error}");
    assert_eq!(s.cluster.disk_now("disk1").await.locked_by, Some(s.job.id));

    // Room again: the VM resumes by itself, and the retry completes the
    // move, with no block job left in QEMU.
    s.filling.drain();
    wait_paused(&s.cluster, false).await;
    s.cluster.assert_vm_writing("vm1", &mut s.log).await;
    let id = s.job.id.to_string();
    let (ok, retried): (bool, Job) = s.cluster.cli_json(&["job", "retry", &id]);
    assert!(ok, "{retried:#?}");
    let done = s.cluster.wait_end(s.job.id).await;
    assert_succeeded(&done);
    let status = s
        .cluster
        .host2
        .client()
        .vm(s.vm.id)
        .await
        .expect("VM status");
    assert!(status.block_jobs.is_empty(), "{status:#?}");
    let now = s.cluster.disk_now("disk1").await;
    assert_eq!(now.domain, s.cluster.domain("filling").await.id, "{now:#?}");
    assert!(now.locked_by.is_none(), "{now:#?}");
    s.cluster.assert_vm_writing("vm1", &mut s.log).await;

    s.cluster.stop_now();
    s.log.poll();
    let after = s.cluster.disk_now("disk1").await;
    s.cluster
        .assert_all_layers(&s.before, &after, &s.cfg, s.log.acks());
}
