//! The HSM role: the block-graph verbs of a live move, run on the host
//! where the VM runs. `blockMigrate` and `finalizeBlockMigrate` are quick
//! QMP exchanges answered synchronously; merge and the rollback of
//! `blockMigrate` copy data (an active commit) and run as tasks.
//!
//! Each verb first looks at what QEMU and the storage metadata say now and
//! does only what is left, so calling it again after success, or after an
//! agent crash half-way, ends in the same place.

mod block_migrate;
mod commit;
mod finalize;

pub(crate) use block_migrate::block_migrate;
pub(crate) use finalize::finalize_block_migrate;

use crate::tasks::VerbRegistry;

/// Adds the HSM's task verbs (merge, rollback of `blockMigrate`).
pub(crate) fn register_verbs(registry: &mut VerbRegistry) {
    registry
        .register::<commit::MergeVerb>()
        .register::<commit::RollbackVerb>();
}
