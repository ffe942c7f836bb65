//! What a move job will do, decided once at `prepare` and persisted with
//! the job (its `data` column), so a restarted engine carries on with the
//! same volume UUIDs and task ids and every step stays idempotent.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The steps of a live move, in order (the seed's names).
pub const LIVE_STEPS: &[&str] = &[
    PREPARE,
    CREATE_VOLUME_CROSS_SD,
    BLOCK_MIGRATE,
    CLONE_INTERNAL_VOLUMES,
    FINALIZE_BLOCK_MIGRATE,
    MERGE,
    CLEANUP,
];

/// The steps of a cold move: the live steps that touch the running VM are
/// skipped; `switch` points the disk at the destination copies.
pub const COLD_STEPS: &[&str] = &[PREPARE, CLONE_INTERNAL_VOLUMES, SWITCH, CLEANUP];

/// Validate, lock, decide the plan.
pub const PREPARE: &str = "prepare";
/// The new leaf on the destination, over the leaf on the source.
pub const CREATE_VOLUME_CROSS_SD: &str = "createVolumeCrossSD";
/// The VM writes to the new leaf.
pub const BLOCK_MIGRATE: &str = "blockMigrate";
/// Layer-exact copies of the volumes under the new leaf, verified.
pub const CLONE_INTERNAL_VOLUMES: &str = "cloneInternalVolumes";
/// The VM reads from the copies: the switch point.
pub const FINALIZE_BLOCK_MIGRATE: &str = "finalizeBlockMigrate";
/// The move's leaf folded into its parent: the chain keeps its shape.
pub const MERGE: &str = "merge";
/// A cold move's metadata switch.
pub const SWITCH: &str = "switch";
/// The source's volumes deleted, the disk unlocked.
pub const CLEANUP: &str = "cleanup";

/// The steps after which a cancel can no longer bring the disk back to
/// the source without copying it back.
pub fn past_point_of_no_return(step: &str) -> bool {
    matches!(step, FINALIZE_BLOCK_MIGRATE | MERGE | SWITCH | CLEANUP)
}

/// One disk of a move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskPlan {
    /// The disk (image UUID).
    pub disk: Uuid,
    /// Its volumes at prepare, base first; the last is the leaf the VM
    /// writes.
    pub chain: Vec<Uuid>,
    /// The leaf `createVolumeCrossSD` makes on the destination (live).
    pub new_leaf: Uuid,
    /// The task copying the volumes under the leaf while the switch
    /// happens (the seed's "copy the base"); `None` for a one-volume chain.
    pub early_clone: Option<Uuid>,
    /// The task copying the whole chain under the new leaf.
    pub clone: Uuid,
    /// The merge task.
    pub merge: Uuid,
    /// The rollback task (undo of blockMigrate).
    pub rollback: Uuid,
    /// Bytes the chain takes on disk at prepare: the copy's total.
    pub bytes: u64,
}

impl DiskPlan {
    /// The volumes under the leaf: read-only before the switch already.
    pub fn below_leaf(&self) -> &[Uuid] {
        &self.chain[..self.chain.len().saturating_sub(1)]
    }

    /// The current leaf at prepare.
    pub fn leaf(&self) -> Option<Uuid> {
        self.chain.last().copied()
    }
}

/// The whole plan of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovePlan {
    /// The disks, in the VM's device order for a VM move.
    pub disks: Vec<DiskPlan>,
    /// The VM whose disks move, if any.
    pub vm: Option<Uuid>,
    /// Where the VM runs (live moves).
    pub host: Option<Uuid>,
    /// The source domain.
    pub src: Uuid,
    /// The destination domain.
    pub dst: Uuid,
    /// The step that failed, when a rollback runs.
    #[serde(default)]
    pub failed_step: Option<String>,
    /// A live move whose VM was down at `blockMigrate`: it goes on with the
    /// cold steps, in the live job's step rows.
    #[serde(default)]
    pub turned_cold: bool,
}

impl MovePlan {
    /// A fresh plan for these disks (chains as read at prepare).
    pub fn new(src: Uuid, dst: Uuid, vm: Option<Uuid>, host: Option<Uuid>) -> Self {
        MovePlan {
            disks: Vec::new(),
            vm,
            host,
            src,
            dst,
            failed_step: None,
            turned_cold: false,
        }
    }

    /// Adds a disk with fresh UUIDs for everything the move will make.
    pub fn add_disk(&mut self, disk: Uuid, chain: Vec<Uuid>, bytes: u64) {
        let early_clone = (chain.len() > 1).then(Uuid::new_v4);
        self.disks.push(DiskPlan {
            disk,
            chain,
            new_leaf: Uuid::new_v4(),
            early_clone,
            clone: Uuid::new_v4(),
            merge: Uuid::new_v4(),
            rollback: Uuid::new_v4(),
            bytes,
        });
    }

    /// Bytes to copy in all.
    pub fn total_bytes(&self) -> u64 {
        self.disks.iter().map(|d| d.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_survives_its_json_round_trip() {
        let mut plan = MovePlan::new(Uuid::new_v4(), Uuid::new_v4(), None, None);
        plan.add_disk(Uuid::new_v4(), vec![Uuid::new_v4(), Uuid::new_v4()], 42);
        plan.add_disk(Uuid::new_v4(), vec![Uuid::new_v4()], 8);
        let json = serde_json::to_value(&plan).expect("encode");
        let back: MovePlan = serde_json::from_value(json).expect("decode");
        assert_eq!(back, plan);
        assert!(plan.disks[0].early_clone.is_some());
        assert!(plan.disks[1].early_clone.is_none());
        assert_eq!(plan.disks[1].below_leaf().len(), 0);
        assert_eq!(plan.total_bytes(), 50);
    }

    #[test]
    fn cancel_is_possible_until_finalize() {
        for step in [
            PREPARE,
            CREATE_VOLUME_CROSS_SD,
            BLOCK_MIGRATE,
            CLONE_INTERNAL_VOLUMES,
        ] {
            assert!(!past_point_of_no_return(step));
        }
        for step in [FINALIZE_BLOCK_MIGRATE, MERGE, CLEANUP, SWITCH] {
            assert!(past_point_of_no_return(step));
        }
    }
}
