//! Ferry's engine: the control plane of live storage migration
//! (docs/architecture.md §1).
//!
//! - [`db`]: the inventory (hosts, storage domains, disks and their
//!   chains, VMs, jobs and their steps, the event log) in SQLite by
//!   default, through `sqlx`'s `Any` driver so PostgreSQL needs no rewrite.
//! - [`monitor`]: polls every agent, marks hosts and VMs up or down, and
//!   keeps exactly one SPM among the hosts that are up.
//! - [`ops`]: the inventory operations (typed commands), and [`flow`]: the
//!   move jobs.
//! - [`retention`]: finished jobs and old events are pruned after
//!   `--retention-days`.
//! - [`pki`]: the engine's CA and certificates; agents are enrolled
//!   (`ops::enrol`) and spoken to over mutual TLS, certificates renewed
//!   while everything runs (`ops::certs`).
//! - [`api`]: the REST API under `/api/v1`, which only translates HTTP to
//!   those calls; [`client`]: its typed client.
//! - [`ovirt`]: oVirt's REST API (v4, XML) for disk moves, over the same
//!   calls, so oVirt's SDK and scripts drive Ferry unchanged.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_engine::Error> {
//! let listen = "127.0.0.1:0".parse().expect("an address");
//! let config = ferry_engine::EngineConfig {
//!     listen,
//!     token: "secret".into(),
//!     database: ferry_engine::EngineConfig::sqlite_url("/var/lib/ferry".as_ref()),
//!     limits: ferry_engine::EngineLimits::default(),
//!     pki: ferry_engine::PkiConfig {
//!         dir: "/var/lib/ferry/pki".into(),
//!         names: ferry_engine::PkiConfig::default_names(listen),
//!         https: true,
//!         ca_files: None,
//!     },
//! };
//! let server = ferry_engine::Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run().await // until SIGTERM or Ctrl-C
//! # }
//! ```

mod agents;
pub mod api;
pub mod client;
mod config;
pub mod db;
mod engine;
mod error;
mod events;
pub mod flow;
mod live;
pub mod monitor;
pub mod ops;
pub mod ovirt;
pub mod pki;
mod refresh;
pub mod retention;
mod server;

pub use agents::Agents;
pub use client::EngineClient;
pub use config::{EngineConfig, EngineLimits, DEFAULT_RETENTION, DEFAULT_UNREACHABLE_AFTER};
pub use engine::Engine;
pub use error::{Error, Result};
pub use events::Events;
pub use ferry_http::ClientError;
pub use flow::queue::DEFAULT_MAX_MOVES;
pub use pki::PkiConfig;
pub use server::Server;
