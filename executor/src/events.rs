//! What happens in a run, as owned data: one [`Event`] type for the journal, the terminal
//! view, `--json` output and (later) the dispatcher's event stream alike. Events are in the
//! past tense: they say what happened, after it was made durable.

use serde::{Deserialize, Serialize};

use crate::scheduler::{HostIdx, HostState};

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
        /// How it ended, for a person (`exit code 3`, `timed out; the command was killed`).
        message: String,
        at_ms: u64,
    },
    /// Hosts that never started because the run stopped or was blocked.
    HostsSkipped { hosts: Vec<String>, at_ms: u64 },
    /// The run stopped starting hosts (failure budget, operator halt, run timeout).
    RunStopping { reason: String, at_ms: u64 },
    /// Nothing could start any more, for these reasons.
    RunBlocked { reasons: Vec<String>, at_ms: u64 },
    /// The run ended.
    RunFinished {
        result: RunResult,
        succeeded: usize,
        failed: usize,
        timed_out: usize,
        unreachable: usize,
        skipped: usize,
        cancelled: usize,
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
