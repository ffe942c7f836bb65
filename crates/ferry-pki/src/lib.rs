//! Ferry's PKI, oVirt's engine PKI the Rust way (rustls, rcgen; no
//! OpenSSL):
//!
//! - [`ca`]: the engine's certificate authority, which signs the engine's
//!   certificates and each host's from the host's signing request (the
//!   host's key never leaves it), and the requests hosts make.
//! - [`cert`]: reading certificates: names, expiry, fingerprints.
//! - [`live`]: a certificate that can be renewed under running servers.
//! - [`tls`]: the rustls settings of every connection: mutual TLS between
//!   engine and agents, the engine's HTTPS API, enrolment.
//! - [`files`]: files that hold secrets, written 0600 atomically in 0700
//!   directories.
//! - [`random`]: secrets and the hashes stored of them.
//! - [`token`]: the one-time enrolment token.

pub mod ca;
pub mod cert;
mod error;
pub mod files;
pub mod live;
pub mod random;
pub mod tls;
pub mod token;

pub use ca::{Authority, Issued, KeyRequest, Usage};
pub use cert::{CertInfo, Fingerprint};
pub use error::{Error, Result};
pub use live::LiveCert;
pub use tls::{AnyFromCa, ClientTls, PeerCheck, ServerTls};
pub use token::EnrolToken;
