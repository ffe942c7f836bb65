//! The engine's REST API (`/api/v1`): every request and response body, for
//! the engine, the `ferry` CLI, the web UI and the OpenAPI document.
//!
//! Things are named by UUID in responses; requests accept a name or a UUID
//! wherever they name a thing (`domain`, `disks`, `host`, `to`), as the
//! CLI does. Field names are `snake_case`, enums lowercase words; requests
//! refuse unknown fields.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{Legality, VolumeFormat, VolumeRole};

pub use crate::error::{ApiError, ErrorKind};

/// What a name may be, for the OpenAPI document: 1 to 50 letters, digits,
/// `-`, `_` or `.`, starting with a letter or a digit (the engine also
/// refuses UUID-shaped names).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$";

/// The largest disk, in bytes: 8 TiB, which every file system Ferry's
/// domains live on holds as one file.
pub const MAX_DISK_SIZE: u64 = 8 << 40;

/// `GET /api/v1/health` (no token needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EngineHealth {
    /// Always "ok" when the engine answers.
    pub status: String,
    /// The engine's version.
    pub version: String,
}

/// Whether the engine can reach a host's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Its agent answers.
    Up,
    /// Its agent does not answer; its VMs are unknown.
    Down,
    /// Added, its agent not enrolled yet (`ferry agent enroll` with the
    /// one-time token): the engine has no certificate to accept from it.
    Enrolling,
}

/// The certificate the engine accepts from a host's agent (signed by the
/// engine's CA at enrolment or renewal; nothing else is accepted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostCertificate {
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    /// Its serial number, hex.
    pub serial: String,
    /// When it expires, seconds since the Unix epoch.
    pub not_after: u64,
}

/// A hypervisor host running a Ferry agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Host {
    /// The host's UUID.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its agent's base URL.
    pub url: String,
    /// Up or down.
    pub status: HostStatus,
    /// Whether it holds the SPM role.
    pub spm: bool,
    /// When its agent last answered, seconds since the Unix epoch.
    pub last_seen: Option<u64>,
    /// Why it is down, when it is.
    pub error: Option<String>,
    /// The certificate its agent must present; none until it enrolls.
    pub certificate: Option<HostCertificate>,
}

/// `POST /api/v1/hosts`: add a host. It is recorded `enrolling` and the
/// answer carries a one-time token for its agent's enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddHost {
    /// Its name: letters, digits, `-`, `_`, `.`.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$",
        min_length = 1,
        max_length = 50
    )]
    pub name: String,
    /// Its agent's base URL (`https://host:54321`).
    #[schema(pattern = "^\\s*https://[^\\s/]\\S*\\s*$")]
    pub url: String,
}

/// `POST /api/v1/hosts/{host}/enrolment`: a new one-time token for a host
/// (its token was lost or expired, its key lost, or its certificate
/// expired), optionally at a new URL. Its current certificate stays
/// accepted until the agent enrolls again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reenrol {
    /// Its agent's new base URL, if it moved (`https://host:54321`).
    #[serde(default)]
    #[schema(pattern = "^\\s*https://[^\\s/]\\S*\\s*$")]
    pub url: Option<String>,
}

/// A host and the one-time token its agent enrolls with. The token is
/// shown once: the engine keeps only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostEnrolment {
    /// The host.
    pub host: Host,
    /// Give it to `ferry agent enroll --token` on the host. It carries
    /// the fingerprint of the engine's CA, so the agent knows the engine.
    pub token: String,
    /// When it stops being accepted, seconds since the Unix epoch.
    pub expires: u64,
}

/// `POST /api/v1/enroll` (no bearer token: the one-time token is the
/// credential): an agent's signing request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The one-time token `ferry host add` printed.
    pub token: String,
    /// A PKCS#10 certificate signing request (PEM) for the agent's key,
    /// which stays on the host.
    pub csr_pem: String,
}

/// `GET /api/v1/ca` (no token needed): the engine's CA certificate, which
/// an enrolling agent checks against its token before it sends the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EngineCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// Its SHA-256, hex.
    pub fingerprint: String,
}

/// The answer to an enrolment: the agent's certificate and the CA that
/// signed it (whose client certificate the agent will accept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrolAnswer {
    /// The host's name, as the engine knows it.
    pub host: String,
    /// The agent's certificate, PEM.
    pub cert_pem: String,
    /// The engine's CA certificate, PEM.
    pub ca_pem: String,
}

/// One certificate and when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificateSummary {
    /// Whose it is ("engine API", "engine client", "CA", a host's name).
    pub owner: String,
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    /// When it expires, seconds since the Unix epoch.
    pub not_after: u64,
    /// Why it could not be renewed, when it could not.
    pub error: Option<String>,
}

/// `POST /api/v1/certificates/rotate`: renew the engine's certificates
/// and every enrolled host's now, without a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateCertificates {
    /// Only these hosts (names or UUIDs); none: every enrolled host.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// What a rotation renewed (and what it could not), and `GET
/// /api/v1/certificates`: every certificate the engine knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Certificates {
    /// The CA, the engine's API certificate and its client certificate.
    pub engine: Vec<CertificateSummary>,
    /// One per enrolled host.
    pub hosts: Vec<CertificateSummary>,
}

/// A storage domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Domain {
    /// The domain's UUID.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its directory (`<root>/<uuid>`).
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// Size of its filesystem in bytes.
    pub capacity: u64,
    /// Bytes free there.
    pub free: u64,
    /// Whether it is the master domain (holds the SPM lease).
    pub master: bool,
    /// The disks whose leaf is on it.
    pub disks: Vec<Uuid>,
}

/// `POST /api/v1/domains`: create a storage domain under `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDomain {
    /// Its name.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$",
        min_length = 1,
        max_length = 50
    )]
    pub name: String,
    /// The directory it is created in: absolute, existing (404 if not),
    /// and empty or holding only storage domains, never a system
    /// directory (409 if not); the domain becomes `<path>/<uuid>`.
    #[schema(value_type = String, pattern = "^/", min_length = 1)]
    pub path: PathBuf,
}

/// One volume of a disk's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Volume {
    /// The volume's UUID.
    pub id: Uuid,
    /// The domain it is on.
    pub domain: Uuid,
    /// Its file.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// Raw or qcow2.
    pub format: VolumeFormat,
    /// Its parent, if any.
    pub parent: Option<Uuid>,
    /// LEGAL, ILLEGAL or FAKE.
    pub legality: Legality,
    /// LEAF, INTERNAL or SHARED (VDSM's VOLTYPE).
    pub voltype: VolumeRole,
    /// Bytes its file holds (data, not holes) when the engine last read
    /// the chain: what copying it moves, so what a move needs on the
    /// destination. An estimate between reads, as the guest writes.
    #[serde(default)]
    pub allocated: u64,
}

/// A virtual disk (VDSM's image) and its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Disk {
    /// The disk's UUID (the image UUID).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The domain of its leaf volume.
    pub domain: Uuid,
    /// Virtual size in bytes.
    pub size: u64,
    /// The chain, base first, as it is on storage: during a live move it
    /// spans two domains, its top the move's new leaf on the destination.
    pub volumes: Vec<Volume>,
    /// During a move, the disk's volumes outside its chain on the move's
    /// other domain: the copies being made (ILLEGAL until verified), or,
    /// past the switch, the source's volumes awaiting cleanup.
    #[serde(default)]
    pub outside_chain: Vec<Volume>,
    /// The VM using it, if any.
    pub vm: Option<Uuid>,
    /// The job that has it locked, if any.
    pub locked_by: Option<Uuid>,
}

/// `POST /api/v1/disks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDisk {
    /// Its name.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$",
        min_length = 1,
        max_length = 50
    )]
    pub name: String,
    /// The domain, by name or UUID.
    #[schema(min_length = 1)]
    pub domain: String,
    /// Virtual size in bytes, 1 to 8 TiB.
    #[serde(deserialize_with = "crate::whole::u64")]
    #[schema(minimum = 1, maximum = 8796093022208_u64)]
    pub size: u64,
    /// Raw or qcow2 (default raw).
    #[serde(default = "raw")]
    pub format: VolumeFormat,
    /// Allocate all space now (default: sparse).
    #[serde(default)]
    pub preallocated: bool,
}

fn raw() -> VolumeFormat {
    VolumeFormat::Raw
}

/// Whether a VM runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    /// Its QEMU runs.
    Running,
    /// It does not run.
    Stopped,
    /// Its host is down: the engine cannot tell.
    Unknown,
}

/// A VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Vm {
    /// The VM's UUID.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The host it runs on (or will start on).
    pub host: Uuid,
    /// Running, stopped or unknown.
    pub state: VmState,
    /// Why a running VM's guest is paused (its disk is full or failing),
    /// as its host last reported; its host resumes it once the disk can
    /// take writes again. `None` while the guest runs.
    #[serde(default)]
    pub paused: Option<String>,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Its disks, in device order.
    pub disks: Vec<Uuid>,
}

/// A kernel to boot directly (appliances, Ferry's test guest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectBoot {
    /// The kernel image, on the host.
    #[schema(value_type = String)]
    pub kernel: PathBuf,
    /// The initramfs, on the host.
    #[schema(value_type = String)]
    pub initrd: PathBuf,
    /// The kernel command line.
    #[serde(default)]
    pub append: String,
}

/// `POST /api/v1/vms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVm {
    /// Its name: letters, digits, `-` and `_`, starting with a letter.
    #[schema(
        pattern = "^[A-Za-z][A-Za-z0-9_-]{0,49}$",
        min_length = 1,
        max_length = 50
    )]
    pub name: String,
    /// Its disks, by name or UUID, in device order, each once.
    #[schema(min_items = 1)]
    pub disks: Vec<String>,
    /// Guest memory in MiB, 16 to 1048576 (default 256).
    #[serde(default, deserialize_with = "crate::whole::opt_u64")]
    #[schema(minimum = 16, maximum = 1048576)]
    pub memory_mib: Option<u64>,
    /// The host, by name or UUID (default: the first host that is up).
    #[serde(default)]
    pub host: Option<String>,
    /// Direct kernel boot.
    #[serde(default)]
    pub boot: Option<DirectBoot>,
}

/// `POST /api/v1/disks/{disk}/move` and `POST /api/v1/vms/{vm}/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The destination domain, by name or UUID.
    pub to: String,
    /// Bandwidth limit for the copy in MiB/s, at least 1; absent for
    /// none.
    #[serde(default, deserialize_with = "crate::whole::opt_u64")]
    #[schema(minimum = 1)]
    pub bandwidth_mib_s: Option<u64>,
    /// How a live move's copy is paced: by the guest (the default) or only
    /// by `bandwidth_mib_s` (as fast as it allows).
    #[serde(default)]
    pub pace: PaceMode,
    /// With `pace: guest`: the share of its I/O rate the guest is to keep
    /// while the copy runs, in percent, 10 to 95 (absent: 80). Lower lets
    /// the copy take more of the disk and the move end sooner; higher
    /// spares the guest and takes longer.
    #[serde(
        default,
        deserialize_with = "crate::whole::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 10, maximum = 95)]
    pub guest_share_pct: Option<u64>,
    /// A caller's own id for the job (oVirt's correlation id): 1 to 50
    /// letters, digits, `.`, `_` or `-`. Jobs can be found by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 50, pattern = "^[A-Za-z0-9._-]{1,50}$")]
    pub correlation_id: Option<String>,
}

impl MoveRequest {
    /// A move to `to` with every option at its default: paced by the
    /// guest, no bandwidth limit, no correlation id.
    pub fn new(to: impl Into<String>) -> MoveRequest {
        MoveRequest {
            to: to.into(),
            bandwidth_mib_s: None,
            pace: PaceMode::default(),
            guest_share_pct: None,
            correlation_id: None,
        }
    }
}

/// The share of its I/O rate a guest keeps while a guest-paced copy runs,
/// when the move does not say: four fifths, the most that still lets a
/// copy on a shared disk go at a useful rate (docs/engine.md, run 10).
pub const GUEST_SHARE_DEFAULT_PCT: u64 = 80;

/// The shares a move may ask for, in percent: under a tenth the pacing
/// would not be pacing, and above 95 % the latency's own noise would hold
/// the copy at its floor.
pub const GUEST_SHARE_PCT: std::ops::RangeInclusive<u64> = 10..=95;

/// How a live move's copy is paced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaceMode {
    /// The copy runs as fast as the guest keeps its share of its own I/O
    /// rate (`guest_share_pct`, 80 % unless the move says), as estimated
    /// from the guest's request latency against its level without the copy
    /// and its time waiting on its disk; the bandwidth limit, if any, stays
    /// an upper bound.
    #[default]
    Guest,
    /// Only the bandwidth limit paces the copy (none: as fast as the disks
    /// go).
    Fixed,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Move one disk.
    DiskMove,
    /// Move every disk of a VM together.
    VmMove,
}

/// Live (VM running) or cold (VM down) move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MoveMode {
    /// The VM runs: the seed's live flow.
    Live,
    /// The VM is down (or has none): copy, switch metadata, delete.
    Cold,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Working forwards.
    Running,
    /// Undoing what it did after a failure or a cancel.
    RollingBack,
    /// Done: the disks are on the destination.
    Succeeded,
    /// Ended without moving; the disks are where they were. `error` says why.
    Failed,
    /// Cancelled on request; the disks are where they were.
    Cancelled,
}

impl JobState {
    /// Whether the job will not change any more.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started.
    Pending,
    /// Running now.
    Running,
    /// Done.
    Done,
    /// Not needed for this job (a cold move has no `blockMigrate`).
    Skipped,
    /// Failed; see `error`.
    Failed,
    /// Undone by a rollback.
    RolledBack,
}

/// A step of a move job, named on the wire, in the database and on the
/// screen as the seed names it (`createVolumeCrossSD`, ...), so oVirt
/// users recognise it; the engine matches on the enum, never on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Step {
    /// Validate, lock, decide the plan.
    #[serde(rename = "prepare")]
    Prepare,
    /// The new leaf on the destination, over the leaf on the source.
    #[serde(rename = "createVolumeCrossSD")]
    CreateVolumeCrossSd,
    /// The VM writes to the new leaf.
    #[serde(rename = "blockMigrate")]
    BlockMigrate,
    /// Layer-exact copies of the volumes under the new leaf, verified.
    #[serde(rename = "cloneInternalVolumes")]
    CloneInternalVolumes,
    /// The VM reads from the copies: the switch point of a live move.
    #[serde(rename = "finalizeBlockMigrate")]
    FinalizeBlockMigrate,
    /// The move's leaf folded into its parent: the chain keeps its shape.
    #[serde(rename = "merge")]
    Merge,
    /// A cold move's switch of the disk to the destination's copies.
    #[serde(rename = "switch")]
    Switch,
    /// The source's volumes deleted, the disk unlocked.
    #[serde(rename = "cleanup")]
    Cleanup,
}

impl Step {
    /// Every step, in the order a live move (then a cold one) meets them.
    pub const ALL: [Step; 8] = [
        Step::Prepare,
        Step::CreateVolumeCrossSd,
        Step::BlockMigrate,
        Step::CloneInternalVolumes,
        Step::FinalizeBlockMigrate,
        Step::Merge,
        Step::Switch,
        Step::Cleanup,
    ];

    /// The seed's name of the step, as the API, the database and the UI
    /// spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::CreateVolumeCrossSd => "createVolumeCrossSD",
            Step::BlockMigrate => "blockMigrate",
            Step::CloneInternalVolumes => "cloneInternalVolumes",
            Step::FinalizeBlockMigrate => "finalizeBlockMigrate",
            Step::Merge => "merge",
            Step::Switch => "switch",
            Step::Cleanup => "cleanup",
        }
    }

    /// The step of that name, if there is one.
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of a job (the seed's names: `prepare`, `createVolumeCrossSD`,
/// `blockMigrate`, `cloneInternalVolumes`, `finalizeBlockMigrate`, `merge`,
/// `cleanup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobStep {
    /// The step.
    pub name: Step,
    /// Where it stands.
    pub state: StepState,
    /// When it started, milliseconds since the Unix epoch.
    pub started: Option<u64>,
    /// When it ended, milliseconds since the Unix epoch.
    pub finished: Option<u64>,
    /// How many times it was tried.
    pub attempts: u32,
    /// Its last error.
    pub error: Option<String>,
}

/// A move job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// The job's UUID.
    pub id: Uuid,
    /// Disk move or VM move.
    pub kind: JobKind,
    /// Live or cold.
    pub mode: MoveMode,
    /// Where it stands.
    pub state: JobState,
    /// The disks it moves.
    pub disks: Vec<Uuid>,
    /// The VM whose disks move, if any.
    pub vm: Option<Uuid>,
    /// Where the disks were.
    pub src_domain: Uuid,
    /// Where they go.
    pub dst_domain: Uuid,
    /// The step running now (or the last one).
    pub step: Step,
    /// Every step, in order.
    pub steps: Vec<JobStep>,
    /// Bytes copied so far.
    pub done_bytes: u64,
    /// Bytes to copy in all.
    pub total_bytes: u64,
    /// Copy rate over the last seconds, bytes per second.
    pub rate_bps: u64,
    /// Seconds left at that rate, when known.
    pub eta_secs: Option<u64>,
    /// Bandwidth limit in MiB/s, if any.
    pub bandwidth_mib_s: Option<u64>,
    /// How its copy is paced.
    #[serde(default)]
    pub pace: PaceMode,
    /// Whether the engine paces the copy by its guest now (it has read
    /// the guest at least once and the copy runs): then a `None`
    /// `pace_limit_bps` means unlimited.
    #[serde(default)]
    pub pacing: bool,
    /// While a guest-paced copy runs: its limit now, bytes per second
    /// (`None`: unlimited, when `pacing`; else not paced now).
    #[serde(default)]
    pub pace_limit_bps: Option<u64>,
    /// While a guest-paced copy runs: the guest's write latency over the
    /// last second, in microseconds.
    #[serde(default)]
    pub guest_latency_us: Option<u64>,
    /// The guest's write latency without the copy, in microseconds (its
    /// mean before the move, or the lowest it has shown since): what the
    /// pacing measures the guest's loss against.
    #[serde(default)]
    pub guest_baseline_us: Option<u64>,
    /// While a guest-paced copy runs: the share of its I/O rate the guest
    /// keeps, in percent, as the pacing estimates it from its latency
    /// against the baseline and its time waiting on its disk (the pacing
    /// keeps it at 80 % or more).
    #[serde(default)]
    pub guest_kept_pct: Option<u8>,
    /// For a guest-paced live move: the share of its I/O rate the guest is
    /// to keep, in percent (what the pacing aims at: the move's
    /// `guest_share_pct`, or 80).
    #[serde(default)]
    pub guest_share_pct: Option<u64>,
    /// Whether `cancel` is still possible (until `finalizeBlockMigrate`).
    pub cancellable: bool,
    /// Whether `retry` is possible: the job failed after the switch to
    /// the destination, so nothing was rolled back and its disks stay
    /// locked until it is retried and ends.
    #[serde(default)]
    pub retryable: bool,
    /// Whether it waits for a place: the engine runs a bounded number of
    /// moves at once (`--max-moves`); a queued job is at `prepare`, has
    /// made nothing yet, and can be cancelled.
    #[serde(default)]
    pub queued: bool,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// The caller's own id for it, as given with the move (oVirt's
    /// correlation id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// When it was created, milliseconds since the Unix epoch.
    pub created: u64,
    /// When it finished.
    pub finished: Option<u64>,
}

/// An entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Increasing number.
    pub id: i64,
    /// When, milliseconds since the Unix epoch.
    pub time: u64,
    /// What kind of thing happened (`job`, `host`, `vm`, `disk`, `domain`).
    pub kind: String,
    /// What happened, in words.
    pub message: String,
    /// The thing it happened to.
    pub object: Option<Uuid>,
}

#[cfg(test)]
mod step_tests {
    use super::Step;

    #[test]
    fn steps_travel_by_the_seeds_names() {
        for step in Step::ALL {
            let json = serde_json::to_string(&step).expect("encode");
            assert_eq!(json, format!("\"{}\"", step.name()));
            assert_eq!(Step::from_name(step.name()), Some(step));
        }
        assert_eq!(Step::from_name("copy"), None);
    }
}
