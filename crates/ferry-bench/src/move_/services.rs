//! The engine and the local agent the bench moves through, each a task of
//! this process, started as `ferry up` starts them.

use std::fs;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ferry_agent_client::AgentClient;
use ferry_api::engine::CreateDomain;
use ferry_engine::{EngineClient, EngineConfig, PkiConfig};
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
        // A random token, so nothing else on the machine can drive the
        // bench's engine; the agent speaks mutual TLS with it only.
        let engine_token = ferry_pki::random::secret();
        let listen = "127.0.0.1:0".parse().context("a literal address")?;
        let engine = ferry_engine::Server::bind(EngineConfig {
            listen,
            token: engine_token.clone(),
            database: EngineConfig::sqlite_url(dir),
            limits: ferry_engine::EngineLimits::default(),
            pki: PkiConfig {
                dir: dir.join("pki"),
                names: PkiConfig::default_names(listen),
                https: false,
                ca_files: None,
            },
        })
        .await
        .context("cannot start the engine")?;
        let url = engine.url();
        let (stop_engine, stopped) = stop_signal();
        let engine_task = tokio::spawn(engine.run_until(stopped));
        let client = EngineClient::new(&url, &engine_token);

        let run_dir = agent_run_dir(dir);
        let listener =
            ferry_testkit::pki::enroll_in_process(&client, &url, "local", &run_dir).await;
        let agent = ferry_host::Server::bind_on(
            AgentConfig {
                name: Some("local".into()),
                listen,
                run_dir,
                domains: Vec::new(),
                accel,
            },
            ferry_host::tasks::VerbRegistry::standard(),
            listener,
        )
        .await
        .context("cannot start the local agent")?;
        let agent_url = format!("https://{}", agent.local_addr());
        let agent_state = agent.agent().clone();
        let (stop_agent, stopped) = stop_signal();
        let agent_task = tokio::spawn(agent.run_until(stopped));

        let services = Services {
            agent: AgentClient::new(&agent_url, &ferry_testkit::pki::engine_client_tls(dir)),
            client,
            agent_state,
            stop_engine,
            engine_task,
            stop_agent,
            agent_task,
        };
        services.set_up(dir).await?;
        Ok(services)
    }

    /// Waits for the agent as host `local` and creates domain1 and
    /// domain2.
    async fn set_up(&self, dir: &Path) -> Result<()> {
        let c = &self.client;
        c.wait_host_up("local", Duration::from_secs(30))
            .await
            .context("the local agent did not come up")?;
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

    /// Where disk `image` lives on domain `domain`, by the agent's own
    /// view of its storage.
    pub(super) fn image_dir(&self, domain: Uuid, image: Uuid) -> Result<std::path::PathBuf> {
        let d = self
            .agent_state
            .domains()
            .get(domain)
            .map_err(|e| anyhow::anyhow!("{}", e.full_text()))?;
        Ok(d.image_dir(image))
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
