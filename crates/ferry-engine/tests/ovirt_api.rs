//! oVirt's REST API as raw HTTP sees it (the SDK's own run is
//! ferry-cli's `ovirt_sdk` test): oVirt's sign-in and its refusals, the
//! engine's token accepted, XML for every answer, a bare 404 for an
//! unknown id, and a refused move worded and numbered as oVirt's.

mod common;

use common::*;
use ferry_engine::ovirt::hash_password;
use reqwest::Method;

/// An answer: status, content type and body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// A request with an `Authorization` header as given (`None`: none).
async fn ovirt(
    url: &str,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut req = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .header("Accept", "application/xml");
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/xml")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("send");
    Answer {
        status: resp.status().as_u16(),
        content_type: resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: resp.text().await.expect("a body"),
    }
}

/// Asserts an oVirt fault: `status`, XML, with `reason` and a detail
/// saying `says`.
fn assert_fault(a: &Answer, status: u16, reason: &str, says: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(
        a.content_type.starts_with("application/xml"),
        "{}",
        a.content_type
    );
    assert!(
        a.body.contains("<fault>") && a.body.contains(&format!("<reason>{reason}</reason>")),
        "{}",
        a.body
    );
    assert!(a.body.contains(says), "{:?} does not say {says:?}", a.body);
}

/// A password grant at oVirt's SSO endpoint: status and JSON.
async fn sign_in(url: &str, user: &str, password: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/ovirt-engine/sso/oauth/token"))
        .header("Accept", "application/json")
        .form(&[
            ("grant_type", "password"),
            ("scope", "ovirt-app-api"),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ovirt_sign_in_takes_the_administrator_password_or_the_engine_token() {
    let e = TestEngine::start().await;
    let url = &e.url;
    let bearer = |t: &str| format!("Bearer {t}");

    // No password set: grants are refused in oVirt's words; the engine's
    // token still works.
    let (status, refused) = sign_in(url, "admin@internal", "anything").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error_code"], "access_denied");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .contains("no administrator password"),
        "{refused}"
    );
    let none = ovirt(url, Method::GET, "/ovirt-engine/api", None, None).await;
    assert_fault(&none, 401, "Unauthorized", "No credentials");
    let wrong = ovirt(
        url,
        Method::GET,
        "/ovirt-engine/api",
        Some(&bearer("guess")),
        None,
    )
    .await;
    assert_fault(&wrong, 401, "Unauthorized", "not valid");
    let root = ovirt(
        url,
        Method::GET,
        "/ovirt-engine/api",
        Some(&bearer(ENGINE_TOKEN)),
        None,
    )
    .await;
    assert_eq!(root.status, 200, "{}", root.body);
    assert!(root.body.contains("<major>4</major>"), "{}", root.body);
    assert!(root.body.contains(r#"rel="disks""#), "{}", root.body);

    // With the administrator's password: a wrong one or another user is
    // refused, the right one gets a token, which works until revoked.
    e.engine
        .sso()
        .set_admin_hash(hash_password("s3cret").expect("hash"));
    for (user, password) in [("admin@internal", "wrong"), ("joe@internal", "s3cret")] {
        let (status, refused) = sign_in(url, user, password).await;
        assert_eq!(status, 400, "{refused}");
        assert!(
            refused["error"]
                .as_str()
                .unwrap_or("")
                .contains("incorrect"),
            "{refused}"
        );
    }
    let (status, grant) = sign_in(url, "admin@internal", "s3cret").await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["token_type"], "bearer");
    let token = grant["access_token"].as_str().expect("a token").to_string();
    let ok = ovirt(
        url,
        Method::GET,
        "/ovirt-engine/api/disks",
        Some(&bearer(&token)),
        None,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // HTTP Basic with the same password, as older scripts send it.
    let basic = ovirt(
        url,
        Method::GET,
        "/ovirt-engine/api",
        Some("Basic YWRtaW5AaW50ZXJuYWw6czNjcmV0"), // admin@internal:s3cret
        None,
    )
    .await;
    assert_eq!(basic.status, 200, "{}", basic.body);
    let out = reqwest::Client::new()
        .post(format!("{url}/ovirt-engine/services/sso-logout"))
        .form(&[("scope", "ovirt-app-api"), ("token", token.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(out.status().as_u16(), 200);
    assert_eq!(out.text().await.expect("body"), "{}");
    let revoked = ovirt(
        url,
        Method::GET,
        "/ovirt-engine/api",
        Some(&bearer(&token)),
        None,
    )
    .await;
    assert_fault(&revoked, 401, "Unauthorized", "not valid");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ovirt_reads_answer_xml_and_refused_moves_say_why_as_ovirt_does() {
    let e = TestEngine::start().await;
    let (domain1, _domain2, [disk0, _disk1]) = seed::<2>(e.engine.db()).await;
    let locked = ferry_engine::db::DiskRow {
        id: uuid::Uuid::new_v4(),
        name: "busy".into(),
        size: 1 << 20,
        domain: domain1,
        locked_by: Some(uuid::Uuid::new_v4()),
        created: 1,
    };
    e.engine
        .db()
        .insert_disk(&locked)
        .await
        .expect("a locked disk");
    let auth = format!("Bearer {}", ENGINE_TOKEN);
    let get = |path: String| {
        let (url, auth) = (e.url.clone(), auth.clone());
        async move { ovirt(&url, Method::GET, &path, Some(&auth), None).await }
    };

    let all = get("/ovirt-engine/api/disks".into()).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(
        all.content_type.starts_with("application/xml"),
        "{}",
        all.content_type
    );
    for name in ["disk0", "disk1", "busy"] {
        assert!(
            all.body.contains(&format!("<name>{name}</name>")),
            "{}",
            all.body
        );
    }
    assert!(all.body.contains("<status>locked</status>"), "{}", all.body);
    let one = get("/ovirt-engine/api/disks?search=name%3Ddisk0".into()).await;
    assert!(
        one.body.contains("<name>disk0</name>") && !one.body.contains("disk1"),
        "{}",
        one.body
    );
    let bad_search = get("/ovirt-engine/api/disks?search=status%3Dok".into()).await;
    assert_fault(
        &bad_search,
        400,
        "Operation Failed",
        "'status' is not supported",
    );

    // /api, /api/v4 and a double slash are the same; hrefs are absolute.
    for path in [
        format!("/ovirt-engine/api/disks/{disk0}"),
        format!("/ovirt-engine/api/v4/disks/{disk0}"),
        format!("/ovirt-engine/api//disks/{disk0}"),
    ] {
        let d = get(path.clone()).await;
        assert_eq!(d.status, 200, "{path}: {}", d.body);
        assert!(
            d.body
                .contains(&format!(r#"href="/ovirt-engine/api/disks/{disk0}""#)),
            "{}",
            d.body
        );
        assert!(
            d.body.contains(&format!(
                r#"<storage_domain href="/ovirt-engine/api/storagedomains/{domain1}""#
            )),
            "{}",
            d.body
        );
    }
    // An unknown id, or no id at all, is a 404 with an empty body.
    for path in [
        format!("/ovirt-engine/api/disks/{}", uuid::Uuid::new_v4()),
        "/ovirt-engine/api/disks/disk0".to_string(),
        "/ovirt-engine/api/nothing".to_string(),
    ] {
        let missing = get(path.clone()).await;
        assert_eq!(missing.status, 404, "{path}");
        assert!(missing.body.is_empty(), "{path}: {:?}", missing.body);
    }
    let v3 = reqwest::Client::new()
        .get(format!("{}/ovirt-engine/api", e.url))
        .header("Authorization", &auth)
        .header("Version", "3")
        .send()
        .await
        .expect("send");
    assert_eq!(v3.status().as_u16(), 400);
    let no_jobs = get("/ovirt-engine/api/jobs?search=correlation_id%3Dnone".into()).await;
    assert_eq!(no_jobs.status, 200, "{}", no_jobs.body);
    assert!(!no_jobs.body.contains("<job "), "{}", no_jobs.body);

    // Refused moves: nothing named, the same domain, no such domain, a
    // locked disk; and a method not served.
    let post = |disk: uuid::Uuid, body: &'static str| {
        let (url, auth) = (e.url.clone(), auth.clone());
        async move {
            ovirt(
                &url,
                Method::POST,
                &format!("/ovirt-engine/api/disks/{disk}/move"),
                Some(&auth),
                Some(body),
            )
            .await
        }
    };
    let incomplete = post(disk0, "<action/>").await;
    assert_fault(
        &incomplete,
        400,
        "Incomplete parameters",
        "storageDomain.id|name",
    );
    let same = post(
        disk0,
        "<action><storage_domain><name>domain1</name></storage_domain></action>",
    )
    .await;
    assert_fault(
        &same,
        400,
        "Operation Failed",
        "source and target storage domains are the same",
    );
    let nowhere = post(
        disk0,
        "<action><storage_domain><name>nowhere</name></storage_domain></action>",
    )
    .await;
    assert_fault(
        &nowhere,
        400,
        "Operation Failed",
        "Storage Domain nowhere doesn't exist",
    );
    let busy = post(
        locked.id,
        "<action><storage_domain><name>domain2</name></storage_domain></action>",
    )
    .await;
    assert_fault(
        &busy,
        409,
        "Operation Failed",
        "The following disks are locked: busy",
    );
    let bad_id = ovirt(
        &e.url,
        Method::POST,
        &format!("/ovirt-engine/api/disks/{disk0}/move?correlation_id=no%20spaces"),
        Some(&auth),
        Some("<action><storage_domain><name>domain2</name></storage_domain></action>"),
    )
    .await;
    assert_fault(
        &bad_id,
        400,
        "Operation Failed",
        "not a valid correlation id",
    );
    let not_xml = post(disk0, "{\"to\": \"domain2\"}").await;
    assert_fault(
        &not_xml,
        400,
        "Operation Failed",
        "not an &lt;action&gt; document",
    );
    let delete = ovirt(
        &e.url,
        Method::DELETE,
        &format!("/ovirt-engine/api/disks/{disk0}"),
        Some(&auth),
        None,
    )
    .await;
    assert_fault(&delete, 405, "Operation Failed", "not served");
    // Nothing was moved or locked by any of it.
    let after = get(format!("/ovirt-engine/api/disks/{disk0}")).await;
    assert!(after.body.contains("<status>ok</status>"), "{}", after.body);
    assert!(e.client.jobs().await.expect("jobs").is_empty());
    e.stop().await;
}
