//! What happens in a run, as owned data: one [`Event`] type for the journal, the terminal
//! view, `--json` output and the dispatcher's event stream alike. Events are in the past
//! tense: they say what happened, after it was made durable.
//!
//! The events a scheduler step calls for ([`change_events`], [`start_events`],
//! [`finished_event`]) are made here, so a local run and a dispatcher's job tell the same
//! story in the same words.

use serde::{Deserialize, Serialize};

use crate::phases::Phase;
use crate::scheduler::{Changes, HostIdx, HostState, RunStatus, Scheduler, Tally};

/// One thing that happened in a run. `at_ms` counts from the start of the run (of this
/// session of it, for a resumed run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run began (or was resumed: `resumed` is then true).
    RunStarted {
        run_id: String,
        hosts: usize,
        command: String,
        resumed: bool,
        /// The checks the operator overrode to start it: `allow-edited` (a plan whose seal
        /// does not match), `allow-stale` (a plan whose sources changed).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        overrides: Vec<String>,
        /// The hosts this session may start, when the operator chose a subset (`pogo apply
        /// --only`): the others it skips at once (a `hosts_skipped` follows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only: Option<Vec<String>>,
        /// The job-wide limit this session ran under, when the operator lowered the plan's
        /// (`--concurrent`); `pogo audit` checks each session against its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        concurrent: Option<u64>,
        at_ms: u64,
    },
    /// A host's command started (its first attempt).
    HostStarted { host: String, at_ms: u64 },
    /// An attempt failed and the host will be tried again after `delay_ms`.
    HostRetrying {
        host: String,
        /// The attempt that comes next (2 for the first retry).
        attempt: u32,
        /// How the failed attempt ended.
        after: String,
        delay_ms: u64,
        at_ms: u64,
    },
    /// A host reached its final state.
    HostFinished {
        host: String,
        #[serde(flatten)]
        result: FinalState,
        attempts: u32,
        duration_ms: u64,
        /// How it ended, for a person (`exit code 3`, `timed out; the command was killed`,
        /// `verify failed: exit code 1`).
        message: String,
        /// The phase of its last attempt that failed, when it was not the command
        /// (`before`, `verify`, `after`; spec `semantics.md` §9).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<Phase>,
        at_ms: u64,
    },
    /// Output of the host that could not be kept: a write failed, or the disk was nearly full
    /// (logs stop before the journal has no room). Comes before its `host_finished`.
    OutputLost {
        host: String,
        reason: String,
        at_ms: u64,
    },
    /// Hosts that never started because the run stopped or was blocked.
    HostsSkipped { hosts: Vec<String>, at_ms: u64 },
    /// The run stopped starting hosts (failure budget, operator halt, run timeout).
    RunStopping { reason: String, at_ms: u64 },
    /// Nothing could start any more, for these reasons.
    RunBlocked { reasons: Vec<String>, at_ms: u64 },
    /// Every host of a step has finished: its gate runs, on the machine that drives the run.
    GateStarted { step: String, at_ms: u64 },
    /// The gate after a step passed.
    GatePassed { step: String, at_ms: u64 },
    /// The gate after a step did not pass (`message`: how, for a person): the run stops.
    GateFailed {
        step: String,
        message: String,
        at_ms: u64,
    },
    /// A step waits for an operator's approval (`pogo approve RUN STEP`), for at most
    /// `within_ms` when there is a limit.
    ApprovalWaiting {
        step: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_ms: Option<u64>,
        at_ms: u64,
    },
    /// An operator approved a step: who, and when (`at`: seconds since the Unix epoch).
    Approved {
        step: String,
        by: String,
        at: u64,
        at_ms: u64,
    },
    /// A step's approval did not come in time: the run stops.
    ApprovalExpired { step: String, at_ms: u64 },
    /// The run ended.
    RunFinished {
        result: RunResult,
        succeeded: usize,
        failed: usize,
        timed_out: usize,
        unreachable: usize,
        skipped: usize,
        cancelled: usize,
        /// Remote apply: hosts whose worker was lost (not counted in `failed`). Journals of
        /// the previous release have none.
        #[serde(default)]
        lost: usize,
        at_ms: u64,
    },
}

/// How a host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FinalState {
    Succeeded,
    Failed {
        exit_code: i32,
    },
    TimedOut,
    Unreachable,
    Skipped,
    Cancelled,
    /// Remote apply: the worker running the host was lost (stopped heartbeating) before it
    /// reported. The command may or may not have run; it counts as failed and runs again only
    /// when retried.
    Lost,
}

impl FinalState {
    pub fn word(self) -> &'static str {
        match self {
            FinalState::Succeeded => "succeeded",
            FinalState::Failed { .. } => "failed",
            FinalState::TimedOut => "timed out",
            FinalState::Unreachable => "unreachable",
            FinalState::Skipped => "skipped",
            FinalState::Cancelled => "cancelled",
            FinalState::Lost => "lost",
        }
    }
}

impl From<FinalState> for HostState {
    fn from(state: FinalState) -> HostState {
        match state {
            FinalState::Succeeded => HostState::Succeeded,
            FinalState::Failed { exit_code } => HostState::Failed { exit_code },
            FinalState::TimedOut => HostState::TimedOut,
            FinalState::Unreachable => HostState::Unreachable,
            FinalState::Skipped => HostState::Skipped,
            FinalState::Cancelled => HostState::Cancelled,
            FinalState::Lost => HostState::Failed {
                exit_code: LOST_EXIT_CODE,
            },
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// Every host ran and succeeded.
    Succeeded,
    /// Every host ran; some failed.
    Failed,
    /// The run stopped (failure budget, halt, run timeout) or was blocked before every host ran.
    Stopped,
}

/// What a scheduler step changed that a person should hear of: the run stopping, the run
/// blocked (when the step ended it so), the hosts it skipped. `hosts` are the plan's.
pub fn change_events(
    hosts: &[String],
    scheduler: &Scheduler,
    changes: &Changes,
    at_ms: u64,
) -> Vec<Event> {
    let mut events = Vec::new();
    if let Some(reason) = &changes.stopped {
        events.push(Event::RunStopping {
            reason: reason.to_string(),
            at_ms,
        });
    }
    if let RunStatus::Blocked(blockers) = scheduler.status() {
        if changes.ended {
            let reasons = blockers.iter().map(|b| b.describe(hosts)).collect();
            events.push(Event::RunBlocked { reasons, at_ms });
        }
    }
    if !changes.hosts_skipped.is_empty() {
        let skipped = changes
            .hosts_skipped
            .iter()
            .map(|&h| hosts[h.index()].clone())
            .collect();
        events.push(Event::HostsSkipped {
            hosts: skipped,
            at_ms,
        });
    }
    events
}

/// A session (a resumed one, typically) can be over before anything starts: an interrupted
/// host over the failure budget, groups full of failed hosts. These events say why, and which
/// hosts the session skips, as for a run that stops later (without them, `pogo log` could not
/// say why, and a replay left those hosts pending). A session that runs only some hosts
/// (`--only`) skips the others at once: they are listed too. None when the session has work
/// to do on every host.
pub fn start_events(hosts: &[String], scheduler: &Scheduler) -> Vec<Event> {
    let status = scheduler.status();
    let mut events = Vec::new();
    match &status {
        RunStatus::Stopped(reason) => events.push(Event::RunStopping {
            reason: reason.to_string(),
            at_ms: 0,
        }),
        RunStatus::Blocked(blockers) => events.push(Event::RunBlocked {
            reasons: blockers.iter().map(|b| b.describe(hosts)).collect(),
            at_ms: 0,
        }),
        _ => {}
    }
    // Hosts skipped before anything starts: all that is left of a session over at once, or
    // the hosts a session that runs only some (`--only`) leaves out.
    {
        let skipped: Vec<String> = scheduler
            .host_states()
            .iter()
            .zip(hosts)
            .filter(|(state, _)| **state == HostState::Skipped)
            .map(|(_, host)| host.clone())
            .collect();
        if !skipped.is_empty() {
            events.push(Event::HostsSkipped {
                hosts: skipped,
                at_ms: 0,
            });
        }
    }
    events
}

/// How a run whose scheduler has ended ended, and why it stopped or was blocked; `None` while
/// hosts still run or may start.
pub fn run_result(hosts: &[String], scheduler: &Scheduler) -> Option<(RunResult, Vec<String>)> {
    let tally = scheduler.tally();
    Some(match scheduler.status() {
        RunStatus::Complete if tally.failures() == 0 && tally.cancelled == 0 => {
            (RunResult::Succeeded, Vec::new())
        }
        RunStatus::Complete => (RunResult::Failed, Vec::new()),
        RunStatus::Stopped(reason) => (RunResult::Stopped, vec![reason.to_string()]),
        RunStatus::Blocked(blockers) => (
            RunResult::Stopped,
            blockers.iter().map(|b| b.describe(hosts)).collect(),
        ),
        RunStatus::Running | RunStatus::Stopping(_) => return None,
    })
}

/// The `run_finished` event that ends a run (a session of it), with the scheduler's final
/// counts. `lost` hosts (a dispatcher's) are failures to the scheduler, and
/// counted apart from `failed` here, so that the counts add up to the hosts.
pub fn finished_event(result: RunResult, tally: &Tally, lost: usize, at_ms: u64) -> Event {
    Event::RunFinished {
        result,
        succeeded: tally.succeeded,
        failed: tally.failed.saturating_sub(lost),
        timed_out: tally.timed_out,
        unreachable: tally.unreachable,
        skipped: tally.skipped,
        cancelled: tally.cancelled,
        lost,
        at_ms,
    }
}

/// The exit code of a host that the previous session of a run saw start but never finish
/// (the process running it was killed): counted as failed, since its command may have run.
pub const INTERRUPTED_EXIT_CODE: i32 = -1;

/// The exit code the scheduler records for a lost host (see [`FinalState::Lost`]): a failure,
/// like an interrupted host, whose command may have run.
pub const LOST_EXIT_CODE: i32 = -2;

/// Each host's state at the end of the runs recorded in `events` (the whole journal of a run,
/// over all its sessions), for [`crate::scheduler::Scheduler::resume`]. A host that started
/// and never finished was interrupted: it counts as failed (its command may have run, so it
/// is not run again unless failed hosts are retried). Also returns those interrupted hosts.
pub fn replay(hosts: &[String], events: &[Event]) -> (Vec<HostState>, Vec<HostIdx>) {
    let index: std::collections::HashMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut states = vec![HostState::Pending; hosts.len()];
    let mut set = |host: &str, state: HostState| {
        if let Some(&i) = index.get(host) {
            states[i] = state;
        }
    };
    for event in events {
        match event {
            Event::HostStarted { host, .. } => set(host, HostState::Running),
            Event::HostFinished { host, result, .. } => set(host, (*result).into()),
            Event::HostsSkipped { hosts, .. } => {
                for host in hosts {
                    set(host, HostState::Skipped);
                }
            }
            _ => {}
        }
    }
    let mut interrupted = Vec::new();
    for (i, state) in states.iter_mut().enumerate() {
        if *state == HostState::Running {
            *state = HostState::Failed {
                exit_code: INTERRUPTED_EXIT_CODE,
            };
            interrupted.push(HostIdx::new(i));
        }
    }
    (states, interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_as_flat_tagged_json() {
        let event = Event::HostFinished {
            host: "web1".into(),
            result: FinalState::Failed { exit_code: 3 },
            attempts: 2,
            duration_ms: 1500,
            message: "exit code 3".into(),
            phase: None,
            at_ms: 4000,
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"event":"host_finished","host":"web1","state":"failed","exit_code":3,"attempts":2,"duration_ms":1500,"message":"exit code 3","at_ms":4000}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    }

    #[test]
    fn replay_keeps_the_last_word_and_marks_unfinished_hosts_interrupted() {
        let hosts: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let finished = |host: &str, result| Event::HostFinished {
            host: host.into(),
            result,
            attempts: 1,
            duration_ms: 1,
            message: String::new(),
            phase: None,
            at_ms: 1,
        };
        let started = |host: &str| Event::HostStarted {
            host: host.into(),
            at_ms: 0,
        };
        let events = vec![
            started("a"),
            started("b"),
            finished("a", FinalState::Succeeded),
            finished("b", FinalState::Failed { exit_code: 2 }),
            started("c"),
            Event::HostsSkipped {
                hosts: vec!["d".into()],
                at_ms: 2,
            },
            // A resumed session runs b again, and it succeeds this time.
            started("b"),
            finished("b", FinalState::Succeeded),
        ];
        let (states, interrupted) = replay(&hosts, &events);
        assert_eq!(
            states,
            [
                HostState::Succeeded,
                HostState::Succeeded,
                HostState::Failed {
                    exit_code: INTERRUPTED_EXIT_CODE
                },
                HostState::Skipped
            ]
        );
        assert_eq!(interrupted, [HostIdx::new(2)]);
    }
}
