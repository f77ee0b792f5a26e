//! Property tests for the scheduler (`pogo_executor::scheduler`), spec `semantics.md` §6.
//!
//! Random plans are built directly as `Plan` values: threads of slots over a small host set,
//! hosts shared between threads, empty slots, random groups and limits, a job group or none,
//! and sometimes extra edges between threads. A simple discrete-event loop drives a scheduler
//! through random outcomes and durations, an operator's halt or cancel, and resumes from random
//! previous states, and compares it after every call with an independent model that applies
//! the rules by brute force from the plan:
//!
//! - the host the scheduler starts is the first in plan order that the model says may start
//!   (ready, not started, room in every group counting failed hosts as down, run not stopped),
//!   and it starts one whenever the model has one: so no group goes over its limit, no host
//!   starts before its predecessor slots complete, and plan order decides among hosts that
//!   could start at the same moment;
//! - no host starts twice, and every host ends in exactly one terminal state;
//! - the run never hangs: whenever nothing runs it has ended (complete, stopped or blocked),
//!   and a blocked run's reasons are true of the state it was in and cover every host held back;
//! - what each call reports (`Changes`) is exactly what changed.
//!
//! Interpretations the model assumes, as the scheduler documents them: a slot is complete when
//! its hosts have finished (any terminal state) and the slots with an edge into it are complete;
//! down = running, failed, timed out, unreachable or cancelled; failures = failed + timed out +
//! unreachable, and they stop the run only while some host has yet to start.

use std::collections::{BTreeSet, HashMap};

use pogo_executor::scheduler::{
    Blocker, Changes, FailedHosts, HostIdx, HostState, LimitOverrides, Outcome, RunStatus,
    Scheduler, SchedulerError, SlotIdx, StopReason,
};
use pogo_model::{Amount, ConstraintSpec, EdgeSpec, Plan, SlotSpec, ThreadSpec, JOB_GROUP_ID};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ThreadGen {
    slots: usize,
    /// Leveled plans: the slot of each level (sorted, so the order between levels is the same
    /// in every thread and hosts shared between threads cannot make a cycle).
    level_slot: [usize; 4],
    /// Per host: whether the thread holds it.
    member: Vec<bool>,
    /// Unleveled plans: the slot of each host in this thread, anything goes.
    any_slot: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Scenario {
    plan: Plan,
    overrides: LimitOverrides,
    /// Per host: how its command ends and how long it takes.
    outcomes: Vec<(Outcome, u32)>,
    /// Per host: the order among hosts that end at the same instant.
    tiebreak: Vec<u32>,
    halt_at: Option<u32>,
    /// At this instant, cancel the running host at this position (modulo their number).
    cancel_at: Option<(u32, usize)>,
    previous: Option<(Vec<HostState>, FailedHosts)>,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Succeeded),
        2 => (1..4i32).prop_map(|exit_code| Outcome::Failed { exit_code }),
        1 => Just(Outcome::TimedOut),
        1 => Just(Outcome::Unreachable),
    ]
}

fn previous_state() -> impl Strategy<Value = HostState> {
    prop_oneof![
        3 => Just(HostState::Pending),
        3 => Just(HostState::Succeeded),
        1 => Just(HostState::Failed { exit_code: 1 }),
        1 => Just(HostState::TimedOut),
        1 => Just(HostState::Unreachable),
        1 => Just(HostState::Skipped),
        1 => Just(HostState::Cancelled),
    ]
}

fn thread_gen(n: usize) -> impl Strategy<Value = ThreadGen> {
    (1..=4usize, [0..4usize, 0..4usize, 0..4usize, 0..4usize])
        .prop_flat_map(move |(slots, mut level_slot)| {
            level_slot.sort_unstable();
            for s in &mut level_slot {
                *s %= slots;
            }
            (
                Just(slots),
                Just(level_slot),
                prop::collection::vec(prop::bool::weighted(0.6), n),
                prop::collection::vec(0..slots, n),
            )
        })
        .prop_map(|(slots, level_slot, member, any_slot)| ThreadGen {
            slots,
            level_slot,
            member,
            any_slot,
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1..=10usize)
        .prop_flat_map(|n| {
            let plan_parts = (
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                prop::bool::weighted(0.75),
                prop::collection::vec(0..4usize, n),
                prop::collection::vec(thread_gen(n), 0..=3),
                prop::collection::vec((0..16usize, 0..16usize), 0..=2),
                prop::collection::vec((any::<u16>(), 1..=3u64), 0..=3),
                prop::option::weighted(0.6, 1..=4u64),
                0..=3u64,
            );
            let run_parts = (
                prop::collection::vec((outcome(), 1..=4u32), n),
                prop::collection::vec(any::<u32>(), n),
                prop::option::weighted(0.2, 0..=12u32),
                prop::option::weighted(0.2, (0..=12u32, any::<usize>())),
                prop::option::weighted(
                    0.3,
                    (prop::collection::vec(previous_state(), n), prop::bool::ANY),
                ),
                prop::option::of(0..=3u64),
                prop::option::of(1..=4u64),
            );
            (plan_parts, run_parts)
        })
        .prop_map(|(plan_parts, run_parts)| {
            let (order, leveled, levels, threads, extra_edges, groups, job, max_failures) =
                plan_parts;
            let (outcomes, tiebreak, halt_at, cancel_at, previous, lower_failures, lower_job) =
                run_parts;
            let plan = build_plan(
                &order,
                leveled,
                &levels,
                &threads,
                &extra_edges,
                &groups,
                job,
                max_failures,
            );
            // Overrides only ever lower; raising ones are refused (unit-tested), not generated.
            let overrides = LimitOverrides {
                max_failures: lower_failures.filter(|&m| m <= max_failures),
                concurrent: lower_job.filter(|&c| job.is_none_or(|j| c <= j)),
            };
            let previous = previous.map(|(states, retry)| {
                let failed = if retry {
                    FailedHosts::Retry
                } else {
                    FailedHosts::StayFailed
                };
                // Generated per generated host; the plan lists hosts in `order`.
                let states = order.iter().map(|&g| states[g]).collect();
                (states, failed)
            });
            Scenario {
                plan,
                overrides,
                outcomes: order.iter().map(|&g| outcomes[g]).collect(),
                tiebreak: order.iter().map(|&g| tiebreak[g]).collect(),
                halt_at,
                cancel_at,
                previous,
            }
        })
}

/// Host `g` (by generation index) is named `hg`; `order` is the plan order of generation
/// indexes.
#[allow(clippy::too_many_arguments)]
fn build_plan(
    order: &[usize],
    leveled: bool,
    levels: &[usize],
    threads: &[ThreadGen],
    extra_edges: &[(usize, usize)],
    groups: &[(u16, u64)],
    job: Option<u64>,
    max_failures: u64,
) -> Plan {
    let name = |g: usize| format!("h{g}");
    let hosts: Vec<String> = order.iter().map(|&g| name(g)).collect();
    let mut thread_specs = Vec::new();
    let mut edges = Vec::new();
    let mut sequenced = BTreeSet::new();
    for (t, gen) in threads.iter().enumerate() {
        let mut slots: Vec<SlotSpec> = (0..gen.slots)
            .map(|k| SlotSpec {
                id: format!("t{t}.{k}"),
                step: format!("step{k}"),
                hosts: Vec::new(),
                gate: None,
                approve: None,
            })
            .collect();
        for &g in order {
            if !gen.member[g] {
                continue;
            }
            let k = if leveled {
                gen.level_slot[levels[g]]
            } else {
                gen.any_slot[g]
            };
            slots[k].hosts.push(name(g));
            sequenced.insert(g);
        }
        for pair in slots.windows(2) {
            edges.push(EdgeSpec {
                from: pair[0].id.clone(),
                to: pair[1].id.clone(),
            });
        }
        thread_specs.push(ThreadSpec {
            name: format!("t{t}"),
            filter: None,
            slots,
        });
    }
    let slot_ids: Vec<String> = thread_specs
        .iter()
        .flat_map(|t| t.slots.iter().map(|s| s.id.clone()))
        .collect();
    if !leveled && !slot_ids.is_empty() {
        for &(a, b) in extra_edges {
            let (a, b) = (a % slot_ids.len(), b % slot_ids.len());
            if a != b {
                edges.push(EdgeSpec {
                    from: slot_ids[a].clone(),
                    to: slot_ids[b].clone(),
                });
            }
        }
    }
    let mut constraints = Vec::new();
    if let Some(limit) = job {
        constraints.push(ConstraintSpec {
            id: JOB_GROUP_ID.into(),
            from: JOB_GROUP_ID.into(),
            max_parallel: Amount::number(limit),
            hosts: hosts.clone(),
        });
    }
    for (i, &(mask, limit)) in groups.iter().enumerate() {
        constraints.push(ConstraintSpec {
            id: format!("$g{i}"),
            from: "$g".into(),
            max_parallel: Amount::number(limit),
            hosts: order
                .iter()
                .filter(|&&g| mask & (1 << g) != 0)
                .map(|&g| name(g))
                .collect(),
        });
    }
    let unordered = order
        .iter()
        .filter(|g| !sequenced.contains(g))
        .map(|&g| name(g))
        .collect();
    Plan {
        unordered,
        threads: thread_specs,
        constraints,
        edges,
        ..Plan::sketch_of(hosts).with_max_failures(max_failures)
    }
}

// ---------------------------------------------------------------------------------------------
// The model: §6 by brute force, from the plan
// ---------------------------------------------------------------------------------------------

struct Model {
    /// Per slot (in `Plan::slots` order): its id, hosts and the slots with an edge into it.
    slots: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Per host: the slots holding it.
    holders: Vec<Vec<usize>>,
    /// Per group: id, limit in force, members.
    groups: Vec<(String, u64, Vec<usize>)>,
    states: Vec<HostState>,
    max_failures: u64,
    stopped: Option<StopReason>,
    blocked: bool,
}

fn down(state: HostState) -> bool {
    matches!(
        state,
        HostState::Running
            | HostState::Failed { .. }
            | HostState::TimedOut
            | HostState::Unreachable
            | HostState::Cancelled
    )
}

fn failure(state: HostState) -> bool {
    matches!(
        state,
        HostState::Failed { .. } | HostState::TimedOut | HostState::Unreachable
    )
}

fn terminal(state: HostState) -> bool {
    !matches!(state, HostState::Pending | HostState::Running)
}

impl Model {
    fn new(plan: &Plan, overrides: LimitOverrides) -> Model {
        let index: HashMap<&str, usize> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let slot_ids: Vec<&str> = plan.slots().map(|(_, s)| s.id.as_str()).collect();
        let slot_of = |id: &str| slot_ids.iter().position(|s| *s == id).unwrap();
        let mut holders = vec![Vec::new(); plan.hosts.len()];
        let slots = plan
            .slots()
            .enumerate()
            .map(|(i, (_, spec))| {
                let hosts: Vec<usize> = spec.hosts.iter().map(|h| index[h.as_str()]).collect();
                for &h in &hosts {
                    holders[h].push(i);
                }
                let preds = plan
                    .edges
                    .iter()
                    .filter(|e| e.to == spec.id)
                    .map(|e| slot_of(&e.from))
                    .collect();
                (spec.id.clone(), hosts, preds)
            })
            .collect();
        let mut groups: Vec<(String, u64, Vec<usize>)> = plan
            .constraints
            .iter()
            .map(|c| {
                let mut limit = c.max_parallel.value;
                if c.id == JOB_GROUP_ID {
                    limit = overrides.concurrent.unwrap_or(limit);
                }
                let members = c.hosts.iter().map(|h| index[h.as_str()]).collect();
                (c.id.clone(), limit, members)
            })
            .collect();
        if let (Some(c), None) = (overrides.concurrent, plan.constraint(JOB_GROUP_ID)) {
            groups.push((JOB_GROUP_ID.into(), c, (0..plan.hosts.len()).collect()));
        }
        Model {
            slots,
            holders,
            groups,
            states: vec![HostState::Pending; plan.hosts.len()],
            max_failures: overrides
                .max_failures
                .unwrap_or(plan.options.max_failures.value),
            stopped: None,
            blocked: false,
        }
    }

    /// Which slots are complete when `finished` says which hosts have finished: a fixpoint,
    /// so that it also terminates on a cyclic plan.
    fn complete_with(&self, finished: &[bool]) -> Vec<bool> {
        let mut complete = vec![false; self.slots.len()];
        loop {
            let mut changed = false;
            for (s, (_, hosts, preds)) in self.slots.iter().enumerate() {
                if !complete[s]
                    && hosts.iter().all(|&h| finished[h])
                    && preds.iter().all(|&p| complete[p])
                {
                    complete[s] = true;
                    changed = true;
                }
            }
            if !changed {
                return complete;
            }
        }
    }

    fn complete(&self) -> Vec<bool> {
        let finished: Vec<bool> = self.states.iter().map(|&s| terminal(s)).collect();
        self.complete_with(&finished)
    }

    fn ready_with(&self, h: usize, complete: &[bool]) -> bool {
        self.holders[h]
            .iter()
            .all(|&s| self.slots[s].2.iter().all(|&p| complete[p]))
    }

    fn ready(&self) -> Vec<bool> {
        let complete = self.complete();
        (0..self.states.len())
            .map(|h| self.ready_with(h, &complete))
            .collect()
    }

    /// Whether some hosts could never run even if every host finished as soon as it was
    /// ready: a cycle in the dependencies.
    fn has_cycle(&self) -> bool {
        let mut finished = vec![false; self.states.len()];
        loop {
            let complete = self.complete_with(&finished);
            let next: Vec<usize> = (0..finished.len())
                .filter(|&h| !finished[h] && self.ready_with(h, &complete))
                .collect();
            if next.is_empty() {
                return finished.iter().any(|f| !f) || complete.iter().any(|c| !c);
            }
            for h in next {
                finished[h] = true;
            }
        }
    }

    fn down(&self, g: usize) -> u64 {
        self.groups[g]
            .2
            .iter()
            .filter(|&&h| down(self.states[h]))
            .count() as u64
    }

    fn groups_of(&self, h: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.groups.len()).filter(move |&g| self.groups[g].2.contains(&h))
    }

    fn room_for(&self, h: usize) -> bool {
        self.groups_of(h).all(|g| self.down(g) < self.groups[g].1)
    }

    fn startable(&self) -> Vec<usize> {
        if self.stopped.is_some() || self.blocked {
            return Vec::new();
        }
        let ready = self.ready();
        (0..self.states.len())
            .filter(|&h| self.states[h] == HostState::Pending && ready[h] && self.room_for(h))
            .collect()
    }

    fn count(&self, what: fn(HostState) -> bool) -> usize {
        self.states.iter().filter(|&&s| what(s)).count()
    }

    fn pending(&self) -> Vec<usize> {
        (0..self.states.len())
            .filter(|&h| self.states[h] == HostState::Pending)
            .collect()
    }

    fn skip_pending(&mut self) {
        for h in self.pending() {
            self.states[h] = HostState::Skipped;
        }
    }

    fn check_budget(&mut self) {
        let failures = self.count(failure);
        if self.stopped.is_none()
            && failures as u64 > self.max_failures
            && !self.pending().is_empty()
        {
            self.stopped = Some(StopReason::FailureBudget {
                failures,
                max_failures: self.max_failures,
            });
            self.skip_pending();
        }
    }

    /// The pending hosts that wait for slot `root`, directly or through the slots after it
    /// (after it: a slot with an edge from one after it, or holding a pending host after it),
    /// in plan order.
    fn held_back_by(&self, root: usize) -> Vec<usize> {
        let mut slots = vec![false; self.slots.len()];
        slots[root] = true;
        let mut hosts = vec![false; self.states.len()];
        loop {
            let mut changed = false;
            for (h, after) in hosts.iter_mut().enumerate() {
                if !*after
                    && self.states[h] == HostState::Pending
                    && self.holders[h]
                        .iter()
                        .any(|&x| self.slots[x].2.iter().any(|&p| slots[p]))
                {
                    *after = true;
                    changed = true;
                }
            }
            for x in 0..slots.len() {
                let (_, members, preds) = &self.slots[x];
                if !slots[x]
                    && (preds.iter().any(|&p| slots[p]) || members.iter().any(|&h| hosts[h]))
                {
                    slots[x] = true;
                    changed = true;
                }
            }
            if !changed {
                return (0..hosts.len()).filter(|&h| hosts[h]).collect();
            }
        }
    }

    /// Whether the run is stuck: nothing runs, nothing may start, hosts remain.
    fn stuck(&self) -> bool {
        self.stopped.is_none()
            && !self.blocked
            && self.count(|s| s == HostState::Running) == 0
            && !self.pending().is_empty()
            && self.startable().is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// What the model saw before a call, to check what the call says it changed.
struct Before {
    states: Vec<HostState>,
    ready: Vec<bool>,
    complete: Vec<bool>,
    ended: bool,
}

struct Harness<'p> {
    plan: &'p Plan,
    run: Scheduler,
    model: Model,
}

impl Harness<'_> {
    fn before(&self) -> Before {
        Before {
            states: self.model.states.clone(),
            ready: self.model.ready(),
            complete: self.model.complete(),
            ended: self.run.status().is_ended(),
        }
    }

    /// Applies what the model expects after a call: the failure budget, then the blocked
    /// check, whose reasons are checked against the state before the hosts are skipped.
    fn settle_model(&mut self) -> Result<(), TestCaseError> {
        self.model.check_budget();
        if self.model.stuck() {
            let RunStatus::Blocked(blockers) = self.run.status() else {
                return Err(TestCaseError::fail(format!(
                    "the run is stuck but its status is {:?}",
                    self.run.status()
                )));
            };
            check_blockers(self.plan, &self.model, blockers)?;
            self.model.blocked = true;
            self.model.skip_pending();
        }
        Ok(())
    }

    /// The scheduler and the model agree on everything observable, and `changes` is exactly
    /// what changed since `before`.
    fn check(&self, before: &Before, changes: &Changes) -> Result<(), TestCaseError> {
        let model = &self.model;
        prop_assert_eq!(self.run.host_states(), &model.states[..]);
        let tally = self.run.tally();
        prop_assert_eq!(tally.pending, model.count(|s| s == HostState::Pending));
        prop_assert_eq!(tally.running, model.count(|s| s == HostState::Running));
        prop_assert_eq!(tally.skipped, model.count(|s| s == HostState::Skipped));
        prop_assert_eq!(tally.cancelled, model.count(|s| s == HostState::Cancelled));
        prop_assert_eq!(tally.failures(), model.count(failure));
        let ready = model.ready();
        let complete = model.complete();
        for (h, &state) in model.states.iter().enumerate() {
            if state == HostState::Pending {
                prop_assert_eq!(self.run.is_ready(HostIdx::new(h)), ready[h], "host {}", h);
            }
        }
        for (s, &c) in complete.iter().enumerate() {
            prop_assert_eq!(self.run.is_slot_complete(SlotIdx::new(s)), c, "slot {}", s);
        }

        let skipped: Vec<usize> = (0..model.states.len())
            .filter(|&h| {
                before.states[h] == HostState::Pending && model.states[h] == HostState::Skipped
            })
            .collect();
        let reported: Vec<usize> = changes.hosts_skipped.iter().map(|h| h.index()).collect();
        prop_assert_eq!(reported, skipped, "skipped hosts, in plan order");

        let mut completed: Vec<usize> = changes.slots_completed.iter().map(|s| s.index()).collect();
        completed.sort_unstable();
        let expected: Vec<usize> = (0..complete.len())
            .filter(|&s| complete[s] && !before.complete[s])
            .collect();
        prop_assert_eq!(completed, expected, "completed slots");

        let mut readied: Vec<usize> = changes.hosts_ready.iter().map(|h| h.index()).collect();
        readied.sort_unstable();
        let expected: Vec<usize> = (0..ready.len())
            .filter(|&h| model.states[h] == HostState::Pending && ready[h] && !before.ready[h])
            .collect();
        prop_assert_eq!(readied, expected, "hosts that became ready");

        let ended = self.run.status().is_ended();
        prop_assert_eq!(changes.ended, ended && !before.ended);

        match self.run.status() {
            RunStatus::Blocked(_) => prop_assert!(model.blocked),
            RunStatus::Stopping(reason) | RunStatus::Stopped(reason) => {
                prop_assert_eq!(Some(reason.clone()), model.stopped.clone())
            }
            RunStatus::Complete => {
                prop_assert!(model.stopped.is_none() && !model.blocked);
                prop_assert!(model.states.iter().all(|&s| terminal(s)));
                prop_assert_eq!(model.count(|s| s == HostState::Skipped), 0);
            }
            RunStatus::Running => prop_assert!(model.stopped.is_none() && !model.blocked),
        }
        if let RunStatus::Stopping(_) = self.run.status() {
            prop_assert!(tally.running > 0);
        }
        Ok(())
    }

    /// Starts every host that may start now, checking each against the model.
    fn start_all(
        &mut self,
        now: u32,
        running: &mut Vec<(u32, usize)>,
        s: &Scenario,
    ) -> Result<(), TestCaseError> {
        loop {
            let expected = self.model.startable().first().copied();
            let peeked = self.run.peek_next();
            let got = self.run.next_to_start();
            prop_assert_eq!(peeked, got);
            prop_assert_eq!(
                got.map(HostIdx::index),
                expected,
                "the first host that may start"
            );
            let Some(h) = got.map(HostIdx::index) else {
                return Ok(());
            };
            // Independently of the model's `startable`: the host was pending (so it never
            // ran), each slot before it is complete, and each of its groups had room.
            prop_assert_eq!(self.model.states[h], HostState::Pending);
            let complete = self.model.complete();
            for &s in &self.model.holders[h] {
                for &p in &self.model.slots[s].2 {
                    prop_assert!(complete[p], "host {} started before slot {}", h, p);
                }
            }
            for g in self.model.groups_of(h).collect::<Vec<_>>() {
                prop_assert!(self.model.down(g) < self.model.groups[g].1);
            }
            let before = self.before();
            self.model.states[h] = HostState::Running;
            self.check(&before, &Changes::default())?;
            running.push((now + s.outcomes[h].1, h));
        }
    }
}

/// Every reason of a blocked run is true of the model's state, and together they name every
/// host held back.
fn check_blockers(plan: &Plan, model: &Model, blockers: &[Blocker]) -> Result<(), TestCaseError> {
    prop_assert!(!blockers.is_empty());
    let ready = model.ready();
    let complete = model.complete();
    let mut held = BTreeSet::new();
    for blocker in blockers {
        match blocker {
            Blocker::GroupFull {
                group,
                max_parallel,
                down: downs,
                waiting,
            } => {
                let g = model
                    .groups
                    .iter()
                    .position(|(id, _, _)| id == group)
                    .unwrap();
                let (_, limit, members) = &model.groups[g];
                prop_assert_eq!(max_parallel.value, *limit);
                let expected: Vec<(HostIdx, HostState)> = members
                    .iter()
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|&h| down(model.states[h]))
                    .map(|h| (HostIdx::new(h), model.states[h]))
                    .collect();
                prop_assert_eq!(downs, &expected);
                prop_assert!(downs.len() as u64 >= *limit);
                prop_assert!(downs.iter().all(|&(_, s)| s != HostState::Running));
                for h in waiting {
                    let h = h.index();
                    prop_assert!(members.contains(&h));
                    prop_assert!(model.states[h] == HostState::Pending && ready[h]);
                }
                prop_assert!(!blocker.describe(&plan.hosts).is_empty());
            }
            Blocker::BudgetFull { .. } => {
                prop_assert!(false, "a run alone has no shared budget: {blocker:?}")
            }
            Blocker::SlotIncomplete {
                slot,
                unfinished,
                waiting,
            } => {
                let s = model
                    .slots
                    .iter()
                    .position(|(id, _, _)| id == slot)
                    .unwrap();
                prop_assert!(!complete[s]);
                let (_, hosts, preds) = &model.slots[s];
                prop_assert!(
                    preds.iter().all(|&p| complete[p]),
                    "a slot before it is incomplete"
                );
                let expected: BTreeSet<usize> = hosts
                    .iter()
                    .copied()
                    .filter(|&h| !terminal(model.states[h]))
                    .collect();
                let named: Vec<usize> = unfinished.iter().map(|h| h.index()).collect();
                prop_assert_eq!(&named, &expected.into_iter().collect::<Vec<_>>());
                // Some of them a full group keeps from starting, and its reason says so.
                let held_by_a_group = |h: usize| {
                    blockers.iter().any(|b| {
                        matches!(b, Blocker::GroupFull { .. })
                            && b.waiting().contains(&HostIdx::new(h))
                    })
                };
                prop_assert!(named.iter().any(|&h| ready[h] && held_by_a_group(h)));
                let named: Vec<usize> = waiting.iter().map(|h| h.index()).collect();
                prop_assert_eq!(named, model.held_back_by(s));
            }
        }
        held.extend(blocker.waiting().iter().map(|h| h.index()));
    }
    prop_assert_eq!(held, model.pending().into_iter().collect::<BTreeSet<_>>());
    Ok(())
}

fn run_scenario(s: &Scenario) -> Result<(), TestCaseError> {
    let plan = &s.plan;
    let mut model = Model::new(plan, s.overrides);
    let built = match &s.previous {
        None => Scheduler::new(plan, s.overrides),
        Some((states, failed)) => Scheduler::resume(plan, s.overrides, states, *failed),
    };
    let run = match built {
        Ok(run) => run,
        Err(SchedulerError::Cycle { .. }) | Err(SchedulerError::InvalidPlan(_)) => {
            prop_assert!(
                model.has_cycle(),
                "refused a plan without a cycle: {:?}",
                built
            );
            return Ok(());
        }
        Err(other) => return Err(TestCaseError::fail(format!("refused: {other}"))),
    };
    prop_assert!(!model.has_cycle(), "accepted a plan with a cycle");

    if let Some((states, failed)) = &s.previous {
        for (h, &state) in states.iter().enumerate() {
            model.states[h] = match state {
                HostState::Succeeded => state,
                state if failure(state) && *failed == FailedHosts::StayFailed => state,
                _ => HostState::Pending,
            };
        }
    }
    let mut harness = Harness { plan, run, model };
    let before = Before {
        states: harness.model.states.clone(),
        ready: harness.model.ready(),
        complete: harness.model.complete(),
        ended: false,
    };
    harness.settle_model()?;
    // Building reports nothing; check the state only.
    let built_changes = Changes {
        hosts_skipped: (0..before.states.len())
            .filter(|&h| {
                before.states[h] == HostState::Pending
                    && harness.model.states[h] == HostState::Skipped
            })
            .map(HostIdx::new)
            .collect(),
        slots_completed: {
            let complete = harness.model.complete();
            (0..complete.len())
                .filter(|&c| complete[c] && !before.complete[c])
                .map(SlotIdx::new)
                .collect()
        },
        hosts_ready: {
            let ready = harness.model.ready();
            (0..ready.len())
                .filter(|&h| {
                    harness.model.states[h] == HostState::Pending && ready[h] && !before.ready[h]
                })
                .map(HostIdx::new)
                .collect()
        },
        stopped: None,
        ended: harness.run.status().is_ended(),
        gates_due: Vec::new(),
    };
    harness.check(&before, &built_changes)?;

    let mut now = 0u32;
    let mut running: Vec<(u32, usize)> = Vec::new();
    let mut steps = 0;
    loop {
        steps += 1;
        prop_assert!(steps < 1000, "the run does not end");
        if s.halt_at == Some(now) {
            let before = harness.before();
            let changes = harness.run.halt();
            if harness.model.stopped.is_none() && !before.ended {
                harness.model.stopped = Some(StopReason::Halted);
                harness.model.skip_pending();
                prop_assert_eq!(&changes.stopped, &Some(StopReason::Halted));
            } else {
                prop_assert_eq!(&changes.stopped, &None);
            }
            harness.check(&before, &changes)?;
        }
        if let Some((at, pick)) = s.cancel_at {
            if at == now && !running.is_empty() {
                let (_, h) = running.remove(pick % running.len());
                let before = harness.before();
                let changes = harness.run.cancel(HostIdx::new(h)).unwrap();
                harness.model.states[h] = HostState::Cancelled;
                harness.settle_model()?;
                prop_assert_eq!(&changes.stopped, &None);
                harness.check(&before, &changes)?;
            }
        }

        harness.start_all(now, &mut running, s)?;

        if running.is_empty() {
            // Nothing runs and nothing may start: the run must have ended, and said why.
            let status = harness.run.status();
            prop_assert!(
                status.is_ended(),
                "nothing runs, yet the status is {:?}",
                status
            );
            prop_assert!(harness.run.host_states().iter().all(|&st| terminal(st)));
            prop_assert_eq!(harness.run.next_to_start(), None);
            return Ok(());
        }
        prop_assert!(matches!(
            harness.run.status(),
            RunStatus::Running | RunStatus::Stopping(_)
        ));

        // Next instant: the first host to end, or an operator's action before it.
        let mut next = running.iter().map(|&(end, _)| end).min().unwrap();
        for at in [s.halt_at, s.cancel_at.map(|(at, _)| at)]
            .into_iter()
            .flatten()
        {
            if at > now && at < next {
                next = at;
            }
        }
        now = next;
        let mut ending: Vec<(u32, usize)> = running
            .iter()
            .filter(|&&(end, _)| end == now)
            .map(|&(_, h)| (s.tiebreak[h], h))
            .collect();
        ending.sort_unstable();
        running.retain(|&(end, _)| end != now);
        for (_, h) in ending {
            let outcome = s.outcomes[h].0;
            let before = harness.before();
            let changes = harness.run.finish(HostIdx::new(h), outcome).unwrap();
            let was_stopped = harness.model.stopped.clone();
            harness.model.states[h] = HostState::from(outcome);
            harness.settle_model()?;
            let expected = if was_stopped.is_none() {
                harness.model.stopped.clone()
            } else {
                None
            };
            prop_assert_eq!(&changes.stopped, &expected);
            harness.check(&before, &changes)?;
            // Once a host has finished, the scheduler refuses to finish it again.
            prop_assert!(harness.run.finish(HostIdx::new(h), outcome).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_scheduler_follows_the_rules_of_a_run(s in scenario()) {
        run_scenario(&s)?;
    }
}
