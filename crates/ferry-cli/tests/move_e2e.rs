//! The mission end to end, through the `ferry` CLI: given an engine and two
//! agents on one machine (SPM on host1, the VM on host2) and a VM whose two
//! disks have chains holding data, with the guest writing during the whole
//! move, when `ferry vm move` moves it to domain2, then every layer reads
//! as before, every acknowledged write is there, nothing is left on
//! domain1 (the agents keep no record of the move's tasks either), and
//! the VM starts again from domain2 alone.

mod common;

use common::*;
use ferry_api::engine::{Disk, Job, JobState, MoveMode, StepState, Vm, VmState};
use ferry_api::VolumeFormat;
use ferry_testkit::guest::{self, verify_acked_writes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vm_with_two_disks_moves_to_domain2_through_the_cli() {
    let cluster = Cluster::start().await;
    let c = cluster.client();
    let a = cluster.disk("disk-a", VolumeFormat::Raw, 2).await;
    let b = cluster.disk("disk-b", VolumeFormat::Qcow2, 3).await;
    let writer = writer();
    cluster.vm("vm1", &["disk-a", "disk-b"], &writer).await;
    let before_a = layer_contents(&a);
    let before_b = layer_contents(&b);

    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok);
    assert_eq!(vm.state, VmState::Running);
    let mut log = cluster.serial_log(vm.id).await;
    log.wait_ready(WAIT).expect("guest writes");
    more_acks(&mut log, 20);

    // Someone follows the event log while the VM moves.
    let mut follower = EventFollower::start(&cluster);
    let (ok, job): (bool, Job) =
        cluster.cli_json(&["vm", "move", "vm1", "--to", "domain2", "--wait"]);
    assert!(ok, "{job:#?}");
    assert_job(&job, JobState::Succeeded);
    assert_eq!(job.mode, MoveMode::Live);
    assert_eq!(job.disks.len(), 2);
    for step in &job.steps {
        assert_eq!(step.state, StepState::Done, "{step:?}");
    }
    // Human output names things as the user named them.
    let shown = cluster.cli(&["job", "show", &job.id.to_string()]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("live VM move of disk-a, disk-b from domain1 to domain2 (VM vm1)"),
        "{shown}"
    );
    assert!(!shown.contains(&job.dst_domain.to_string()), "{shown}");
    // The follower saw the job start and succeed, in order, as it happened.
    let followed = follower.until(&format!("job {} succeeded", job.id));
    let started = followed
        .iter()
        .position(|e| e.message.contains(&format!("job {} started", job.id)));
    assert!(
        started.is_some_and(|s| s + 1 < followed.len()),
        "{followed:#?}"
    );
    assert!(
        followed.windows(2).all(|w| w[0].id < w[1].id),
        "oldest first, each once: {followed:#?}"
    );
    // The event log from the CLI: one job's story, oldest first, and a VM
    // found by its name; a name that is nothing is refused.
    let events = expect_success(
        &cluster.cli(&["event", "list", "--about", &job.id.to_string()]),
        "event list --about JOB",
    );
    let started = events.find(&format!("job {} started", job.id));
    let succeeded = events.find(&format!("job {} succeeded", job.id));
    assert!(
        matches!((started, succeeded), (Some(a), Some(b)) if a < b),
        "{events}"
    );
    let events = expect_success(
        &cluster.cli(&["event", "list", "--about", "vm1"]),
        "event list --about vm1",
    );
    assert!(events.contains("VM vm1 created on host"), "{events}");
    let (ok, listed): (bool, Vec<ferry_api::engine::Event>) =
        cluster.cli_json(&["event", "list", "--limit", "2"]);
    assert!(ok && listed.len() == 2, "{listed:#?}");
    let nothing = cluster.cli(&["event", "list", "--about", "no-such-thing"]);
    let said = String::from_utf8_lossy(&nothing.stderr);
    assert!(
        !nothing.status.success() && said.contains("\"no-such-thing\""),
        "{said}"
    );
    let listed = cluster.cli(&["job", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("disk-a,disk-b") && listed.contains("domain2"),
        "{listed}"
    );
    // The agents no longer keep the ended job's tasks (copies, merges).
    for agent in [&cluster.host1, &cluster.host2] {
        let tasks = agent.client().tasks().await.expect("list the tasks");
        assert!(
            tasks.is_empty(),
            "{} still keeps the move's tasks: {tasks:#?}",
            agent.name
        );
    }
    more_acks(&mut log, 20);

    // Same chain shapes, all on domain2.
    let d2 = c.domain("domain2").await.expect("domain2");
    let d1 = c.domain("domain1").await.expect("domain1");
    let (_, a2): (bool, Disk) = cluster.cli_json(&["disk", "show", "disk-a"]);
    let (_, b2): (bool, Disk) = cluster.cli_json(&["disk", "show", "disk-b"]);
    for (old, new) in [(&a, &a2), (&b, &b2)] {
        assert_eq!(new.domain, d2.id);
        assert_eq!(new.volumes.len(), old.volumes.len());
        for (o, n) in old.volumes.iter().zip(&new.volumes) {
            assert_eq!(o.id, n.id);
            assert_eq!(o.format, n.format);
            assert_eq!(n.domain, d2.id);
        }
        assert!(new.locked_by.is_none());
    }

    let out = cluster.cli(&["vm", "stop", "vm1", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    log.poll();

    // Every layer of disk-b reads as before; disk-a's base too, and its
    // leaf holds every acknowledged write on top of its old data.
    assert_eq!(layer_contents(&b2), before_b);
    let after_a = layer_contents(&a2);
    assert_eq!(after_a[0], before_a[0]);
    let raw = cluster.lab.root().join("a.raw");
    guest::guest_visible_raw(&a2.volumes[1].path, &raw);
    verify_acked_writes(&raw, &writer, log.acks()).expect("every acked write on domain2");
    let content = std::fs::read(&raw).expect("read");
    let first = usize::try_from(8 * MIB).expect("fits");
    assert_eq!(&content[..2 * first], &before_a[1][..2 * first]);

    // Nothing of either disk is left on domain1; the VM runs from domain2.
    for d in [&a, &b] {
        let dir = d1.path.join("images").join(d.id.to_string());
        assert_released(&dir, &format!("disk {} on domain1", d.name)).await;
    }
    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok);
    let mut second = cluster.serial_log(vm.id).await;
    second
        .wait_for_acks(20, WAIT)
        .expect("the VM writes again from domain2");
    let out = cluster.cli(&["vm", "stop", "vm1", "--force"]);
    assert!(out.status.success());
}

/// `ferry event list --follow --json --limit 1`, running, its lines read
/// on a thread as they come.
struct EventFollower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl EventFollower {
    fn start(cluster: &Cluster) -> Self {
        use std::io::BufRead;
        let mut child = cluster.cli_spawn(&["event", "list", "--follow", "--json", "--limit", "1"]);
        let stdout = child.stdout.take().expect("the follower's stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        EventFollower { child, lines }
    }

    /// The events printed up to the first whose message contains `what`
    /// (which comes last), then stops the follower; panics if none comes
    /// within [`WAIT`].
    fn until(&mut self, what: &str) -> Vec<ferry_api::engine::Event> {
        let deadline = std::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("the follower printed no {what:?} ({e}); it printed {seen:#?}");
                }
            };
            let event: ferry_api::engine::Event = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not an event per line ({e}): {line}"));
            let done = event.message.contains(what);
            seen.push(event);
            if done {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return seen;
            }
        }
    }
}

impl Drop for EventFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
