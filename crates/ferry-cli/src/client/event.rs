//! `ferry event ...`: the engine's event log (what the web UI's Events
//! view shows) for a terminal or a script, so an operator can see what
//! happened to a host, a VM, a disk, a domain or a job without a browser.

use std::time::Duration;

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
        /// After the last events, keep printing new ones as they come,
        /// until interrupted (Ctrl-C), as `tail -f` does. With --json,
        /// every event is one JSON object per line, oldest first.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

/// How often `--follow` asks the engine for new events.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// How many new events one `--follow` request fetches; more wait for the
/// next request, which comes at once.
const FOLLOW_BATCH: u32 = 1000;

pub(super) async fn run(c: EngineClient, cmd: EventCommand, as_json: bool) -> Result<()> {
    match cmd {
        EventCommand::List {
            about,
            limit,
            follow,
        } => {
            // Names only for what is printed for a person: `--json` keeps
            // ids, and an id given to --about needs no lookup.
            let needs_names = !as_json
                || about
                    .as_deref()
                    .is_some_and(|a| Uuid::parse_str(a).is_err());
            let mut names = if needs_names {
                Names::load(&c).await?
            } else {
                Names::default()
            };
            let about = about.map(|a| object(&names, &a)).transpose()?;
            let events = match about {
                Some(id) => c.events_about(id, Some(limit)).await?,
                None => c.events(Some(limit)).await?,
            };
            if follow {
                return follow_log(&c, events, about, &mut names, as_json).await;
            }
            if as_json {
                return json(&events);
            }
            if events.is_empty() {
                out!("no events");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = events.iter().rev().map(|e| row(e, &names)).collect();
            table(HEADER, &rows);
        }
    }
    Ok(())
}

const HEADER: &[&str] = &["TIME (UTC)", "KIND", "ABOUT", "MESSAGE"];

/// `--follow`: prints `last` (newest first, as the API gives them), then
/// every event after them, oldest first, as the engine records them; ends
/// only on an error (the engine gone away) or when interrupted.
async fn follow_log(
    c: &EngineClient,
    last: Vec<Event>,
    about: Option<Uuid>,
    names: &mut Names,
    as_json: bool,
) -> Result<()> {
    let mut seen = last.first().map_or(0, |e| e.id);
    let print = |events: &[Event], names: &Names| -> Result<()> {
        for e in events.iter().rev() {
            if as_json {
                out!("{}", serde_json::to_string(e)?);
            } else {
                out!("{}", follow_line(e, names));
            }
        }
        Ok(())
    };
    if !as_json {
        out!(
            "{}",
            follow_line_of(&HEADER.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        );
    }
    print(&last, names)?;
    loop {
        let new = c.events_after(seen, about, Some(FOLLOW_BATCH)).await?;
        let Some(newest) = new.first() else {
            tokio::time::sleep(FOLLOW_EVERY).await;
            continue;
        };
        seen = newest.id;
        // Something named since the names were read: read them again
        // (a job has no name; its id is what is printed).
        if !as_json
            && new
                .iter()
                .any(|e| e.kind != "job" && e.object.is_some_and(|o| !names.knows(o)))
        {
            *names = Names::load(c).await?;
        }
        print(&new, names)?;
        if new.len() < FOLLOW_BATCH as usize {
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
}

/// One event as `--follow` prints it: the table's columns, at widths
/// fixed in advance since the rows to come are not known.
fn follow_line(e: &Event, names: &Names) -> String {
    follow_line_of(&row(e, names))
}

fn follow_line_of(cells: &[String]) -> String {
    const WIDTHS: [usize; 3] = [20, 6, 12];
    cells
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c:<w$}", w = WIDTHS.get(i).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_string()
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
    fn a_followed_event_prints_in_the_tables_columns() {
        let vm = Uuid::new_v4();
        let names = Names::from_pairs([(vm, "vm1")]);
        let e = Event {
            id: 7,
            time: 1_796_660_591_000,
            kind: "vm".into(),
            message: "VM vm1 started".into(),
            object: Some(vm),
        };
        assert_eq!(
            follow_line(&e, &names),
            "2026-12-07T16:23:11Z  vm      vm1           VM vm1 started"
        );
        let header = HEADER.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(
            follow_line_of(&header),
            "TIME (UTC)            KIND    ABOUT         MESSAGE"
        );
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
