//! The block-graph operations of a live move, each on a real QEMU (TCG, no
//! guest: the firmware idles) with writes issued through the disk device
//! itself (`qemu-io -d <device>` over the monitor), and the guest-visible
//! content of every layer read back with qemu-img afterwards.

use std::path::Path;

use ferry_api::VolumeFormat;
use ferry_qemu::block::{self, MirrorOptions, SnapshotTarget};
use ferry_qemu::{jobs, Accel, DiskSpec, Error, Layer, NodeNames, Vm, VmSpec};
use ferry_storage::{copy_volume, CopyControl, Volume, VolumeSpec};
use ferry_testkit::{child, guest_content, guest_content_of, qemu_io, Lab};

const MIB: u64 = 1 << 20;
const DEVICE: &str = "disk0";

fn layer(v: &Volume) -> Layer {
    let md = v.metadata().expect("read metadata");
    Layer {
        path: v.path(),
        format: md.format,
        nodes: NodeNames::for_volume(v.domain().uuid(), v.id()),
    }
}

fn spec(lab: &Lab, chain: &[&Volume]) -> VmSpec {
    VmSpec {
        name: "test-vm".into(),
        memory_mib: 64,
        cpus: 1,
        accel: Accel::Tcg,
        disks: vec![DiskSpec {
            device: DEVICE.into(),
            chain: chain.iter().map(|v| layer(v)).collect(),
        }],
        boot: None,
        serial_log: None,
        run_dir: lab.root().join("run"),
    }
}

/// Writes through the VM's disk device, as the guest would.
async fn write(vm: &Vm, byte: u8, offset: u64, len: u64) {
    let out = vm
        .qmp()
        .hmp(&format!(
            "qemu-io -d /machine/peripheral/{DEVICE}/virtio-backend \"write -P {byte:#x} {offset} {len}\""
        ))
        .await
        .expect("qemu-io over HMP");
    // qemu-io reports success on QEMU's stdout, errors on the monitor.
    assert!(!out.contains("rror"), "qemu-io said: {out}");
}

/// `base(raw, 8 MiB) <- snap1(qcow2)` on domain1, data in both layers.
fn two_layer_chain(lab: &Lab) -> (Volume, Volume) {
    let base = ferry_testkit::base(&lab.d1, VolumeFormat::Raw, 8 * MIB);
    qemu_io(&base, &["write -P 0x11 0 4M"]);
    let snap1 = child(&base);
    qemu_io(&snap1, &["write -P 0x22 1M 1M"]);
    (base, snap1)
}

fn assert_range(content: &[u8], offset: u64, len: u64, byte: u8) {
    let start = usize::try_from(offset).expect("offset fits");
    let end = start + usize::try_from(len).expect("len fits");
    assert!(
        content[start..end].iter().all(|b| *b == byte),
        "bytes {offset}..{} are not all {byte:#x}",
        offset + len
    );
}

#[tokio::test]
async fn snapshot_finalize_and_merge_move_a_running_disk_to_another_domain() {
    let lab = Lab::new();
    let (base, snap1) = two_layer_chain(&lab);
    let vm = Vm::start(&spec(&lab, &[&base, &snap1]))
        .await
        .expect("start VM")
        .kill_on_drop();
    write(&vm, 0x33, 2 * MIB, MIB).await;

    // blockMigrate: the VM now writes to snap2 on domain2.
    let snap2 = lab
        .d2
        .create_volume(&VolumeSpec::child_of(&snap1))
        .expect("createVolumeCrossSD");
    let active = block::active_node(vm.qmp(), DEVICE).await.expect("active");
    assert_eq!(active, layer(&snap1).nodes.format);
    block::snapshot(
        vm.qmp(),
        &[SnapshotTarget {
            active,
            overlay: layer(&snap2),
        }],
    )
    .await
    .expect("live snapshot");
    assert_eq!(
        block::active_node(vm.qmp(), DEVICE).await.expect("active"),
        layer(&snap2).nodes.format
    );
    write(&vm, 0x44, 3 * MIB, MIB).await;
    // snap1 is read-only from here on: the write went to domain2.
    assert_range(&guest_content(&snap1), 3 * MIB, MIB, 0x11);

    // cloneInternalVolumes: layer-exact copies of base and snap1.
    let domains = lab.domains();
    for v in [&base, &snap1] {
        copy_volume(&domains, v, &lab.d2, &CopyControl::default()).expect("copy");
    }
    let base2 = lab.d2.volume(base.image(), base.id());
    let snap1_2 = lab.d2.volume(snap1.image(), snap1.id());

    // finalizeBlockMigrate: snap2 onto the domain2 chain, header relative.
    let new_chain = [layer(&base2), layer(&snap1_2)];
    block::add_chain(vm.qmp(), &new_chain)
        .await
        .expect("add chain");
    let top = layer(&snap2);
    block::reopen_backing(vm.qmp(), &top, &layer(&snap1_2).nodes.format)
        .await
        .expect("reopen onto the domain2 chain");
    block::set_backing_file(
        vm.qmp(),
        &top.nodes.format,
        &top.nodes.format,
        &snap1.id().to_string(),
    )
    .await
    .expect("rewrite the header");
    block::del_chain(vm.qmp(), &[layer(&base), layer(&snap1)])
        .await
        .expect("close the domain1 chain");
    let chain = block::chain_of(vm.qmp(), &top.nodes.format)
        .await
        .expect("chain");
    assert_eq!(
        chain,
        vec![
            top.nodes.format.clone(),
            layer(&snap1_2).nodes.format,
            layer(&base2).nodes.format
        ]
    );
    write(&vm, 0x55, 4 * MIB, MIB).await;

    // merge: commit snap2 into snap1's copy, pivot, close snap2.
    block::commit_active(
        vm.qmp(),
        "merge-1",
        &top.nodes.format,
        &layer(&snap1_2).nodes.format,
    )
    .await
    .expect("active commit");
    block::del_layer(vm.qmp(), &top).await.expect("close snap2");
    assert_eq!(
        block::active_node(vm.qmp(), DEVICE).await.expect("active"),
        layer(&snap1_2).nodes.format
    );
    write(&vm, 0x66, 5 * MIB, MIB).await;
    assert!(jobs::list(vm.qmp()).await.expect("jobs").is_empty());
    vm.stop(std::time::Duration::ZERO).await.expect("stop");

    // snap2's header names its parent relatively, so it opens on domain2.
    let info = ferry_storage::qemu_img::info_chain(&snap2.path()).expect("info");
    assert_eq!(
        info[0].backing_filename.as_deref(),
        Some(snap1.id().to_string().as_str())
    );
    // Everything the VM wrote is in domain2's chain, which no longer needs
    // domain1 at all.
    std::fs::remove_file(snap1.path()).expect("remove the domain1 leaf");
    std::fs::remove_file(base.path()).expect("remove the domain1 base");
    let content = guest_content(&snap1_2);
    assert_range(&content, 0, MIB, 0x11);
    assert_range(&content, MIB, MIB, 0x22);
    assert_range(&content, 2 * MIB, MIB, 0x33);
    assert_range(&content, 3 * MIB, MIB, 0x44);
    assert_range(&content, 4 * MIB, MIB, 0x55);
    assert_range(&content, 5 * MIB, MIB, 0x66);
    assert_range(&content, 6 * MIB, 2 * MIB, 0);
}

#[tokio::test]
async fn rollback_commits_the_new_leaf_back_into_the_source_leaf() {
    let lab = Lab::new();
    let (base, snap1) = two_layer_chain(&lab);
    let vm = Vm::start(&spec(&lab, &[&base, &snap1]))
        .await
        .expect("start VM")
        .kill_on_drop();
    let snap2 = lab
        .d2
        .create_volume(&VolumeSpec::child_of(&snap1))
        .expect("create snap2");
    let s1 = layer(&snap1).nodes.format;
    block::snapshot(
        vm.qmp(),
        &[SnapshotTarget {
            active: s1.clone(),
            overlay: layer(&snap2),
        }],
    )
    .await
    .expect("snapshot");
    write(&vm, 0x77, 6 * MIB, MIB).await;
    block::commit_active(vm.qmp(), "rollback-1", &layer(&snap2).nodes.format, &s1)
        .await
        .expect("commit back");
    block::del_layer(vm.qmp(), &layer(&snap2))
        .await
        .expect("close");
    assert_eq!(
        block::active_node(vm.qmp(), DEVICE).await.expect("active"),
        s1
    );
    vm.stop(std::time::Duration::ZERO).await.expect("stop");
    let content = guest_content(&snap1);
    assert_range(&content, 6 * MIB, MIB, 0x77);
    assert_range(&content, MIB, MIB, 0x22);
}

#[tokio::test]
async fn a_merge_can_be_run_again_after_an_attempt_that_failed() {
    // Given a VM writing to snap2 over snap1, and an earlier commit of the
    // same id that ended without pivoting (cancelled before it was ready:
    // a failure QEMU keeps as a concluded job, as it keeps a commit that
    // hit a full destination)...
    let lab = Lab::new();
    let (base, snap1) = two_layer_chain(&lab);
    let vm = Vm::start(&spec(&lab, &[&base, &snap1]))
        .await
        .expect("start VM")
        .kill_on_drop();
    let snap2 = child(&snap1);
    let (s1, s2) = (layer(&snap1).nodes.format, layer(&snap2));
    block::snapshot(
        vm.qmp(),
        &[SnapshotTarget {
            active: s1.clone(),
            overlay: s2.clone(),
        }],
    )
    .await
    .expect("snapshot");
    write(&vm, 0x55, 5 * MIB, 2 * MIB).await;
    vm.qmp()
        .execute(
            "block-commit",
            serde_json::json!({
                "job-id": "commit-again",
                "device": s2.nodes.format,
                "base-node": s1,
                "auto-dismiss": false,
                "speed": 1,
            }),
        )
        .await
        .expect("a slow commit");
    jobs::cancel(vm.qmp(), "commit-again")
        .await
        .expect("cancel it");
    let failed = jobs::wait_for(
        vm.qmp(),
        "commit-again",
        jobs::JobStatus::Concluded,
        std::time::Duration::from_secs(30),
    )
    .await;
    assert!(
        failed.is_err(),
        "the first attempt should have failed: {failed:?}"
    );
    assert!(
        jobs::get(vm.qmp(), "commit-again")
            .await
            .expect("jobs")
            .is_some(),
        "the failed attempt stays in QEMU until dismissed"
    );

    // ...when the merge runs again with the same job id, then it commits
    // and pivots, and QEMU holds no job afterwards.
    block::commit_active(vm.qmp(), "commit-again", &s2.nodes.format, &s1)
        .await
        .expect("the second attempt commits");
    assert_eq!(
        block::active_node(vm.qmp(), DEVICE).await.expect("active"),
        s1
    );
    assert!(jobs::list(vm.qmp()).await.expect("jobs").is_empty());
    block::del_layer(vm.qmp(), &s2).await.expect("close snap2");
    vm.stop(std::time::Duration::ZERO).await.expect("stop");
    let content = guest_content(&snap1);
    assert_range(&content, 5 * MIB, 2 * MIB, 0x55);
    assert_range(&content, MIB, MIB, 0x22);
}

#[tokio::test]
async fn snapshot_of_two_disks_is_one_transaction_and_failure_changes_nothing() {
    let lab = Lab::new();
    let (base, snap1) = two_layer_chain(&lab);
    let vm = Vm::start(&spec(&lab, &[&base, &snap1]))
        .await
        .expect("start VM")
        .kill_on_drop();
    let snap2 = lab
        .d2
        .create_volume(&VolumeSpec::child_of(&snap1))
        .expect("create snap2");
    let before = block::node_names(vm.qmp()).await.expect("nodes");
    // The second target names a node that does not exist: the whole
    // transaction fails and the good overlay is closed again.
    let err = block::snapshot(
        vm.qmp(),
        &[
            SnapshotTarget {
                active: layer(&snap1).nodes.format,
                overlay: layer(&snap2),
            },
            SnapshotTarget {
                active: "no-such-node".into(),
                overlay: Layer {
                    nodes: NodeNames::for_volume(uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
                    ..layer(&snap2)
                },
            },
        ],
    )
    .await
    .expect_err("a bad target fails the snapshot");
    assert!(err.is_refusal(), "{err}");
    let mut after = block::node_names(vm.qmp()).await.expect("nodes");
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after);
    assert_eq!(
        block::active_node(vm.qmp(), DEVICE).await.expect("active"),
        layer(&snap1).nodes.format
    );
}

#[tokio::test]
async fn mirror_completes_onto_a_flat_copy_or_cancels_back() {
    let lab = Lab::new();
    let (base, snap1) = two_layer_chain(&lab);
    let vm = Vm::start(&spec(&lab, &[&base, &snap1]))
        .await
        .expect("start VM")
        .kill_on_drop();
    let source = layer(&snap1).nodes.format;

    // Cancel first: the VM stays on its source.
    let t1 = lab
        .d2
        .create_volume(&VolumeSpec::base(
            uuid::Uuid::new_v4(),
            VolumeFormat::Raw,
            8 * MIB,
        ))
        .expect("target");
    block::add_layer(vm.qmp(), &layer(&t1), None)
        .await
        .expect("open target");
    let opts = MirrorOptions { speed: 0 };
    block::mirror(vm.qmp(), "m1", &source, &layer(&t1).nodes.format, &opts)
        .await
        .expect("start mirror");
    jobs::wait_for(
        vm.qmp(),
        "m1",
        jobs::JobStatus::Ready,
        std::time::Duration::from_secs(60),
    )
    .await
    .expect("ready");
    // Progress: a ready mirror has copied all it knows of.
    let job = jobs::get(vm.qmp(), "m1")
        .await
        .expect("query")
        .expect("job");
    assert_eq!(job.kind, "mirror");
    assert!(job.len >= 8 * MIB && job.offset == job.len, "{job:?}");
    block::cancel_job(vm.qmp(), "m1").await.expect("cancel");
    assert_eq!(
        block::active_node(vm.qmp(), DEVICE).await.expect("active"),
        source
    );
    block::del_layer(vm.qmp(), &layer(&t1))
        .await
        .expect("close");

    // Then complete: the VM writes to the flat copy.
    let t2 = lab
        .d2
        .create_volume(&VolumeSpec::base(
            uuid::Uuid::new_v4(),
            VolumeFormat::Raw,
            8 * MIB,
        ))
        .expect("target");
    block::add_layer(vm.qmp(), &layer(&t2), None)
        .await
        .expect("open target");
    block::mirror(vm.qmp(), "m2", &source, &layer(&t2).nodes.format, &opts)
        .await
        .expect("start mirror");
    block::pivot_when_ready(vm.qmp(), "m2")
        .await
        .expect("pivot");
    assert_eq!(
        block::active_node(vm.qmp(), DEVICE).await.expect("active"),
        layer(&t2).nodes.format
    );
    write(&vm, 0x99, 7 * MIB, MIB).await;
    vm.stop(std::time::Duration::ZERO).await.expect("stop");
    let flat = guest_content_of(&t2.path());
    assert_eq!(flat[..usize::try_from(7 * MIB).expect("fits")], {
        let mut want = guest_content(&snap1);
        want.truncate(usize::try_from(7 * MIB).expect("fits"));
        want
    });
    assert_range(&flat, 7 * MIB, MIB, 0x99);
}

#[tokio::test]
async fn a_vm_that_cannot_open_its_disk_fails_to_start_with_qemus_reason() {
    let lab = Lab::new();
    let (base, snap1) = two_layer_chain(&lab);
    let mut spec = spec(&lab, &[&base, &snap1]);
    spec.disks[0].chain[0].path = lab.root().join("missing.raw");
    let err = Vm::start(&spec).await.expect_err("must fail");
    match err {
        Error::Start { message, .. } => assert!(message.contains("missing.raw"), "{message}"),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(!Vm::is_running_in(Path::new(&spec.run_dir)));
}

#[tokio::test]
async fn a_restarted_agent_reattaches_and_notices_death() {
    let lab = Lab::new();
    let (base, snap1) = two_layer_chain(&lab);
    let spec = spec(&lab, &[&base, &snap1]);
    let first = Vm::start(&spec).await.expect("start VM");
    let pid = first.pid();
    drop(first); // the agent goes away; QEMU must not

    let again = Vm::attach("test-vm", &spec.run_dir)
        .await
        .expect("re-attach")
        .kill_on_drop();
    assert_eq!(again.pid(), pid);
    write(&again, 0x12, 0, MIB).await;
    // A second start of the same VM is refused while it runs.
    assert!(matches!(
        Vm::start(&spec).await,
        Err(Error::InvalidRequest(_))
    ));
    let watcher = again.qmp().clone();
    let died = tokio::spawn(async move { watcher.closed().await });
    again.kill().await.expect("kill");
    tokio::time::timeout(std::time::Duration::from_secs(10), died)
        .await
        .expect("death noticed")
        .expect("join");
}
