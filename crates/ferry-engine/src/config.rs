//! What an engine is started with.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::pki::PkiConfig;

/// How long a step keeps retrying an agent that does not answer before
/// it fails its job: long enough for an agent restart or a network blip,
/// short enough that an operator hears of a dead host within minutes.
pub const DEFAULT_UNREACHABLE_AFTER: Duration = Duration::from_secs(300);

/// How long finished jobs and events are kept before they are pruned.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The engine's settings: where it listens, the token callers must
/// present, its database and its PKI.
#[derive(Clone)]
pub struct EngineConfig {
    /// The address to listen on; port 0 picks a free port (see
    /// [`Server::local_addr`](crate::Server::local_addr)).
    pub listen: SocketAddr,
    /// The bearer token every request except health must carry.
    pub token: String,
    /// The database URL: `sqlite://<file>?mode=rwc` (the default, see
    /// [`EngineConfig::sqlite_url`]) or `postgres://…`.
    pub database: String,
    /// The bounds the engine works within.
    pub limits: EngineLimits,
    /// Its CA and certificates, and whether its API serves HTTPS (it must
    /// when `listen` is beyond loopback).
    pub pki: PkiConfig,
}

/// The bounds an operator may set: how much runs at once, how long an
/// unanswering host is waited for, how long history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineLimits {
    /// How many moves copy at once; more wait, queued (0: the default,
    /// [`DEFAULT_MAX_MOVES`](crate::DEFAULT_MAX_MOVES)).
    pub max_moves: usize,
    /// How long a step retries an agent that does not answer (or answers
    /// that it is unavailable) before it gives up and fails the job.
    pub unreachable_after: Duration,
    /// How long finished jobs and the event log are kept.
    pub retention: Duration,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_moves: 0,
            unreachable_after: DEFAULT_UNREACHABLE_AFTER,
            retention: DEFAULT_RETENTION,
        }
    }
}

impl EngineConfig {
    /// The default database: one SQLite file, `<data_dir>/engine.db`,
    /// created if missing (mode 0600: it records who may do what).
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}/engine.db?mode=rwc", data_dir.display())
    }
}

impl std::fmt::Debug for EngineConfig {
    /// Never prints the token, so configs can be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("listen", &self.listen)
            .field("token", &"<hidden>")
            .field("database", &self.database)
            .field("limits", &self.limits)
            .field("pki", &self.pki)
            .finish()
    }
}
