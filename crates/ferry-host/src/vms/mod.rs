//! The VMs of this host (the HSM role's inventory): their definitions,
//! persisted in the run directory, and handles on the QEMU processes that
//! run them.
//!
//! QEMU runs daemonized, so the agent can restart without stopping any VM:
//! at start the agent reads every definition back and re-attaches to each
//! VM whose QEMU still runs (`vms/<id>/qemu.pid`, `vms/<id>/qmp.sock`).

mod chain;
mod manager;
mod pause;

pub(crate) use chain::{device_id, layer_of};
pub(crate) use manager::VmEntry;
pub use manager::VmManager;
