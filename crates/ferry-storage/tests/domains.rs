//! Given storage domains on disk, when they are scanned, listed and asked
//! for room, then they answer as the filesystem is; a copy that cannot fit
//! is refused before anything is written.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry_api::VolumeFormat;
use ferry_storage::{copy_chain, Chain, CopyControl, DomainSet, Error, StorageDomain, Volume};
use ferry_testkit::{base, child, qemu_io, tree_snapshot, Lab};
use uuid::Uuid;

const MIB: u64 = 1 << 20;

#[test]
fn scan_finds_every_domain_under_a_root_and_skips_everything_else() {
    let lab = Lab::new();
    fs::create_dir(lab.root().join("not-a-domain")).expect("mkdir");
    fs::create_dir(lab.root().join(Uuid::new_v4().to_string())).expect("mkdir");
    fs::write(lab.root().join("stray-file"), b"x").expect("write");

    let found = StorageDomain::scan(lab.root()).expect("scan");

    let names: Vec<&str> = found.iter().map(StorageDomain::name).collect();
    assert_eq!(names, vec!["domain1", "domain2"]);
    assert_eq!(found[0], lab.d1);
    assert_eq!(found[1], lab.d2);
}

#[test]
fn images_and_volumes_are_listed_sorted_without_metadata_or_removal_leftovers() {
    let lab = Lab::new();
    let b1 = base(&lab.d1, VolumeFormat::Raw, MIB);
    let s1 = child(&b1);
    let s2 = child(&s1);
    let b2 = base(&lab.d1, VolumeFormat::Qcow2, MIB);
    fs::create_dir(
        lab.d1
            .images_dir()
            .join(format!("_remove_me_{}", Uuid::new_v4())),
    )
    .expect("mkdir");

    let mut expected_images = vec![b1.image(), b2.image()];
    expected_images.sort();
    assert_eq!(lab.d1.images().expect("images"), expected_images);
    assert_eq!(lab.d2.images().expect("images"), Vec::<Uuid>::new());

    let mut expected_volumes = vec![b1.id(), s1.id(), s2.id()];
    expected_volumes.sort();
    let listed: Vec<Uuid> = lab
        .d1
        .volumes(b1.image())
        .expect("volumes")
        .iter()
        .map(Volume::id)
        .collect();
    assert_eq!(listed, expected_volumes);
    assert!(lab
        .d1
        .volumes(Uuid::new_v4())
        .expect("an unknown image")
        .is_empty());
    let collected = lab
        .d1
        .collect_garbage(&DomainSet::new([lab.d1.clone()]), Duration::ZERO)
        .expect("collect");
    assert_eq!(collected.removed_entries, 1);
}

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8m"), or None (with a note) when
    /// this process may not mount.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "skipping: cannot mount a tmpfs ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping: cannot run mount ({e})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "could not unmount the tmpfs at {}",
                self.dir.path().display()
            );
        }
    }
}

#[test]
fn capacity_reports_the_size_and_free_space_of_a_small_tmpfs() {
    let Some(fs8) = Tmpfs::mount("8m") else {
        return;
    };
    let d = StorageDomain::create(fs8.path(), "small").expect("create a domain on tmpfs");
    let empty = d.capacity().expect("capacity");
    assert_eq!(empty.total, 8 * MIB);
    assert!(
        empty.free <= empty.total && empty.free > 7 * MIB,
        "{empty:?}"
    );

    let v = base(&d, VolumeFormat::Raw, 4 * MIB);
    qemu_io(&v, &["write -P 0x01 0 2M"]);

    let used = d.capacity().expect("capacity");
    assert_eq!(used.total, 8 * MIB);
    assert!(
        empty.free - used.free >= 2 * MIB,
        "writing 2 MiB took {} bytes of free space",
        empty.free - used.free
    );
    assert_eq!(StorageDomain::scan(fs8.path()).expect("scan"), vec![d]);
}

#[test]
fn a_chain_larger_than_the_destinations_free_space_is_refused_up_front() {
    let Some(fs8) = Tmpfs::mount("8m") else {
        return;
    };
    let lab = Lab::new();
    let small = StorageDomain::create(fs8.path(), "small").expect("create a domain on tmpfs");
    let b = base(&lab.d1, VolumeFormat::Raw, 16 * MIB);
    qemu_io(&b, &["write -P 0x02 0 6M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x03 8M 4M"]);
    let domains = DomainSet::new([lab.d1, small.clone()]);
    let chain = Chain::walk(&domains, &s1).expect("walk");
    let before = tree_snapshot(small.path());
    let free = small.capacity().expect("capacity").free;

    let err =
        copy_chain(&domains, &chain, &small, &CopyControl::default()).expect_err("does not fit");

    match &err {
        Error::NoSpace {
            needed,
            free: reported_free,
            domain,
        } => {
            assert!(*needed >= 10 * MIB, "needed {needed}");
            assert!(*needed > *reported_free);
            assert_eq!(*reported_free, free);
            assert!(domain.contains("small"), "{domain}");
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert_eq!(before, tree_snapshot(small.path()), "nothing was written");
    assert!(small.images().expect("images").is_empty());
}
