//! A typed client of the engine's REST API, for the CLI, the tests and
//! anything else: one method per endpoint, taking and returning
//! `ferry_api::engine` types. An error answer keeps its HTTP status and
//! the engine's sentence.

use std::time::{Duration, Instant};

use ferry_api::engine::{
    AddHost, ApiError, CreateDisk, CreateDomain, CreateVm, Disk, Domain, EngineHealth, Event, Host,
    Job, JobState, MoveRequest, Vm,
};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

/// How long to wait for a connection: an engine that is not there should
/// be reported in seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`EngineClient::wait_job`] asks.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// What went wrong talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineClientError {
    /// The engine answered with an error.
    #[error("the engine answered {status}: {message}")]
    Api {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The engine's sentence.
        message: String,
    },
    /// The engine could not be reached, or its answer could not be read.
    #[error("could not talk to the engine at {url}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The engine URL given is not a URL.
    #[error("'{url}' is not a usable engine URL ({reason}); give http://<host>:<port>")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A job did not finish in the time given.
    #[error("job {id} was still {state:?} at step {step} after {waited:?}")]
    Timeout {
        /// The job.
        id: Uuid,
        /// How long was waited.
        waited: Duration,
        /// Its state at the last look.
        state: JobState,
        /// Its step at the last look.
        step: String,
    },
}

impl EngineClientError {
    /// The HTTP status, when the engine answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            EngineClientError::Api { status, .. } => Some(*status),
            EngineClientError::Transport { source, .. } => source.status(),
            EngineClientError::BadUrl { .. } | EngineClientError::Timeout { .. } => None,
        }
    }

    /// The engine's own sentence, or this error's text with its causes.
    pub fn message(&self) -> String {
        match self {
            EngineClientError::Api { message, .. } => message.clone(),
            other => ferry_host::chain_text(other),
        }
    }
}

type Result<T> = std::result::Result<T, EngineClientError>;

/// A client of one engine.
#[derive(Debug, Clone)]
pub struct EngineClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl EngineClient {
    /// A client of the engine at `url` (`http://host:port`), presenting
    /// `token`.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        EngineClient {
            base: url.into().trim_end_matches('/').to_string(),
            token: token.into(),
            http,
        }
    }

    /// The engine's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `<base>/api/v1/<segments…>`, each segment percent-encoded (a name
    /// is a path segment, whatever it holds).
    fn endpoint(&self, segments: &[&str]) -> Result<Url> {
        let bad = |reason: String| EngineClientError::BadUrl {
            url: self.base.clone(),
            reason,
        };
        let mut url = Url::parse(&self.base).map_err(|e| bad(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| bad("it cannot have a path".into()))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok(url)
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    async fn send<T: DeserializeOwned>(url: Url, req: RequestBuilder) -> Result<T> {
        let text_url = url.to_string();
        let transport = |source| EngineClientError::Transport {
            url: text_url.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(transport);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ApiError>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(EngineClientError::Api {
            url: text_url,
            status,
            message,
        })
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        let url = self.endpoint(segments)?;
        Self::send(url.clone(), self.request(Method::GET, url)).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T> {
        let url = self.endpoint(segments)?;
        Self::send(url.clone(), self.request(Method::POST, url).json(body)).await
    }

    /// `GET /api/v1/health` (needs no token).
    pub async fn health(&self) -> Result<EngineHealth> {
        self.get(&["health"]).await
    }

    /// `GET /api/v1/openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.get(&["openapi.json"]).await
    }

    /// `GET /api/v1/hosts`.
    pub async fn hosts(&self) -> Result<Vec<Host>> {
        self.get(&["hosts"]).await
    }

    /// `GET /api/v1/hosts/{host}`.
    pub async fn host(&self, host: &str) -> Result<Host> {
        self.get(&["hosts", host]).await
    }

    /// `POST /api/v1/hosts`.
    pub async fn add_host(&self, req: &AddHost) -> Result<Host> {
        self.post(&["hosts"], req).await
    }

    /// `GET /api/v1/domains`.
    pub async fn domains(&self) -> Result<Vec<Domain>> {
        self.get(&["domains"]).await
    }

    /// `GET /api/v1/domains/{domain}`.
    pub async fn domain(&self, domain: &str) -> Result<Domain> {
        self.get(&["domains", domain]).await
    }

    /// `POST /api/v1/domains`.
    pub async fn create_domain(&self, req: &CreateDomain) -> Result<Domain> {
        self.post(&["domains"], req).await
    }

    /// `GET /api/v1/disks`.
    pub async fn disks(&self) -> Result<Vec<Disk>> {
        self.get(&["disks"]).await
    }

    /// `GET /api/v1/disks/{disk}`.
    pub async fn disk(&self, disk: &str) -> Result<Disk> {
        self.get(&["disks", disk]).await
    }

    /// `POST /api/v1/disks`.
    pub async fn create_disk(&self, req: &CreateDisk) -> Result<Disk> {
        self.post(&["disks"], req).await
    }

    /// `POST /api/v1/disks/{disk}/snapshot`.
    pub async fn snapshot_disk(&self, disk: &str) -> Result<Disk> {
        self.post(&["disks", disk, "snapshot"], &serde_json::json!({}))
            .await
    }

    /// `POST /api/v1/disks/{disk}/move`: answers at once with the job.
    pub async fn move_disk(&self, disk: &str, req: &MoveRequest) -> Result<Job> {
        self.post(&["disks", disk, "move"], req).await
    }

    /// `GET /api/v1/vms`.
    pub async fn vms(&self) -> Result<Vec<Vm>> {
        self.get(&["vms"]).await
    }

    /// `GET /api/v1/vms/{vm}`.
    pub async fn vm(&self, vm: &str) -> Result<Vm> {
        self.get(&["vms", vm]).await
    }

    /// `POST /api/v1/vms`.
    pub async fn create_vm(&self, req: &CreateVm) -> Result<Vm> {
        self.post(&["vms"], req).await
    }

    /// `POST /api/v1/vms/{vm}/start`.
    pub async fn start_vm(&self, vm: &str) -> Result<Vm> {
        self.post(&["vms", vm, "start"], &serde_json::json!({}))
            .await
    }

    /// `POST /api/v1/vms/{vm}/stop`.
    pub async fn stop_vm(&self, vm: &str) -> Result<Vm> {
        self.post(&["vms", vm, "stop"], &serde_json::json!({}))
            .await
    }

    /// `POST /api/v1/vms/{vm}/stop?force=true`: quits QEMU at once.
    pub async fn kill_vm(&self, vm: &str) -> Result<Vm> {
        let mut url = self.endpoint(&["vms", vm, "stop"])?;
        url.set_query(Some("force=true"));
        let req = self
            .request(Method::POST, url.clone())
            .json(&serde_json::json!({}));
        Self::send(url, req).await
    }

    /// `POST /api/v1/vms/{vm}/move`: answers at once with the job.
    pub async fn move_vm(&self, vm: &str, req: &MoveRequest) -> Result<Job> {
        self.post(&["vms", vm, "move"], req).await
    }

    /// `GET /api/v1/jobs` (newest first).
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        self.get(&["jobs"]).await
    }

    /// `GET /api/v1/jobs/{job}`.
    pub async fn job(&self, job: Uuid) -> Result<Job> {
        self.get(&["jobs", &job.to_string()]).await
    }

    /// `POST /api/v1/jobs/{job}/cancel`.
    pub async fn cancel_job(&self, job: Uuid) -> Result<Job> {
        self.post(
            &["jobs", &job.to_string(), "cancel"],
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /api/v1/jobs/{job}/retry`.
    pub async fn retry_job(&self, job: Uuid) -> Result<Job> {
        self.post(&["jobs", &job.to_string(), "retry"], &serde_json::json!({}))
            .await
    }

    /// `GET /api/v1/events?limit=N` (newest first; None: the engine's
    /// default of 100).
    pub async fn events(&self, limit: Option<u32>) -> Result<Vec<Event>> {
        let mut url = self.endpoint(&["events"])?;
        if let Some(n) = limit {
            url.query_pairs_mut().append_pair("limit", &n.to_string());
        }
        Self::send(url.clone(), self.request(Method::GET, url)).await
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
                return Err(EngineClientError::Timeout {
                    id: job,
                    waited: start.elapsed(),
                    state: j.state,
                    step: j.step,
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_single_encoded_path_segments() {
        let c = EngineClient::new("http://127.0.0.1:8000/", "t");
        let url = c.endpoint(&["disks", "a b/c", "move"]).expect("a URL");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8000/api/v1/disks/a%20b%2Fc/move"
        );
        let bad = EngineClient::new("not a url", "t");
        assert!(matches!(
            bad.endpoint(&["hosts"]),
            Err(EngineClientError::BadUrl { .. })
        ));
    }
}
