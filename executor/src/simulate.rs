//! Simulated runs: the [`Scheduler`] driven by a simulated clock, so a reviewer sees how long a
//! rollout takes and that its limits hold before anything runs (`pogo simulate`, issue 4 part 6).
//!
//! The simulation is a discrete-event loop over the very scheduler `pogo apply` drives: start
//! every host that may start, jump the clock to the next instant a running host ends, report
//! every host ending then to the scheduler (in plan order), and again, until the run ends. No
//! sleeping, no runtime, no I/O: the same inputs give the same result, and 100,000 hosts take a
//! fraction of a second.
//!
//! # The model
//!
//! - Every host's command takes [`SimulationPolicy::duration_ms`], varied uniformly within
//!   ±[`SimulationPolicy::jitter_percent`] by a seeded PRNG (splitmix64). A host's duration
//!   depends only on the seed and its place in the plan, never on the order of events, so
//!   changing a limit does not reshuffle durations.
//! - Hosts in [`SimulationPolicy::failing`] fail (exit code 1) at the end of their duration;
//!   the others succeed. A command that would outlive the plan's per-host `timeout` times out
//!   when the timeout expires (a failure, like in a real run).
//! - A host that does not succeed is tried again `options.retries` times, after
//!   [`SimulationPolicy::retry_delay_ms`] each time, each attempt taking as long as the first
//!   and ending the same way; the scheduler hears of its final outcome once, as from `pogo
//!   apply`'s runner, and the host is down all along.
//! - The plan's `max_failures` applies, lowered by [`LimitOverrides`] like a run's.
//! - When the plan's `run_timeout` expires, the run halts and the commands still running are
//!   killed (their hosts are cancelled), as `pogo apply` does. Hosts that end at that very
//!   instant end first; no host starts then.
//!
//! # What it reports
//!
//! - **Makespan**: from the start of the run (0) to the end of the last host.
//! - **Waves**: the hosts that start in each window of [`Simulation::wave_ms`] (the duration of
//!   one successful attempt: `duration`, or the timeout when shorter). Without jitter every
//!   host of a wave starts at the same instant.
//! - **Peaks**: per constraint group (and the job group, or the whole run when the plan has no
//!   job-wide limit), the most hosts down at once (running, or failed and so kept down: what
//!   `max_parallel` bounds), when that was first reached, and how long the group was full.
//!   The counts are kept here, apart from the scheduler's, so they check it.
//! - **Critical path**: the chain of hosts that sets the makespan; see [`PathStep`].
//! - **Outcome**: complete, stopped by the failure budget, or blocked with the scheduler's
//!   reasons ([`Blocker`]), and the count of hosts in each state.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use pogo_model::{Amount, Plan, JOB_GROUP_ID};

use crate::scheduler::{
    Blocker, Changes, HostIdx, HostState, LimitOverrides, Outcome, RunStatus, Scheduler,
    SchedulerError, SlotIdx, StopReason, Tally,
};

/// How a simulated run goes: durations, failures and the run-time limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationPolicy {
    /// How long each host's command takes, in milliseconds, before jitter.
    pub duration_ms: u64,
    /// Each host's duration is drawn uniformly within ± this percentage of `duration_ms`
    /// (0 to 100).
    pub jitter_percent: u32,
    /// Seed of the PRNG that draws durations.
    pub seed: u64,
    /// Hosts whose command fails.
    pub failing: Vec<HostIdx>,
    /// The pause before each retry of a host that did not succeed (`pogo apply --retry-delay`).
    pub retry_delay_ms: u64,
    /// Run-time limits, as `pogo apply` takes them (they can only lower the plan's).
    pub overrides: LimitOverrides,
    /// How long each attempt's `before` takes, in milliseconds (0 without one).
    pub before_ms: u64,
    /// How long `verify` (until it passes) and `after` take together, in milliseconds: only
    /// after a command that succeeded (0 without them).
    pub after_ms: u64,
    /// How long a gate after a step takes to pass, and an approval to come, in milliseconds:
    /// the steps after it wait that long once its hosts have ended.
    pub gate_ms: u64,
    pub approval_ms: u64,
}

/// The seed used when none is given: any fixed value keeps output reproducible.
pub const DEFAULT_SEED: u64 = 1;

impl Default for SimulationPolicy {
    fn default() -> Self {
        SimulationPolicy {
            duration_ms: 30_000,
            jitter_percent: 0,
            seed: DEFAULT_SEED,
            failing: Vec::new(),
            retry_delay_ms: DEFAULT_RETRY_DELAY_MS,
            overrides: LimitOverrides::default(),
            before_ms: 0,
            after_ms: 0,
            gate_ms: 0,
            approval_ms: 0,
        }
    }
}

/// `pogo apply`'s default pause before a retry.
pub const DEFAULT_RETRY_DELAY_MS: u64 = 5_000;

/// Why a plan cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulationError {
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error("a duration of 0 would end everything at once")]
    ZeroDuration,
    #[error("a jitter of {0}% is more than 100%")]
    JitterTooLarge(u32),
    #[error("host {0} is not in the plan")]
    NoSuchHost(HostIdx),
}

/// What happened to one host in the simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRun {
    /// How long one attempt of its command takes (drawn, before the timeout cuts it).
    pub duration_ms: u64,
    /// When it started; `None` when it never did (skipped).
    pub start_ms: Option<u64>,
    /// When its last attempt ended.
    pub end_ms: Option<u64>,
    /// How it ended: every host ends in exactly one terminal state.
    pub state: HostState,
    /// Attempts started (1 + retries for a host that did not succeed, fewer when the run
    /// timeout killed it); 0 when skipped.
    pub attempts: u32,
}

/// The hosts that start in one window of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// The window: `[start_ms, end_ms)`, a multiple of [`Simulation::wave_ms`].
    pub start_ms: u64,
    pub end_ms: u64,
    /// Its hosts, in the order they started, grouped by the slots that hold them (in the
    /// order each group first started a host).
    pub lanes: Vec<Lane>,
}

impl Wave {
    /// Every host of the wave.
    pub fn hosts(&self) -> impl Iterator<Item = HostIdx> + '_ {
        self.lanes
            .iter()
            .flat_map(|lane| lane.hosts.iter().copied())
    }

    pub fn host_count(&self) -> usize {
        self.lanes.iter().map(|lane| lane.hosts.len()).sum()
    }
}

/// Hosts of a wave held by the same slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// The ids of the slots holding these hosts (more than one for a host named in several
    /// threads); empty for the unordered lane.
    pub slots: Vec<String>,
    pub hosts: Vec<HostIdx>,
}

/// The most hosts a group had down at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPeak {
    /// The group's id in the plan (`$colo.east`, `job`).
    pub id: String,
    /// The limit in force (the plan's, or lower when overridden); `None` for the `job` row of
    /// a plan without a job-wide limit, which counts every host.
    pub max_parallel: Option<Amount>,
    /// How many hosts it holds.
    pub members: usize,
    /// The most hosts down at once: running, or failed and so kept down.
    pub peak: u64,
    /// When the peak was first reached (0 when no host of the group ever ran).
    pub peak_at_ms: u64,
    /// How long the group was full (down = `max_parallel`) in all, up to the end of the run.
    pub full_ms: u64,
}

/// Why a host of the critical path started when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitedFor {
    /// It started when the run did.
    Start,
    /// It waited for a slot before it to complete; the previous step of the path is the host
    /// whose end completed it.
    Slot { slot: String },
    /// It was ready but waited for room in a full group; the previous step of the path is the
    /// host whose end made room.
    Room { group: String },
    /// It waited for the gate or the approval after a step, `wait_ms` from when the step's
    /// last host ended (the previous step of the path); that wait is part of the path.
    Gate { slot: String, wait_ms: u64 },
}

/// One host of the critical path.
///
/// The critical path is built backwards from the host that ended last (the first in plan
/// order among those ending at that instant): each host's predecessor is what it waited for.
/// A host that started at a time `t > 0` started because hosts ended at `t`:
///
/// - if it became ready at `t` (the last slot it waited for completed then), its predecessor is
///   the host whose end completed that slot ([`WaitedFor::Slot`]);
/// - otherwise it was ready earlier and a full group held it back; its predecessor is the first
///   host in plan order that ended at `t`, succeeded, and is in one of its groups that was full
///   just before `t` ([`WaitedFor::Room`]; failed hosts stay down, so they never make room).
///
/// The walk stops at a host that started at 0 ([`WaitedFor::Start`]). Each step starts when the
/// one before it ends (or, after a gate or an approval, [`WaitedFor::Gate`] `wait_ms` later),
/// so the path's durations and waits add up to the makespan exactly: shortening any host on it
/// (or raising the limit, or speeding the gate, it waited for) is what could shorten the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    pub host: HostIdx,
    /// The ids of the slots that hold it (empty: the unordered lane).
    pub slots: Vec<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub waited_for: WaitedFor,
}

/// How the simulated run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatedEnd {
    /// Every host ran (some may have failed, within the failure budget).
    Complete,
    /// The failure budget stopped the run at `at_ms`; hosts running then finished, the others
    /// were skipped.
    Stopped { reason: StopReason, at_ms: u64 },
    /// At `at_ms` nothing ran and the hosts left could never start, for these reasons; they
    /// were skipped.
    Blocked { blockers: Vec<Blocker>, at_ms: u64 },
    /// The plan's run timeout expired at `at_ms`: the run halted, hosts not started were
    /// skipped, and the commands still running were killed (their hosts are cancelled).
    RunTimeout { at_ms: u64 },
}

/// Everything a simulated run produced, as owned data for any renderer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    /// From the start of the run to the end of its last host.
    pub makespan_ms: u64,
    /// The window of a wave (see [`Wave`]).
    pub wave_ms: u64,
    /// Non-empty windows only, in time order.
    pub waves: Vec<Wave>,
    /// Per host, indexed like `plan.hosts`.
    pub hosts: Vec<HostRun>,
    /// The job group first (or a `job` row without limit), then the plan's groups in plan
    /// order.
    pub groups: Vec<GroupPeak>,
    /// From the first host (started at 0) to the one that ended last; empty when no host ran.
    pub critical_path: Vec<PathStep>,
    pub end: SimulatedEnd,
    pub tally: Tally,
}

/// Simulates a run of `plan` under `policy`.
///
/// Cost: the scheduler's (see its module documentation) plus O(log n) per host for the event
/// queue and O(g) per host in g groups for the peaks; the critical path walk is O(its length).
pub fn simulate(plan: &Plan, policy: &SimulationPolicy) -> Result<Simulation, SimulationError> {
    if policy.duration_ms == 0 {
        return Err(SimulationError::ZeroDuration);
    }
    if policy.jitter_percent > 100 {
        return Err(SimulationError::JitterTooLarge(policy.jitter_percent));
    }
    let n = plan.hosts.len();
    if let Some(&bad) = policy.failing.iter().find(|h| h.index() >= n) {
        return Err(SimulationError::NoSuchHost(bad));
    }
    let run = Scheduler::new(plan, policy.overrides)?;
    let gate_waits: Vec<u64> = plan
        .slots()
        .map(|(_, slot)| {
            slot.gate.as_ref().map_or(0, |_| policy.gate_ms)
                + slot.approve.map_or(0, |_| policy.approval_ms)
        })
        .collect();
    let layout = Layout::new(plan, policy.overrides);
    let mut fails = vec![false; n];
    for h in &policy.failing {
        fails[h.index()] = true;
    }
    let hosts: Vec<HostRun> = (0..n)
        .map(|h| HostRun {
            duration_ms: draw_duration(policy, h),
            start_ms: None,
            end_ms: None,
            state: HostState::Pending,
            attempts: 0,
        })
        .collect();
    let mut sim = Loop {
        run,
        timeout_ms: plan.options.timeout.saturating_mul(1000),
        run_timeout_ms: plan.options.run_timeout.map(|s| s.saturating_mul(1000)),
        retries: plan.options.retries,
        retry_delay_ms: policy.retry_delay_ms,
        before_ms: policy.before_ms,
        after_ms: policy.after_ms,
        gate_waits,
        gates: BinaryHeap::new(),
        gate_by: HashMap::new(),
        fails,
        hosts,
        ready_at: vec![0; n],
        cause: vec![Cause::Start; n],
        started: Vec::with_capacity(n),
        running: BinaryHeap::new(),
        now: 0,
        peaks: Peaks::new(&layout),
        layout,
        stopped_at: None,
        expired: false,
    };
    sim.drive()?;
    Ok(sim.into_simulation(policy))
}

/// Draws host `h`'s duration: the `h`-th output of a splitmix64 stream seeded with the seed,
/// so it depends on nothing but the seed and `h`.
fn draw_duration(policy: &SimulationPolicy, h: usize) -> u64 {
    let base = policy.duration_ms;
    let spread = base.saturating_mul(u64::from(policy.jitter_percent)) / 100;
    if spread == 0 {
        return base;
    }
    let random = splitmix64(
        policy
            .seed
            .wrapping_add((h as u64 + 1).wrapping_mul(SPLITMIX_GAMMA)),
    );
    // Uniform in [0, 2 * spread]: the high half of a 64x64-bit product, which has no modulo
    // bias worth speaking of.
    let offset = ((u128::from(random) * u128::from(2 * spread + 1)) >> 64) as u64;
    (base - spread + offset).max(1)
}

const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The output function of splitmix64 (Steele, Lea and Flood, 2014): a good 64-bit mix of
/// consecutive states.
fn splitmix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The plan's relations that the simulation needs besides the scheduler's: which groups and
/// slots hold each host, and the limits in force.
struct Layout {
    /// The job row first, then the plan's other groups in plan order.
    groups: Vec<GroupInfo>,
    /// Per host: its groups, as `host_groups[host_group_start[h]..host_group_start[h + 1]]`.
    host_group_start: Vec<u32>,
    host_groups: Vec<u32>,
    /// Per host: the indices (in `Plan::slots` order) of the slots holding it.
    host_slots: Vec<Vec<u32>>,
    slot_ids: Vec<String>,
}

struct GroupInfo {
    id: String,
    /// The limit in force; `None` for the `job` row of a plan without a job-wide limit.
    limit: Option<Amount>,
    members: usize,
}

impl Layout {
    fn new(plan: &Plan, overrides: LimitOverrides) -> Layout {
        let n = plan.hosts.len();
        let index: HashMap<&str, u32> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i as u32))
            .collect();
        let mut groups = Vec::with_capacity(plan.constraints.len() + 1);
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        // The job group first: it is the run-wide figure a reviewer looks for. Without one
        // (and without --concurrent, which makes one of every host, as the scheduler does),
        // its row counts every host under no limit.
        let job = plan.constraint(JOB_GROUP_ID);
        let limit = match (job, overrides.concurrent) {
            (_, Some(given)) => Some(Amount::number(given)),
            (Some(spec), None) => Some(spec.max_parallel),
            (None, None) => None,
        };
        match job {
            Some(spec) => pairs.extend(spec.hosts.iter().map(|h| (index[h.as_str()], 0))),
            None => pairs.extend((0..n as u32).map(|h| (h, 0))),
        }
        groups.push(GroupInfo {
            id: JOB_GROUP_ID.to_string(),
            limit,
            members: job.map_or(n, |spec| spec.hosts.len()),
        });
        for spec in plan.constraints.iter().filter(|c| c.id != JOB_GROUP_ID) {
            let g = groups.len() as u32;
            groups.push(GroupInfo {
                id: spec.id.clone(),
                limit: Some(spec.max_parallel),
                members: spec.hosts.len(),
            });
            pairs.extend(spec.hosts.iter().map(|h| (index[h.as_str()], g)));
        }
        pairs.sort_unstable();
        let mut host_group_start = vec![0u32; n + 1];
        for &(h, _) in &pairs {
            host_group_start[h as usize + 1] += 1;
        }
        for h in 0..n {
            host_group_start[h + 1] += host_group_start[h];
        }
        let host_groups = pairs.into_iter().map(|(_, g)| g).collect();

        let mut host_slots = vec![Vec::new(); n];
        let mut slot_ids = Vec::new();
        for (s, (_, slot)) in plan.slots().enumerate() {
            slot_ids.push(slot.id.clone());
            for h in &slot.hosts {
                host_slots[index[h.as_str()] as usize].push(s as u32);
            }
        }
        Layout {
            groups,
            host_group_start,
            host_groups,
            host_slots,
            slot_ids,
        }
    }

    fn groups_of(&self, h: usize) -> &[u32] {
        &self.host_groups[self.host_group_start[h] as usize..self.host_group_start[h + 1] as usize]
    }

    fn limit(&self, g: usize) -> Option<u64> {
        self.groups[g].limit.map(|a| a.value)
    }

    fn slot_ids_of(&self, h: usize) -> Vec<String> {
        self.host_slots[h]
            .iter()
            .map(|&s| self.slot_ids[s as usize].clone())
            .collect()
    }
}

/// Hosts down per group, kept from the simulation's own events.
struct Peaks {
    down: Vec<u64>,
    peak: Vec<u64>,
    peak_at: Vec<u64>,
    full_since: Vec<Option<u64>>,
    full_ms: Vec<u64>,
}

impl Peaks {
    fn new(layout: &Layout) -> Peaks {
        let g = layout.groups.len();
        Peaks {
            down: vec![0; g],
            peak: vec![0; g],
            peak_at: vec![0; g],
            full_since: vec![None; g],
            full_ms: vec![0; g],
        }
    }

    fn up(&mut self, layout: &Layout, h: usize, now: u64) {
        for &g in layout.groups_of(h) {
            let g = g as usize;
            self.down[g] += 1;
            if self.down[g] > self.peak[g] {
                self.peak[g] = self.down[g];
                self.peak_at[g] = now;
            }
            if Some(self.down[g]) == layout.limit(g) {
                self.full_since[g] = Some(now);
            }
        }
    }

    fn down(&mut self, layout: &Layout, h: usize, now: u64) {
        for &g in layout.groups_of(h) {
            let g = g as usize;
            if let Some(since) = self.full_since[g].take() {
                self.full_ms[g] += now - since;
            }
            self.down[g] -= 1;
        }
    }

    fn is_full(&self, layout: &Layout, g: usize) -> bool {
        layout.limit(g).is_some_and(|limit| self.down[g] >= limit)
    }
}

/// Why a host started when it did, as recorded while the run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Start,
    /// `by`'s end completed `slot`, the last slot `h` waited for.
    Slot {
        by: u32,
        slot: u32,
    },
    /// `by`'s end made room in `group`.
    Room {
        by: u32,
        group: u32,
    },
    /// `by`'s end made the gate after `slot` due, and it passed `wait` later.
    Gate {
        by: u32,
        slot: u32,
        wait: u64,
    },
}

/// The state of the event loop.
struct Loop {
    run: Scheduler,
    timeout_ms: u64,
    run_timeout_ms: Option<u64>,
    retries: u32,
    retry_delay_ms: u64,
    before_ms: u64,
    after_ms: u64,
    /// Per slot: how long its gate and approval take (0: none, or passing at once).
    gate_waits: Vec<u64>,
    /// Gates waited for: (when they pass, slot).
    gates: BinaryHeap<Reverse<(u64, u32)>>,
    /// Per slot waited for: the host whose end made its gate due.
    gate_by: HashMap<u32, u32>,
    fails: Vec<bool>,
    hosts: Vec<HostRun>,
    /// Per host: when its last predecessor slot completed (0: ready from the start).
    ready_at: Vec<u64>,
    /// Per host: what it waited for; until it starts, what made it ready.
    cause: Vec<Cause>,
    /// Hosts in the order they started.
    started: Vec<HostIdx>,
    /// Running hosts by end time, then plan order.
    running: BinaryHeap<Reverse<(u64, u32)>>,
    now: u64,
    layout: Layout,
    peaks: Peaks,
    stopped_at: Option<u64>,
    /// Whether the run timeout ended the run.
    expired: bool,
}

impl Loop {
    fn drive(&mut self) -> Result<(), SimulationError> {
        // Per group: the first host of the current instant's batch that made room in it while
        // it was full. Reset after each instant, touching only what was set.
        let mut made_room: Vec<Option<u32>> = vec![None; self.layout.groups.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut batch: Vec<u32> = Vec::new();
        self.gates_due(u32::MAX)?;
        self.start_all(&made_room);
        while !self.run.status().is_ended() {
            let next_end = self.running.peek().map(|&Reverse((end, _))| end);
            let next_gate = self.gates.peek().map(|&Reverse((at, _))| at);
            let Some(now) = next_end.into_iter().chain(next_gate).min() else {
                // The scheduler promises a run never waits for nothing.
                unreachable!("a run that has not ended has a running host or a gate to pass")
            };
            if let Some(limit) = self.run_timeout_ms.filter(|&limit| now > limit) {
                return self.expire(limit);
            }
            self.now = now;
            batch.clear();
            while let Some(&Reverse((end, h))) = self.running.peek() {
                if end != now {
                    break;
                }
                self.running.pop();
                batch.push(h);
            }
            // A group full before this instant, where a host of this batch succeeded: that is
            // the room a host starting now may have waited for.
            for &h in &batch {
                if self.hosts[h as usize].state == HostState::Succeeded {
                    for &g in self.layout.groups_of(h as usize) {
                        if made_room[g as usize].is_none()
                            && self.peaks.is_full(&self.layout, g as usize)
                        {
                            made_room[g as usize] = Some(h);
                            touched.push(g);
                        }
                    }
                }
            }
            for &h in &batch {
                self.finish(h)?;
            }
            while let Some(&Reverse((at, slot))) = self.gates.peek() {
                if at != now {
                    break;
                }
                self.gates.pop();
                let by = self.gate_by.remove(&slot).unwrap_or(u32::MAX);
                let passed = self.run.pass_gate(SlotIdx::new(slot as usize))?;
                for ready in passed.hosts_ready {
                    self.ready_at[ready.index()] = now;
                    self.cause[ready.index()] = Cause::Gate {
                        by,
                        slot,
                        wait: self.gate_waits[slot as usize],
                    };
                }
                self.gates_due(by)?;
            }
            if self.run_timeout_ms == Some(now) && !self.run.status().is_ended() {
                return self.expire(now);
            }
            self.start_all(&made_room);
            for g in touched.drain(..) {
                made_room[g as usize] = None;
            }
        }
        Ok(())
    }

    /// The run timeout: halt, and kill what still runs, in plan order.
    fn expire(&mut self, limit: u64) -> Result<(), SimulationError> {
        self.now = limit;
        self.expired = true;
        self.stopped_at = Some(limit);
        self.run.halt();
        let mut running: Vec<u32> = self.running.drain().map(|Reverse((_, h))| h).collect();
        running.sort_unstable();
        for h in running {
            self.run.cancel(HostIdx::new(h as usize))?;
            let record = &mut self.hosts[h as usize];
            let start = record.start_ms.expect("a running host started");
            // Attempts begun by the time of the kill: one every attempt plus pause.
            let period =
                (self.before_ms + record.duration_ms.min(self.timeout_ms) + self.retry_delay_ms)
                    .max(1);
            let begun = u32::try_from((limit - start) / period + 1).unwrap_or(u32::MAX);
            record.attempts = record.attempts.min(begun);
            record.end_ms = Some(limit);
            record.state = HostState::Cancelled;
        }
        Ok(())
    }

    /// Reports the end of `h` to the scheduler (its state was decided when it started).
    fn finish(&mut self, h: u32) -> Result<(), SimulationError> {
        let state = self.hosts[h as usize].state;
        let outcome = match state {
            HostState::Succeeded => Outcome::Succeeded,
            HostState::Failed { exit_code } => Outcome::Failed { exit_code },
            HostState::TimedOut => Outcome::TimedOut,
            other => {
                unreachable!("a simulated host ends succeeded, failed or timed out, not {other}")
            }
        };
        if !state.is_down() {
            self.peaks.down(&self.layout, h as usize, self.now);
        }
        let mut changes = self.run.finish(HostIdx::new(h as usize), outcome)?;
        // Gates that take no time pass at once, as if the step had no gate.
        changes.extend(self.gates_due(h)?);
        for ready in changes.hosts_ready {
            let r = ready.index();
            self.ready_at[r] = self.now;
            // The slot whose completion readied it: one of `h`'s slots that completed now.
            let slot = self.layout.host_slots[h as usize]
                .iter()
                .copied()
                .find(|&s| {
                    changes
                        .slots_completed
                        .iter()
                        .any(|c| c.index() == s as usize)
                })
                .or_else(|| changes.slots_completed.first().map(|s| s.index() as u32));
            if let Some(slot) = slot {
                self.cause[r] = Cause::Slot { by: h, slot };
            }
        }
        if changes.stopped.is_some() {
            self.stopped_at = Some(self.now);
        }
        Ok(())
    }

    /// Passes the gates due that take no time, and schedules the others; `by` is the host
    /// whose end made them due. Returns what the passes changed.
    fn gates_due(&mut self, by: u32) -> Result<Changes, SimulationError> {
        let mut changes = Changes::default();
        loop {
            let due = self
                .run
                .gates_due()
                .into_iter()
                .find(|g| !self.gate_by.contains_key(&(g.index() as u32)));
            let Some(gate) = due else {
                return Ok(changes);
            };
            let slot = gate.index() as u32;
            match self.gate_waits[slot as usize] {
                0 => changes.extend(self.run.pass_gate(gate)?),
                wait => {
                    self.gate_by.insert(slot, by);
                    self.gates.push(Reverse((self.now + wait, slot)));
                }
            }
        }
    }

    /// Starts every host that may start now, deciding how it will end.
    fn start_all(&mut self, made_room: &[Option<u32>]) {
        while let Some(host) = self.run.next_to_start() {
            let h = host.index();
            let now = self.now;
            if now > 0 && self.ready_at[h] != now {
                self.cause[h] = self
                    .layout
                    .groups_of(h)
                    .iter()
                    .find_map(|&g| made_room[g as usize].map(|by| Cause::Room { by, group: g }))
                    .unwrap_or_else(|| {
                        debug_assert!(false, "host {host} started at {now} for no reason");
                        Cause::Start
                    });
            } else if now == 0 {
                self.cause[h] = Cause::Start;
            }
            let record = &mut self.hosts[h];
            // An attempt: `before`, the command, and when it succeeded `verify` and `after`.
            let attempt = self.before_ms + record.duration_ms.min(self.timeout_ms);
            let (state, attempts) = if record.duration_ms > self.timeout_ms {
                (HostState::TimedOut, 1 + self.retries)
            } else if self.fails[h] {
                (HostState::Failed { exit_code: 1 }, 1 + self.retries)
            } else {
                (HostState::Succeeded, 1)
            };
            let finishing = if state == HostState::Succeeded {
                self.after_ms
            } else {
                0
            };
            let end = now
                + attempt * u64::from(attempts)
                + finishing
                + self.retry_delay_ms * u64::from(attempts - 1);
            record.start_ms = Some(now);
            record.end_ms = Some(end);
            record.state = state;
            record.attempts = attempts;
            self.peaks.up(&self.layout, h, now);
            self.started.push(host);
            self.running.push(Reverse((end, h as u32)));
        }
    }

    fn into_simulation(mut self, policy: &SimulationPolicy) -> Simulation {
        let makespan_ms = self
            .hosts
            .iter()
            .filter_map(|r| r.end_ms)
            .max()
            .unwrap_or(0);
        // Hosts that never started were skipped; the scheduler says so.
        for (h, record) in self.hosts.iter_mut().enumerate() {
            if record.start_ms.is_none() {
                record.state = self.run.host_state(HostIdx::new(h));
            }
        }
        let end = match self.run.status() {
            _ if self.expired => SimulatedEnd::RunTimeout { at_ms: self.now },
            RunStatus::Complete => SimulatedEnd::Complete,
            RunStatus::Stopped(reason) => SimulatedEnd::Stopped {
                reason: reason.clone(),
                at_ms: self.stopped_at.unwrap_or(self.now),
            },
            RunStatus::Blocked(blockers) => SimulatedEnd::Blocked {
                blockers: blockers.to_vec(),
                at_ms: self.now,
            },
            RunStatus::Running | RunStatus::Stopping(_) => {
                unreachable!("the loop runs until the run ends")
            }
        };
        let wave_ms =
            (policy.before_ms + policy.duration_ms.min(self.timeout_ms) + policy.after_ms).max(1);
        let waves = self.waves(wave_ms);
        let groups = self
            .layout
            .groups
            .iter()
            .enumerate()
            .map(|(g, info)| GroupPeak {
                id: info.id.clone(),
                max_parallel: info.limit,
                members: info.members,
                peak: self.peaks.peak[g],
                peak_at_ms: self.peaks.peak_at[g],
                full_ms: self.peaks.full_ms[g]
                    + self.peaks.full_since[g].map_or(0, |since| makespan_ms - since),
            })
            .collect();
        Simulation {
            makespan_ms,
            wave_ms,
            waves,
            critical_path: self.critical_path(),
            groups,
            end,
            tally: self.run.tally(),
            hosts: self.hosts,
        }
    }

    fn waves(&self, wave_ms: u64) -> Vec<Wave> {
        let mut waves: Vec<Wave> = Vec::new();
        for &host in &self.started {
            let h = host.index();
            let start = self.hosts[h].start_ms.expect("a started host has a start");
            let window = start / wave_ms * wave_ms;
            if waves.last().is_none_or(|w| w.start_ms != window) {
                waves.push(Wave {
                    start_ms: window,
                    end_ms: window + wave_ms,
                    lanes: Vec::new(),
                });
            }
            let wave = waves.last_mut().expect("pushed above");
            let slots = &self.layout.host_slots[h];
            let lane = match wave.lanes.iter().position(|lane| {
                lane.slots.len() == slots.len()
                    && lane
                        .slots
                        .iter()
                        .zip(slots)
                        .all(|(id, &s)| *id == self.layout.slot_ids[s as usize])
            }) {
                Some(i) => i,
                None => {
                    wave.lanes.push(Lane {
                        slots: self.layout.slot_ids_of(h),
                        hosts: Vec::new(),
                    });
                    wave.lanes.len() - 1
                }
            };
            wave.lanes[lane].hosts.push(host);
        }
        waves
    }

    fn critical_path(&self) -> Vec<PathStep> {
        let last = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(h, r)| r.end_ms.map(|end| (end, Reverse(h))))
            .max();
        let Some((_, Reverse(mut h))) = last else {
            return Vec::new();
        };
        let mut path = Vec::new();
        loop {
            let record = &self.hosts[h];
            let (waited_for, before) = match self.cause[h] {
                Cause::Start => (WaitedFor::Start, None),
                Cause::Slot { by, slot } => (
                    WaitedFor::Slot {
                        slot: self.layout.slot_ids[slot as usize].clone(),
                    },
                    Some(by as usize),
                ),
                Cause::Room { by, group } => (
                    WaitedFor::Room {
                        group: self.layout.groups[group as usize].id.clone(),
                    },
                    Some(by as usize),
                ),
                Cause::Gate { by, slot, wait } => (
                    WaitedFor::Gate {
                        slot: self.layout.slot_ids[slot as usize].clone(),
                        wait_ms: wait,
                    },
                    // A gate of a first, empty step waits for no host.
                    (by != u32::MAX).then_some(by as usize),
                ),
            };
            path.push(PathStep {
                host: HostIdx::new(h),
                slots: self.layout.slot_ids_of(h),
                start_ms: record.start_ms.expect("a host on the path started"),
                end_ms: record.end_ms.expect("a host on the path ended"),
                waited_for,
            });
            match before {
                Some(b) => h = b,
                None => break,
            }
        }
        path.reverse();
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    fn hosts(names: &str) -> Plan {
        Plan::sketch(names)
    }

    fn thread(plan: Plan, name: &str, slots: &[&str]) -> Plan {
        plan.with_thread(name, slots)
    }

    fn group(plan: Plan, id: &str, limit: u64, hosts: &str) -> Plan {
        plan.with_group(id, Amount::number(limit), hosts)
    }

    fn job(plan: Plan, limit: u64) -> Plan {
        plan.with_job_limit(limit)
    }

    fn max_failures(plan: Plan, value: u64) -> Plan {
        plan.with_max_failures(value)
    }

    fn idx(plan: &Plan, name: &str) -> HostIdx {
        HostIdx::new(plan.hosts.iter().position(|h| h == name).unwrap())
    }

    fn failing(plan: &Plan, names: &str) -> SimulationPolicy {
        SimulationPolicy {
            failing: words(names).iter().map(|n| idx(plan, n)).collect(),
            ..SimulationPolicy::default()
        }
    }

    fn sim(plan: &Plan) -> Simulation {
        simulate(plan, &SimulationPolicy::default()).expect("a simulation")
    }

    fn names(plan: &Plan, hosts: impl IntoIterator<Item = HostIdx>) -> Vec<String> {
        hosts
            .into_iter()
            .map(|h| plan.hosts[h.index()].clone())
            .collect()
    }

    fn peak(sim: &Simulation, id: &str) -> (u64, Option<u64>) {
        let g = sim.groups.iter().find(|g| g.id == id).unwrap();
        (g.peak, g.max_parallel.map(|a| a.value))
    }

    /// The chain's durations add up to the makespan, each step starting when the one before
    /// it ends.
    fn assert_path_spans_the_run(sim: &Simulation) {
        let path = &sim.critical_path;
        assert_eq!(path.first().map(|s| s.start_ms), Some(0));
        assert_eq!(path.last().map(|s| s.end_ms), Some(sim.makespan_ms));
        let wait = |step: &PathStep| match step.waited_for {
            WaitedFor::Gate { wait_ms, .. } => wait_ms,
            _ => 0,
        };
        for pair in path.windows(2) {
            assert_eq!(
                pair[0].end_ms + wait(&pair[1]),
                pair[1].start_ms,
                "{path:?}"
            );
        }
        let total: u64 = path.iter().map(|s| s.end_ms - s.start_ms + wait(s)).sum();
        assert_eq!(total, sim.makespan_ms);
    }

    #[test]
    fn the_makespan_of_a_chain_is_the_sum_of_its_durations() {
        let plan = thread(hosts("a b c d"), "t", &["a", "b", "c", "d"]);
        let sim = sim(&plan);
        assert_eq!(sim.makespan_ms, 4 * 30_000);
        assert_eq!(sim.end, SimulatedEnd::Complete);
        assert_eq!(sim.tally.succeeded, 4);
        assert_eq!(sim.waves.len(), 4);
        assert_eq!(
            sim.critical_path
                .iter()
                .map(|s| plan.hosts[s.host.index()].as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            sim.critical_path[2].waited_for,
            WaitedFor::Slot { slot: "t.1".into() }
        );
        assert_path_spans_the_run(&sim);
    }

    #[test]
    fn phases_lengthen_each_attempt_and_a_failed_command_skips_verify_and_after() {
        let plan = thread(hosts("a b c"), "t", &["a", "b", "c"]);
        let policy = SimulationPolicy {
            before_ms: 5_000,
            after_ms: 20_000,
            failing: vec![HostIdx::new(2)],
            ..SimulationPolicy::default()
        };
        let sim = simulate(&plan, &policy).unwrap();
        // a and b: 5 s before, 30 s command, 20 s verify and after; c fails after its
        // before and command, with no verify or after.
        assert_eq!(sim.hosts[1].start_ms, Some(55_000));
        assert_eq!(sim.hosts[2].start_ms, Some(110_000));
        assert_eq!(sim.makespan_ms, 110_000 + 35_000);
        assert_path_spans_the_run(&sim);
    }

    #[test]
    fn a_gate_and_an_approval_hold_the_steps_after_them_and_sit_on_the_critical_path() {
        let plan = thread(hosts("a b c x"), "t", &["a", "b", "c"])
            .with_gate("t.0", "check")
            .with_approval("t.1", None);
        let policy = SimulationPolicy {
            gate_ms: 10_000,
            approval_ms: 600_000,
            ..SimulationPolicy::default()
        };
        let sim = simulate(&plan, &policy).unwrap();
        // a: 0-30 s; its gate 10 s; b: 40-70 s; the approval 10 min; c: 670-700 s. x, in no
        // step, runs at once.
        assert_eq!(sim.hosts[1].start_ms, Some(40_000));
        assert_eq!(sim.hosts[2].start_ms, Some(670_000));
        assert_eq!(sim.hosts[3].start_ms, Some(0));
        assert_eq!(sim.makespan_ms, 700_000);
        assert_eq!(
            sim.critical_path
                .iter()
                .map(|s| s.waited_for.clone())
                .collect::<Vec<_>>(),
            [
                WaitedFor::Start,
                WaitedFor::Gate {
                    slot: "t.0".into(),
                    wait_ms: 10_000
                },
                WaitedFor::Gate {
                    slot: "t.1".into(),
                    wait_ms: 600_000
                },
            ]
        );
        assert_path_spans_the_run(&sim);
        // Without times, gates pass at once: the plan runs as if it had none.
        let sim = simulate(&plan, &SimulationPolicy::default()).unwrap();
        assert_eq!(sim.makespan_ms, 90_000);
        assert_path_spans_the_run(&sim);
    }

    #[test]
    fn threads_run_in_parallel_and_the_longest_sets_the_makespan() {
        let plan = thread(hosts("a b c x y"), "long", &["a", "b", "c"]);
        let plan = thread(plan, "short", &["x", "y"]);
        let sim = sim(&plan);
        assert_eq!(sim.makespan_ms, 90_000);
        assert_eq!(
            names(&plan, sim.waves[0].hosts()),
            ["a", "x"],
            "the first step of each thread starts at once"
        );
        assert_eq!(sim.waves[0].lanes.len(), 2);
        assert_eq!(peak(&sim, "job"), (2, None));
        assert_eq!(
            names(&plan, sim.critical_path.iter().map(|s| s.host)),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn a_group_limit_makes_waves_and_its_peak_is_the_limit() {
        let plan = group(
            hosts("h1 h2 h3 h4 h5 h6 h7"),
            "$colo.one",
            3,
            "h1 h2 h3 h4 h5 h6 h7",
        );
        let sim = sim(&plan);
        let waves: Vec<Vec<String>> = sim.waves.iter().map(|w| names(&plan, w.hosts())).collect();
        assert_eq!(
            waves,
            [vec!["h1", "h2", "h3"], vec!["h4", "h5", "h6"], vec!["h7"]]
        );
        assert_eq!(
            sim.waves.iter().map(|w| w.start_ms).collect::<Vec<_>>(),
            [0, 30_000, 60_000]
        );
        assert_eq!(sim.makespan_ms, 90_000);
        assert_eq!(peak(&sim, "$colo.one"), (3, Some(3)));
        let group = &sim.groups[1];
        assert_eq!((group.peak_at_ms, group.full_ms), (0, 60_000));
        // The last wave waited for room; its predecessors are the first hosts of each wave.
        assert_eq!(
            names(&plan, sim.critical_path.iter().map(|s| s.host)),
            ["h1", "h4", "h7"]
        );
        assert_eq!(
            sim.critical_path[1].waited_for,
            WaitedFor::Room {
                group: "$colo.one".into()
            }
        );
        assert_path_spans_the_run(&sim);
    }

    #[test]
    fn peaks_never_exceed_limits_and_reach_them_when_saturated() {
        let all: Vec<String> = (0..60).map(|i| format!("h{i:02}")).collect();
        let mut plan = hosts(&all.join(" "));
        plan = job(plan, 8);
        plan = group(plan, "$a", 5, &all[..30].join(" "));
        plan = group(plan, "$b", 2, &all[20..40].join(" "));
        plan = group(plan, "$c", 50, &all[40..].join(" "));
        for seed in 0..20 {
            let policy = SimulationPolicy {
                jitter_percent: 60,
                seed,
                ..SimulationPolicy::default()
            };
            let sim = simulate(&plan, &policy).unwrap();
            for group in &sim.groups {
                let limit = group.max_parallel.unwrap().value;
                assert!(group.peak <= limit, "seed {seed}: {group:?}");
            }
            // Saturated: more members ready than the limit allows.
            assert_eq!(peak(&sim, "job"), (8, Some(8)));
            assert_eq!(peak(&sim, "$a"), (5, Some(5)));
            assert_eq!(peak(&sim, "$b"), (2, Some(2)));
            // $c's 20 hosts never have more than the job limit's room.
            assert!(peak(&sim, "$c").0 <= 8);
            assert_path_spans_the_run(&sim);
        }
    }

    #[test]
    fn critical_path_of_a_known_plan() {
        let policy = SimulationPolicy {
            duration_ms: 10_000,
            ..SimulationPolicy::default()
        };
        // Thread `t`: a, then b and c. The group `$g` (limit 1) holds c and u, an unordered
        // host. 0-10: u and a. At 10 both end: `t.0` completes and `$g` has room, so b and c
        // start together, and b (first in plan order of the two) ends last: it waited for
        // the slot, whose last host is a.
        let plan = thread(hosts("u a b c"), "t", &["a", "b c"]);
        let plan = group(plan, "$g", 1, "u c");
        let sim = simulate(&plan, &policy).unwrap();
        assert_eq!(sim.makespan_ms, 20_000);
        let path: Vec<(String, WaitedFor)> = sim
            .critical_path
            .iter()
            .map(|s| (plan.hosts[s.host.index()].clone(), s.waited_for.clone()))
            .collect();
        assert_eq!(
            path,
            [
                ("a".to_string(), WaitedFor::Start),
                ("b".to_string(), WaitedFor::Slot { slot: "t.0".into() }),
            ]
        );

        // Now `$g` also holds u2, before c in plan order. 0-10: u1 and a. At 10, c is ready but
        // u2 takes the room: 10-20. c starts at 20, when u2 makes room: the room is what
        // counts, twice.
        let plan = thread(hosts("u1 u2 a c"), "t", &["a", "c"]);
        let plan = group(plan, "$g", 1, "u1 u2 c");
        let sim = simulate(&plan, &policy).unwrap();
        assert_eq!(sim.makespan_ms, 30_000);
        let path: Vec<(String, WaitedFor)> = sim
            .critical_path
            .iter()
            .map(|s| (plan.hosts[s.host.index()].clone(), s.waited_for.clone()))
            .collect();
        let room = WaitedFor::Room { group: "$g".into() };
        assert_eq!(
            path,
            [
                ("u1".to_string(), WaitedFor::Start),
                ("u2".to_string(), room.clone()),
                ("c".to_string(), room),
            ]
        );
        assert_eq!(sim.critical_path[2].slots, ["t.1"]);
        assert_path_spans_the_run(&sim);
    }

    #[test]
    fn failures_stop_the_run_at_the_budget() {
        let all = "h1 h2 h3 h4 h5 h6 h7 h8 h9";
        let plan = max_failures(job(hosts(all), 2), 1);
        let policy = failing(&plan, "h1 h3 h4");
        let sim = simulate(&plan, &policy).unwrap();
        // 0: h1 h2; 30: h1 failed (1 failure, within the budget, and it stays down), so only
        // h3 starts; 60: h3 failed: 2 > 1, the run stops. h4 never runs.
        assert_eq!(
            sim.end,
            SimulatedEnd::Stopped {
                reason: StopReason::FailureBudget {
                    failures: 2,
                    max_failures: 1
                },
                at_ms: 60_000
            }
        );
        assert_eq!(sim.makespan_ms, 60_000);
        assert_eq!(sim.tally.failed, 2);
        assert_eq!(sim.tally.succeeded, 1);
        assert_eq!(sim.tally.skipped, 6);
        assert_eq!(sim.hosts[3].state, HostState::Skipped);
        assert_eq!(sim.hosts[3].start_ms, None);
        assert_eq!(sim.hosts[0].state, HostState::Failed { exit_code: 1 });
        // A failed host stays down: the job group counts it to the end.
        assert_eq!(peak(&sim, "job"), (2, Some(2)));

        // Overrides lower the budget like a run's: the first failure stops it.
        let policy = SimulationPolicy {
            overrides: LimitOverrides {
                max_failures: Some(0),
                concurrent: None,
            },
            ..failing(&plan, "h1")
        };
        let sim = simulate(&plan, &policy).unwrap();
        assert!(matches!(
            sim.end,
            SimulatedEnd::Stopped { at_ms: 30_000, .. }
        ));
        // ...and cannot raise it.
        let policy = SimulationPolicy {
            overrides: LimitOverrides {
                max_failures: Some(5),
                concurrent: None,
            },
            ..SimulationPolicy::default()
        };
        assert!(matches!(
            simulate(&plan, &policy),
            Err(SimulationError::Scheduler(
                SchedulerError::RaisesMaxFailures { .. }
            ))
        ));
    }

    #[test]
    fn a_group_full_of_failed_hosts_blocks_the_run() {
        let plan = max_failures(
            group(hosts("h1 h2 h3 h4 x"), "$colo.one", 2, "h1 h2 h3 h4"),
            10,
        );
        let sim = simulate(&plan, &failing(&plan, "h1 h2")).unwrap();
        let SimulatedEnd::Blocked { blockers, at_ms } = &sim.end else {
            panic!("not blocked: {:?}", sim.end);
        };
        assert_eq!(*at_ms, 30_000);
        assert_eq!(blockers.len(), 1);
        assert_eq!(
            blockers[0].describe(&plan.hosts),
            "group `$colo.one` (max_parallel 2) is full of hosts that stay down until the run \
             ends: h1 (failed (exit 1)), h2 (failed (exit 1)); so h3, h4 cannot start"
        );
        assert_eq!(sim.tally.skipped, 2);
        assert_eq!(sim.tally.succeeded, 1);
        let group = &sim.groups[1];
        assert_eq!((group.peak, group.full_ms), (2, 30_000));
    }

    #[test]
    fn concurrent_lowers_the_job_limit_and_a_plan_without_one_reports_its_peak() {
        let plan = hosts("a b c d e");
        let sim = sim(&plan);
        assert_eq!(peak(&sim, "job"), (5, None));
        assert_eq!(sim.makespan_ms, 30_000);
        let policy = SimulationPolicy {
            overrides: LimitOverrides {
                max_failures: None,
                concurrent: Some(2),
            },
            ..SimulationPolicy::default()
        };
        let sim = simulate(&plan, &policy).unwrap();
        assert_eq!(peak(&sim, "job"), (2, Some(2)));
        assert_eq!(sim.makespan_ms, 90_000);
    }

    #[test]
    fn a_timeout_cuts_every_attempt_and_retries_repeat_a_failure() {
        let mut plan = hosts("a b");
        plan.options.timeout = 20;
        plan.options.retries = 2;
        plan.options.max_failures = Amount::number(5);
        let sim = simulate(&plan, &failing(&plan, "b")).unwrap();
        // a: every attempt outlives the 20 s timeout: 3 attempts of 20 s, with the 5 s pause
        // before each retry, timed out.
        assert_eq!(sim.hosts[0].state, HostState::TimedOut);
        assert_eq!(
            (sim.hosts[0].attempts, sim.hosts[0].end_ms),
            (3, Some(70_000))
        );
        assert_eq!(sim.hosts[1].state, HostState::TimedOut);
        assert_eq!(sim.tally.timed_out, 2);
        assert_eq!(sim.wave_ms, 20_000);

        plan.options.timeout = 600;
        let sim = simulate(&plan, &failing(&plan, "b")).unwrap();
        assert_eq!(sim.hosts[0].state, HostState::Succeeded);
        assert_eq!(
            (sim.hosts[0].attempts, sim.hosts[0].end_ms),
            (1, Some(30_000))
        );
        assert_eq!(sim.hosts[1].state, HostState::Failed { exit_code: 1 });
        assert_eq!(
            (sim.hosts[1].attempts, sim.hosts[1].end_ms),
            (3, Some(100_000))
        );
        let policy = SimulationPolicy {
            retry_delay_ms: 0,
            ..failing(&plan, "b")
        };
        let sim = simulate(&plan, &policy).unwrap();
        assert_eq!(sim.hosts[1].end_ms, Some(90_000));
    }

    #[test]
    fn the_run_timeout_halts_the_run_and_kills_what_runs() {
        let mut plan = max_failures(job(hosts("a b c d e"), 2), 5);
        plan.options.run_timeout = Some(60);
        plan.options.retries = 1;
        // 0-30: a b, 30-60: c d. They end at the very instant the run timeout expires, so they
        // end first, and e never starts.
        let sim = sim(&plan);
        assert_eq!(sim.end, SimulatedEnd::RunTimeout { at_ms: 60_000 });
        assert_eq!((sim.tally.succeeded, sim.tally.skipped), (4, 1));
        assert_eq!(sim.makespan_ms, 60_000);

        // b fails twice (0-30, a 5 s pause, 35-65): only c starts at 30 (b holds its place),
        // and b is killed at 60, during its second attempt.
        let sim = simulate(&plan, &failing(&plan, "b")).unwrap();
        assert_eq!(sim.end, SimulatedEnd::RunTimeout { at_ms: 60_000 });
        let states: Vec<HostState> = sim.hosts.iter().map(|h| h.state).collect();
        assert_eq!(
            states,
            [
                HostState::Succeeded,
                HostState::Cancelled,
                HostState::Succeeded,
                HostState::Skipped,
                HostState::Skipped,
            ]
        );
        assert_eq!(
            (sim.hosts[1].attempts, sim.hosts[1].end_ms),
            (2, Some(60_000))
        );
        assert_eq!(sim.makespan_ms, 60_000);
        assert_path_spans_the_run(&sim);

        // Without a run timeout the same run completes.
        plan.options.run_timeout = None;
        let sim = simulate(&plan, &failing(&plan, "b")).unwrap();
        // b's failure keeps its place in the job group: d runs 60-90 alone, then e 90-120.
        assert_eq!(sim.end, SimulatedEnd::Complete);
        assert_eq!(sim.makespan_ms, 120_000);
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_jitter_stays_in_bounds() {
        let all: Vec<String> = (0..200).map(|i| format!("h{i:03}")).collect();
        let steps = [all[..100].join(" "), all[100..].join(" ")];
        let steps = [steps[0].as_str(), steps[1].as_str()];
        let plan = job(thread(hosts(&all.join(" ")), "t", &steps), 16);
        let policy = |seed| SimulationPolicy {
            jitter_percent: 50,
            seed,
            ..SimulationPolicy::default()
        };
        let first = simulate(&plan, &policy(7)).unwrap();
        assert_eq!(first, simulate(&plan, &policy(7)).unwrap());
        assert_ne!(
            first.makespan_ms,
            simulate(&plan, &policy(8)).unwrap().makespan_ms
        );
        let durations: Vec<u64> = first.hosts.iter().map(|h| h.duration_ms).collect();
        assert!(durations.iter().all(|&d| (15_000..=45_000).contains(&d)));
        assert!(durations.iter().any(|&d| d < 20_000) && durations.iter().any(|&d| d > 40_000));
        // A host's duration depends on the seed and its place only, not on the limits.
        let other = job(
            thread(hosts(&all.join(" ")), "t", &[all.join(" ").as_str()]),
            3,
        );
        let again = simulate(&other, &policy(7)).unwrap();
        assert_eq!(
            again
                .hosts
                .iter()
                .map(|h| h.duration_ms)
                .collect::<Vec<_>>(),
            durations
        );
        assert_path_spans_the_run(&first);
        assert_eq!(draw_duration(&policy(1), 0), draw_duration(&policy(1), 0));
    }

    #[test]
    fn hosts_ending_at_the_same_instant_end_together_before_any_starts() {
        // With a limit of 2 and equal durations, each wave is a pair: the two that end make
        // room together, and plan order picks who starts.
        let plan = job(hosts("a b c d e f"), 2);
        let sim = sim(&plan);
        let waves: Vec<Vec<String>> = sim.waves.iter().map(|w| names(&plan, w.hosts())).collect();
        assert_eq!(waves, [["a", "b"], ["c", "d"], ["e", "f"]]);
        assert_eq!(
            names(&plan, sim.critical_path.iter().map(|s| s.host)),
            ["a", "c", "e"]
        );
    }

    #[test]
    fn an_empty_plan_and_bad_policies() {
        let sim = sim(&hosts(""));
        assert_eq!((sim.makespan_ms, sim.waves.len()), (0, 0));
        assert!(sim.critical_path.is_empty());
        assert_eq!(sim.end, SimulatedEnd::Complete);
        let plan = hosts("a");
        for (policy, error) in [
            (
                SimulationPolicy {
                    duration_ms: 0,
                    ..SimulationPolicy::default()
                },
                SimulationError::ZeroDuration,
            ),
            (
                SimulationPolicy {
                    jitter_percent: 101,
                    ..SimulationPolicy::default()
                },
                SimulationError::JitterTooLarge(101),
            ),
            (
                SimulationPolicy {
                    failing: vec![HostIdx::new(1)],
                    ..SimulationPolicy::default()
                },
                SimulationError::NoSuchHost(HostIdx::new(1)),
            ),
        ] {
            assert_eq!(simulate(&plan, &policy), Err(error));
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A random plan: `n` hosts, each in at most one slot of up to 3 threads (so no
        /// cycle), up to 3 groups of random members and limits, a job group or none.
        fn plan_and_policy() -> impl Strategy<Value = (Plan, SimulationPolicy)> {
            (1usize..25).prop_flat_map(|n| {
                (
                    prop::collection::vec((0usize..4, 0usize..4), n),
                    prop::collection::vec((prop::collection::vec(any::<bool>(), n), 1u64..4), 0..4),
                    prop::option::of(1u64..6),
                    prop::collection::vec(prop::bool::weighted(0.2), n),
                    0u64..4,
                    (0u32..=100, any::<u64>(), 1u64..5),
                    (0u32..3, 0u64..3000, prop::option::of(1u64..300)),
                )
                    .prop_map(
                        move |(placement, groups, job_limit, fails, budget, timing, retrying)| {
                            let (jitter, seed, d) = timing;
                            let (retries, retry_delay_ms, run_timeout) = retrying;
                            let names: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
                            let mut plan = max_failures(hosts(&names.join(" ")), budget);
                            plan.options.retries = retries;
                            plan.options.run_timeout = run_timeout;
                            // Thread 0 means unordered.
                            for t in 1..4 {
                                let steps: Vec<String> = (0..4)
                                    .map(|s| {
                                        (0..n)
                                            .filter(|&h| placement[h] == (t, s))
                                            .map(|h| names[h].clone())
                                            .collect::<Vec<_>>()
                                            .join(" ")
                                    })
                                    .collect();
                                let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
                                plan = thread(plan, &format!("t{t}"), &steps);
                            }
                            if let Some(limit) = job_limit {
                                plan = job(plan, limit);
                            }
                            for (g, (members, limit)) in groups.iter().enumerate() {
                                let members: Vec<&str> = (0..n)
                                    .filter(|&h| members[h])
                                    .map(|h| names[h].as_str())
                                    .collect();
                                plan = group(plan, &format!("$g{g}"), *limit, &members.join(" "));
                            }
                            let policy = SimulationPolicy {
                                duration_ms: d * 1000,
                                jitter_percent: jitter,
                                seed,
                                failing: (0..n).filter(|&h| fails[h]).map(HostIdx::new).collect(),
                                retry_delay_ms,
                                overrides: LimitOverrides::default(),
                                before_ms: 0,
                                after_ms: 0,
                                gate_ms: 0,
                                approval_ms: 0,
                            };
                            (plan, policy)
                        },
                    )
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 400,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn a_simulated_run_keeps_the_rules_and_its_path_spans_it(
                (plan, policy) in plan_and_policy()
            ) {
                let sim = simulate(&plan, &policy).unwrap();
                let index = |name: &String| plan.hosts.iter().position(|h| h == name).unwrap();
                // Every host ends in a terminal state, and ran iff it has a start.
                for record in &sim.hosts {
                    prop_assert!(record.state.is_terminal());
                    prop_assert_eq!(record.start_ms.is_some(), record.state != HostState::Skipped);
                }
                // No host starts before every host of the slot before its slot has ended.
                for edge in &plan.edges {
                    let slot = |id: &str| plan.slots().find(|(_, s)| s.id == id).unwrap().1;
                    for before in &slot(&edge.from).hosts {
                        for after in &slot(&edge.to).hosts {
                            if let (Some(end), Some(start)) =
                                (sim.hosts[index(before)].end_ms, sim.hosts[index(after)].start_ms)
                            {
                                prop_assert!(end <= start, "{before} ends after {after} starts");
                            }
                        }
                    }
                }
                // Recount every group's down hosts from the host records alone: the peak is
                // the same, and never over the limit.
                for (g, peak) in sim.groups.iter().enumerate() {
                    let members: Vec<usize> = match plan.constraints.iter().find(|c| c.id == peak.id) {
                        Some(c) => c.hosts.iter().map(index).collect(),
                        None => {
                            prop_assert_eq!(g, 0);
                            (0..plan.hosts.len()).collect()
                        }
                    };
                    let mut events: Vec<(u64, i64)> = Vec::new();
                    for &h in &members {
                        let r = &sim.hosts[h];
                        if let (Some(start), Some(end)) = (r.start_ms, r.end_ms) {
                            events.push((start, 1));
                            if r.state == HostState::Succeeded {
                                events.push((end, -1));
                            }
                        }
                    }
                    // At one instant, ends come before starts.
                    events.sort();
                    let (mut down, mut most) = (0i64, 0i64);
                    for (_, change) in events {
                        down += change;
                        most = most.max(down);
                    }
                    prop_assert_eq!(most as u64, peak.peak, "{}", peak.id);
                    if let Some(limit) = peak.max_parallel {
                        prop_assert!(peak.peak <= limit.value, "{} over its limit", peak.id);
                    }
                }
                // The critical path starts at 0, has no gap, and ends with the run.
                if sim.critical_path.is_empty() {
                    prop_assert_eq!(sim.makespan_ms, 0);
                } else {
                    assert_path_spans_the_run(&sim);
                }
                prop_assert_eq!(
                    sim.makespan_ms,
                    sim.hosts.iter().filter_map(|r| r.end_ms).max().unwrap_or(0)
                );
            }
        }
    }

    #[test]
    fn a_hundred_thousand_hosts_simulate_quickly() {
        // Not a benchmark (see the figures in bench/README.md), but a guard against an
        // accidentally quadratic loop: this takes milliseconds in release, a second or two in
        // a debug build.
        let n = 100_000;
        let all: Vec<String> = (0..n).map(|i| format!("h{i:06}")).collect();
        let mut plan = hosts("");
        plan.hosts = all.clone();
        plan.unordered = Vec::new();
        let per = 1000;
        for t in 0..5 {
            let steps: Vec<String> = (0..n / 5 / per)
                .map(|s| all[t * n / 5 + s * per..t * n / 5 + (s + 1) * per].join(" "))
                .collect();
            let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
            plan = thread(plan, &format!("t{t}"), &steps);
        }
        plan = job(plan, 200);
        let policy = SimulationPolicy {
            jitter_percent: 50,
            ..SimulationPolicy::default()
        };
        let sim = simulate(&plan, &policy).unwrap();
        assert_eq!(sim.tally.succeeded, n);
        assert_eq!(peak(&sim, "job"), (200, Some(200)));
        assert_path_spans_the_run(&sim);
    }
}
