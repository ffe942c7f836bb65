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
//!
//! `FERRY_TEST_AGENT_CORRUPT_READ_BACK=<n>` (or `always`) makes the first
//! `n` (or every) read-back of a direct copy in the process find one byte
//! other than was written: storage that returns other bytes than it was
//! given, which the copy must catch.

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

/// Changes the first byte of what a direct copy read back, for the first
/// `FERRY_TEST_AGENT_CORRUPT_READ_BACK` read-backs of the process (or for
/// every one, `always`).
#[cfg(feature = "test-hooks")]
pub(crate) fn corrupt_read_back(read_back: &mut [u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let Ok(how) = std::env::var("FERRY_TEST_AGENT_CORRUPT_READ_BACK") else {
        return;
    };
    let first = match how.as_str() {
        "always" => u64::MAX,
        n => match n.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return,
        },
    };
    let Some(byte) = read_back.first_mut() else {
        return;
    };
    let seen = SEEN.fetch_add(1, Ordering::Relaxed);
    if seen < first {
        *byte ^= 0xff;
        tracing::warn!(
            read_back = seen + 1,
            "a read-back is changed here (FERRY_TEST_AGENT_CORRUPT_READ_BACK)"
        );
    }
}

/// Does nothing: this build has no test hooks.
#[cfg(not(feature = "test-hooks"))]
pub(crate) fn corrupt_read_back(_read_back: &mut [u8]) {}
