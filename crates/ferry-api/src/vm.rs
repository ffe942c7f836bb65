//! The host agent's VM API (the HSM role): VM definitions, their state,
//! and the block-graph verbs of a live move. Same conventions as
//! [`crate::agent`]: `snake_case` fields, unknown request fields refused.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One disk of a VM: an image and the domain its active (leaf) volume is
/// on. The agent reads the rest of the chain from the domains' metadata,
/// so a chain split across two domains during a move needs no more here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmDisk {
    /// The image (disk).
    pub image: Uuid,
    /// The domain of its leaf volume.
    pub domain: Uuid,
}

/// A Linux kernel booted directly (the test guest, or appliances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmBoot {
    /// The kernel image, absolute.
    pub kernel: PathBuf,
    /// The initramfs, absolute.
    pub initrd: PathBuf,
    /// The kernel command line.
    #[serde(default)]
    pub append: String,
}

/// `POST /v1/vms`: define (or redefine, while stopped) a VM on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmDefinition {
    /// The VM's UUID, chosen by the caller.
    pub id: Uuid,
    /// Its name: letters, digits, `-` and `_`, starting with a letter.
    pub name: String,
    /// Guest memory in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
    /// Virtual CPUs.
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    /// Its disks, in device order.
    pub disks: Vec<VmDisk>,
    /// Direct kernel boot; absent boots from the first disk.
    #[serde(default)]
    pub boot: Option<VmBoot>,
}

fn default_memory() -> u64 {
    256
}

fn default_cpus() -> u32 {
    1
}

/// Whether a VM's QEMU process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    /// QEMU runs.
    Running,
    /// No QEMU process.
    Stopped,
}

/// One volume of a running disk's chain, as QEMU has it open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenVolume {
    /// The domain the open file is on.
    pub domain: Uuid,
    /// The volume.
    pub volume: Uuid,
}

/// A disk of a VM as the agent sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDiskStatus {
    /// The image (disk).
    pub image: Uuid,
    /// The domain of its leaf, per the definition.
    pub domain: Uuid,
    /// The QEMU device id.
    pub device: String,
    /// The chain QEMU has open, leaf first; empty when stopped.
    pub open_chain: Vec<OpenVolume>,
}

/// `GET /v1/vms/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStatus {
    /// The VM's UUID.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Running or stopped.
    pub state: VmState,
    /// The QEMU process id while running.
    pub pid: Option<i32>,
    /// Its disks.
    pub disks: Vec<VmDiskStatus>,
    /// The file the guest's first serial port writes to.
    pub serial_log: PathBuf,
    /// Why the guest is paused although QEMU runs (`None`: it runs, or
    /// QEMU does not).
    #[serde(default)]
    pub paused: Option<VmPause>,
    /// The block jobs QEMU holds (running, or ended and not yet
    /// dismissed); none once a move has ended.
    #[serde(default)]
    pub block_jobs: Vec<String>,
}

/// `GET /v1/vms/{id}/io`: the guest's I/O as QEMU counts it, cumulative
/// since QEMU started, summed over the VM's disks, and how long its
/// virtual CPUs waited for the host's. Two readings give the guest's
/// request latency between them and its time kept from running; a move
/// paces its copy by them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmIo {
    /// Reads served.
    pub rd_operations: u64,
    /// Time reads took, in nanoseconds.
    pub rd_total_time_ns: u64,
    /// Writes served.
    pub wr_operations: u64,
    /// Time writes took, in nanoseconds.
    pub wr_total_time_ns: u64,
    /// Flushes served (a guest's `fdatasync`).
    pub flush_operations: u64,
    /// Time flushes took, in nanoseconds.
    pub flush_total_time_ns: u64,
    /// How many virtual CPUs the figures below cover (0: the host's
    /// kernel does not say, and the guest's CPU is not weighed).
    #[serde(default)]
    pub vcpu_threads: u32,
    /// Time the guest's virtual CPUs ran on the host's, in nanoseconds,
    /// summed (the kernel's `schedstat` of QEMU's vCPU threads).
    #[serde(default)]
    pub vcpu_run_ns: u64,
    /// Time they were ready to run and waited for a host CPU, summed: a
    /// copy that takes the host's CPUs from the guest costs it this much,
    /// which its disk latency does not show.
    #[serde(default)]
    pub vcpu_wait_ns: u64,
}

/// Why a running VM's guest is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmPause {
    /// What paused it, for decisions.
    pub cause: PauseCause,
    /// The same as a sentence, for people: the disk and its file.
    pub detail: String,
}

/// What paused a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// A disk's storage is full: the agent resumes the VM once there is
    /// room again.
    NoSpace,
    /// A disk's storage failed a request: the agent tries to resume it
    /// now and then.
    IoError,
    /// Something else paused it (an operator, a migration).
    Other,
}

/// `POST /v1/vms/{id}/stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopVm {
    /// Seconds to wait for the guest to power down before QEMU is told to
    /// quit; 0 quits at once.
    #[serde(default = "default_grace")]
    pub grace_secs: u64,
}

fn default_grace() -> u64 {
    30
}

/// One disk's switch in a [`BlockMigrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockMigrateDisk {
    /// The image (disk).
    pub image: Uuid,
    /// The domain its leaf is on now.
    pub src_domain: Uuid,
    /// The domain of the new leaf.
    pub dst_domain: Uuid,
    /// The new leaf, made by `createVolumeCrossSD` with the current leaf
    /// as its parent.
    pub volume: Uuid,
}

/// `POST /v1/vms/{id}/block-migrate`: the seed's `blockMigrate`. Switches
/// the listed disks onto their new leaves all at once (one QMP
/// `transaction`), so the destination never holds disks from different
/// moments. Idempotent: disks already switched are left alone. With
/// `dst_domain` equal to `src_domain` it is a live snapshot onto a new leaf
/// beside the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockMigrate {
    /// The disks to switch.
    pub disks: Vec<BlockMigrateDisk>,
}

/// One disk of a [`FinalizeBlockMigrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeDisk {
    /// The image (disk).
    pub image: Uuid,
    /// The domain the internal volumes are read from now.
    pub src_domain: Uuid,
    /// The domain holding the leaf and the verified copies.
    pub dst_domain: Uuid,
}

/// `POST /v1/vms/{id}/finalize-block-migrate`: the seed's
/// `finalizeBlockMigrate`. Moves each disk's backing chain onto the
/// destination copies, rewrites the leaf's header to name its parent
/// relatively and drops the cross-domain parent from its metadata. Works on
/// a stopped VM too (header and metadata only). Idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeBlockMigrate {
    /// The disks to finalize.
    pub disks: Vec<FinalizeDisk>,
}

/// What a block-graph switch cost the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchReport {
    /// Disks switched by this call (0 when everything was already done).
    pub switched: usize,
    /// Milliseconds the switch itself took in QEMU, during which the
    /// guest's I/O to those disks was held.
    pub qemu_ms: u64,
}

/// `POST /v1/tasks/{id}/merge`: commit a disk's leaf into its parent on the
/// same domain and pivot, so the disk keeps the chain shape it had before
/// the move; the merged volume is deleted. Idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    /// The VM using the disk.
    pub vm: Uuid,
    /// The image (disk).
    pub image: Uuid,
    /// The domain of the leaf and its parent.
    pub domain: Uuid,
    /// The leaf to merge away (the move's temporary leaf); once it is gone
    /// the merge is done.
    pub volume: Uuid,
}

/// `POST /v1/tasks/{id}/rollback-block-migrate`: undo `blockMigrate` by
/// committing the new leaf on `dst_domain` back into the old leaf on
/// `src_domain` and pivoting onto it; the new leaf is deleted, and the VM
/// ends where it started. Idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBlockMigrate {
    /// The VM using the disk.
    pub vm: Uuid,
    /// The image (disk).
    pub image: Uuid,
    /// The domain the VM came from.
    pub src_domain: Uuid,
    /// The domain of the new leaf.
    pub dst_domain: Uuid,
    /// The new leaf made for the move; once it is gone the rollback is
    /// done.
    pub volume: Uuid,
}
