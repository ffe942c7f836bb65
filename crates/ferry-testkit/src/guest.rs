//! A real Linux guest that writes to its disk, and the host-side oracle that
//! nothing it was told is on the disk went missing.
//!
//! `scripts/build-guest` builds Debian's cloud kernel and an initramfs whose
//! writer (`guest/writer.c`) writes numbered, checksummed blocks into a
//! region of `/dev/vda`, one at a time with `O_DIRECT` and `fdatasync`, and
//! prints `FERRY-ACK <seq> <offset> <t_start_us> <latency_us>` on the serial
//! console only after the disk acknowledged the write. A test boots it with
//! [`GuestArtifacts::qemu_args`], follows the console with [`SerialLog`],
//! moves the disk under it, stops the VM and then checks with
//! [`verify_acked_writes`] that every acknowledged write is on the disk the
//! guest sees. [`max_stall`] tells how long the guest's writes were held up.
//!
//! Block layout (integers little-endian), shared with `guest/writer.c`:
//! `0..8` magic `FERRYWR1`, `8..16` seq, `16..24` the block's byte offset on
//! the disk, `24..32` seed, `32..40` FNV-1a 64 of bytes `0..32` then
//! `40..bs`, and `40..bs` a splitmix64 stream seeded by (seed, seq, offset).
//! Write `seq` (1, 2, 3, ...) goes to slot `(seq - 1) % (len / bs)`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"FERRYWR1";
const HEADER_LEN: usize = 40;
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How many console lines that are not acks a [`SerialLog`] keeps, so a
/// failed wait can show what the guest said (boot errors, panics).
const KEPT_LINES: usize = 40;

/// The kernel and initramfs `scripts/build-guest` made.
#[derive(Debug, Clone)]
pub struct GuestArtifacts {
    /// Debian's cloud kernel.
    pub kernel: PathBuf,
    /// The initramfs with busybox, the virtio modules and the writer.
    pub initrd: PathBuf,
}

/// Finds the guest where everything else looks for it
/// ([`ferry_qemu::guest_dir`]: `FERRY_GUEST_DIR`, else the test binary's
/// `<target>/ferry-guest`, where `scripts/build-guest` puts it).
///
/// Panics when it is not built, since no test that needs a guest can run.
pub fn artifacts() -> GuestArtifacts {
    let dir = ferry_qemu::guest_dir();
    let found = GuestArtifacts {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
    };
    assert!(
        found.kernel.is_file() && found.initrd.is_file(),
        "no test guest in {}: run scripts/build-guest first",
        dir.display()
    );
    found
}

impl GuestArtifacts {
    /// The guest's part of a QEMU command line: kernel, initramfs, the
    /// writer's settings and the serial console into `serial_log`. The
    /// caller adds the machine, the accelerator and the disk, which each test
    /// chooses (the disk must be the VM's first virtio-blk device).
    pub fn qemu_args(&self, cfg: &WriterConfig, serial_log: &Path) -> Vec<OsString> {
        let mut serial = OsString::from("file:");
        serial.push(serial_log);
        vec![
            "-kernel".into(),
            self.kernel.clone().into(),
            "-initrd".into(),
            self.initrd.clone().into(),
            "-append".into(),
            cfg.kernel_cmdline().into(),
            "-serial".into(),
            serial,
        ]
    }
}

/// What the guest's writer does; it becomes the kernel command line, since
/// the guest has no other channel from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Start of the region the writer owns; the rest of the disk is never
    /// written, so tests can keep other data there. A multiple of `bs`.
    pub offset: u64,
    /// Length of that region, a non-zero multiple of `bs`. A small region
    /// makes the writer overwrite its blocks over and over.
    pub len: u64,
    /// Block size of each write, a multiple of 512 (`O_DIRECT`).
    pub bs: u64,
    /// Ties blocks to one run, so blocks left by another run do not pass.
    pub seed: u64,
    /// Writes per second, 0 for as fast as the disk acknowledges them.
    pub rate: u64,
    /// Writes in bursts: `busy_ms` of writing, then `quiet_ms` of rest, and
    /// again (both 0: never rests). The rests are left out of the acks'
    /// `t_start_us`, so [`max_stall`] sees only time the writer wanted to
    /// write.
    pub duty: Option<Duty>,
}

/// A writer's bursts: what a guest whose I/O comes and goes looks like
/// (a database's checkpoints, a build's link steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duty {
    /// How long each burst of writing lasts, in ms (above 0).
    pub busy_ms: u64,
    /// How long each rest after it lasts, in ms (above 0).
    pub quiet_ms: u64,
}

impl WriterConfig {
    /// A writer owning `len` bytes at `offset`, 4 KiB blocks, as fast as it
    /// can, with a fresh seed.
    pub fn new(offset: u64, len: u64) -> Self {
        let seed = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .expect("8 bytes of a UUID"),
        );
        WriterConfig {
            offset,
            len,
            bs: 4096,
            seed,
            rate: 0,
            duty: None,
        }
    }

    /// The whole `-append` string: the console on the serial port, a quiet
    /// boot so the console carries little else, and a panic that ends the VM
    /// (with `-no-reboot`) instead of hanging a test.
    pub fn kernel_cmdline(&self) -> String {
        let mut line = format!(
            "console=ttyS0 quiet panic=-1 ferry.dev=/dev/vda ferry.offset={} ferry.len={} \
             ferry.bs={} ferry.seed={} ferry.rate={}",
            self.offset, self.len, self.bs, self.seed, self.rate
        );
        if let Some(d) = self.duty {
            line.push_str(&format!(
                " ferry.busy_ms={} ferry.quiet_ms={}",
                d.busy_ms, d.quiet_ms
            ));
        }
        line
    }

    /// How many blocks the region holds.
    pub fn slots(&self) -> u64 {
        self.len / self.bs
    }

    /// Where write `seq` (from 1) lands on the disk.
    pub fn offset_of(&self, seq: u64) -> u64 {
        self.offset + ((seq - 1) % self.slots()) * self.bs
    }

    /// The exact bytes of write `seq`, as the guest's writer makes them.
    pub fn block(&self, seq: u64) -> Vec<u8> {
        let bs = usize::try_from(self.bs).expect("block size fits in memory");
        let offset = self.offset_of(seq);
        let mut b = vec![0u8; bs];
        b[..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&seq.to_le_bytes());
        b[16..24].copy_from_slice(&offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.seed.to_le_bytes());
        let mut state = self.seed
            ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ offset.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        for chunk in b[HEADER_LEN..].chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        let sum = checksum(&b);
        b[32..40].copy_from_slice(&sum.to_le_bytes());
        b
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The checksum a block carries: over everything but the checksum field.
fn checksum(block: &[u8]) -> u64 {
    fnv1a(
        fnv1a(0xcbf2_9ce4_8422_2325, &block[..32]),
        &block[HEADER_LEN..],
    )
}

fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// One write the guest saw acknowledged by its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The write's number, from 1.
    pub seq: u64,
    /// Where on the disk it went.
    pub offset: u64,
    /// When the write started, in microseconds since the writer started
    /// (guest `CLOCK_MONOTONIC`, so unaffected by host scheduling of the log).
    pub t_start_us: u64,
    /// How long `pwrite` plus `fdatasync` took.
    pub latency_us: u64,
}

/// A write the guest's disk failed (`seq` > 0; the writer retries it), or a
/// guest setup failure (`seq` 0; the guest gives up and powers off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestError {
    /// The write that failed, or 0 for setup.
    pub seq: u64,
    /// The guest's message (`strerror` text for I/O errors).
    pub text: String,
}

/// What the writer announced before its first write, to check the guest
/// runs with the configuration the test meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The block device written.
    pub dev: String,
    /// Start of the written region.
    pub offset: u64,
    /// Length of the written region.
    pub len: u64,
    /// Block size.
    pub bs: u64,
    /// Seed.
    pub seed: u64,
}

/// Follows the guest's serial console, written by QEMU into a plain file
/// (`-serial file:PATH`), and keeps everything the writer reported.
///
/// Lines are found wherever they start in a console line, since firmware
/// escape sequences and kernel messages may precede them; an incomplete last
/// line is kept until its end arrives.
#[derive(Debug)]
pub struct SerialLog {
    path: PathBuf,
    file: Option<File>,
    partial: Vec<u8>,
    ready: Option<Ready>,
    acks: Vec<Ack>,
    errors: Vec<GuestError>,
    garbled: Vec<String>,
    other: Vec<String>,
    panicked: bool,
}

impl SerialLog {
    /// Follows `path`, which need not exist yet (QEMU creates it on start).
    /// Use one per VM start: QEMU truncates the file when it starts, which
    /// a log already past that point would not notice.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SerialLog {
            path: path.into(),
            file: None,
            partial: Vec::new(),
            ready: None,
            acks: Vec::new(),
            errors: Vec::new(),
            garbled: Vec::new(),
            other: Vec::new(),
            panicked: false,
        }
    }

    /// Reads what the console printed since the last call; returns the new
    /// acks (all of them stay in [`SerialLog::acks`]).
    pub fn poll(&mut self) -> Vec<Ack> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
                Err(e) => panic!("open serial log {}: {e}", self.path.display()),
            }
        }
        let mut fresh = Vec::new();
        if let Some(f) = self.file.as_mut() {
            f.read_to_end(&mut fresh)
                .unwrap_or_else(|e| panic!("read serial log {}: {e}", self.path.display()));
        }
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        let before = self.acks.len();
        for line in complete.split(|&b| b == b'\n') {
            self.take_line(&String::from_utf8_lossy(line));
        }
        self.acks[before..].to_vec()
    }

    fn take_line(&mut self, raw: &str) {
        let line = raw.trim_end_matches('\r');
        let Some(at) = line.find("FERRY-") else {
            if line.contains("Kernel panic") {
                self.panicked = true;
            }
            if !line.trim().is_empty() {
                if self.other.len() == KEPT_LINES {
                    self.other.remove(0);
                }
                self.other.push(line.to_string());
            }
            return;
        };
        let msg = &line[at..];
        if parse_line(msg, self).is_none() {
            self.garbled.push(msg.to_string());
        }
    }

    /// Every ack seen so far, in the order printed.
    pub fn acks(&self) -> &[Ack] {
        &self.acks
    }

    /// Every `FERRY-ERR` seen so far.
    pub fn errors(&self) -> &[GuestError] {
        &self.errors
    }

    /// `FERRY-` lines that did not parse (a kernel message cut into one
    /// would do that); an ack among them is missing from [`SerialLog::acks`].
    pub fn garbled(&self) -> &[String] {
        &self.garbled
    }

    /// The writer's announcement, once it came.
    pub fn ready(&self) -> Option<&Ready> {
        self.ready.as_ref()
    }

    /// Waits until the writer announced itself, at most `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Ready, String> {
        self.wait_until(timeout, "the writer's FERRY-READY", |log| {
            log.ready.is_some()
        })?;
        Ok(self.ready.clone().expect("ready was just seen"))
    }

    /// Waits until at least `n` acks in total arrived, at most `timeout`.
    pub fn wait_for_acks(&mut self, n: usize, timeout: Duration) -> Result<(), String> {
        self.wait_until(timeout, &format!("{n} acks"), |log| log.acks.len() >= n)
    }

    /// Polls until `done` holds, giving up at `timeout` or as soon as the
    /// guest can no longer make progress (it panicked or its setup failed),
    /// with what the console said in the error.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&SerialLog) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            if done(self) {
                return Ok(());
            }
            let dead = self.panicked || self.errors.iter().any(|e| e.seq == 0);
            if dead || Instant::now() >= deadline {
                return Err(format!(
                    "{} waiting for {what} ({} acks so far, errors {:?}); console:\n{}",
                    if dead { "guest stopped" } else { "timed out" },
                    self.acks.len(),
                    self.errors,
                    self.other.join("\n")
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Parses one `FERRY-` message into `log`; `None` when malformed.
fn parse_line(msg: &str, log: &mut SerialLog) -> Option<()> {
    let mut words = msg.split_whitespace();
    let num = |w: Option<&str>| w.and_then(|w| w.parse::<u64>().ok());
    match words.next()? {
        "FERRY-ACK" => {
            let ack = Ack {
                seq: num(words.next())?,
                offset: num(words.next())?,
                t_start_us: num(words.next())?,
                latency_us: num(words.next())?,
            };
            if words.next().is_some() {
                return None;
            }
            log.acks.push(ack);
        }
        "FERRY-ERR" => {
            let seq = num(words.next())?;
            let text = words.collect::<Vec<_>>().join(" ");
            log.errors.push(GuestError { seq, text });
        }
        "FERRY-READY" => {
            let ready = Ready {
                dev: words.next()?.to_string(),
                offset: num(words.next())?,
                len: num(words.next())?,
                bs: num(words.next())?,
                seed: num(words.next())?,
            };
            log.ready = Some(ready);
        }
        _ => return None,
    }
    Some(())
}

/// The longest the guest's writer was held up among the acks with `seq` in
/// `from_seq..=to_seq`: the longest single write (`pwrite` + `fdatasync`),
/// or the longest time from the end of one acknowledged write to the start
/// of the next. A disk switch that pauses I/O shows up as the first; failed
/// writes (retried after 100 ms) as the second.
///
/// The gaps also hold the writer's own console print and, with a `rate`,
/// its deliberate pacing, so compare stalls only against a baseline of the
/// same configuration. Zero when fewer than one ack is in range.
pub fn max_stall(acks: &[Ack], from_seq: u64, to_seq: u64) -> Duration {
    let mut in_range: Vec<&Ack> = acks
        .iter()
        .filter(|a| (from_seq..=to_seq).contains(&a.seq))
        .collect();
    in_range.sort_by_key(|a| a.seq);
    let longest_write = in_range.iter().map(|a| a.latency_us).max().unwrap_or(0);
    let longest_gap = in_range
        .windows(2)
        .map(|w| {
            w[1].t_start_us
                .saturating_sub(w[0].t_start_us + w[0].latency_us)
        })
        .max()
        .unwrap_or(0);
    Duration::from_micros(longest_write.max(longest_gap))
}

/// What [`verify_acked_writes`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteCheck {
    /// Slots holding an acknowledged write, each found intact.
    pub slots_checked: u64,
    /// The highest seq acknowledged on the console.
    pub max_acked_seq: u64,
    /// The highest seq of a valid block on the disk: one more than
    /// `max_acked_seq` when the VM stopped between a write and its ack.
    pub max_seq_on_disk: u64,
}

/// Checks that every write the guest saw acknowledged is on the disk:
/// for each slot of the region, the block of the highest acked seq for that
/// slot, or a later one (written but not yet reported when the VM stopped),
/// byte for byte. `disk_content` is a raw file of what the guest sees, such
/// as [`guest_visible_raw`] makes.
///
/// Slots never acknowledged are not checked; they may be zeros or hold a
/// write that was never reported. The acks themselves must fit `cfg`, so a
/// log from another run is refused instead of checked against the wrong
/// blocks.
pub fn verify_acked_writes(
    disk_content: &Path,
    cfg: &WriterConfig,
    acks: &[Ack],
) -> Result<WriteCheck, String> {
    if cfg.bs < HEADER_LEN as u64 || cfg.bs % 8 != 0 || cfg.len % cfg.bs != 0 || cfg.len == 0 {
        return Err(format!("{cfg:?} is not a configuration the writer accepts"));
    }
    let slots = cfg.slots();
    let slot_count = usize::try_from(slots).map_err(|_| "too many slots".to_string())?;
    let mut latest: Vec<u64> = vec![0; slot_count];
    for a in acks {
        if a.seq == 0 || a.offset != cfg.offset_of(a.seq) {
            return Err(format!(
                "ack {a:?} does not fit the writer's configuration {cfg:?}"
            ));
        }
        let slot = usize::try_from((a.seq - 1) % slots).expect("slot index below slot count");
        latest[slot] = latest[slot].max(a.seq);
    }

    let mut region = vec![0u8; usize::try_from(cfg.len).map_err(|_| "region too large")?];
    let mut f =
        File::open(disk_content).map_err(|e| format!("open {}: {e}", disk_content.display()))?;
    f.seek(SeekFrom::Start(cfg.offset))
        .and_then(|_| f.read_exact(&mut region))
        .map_err(|e| {
            format!(
                "read the writer's region {}+{} of {}: {e}",
                cfg.offset,
                cfg.len,
                disk_content.display()
            )
        })?;

    let bs = usize::try_from(cfg.bs).map_err(|_| "block size too large")?;
    let mut problems = Vec::new();
    let mut check = WriteCheck {
        slots_checked: 0,
        max_acked_seq: latest.iter().copied().max().unwrap_or(0),
        max_seq_on_disk: 0,
    };
    for (slot, (block, &acked)) in region.chunks_exact(bs).zip(&latest).enumerate() {
        let offset = cfg.offset + cfg.bs * u64::try_from(slot).expect("slot fits in u64");
        let found = match read_block(cfg, block) {
            Ok(seq) => {
                check.max_seq_on_disk = check.max_seq_on_disk.max(seq);
                Ok(seq)
            }
            Err(e) => Err(e),
        };
        if acked == 0 {
            continue;
        }
        check.slots_checked += 1;
        match found {
            Ok(seq) if seq >= acked => {}
            Ok(seq) => problems.push(format!(
                "slot at {offset}: acked seq {acked}, the disk has older seq {seq}"
            )),
            Err(e) => problems.push(format!("slot at {offset}: acked seq {acked}, {e}")),
        }
    }
    if problems.is_empty() {
        Ok(check)
    } else {
        Err(format!(
            "{} of {} acknowledged blocks are not on the disk: {}",
            problems.len(),
            check.slots_checked,
            problems
                .iter()
                .take(8)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ))
    }
}

/// The seq of a valid block of this run at this place, or why it is not one.
fn read_block(cfg: &WriterConfig, block: &[u8]) -> Result<u64, String> {
    if block.iter().all(|&b| b == 0) {
        return Err("the disk has zeros".into());
    }
    if &block[..8] != MAGIC {
        return Err(format!(
            "the disk has no block header (starts {:02x?})",
            &block[..8]
        ));
    }
    let seq = le_u64(&block[8..]);
    if checksum(block) != le_u64(&block[32..]) {
        return Err(format!("block seq {seq} has a bad checksum"));
    }
    if le_u64(&block[24..]) != cfg.seed {
        return Err(format!(
            "block seq {seq} is from another run (seed {})",
            le_u64(&block[24..])
        ));
    }
    if seq == 0 || block != cfg.block(seq).as_slice() {
        return Err(format!(
            "block seq {seq} is not the one the writer made for that place"
        ));
    }
    Ok(seq)
}

/// Writes the guest-visible content of the image at `leaf` (through its
/// whole chain, any format) to the raw file `dest`, for disks too big to
/// hold in memory as [`crate::guest_content_of`] does.
pub fn guest_visible_raw(leaf: &Path, dest: &Path) {
    let out = Command::new("qemu-img")
        .args(["convert", "-U", "-O", "raw"])
        .arg(leaf)
        .arg(dest)
        .output()
        .expect("run qemu-img convert");
    assert!(
        out.status.success(),
        "qemu-img convert {} {} failed: {}",
        leaf.display(),
        dest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cfg() -> WriterConfig {
        WriterConfig {
            offset: 8192,
            len: 4 * 4096,
            bs: 4096,
            seed: 42,
            rate: 0,
            duty: None,
        }
    }

    fn ack(cfg: &WriterConfig, seq: u64, t_start_us: u64, latency_us: u64) -> Ack {
        Ack {
            seq,
            offset: cfg.offset_of(seq),
            t_start_us,
            latency_us,
        }
    }

    /// A disk of 8 KiB of 0xee, the region with writes 1..=last, 8 KiB of 0xee.
    fn disk_with(cfg: &WriterConfig, last: u64) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let mut disk = vec![0xee; 8192];
        disk.resize(8192 + 4 * 4096, 0);
        for seq in 1..=last {
            let at = usize::try_from(cfg.offset_of(seq)).expect("small");
            disk[at..at + 4096].copy_from_slice(&cfg.block(seq));
        }
        disk.extend_from_slice(&[0xee; 8192]);
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("disk.raw");
        std::fs::write(&path, &disk).expect("write disk");
        (dir, path, disk)
    }

    #[test]
    fn blocks_carry_their_header_and_checksum() {
        let c = cfg();
        let b = c.block(6);
        assert_eq!(&b[..8], b"FERRYWR1");
        assert_eq!(le_u64(&b[8..]), 6);
        assert_eq!(le_u64(&b[16..]), 8192 + 4096);
        assert_eq!(le_u64(&b[24..]), 42);
        assert_eq!(le_u64(&b[32..]), checksum(&b));
        assert_ne!(c.block(6), c.block(2), "same slot, other seq");
    }

    #[test]
    fn all_acked_writes_present_pass_and_newer_blocks_are_allowed() {
        let c = cfg();
        let (_dir, path, _) = disk_with(&c, 10);
        let acks: Vec<Ack> = (1..=9).map(|s| ack(&c, s, s * 10, 5)).collect();
        let check = verify_acked_writes(&path, &c, &acks).expect("all there");
        assert_eq!(
            check,
            WriteCheck {
                slots_checked: 4,
                max_acked_seq: 9,
                max_seq_on_disk: 10
            }
        );
    }

    #[test]
    fn an_older_block_a_flipped_byte_or_zeros_fail() {
        let c = cfg();
        let acks: Vec<Ack> = (1..=10).map(|s| ack(&c, s, s * 10, 5)).collect();
        // Write 10 lost: its slot still has write 6.
        let (_dir, path, _) = disk_with(&c, 9);
        let err = verify_acked_writes(&path, &c, &acks).expect_err("write 10 lost");
        assert!(
            err.contains("acked seq 10, the disk has older seq 6"),
            "{err}"
        );

        let (_dir, path, mut disk) = disk_with(&c, 10);
        disk[8192 + 100] ^= 1;
        std::fs::write(&path, &disk).expect("write disk");
        let err = verify_acked_writes(&path, &c, &acks).expect_err("flipped byte");
        assert!(err.contains("bad checksum"), "{err}");

        disk[8192..8192 + 4096].fill(0);
        std::fs::write(&path, &disk).expect("write disk");
        let err = verify_acked_writes(&path, &c, &acks).expect_err("zeroed block");
        assert!(err.contains("zeros"), "{err}");
    }

    #[test]
    fn blocks_of_another_seed_and_foreign_acks_fail() {
        let c = cfg();
        let (_dir, path, _) = disk_with(&c, 4);
        let other = WriterConfig { seed: 43, ..c };
        let acks: Vec<Ack> = (1..=4).map(|s| ack(&other, s, s, 1)).collect();
        let err = verify_acked_writes(&path, &other, &acks).expect_err("other seed");
        assert!(err.contains("another run"), "{err}");
        let stray = Ack {
            offset: 0,
            ..ack(&c, 1, 0, 1)
        };
        let err = verify_acked_writes(&path, &c, &[stray]).expect_err("stray ack");
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn stalls_are_the_longest_write_or_gap_in_range() {
        let c = cfg();
        let acks = [
            ack(&c, 1, 0, 100),
            ack(&c, 2, 150, 100),
            ack(&c, 3, 1250, 100), // 1 ms gap before it
            ack(&c, 4, 1400, 3000),
            ack(&c, 5, 4500, 100),
        ];
        assert_eq!(max_stall(&acks, 1, 3), Duration::from_micros(1000));
        assert_eq!(max_stall(&acks, 3, 5), Duration::from_micros(3000));
        assert_eq!(max_stall(&acks, 1, 2), Duration::from_micros(100));
        assert_eq!(max_stall(&acks, 9, 9), Duration::ZERO);
    }

    #[test]
    fn serial_log_parses_across_partial_lines_and_noise() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("serial.log");
        let mut log = SerialLog::new(&path);
        assert!(log.poll().is_empty(), "no file yet");
        let mut f = File::create(&path).expect("create log");
        f.write_all(b"\x1bc\x1b[2JSeaBIOS\r\nBooting..\x1b[2JFERRY-READY /dev/vda 8192 16384 4096 42\r\nFERRY-ACK 1 8192 10 ")
            .expect("write");
        assert!(log.poll().is_empty(), "the ack line is not complete yet");
        assert_eq!(
            log.ready(),
            Some(&Ready {
                dev: "/dev/vda".into(),
                offset: 8192,
                len: 16384,
                bs: 4096,
                seed: 42
            })
        );
        f.write_all(
            b"5\r\nFERRY-ERR 2 Input/output error\r\nFERRY-ACK 2 8192\r\nFERRY-ACK 2 12288 200 7\n",
        )
        .expect("write");
        let new = log.poll();
        assert_eq!(
            new,
            vec![
                Ack {
                    seq: 1,
                    offset: 8192,
                    t_start_us: 10,
                    latency_us: 5
                },
                Ack {
                    seq: 2,
                    offset: 12288,
                    t_start_us: 200,
                    latency_us: 7
                },
            ]
        );
        assert_eq!(log.acks().len(), 2);
        assert_eq!(
            log.errors(),
            &[GuestError {
                seq: 2,
                text: "Input/output error".into()
            }]
        );
        assert_eq!(log.garbled(), &["FERRY-ACK 2 8192".to_string()]);
        log.wait_for_acks(2, Duration::ZERO).expect("two acks seen");
        let err = log
            .wait_for_acks(3, Duration::from_millis(50))
            .expect_err("no third ack");
        assert!(
            err.contains("timed out") && err.contains("SeaBIOS"),
            "{err}"
        );

        f.write_all(b"FERRY-ERR 0 /dev/vda did not appear within 30 s\n")
            .expect("write");
        let started = Instant::now();
        let err = log
            .wait_for_acks(3, Duration::from_secs(60))
            .expect_err("the guest gave up");
        assert!(err.contains("guest stopped"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "gave up at once"
        );
    }
}
