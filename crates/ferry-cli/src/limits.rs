//! The engine's bounds as command-line options, shared by `ferry engine`
//! and `ferry up`.

use std::time::Duration;

use clap::Args;
use ferry_engine::EngineLimits;

/// How much the engine runs at once and how long it waits and remembers.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// How many moves copy at once; more wait, queued, and start as
    /// others end.
    #[arg(long, value_name = "N", env = "FERRY_MAX_MOVES", default_value_t = ferry_engine::DEFAULT_MAX_MOVES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_moves: u64,
    /// How many seconds a move retries a host agent that does not answer
    /// before it gives up: before the switch the move is rolled back, after
    /// it the job fails for `ferry job retry` once the host is back.
    #[arg(long, value_name = "SECS", env = "FERRY_UNREACHABLE_TIMEOUT", default_value_t = ferry_engine::DEFAULT_UNREACHABLE_AFTER.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    unreachable_timeout: u64,
    /// How many days finished jobs and events are kept.
    #[arg(long, value_name = "DAYS", env = "FERRY_RETENTION_DAYS", default_value_t = ferry_engine::DEFAULT_RETENTION.as_secs() / 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    retention_days: u64,
}

impl LimitArgs {
    /// The engine's limits these options ask for.
    pub fn limits(&self) -> EngineLimits {
        EngineLimits {
            max_moves: usize::try_from(self.max_moves).unwrap_or(usize::MAX),
            unreachable_after: Duration::from_secs(self.unreachable_timeout),
            retention: Duration::from_secs(self.retention_days.saturating_mul(86_400)),
        }
    }
}
