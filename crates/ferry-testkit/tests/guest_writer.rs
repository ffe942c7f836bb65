//! The test guest itself, on real QEMU: given a VM whose disk is a qcow2
//! overlay on a raw base holding other data, when its writer has written
//! for a while and the VM is stopped, then every acknowledged write is on
//! the disk the guest sees, nothing outside the writer's region changed, and
//! the oracle does catch a lost write.
//!
//! Runs under TCG unless `FERRY_ACCEL=kvm` (ARCHITECTURE §8: KVM breaks real
//! guests on the test machines). Needs `scripts/build-guest`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_api::VolumeFormat;
use ferry_testkit::guest::{self, max_stall, verify_acked_writes, SerialLog, WriterConfig};
use ferry_testkit::{base, child, guest_content, qemu_io, scratch_root, Lab};

const MIB: u64 = 1024 * 1024;
const DISK: u64 = 16 * MIB;
/// Guest writes go to 4 MiB + 64 KiB: 16 blocks, so 200 writes wrap around
/// the region many times and the oracle must pick each slot's latest one.
const REGION: (u64, u64) = (4 * MIB, 64 * 1024);

/// A QEMU process, killed if the test fails before it quits.
struct Qemu {
    child: Child,
    qmp: std::path::PathBuf,
}

impl Qemu {
    fn start(disk: &Path, cfg: &WriterConfig, run: &Path) -> Qemu {
        let accel = std::env::var("FERRY_ACCEL").unwrap_or_else(|_| "tcg".into());
        let cpu = if accel == "kvm" { "host" } else { "max" };
        let qmp = run.join("qmp.sock");
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", &accel, "-cpu", cpu, "-m", "256"])
            .args(["-nographic", "-nodefaults", "-no-reboot"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .args(guest::artifacts().qemu_args(cfg, &run.join("serial.log")))
            .arg("-blockdev")
            .arg(format!(
                "driver=file,filename={},node-name=f0",
                disk.display()
            ))
            .args(["-blockdev", "driver=qcow2,file=f0,node-name=d0"])
            .args(["-device", "virtio-blk-pci,drive=d0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = cmd.spawn().expect("start qemu-system-x86_64");
        Qemu { child, qmp }
    }

    /// Stops the VM the way a host would, through QMP, and waits for QEMU
    /// to exit, so everything the guest wrote has reached the image files.
    fn quit(mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(&self.qmp) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("connect to QMP at {}: {e}", self.qmp.display()),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set a QMP read timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone the QMP socket"));
        let mut writer = stream;
        let mut line = String::new();
        reader.read_line(&mut line).expect("read the QMP greeting");
        assert!(line.contains("QMP"), "not a QMP greeting: {line}");
        for command in ["qmp_capabilities", "quit"] {
            writeln!(writer, "{{\"execute\":\"{command}\"}}").expect("send a QMP command");
            loop {
                line.clear();
                let n = reader.read_line(&mut line).expect("read a QMP reply");
                assert!(
                    n > 0 || command == "quit",
                    "QMP closed before {command} returned"
                );
                if n == 0 || line.contains("\"return\"") {
                    break;
                }
                assert!(!line.contains("\"error\""), "{command} failed: {line}");
            }
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("check on QEMU") {
                assert!(status.success(), "QEMU exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "QEMU did not exit after quit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn every_acknowledged_write_is_on_the_disk_and_nothing_else_changed() {
    let lab = Lab::new();
    let run = tempfile::tempdir().expect("a run directory");
    let (offset, len) = REGION;
    let after = offset + len;

    // Given a raw base holding data around the writer's region, and an overlay.
    let base_vol = base(&lab.d1, VolumeFormat::Raw, DISK);
    qemu_io(
        &base_vol,
        &[
            &format!("write -P 0xa5 0 {offset}"),
            &format!("write -P 0x5a {after} {}", DISK - after),
        ],
    );
    let base_before = guest_content(&base_vol);
    let leaf = child(&base_vol);
    let cfg = WriterConfig::new(offset, len);

    // When the guest writes for a while and the VM is stopped.
    let started = Instant::now();
    let vm = Qemu::start(&leaf.path(), &cfg, run.path());
    let mut log = SerialLog::new(run.path().join("serial.log"));
    let ready = log
        .wait_ready(Duration::from_secs(120))
        .expect("the writer starts");
    assert_eq!(
        (
            ready.dev.as_str(),
            ready.offset,
            ready.len,
            ready.bs,
            ready.seed
        ),
        ("/dev/vda", cfg.offset, cfg.len, cfg.bs, cfg.seed)
    );
    log.wait_for_acks(1, Duration::from_secs(60))
        .expect("a first ack");
    let first_ack = started.elapsed();
    log.wait_for_acks(200, Duration::from_secs(60))
        .expect("200 acks");
    vm.quit();
    log.poll();

    let acks = log.acks();
    assert!(log.errors().is_empty(), "guest errors: {:?}", log.errors());
    assert!(
        log.garbled().is_empty(),
        "garbled lines: {:?}",
        log.garbled()
    );
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(
            a.seq,
            u64::try_from(i).expect("few acks") + 1,
            "acks in order"
        );
    }

    // Then every acknowledged write is there, through the chain.
    let content = scratch_root().join(format!("ferry-guest-{}.raw", cfg.seed));
    let _cleanup = RemoveOnDrop(&content);
    guest::guest_visible_raw(&leaf.path(), &content);
    let check = verify_acked_writes(&content, &cfg, acks).expect("every acked write is there");
    assert_eq!(check.slots_checked, cfg.slots());
    assert!(check.max_seq_on_disk >= check.max_acked_seq);
    assert!(check.max_seq_on_disk <= check.max_acked_seq + 1);

    // And nothing outside the region changed, in the leaf's view or the base's.
    let seen = std::fs::read(&content).expect("read the guest's view");
    let (o, a) = (
        usize::try_from(offset).expect("small"),
        usize::try_from(after).expect("small"),
    );
    assert!(
        seen[..o].iter().all(|&b| b == 0xa5),
        "data before the region changed"
    );
    assert!(
        seen[a..].iter().all(|&b| b == 0x5a),
        "data after the region changed"
    );
    assert!(
        guest_content(&base_vol) == base_before,
        "the base layer changed"
    );

    let (t0, last) = (acks[0], acks[acks.len() - 1]);
    let span = Duration::from_micros(last.t_start_us + last.latency_us - t0.t_start_us);
    let n = acks.len();
    eprintln!(
        "guest writer: boot to first ack {first_ack:.2?}, {n} acks in {span:.2?} \
         ({:.0} acks/s), max stall {:.2?}",
        f64::from(u32::try_from(n - 1).expect("few acks")) / span.as_secs_f64(),
        max_stall(acks, 1, last.seq)
    );

    // And the oracle catches a lost write: the latest write's block flipped,
    // or replaced by the write before it in that slot, as a lost layer would.
    let latest = acks
        .iter()
        .rev()
        .find(|a| a.seq > cfg.slots())
        .expect("the region wrapped");
    let at = usize::try_from(latest.offset).expect("small");
    let bs = usize::try_from(cfg.bs).expect("small");
    let broken = run.path().join("broken.raw");
    let mut bytes = seen;
    bytes[at + bs - 1] ^= 0x01;
    std::fs::write(&broken, &bytes).expect("write a corrupted copy");
    let err = verify_acked_writes(&broken, &cfg, acks).expect_err("a flipped byte");
    assert!(err.contains("bad checksum"), "{err}");
    bytes[at..at + bs].copy_from_slice(&cfg.block(latest.seq - cfg.slots()));
    std::fs::write(&broken, &bytes).expect("write a rolled-back copy");
    let err = verify_acked_writes(&broken, &cfg, acks).expect_err("an older block");
    assert!(err.contains("older seq"), "{err}");
}

#[test]
fn a_writer_with_rests_rests_and_its_clock_leaves_the_rests_out() {
    let lab = Lab::new();
    let run = tempfile::tempdir().expect("a run directory");
    let base_vol = base(&lab.d1, VolumeFormat::Raw, DISK);
    let leaf = child(&base_vol);
    let (offset, len) = REGION;
    let cfg = WriterConfig {
        duty: Some(guest::Duty {
            busy_ms: 200,
            quiet_ms: 800,
        }),
        ..WriterConfig::new(offset, len)
    };
    let vm = Qemu::start(&leaf.path(), &cfg, run.path());
    let mut log = SerialLog::new(run.path().join("serial.log"));
    log.wait_for_acks(1, Duration::from_secs(120))
        .expect("a first ack");
    let started = Instant::now();
    let first = log.acks()[0];
    // Three bursts or more by the writer's clock: at least two rests.
    log.wait_until(Duration::from_secs(60), "700 ms of writing", |l| {
        l.acks()
            .last()
            .is_some_and(|a| a.t_start_us >= first.t_start_us + 700_000)
    })
    .expect("the writer goes on after its rests");
    let host = started.elapsed();
    vm.quit();
    let acks = log.acks();
    let last = acks[acks.len() - 1];
    let busy = Duration::from_micros(last.t_start_us - first.t_start_us);
    assert!(
        host >= busy + Duration::from_millis(1500),
        "{host:?} on the host for {busy:?} of writing: the writer did not rest"
    );
    let stall = max_stall(acks, first.seq, last.seq);
    assert!(
        stall < Duration::from_millis(800),
        "a {stall:?} stall: a rest was counted as one"
    );
    verify_acked_writes(
        &{
            let raw = run.path().join("rests.raw");
            guest::guest_visible_raw(&leaf.path(), &raw);
            raw
        },
        &cfg,
        acks,
    )
    .expect("every acked write is there");
}

/// Removes a file that may be large when the test ends, pass or fail.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}
