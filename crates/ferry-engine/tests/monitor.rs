//! Given two hosts sharing the storage domains, when the SPM's agent loses
//! its role or its host goes away, then the engine notices at the next
//! poll, keeps exactly one SPM, and says so in the event log.

mod common;

use common::*;
use ferry_api::engine::{CreateDisk, CreateVm, HostStatus, VmState};
use ferry_api::VolumeFormat;

fn spm_count(hosts: &[ferry_api::engine::Host]) -> usize {
    hosts.iter().filter(|h| h.spm).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_spm_role_moves_to_the_other_host_when_the_spm_goes_down() {
    let (_root_dir, root) = domain_root();
    let mut alpha = TestAgent::start("alpha").await;
    let mut beta = TestAgent::start("beta").await;
    let e = TestEngine::start().await;
    let c = &e.client;
    e.add(&mut alpha).await;
    e.add(&mut beta).await;
    let d1 = e.create_domain("domain1", &root).await;
    let d2 = e.create_domain("domain2", &root).await;

    // Both hosts know both domains; the first host added is SPM.
    for agent in [&alpha, &beta] {
        let known: Vec<_> = agent
            .client
            .domains()
            .await
            .expect("domains")
            .into_iter()
            .map(|d| d.uuid)
            .collect();
        assert!(
            known.contains(&d1.id) && known.contains(&d2.id),
            "{}: {known:?}",
            agent.name
        );
    }
    let hosts = c.hosts().await.expect("hosts");
    assert_eq!(spm_count(&hosts), 1);
    assert!(c.host("alpha").await.expect("alpha").spm);
    assert!(!beta.client.spm().await.expect("beta").spm);

    // A VM on alpha.
    c.create_disk(&CreateDisk {
        name: "disk1".into(),
        domain: "domain1".into(),
        size: 1 << 20,
        format: VolumeFormat::Raw,
        preallocated: false,
    })
    .await
    .expect("a disk");
    c.create_vm(&CreateVm {
        name: "vm1".into(),
        disks: vec!["disk1".into()],
        memory_mib: None,
        host: Some("alpha".into()),
        boot: None,
    })
    .await
    .expect("a VM on alpha");

    // Alpha's agent loses the role (as after a restart): it takes it again.
    alpha.client.release_spm().await.expect("release");
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("a poll");
    assert!(alpha.client.spm().await.expect("alpha").spm);
    assert!(c.host("alpha").await.expect("alpha").spm);
    assert!(said(
        &event_messages(&e).await,
        "host alpha took the SPM role again"
    ));

    // Alpha goes away: down, not SPM; beta is the one SPM; vm1 unknown.
    alpha.stop().await;
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("a poll");
    let a = c.host("alpha").await.expect("alpha");
    assert_eq!(a.status, HostStatus::Down);
    assert!(!a.spm);
    assert!(a.error.is_some());
    let b = c.host("beta").await.expect("beta");
    assert!(b.status == HostStatus::Up && b.spm, "{b:?}");
    assert!(beta.client.spm().await.expect("beta").spm);
    assert_eq!(spm_count(&c.hosts().await.expect("hosts")), 1);
    assert_eq!(c.vm("vm1").await.expect("vm1").state, VmState::Unknown);

    // The new SPM does the SPM's work.
    let disk2 = c
        .create_disk(&CreateDisk {
            name: "disk2".into(),
            domain: "domain2".into(),
            size: 1 << 20,
            format: VolumeFormat::Qcow2,
            preallocated: false,
        })
        .await
        .expect("a disk made by beta");
    assert_eq!(disk2.volumes.len(), 1);

    // A VM whose host is down cannot be started there.
    assert_refused(c.start_vm("vm1").await, 503, "host alpha is down");

    let events = event_messages(&e).await;
    for what in [
        "host alpha is now SPM",
        "host alpha is down",
        "host alpha is no longer SPM: it is down",
        "host beta is now SPM",
        "VM vm1 is in an unknown state: its host alpha is down",
    ] {
        assert!(said(&events, what), "no event says {what:?}: {events:#?}");
    }

    // Another poll changes nothing: still one SPM, beta.
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("a poll");
    let hosts = c.hosts().await.expect("hosts");
    assert_eq!(spm_count(&hosts), 1);
    assert!(c.host("beta").await.expect("beta").spm);

    e.stop().await;
    beta.stop().await;
}
