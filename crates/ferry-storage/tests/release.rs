//! Given a volume whose deletion is decided, when it is retired, then it
//! is out of its domain at once (no listing shows it, its parent is the
//! leaf again), and its space comes back a bounded step at a time, the
//! `.meta` last, the image's directory with its last volume.

use std::os::unix::fs::MetadataExt;

use ferry_api::{VolumeFormat, VolumeRole};
use ferry_storage::{CopyControl, DomainSet, Presence, Released, Retired};
use ferry_testkit::{base, child, qemu_io, same_guest_content, Lab};

const MIB: u64 = 1 << 20;

fn allocated(r: &Retired) -> Option<u64> {
    let path = r
        .volume()
        .domain()
        .image_dir(r.volume().image())
        .join(format!("_remove_me_{}", r.volume().id()));
    std::fs::metadata(path).ok().map(|m| m.blocks() * 512)
}

/// Calls `release_step` until done; returns the allocated bytes seen
/// before each step.
fn release_all(r: &Retired, step: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        seen.push(allocated(r).unwrap_or(0));
        if r.release_step(step).expect("release a step") == Released::Done {
            return seen;
        }
    }
    panic!("the release did not end in 1000 steps: {seen:?}");
}

#[test]
fn a_retired_leaf_is_out_of_its_domain_and_its_space_comes_back_a_step_at_a_time() {
    let lab = Lab::new();
    let domains = DomainSet::new([lab.d1.clone()]);
    let b = base(&lab.d1, VolumeFormat::Raw, 16 * MIB);
    qemu_io(&b, &["write -P 0x51 0 1M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x52 0 8M"]);
    assert_eq!(b.metadata().expect("metadata").role, VolumeRole::Internal);

    let retired = s1.retire_in(&domains).expect("retire the leaf");
    assert_eq!(s1.presence(), Presence::BeingDeleted);
    assert!(!s1.exists(), "a retired volume is not a volume any more");
    assert_eq!(
        b.metadata().expect("metadata").role,
        VolumeRole::Leaf,
        "the parent is the leaf again before any space comes back"
    );
    assert!(b.children().expect("children").is_empty());

    let seen = release_all(&retired, 2 * MIB);
    assert!(
        seen.len() >= 3,
        "8 MiB in 2 MiB steps took {} step(s): {seen:?}",
        seen.len()
    );
    assert!(
        seen.windows(2).all(|w| w[1] < w[0]),
        "every step gave space back: {seen:?}"
    );
    assert_eq!(s1.presence(), Presence::Absent);
    assert!(b.exists(), "the parent is untouched");

    let last = b.retire_in(&domains).expect("retire the base");
    assert_eq!(release_all(&last, 2 * MIB).len(), 1, "1 MiB goes at once");
    assert!(
        !lab.d1.image_dir(b.image()).exists(),
        "the image's directory goes with its last volume"
    );
}

#[test]
fn a_sparse_volume_is_released_in_one_step_and_a_retry_of_a_release_is_harmless() {
    let lab = Lab::new();
    let domains = DomainSet::new([lab.d1.clone()]);
    let b = base(&lab.d1, VolumeFormat::Raw, 1024 * MIB);
    qemu_io(&b, &["write -P 0x51 512M 1M"]);
    let retired = b.retire_in(&domains).expect("retire");
    assert_eq!(release_all(&retired, 32 * MIB).len(), 1);
    assert_eq!(b.presence(), Presence::Absent);
    assert_eq!(
        retired.release_step(32 * MIB).expect("again"),
        Released::Done
    );
    retired.release_now().expect("and at once");
}

#[test]
fn a_volume_copied_back_while_its_old_copy_is_still_being_released_is_left_whole() {
    // A disk moved to domain2 and at once back to domain1: its volumes
    // come back under the same ids while domain1's old files still carry
    // `_remove_me_` names.
    let lab = Lab::new();
    let domains = lab.domains();
    let b = base(&lab.d1, VolumeFormat::Raw, 16 * MIB);
    qemu_io(&b, &["write -P 0x5a 0 8M"]);
    let away = ferry_storage::copy_volume(&domains, &b, &lab.d2, &CopyControl::default())
        .expect("copy to domain2")
        .copy;
    let retired = b.retire_in(&domains).expect("retire domain1's");
    assert!(retired.release_step(MIB).expect("a step") == Released::More);

    let back = ferry_storage::copy_volume(&domains, &away, &lab.d1, &CopyControl::default())
        .expect("copy back beside the old files")
        .copy;
    assert_eq!(back.path(), b.path());
    assert_eq!(back.presence(), Presence::Whole);
    release_all(&retired, MIB);
    assert_eq!(
        back.presence(),
        Presence::Whole,
        "the release left the new copy"
    );
    assert!(same_guest_content(&back.path(), &away.path()));
    assert_eq!(
        back.metadata().expect("metadata").legality,
        ferry_api::Legality::Legal
    );
}

#[test]
fn garbage_collection_can_hand_an_interrupted_deletion_over_for_a_gentle_release() {
    let lab = Lab::new();
    let domains = DomainSet::new([lab.d1.clone()]);
    let b = base(&lab.d1, VolumeFormat::Raw, 16 * MIB);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x52 0 4M"]);
    // What a crash between the delete's renames leaves.
    let dir = lab.d1.image_dir(s1.image());
    std::fs::rename(s1.path(), dir.join(format!("_remove_me_{}", s1.id()))).expect("rename");

    let mut handed = Vec::new();
    let done = lab
        .d1
        .collect_garbage_with(&domains, std::time::Duration::ZERO, &mut |r| {
            handed.push(r);
            Ok(())
        })
        .expect("collect");
    assert_eq!(done.deletions_finished, 1, "{done:?}");
    assert_eq!(handed.len(), 1);
    assert_eq!(b.metadata().expect("metadata").role, VolumeRole::Leaf);
    assert!(
        allocated(&handed[0]).is_some(),
        "the space is the release's to give back"
    );
    release_all(&handed[0], MIB);
    assert_eq!(s1.presence(), Presence::Absent);
    assert!(b.exists());
}
