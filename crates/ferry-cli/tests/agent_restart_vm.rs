//! Given a VM running under a `ferry agent` process with a guest writing
//! to its disk, when the agent is killed with SIGKILL, then the VM keeps
//! running and writing; and when the agent is started again on the same
//! run directory, then it re-attaches to the VM (same QEMU process) and
//! can drive its block graph: a `blockMigrate` and its rollback through the
//! new agent lose none of the guest's acknowledged writes.

use std::time::Duration;

use ferry_api::agent::{CreateVolumeCrossSd, TaskState, VolumeRef};
use ferry_api::vm::{
    BlockMigrate, BlockMigrateDisk, RollbackBlockMigrate, VmBoot, VmDefinition, VmDisk, VmState,
};
use ferry_api::VolumeFormat;
use ferry_testkit::agent::{AgentProcess, KillVmsOnDrop};
use ferry_testkit::guest::{self, verify_acked_writes, SerialLog, WriterConfig};
use ferry_testkit::{base, child, qemu_io, Lab};
use uuid::Uuid;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const MIB: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(120);

fn more_acks(log: &mut SerialLog, n: usize) {
    log.poll();
    let want = log.acks().len() + n;
    log.wait_for_acks(want, WAIT)
        .unwrap_or_else(|e| panic!("the guest stopped writing: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_agent_leaves_its_vm_running_and_the_next_one_reattaches() {
    let lab = Lab::new();
    let run = lab.root().join("run-host1");
    let _reaper = KillVmsOnDrop(run.clone());
    let domains = [lab.d1.path(), lab.d2.path()];
    let mut first = AgentProcess::start(FERRY, "host1", &run, &domains).await;
    let c = first.client();
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");

    let b = base(&lab.d1, VolumeFormat::Raw, 32 * MIB);
    qemu_io(&b, &["write -P 0x5a 0 8M"]);
    let leaf = child(&b);
    let image = b.image();
    let writer = WriterConfig::new(16 * MIB, 4 * MIB);
    let art = guest::artifacts();
    let def = VmDefinition {
        id: Uuid::new_v4(),
        name: "survivor".into(),
        memory_mib: 256,
        cpus: 1,
        disks: vec![VmDisk {
            image,
            domain: lab.d1.uuid(),
        }],
        boot: Some(VmBoot {
            kernel: art.kernel,
            initrd: art.initrd,
            append: writer.kernel_cmdline(),
        }),
    };
    c.define_vm(&def).await.expect("define");
    let started = c.start_vm(def.id).await.expect("start");
    let pid = started.pid.expect("a running VM has a pid");
    let mut log = SerialLog::new(&started.serial_log);
    log.wait_ready(WAIT).expect("guest ready");
    more_acks(&mut log, 10);

    first.kill9();
    // With no agent at all, the guest keeps writing.
    more_acks(&mut log, 50);

    let second = AgentProcess::start(FERRY, "host1", &run, &domains).await;
    let c = second.client();
    let status = c.vm(def.id).await.expect("status after restart");
    assert_eq!(status.state, VmState::Running);
    assert_eq!(status.pid, Some(pid), "the same QEMU process");
    assert_eq!(status.disks[0].open_chain.len(), 2);

    // The new agent drives the VM's block graph.
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM again");
    let new_leaf = Uuid::new_v4();
    c.create_volume_cross_sd(&CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image,
        volume: new_leaf,
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image,
            volume: leaf.id(),
        },
    })
    .await
    .expect("createVolumeCrossSD");
    let switched = c
        .block_migrate(
            def.id,
            &BlockMigrate {
                disks: vec![BlockMigrateDisk {
                    image,
                    src_domain: lab.d1.uuid(),
                    dst_domain: lab.d2.uuid(),
                    volume: new_leaf,
                }],
            },
        )
        .await
        .expect("blockMigrate through the new agent");
    assert_eq!(switched.switched, 1);
    more_acks(&mut log, 20);
    let task = Uuid::new_v4();
    c.rollback_block_migrate(
        task,
        &RollbackBlockMigrate {
            vm: def.id,
            image,
            src_domain: lab.d1.uuid(),
            dst_domain: lab.d2.uuid(),
            volume: new_leaf,
        },
    )
    .await
    .expect("rollback");
    let done = c.wait_task(task, WAIT).await.expect("rollback task");
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    more_acks(&mut log, 10);
    c.stop_vm(def.id, 0).await.expect("stop");

    log.poll();
    let raw = lab.root().join("content.raw");
    guest::guest_visible_raw(&leaf.path(), &raw);
    verify_acked_writes(&raw, &writer, log.acks()).expect("every acked write is on domain1");
    let content = std::fs::read(&raw).expect("read");
    assert!(
        content[..8 << 20].iter().all(|b| *b == 0x5a),
        "base data intact"
    );
}
