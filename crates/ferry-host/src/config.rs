//! What an agent is started with.

use std::net::SocketAddr;
use std::path::PathBuf;

use ferry_qemu::Accel;

/// The agent's settings: who it is, where it listens, where it keeps its
/// own state (its certificate included: it speaks mutual TLS only, see
/// `identity`), and the storage domains it knows from the start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The host's name, shown in health, SPM status and error messages;
    /// it must be the one in its certificate, which is the default.
    pub name: Option<String>,
    /// The address to listen on; port 0 picks a free port (see
    /// [`Server::local_addr`](crate::Server::local_addr)).
    pub listen: SocketAddr,
    /// The agent's own directory: task records, connected domains, the
    /// run-directory lock. Two agents must not share one.
    pub run_dir: PathBuf,
    /// Storage domain directories (`<root>/<sd_uuid>`) to connect at start.
    pub domains: Vec<PathBuf>,
    /// How VMs run: KVM on production hosts, TCG where KVM cannot run
    /// real guests (the test machines, ARCHITECTURE §8).
    pub accel: Accel,
}
