//! Given a chain being copied to domain2 by `ferry storage copy-image`,
//! when the process is killed midway, then the partial copy is ILLEGAL and
//! a second run completes it, every layer verified.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ferry_api::{Legality, VolumeFormat};
use ferry_storage::Chain;
use ferry_testkit::{base, child, guest_content, own_allocation, qemu_io, Lab};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Kills the child on drop, so a failing assertion leaves no copier behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_image(lab: &Lab, image: uuid::Uuid, extra: &[&str]) -> Command {
    let mut cmd = Command::new(FERRY);
    cmd.args([
        "storage",
        "copy-image",
        "--json",
        "--image",
        &image.to_string(),
    ])
    .arg("--from")
    .arg(lab.d1.path())
    .arg("--to")
    .arg(lab.d2.path())
    .args(extra);
    cmd
}

#[test]
fn a_copy_killed_midway_stays_illegal_and_a_retry_completes_it() {
    let lab = Lab::new();
    let b = base(&lab.d1, VolumeFormat::Raw, 32 << 20);
    qemu_io(&b, &["write -P 0x31 0 12M"]);
    let s1 = child(&b);
    qemu_io(&s1, &["write -P 0x32 4M 2M", "write -z 8M 1M"]);
    let image = b.image();
    let partial = lab.d2.volume(image, b.id());

    // 1 MiB/s: the 12 MiB base takes about 12 s, plenty of time to kill it.
    let mut copier = Killed(
        copy_image(&lab, image, &["--bandwidth", "1"])
            .spawn()
            .expect("start ferry storage copy-image"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let written = partial.allocated_bytes().unwrap_or(0);
        if partial.meta_path().exists() && written >= 2 << 20 {
            break;
        }
        assert!(
            copier.0.try_wait().expect("poll the copier").is_none(),
            "the copier ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "the copy never got going");
        std::thread::yield_now();
    }
    copier.0.kill().expect("kill the copier");
    copier.0.wait().expect("reap the copier");

    assert_eq!(
        partial.metadata().expect("partial copy metadata").legality,
        Legality::Illegal,
        "a half-copied volume must never look usable"
    );
    assert!(
        !lab.d2.volume(image, s1.id()).exists(),
        "the next layer was never started"
    );

    let out = copy_image(&lab, image, &[])
        .output()
        .expect("rerun the copy");
    assert!(
        out.status.success(),
        "the retry failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json output");
    assert_eq!(rows.as_array().map(Vec::len), Some(2));

    let copied = Chain::of_image(&lab.domains(), &lab.d2, image).expect("walk the copy");
    for (src, dst) in [b, s1].iter().zip(copied.volumes()) {
        assert_eq!(dst.metadata().expect("meta").legality, Legality::Legal);
        assert_eq!(guest_content(src), guest_content(dst));
        assert_eq!(own_allocation(src), own_allocation(dst));
    }
}

#[test]
fn copying_an_image_that_does_not_exist_fails_with_a_clear_message_and_changes_nothing() {
    let lab = Lab::new();
    let missing = uuid::Uuid::new_v4();
    let out = copy_image(&lab, missing, &[]).output().expect("run ferry");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&missing.to_string()), "{stderr}");
    assert!(stderr.contains("has no volumes"), "{stderr}");
    assert!(lab.d2.images().expect("list").is_empty());
}
