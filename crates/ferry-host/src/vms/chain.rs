//! From a disk (image + leaf domain) to the layers QEMU opens.

use ferry_api::vm::VmDisk;
use ferry_qemu::{Layer, NodeNames};
use ferry_storage::{find_top, Chain, DomainSet, Volume};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The QEMU device id of a disk: fixed for the VM's life, whatever its
/// block graph becomes during a move.
pub(crate) fn device_id(image: Uuid) -> String {
    format!("disk-{}", image.simple())
}

/// How QEMU opens `volume`.
pub(crate) fn layer_of(volume: &Volume) -> Result<Layer> {
    let md = volume.metadata()?;
    Ok(Layer {
        path: volume.path(),
        format: md.format,
        nodes: NodeNames::for_volume(volume.domain().uuid(), volume.id()),
    })
}

/// The disk's chain, base first, from the domains' metadata: the image's
/// top volume on the disk's domain, then parents (onto another domain
/// when a move is in flight). Every volume must be LEGAL.
pub(crate) fn open_chain(domains: &DomainSet, disk: &VmDisk) -> Result<Vec<Volume>> {
    let domain = domains.get(disk.domain).ok_or_else(|| {
        Error::NotFound(format!(
            "storage domain {} of disk {} is not connected to this host; connect it first (POST /v1/domains/connect)",
            disk.domain, disk.image
        ))
    })?;
    let leaf = find_top(domain, disk.image)?;
    let chain = Chain::walk(domains, &leaf)?;
    for link in chain.links() {
        link.volume.ensure_legal()?;
    }
    Ok(chain.volumes().cloned().collect())
}
