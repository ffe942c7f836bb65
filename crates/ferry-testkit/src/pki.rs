//! Certificates for tests: agents speak mutual TLS only, so a test that
//! runs an agent without an engine gives it a certificate of a test CA
//! (written where enrolment writes it, `ferry_host::identity::store`) and
//! calls it with a client certificate of that CA, as the engine would.
//! One test CA per test process.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use ferry_http::ClientTls;
use ferry_pki::ca::{Usage, CERT_LIFETIME, ENGINE_CLIENT_NAME};
use ferry_pki::{AnyFromCa, Authority, KeyRequest, LiveCert};

/// A CA and the "engine" client certificate it signed.
#[derive(Debug)]
pub struct TestPki {
    /// The CA.
    pub ca: Authority,
    client: Arc<LiveCert>,
}

impl TestPki {
    /// A new CA named `name` with a client certificate for the engine.
    pub fn new(name: &str) -> TestPki {
        let ca = Authority::generate(name).expect("a test CA");
        let (cert, key) = ca
            .issue_with_new_key(ENGINE_CLIENT_NAME, &[], Usage::Client, CERT_LIFETIME)
            .expect("a client certificate");
        let client = LiveCert::new(&cert.cert_pem, &key, "the test client").expect("loaded");
        TestPki { ca, client }
    }

    /// Gives the agent of `run_dir` a certificate for host `name`, unless
    /// it has one.
    pub fn enroll(&self, run_dir: &Path, name: &str) {
        if ferry_host::identity::is_enrolled(run_dir) {
            return;
        }
        let req = KeyRequest::generate(name).expect("a key");
        let cert = self
            .ca
            .sign_request(
                &req.csr_pem,
                name,
                &["127.0.0.1".into()],
                Usage::Server,
                CERT_LIFETIME,
            )
            .expect("signed");
        ferry_host::identity::store(run_dir, &cert.cert_pem, &req.key_pem, self.ca.cert_pem())
            .expect("stored");
    }

    /// TLS settings to call its agents as the engine does (any agent
    /// certificate of the CA accepted).
    pub fn client_tls(&self) -> ClientTls {
        ClientTls::to_agent(self.ca.cert_pem(), self.client.clone(), Arc::new(AnyFromCa))
            .expect("client TLS")
    }
}

/// The test process's CA.
pub fn shared() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::new("Ferry test CA"))
}

/// TLS settings to call agents as the engine of `engine_dir` does: its CA
/// and its client certificate, read from its `pki/`.
pub fn engine_client_tls(engine_dir: &Path) -> ClientTls {
    let pki = engine_dir.join("pki");
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).expect("the engine's PKI file");
    let client = LiveCert::new(
        &read("client.pem"),
        &read("client.key"),
        "the engine's client",
    )
    .expect("loaded");
    ClientTls::to_agent(&read("ca.pem"), client, Arc::new(AnyFromCa)).expect("client TLS")
}

/// Adds host `name` to the engine `c` (at `engine_url`) on a socket of
/// 127.0.0.1 bound here, and enrolls the agent of `run_dir` with the
/// one-time token, in this process, as `ferry up` does: returns the
/// socket for `ferry_host::Server::bind_on`.
pub async fn enroll_in_process(
    c: &ferry_engine::EngineClient,
    engine_url: &str,
    name: &str,
    run_dir: &Path,
) -> tokio::net::TcpListener {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the agent's socket");
    let addr = listener.local_addr().expect("its address");
    let enrolment = c
        .add_host(&ferry_api::engine::AddHost {
            name: name.into(),
            url: format!("https://{addr}"),
        })
        .await
        .expect("add the host");
    ferry_host::enroll::enroll(engine_url, &enrolment.token, run_dir)
        .await
        .expect("enroll the agent");
    listener
}
