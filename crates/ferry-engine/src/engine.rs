//! The engine's shared state: the database, the agents, the event log,
//! the PKI and the token's hash, behind one `Arc` that the REST handlers, the monitor and the
//! move flow all hold.

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use crate::agents::Agents;
use crate::config::EngineLimits;
use crate::db::Db;
use crate::error::Result;
use crate::events::Events;
use crate::flow::pace::PaceView;
use crate::flow::queue::MoveQueue;
use crate::live::LiveMap;
use crate::ovirt::Sso;
use crate::pki::EnginePki;

/// The engine core. It knows nothing of HTTP: the REST layer translates
/// requests into calls of `crate::ops` and `crate::flow` on it.
pub struct Engine {
    db: Db,
    pki: Arc<EnginePki>,
    agents: Agents,
    events: Events,
    /// The SHA-256 of the bearer token (hex): all it needs to check one.
    token_hash: String,
    /// One poll at a time: a test's `monitor::poll_now` waits for the
    /// background poll instead of interleaving with it.
    poll: Mutex<()>,
    /// One SPM election at a time, whether the monitor or an operation
    /// (the first domain, a new host) starts it.
    election: Mutex<()>,
    /// Inventory changes that check and then write (a name is free, a
    /// disk belongs to no VM) hold this, so two requests cannot both pass
    /// the check.
    inventory: Mutex<()>,
    /// How many moves copy at once, and which wait.
    moves: MoveQueue,
    /// The bounds it works within.
    limits: EngineLimits,
    /// Why each paused VM is paused, as its host last said: a live
    /// condition, so kept in memory and learnt again after a restart.
    pauses: LiveMap<String>,
    /// How each job's guest-paced copy stands now: live figures, kept in
    /// memory while the copy runs.
    paces: LiveMap<PaceView>,
    /// The oVirt API's sign-ins and administrator password.
    sso: Sso,
}

impl std::fmt::Debug for Engine {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("db", &self.db)
            .field("token_hash", &"<hidden>")
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the database at `database` (creating the schema) and builds
    /// the engine around it. Nothing runs yet: the monitor is started by
    /// [`crate::Server::bind`].
    pub async fn open(
        database: &str,
        token: impl Into<String>,
        limits: EngineLimits,
        pki: EnginePki,
    ) -> Result<Arc<Engine>> {
        let db = Db::open(database).await?;
        let pki = Arc::new(pki);
        for host in db.hosts().await? {
            pki.pins().set(&host);
        }
        Ok(Arc::new(Engine {
            agents: Agents::new(db.clone(), pki.clone(), limits.unreachable_after)?,
            pki,
            events: Events::new(db.clone()),
            db,
            token_hash: ferry_pki::random::hash_secret(&token.into()),
            poll: Mutex::new(()),
            election: Mutex::new(()),
            inventory: Mutex::new(()),
            moves: MoveQueue::new(limits.max_moves),
            limits,
            pauses: LiveMap::new(),
            paces: LiveMap::new(),
            sso: Sso::default(),
        }))
    }

    /// Why VM `vm`'s guest is paused, if it is.
    pub fn vm_pause(&self, vm: Uuid) -> Option<String> {
        self.pauses.get(vm)
    }

    /// Records why VM `vm` is paused (`None`: it is not); returns what was
    /// recorded before.
    pub(crate) fn set_vm_pause(&self, vm: Uuid, pause: Option<String>) -> Option<String> {
        self.pauses.set(vm, pause)
    }

    /// How job `job`'s guest-paced copy stands, while it runs.
    pub(crate) fn pace_of(&self, job: Uuid) -> Option<PaceView> {
        self.paces.get(job)
    }

    /// Records how job `job`'s copy stands (`None`: it is not paced now).
    pub(crate) fn set_pace(&self, job: Uuid, pace: Option<PaceView>) {
        self.paces.set(job, pace);
    }

    /// The oVirt API's single sign-on: its sessions, and the
    /// administrator's password hash the operator set at start.
    pub fn sso(&self) -> &Sso {
        &self.sso
    }

    /// The bounds it was started with.
    pub fn limits(&self) -> &EngineLimits {
        &self.limits
    }

    /// The move queue.
    pub(crate) fn moves(&self) -> &MoveQueue {
        &self.moves
    }

    /// The engine's CA, its certificates and the hosts' pins.
    pub fn pki(&self) -> &EnginePki {
        &self.pki
    }

    /// The inventory database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The agents of the hosts.
    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    /// The event log.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The SHA-256 (hex) of the bearer token every request but health
    /// must carry: the engine keeps no more of it.
    pub fn token_hash(&self) -> &str {
        &self.token_hash
    }

    /// Held while an inventory change checks and writes; the flow takes it
    /// too when it checks the inventory before locking disks.
    pub async fn inventory_lock(&self) -> MutexGuard<'_, ()> {
        self.inventory.lock().await
    }

    pub(crate) async fn poll_lock(&self) -> MutexGuard<'_, ()> {
        self.poll.lock().await
    }

    pub(crate) async fn election_lock(&self) -> MutexGuard<'_, ()> {
        self.election.lock().await
    }
}
