//! What an agent is started with.

use std::net::SocketAddr;
use std::path::PathBuf;

use ferry_qemu::Accel;

/// The agent's settings: who it is, where it listens, the token callers
/// must present, where it keeps its own state, and the storage domains it
/// knows from the start.
#[derive(Clone)]
pub struct AgentConfig {
    /// The host's name, shown in health, SPM status and error messages.
    pub name: String,
    /// The address to listen on; port 0 picks a free port (see
    /// [`Server::local_addr`](crate::Server::local_addr)).
    pub listen: SocketAddr,
    /// The bearer token every request except health must carry.
    pub token: String,
    /// The agent's own directory: task records, connected domains, the
    /// run-directory lock. Two agents must not share one.
    pub run_dir: PathBuf,
    /// Storage domain directories (`<root>/<sd_uuid>`) to connect at start.
    pub domains: Vec<PathBuf>,
    /// How VMs run: KVM on production hosts, TCG where KVM cannot run
    /// real guests (the test machines, ARCHITECTURE §8).
    pub accel: Accel,
}

impl std::fmt::Debug for AgentConfig {
    /// Never prints the token, so configs can be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("token", &"<hidden>")
            .field("run_dir", &self.run_dir)
            .field("domains", &self.domains)
            .field("accel", &self.accel)
            .finish()
    }
}
