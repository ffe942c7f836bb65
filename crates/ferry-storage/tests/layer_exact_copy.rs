//! Given chains built with qemu-io on domain1, when they are copied layer
//! by layer to domain2, then every layer reads and is allocated exactly as
//! its source.

use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ferry_api::{Allocation, Legality, Progress, VolumeFormat};
use ferry_storage::throttle::Throttle;
use ferry_storage::{
    copy_chain, data_bytes, Chain, CopyControl, CopyKind, CopyMethod, CopyOutcome, Error,
    VolumeSpec,
};
use ferry_testkit::{base, child, guest_content, own_allocation, qemu_io, same_guest_content, Lab};
use uuid::Uuid;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Copies `chain` to domain2 and checks every layer against its source:
/// guest content, own allocation, legality; then walks the copy.
fn assert_copied_exactly(lab: &Lab, chain: &Chain) -> Vec<CopyOutcome> {
    assert_copied_exactly_by(lab, chain, CopyMethod::Chunks)
}

/// [`assert_copied_exactly`] with the copy moving its data by `method`.
fn assert_copied_exactly_by(lab: &Lab, chain: &Chain, method: CopyMethod) -> Vec<CopyOutcome> {
    let domains = lab.domains();
    let ctl = CopyControl {
        method,
        ..CopyControl::default()
    };
    let outcomes = copy_chain(&domains, chain, &lab.d2, &ctl).expect("copy the chain");
    assert_eq!(outcomes.len(), chain.len());
    // A direct copy reads its content back as it writes, where the
    // filesystem does direct I/O; elsewhere it is copied and verified as
    // any other.
    let read_back = method == CopyMethod::Direct && direct_io_works(lab);
    for o in &outcomes {
        assert_eq!(
            o.verify.as_ref().map(|r| r.read_back),
            Some(read_back),
            "{method:?}"
        );
    }
    for (link, outcome) in chain.links().iter().zip(&outcomes) {
        let src = &link.volume;
        let dst = &outcome.copy;
        assert_eq!(outcome.kind, CopyKind::Copied);
        assert_eq!(dst.id(), src.id());
        assert_eq!(dst.domain().uuid(), lab.d2.uuid());
        assert_eq!(dst.metadata().expect("meta").legality, Legality::Legal);
        assert!(
            outcome.verify.as_ref().is_some_and(|r| r.is_identical()),
            "a fresh copy carries a clean verification: {:?}",
            outcome.verify
        );
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
    assert_walkable_copy(lab, chain);
    outcomes
}

fn assert_walkable_copy(lab: &Lab, chain: &Chain) {
    let copied = Chain::of_image(&lab.domains(), &lab.d2, chain.leaf().volume.image())
        .expect("walk the copy");
    assert_eq!(copied.len(), chain.len());
    assert!(!copied.spans_domains());
    for (a, b) in chain.volumes().zip(copied.volumes()) {
        assert_eq!(a.id(), b.id(), "the copy keeps the chain's order");
    }
}

/// Whether the lab's filesystem does `O_DIRECT` (not `tmpfs`).
fn direct_io_works(lab: &Lab) -> bool {
    let probe = lab.d2.path().with_extension("direct-io-probe");
    std::fs::write(&probe, b"").expect("write a probe file");
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(rustix::fs::OFlags::DIRECT.bits()).expect("a flag"))
        .open(&probe)
        .is_ok();
    std::fs::remove_file(&probe).expect("remove the probe file");
    opened
}

fn chain_of(lab: &Lab, image: Uuid) -> Chain {
    Chain::of_image(&lab.domains(), &lab.d1, image).expect("walk the source chain")
}

#[test]
fn a_single_raw_volume_with_holes_is_copied_with_its_holes() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 8 * MIB);
    qemu_io(&b, &["write -P 0xaa 0 1M", "write -P 0xbb 5M 64k"]);
    let chain = chain_of(&lab, b.image());
    assert_eq!(chain.len(), 1);
    let outcomes = assert_copied_exactly(&lab, &chain);
    assert!(
        outcomes[0].bytes_copied < 4 * MIB,
        "holes are not copied: {} bytes moved",
        outcomes[0].bytes_copied
    );
}

#[test]
fn a_single_qcow2_volume_with_data_zeros_and_discards_is_copied_exactly() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Qcow2, 8 * MIB);
    qemu_io(
        &b,
        &[
            "write -P 0x31 0 2M",
            "write -z 512k 128k",
            "discard 1M 64k",
            "write -P 0x32 6M 64k",
        ],
    );
    let chain = chain_of(&lab, b.image());
    assert_eq!(chain.len(), 1);
    assert_copied_exactly(&lab, &chain);
}

#[test]
fn a_qcow2_base_and_one_overlay_with_zero_writes_and_discards_over_base_data() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Qcow2, 8 * MIB);
    qemu_io(&b, &["write -P 0x41 0 4M"]);
    let s1 = child(&b);
    qemu_io(
        &s1,
        &[
            "write -P 0x42 1M 256k",
            "write -z 2M 128k",
            "discard 3M 64k",
            "write -P 0x43 7M 64k",
        ],
    );
    let chain = chain_of(&lab, b.image());
    assert_eq!(chain.len(), 2);
    // The zero write must hide the base's data in the guest's view.
    assert!(guest_content(&s1)[2 << 20..(2 << 20) + (128 << 10)]
        .iter()
        .all(|&x| x == 0));
    assert_copied_exactly(&lab, &chain);
}

#[test]
fn raw_base_with_holes_and_two_overlays_with_zero_writes_over_base_data() {
    let lab = Lab::new();
    let chain = raw_base_with_two_overlays(&lab);
    assert_copied_exactly(&lab, &chain);
}

#[test]
fn a_direct_copy_reads_back_raw_and_qcow2_layers_exactly() {
    let lab = Lab::new();
    let chain = raw_base_with_two_overlays(&lab);
    assert_copied_exactly_by(&lab, &chain, CopyMethod::Direct);
}

#[test]
fn the_kernel_copy_copies_raw_and_qcow2_layers_exactly() {
    let lab = Lab::new();
    let chain = raw_base_with_two_overlays(&lab);
    assert_copied_exactly_by(&lab, &chain, CopyMethod::Kernel);
}

/// A raw base with holes under two qcow2 overlays that write data and
/// zeros over the base's data and discard.
fn raw_base_with_two_overlays(lab: &Lab) -> Chain {
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
    let chain = chain_of(lab, b.image());
    assert_eq!(chain.len(), 3);
    chain
}

#[test]
fn a_four_volume_chain_where_each_layer_overwrites_the_one_below() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 8 * MIB);
    qemu_io(&b, &["write -P 0x01 0 6M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x02 1M 2M", "write -z 4M 64k"]);
    let s2 = child(&s1);
    qemu_io(
        &s2,
        &["write -P 0x03 2M 1M", "discard 1M 64k", "write -z 5M 128k"],
    );
    let s3 = child(&s2);
    qemu_io(&s3, &["write -P 0x04 2M 64k", "write -P 0x05 7M 1M"]);
    let chain = chain_of(&lab, b.image());
    assert_eq!(chain.len(), 4);
    assert_copied_exactly(&lab, &chain);
}

#[test]
fn a_preallocated_raw_base_stays_preallocated_and_fully_allocated_on_the_copy() {
    let lab = Lab::new();
    let capacity = 4 * MIB;
    let spec = VolumeSpec {
        allocation: Allocation::Preallocated,
        ..VolumeSpec::base(Uuid::new_v4(), VolumeFormat::Raw, capacity)
    };
    let b = lab
        .d1
        .create_volume(&spec)
        .expect("create a preallocated base");
    qemu_io(&b, &["write -P 0x77 64k 1M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -z 64k 64k", "write -P 0x78 3M 64k"]);
    let chain = chain_of(&lab, b.image());
    let outcomes = assert_copied_exactly(&lab, &chain);
    let copy = &outcomes[0].copy;
    assert_eq!(
        copy.metadata().expect("meta").allocation,
        Allocation::Preallocated
    );
    let allocated = copy.allocated_bytes().expect("allocated bytes");
    assert!(
        allocated >= capacity,
        "the copy's file has {allocated} bytes allocated, less than its {capacity} capacity"
    );
}

#[test]
fn a_64_gib_sparse_disk_moves_only_its_written_data() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Qcow2, 64 * GIB);
    qemu_io(
        &b,
        &[
            "write -P 0x5a 0 4M",
            "write -P 0x5b 32G 4M",
            "write -P 0x5c 68717379584 2M",
        ],
    );
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x5d 40G 1M", "write -z 32G 64k"]);
    let chain = chain_of(&lab, b.image());
    let domains = lab.domains();
    let outcomes =
        copy_chain(&domains, &chain, &lab.d2, &CopyControl::default()).expect("copy the chain");
    let moved: u64 = outcomes.iter().map(|o| o.bytes_copied).sum();
    assert!(moved < 64 * MIB, "moved {moved} bytes for ~11 MiB written");
    for (link, outcome) in chain.links().iter().zip(&outcomes) {
        assert_eq!(outcome.kind, CopyKind::Copied);
        assert_eq!(
            outcome.copy.metadata().expect("meta").legality,
            Legality::Legal
        );
        assert!(
            same_guest_content(&link.volume.path(), &outcome.copy.path()),
            "content of layer {}",
            link.volume.id()
        );
        assert_eq!(own_allocation(&link.volume), own_allocation(&outcome.copy));
    }
    assert_walkable_copy(&lab, &chain);
}

#[test]
fn copying_a_chain_again_is_a_no_op() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 4 * MIB);
    qemu_io(&b, &["write -P 0x10 0 1M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x20 2M 64k"]);
    let chain = chain_of(&lab, b.image());
    assert_copied_exactly(&lab, &chain);
    let before = ferry_testkit::tree_snapshot(lab.d2.path());

    let again = copy_chain(&lab.domains(), &chain, &lab.d2, &CopyControl::default())
        .expect("copy the chain again");

    assert_eq!(again.len(), 2);
    for o in &again {
        assert_eq!(o.kind, CopyKind::AlreadyThere);
        assert_eq!(o.bytes_copied, 0);
        assert!(o.verify.is_none());
    }
    assert_eq!(before, ferry_testkit::tree_snapshot(lab.d2.path()));
}

#[test]
fn progress_rises_monotonically_and_ends_at_the_total() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 40 * MIB);
    qemu_io(&b, &["write -P 0x61 0 36M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x62 0 2M", "write -P 0x63 20M 3M"]);
    let s2 = child(&s1);
    qemu_io(&s2, &["write -P 0x64 30M 1M"]);
    let chain = chain_of(&lab, b.image());
    let expected_total: u64 = chain
        .volumes()
        .map(|v| data_bytes(v).expect("data bytes"))
        .sum();
    let seen = Mutex::new(Vec::<Progress>::new());
    let record = |p: Progress| seen.lock().expect("lock").push(p);
    let ctl = CopyControl {
        progress: Some(&record),
        workers: 4,
        ..Default::default()
    };

    copy_chain(&lab.domains(), &chain, &lab.d2, &ctl).expect("copy the chain");

    let seen = seen.into_inner().expect("lock");
    assert!(seen.len() > 3, "progress was reported: {seen:?}");
    for pair in seen.windows(2) {
        assert!(
            pair[1].done >= pair[0].done,
            "progress went backwards: {pair:?}"
        );
    }
    assert!(seen
        .iter()
        .all(|p| p.total == expected_total && p.done <= p.total));
    let last = seen.last().expect("a last report");
    assert_eq!(last.done, last.total);
}

#[test]
fn a_cancel_set_from_the_progress_callback_stops_the_copy_and_leaves_nothing_behind() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 8 * MIB);
    qemu_io(&b, &["write -P 0x71 0 2M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x72 4M 1M"]);
    let s2 = child(&s1);
    qemu_io(&s2, &["write -P 0x73 6M 1M"]);
    let chain = chain_of(&lab, b.image());
    // Cancel once the base is done, so a finished layer must be rolled back too.
    let base_bytes = data_bytes(&b).expect("data bytes");
    let cancel = AtomicBool::new(false);
    let on_progress = |p: Progress| {
        if p.done >= base_bytes {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let ctl = CopyControl {
        progress: Some(&on_progress),
        cancel: Some(&cancel),
        ..Default::default()
    };

    let err = copy_chain(&lab.domains(), &chain, &lab.d2, &ctl).expect_err("cancelled");

    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert!(cancel.load(Ordering::Relaxed));
    assert_eq!(lab.d2.images().expect("images"), Vec::<Uuid>::new());
    assert!(!lab.d2.image_dir(b.image()).exists());
    // The source is untouched and still usable.
    let again = chain_of(&lab, b.image());
    assert_eq!(again.len(), 3);
    assert!(again
        .links()
        .iter()
        .all(|l| l.metadata.legality == Legality::Legal));
}

#[test]
fn a_bandwidth_limit_is_honoured() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 8 * MIB);
    qemu_io(&b, &["write -P 0x99 0 6M"]);
    let chain = chain_of(&lab, b.image());
    let rate = 4 * MIB;
    let throttle = Throttle::new(rate);
    let ctl = CopyControl {
        throttle: Some(&throttle),
        ..Default::default()
    };
    let started = Instant::now();

    let outcomes = copy_chain(&lab.domains(), &chain, &lab.d2, &ctl).expect("copy the chain");

    let took = started.elapsed().as_secs_f64();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes_copied).sum();
    assert_eq!(bytes, 6 * MIB);
    // Pacing may let up to one second's worth through up front.
    let floor = bytes as f64 / rate as f64 - 1.0;
    assert!(
        took >= floor,
        "{bytes} bytes at {rate} B/s took {took:.2}s, less than {floor:.2}s"
    );
    assert!(same_guest_content(&b.path(), &outcomes[0].copy.path()));
}
