//! How long the agent may take to answer each kind of request. A request
//! that outlives its deadline fails as `unavailable` (the agent may be
//! hung, or its host unreachable), and the caller decides whether to ask
//! again; no request waits for ever. The table is in docs/agent.md.

use std::time::Duration;

/// What a request asks of the agent, which sets how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// A status read (health, domains, VMs, a task's state): answered
    /// from memory or one small file.
    Read,
    /// Starting or cancelling a task: the agent answers before the work.
    Task,
    /// A change to storage metadata or a volume (create, delete, the SPM
    /// role, a VM's definition): file writes and `qemu-img create`.
    Storage,
    /// Starting a VM: QEMU's start and its first QMP greeting.
    StartVm,
    /// Stopping a VM, given the grace it has to power down.
    StopVm(u64),
    /// A switch of a running VM's disks (`blockMigrate`,
    /// `finalizeBlockMigrate`): a QMP transaction or reopen that waits on
    /// QEMU's block layer.
    Switch,
}

impl Deadline {
    /// The longest the agent may take to answer.
    pub fn duration(self) -> Duration {
        match self {
            Deadline::Read => Duration::from_secs(15),
            Deadline::Task => Duration::from_secs(30),
            Deadline::StartVm => Duration::from_secs(60),
            Deadline::Storage | Deadline::Switch => Duration::from_secs(120),
            Deadline::StopVm(grace) => Duration::from_secs(grace.saturating_add(30)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_waits_for_its_grace_and_then_some() {
        assert!(Deadline::StopVm(60).duration() > Duration::from_secs(60));
        assert!(Deadline::Read.duration() < Deadline::Switch.duration());
    }
}
