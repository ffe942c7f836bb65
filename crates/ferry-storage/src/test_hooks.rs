//! Points where an acceptance test makes the process die (abort) in the
//! middle of a storage operation, to leave on disk exactly what a crash
//! there leaves. Compiled in only with the `test-hooks` feature, which
//! ferry-host's `test-hooks` feature turns on and only the tests' build
//! turns on that; without it every point is an empty function, so no
//! environment variable changes how a production agent writes storage.
//! See docs/testing.md#test-hooks.
//!
//! `FERRY_TEST_AGENT_ABORT_IN=<point>` aborts at that point:
//! - `create-cross-sd`: a volume whose parent is on another domain has its
//!   `.meta` (ILLEGAL) and its file, and its parent is INTERNAL; it is not
//!   yet LEGAL.
//! - `delete`: a whole volume being deleted has its file renamed to
//!   `_remove_me_<id>`, its `.meta` (LEGAL) not yet.

/// A place inside a storage operation where a test may crash the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// Inside creating a volume with a parent on another domain, just
    /// before it turns LEGAL.
    CreateCrossSd,
    /// Between the two renames of a volume's deletion.
    Delete,
}

impl CrashPoint {
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    fn name(self) -> &'static str {
        match self {
            CrashPoint::CreateCrossSd => "create-cross-sd",
            CrashPoint::Delete => "delete",
        }
    }
}

/// Aborts the process when `FERRY_TEST_AGENT_ABORT_IN` names `point`.
#[cfg(feature = "test-hooks")]
pub(crate) fn crash_point(point: CrashPoint) {
    if std::env::var("FERRY_TEST_AGENT_ABORT_IN").ok().as_deref() == Some(point.name()) {
        tracing::warn!(
            point = point.name(),
            "the process dies here (FERRY_TEST_AGENT_ABORT_IN)"
        );
        std::process::abort();
    }
}

/// Does nothing: this build has no test hooks.
#[cfg(not(feature = "test-hooks"))]
pub(crate) fn crash_point(_point: CrashPoint) {}
