//! The host agent's HTTP API: every request and response body, so the
//! agent, its client (the engine, the CLI, the tests) and the docs agree.
//!
//! Field names are `snake_case`; enums are lowercase words. Requests refuse
//! unknown fields, so a misspelt field is an error instead of being
//! silently ignored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Allocation, Legality, VolumeFormat, VolumeRole};

pub use crate::error::ApiError as ErrorBody;

/// `GET /v1/health`: who the agent is and whether it holds the SPM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The host's name, as given at start.
    pub name: String,
    /// The agent's version.
    pub version: String,
    /// Whether this agent is the SPM.
    pub spm: bool,
    /// The master domain whose lease it holds, when SPM.
    pub spm_domain: Option<Uuid>,
}

/// A storage domain the agent knows (`GET /v1/domains`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// The domain's UUID.
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// Its directory on this host (`<root>/<uuid>`).
    pub path: PathBuf,
    /// Size of the filesystem under it, in bytes.
    pub capacity: u64,
    /// Bytes still free there.
    pub free: u64,
    /// Bytes of deleted volumes this agent is still giving back there
    /// (`release: background`): free space to come within moments.
    #[serde(default)]
    pub releasing: u64,
}

/// `POST /v1/domains/connect`: make an existing domain known to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectDomain {
    /// The domain directory (`<root>/<uuid>`), absolute.
    pub path: PathBuf,
}

/// `POST /v1/domains/create` (SPM): create a domain and connect it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDomain {
    /// The directory the domain goes in, absolute; the domain becomes
    /// `<path>/<uuid>`.
    pub path: PathBuf,
    /// Its name: 1 to 50 letters, digits, `-`, `_` or `.`.
    pub name: String,
    /// Its UUID, chosen by the caller so a retry is recognised.
    pub uuid: Uuid,
}

/// `POST /v1/spm/acquire`: take the SPM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireSpm {
    /// The domain whose `dom_md/leases` is the SPM lease.
    pub master_domain: Uuid,
}

/// `GET /v1/spm` and the answer of acquire and release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpmStatus {
    /// The host's name.
    pub host: String,
    /// Whether this agent holds the SPM lease.
    pub spm: bool,
    /// The master domain whose lease it holds, when SPM.
    pub master_domain: Option<Uuid>,
}

/// One volume, named by where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRef {
    /// The storage domain.
    pub domain: Uuid,
    /// The image (disk).
    pub image: Uuid,
    /// The volume.
    pub volume: Uuid,
}

/// `POST /v1/volumes/create` (SPM): the engine's disk or snapshot create.
/// Idempotent by volume UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// The storage domain.
    pub domain: Uuid,
    /// The image (disk) the volume belongs to.
    pub image: Uuid,
    /// The new volume's UUID, chosen by the caller.
    pub volume: Uuid,
    /// Raw or qcow2; a volume with a parent must be qcow2.
    pub format: VolumeFormat,
    /// Virtual size in bytes; for a child, absent takes the parent's.
    #[serde(default)]
    pub size: Option<u64>,
    /// Sparse (the default) or preallocated.
    #[serde(default = "sparse")]
    pub allocation: Allocation,
    /// The parent volume, in the same image on the same domain (or a
    /// template's SHARED volume on that domain).
    #[serde(default)]
    pub parent: Option<Uuid>,
    /// The image of `parent` when it is a template's SHARED volume; absent
    /// means the same image.
    #[serde(default)]
    pub parent_image: Option<Uuid>,
    /// Free text, at most 210 characters.
    #[serde(default)]
    pub description: String,
}

fn sparse() -> Allocation {
    Allocation::Sparse
}

/// `POST /v1/volumes/create-cross-sd` (SPM): the seed's
/// `createVolumeCrossSD`. Creates a qcow2 leaf on `dst_domain` whose parent
/// is a volume of the same image on another domain. Idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVolumeCrossSd {
    /// The domain the new volume goes on.
    pub dst_domain: Uuid,
    /// The image (disk); the parent must belong to it too.
    pub image: Uuid,
    /// The new volume's UUID, chosen by the caller.
    pub volume: Uuid,
    /// The parent, on another domain.
    pub parent: VolumeRef,
}

/// A volume as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// The storage domain.
    pub domain: Uuid,
    /// The image (disk).
    pub image: Uuid,
    /// The volume.
    pub volume: Uuid,
    /// Raw or qcow2.
    pub format: VolumeFormat,
    /// Sparse or preallocated.
    pub allocation: Allocation,
    /// Virtual size in bytes.
    pub capacity: u64,
    /// Whether it may be used.
    pub legality: Legality,
    /// Leaf, internal or shared.
    pub role: VolumeRole,
    /// The parent volume, if any.
    pub parent: Option<Uuid>,
    /// The parent's domain when it is not this volume's (a move in flight).
    pub parent_domain: Option<Uuid>,
    /// The volume's file on this host.
    pub path: PathBuf,
    /// Bytes the file takes on disk: what a copy of it needs at the
    /// destination.
    #[serde(default)]
    pub allocated: u64,
}

/// `POST /v1/tasks/{id}/clone-internal-volumes` (SPM): the seed's
/// `cloneInternalVolumes`. Copies the listed volumes layer-exact to
/// `dst_domain`, verifies each copy and marks it LEGAL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneInternalVolumes {
    /// Where the volumes are.
    pub src_domain: Uuid,
    /// Where the copies go.
    pub dst_domain: Uuid,
    /// The image (disk).
    pub image: Uuid,
    /// The volumes to copy, base first; they must form a chain from the
    /// image's base (the internal volumes under a move's leaf).
    pub volumes: Vec<Uuid>,
    /// Bandwidth limit for the whole copy in MiB/s; absent for none.
    #[serde(default)]
    pub bandwidth_mib_s: Option<u64>,
    /// How the copy moves its data, which the engine chooses by whether a
    /// running guest shares the disks and how fast the move is told to go.
    /// Absent for [`CopyIo::Buffered`].
    #[serde(default)]
    pub io: CopyIo,
}

/// How a copy moves its data (`io` in [`CloneInternalVolumes`]): each way
/// is the fastest, or the kindest to a guest, in one situation
/// (docs/engine.md, runs 7 and 8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyIo {
    /// Whole chunks through the page cache: the fastest when no guest
    /// shares the disks or the host's CPU (a cold move).
    #[default]
    Buffered,
    /// The kernel's own copy (`copy_file_range`), in read-ahead-sized
    /// pieces that a guest's requests get in between. The engine chose it
    /// for paced and capped live copies until `Direct` with small requests
    /// measured better for the guest (docs/engine.md, run 9); kept for a
    /// caller whose filesystem copies faster in the kernel (a server-side
    /// NFS copy, a reflink).
    Kernel,
    /// `O_DIRECT`, each chunk read back from the copy as it is written,
    /// 512 KiB per request so that a guest's requests get in between: for
    /// a live move's copy that is paced by the guest or capped. It costs
    /// the host almost no CPU and leaves no writeback for the guest's
    /// flushes to wait on, as QEMU's mirror and vdsm's `qemu-img convert
    /// -t none -T none` do.
    Direct,
    /// [`CopyIo::Direct`] in larger requests, 2 MiB: for a live move told
    /// to go as fast as the disks go. Named for the whole 8 MiB chunks it
    /// moved in one request until a hold before a switch measured better
    /// between 2 MiB ones (docs/engine.md, run 14); the name on the wire
    /// stays, so engines and agents of both versions agree.
    DirectWhole,
}

/// `POST /v1/volumes/delete` (SPM): delete volumes of one image.
/// Idempotent: volumes already gone count as deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteVolumes {
    /// The storage domain.
    pub domain: Uuid,
    /// The image (disk).
    pub image: Uuid,
    /// The volumes, in any order: children are deleted before parents.
    pub volumes: Vec<Uuid>,
}

/// `POST /v1/images/delete` (SPM): delete every volume of an image on one
/// domain. Idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteImage {
    /// The storage domain.
    pub domain: Uuid,
    /// The image (disk).
    pub image: Uuid,
    /// When the deleted volumes' space comes back.
    #[serde(default)]
    pub release: Release,
}

/// When a delete gives the deleted volumes' space back. Either way the
/// volumes are gone, durably, when the call answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// Before the call answers: the space is free then.
    #[default]
    Now,
    /// After the call answers, a bounded step at a time, so writers on
    /// the same storage (running guests) barely notice. Unlinking a file
    /// of gigabytes at once stalls every `fdatasync` on the filesystem for
    /// tens of milliseconds; a move's cleanup uses this.
    Background,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// Volumes this call removed, in the order removed.
    pub deleted: Vec<Uuid>,
    /// Volumes that were already gone.
    pub missing: Vec<Uuid>,
    /// Whether their space is still being given back, after the answer
    /// ([`Release::Background`]).
    #[serde(default)]
    pub releasing_in_background: bool,
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Started and not finished (or waiting to be resumed).
    Running,
    /// Finished and did what it was asked.
    Succeeded,
    /// Finished with an error; `error` says which.
    Failed,
    /// Stopped on request; what it had made was removed.
    Cancelled,
}

impl TaskState {
    /// Whether the task will not change any more.
    pub fn is_finished(self) -> bool {
        self != TaskState::Running
    }
}

/// A task's status: `GET /v1/tasks/{id}`, and the answer of every verb that
/// starts a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The caller-chosen task UUID.
    pub id: Uuid,
    /// The verb it runs (`clone-internal-volumes`, ...).
    pub verb: String,
    /// Where it stands.
    pub state: TaskState,
    /// Bytes done so far.
    pub done_bytes: u64,
    /// Bytes to do in all; may grow while the task runs.
    pub total_bytes: u64,
    /// Why it failed, when it failed.
    pub error: Option<String>,
    /// What kind of failure it was, when it failed: the caller decides on
    /// this (a full destination is not retried), never on `error`'s words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<crate::ErrorKind>,
    /// When it was started, seconds since the Unix epoch.
    pub started: u64,
    /// When it finished, seconds since the Unix epoch.
    pub finished: Option<u64>,
    /// A copy's current bandwidth limit in bytes per second (`None`: no
    /// limit, or not a copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bps: Option<u64>,
    /// A copy held between two of its requests ([`PaceTask::held`]).
    #[serde(default)]
    pub held: bool,
}

/// `POST /v1/tasks/{id}/pace`: changes a running copy's bandwidth limit,
/// or holds it between two of its requests, without stopping it (the engine's
/// guest-aware pacing; the quiet moments around a switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaceTask {
    /// The new limit in bytes per second; `None` for none.
    pub limit_bps: Option<u64>,
    /// Hold the copy (its workers wait before their next request: a direct
    /// copy's next 512 KiB, another copy's next chunk) until a later call
    /// lets it go.
    #[serde(default)]
    pub held: bool,
}

/// `POST /v1/pki/request`: the engine asks the agent for a signing request
/// for a new key (certificate rotation); the key stays on the host, kept
/// aside until its certificate is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRequest {
    /// A PKCS#10 certificate signing request, PEM.
    pub csr_pem: String,
}

/// `POST /v1/pki/install`: the certificate the engine's CA signed for the
/// key of the last [`CertRequest`]; the agent serves it from the next
/// connection on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallCert {
    /// The certificate, PEM.
    pub cert_pem: String,
}

/// The certificate an agent serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertStatus {
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    /// When it expires, seconds since the Unix epoch.
    pub not_after: u64,
}
