//! `ferry host ...`

use anyhow::Result;
use clap::Subcommand;
use ferry_api::engine::{AddHost, HostStatus};
use ferry_engine::EngineClient;

use super::output::{json, table};
use crate::stdout::out;

/// Host commands.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// List hosts, their state and which one is SPM.
    List,
    /// Add a host whose agent (`ferry agent`) already runs. Here `--token`
    /// is the agent's token; the engine's comes from FERRY_TOKEN or
    /// client.json.
    Add {
        /// Its name.
        name: String,
        /// Its agent's URL, e.g. http://host2:54321.
        #[arg(long)]
        url: String,
    },
}

pub(super) async fn run(
    c: EngineClient,
    cmd: HostCommand,
    agent_token: Option<String>,
    as_json: bool,
) -> Result<()> {
    match cmd {
        HostCommand::List => {
            let list = c.hosts().await?;
            if as_json {
                return json(&list);
            }
            let rows = list
                .iter()
                .map(|h| {
                    vec![
                        h.name.clone(),
                        match h.status {
                            HostStatus::Up => "up".into(),
                            HostStatus::Down => "down".into(),
                        },
                        if h.spm { "SPM".into() } else { String::new() },
                        h.url.clone(),
                        h.error.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>();
            table(&["NAME", "STATUS", "ROLE", "URL", "ERROR"], &rows);
        }
        HostCommand::Add { name, url } => {
            let Some(agent_token) = agent_token else {
                anyhow::bail!(
                    "give the agent's token with --token (the one `ferry agent` was started with)"
                );
            };
            let h = c
                .add_host(&AddHost {
                    name,
                    url,
                    token: agent_token,
                })
                .await?;
            if as_json {
                return json(&h);
            }
            out!("added host {} ({})", h.name, h.id);
        }
    }
    Ok(())
}
