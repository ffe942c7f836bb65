//! How a volume is described to users and between processes.

use serde::{Deserialize, Serialize};

/// The image format of a volume: what QEMU must be told to open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeFormat {
    /// A plain file: the guest's bytes at their offsets; cannot have a parent.
    Raw,
    /// A qcow2 file: only what this layer wrote, the rest read from its parent.
    Qcow2,
}

impl VolumeFormat {
    /// The name `qemu-img -f` and `-blockdev driver=` take.
    pub fn qemu_name(self) -> &'static str {
        match self {
            VolumeFormat::Raw => "raw",
            VolumeFormat::Qcow2 => "qcow2",
        }
    }
}

impl std::fmt::Display for VolumeFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.qemu_name())
    }
}

impl std::str::FromStr for VolumeFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(VolumeFormat::Raw),
            "qcow2" | "cow" => Ok(VolumeFormat::Qcow2),
            other => Err(format!(
                "unknown volume format '{other}': use 'raw' or 'qcow2'"
            )),
        }
    }
}

/// Whether a volume's space is reserved up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Allocation {
    /// Space is taken as the guest writes (VDSM `TYPE=SPARSE`).
    Sparse,
    /// All space is reserved at creation (VDSM `TYPE=PREALLOCATED`).
    Preallocated,
}

/// Whether a volume may be used (VDSM `LEGALITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Legality {
    /// Complete and verified: may be handed to a VM.
    Legal,
    /// Being created or copied, or left half-done by a crash: never usable.
    Illegal,
    /// A placeholder without content (VDSM's `FAKE`); never usable.
    Fake,
}

/// Where a volume stands in its chain (VDSM `VOLTYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeRole {
    /// The top of a chain: the volume the VM writes.
    Leaf,
    /// Below the leaf: read-only, read through by the volumes above.
    Internal,
    /// A template's volume, read by many disks and written by none.
    Shared,
}
