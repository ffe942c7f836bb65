//! Host agents as real processes on one machine, sharing the domains:
//! given two agents, only one can be SPM, and killing it with SIGKILL
//! frees the lease for the other; given an agent killed with SIGKILL in the
//! middle of `cloneInternalVolumes`, when it is restarted on the same run
//! directory and made SPM again, then the task resumes and the copy is
//! complete and verified; given an agent that dies inside
//! `createVolumeCrossSD` or inside a delete, when it is restarted and the
//! call comes again, then the call goes on and succeeds instead of
//! answering 409.

use std::time::{Duration, Instant};

use ferry_agent_client::ClientError;
use ferry_api::agent::{
    CloneInternalVolumes, CopyIo, CreateVolumeCrossSd, DeleteVolumes, TaskState, VolumeRef,
};
use ferry_api::{Legality, VolumeFormat, VolumeRole};
use ferry_storage::{Chain, Presence};
use ferry_testkit::agent::AgentProcess;
use ferry_testkit::{base, child, guest_content, own_allocation, qemu_io, same_guest_content, Lab};
use uuid::Uuid;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn run_dir(lab: &Lab, name: &str) -> std::path::PathBuf {
    lab.root().join(format!("run-{name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn only_one_of_two_agents_is_spm_and_a_killed_spm_frees_the_lease() {
    let lab = Lab::new();
    let domains = [lab.d1.path(), lab.d2.path()];
    let mut alpha = AgentProcess::start(FERRY, "alpha", &run_dir(&lab, "alpha"), &domains).await;
    let beta = AgentProcess::start(FERRY, "beta", &run_dir(&lab, "beta"), &domains).await;
    let (a, b) = (alpha.client(), beta.client());
    let master = lab.d1.uuid();

    assert!(a.acquire_spm(master).await.expect("alpha becomes SPM").spm);
    let refused = b.acquire_spm(master).await.expect_err("beta is refused");
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(409), "{refused}");
    let msg = refused.message();
    assert!(msg.contains("host beta is not SPM"), "{msg}");
    assert!(msg.contains("held by another host (alpha"), "{msg}");
    assert!(!b.health().await.expect("beta health").spm);

    alpha.kill9();
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        match b.acquire_spm(master).await {
            Ok(s) => break s,
            Err(e) if e.status().map(|s| s.as_u16()) == Some(409) => {
                assert!(Instant::now() < deadline, "beta never got the lease: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("acquire failed: {e}"),
        }
    };
    assert!(got.spm);
    let h = b.health().await.expect("health");
    assert_eq!(
        (h.name.as_str(), h.spm, h.spm_domain),
        ("beta", true, Some(master))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_clone_resumes_the_task_after_a_restart() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 1 << 30);
    qemu_io(&b, &["write -P 0x71 0 192M", "write -P 0x72 512M 64M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x73 100M 16M", "write -z 520M 1M"]);
    let image = b.image();
    let domains = [lab.d1.path(), lab.d2.path()];
    let rd = run_dir(&lab, "spm");

    let mut agent = AgentProcess::start(FERRY, "spm", &rd, &domains).await;
    let c = agent.client();
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let task = Uuid::new_v4();
    let req = CloneInternalVolumes {
        src_domain: lab.d1.uuid(),
        dst_domain: lab.d2.uuid(),
        image,
        volumes: vec![b.id(), s1.id()],
        // 64 MiB/s: about 4 s for the 272 MiB, time enough to kill it midway.
        bandwidth_mib_s: Some(64),
        io: CopyIo::Buffered,
    };
    let started = c
        .clone_internal_volumes(task, &req)
        .await
        .expect("start the clone");
    assert_eq!(started.state, TaskState::Running);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = c.task(task).await.expect("status");
        assert_eq!(
            s.state,
            TaskState::Running,
            "finished before it could be killed: {s:?}"
        );
        if s.done_bytes >= 48 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the copy never got going: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.kill9();

    let partial = lab.d2.volume(image, b.id());
    assert_eq!(
        partial
            .metadata()
            .expect("the partial copy's metadata")
            .legality,
        Legality::Illegal,
        "a half-copied volume must never look usable"
    );
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rd.join("tasks").join(format!("{task}.json"))).expect("task record"),
    )
    .expect("JSON");
    assert_eq!(record["state"], "running");

    let agent = AgentProcess::start(FERRY, "spm", &rd, &domains).await;
    let c = agent.client();
    let resumed = c.task(task).await.expect("the task survived the crash");
    assert_eq!(resumed.state, TaskState::Running);
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM again");
    let done = match c.wait_task(task, Duration::from_secs(120)).await {
        Ok(s) => s,
        Err(e @ ClientError::Timeout { .. }) => panic!("{e}; agent log:\n{}", agent.log()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        done.state,
        TaskState::Succeeded,
        "{:?}\n{}",
        done.error,
        agent.log()
    );
    assert_eq!(done.done_bytes, done.total_bytes);
    assert_eq!(
        c.tasks().await.expect("tasks").len(),
        1,
        "resumed, not started anew"
    );

    for src in [&b, &s1] {
        let copy = lab.d2.volume(image, src.id());
        assert_eq!(
            copy.metadata().expect("copy metadata").legality,
            Legality::Legal
        );
        assert!(
            same_guest_content(&src.path(), &copy.path()),
            "layer {} reads differently after the resumed copy",
            src.id()
        );
        assert_eq!(own_allocation(&copy), own_allocation(src));
    }
    assert!(agent.log().contains("resuming task"), "{}", agent.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_agent_gracefully_and_releases_the_lease() {
    let lab = Lab::new();
    let domains = [lab.d1.path()];
    let mut alpha = AgentProcess::start(FERRY, "alpha", &run_dir(&lab, "alpha"), &domains).await;
    let beta = AgentProcess::start(FERRY, "beta", &run_dir(&lab, "beta"), &domains).await;
    alpha
        .client()
        .acquire_spm(lab.d1.uuid())
        .await
        .expect("alpha becomes SPM");
    let status = alpha.terminate();
    assert!(
        status.success(),
        "ferry agent exited with {status}: {}",
        alpha.log()
    );
    let got = beta
        .client()
        .acquire_spm(lab.d1.uuid())
        .await
        .expect("the lease is free at once after a graceful stop");
    assert!(got.spm);
    assert!(
        alpha.log().contains("released the SPM lease"),
        "{}",
        alpha.log()
    );
}

/// The agent's test hook (ferry-storage's `test_hooks`).
const ABORT_IN: &str = "FERRY_TEST_AGENT_ABORT_IN";

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_inside_create_cross_sd_or_a_delete_goes_on_after_a_restart() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 16 << 20);
    qemu_io(&b, &["write -P 0x61 0 4M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x62 2M 1M"]);
    let image = b.image();
    let source_content = guest_content(&s1);
    let domains = [lab.d1.path(), lab.d2.path()];
    let rd = run_dir(&lab, "spm");
    let leaf = Uuid::new_v4();
    let create = CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image,
        volume: leaf,
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image,
            volume: s1.id(),
        },
    };
    let new_leaf = lab.d2.volume(image, leaf);
    let role = |v: &ferry_storage::Volume| v.metadata().expect("metadata").role;

    // createVolumeCrossSD dies after the file, before LEGAL.
    let mut agent = AgentProcess::start_with_env(
        FERRY,
        "spm",
        &rd,
        &domains,
        &[(ABORT_IN, "create-cross-sd")],
    )
    .await;
    agent
        .client()
        .acquire_spm(lab.d1.uuid())
        .await
        .expect("SPM");
    agent
        .client()
        .create_volume_cross_sd(&create)
        .await
        .expect_err("the agent dies inside createVolumeCrossSD");
    let died = agent.wait_exit(Duration::from_secs(30)).await;
    assert!(!died.success(), "{died}");
    assert_eq!(
        new_leaf.metadata().expect("the half-made leaf").legality,
        Legality::Illegal
    );
    assert!(new_leaf.path().is_file());
    assert_eq!(role(&s1), VolumeRole::Internal);

    agent.restart(FERRY).await;
    let c = agent.client();
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM again");
    let made = c
        .create_volume_cross_sd(&create)
        .await
        .unwrap_or_else(|e| panic!("the retry must go on: {e}\n{}", agent.log()));
    assert_eq!(
        (made.legality, made.parent, made.parent_domain),
        (Legality::Legal, Some(s1.id()), Some(lab.d1.uuid()))
    );
    let chain = Chain::walk(&lab.domains(), &new_leaf).expect("the chain opens");
    assert_eq!(chain.volumes().count(), 3);
    assert_eq!(guest_content(&new_leaf), source_content);
    assert_eq!(role(&s1), VolumeRole::Internal);

    // The delete (the rollback's) dies between its two renames.
    agent.restart_with_env(FERRY, &[(ABORT_IN, "delete")]).await;
    agent
        .client()
        .acquire_spm(lab.d1.uuid())
        .await
        .expect("SPM");
    let delete = DeleteVolumes {
        domain: lab.d2.uuid(),
        image,
        volumes: vec![leaf],
    };
    agent
        .client()
        .delete_volumes(&delete)
        .await
        .expect_err("the agent dies inside the delete");
    let died = agent.wait_exit(Duration::from_secs(30)).await;
    assert!(!died.success(), "{died}");
    assert_eq!(new_leaf.presence(), Presence::BeingDeleted);
    assert_eq!(
        new_leaf
            .metadata()
            .expect("the .meta is still there")
            .legality,
        Legality::Legal,
        "a LEGAL .meta without its file: what used to refuse cleanup for ever"
    );

    agent.restart(FERRY).await;
    let c = agent.client();
    c.acquire_spm(lab.d1.uuid()).await.expect("SPM again");
    let gone = c
        .delete_volumes(&delete)
        .await
        .unwrap_or_else(|e| panic!("the retry must finish the delete: {e}\n{}", agent.log()));
    assert_eq!((gone.deleted, gone.missing), (vec![leaf], vec![]));
    assert_eq!(new_leaf.presence(), Presence::Absent);
    assert!(!lab.d2.image_dir(image).exists());
    assert_eq!(
        role(&s1),
        VolumeRole::Leaf,
        "the source leaf is the leaf again"
    );
    assert_eq!(guest_content(&s1), source_content);
}
