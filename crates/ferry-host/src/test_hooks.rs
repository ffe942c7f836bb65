//! Points where an acceptance test holds the agent in the middle of a
//! task, to inject a fault exactly there. Compiled in only with the
//! `test-hooks` feature, which only the tests' build turns on; without it
//! every point is an empty function, so no environment variable changes
//! how a production agent runs. See docs/testing.md#test-hooks.
//!
//! `FERRY_TEST_AGENT_HOLD_IN=rollback-commit`: the rollback of
//! `blockMigrate`, having found the VM running, waits before QEMU's
//! commit of the new leaf into the source leaf until that QEMU has died
//! (at most two minutes): the test kills QEMU in the middle of the
//! rollback, whose commit then fails.

use ferry_qemu::Vm;

/// Where a task may be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldPoint {
    /// The rollback of `blockMigrate`, before its commit.
    RollbackCommit,
}

/// Holds at `point` while `vm` runs, when `FERRY_TEST_AGENT_HOLD_IN`
/// names it.
#[cfg(feature = "test-hooks")]
pub(crate) async fn hold_while_running(point: HoldPoint, vm: &Vm) {
    let name = match point {
        HoldPoint::RollbackCommit => "rollback-commit",
    };
    if std::env::var("FERRY_TEST_AGENT_HOLD_IN").ok().as_deref() != Some(name) {
        return;
    }
    tracing::warn!(
        point = name,
        "holding until the VM's QEMU dies (FERRY_TEST_AGENT_HOLD_IN)"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while vm.is_alive() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Does nothing: this build has no test hooks.
#[cfg(not(feature = "test-hooks"))]
pub(crate) async fn hold_while_running(_point: HoldPoint, _vm: &Vm) {}
