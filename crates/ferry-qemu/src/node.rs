//! Node names and the `-blockdev`/`blockdev-add` options of one layer.
//!
//! Every layer of every chain gets two explicit node names, one for the
//! file (protocol) node and one for the format node, because QEMU's
//! implicit `#blockNNN` names cannot be addressed (ARCHITECTURE §7). The
//! same volume UUID exists on two domains during a move (a copy keeps its
//! UUID), so a name is made of the domain's and the volume's UUIDs. QEMU
//! caps node names at 31 characters: a name here is 25.

use std::path::PathBuf;

use ferry_api::VolumeFormat;
use serde_json::{json, Value};
use uuid::Uuid;

/// The format and file node names of one volume in one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNames {
    /// The format (qcow2 or raw) node: the one devices, backing links and
    /// block jobs refer to.
    pub format: String,
    /// The file node under it.
    pub file: String,
}

impl NodeNames {
    /// The names Ferry gives `volume` of `domain`, the same in every agent,
    /// so a restarted agent finds the nodes it made.
    pub fn for_volume(domain: Uuid, volume: Uuid) -> Self {
        let d = domain.simple().to_string();
        let v = volume.simple().to_string();
        let stem = format!("{}{}", &d[..8], &v[..16]);
        NodeNames {
            format: format!("v{stem}"),
            file: format!("p{stem}"),
        }
    }
}

/// One layer of a disk's chain as QEMU opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The volume file.
    pub path: PathBuf,
    /// Its format.
    pub format: VolumeFormat,
    /// Its node names.
    pub nodes: NodeNames,
}

impl Layer {
    /// Options of the file node.
    pub fn file_options(&self) -> Value {
        json!({
            "driver": "file",
            "node-name": self.nodes.file,
            "filename": self.path.to_string_lossy(),
        })
    }

    /// Options of the format node, with `backing` set explicitly (a node
    /// name, or `null` for none) so QEMU never opens a parent on its own by
    /// reading the header. Layers open read-write: QEMU takes write
    /// permission only when a job needs it, and a read-only node cannot be
    /// the base of a commit (ARCHITECTURE §7).
    pub fn format_options(&self, backing: Option<&str>) -> Value {
        let mut options = json!({
            "driver": self.format.qemu_name(),
            "node-name": self.nodes.format,
            "file": self.nodes.file,
            "read-only": false,
        });
        if self.format == VolumeFormat::Qcow2 {
            options["backing"] = backing.map_or(Value::Null, |b| Value::String(b.to_string()));
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_qemus_limit_and_differ_by_domain() {
        let v = Uuid::new_v4();
        let a = NodeNames::for_volume(Uuid::new_v4(), v);
        let b = NodeNames::for_volume(Uuid::new_v4(), v);
        assert!(a.format.len() <= 31 && a.file.len() <= 31);
        assert_ne!(a.format, b.format);
        assert_ne!(a.format, a.file);
    }

    #[test]
    fn raw_layers_have_no_backing_option() {
        let layer = Layer {
            path: "/d/base".into(),
            format: VolumeFormat::Raw,
            nodes: NodeNames::for_volume(Uuid::nil(), Uuid::nil()),
        };
        assert!(layer.format_options(Some("x")).get("backing").is_none());
        let qcow = Layer {
            format: VolumeFormat::Qcow2,
            ..layer
        };
        assert_eq!(qcow.format_options(None)["backing"], Value::Null);
        assert_eq!(qcow.format_options(Some("x"))["backing"], "x");
    }
}
