//! Tasks: long operations that outlive the request that started them (and
//! the agent process), with caller-chosen ids, progress in bytes, cancel,
//! and resume after a restart.
//!
//! The framework knows nothing of storage: a verb plugs in through
//! [`TaskVerb`] and a [`VerbRegistry`]; the SPM registers its verbs in
//! `spm::register_verbs`, the HSM will register its own the same way.

mod context;
mod manager;
mod store;
mod verb;

pub use context::{StopReason, TaskContext};
pub use manager::{Started, TaskManager};
pub use verb::{TaskVerb, VerbRegistry};
