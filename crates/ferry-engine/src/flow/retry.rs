//! How the flow treats a failure: retry what may pass (the agent is
//! restarting, the network blinked, the host is busy), stop on what will
//! not (the agent said no), and recognise a full destination and a VM
//! that stopped, each by its [`ErrorKind`], never by its words.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use ferry_agent_client::ClientError;
use ferry_api::engine::Step;
use ferry_api::ErrorKind;
use uuid::Uuid;

/// What a failed call means for the step that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// May pass: try again after a pause.
    Transient(String),
    /// Will not pass by trying again: roll back (or, past the switch
    /// point, report).
    Permanent(String),
    /// The VM a live step needs is not running (any more).
    VmNotRunning(String),
    /// The destination is full.
    NoSpace(String),
    /// An agent did not answer (or said it could not) for longer than the
    /// operator's bound: the job stops waiting for it.
    Unreachable(String),
    /// The user cancelled the job.
    Cancelled,
}

impl Failure {
    /// The failure in words, for the job's error.
    pub fn message(&self) -> String {
        match self {
            Failure::Transient(m)
            | Failure::Permanent(m)
            | Failure::VmNotRunning(m)
            | Failure::NoSpace(m)
            | Failure::Unreachable(m) => m.clone(),
            Failure::Cancelled => "the job was cancelled".into(),
        }
    }

    /// What a failure of `kind` saying `message` means for a step.
    pub fn of_kind(kind: ErrorKind, message: String) -> Failure {
        match kind {
            ErrorKind::NoSpace => Failure::NoSpace(message),
            ErrorKind::VmNotRunning => Failure::VmNotRunning(message),
            kind if kind.is_transient() => Failure::Transient(message),
            _ => Failure::Permanent(message),
        }
    }
}

impl From<ClientError> for Failure {
    /// An agent that did not answer, or answered with a server error, may
    /// be restarting or its host briefly unreachable: transient.
    fn from(e: ClientError) -> Self {
        Failure::of_kind(e.kind(), e.to_string())
    }
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Self {
        Failure::of_kind(e.kind(), e.to_string())
    }
}

/// How long a peer has gone without a useful answer, against the
/// operator's bound: the clock starts with the first failed attempt (when
/// it was sent, so a request that hung until its deadline counts whole)
/// and stops at the next answer.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    bound: Duration,
    since: Option<Instant>,
}

impl Patience {
    /// Patience that runs out after `bound` without an answer.
    pub fn new(bound: Duration) -> Self {
        Patience { bound, since: None }
    }

    /// The peer answered: the clock stops.
    pub fn answered(&mut self) {
        self.since = None;
    }

    /// An attempt sent at `sent` failed with `msg`, transiently. Once the
    /// failures have lasted the bound, the wait ends with
    /// [`Failure::Unreachable`], saying what was waited for and what to
    /// check.
    pub fn failed(&mut self, sent: Instant, step: Step, msg: &str) -> Result<(), Failure> {
        let since = *self.since.get_or_insert(sent);
        let waited = since.elapsed();
        if waited < self.bound {
            return Ok(());
        }
        Err(Failure::Unreachable(format!(
            "{step} got no answer for {} s ({msg}); check that the host is up and its agent runs ('ferry host list'), or raise --unreachable-timeout",
            waited.as_secs()
        )))
    }
}

/// Runs one agent call of `step` until it succeeds, fails for good, its
/// agent has not answered for `bound` ([`Patience`]), or `cancelled` says
/// the job was cancelled (asked after each transient failure, so a move
/// stuck on a host that does not answer can still be cancelled while it
/// can be): the one way a step asks an agent for something. Each
/// transient failure is logged with the job and the step, then retried
/// after [`backoff`]. A call in flight is never abandoned: the agent may
/// still carry it out, and the rollback must come after it.
pub async fn agent_call<T, E, F, Fut, C, CFut>(
    job: Uuid,
    step: Step,
    bound: Duration,
    mut call: F,
    mut cancelled: C,
) -> Result<T, Failure>
where
    E: Into<Failure>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: FnMut() -> CFut,
    CFut: Future<Output = bool>,
{
    let mut patience = Patience::new(bound);
    let mut attempt = 0u32;
    loop {
        let sent = Instant::now();
        match call().await.map_err(Into::into) {
            Ok(v) => return Ok(v),
            Err(Failure::Transient(msg)) => {
                attempt = attempt.saturating_add(1);
                tracing::warn!(%job, %step, attempt, "retrying: {msg}");
                patience.failed(sent, step, &msg)?;
                if cancelled().await {
                    return Err(Failure::Cancelled);
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(other) => return Err(other),
        }
    }
}

/// The pause before attempt `n` (from 1): half a second, doubling, at most
/// ten seconds.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.min(5));
    Duration::from_millis(ms.min(10_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(1000));
        assert!(backoff(2) > backoff(1));
        assert_eq!(backoff(30), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let bound = Duration::from_secs(3600);
        let mut calls = 0;
        let out: Result<u32, Failure> = agent_call(
            Uuid::new_v4(),
            Step::Merge,
            bound,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(Failure::Transient("agent restarting".into()))
                    } else {
                        Ok(n)
                    }
                }
            },
            || async { false },
        )
        .await;
        assert_eq!(out, Ok(3));

        let mut calls = 0;
        let out: Result<(), Failure> = agent_call(
            Uuid::new_v4(),
            Step::Merge,
            bound,
            || {
                calls += 1;
                async { Err(Failure::Permanent("no such VM".into())) }
            },
            || async { false },
        )
        .await;
        assert_eq!(calls, 1);
        assert!(matches!(out, Err(Failure::Permanent(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_ends_the_retries_of_an_agent_that_does_not_answer() {
        let url = "http://127.0.0.1:9";
        let mut calls = 0;
        let mut asked = 0;
        let out: Result<(), Failure> = agent_call(
            Uuid::new_v4(),
            Step::CreateVolumeCrossSd,
            Duration::from_secs(3600),
            || {
                calls += 1;
                async {
                    Err(ClientError::Timeout {
                        what: format!("the agent at {url} did not answer"),
                        waited: Duration::from_secs(120),
                    })
                }
            },
            || {
                asked += 1;
                let now = asked;
                async move { now >= 2 }
            },
        )
        .await;
        assert_eq!(out, Err(Failure::Cancelled));
        assert_eq!((calls, asked), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_that_does_not_answer_is_given_up_on_after_the_bound() {
        let mut calls = 0u32;
        let started = tokio::time::Instant::now();
        let out: Result<(), Failure> = agent_call(
            Uuid::new_v4(),
            Step::Cleanup,
            Duration::from_secs(30),
            || {
                calls += 1;
                async {
                    // Each attempt hangs until its own deadline.
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    Err(ClientError::Timeout {
                        what: "the agent did not answer".into(),
                        waited: Duration::from_secs(4),
                    })
                }
            },
            || async { false },
        )
        .await;
        let Err(Failure::Unreachable(msg)) = out else {
            panic!("not given up on: {out:?}");
        };
        assert!(msg.contains("cleanup got no answer"), "{msg}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(30) && waited < Duration::from_secs(45),
            "gave up after {waited:?}"
        );
        assert!(calls > 1);
    }

    #[test]
    fn an_answer_stops_the_clock() {
        let mut p = Patience::new(Duration::from_millis(50));
        let long_ago = Instant::now() - Duration::from_secs(1);
        assert!(p.failed(long_ago, Step::Merge, "x").is_err());
        p.answered();
        assert!(p.failed(Instant::now(), Step::Merge, "x").is_ok());
    }
}
