//! Given a verb registered from outside the crate (as the HSM's will be),
//! the task framework serves it, runs it once per task id, reports its
//! progress, and ends it succeeded, failed or cancelled.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_json_error, assert_refused, raw, start_with, ENGINE};
use ferry_api::agent::TaskState;
use ferry_host::tasks::{StopReason, TaskContext, TaskVerb, VerbRegistry};
use ferry_host::{AgentState, Error};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// Counts to `n` as its progress, then does what it is told.
struct Count;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountParams {
    n: u64,
    #[serde(default)]
    then: Then,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Then {
    #[default]
    Succeed,
    Fail,
    Panic,
    /// Waits until stopped.
    Hold,
}

impl TaskVerb for Count {
    const NAME: &'static str = "count";
    const SPM_ONLY: bool = false;
    type Params = CountParams;

    async fn check(_agent: Arc<AgentState>, p: CountParams) -> ferry_host::Result<()> {
        if p.n == 0 {
            return Err(Error::BadRequest("n must be at least 1".into()));
        }
        Ok(())
    }

    async fn run(ctx: TaskContext, p: CountParams) -> ferry_host::Result<()> {
        for i in 1..=p.n {
            ctx.set_progress(i, p.n);
        }
        match p.then {
            Then::Succeed => Ok(()),
            Then::Fail => Err(Error::Conflict("the count went wrong".into())),
            Then::Panic => panic!("the count panicked"),
            Then::Hold => {
                // Cancel or shutdown: either way the runner gives up.
                let _reason: StopReason = ctx.stopping().await;
                assert!(ctx.stop_flag().load(std::sync::atomic::Ordering::Relaxed));
                Err(Error::Cancelled(ctx.id()))
            }
        }
    }
}

async fn agent() -> (common::TestAgent, tempfile::TempDir) {
    let rd = common::run_dir();
    let mut verbs = VerbRegistry::standard();
    verbs.register::<Count>();
    let names: Vec<_> = verbs.names().collect();
    assert_eq!(
        names,
        [
            "clone-internal-volumes",
            "count",
            "merge",
            "rollback-block-migrate"
        ]
    );
    let agent = start_with(common::config("host1", rd.path(), &[]), verbs).await;
    (agent, rd)
}

#[tokio::test]
async fn a_registered_verb_runs_once_per_task_id_and_reports_its_progress() {
    let (agent, _rd) = agent().await;
    let c = &agent.client;
    let id = Uuid::new_v4();
    let path = format!("/v1/tasks/{id}/count");

    let first = raw(agent.addr, "POST", &path, Some(ENGINE), r#"{"n": 7}"#).await;
    assert_eq!(first.0, 202, "a new task is accepted: {}", first.1);
    let done = c.wait_task(id, WAIT).await.expect("ends");
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!((done.done_bytes, done.total_bytes), (7, 7));
    assert_eq!(done.verb, "count");

    // The same request, spelt differently, is the same task: 200, no rerun.
    let again = raw(
        agent.addr,
        "POST",
        &path,
        Some(ENGINE),
        r#"{"then": "succeed", "n": 7}"#,
    )
    .await;
    assert_eq!(again.0, 200, "{}", again.1);
    let status: ferry_api::agent::TaskStatus = serde_json::from_str(&again.1).expect("status");
    assert_eq!(status, done);
    assert_refused(
        c.start_task(id, "count", &json!({"n": 8})).await,
        409,
        "already exists as count with other parameters",
    );
    assert_refused(
        c.start_task(id, "clone-internal-volumes", &json!({})).await,
        400,
        "missing field",
    );
    assert_refused(
        c.start_task(Uuid::new_v4(), "count", &json!({"n": 0}))
            .await,
        400,
        "n must be at least 1",
    );
    assert_json_error(
        &raw(agent.addr, "POST", &path, Some(ENGINE), r#"{"n": -1}"#).await,
        400,
        "parameters of count are wrong",
    );
    assert_eq!(c.tasks().await.expect("tasks").len(), 1);
    agent.stop().await;
}

#[tokio::test]
async fn failing_and_panicking_runners_end_failed_with_their_reason() {
    let (agent, _rd) = agent().await;
    let c = &agent.client;
    let fail = Uuid::new_v4();
    c.start_task(fail, "count", &json!({"n": 1, "then": "fail"}))
        .await
        .expect("start");
    let end = c.wait_task(fail, WAIT).await.expect("ends");
    assert_eq!(end.state, TaskState::Failed);
    assert_eq!(end.error.as_deref(), Some("the count went wrong"));
    // The failure's kind travels with it, for the engine to decide on.
    assert_eq!(end.error_kind, Some(ferry_api::ErrorKind::Conflict));
    assert_refused(c.cancel_task(fail).await, 409, "already failed");

    let panic = Uuid::new_v4();
    c.start_task(panic, "count", &json!({"n": 1, "then": "panic"}))
        .await
        .expect("start");
    let end = c.wait_task(panic, WAIT).await.expect("ends");
    assert_eq!(end.state, TaskState::Failed);
    assert!(
        end.error.as_deref().is_some_and(|e| e.contains("panicked")),
        "{end:?}"
    );
    c.forget_task(panic).await.expect("forget a failed task");
    assert_eq!(c.tasks().await.expect("tasks").len(), 1);
    agent.stop().await;
}

#[tokio::test]
async fn a_cancelled_task_ends_cancelled_and_a_shutdown_leaves_it_to_resume() {
    let (agent, rd) = agent().await;
    let c = &agent.client;
    let held = Uuid::new_v4();
    c.start_task(held, "count", &json!({"n": 3, "then": "hold"}))
        .await
        .expect("start");
    let running = c.task(held).await.expect("status");
    assert_eq!(running.state, TaskState::Running);
    c.cancel_task(held).await.expect("cancel");
    let end = c.wait_task(held, WAIT).await.expect("ends");
    assert_eq!(end.state, TaskState::Cancelled);
    assert_eq!((end.error, end.error_kind), (None, None));

    let left = Uuid::new_v4();
    c.start_task(left, "count", &json!({"n": 5, "then": "hold"}))
        .await
        .expect("start");
    agent.stop().await;
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rd.path().join("tasks").join(format!("{left}.json"))).expect("record"),
    )
    .expect("JSON");
    assert_eq!(record["state"], "running");
    assert_eq!(record["params"], json!({"n": 5, "then": "hold"}));

    // An agent that no longer knows the verb fails the task, saying why.
    let plain = start_with(
        common::config("host1", rd.path(), &[]),
        VerbRegistry::standard(),
    )
    .await;
    let s = plain.client.task(left).await.expect("known after restart");
    assert_eq!(s.state, TaskState::Failed);
    assert!(
        s.error
            .as_deref()
            .is_some_and(|e| e.contains("no longer knows the task verb 'count'")),
        "{s:?}"
    );
    assert_eq!(
        plain.client.task(held).await.expect("known").state,
        TaskState::Cancelled
    );
    plain.stop().await;
}
