//! `ferry host ...`: hosts, their enrolment and their certificates.

use anyhow::Result;
use clap::Subcommand;
use ferry_api::engine::{AddHost, HostEnrolment, HostStatus, Reenrol};
use ferry_engine::EngineClient;

use super::output::{expiry, json, table};
use crate::stdout::out;

/// Host commands.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// List hosts, their state, which one is SPM and when each one's
    /// certificate expires.
    List,
    /// Add a host. It waits, enrolling, until its agent enrolls with the
    /// one-time token printed here (`ferry agent enroll` on the host).
    Add {
        /// Its name.
        name: String,
        /// Its agent's URL, e.g. https://host2:54321.
        #[arg(long)]
        url: String,
    },
    /// A new one-time enrolment token for a host: its token was lost or
    /// expired, or its agent's key or certificate was (its current
    /// certificate stays accepted until it enrolls again).
    Enroll {
        /// Its name or UUID.
        name: String,
        /// Its agent's new URL, if it moved.
        #[arg(long)]
        url: Option<String>,
    },
    /// Remove a host: its certificate is no longer accepted. Refused while
    /// VMs are defined on it.
    Remove {
        /// Its name or UUID.
        name: String,
    },
}

pub(super) async fn run(c: EngineClient, cmd: HostCommand, as_json: bool) -> Result<()> {
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
                            HostStatus::Enrolling => "enrolling".into(),
                        },
                        if h.spm { "SPM".into() } else { String::new() },
                        h.url.clone(),
                        h.certificate
                            .as_ref()
                            .map_or_else(|| "-".into(), |c| expiry(c.not_after)),
                        h.error.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>();
            table(
                &["NAME", "STATUS", "ROLE", "URL", "CERT EXPIRES", "ERROR"],
                &rows,
            );
        }
        HostCommand::Add { name, url } => {
            let e = c.add_host(&AddHost { name, url }).await?;
            if as_json {
                return json(&e);
            }
            print_enrolment(&c, &e, "added");
        }
        HostCommand::Enroll { name, url } => {
            let e = c.reenrol_host(&name, &Reenrol { url }).await?;
            if as_json {
                return json(&e);
            }
            print_enrolment(&c, &e, "new enrolment token for");
        }
        HostCommand::Remove { name } => {
            c.remove_host(&name).await?;
            if !as_json {
                out!("removed host {name}; its certificate is no longer accepted");
            }
        }
    }
    Ok(())
}

fn print_enrolment(c: &EngineClient, e: &HostEnrolment, what: &str) {
    out!("{what} host {} ({})", e.host.name, e.host.id);
    out!(
        "on {}, with its agent stopped, run (the token works once, until {}):",
        e.host.name,
        expiry(e.expires)
    );
    out!(
        "  FERRY_ENROLL_TOKEN={} ferry agent enroll --engine {} --run-dir /var/lib/ferry/agent",
        e.token,
        c.url()
    );
    out!("then start the agent: ferry agent --run-dir /var/lib/ferry/agent --listen 0.0.0.0:54321");
}
