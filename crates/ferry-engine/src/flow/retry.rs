//! How the flow treats a failure: retry what may pass (the agent is
//! restarting, the network blinked, the host is busy), stop on what will
//! not (the agent said no), and recognise a full destination and a VM
//! that stopped, each by its [`ErrorKind`], never by its words.

use std::future::Future;
use std::time::Duration;

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
            | Failure::NoSpace(m) => m.clone(),
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

/// Runs one agent call of `step` until it succeeds, fails for good, or
/// `cancelled` says the job was cancelled (asked after each transient
/// failure, so a move stuck on a host that does not answer can still be
/// cancelled while it can be): the one way a step asks an agent for
/// something. Each transient failure is logged with the job and the step,
/// then retried after [`backoff`]. A call in flight is never abandoned: the
/// agent may still carry it out, and the rollback must come after it.
pub async fn agent_call<T, F, Fut, C, CFut>(
    job: Uuid,
    step: Step,
    mut call: F,
    mut cancelled: C,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
    C: FnMut() -> CFut,
    CFut: Future<Output = bool>,
{
    let mut attempt = 0u32;
    loop {
        match call().await.map_err(Failure::from) {
            Ok(v) => return Ok(v),
            Err(Failure::Transient(msg)) => {
                attempt = attempt.saturating_add(1);
                tracing::warn!(%job, %step, attempt, "retrying: {msg}");
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

/// Runs `call` until it succeeds, fails for good, or `give_up` transient
/// failures have happened (`None`: never give up, for the steps the seed
/// retries until success). `on_retry` hears each transient failure, so the
/// step can show it.
pub async fn retry<T, F, Fut>(
    give_up: Option<u32>,
    mut on_retry: impl FnMut(u32, &str),
    mut call: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempt = 0u32;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(Failure::Transient(msg)) => {
                attempt += 1;
                if give_up.is_some_and(|n| attempt >= n) {
                    return Err(Failure::Permanent(format!(
                        "{msg} (gave up after {attempt} attempts)"
                    )));
                }
                on_retry(attempt, &msg);
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(other) => return Err(other),
        }
    }
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
        let mut calls = 0;
        let out: Result<u32, Failure> = retry(
            None,
            |_, _| {},
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
        )
        .await;
        assert_eq!(out, Ok(3));

        let mut calls = 0;
        let out: Result<(), Failure> = retry(
            None,
            |_, _| {},
            || {
                calls += 1;
                async { Err(Failure::Permanent("no such VM".into())) }
            },
        )
        .await;
        assert_eq!(calls, 1);
        assert!(matches!(out, Err(Failure::Permanent(_))));

        let out: Result<(), Failure> = retry(
            Some(2),
            |_, _| {},
            || async { Err(Failure::Transient("down".into())) },
        )
        .await;
        assert!(matches!(out, Err(Failure::Permanent(m)) if m.contains("gave up")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_ends_the_retries_of_an_agent_that_does_not_answer() {
        let url = "http://127.0.0.1:9";
        let mut calls = 0;
        let mut asked = 0;
        let out: Result<(), Failure> = agent_call(
            Uuid::new_v4(),
            Step::CreateVolumeCrossSd,
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
}
