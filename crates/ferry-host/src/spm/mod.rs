//! The SPM role: the lease that makes one agent the only one changing
//! storage metadata, and the verbs only that agent runs (ARCHITECTURE §3,
//! §6): volume create, `createVolumeCrossSD`, `cloneInternalVolumes`,
//! delete.

mod clone;
mod lease;
mod role;
pub(crate) mod volumes;

pub use clone::CloneInternalVolumesVerb;
pub use role::SpmRole;

use crate::tasks::VerbRegistry;

/// Registers the SPM's task verbs.
pub(crate) fn register_verbs(verbs: &mut VerbRegistry) {
    verbs.register::<CloneInternalVolumesVerb>();
}
