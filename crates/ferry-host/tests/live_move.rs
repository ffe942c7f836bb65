//! The seed's four verbs driven against a real agent with no engine: a
//! real Linux guest (TCG) writes numbered, checksummed blocks to its disk
//! during every step, and every write it saw acknowledged must be on the
//! destination afterwards, along with every layer's earlier data.

use std::path::Path;
use std::time::Duration;

use ferry_agent_client::AgentClient;
use ferry_api::agent::{
    CloneInternalVolumes, CopyIo, CreateVolume, CreateVolumeCrossSd, DeleteImage, Release,
    TaskState, VolumeRef,
};
use ferry_api::vm::{
    BlockMigrate, BlockMigrateDisk, FinalizeBlockMigrate, FinalizeDisk, Merge,
    RollbackBlockMigrate, VmBoot, VmDefinition, VmDisk, VmState,
};
use ferry_api::{Allocation, VolumeFormat};
use ferry_host::{AgentConfig, Server};
use ferry_qemu::Accel;
use ferry_storage::{find_top, Chain, Volume};
use ferry_testkit::guest::{self, max_stall, verify_acked_writes, SerialLog, WriterConfig};
use ferry_testkit::{child, guest_content, qemu_io, Lab};
use uuid::Uuid;

const MIB: u64 = 1 << 20;
const BOOT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(120);

/// An agent serving in this process, stopped (not its VMs) on drop.
struct Agent {
    client: AgentClient,
    run_dir: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Agent {
    async fn start(lab: &Lab) -> Agent {
        ferry_testkit::pki::shared().enroll(&lab.root().join("agent"), "host1");
        let config = AgentConfig {
            name: Some("host1".into()),
            listen: "127.0.0.1:0".parse().expect("address"),
            run_dir: lab.root().join("agent"),
            domains: vec![lab.d1.path().to_path_buf(), lab.d2.path().to_path_buf()],
            accel: Accel::Tcg,
        };
        let server = Server::bind(config).await.expect("bind agent");
        let url = format!("https://{}", server.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_until(async move {
            let _ = rx.await;
        }));
        let client = AgentClient::new(url, &ferry_testkit::pki::shared().client_tls());
        client.acquire_spm(lab.d1.uuid()).await.expect("become SPM");
        Agent {
            client,
            run_dir: lab.root().join("agent"),
            stop: Some(tx),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        // VMs outlive their agent by design; a test must not leave any.
        ferry_testkit::agent::kill_vms(&self.run_dir);
    }
}

/// `base(raw, 64 MiB) <- snap1(qcow2)` on domain1: 0x11 over 0..16 MiB in
/// the base, 0x22 over 8..24 MiB in snap1. The writer gets 32..40 MiB.
fn disk_on_domain1(lab: &Lab) -> (Volume, Volume) {
    let base = ferry_testkit::base(&lab.d1, VolumeFormat::Raw, 64 * MIB);
    qemu_io(&base, &["write -P 0x11 0 16M"]);
    let snap1 = child(&base);
    qemu_io(&snap1, &["write -P 0x22 8M 16M"]);
    (base, snap1)
}

fn writer_region() -> WriterConfig {
    WriterConfig::new(32 * MIB, 8 * MIB)
}

fn vm_definition(name: &str, disks: Vec<VmDisk>, writer: &WriterConfig) -> VmDefinition {
    let art = guest::artifacts();
    VmDefinition {
        id: Uuid::new_v4(),
        name: name.into(),
        memory_mib: 256,
        cpus: 1,
        disks,
        boot: Some(VmBoot {
            kernel: art.kernel,
            initrd: art.initrd,
            append: writer.kernel_cmdline(),
        }),
    }
}

/// Waits for `n` more acknowledged writes than the log has now, proving
/// the guest's writes go on; returns the last seq seen before waiting.
fn writes_go_on(log: &mut SerialLog, n: usize) -> u64 {
    log.poll();
    let before = log.acks().len();
    let last = log.acks().last().map_or(0, |a| a.seq);
    log.wait_for_acks(before + n, STEP)
        .unwrap_or_else(|e| panic!("the guest stopped writing: {e}"));
    last
}

/// The longest the writer was held up between seq `from` and now.
fn stall_since(log: &mut SerialLog, from: u64) -> Duration {
    writes_go_on(log, 5);
    let to = log.acks().last().map_or(0, |a| a.seq);
    max_stall(log.acks(), from, to)
}

fn assert_bytes(content: &[u8], from: u64, len: u64, byte: u8, what: &str) {
    let a = usize::try_from(from).expect("fits");
    let b = a + usize::try_from(len).expect("fits");
    assert!(
        content[a..b].iter().all(|x| *x == byte),
        "{what}: bytes {from}..{} are not all {byte:#x}",
        from + len
    );
}

/// Every acknowledged write, and the data the layers held before, read
/// through the chain whose leaf is `leaf`.
fn check_content(leaf: &Path, writer: &WriterConfig, log: &mut SerialLog, lab: &Lab) {
    log.poll();
    let raw = lab.root().join("content.raw");
    guest::guest_visible_raw(leaf, &raw);
    let check = verify_acked_writes(&raw, writer, log.acks()).expect("every acked write is there");
    assert!(check.slots_checked > 0);
    let content = std::fs::read(&raw).expect("read content");
    assert_bytes(&content, 0, 8 * MIB, 0x11, "base data");
    assert_bytes(&content, 8 * MIB, 16 * MIB, 0x22, "snap1 data");
    assert_bytes(&content, 24 * MIB, 8 * MIB, 0, "never written");
    assert_bytes(&content, 40 * MIB, 24 * MIB, 0, "never written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vm_moves_to_domain2_with_every_acknowledged_write() {
    let lab = Lab::new();
    let agent = Agent::start(&lab).await;
    let c = &agent.client;
    let (base, snap1) = disk_on_domain1(&lab);
    let image = base.image();
    let writer = writer_region();
    let def = vm_definition(
        "mover",
        vec![VmDisk {
            image,
            domain: lab.d1.uuid(),
        }],
        &writer,
    );
    let vm = def.id;
    c.define_vm(&def).await.expect("define");
    let status = c.start_vm(vm).await.expect("start");
    let mut log = SerialLog::new(&status.serial_log);
    log.wait_ready(BOOT).expect("guest writer ready");
    writes_go_on(&mut log, 20);

    // createVolumeCrossSD (SPM).
    let snap2 = Uuid::new_v4();
    c.create_volume_cross_sd(&CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image,
        volume: snap2,
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image,
            volume: snap1.id(),
        },
    })
    .await
    .expect("createVolumeCrossSD");

    // blockMigrate (HSM), twice: the second call does nothing.
    let req = BlockMigrate {
        disks: vec![BlockMigrateDisk {
            image,
            src_domain: lab.d1.uuid(),
            dst_domain: lab.d2.uuid(),
            volume: snap2,
        }],
    };
    let from = log.acks().last().map_or(0, |a| a.seq);
    let report = c.block_migrate(vm, &req).await.expect("blockMigrate");
    assert_eq!(report.switched, 1);
    let snapshot_stall = stall_since(&mut log, from);
    assert_eq!(c.block_migrate(vm, &req).await.expect("again").switched, 0);
    let status = c.vm(vm).await.expect("status");
    assert_eq!(status.disks[0].open_chain[0].domain, lab.d2.uuid());
    assert_eq!(status.disks[0].open_chain[1].domain, lab.d1.uuid());

    // cloneInternalVolumes (SPM), while the guest writes.
    let task = Uuid::new_v4();
    c.clone_internal_volumes(
        task,
        &CloneInternalVolumes {
            src_domain: lab.d1.uuid(),
            dst_domain: lab.d2.uuid(),
            image,
            volumes: vec![base.id(), snap1.id()],
            bandwidth_mib_s: None,
            io: CopyIo::Direct,
        },
    )
    .await
    .expect("start clone");
    let done = c.wait_task(task, STEP).await.expect("clone");
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    writes_go_on(&mut log, 10);

    // finalizeBlockMigrate (HSM), twice.
    let fin = FinalizeBlockMigrate {
        disks: vec![FinalizeDisk {
            image,
            src_domain: lab.d1.uuid(),
            dst_domain: lab.d2.uuid(),
        }],
    };
    let from = log.acks().last().map_or(0, |a| a.seq);
    assert_eq!(
        c.finalize_block_migrate(vm, &fin)
            .await
            .expect("finalize")
            .switched,
        1
    );
    let reopen_stall = stall_since(&mut log, from);
    assert_eq!(
        c.finalize_block_migrate(vm, &fin)
            .await
            .expect("again")
            .switched,
        0
    );
    let status = c.vm(vm).await.expect("status");
    assert!(
        status.disks[0]
            .open_chain
            .iter()
            .all(|v| v.domain == lab.d2.uuid()),
        "{status:?}"
    );

    // merge (HSM task): snap2 folds into snap1's copy; the chain keeps its shape.
    let merge = Uuid::new_v4();
    let params = Merge {
        vm,
        image,
        domain: lab.d2.uuid(),
        volume: snap2,
    };
    let from = log.acks().last().map_or(0, |a| a.seq);
    c.merge(merge, &params).await.expect("start merge");
    let done = c.wait_task(merge, STEP).await.expect("merge");
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    let pivot_stall = stall_since(&mut log, from);
    // Called again with a new task id, it finds nothing left to do.
    let again = Uuid::new_v4();
    c.merge(again, &params).await.expect("merge again");
    assert_eq!(
        c.wait_task(again, STEP).await.expect("merge").state,
        TaskState::Succeeded
    );

    let leaf = find_top(&lab.d2, image).expect("leaf on domain2");
    assert_eq!(leaf.id(), snap1.id());
    let chain = Chain::walk(&lab.domains(), &leaf).expect("chain");
    assert_eq!(chain.len(), 2);
    assert!(chain.volumes().all(|v| v.domain().uuid() == lab.d2.uuid()));
    assert_eq!(chain.base().metadata.format, VolumeFormat::Raw);

    // cleanup (SPM): domain1 lets go of the disk.
    writes_go_on(&mut log, 10);
    c.stop_vm(vm, 0).await.expect("stop");
    // As the engine's cleanup does: the space comes back after the answer.
    let deleted = c
        .delete_image(&DeleteImage {
            domain: lab.d1.uuid(),
            image,
            release: Release::Background,
        })
        .await
        .expect("cleanup");
    assert!(deleted.releasing_in_background, "{deleted:?}");
    assert!(!deleted.deleted.is_empty(), "{deleted:?}");
    for id in &deleted.deleted {
        assert!(
            !lab.d1.volume(image, *id).exists(),
            "volume {id} is still on domain1 when the delete answers"
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lab.d1.image_dir(image).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "domain1 still holds what is left of the image after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check_content(&leaf.path(), &writer, &mut log, &lab);

    // The VM starts from domain2 alone and writes there.
    let status = c.start_vm(vm).await.expect("restart on domain2");
    assert_eq!(status.state, VmState::Running);
    let mut second = SerialLog::new(&status.serial_log);
    second
        .wait_for_acks(20, BOOT)
        .expect("writes after restart");
    c.stop_vm(vm, 0).await.expect("stop");
    let after = guest_content(&leaf);
    assert_bytes(&after, 0, 8 * MIB, 0x11, "base data after restart");

    println!(
        "writer stalls: live snapshot {} ms, reopen {} ms, commit pivot {} ms",
        snapshot_stall.as_millis(),
        reopen_stall.as_millis(),
        pivot_stall.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_block_migrate_leaves_the_vm_on_domain1_with_all_its_data() {
    let lab = Lab::new();
    let agent = Agent::start(&lab).await;
    let c = &agent.client;
    let (base, snap1) = disk_on_domain1(&lab);
    let image = base.image();
    let writer = writer_region();
    let def = vm_definition(
        "rollback",
        vec![VmDisk {
            image,
            domain: lab.d1.uuid(),
        }],
        &writer,
    );
    let vm = def.id;
    c.define_vm(&def).await.expect("define");
    let status = c.start_vm(vm).await.expect("start");
    let mut log = SerialLog::new(&status.serial_log);
    log.wait_ready(BOOT).expect("guest writer ready");
    writes_go_on(&mut log, 10);

    let snap2 = Uuid::new_v4();
    c.create_volume_cross_sd(&CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image,
        volume: snap2,
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image,
            volume: snap1.id(),
        },
    })
    .await
    .expect("createVolumeCrossSD");
    c.block_migrate(
        vm,
        &BlockMigrate {
            disks: vec![BlockMigrateDisk {
                image,
                src_domain: lab.d1.uuid(),
                dst_domain: lab.d2.uuid(),
                volume: snap2,
            }],
        },
    )
    .await
    .expect("blockMigrate");
    writes_go_on(&mut log, 20);

    let task = Uuid::new_v4();
    c.rollback_block_migrate(
        task,
        &RollbackBlockMigrate {
            vm,
            image,
            src_domain: lab.d1.uuid(),
            dst_domain: lab.d2.uuid(),
            volume: snap2,
        },
    )
    .await
    .expect("start rollback");
    let done = c.wait_task(task, STEP).await.expect("rollback");
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    writes_go_on(&mut log, 10);
    let status = c.vm(vm).await.expect("status");
    assert!(status.disks[0]
        .open_chain
        .iter()
        .all(|v| v.domain == lab.d1.uuid()));
    assert_eq!(status.disks[0].domain, lab.d1.uuid());

    c.stop_vm(vm, 0).await.expect("stop");
    // Nothing of the disk is left on domain2.
    assert!(!lab.d2.image_dir(image).exists());
    assert_eq!(find_top(&lab.d1, image).expect("leaf").id(), snap1.id());
    check_content(&snap1.path(), &writer, &mut log, &lab);
}

/// Creates the move's new leaf over the disk's leaf (createVolumeCrossSD).
async fn new_leaf_on_domain2(c: &AgentClient, lab: &Lab, leaf: &Volume) -> Uuid {
    let volume = Uuid::new_v4();
    c.create_volume_cross_sd(&CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image: leaf.image(),
        volume,
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image: leaf.image(),
            volume: leaf.id(),
        },
    })
    .await
    .expect("createVolumeCrossSD");
    volume
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_disks_switch_together_and_out_of_order_verbs_are_refused_without_change() {
    let lab = Lab::new();
    let agent = Agent::start(&lab).await;
    let c = &agent.client;
    let (base_a, leaf_a) = disk_on_domain1(&lab);
    let base_b = ferry_testkit::base(&lab.d1, VolumeFormat::Qcow2, 16 * MIB);
    qemu_io(&base_b, &["write -P 0x33 0 1M"]);
    let writer = writer_region();
    let def = vm_definition(
        "pair",
        vec![
            VmDisk {
                image: base_a.image(),
                domain: lab.d1.uuid(),
            },
            VmDisk {
                image: base_b.image(),
                domain: lab.d1.uuid(),
            },
        ],
        &writer,
    );
    let vm = def.id;
    c.define_vm(&def).await.expect("define");

    // blockMigrate of a VM that is not running: refused, the engine moves
    // such a disk cold.
    let new_a = new_leaf_on_domain2(c, &lab, &leaf_a).await;
    let new_b = new_leaf_on_domain2(c, &lab, &base_b).await;
    let both = BlockMigrate {
        disks: vec![
            BlockMigrateDisk {
                image: base_a.image(),
                src_domain: lab.d1.uuid(),
                dst_domain: lab.d2.uuid(),
                volume: new_a,
            },
            BlockMigrateDisk {
                image: base_b.image(),
                src_domain: lab.d1.uuid(),
                dst_domain: lab.d2.uuid(),
                volume: new_b,
            },
        ],
    };
    let err = c.block_migrate(vm, &both).await.expect_err("not running");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err}");
    assert!(err.message().contains("not running"), "{err}");
    // The engine decides on the kind, never on the words.
    assert_eq!(err.kind(), ferry_api::ErrorKind::VmNotRunning, "{err}");

    let status = c.start_vm(vm).await.expect("start");
    let mut log = SerialLog::new(&status.serial_log);
    log.wait_ready(BOOT).expect("guest ready");
    writes_go_on(&mut log, 10);

    // One bad disk in the request: nothing is switched.
    let mut bad = both.clone();
    bad.disks[1].volume = Uuid::new_v4();
    let err = c.block_migrate(vm, &bad).await.expect_err("unknown leaf");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{err}");
    let status = c.vm(vm).await.expect("status");
    assert!(status
        .disks
        .iter()
        .all(|d| d.open_chain[0].domain == lab.d1.uuid()));

    // finalize before the copies exist: refused, nothing changed.
    let fin = FinalizeBlockMigrate {
        disks: vec![FinalizeDisk {
            image: base_a.image(),
            src_domain: lab.d1.uuid(),
            dst_domain: lab.d2.uuid(),
        }],
    };
    let err = c
        .finalize_block_migrate(vm, &fin)
        .await
        .expect_err("no copies");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err}");
    assert!(err.message().contains("cloneInternalVolumes"), "{err}");

    // Both disks switch in one transaction.
    let report = c.block_migrate(vm, &both).await.expect("blockMigrate");
    assert_eq!(report.switched, 2);
    let status = c.vm(vm).await.expect("status");
    for d in &status.disks {
        assert_eq!(d.open_chain[0].domain, lab.d2.uuid(), "{status:?}");
        assert_eq!(d.domain, lab.d2.uuid());
    }
    writes_go_on(&mut log, 10);

    // merge before finalize: refused at once, no task made.
    let task = Uuid::new_v4();
    let err = c
        .merge(
            task,
            &Merge {
                vm,
                image: base_a.image(),
                domain: lab.d2.uuid(),
                volume: new_a,
            },
        )
        .await
        .expect_err("merge before finalize");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err}");
    assert!(c.task(task).await.is_err());

    // Roll both back; the VM ends on domain1 with its data.
    for (image, volume) in [(base_a.image(), new_a), (base_b.image(), new_b)] {
        let task = Uuid::new_v4();
        c.rollback_block_migrate(
            task,
            &RollbackBlockMigrate {
                vm,
                image,
                src_domain: lab.d1.uuid(),
                dst_domain: lab.d2.uuid(),
                volume,
            },
        )
        .await
        .expect("rollback");
        let done = c.wait_task(task, STEP).await.expect("rollback");
        assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    }
    writes_go_on(&mut log, 10);

    // blockMigrate within one domain is a live snapshot (disk snapshot).
    let snap = Uuid::new_v4();
    c.create_volume(&CreateVolume {
        domain: lab.d1.uuid(),
        image: base_b.image(),
        volume: snap,
        format: VolumeFormat::Qcow2,
        size: None,
        allocation: Allocation::Sparse,
        parent: Some(base_b.id()),
        parent_image: None,
        description: String::new(),
    })
    .await
    .expect("create the snapshot volume");
    let report = c
        .block_migrate(
            vm,
            &BlockMigrate {
                disks: vec![BlockMigrateDisk {
                    image: base_b.image(),
                    src_domain: lab.d1.uuid(),
                    dst_domain: lab.d1.uuid(),
                    volume: snap,
                }],
            },
        )
        .await
        .expect("live snapshot");
    assert_eq!(report.switched, 1);
    let status = c.vm(vm).await.expect("status");
    assert_eq!(status.disks[1].open_chain[0].volume, snap);
    assert_eq!(status.disks[1].open_chain.len(), 2);

    c.stop_vm(vm, 0).await.expect("stop");
    assert!(!lab.d2.image_dir(base_a.image()).exists());
    assert!(!lab.d2.image_dir(base_b.image()).exists());
    check_content(&leaf_a.path(), &writer, &mut log, &lab);
    assert_bytes(&guest_content(&base_b), 0, MIB, 0x33, "second disk");
}
