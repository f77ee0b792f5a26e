//! A host's attempt in phases (spec `semantics.md` §9): `before`, its command, `verify`,
//! `after`, one after another through one transport. The transport keeps its connection to
//! the host until the driver closes it, so over SSH the phases of an attempt share one
//! connection. The local runner and the remote worker run an attempt the same way, here.
//!
//! - A phase that does not succeed ends the attempt: the host has failed in that phase, and
//!   the phases after it do not run (`after` never runs after a failure: a broken host stays
//!   out of its load balancer).
//! - `timeout` bounds `before`, the command and `after` each; `verify` is tried until it
//!   exits 0, every `every`, until `within` has passed since its first try (a try still
//!   running then is killed).
//! - With phases, each one's output is headed by a line `--- PHASE ---` in the host's output
//!   (`--- verify (try 2) ---`), so a log says which phase printed what.

use std::fmt;
use std::time::Duration;

use pogo_model::RunOptions;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::transport::{CancelToken, Outcome, Output, RunResult, Stream, Transport};

/// A phase of a host's attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Before,
    Command,
    Verify,
    After,
}

impl Phase {
    pub fn word(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::Command => "command",
            Phase::Verify => "verify",
            Phase::After => "after",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The health check, as an attempt runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRun {
    pub command: String,
    pub within_ms: u64,
    pub every_ms: u64,
}

/// What a host's attempt runs around its command. Empty: the command alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phases {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Phases {
    /// The phases a plan's options give.
    pub fn of(options: &RunOptions) -> Phases {
        Phases {
            before: options.before.clone(),
            verify: options.verify.as_ref().map(|v| VerifyRun {
                command: v.command.clone(),
                within_ms: v.within.saturating_mul(1000),
                every_ms: v.every.saturating_mul(1000),
            }),
            after: options.after.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.before.is_none() && self.verify.is_none() && self.after.is_none()
    }
}

/// How an attempt ended: the result of the phase that decided it (the first that did not
/// succeed, or the last), with the whole attempt's duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub result: RunResult,
    pub phase: Phase,
}

/// One attempt of `command` on `host` with its `phases`; see the module documentation.
pub async fn attempt(
    transport: &dyn Transport,
    host: &str,
    command: &str,
    phases: &Phases,
    timeout: Option<Duration>,
    cancel: &CancelToken,
    output: &mpsc::Sender<Output>,
) -> Attempt {
    let start = Instant::now();
    let marked = !phases.is_empty();
    let steps = [
        (Phase::Before, phases.before.as_deref()),
        (Phase::Command, Some(command)),
    ];
    let mut last = None;
    for (phase, text) in steps {
        let Some(text) = text else {
            continue;
        };
        if marked {
            mark(output, phase.word()).await;
        }
        let result = transport
            .run(host, text, timeout, cancel, output.clone())
            .await;
        if !result.outcome.is_success() {
            return ended(result, phase, start);
        }
        last = Some((result, phase));
    }
    if let Some(verify) = &phases.verify {
        let result = check(transport, host, verify, cancel, output).await;
        if !result.outcome.is_success() {
            return ended(result, Phase::Verify, start);
        }
        last = Some((result, Phase::Verify));
    }
    if let Some(after) = &phases.after {
        mark(output, Phase::After.word()).await;
        let result = transport
            .run(host, after, timeout, cancel, output.clone())
            .await;
        return ended(result, Phase::After, start);
    }
    let (result, phase) = last.expect("the command ran");
    ended(result, phase, start)
}

fn ended(result: RunResult, phase: Phase, start: Instant) -> Attempt {
    Attempt {
        result: RunResult {
            outcome: result.outcome,
            duration: start.elapsed(),
        },
        phase,
    }
}

async fn mark(output: &mpsc::Sender<Output>, what: &str) {
    let _ = output
        .send(Output::line(Stream::Stdout, format!("--- {what} ---")))
        .await;
}

/// Tries the health check until it passes or `within` has passed.
async fn check(
    transport: &dyn Transport,
    host: &str,
    verify: &VerifyRun,
    cancel: &CancelToken,
    output: &mpsc::Sender<Output>,
) -> RunResult {
    let deadline = Instant::now() + Duration::from_millis(verify.within_ms);
    let every = Duration::from_millis(verify.every_ms);
    let mut tries = 0u32;
    loop {
        tries += 1;
        mark(output, &format!("verify (try {tries})")).await;
        let left = deadline.saturating_duration_since(Instant::now());
        let result = transport
            .run(host, &verify.command, Some(left), cancel, output.clone())
            .await;
        let passed = result.outcome.is_success();
        let again = Instant::now() + every;
        let stop = matches!(
            result.outcome,
            Outcome::Cancelled(_) | Outcome::Unreachable(_)
        );
        if passed || stop || again >= deadline {
            return result;
        }
        tokio::select! {
            () = tokio::time::sleep_until(again) => {}
            () = cancel.cancelled() => return result,
        }
    }
}
