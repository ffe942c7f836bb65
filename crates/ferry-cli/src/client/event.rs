//! `ferry event ...`: the engine's event log (what the web UI's Events
//! view shows) for a terminal or a script, so an operator can see what
//! happened to a host, a VM, a disk, a domain or a job without a browser.

use anyhow::{bail, Result};
use clap::Subcommand;
use ferry_api::engine::Event;
use ferry_engine::EngineClient;
use uuid::Uuid;

use super::names::Names;
use super::output::{json, table};
use crate::stdout::out;

/// Event commands.
#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// List the last events, oldest first (with --json, the API's list,
    /// newest first).
    List {
        /// Only the events about this job, host, VM, disk or domain: its
        /// id, or the name of a host, VM, disk or domain.
        #[arg(long, value_name = "NAME|ID")]
        about: Option<String>,
        /// How many of the last events (1 to 10000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub(super) async fn run(c: EngineClient, cmd: EventCommand, as_json: bool) -> Result<()> {
    match cmd {
        EventCommand::List { about, limit } => {
            let names = Names::load(&c).await?;
            let events = match about {
                Some(about) => c.events_about(object(&names, &about)?, Some(limit)).await?,
                None => c.events(Some(limit)).await?,
            };
            if as_json {
                return json(&events);
            }
            if events.is_empty() {
                out!("no events");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = events.iter().rev().map(|e| row(e, &names)).collect();
            table(&["TIME (UTC)", "KIND", "ABOUT", "MESSAGE"], &rows);
        }
    }
    Ok(())
}

/// The id `about` names: an id as it is (a job's, or something since
/// removed, whose events stay), else the one host, VM, disk or domain of
/// that name.
fn object(names: &Names, about: &str) -> Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(about) {
        return Ok(id);
    }
    match names.ids_named(about).as_slice() {
        [id] => Ok(*id),
        [] => bail!(
            "no host, VM, disk or domain is named {about:?}: give a name from `ferry host|vm|disk|domain list`, or an id (a job's from `ferry job list`)"
        ),
        ids => bail!(
            "{about:?} names more than one thing ({}): give the id of the one you mean",
            ids.iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn row(e: &Event, names: &Names) -> Vec<String> {
    vec![
        when(e.time),
        e.kind.clone(),
        e.object.map(|o| names.of(o)).unwrap_or_default(),
        e.message.clone(),
    ]
}

/// An event's time (milliseconds since the epoch) to the second, in UTC.
fn when(ms: u64) -> String {
    format!("{}Z", ferry_engine::ops::certs::date_time(ms / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_to_the_second() {
        assert_eq!(when(0), "1970-01-01T00:00:00Z");
        assert_eq!(when(1_796_660_591_999), "2026-12-07T16:23:11Z");
    }

    #[test]
    fn a_name_is_one_thing_or_refused() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let names = Names::from_pairs([(a, "disk1"), (b, "twice"), (Uuid::new_v4(), "twice")]);
        assert_eq!(object(&names, "disk1").expect("one"), a);
        assert_eq!(object(&names, &b.to_string()).expect("an id"), b);
        let none = object(&names, "nosuch").expect_err("no such name");
        assert!(none.to_string().contains("\"nosuch\""), "{none}");
        let two = object(&names, "twice").expect_err("ambiguous");
        assert!(two.to_string().contains("more than one"), "{two}");
    }
}
