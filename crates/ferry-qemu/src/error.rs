//! What can go wrong talking to QEMU.

use std::path::PathBuf;

/// Every failure of a QMP exchange, a QEMU process or a block operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a socket or file failed.
    #[error("{what} failed")]
    Io {
        /// What Ferry was doing.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU could not be started with the given configuration.
    #[error("QEMU for VM {vm} did not start: {message}")]
    Start {
        /// The VM's name.
        vm: String,
        /// What QEMU printed, or why Ferry gave up waiting.
        message: String,
    },
    /// QEMU, asked to run the VM under KVM, did not start: on a host
    /// whose KVM cannot run the guest this is how it shows, and the
    /// operator's way out is to check KVM or run under TCG.
    #[error("QEMU for VM {vm} did not start under KVM: {message}. If this host cannot run guests under KVM (nested virtualisation without the CPU features QEMU needs, /dev/kvm missing or not usable), start the agent with --accel tcg, or check the host's KVM (dmesg, ls -l /dev/kvm)")]
    KvmStart {
        /// The VM's name.
        vm: String,
        /// What QEMU printed, first line.
        message: String,
    },
    /// QEMU answered a command with an error.
    #[error("QEMU refused {command}: {desc} ({class})")]
    Command {
        /// The QMP command.
        command: String,
        /// QEMU's error class, such as `GenericError`.
        class: String,
        /// QEMU's human-readable description.
        desc: String,
    },
    /// QEMU sent something that is not QMP as Ferry understands it.
    #[error("QEMU sent an unexpected reply to {command}: {detail}")]
    Protocol {
        /// The command or phase of the exchange.
        command: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The QMP connection closed, usually because QEMU exited.
    #[error("the QMP connection to {socket} is closed; the VM has probably stopped")]
    Closed {
        /// The monitor socket.
        socket: PathBuf,
    },
    /// Nothing happened within the time Ferry allows for it.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// What Ferry was waiting for.
        what: String,
        /// How long it waited.
        seconds: u64,
    },
    /// A block job ended without doing its work.
    #[error("block job {job} failed: {message}")]
    JobFailed {
        /// The job id.
        job: String,
        /// QEMU's reason, or how the job ended.
        message: String,
    },
    /// The caller asked for something that cannot be done as asked.
    #[error("{0}")]
    InvalidRequest(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// True when QEMU itself said no to a command (as opposed to the
    /// connection or process failing), so a retry will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Command { .. } | Error::InvalidRequest(_))
    }

    /// True when a block job failed because the storage it writes to is
    /// full. QEMU says so only as the text of `ENOSPC` in the job's error,
    /// so this is the one place that reads it; everything above decides
    /// on the kind.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::JobFailed { message, .. } if message.contains("No space left on device"))
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
