//! Names for ids in human output: the user named the domain `domain2`, so
//! that is what `ferry` says; ids stay in `--json` and for jobs, which have
//! no names.

use std::collections::HashMap;

use anyhow::Result;
use ferry_engine::EngineClient;
use uuid::Uuid;

/// The names of the engine's hosts, domains, disks and VMs, read once.
#[derive(Debug, Default)]
pub struct Names(HashMap<Uuid, String>);

impl Names {
    /// Reads every named object's name.
    pub async fn load(c: &EngineClient) -> Result<Names> {
        let mut map = HashMap::new();
        for h in c.hosts().await? {
            map.insert(h.id, h.name);
        }
        for d in c.domains().await? {
            map.insert(d.id, d.name);
        }
        for d in c.disks().await? {
            map.insert(d.id, d.name);
        }
        for v in c.vms().await? {
            map.insert(v.id, v.name);
        }
        Ok(Names(map))
    }

    /// The name of `id`, or the id itself for something no longer there.
    pub fn of(&self, id: Uuid) -> String {
        self.0.get(&id).cloned().unwrap_or_else(|| id.to_string())
    }

    /// Whether `id` has a name here (it existed when the names were read).
    pub fn knows(&self, id: Uuid) -> bool {
        self.0.contains_key(&id)
    }

    /// Every id of that name (hosts, domains, disks and VMs are named
    /// apart, so a disk and a VM may share one).
    pub fn ids_named(&self, name: &str) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .0
            .iter()
            .filter(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Names made up for a test.
    #[cfg(test)]
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (Uuid, &'a str)>) -> Names {
        Names(
            pairs
                .into_iter()
                .map(|(id, n)| (id, n.to_string()))
                .collect(),
        )
    }

    /// Several names, comma-separated.
    pub fn list(&self, ids: &[Uuid]) -> String {
        ids.iter()
            .map(|id| self.of(*id))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
