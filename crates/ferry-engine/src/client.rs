//! A typed client of the engine's REST API, for the CLI, the tests and
//! anything else: one method per endpoint, taking and returning
//! `ferry_api::engine` types. An error answer keeps its kind and the
//! engine's sentence (`ferry_http::client`).

use std::time::{Duration, Instant};

use ferry_api::engine::{
    AddHost, Certificates, CreateDisk, CreateDomain, CreateVm, Disk, Domain, EngineHealth, Event,
    Host, HostEnrolment, Job, MoveRequest, Reenrol, RotateCertificates, Vm,
};
use ferry_http::client::Method;
use ferry_http::{ClientError, ClientTls, HttpClient};
use uuid::Uuid;

/// How often [`EngineClient::wait_job`] asks.
const POLL_EVERY: Duration = Duration::from_millis(200);

type Result<T> = std::result::Result<T, ClientError>;

/// A client of one engine.
#[derive(Debug, Clone)]
pub struct EngineClient {
    http: HttpClient,
}

impl EngineClient {
    /// A client of the engine at `url`, presenting `token`. An
    /// `http://` URL (an engine on loopback) needs nothing else; an
    /// `https://` one needs [`EngineClient::with_ca`] (this one trusts no
    /// certificate, so it is refused).
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        EngineClient {
            http: HttpClient::new("the engine", url, &["api", "v1"], Some(token.into()), None),
        }
    }

    /// A client of the engine at `url` (`https://host:port`) that trusts
    /// it when its certificate chains to the CA of `tls` (the engine's,
    /// from `client.json` or its `pki/ca.pem`) and names the URL's host.
    pub fn with_tls(url: impl Into<String>, token: impl Into<String>, tls: &ClientTls) -> Self {
        EngineClient {
            http: HttpClient::new(
                "the engine",
                url,
                &["api", "v1"],
                Some(token.into()),
                Some(tls),
            ),
        }
    }

    /// The engine's base URL.
    pub fn url(&self) -> &str {
        self.http.url()
    }

    /// `GET /api/v1/health` (needs no token).
    pub async fn health(&self) -> Result<EngineHealth> {
        self.http.get(&["health"]).await
    }

    /// `GET /api/v1/openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.http.get(&["openapi.json"]).await
    }

    /// `GET /api/v1/hosts`.
    pub async fn hosts(&self) -> Result<Vec<Host>> {
        self.http.get(&["hosts"]).await
    }

    /// `GET /api/v1/hosts/{host}`.
    pub async fn host(&self, host: &str) -> Result<Host> {
        self.http.get(&["hosts", host]).await
    }

    /// `POST /api/v1/hosts`: the host, enrolling, and its one-time token.
    pub async fn add_host(&self, req: &AddHost) -> Result<HostEnrolment> {
        self.http.post(&["hosts"], req).await
    }

    /// `POST /api/v1/hosts/{host}/enrolment`: a new one-time token.
    pub async fn reenrol_host(&self, host: &str, req: &Reenrol) -> Result<HostEnrolment> {
        self.http.post(&["hosts", host, "enrolment"], req).await
    }

    /// `DELETE /api/v1/hosts/{host}`.
    pub async fn remove_host(&self, host: &str) -> Result<()> {
        self.http.delete(&["hosts", host]).await
    }

    /// `GET /api/v1/certificates`.
    pub async fn certificates(&self) -> Result<Certificates> {
        self.http.get(&["certificates"]).await
    }

    /// `POST /api/v1/certificates/rotate`.
    pub async fn rotate_certificates(&self, req: &RotateCertificates) -> Result<Certificates> {
        self.http.post(&["certificates", "rotate"], req).await
    }

    /// Waits until host `host` is up (its agent enrolled, started and
    /// answering the engine's mutual TLS), or `within` passes.
    pub async fn wait_host_up(&self, host: &str, within: Duration) -> Result<Host> {
        let deadline = Instant::now() + within;
        loop {
            let h = self.host(host).await?;
            if h.status == ferry_api::engine::HostStatus::Up {
                return Ok(h);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    what: format!(
                        "host {host} is still {:?} ({})",
                        h.status,
                        h.error.unwrap_or_default()
                    ),
                    waited: within,
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// `GET /api/v1/domains`.
    pub async fn domains(&self) -> Result<Vec<Domain>> {
        self.http.get(&["domains"]).await
    }

    /// `GET /api/v1/domains/{domain}`.
    pub async fn domain(&self, domain: &str) -> Result<Domain> {
        self.http.get(&["domains", domain]).await
    }

    /// `POST /api/v1/domains`.
    pub async fn create_domain(&self, req: &CreateDomain) -> Result<Domain> {
        self.http.post(&["domains"], req).await
    }

    /// `GET /api/v1/disks`.
    pub async fn disks(&self) -> Result<Vec<Disk>> {
        self.http.get(&["disks"]).await
    }

    /// `GET /api/v1/disks/{disk}`.
    pub async fn disk(&self, disk: &str) -> Result<Disk> {
        self.http.get(&["disks", disk]).await
    }

    /// `POST /api/v1/disks`.
    pub async fn create_disk(&self, req: &CreateDisk) -> Result<Disk> {
        self.http.post(&["disks"], req).await
    }

    /// `POST /api/v1/disks/{disk}/snapshot`.
    pub async fn snapshot_disk(&self, disk: &str) -> Result<Disk> {
        self.http
            .post(&["disks", disk, "snapshot"], &serde_json::json!({}))
            .await
    }

    /// `POST /api/v1/disks/{disk}/move`: answers at once with the job.
    pub async fn move_disk(&self, disk: &str, req: &MoveRequest) -> Result<Job> {
        self.http.post(&["disks", disk, "move"], req).await
    }

    /// `GET /api/v1/vms`.
    pub async fn vms(&self) -> Result<Vec<Vm>> {
        self.http.get(&["vms"]).await
    }

    /// `GET /api/v1/vms/{vm}`.
    pub async fn vm(&self, vm: &str) -> Result<Vm> {
        self.http.get(&["vms", vm]).await
    }

    /// `POST /api/v1/vms`.
    pub async fn create_vm(&self, req: &CreateVm) -> Result<Vm> {
        self.http.post(&["vms"], req).await
    }

    /// `POST /api/v1/vms/{vm}/start`.
    pub async fn start_vm(&self, vm: &str) -> Result<Vm> {
        self.http
            .post(&["vms", vm, "start"], &serde_json::json!({}))
            .await
    }

    /// `POST /api/v1/vms/{vm}/stop`.
    pub async fn stop_vm(&self, vm: &str) -> Result<Vm> {
        self.http
            .post(&["vms", vm, "stop"], &serde_json::json!({}))
            .await
    }

    /// `POST /api/v1/vms/{vm}/stop?force=true`: quits QEMU at once.
    pub async fn kill_vm(&self, vm: &str) -> Result<Vm> {
        let mut url = self.http.endpoint(&["vms", vm, "stop"])?;
        url.set_query(Some("force=true"));
        self.http
            .send(Method::POST, url, Some(&serde_json::json!({})))
            .await
    }

    /// `POST /api/v1/vms/{vm}/move`: answers at once with the job.
    pub async fn move_vm(&self, vm: &str, req: &MoveRequest) -> Result<Job> {
        self.http.post(&["vms", vm, "move"], req).await
    }

    /// `GET /api/v1/jobs` (newest first).
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        self.http.get(&["jobs"]).await
    }

    /// `GET /api/v1/jobs/{job}`.
    pub async fn job(&self, job: Uuid) -> Result<Job> {
        self.http.get(&["jobs", &job.to_string()]).await
    }

    /// `POST /api/v1/jobs/{job}/cancel`.
    pub async fn cancel_job(&self, job: Uuid) -> Result<Job> {
        self.http
            .post(
                &["jobs", &job.to_string(), "cancel"],
                &serde_json::json!({}),
            )
            .await
    }

    /// `POST /api/v1/jobs/{job}/retry`.
    pub async fn retry_job(&self, job: Uuid) -> Result<Job> {
        self.http
            .post(&["jobs", &job.to_string(), "retry"], &serde_json::json!({}))
            .await
    }

    /// `GET /api/v1/events?limit=N` (newest first; None: the engine's
    /// default of 100).
    pub async fn events(&self, limit: Option<u32>) -> Result<Vec<Event>> {
        self.events_of(None, limit, None).await
    }

    /// `GET /api/v1/events?after=ID[&object=ID]&limit=N`: the first `limit`
    /// events after event `after`, newest first, for a reader that
    /// follows the log.
    pub async fn events_after(
        &self,
        after: i64,
        object: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Vec<Event>> {
        self.events_of(object, limit, Some(after)).await
    }

    /// `GET /api/v1/events?object=ID&limit=N`: the events about one job,
    /// host, VM, disk or domain, newest first.
    pub async fn events_about(&self, object: Uuid, limit: Option<u32>) -> Result<Vec<Event>> {
        self.events_of(Some(object), limit, None).await
    }

    async fn events_of(
        &self,
        object: Option<Uuid>,
        limit: Option<u32>,
        after: Option<i64>,
    ) -> Result<Vec<Event>> {
        let mut url = self.http.endpoint(&["events"])?;
        if let Some(o) = object {
            url.query_pairs_mut().append_pair("object", &o.to_string());
        }
        if let Some(n) = limit {
            url.query_pairs_mut().append_pair("limit", &n.to_string());
        }
        if let Some(a) = after {
            url.query_pairs_mut().append_pair("after", &a.to_string());
        }
        self.http.send(Method::GET, url, None::<&()>).await
    }

    /// Polls a job until it is finished (succeeded, failed or cancelled)
    /// or `timeout` passes.
    pub async fn wait_job(&self, job: Uuid, timeout: Duration) -> Result<Job> {
        let start = Instant::now();
        loop {
            let j = self.job(job).await?;
            if j.state.is_finished() {
                return Ok(j);
            }
            if start.elapsed() >= timeout {
                return Err(ClientError::Timeout {
                    what: format!(
                        "job {job} was still {} at step {}",
                        format!("{:?}", j.state).to_lowercase(),
                        j.step
                    ),
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}
