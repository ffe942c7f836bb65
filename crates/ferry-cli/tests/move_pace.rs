//! A live move paced by its guest: while the copy runs, the job shows the
//! copy's current limit (never above `--bandwidth`) and the guest's write
//! latency against its level without the copy and the share of its rate
//! it keeps against the share asked (`--guest-share`), the CLI says so,
//! the
//! agent's copy task carries the limit the engine set, and the move ends
//! with every acknowledged write on the disk.

mod common;

use common::*;
use ferry_api::engine::{Job, PaceMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_move_is_paced_by_its_guest_under_its_bandwidth() {
    let cluster = Cluster::start().await;
    let Writing {
        before,
        mut log,
        cfg,
        ..
    } = cluster.writing_vm().await;
    // 2 MiB/s: the 16 MiB chain takes seconds, long enough to be paced.
    let (ok, job): (bool, Job) = cluster.cli_json(&[
        "disk",
        "move",
        "disk1",
        "--to",
        "domain2",
        "--bandwidth",
        "2",
        "--guest-share",
        "90",
    ]);
    assert!(ok, "{job:#?}");
    assert_eq!(job.pace, PaceMode::Guest);
    assert_eq!(job.guest_share_pct, Some(90), "{job:#?}");
    let paced = cluster
        .wait_job_until(job.id, "the guest's latency shown", |j| {
            j.pacing && j.guest_latency_us.is_some() && j.pace_limit_bps.is_some()
        })
        .await;
    // The guest writes all the time: once its latency is read, what it
    // keeps is estimated too.
    assert!(paced.guest_kept_pct.is_some_and(|k| k <= 100), "{paced:#?}");
    let limit = paced.pace_limit_bps.expect("a limit");
    assert!(limit <= 2 << 20, "{paced:#?}");
    assert!(paced.guest_baseline_us.is_some(), "{paced:#?}");
    let shown = expect_success(
        &cluster.cli(&["job", "show", &job.id.to_string()]),
        "job show",
    );
    assert!(shown.contains("paced by the guest"), "{shown}");
    assert!(shown.contains("aims at 90 %"), "{shown}");
    let copies: Vec<_> = cluster
        .host1
        .client()
        .tasks()
        .await
        .expect("tasks")
        .into_iter()
        .filter(|t| t.verb == "clone-internal-volumes" && t.limit_bps.is_some())
        .collect();
    assert!(
        copies
            .iter()
            .all(|t| t.limit_bps.is_some_and(|l| l <= 2 << 20)),
        "{copies:#?}"
    );

    let done = cluster.wait_end(job.id).await;
    assert_succeeded(&done);
    assert_eq!(done.pace_limit_bps, None, "{done:#?}");
    assert!(!done.pacing, "{done:#?}");
    cluster.assert_vm_writing("vm1", &mut log).await;
    cluster.stop_now();
    log.poll();
    let after = cluster.disk_now("disk1").await;
    cluster.assert_all_layers(&before, &after, &cfg, log.acks());
}
