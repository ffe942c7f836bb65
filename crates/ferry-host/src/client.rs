//! A typed client of the agent's API, for the engine, the CLI and tests:
//! one method per endpoint, taking and returning `ferry_api::agent` types.
//! An error answer keeps its HTTP status and the agent's sentence, so a
//! caller can tell a conflict (retry later, or already done) from a bad
//! request.

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_api::agent::{
    AcquireSpm, CloneInternalVolumes, ConnectDomain, CreateDomain, CreateVolume,
    CreateVolumeCrossSd, DeleteImage, DeleteVolumes, Deleted, DomainInfo, ErrorBody, Health,
    SpmStatus, TaskStatus, VolumeInfo,
};
use ferry_api::vm::{
    BlockMigrate, FinalizeBlockMigrate, Merge, RollbackBlockMigrate, StopVm, SwitchReport,
    VmDefinition, VmStatus,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

/// How long to wait for a connection to an agent: a host that is down
/// should be reported in seconds, not after TCP's minutes of retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`AgentClient::wait_task`] asks.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// What went wrong talking to an agent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent answered with an error.
    #[error("agent {url} answered {status}: {message}")]
    Agent {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The agent's sentence.
        message: String,
    },
    /// The agent could not be reached, or its answer could not be read.
    #[error("could not talk to the agent at {url}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// A task did not finish in the time given.
    #[error("task {id} was still running after {waited:?} (last status: {done} of {total} bytes)")]
    Timeout {
        /// The task.
        id: Uuid,
        /// How long was waited.
        waited: Duration,
        /// Bytes done at the last look.
        done: u64,
        /// Bytes to do at the last look.
        total: u64,
    },
}

impl ClientError {
    /// The HTTP status, when the agent answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Agent { status, .. } => Some(*status),
            ClientError::Transport { source, .. } => source.status(),
            ClientError::Timeout { .. } => None,
        }
    }

    /// The agent's own sentence, or this error's text.
    pub fn message(&self) -> String {
        match self {
            ClientError::Agent { message, .. } => message.clone(),
            other => crate::error::chain_text(other),
        }
    }
}

/// A client of one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AgentClient {
    /// A client of the agent at `url` (`http://host:port`), presenting
    /// `token`.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        AgentClient {
            base: url.into().trim_end_matches('/').to_string(),
            token: token.into(),
            http,
        }
    }

    /// The agent's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> (String, RequestBuilder) {
        let url = format!("{}{path}", self.base);
        let req = self.http.request(method, &url).bearer_auth(&self.token);
        (url, req)
    }

    async fn send(url: String, req: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(ClientError::Agent {
            url,
            status,
            message,
        })
    }

    async fn decode<T: DeserializeOwned>(
        url: String,
        req: RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = Self::send(url.clone(), req).await?;
        resp.json()
            .await
            .map_err(|source| ClientError::Transport { url, source })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (url, req) = self.request(Method::GET, path);
        Self::decode(url, req).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let (url, req) = self.request(Method::POST, path);
        Self::decode(url, req.json(body)).await
    }

    /// `GET /v1/health` (sent with the token, which health ignores).
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get("/v1/health").await
    }

    /// `GET /v1/domains`.
    pub async fn domains(&self) -> Result<Vec<DomainInfo>, ClientError> {
        self.get("/v1/domains").await
    }

    /// `POST /v1/domains/connect`.
    pub async fn connect_domain(&self, path: &Path) -> Result<DomainInfo, ClientError> {
        self.post(
            "/v1/domains/connect",
            &ConnectDomain {
                path: path.to_path_buf(),
            },
        )
        .await
    }

    /// `POST /v1/domains/create` (SPM).
    pub async fn create_domain(&self, req: &CreateDomain) -> Result<DomainInfo, ClientError> {
        self.post("/v1/domains/create", req).await
    }

    /// `GET /v1/domains/{domain}/images/{image}`: the image's volumes.
    pub async fn image_volumes(
        &self,
        domain: Uuid,
        image: Uuid,
    ) -> Result<Vec<VolumeInfo>, ClientError> {
        self.get(&format!("/v1/domains/{domain}/images/{image}"))
            .await
    }

    /// `GET /v1/spm`.
    pub async fn spm(&self) -> Result<SpmStatus, ClientError> {
        self.get("/v1/spm").await
    }

    /// `POST /v1/spm/acquire`.
    pub async fn acquire_spm(&self, master_domain: Uuid) -> Result<SpmStatus, ClientError> {
        self.post("/v1/spm/acquire", &AcquireSpm { master_domain })
            .await
    }

    /// `POST /v1/spm/release`.
    pub async fn release_spm(&self) -> Result<SpmStatus, ClientError> {
        let (url, req) = self.request(Method::POST, "/v1/spm/release");
        Self::decode(url, req).await
    }

    /// `POST /v1/volumes/create` (SPM).
    pub async fn create_volume(&self, req: &CreateVolume) -> Result<VolumeInfo, ClientError> {
        self.post("/v1/volumes/create", req).await
    }

    /// `POST /v1/volumes/create-cross-sd` (SPM): `createVolumeCrossSD`.
    pub async fn create_volume_cross_sd(
        &self,
        req: &CreateVolumeCrossSd,
    ) -> Result<VolumeInfo, ClientError> {
        self.post("/v1/volumes/create-cross-sd", req).await
    }

    /// `POST /v1/volumes/delete` (SPM).
    pub async fn delete_volumes(&self, req: &DeleteVolumes) -> Result<Deleted, ClientError> {
        self.post("/v1/volumes/delete", req).await
    }

    /// `POST /v1/images/delete` (SPM).
    pub async fn delete_image(&self, req: &DeleteImage) -> Result<Deleted, ClientError> {
        self.post("/v1/images/delete", req).await
    }

    /// `POST /v1/tasks/{id}/clone-internal-volumes` (SPM):
    /// `cloneInternalVolumes`. Returns at once with the task's status.
    pub async fn clone_internal_volumes(
        &self,
        task: Uuid,
        req: &CloneInternalVolumes,
    ) -> Result<TaskStatus, ClientError> {
        self.start_task(task, "clone-internal-volumes", req).await
    }

    /// `POST /v1/vms`: defines a VM (idempotent).
    pub async fn define_vm(&self, def: &VmDefinition) -> Result<VmStatus, ClientError> {
        self.post("/v1/vms", def).await
    }

    /// `GET /v1/vms`.
    pub async fn vms(&self) -> Result<Vec<VmStatus>, ClientError> {
        self.get("/v1/vms").await
    }

    /// `GET /v1/vms/{id}`.
    pub async fn vm(&self, vm: Uuid) -> Result<VmStatus, ClientError> {
        self.get(&format!("/v1/vms/{vm}")).await
    }

    /// `DELETE /v1/vms/{id}`: removes a stopped VM's definition.
    pub async fn undefine_vm(&self, vm: Uuid) -> Result<(), ClientError> {
        let (url, req) = self.request(Method::DELETE, &format!("/v1/vms/{vm}"));
        Self::send(url, req).await.map(|_| ())
    }

    /// `POST /v1/vms/{id}/start` (a running VM is left running).
    pub async fn start_vm(&self, vm: Uuid) -> Result<VmStatus, ClientError> {
        self.post(&format!("/v1/vms/{vm}/start"), &serde_json::json!({}))
            .await
    }

    /// `POST /v1/vms/{id}/stop`: powers down, quitting QEMU after
    /// `grace_secs` (0: at once).
    pub async fn stop_vm(&self, vm: Uuid, grace_secs: u64) -> Result<VmStatus, ClientError> {
        self.post(&format!("/v1/vms/{vm}/stop"), &StopVm { grace_secs })
            .await
    }

    /// `POST /v1/vms/{id}/block-migrate`: the seed's `blockMigrate`.
    pub async fn block_migrate(
        &self,
        vm: Uuid,
        req: &BlockMigrate,
    ) -> Result<SwitchReport, ClientError> {
        self.post(&format!("/v1/vms/{vm}/block-migrate"), req).await
    }

    /// `POST /v1/vms/{id}/finalize-block-migrate`: the seed's
    /// `finalizeBlockMigrate`.
    pub async fn finalize_block_migrate(
        &self,
        vm: Uuid,
        req: &FinalizeBlockMigrate,
    ) -> Result<SwitchReport, ClientError> {
        self.post(&format!("/v1/vms/{vm}/finalize-block-migrate"), req)
            .await
    }

    /// `POST /v1/tasks/{id}/merge`: starts a merge task.
    pub async fn merge(&self, task: Uuid, req: &Merge) -> Result<TaskStatus, ClientError> {
        self.start_task(task, "merge", req).await
    }

    /// `POST /v1/tasks/{id}/rollback-block-migrate`: starts the rollback
    /// of `blockMigrate`.
    pub async fn rollback_block_migrate(
        &self,
        task: Uuid,
        req: &RollbackBlockMigrate,
    ) -> Result<TaskStatus, ClientError> {
        self.start_task(task, "rollback-block-migrate", req).await
    }

    /// `POST /v1/tasks/{id}/{verb}`: starts any registered task verb (or
    /// answers the status of the same task started before).
    pub async fn start_task<P: Serialize + ?Sized>(
        &self,
        task: Uuid,
        verb: &str,
        params: &P,
    ) -> Result<TaskStatus, ClientError> {
        self.post(&format!("/v1/tasks/{task}/{verb}"), params).await
    }

    /// `GET /v1/tasks/{id}`.
    pub async fn task(&self, task: Uuid) -> Result<TaskStatus, ClientError> {
        self.get(&format!("/v1/tasks/{task}")).await
    }

    /// `GET /v1/tasks`.
    pub async fn tasks(&self) -> Result<Vec<TaskStatus>, ClientError> {
        self.get("/v1/tasks").await
    }

    /// `POST /v1/tasks/{id}/cancel`.
    pub async fn cancel_task(&self, task: Uuid) -> Result<TaskStatus, ClientError> {
        let (url, req) = self.request(Method::POST, &format!("/v1/tasks/{task}/cancel"));
        Self::decode(url, req).await
    }

    /// `DELETE /v1/tasks/{id}`: forgets a finished task.
    pub async fn forget_task(&self, task: Uuid) -> Result<(), ClientError> {
        let (url, req) = self.request(Method::DELETE, &format!("/v1/tasks/{task}"));
        Self::send(url, req).await.map(|_| ())
    }

    /// Polls a task until it is finished (in whatever state) or `timeout`
    /// passes.
    pub async fn wait_task(
        &self,
        task: Uuid,
        timeout: Duration,
    ) -> Result<TaskStatus, ClientError> {
        let start = Instant::now();
        loop {
            let status = self.task(task).await?;
            if status.state.is_finished() {
                return Ok(status);
            }
            if start.elapsed() >= timeout {
                return Err(ClientError::Timeout {
                    id: task,
                    waited: start.elapsed(),
                    done: status.done_bytes,
                    total: status.total_bytes,
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}
