//! A host whose KVM cannot run the guest: a VM start under KVM fails with
//! a sentence that says what to do (`--accel tcg`, or check the host's
//! KVM), not QEMU's bare complaint. The test runs the real QEMU with
//! `/dev/kvm` replaced by `/dev/null` in a mount namespace of its own (a
//! wrapper first on `PATH`, for this test binary only), which QEMU
//! cannot initialise KVM on.

use std::os::unix::fs::PermissionsExt;

use ferry_api::VolumeFormat;
use ferry_qemu::{Accel, DiskSpec, Error, Layer, NodeNames, Vm, VmSpec};
use ferry_storage::VolumeSpec;
use ferry_testkit::Lab;

#[tokio::test(flavor = "multi_thread")]
async fn a_vm_start_on_an_unusable_kvm_says_to_use_tcg_or_check_kvm() {
    let lab = Lab::new();
    let wrappers = lab.root().join("bin");
    std::fs::create_dir(&wrappers).expect("a directory for the wrapper");
    let qemu = which("qemu-system-x86_64");
    let wrapper = wrappers.join("qemu-system-x86_64");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare -m sh -c 'mount --bind /dev/null /dev/kvm && exec {} \"$@\"' qemu \"$@\"\n",
            qemu.display()
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .expect("make the wrapper executable");
    let path = std::env::var("PATH").unwrap_or_default();
    // This test binary holds this one test: nothing else reads PATH.
    std::env::set_var("PATH", format!("{}:{path}", wrappers.display()));

    let volume = lab
        .d1
        .create_volume(&VolumeSpec::base(
            uuid::Uuid::new_v4(),
            VolumeFormat::Raw,
            16 << 20,
        ))
        .expect("a disk");
    let spec = VmSpec {
        name: "kvm-vm".into(),
        memory_mib: 64,
        cpus: 1,
        accel: Accel::Kvm,
        disks: vec![DiskSpec {
            device: "disk0".into(),
            chain: vec![Layer {
                path: volume.path(),
                format: VolumeFormat::Raw,
                nodes: NodeNames::for_volume(lab.d1.uuid(), volume.id()),
            }],
        }],
        boot: None,
        serial_log: None,
        run_dir: lab.root().join("run"),
    };
    let err = Vm::start(&spec).await.expect_err("KVM cannot be used");
    assert!(matches!(err, Error::KvmStart { .. }), "{err:?}");
    let said = err.to_string();
    assert!(
        said.contains("--accel tcg") && said.contains("check the host's KVM"),
        "{said}"
    );
    assert!(said.contains("kvm"), "QEMU's own words are kept: {said}");
    assert!(!Vm::is_running_in(&spec.run_dir), "no QEMU is left running");
}

/// The full path of a program on `PATH`.
fn which(program: &str) -> std::path::PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH (scripts/install-deps installs it)"))
}
