//! Figures that describe a live condition (why a guest is paused, how a
//! copy is paced): kept in memory only, since the monitor or the runner
//! learns them again within a poll after a restart.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

/// One live figure per VM or job.
#[derive(Debug)]
pub(crate) struct LiveMap<V> {
    map: Mutex<HashMap<Uuid, V>>,
}

impl<V: Clone> LiveMap<V> {
    pub(crate) fn new() -> Self {
        LiveMap {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, V>> {
        // Plain inserts and removes: a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The figure of `id`, if any.
    pub(crate) fn get(&self, id: Uuid) -> Option<V> {
        self.lock().get(&id).cloned()
    }

    /// Records `id`'s figure (`None`: it has none now); returns the one
    /// recorded before.
    pub(crate) fn set(&self, id: Uuid, value: Option<V>) -> Option<V> {
        let mut map = self.lock();
        match value {
            Some(v) => map.insert(id, v),
            None => map.remove(&id),
        }
    }
}
