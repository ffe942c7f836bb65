//! The job store the move flow builds on: jobs and steps persist, disk
//! locks are all-or-nothing and name the job that holds them, a cancel
//! request survives the flow's own writes, and the REST API shows jobs as
//! the flow left them.

mod common;

use common::*;
use ferry_api::engine::{JobKind, JobState, MoveMode, Step, StepState};
use ferry_engine::db::{Db, JobRow, OperationRow, OperationState};
use ferry_engine::{EngineConfig, Error};
use reqwest::Method;
use uuid::Uuid;

const STEPS: &[Step] = ferry_engine::flow::LIVE_STEPS;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_steps_and_locks_persist_and_a_second_move_of_a_disk_is_refused_naming_the_job() {
    let e = TestEngine::start().await;
    let db = e.engine.db();
    let (src, dst, [d0, d1, d2]) = seed(db).await;

    let mut job = JobRow::new(
        JobKind::VmMove,
        MoveMode::Live,
        vec![d0, d1],
        src,
        dst,
        Step::Prepare,
    );
    job.bandwidth_mib_s = Some(50);
    db.insert_job(&job, STEPS).await.expect("insert a job");
    db.lock_disks(job.id, &[d0, d1]).await.expect("lock");
    db.lock_disks(job.id, &[d0, d1])
        .await
        .expect("locking again for the same job is a no-op");

    // A second job wanting d1 and d2 gets neither, and is told who has d1.
    let other = JobRow::new(
        JobKind::DiskMove,
        MoveMode::Cold,
        vec![d1, d2],
        src,
        dst,
        Step::Prepare,
    );
    db.insert_job(&other, STEPS).await.expect("insert");
    match db.lock_disks(other.id, &[d2, d1]).await {
        Err(Error::Locked { disk, job: holder }) => {
            assert_eq!((disk.as_str(), holder), ("disk1", job.id));
        }
        r => panic!("expected Locked, got {r:?}"),
    }
    assert_eq!(db.disk(d2).await.expect("d2").expect("d2").locked_by, None);
    assert_eq!(
        db.disk(d1).await.expect("d1").expect("d1").locked_by,
        Some(job.id)
    );

    // Over REST: the lock shows, and a snapshot is refused with the job.
    let disk = e.client.disk("disk1").await.expect("disk1");
    assert_eq!(disk.locked_by, Some(job.id));
    let msg = assert_refused(
        e.client.snapshot_disk("disk1").await,
        409,
        "disk disk1 is being moved by job",
    );
    assert!(
        msg.contains(&format!("ferry job cancel {}", job.id)),
        "{msg}"
    );

    // Steps: running counts an attempt and becomes the job's step.
    db.set_step(job.id, Step::Prepare, StepState::Running, None)
        .await
        .expect("step");
    db.set_step(job.id, Step::Prepare, StepState::Done, None)
        .await
        .expect("step");
    db.set_step(job.id, Step::CreateVolumeCrossSd, StepState::Running, None)
        .await
        .expect("step");
    db.set_step(
        job.id,
        Step::CreateVolumeCrossSd,
        StepState::Failed,
        Some("agent said no"),
    )
    .await
    .expect("step");
    db.set_step(job.id, Step::CreateVolumeCrossSd, StepState::Running, None)
        .await
        .expect("retry");
    let steps = db.steps(job.id).await.expect("steps");
    assert_eq!(steps.len(), STEPS.len());
    assert_eq!(steps[0].state, StepState::Done);
    assert!(steps[0].started.is_some() && steps[0].finished.is_some());
    assert_eq!((steps[1].state, steps[1].attempts), (StepState::Running, 2));
    assert_eq!(steps[1].finished, None);
    assert_eq!(steps[2].state, StepState::Pending);
    // A live job has no `switch` step.
    assert!(matches!(
        db.set_step(job.id, Step::Switch, StepState::Running, None)
            .await,
        Err(Error::NotFound(_))
    ));

    // A cancel asked while the flow holds an older row is not overwritten.
    let mut row = db.job(job.id).await.expect("read").expect("the job");
    assert_eq!(row.step.name(), "createVolumeCrossSD");
    assert_eq!(row.disks, vec![d0, d1]);
    db.request_cancel(job.id).await.expect("cancel");
    row.done_bytes = 100;
    row.total_bytes = 1100;
    row.rate_bps = 100;
    row.data = serde_json::json!({"leaf": "x"});
    db.update_job(&row).await.expect("update");
    let row = db.job(job.id).await.expect("read").expect("the job");
    assert!(row.cancel_requested);
    assert_eq!(row.data["leaf"], "x");

    // Progress ticks touch only the counters.
    let mut tick = row.clone();
    tick.state = JobState::Failed;
    tick.done_bytes = 100;
    db.update_progress(&tick).await.expect("progress");
    assert_eq!(
        db.job(job.id).await.expect("read").expect("the job").state,
        JobState::Running
    );

    // The API view: progress, ETA, cancellable until finalizeBlockMigrate.
    let view = e.client.job(job.id).await.expect("job");
    assert_eq!(view.state, JobState::Running);
    assert_eq!(
        (view.done_bytes, view.total_bytes, view.eta_secs),
        (100, 1100, Some(10))
    );
    assert_eq!(view.bandwidth_mib_s, Some(50));
    assert!(view.cancellable);
    assert_eq!(view.steps[1].error, None, "running again clears the error");
    db.set_step(job.id, Step::FinalizeBlockMigrate, StepState::Running, None)
        .await
        .expect("step");
    assert!(!e.client.job(job.id).await.expect("job").cancellable);

    // Newest first; unfinished ones are what a restart resumes.
    let listed: Vec<Uuid> = e
        .client
        .jobs()
        .await
        .expect("jobs")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed.len(), 2);
    let unfinished: Vec<Uuid> = db
        .unfinished_jobs()
        .await
        .expect("unfinished")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(unfinished, vec![job.id, other.id]);
    let mut done = db.job(job.id).await.expect("read").expect("the job");
    done.state = JobState::Succeeded;
    done.finished = Some(done.updated + 1);
    db.update_job(&done).await.expect("finish");
    db.unlock_disks(job.id).await.expect("unlock");
    assert_eq!(db.unfinished_jobs().await.expect("unfinished").len(), 1);
    assert_eq!(db.disk(d1).await.expect("d1").expect("d1").locked_by, None);
    let finished = e.client.job(job.id).await.expect("job");
    assert!(!finished.cancellable && finished.eta_secs.is_none() && finished.finished.is_some());

    // The flow is not built yet: a move is refused as unavailable, not 500.
    let (status, _) = raw(
        &e.url,
        Method::POST,
        "/api/v1/disks/disk2/move",
        Some(ENGINE_TOKEN),
        Some(r#"{"to":"domain2"}"#),
    )
    .await;
    assert!(status == 202 || status == 503, "{status}");

    // Everything is in the SQLite file and reads back after a restart.
    // One SQLite file, in WAL mode.
    assert!(e.data_dir.path().join("engine.db").is_file());
    assert!(e.data_dir.path().join("engine.db-wal").is_file());
    let job_id = job.id;
    let keep = e.stop_keeping_data().await;
    let url = EngineConfig::sqlite_url(&keep);
    let reopened = Db::open(&url).await.expect("reopen");
    let again = reopened
        .job(job_id)
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(again.state, JobState::Succeeded);
    assert_eq!(
        reopened.steps(job_id).await.expect("steps").len(),
        STEPS.len()
    );
    assert_eq!(reopened.disks().await.expect("disks").len(), 3);
    reopened.close().await;
    std::fs::remove_dir_all(keep).expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_start_the_engine_releases_every_lock_no_running_job_holds() {
    // Given disks locked by a job that has ended, by no job at all (a
    // snapshot's lock, or a crash between two writes), and by a job that
    // still runs...
    let e = TestEngine::start().await;
    let db = e.engine.db();
    let (src, dst, [d0, d1, d2]) = seed(db).await;
    let mut ended = JobRow::new(
        JobKind::DiskMove,
        MoveMode::Cold,
        vec![d0],
        src,
        dst,
        Step::Prepare,
    );
    ended.state = JobState::Succeeded;
    db.insert_job(&ended, STEPS).await.expect("an ended job");
    db.lock_disks(ended.id, &[d0]).await.expect("lock d0");
    db.lock_disks(Uuid::new_v4(), &[d1]).await.expect("lock d1");
    let running = JobRow::new(
        JobKind::DiskMove,
        MoveMode::Cold,
        vec![d2],
        src,
        dst,
        Step::Prepare,
    );
    db.insert_job(&running, STEPS).await.expect("a running job");
    db.lock_disks(running.id, &[d2]).await.expect("lock d2");
    let keep = e.stop_keeping_data().await;

    // ...when the engine starts again...
    let e = TestEngine::restart_in(keep).await;
    let db = e.engine.db();

    // ...then the orphan locks are released, each with an event, and the
    // running job keeps its own.
    assert_eq!(db.disk(d0).await.expect("d0").expect("d0").locked_by, None);
    assert_eq!(db.disk(d1).await.expect("d1").expect("d1").locked_by, None);
    assert_eq!(
        db.disk(d2).await.expect("d2").expect("d2").locked_by,
        Some(running.id)
    );
    let events = event_messages(&e).await;
    for disk in ["disk0", "disk1"] {
        assert!(
            said(&events, &format!("disk {disk} was left locked")),
            "{events:#?}"
        );
    }
    assert!(!said(&events, "disk disk2 was left locked"), "{events:#?}");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_left_running_keeps_its_disk_locked_until_what_it_made_is_known() {
    // Given a snapshot that was running when the engine stopped, and no
    // host that could say whether its new leaf was made...
    let e = TestEngine::start().await;
    let db = e.engine.db();
    let (_, _, [d0, _, _]) = seed(db).await;
    let snapshot = OperationRow::snapshot(d0, Uuid::new_v4());
    db.insert_locked_operation(&snapshot)
        .await
        .expect("a snapshot");
    // (meanwhile another snapshot of the disk is refused, naming it)
    assert_refused(
        e.client.snapshot_disk("disk0").await,
        409,
        &format!("busy with another operation (snapshot {})", snapshot.id),
    );
    let keep = e.stop_keeping_data().await;

    // ...when the engine starts again...
    let e = TestEngine::restart_in(keep).await;
    let db = e.engine.db();

    // ...then the lock is not released blindly: a leaf the VM does not
    // write may exist, and a move must not copy it.
    assert_eq!(
        db.disk(d0).await.expect("d0").expect("d0").locked_by,
        Some(snapshot.id)
    );
    let row = db.operation(snapshot.id).await.expect("read").expect("it");
    assert_eq!(row.state, OperationState::Running);
    let events = event_messages(&e).await;
    assert!(!said(&events, "disk disk0 was left locked"), "{events:#?}");
    e.stop().await;
}
