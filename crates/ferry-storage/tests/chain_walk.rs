//! Given chains on disk, when they are walked by metadata and checked
//! against the qcow2 headers, then good chains come back base first and
//! broken ones give an error naming the file at fault.

use std::fs;
use std::path::Path;

use ferry_api::{Legality, VolumeFormat, VolumeRole};
use ferry_storage::{
    find_top, Chain, CopyControl, DomainSet, Error, Volume, VolumeMetadata, VolumeSpec,
};
use ferry_testkit::{base, child, guest_content, qemu_io, Lab};

const MIB: u64 = 1 << 20;
/// One MiB, for indexing guest content.
const MIB_AT: usize = 1 << 20;

fn set_parent_in_meta(volume: &Volume, parent: &Volume) {
    let path = volume.meta_path();
    let text = fs::read_to_string(&path).expect("read .meta");
    let mut md = VolumeMetadata::parse(&text, &path).expect("parse .meta");
    md.parent = Some(parent.id());
    md.format = VolumeFormat::Qcow2;
    fs::write(&path, md.render(&path).expect("render .meta")).expect("write .meta");
}

fn assert_names(err: &Error, path: &Path) {
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "{text:?} should name {}",
        path.display()
    );
}

/// base(raw) <- s1 <- s2 on domain1.
fn three_volume_chain(lab: &Lab) -> (Volume, Volume, Volume) {
    let b = base(&lab.d1, VolumeFormat::Raw, 4 * MIB);
    let s1 = child(&b);
    let s2 = child(&s1);
    (b, s1, s2)
}

#[test]
fn a_good_chain_is_walked_base_first_from_its_leaf_or_its_image() {
    let lab = Lab::new();
    let (b, s1, s2) = three_volume_chain(&lab);

    let walked = Chain::walk(&lab.domains(), &s2).expect("walk from the leaf");
    let of_image = Chain::of_image(&lab.domains(), &lab.d1, b.image()).expect("walk the image");

    for chain in [&walked, &of_image] {
        assert_eq!(chain.len(), 3);
        assert!(!chain.is_empty());
        let ids: Vec<_> = chain.volumes().map(Volume::id).collect();
        assert_eq!(ids, vec![b.id(), s1.id(), s2.id()]);
        assert_eq!(chain.base().volume.id(), b.id());
        assert_eq!(chain.leaf().volume.id(), s2.id());
        assert_eq!(chain.base().metadata.role, VolumeRole::Internal);
        assert_eq!(chain.leaf().metadata.role, VolumeRole::Leaf);
        assert!(!chain.spans_domains());
    }
}

#[test]
fn a_single_volume_is_a_chain_of_one() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Qcow2, 4 * MIB);
    let chain = Chain::of_image(&lab.domains(), &lab.d1, b.image()).expect("walk");
    assert_eq!(chain.len(), 1);
    assert_eq!(chain.leaf().volume.id(), b.id());
    assert_eq!(chain.base().volume.id(), b.id());
}

#[test]
fn a_missing_parent_file_is_reported_with_the_child_and_the_missing_path() {
    let lab = Lab::new();
    let (_b, s1, s2) = three_volume_chain(&lab);
    fs::remove_file(s1.path()).expect("delete the parent's file");

    let err = Chain::walk(&lab.domains(), &s2).expect_err("a broken chain");

    assert!(
        matches!(&err, Error::ParentMissing { parent, .. } if *parent == s1.id()),
        "{err:?}"
    );
    assert_names(&err, &s2.path());
    assert_names(&err, &s1.path());
}

#[test]
fn a_puuid_that_disagrees_with_the_qcow2_header_is_a_parent_mismatch() {
    let lab = Lab::new();
    let (b, _s1, s2) = three_volume_chain(&lab);
    // The metadata now skips s1; the header still names it.
    set_parent_in_meta(&s2, &b);

    let err = Chain::walk(&lab.domains(), &s2).expect_err("metadata and header disagree");

    assert!(matches!(err, Error::ParentMismatch { .. }), "{err:?}");
    assert_names(&err, &s2.path());
}

#[test]
fn a_header_rebased_behind_the_metadatas_back_is_a_parent_mismatch() {
    let lab = Lab::new();
    let (b, s1, s2) = three_volume_chain(&lab);
    ferry_storage::qemu_img::set_backing_name(&s2.path(), &b.id().to_string(), VolumeFormat::Raw)
        .expect("rebase -u");

    let err = Chain::walk(&lab.domains(), &s2).expect_err("metadata and header disagree");

    match &err {
        Error::ParentMismatch {
            metadata, header, ..
        } => {
            assert_eq!(*metadata, s1.id().to_string());
            assert_eq!(*header, b.id().to_string());
        }
        other => panic!("expected ParentMismatch, got {other:?}"),
    }
    assert_names(&err, &s2.path());
}

#[test]
fn two_volumes_naming_each_other_as_parent_are_a_loop() {
    let lab = Lab::new();
    let a = base(&lab.d1, VolumeFormat::Qcow2, 4 * MIB);
    let b = child(&a);
    set_parent_in_meta(&a, &b);

    let err = Chain::walk(&lab.domains(), &b).expect_err("a loop");

    assert!(
        matches!(&err, Error::ChainLoop { volume, .. } if *volume == b.id()),
        "{err:?}"
    );
    assert_names(&err, &b.path());
}

fn assert_corrupt_parent_meta(damage: impl FnOnce(&Path)) -> Error {
    let lab = Lab::new();
    let (_b, s1, s2) = three_volume_chain(&lab);
    damage(&s1.meta_path());

    let err = Chain::walk(&lab.domains(), &s2).expect_err("corrupt metadata");

    assert!(
        matches!(&err, Error::CorruptMetadata { path, .. } if *path == s1.meta_path()),
        "{err:?}"
    );
    assert_names(&err, &s1.meta_path());
    err
}

#[test]
fn a_garbage_meta_file_is_corrupt_metadata_naming_the_file() {
    let err =
        assert_corrupt_parent_meta(|p| fs::write(p, "this is not metadata\n").expect("write"));
    assert!(err.to_string().contains("not KEY=VALUE"), "{err}");
}

#[test]
fn a_meta_file_truncated_before_its_eof_line_is_corrupt_metadata() {
    let err = assert_corrupt_parent_meta(|p| {
        let text = fs::read_to_string(p).expect("read");
        let cut = text.find("LEGALITY").expect("a LEGALITY line");
        fs::write(p, &text[..cut]).expect("write");
    });
    assert!(err.to_string().contains("no closing EOF"), "{err}");
}

#[test]
fn a_meta_file_over_512_bytes_is_corrupt_metadata() {
    let err = assert_corrupt_parent_meta(|p| {
        let text = fs::read_to_string(p).expect("read");
        fs::write(p, format!("AAA={}\n{text}", "x".repeat(600))).expect("write");
    });
    assert!(err.to_string().contains("at most 512"), "{err}");
}

#[test]
fn a_leaf_on_domain2_over_a_parent_on_domain1_walks_across_both_domains() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 4 * MIB);
    qemu_io(&b, &["write -P 0x1a 0 1M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x1b 1M 64k"]);

    let leaf = lab
        .d2
        .create_volume(&VolumeSpec::child_of(&s1))
        .expect("create a cross-domain leaf");
    qemu_io(&leaf, &["write -P 0x1c 2M 64k"]);

    let md = leaf.metadata().expect("meta");
    assert_eq!(md.parent, Some(s1.id()));
    assert_eq!(md.parent_domain, Some(lab.d1.uuid()));
    assert_eq!(md.domain, lab.d2.uuid());
    assert_eq!(md.legality, Legality::Legal);
    assert_eq!(
        s1.metadata().expect("meta").role,
        VolumeRole::Internal,
        "the parent on domain1 is no longer the leaf"
    );

    let chain = Chain::of_image(&lab.domains(), &lab.d2, b.image()).expect("walk across domains");
    assert_eq!(chain.len(), 3);
    assert!(chain.spans_domains());
    let domains: Vec<_> = chain.volumes().map(|v| v.domain().uuid()).collect();
    assert_eq!(domains, vec![lab.d1.uuid(), lab.d1.uuid(), lab.d2.uuid()]);
    // The guest sees all three layers through the leaf.
    let content = guest_content(&leaf);
    assert!(content[..MIB_AT].iter().all(|&x| x == 0x1a));
    assert!(content[MIB_AT..MIB_AT + 65536].iter().all(|&x| x == 0x1b));
    assert!(content[2 * MIB_AT..2 * MIB_AT + 65536]
        .iter()
        .all(|&x| x == 0x1c));

    let only_d2 = DomainSet::new([lab.d2.clone()]);
    let err = Chain::walk(&only_d2, &leaf).expect_err("domain1 is not attached");
    assert!(
        matches!(&err, Error::UnknownDomain { domain, volume } if *domain == lab.d1.uuid() && *volume == leaf.id()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&lab.d1.uuid().to_string()),
        "{err}"
    );
}

#[test]
fn an_image_with_two_top_volumes_has_no_single_leaf() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 4 * MIB);
    let s1 = child(&b);
    let s2 = lab
        .d1
        .create_volume(&VolumeSpec::child_of(&b))
        .expect("a second child of the base");

    let err = find_top(&lab.d1, b.image()).expect_err("two tops");

    match &err {
        Error::AmbiguousLeaf { count, names, path } => {
            assert_eq!(*count, 2);
            assert!(names.contains(&s1.id().to_string()), "{names}");
            assert!(names.contains(&s2.id().to_string()), "{names}");
            assert_eq!(*path, lab.d1.image_dir(b.image()));
        }
        other => panic!("expected AmbiguousLeaf, got {other:?}"),
    }
    assert!(matches!(
        Chain::of_image(&lab.domains(), &lab.d1, b.image()),
        Err(Error::AmbiguousLeaf { .. })
    ));
}

#[test]
fn in_the_middle_of_a_move_the_top_is_the_new_leaf_over_the_source_not_a_copy() {
    // Given base <- s1 <- s2 on domain1, a move's new leaf on domain2 over
    // s2, and copies of base and s1 on domain2 (the early copy: s1's copy
    // is named by no volume there yet)...
    let lab = Lab::new();
    let (b, s1, s2) = three_volume_chain(&lab);
    qemu_io(&s2, &["write -P 0x2a 1M 64k"]);
    let new_leaf = lab
        .d2
        .create_volume(&VolumeSpec::child_of(&s2))
        .expect("the move's new leaf");
    qemu_io(&new_leaf, &["write -P 0x2b 2M 64k"]);
    let domains = lab.domains();
    for v in [&b, &s1] {
        ferry_storage::copy_volume(&domains, v, &lab.d2, &CopyControl::default())
            .expect("copy a volume under the leaf");
    }

    // ...then the top of the image on domain2 is the new leaf, whose chain
    // reads every layer (what a VM started now must open).
    let top = find_top(&lab.d2, b.image()).expect("one top");
    assert_eq!(top.id(), new_leaf.id());
    let content = guest_content(&top);
    assert!(content[MIB_AT..MIB_AT + 65536].iter().all(|&x| x == 0x2a));
    assert!(content[2 * MIB_AT..2 * MIB_AT + 65536]
        .iter()
        .all(|&x| x == 0x2b));
    // Two tops without a move leaf are still ambiguous (the test above).
}
