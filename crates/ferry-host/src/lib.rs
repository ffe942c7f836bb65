//! Ferry's host agent, the seed's VDSM: one daemon per hypervisor host,
//! driven by the engine over an HTTP JSON API under `/v1`, served over
//! mutual TLS only: the agent accepts the engine's client certificate
//! from its CA and nothing else ([`identity`], [`enroll`]).
//!
//! It holds both roles of the seed's design:
//! - **HSM** ([`vms`] and the `hsm` module): VMs as daemonized QEMU
//!   processes driven over QMP, which outlive an agent restart, and the
//!   block-graph verbs of a live move: `blockMigrate`,
//!   `finalizeBlockMigrate`, merge and the rollback of `blockMigrate`.
//! - **SPM** ([`spm`]): the SPM lease and the verbs that change storage
//!   metadata (create, `createVolumeCrossSD`, delete) plus
//!   `cloneInternalVolumes`.
//!
//! What a crash leaves behind is collected at start, when the SPM role is
//! taken and after each task (the `gc` module).
//!
//! Long operations are [`tasks`]: caller-chosen ids, persisted in the run
//! directory, resumed after a restart; both roles register their verbs in
//! one registry.
//!
//! Storage knowledge lives in `ferry-storage`; this crate translates HTTP
//! to typed calls and back, and runs blocking work off the async threads.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_host::Error> {
//! let config = ferry_host::AgentConfig {
//!     name: None, // the one in its certificate (`ferry agent enroll`)
//!     listen: "127.0.0.1:0".parse().expect("an address"),
//!     run_dir: "/var/lib/ferry/agent".into(),
//!     domains: vec!["/srv/ferry/0f8fad5b-d9cb-469f-a165-70867728950e".into()],
//!     accel: ferry_host::Accel::Kvm,
//! };
//! let server = ferry_host::Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run().await // until SIGTERM or Ctrl-C
//! # }
//! ```

mod config;
pub mod domains;
pub mod enroll;
mod error;
mod fsutil;
mod gc;
mod hsm;
pub mod identity;
mod release;
mod routes;
mod server;
pub mod spm;
mod state;
pub mod tasks;
mod test_hooks;
pub mod vms;

pub use config::AgentConfig;
pub use domains::DomainRegistry;
pub use error::{chain_text, Error, Result};
pub use ferry_qemu::Accel;
pub use server::{serve, Server};
pub use state::AgentState;
pub use vms::VmManager;
