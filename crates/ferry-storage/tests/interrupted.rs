//! Given what a crash leaves in the middle of a create or a delete (an
//! ILLEGAL volume, a `.meta` without its file, a file renamed for removal
//! without its `.meta`, temporary files of atomic writes), when the
//! operation runs again or the domain's garbage is collected, then it is
//! finished as it would have been, parents get their role back, and
//! nothing that may still be used is touched.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_api::{Legality, VolumeFormat, VolumeRole};
use ferry_storage::{Collected, DomainSet, Error, Presence, Volume, VolumeSpec};
use ferry_testkit::{base, child, guest_content, qemu_io, tree_snapshot, Lab};
use uuid::Uuid;

const MIB: u64 = 1 << 20;

/// What the agent uses: anything younger is left alone.
const GRACE: Duration = Duration::from_secs(600);

fn role(v: &Volume) -> VolumeRole {
    v.metadata().expect("metadata").role
}

fn doomed(v: &Volume, meta: bool) -> std::path::PathBuf {
    let suffix = if meta { ".meta" } else { "" };
    v.domain()
        .image_dir(v.image())
        .join(format!("_remove_me_{}{suffix}", v.id()))
}

/// `base(raw) <- snap1(qcow2)` with data in both; base is INTERNAL.
fn disk(lab: &Lab) -> (Volume, Volume) {
    let b = base(&lab.d1, VolumeFormat::Raw, 4 * MIB);
    qemu_io(&b, &["write -P 0x51 0 1M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x52 1M 1M"]);
    (b, s1)
}

/// Makes the file's modification time an hour ago.
fn age(path: &Path) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("set the modification time");
}

#[test]
fn a_delete_interrupted_between_its_renames_is_finished_by_its_retry() {
    let lab = Lab::new();
    let (b, s1) = disk(&lab);
    // The crash point `delete`: the file renamed, the LEGAL `.meta` not.
    fs::rename(s1.path(), doomed(&s1, false)).expect("rename");
    assert_eq!(s1.presence(), Presence::BeingDeleted);
    assert_eq!(
        s1.metadata().expect("still readable").legality,
        Legality::Legal
    );
    let listed: Vec<_> = lab.d1.volumes(b.image()).expect("list");
    assert_eq!(
        listed,
        vec![b.clone()],
        "a volume being deleted is never listed"
    );

    s1.delete().expect("the retry finishes the delete");
    assert_eq!(s1.presence(), Presence::Absent);
    assert_eq!(role(&b), VolumeRole::Leaf, "the base is the leaf again");
    assert_eq!(
        lab.d1.volume_ids_in_any_state(b.image()).expect("ids"),
        vec![b.id()]
    );
    assert!(matches!(s1.delete(), Err(Error::VolumeNotFound { .. })));
}

#[test]
fn garbage_collection_finishes_every_state_of_an_interrupted_delete_once_it_is_old() {
    type Crash = fn(&Volume);
    let states: [(&str, Crash); 4] = [
        ("file renamed, .meta not", |v| {
            fs::rename(v.path(), doomed(v, false)).expect("rename");
        }),
        ("both renamed", |v| {
            fs::rename(v.path(), doomed(v, false)).expect("rename");
            fs::rename(v.meta_path(), doomed(v, true)).expect("rename");
        }),
        ("data unlinked, renamed .meta left", |v| {
            fs::rename(v.meta_path(), doomed(v, true)).expect("rename");
            fs::remove_file(v.path()).expect("unlink");
        }),
        ("the reverse: .meta renamed, file not", |v| {
            fs::rename(v.meta_path(), doomed(v, true)).expect("rename");
        }),
    ];
    for (state, crash) in states {
        let lab = Lab::new();
        let domains = DomainSet::new([lab.d1.clone()]);
        let (b, s1) = disk(&lab);
        let base_content = guest_content(&b);
        crash(&s1);
        assert_eq!(s1.presence(), Presence::BeingDeleted, "{state}");

        let before = tree_snapshot(lab.root());
        let fresh = lab.d1.collect_garbage(&domains, GRACE).expect("collect");
        assert_eq!(fresh, Collected::default(), "{state}: too young to touch");
        assert_eq!(tree_snapshot(lab.root()), before, "{state}");

        let done = lab
            .d1
            .collect_garbage(&domains, Duration::ZERO)
            .expect("collect");
        assert_eq!(done.deletions_finished, 1, "{state}");
        assert_eq!(s1.presence(), Presence::Absent, "{state}");
        assert_eq!(
            role(&b),
            VolumeRole::Leaf,
            "{state}: base is the leaf again"
        );
        assert_eq!(guest_content(&b), base_content, "{state}: base untouched");
        assert_eq!(
            lab.d1.volume_ids_in_any_state(b.image()).expect("ids"),
            vec![b.id()],
            "{state}"
        );
    }
}

#[test]
fn finishing_the_delete_of_a_cross_domain_leaf_makes_its_parent_the_leaf_again() {
    let lab = Lab::new();
    let (_, s1) = disk(&lab);
    let leaf = lab
        .d2
        .create_volume(&VolumeSpec::child_of(&s1))
        .expect("createVolumeCrossSD");
    assert_eq!(role(&s1), VolumeRole::Internal);
    fs::rename(leaf.path(), doomed(&leaf, false)).expect("rename");

    let done = lab
        .d2
        .collect_garbage(&lab.domains(), Duration::ZERO)
        .expect("collect");
    assert_eq!(done.deletions_finished, 1);
    assert_eq!(leaf.presence(), Presence::Absent);
    assert_eq!(role(&s1), VolumeRole::Leaf);
}

#[test]
fn an_illegal_leftover_of_a_create_is_removed_on_request_and_made_again() {
    let lab = Lab::new();
    let (_, s1) = disk(&lab);
    let id = Uuid::new_v4();
    let mut spec = VolumeSpec::child_of(&s1);
    spec.id = Some(id);
    // The crash point `create-cross-sd`: file made, parent INTERNAL, not LEGAL.
    let leaf = lab.d2.create_volume(&spec).expect("create");
    leaf.set_legality(Legality::Illegal).expect("illegal");
    let domains = lab.domains();

    let before = tree_snapshot(lab.root());
    lab.d2
        .collect_garbage(&domains, Duration::ZERO)
        .expect("collect");
    assert_eq!(
        tree_snapshot(lab.root()),
        before,
        "garbage collection never removes an ILLEGAL volume"
    );

    leaf.delete_in(&domains).expect("remove the leftover");
    assert_eq!(leaf.presence(), Presence::Absent);
    assert_eq!(role(&s1), VolumeRole::Leaf);
    let again = lab.d2.create_volume(&spec).expect("create again");
    assert_eq!(again.metadata().expect("md").legality, Legality::Legal);
    assert_eq!(role(&s1), VolumeRole::Internal);

    // Earlier: only the ILLEGAL `.meta` was written.
    let id2 = Uuid::new_v4();
    let b2 = base(&lab.d1, VolumeFormat::Qcow2, MIB);
    let mut spec2 = VolumeSpec::child_of(&b2);
    spec2.id = Some(id2);
    let half = lab.d1.create_volume(&spec2).expect("create");
    half.set_legality(Legality::Illegal).expect("illegal");
    fs::remove_file(half.path()).expect("unlink");
    assert_eq!(half.presence(), Presence::MetadataOnly);
    half.delete_in(&domains).expect("remove the leftover");
    assert_eq!(half.presence(), Presence::Absent);
    assert_eq!(role(&b2), VolumeRole::Leaf);
}

#[test]
fn garbage_collection_leaves_whole_volumes_and_half_created_ones_alone() {
    let lab = Lab::new();
    let domains = DomainSet::new([lab.d1.clone()]);
    let (b, s1) = disk(&lab);
    // An ILLEGAL whole volume (a copy or create in progress) ...
    let b2 = base(&lab.d1, VolumeFormat::Raw, MIB);
    let busy = child(&b2);
    busy.set_legality(Legality::Illegal).expect("illegal");
    // ... a `.meta` alone, ILLEGAL (a create before qemu-img) ...
    let b3 = base(&lab.d1, VolumeFormat::Raw, MIB);
    let half = child(&b3);
    half.set_legality(Legality::Illegal).expect("illegal");
    fs::remove_file(half.path()).expect("unlink");
    // ... and a LEGAL `.meta` whose file is missing with no sign of a
    // delete, which only a person can explain.
    let b4 = base(&lab.d1, VolumeFormat::Raw, MIB);
    let odd = child(&b4);
    fs::remove_file(odd.path()).expect("unlink");
    let contents = (guest_content(&b), guest_content(&s1));

    let before = tree_snapshot(lab.root());
    let done = lab
        .d1
        .collect_garbage(&domains, Duration::ZERO)
        .expect("collect");
    assert_eq!(done, Collected::default());
    assert_eq!(tree_snapshot(lab.root()), before);
    assert_eq!((guest_content(&b), guest_content(&s1)), contents);

    // An old `_remove_me_` file beside a whole volume of the same id is an
    // earlier volume's: it goes, the volume stays.
    fs::write(doomed(&s1, false), b"an earlier volume").expect("write");
    let done = lab
        .d1
        .collect_garbage(&domains, Duration::ZERO)
        .expect("collect");
    assert_eq!(done.removed_entries, 1);
    assert!(!doomed(&s1, false).exists());
    assert_eq!(s1.presence(), Presence::Whole);
    assert_eq!((guest_content(&b), guest_content(&s1)), contents);
}

#[test]
fn stale_temporary_files_go_and_fresh_ones_stay() {
    let lab = Lab::new();
    let domains = DomainSet::new([lab.d1.clone()]);
    let (b, s1) = disk(&lab);
    let dir = lab.d1.image_dir(b.image());
    let dom_md = lab.d1.path().join("dom_md");
    let old_meta_tmp = dir.join(format!(".{}.meta.tmp", s1.id()));
    let new_meta_tmp = dir.join(format!(".{}.meta.tmp", b.id()));
    let old_dom_tmp = dom_md.join(".metadata.tmp");
    let not_ours = dir.join(".keep");
    for p in [&old_meta_tmp, &new_meta_tmp, &old_dom_tmp, &not_ours] {
        fs::write(p, b"CAP=1\n").expect("write");
    }
    age(&old_meta_tmp);
    age(&old_dom_tmp);
    age(&not_ours);

    let done = lab.d1.collect_garbage(&domains, GRACE).expect("collect");
    assert_eq!(done.temp_files, 2);
    assert!(!old_meta_tmp.exists() && !old_dom_tmp.exists());
    assert!(new_meta_tmp.exists(), "a writer may still be using it");
    assert!(not_ours.exists(), "not a temporary file of Ferry's");
    assert_eq!(s1.presence(), Presence::Whole);
    assert_eq!(b.presence(), Presence::Whole);
}
