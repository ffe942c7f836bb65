//! oVirt's own Python SDK (`ovirt-engine-sdk-python`, from PyPI, in the
//! virtual environment `scripts/install-deps` makes) drives `ferry up
//! --demo` through oVirt's REST API: password and token sign-in, the disk
//! and the domain found by name, a live move of the running VM's disk
//! followed to `ok` on the destination, the job and its steps read by
//! correlation id, and a second move of the locked disk refused with
//! oVirt's 409 (tests/ovirt/sdk_move.py says each check as it passes).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::demo::Demo;

/// The SDK's Python: `FERRY_OVIRT_SDK_PYTHON`, or the virtual environment
/// `scripts/install-deps` creates in `target/ovirt-sdk`.
fn sdk_python() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_OVIRT_SDK_PYTHON") {
        return PathBuf::from(p);
    }
    let python =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ovirt-sdk/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/install-deps, which installs oVirt's Python SDK for this test",
        python.display()
    );
    python
}

#[test]
fn ovirts_python_sdk_moves_a_running_vms_disk() {
    let python = sdk_python();
    let password = "ferry-ovirt-test";
    let demo = Demo::start_with(&[("FERRY_ADMIN_PASSWORD", password)]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ovirt/sdk_move.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([&demo.url, password, &demo.token])
        .output()
        .expect("run the SDK script");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the SDK script failed:\n{said}\nferry up's output:\n{}",
        demo.log()
    );
    for check in [
        "ok: a second move of a locked disk is refused",
        "ok: the job is found by its correlation id",
        "ok: the disk is ok on domain2",
        "ok: signed out",
    ] {
        assert!(said.contains(check), "no '{check}' in:\n{said}");
    }
    demo.stop();
}
