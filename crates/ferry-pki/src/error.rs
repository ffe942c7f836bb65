//! What can go wrong with keys, certificates and the files that hold them.

use std::path::PathBuf;

/// An error of Ferry's PKI. Each message says what was wrong and what to
/// do; the cause is attached as the source, not repeated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read, written or given its mode.
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done ("write", "read", "set the mode of").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no certificate or key of the kind expected.
    #[error("{} does not hold {what} in PEM form; give the file that does (it starts with '-----BEGIN')", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was expected ("a certificate", "a private key").
        what: &'static str,
    },
    /// A certificate, key or signing request could not be read.
    #[error("{what} could not be read ({reason}); {hint}")]
    Unreadable {
        /// What was read ("the certificate in /x/ca.pem").
        what: String,
        /// Why it does not read.
        reason: String,
        /// What to do.
        hint: &'static str,
    },
    /// A key or certificate could not be made.
    #[error("could not {what}: {reason}")]
    Make {
        /// What was being made ("sign the host's certificate").
        what: &'static str,
        /// Why not.
        reason: String,
    },
    /// TLS settings could not be built from these certificates.
    #[error("could not set up TLS with {what}: {reason}; check that the certificate and key belong together and come from Ferry's CA")]
    Tls {
        /// Which settings.
        what: &'static str,
        /// rustls' reason.
        reason: String,
    },
    /// A name given for a certificate is neither a DNS name nor an IP
    /// address.
    #[error("'{0}' is not a DNS name or an IP address; give names such as engine.example.com or 10.0.0.5")]
    BadName(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn make(what: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Make {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn tls(what: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Tls {
            what,
            reason: e.to_string(),
        }
    }
}
