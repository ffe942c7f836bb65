//! Ferry's storage layer: VDSM-compatible file storage domains, their
//! volumes and chains, and the layer-exact copy and verify a move is built
//! on. It knows nothing of QEMU processes, HTTP or databases; it only ever
//! runs `qemu-img` for formats and inspection.

mod atomic;
pub mod chain;
pub mod copy;
pub mod create_volume;
pub mod delete;
mod dir_entries;
mod direct_io;
pub mod domain;
mod domain_root;
pub mod error;
pub mod garbage;
pub mod metadata;
pub mod qemu_img;
pub mod release;
pub mod sparse_copy;
mod test_hooks;
pub mod throttle;
pub mod verify;
pub mod volume;

pub use chain::{find_top, Chain, ChainLink};
pub use copy::{copy_chain, copy_volume, data_bytes, CopyKind, CopyOutcome};
pub use create_volume::VolumeSpec;
pub use delete::Presence;
pub use domain::{Capacity, DomainSet, StorageDomain};
pub use error::{Error, Result};
pub use garbage::Collected;
pub use metadata::VolumeMetadata;
pub use release::{Released, Retired};
pub use sparse_copy::{CopyControl, CopyMethod};
pub use verify::{verify_copy, VerifyReport};
pub use volume::Volume;
