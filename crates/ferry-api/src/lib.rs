//! Types that cross Ferry's process boundaries.
//!
//! The engine, the host agent, the CLI and the web UI all speak in these
//! types, so that one definition decides what a volume's format or legality
//! is called on the wire, in the database and on the screen (the
//! proxmox-backup `api-types` idea).

pub mod agent;
pub mod engine;
mod error;
mod progress;
pub mod vm;
mod volume;
pub mod whole;

pub use error::{ApiError, ErrorKind};
pub use progress::Progress;
pub use volume::{Allocation, Legality, VolumeFormat, VolumeRole};
