//! Given a storage domain, when volumes are created, changed and deleted,
//! then their files and `.meta` look as VDSM would leave them, and a bad
//! request changes nothing.

use std::fs;
use std::time::Duration;

use ferry_api::{Allocation, Legality, VolumeFormat, VolumeRole};
use ferry_storage::qemu_img;
use ferry_storage::{
    copy_chain, Chain, Collected, CopyControl, CopyKind, DomainSet, Error, StorageDomain, Volume,
    VolumeSpec,
};
use ferry_testkit::{base, child, guest_content, qemu_io, tree_snapshot, Lab};
use uuid::Uuid;

const MIB: u64 = 1 << 20;

fn meta_text(v: &Volume) -> String {
    fs::read_to_string(v.meta_path()).expect("read .meta")
}

fn assert_vdsm_meta(v: &Volume) {
    let text = meta_text(v);
    assert!(text.len() <= 512, "{} bytes", text.len());
    assert!(text.ends_with("\nEOF\n"), "{text:?}");
    let keys: Vec<&str> = text
        .lines()
        .take_while(|l| *l != "EOF")
        .map(|l| l.split_once('=').expect("KEY=VALUE").0)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "keys are sorted");
    assert!(text.contains("\nLEGALITY=LEGAL\n"), "{text}");
}

#[test]
fn sparse_raw_and_qcow2_volumes_are_created_legal_with_vdsm_metadata() {
    let lab = Lab::new();
    for format in [VolumeFormat::Raw, VolumeFormat::Qcow2] {
        let v = base(&lab.d1, format, 8 * MIB);
        assert_vdsm_meta(&v);
        let md = v.metadata().expect("meta");
        assert_eq!(md.format, format);
        assert_eq!(md.capacity, 8 * MIB);
        assert_eq!(md.allocation, Allocation::Sparse);
        assert_eq!(md.role, VolumeRole::Leaf);
        assert_eq!(md.parent, None);
        assert_eq!(md.domain, lab.d1.uuid());
        assert_eq!(md.image, v.image());
        let info = qemu_img::info_chain(&v.path()).expect("info");
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].format, format.qemu_name());
        assert_eq!(info[0].virtual_size, 8 * MIB);
        assert!(
            v.allocated_bytes().expect("allocated") < MIB,
            "a sparse {format} volume takes almost no space"
        );
    }
}

#[test]
fn preallocated_raw_and_qcow2_volumes_are_created_with_their_space() {
    let lab = Lab::new();
    for format in [VolumeFormat::Raw, VolumeFormat::Qcow2] {
        let spec = VolumeSpec {
            allocation: Allocation::Preallocated,
            ..VolumeSpec::base(Uuid::new_v4(), format, 4 * MIB)
        };
        let v = lab.d1.create_volume(&spec).expect("create");
        assert_vdsm_meta(&v);
        assert!(meta_text(&v).contains("\nTYPE=PREALLOCATED\n"));
        assert_eq!(
            v.metadata().expect("meta").allocation,
            Allocation::Preallocated
        );
        if format == VolumeFormat::Raw {
            assert!(v.allocated_bytes().expect("allocated") >= 4 * MIB);
        } else {
            let map = qemu_img::map(&v.path(), format).expect("map");
            assert!(
                map.iter().all(|e| e.depth == 0 && e.present),
                "metadata preallocation allocates every cluster: {map:?}"
            );
        }
    }
}

#[test]
fn generation_is_bumped_by_every_metadata_change() {
    let lab = Lab::new();
    let v = base(&lab.d1, VolumeFormat::Qcow2, MIB);
    let gen0 = v.metadata().expect("meta").generation;

    v.set_legality(Legality::Illegal).expect("illegal");
    let md = v.metadata().expect("meta");
    assert_eq!(md.generation, gen0 + 1);
    assert_eq!(md.legality, Legality::Illegal);
    assert!(meta_text(&v).contains(&format!("\nGEN={}\n", gen0 + 1)));

    v.set_legality(Legality::Legal).expect("legal");
    assert_eq!(v.metadata().expect("meta").generation, gen0 + 2);
    assert_vdsm_meta(&v);
}

#[test]
fn a_child_names_its_parent_relatively_and_makes_it_internal() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 4 * MIB);
    let s1 = child(&b);

    let info = qemu_img::info_chain(&s1.path()).expect("info");
    assert_eq!(info.len(), 2);
    assert_eq!(info[0].backing_filename, Some(b.id().to_string()));
    let md = s1.metadata().expect("meta");
    assert_eq!(md.parent, Some(b.id()));
    assert_eq!(md.parent_domain, None);
    assert_eq!(md.capacity, 4 * MIB, "a child takes its parent's size");
    assert_eq!(md.role, VolumeRole::Leaf);
    assert_eq!(b.metadata().expect("meta").role, VolumeRole::Internal);
    assert_vdsm_meta(&s1);
    assert_vdsm_meta(&b);
}

/// Runs a bad create on domain1 and checks it fails and leaves the domain's
/// images exactly as they were.
fn assert_refused_without_trace(
    domain: &StorageDomain,
    spec: &VolumeSpec,
    check: impl Fn(&Error) -> bool,
) {
    let before = tree_snapshot(&domain.images_dir());
    let err = domain.create_volume(spec).expect_err("a bad request");
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(
        before,
        tree_snapshot(&domain.images_dir()),
        "the refused request ({err}) changed the domain"
    );
}

#[test]
fn a_raw_volume_with_a_parent_is_refused_and_changes_nothing() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 4 * MIB);
    let spec = VolumeSpec {
        format: VolumeFormat::Raw,
        ..VolumeSpec::child_of(&b)
    };
    assert_refused_without_trace(
        &lab.d1,
        &spec,
        |e| matches!(e, Error::InvalidRequest(m) if m.contains("raw volume cannot have a parent")),
    );
    assert_eq!(b.metadata().expect("meta").role, VolumeRole::Leaf);
}

#[test]
fn a_child_smaller_than_its_parent_is_refused_and_changes_nothing() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 4 * MIB);
    let spec = VolumeSpec {
        capacity: Some(2 * MIB),
        ..VolumeSpec::child_of(&b)
    };
    assert_refused_without_trace(
        &lab.d1,
        &spec,
        |e| matches!(e, Error::InvalidRequest(m) if m.contains("smaller than its parent")),
    );
}

#[test]
fn a_zero_capacity_volume_is_refused_and_changes_nothing() {
    let lab = Lab::new();
    let existing = base(&lab.d1, VolumeFormat::Raw, MIB);
    for image in [Uuid::new_v4(), existing.image()] {
        let spec = VolumeSpec::base(image, VolumeFormat::Qcow2, 0);
        assert_refused_without_trace(
            &lab.d1,
            &spec,
            |e| matches!(e, Error::InvalidRequest(m) if m.contains("more than 0 bytes")),
        );
    }
}

#[test]
fn a_description_over_210_characters_is_refused_and_changes_nothing() {
    let lab = Lab::new();
    let spec = VolumeSpec {
        description: "d".repeat(211),
        ..VolumeSpec::base(Uuid::new_v4(), VolumeFormat::Raw, MIB)
    };
    assert_refused_without_trace(
        &lab.d1,
        &spec,
        |e| matches!(e, Error::InvalidRequest(m) if m.contains("at most 210")),
    );
    let ok = VolumeSpec {
        description: "d".repeat(210),
        ..VolumeSpec::base(Uuid::new_v4(), VolumeFormat::Raw, MIB)
    };
    let v = lab.d1.create_volume(&ok).expect("210 characters fit");
    assert_vdsm_meta(&v);
}

#[test]
fn a_child_of_an_illegal_parent_is_refused_and_changes_nothing() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, MIB);
    b.set_legality(Legality::Illegal).expect("mark illegal");
    assert_refused_without_trace(
        &lab.d1,
        &VolumeSpec::child_of(&b),
        |e| matches!(e, Error::NotLegal { path, legality: Legality::Illegal } if *path == b.path()),
    );
}

#[test]
fn creating_a_volume_that_exists_is_refused_and_changes_nothing() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, MIB);
    qemu_io(&b, &["write -P 0x42 0 64k"]);
    let spec = VolumeSpec {
        id: Some(b.id()),
        ..VolumeSpec::base(b.image(), VolumeFormat::Qcow2, 2 * MIB)
    };
    assert_refused_without_trace(
        &lab.d1,
        &spec,
        |e| matches!(e, Error::VolumeExists { path } if *path == b.path()),
    );
    assert_eq!(guest_content(&b)[0], 0x42);
}

#[test]
fn a_volume_with_children_cannot_be_deleted() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, MIB);
    let s1 = child(&b);
    let before = tree_snapshot(&lab.d1.images_dir());

    let err = b.delete().expect_err("in use");

    assert!(matches!(err, Error::VolumeInUse { .. }), "{err:?}");
    assert!(err.to_string().contains(&s1.id().to_string()), "{err}");
    assert_eq!(before, tree_snapshot(&lab.d1.images_dir()));
}

#[test]
fn deleting_the_leaf_makes_its_parent_the_leaf_again() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, MIB);
    let s1 = child(&b);
    let s2 = child(&s1);

    s2.delete().expect("delete the leaf");

    assert!(!s2.path().exists() && !s2.meta_path().exists());
    assert_eq!(s1.metadata().expect("meta").role, VolumeRole::Leaf);
    assert_eq!(b.metadata().expect("meta").role, VolumeRole::Internal);
    let names: Vec<String> = fs::read_dir(lab.d1.image_dir(b.image()))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("_remove_me_")),
        "{names:?}"
    );
    let chain = Chain::of_image(&lab.domains(), &lab.d1, b.image()).expect("walk");
    assert_eq!(chain.len(), 2);

    s1.delete().expect("delete s1");
    b.delete().expect("delete the base");
    assert!(
        !lab.d1.image_dir(b.image()).exists(),
        "the last volume takes its image directory with it"
    );
}

#[test]
fn a_leftover_remove_me_file_is_not_listed_and_is_collected() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, MIB);
    let dir = lab.d1.image_dir(b.image());
    let ghost = Uuid::new_v4();
    fs::write(dir.join(format!("_remove_me_{ghost}")), b"half deleted").expect("write");
    fs::write(dir.join(format!("_remove_me_{ghost}.meta")), b"EOF\n").expect("write");

    let listed: Vec<Uuid> = lab
        .d1
        .volumes(b.image())
        .expect("volumes")
        .iter()
        .map(Volume::id)
        .collect();
    assert_eq!(listed, vec![b.id()]);

    let domains = DomainSet::new([lab.d1.clone()]);
    let collected = lab
        .d1
        .collect_garbage(&domains, Duration::ZERO)
        .expect("collect");
    assert_eq!(collected.deletions_finished, 1);
    assert!(!dir.join(format!("_remove_me_{ghost}")).exists());
    assert!(!dir.join(format!("_remove_me_{ghost}.meta")).exists());
    assert!(b.exists(), "live volumes survive garbage collection");
    assert_eq!(
        lab.d1
            .collect_garbage(&domains, Duration::ZERO)
            .expect("collect again"),
        Collected::default()
    );
}

/// A SHARED template base with data, in its own image.
fn template(domain: &StorageDomain) -> Volume {
    let spec = VolumeSpec {
        role: VolumeRole::Shared,
        ..VolumeSpec::base(Uuid::new_v4(), VolumeFormat::Raw, 4 * MIB)
    };
    let t = domain.create_volume(&spec).expect("create a template");
    qemu_io(&t, &["write -P 0x7e 0 2M"]);
    t
}

/// A disk (new image) whose base is `template`.
fn disk_from(template: &Volume) -> Volume {
    let spec = VolumeSpec {
        image: Uuid::new_v4(),
        ..VolumeSpec::child_of(template)
    };
    template
        .domain()
        .create_volume(&spec)
        .expect("create a disk from the template")
}

#[test]
fn disks_made_from_a_shared_template_link_it_into_their_images() {
    let lab = Lab::new();
    let t = template(&lab.d1);
    let a = disk_from(&t);
    let b = disk_from(&t);

    assert_eq!(t.link_count().expect("links"), 3);
    for disk in [&a, &b] {
        assert_ne!(disk.image(), t.image());
        let linked = lab.d1.volume(disk.image(), t.id());
        assert!(
            linked.exists(),
            "the template is linked into the disk's image"
        );
        assert_eq!(linked.metadata().expect("meta").role, VolumeRole::Shared);
        let info = qemu_img::info_chain(&disk.path()).expect("info");
        assert_eq!(info[0].backing_filename, Some(t.id().to_string()));
        let chain = Chain::of_image(&lab.domains(), &lab.d1, disk.image()).expect("walk");
        assert_eq!(chain.len(), 2);
        assert_eq!(guest_content(disk)[0], 0x7e);
    }
    assert_eq!(
        t.metadata().expect("meta").role,
        VolumeRole::Shared,
        "a template stays SHARED"
    );
}

#[test]
fn a_template_in_use_cannot_be_deleted_but_one_disk_can_go_without_harming_the_other() {
    let lab = Lab::new();
    let t = template(&lab.d1);
    let a = disk_from(&t);
    let b = disk_from(&t);
    qemu_io(&b, &["write -P 0x0b 3M 64k"]);
    let b_content = guest_content(&b);

    let err = t.delete().expect_err("the template is in use");
    assert!(matches!(err, Error::VolumeInUse { .. }), "{err:?}");
    assert!(err.to_string().contains("2 other disk(s)"), "{err}");

    a.delete().expect("delete disk a's leaf");
    lab.d1
        .volume(a.image(), t.id())
        .delete()
        .expect("delete disk a's link to the template");

    assert!(!lab.d1.image_dir(a.image()).exists());
    assert!(t.exists());
    assert_eq!(t.link_count().expect("links"), 2);
    assert_eq!(guest_content(&t)[0], 0x7e);
    assert_eq!(guest_content(&b), b_content);
    Chain::of_image(&lab.domains(), &lab.d1, b.image()).expect("disk b still walks");
    assert!(matches!(t.delete(), Err(Error::VolumeInUse { .. })));
}

#[test]
fn a_bad_disk_request_on_a_template_leaves_no_link_behind() {
    let lab = Lab::new();
    let t = template(&lab.d1);
    let too_small = VolumeSpec {
        image: Uuid::new_v4(),
        capacity: Some(MIB),
        ..VolumeSpec::child_of(&t)
    };
    assert_refused_without_trace(
        &lab.d1,
        &too_small,
        |e| matches!(e, Error::InvalidRequest(m) if m.contains("smaller than its parent")),
    );
    let long_description = VolumeSpec {
        image: Uuid::new_v4(),
        description: "x".repeat(300),
        ..VolumeSpec::child_of(&t)
    };
    assert_refused_without_trace(&lab.d1, &long_description, |e| {
        matches!(e, Error::InvalidRequest(_))
    });
    assert_eq!(t.link_count().expect("links"), 1);
}

#[test]
fn copying_two_disks_of_one_template_copies_the_template_once() {
    let lab = Lab::new();
    let t = template(&lab.d1);
    let a = disk_from(&t);
    qemu_io(&a, &["write -P 0x0a 1M 64k"]);
    let b = disk_from(&t);
    qemu_io(&b, &["write -P 0x0b 3M 64k"]);
    let domains = lab.domains();
    let ctl = CopyControl::default();

    let chain_a = Chain::of_image(&domains, &lab.d1, a.image()).expect("walk a");
    let out_a = copy_chain(&domains, &chain_a, &lab.d2, &ctl).expect("copy a");
    let chain_b = Chain::of_image(&domains, &lab.d1, b.image()).expect("walk b");
    let out_b = copy_chain(&domains, &chain_b, &lab.d2, &ctl).expect("copy b");

    assert_eq!(out_a[0].kind, CopyKind::Copied);
    assert!(out_a[0].bytes_copied >= 2 * MIB);
    assert_eq!(out_b[0].kind, CopyKind::LinkedShared);
    assert_eq!(out_b[0].bytes_copied, 0);
    assert_eq!(out_b[1].kind, CopyKind::Copied);
    let t2 = lab.d2.volume(t.image(), t.id());
    assert!(t2.exists(), "the template has its own image on domain2");
    assert_eq!(t2.link_count().expect("links"), 3);
    assert_eq!(t2.metadata().expect("meta").legality, Legality::Legal);
    for (src, out) in [(&a, &out_a), (&b, &out_b)] {
        let copied = Chain::of_image(&domains, &lab.d2, src.image()).expect("walk the copy");
        assert_eq!(copied.len(), 2);
        assert_eq!(guest_content(src), guest_content(&out[1].copy));
    }
}
