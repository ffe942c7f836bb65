//! An asynchronous QMP client.
//!
//! QMP is a line protocol of JSON objects over a Unix socket: a greeting,
//! `qmp_capabilities`, then commands answered by `return` or `error`, with
//! asynchronous events interleaved. Ferry writes its own small client rather
//! than using the `qapi` crate's generated types because those decode QEMU
//! 7.2's replies strictly and fail on fields 7.2 does not send (see
//! docs/architecture.md §7); here replies stay `serde_json::Value` until a
//! caller decodes the few fields it needs, leniently.
//!
//! Replies are matched to commands by an `id`, so many tasks may share one
//! connection; events go to every subscriber through a broadcast channel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot, watch};

use crate::error::{Error, Result};

/// How long a single command may take before Ferry gives up on it. Block
/// graph commands finish in milliseconds; a stuck monitor is a broken VM.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// An asynchronous QMP event, such as `JOB_STATUS_CHANGE` or `SHUTDOWN`.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's name.
    pub name: String,
    /// Its `data` member (`null` when absent).
    pub data: Value,
}

impl Event {
    /// A string member of the event's data, for matching job ids.
    pub fn data_str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value>>>>>;

/// A connected QMP monitor. Cheap to clone; all clones share the socket.
#[derive(Debug, Clone)]
pub struct Qmp {
    socket: PathBuf,
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    events: broadcast::Sender<Event>,
    closed: watch::Receiver<bool>,
}

impl Qmp {
    /// Connects to a QMP socket, reads the greeting and leaves negotiation
    /// mode, so commands can be sent at once.
    pub async fn connect(socket: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| Error::io(format!("connecting to QMP socket {}", socket.display()), e))?;
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = tokio::time::timeout(COMMAND_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| Error::Timeout {
                what: format!("the QMP greeting on {}", socket.display()),
                seconds: COMMAND_TIMEOUT.as_secs(),
            })?
            .map_err(|e| Error::io("reading the QMP greeting", e))?;
        let greeting = greeting.ok_or_else(|| Error::Closed {
            socket: socket.to_path_buf(),
        })?;
        let greeting: Value = serde_json::from_str(&greeting).map_err(|e| Error::Protocol {
            command: "greeting".into(),
            detail: e.to_string(),
        })?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Protocol {
                command: "greeting".into(),
                detail: format!("expected a QMP greeting, got {greeting}"),
            });
        }

        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(1024);
        let (closed_tx, closed) = watch::channel(false);
        let qmp = Qmp {
            socket: socket.to_path_buf(),
            writer: Arc::new(tokio::sync::Mutex::new(write)),
            pending: pending.clone(),
            next_id: Arc::new(AtomicU64::new(1)),
            events: events.clone(),
            closed,
        };
        tokio::spawn(read_loop(lines, pending, events, closed_tx));
        qmp.execute("qmp_capabilities", Value::Null).await?;
        Ok(qmp)
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Subscribes to events. Subscribe *before* issuing the command whose
    /// events you wait for, or they may pass unseen.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// True once the connection has closed (QEMU exited or closed it).
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves when the connection closes: the notice that the VM died.
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        // An error means the reader is gone, which is also a close.
        let _ = closed.wait_for(|c| *c).await;
    }

    /// Runs a command and returns its `return` value. `args` of `null`
    /// sends no arguments.
    pub async fn execute(&self, command: &str, args: Value) -> Result<Value> {
        if self.is_closed() {
            return Err(Error::Closed {
                socket: self.socket.clone(),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "execute": command, "id": id });
        if !args.is_null() {
            message["arguments"] = args;
        }
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(id, tx);
        tracing::debug!(target: "ferry_qemu::qmp", %message, "QMP command");

        let mut line = message.to_string();
        line.push('\n');
        let sent = {
            let mut writer = self.writer.lock().await;
            writer.write_all(line.as_bytes()).await
        };
        if let Err(e) = sent {
            self.lock_pending().remove(&id);
            return Err(Error::io(format!("sending {command} to QEMU"), e));
        }

        let reply = match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => {
                return Err(Error::Closed {
                    socket: self.socket.clone(),
                })
            }
            Err(_) => {
                self.lock_pending().remove(&id);
                return Err(Error::Timeout {
                    what: format!("QEMU's answer to {command}"),
                    seconds: COMMAND_TIMEOUT.as_secs(),
                });
            }
        };
        reply.map_err(|e| match e {
            Error::Command { class, desc, .. } => Error::Command {
                command: command.to_string(),
                class,
                desc,
            },
            other => other,
        })
    }

    /// Runs a human monitor command (HMP) and returns its output; tests use
    /// it for `qemu-io` on a device.
    pub async fn hmp(&self, command_line: &str) -> Result<String> {
        let out = self
            .execute(
                "human-monitor-command",
                json!({ "command-line": command_line }),
            )
            .await?;
        Ok(out.as_str().unwrap_or_default().to_string())
    }

    fn lock_pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Value>>>> {
        lock(&self.pending)
    }
}

fn lock(
    pending: &Pending,
) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Value>>>> {
    // A panic while holding this lock leaves the map consistent (inserts
    // and removes only), so a poisoned lock is still usable.
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads QEMU's lines until the socket closes, handing each reply to the
/// command waiting for it and each event to every subscriber, then tells
/// waiters and watchers that the connection is gone.
async fn read_loop(
    mut lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    pending: Pending,
    events: broadcast::Sender<Event>,
    closed: watch::Sender<bool>,
) {
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "reading from QMP failed (QEMU exiting?)");
                break;
            }
        };
        let message: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, line, "QEMU sent a line that is not JSON");
                continue;
            }
        };
        if let Some(name) = message.get("event").and_then(Value::as_str) {
            publish_event(&events, name, &message);
        } else {
            deliver_reply(&pending, &message);
        }
    }
    // Waiters see their sender dropped and report Closed.
    lock(&pending).clear();
    let _ = closed.send(true);
}

fn publish_event(events: &broadcast::Sender<Event>, name: &str, message: &Value) {
    tracing::debug!(target: "ferry_qemu::qmp", %message, "QMP event");
    let event = Event {
        name: name.to_string(),
        data: message.get("data").cloned().unwrap_or(Value::Null),
    };
    // No subscribers is fine: nobody is waiting.
    let _ = events.send(event);
}

/// Hands a reply to the command waiting for it, matched by `id`. A reply
/// nobody waits for any more (its command timed out) is dropped.
fn deliver_reply(pending: &Pending, message: &Value) {
    let Some(id) = message.get("id").and_then(Value::as_u64) else {
        tracing::warn!(%message, "QEMU sent a reply without an id");
        return;
    };
    let Some(waiter) = lock(pending).remove(&id) else {
        return;
    };
    let _ = waiter.send(reply_result(message));
}

/// A reply's `return` value, or its `error`; [`Qmp::execute`] fills in the
/// command's name.
fn reply_result(message: &Value) -> Result<Value> {
    if let Some(ret) = message.get("return") {
        Ok(ret.clone())
    } else if let Some(err) = message.get("error") {
        Err(Error::Command {
            command: String::new(),
            class: err
                .get("class")
                .and_then(Value::as_str)
                .unwrap_or("GenericError")
                .to_string(),
            desc: err
                .get("desc")
                .and_then(Value::as_str)
                .unwrap_or("no description")
                .to_string(),
        })
    } else {
        Err(Error::Protocol {
            command: String::new(),
            detail: format!("a reply with neither return nor error: {message}"),
        })
    }
}
