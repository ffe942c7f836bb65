//! Given chains built with qemu-io on domain1, when they are copied layer
//! by layer to domain2, then every layer reads and is allocated exactly as
//! its source.

use ferry_api::{Legality, VolumeFormat};
use ferry_storage::{copy_chain, Chain, CopyControl, CopyKind};
use ferry_testkit::{base, child, guest_content, own_allocation, qemu_io, Lab};

const MIB: u64 = 1 << 20;

fn assert_copied_exactly(lab: &Lab, chain: &Chain) {
    let domains = lab.domains();
    let outcomes =
        copy_chain(&domains, chain, &lab.d2, &CopyControl::default()).expect("copy the chain");
    assert_eq!(outcomes.len(), chain.len());
    for (link, outcome) in chain.links().iter().zip(&outcomes) {
        let src = &link.volume;
        let dst = &outcome.copy;
        assert_eq!(outcome.kind, CopyKind::Copied);
        assert_eq!(dst.domain().uuid(), lab.d2.uuid());
        assert_eq!(dst.metadata().expect("meta").legality, Legality::Legal);
        assert_eq!(
            guest_content(src),
            guest_content(dst),
            "content of layer {}",
            src.id()
        );
        assert_eq!(
            own_allocation(src),
            own_allocation(dst),
            "allocation of layer {}",
            src.id()
        );
    }
    let copied =
        Chain::of_image(&domains, &lab.d2, chain.leaf().volume.image()).expect("walk the copy");
    assert_eq!(copied.len(), chain.len());
}

#[test]
fn raw_base_with_holes_and_two_overlays_with_zero_writes_over_base_data() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 16 * MIB);
    qemu_io(&b, &["write -P 0xaa 0 4M", "write -P 0xbb 8M 1M"]);
    let s1 = child(&b);
    qemu_io(
        &s1,
        &["write -P 0x11 1M 512k", "write -z 2M 1M", "write -z 8M 64k"],
    );
    let s2 = child(&s1);
    qemu_io(
        &s2,
        &["write -P 0x22 3M 64k", "discard 1M 64k", "write -z 0 64k"],
    );
    let chain = Chain::of_image(&lab.domains(), &lab.d1, b.image()).expect("walk");
    assert_eq!(chain.len(), 3);
    assert_copied_exactly(&lab, &chain);
}
