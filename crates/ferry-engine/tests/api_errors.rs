//! Every refusal is `ApiError` JSON with a status that says what kind of
//! error it is and a sentence that says what to do; a refused request
//! changes nothing.

mod common;

use common::*;
use ferry_api::engine::{AddHost, CreateDisk, CreateDomain, CreateVm, MoveRequest, PaceMode};
use ferry_api::VolumeFormat;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_health_is_answered_without_the_token() {
    let e = TestEngine::start().await;
    let health = e.client.health().await.expect("health");
    assert_eq!(health.status, "ok");
    let anonymous = raw(&e.url, Method::GET, "/api/v1/health", None, None).await;
    assert_eq!(anonymous.0, 200, "{}", anonymous.1);

    for path in ["/api/v1/hosts", "/api/v1/openapi.json", "/api/v1/nowhere"] {
        let none = raw(&e.url, Method::GET, path, None, None).await;
        assert_json_error(&none, 401, "needs the engine's token");
        let wrong = raw(&e.url, Method::GET, path, Some("guess"), None).await;
        assert_json_error(&wrong, 401, "token is wrong");
    }
    let sneaky = raw(
        &e.url,
        Method::POST,
        "/api/v1/domains",
        None,
        Some(r#"{"name":"d","path":"/tmp"}"#),
    )
    .await;
    assert_json_error(&sneaky, 401, "Authorization: Bearer");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_lists_every_path_and_the_bearer_scheme() {
    let e = TestEngine::start().await;
    let doc = e.client.openapi().await.expect("the document is JSON");
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/health",
        "/api/v1/hosts",
        "/api/v1/hosts/{host}",
        "/api/v1/domains",
        "/api/v1/domains/{domain}",
        "/api/v1/disks",
        "/api/v1/disks/{disk}",
        "/api/v1/disks/{disk}/snapshot",
        "/api/v1/disks/{disk}/move",
        "/api/v1/vms",
        "/api/v1/vms/{vm}",
        "/api/v1/vms/{vm}/start",
        "/api/v1/vms/{vm}/stop",
        "/api/v1/vms/{vm}/move",
        "/api/v1/jobs",
        "/api/v1/jobs/{job}",
        "/api/v1/jobs/{job}/cancel",
        "/api/v1/events",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains_key(p), "the document lacks {p}");
    }
    assert!(paths["/api/v1/disks/{disk}/move"]["post"]["responses"]["202"].is_object());
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for s in [
        "Job",
        "Disk",
        "MoveRequest",
        "ApiError",
        "ErrorKind",
        "Step",
        "VolumeFormat",
    ] {
        assert!(schemas.contains_key(s), "the document lacks schema {s}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_names_paths_and_methods_are_404_and_405_with_a_sentence() {
    let e = TestEngine::start().await;
    let c = &e.client;
    assert_refused(
        c.host("nope").await,
        404,
        "there is no host named or numbered 'nope'",
    );
    assert_refused(c.domain("nope").await, 404, "ferry domain list");
    assert_refused(c.disk("nope").await, 404, "there is no disk");
    assert_refused(
        c.disk("0f8fad5b-d9cb-469f-a165-70867728950e").await,
        404,
        "there is no disk",
    );
    assert_refused(c.vm("nope").await, 404, "there is no VM");
    assert_refused(c.start_vm("nope").await, 404, "there is no VM");
    assert_refused(c.snapshot_disk("nope").await, 404, "there is no disk");
    assert_refused(c.job(uuid::Uuid::new_v4()).await, 404, "there is no job");
    let by_name = raw(
        &e.url,
        Method::GET,
        "/api/v1/jobs/nope",
        Some(ENGINE_TOKEN),
        None,
    )
    .await;
    assert_json_error(&by_name, 404, "jobs are named by their UUID");
    assert_refused(
        c.move_disk("nope", &MoveRequest::new("domain2")).await,
        404,
        "there is no disk",
    );
    let nowhere = raw(
        &e.url,
        Method::GET,
        "/api/v1/nowhere",
        Some(ENGINE_TOKEN),
        None,
    )
    .await;
    assert_json_error(&nowhere, 404, "there is no endpoint GET /api/v1/nowhere");
    let delete = raw(
        &e.url,
        Method::DELETE,
        "/api/v1/hosts",
        Some(ENGINE_TOKEN),
        None,
    )
    .await;
    assert_json_error(&delete, 405, "does not accept DELETE");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_bodies_and_queries_are_400_and_change_nothing() {
    let e = TestEngine::start().await;
    let post = |path: &'static str, body: &'static str| {
        raw(&e.url, Method::POST, path, Some(ENGINE_TOKEN), Some(body))
    };
    assert_json_error(
        &post("/api/v1/domains", "{").await,
        400,
        "is not valid JSON",
    );
    assert_json_error(&post("/api/v1/domains", "").await, 400, "body is empty");
    assert_json_error(
        &post(
            "/api/v1/domains",
            r#"{"name":"d1","path":"/tmp","colour":"red"}"#,
        )
        .await,
        400,
        "unknown field `colour`",
    );
    assert_json_error(
        &post("/api/v1/disks", r#"{"name":"d","domain":"x","size":-1}"#).await,
        400,
        "does not have the expected fields",
    );
    assert_json_error(
        &post("/api/v1/hosts", r#"{"name":"h"}"#).await,
        400,
        "missing field",
    );
    for q in [
        "limit=0",
        "limit=abc",
        "limit=99999",
        "colour=red",
        "object=not-an-id",
    ] {
        let path = format!("/api/v1/events?{q}");
        let answer = raw(&e.url, Method::GET, &path, Some(ENGINE_TOKEN), None).await;
        assert_eq!(answer.0, 400, "{q}: {}", answer.1);
        assert_json_error(&answer, 400, "");
    }
    assert!(e.client.domains().await.expect("domains").is_empty());
    assert!(e.client.hosts().await.expect("hosts").is_empty());
    assert!(e.client.events(None).await.expect("events").is_empty());
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inventory_requests_are_refused_with_what_to_do_and_change_nothing() {
    let (_root_dir, root) = domain_root();
    let mut agent = TestAgent::start("host1").await;
    let e = TestEngine::start().await;
    let c = &e.client;

    // No host yet: nothing to create a domain with.
    assert_refused(
        c.create_domain(&CreateDomain {
            name: "domain1".into(),
            path: root.clone(),
        })
        .await,
        503,
        "no host is up",
    );

    // Agents speak mutual TLS only: a plain-HTTP URL is refused.
    assert_refused(
        c.add_host(&AddHost {
            name: "ghost".into(),
            url: "http://127.0.0.1:9".into(),
        })
        .await,
        400,
        "HTTPS only",
    );
    let mut bad_name = agent.add_request();
    bad_name.name = "host 1".into();
    assert_refused(c.add_host(&bad_name).await, 400, "not a valid host name");
    assert!(c.hosts().await.expect("hosts").is_empty());

    e.add(&mut agent).await;
    let mut again = agent.add_request();
    again.name = "host2".into();
    assert_refused(c.add_host(&again).await, 409, "is already host host1");

    // Domains: a relative path, a missing directory (404: nothing is
    // there), a system directory and one holding other things (409: in
    // use), a taken name.
    assert_refused(
        c.create_domain(&CreateDomain {
            name: "domain1".into(),
            path: "relative/dir".into(),
        })
        .await,
        400,
        "absolute path",
    );
    assert_refused(
        c.create_domain(&CreateDomain {
            name: "domain1".into(),
            path: root.join("missing"),
        })
        .await,
        404,
        "create it (or mount the storage there) first",
    );
    assert_refused(
        c.create_domain(&CreateDomain {
            name: "domain1".into(),
            path: "/".into(),
        })
        .await,
        409,
        "is a system directory",
    );
    let busy = root.join("busy");
    std::fs::create_dir(&busy).expect("a directory");
    std::fs::write(busy.join("notes.txt"), b"mine").expect("a file");
    assert_refused(
        c.create_domain(&CreateDomain {
            name: "domain1".into(),
            path: busy.clone(),
        })
        .await,
        409,
        "holds other things (notes.txt)",
    );
    std::fs::remove_dir_all(&busy).expect("remove it");
    assert!(c.domains().await.expect("domains").is_empty());
    assert!(!c.host("host1").await.expect("host").spm);
    e.create_domain("domain1", &root).await;
    assert_refused(
        c.create_domain(&CreateDomain {
            name: "domain1".into(),
            path: root.clone(),
        })
        .await,
        409,
        "already a storage domain named domain1",
    );
    assert_eq!(c.domains().await.expect("domains").len(), 1);

    // Disks: no such domain, size 0, no room for a preallocated disk.
    let disk = |name: &str, domain: &str, size: u64, preallocated: bool| CreateDisk {
        name: name.into(),
        domain: domain.into(),
        size,
        format: VolumeFormat::Raw,
        preallocated,
    };
    assert_refused(
        c.create_disk(&disk("d", "nowhere", 1 << 20, false)).await,
        404,
        "there is no storage domain",
    );
    assert_refused(
        c.create_disk(&disk("d", "domain1", 0, false)).await,
        400,
        "1 byte to 8 TiB",
    );
    assert_refused(
        c.create_disk(&disk("d", "domain1", 1 << 60, false)).await,
        400,
        "1 byte to 8 TiB",
    );
    let msg = assert_refused(
        c.create_disk(&disk("huge", "domain1", 8 << 40, true)).await,
        507,
        "bytes free",
    );
    assert!(msg.contains("sparse disk"), "{msg}");
    assert!(c.disks().await.expect("disks").is_empty());
    let files = std::fs::read_dir(c.domain("domain1").await.expect("d").path.join("images"))
        .expect("images")
        .count();
    assert_eq!(files, 0, "nothing was written to the domain");

    c.create_disk(&disk("d1", "domain1", 1 << 20, false))
        .await
        .expect("a disk");
    assert_refused(
        c.create_disk(&disk("d1", "domain1", 1 << 20, false)).await,
        409,
        "already a disk named d1",
    );

    // VMs: no disks, unknown disk, a name the agent would refuse, unknown
    // destination of a move.
    let vm = |name: &str, disks: &[&str]| CreateVm {
        name: name.into(),
        disks: disks.iter().map(|d| d.to_string()).collect(),
        memory_mib: None,
        host: None,
        boot: None,
    };
    assert_refused(c.create_vm(&vm("vm1", &[])).await, 400, "at least one disk");
    assert_refused(
        c.create_vm(&vm("vm1", &["nope"])).await,
        404,
        "there is no disk",
    );
    assert_refused(
        c.create_vm(&vm("1vm", &["d1"])).await,
        400,
        "starting with a letter",
    );
    assert_refused(
        c.create_vm(&vm("vm1", &["d1", "d1"])).await,
        400,
        "listed twice",
    );
    assert!(c.vms().await.expect("vms").is_empty());
    assert!(agent.client.vms().await.expect("agent vms").is_empty());
    assert_refused(
        c.move_disk("d1", &MoveRequest::new("nowhere")).await,
        404,
        "there is no storage domain",
    );
    // A move's pacing: a share the guest cannot keep, or one asked of a
    // copy paced by the bandwidth only, is refused saying what to give,
    // before any job is made or the disk locked.
    for share in [0, 9, 96, 100] {
        let req = MoveRequest {
            guest_share_pct: Some(share),
            ..MoveRequest::new("domain1")
        };
        assert_refused(c.move_disk("d1", &req).await, 400, "give 10 to 95");
    }
    let fixed = MoveRequest {
        guest_share_pct: Some(60),
        pace: PaceMode::Fixed,
        ..MoveRequest::new("domain1")
    };
    assert_refused(
        c.move_disk("d1", &fixed).await,
        400,
        "needs the copy paced by the guest",
    );
    assert_refused(
        c.move_disk(
            "d1",
            &MoveRequest {
                bandwidth_mib_s: Some(0),
                ..MoveRequest::new("domain1")
            },
        )
        .await,
        400,
        "would never finish",
    );
    assert!(c.jobs().await.expect("jobs").is_empty());
    let d1 = c.disk("d1").await.expect("d1");
    assert!(d1.locked_by.is_none(), "{d1:#?}");

    e.stop().await;
    agent.stop().await;
}
