//! A typed client of the host agent's API (`/v1`), for the engine, the
//! CLI and the tests: one method per endpoint, taking and returning
//! `ferry_api::agent` types. It lives apart from the agent daemon so its
//! users need the API, not QEMU and the storage code. An error answer
//! keeps the agent's [`ferry_api::ErrorKind`], so a caller can tell a
//! conflict (retry later, or already done) from a bad request or a full
//! domain without reading the sentence.

mod deadline;

use std::path::Path;
use std::time::{Duration, Instant};

pub use deadline::Deadline;

use ferry_api::agent::{
    AcquireSpm, CertRequest, CertStatus, CloneInternalVolumes, ConnectDomain, CreateDomain,
    CreateVolume, CreateVolumeCrossSd, DeleteImage, DeleteVolumes, Deleted, DomainInfo, Health,
    InstallCert, PaceTask, SpmStatus, TaskStatus, VolumeInfo,
};
use ferry_api::vm::{
    BlockMigrate, FinalizeBlockMigrate, Merge, RollbackBlockMigrate, StopVm, SwitchReport,
    VmDefinition, VmIo, VmStatus,
};
pub use ferry_http::ClientError;
use ferry_http::{ClientTls, HttpClient};
use serde::Serialize;
use uuid::Uuid;

/// How often [`AgentClient::wait_task`] asks.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// A client of one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: HttpClient,
    /// The longest any request may take, whatever its own deadline.
    cap: Option<Duration>,
}

impl AgentClient {
    /// A client of the agent at `url` (`https://host:port`) speaking
    /// mutual TLS with `tls`: the engine's client certificate, and the
    /// check of the agent's certificate (the engine pins each host's; see
    /// [`ferry_http::ClientTls::to_agent`]). Agents accept nothing else.
    pub fn new(url: impl Into<String>, tls: &ClientTls) -> Self {
        AgentClient {
            http: HttpClient::new("the agent", url, &["v1"], None, Some(tls)),
            cap: None,
        }
    }

    /// The same client, no request of which waits longer than `timeout`
    /// (each still waits at most its own [`Deadline`]): for a caller that
    /// must know soon whether the agent answers at all.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        AgentClient {
            cap: Some(self.cap.map_or(timeout, |cap| cap.min(timeout))),
            ..self
        }
    }

    /// The HTTP client for a request with `deadline`.
    fn within(&self, deadline: Deadline) -> HttpClient {
        let d = deadline.duration();
        self.http
            .clone()
            .with_timeout(self.cap.map_or(d, |cap| cap.min(d)))
    }

    /// The agent's base URL.
    pub fn url(&self) -> &str {
        self.http.url()
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.within(Deadline::Read).get(&["health"]).await
    }

    /// `GET /v1/domains`.
    pub async fn domains(&self) -> Result<Vec<DomainInfo>, ClientError> {
        self.within(Deadline::Read).get(&["domains"]).await
    }

    /// `POST /v1/domains/connect`.
    pub async fn connect_domain(&self, path: &Path) -> Result<DomainInfo, ClientError> {
        self.within(Deadline::Storage)
            .post(
                &["domains", "connect"],
                &ConnectDomain {
                    path: path.to_path_buf(),
                },
            )
            .await
    }

    /// `POST /v1/domains/create` (SPM).
    pub async fn create_domain(&self, req: &CreateDomain) -> Result<DomainInfo, ClientError> {
        self.within(Deadline::Storage)
            .post(&["domains", "create"], req)
            .await
    }

    /// `GET /v1/domains/{domain}/images/{image}`: the image's volumes.
    pub async fn image_volumes(
        &self,
        domain: Uuid,
        image: Uuid,
    ) -> Result<Vec<VolumeInfo>, ClientError> {
        self.within(Deadline::Read)
            .get(&["domains", &domain.to_string(), "images", &image.to_string()])
            .await
    }

    /// `GET /v1/spm`.
    pub async fn spm(&self) -> Result<SpmStatus, ClientError> {
        self.within(Deadline::Read).get(&["spm"]).await
    }

    /// `POST /v1/pki/request`: a signing request for a new key of the
    /// agent's (certificate renewal).
    pub async fn request_cert(&self) -> Result<CertRequest, ClientError> {
        self.within(Deadline::Storage)
            .post_empty(&["pki", "request"])
            .await
    }

    /// `POST /v1/pki/install`: the certificate signed for that key.
    pub async fn install_cert(&self, cert_pem: &str) -> Result<CertStatus, ClientError> {
        self.within(Deadline::Storage)
            .post(
                &["pki", "install"],
                &InstallCert {
                    cert_pem: cert_pem.to_string(),
                },
            )
            .await
    }

    /// `POST /v1/spm/acquire`.
    pub async fn acquire_spm(&self, master_domain: Uuid) -> Result<SpmStatus, ClientError> {
        self.within(Deadline::Storage)
            .post(&["spm", "acquire"], &AcquireSpm { master_domain })
            .await
    }

    /// `POST /v1/spm/release`.
    pub async fn release_spm(&self) -> Result<SpmStatus, ClientError> {
        self.within(Deadline::Storage)
            .post_empty(&["spm", "release"])
            .await
    }

    /// `POST /v1/volumes/create` (SPM).
    pub async fn create_volume(&self, req: &CreateVolume) -> Result<VolumeInfo, ClientError> {
        self.within(Deadline::Storage)
            .post(&["volumes", "create"], req)
            .await
    }

    /// `POST /v1/volumes/create-cross-sd` (SPM): `createVolumeCrossSD`.
    pub async fn create_volume_cross_sd(
        &self,
        req: &CreateVolumeCrossSd,
    ) -> Result<VolumeInfo, ClientError> {
        self.within(Deadline::Storage)
            .post(&["volumes", "create-cross-sd"], req)
            .await
    }

    /// `POST /v1/volumes/delete` (SPM).
    pub async fn delete_volumes(&self, req: &DeleteVolumes) -> Result<Deleted, ClientError> {
        self.within(Deadline::Storage)
            .post(&["volumes", "delete"], req)
            .await
    }

    /// `POST /v1/images/delete` (SPM).
    pub async fn delete_image(&self, req: &DeleteImage) -> Result<Deleted, ClientError> {
        self.within(Deadline::Storage)
            .post(&["images", "delete"], req)
            .await
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
        self.within(Deadline::Storage).post(&["vms"], def).await
    }

    /// `GET /v1/vms`.
    pub async fn vms(&self) -> Result<Vec<VmStatus>, ClientError> {
        self.within(Deadline::Read).get(&["vms"]).await
    }

    /// `GET /v1/vms/{id}`.
    pub async fn vm(&self, vm: Uuid) -> Result<VmStatus, ClientError> {
        self.within(Deadline::Read)
            .get(&["vms", &vm.to_string()])
            .await
    }

    /// `GET /v1/vms/{id}/io`: the guest's I/O counts and times so far.
    pub async fn vm_io(&self, vm: Uuid) -> Result<VmIo, ClientError> {
        self.within(Deadline::Read)
            .get(&["vms", &vm.to_string(), "io"])
            .await
    }

    /// `DELETE /v1/vms/{id}`: removes a stopped VM's definition.
    pub async fn undefine_vm(&self, vm: Uuid) -> Result<(), ClientError> {
        self.within(Deadline::Storage)
            .delete(&["vms", &vm.to_string()])
            .await
    }

    /// `POST /v1/vms/{id}/start` (a running VM is left running).
    pub async fn start_vm(&self, vm: Uuid) -> Result<VmStatus, ClientError> {
        self.within(Deadline::StartVm)
            .post(&["vms", &vm.to_string(), "start"], &serde_json::json!({}))
            .await
    }

    /// `POST /v1/vms/{id}/stop`: powers down, quitting QEMU after
    /// `grace_secs` (0: at once).
    pub async fn stop_vm(&self, vm: Uuid, grace_secs: u64) -> Result<VmStatus, ClientError> {
        self.within(Deadline::StopVm(grace_secs))
            .post(&["vms", &vm.to_string(), "stop"], &StopVm { grace_secs })
            .await
    }

    /// `POST /v1/vms/{id}/block-migrate`: the seed's `blockMigrate`.
    pub async fn block_migrate(
        &self,
        vm: Uuid,
        req: &BlockMigrate,
    ) -> Result<SwitchReport, ClientError> {
        self.within(Deadline::Switch)
            .post(&["vms", &vm.to_string(), "block-migrate"], req)
            .await
    }

    /// `POST /v1/vms/{id}/finalize-block-migrate`: the seed's
    /// `finalizeBlockMigrate`.
    pub async fn finalize_block_migrate(
        &self,
        vm: Uuid,
        req: &FinalizeBlockMigrate,
    ) -> Result<SwitchReport, ClientError> {
        self.within(Deadline::Switch)
            .post(&["vms", &vm.to_string(), "finalize-block-migrate"], req)
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
        self.within(Deadline::Task)
            .post(&["tasks", &task.to_string(), verb], params)
            .await
    }

    /// `GET /v1/tasks/{id}`.
    pub async fn task(&self, task: Uuid) -> Result<TaskStatus, ClientError> {
        self.within(Deadline::Read)
            .get(&["tasks", &task.to_string()])
            .await
    }

    /// `GET /v1/tasks/{id}?wait_ms=…`: the task's status as soon as it
    /// has ended, or after `wait` (at most 5 s) if it still runs.
    pub async fn task_when_ended(
        &self,
        task: Uuid,
        wait: Duration,
    ) -> Result<TaskStatus, ClientError> {
        let http = self.within(Deadline::Read);
        let mut url = http.endpoint(&["tasks", &task.to_string()])?;
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        url.query_pairs_mut()
            .append_pair("wait_ms", &ms.to_string());
        http.send(reqwest::Method::GET, url, None::<&()>).await
    }

    /// `GET /v1/tasks`.
    pub async fn tasks(&self) -> Result<Vec<TaskStatus>, ClientError> {
        self.within(Deadline::Read).get(&["tasks"]).await
    }

    /// `POST /v1/tasks/{id}/cancel`.
    pub async fn cancel_task(&self, task: Uuid) -> Result<TaskStatus, ClientError> {
        self.within(Deadline::Task)
            .post_empty(&["tasks", &task.to_string(), "cancel"])
            .await
    }

    /// `POST /v1/tasks/{id}/pace`: sets a running copy's limit, or holds
    /// it.
    pub async fn pace_task(&self, task: Uuid, pace: &PaceTask) -> Result<TaskStatus, ClientError> {
        self.within(Deadline::Task)
            .post(&["tasks", &task.to_string(), "pace"], pace)
            .await
    }

    /// `DELETE /v1/tasks/{id}`: forgets a finished task.
    pub async fn forget_task(&self, task: Uuid) -> Result<(), ClientError> {
        self.within(Deadline::Task)
            .delete(&["tasks", &task.to_string()])
            .await
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
                    what: format!(
                        "task {task} was still running (last status: {} of {} bytes)",
                        status.done_bytes, status.total_bytes
                    ),
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}
