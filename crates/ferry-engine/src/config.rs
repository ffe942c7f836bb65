//! What an engine is started with.

use std::net::SocketAddr;
use std::path::Path;

/// The engine's settings: where it listens, the token callers must
/// present, and its database.
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
    /// How many moves copy at once; more wait, queued (0: the default,
    /// [`DEFAULT_MAX_MOVES`](crate::DEFAULT_MAX_MOVES)).
    pub max_moves: usize,
}

impl EngineConfig {
    /// The default database: one SQLite file, `<data_dir>/engine.db`,
    /// created if missing.
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
            .field("max_moves", &self.max_moves)
            .finish()
    }
}
