//! History is kept for the engine's retention and no longer: finished
//! jobs (with their steps), ended snapshots and events older than it are
//! pruned at start and by each periodic prune, while a job that has not
//! ended, or that failed and still holds its disks, is kept however old.

mod common;

use std::time::Duration;

use common::*;
use ferry_api::engine::{JobKind, JobState, MoveMode, Step};
use ferry_engine::db::codec::now_ms;
use ferry_engine::db::{Db, JobRow, OperationRow, OperationState, Pruned};
use ferry_engine::EngineLimits;
use uuid::Uuid;

const STEPS: &[Step] = ferry_engine::flow::LIVE_STEPS;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// A job in `state` created at `at`, finished then unless it runs.
async fn job_at(db: &Db, (src, dst): (Uuid, Uuid), state: JobState, at: u64) -> Uuid {
    let mut job = JobRow::new(
        JobKind::DiskMove,
        MoveMode::Cold,
        vec![],
        src,
        dst,
        Step::Prepare,
    );
    job.state = state;
    job.created = at;
    job.updated = at;
    job.finished = (state != JobState::Running).then_some(at);
    db.insert_job(&job, STEPS).await.expect("a job");
    job.id
}

async fn sql(db: &Db, query: &str, at: u64, text: &str) {
    sqlx::query(query)
        .bind(i64::try_from(at).expect("a time"))
        .bind(text.to_string())
        .execute(db.pool())
        .await
        .expect(query);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_older_than_the_retention_is_pruned_at_start_and_then_periodically() {
    // Given, three days ago: a job that succeeded, one cancelled, one
    // that failed after the switch and still holds its disk, one still
    // running, a snapshot that ended, and an event; and a job and an
    // event of now...
    let e = TestEngine::start().await;
    let db = e.engine.db();
    let (src, dst, [d0, d1]) = seed(db).await;
    let domains = (src, dst);
    let old = now_ms() - 3 * DAY_MS;
    let succeeded = job_at(db, domains, JobState::Succeeded, old).await;
    let cancelled = job_at(db, domains, JobState::Cancelled, old).await;
    let failed_locked = job_at(db, domains, JobState::Failed, old).await;
    let mut row = db.job(failed_locked).await.expect("read").expect("it");
    row.step = Step::Merge; // past the switch: retryable
    db.update_job(&row).await.expect("failed at merge");
    db.lock_disks(failed_locked, &[d0]).await.expect("lock d0");
    let running = job_at(db, domains, JobState::Running, old).await;
    let recent = job_at(db, domains, JobState::Succeeded, now_ms()).await;
    let snapshot = OperationRow::snapshot(d1, Uuid::new_v4());
    db.insert_locked_operation(&snapshot)
        .await
        .expect("a snapshot");
    db.end_operation(snapshot.id, OperationState::Succeeded, None)
        .await
        .expect("its end");
    sql(
        db,
        "UPDATE operations SET finished = $1 WHERE id = $2",
        old,
        &snapshot.id.to_string(),
    )
    .await;
    db.insert_event("job", "an old event", None)
        .await
        .expect("an event");
    db.insert_event("job", "a new event", None)
        .await
        .expect("an event");
    sql(
        db,
        "UPDATE events SET time = $1 WHERE message = $2",
        old,
        "an old event",
    )
    .await;
    let keep = e.stop_keeping_data().await;

    // ...when the engine starts again keeping one day of history...
    let limits = EngineLimits {
        retention: Duration::from_secs(24 * 3600),
        ..EngineLimits::default()
    };
    let e = TestEngine::restart_in_with(keep, limits).await;
    let db = e.engine.db();

    // ...then what ended before that is gone, steps and all, and the rest
    // is kept.
    for gone in [succeeded, cancelled] {
        assert_eq!(db.job(gone).await.expect("read"), None, "job {gone}");
        assert!(db.steps(gone).await.expect("steps").is_empty());
    }
    for kept in [failed_locked, running, recent] {
        assert!(db.job(kept).await.expect("read").is_some(), "job {kept}");
        assert_eq!(db.steps(kept).await.expect("steps").len(), STEPS.len());
    }
    assert_eq!(
        db.disk(d0).await.expect("d0").expect("d0").locked_by,
        Some(failed_locked)
    );
    assert_eq!(db.operation(snapshot.id).await.expect("read"), None);
    let events = event_messages(&e).await;
    assert!(!said(&events, "an old event"), "{events:#?}");
    assert!(said(&events, "a new event"), "{events:#?}");

    // And a periodic prune removes what has aged since.
    let aged = job_at(db, domains, JobState::Failed, now_ms() - 2 * DAY_MS).await;
    let pruned = ferry_engine::retention::prune_now(&e.engine)
        .await
        .expect("prune");
    assert_eq!(
        pruned,
        Pruned {
            jobs: 1,
            operations: 0,
            events: 0
        }
    );
    assert_eq!(db.job(aged).await.expect("read"), None);
    assert!(db.job(running).await.expect("read").is_some());
    e.stop().await;
}
