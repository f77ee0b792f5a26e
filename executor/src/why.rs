//! Why a host has not started, in names an operator reads (spec `semantics.md` §8, "Why is
//! it waiting"): the slot it waits for, the full group with the hosts that hold it (and, on a
//! dispatcher, their jobs), the job it is busy in.
//!
//! The schedulers answer with indexes ([`OwnWait`], [`Wait`]); this module turns an answer into
//! a [`Why`] (owned names, serialisable: the dispatcher sends it in a job's JSON) and a
//! sentence ([`Why`]'s `Display`), the same for a local run's live view and for
//! `pogo status JOB --why`. [`Heads`] finds the hosts worth explaining without asking about
//! every host: the first host not started in each thread's current step.

use std::fmt;

use pogo_model::{Plan, JOB_GROUP_ID};
use serde::{Deserialize, Serialize};

use crate::fleet::Wait;
use crate::scheduler::{DownHost, HostIdx, HostState, OwnWait, RunStatus, Scheduler};

/// At most this many holders of a full group are kept in a [`Why`]; the rest are counted.
pub const HOLDERS_KEPT: usize = 20;

/// At most this many holders are named in the sentence.
const HOLDERS_SHOWN: usize = 10;

/// A host that holds a place in a full group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    /// Its state in the run it holds the place in: `running`, `failed (exit 1)`, ...
    pub state: String,
    /// That run, when it is another job's (on a dispatcher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.host, self.state)?;
        if let Some(job) = &self.job {
            write!(f, " in job {job}")?;
        }
        Ok(())
    }
}

/// Why a pending host has not started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "waits", rename_all = "kebab-case")]
pub enum Why {
    /// It waits for this step to complete (the first of them, in plan order).
    Slot { slot: String },
    /// It waits for the gate or the approval after this step.
    Gate { slot: String },
    /// It waits for an operator's approval of this step, asked at `since` (seconds since the
    /// Unix epoch): a [`Why::Gate`] told apart by the driver of the run, which knows.
    Approval { slot: String, since: u64 },
    /// A group is full: one of its plan's (`fleet` absent; the job-wide limit is the group
    /// `job`) or a budget of a fleet's revision. `down` counts every host holding a place;
    /// `holders` names the first [`HOLDERS_KEPT`] of them, by host name.
    Group {
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fleet: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<u32>,
        max_parallel: u64,
        down: usize,
        holders: Vec<Holder>,
    },
    /// It runs in another job.
    Busy { job: String },
    /// Its job starts nothing until an operator gives the SSH password again.
    Paused,
    /// Its job stops: it starts no more hosts.
    Stopping,
    /// Nothing holds it: it starts as soon as it is its job's turn and a worker is free.
    Ready,
}

impl Why {
    /// The answer of a run's own scheduler; `name` names a host of the run.
    pub fn own(wait: OwnWait, name: impl Fn(HostIdx) -> String) -> Why {
        match wait {
            OwnWait::Slot { slot } => Why::Slot { slot },
            OwnWait::Gate { slot } => Why::Gate { slot },
            OwnWait::Group {
                group,
                max_parallel,
                down,
            } => Why::Group {
                group,
                fleet: None,
                revision: None,
                max_parallel: max_parallel.value,
                down: down.len(),
                holders: down
                    .into_iter()
                    .take(HOLDERS_KEPT)
                    .map(|(host, state)| Holder {
                        host: name(host),
                        state: state.to_string(),
                        job: None,
                    })
                    .collect(),
            },
        }
    }

    /// The answer of the fleet scheduler, `None` for a host that is not pending.
    pub fn fleet(wait: Wait, name: impl Fn(HostIdx) -> String) -> Option<Why> {
        Some(match wait {
            Wait::NotPending(_) => return None,
            Wait::Own(own) => Why::own(own, name),
            Wait::Budget {
                fleet,
                revision,
                group,
                max_parallel,
                down,
            } => Why::Group {
                group,
                fleet: Some(fleet),
                revision: Some(revision),
                max_parallel,
                down: down.len(),
                holders: down.into_iter().take(HOLDERS_KEPT).map(holder).collect(),
            },
            Wait::Busy { job } => Why::Busy { job },
            Wait::Paused => Why::Paused,
            Wait::Stopping => Why::Stopping,
            Wait::Starting => Why::Ready,
        })
    }

    /// A wait after a step, told apart: an approval of it is awaited since `approval(slot)`,
    /// when that says so.
    pub fn approval(self, approval: impl Fn(&str) -> Option<u64>) -> Why {
        match self {
            Why::Gate { slot } => match approval(&slot) {
                Some(since) => Why::Approval { slot, since },
                None => Why::Gate { slot },
            },
            other => other,
        }
    }

    /// Whether something holds the host back (not merely its turn).
    pub fn holds(&self) -> bool {
        !matches!(self, Why::Ready)
    }
}

/// Why a host of a run driven alone (a local run) has not started; `None` when it is not
/// pending.
pub fn of_run(run: &Scheduler, host: HostIdx, name: impl Fn(HostIdx) -> String) -> Option<Why> {
    if run.host_state(host) != HostState::Pending {
        return None;
    }
    if matches!(run.status(), RunStatus::Stopping(_)) {
        return Some(Why::Stopping);
    }
    Some(run.why(host).map_or(Why::Ready, |own| Why::own(own, name)))
}

fn holder(down: DownHost) -> Holder {
    Holder {
        host: down.host,
        state: down.state.to_string(),
        job: Some(down.job),
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Slot { slot } => write!(f, "waits for step `{slot}`"),
            Why::Gate { slot } => write!(f, "waits for the gate or approval after step `{slot}`"),
            Why::Approval { slot, since } => {
                let asked = crate::rundir::RunId::new(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(*since),
                    0,
                )
                .started();
                write!(
                    f,
                    "waits for approval of step `{slot}` (since {} UTC)",
                    asked.replace('T', " ").replace('Z', "")
                )
            }
            Why::Group {
                group,
                fleet,
                revision,
                max_parallel,
                down,
                holders,
            } => {
                match (fleet, revision) {
                    (Some(fleet), Some(revision)) => write!(
                        f,
                        "group `{group}` (fleet {fleet}, revision {revision}) is full, \
                         {down} of {max_parallel} down"
                    )?,
                    (Some(fleet), None) => write!(
                        f,
                        "group `{group}` (fleet {fleet}) is full, {down} of {max_parallel} down"
                    )?,
                    (None, _) if group == JOB_GROUP_ID => {
                        write!(f, "job limit {max_parallel} reached")?
                    }
                    (None, _) => {
                        write!(f, "group `{group}` is full, {down} of {max_parallel} down")?
                    }
                }
                if !holders.is_empty() {
                    let shown: Vec<String> = holders
                        .iter()
                        .take(HOLDERS_SHOWN)
                        .map(Holder::to_string)
                        .collect();
                    write!(f, ": {}", shown.join(", "))?;
                    if *down > shown.len() {
                        write!(f, " and {} more", down - shown.len())?;
                    }
                }
                Ok(())
            }
            Why::Busy { job } => write!(f, "busy in job {job}"),
            Why::Paused => write!(
                f,
                "its job waits for the SSH password (`pogo resume JOB --password`)"
            ),
            Why::Stopping => write!(f, "its job is stopping: it starts no more hosts"),
            Why::Ready => write!(f, "ready: starts at its job's turn, when a worker is free"),
        }
    }
}

/// One host explained: where it stands and, when it has not started, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostWhy {
    pub host: String,
    /// The thread it heads, when it was asked about as the head of one (the unordered hosts'
    /// head has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// `pending`, `running`, `succeeded`, `failed (exit 1)`, ...
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
    /// The sentence: the why, or where the host stands when it is not waiting.
    pub reason: String,
}

impl HostWhy {
    /// `state` is where the host stands, in its driver's words (`pending`, `running`,
    /// `failed (exit 1)`...); `why`, when it has not started.
    pub fn new(host: String, thread: Option<String>, state: String, why: Option<Why>) -> Self {
        let reason = match &why {
            Some(why) => why.to_string(),
            None if state == "running" => "not waiting: it runs".to_string(),
            None => format!("not waiting: {state}"),
        };
        HostWhy {
            host,
            thread,
            state,
            why,
            reason,
        }
    }
}

/// A head: the first host not started of a thread's current step (the first step with a host
/// not done), or of the unordered hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The thread's index in the plan; `None` for the unordered hosts.
    pub thread: Option<usize>,
    pub host: HostIdx,
}

/// Finds the heads of a run's threads as it goes. Within a session a host only moves forward
/// (pending, running, done), so each thread keeps a cursor on its current step and on the
/// first host of it that may be pending: the heads of a whole run cost O(hosts) in all.
#[derive(Debug, Clone)]
pub struct Heads {
    names: Vec<String>,
    /// Per thread, per step: its hosts, in plan order.
    steps: Vec<Vec<Vec<HostIdx>>>,
    unordered: Vec<HostIdx>,
    /// Per thread: (current step, first host of it not started); for the unordered lane last.
    cursors: Vec<(usize, usize)>,
}

impl Heads {
    pub fn new(plan: &Plan) -> Heads {
        let index: std::collections::HashMap<&str, HostIdx> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), HostIdx::new(i)))
            .collect();
        let hosts = |names: &[String]| -> Vec<HostIdx> {
            names
                .iter()
                .filter_map(|h| index.get(h.as_str()).copied())
                .collect()
        };
        let steps: Vec<Vec<Vec<HostIdx>>> = plan
            .threads
            .iter()
            .map(|t| t.slots.iter().map(|s| hosts(&s.hosts)).collect())
            .collect();
        Heads {
            names: plan.threads.iter().map(|t| t.name.clone()).collect(),
            cursors: vec![(0, 0); steps.len() + 1],
            steps,
            unordered: hosts(&plan.unordered),
        }
    }

    /// The name of thread `t`.
    pub fn thread_name(&self, t: usize) -> &str {
        &self.names[t]
    }

    /// The heads as the run stands, `state` giving each host's state: one per thread whose
    /// current step has a host not started, then the unordered hosts' one, if any.
    pub fn find(&mut self, state: impl Fn(HostIdx) -> HostState) -> Vec<Head> {
        let mut heads = Vec::new();
        for (t, steps) in self.steps.iter().enumerate() {
            let (step, first) = &mut self.cursors[t];
            while *step < steps.len() && steps[*step].iter().all(|&h| state(h).is_terminal()) {
                *step += 1;
                *first = 0;
            }
            if let Some(hosts) = steps.get(*step) {
                if let Some(host) = advance(hosts, first, &state) {
                    heads.push(Head {
                        thread: Some(t),
                        host,
                    });
                }
            }
        }
        let (_, first) = self
            .cursors
            .last_mut()
            .expect("one cursor for the unordered");
        if let Some(host) = advance(&self.unordered, first, &state) {
            heads.push(Head { thread: None, host });
        }
        heads
    }
}

/// Moves `first` past the hosts of `hosts` that have started and returns the first pending.
fn advance(
    hosts: &[HostIdx],
    first: &mut usize,
    state: &impl Fn(HostIdx) -> HostState,
) -> Option<HostIdx> {
    while *first < hosts.len() && state(hosts[*first]) != HostState::Pending {
        *first += 1;
    }
    hosts.get(*first).copied()
}

#[cfg(test)]
mod tests {
    use pogo_model::Amount;

    use super::*;

    fn plan() -> Plan {
        Plan::sketch("a1 a2 b1 b2 u1 u2").with_thread("t", &["a1 a2", "b1 b2"])
    }

    #[test]
    fn heads_follow_each_thread_to_its_current_step() {
        let plan = plan();
        let mut heads = Heads::new(&plan);
        let idx = |name: &str| HostIdx::new(plan.hosts.iter().position(|h| h == name).unwrap());
        let mut states = vec![HostState::Pending; plan.hosts.len()];
        let mut found = |states: &[HostState]| -> Vec<String> {
            heads
                .find(|h| states[h.index()])
                .iter()
                .map(|head| plan.hosts[head.host.index()].clone())
                .collect()
        };
        assert_eq!(found(&states), ["a1", "u1"]);
        states[idx("a1").index()] = HostState::Running;
        states[idx("u1").index()] = HostState::Succeeded;
        assert_eq!(found(&states), ["a2", "u2"]);
        states[idx("a2").index()] = HostState::Running;
        // Step t.a has no pending host left but is not done: the thread has no head.
        assert_eq!(found(&states), ["u2"]);
        states[idx("a1").index()] = HostState::Succeeded;
        states[idx("a2").index()] = HostState::Failed { exit_code: 1 };
        states[idx("u2").index()] = HostState::Running;
        assert_eq!(found(&states), ["b1"]);
    }

    #[test]
    fn a_wait_after_a_step_says_approval_only_when_one_is_awaited() {
        let gate = || Why::Gate { slot: "t.0".into() };
        assert_eq!(gate().approval(|_| None), gate());
        assert_eq!(gate().approval(|s| (s == "t.1").then_some(0)), gate());
        let awaited = gate().approval(|s| (s == "t.0").then_some(1_796_000_000));
        assert_eq!(
            awaited.to_string(),
            "waits for approval of step `t.0` (since 2026-11-30 00:53:20 UTC)"
        );
        let slot = Why::Slot { slot: "t.0".into() };
        assert_eq!(slot.clone().approval(|_| Some(0)), slot);
    }

    #[test]
    fn a_full_group_names_its_holders_and_counts_the_rest() {
        let down: Vec<(HostIdx, HostState)> = (0..12)
            .map(|i| (HostIdx::new(i), HostState::Running))
            .collect();
        let why = Why::own(
            OwnWait::Group {
                group: "$colo.east".into(),
                max_parallel: Amount::number(12),
                down,
            },
            |h| format!("web{}", h.index()),
        );
        let text = why.to_string();
        assert!(
            text.starts_with(
                "group `$colo.east` is full, 12 of 12 down: web0 running, web1 running"
            ),
            "{text}"
        );
        assert!(text.ends_with("web9 running and 2 more"), "{text}");
        let job = Why::own(
            OwnWait::Group {
                group: JOB_GROUP_ID.into(),
                max_parallel: Amount::number(1),
                down: vec![(HostIdx::new(3), HostState::Running)],
            },
            |h| format!("web{}", h.index()),
        );
        assert_eq!(job.to_string(), "job limit 1 reached: web3 running");
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["waits"], "group");
        assert_eq!(json["holders"][0]["host"], "web3");
        assert!(json.get("fleet").is_none());
        let back: Why = serde_json::from_value(json).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn a_fleet_budget_names_the_jobs_its_hosts_are_down_in() {
        let why = Why::fleet(
            Wait::Budget {
                fleet: "prod".into(),
                revision: 2,
                group: "$colo.east".into(),
                max_parallel: 2,
                down: vec![
                    DownHost {
                        host: "web1".into(),
                        job: "J2".into(),
                        state: HostState::Running,
                    },
                    DownHost {
                        host: "web4".into(),
                        job: "J1".into(),
                        state: HostState::Failed { exit_code: 3 },
                    },
                ],
            },
            |_| unreachable!(),
        )
        .unwrap();
        assert_eq!(
            why.to_string(),
            "group `$colo.east` (fleet prod, revision 2) is full, 2 of 2 down: web1 running \
             in job J2, web4 failed (exit 3) in job J1"
        );
        assert_eq!(
            Why::fleet(Wait::NotPending(HostState::Running), |_| unreachable!()),
            None
        );
        let host = HostWhy::new("web5".into(), None, "succeeded".into(), None);
        assert_eq!(host.reason, "not waiting: succeeded");
    }
}
