//! Given an SPM agent on two domains and a disk `base(raw) <- snap1(qcow2)`
//! on domain1, the seed's storage steps through the API:
//! `createVolumeCrossSD`, `cloneInternalVolumes`, create and delete, each
//! idempotent, with the copy checked by what a guest would read.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{assert_refused, start, wait_until};
use ferry_api::agent::{
    CloneInternalVolumes, CopyIo, CreateVolume, CreateVolumeCrossSd, DeleteImage, DeleteVolumes,
    Release, TaskState, VolumeRef,
};
use ferry_api::{Allocation, Legality, VolumeFormat, VolumeRole};
use ferry_storage::{Chain, Volume};
use ferry_testkit::{base, child, guest_content, own_allocation, qemu_io, tree_snapshot, Lab};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// `base(raw) <- snap1(qcow2)` on domain1, with data in both layers, a
/// zero cluster in snap1 hiding base data, and holes.
fn two_layer_disk(lab: &Lab, size: u64) -> (Volume, Volume) {
    let b = base(&lab.d1, VolumeFormat::Raw, size);
    qemu_io(&b, &["write -P 0x31 0 4M", "write -P 0x32 12M 2M"]);
    let s1 = child(&b);
    qemu_io(
        &s1,
        &[
            "write -P 0x41 1M 1M",
            "write -z 12M 64k",
            "write -P 0x42 20M 512k",
        ],
    );
    (b, s1)
}

fn clone_request(lab: &Lab, chain: &[&Volume], bandwidth: Option<u64>) -> CloneInternalVolumes {
    CloneInternalVolumes {
        src_domain: lab.d1.uuid(),
        dst_domain: lab.d2.uuid(),
        image: chain[0].image(),
        volumes: chain.iter().map(|v| v.id()).collect(),
        bandwidth_mib_s: bandwidth,
        io: CopyIo::Buffered,
    }
}

#[tokio::test]
async fn create_volume_cross_sd_then_clone_internal_volumes_moves_the_chain_layer_exact() {
    let lab = Lab::new();
    let (b, s1) = two_layer_disk(&lab, 32 << 20);
    let image = b.image();
    let rd = common::run_dir();
    let agent = start("spm1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let c = &agent.client;
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");

    // createVolumeCrossSD: snap2 on domain2, its parent snap1 on domain1.
    let snap2 = Uuid::new_v4();
    let cross = CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image,
        volume: snap2,
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image,
            volume: s1.id(),
        },
    };
    let made = c
        .create_volume_cross_sd(&cross)
        .await
        .expect("createVolumeCrossSD");
    assert_eq!(made.domain, lab.d2.uuid());
    assert_eq!(made.parent, Some(s1.id()));
    assert_eq!(made.parent_domain, Some(lab.d1.uuid()));
    assert_eq!(
        (made.format, made.legality),
        (VolumeFormat::Qcow2, Legality::Legal)
    );
    let snapshot = tree_snapshot(lab.root());
    let again = c.create_volume_cross_sd(&cross).await.expect("again");
    assert_eq!(
        again, made,
        "a retried createVolumeCrossSD answers as the first"
    );
    assert_eq!(tree_snapshot(lab.root()), snapshot, "and changes nothing");
    let other_parent = CreateVolumeCrossSd {
        parent: VolumeRef {
            volume: b.id(),
            ..cross.parent
        },
        ..cross.clone()
    };
    assert_refused(
        c.create_volume_cross_sd(&other_parent).await,
        409,
        "already exists with parent",
    );
    let leaf = lab.d2.volume(image, snap2);
    let through = Chain::walk(&lab.domains(), &leaf).expect("the cross-domain chain walks");
    assert!(through.spans_domains());
    assert_eq!(guest_content(&leaf), guest_content(&s1));

    // cloneInternalVolumes: base and snap1 to domain2, as a task.
    let task = Uuid::new_v4();
    let req = clone_request(&lab, &[&b, &s1], None);
    let started = c
        .clone_internal_volumes(task, &req)
        .await
        .expect("start the clone");
    assert_eq!(
        (started.id, started.verb.as_str()),
        (task, "clone-internal-volumes")
    );
    let done = c.wait_task(task, WAIT).await.expect("the clone ends");
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    assert!(done.total_bytes >= 6 << 20, "{done:?}");
    assert_eq!(done.done_bytes, done.total_bytes);
    assert!(done.finished.is_some_and(|f| f >= done.started));

    for src in [&b, &s1] {
        let copy = lab.d2.volume(image, src.id());
        let md = copy.metadata().expect("copy metadata");
        assert_eq!(md.legality, Legality::Legal);
        assert_eq!(md.role, src.metadata().expect("meta").role);
        assert_eq!(
            guest_content(&copy),
            guest_content(src),
            "layer {} reads differently",
            src.id()
        );
        assert_eq!(
            own_allocation(&copy),
            own_allocation(src),
            "layer {} allocates differently",
            src.id()
        );
    }
    let listed = c
        .image_volumes(lab.d2.uuid(), image)
        .await
        .expect("list the image");
    assert_eq!(listed.len(), 3);

    // Idempotent: the same task id and request answers the finished task,
    // copies nothing again.
    let inode = std::fs::metadata(lab.d2.volume(image, b.id()).path())
        .expect("stat")
        .ino();
    let repeat = c.clone_internal_volumes(task, &req).await.expect("repeat");
    assert_eq!(repeat, done);
    assert_eq!(
        c.tasks().await.expect("tasks").len(),
        1,
        "nothing ran twice"
    );
    let different = clone_request(&lab, &[&b], None);
    assert_refused(
        c.clone_internal_volumes(task, &different).await,
        409,
        "other parameters",
    );
    // A new task for the same copy finds it done.
    let task2 = Uuid::new_v4();
    c.clone_internal_volumes(task2, &req)
        .await
        .expect("a second clone task");
    let done2 = c.wait_task(task2, WAIT).await.expect("ends");
    assert_eq!(done2.state, TaskState::Succeeded, "{:?}", done2.error);
    let inode2 = std::fs::metadata(lab.d2.volume(image, b.id()).path())
        .expect("stat")
        .ino();
    assert_eq!(inode, inode2, "a LEGAL copy is never copied again");

    // The task records are on disk, and forgetting removes them.
    let record = agent.run_dir.join("tasks").join(format!("{task}.json"));
    let persisted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("task record")).expect("JSON");
    assert_eq!(persisted["state"], "succeeded");
    assert_eq!(persisted["params"]["volumes"][1], s1.id().to_string());
    c.forget_task(task).await.expect("forget");
    assert!(!record.exists());
    assert_refused(c.task(task).await, 404, "no task");
    assert_refused(c.forget_task(task).await, 404, "no task");
    agent.stop().await;
}

#[tokio::test]
async fn clone_requests_that_are_not_a_chain_from_the_base_are_refused() {
    let lab = Lab::new();
    let (b, s1) = two_layer_disk(&lab, 32 << 20);
    let rd = common::run_dir();
    let agent = start("spm1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let c = &agent.client;
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let before = tree_snapshot(lab.root());
    let cases = [
        (
            clone_request(&lab, &[&s1], None),
            400,
            "chain from the base",
        ),
        (
            clone_request(&lab, &[&s1, &b], None),
            400,
            "chain from the base",
        ),
        (
            CloneInternalVolumes {
                volumes: vec![],
                ..clone_request(&lab, &[&b], None)
            },
            400,
            "volumes is empty",
        ),
        (
            clone_request(&lab, &[&b], Some(0)),
            400,
            "bandwidth_mib_s is 0",
        ),
        (
            CloneInternalVolumes {
                dst_domain: lab.d1.uuid(),
                ..clone_request(&lab, &[&b], None)
            },
            400,
            "both",
        ),
        (
            CloneInternalVolumes {
                volumes: vec![b.id(), Uuid::new_v4()],
                ..clone_request(&lab, &[&b], None)
            },
            404,
            "does not exist",
        ),
        (
            CloneInternalVolumes {
                dst_domain: Uuid::new_v4(),
                ..clone_request(&lab, &[&b], None)
            },
            404,
            "not connected",
        ),
    ];
    for (req, status, says) in cases {
        let task = Uuid::new_v4();
        assert_refused(c.clone_internal_volumes(task, &req).await, status, says);
        assert_refused(c.task(task).await, 404, "no task");
    }
    assert_eq!(tree_snapshot(lab.root()), before);
    assert!(c.tasks().await.expect("tasks").is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn a_cancelled_clone_ends_cancelled_and_leaves_nothing_on_the_destination() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 64 << 20);
    qemu_io(&b, &["write -P 0x51 0 48M"]);
    let rd = common::run_dir();
    let agent = start("spm1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let c = &agent.client;
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let task = Uuid::new_v4();
    // 2 MiB/s: the 48 MiB copy would take 24 s.
    c.clone_internal_volumes(task, &clone_request(&lab, &[&b], Some(2)))
        .await
        .expect("start");
    wait_until("the copy makes progress", WAIT, || async {
        c.task(task).await.is_ok_and(|s| s.done_bytes > 0)
    })
    .await;
    let running = c.task(task).await.expect("status");
    assert_eq!(running.state, TaskState::Running);
    assert_eq!(running.total_bytes, 48 << 20);
    assert!(running.done_bytes < running.total_bytes);

    assert_refused(c.release_spm().await, 409, "while task");
    assert_refused(c.forget_task(task).await, 409, "still running");
    c.cancel_task(task).await.expect("cancel");
    let end = c.wait_task(task, WAIT).await.expect("the task stops");
    assert_eq!(end.state, TaskState::Cancelled);
    assert_eq!(end.error, None);
    assert!(!lab.d2.volume(b.image(), b.id()).meta_path().exists());
    assert!(
        lab.d2.images().expect("images").is_empty(),
        "the partial copy was removed"
    );
    c.cancel_task(task)
        .await
        .expect("cancelling again is a no-op");
    let persisted: serde_json::Value = serde_json::from_slice(
        &std::fs::read(agent.run_dir.join("tasks").join(format!("{task}.json"))).expect("record"),
    )
    .expect("JSON");
    assert_eq!(persisted["state"], "cancelled");
    c.release_spm().await.expect("release once nothing runs");
    agent.stop().await;
}

#[tokio::test]
async fn a_clone_stopped_by_a_shutdown_resumes_when_the_restarted_agent_is_spm_again() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 64 << 20);
    qemu_io(&b, &["write -P 0x61 0 40M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x62 8M 4M"]);
    let rd = common::run_dir();
    let agent = start("spm1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    agent.client.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let task = Uuid::new_v4();
    let req = clone_request(&lab, &[&b, &s1], Some(8));
    agent
        .client
        .clone_internal_volumes(task, &req)
        .await
        .expect("start");
    let c = agent.client.clone();
    wait_until("the copy makes progress", WAIT, || async {
        c.task(task).await.is_ok_and(|s| s.done_bytes > 0)
    })
    .await;
    agent.stop().await;
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rd.path().join("tasks").join(format!("{task}.json"))).expect("record"),
    )
    .expect("JSON");
    assert_eq!(record["state"], "running", "a shutdown is not a cancel");

    let agent = start("spm1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let c = &agent.client;
    let waiting = c.task(task).await.expect("the task is known again");
    assert_eq!(waiting.state, TaskState::Running);
    assert!(
        !c.health().await.expect("health").spm,
        "a restart does not make an agent SPM"
    );
    // Same id and request: the resumed task answers, nothing new starts.
    let same = c
        .clone_internal_volumes(task, &req)
        .await
        .expect("the same request");
    assert_eq!((same.id, same.state), (task, TaskState::Running));
    assert_eq!(c.tasks().await.expect("tasks").len(), 1);
    // The shutdown removed the partial copy, and without the SPM role
    // nothing is copied.
    assert!(lab.d2.images().expect("images").is_empty());

    c.acquire_spm(lab.d1.uuid()).await.expect("SPM again");
    let done = c
        .wait_task(task, WAIT)
        .await
        .expect("the resumed clone ends");
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    for src in [&b, &s1] {
        let copy = lab.d2.volume(b.image(), src.id());
        assert_eq!(copy.metadata().expect("meta").legality, Legality::Legal);
        assert_eq!(guest_content(&copy), guest_content(src));
        assert_eq!(own_allocation(&copy), own_allocation(src));
    }
    agent.stop().await;
}

#[tokio::test]
async fn create_and_delete_volumes_are_idempotent_and_refuse_what_would_break_a_chain() {
    let lab = Lab::new();
    let rd = common::run_dir();
    let agent = start("spm1", rd.path(), &[lab.d1.path()]).await;
    let c = &agent.client;
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let image = Uuid::new_v4();
    let base_req = CreateVolume {
        domain: lab.d1.uuid(),
        image,
        volume: Uuid::new_v4(),
        format: VolumeFormat::Raw,
        size: Some(8 << 20),
        allocation: Allocation::Sparse,
        parent: None,
        parent_image: None,
        description: "the base".into(),
    };
    let made = c.create_volume(&base_req).await.expect("create the base");
    assert_eq!(
        (made.capacity, made.legality, made.role),
        (8 << 20, Legality::Legal, VolumeRole::Leaf)
    );
    assert_eq!(c.create_volume(&base_req).await.expect("again"), made);
    assert_refused(
        c.create_volume(&CreateVolume {
            size: Some(16 << 20),
            ..base_req.clone()
        })
        .await,
        409,
        "already exists with size",
    );
    let snap_req = CreateVolume {
        volume: Uuid::new_v4(),
        format: VolumeFormat::Qcow2,
        size: None,
        parent: Some(base_req.volume),
        description: String::new(),
        ..base_req.clone()
    };
    let snap = c.create_volume(&snap_req).await.expect("create a snapshot");
    assert_eq!(
        (snap.parent, snap.capacity),
        (Some(base_req.volume), 8 << 20)
    );
    assert_eq!(c.create_volume(&snap_req).await.expect("again"), snap);
    assert_refused(
        c.create_volume(&CreateVolume {
            volume: Uuid::new_v4(),
            parent: Some(Uuid::new_v4()),
            ..snap_req.clone()
        })
        .await,
        404,
        "does not exist",
    );

    // The base alone cannot go: its child stays.
    let before = tree_snapshot(lab.root());
    assert_refused(
        c.delete_volumes(&DeleteVolumes {
            domain: lab.d1.uuid(),
            image,
            volumes: vec![base_req.volume],
        })
        .await,
        409,
        "still used by its child volume",
    );
    assert_eq!(tree_snapshot(lab.root()), before);

    // Both, listed base first: the child goes first.
    let del = DeleteVolumes {
        domain: lab.d1.uuid(),
        image,
        volumes: vec![base_req.volume, snap_req.volume],
    };
    let gone = c.delete_volumes(&del).await.expect("delete");
    assert_eq!(gone.deleted, vec![snap_req.volume, base_req.volume]);
    assert!(gone.missing.is_empty());
    let again = c.delete_volumes(&del).await.expect("delete again");
    assert!(again.deleted.is_empty());
    assert_eq!(again.missing.len(), 2);
    assert!(lab.d1.images().expect("images").is_empty());

    // A whole image.
    let b = base(&lab.d1, VolumeFormat::Raw, 1 << 20);
    let s = child(&b);
    let all = c
        .delete_image(&DeleteImage {
            domain: lab.d1.uuid(),
            image: b.image(),
            release: Release::Now,
        })
        .await
        .expect("delete the image");
    assert_eq!(all.deleted, vec![s.id(), b.id()]);
    assert!(lab.d1.images().expect("images").is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn deleting_a_cross_domain_leaf_makes_its_parent_the_leaf_again() {
    let lab = Lab::new();
    let rd = common::run_dir();
    let agent = start("spm1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let c = &agent.client;
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let (_b, s1) = two_layer_disk(&lab, 32 << 20);
    let leaf = Uuid::new_v4();
    c.create_volume_cross_sd(&CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image: s1.image(),
        volume: leaf,
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image: s1.image(),
            volume: s1.id(),
        },
    })
    .await
    .expect("createVolumeCrossSD");
    assert_eq!(s1.metadata().expect("md").role, VolumeRole::Internal);
    c.delete_image(&DeleteImage {
        domain: lab.d2.uuid(),
        image: s1.image(),
        release: Release::Now,
    })
    .await
    .expect("roll createVolumeCrossSD back");
    assert_eq!(s1.metadata().expect("md").role, VolumeRole::Leaf);
}

/// The crash point `create-cross-sd`: the new leaf's file and ILLEGAL
/// `.meta` made, its parent INTERNAL, not yet LEGAL.
fn crashed_cross_sd(lab: &Lab, parent: &Volume, id: Uuid) -> Volume {
    let mut spec = ferry_storage::VolumeSpec::child_of(parent);
    spec.id = Some(id);
    let v = lab.d2.create_volume(&spec).expect("create");
    v.set_legality(Legality::Illegal).expect("make it ILLEGAL");
    v
}

#[tokio::test]
async fn create_and_delete_go_on_from_what_a_crash_inside_them_left() {
    let lab = Lab::new();
    let rd = common::run_dir();
    let agent = start("spm1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let c = &agent.client;
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let (_b, s1) = two_layer_disk(&lab, 32 << 20);
    let image = s1.image();
    let cross = |volume| CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image,
        volume,
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image,
            volume: s1.id(),
        },
    };

    // An ILLEGAL leaf, file and all: made again, LEGAL.
    let leaf = Uuid::new_v4();
    let half = crashed_cross_sd(&lab, &s1, leaf);
    let made = c
        .create_volume_cross_sd(&cross(leaf))
        .await
        .expect("the retry goes on");
    assert_eq!(
        (made.legality, made.parent, made.parent_domain),
        (Legality::Legal, Some(s1.id()), Some(lab.d1.uuid()))
    );
    assert_eq!(s1.metadata().expect("md").role, VolumeRole::Internal);
    assert_eq!(half.presence(), ferry_storage::Presence::Whole);

    // An ILLEGAL leaf over another parent is not this request's: refused,
    // nothing changed.
    let (_, other) = two_layer_disk(&lab, 32 << 20);
    let foreign = Uuid::new_v4();
    crashed_cross_sd(&lab, &other, foreign);
    let before = tree_snapshot(lab.root());
    assert_refused(
        c.create_volume_cross_sd(&CreateVolumeCrossSd {
            image: other.image(),
            parent: VolumeRef {
                domain: lab.d1.uuid(),
                image: other.image(),
                volume: Uuid::new_v4(),
            },
            ..cross(foreign)
        })
        .await,
        409,
        "another request's",
    );
    assert_eq!(tree_snapshot(lab.root()), before);

    // A delete interrupted between its renames: the LEGAL `.meta` without
    // its file is finished, and the source leaf is the leaf again.
    let dir = lab.d2.image_dir(image);
    std::fs::rename(
        dir.join(leaf.to_string()),
        dir.join(format!("_remove_me_{leaf}")),
    )
    .expect("rename");
    let gone = c
        .delete_volumes(&DeleteVolumes {
            domain: lab.d2.uuid(),
            image,
            volumes: vec![leaf],
        })
        .await
        .expect("the retry finishes the delete");
    assert_eq!((gone.deleted, gone.missing), (vec![leaf], vec![]));
    assert_eq!(s1.metadata().expect("md").role, VolumeRole::Leaf);
    assert!(!dir.exists(), "the image's last volume took its directory");

    // A whole image whose leaf is only an ILLEGAL `.meta` (a create that
    // crashed before qemu-img): deleting the image clears it too.
    let stub = crashed_cross_sd(&lab, &s1, Uuid::new_v4());
    std::fs::remove_file(stub.path()).expect("unlink");
    let all = c
        .delete_image(&DeleteImage {
            domain: lab.d2.uuid(),
            image,
            release: Release::Now,
        })
        .await
        .expect("delete the image");
    assert_eq!(all.deleted, vec![stub.id()]);
    assert!(!lab.d2.image_dir(image).exists());
    assert_eq!(s1.metadata().expect("md").role, VolumeRole::Leaf);
    agent.stop().await;
}

#[tokio::test]
async fn the_agent_collects_stale_temporary_files_at_start_and_when_it_becomes_spm() {
    let lab = Lab::new();
    let rd = common::run_dir();
    std::fs::create_dir_all(rd.path().join("tasks")).expect("mkdir");
    let run_tmp = rd.path().join("tasks").join(".tmp-Xy12ab");
    std::fs::write(&run_tmp, b"{").expect("write");
    let (b, s1) = two_layer_disk(&lab, 32 << 20);
    let dir = lab.d1.image_dir(b.image());
    let stale = dir.join(format!(".{}.meta.tmp", s1.id()));
    let fresh = dir.join(format!(".{}.meta.tmp", b.id()));
    for p in [&stale, &fresh] {
        std::fs::write(p, b"CAP=1\n").expect("write");
    }
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("age it");

    let agent = start("spm1", rd.path(), &[lab.d1.path()]).await;
    assert!(!run_tmp.exists(), "the agent's own leftovers go at start");
    assert!(stale.exists(), "not SPM yet: the domain is left alone");
    agent.client.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    wait_until("the stale temporary file is collected", WAIT, || async {
        !stale.exists()
    })
    .await;
    assert!(fresh.exists(), "a writer may still be using it");
    assert!(b.exists() && s1.exists());
    agent.stop().await;
}

/// A running copy can be held between two requests and let go, and its limit
/// changed, without stopping it (the engine's guest-aware pacing and the
/// quiet moment around a switch); the copy then ends verified. A task that
/// copies nothing, or has ended, is refused.
#[tokio::test]
async fn a_running_copy_is_held_sped_up_and_finished_verified() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 64 << 20);
    qemu_io(&b, &["write -P 0x61 0 32M"]);
    let rd = common::run_dir();
    let agent = start("spm1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let c = &agent.client;
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let task = Uuid::new_v4();
    // 1 MiB/s: the 32 MiB copy would take half a minute.
    c.clone_internal_volumes(task, &clone_request(&lab, &[&b], Some(1)))
        .await
        .expect("start");
    wait_until("the copy makes progress", WAIT, || async {
        c.task(task).await.is_ok_and(|s| s.done_bytes > 0)
    })
    .await;
    assert_eq!(c.task(task).await.expect("status").limit_bps, Some(1 << 20));

    let hold = ferry_api::agent::PaceTask {
        limit_bps: Some(1 << 20),
        held: true,
    };
    let held = c.pace_task(task, &hold).await.expect("hold");
    assert!(held.held);
    // The hold answers once the chunks in flight are written (and their
    // file flushed): from then on nothing more is copied while held, so
    // readings a second apart agree with the first (a copy that ignored
    // the hold would move another MiB between them).
    let at_hold = c.task(task).await.expect("status").done_bytes;
    let mut last = at_hold;
    let mut steady = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while steady < 3 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = c.task(task).await.expect("status").done_bytes;
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
        assert!(
            std::time::Instant::now() < deadline,
            "the held copy kept copying"
        );
    }
    assert!(last < 32 << 20, "the copy finished while held");
    assert_eq!(
        last, at_hold,
        "a chunk was still being copied after the hold answered"
    );

    // A status read that may wait does wait while the task runs...
    let asked = std::time::Instant::now();
    let running = c
        .task_when_ended(task, std::time::Duration::from_millis(300))
        .await
        .expect("status");
    assert_eq!(running.state, TaskState::Running);
    assert!(
        asked.elapsed() >= std::time::Duration::from_millis(300),
        "the read did not wait"
    );
    assert_refused(
        c.task_when_ended(task, std::time::Duration::from_secs(6))
            .await,
        400,
        "wait at most",
    );
    // ...and answers when it ends, here once the copy is let go.
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            c.task_when_ended(task, std::time::Duration::from_secs(5))
                .await
        })
    };

    // Let go, unlimited: it finishes at once, verified.
    let go = ferry_api::agent::PaceTask {
        limit_bps: None,
        held: false,
    };
    let going = c.pace_task(task, &go).await.expect("let go");
    assert!(!going.held);
    assert_eq!(going.limit_bps, None);
    let seen = waiter.await.expect("join").expect("status");
    assert_eq!(seen.state, TaskState::Succeeded, "{seen:#?}");
    let end = c.wait_task(task, WAIT).await.expect("the copy ends");
    assert_eq!(end.state, TaskState::Succeeded, "{end:#?}");
    assert_eq!(
        lab.d2
            .volume(b.image(), b.id())
            .metadata()
            .expect("the copy")
            .legality,
        ferry_api::Legality::Legal
    );
    assert_refused(c.pace_task(task, &go).await, 409, "already");
    assert_refused(c.pace_task(Uuid::new_v4(), &go).await, 404, "no task");
    agent.stop().await;
}
