//! Hosts join by enrolment and are trusted by their pinned certificate:
//! given an engine and agents served in this process, a wrong or reused
//! one-time token is refused and changes nothing; the engine refuses an
//! agent that presents another host's certificate; a removed host's
//! certificate is accepted no more; and the engine's and a host's
//! certificates are renewed while the host serves, without a restart.

mod common;

use common::*;
use ferry_api::engine::{HostStatus, Reenrol, RotateCertificates};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_or_reused_enrolment_token_is_refused_and_changes_nothing() {
    let mut agent = TestAgent::start("host1").await;
    let e = TestEngine::start().await;
    let c = &e.client;
    let enrolment = c.add_host(&agent.add_request()).await.expect("add");
    assert_eq!(enrolment.host.status, HostStatus::Enrolling);
    assert!(enrolment.host.certificate.is_none());

    // A token of the right shape and the engine's CA, but another secret.
    let forged = ferry_pki::EnrolToken {
        secret: ferry_pki::random::secret(),
        ca: e.engine.pki().ca_fingerprint(),
    }
    .text();
    let err = agent.enroll(&e, &forged).await.expect_err("a wrong token");
    assert!(
        err.full_text().contains("unknown, already used or expired"),
        "{}",
        err.full_text()
    );
    assert!(
        !ferry_host::identity::is_enrolled(agent.run_dir.path()),
        "a refused enrolment writes nothing"
    );
    // A token naming another CA: the engine is not the one that issued it.
    let mut other_ca = ferry_pki::EnrolToken::parse(&enrolment.token).expect("a token");
    other_ca.ca = ferry_pki::Fingerprint::of(b"another CA");
    let err = agent
        .enroll(&e, &other_ca.text())
        .await
        .expect_err("another CA");
    assert!(
        err.full_text().contains("not the CA of the token"),
        "{}",
        err.full_text()
    );
    // Garbage.
    let err = agent.enroll(&e, "hello").await.expect_err("not a token");
    assert!(
        err.full_text().contains("ferry host enroll"),
        "{}",
        err.full_text()
    );
    let host = c.host("host1").await.expect("host");
    assert_eq!(host.status, HostStatus::Enrolling);
    assert!(host.certificate.is_none());

    // The right token enrolls once.
    agent.enroll(&e, &enrolment.token).await.expect("enrolled");
    let host = c.host("host1").await.expect("host");
    let cert = host.certificate.clone().expect("a pinned certificate");
    let reuse = TestAgent::start("host1-again").await;
    let err = reuse
        .enroll(&e, &enrolment.token)
        .await
        .expect_err("a used token");
    assert!(
        err.full_text().contains("already used"),
        "{}",
        err.full_text()
    );
    assert!(!ferry_host::identity::is_enrolled(reuse.run_dir.path()));
    assert_eq!(
        c.host("host1").await.expect("host").certificate,
        Some(cert),
        "the reuse changed nothing"
    );

    // The enrolled agent serves and the host comes up.
    agent.serve(&e).await;
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("poll");
    assert_eq!(c.host("host1").await.expect("host").status, HostStatus::Up);
    e.stop().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_hosts_certificate_is_refused_and_a_removed_hosts_is_no_longer_accepted() {
    let mut alpha = TestAgent::start("alpha").await;
    let mut beta = TestAgent::start("beta").await;
    let e = TestEngine::start().await;
    let c = &e.client;
    assert_eq!(e.add(&mut alpha).await.status, HostStatus::Up);
    assert_eq!(e.add(&mut beta).await.status, HostStatus::Up);

    // Beta's URL pointed at alpha's agent: alpha presents its own
    // certificate, which is not beta's.
    c.reenrol_host(
        "beta",
        &Reenrol {
            url: Some(alpha.url.clone()),
        },
    )
    .await
    .expect_err("the URL is alpha's");
    let beta_row = e
        .engine
        .db()
        .host_by_name_or_id("beta")
        .await
        .expect("db")
        .expect("beta");
    let mut pointed = beta_row.clone();
    pointed.url = alpha.url.clone();
    let err = e
        .engine
        .agents()
        .client_for(&ferry_engine::db::HostRow {
            id: uuid::Uuid::new_v4(),
            ..pointed.clone()
        })
        .health()
        .await
        .expect_err("an unknown host's client");
    assert!(
        err.message().contains("not in the inventory"),
        "{}",
        err.message()
    );
    e.engine.agents().forget(beta_row.id);
    let err = e
        .engine
        .agents()
        .client_for(&pointed)
        .health()
        .await
        .expect_err("alpha's certificate at beta's URL");
    assert!(
        err.message().contains("presented host alpha's certificate"),
        "{}",
        err.message()
    );
    e.engine.agents().forget(beta_row.id);

    // Alpha removed: a client for it, made from its old row, is refused
    // in the handshake; beta is untouched.
    let alpha_row = e
        .engine
        .db()
        .host_by_name_or_id("alpha")
        .await
        .expect("db")
        .expect("alpha");
    e.engine
        .agents()
        .client_for(&alpha_row)
        .health()
        .await
        .expect("alpha is trusted while it is a host");
    c.remove_host("alpha").await.expect("removed");
    let err = e
        .engine
        .agents()
        .client_for(&alpha_row)
        .health()
        .await
        .expect_err("a removed host");
    assert!(
        err.message().contains("not in the inventory"),
        "{}",
        err.message()
    );
    assert!(c.host("alpha").await.is_err());
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("poll");
    assert_eq!(c.host("beta").await.expect("beta").status, HostStatus::Up);
    let events = event_messages(&e).await;
    assert!(said(&events, "host alpha removed"), "{events:?}");

    e.stop().await;
    alpha.stop().await;
    beta.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_are_renewed_while_the_host_serves() {
    let (_root_dir, root) = domain_root();
    let mut agent = TestAgent::start("host1").await;
    let e = TestEngine::start().await;
    let c = &e.client;
    e.add(&mut agent).await;
    e.create_domain("domain1", &root).await;
    let before = c
        .host("host1")
        .await
        .expect("host")
        .certificate
        .expect("a cert");
    let engine_before = c.certificates().await.expect("certificates");

    let report = c
        .rotate_certificates(&RotateCertificates::default())
        .await
        .expect("rotated");
    assert_eq!(report.hosts.len(), 1, "{report:?}");
    assert_eq!(report.hosts[0].error, None, "{report:?}");
    let after = c
        .host("host1")
        .await
        .expect("host")
        .certificate
        .expect("a cert");
    assert_ne!(after.fingerprint, before.fingerprint);
    assert_eq!(report.hosts[0].fingerprint, after.fingerprint);
    assert!(after.not_after >= before.not_after);
    for (old, new) in engine_before.engine.iter().zip(&report.engine) {
        if old.owner == "CA" {
            assert_eq!(old.fingerprint, new.fingerprint, "the CA stays");
        } else {
            assert_ne!(old.fingerprint, new.fingerprint, "{} renewed", new.owner);
        }
    }

    // A new connection is made with the renewed certificates on both
    // sides, and the host stays up and SPM.
    let row = e
        .engine
        .db()
        .host_by_name_or_id("host1")
        .await
        .expect("db")
        .expect("host1");
    e.engine.agents().forget(row.id);
    ferry_engine::monitor::poll_now(&e.engine)
        .await
        .expect("poll");
    let host = c.host("host1").await.expect("host");
    assert_eq!(host.status, HostStatus::Up, "{host:?}");
    assert!(host.spm);
    let served = e.engine.pki().pins().seen(row.id).expect("seen");
    assert_eq!(served.fingerprint.to_string(), after.fingerprint);
    let on_disk =
        std::fs::read_to_string(agent.run_dir.path().join("pki/host.pem")).expect("host.pem");
    let info = ferry_pki::CertInfo::from_pem(&on_disk, "host.pem").expect("readable");
    assert_eq!(info.fingerprint.to_string(), after.fingerprint);

    e.stop().await;
    agent.stop().await;
}
