//! The storage layer's errors.
//!
//! Every message names the file or volume it is about and, where there is
//! one, what the user can do about it; the underlying cause is attached as
//! `source`, not repeated in the text.

use std::io;
use std::ops::Range;
use std::path::PathBuf;

use uuid::Uuid;

/// What went wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done, as a verb phrase ("read", "create", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A directory that should hold a storage domain does not.
    #[error("{} is not a usable storage domain: {reason}", path.display())]
    NotADomain {
        /// The directory that was opened.
        path: PathBuf,
        /// Why it is not a domain.
        reason: String,
    },

    /// The directory a domain is to be created in does not exist.
    #[error("cannot create storage domain '{name}' in {}: it is not a directory; create it (or mount the storage there) first", path.display())]
    RootMissing {
        /// The domain's name.
        name: String,
        /// The directory asked for.
        path: PathBuf,
    },

    /// The directory a domain is to be created in is not one for storage:
    /// a system directory, or one holding other things.
    #[error("cannot create storage domain '{name}' in {}: {why}", path.display())]
    RootUnsuitable {
        /// The domain's name.
        name: String,
        /// The directory asked for.
        path: PathBuf,
        /// What is wrong with it, and what to give instead.
        why: String,
    },

    /// A domain that is being created exists already.
    #[error("a storage domain already exists at {}", path.display())]
    DomainExists {
        /// Where it is.
        path: PathBuf,
    },

    /// A domain that a chain refers to is not known to the caller.
    #[error("volume {volume} names its parent on storage domain {domain}, which is not attached; attach that domain first")]
    UnknownDomain {
        /// The domain named.
        domain: Uuid,
        /// The volume that named it.
        volume: Uuid,
    },

    /// A metadata file could not be understood.
    #[error("metadata file {} is corrupt: {reason}", path.display())]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Rendered metadata would not fit in the 512 bytes VDSM allows.
    #[error("metadata for {} would take {len} bytes, more than the 512 VDSM allows; shorten the description", path.display())]
    MetadataTooLarge {
        /// The file that was being written.
        path: PathBuf,
        /// Its rendered size.
        len: usize,
    },

    /// A volume that should exist does not.
    #[error("volume {volume} of image {image} does not exist on storage domain {domain} (looked for {})", path.display())]
    VolumeNotFound {
        /// The domain searched.
        domain: Uuid,
        /// The image (disk) it belongs to.
        image: Uuid,
        /// The volume.
        volume: Uuid,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// A volume that is being created exists already.
    #[error("volume {} already exists", path.display())]
    VolumeExists {
        /// Where it is.
        path: PathBuf,
    },

    /// A volume names a parent whose files are not there.
    #[error("volume {} names parent {parent}, but {} does not exist", child.display(), expected.display())]
    ParentMissing {
        /// The child volume's file.
        child: PathBuf,
        /// The parent named in the child's metadata.
        parent: Uuid,
        /// Where the parent should be.
        expected: PathBuf,
    },

    /// A volume's metadata and its qcow2 header name different parents.
    #[error("volume {}: its metadata names parent {metadata}, but its qcow2 header names {header}", path.display())]
    ParentMismatch {
        /// The volume's file.
        path: PathBuf,
        /// What the `.meta` file says (PUUID, or "none").
        metadata: String,
        /// What the qcow2 header says (backing file, or "none").
        header: String,
    },

    /// Following parents leads back to a volume already visited.
    #[error("the chain of {} loops: volume {volume} is its own ancestor", path.display())]
    ChainLoop {
        /// The volume file where the walk started.
        path: PathBuf,
        /// The volume met twice.
        volume: Uuid,
    },

    /// An image directory does not hold exactly one top volume.
    #[error("image {} has {count} top volumes ({names}); expected exactly one leaf", path.display())]
    AmbiguousLeaf {
        /// The image directory.
        path: PathBuf,
        /// How many volumes no other volume names as parent.
        count: usize,
        /// Their ids.
        names: String,
    },

    /// A request is inconsistent in itself; nothing was changed.
    #[error("{0}")]
    InvalidRequest(String),

    /// A volume cannot be removed because other volumes or disks use it.
    #[error("volume {} is still used by {users}; remove those first", path.display())]
    VolumeInUse {
        /// The volume's file.
        path: PathBuf,
        /// Who uses it.
        users: String,
    },

    /// A volume is not LEGAL and so may not be read from or built upon.
    #[error("volume {} is {legality:?}, not LEGAL: it is incomplete or being copied", path.display())]
    NotLegal {
        /// The volume's file.
        path: PathBuf,
        /// Its legality.
        legality: ferry_api::Legality,
    },

    /// The destination has less free space than the copy needs; nothing
    /// was written.
    #[error("storage domain {domain} has {free} bytes free but {needed} are needed; free space there or choose another domain")]
    NoSpace {
        /// The destination domain's name.
        domain: String,
        /// Bytes the operation needs.
        needed: u64,
        /// Bytes free.
        free: u64,
    },

    /// `qemu-img` could not be run or failed.
    #[error("`{command}` failed: {stderr}")]
    QemuImg {
        /// The command line, for the user to re-run.
        command: String,
        /// What qemu-img printed on standard error, or why it did not run.
        stderr: String,
    },

    /// The copy was cancelled by its caller; the partial copy was removed.
    #[error("the copy of {} was cancelled", path.display())]
    Cancelled {
        /// The volume being copied.
        path: PathBuf,
    },

    /// A copied volume does not read as its source does.
    #[error("copy {} differs from its source {}: content differs at {}, allocation differs at {}",
        copy.display(), source_path.display(), ranges_text(content), ranges_text(allocation))]
    VerifyFailed {
        /// The source volume.
        source_path: PathBuf,
        /// The copy.
        copy: PathBuf,
        /// Byte ranges whose guest-visible content differs.
        content: Vec<Range<u64>>,
        /// Byte ranges allocated differently in the layer itself.
        allocation: Vec<Range<u64>>,
    },
}

/// Result with the storage layer's error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with what was done to which path.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether the error means the destination ran out of space: ENOSPC
    /// from our own I/O, or from `qemu-img`, which reports it only in the
    /// words of `strerror(ENOSPC)`.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.raw_os_error() == Some(28),
            Error::NoSpace { .. } => true,
            Error::QemuImg { stderr, .. } => stderr.contains("No space left on device"),
            _ => false,
        }
    }
}

/// Renders byte ranges as `[start, end)` in a short, human list.
pub fn ranges_text(ranges: &[Range<u64>]) -> String {
    if ranges.is_empty() {
        return "nowhere".to_string();
    }
    let mut parts: Vec<String> = ranges
        .iter()
        .take(8)
        .map(|r| format!("[{:#x}, {:#x})", r.start, r.end))
        .collect();
    if ranges.len() > 8 {
        parts.push(format!("and {} more", ranges.len() - 8));
    }
    parts.join(", ")
}
