//! The fault matrix: a fault at every step of a live move, and what the
//! move comes to.
//!
//! Given an engine, two agents and a running VM whose disk has a chain of
//! three volumes holding data, with the guest writing the whole time, for
//! each fault below and each step of the flow (the move held there by the
//! engine's `FERRY_TEST_HOLD_STEP` hook, the disk going back and forth
//! between the domains, one move per step):
//!
//! - the VM's agent killed (SIGKILL) and started again;
//! - the VM's agent frozen (SIGSTOP) while the engine carries on, until
//!   the engine sees its host down, then let go (SIGCONT);
//! - the VM stopped and started again through the API;
//! - the VM's QEMU killed (SIGKILL), the VM started again once the job
//!   has ended;
//! - both agents frozen (SIGSTOP) for good, under an engine whose
//!   `--unreachable-timeout` is 4 s: the job must end failed, retryable,
//!   its disk still locked, within a bound; then the agents are let go and
//!   `ferry job retry` finishes it (past the switch) or finishes its
//!   rollback (before), after which a new move succeeds;
//!
//! then the engine carries on (restarted without the hook) and the job
//! ends succeeded (a VM killed before the switch makes it finish cold),
//! the disk is where the move put it, unlocked, with nothing of it left on
//! the other domain, the VM runs, and every write the guest saw
//! acknowledged is on the disk, read through the VM's chain. The engine killed at each step is `move_resume.rs`; its row
//! and these are printed together in docs/testing.md. Each row is one
//! test, so two run at once at most (the suite's threads) and a cell
//! shares its cluster and guest with the other cells of its row.

mod common;

use common::*;
use ferry_api::engine::{Disk, HostStatus, Job, JobState, MoveMode, Vm, VmState};

use ferry_testkit::guest::{self, Ack, SerialLog, WriterConfig};

/// A fault the matrix injects while a move is held at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The VM's agent killed with SIGKILL and started again.
    AgentKilled,
    /// The VM's agent frozen while the step runs, until its host is seen
    /// down, then let go.
    AgentFrozen,
    /// The VM stopped (at once) and started again through the API.
    VmRestarted,
    /// The VM's QEMU killed; the VM started again after the job.
    QemuKilled,
    /// Both agents frozen until the job has given up on them, then let go
    /// and the job retried.
    AgentsUnreachable,
}

/// The engine's bound for an agent that does not answer, in this row.
const UNREACHABLE_SECS: &str = "4";

/// How long a job may take to give up on agents that do not answer: the
/// bound for the step, the same for its rollback, each with a request's
/// deadline (capped by the bound) and back-off on top.
const GIVE_UP_WITHIN: std::time::Duration = std::time::Duration::from_secs(45);

/// One row: the fault at every step in turn, under one cluster.
async fn row(fault: Fault) {
    let mut cluster = Cluster::start_with(&[(HOLD, LIVE_STEPS[0])]).await;
    let Writing {
        before,
        vm,
        mut log,
        cfg,
        ..
    } = cluster.writing_vm().await;

    let (mut here, mut there) = ("domain1", "domain2");
    for (i, step) in LIVE_STEPS.iter().enumerate() {
        if i > 0 {
            cluster.hold_engine_at(step).await;
        }
        let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", there]);
        assert!(ok, "{fault:?} at {step}: {job:#?}");
        assert_eq!(job.mode, MoveMode::Live);
        cluster.wait_step_running(job.id, step).await;
        more_acks(&mut log, 5);

        match fault {
            Fault::AgentKilled => cluster.host2.restart(FERRY).await,
            Fault::AgentFrozen | Fault::AgentsUnreachable => {}
            Fault::VmRestarted => log = restart_vm(&cluster, &vm, &cfg, &log, step).await,
            Fault::QemuKilled => kill_qemu(&cluster, &vm).await,
        }

        let job = match fault {
            Fault::AgentFrozen => {
                // The step runs while the VM's host does not answer.
                cluster.host2.pause();
                cluster.restart_engine(&[]).await;
                wait_host(&cluster, "host2", HostStatus::Down).await;
                cluster.host2.resume();
                wait_host(&cluster, "host2", HostStatus::Up).await;
                cluster.wait_end(job.id).await
            }
            Fault::AgentsUnreachable => give_up_then_retry(&mut cluster, &job, i, there).await,
            _ => {
                cluster.restart_engine(&[]).await;
                cluster.wait_end(job.id).await
            }
        };
        if fault == Fault::QemuKilled {
            log = start_after_kill(&cluster, &cfg, &log, step).await;
        }
        assert_eq!(
            job.state,
            JobState::Succeeded,
            "{fault:?} at {step}: {job:#?}"
        );
        // A VM killed before the switch makes the move finish cold (its
        // new leaf folded back first); every other cell stays live.
        let cold = fault == Fault::QemuKilled && i < 2;
        assert_eq!(
            job.mode,
            if cold { MoveMode::Cold } else { MoveMode::Live },
            "{fault:?} at {step}: {job:#?}"
        );
        let now = cluster.disk_now("disk1").await;
        assert_eq!(
            now.domain,
            cluster.domain(there).await.id,
            "{fault:?} at {step}"
        );
        assert!(now.locked_by.is_none(), "{fault:?} at {step}: {now:#?}");
        let left = cluster.files_of_disk_on(here, &now).await;
        assert!(
            left.is_empty(),
            "{fault:?} at {step}: left on {here}: {left:#?}"
        );
        cluster.assert_no_task_running().await;
        cluster.assert_vm_writing("vm1", &mut log).await;
        std::mem::swap(&mut here, &mut there);
    }

    // Every write of the guest's last boot is on the disk, with the layers
    // under the leaf as they were.
    cluster.stop_now();
    let after = cluster.disk_now("disk1").await;
    cluster.assert_all_layers(&before, &after, &cfg, log.acks());
}

/// Stops the VM at once and starts it again through the API, after
/// checking that the chain the VM then opens holds every write its
/// previous boot saw acknowledged; returns the new boot's console.
async fn restart_vm(
    cluster: &Cluster,
    vm: &Vm,
    cfg: &WriterConfig,
    log: &SerialLog,
    step: &str,
) -> SerialLog {
    let previous: Vec<Ack> = log.acks().to_vec();
    cluster.stop_now();
    let (ok, started): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok, "VM restart at {step}: {started:#?}");
    assert_eq!(started.state, VmState::Running);
    // Read the chain the new QEMU opened before its guest has booted far
    // enough to write (about three seconds under TCG); the slots the new
    // boot has reached by the end of the read are left out.
    let status = cluster.host2.client().vm(vm.id).await.expect("VM status");
    let top = status.disks[0].open_chain.first().expect("an open chain");
    let path = volume_path(cluster, top.domain, top.volume).await;
    let content = cluster.lab.root().join(format!("boot-{step}.raw"));
    guest::guest_visible_raw(&path, &content);
    let mut next = cluster.serial_log(vm.id).await;
    next.poll();
    let reached = next.acks().iter().map(|a| a.seq).max().unwrap_or(0) + 1;
    let kept: Vec<Ack> = previous
        .into_iter()
        .filter(|a| (a.seq - 1) % cfg.slots() >= reached)
        .collect();
    let check = guest::verify_acked_writes(&content, cfg, &kept).unwrap_or_else(|e| {
        panic!("VM restarted at {step} opened a chain without its writes: {e}")
    });
    assert!(check.slots_checked > 0, "nothing checked at {step}");
    let _ = std::fs::remove_file(&content);
    next.wait_ready(WAIT).expect("the guest writes again");
    next
}

/// Freezes both agents while job `job` is held at step `i`, and restarts
/// the engine with a short bound for agents that do not answer: the job
/// must give up within [`GIVE_UP_WITHIN`], failed and retryable, its disk
/// still locked. Then the agents are let go and the job retried: past the
/// switch it completes; before it, its rollback completes (the disk back
/// where it was, unlocked) and a new move is made. Returns the job that
/// moved the disk to `there`.
async fn give_up_then_retry(cluster: &mut Cluster, job: &Job, i: usize, there: &str) -> Job {
    let step = LIVE_STEPS[i];
    cluster.host1.pause();
    cluster.host2.pause();
    let started = std::time::Instant::now();
    cluster
        .restart_engine(&[("FERRY_UNREACHABLE_TIMEOUT", UNREACHABLE_SECS)])
        .await;
    let failed = cluster.wait_end(job.id).await;
    let took = started.elapsed();
    assert_eq!(failed.state, JobState::Failed, "at {step}: {failed:#?}");
    assert!(failed.retryable, "at {step}: {failed:#?}");
    assert!(
        took < GIVE_UP_WITHIN,
        "at {step} the job took {took:?} to give up on agents that do not answer"
    );
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("got no answer"), "at {step}: {error}");
    assert!(error.contains("ferry job retry"), "at {step}: {error}");
    let held = cluster.disk_now("disk1").await;
    assert_eq!(held.locked_by, Some(job.id), "at {step}: {held:#?}");

    cluster.host1.resume();
    cluster.host2.resume();
    wait_host(cluster, "host1", HostStatus::Up).await;
    wait_host(cluster, "host2", HostStatus::Up).await;
    let id = job.id.to_string();
    let (ok, retried): (bool, Job) = cluster.cli_json(&["job", "retry", &id]);
    assert!(ok, "retry at {step}: {retried:#?}");
    let retried = cluster.wait_end(job.id).await;
    if i >= 3 {
        // Past the switch: the retry carries the move to its end.
        return retried;
    }
    // Before it: the retry finished the rollback.
    assert_eq!(retried.state, JobState::Failed, "at {step}: {retried:#?}");
    assert!(!retried.retryable, "at {step}: {retried:#?}");
    let back = cluster.disk_now("disk1").await;
    assert!(back.locked_by.is_none(), "at {step}: {back:#?}");
    assert_ne!(back.domain, cluster.domain(there).await.id, "at {step}");
    let left = cluster.files_of_disk_on(there, &back).await;
    assert!(left.is_empty(), "at {step}: left on {there}: {left:#?}");
    let (ok, again): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", there]);
    assert!(ok, "a new move after the rollback at {step}: {again:#?}");
    cluster.wait_end(again.id).await
}

/// Waits until the engine reports host `name` in `status`.
async fn wait_host(cluster: &Cluster, name: &str, status: HostStatus) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let h = cluster.client().host(name).await.expect("the host");
        if h.status == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never became {status:?}: {h:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Kills the VM's QEMU with SIGKILL and waits until its agent sees it
/// stopped.
async fn kill_qemu(cluster: &Cluster, vm: &Vm) {
    let status = cluster.host2.client().vm(vm.id).await.expect("VM status");
    let pid = status.pid.expect("a running QEMU");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + WAIT;
    while cluster
        .host2
        .client()
        .vm(vm.id)
        .await
        .expect("VM status")
        .state
        != ferry_api::vm::VmState::Stopped
    {
        assert!(std::time::Instant::now() < deadline, "QEMU did not die");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// After a job whose VM was killed: the disk's chain holds every write
/// the killed boot saw acknowledged, and the VM starts again on it;
/// returns the new boot's console.
async fn start_after_kill(
    cluster: &Cluster,
    cfg: &WriterConfig,
    log: &SerialLog,
    step: &str,
) -> SerialLog {
    let now = cluster.disk_now("disk1").await;
    let leaf = cluster.save_layers(
        &Disk {
            volumes: vec![now.volumes.last().expect("a leaf").clone()],
            ..now.clone()
        },
        "after-kill",
    );
    let check = guest::verify_acked_writes(&leaf[0], cfg, log.acks())
        .unwrap_or_else(|e| panic!("QEMU killed at {step}: writes lost: {e}"));
    assert!(check.slots_checked > 0);
    let _ = std::fs::remove_file(&leaf[0]);
    let (ok, vm): (bool, Vm) = cluster.cli_json(&["vm", "start", "vm1"]);
    assert!(ok, "VM start after QEMU killed at {step}: {vm:#?}");
    let mut next = cluster.serial_log(vm.id).await;
    next.wait_ready(WAIT).expect("the guest writes again");
    next
}

/// The file of `volume` on `domain` (from the SPM's listing).
async fn volume_path(
    cluster: &Cluster,
    domain: uuid::Uuid,
    volume: uuid::Uuid,
) -> std::path::PathBuf {
    let disk: Disk = cluster.disk_now("disk1").await;
    let volumes = cluster
        .host1
        .client()
        .image_volumes(domain, disk.id)
        .await
        .expect("the image's volumes");
    volumes
        .into_iter()
        .find(|v| v.volume == volume)
        .map(|v| v.path)
        .unwrap_or_else(|| panic!("volume {volume} is not on domain {domain}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vms_agent_killed_at_each_step_of_a_live_move() {
    row(Fault::AgentKilled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vms_agent_frozen_at_each_step_of_a_live_move() {
    row(Fault::AgentFrozen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vm_restarted_at_each_step_of_a_live_move() {
    row(Fault::VmRestarted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vms_qemu_killed_at_each_step_of_a_live_move() {
    row(Fault::QemuKilled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_agents_unreachable_at_each_step_of_a_live_move() {
    row(Fault::AgentsUnreachable).await;
}

/// The rollback fails once: the VM's QEMU is killed while the rollback of
/// a cancelled live move is about to fold the new leaf back (held there
/// by the agent's `FERRY_TEST_AGENT_HOLD_IN` hook). The rollback runs
/// again (offline now) and the job still ends rolled back: the disk on
/// the source, unlocked, nothing on the destination, every acknowledged
/// write in the source chain, and the VM starts again on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_killed_during_the_rollback_still_ends_rolled_back() {
    let mut cluster = Cluster::start().await;
    let Writing {
        before,
        vm,
        mut log,
        cfg,
        ..
    } = cluster.writing_vm().await;
    cluster
        .host2
        .restart_with_env(FERRY, &[("FERRY_TEST_AGENT_HOLD_IN", "rollback-commit")])
        .await;
    cluster.hold_engine_at("cloneInternalVolumes").await;
    let (ok, job): (bool, Job) = cluster.cli_json(&["disk", "move", "disk1", "--to", "domain2"]);
    assert!(ok, "{job:#?}");
    cluster
        .wait_step_running(job.id, "cloneInternalVolumes")
        .await;
    more_acks(&mut log, 5);
    let id = job.id.to_string();
    let (ok, _): (bool, Job) = cluster.cli_json(&["job", "cancel", &id]);
    assert!(ok);

    // The rollback's task is held on host2: QEMU dies under it.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let tasks = cluster.host2.client().tasks().await.expect("tasks");
        if tasks.iter().any(|t| {
            t.verb == "rollback-block-migrate" && t.state == ferry_api::agent::TaskState::Running
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rollback ran: {tasks:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
    kill_qemu(&cluster, &vm).await;

    let job = cluster.wait_end(job.id).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    // The first attempt failed under the dead QEMU, the next one ended
    // the job; the agent forgot both tasks.
    let log_text = cluster.engine.log();
    assert!(
        log_text.contains("rollback failed, trying again"),
        "the rollback never failed:\n{}",
        tail(&log_text)
    );
    let tasks = cluster.host2.client().tasks().await.expect("tasks");
    assert!(
        tasks.iter().all(|t| t.verb != "rollback-block-migrate"),
        "{tasks:#?}"
    );
    let now = cluster.disk_now("disk1").await;
    assert_eq!(now.domain, cluster.domain("domain1").await.id, "{now:#?}");
    assert!(now.locked_by.is_none(), "{now:#?}");
    let left = cluster.files_of_disk_on("domain2", &now).await;
    assert!(left.is_empty(), "left on domain2: {left:#?}");

    let mut log = start_after_kill(&cluster, &cfg, &log, "the rollback").await;
    let status = cluster.host2.client().vm(vm.id).await.expect("VM status");
    let top = status.disks[0].open_chain.first().expect("an open chain");
    assert_eq!(top.domain, now.domain, "{status:#?}");
    cluster.assert_vm_writing("vm1", &mut log).await;
    cluster.stop_now();
    log.poll();
    let after = cluster.disk_now("disk1").await;
    cluster.assert_all_layers(&before, &after, &cfg, log.acks());
}
