//! Ferry's QEMU knowledge: the QMP client, VMs as QEMU processes, and the
//! block-graph operations a live disk move is made of. Nothing here knows
//! about HTTP, databases or storage metadata: the host agent decides *what*
//! to do, this crate knows *how* QEMU does it (firecracker's split of API
//! and VMM core).

pub mod block;
mod error;
mod guest_dir;
pub mod io_stats;
pub mod jobs;
mod node;
mod qmp;
pub mod run_state;
mod vm;

pub use error::{Error, Result};
pub use guest_dir::guest_dir;
pub use node::{Layer, NodeNames};
pub use qmp::{Event, Qmp};
pub use vm::{log_file, pid_file, qmp_socket, Accel, DirectBoot, DiskSpec, Vm, VmSpec};
