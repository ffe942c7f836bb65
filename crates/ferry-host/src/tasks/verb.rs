//! Task verbs: the extension point through which the SPM (and later the
//! HSM) adds long-running operations.
//!
//! A verb is a type implementing [`TaskVerb`]: a name, typed parameters, a
//! check run before the task is accepted, and the runner. Registering it in
//! a [`VerbRegistry`] is all it takes: the agent then serves
//! `POST /v1/tasks/{id}/<name>` for it, persists its tasks, resumes them
//! after a restart and reports their progress, like every other verb.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::state::AgentState;
use crate::tasks::context::TaskContext;

/// A long-running operation the agent runs as a task.
///
/// The runner must be restartable: after a crash the agent runs it again
/// from the start with the same parameters, so it must find what an
/// earlier run finished and redo only what it did not (as ferry-storage's
/// copy does: LEGAL copies are skipped, ILLEGAL ones redone).
pub trait TaskVerb: Send + Sync + 'static {
    /// The verb's name: the last segment of its route and the `verb` of its
    /// tasks (`clone-internal-volumes`).
    const NAME: &'static str;
    /// Whether only the SPM may run it: refused with 409 elsewhere, and a
    /// task resumed after a restart waits until the agent is SPM again.
    const SPM_ONLY: bool;
    /// The request body.
    type Params: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Checks the request before the task is accepted, so that a wrong
    /// request gets its 400/404/409 at once and no task is created.
    fn check(
        agent: Arc<AgentState>,
        params: Self::Params,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Does the work. Blocking work goes to `spawn_blocking`; progress goes
    /// to [`TaskContext::set_progress`]; [`TaskContext::stop_flag`] asks it
    /// to stop, after which an error return is expected.
    fn run(ctx: TaskContext, params: Self::Params) -> impl Future<Output = Result<()>> + Send;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A registered verb with its parameter type erased, so verbs of any type
/// share one table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VerbEntry {
    pub(crate) spm_only: bool,
    /// Parses the parameters and writes them back in canonical form, so
    /// that two requests meaning the same compare equal.
    pub(crate) normalize: fn(Value) -> Result<Value>,
    pub(crate) check: fn(Arc<AgentState>, Value) -> BoxFuture<Result<()>>,
    pub(crate) run: fn(TaskContext, Value) -> BoxFuture<Result<()>>,
}

/// Route segments under `/v1/tasks/{id}/` that are not verbs.
const RESERVED: &[&str] = &["cancel"];

/// The verbs an agent runs, by name.
#[derive(Debug, Clone, Default)]
pub struct VerbRegistry {
    verbs: BTreeMap<&'static str, VerbEntry>,
}

impl VerbRegistry {
    /// No verbs at all (for tests of the framework itself).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The verbs of a full agent: the SPM's and the HSM's.
    pub fn standard() -> Self {
        let mut r = Self::empty();
        crate::spm::register_verbs(&mut r);
        crate::hsm::register_verbs(&mut r);
        r
    }

    /// Adds a verb.
    ///
    /// # Panics
    /// When the name is taken or reserved: two verbs with one route is a
    /// programming error, found by the first test that starts an agent.
    pub fn register<V: TaskVerb>(&mut self) -> &mut Self {
        assert!(
            !RESERVED.contains(&V::NAME) && !self.verbs.contains_key(V::NAME),
            "task verb name {:?} is reserved or registered twice",
            V::NAME
        );
        self.verbs.insert(
            V::NAME,
            VerbEntry {
                spm_only: V::SPM_ONLY,
                normalize: normalize::<V>,
                check: check::<V>,
                run: run::<V>,
            },
        );
        self
    }

    /// The names of the registered verbs.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.verbs.keys().copied()
    }

    pub(crate) fn get(&self, name: &str) -> Option<VerbEntry> {
        self.verbs.get(name).copied()
    }
}

fn parse<V: TaskVerb>(params: Value) -> Result<V::Params> {
    serde_json::from_value(params).map_err(|e| {
        Error::BadRequest(format!(
            "the parameters of {} are wrong: {e}; send a JSON object with the documented fields",
            V::NAME
        ))
    })
}

fn normalize<V: TaskVerb>(params: Value) -> Result<Value> {
    let typed = parse::<V>(params)?;
    serde_json::to_value(&typed)
        .map_err(|e| Error::Internal(format!("cannot encode the parameters of {}: {e}", V::NAME)))
}

fn check<V: TaskVerb>(agent: Arc<AgentState>, params: Value) -> BoxFuture<Result<()>> {
    Box::pin(async move { V::check(agent, parse::<V>(params)?).await })
}

fn run<V: TaskVerb>(ctx: TaskContext, params: Value) -> BoxFuture<Result<()>> {
    Box::pin(async move { V::run(ctx, parse::<V>(params)?).await })
}
