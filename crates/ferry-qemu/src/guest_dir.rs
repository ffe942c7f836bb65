//! Where the test guest's kernel and initramfs are (`scripts/build-guest`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The directory holding the test guest's `vmlinuz` and `initrd.img`:
/// `FERRY_GUEST_DIR` if set, else the first ancestor of the running
/// executable that has `ferry-guest/vmlinuz`, else `./target/ferry-guest`.
///
/// One rule for everything that boots the guest (`ferry up --demo`,
/// `ferry-bench`, the tests), matching where `scripts/build-guest` puts it,
/// so they cannot disagree. The executable's ancestors find
/// `<target>/ferry-guest` from `<target>/release/ferry` as well as from a
/// test binary in `<target>/debug/deps/`, whatever `CARGO_TARGET_DIR` is,
/// without embedding the build tree's path in a release binary.
pub fn guest_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    guest_dir_from(std::env::var_os("FERRY_GUEST_DIR"), exe.as_deref())
}

/// [`guest_dir`] with the environment passed in, so it can be tested. An
/// empty `FERRY_GUEST_DIR` counts as unset, as in `scripts/build-guest`.
fn guest_dir_from(env: Option<OsString>, exe: Option<&Path>) -> PathBuf {
    if let Some(dir) = env.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    exe.into_iter()
        .flat_map(Path::ancestors)
        .skip(1)
        .map(|dir| dir.join("ferry-guest"))
        .find(|guest| guest.join("vmlinuz").is_file())
        .unwrap_or_else(|| PathBuf::from("target/ferry-guest"))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A target directory with a built guest and the given binaries.
    fn target_with_guest(bins: &[&str]) -> tempfile::TempDir {
        let target = tempfile::tempdir().expect("a temporary directory");
        let guest = target.path().join("ferry-guest");
        fs::create_dir_all(&guest).expect("create ferry-guest");
        fs::write(guest.join("vmlinuz"), b"kernel").expect("write vmlinuz");
        for bin in bins {
            let path = target.path().join(bin);
            fs::create_dir_all(path.parent().expect("a parent")).expect("create the bin dir");
            fs::write(&path, b"binary").expect("write the binary");
        }
        target
    }

    #[test]
    fn the_environment_wins() {
        let target = target_with_guest(&["release/ferry"]);
        let exe = target.path().join("release/ferry");
        assert_eq!(
            guest_dir_from(Some("/elsewhere".into()), Some(&exe)),
            PathBuf::from("/elsewhere")
        );
    }

    #[test]
    fn a_release_binary_and_a_test_binary_find_their_targets_guest() {
        let target = target_with_guest(&["release/ferry", "debug/deps/ferry_qemu-0123"]);
        for bin in ["release/ferry", "debug/deps/ferry_qemu-0123"] {
            let exe = target.path().join(bin);
            assert_eq!(
                guest_dir_from(Some(OsString::new()), Some(&exe)),
                target.path().join("ferry-guest"),
                "from {bin}"
            );
        }
    }

    #[test]
    fn without_a_guest_it_is_the_working_directorys_target() {
        let target = tempfile::tempdir().expect("a temporary directory");
        let exe = target.path().join("release/ferry");
        assert_eq!(
            guest_dir_from(None, Some(&exe)),
            PathBuf::from("target/ferry-guest")
        );
        assert_eq!(
            guest_dir_from(None, None),
            PathBuf::from("target/ferry-guest")
        );
    }
}
