//! `ferry domain ...`

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use ferry_api::engine::CreateDomain;
use ferry_engine::EngineClient;

use super::output::{bytes, json, table};
use crate::stdout::out;

/// Storage domain commands.
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Create a storage domain in a directory every host can reach.
    Create {
        /// Its name.
        name: String,
        /// The directory it is created in (the domain becomes DIR/<uuid>).
        #[arg(long, value_name = "DIR")]
        path: PathBuf,
    },
    /// List storage domains with their space.
    List,
}

pub(super) async fn run(c: EngineClient, cmd: DomainCommand, as_json: bool) -> Result<()> {
    match cmd {
        DomainCommand::Create { name, path } => {
            let path = std::path::absolute(&path)
                .with_context(|| format!("cannot resolve {}", path.display()))?;
            let d = c.create_domain(&CreateDomain { name, path }).await?;
            if as_json {
                return json(&d);
            }
            out!(
                "created storage domain {} ({}) at {}",
                d.name,
                d.id,
                d.path.display()
            );
        }
        DomainCommand::List => {
            let list = c.domains().await?;
            if as_json {
                return json(&list);
            }
            let rows = list
                .iter()
                .map(|d| {
                    vec![
                        d.name.clone(),
                        d.id.to_string(),
                        bytes(d.capacity),
                        bytes(d.free),
                        d.disks.len().to_string(),
                        if d.master {
                            "master".into()
                        } else {
                            String::new()
                        },
                        d.path.display().to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            table(
                &["NAME", "ID", "SIZE", "FREE", "DISKS", "ROLE", "PATH"],
                &rows,
            );
        }
    }
    Ok(())
}
