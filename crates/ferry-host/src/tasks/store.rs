//! Task records on disk: `run_dir/tasks/<id>.json`, one per task, written
//! atomically, so that a task outlives the agent that started it.

use std::path::{Path, PathBuf};

use ferry_api::agent::TaskStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::fsutil::{sync_dir, write_atomic};

/// What is persisted of a task: its status and the parameters it is
/// re-run with after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    #[serde(flatten)]
    pub(crate) status: TaskStatus,
    pub(crate) params: Value,
}

/// The task directory.
#[derive(Debug, Clone)]
pub(crate) struct TaskStore {
    dir: PathBuf,
}

impl TaskStore {
    /// Uses (and creates) `run_dir/tasks`.
    pub(crate) fn open(run_dir: &Path) -> Result<Self> {
        let dir = run_dir.join("tasks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        Ok(TaskStore { dir })
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes one record. Blocking.
    pub(crate) fn save(&self, record: &TaskRecord) -> Result<()> {
        let text = serde_json::to_vec_pretty(record).map_err(|e| {
            Error::Internal(format!("cannot encode task {}: {e}", record.status.id))
        })?;
        write_atomic(&self.path(record.status.id), &text)
    }

    /// Removes one record; a missing one is fine. Blocking.
    pub(crate) fn remove(&self, id: Uuid) -> Result<()> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &path, e)),
        }
    }

    /// Every record that can be read. A record that cannot (hand-edited,
    /// or from a future version) is left in place and reported, rather than
    /// stopping the agent. Blocking.
    pub(crate) fn load_all(&self) -> Result<Vec<TaskRecord>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| Error::io("list", &self.dir, e))?.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| Uuid::parse_str(n).ok());
            let Some(id) = id else { continue };
            let record = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<TaskRecord>(&b).map_err(|e| e.to_string()));
            match record {
                Ok(r) if r.status.id == id => out.push(r),
                Ok(r) => {
                    tracing::warn!(path = %path.display(), "ignoring a task record whose id is {}", r.status.id)
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring an unreadable task record: {e}")
                }
            }
        }
        out.sort_by_key(|r| (r.status.started, r.status.id));
        Ok(out)
    }
}
