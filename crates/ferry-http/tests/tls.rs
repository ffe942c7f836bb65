//! Mutual TLS as an agent serves it: given a server that accepts only the
//! engine's client certificate from its CA, plain HTTP, a client without a
//! certificate, one with a certificate from another CA and one with a
//! host's (server) certificate are refused; the engine's passes; and a
//! client that pins another certificate refuses the server.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use ferry_http::{ClientError, HttpClient};
use ferry_pki::ca::{Usage, CERT_LIFETIME, ENGINE_CLIENT_NAME};
use ferry_pki::{
    AnyFromCa, Authority, CertInfo, ClientTls, KeyRequest, LiveCert, PeerCheck, ServerTls,
};

struct Pki {
    ca: Authority,
    server: Arc<LiveCert>,
    engine: Arc<LiveCert>,
}

fn pki() -> Pki {
    let ca = Authority::generate("test CA").expect("CA");
    let req = KeyRequest::generate("host1").expect("request");
    let issued = ca
        .sign_request(
            &req.csr_pem,
            "host1",
            &["127.0.0.1".into()],
            Usage::Server,
            CERT_LIFETIME,
        )
        .expect("host cert");
    let server = LiveCert::new(&issued.cert_pem, &req.key_pem, "host1").expect("server cert");
    let (client, key) = ca
        .issue_with_new_key(ENGINE_CLIENT_NAME, &[], Usage::Client, CERT_LIFETIME)
        .expect("engine cert");
    let engine = LiveCert::new(&client.cert_pem, &key, "engine").expect("engine cert");
    Pki { ca, server, engine }
}

async fn start(tls: ServerTls) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (listener, addr) = ferry_http::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let router = Router::new().route(
        "/v1/health",
        get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ferry_http::serve(
        listener,
        router,
        async move {
            let _ = stopped.await;
        },
        Some(tls),
    ));
    (format!("https://{addr}"), stop)
}

async fn health(url: &str, tls: Option<&ClientTls>) -> Result<serde_json::Value, ClientError> {
    HttpClient::new("the agent", url, &["v1"], None, tls)
        .get(&["health"])
        .await
}

#[derive(Debug)]
struct Pin(ferry_pki::Fingerprint);

impl PeerCheck for Pin {
    fn check(&self, cert: &CertInfo) -> Result<(), String> {
        if cert.fingerprint == self.0 {
            Ok(())
        } else {
            Err(format!(
                "the agent presented the certificate of {:?}, not the one pinned",
                cert.common_name
            ))
        }
    }
}

#[tokio::test]
async fn only_the_engine_from_the_agents_ca_gets_in() {
    let p = pki();
    let tls = ServerTls::engine_only(p.server.clone(), p.ca.cert_pem()).expect("server TLS");
    let (url, _stop) = start(tls).await;

    // The engine, with its client certificate, pinning the host's cert.
    let engine = ClientTls::to_agent(
        p.ca.cert_pem(),
        p.engine.clone(),
        Arc::new(Pin(p.server.info().fingerprint)),
    )
    .expect("client TLS");
    health(&url, Some(&engine))
        .await
        .expect("the engine is let in");

    // Plain HTTP to the TLS port: a clear 400.
    let plain = url.replace("https://", "http://");
    let err = health(&plain, None).await.expect_err("plain HTTP refused");
    assert!(err.message().contains("HTTPS only"), "{err}");

    // A client trusting the CA but presenting no certificate.
    let anonymous = ClientTls::trusting(p.ca.cert_pem()).expect("client TLS");
    let err = health(&url, Some(&anonymous))
        .await
        .expect_err("no certificate refused");
    assert_eq!(err.kind(), ferry_api::ErrorKind::Unavailable, "{err}");

    // A client certificate from another CA.
    let other = Authority::generate("another CA").expect("CA");
    let (c, k) = other
        .issue_with_new_key(ENGINE_CLIENT_NAME, &[], Usage::Client, CERT_LIFETIME)
        .expect("cert");
    let stranger = ClientTls::to_agent(
        p.ca.cert_pem(),
        LiveCert::new(&c.cert_pem, &k, "stranger").expect("cert"),
        Arc::new(AnyFromCa),
    )
    .expect("client TLS");
    health(&url, Some(&stranger))
        .await
        .expect_err("another CA refused");

    // Another host's certificate (signed by the same CA, for serverAuth)
    // presented as a client certificate.
    let req = KeyRequest::generate("host2").expect("request");
    let host2 =
        p.ca.sign_request(&req.csr_pem, "host2", &[], Usage::Server, CERT_LIFETIME)
            .expect("cert");
    let impostor = ClientTls::to_agent(
        p.ca.cert_pem(),
        LiveCert::new(&host2.cert_pem, &req.key_pem, "host2").expect("cert"),
        Arc::new(AnyFromCa),
    )
    .expect("client TLS");
    health(&url, Some(&impostor))
        .await
        .expect_err("a host's certificate refused as a client");

    // A client certificate of the CA for clientAuth but not the engine's.
    let (c, k) =
        p.ca.issue_with_new_key("someone", &[], Usage::Client, CERT_LIFETIME)
            .expect("cert");
    let someone = ClientTls::to_agent(
        p.ca.cert_pem(),
        LiveCert::new(&c.cert_pem, &k, "someone").expect("cert"),
        Arc::new(AnyFromCa),
    )
    .expect("client TLS");
    health(&url, Some(&someone))
        .await
        .expect_err("not the engine");

    // The engine pinning another host's certificate refuses this server.
    let pinned_elsewhere = ClientTls::to_agent(
        p.ca.cert_pem(),
        p.engine.clone(),
        Arc::new(Pin(host2.info.fingerprint)),
    )
    .expect("client TLS");
    let err = health(&url, Some(&pinned_elsewhere))
        .await
        .expect_err("wrong host refused");
    assert!(
        err.message().contains("not the one pinned"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_renewed_certificate_is_served_from_the_next_connection_on() {
    let p = pki();
    let tls = ServerTls::engine_only(p.server.clone(), p.ca.cert_pem()).expect("server TLS");
    let (url, _stop) = start(tls).await;
    let req = KeyRequest::generate("host1").expect("request");
    let renewed =
        p.ca.sign_request(&req.csr_pem, "host1", &[], Usage::Server, CERT_LIFETIME)
            .expect("cert");
    p.server
        .replace(&renewed.cert_pem, &req.key_pem, "renewed")
        .expect("replace");
    let engine = ClientTls::to_agent(
        p.ca.cert_pem(),
        p.engine.clone(),
        Arc::new(Pin(renewed.info.fingerprint)),
    )
    .expect("client TLS");
    health(&url, Some(&engine))
        .await
        .expect("the renewed certificate is served");
}
