//! The engine and the local agent the bench moves through, each a task of
//! this process, started as `ferry up` starts them.

use std::fs;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ferry_agent_client::AgentClient;
use ferry_api::engine::{AddHost, CreateDomain};
use ferry_engine::{EngineClient, EngineConfig};
use ferry_host::{Accel, AgentConfig, AgentState};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::workdir::{agent_run_dir, domains_dir};

/// The engine and the local agent, each in a task of this process.
pub(super) struct Services {
    pub(super) client: EngineClient,
    pub(super) agent: AgentClient,
    agent_state: Arc<AgentState>,
    stop_engine: oneshot::Sender<()>,
    engine_task: JoinHandle<ferry_engine::Result<()>>,
    stop_agent: oneshot::Sender<()>,
    agent_task: JoinHandle<ferry_host::Result<()>>,
}

/// A random token, so nothing else on the machine can drive the bench's
/// engine or agent.
fn secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// A server's shutdown signal: send on the sender to stop it.
fn stop_signal() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    (stop, async move {
        let _ = stopped.await;
    })
}

impl Services {
    /// Starts agent and engine as `ferry up` does, registers the agent as
    /// host `local` and creates domain1 and domain2 through the engine.
    pub(super) async fn start(dir: &Path, accel: Accel) -> Result<Services> {
        let agent_token = secret();
        let agent = ferry_host::Server::bind(AgentConfig {
            name: "local".into(),
            listen: "127.0.0.1:0".parse().context("a literal address")?,
            token: agent_token.clone(),
            run_dir: agent_run_dir(dir),
            domains: Vec::new(),
            accel,
        })
        .await
        .context("cannot start the local agent")?;
        let agent_url = format!("http://{}", agent.local_addr());
        let agent_state = agent.agent().clone();
        let (stop_agent, stopped) = stop_signal();
        let agent_task = tokio::spawn(agent.run_until(stopped));

        let engine_token = secret();
        let engine = ferry_engine::Server::bind(EngineConfig {
            listen: "127.0.0.1:0".parse().context("a literal address")?,
            token: engine_token.clone(),
            database: EngineConfig::sqlite_url(dir),
            limits: ferry_engine::EngineLimits::default(),
        })
        .await
        .context("cannot start the engine")?;
        let url = format!("http://{}", engine.local_addr());
        let (stop_engine, stopped) = stop_signal();
        let engine_task = tokio::spawn(engine.run_until(stopped));

        let services = Services {
            client: EngineClient::new(&url, &engine_token),
            agent: AgentClient::new(&agent_url, &agent_token),
            agent_state,
            stop_engine,
            engine_task,
            stop_agent,
            agent_task,
        };
        services.set_up(dir, agent_url, agent_token).await?;
        Ok(services)
    }

    /// Registers the agent as host `local` and creates domain1 and domain2.
    async fn set_up(&self, dir: &Path, agent_url: String, agent_token: String) -> Result<()> {
        let c = &self.client;
        c.add_host(&AddHost {
            name: "local".into(),
            url: agent_url,
            token: agent_token,
        })
        .await
        .context("cannot add the local agent to the engine")?;
        let domains = domains_dir(dir);
        fs::create_dir_all(&domains)?;
        for name in ["domain1", "domain2"] {
            c.create_domain(&CreateDomain {
                name: name.into(),
                path: domains.clone(),
            })
            .await
            .with_context(|| format!("cannot create storage domain {name}"))?;
        }
        Ok(())
    }

    /// Stops the engine, the agent's VMs and the agent.
    pub(super) async fn stop(self) {
        let _ = self.stop_engine.send(());
        let _ = self.engine_task.await;
        self.agent_state
            .vms()
            .stop_all(Duration::from_secs(0))
            .await;
        let _ = self.stop_agent.send(());
        let _ = self.agent_task.await;
    }
}
