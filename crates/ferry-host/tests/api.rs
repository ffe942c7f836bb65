//! Given an agent on two domains, the API's edges: who may call it (the
//! engine of its CA, over mutual TLS, and nobody else), what a
//! malformed request gets (a 400 with a JSON sentence, and nothing
//! changed), and that SPM verbs need the SPM role.

mod common;

use common::{assert_json_error, assert_refused, raw, start, ENGINE};
use ferry_api::agent::{
    CloneInternalVolumes, CopyIo, CreateDomain, CreateVolume, CreateVolumeCrossSd, DeleteImage,
    DeleteVolumes, Release, VolumeRef,
};
use ferry_api::{Allocation, VolumeFormat};
use ferry_testkit::{base, tree_snapshot, Lab};
use uuid::Uuid;

#[tokio::test]
async fn only_the_engine_of_its_ca_gets_in_plain_http_anonymous_and_other_cas_are_refused() {
    let lab = Lab::new();
    let rd = common::run_dir();
    let agent = start("host1", rd.path(), &[lab.d1.path()]).await;

    // The engine (a client certificate of the agent's CA) is answered.
    let health = raw(agent.addr, "GET", "/v1/health", Some(ENGINE), "").await;
    assert_eq!(health.0, 200, "{}", health.1);
    let h: ferry_api::agent::Health = serde_json::from_str(&health.1).expect("health JSON");
    assert_eq!(h.name, "host1");
    assert!(!h.spm);
    assert_eq!(h.spm_domain, None);
    agent
        .client
        .domains()
        .await
        .expect("the engine is answered");

    // Plain HTTP: a JSON 400 saying to use HTTPS, and nothing served.
    for path in ["/v1/health", "/v1/domains"] {
        let plain = raw(agent.addr, "GET", path, None, "").await;
        assert_json_error(&plain, 400, "HTTPS only");
    }

    // A TLS client trusting the CA but with no certificate of its own.
    let pki = ferry_testkit::pki::shared();
    let anonymous = ferry_http::ClientTls::trusting(pki.ca.cert_pem()).expect("TLS");
    let c = ferry_agent_client::AgentClient::new(agent.url.clone(), &anonymous);
    let e = c.health().await.expect_err("no client certificate");
    assert_eq!(e.kind(), ferry_api::ErrorKind::Unavailable, "{e}");

    // The engine's client certificate, from another CA.
    let other = ferry_testkit::pki::TestPki::new("another CA");
    let c = ferry_agent_client::AgentClient::new(agent.url.clone(), &other.client_tls());
    c.health().await.expect_err("a certificate of another CA");
    c.domains().await.expect_err("a certificate of another CA");

    // Another host's certificate (the same CA, but a server's) as a client.
    let rd2 = common::run_dir();
    pki.enroll(rd2.path(), "host2");
    let host2 = std::fs::read_to_string(rd2.path().join("pki/host.pem")).expect("host2's cert");
    let impostor = ferry_http::ClientTls::to_agent(
        pki.ca.cert_pem(),
        ferry_pki::LiveCert::new(&host2, &host2, "host2").expect("loaded"),
        std::sync::Arc::new(ferry_pki::AnyFromCa),
    )
    .expect("TLS");
    let c = ferry_agent_client::AgentClient::new(agent.url.clone(), &impostor);
    c.domains()
        .await
        .expect_err("a host's certificate is not the engine's");

    // Through all that the agent kept serving the engine.
    agent.client.domains().await.expect("still answered");
    agent.stop().await;
}

#[tokio::test]
async fn malformed_bodies_unknown_paths_and_methods_get_json_errors() {
    let lab = Lab::new();
    let rd = common::run_dir();
    let agent = start("host1", rd.path(), &[lab.d1.path()]).await;
    let a = agent.addr;
    let t = Some(ENGINE);

    assert_json_error(
        &raw(a, "POST", "/v1/domains/connect", t, "{").await,
        400,
        "not valid JSON",
    );
    assert_json_error(
        &raw(a, "POST", "/v1/domains/connect", t, "").await,
        400,
        "empty",
    );
    assert_json_error(
        &raw(a, "POST", "/v1/domains/connect", t, "{}").await,
        400,
        "missing field `path`",
    );
    assert_json_error(
        &raw(
            a,
            "POST",
            "/v1/domains/connect",
            t,
            r#"{"path": "/x", "colour": "red"}"#,
        )
        .await,
        400,
        "unknown field `colour`",
    );
    assert_json_error(
        &raw(
            a,
            "POST",
            "/v1/spm/acquire",
            t,
            r#"{"master_domain": "not-a-uuid"}"#,
        )
        .await,
        400,
        "does not have the expected fields",
    );
    let size_text = format!(
        r#"{{"domain": "{}", "image": "{}", "volume": "{}", "format": "raw", "size": "big"}}"#,
        lab.d1.uuid(),
        Uuid::new_v4(),
        Uuid::new_v4()
    );
    assert_json_error(
        &raw(a, "POST", "/v1/volumes/create", t, &size_text).await,
        400,
        "invalid type",
    );
    assert_json_error(
        &raw(
            a,
            "POST",
            &format!("/v1/tasks/{}/clone-internal-volumes", Uuid::new_v4()),
            t,
            "[1,2]",
        )
        .await,
        400,
        "parameters of clone-internal-volumes are wrong",
    );
    assert_json_error(
        &raw(a, "GET", "/v1/nothing/here", t, "").await,
        404,
        "no endpoint GET /v1/nothing/here",
    );
    assert_json_error(
        &raw(a, "DELETE", "/v1/domains", t, "").await,
        405,
        "does not accept DELETE",
    );
    assert_json_error(
        &raw(
            a,
            "POST",
            &format!("/v1/tasks/{}/no-such-verb", Uuid::new_v4()),
            t,
            "{}",
        )
        .await,
        404,
        "no endpoint",
    );
    agent.stop().await;
}

#[tokio::test]
async fn ids_that_are_not_uuids_and_paths_that_escape_are_refused_and_change_nothing() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 1 << 20);
    let rd = common::run_dir();
    let agent = start("host1", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    agent
        .client
        .acquire_spm(lab.d1.uuid())
        .await
        .expect("become SPM");
    let before = tree_snapshot(lab.root());
    let a = agent.addr;
    let t = Some(ENGINE);

    for path in [
        "/v1/tasks/not-a-uuid".to_string(),
        "/v1/tasks/..".to_string(),
        format!("/v1/domains/{}/images/..", lab.d1.uuid()),
        format!("/v1/domains/../images/{}", b.image()),
        "/v1/tasks/%2e%2e%2f%2e%2e/cancel".to_string(),
    ] {
        let method = if path.ends_with("cancel") {
            "POST"
        } else {
            "GET"
        };
        let answer = raw(a, method, &path, t, "").await;
        assert_json_error(&answer, 400, "not a UUID");
    }
    let deep = raw(a, "GET", "/v1/tasks/../../etc/passwd", t, "").await;
    assert_json_error(&deep, 404, "no endpoint");
    let clone_dotdot = raw(a, "POST", "/v1/tasks/../clone-internal-volumes", t, "{}").await;
    assert_json_error(&clone_dotdot, 400, "not a UUID");

    let body = format!(
        r#"{{"domain": "{}", "image": "../../..", "volumes": ["{}"]}}"#,
        lab.d1.uuid(),
        b.id()
    );
    assert_json_error(
        &raw(a, "POST", "/v1/volumes/delete", t, &body).await,
        400,
        "UUID",
    );

    let escape = lab.d1.path().join("..").join(lab.d2.uuid().to_string());
    assert_refused(
        agent.client.connect_domain(&escape).await,
        400,
        "contains '..'",
    );
    assert_refused(
        agent
            .client
            .connect_domain(std::path::Path::new("relative/domain"))
            .await,
        400,
        "relative",
    );
    assert_refused(
        agent.client.connect_domain(lab.root()).await,
        400,
        "not a usable storage domain",
    );
    assert_refused(
        agent
            .client
            .connect_domain(&lab.d1.path().join("images"))
            .await,
        400,
        "not a usable storage domain",
    );
    assert_refused(
        agent
            .client
            .create_domain(&CreateDomain {
                path: lab.d1.path().join("..").join(".."),
                name: "escape".into(),
                uuid: Uuid::new_v4(),
            })
            .await,
        400,
        "contains '..'",
    );
    assert_refused(
        agent
            .client
            .create_domain(&CreateDomain {
                path: lab.root().to_path_buf(),
                name: "../bad".into(),
                uuid: Uuid::new_v4(),
            })
            .await,
        400,
        "not a valid domain name",
    );
    let unknown = Uuid::new_v4();
    assert_refused(
        agent
            .client
            .create_volume(&CreateVolume {
                domain: unknown,
                image: Uuid::new_v4(),
                volume: Uuid::new_v4(),
                format: VolumeFormat::Raw,
                size: Some(1 << 20),
                allocation: Allocation::Sparse,
                parent: None,
                parent_image: None,
                description: String::new(),
            })
            .await,
        404,
        &format!("storage domain {unknown} is not connected"),
    );
    assert_refused(
        agent
            .client
            .create_volume(&CreateVolume {
                domain: lab.d1.uuid(),
                image: b.image(),
                volume: Uuid::new_v4(),
                format: VolumeFormat::Raw,
                size: Some(1 << 20),
                allocation: Allocation::Sparse,
                parent: Some(b.id()),
                parent_image: None,
                description: String::new(),
            })
            .await,
        400,
        "raw volume cannot have a parent",
    );
    assert_eq!(
        tree_snapshot(lab.root()),
        before,
        "a refused request changed the domains"
    );
    assert_eq!(agent.client.domains().await.expect("domains").len(), 2);
    agent.stop().await;
}

#[tokio::test]
async fn spm_verbs_are_refused_by_an_agent_that_is_not_spm() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 1 << 20);
    let rd = common::run_dir();
    let agent = start("host7", rd.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let c = &agent.client;
    let before = tree_snapshot(lab.root());

    let create = CreateVolume {
        domain: lab.d1.uuid(),
        image: Uuid::new_v4(),
        volume: Uuid::new_v4(),
        format: VolumeFormat::Raw,
        size: Some(1 << 20),
        allocation: Allocation::Sparse,
        parent: None,
        parent_image: None,
        description: String::new(),
    };
    let msg = assert_refused(c.create_volume(&create).await, 409, "host host7 is not SPM");
    assert!(msg.contains("/v1/spm/acquire"), "{msg}");
    let cross = CreateVolumeCrossSd {
        dst_domain: lab.d2.uuid(),
        image: b.image(),
        volume: Uuid::new_v4(),
        parent: VolumeRef {
            domain: lab.d1.uuid(),
            image: b.image(),
            volume: b.id(),
        },
    };
    assert_refused(c.create_volume_cross_sd(&cross).await, 409, "is not SPM");
    let clone = CloneInternalVolumes {
        src_domain: lab.d1.uuid(),
        dst_domain: lab.d2.uuid(),
        image: b.image(),
        volumes: vec![b.id()],
        bandwidth_mib_s: None,
        io: CopyIo::Buffered,
    };
    let task = Uuid::new_v4();
    assert_refused(
        c.clone_internal_volumes(task, &clone).await,
        409,
        "is not SPM",
    );
    assert_refused(c.task(task).await, 404, "no task");
    assert_refused(
        c.delete_volumes(&DeleteVolumes {
            domain: lab.d1.uuid(),
            image: b.image(),
            volumes: vec![b.id()],
        })
        .await,
        409,
        "is not SPM",
    );
    assert_refused(
        c.delete_image(&DeleteImage {
            domain: lab.d1.uuid(),
            image: b.image(),
            release: Release::Now,
        })
        .await,
        409,
        "is not SPM",
    );
    assert_refused(
        c.create_domain(&CreateDomain {
            path: lab.root().to_path_buf(),
            name: "domain3".into(),
            uuid: Uuid::new_v4(),
        })
        .await,
        409,
        "is not SPM",
    );
    assert_eq!(tree_snapshot(lab.root()), before);
    assert!(c.tasks().await.expect("tasks").is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn only_one_agent_holds_the_spm_lease_and_it_passes_on_release() {
    let lab = Lab::new();
    let (rd1, rd2) = (common::run_dir(), common::run_dir());
    let a = start("alpha", rd1.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let b = start("beta", rd2.path(), &[lab.d1.path(), lab.d2.path()]).await;
    let master = lab.d1.uuid();

    let got = a
        .client
        .acquire_spm(master)
        .await
        .expect("alpha becomes SPM");
    assert!(got.spm);
    assert_eq!(got.master_domain, Some(master));
    let again = a
        .client
        .acquire_spm(master)
        .await
        .expect("acquire is idempotent");
    assert_eq!(again, got);
    let msg = assert_refused(
        b.client.acquire_spm(master).await,
        409,
        "host beta is not SPM",
    );
    assert!(
        msg.contains(&format!(
            "the SPM lease on domain {master} is held by another host"
        )),
        "{msg}"
    );
    assert!(msg.contains("alpha"), "the holder is named: {msg}");
    assert_refused(
        a.client.acquire_spm(lab.d2.uuid()).await,
        409,
        "already SPM",
    );
    assert_refused(
        b.client.acquire_spm(Uuid::new_v4()).await,
        404,
        "not connected",
    );
    assert!(a.client.health().await.expect("health").spm);
    assert!(!b.client.health().await.expect("health").spm);

    let released = a.client.release_spm().await.expect("release");
    assert!(!released.spm);
    a.client.release_spm().await.expect("release is idempotent");
    let got = b
        .client
        .acquire_spm(master)
        .await
        .expect("beta becomes SPM");
    assert!(got.spm);
    let h = b.client.health().await.expect("health");
    assert_eq!((h.spm, h.spm_domain), (true, Some(master)));

    // A graceful stop releases the lease.
    b.stop().await;
    a.client
        .acquire_spm(master)
        .await
        .expect("alpha after beta stopped");
    a.stop().await;
}

#[tokio::test]
async fn domains_connect_and_create_idempotently_and_are_remembered() {
    let lab = Lab::new();
    let rd = common::run_dir();
    let agent = start("host1", rd.path(), &[lab.d1.path()]).await;
    let c = &agent.client;
    let listed = c.domains().await.expect("domains");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uuid, lab.d1.uuid());
    assert_eq!(listed[0].name, "domain1");
    assert!(listed[0].capacity >= listed[0].free && listed[0].free > 0);

    let first = c.connect_domain(lab.d2.path()).await.expect("connect");
    let second = c
        .connect_domain(lab.d2.path())
        .await
        .expect("connect again");
    assert_eq!(
        (first.uuid, first.path.clone()),
        (second.uuid, second.path.clone())
    );
    assert_eq!(c.domains().await.expect("domains").len(), 2);

    c.acquire_spm(lab.d1.uuid()).await.expect("SPM");
    let uuid = Uuid::new_v4();
    let req = CreateDomain {
        path: lab.root().to_path_buf(),
        name: "domain3".into(),
        uuid,
    };
    let made = c.create_domain(&req).await.expect("create a domain");
    assert_eq!((made.uuid, made.name.as_str()), (uuid, "domain3"));
    assert!(made.path.join("dom_md").join("leases").is_file());
    let again = c.create_domain(&req).await.expect("create is idempotent");
    assert_eq!(again.path, made.path);
    assert_refused(
        c.create_domain(&CreateDomain {
            name: "other".into(),
            ..req.clone()
        })
        .await,
        409,
        "with the name 'domain3'",
    );
    agent.stop().await;

    // Restarted with only domain1 on its command line, it still knows the
    // domains connected and created through the API.
    let agent = start("host1", rd.path(), &[lab.d1.path()]).await;
    let mut known: Vec<Uuid> = agent
        .client
        .domains()
        .await
        .expect("domains")
        .iter()
        .map(|d| d.uuid)
        .collect();
    known.sort();
    let mut expected = vec![lab.d1.uuid(), lab.d2.uuid(), uuid];
    expected.sort();
    assert_eq!(known, expected);
    agent.stop().await;
}

#[tokio::test]
async fn a_second_agent_on_the_same_run_directory_is_refused() {
    let lab = Lab::new();
    let rd = common::run_dir();
    let agent = start("host1", rd.path(), &[lab.d1.path()]).await;
    let err = ferry_host::Server::bind(common::config("host1b", rd.path(), &[]))
        .await
        .expect_err("the run directory is taken");
    assert!(
        err.to_string()
            .contains("another agent is running with the run directory"),
        "{err}"
    );
    agent.stop().await;
}

#[tokio::test]
async fn an_agent_with_no_domain_may_create_the_first_one_without_being_spm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rd = common::run_dir();
    let agent = start("host1", rd.path(), &[]).await;
    let c = &agent.client;
    let first = c
        .create_domain(&CreateDomain {
            path: dir.path().to_path_buf(),
            name: "master".into(),
            uuid: Uuid::new_v4(),
        })
        .await
        .expect("the master domain is created without an SPM");
    assert!(first.path.join("dom_md").join("leases").is_file());
    // From now on only the SPM creates domains.
    assert_refused(
        c.create_domain(&CreateDomain {
            path: dir.path().to_path_buf(),
            name: "second".into(),
            uuid: Uuid::new_v4(),
        })
        .await,
        409,
        "is not SPM",
    );
    c.acquire_spm(first.uuid)
        .await
        .expect("SPM on the master domain");
    agent.stop().await;
}
