//! Progress of long operations, in bytes.

use serde::{Deserialize, Serialize};

/// Bytes done out of bytes to do: what a progress bar, a job row and a
/// rate/ETA estimate all need, and nothing they can disagree about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes already handled.
    pub done: u64,
    /// Bytes to handle in all; may grow while the operation runs.
    pub total: u64,
}

impl Progress {
    /// The fraction done, from 0.0 to 1.0; an empty operation counts as done.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64).min(1.0)
        }
    }
}
