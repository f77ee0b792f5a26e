//! A run's record checked against its plan (`pogo audit`): the journal of a local run, or a
//! dispatcher's job events, replayed in their order in the record, event by event.
//!
//! What it checks, for every session of the run:
//!
//! - **limits**: at no point were more of a constraint group's hosts down than its limit.
//!   Down is the scheduler's rule (spec §6): running, or ended other than by succeeding
//!   (failed, timed out, unreachable, cancelled, lost, or interrupted: started and never
//!   finished), until the run ends. A resumed session starts with the hosts it runs again
//!   (cancelled and skipped ones, and the failed ones it retries: those that start again in
//!   it) no longer down.
//! - **order**: a host started only once every slot before each of its slots (the plan's
//!   edges) was complete: each of that slot's hosts had finished, failed or been skipped.
//! - **final states**: every host of the plan ends in exactly one final state, no host starts
//!   while it runs or after it succeeded, and no event names a host the plan does not have.
//!
//! This is a consistency check of the record, which can be edited by hand: it is not a
//! signature, and it says nothing of what the commands did on their hosts.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};

use pogo_model::Plan;

use crate::events::{Event, FinalState};

/// Where in the record an event is: its place (a journal's line, a job's sequence number),
/// its session (1 for the first) and its time from the session's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub place: u64,
    pub session: usize,
    pub at_ms: u64,
}

/// The most hosts of a group down at once, and when the group first reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peak {
    pub group: String,
    /// The limit in force when the peak was first reached (a session may lower the job-wide
    /// one).
    pub limit: u64,
    pub peak: u64,
    /// None when no host of the group ever went down.
    pub at: Option<Place>,
}

/// Something in the record that the plan does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `host` started while `down` of the group's hosts were down, over its `limit`.
    OverLimit {
        group: String,
        limit: u64,
        host: String,
        /// The hosts down once it started, itself included, in plan order.
        down: Vec<String>,
        at: Place,
    },
    /// `host` started before slot `before` (an edge `before` → `slot`) was complete: its
    /// host `waiting_for` had not finished.
    OutOfOrder {
        host: String,
        slot: String,
        before: String,
        waiting_for: String,
        at: Place,
    },
    /// `host` started again while it ran, or after it had succeeded.
    StartedAgain {
        host: String,
        was: &'static str,
        at: Place,
    },
    /// `host` finished (or retried) without running.
    NotRunning {
        host: String,
        event: &'static str,
        at: Place,
    },
    /// An event names a host that the plan does not have.
    UnknownHost { host: String, at: Place },
    /// The record ends without this host in a final state.
    NoFinalState { host: String, state: &'static str },
}

/// What the audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub events: usize,
    pub sessions: usize,
    /// Whether the record ends with the end of a session (`run_finished`).
    pub ended: bool,
    pub peaks: Vec<Peak>,
    pub edges: usize,
    /// How many hosts end in each final state (`succeeded`, `failed`...).
    pub finals: BTreeMap<&'static str, usize>,
    pub findings: Vec<Finding>,
}

impl Audit {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    /// Ended, and holding its place in its groups.
    Down(&'static str),
    /// Ended, holding no place.
    Done(&'static str),
}

impl State {
    fn is_down(self) -> bool {
        matches!(self, State::Running | State::Down(_))
    }
    fn is_terminal(self) -> bool {
        matches!(self, State::Down(_) | State::Done(_))
    }
    fn word(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Down(word) | State::Done(word) => word,
        }
    }
}

fn ended(result: &FinalState) -> State {
    match result {
        FinalState::Succeeded | FinalState::Skipped => State::Done(result.word()),
        other => State::Down(other.word()),
    }
}

struct Replay<'p> {
    plan: &'p Plan,
    index: HashMap<&'p str, usize>,
    states: Vec<State>,
    host_groups: Vec<Vec<usize>>,
    limits: Vec<u64>,
    down: Vec<u64>,
    /// Per group: the most down at once, where first, and the limit then.
    peaks: Vec<(u64, Option<Place>, u64)>,
    /// Per slot: its hosts, and the slots before it.
    slot_hosts: Vec<Vec<usize>>,
    host_slots: Vec<Vec<usize>>,
    preds: Vec<Vec<usize>>,
    unfinished: Vec<usize>,
    /// Per slot: whether it waits for a gate or an approval, and whether that has passed
    /// (in any session: a gate that passed is not asked again).
    gated: Vec<Gated>,
    /// Each slot's id.
    slot_ids: Vec<&'p str>,
    /// Slots known complete: they stay so until a host of the run is released to run again,
    /// so that each start does not walk back through every slot before it.
    complete: Vec<Cell<bool>>,
    /// The job-wide group, and the plan's limit on it.
    job: Option<(usize, u64)>,
    findings: Vec<Finding>,
}

/// What a slot's completion waits for besides its hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gated {
    No,
    /// Its gate command must pass (`gate_passed`).
    Gate,
    /// An operator must approve it (`approved`), after its gate if it has one.
    Approval,
    /// It passed.
    Open,
}

impl<'p> Replay<'p> {
    fn new(plan: &'p Plan) -> Replay<'p> {
        let index: HashMap<&str, usize> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let n = plan.hosts.len();
        let mut host_groups = vec![Vec::new(); n];
        for (g, group) in plan.constraints.iter().enumerate() {
            for host in &group.hosts {
                if let Some(&h) = index.get(host.as_str()) {
                    host_groups[h].push(g);
                }
            }
        }
        let slot_ids_by_name: HashMap<&str, usize> = plan
            .slots()
            .enumerate()
            .map(|(s, (_, slot))| (slot.id.as_str(), s))
            .collect();
        let mut slot_hosts = vec![Vec::new(); slot_ids_by_name.len()];
        let mut host_slots = vec![Vec::new(); n];
        for (s, (_, slot)) in plan.slots().enumerate() {
            for host in &slot.hosts {
                if let Some(&h) = index.get(host.as_str()) {
                    slot_hosts[s].push(h);
                    host_slots[h].push(s);
                }
            }
        }
        let mut preds = vec![Vec::new(); slot_ids_by_name.len()];
        for edge in &plan.edges {
            if let (Some(&from), Some(&to)) = (
                slot_ids_by_name.get(edge.from.as_str()),
                slot_ids_by_name.get(edge.to.as_str()),
            ) {
                preds[to].push(from);
            }
        }
        let unfinished = slot_hosts.iter().map(Vec::len).collect();
        let gated: Vec<Gated> = plan
            .slots()
            .map(|(_, slot)| match (&slot.gate, &slot.approve) {
                (_, Some(_)) => Gated::Approval,
                (Some(_), None) => Gated::Gate,
                (None, None) => Gated::No,
            })
            .collect();
        let mut slot_ids: Vec<&str> = vec![""; slot_hosts.len()];
        for (id, &s) in &slot_ids_by_name {
            slot_ids[s] = *id;
        }
        let job = plan
            .constraints
            .iter()
            .position(|g| g.id == pogo_model::JOB_GROUP_ID)
            .map(|g| (g, plan.constraints[g].max_parallel.value));
        let groups = plan.constraints.len();
        Replay {
            plan,
            index,
            states: vec![State::Pending; n],
            host_groups,
            limits: plan
                .constraints
                .iter()
                .map(|g| g.max_parallel.value)
                .collect(),
            down: vec![0; groups],
            peaks: plan
                .constraints
                .iter()
                .map(|g| (0, None, g.max_parallel.value))
                .collect(),
            slot_hosts,
            host_slots,
            preds,
            unfinished,
            complete: vec![Cell::new(false); gated.len()],
            gated,
            slot_ids,
            job,
            findings: Vec::new(),
        }
    }

    /// Whether slot `s` is complete, as the scheduler sees it: every host done, every slot
    /// before it complete, its gate or approval passed. `None` when it is; else the host, or
    /// the reason, it waits for.
    fn incomplete(&self, s: usize) -> Option<String> {
        if self.complete[s].get() {
            return None;
        }
        if self.unfinished[s] > 0 {
            return self.slot_hosts[s]
                .iter()
                .find(|&&h| !self.states[h].is_terminal())
                .map(|&h| self.plan.hosts[h].clone());
        }
        for &p in &self.preds[s] {
            if let Some(waiting) = self.incomplete(p) {
                return Some(waiting);
            }
        }
        match self.gated[s] {
            Gated::Gate => Some(format!("the gate of {}", self.slot_ids[s])),
            Gated::Approval => Some(format!("the approval of {}", self.slot_ids[s])),
            Gated::No | Gated::Open => {
                self.complete[s].set(true);
                None
            }
        }
    }

    /// A step's gate passed, or an operator approved it.
    fn open(&mut self, step: &str, approved: bool) {
        if let Some(s) = self.slot_ids.iter().position(|id| *id == step) {
            if approved || self.gated[s] == Gated::Gate {
                self.gated[s] = Gated::Open;
            }
        }
    }

    fn host(&mut self, name: &str, at: Place) -> Option<usize> {
        let found = self.index.get(name).copied();
        if found.is_none() {
            self.findings.push(Finding::UnknownHost {
                host: name.to_string(),
                at,
            });
        }
        found
    }

    /// Moves host `h` to `state`, keeping the groups' down counts and the slots' unfinished
    /// counts.
    fn set(&mut self, h: usize, state: State) {
        let before = self.states[h];
        if before.is_down() != state.is_down() {
            for &g in &self.host_groups[h] {
                if state.is_down() {
                    self.down[g] += 1;
                } else {
                    self.down[g] -= 1;
                }
            }
        }
        if before.is_terminal() && !state.is_terminal() {
            // A slot of it, and those after, may be incomplete again.
            self.complete.iter().for_each(|c| c.set(false));
        }
        if before.is_terminal() != state.is_terminal() {
            for &s in &self.host_slots[h] {
                if state.is_terminal() {
                    self.unfinished[s] -= 1;
                } else {
                    self.unfinished[s] += 1;
                }
            }
        }
        self.states[h] = state;
    }

    fn start(&mut self, h: usize, at: Place) {
        let host = &self.plan.hosts[h];
        match self.states[h] {
            State::Running => self.findings.push(Finding::StartedAgain {
                host: host.clone(),
                was: "running",
                at,
            }),
            State::Done("succeeded") => self.findings.push(Finding::StartedAgain {
                host: host.clone(),
                was: "succeeded",
                at,
            }),
            _ => {}
        }
        for &s in &self.host_slots[h] {
            for &p in &self.preds[s] {
                let Some(waiting) = self.incomplete(p) else {
                    continue;
                };
                self.findings.push(Finding::OutOfOrder {
                    host: host.clone(),
                    slot: self.slot_ids[s].to_string(),
                    before: self.slot_ids[p].to_string(),
                    waiting_for: waiting,
                    at,
                });
            }
        }
        self.set(h, State::Running);
        for &g in &self.host_groups[h] {
            let down = self.down[g];
            if down > self.peaks[g].0 {
                self.peaks[g] = (down, Some(at), self.limits[g]);
            }
            if down > self.limits[g] {
                let members = &self.plan.constraints[g].hosts;
                let down_hosts = members
                    .iter()
                    .filter(|m| {
                        self.index
                            .get(m.as_str())
                            .is_some_and(|&i| self.states[i].is_down())
                    })
                    .cloned()
                    .collect();
                self.findings.push(Finding::OverLimit {
                    group: self.plan.constraints[g].id.clone(),
                    limit: self.limits[g],
                    host: host.clone(),
                    down: down_hosts,
                    at,
                });
            }
        }
    }
}

/// Checks `events` (each with its place in the record, in the record's order) against `plan`.
pub fn audit(plan: &Plan, events: &[(u64, Event)]) -> Audit {
    let mut replay = Replay::new(plan);
    // Which hosts start in each session: in a record that does not name the failed hosts a
    // session retries, those are the ones that start again.
    let mut starts_by_session: Vec<HashSet<&str>> = Vec::new();
    for (_, event) in events {
        match event {
            Event::RunStarted { .. } => starts_by_session.push(HashSet::new()),
            Event::HostStarted { host, .. } => {
                if let Some(starts) = starts_by_session.last_mut() {
                    starts.insert(host.as_str());
                }
            }
            // The scheduler skips only hosts it could have run: a failed host skipped in a
            // session was put back to run by it (a retry the session stopped before).
            Event::HostsSkipped { hosts, .. } => {
                if let Some(starts) = starts_by_session.last_mut() {
                    starts.extend(hosts.iter().map(String::as_str));
                }
            }
            _ => {}
        }
    }
    let mut session = 0;
    let mut is_ended = false;
    for (place, event) in events {
        let at = Place {
            place: *place,
            session: session.max(1),
            at_ms: at_ms(event),
        };
        match event {
            Event::RunStarted {
                resumed,
                concurrent,
                ..
            } => {
                session += 1;
                is_ended = false;
                // The session's job-wide limit: lowered with --concurrent, or the plan's.
                if let Some((g, planned)) = replay.job {
                    replay.limits[g] = concurrent.unwrap_or(planned).min(planned);
                }
                if *resumed || session > 1 {
                    let starts = &starts_by_session[session - 1];
                    for h in 0..plan.hosts.len() {
                        let next = match replay.states[h] {
                            // Interrupted: counted as failed, and down, like a failure,
                            // unless the session runs it again.
                            State::Running if starts.contains(plan.hosts[h].as_str()) => {
                                State::Pending
                            }
                            State::Running => State::Down("interrupted"),
                            State::Down("cancelled") | State::Done("skipped") => State::Pending,
                            State::Down(_) if starts.contains(plan.hosts[h].as_str()) => {
                                State::Pending
                            }
                            other => other,
                        };
                        replay.set(h, next);
                    }
                }
            }
            Event::HostStarted { host, .. } => {
                if let Some(h) = replay.host(host, at) {
                    replay.start(h, at);
                }
            }
            Event::HostRetrying { host, .. } => {
                if let Some(h) = replay.host(host, at) {
                    if replay.states[h] != State::Running {
                        replay.findings.push(Finding::NotRunning {
                            host: host.clone(),
                            event: "host_retrying",
                            at,
                        });
                    }
                }
            }
            Event::HostFinished { host, result, .. } => {
                if let Some(h) = replay.host(host, at) {
                    if replay.states[h] != State::Running {
                        replay.findings.push(Finding::NotRunning {
                            host: host.clone(),
                            event: "host_finished",
                            at,
                        });
                    }
                    replay.set(h, ended(result));
                }
            }
            Event::HostsSkipped { hosts, .. } => {
                for host in hosts {
                    if let Some(h) = replay.host(host, at) {
                        replay.set(h, State::Done("skipped"));
                    }
                }
            }
            Event::GatePassed { step, .. } => replay.open(step, false),
            Event::Approved { step, .. } => replay.open(step, true),
            Event::RunFinished { .. } => is_ended = true,
            _ => {}
        }
    }
    let mut finals = BTreeMap::new();
    for (h, state) in replay.states.iter().enumerate() {
        if state.is_terminal() {
            *finals.entry(state.word()).or_insert(0) += 1;
        } else {
            replay.findings.push(Finding::NoFinalState {
                host: plan.hosts[h].clone(),
                state: state.word(),
            });
        }
    }
    let peaks = plan
        .constraints
        .iter()
        .zip(&replay.peaks)
        .map(|(group, &(peak, at, limit))| Peak {
            group: group.id.clone(),
            limit,
            peak,
            at,
        })
        .collect();
    Audit {
        events: events.len(),
        sessions: session,
        ended: is_ended,
        peaks,
        edges: plan.edges.len(),
        finals,
        findings: replay.findings,
    }
}

fn at_ms(event: &Event) -> u64 {
    match event {
        Event::RunStarted { at_ms, .. }
        | Event::HostStarted { at_ms, .. }
        | Event::HostRetrying { at_ms, .. }
        | Event::HostFinished { at_ms, .. }
        | Event::OutputLost { at_ms, .. }
        | Event::HostsSkipped { at_ms, .. }
        | Event::RunStopping { at_ms, .. }
        | Event::RunBlocked { at_ms, .. }
        | Event::GateStarted { at_ms, .. }
        | Event::GatePassed { at_ms, .. }
        | Event::GateFailed { at_ms, .. }
        | Event::ApprovalWaiting { at_ms, .. }
        | Event::Approved { at_ms, .. }
        | Event::ApprovalExpired { at_ms, .. }
        | Event::RunFinished { at_ms, .. } => *at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pogo_model::Amount;

    /// `a b c d` in thread `t` as `a b` then `c d`; group `g` of all four, limit 2.
    fn plan() -> Plan {
        Plan::sketch("a b c d")
            .with_thread("t", &["a b", "c d"])
            .with_group("g", Amount::number(2), "a b c d")
    }

    fn started(resumed: bool) -> Event {
        Event::RunStarted {
            run_id: "r".into(),
            hosts: 4,
            command: "true".into(),
            resumed,
            overrides: Vec::new(),
            only: None,
            concurrent: None,
            at_ms: 0,
        }
    }

    fn start(host: &str, at_ms: u64) -> Event {
        Event::HostStarted {
            host: host.into(),
            at_ms,
        }
    }

    fn end(host: &str, result: FinalState, at_ms: u64) -> Event {
        Event::HostFinished {
            host: host.into(),
            result,
            attempts: 1,
            duration_ms: 1,
            message: String::new(),
            phase: None,
            at_ms,
        }
    }

    fn ok(host: &str, at_ms: u64) -> Event {
        end(host, FinalState::Succeeded, at_ms)
    }

    fn finished() -> Event {
        Event::RunFinished {
            result: crate::events::RunResult::Succeeded,
            succeeded: 4,
            failed: 0,
            timed_out: 0,
            unreachable: 0,
            skipped: 0,
            cancelled: 0,
            lost: 0,
            at_ms: 9,
        }
    }

    fn numbered(events: Vec<Event>) -> Vec<(u64, Event)> {
        (1..).zip(events).collect()
    }

    #[test]
    fn a_run_by_the_rules_passes_with_its_peaks() {
        let events = numbered(vec![
            started(false),
            start("a", 1),
            start("b", 1),
            ok("a", 2),
            ok("b", 3),
            start("c", 3),
            start("d", 3),
            ok("c", 4),
            ok("d", 5),
            finished(),
        ]);
        let found = audit(&plan(), &events);
        assert!(found.passed(), "{:?}", found.findings);
        assert!(found.ended);
        assert_eq!(found.peaks[0].peak, 2);
        assert_eq!(found.peaks[0].at.map(|at| at.place), Some(3));
        assert_eq!(found.finals.get("succeeded"), Some(&4));
        assert_eq!(found.edges, 1);
    }

    #[test]
    fn a_host_started_over_the_limit_is_named_with_its_group_and_place() {
        // Group of three, limit 2: c starts while a and b run (no order: one slot).
        let plan = Plan::sketch("a b c").with_group("web", Amount::number(2), "a b c");
        let events = numbered(vec![
            started(false),
            start("a", 1),
            start("b", 1),
            start("c", 1500),
            ok("a", 2000),
            ok("b", 2000),
            ok("c", 2000),
            finished(),
        ]);
        let found = audit(&plan, &events);
        assert_eq!(
            found.findings,
            [Finding::OverLimit {
                group: "web".into(),
                limit: 2,
                host: "c".into(),
                down: vec!["a".into(), "b".into(), "c".into()],
                at: Place {
                    place: 4,
                    session: 1,
                    at_ms: 1500
                },
            }]
        );
        assert_eq!(found.peaks[0].peak, 3);
    }

    #[test]
    fn a_failed_host_stays_down_and_a_host_may_not_start_before_its_slot_may() {
        let events = numbered(vec![
            started(false),
            start("a", 1),
            end("a", FinalState::Failed { exit_code: 1 }, 2),
            start("b", 2),
            // b runs and a failed: the group is full; c starting breaks both rules.
            start("c", 3),
            ok("b", 4),
            ok("c", 4),
            finished(),
        ]);
        let found = audit(&plan(), &events);
        assert!(
            matches!(&found.findings[0], Finding::OutOfOrder { host, before, waiting_for, .. }
                if host == "c" && before == "t.0" && waiting_for == "b"),
            "{:?}",
            found.findings
        );
        assert!(
            matches!(&found.findings[1], Finding::OverLimit { host, down, .. }
                if host == "c" && down.len() == 3),
            "{:?}",
            found.findings
        );
        assert!(
            matches!(&found.findings[2], Finding::NoFinalState { host, .. } if host == "d"),
            "{:?}",
            found.findings
        );
    }

    #[test]
    fn a_resumed_session_runs_again_what_it_retries_and_keeps_the_rest_down() {
        let plan = Plan::sketch("a b c").with_group("g", Amount::number(2), "a b c");
        let failed = FinalState::Failed { exit_code: 1 };
        let first = vec![
            started(false),
            start("a", 1),
            start("b", 1),
            end("a", failed, 2),
            end("b", failed, 2),
            Event::HostsSkipped {
                hosts: vec!["c".into()],
                at_ms: 2,
            },
            finished(),
        ];
        // Retrying a: it runs, then c, while b, failed, stays down: two of three at most.
        let mut retried = first.clone();
        retried.extend([started(true), start("a", 1), ok("a", 2), start("c", 2)]);
        retried.extend([ok("c", 3), finished()]);
        let found = audit(&plan, &numbered(retried));
        assert!(found.passed(), "{:?}", found.findings);
        assert_eq!(found.sessions, 2);
        assert_eq!(found.finals.get("failed"), Some(&1));
        // Not retrying: a and b stay down, so c alone fills the group past its limit.
        let mut resumed = first;
        resumed.extend([started(true), start("c", 1), ok("c", 2), finished()]);
        let found = audit(&plan, &numbered(resumed));
        assert!(
            matches!(&found.findings[..], [Finding::OverLimit { host, at, .. }]
                if host == "c" && at.session == 2 && at.place == 9),
            "{:?}",
            found.findings
        );
    }

    #[test]
    fn a_failed_host_retried_then_skipped_is_released_not_counted_down() {
        // Session 1 ran a alone, which failed; session 2 retried it, but b ran first, failed,
        // and the run stopped: a was skipped. b never had company in the group.
        let plan = Plan::sketch("b a").with_group("g", Amount::number(1), "a b");
        let failed = FinalState::Failed { exit_code: 1 };
        let skipped = |host: &str| Event::HostsSkipped {
            hosts: vec![host.into()],
            at_ms: 0,
        };
        let events = numbered(vec![
            started(false),
            skipped("b"),
            start("a", 1),
            end("a", failed, 2),
            finished(),
            started(true),
            start("b", 1),
            end("b", failed, 2),
            skipped("a"),
            finished(),
        ]);
        let found = audit(&plan, &events);
        assert!(found.passed(), "{:?}", found.findings);
    }

    #[test]
    fn each_session_is_held_to_the_job_limit_it_ran_under() {
        let plan = Plan::sketch("a b c d").with_job_limit(3);
        let session = |concurrent: Option<u64>| Event::RunStarted {
            run_id: "r".into(),
            hosts: 4,
            command: "true".into(),
            resumed: concurrent.is_some(),
            overrides: Vec::new(),
            only: None,
            concurrent,
            at_ms: 0,
        };
        let halted = Event::HostsSkipped {
            hosts: vec!["c".into(), "d".into()],
            at_ms: 1,
        };
        let events = numbered(vec![
            session(None),
            start("a", 1),
            start("b", 1),
            ok("a", 2),
            ok("b", 2),
            halted,
            finished(),
            // Lowered to 1, and yet two ran at once.
            session(Some(1)),
            start("c", 1),
            start("d", 1),
            ok("c", 2),
            ok("d", 2),
            finished(),
        ]);
        let found = audit(&plan, &events);
        assert!(
            matches!(&found.findings[..], [Finding::OverLimit { limit: 1, host, at, .. }]
                if host == "d" && at.session == 2),
            "{:?}",
            found.findings
        );
        // Session 1's two at once were within the plan's 3.
        assert_eq!(found.peaks[0].peak, 2);
    }

    #[test]
    fn order_holds_through_an_empty_slot_and_a_gate() {
        // t.0 = a, t.1 holds no host, t.2 = c: c waits for a through t.1.
        let plan = Plan::sketch("a c").with_thread("t", &["a", "", "c"]);
        let events = numbered(vec![started(false), start("a", 1), start("c", 1)]);
        let found = audit(&plan, &events);
        assert!(
            matches!(&found.findings[0], Finding::OutOfOrder { host, before, waiting_for, .. }
                if host == "c" && before == "t.1" && waiting_for == "a"),
            "{:?}",
            found.findings
        );
        // With a gate after a's step, c waits for it too.
        let mut gated = Plan::sketch("a c").with_thread("t", &["a", "c"]);
        gated.threads[0].slots[0].gate = Some("true".into());
        let early = numbered(vec![
            started(false),
            start("a", 1),
            ok("a", 2),
            start("c", 3),
        ]);
        let found = audit(&gated, &early);
        assert!(
            matches!(&found.findings[0], Finding::OutOfOrder { waiting_for, .. }
                if waiting_for == "the gate of t.0"),
            "{:?}",
            found.findings
        );
        let passed = Event::GatePassed {
            step: "t.0".into(),
            at_ms: 3,
        };
        let in_order = numbered(vec![
            started(false),
            start("a", 1),
            ok("a", 2),
            passed,
            start("c", 3),
            ok("c", 4),
            finished(),
        ]);
        assert!(audit(&gated, &in_order).passed());
    }

    #[test]
    fn a_host_that_runs_twice_or_is_not_in_the_plan_is_found() {
        let events = numbered(vec![
            started(false),
            start("a", 1),
            ok("a", 2),
            start("a", 3),
            ok("a", 4),
            ok("zz", 4),
        ]);
        let found = audit(&Plan::sketch("a"), &events);
        assert!(!found.ended);
        assert!(
            matches!(&found.findings[..], [
                Finding::StartedAgain { host, was: "succeeded", .. },
                Finding::UnknownHost { host: unknown, .. },
            ] if host == "a" && unknown == "zz"),
            "{:?}",
            found.findings
        );
    }
}
