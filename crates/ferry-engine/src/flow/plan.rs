//! What a move job will do, decided once at `prepare` and persisted with
//! the job (its `data` column), so a restarted engine carries on with the
//! same volume UUIDs and task ids and every step stays idempotent.

use ferry_api::engine::PaceMode;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

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
    /// Why a rollback runs, once one does: it decides how the job ends.
    #[serde(default, alias = "failed_step", deserialize_with = "rollback_cause")]
    pub rollback: Option<RollbackCause>,
    /// A live move whose VM was down at `blockMigrate`: it goes on with the
    /// cold steps, in the live job's step rows.
    #[serde(default)]
    pub turned_cold: bool,
    /// The rollback gave up (an agent did not answer, or it failed again
    /// and again): the job is failed with its disks still locked, and a
    /// retry runs the rollback again.
    #[serde(default)]
    pub rollback_halted: bool,
    /// Task ids given up for new ones (an agent answers an id with its
    /// old result, so an attempt after a failure needs a new one): the
    /// agents forget them with the others when the job ends.
    #[serde(default)]
    pub retired_tasks: Vec<Uuid>,
    /// How a live move's copy is paced.
    #[serde(default)]
    pub pace: PaceMode,
    /// With guest pacing, the share of its I/O rate the guest is to keep,
    /// percent, as the move asked (`None`: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_share_pct: Option<u64>,
    /// The caller's own id for the job (oVirt's correlation id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
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
            rollback: None,
            turned_cold: false,
            rollback_halted: false,
            retired_tasks: Vec::new(),
            pace: PaceMode::default(),
            guest_share_pct: None,
            correlation_id: None,
        }
    }

    /// Gives one of disk `disk`'s tasks (`which` picks it) a new id for
    /// its next attempt, and keeps the old id to be forgotten at the end.
    pub fn renew_task(&mut self, disk: usize, which: fn(&mut DiskPlan) -> &mut Uuid) {
        if let Some(d) = self.disks.get_mut(disk) {
            let old = std::mem::replace(which(d), Uuid::new_v4());
            self.retired_tasks.push(old);
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

/// Why a job rolls back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackCause {
    /// The user cancelled it: it ends cancelled.
    Cancelled,
    /// A step failed before the switch point: it ends failed, with this
    /// reason.
    Failed(String),
}

/// What the job list shows of the plan stored as `data`, read without
/// decoding the whole plan (the list asks it of every job).
#[derive(Debug, Default, Deserialize)]
pub struct PlanFlags {
    /// How the copy is paced.
    #[serde(default)]
    pub pace: PaceMode,
    /// The share the guest is to keep, as the move asked.
    #[serde(default)]
    pub guest_share_pct: Option<u64>,
    /// The caller's own id for the job.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// The [`PlanFlags`] of the plan stored as `data` (defaults for a job
/// without a plan yet).
pub fn flags_of(data: &serde_json::Value) -> PlanFlags {
    PlanFlags::deserialize(data).unwrap_or_default()
}

/// Whether the plan stored as `data` has a halted rollback, read without
/// decoding the whole plan (the job list asks it of every job).
pub fn rollback_halted(data: &serde_json::Value) -> bool {
    #[derive(Deserialize)]
    struct Flags {
        #[serde(default)]
        rollback_halted: bool,
    }
    serde_json::from_value::<Flags>(data.clone()).is_ok_and(|f| f.rollback_halted)
}

fn rollback_cause<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RollbackCause>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Typed(RollbackCause),
        Legacy(String),
    }
    Ok(match Option::<Stored>::deserialize(d)? {
        None => None,
        Some(Stored::Typed(cause)) => Some(cause),
        Some(Stored::Legacy(word)) if word == "cancel" => Some(RollbackCause::Cancelled),
        Some(Stored::Legacy(message)) => Some(RollbackCause::Failed(message)),
    })
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
    fn a_rollback_cause_reads_back_in_both_the_typed_and_the_old_form() {
        let mut plan = MovePlan::new(Uuid::new_v4(), Uuid::new_v4(), None, None);
        plan.rollback = Some(RollbackCause::Failed("copy failed".into()));
        let json = serde_json::to_value(&plan).expect("encode");
        let back: MovePlan = serde_json::from_value(json.clone()).expect("decode");
        assert_eq!(back, plan);
        let mut old = json;
        let fields = old.as_object_mut().expect("an object");
        fields.remove("rollback");
        fields.insert("failed_step".into(), "cancel".into());
        let back: MovePlan = serde_json::from_value(old.clone()).expect("decode");
        assert_eq!(back.rollback, Some(RollbackCause::Cancelled));
        old.as_object_mut()
            .expect("an object")
            .insert("failed_step".into(), "the destination is full".into());
        let back: MovePlan = serde_json::from_value(old).expect("decode");
        assert_eq!(
            back.rollback,
            Some(RollbackCause::Failed("the destination is full".into()))
        );
    }
}
