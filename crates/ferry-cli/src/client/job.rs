//! `ferry job ...`

use anyhow::Result;
use clap::Subcommand;
use ferry_engine::EngineClient;
use uuid::Uuid;

use super::names::Names;
use super::output::{bytes, json, table};
use super::wait::{describe, follow, job_word};
use crate::stdout::out;

/// The most events `job show` prints, the last ones: a job's story, its
/// failed copy attempts included, without the whole event log.
const SHOWN_EVENTS: u32 = 50;

/// Job commands.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// List jobs, newest first.
    List,
    /// Show a job, its steps and its events.
    Show {
        /// The job's id.
        id: Uuid,
    },
    /// Wait for a job, showing its progress; fail if it fails.
    Wait {
        /// The job's id.
        id: Uuid,
    },
    /// Cancel a job (possible until finalizeBlockMigrate starts): its disks
    /// end where they were.
    Cancel {
        /// The job's id.
        id: Uuid,
    },
    /// Carry on a job that failed after the switch to the destination
    /// (merge or cleanup; its disks are still locked) from the step that
    /// failed, once its cause is fixed.
    Retry {
        /// The job's id.
        id: Uuid,
        /// Follow it to its end, as `job wait` does.
        #[arg(long)]
        wait: bool,
    },
}

pub(super) async fn run(c: EngineClient, cmd: JobCommand, as_json: bool) -> Result<()> {
    match cmd {
        JobCommand::List => {
            let list = c.jobs().await?;
            if as_json {
                return json(&list);
            }
            let names = Names::load(&c).await?;
            let rows = list
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        format!("{:?}", j.kind).to_lowercase(),
                        format!("{:?}", j.mode).to_lowercase(),
                        job_word(j).to_string(),
                        j.step.to_string(),
                        format!("{}/{}", bytes(j.done_bytes), bytes(j.total_bytes)),
                        j.disks
                            .iter()
                            .map(|d| names.of(*d))
                            .collect::<Vec<_>>()
                            .join(","),
                        names.of(j.dst_domain),
                    ]
                })
                .collect::<Vec<_>>();
            table(
                &[
                    "ID", "KIND", "MODE", "STATE", "STEP", "COPIED", "DISKS", "TO",
                ],
                &rows,
            );
        }
        JobCommand::Show { id } => {
            let job = c.job(id).await?;
            if as_json {
                return json(&job);
            }
            describe(&job, &Names::load(&c).await?);
            let mut events = c.events_about(id, Some(SHOWN_EVENTS)).await?;
            events.reverse();
            if !events.is_empty() {
                out!("  events (seconds since the job was created):");
            }
            for e in events {
                let since = e.time.saturating_sub(job.created) as f64 / 1000.0;
                out!("    {since:>8.1}  {}", e.message);
            }
        }
        JobCommand::Wait { id } => {
            let job = c.job(id).await?;
            follow(&c, job, as_json).await?;
        }
        JobCommand::Cancel { id } => {
            let job = c.cancel_job(id).await?;
            if as_json {
                return json(&job);
            }
            out!("cancel of job {id} requested; it rolls back now (ferry job wait {id})");
        }
        JobCommand::Retry { id, wait } => {
            let job = c.retry_job(id).await?;
            if wait {
                return follow(&c, job, as_json).await;
            }
            if as_json {
                return json(&job);
            }
            out!(
                "job {id} runs again from {} (ferry job wait {id})",
                job.step
            );
        }
    }
    Ok(())
}
