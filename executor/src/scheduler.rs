//! The scheduler: the pure decision core of a run (spec `semantics.md` §6).
//!
//! A [`Scheduler`] owns the run-time state of one run of a [`Plan`] and decides, from the
//! outcomes it is told about, which host may start next. It has no async runtime, no clock, no
//! I/O and prints nothing, so `pogo apply`, `pogo simulate` and the remote dispatcher drive the
//! very same rules, and property tests drive it with no runtime at all.
//!
//! # Driving it
//!
//! ```text
//! let mut run = Scheduler::new(&plan, LimitOverrides::default())?;
//! loop {
//!     while let Some(host) = run.next_to_start() { launch(host) }   // marks it running
//!     match run.status() {
//!         RunStatus::Running | RunStatus::Stopping(_) => {
//!             let (host, outcome) = wait_for_a_running_host();
//!             let changes = run.finish(host, outcome)?;             // report `changes`
//!         }
//!         RunStatus::Complete | RunStatus::Stopped(_) | RunStatus::Blocked(_) => break,
//!     }
//! }
//! ```
//!
//! Whenever nothing runs and [`Scheduler::next_to_start`] has nothing to give, the status is
//! `Complete`, `Stopped` or `Blocked` (with the reasons): a run never waits for nothing.
//!
//! # Decisions
//!
//! - **Finished**, for ordering, is every terminal state: succeeded, failed, timed out,
//!   unreachable, skipped, cancelled. A slot whose host failed is complete (§6); when failures
//!   should stop the rollout, the failure budget does that.
//! - **Complete** is transitive: a slot is complete when each of its hosts has finished *and*
//!   every slot with an edge into it is complete. For a plan run from scratch this is the same
//!   as §6's rule (a host of a slot only starts once the slots before it are complete), but it
//!   is what makes "an empty slot is complete at once, and the order around it holds" true
//!   (`a, [], c`: `c` still waits for `a`), and it keeps the order on a resumed run whose
//!   middle slot succeeded before while the first is being retried. [`Plan::validate`]
//!   checks cycles under this rule too; the scheduler checks again as it builds its graph.
//! - **Down** = running, failed, timed out, unreachable or cancelled in this run. A host that
//!   did not succeed stays down until the run ends (§6, Pogo 4.0's rule): a failed or
//!   unreachable host is presumed out of service, and a cancelled one was killed in the middle
//!   of its command, so its state is unknown. The job-wide group is a group like the others:
//!   with a job limit of 200 and a failure budget above 200, 200 failed hosts block the run.
//! - **Failures**, for `max_failures`, are failed + timed out + unreachable: an unreachable host
//!   is a failure of the rollout even though it is reported separately. A cancelled host is the
//!   operator's doing, not a failure. The run stops starting hosts once failures exceed
//!   `max_failures` *and* some host has yet to start (a run whose last hosts fail has nothing to
//!   stop: it is complete, with failures).
//! - **Stopping** (failure budget or [`Scheduler::halt`]) is final for the run: every host not
//!   yet started becomes skipped at once, running hosts finish (or are cancelled).
//! - **Blocked**: nothing runs, nothing may start, and hosts have yet to start. Since a failed
//!   host stays down until the run ends, nothing can change that, so the run ends there and
//!   those hosts become skipped. The report ([`Blocker`]) names every full group holding back
//!   a ready host (its limit, its down hosts and how each ended, the hosts it holds back), and
//!   every slot that can never complete because of them (the first such slot of each chain,
//!   with every host it holds back directly or through the slots after it).
//! - **Retries** are the driver's: a host stays running (and down) across its attempts, and
//!   [`Scheduler::finish`] gets its final outcome once. The number of retries is the plan's
//!   `options.retries`; the scheduler does not need it.
//! - **Resume** ([`Scheduler::resume`]): succeeded hosts stay done; failed, timed-out and
//!   unreachable hosts stay failed (down, and counted against `max_failures`: it is the same
//!   run) unless [`FailedHosts::Retry`] puts them back to run; skipped, cancelled and pending
//!   hosts run. A host the previous run left running must be decided by the driver.
//!
//! # Cost
//!
//! Building is O(hosts + slot memberships + group memberships + edges), most of it
//! [`Plan::validate`] (which hashes every name of the plan). A host that is ready
//! but held by a full group is parked on that group; a group that gains room offers only its
//! first parked host back, and offers the next one only when that one is placed. So
//! [`Scheduler::next_to_start`] and [`Scheduler::finish`] cost O(g log n) for a host in g
//! groups, plus O(log n) for each host they move (a host becoming ready, a parked host
//! re-parked on another full group) and the hosts of any slot that completes. Stopping is
//! O(hosts) once; the blocked report O(hosts + group memberships), plus a walk of what
//! follows each slot it names. No per-event operation scans the hosts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use pogo_model::{Amount, Plan, PlanInvariantError, JOB_GROUP_ID};

/// A host of the plan: its index in `plan.hosts`, so comparing two is comparing plan order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostIdx(u32);

impl HostIdx {
    /// The host at `index` of `plan.hosts`.
    ///
    /// # Panics
    /// If `index` does not fit in 32 bits (no plan the scheduler accepts has that many hosts).
    pub fn new(index: usize) -> Self {
        HostIdx(u32::try_from(index).expect("a host index fits in 32 bits"))
    }

    /// Its index in `plan.hosts`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for HostIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A slot of the plan: its index in [`Plan::slots`] order (threads in order, each thread's
/// slots in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotIdx(u32);

impl SlotIdx {
    /// The slot at `index` of [`Plan::slots`] order.
    ///
    /// # Panics
    /// If `index` does not fit in 32 bits.
    pub fn new(index: usize) -> Self {
        SlotIdx(u32::try_from(index).expect("a slot index fits in 32 bits"))
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How a host's command ended, as the driver reports it after the host's last attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The command exited non-zero (`128 + N` for signal N, as a shell reports it).
    Failed {
        exit_code: i32,
    },
    /// The command outlived the per-host timeout and was killed.
    TimedOut,
    /// The host could not be reached: connection or authentication failed.
    Unreachable,
}

/// Where a host stands in the run. The last six are terminal: every host ends in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Not started yet: waiting for its slots' predecessors, or for room in its groups.
    Pending,
    Running,
    Succeeded,
    Failed {
        exit_code: i32,
    },
    TimedOut,
    Unreachable,
    /// Never started, because the run stopped or was blocked.
    Skipped,
    /// Killed while running, by the operator.
    Cancelled,
}

impl HostState {
    /// Whether the host is done for this run.
    pub fn is_terminal(self) -> bool {
        !matches!(self, HostState::Pending | HostState::Running)
    }

    /// Whether it counts against `max_failures`.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            HostState::Failed { .. } | HostState::TimedOut | HostState::Unreachable
        )
    }

    /// Whether it holds a place in each of its groups: running, or ended other than by
    /// succeeding (and so presumed out of service until the run ends).
    pub fn is_down(self) -> bool {
        matches!(self, HostState::Running | HostState::Cancelled) || self.is_failure()
    }
}

impl From<Outcome> for HostState {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Succeeded => HostState::Succeeded,
            Outcome::Failed { exit_code } => HostState::Failed { exit_code },
            Outcome::TimedOut => HostState::TimedOut,
            Outcome::Unreachable => HostState::Unreachable,
        }
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostState::Pending => write!(f, "pending"),
            HostState::Running => write!(f, "running"),
            HostState::Succeeded => write!(f, "succeeded"),
            HostState::Failed { exit_code } => write!(f, "failed (exit {exit_code})"),
            HostState::TimedOut => write!(f, "timed out"),
            HostState::Unreachable => write!(f, "unreachable"),
            HostState::Skipped => write!(f, "skipped"),
            HostState::Cancelled => write!(f, "cancelled"),
        }
    }
}

/// Run-time limits given for this run. They can only lower the plan's: a plan is reviewed
/// with its limits, and a run must never be less careful than what was reviewed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    /// Replaces `options.max_failures` (as resolved: a percentage is the driver's to resolve
    /// against the number of targets). Must not exceed it.
    pub max_failures: Option<u64>,
    /// A job-wide cap on hosts down at once. It lowers the plan's `job` group, which must not
    /// be lower already; a plan without one (`--unconstrained`) gets a `job` group of every
    /// host.
    pub concurrent: Option<u64>,
}

/// What the previous run's failed hosts become when a run is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedHosts {
    /// They stay failed, down, and counted against `max_failures`.
    StayFailed,
    /// They run again (`--retry-failed`), starting from pending like any host yet to run.
    Retry,
    /// They stay failed and down in their groups, but `max_failures` counts failures from
    /// this run on: a retry of named hosts must not be stopped at once by the failures of the
    /// hosts it leaves alone.
    StayDown,
}

/// The hosts a retry of named hosts runs again (`pogo retry JOB HOST...`, `pogo apply --resume
/// RUN --retry-failed=HOST,...`), as indexes into `hosts`: each must be a host of the plan
/// that ended other than by succeeding or being skipped (failed, timed out, unreachable,
/// lost, interrupted, cancelled). `run` names the run in the errors (`job job-...`), `resume`
/// the command that runs a skipped host. The other failed hosts stay down
/// ([`FailedHosts::StayDown`]). Every problem is in the error, `; `-separated.
pub fn named_retry(
    hosts: &[String],
    states: &[HostState],
    names: &[String],
    run: &str,
    resume: &str,
) -> Result<Vec<usize>, String> {
    let mut problems = Vec::new();
    let mut chosen = Vec::new();
    for name in names {
        match hosts.iter().position(|h| h == name) {
            None => problems.push(format!("{run} has no host `{name}`")),
            Some(i) if !(states[i].is_failure() || states[i] == HostState::Cancelled) => problems
                .push(format!(
                    "host `{name}` {}: only failed, timed-out, unreachable, lost and cancelled \
                     hosts are retried",
                    match states[i] {
                        HostState::Succeeded => "succeeded".to_string(),
                        HostState::Skipped => format!("was skipped (`{resume}` runs it)"),
                        HostState::Pending => "has not run yet".to_string(),
                        _ => "is running".to_string(),
                    }
                )),
            Some(i) => chosen.push(i),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

/// Why a run stopped starting hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// More than `max_failures` hosts failed; `failures` is the count when the run stopped.
    FailureBudget { failures: usize, max_failures: u64 },
    /// The operator halted the run.
    Halted,
    /// The run's `run_timeout` expired (the running commands are killed).
    RunTimeout,
    /// The gate after a step did not pass (`how`: `exit code 1`).
    GateFailed { step: String, how: String },
    /// A step's approval did not come within its time limit.
    ApprovalExpired { step: String },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::FailureBudget {
                failures,
                max_failures,
            } => write!(
                f,
                "{failures} {} failed, more than max_failures ({max_failures})",
                if *failures == 1 { "host" } else { "hosts" }
            ),
            StopReason::Halted => write!(f, "halted by the operator"),
            StopReason::RunTimeout => {
                write!(f, "the run timeout expired; running commands are killed")
            }
            StopReason::GateFailed { step, how } => {
                write!(f, "the gate after step `{step}` failed: {how}")
            }
            StopReason::ApprovalExpired { step } => {
                write!(f, "step `{step}` was not approved in time")
            }
        }
    }
}

/// One reason why hosts cannot start, in a blocked run. Every statement in it is true of the
/// run's state when it became blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// A constraint group is full, and since nothing runs, it is full of hosts that stay down
    /// until the run ends.
    GroupFull {
        /// The group's id in the plan (`$colo.east`, `job`).
        group: String,
        /// The limit in force (the plan's, or lower when overridden).
        max_parallel: Amount,
        /// The group's down hosts, in plan order, with how each ended.
        down: Vec<(HostIdx, HostState)>,
        /// Members that are ready but cannot start, in plan order.
        waiting: Vec<HostIdx>,
    },
    /// A budget shared by every run on the dispatcher (a fleet's group) is full of hosts that
    /// stay down: failed in this run or another, and nothing of it runs.
    BudgetFull {
        fleet: String,
        /// The group's id in the fleet's config.
        group: String,
        max_parallel: u64,
        /// Its down hosts, with the run each is down in and how it ended there.
        down: Vec<DownHost>,
        /// Hosts of this run that are ready but cannot start, in plan order.
        waiting: Vec<HostIdx>,
    },
    /// A slot that can never complete: it holds hosts that a full group keeps from starting
    /// (see that group's reason), and every slot before it is complete.
    SlotIncomplete {
        /// The slot's id in the plan (`main.$colo.east`).
        slot: String,
        /// Its hosts that have not finished (none started: nothing runs), in plan order.
        unfinished: Vec<HostIdx>,
        /// The hosts it holds back, waiting for it directly or through the slots after it, in
        /// plan order. Other slots that can never complete may hold some of them back too.
        waiting: Vec<HostIdx>,
    },
}

impl Blocker {
    /// The hosts this reason holds back.
    pub fn waiting(&self) -> &[HostIdx] {
        match self {
            Blocker::GroupFull { waiting, .. }
            | Blocker::BudgetFull { waiting, .. }
            | Blocker::SlotIncomplete { waiting, .. } => waiting,
        }
    }

    /// One line for a person, naming hosts with `names` (the plan's `hosts`).
    pub fn describe(&self, names: &[String]) -> String {
        match self {
            Blocker::GroupFull {
                group,
                max_parallel,
                down,
                waiting,
            } => {
                let down: Vec<String> = down
                    .iter()
                    .map(|&(h, state)| format!("{} ({state})", names[h.index()]))
                    .collect();
                format!(
                    "group `{group}` (max_parallel {max_parallel}) is full of hosts that stay \
                     down until the run ends: {}; so {} cannot start",
                    some(&down),
                    some_hosts(waiting, names)
                )
            }
            Blocker::BudgetFull {
                fleet,
                group,
                max_parallel,
                down,
                waiting,
            } => {
                let down: Vec<String> = down.iter().map(DownHost::to_string).collect();
                format!(
                    "group `{group}` of fleet `{fleet}` (max_parallel {max_parallel}) is full of \
                     hosts that stay down until they succeed or their job is closed: {}; so {} \
                     cannot start",
                    some(&down),
                    some_hosts(waiting, names)
                )
            }
            Blocker::SlotIncomplete {
                slot,
                unfinished,
                waiting,
            } => format!(
                "slot `{slot}` can never complete ({} cannot start); so {} {} waiting for it, \
                 directly or through the slots after it, cannot start: {}",
                some_hosts(unfinished, names),
                waiting.len(),
                if waiting.len() == 1 { "host" } else { "hosts" },
                some_hosts(waiting, names)
            ),
        }
    }
}

/// Why a pending host has not started, as far as its own run is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnWait {
    /// It waits for this slot to complete (the first of them, in plan order).
    Slot { slot: String },
    /// Its slots before it are done, but one's gate or approval is still to decide.
    Gate { slot: String },
    /// A group of the plan is full (the job-wide limit is the group `job`): its down hosts,
    /// in plan order, with their states.
    Group {
        group: String,
        max_parallel: Amount,
        down: Vec<(HostIdx, HostState)>,
    },
}

/// A host that holds a place in a shared budget, in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownHost {
    pub host: String,
    /// The run (the dispatcher's job) it is down in.
    pub job: String,
    pub state: HostState,
}

impl fmt::Display for DownHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} in job {})", self.host, self.state, self.job)
    }
}

/// At most this many names in a message; a group of 5,000 failed hosts is summed up.
const NAMES_SHOWN: usize = 10;

fn some(items: &[String]) -> String {
    let mut text = items[..items.len().min(NAMES_SHOWN)].join(", ");
    if items.len() > NAMES_SHOWN {
        text.push_str(&format!(" and {} more", items.len() - NAMES_SHOWN));
    }
    text
}

fn some_hosts(hosts: &[HostIdx], names: &[String]) -> String {
    let names: Vec<String> = hosts
        .iter()
        .take(NAMES_SHOWN + 1)
        .map(|h| names[h.index()].clone())
        .collect();
    let mut text = some(&names[..names.len().min(NAMES_SHOWN)]);
    if hosts.len() > NAMES_SHOWN {
        text.push_str(&format!(" and {} more", hosts.len() - NAMES_SHOWN));
    }
    text
}

/// Where the run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus<'a> {
    /// Hosts are running, or may start now ([`Scheduler::next_to_start`] has one).
    Running,
    /// The run stopped starting hosts; hosts still running are finishing.
    Stopping(&'a StopReason),
    /// Ended: the run stopped and nothing runs. Hosts that never started are skipped.
    Stopped(&'a StopReason),
    /// Ended: the remaining hosts could never start, for these reasons (at least one); they
    /// are skipped.
    Blocked(&'a [Blocker]),
    /// Ended: every host ran (some may have failed, within the failure budget).
    Complete,
}

impl RunStatus<'_> {
    /// Whether the run is over: every host is in a terminal state.
    pub fn is_ended(&self) -> bool {
        matches!(
            self,
            RunStatus::Stopped(_) | RunStatus::Blocked(_) | RunStatus::Complete
        )
    }
}

/// How many hosts are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub unreachable: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

impl Tally {
    /// Hosts that count against `max_failures`.
    pub fn failures(&self) -> usize {
        self.failed + self.timed_out + self.unreachable
    }

    fn count(&mut self, state: HostState) -> &mut usize {
        match state {
            HostState::Pending => &mut self.pending,
            HostState::Running => &mut self.running,
            HostState::Succeeded => &mut self.succeeded,
            HostState::Failed { .. } => &mut self.failed,
            HostState::TimedOut => &mut self.timed_out,
            HostState::Unreachable => &mut self.unreachable,
            HostState::Skipped => &mut self.skipped,
            HostState::Cancelled => &mut self.cancelled,
        }
    }
}

/// What a call changed besides the host it was about, for the driver to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Slots that completed, in the order they did.
    pub slots_completed: Vec<SlotIdx>,
    /// Pending hosts whose predecessor slots all completed, in the order they did. Whether
    /// they may start also depends on their groups.
    pub hosts_ready: Vec<HostIdx>,
    /// Hosts that will never start because the run stopped or is blocked, in plan order.
    pub hosts_skipped: Vec<HostIdx>,
    /// Set when this call made the run stop starting hosts.
    pub stopped: Option<StopReason>,
    /// Whether this call ended the run (its status is now `Complete`, `Stopped` or `Blocked`).
    pub ended: bool,
    /// Steps whose hosts have all finished and whose gate or approval the driver must now
    /// decide ([`Scheduler::pass_gate`], [`Scheduler::fail_gate`]).
    pub gates_due: Vec<SlotIdx>,
}

impl Changes {
    /// Adds what a later call changed.
    pub fn extend(&mut self, later: Changes) {
        self.slots_completed.extend(later.slots_completed);
        self.hosts_ready.extend(later.hosts_ready);
        self.hosts_skipped.extend(later.hosts_skipped);
        self.stopped = self.stopped.take().or(later.stopped);
        self.ended |= later.ended;
        self.gates_due.extend(later.gates_due);
    }
}

/// Why a scheduler could not be built, or a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    #[error("inconsistent plan: {0}")]
    InvalidPlan(#[from] PlanInvariantError),
    #[error(
        "inconsistent plan: the slot dependencies form a cycle (counting empty slots, whose \
         order holds), so these slots could never complete: {}",
        .slots.join(", ")
    )]
    Cycle { slots: Vec<String> },
    #[error("the plan has {0} hosts, more than a run can hold")]
    TooManyHosts(usize),
    #[error("step #{} has no gate waiting for a decision", .0.index())]
    GateNotDue(SlotIdx),
    #[error("a max_failures of {given} would raise the plan's ({plan}); a run can only lower it")]
    RaisesMaxFailures { given: u64, plan: Amount },
    #[error(
        "a job-wide limit of {given} would raise the plan's ({plan}); a run can only lower it"
    )]
    RaisesConcurrent { given: u64, plan: Amount },
    #[error("a job-wide limit of 0 would never start a host")]
    ZeroConcurrent,
    #[error("the previous run has states for {found} hosts, but the plan has {expected}")]
    ResumeMismatch { found: usize, expected: usize },
    #[error(
        "host {host} was still running when the previous run ended; decide whether it runs \
         again (pending) or failed before resuming"
    )]
    ResumeRunning { host: HostIdx },
    #[error("host {host} is {state}, not running")]
    NotRunning { host: HostIdx, state: HostState },
}

/// Adjacency lists packed in two vectors: the items of key `k` are
/// `items[start[k]..start[k + 1]]`. One allocation per relation instead of one per host keeps
/// building a 100,000-host run cheap.
#[derive(Debug, Default)]
struct Csr {
    start: Vec<u32>,
    items: Vec<u32>,
}

impl Csr {
    /// Keeps the order of `pairs` within each key.
    fn new(keys: usize, pairs: &[(u32, u32)]) -> Csr {
        let mut start = vec![0u32; keys + 1];
        for &(key, _) in pairs {
            start[key as usize + 1] += 1;
        }
        for k in 0..keys {
            start[k + 1] += start[k];
        }
        let mut next = start.clone();
        let mut items = vec![0u32; pairs.len()];
        for &(key, item) in pairs {
            items[next[key as usize] as usize] = item;
            next[key as usize] += 1;
        }
        Csr { start, items }
    }

    fn get(&self, key: usize) -> &[u32] {
        &self.items[self.start[key] as usize..self.start[key + 1] as usize]
    }
}

/// Run-time state of a constraint group.
#[derive(Debug)]
struct GroupState {
    id: String,
    max_parallel: Amount,
    down: u64,
    /// Ready hosts that found the group full, smallest index first.
    parked: BinaryHeap<Reverse<u32>>,
    /// Whether one of its parked hosts is back among the candidates. A group with room offers
    /// one at a time, so a freed place costs O(log n), not a pass over what it holds back.
    offering: bool,
}

impl GroupState {
    fn is_full(&self) -> bool {
        self.down >= self.max_parallel.value
    }
}

/// Run-time state of a slot.
#[derive(Debug)]
struct SlotState {
    id: String,
    /// Unfinished hosts plus incoming edges from incomplete slots; complete at 0.
    remaining: u32,
    gate: Gate,
}

/// Where a step's gate (or approval) stands: its completion waits for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// The step has none.
    None,
    /// Its hosts have not all finished yet.
    Closed,
    /// Its hosts have all finished: the driver runs the gate or waits for the approval.
    Due,
    /// It passed: the step completed.
    Passed,
}

/// Marks a candidate that no group offered.
const NO_GROUP: u32 = u32::MAX;

/// The run-time state of one run of a plan; see the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    states: Vec<HostState>,
    /// Per host: incomplete slots it still waits for (distinct).
    waiting: Vec<u32>,
    /// Per candidate host: the group that offered it, or [`NO_GROUP`].
    offered_by: Vec<u32>,
    host_groups: Csr,
    host_slots: Csr,
    groups: Vec<GroupState>,
    group_members: Csr,
    slots: Vec<SlotState>,
    slot_hosts: Csr,
    slot_preds: Csr,
    slot_succs: Csr,
    /// Per slot: the hosts that wait for it.
    slot_waiters: Csr,
    /// Ready pending hosts not parked on a full group, smallest index (plan order) first.
    candidates: BinaryHeap<Reverse<u32>>,
    /// Per host: whether it is in `candidates`.
    in_heap: Vec<bool>,
    /// Per host: whether the driver holds it back ([`Scheduler::hold`]).
    held: Vec<bool>,
    held_count: usize,
    tally: Tally,
    max_failures: u64,
    /// Failures of an earlier run that `max_failures` does not count ([`FailedHosts::StayDown`]).
    uncounted: usize,
    stop: Option<StopReason>,
    blocked: Option<Vec<Blocker>>,
    ended: bool,
    /// How many steps wait for the driver's gate or approval: the run goes on meanwhile.
    gates_due: usize,
}

impl Scheduler {
    /// The state of a fresh run of `plan`: every host pending.
    pub fn new(plan: &Plan, overrides: LimitOverrides) -> Result<Scheduler, SchedulerError> {
        let previous = vec![HostState::Pending; plan.hosts.len()];
        Scheduler::resume(plan, overrides, &previous, FailedHosts::StayFailed)
    }

    /// The state of a run of `plan` resumed from `previous`, each host's state when the
    /// previous run ended (indexed like `plan.hosts`). Succeeded hosts stay done; failed,
    /// timed-out and unreachable ones stay failed (and down) or run again, as `failed` says;
    /// pending, skipped and cancelled hosts run. `Running` is refused: only the driver knows
    /// whether a host the journal saw start and never finish should run again.
    ///
    /// The run may be over at once (everything done, or still more failures than the budget,
    /// or blocked by groups full of failed hosts): look at [`Scheduler::status`].
    pub fn resume(
        plan: &Plan,
        overrides: LimitOverrides,
        previous: &[HostState],
        failed: FailedHosts,
    ) -> Result<Scheduler, SchedulerError> {
        Scheduler::rebuild(plan, overrides, previous, failed, false, None)
    }

    /// [`Scheduler::resume`] for a session that runs only the hosts `only` marks (`pogo
    /// apply --only`, indexed like `plan.hosts`): each other host that would run is skipped
    /// at once, as if the run had stopped before it. Skipped hosts hold no place, and a slot
    /// completes without them, so the hosts that run keep the plan's order between them and
    /// its limits. Failed hosts outside `only` stay failed, whatever `failed` says.
    pub fn resume_only(
        plan: &Plan,
        overrides: LimitOverrides,
        previous: &[HostState],
        failed: FailedHosts,
        only: &[bool],
    ) -> Result<Scheduler, SchedulerError> {
        if only.len() != plan.hosts.len() {
            return Err(SchedulerError::ResumeMismatch {
                found: only.len(),
                expected: plan.hosts.len(),
            });
        }
        Scheduler::rebuild(plan, overrides, previous, failed, false, Some(only))
    }

    /// The state of a run of `plan` that goes on where it was, for a driver that outlives the
    /// processes running its hosts (a dispatcher that restarts while its workers run on):
    /// like [`Scheduler::resume`] with failed hosts staying failed, except that `Running` hosts
    /// are still running, down in their groups, and end with [`Scheduler::finish`] or
    /// [`Scheduler::cancel`] as usual, and skipped and cancelled hosts stay so (a halted run
    /// is halted again by its driver).
    pub fn restore(
        plan: &Plan,
        overrides: LimitOverrides,
        states: &[HostState],
    ) -> Result<Scheduler, SchedulerError> {
        Scheduler::rebuild(plan, overrides, states, FailedHosts::StayFailed, true, None)
    }

    fn rebuild(
        plan: &Plan,
        overrides: LimitOverrides,
        previous: &[HostState],
        failed: FailedHosts,
        running_allowed: bool,
        only: Option<&[bool]>,
    ) -> Result<Scheduler, SchedulerError> {
        if previous.len() != plan.hosts.len() {
            return Err(SchedulerError::ResumeMismatch {
                found: previous.len(),
                expected: plan.hosts.len(),
            });
        }
        let mut run = Scheduler::build(plan, overrides)?;
        let (n, slot_count) = (run.states.len(), run.slots.len());
        let left_out = |h: usize| only.is_some_and(|only| !only[h]);

        for (h, &before) in previous.iter().enumerate() {
            let state = match before {
                HostState::Running if running_allowed => HostState::Running,
                HostState::Running => {
                    return Err(SchedulerError::ResumeRunning {
                        host: HostIdx::new(h),
                    })
                }
                // A restored run goes on as it was: its skipped and cancelled hosts stay so.
                HostState::Skipped | HostState::Cancelled if running_allowed => before,
                HostState::Pending | HostState::Skipped | HostState::Cancelled if left_out(h) => {
                    HostState::Skipped
                }
                HostState::Pending | HostState::Skipped | HostState::Cancelled => continue,
                state if state.is_failure() && failed == FailedHosts::Retry && !left_out(h) => {
                    continue
                }
                state => state,
            };
            run.set_state(h, state);
            if state.is_down() {
                for &g in run.host_groups.get(h) {
                    run.groups[g as usize].down += 1;
                }
            }
        }
        for s in 0..slot_count {
            let unfinished = run
                .slot_hosts
                .get(s)
                .iter()
                .filter(|&&h| !run.states[h as usize].is_terminal())
                .count();
            run.slots[s].remaining = (unfinished + run.slot_preds.get(s).len()) as u32;
        }
        for h in 0..n {
            if run.waiting[h] == 0 && run.states[h] == HostState::Pending {
                run.push_candidate(h);
            }
        }
        if failed == FailedHosts::StayDown {
            run.uncounted = run.tally.failures();
        } else if only.is_some() {
            // Failed hosts this session leaves out are not its failures: they must not stop
            // it before it starts (as the hosts a named retry leaves alone).
            run.uncounted = (0..n)
                .filter(|&h| left_out(h) && run.states[h].is_failure())
                .count();
        }
        let mut ignored = Changes::default();
        // Collected first: completing one slot completes those that waited only for it.
        let complete: Vec<usize> = (0..slot_count)
            .filter(|&s| run.slots[s].remaining == 0)
            .collect();
        for s in complete {
            run.complete_slot(s, &mut ignored);
        }
        run.check_failure_budget(&mut ignored);
        run.settle();
        run.check_end(&mut ignored);
        Ok(run)
    }

    /// The run's structure, every host pending: the plan's relations as index lists, the
    /// limits in force, checked for a cycle.
    fn build(plan: &Plan, overrides: LimitOverrides) -> Result<Scheduler, SchedulerError> {
        plan.validate()?;
        let n = plan.hosts.len();
        if u32::try_from(n).is_err() {
            return Err(SchedulerError::TooManyHosts(n));
        }
        let max_failures = match overrides.max_failures {
            Some(given) if given > plan.options.max_failures.value => {
                return Err(SchedulerError::RaisesMaxFailures {
                    given,
                    plan: plan.options.max_failures,
                })
            }
            Some(given) => given,
            None => plan.options.max_failures.value,
        };

        let index: HashMap<&str, u32> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i as u32))
            .collect();
        let host = |name: &String| index[name.as_str()];

        let mut groups = Vec::with_capacity(plan.constraints.len() + 1);
        let mut memberships = Vec::new();
        for (g, spec) in plan.constraints.iter().enumerate() {
            let mut max_parallel = spec.max_parallel;
            if let (JOB_GROUP_ID, Some(given)) = (spec.id.as_str(), overrides.concurrent) {
                if given == 0 {
                    return Err(SchedulerError::ZeroConcurrent);
                }
                if given > max_parallel.value {
                    return Err(SchedulerError::RaisesConcurrent {
                        given,
                        plan: max_parallel,
                    });
                }
                max_parallel = Amount::number(given);
            }
            groups.push(GroupState {
                id: spec.id.clone(),
                max_parallel,
                down: 0,
                parked: BinaryHeap::new(),
                offering: false,
            });
            memberships.extend(spec.hosts.iter().map(|h| (g as u32, host(h))));
        }
        if let Some(given) = overrides.concurrent {
            if plan.constraint(JOB_GROUP_ID).is_none() {
                if given == 0 {
                    return Err(SchedulerError::ZeroConcurrent);
                }
                let g = groups.len() as u32;
                groups.push(GroupState {
                    id: JOB_GROUP_ID.to_string(),
                    max_parallel: Amount::number(given),
                    down: 0,
                    parked: BinaryHeap::new(),
                    offering: false,
                });
                memberships.extend((0..n as u32).map(|h| (g, h)));
            }
        }
        let group_members = Csr::new(groups.len(), &memberships);
        let host_groups = Csr::new(n, &flip(&memberships));

        let slot_index: HashMap<&str, u32> = plan
            .slots()
            .enumerate()
            .map(|(i, (_, s))| (s.id.as_str(), i as u32))
            .collect();
        let slot_count = slot_index.len();
        let mut placements = Vec::new();
        for (s, (_, spec)) in plan.slots().enumerate() {
            placements.extend(spec.hosts.iter().map(|h| (s as u32, host(h))));
        }
        // Sorted by host, so that every per-slot list built from these is in plan order.
        placements.sort_unstable_by_key(|&(s, h)| (h, s));
        let slot_hosts = Csr::new(slot_count, &placements);
        let host_slots = Csr::new(n, &flip(&placements));
        let links: Vec<(u32, u32)> = plan
            .edges
            .iter()
            .map(|e| (slot_index[e.from.as_str()], slot_index[e.to.as_str()]))
            .collect();
        let slot_succs = Csr::new(slot_count, &links);
        let mut flipped = flip(&links);
        flipped.sort_unstable();
        let slot_preds = Csr::new(slot_count, &flipped);
        let mut host_pred_pairs = Vec::new();
        let mut preds = Vec::new();
        for h in 0..n {
            preds.clear();
            for &s in host_slots.get(h) {
                preds.extend_from_slice(slot_preds.get(s as usize));
            }
            preds.sort_unstable();
            preds.dedup();
            host_pred_pairs.extend(preds.iter().map(|&p| (h as u32, p)));
        }
        let host_preds = Csr::new(n, &host_pred_pairs);
        let slot_waiters = Csr::new(slot_count, &flip(&host_pred_pairs));

        let slots: Vec<SlotState> = plan
            .slots()
            .map(|(_, spec)| SlotState {
                id: spec.id.clone(),
                remaining: 0,
                gate: if spec.is_gated() {
                    Gate::Closed
                } else {
                    Gate::None
                },
            })
            .collect();

        let run = Scheduler {
            states: vec![HostState::Pending; n],
            waiting: (0..n).map(|h| host_preds.get(h).len() as u32).collect(),
            offered_by: vec![NO_GROUP; n],
            host_groups,
            host_slots,
            groups,
            group_members,
            slots,
            slot_hosts,
            slot_preds,
            slot_succs,
            slot_waiters,
            candidates: BinaryHeap::new(),
            in_heap: vec![false; n],
            held: vec![false; n],
            held_count: 0,
            tally: Tally {
                pending: n,
                ..Tally::default()
            },
            max_failures,
            uncounted: 0,
            stop: None,
            blocked: None,
            ended: false,
            gates_due: 0,
        };
        run.check_acyclic()?;
        Ok(run)
    }

    /// Kahn's algorithm over slots and hosts with the scheduler's own rule (a slot waits for
    /// its hosts and for the slots with an edge into it), so a plan that could leave hosts
    /// waiting forever is refused before anything starts.
    fn check_acyclic(&self) -> Result<(), SchedulerError> {
        let mut slot_left: Vec<u32> = (0..self.slots.len())
            .map(|s| (self.slot_hosts.get(s).len() + self.slot_preds.get(s).len()) as u32)
            .collect();
        let mut host_left = self.waiting.clone();
        let mut hosts: Vec<usize> = (0..host_left.len())
            .filter(|&h| host_left[h] == 0)
            .collect();
        let mut slots: Vec<usize> = (0..slot_left.len())
            .filter(|&s| slot_left[s] == 0)
            .collect();
        while !hosts.is_empty() || !slots.is_empty() {
            while let Some(h) = hosts.pop() {
                for &s in self.host_slots.get(h) {
                    slot_left[s as usize] -= 1;
                    if slot_left[s as usize] == 0 {
                        slots.push(s as usize);
                    }
                }
            }
            while let Some(s) = slots.pop() {
                for &next in self.slot_succs.get(s) {
                    slot_left[next as usize] -= 1;
                    if slot_left[next as usize] == 0 {
                        slots.push(next as usize);
                    }
                }
                for &h in self.slot_waiters.get(s) {
                    host_left[h as usize] -= 1;
                    if host_left[h as usize] == 0 {
                        hosts.push(h as usize);
                    }
                }
            }
        }
        let stuck: Vec<String> = (0..slot_left.len())
            .filter(|&s| slot_left[s] > 0)
            .map(|s| self.slots[s].id.clone())
            .collect();
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(SchedulerError::Cycle { slots: stuck })
        }
    }

    /// The first host in plan order that may start now, marked running; `None` when no host
    /// may start (call again after the next finish). Never returns a host once the run has
    /// stopped.
    pub fn next_to_start(&mut self) -> Option<HostIdx> {
        let h = self.pop_candidate()?;
        debug_assert_eq!(self.states[h], HostState::Pending);
        self.set_state(h, HostState::Running);
        for &g in self.host_groups.get(h) {
            self.groups[g as usize].down += 1;
        }
        self.withdraw_offer(h);
        self.settle();
        Some(HostIdx::new(h))
    }

    /// The host [`Scheduler::next_to_start`] would return, without starting it.
    pub fn peek_next(&self) -> Option<HostIdx> {
        self.candidates.peek().map(|&Reverse(h)| HostIdx(h))
    }

    /// Whether the host may start now as far as this run is concerned: the driver may still
    /// hold it back ([`Scheduler::hold`]) for limits of its own.
    pub fn is_candidate(&self, host: HostIdx) -> bool {
        self.in_heap[host.index()]
    }

    /// Takes the host [`Scheduler::peek_next`] would return out of the candidates, still
    /// pending: the driver holds it back for limits the run does not know (budgets shared with
    /// other runs, a host busy elsewhere), until it gives it back with [`Scheduler::release`].
    /// A run with held hosts does not end by itself when nothing else can start: the driver
    /// decides, with [`Scheduler::block`]. Stopping the run skips held hosts like any pending
    /// host (and they are held no more).
    pub fn hold(&mut self) -> Option<HostIdx> {
        let h = self.pop_candidate()?;
        self.held[h] = true;
        self.held_count += 1;
        self.withdraw_offer(h);
        self.settle();
        Some(HostIdx::new(h))
    }

    /// Gives back a host held with [`Scheduler::hold`]: it is a candidate again, unless one of
    /// the run's own groups is full. Does nothing for a host that is not held. The run may
    /// end here: when nothing of it runs and its own groups, full of its failed hosts, keep
    /// the host from starting.
    pub fn release(&mut self, host: HostIdx) -> Changes {
        let mut changes = Changes::default();
        let h = host.index();
        if !self.held.get(h).copied().unwrap_or(false) {
            return changes;
        }
        self.held[h] = false;
        self.held_count -= 1;
        if self.states[h] == HostState::Pending {
            self.push_candidate(h);
            self.settle();
        }
        self.check_end(&mut changes);
        changes
    }

    /// Why a pending host has not started, by the run's own rules: `None` when the run would
    /// start it (it is a candidate, or held by the driver for the driver's reasons), or when
    /// it is not pending.
    pub fn why(&self, host: HostIdx) -> Option<OwnWait> {
        let h = host.index();
        if self.states.get(h) != Some(&HostState::Pending) {
            return None;
        }
        if self.waiting[h] > 0 {
            let preds = || {
                self.host_slots
                    .get(h)
                    .iter()
                    .flat_map(|&s| self.slot_preds.get(s as usize))
            };
            if let Some(&slot) = preds()
                .filter(|&&p| self.slots[p as usize].remaining > 0)
                .min()
            {
                return Some(OwnWait::Slot {
                    slot: self.slots[slot as usize].id.clone(),
                });
            }
            let slot = preds()
                .filter(|&&p| self.slots[p as usize].gate == Gate::Due)
                .min()?;
            return Some(OwnWait::Gate {
                slot: self.slots[*slot as usize].id.clone(),
            });
        }
        if self.in_heap[h] || self.held[h] {
            return None;
        }
        let &g = self
            .host_groups
            .get(h)
            .iter()
            .find(|&&g| self.groups[g as usize].is_full())?;
        let group = &self.groups[g as usize];
        let mut down: Vec<(HostIdx, HostState)> = self
            .group_members
            .get(g as usize)
            .iter()
            .map(|&m| (HostIdx(m), self.states[m as usize]))
            .filter(|(_, state)| state.is_down())
            .collect();
        down.sort_unstable_by_key(|&(m, _)| m);
        Some(OwnWait::Group {
            group: group.id.clone(),
            max_parallel: group.max_parallel,
            down,
        })
    }

    /// Whether the driver holds the host back.
    pub fn is_held(&self, host: HostIdx) -> bool {
        self.held[host.index()]
    }

    /// How many hosts the driver holds back.
    pub fn held_count(&self) -> usize {
        self.held_count
    }

    /// Ends the run as blocked, when nothing of it runs, nothing may start and its held hosts
    /// can never start: `outer` says why the held hosts cannot (the driver's reasons), after
    /// the run's own reasons. Does nothing while hosts run or may start, or once the run has
    /// stopped or ended.
    pub fn block(&mut self, outer: Vec<Blocker>) -> Changes {
        let mut changes = Changes::default();
        if self.ended
            || self.stop.is_some()
            || self.tally.running > 0
            || !self.candidates.is_empty()
        {
            return changes;
        }
        let mut blockers = self.blockers();
        blockers.extend(outer);
        if self.tally.pending > 0 {
            self.blocked = Some(blockers);
            self.skip_pending(&mut changes);
        }
        self.ended = true;
        changes.ended = true;
        changes
    }

    /// Records the final outcome of a running host.
    pub fn finish(&mut self, host: HostIdx, outcome: Outcome) -> Result<Changes, SchedulerError> {
        let h = self.running(host)?;
        let state = HostState::from(outcome);
        self.set_state(h, state);
        let mut changes = Changes::default();
        if !state.is_down() {
            for i in 0..self.host_groups.get(h).len() {
                let g = self.host_groups.get(h)[i] as usize;
                self.groups[g].down -= 1;
                self.offer(g);
            }
        }
        self.host_finished(h, &mut changes);
        self.check_failure_budget(&mut changes);
        self.settle();
        self.check_end(&mut changes);
        Ok(changes)
    }

    /// Records that a running host was killed (by the operator, or on a halt with `--kill`).
    /// It stays down, but is not a failure.
    pub fn cancel(&mut self, host: HostIdx) -> Result<Changes, SchedulerError> {
        let h = self.running(host)?;
        self.set_state(h, HostState::Cancelled);
        let mut changes = Changes::default();
        self.host_finished(h, &mut changes);
        self.settle();
        self.check_end(&mut changes);
        Ok(changes)
    }

    /// Takes back a host that was marked running but whose command never began (a dispatcher's
    /// task that never reached a worker): its places in its groups are free again, and it is
    /// pending as if it had never started, or skipped when the run has stopped since.
    pub fn unstart(&mut self, host: HostIdx) -> Result<Changes, SchedulerError> {
        let h = self.running(host)?;
        let mut changes = Changes::default();
        for i in 0..self.host_groups.get(h).len() {
            let g = self.host_groups.get(h)[i] as usize;
            self.groups[g].down -= 1;
            self.offer(g);
        }
        if self.stop.is_some() {
            self.set_state(h, HostState::Skipped);
            changes.hosts_skipped.push(host);
            self.host_finished(h, &mut changes);
        } else {
            // It started, so it waits for no slot: it is ready at once.
            self.set_state(h, HostState::Pending);
            self.push_candidate(h);
            changes.hosts_ready.push(host);
        }
        self.settle();
        self.check_end(&mut changes);
        Ok(changes)
    }

    /// Stops starting hosts (the operator's halt): hosts not started are skipped, running
    /// ones finish. Does nothing once the run has stopped or ended, so the first reason stays.
    pub fn halt(&mut self) -> Changes {
        self.stop(StopReason::Halted)
    }

    /// Stops starting hosts, for `reason` (an operator's halt, the run timeout). A run that
    /// has stopped already keeps its first reason.
    /// Steps whose hosts have all finished and whose gate or approval is not decided yet, in
    /// plan order.
    pub fn gates_due(&self) -> Vec<SlotIdx> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].gate == Gate::Due)
            .map(SlotIdx::new)
            .collect()
    }

    /// The gate (and approval) of `slot` passed: the step completes, and the steps ordered
    /// after it may start.
    /// Once the run has stopped its gates are no longer due, and a decision that comes
    /// after (a gate that was running when the operator halted) changes nothing.
    pub fn pass_gate(&mut self, slot: SlotIdx) -> Result<Changes, SchedulerError> {
        let mut changes = Changes::default();
        if !self.gate_to_decide(slot)? {
            return Ok(changes);
        }
        let s = slot.index();
        self.slots[s].gate = Gate::Passed;
        self.gates_due -= 1;
        self.complete_slot(s, &mut changes);
        self.settle();
        self.check_end(&mut changes);
        Ok(changes)
    }

    /// Whether `slot`'s gate is due and the run goes on (false: it stopped, so a decision
    /// changes nothing); an error when the slot has no gate due.
    fn gate_to_decide(&self, slot: SlotIdx) -> Result<bool, SchedulerError> {
        let s = slot.index();
        if self.stop.is_some() && s < self.slots.len() {
            return Ok(false);
        }
        if self.slots.get(s).map(|slot| slot.gate) != Some(Gate::Due) {
            return Err(SchedulerError::GateNotDue(slot));
        }
        Ok(true)
    }

    /// The gate of `slot` failed, or its approval did not come in time: the run stops
    /// (`reason`). Resumable: a new session runs the gate again.
    pub fn fail_gate(
        &mut self,
        slot: SlotIdx,
        reason: StopReason,
    ) -> Result<Changes, SchedulerError> {
        let mut changes = Changes::default();
        if !self.gate_to_decide(slot)? {
            return Ok(changes);
        }
        self.stop_run(reason, &mut changes);
        self.check_end(&mut changes);
        Ok(changes)
    }

    pub fn stop(&mut self, reason: StopReason) -> Changes {
        let mut changes = Changes::default();
        if self.stop.is_none() && !self.ended {
            self.stop_run(reason, &mut changes);
            self.check_end(&mut changes);
        }
        changes
    }

    /// Where the run stands.
    pub fn status(&self) -> RunStatus<'_> {
        if let Some(blockers) = &self.blocked {
            return RunStatus::Blocked(blockers);
        }
        match &self.stop {
            Some(reason) if self.tally.running > 0 => RunStatus::Stopping(reason),
            Some(reason) => RunStatus::Stopped(reason),
            None if self.gates_due > 0 => RunStatus::Running,
            None if self.tally.running == 0 && self.tally.pending == 0 => RunStatus::Complete,
            None => RunStatus::Running,
        }
    }

    pub fn host_state(&self, host: HostIdx) -> HostState {
        self.states[host.index()]
    }

    /// Every host's state, indexed like `plan.hosts`.
    pub fn host_states(&self) -> &[HostState] {
        &self.states
    }

    /// Whether every slot the host waits for is complete (it may still wait for its groups).
    pub fn is_ready(&self, host: HostIdx) -> bool {
        self.waiting[host.index()] == 0
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// The `max_failures` in force (the plan's, or lower when overridden).
    pub fn max_failures(&self) -> u64 {
        self.max_failures
    }

    pub fn host_count(&self) -> usize {
        self.states.len()
    }

    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The slot's id in the plan.
    pub fn slot_id(&self, slot: SlotIdx) -> &str {
        &self.slots[slot.index()].id
    }

    pub fn is_slot_complete(&self, slot: SlotIdx) -> bool {
        self.slots[slot.index()].remaining == 0
    }

    fn push_candidate(&mut self, h: usize) {
        debug_assert!(!self.in_heap[h]);
        self.in_heap[h] = true;
        self.candidates.push(Reverse(h as u32));
    }

    fn pop_candidate(&mut self) -> Option<usize> {
        let Reverse(h) = self.candidates.pop()?;
        self.in_heap[h as usize] = false;
        Some(h as usize)
    }

    fn running(&self, host: HostIdx) -> Result<usize, SchedulerError> {
        match self.states.get(host.index()) {
            Some(HostState::Running) => Ok(host.index()),
            Some(&state) => Err(SchedulerError::NotRunning { host, state }),
            None => Err(SchedulerError::NotRunning {
                host,
                state: HostState::Pending,
            }),
        }
    }

    fn set_state(&mut self, h: usize, state: HostState) {
        *self.tally.count(self.states[h]) -= 1;
        *self.tally.count(state) += 1;
        self.states[h] = state;
    }

    /// Parks candidates that a full group holds back until the first one may start, so that
    /// `peek_next` and the end-of-run check can trust the top of the heap.
    fn settle(&mut self) {
        while let Some(&Reverse(h)) = self.candidates.peek() {
            let h = h as usize;
            let Some(&full) = self
                .host_groups
                .get(h)
                .iter()
                .find(|&&g| self.groups[g as usize].is_full())
            else {
                return;
            };
            self.pop_candidate();
            self.groups[full as usize].parked.push(Reverse(h as u32));
            self.withdraw_offer(h);
        }
    }

    /// The candidate `h` leaves the heap; the group that offered it may offer its next one.
    fn withdraw_offer(&mut self, h: usize) {
        let g = std::mem::replace(&mut self.offered_by[h], NO_GROUP);
        if g != NO_GROUP {
            self.groups[g as usize].offering = false;
            self.offer(g as usize);
        }
    }

    /// A group with room puts its first parked host back among the candidates.
    fn offer(&mut self, g: usize) {
        let group = &mut self.groups[g];
        if group.offering || group.is_full() {
            return;
        }
        if let Some(Reverse(h)) = group.parked.pop() {
            group.offering = true;
            self.offered_by[h as usize] = g as u32;
            self.push_candidate(h as usize);
        }
    }

    fn host_finished(&mut self, h: usize, changes: &mut Changes) {
        for i in 0..self.host_slots.get(h).len() {
            let s = self.host_slots.get(h)[i] as usize;
            self.slots[s].remaining -= 1;
            if self.slots[s].remaining == 0 {
                self.complete_slot(s, changes);
            }
        }
    }

    /// Completes `first` and every slot that completes because of it, and queues the pending
    /// hosts that were waiting only for them.
    fn complete_slot(&mut self, first: usize, changes: &mut Changes) {
        let mut completed = vec![first];
        while let Some(s) = completed.pop() {
            if self.slots[s].gate == Gate::Closed {
                // Its completion waits for the driver: the gate, or the approval.
                self.slots[s].gate = Gate::Due;
                self.gates_due += 1;
                changes.gates_due.push(SlotIdx::new(s));
                continue;
            }
            changes.slots_completed.push(SlotIdx::new(s));
            for &next in self.slot_succs.get(s) {
                let next = next as usize;
                self.slots[next].remaining -= 1;
                if self.slots[next].remaining == 0 {
                    completed.push(next);
                }
            }
            for i in 0..self.slot_waiters.get(s).len() {
                let h = self.slot_waiters.get(s)[i] as usize;
                self.waiting[h] -= 1;
                if self.waiting[h] == 0 && self.states[h] == HostState::Pending {
                    self.push_candidate(h);
                    changes.hosts_ready.push(HostIdx::new(h));
                }
            }
        }
    }

    fn check_failure_budget(&mut self, changes: &mut Changes) {
        let failures = self.tally.failures().saturating_sub(self.uncounted);
        if self.stop.is_none() && failures as u64 > self.max_failures && self.tally.pending > 0 {
            self.stop_run(
                StopReason::FailureBudget {
                    failures,
                    max_failures: self.max_failures,
                },
                changes,
            );
        }
    }

    fn stop_run(&mut self, reason: StopReason, changes: &mut Changes) {
        // A stopped run decides no more gates: their steps stay incomplete.
        for slot in &mut self.slots {
            if slot.gate == Gate::Due {
                slot.gate = Gate::Closed;
            }
        }
        self.gates_due = 0;
        self.stop = Some(reason.clone());
        changes.stopped = Some(reason);
        self.skip_pending(changes);
    }

    /// Every host not started is skipped: this run will start nothing more.
    fn skip_pending(&mut self, changes: &mut Changes) {
        self.candidates.clear();
        self.in_heap.fill(false);
        self.held.fill(false);
        self.held_count = 0;
        for group in &mut self.groups {
            group.parked.clear();
            group.offering = false;
        }
        self.offered_by.fill(NO_GROUP);
        let first = changes.hosts_skipped.len();
        for h in 0..self.states.len() {
            if self.states[h] == HostState::Pending {
                self.set_state(h, HostState::Skipped);
                changes.hosts_skipped.push(HostIdx::new(h));
            }
        }
        // Skipped hosts have finished, so their slots complete: at the end of a run every
        // slot is complete. None of this readies a host, as none is pending any more.
        for i in first..changes.hosts_skipped.len() {
            let h = changes.hosts_skipped[i].index();
            self.host_finished(h, changes);
        }
        // A host that became ready earlier in this call is skipped now, not ready.
        changes
            .hosts_ready
            .retain(|h| self.states[h.index()] == HostState::Pending);
    }

    /// Ends the run when nothing runs and nothing may start, saying why when hosts remain.
    fn check_end(&mut self, changes: &mut Changes) {
        // Hosts held by a driver's outer limits are not given up on here: the driver ends
        // the run ([`Scheduler::block`]) when they can never start.
        if self.ended
            || self.tally.running > 0
            || !self.candidates.is_empty()
            || self.held_count > 0
            || (self.stop.is_none() && self.gates_due > 0)
        {
            return;
        }
        if self.stop.is_none() && self.tally.pending > 0 {
            let blockers = self.blockers();
            debug_assert!(!blockers.is_empty());
            self.blocked = Some(blockers);
            self.skip_pending(changes);
        }
        self.ended = true;
        changes.ended = true;
    }

    /// Why the pending hosts cannot start, when nothing runs and no candidate is left. A
    /// ready host is parked on a full group. Any other waits for an incomplete slot; going
    /// back from it through the slots and hosts it waits for ends at a slot whose predecessors
    /// are complete and which holds a ready host (the plan has no cycle): the slot that can
    /// never complete. Only those are named, each with every host it holds back directly or
    /// through the slots after it, so a stuck thread of 500 slots is one reason, not 500.
    ///
    /// O(hosts + groups' members) for the groups, and a walk of what follows each named slot.
    fn blockers(&self) -> Vec<Blocker> {
        let pending_ready =
            |h: u32| self.states[h as usize] == HostState::Pending && self.waiting[h as usize] == 0;
        let mut by_group: Vec<Vec<HostIdx>> = vec![Vec::new(); self.groups.len()];
        for h in 0..self.states.len() as u32 {
            if pending_ready(h) {
                for &g in self.host_groups.get(h as usize) {
                    if self.groups[g as usize].is_full() {
                        by_group[g as usize].push(HostIdx(h));
                    }
                }
            }
        }
        let mut blockers = Vec::new();
        for (g, waiting) in by_group.into_iter().enumerate() {
            if waiting.is_empty() {
                continue;
            }
            let group = &self.groups[g];
            let mut down: Vec<(HostIdx, HostState)> = self
                .group_members
                .get(g)
                .iter()
                .map(|&h| (HostIdx(h), self.states[h as usize]))
                .filter(|(_, state)| state.is_down())
                .collect();
            down.sort_unstable_by_key(|&(h, _)| h);
            blockers.push(Blocker::GroupFull {
                group: group.id.clone(),
                max_parallel: group.max_parallel,
                down,
                waiting,
            });
        }

        // Marks are the number of the walk that reached a slot or host, so one allocation
        // serves every walk.
        let mut slot_mark = vec![0u32; self.slots.len()];
        let mut host_mark = vec![0u32; self.states.len()];
        let mut walk = 0;
        for root in 0..self.slots.len() {
            let holds_ready = self.slot_hosts.get(root).iter().any(|&h| pending_ready(h));
            if self.slots[root].remaining == 0 || !holds_ready {
                continue;
            }
            walk += 1;
            let mut waiting = Vec::new();
            let mut next = vec![root];
            slot_mark[root] = walk;
            while let Some(s) = next.pop() {
                for &succ in self.slot_succs.get(s) {
                    if slot_mark[succ as usize] != walk {
                        slot_mark[succ as usize] = walk;
                        next.push(succ as usize);
                    }
                }
                for &h in self.slot_waiters.get(s) {
                    let h = h as usize;
                    if self.states[h] != HostState::Pending || host_mark[h] == walk {
                        continue;
                    }
                    host_mark[h] = walk;
                    waiting.push(HostIdx::new(h));
                    for &holder in self.host_slots.get(h) {
                        if slot_mark[holder as usize] != walk {
                            slot_mark[holder as usize] = walk;
                            next.push(holder as usize);
                        }
                    }
                }
            }
            if waiting.is_empty() {
                continue;
            }
            waiting.sort_unstable();
            let unfinished = self
                .slot_hosts
                .get(root)
                .iter()
                .filter(|&&h| !self.states[h as usize].is_terminal())
                .map(|&h| HostIdx(h))
                .collect();
            blockers.push(Blocker::SlotIncomplete {
                slot: self.slots[root].id.clone(),
                unfinished,
                waiting,
            });
        }
        blockers
    }
}

fn flip(pairs: &[(u32, u32)]) -> Vec<(u32, u32)> {
    pairs.iter().map(|&(a, b)| (b, a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &str) -> Plan {
        Plan::sketch(names)
    }

    fn thread(plan: Plan, name: &str, slots: &[&str]) -> Plan {
        plan.with_thread(name, slots)
    }

    fn group(plan: Plan, id: &str, limit: u64, hosts: &str) -> Plan {
        plan.with_group(id, Amount::number(limit), hosts)
    }

    fn group_of(plan: Plan, id: &str, max_parallel: Amount, hosts: &str) -> Plan {
        plan.with_group(id, max_parallel, hosts)
    }

    fn job(plan: Plan, limit: u64) -> Plan {
        plan.with_job_limit(limit)
    }

    fn max_failures(plan: Plan, value: u64) -> Plan {
        plan.with_max_failures(value)
    }

    /// A run of a plan, addressed by host names.
    struct Run<'p> {
        plan: &'p Plan,
        run: Scheduler,
    }

    impl<'p> Run<'p> {
        fn new(plan: &'p Plan) -> Self {
            Run::with(plan, LimitOverrides::default())
        }

        fn with(plan: &'p Plan, overrides: LimitOverrides) -> Self {
            let run = Scheduler::new(plan, overrides).expect("a runnable plan");
            Run { plan, run }
        }

        fn resume(plan: &'p Plan, previous: &[(&str, HostState)], failed: FailedHosts) -> Self {
            let mut states = vec![HostState::Pending; plan.hosts.len()];
            for (name, state) in previous {
                states[plan.hosts.iter().position(|h| h == name).unwrap()] = *state;
            }
            let run = Scheduler::resume(plan, LimitOverrides::default(), &states, failed)
                .expect("a resumable run");
            Run { plan, run }
        }

        fn h(&self, name: &str) -> HostIdx {
            HostIdx::new(self.plan.hosts.iter().position(|h| h == name).unwrap())
        }

        fn names(&self, hosts: &[HostIdx]) -> Vec<&'p str> {
            hosts
                .iter()
                .map(|h| self.plan.hosts[h.index()].as_str())
                .collect()
        }

        /// Starts every host that may start now, in the order the scheduler gives them.
        fn start(&mut self) -> Vec<&'p str> {
            let mut started = Vec::new();
            while let Some(h) = self.run.next_to_start() {
                started.push(h);
            }
            self.names(&started)
        }

        fn end(&mut self, name: &str, outcome: Outcome) -> Changes {
            self.run
                .finish(self.h(name), outcome)
                .expect("a running host")
        }

        fn ok(&mut self, name: &str) -> Changes {
            self.end(name, Outcome::Succeeded)
        }

        fn fail(&mut self, name: &str) -> Changes {
            self.end(name, Outcome::Failed { exit_code: 3 })
        }

        fn state(&self, name: &str) -> HostState {
            self.run.host_state(self.h(name))
        }
    }

    #[test]
    fn a_restored_run_keeps_its_running_hosts_down_until_they_finish() {
        let plan = group(
            thread(hosts("a b c d"), "main", &["a b", "c"]),
            "pair",
            1,
            "a b d",
        );
        let mut states = vec![HostState::Pending; 4];
        states[0] = HostState::Running;
        let run = Scheduler::restore(&plan, LimitOverrides::default(), &states).unwrap();
        let mut run = Run { plan: &plan, run };
        // `a` still holds the group's one place, so `b` and `d` wait; `c` waits for the slot.
        assert_eq!(run.start(), Vec::<&str>::new());
        assert_eq!(run.state("a"), HostState::Running);
        run.ok("a");
        assert_eq!(run.start(), ["b"]);
        run.ok("b");
        assert_eq!(run.start(), ["c", "d"]);
        // `resume` leaves running hosts to the driver.
        assert!(matches!(
            Scheduler::resume(
                &plan,
                LimitOverrides::default(),
                &states,
                FailedHosts::Retry
            ),
            Err(SchedulerError::ResumeRunning { .. })
        ));
    }

    #[test]
    fn an_unstarted_host_frees_its_place_and_starts_again_first() {
        let plan = group(
            thread(hosts("a b c"), "main", &["a b", "c"]),
            "one",
            1,
            "a b",
        );
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a"]);
        let changes = run.run.unstart(run.h("a")).unwrap();
        assert_eq!(run.names(&changes.hosts_ready), ["a"]);
        assert_eq!(run.state("a"), HostState::Pending);
        assert_eq!(run.start(), ["a"]);
        run.ok("a");
        assert_eq!(run.start(), ["b"]);
        // Once the run has stopped, a host taken back is skipped, and the run can end.
        let changes = run.run.halt();
        assert_eq!(run.names(&changes.hosts_skipped), ["c"]);
        let changes = run.run.unstart(run.h("b")).unwrap();
        assert_eq!(run.names(&changes.hosts_skipped), ["b"]);
        assert!(changes.ended);
        assert_eq!(run.run.status(), RunStatus::Stopped(&StopReason::Halted));
    }

    #[test]
    fn a_slot_starts_only_once_the_slot_before_it_is_complete() {
        let plan = thread(hosts("a b c"), "main", &["a", "b c"]);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a"]);
        let changes = run.ok("a");
        assert_eq!(changes.slots_completed, [SlotIdx::new(0)]);
        assert_eq!(run.names(&changes.hosts_ready), ["b", "c"]);
        assert_eq!(run.start(), ["b", "c"]);
        run.ok("c");
        assert_eq!(run.run.status(), RunStatus::Running);
        let changes = run.ok("b");
        assert!(changes.ended);
        assert_eq!(run.run.status(), RunStatus::Complete);
        assert!(run.run.is_slot_complete(SlotIdx::new(1)));
    }

    #[test]
    fn a_failed_host_completes_its_slot_when_the_budget_allows() {
        let plan = max_failures(thread(hosts("a b"), "main", &["a", "b"]), 1);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a"]);
        run.fail("a");
        assert_eq!(run.start(), ["b"]);
    }

    #[test]
    fn a_host_in_two_threads_waits_for_the_slot_before_it_in_each() {
        let plan = thread(
            thread(hosts("a b x"), "one", &["a", "x"]),
            "two",
            &["b", "x"],
        );
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "b"]);
        run.ok("a");
        assert!(!run.run.is_ready(run.h("x")));
        assert!(run.start().is_empty());
        let changes = run.ok("b");
        assert_eq!(run.names(&changes.hosts_ready), ["x"]);
        assert_eq!(run.start(), ["x"]);
        run.ok("x");
        assert_eq!(run.run.status(), RunStatus::Complete);
    }

    #[test]
    fn an_empty_slot_is_complete_at_once_and_the_order_around_it_holds() {
        let plan = thread(hosts("a c"), "main", &["a", "", "c"]);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a"]);
        let changes = run.ok("a");
        assert_eq!(changes.slots_completed, [SlotIdx::new(0), SlotIdx::new(1)]);
        assert_eq!(run.start(), ["c"]);

        let plan = thread(hosts("b"), "main", &["", "b"]);
        let mut run = Run::new(&plan);
        assert!(run.run.is_slot_complete(SlotIdx::new(0)));
        assert_eq!(run.start(), ["b"]);
    }

    #[test]
    fn unordered_hosts_are_ready_at_once() {
        let plan = thread(hosts("a b u v"), "main", &["a", "b"]);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "u", "v"]);
    }

    #[test]
    fn a_gate_holds_the_steps_after_its_step_and_no_other_thread() {
        let plan = hosts("a b c x y")
            .with_thread("t", &["a", "b c"])
            .with_thread("u", &["x", "y"])
            .with_gate("t.0", "check");
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "x"]);
        let changes = run.ok("a");
        // a's step is done, but its completion waits for the gate: b and c do not start.
        assert_eq!(changes.gates_due, [SlotIdx::new(0)]);
        assert!(changes.slots_completed.is_empty());
        assert_eq!(run.run.gates_due(), [SlotIdx::new(0)]);
        assert_eq!(
            run.run.why(run.h("b")),
            Some(OwnWait::Gate { slot: "t.0".into() })
        );
        // The other thread goes on meanwhile.
        run.ok("x");
        assert_eq!(run.start(), ["y"]);
        run.ok("y");
        assert_eq!(
            run.run.status(),
            RunStatus::Running,
            "the gate is still to decide"
        );
        assert!(
            run.run.pass_gate(SlotIdx::new(1)).is_err(),
            "t.1 has no gate due"
        );
        let changes = run.run.pass_gate(SlotIdx::new(0)).unwrap();
        assert_eq!(changes.slots_completed, [SlotIdx::new(0)]);
        assert_eq!(run.start(), ["b", "c"]);
        run.ok("b");
        let changes = run.ok("c");
        assert!(changes.ended);
        assert_eq!(run.run.status(), RunStatus::Complete);
    }

    #[test]
    fn a_failed_gate_stops_the_run_and_a_resume_runs_it_again() {
        let plan = hosts("a b")
            .with_thread("t", &["a", "b"])
            .with_approval("t.0", Some(60));
        let mut run = Run::new(&plan);
        run.start();
        run.ok("a");
        let reason = StopReason::ApprovalExpired { step: "t.0".into() };
        let changes = run.run.fail_gate(SlotIdx::new(0), reason.clone()).unwrap();
        assert_eq!(changes.stopped, Some(reason.clone()));
        assert_eq!(run.names(&changes.hosts_skipped), ["b"]);
        assert!(changes.ended);
        assert_eq!(run.run.status(), RunStatus::Stopped(&reason));
        // A new session: a's step is complete again, and its gate due again.
        let mut run = Run::resume(
            &plan,
            &[("a", HostState::Succeeded)],
            FailedHosts::StayFailed,
        );
        assert_eq!(run.run.gates_due(), [SlotIdx::new(0)]);
        assert!(run.start().is_empty());
        run.run.pass_gate(SlotIdx::new(0)).unwrap();
        assert_eq!(run.start(), ["b"]);
    }

    #[test]
    fn a_gate_on_the_last_step_decides_before_the_run_ends() {
        let plan = hosts("a")
            .with_thread("t", &["a"])
            .with_gate("t.0", "check");
        let mut run = Run::new(&plan);
        run.start();
        let changes = run.ok("a");
        assert!(!changes.ended);
        let changes = run
            .run
            .fail_gate(
                SlotIdx::new(0),
                StopReason::GateFailed {
                    step: "t.0".into(),
                    how: "exit code 1".into(),
                },
            )
            .unwrap();
        assert!(changes.ended);
        assert!(matches!(
            run.run.status(),
            RunStatus::Stopped(StopReason::GateFailed { .. })
        ));
    }

    #[test]
    fn a_halt_while_a_gate_is_due_ends_the_run() {
        let plan = hosts("a b")
            .with_thread("t", &["a", "b"])
            .with_gate("t.0", "check");
        let mut run = Run::new(&plan);
        run.start();
        run.ok("a");
        let changes = run.run.stop(StopReason::Halted);
        assert!(changes.ended);
        assert_eq!(run.names(&changes.hosts_skipped), ["b"]);
    }

    #[test]
    fn plan_order_decides_among_hosts_that_may_start() {
        let plan = job(hosts("c b a"), 1);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["c"]);
        run.ok("c");
        assert_eq!(run.start(), ["b"]);
        run.ok("b");
        assert_eq!(run.start(), ["a"]);
    }

    #[test]
    fn a_group_never_has_more_than_max_parallel_hosts_down() {
        let plan = group(hosts("a b c d"), "$g", 2, "a b c");
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "b", "d"]);
        run.ok("d");
        assert!(run.start().is_empty());
        run.ok("b");
        assert_eq!(run.start(), ["c"]);
    }

    #[test]
    fn a_host_needs_room_in_every_group_it_is_in() {
        let plan = group(group(hosts("a b c"), "$x", 1, "a b"), "$y", 1, "b c");
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "c"]);
        run.ok("a");
        assert!(run.start().is_empty(), "b still waits for room in $y");
        run.ok("c");
        assert_eq!(run.start(), ["b"]);
    }

    #[test]
    fn the_job_limit_is_a_group_and_concurrent_only_lowers_it() {
        let plan = job(hosts("a b c d e"), 3);
        assert_eq!(Run::new(&plan).start(), ["a", "b", "c"]);
        let lower = LimitOverrides {
            concurrent: Some(2),
            ..LimitOverrides::default()
        };
        assert_eq!(Run::with(&plan, lower).start(), ["a", "b"]);
        let higher = LimitOverrides {
            concurrent: Some(4),
            ..LimitOverrides::default()
        };
        assert_eq!(
            Scheduler::new(&plan, higher).unwrap_err(),
            SchedulerError::RaisesConcurrent {
                given: 4,
                plan: Amount::number(3)
            }
        );
        let zero = LimitOverrides {
            concurrent: Some(0),
            ..LimitOverrides::default()
        };
        assert_eq!(
            Scheduler::new(&plan, zero).unwrap_err(),
            SchedulerError::ZeroConcurrent
        );

        // An unconstrained plan has no job group: any cap lowers it.
        let plan = hosts("a b c");
        let one = LimitOverrides {
            concurrent: Some(1),
            ..LimitOverrides::default()
        };
        let mut run = Run::with(&plan, one);
        assert_eq!(run.start(), ["a"]);
        run.ok("a");
        assert_eq!(run.start(), ["b"]);
    }

    #[test]
    fn percentages_apply_as_resolved_in_the_plan() {
        let half = Amount {
            value: 2,
            percent: Some(50),
            base: Some(4),
        };
        let plan = group_of(hosts("a b c d"), "$g", half, "a b c d");
        let mut plan = plan;
        plan.options.max_failures = Amount {
            value: 1,
            percent: Some(25),
            base: Some(4),
        };
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "b"]);
        run.fail("a");
        assert_eq!(
            run.run.status(),
            RunStatus::Running,
            "1 failure is within 25%"
        );
        run.fail("b");
        assert_eq!(
            run.run.status(),
            RunStatus::Stopped(&StopReason::FailureBudget {
                failures: 2,
                max_failures: 1
            })
        );
    }

    #[test]
    fn a_failed_host_stays_down_until_the_run_ends() {
        let plan = max_failures(group(hosts("a b c d"), "$g", 2, "a b c d"), 10);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "b"]);
        run.fail("a");
        assert!(run.start().is_empty(), "a failed: it still counts as down");
        run.ok("b");
        assert_eq!(run.start(), ["c"]);
        run.end("c", Outcome::TimedOut);
        assert!(matches!(run.run.status(), RunStatus::Blocked(_)));
        assert_eq!(run.state("d"), HostState::Skipped);
    }

    #[test]
    fn a_group_full_of_failed_hosts_blocks_the_run_and_says_so() {
        let plan = max_failures(group(hosts("a b c"), "$colo.east", 1, "a b"), 5);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "c"]);
        run.fail("a");
        assert_eq!(run.run.status(), RunStatus::Running);
        let changes = run.ok("c");
        assert!(changes.ended);
        assert_eq!(run.names(&changes.hosts_skipped), ["b"]);
        let RunStatus::Blocked(blockers) = run.run.status() else {
            panic!("expected blocked, got {:?}", run.run.status());
        };
        assert_eq!(
            blockers,
            [Blocker::GroupFull {
                group: "$colo.east".into(),
                max_parallel: Amount::number(1),
                down: vec![(run.h("a"), HostState::Failed { exit_code: 3 })],
                waiting: vec![run.h("b")],
            }]
        );
        assert_eq!(
            blockers[0].describe(&plan.hosts),
            "group `$colo.east` (max_parallel 1) is full of hosts that stay down until the run \
             ends: a (failed (exit 3)); so b cannot start"
        );
        assert_eq!(run.run.next_to_start(), None);
    }

    #[test]
    fn hosts_behind_a_slot_that_can_never_complete_are_named_with_the_slot() {
        let plan = thread(hosts("x a b c"), "main", &["a", "b", "", "c"]);
        let plan = max_failures(group(plan, "$g", 1, "x a"), 5);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["x"]);
        let changes = run.fail("x");
        assert_eq!(run.names(&changes.hosts_skipped), ["a", "b", "c"]);
        let RunStatus::Blocked(blockers) = run.run.status() else {
            panic!("expected blocked, got {:?}", run.run.status());
        };
        assert_eq!(
            blockers,
            [
                Blocker::GroupFull {
                    group: "$g".into(),
                    max_parallel: Amount::number(1),
                    down: vec![(run.h("x"), HostState::Failed { exit_code: 3 })],
                    waiting: vec![run.h("a")],
                },
                Blocker::SlotIncomplete {
                    slot: "main.0".into(),
                    unfinished: vec![run.h("a")],
                    waiting: vec![run.h("b"), run.h("c")],
                }
            ]
        );
        assert_eq!(
            blockers[1].describe(&plan.hosts),
            "slot `main.0` can never complete (a cannot start); so 2 hosts waiting for it, \
             directly or through the slots after it, cannot start: b, c"
        );
    }

    #[test]
    fn max_failures_0_stops_the_run_at_the_first_failure() {
        let plan = job(hosts("a b c d"), 2);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "b"]);
        let changes = run.fail("a");
        let reason = StopReason::FailureBudget {
            failures: 1,
            max_failures: 0,
        };
        assert_eq!(changes.stopped, Some(reason.clone()));
        assert_eq!(run.names(&changes.hosts_skipped), ["c", "d"]);
        assert!(!changes.ended, "b is still running");
        assert_eq!(run.run.status(), RunStatus::Stopping(&reason));
        assert_eq!(run.run.next_to_start(), None);
        let changes = run.ok("b");
        assert!(changes.ended);
        assert_eq!(run.run.status(), RunStatus::Stopped(&reason));
        assert_eq!(
            run.run.host_states(),
            [
                HostState::Failed { exit_code: 3 },
                HostState::Succeeded,
                HostState::Skipped,
                HostState::Skipped
            ]
        );
    }

    #[test]
    fn timeouts_and_unreachable_hosts_are_failures_too() {
        // The job group counts failed hosts as down like any other group: with a limit of 2,
        // the unreachable host leaves one place.
        let plan = max_failures(job(hosts("a b c"), 2), 1);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "b"]);
        run.end("a", Outcome::Unreachable);
        assert!(run.start().is_empty());
        let changes = run.end("b", Outcome::TimedOut);
        assert_eq!(
            changes.stopped,
            Some(StopReason::FailureBudget {
                failures: 2,
                max_failures: 1
            })
        );
        let tally = run.run.tally();
        assert_eq!(
            (tally.unreachable, tally.timed_out, tally.skipped),
            (1, 1, 1)
        );
        assert_eq!(tally.failures(), 2);
    }

    #[test]
    fn a_run_whose_last_host_fails_is_complete_not_stopped() {
        let plan = hosts("a");
        let mut run = Run::new(&plan);
        run.start();
        let changes = run.fail("a");
        assert_eq!(changes.stopped, None);
        assert_eq!(run.run.status(), RunStatus::Complete);
        assert_eq!(run.run.tally().failed, 1);
    }

    #[test]
    fn max_failures_can_be_lowered_not_raised() {
        let plan = max_failures(thread(hosts("a b"), "main", &["a", "b"]), 5);
        let zero = LimitOverrides {
            max_failures: Some(0),
            ..LimitOverrides::default()
        };
        let mut run = Run::with(&plan, zero);
        assert_eq!(run.run.max_failures(), 0);
        run.start();
        assert!(run.fail("a").stopped.is_some());
        let six = LimitOverrides {
            max_failures: Some(6),
            ..LimitOverrides::default()
        };
        assert!(matches!(
            Scheduler::new(&plan, six),
            Err(SchedulerError::RaisesMaxFailures { given: 6, .. })
        ));
    }

    #[test]
    fn halt_skips_what_has_not_started_and_lets_running_hosts_finish() {
        let plan = job(hosts("a b c"), 1);
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a"]);
        let changes = run.run.halt();
        assert_eq!(changes.stopped, Some(StopReason::Halted));
        assert_eq!(run.names(&changes.hosts_skipped), ["b", "c"]);
        assert_eq!(run.run.status(), RunStatus::Stopping(&StopReason::Halted));
        assert_eq!(
            run.run.halt(),
            Changes::default(),
            "a second halt changes nothing"
        );
        assert!(run.start().is_empty());
        assert!(run.ok("a").ended);
        assert_eq!(run.run.status(), RunStatus::Stopped(&StopReason::Halted));
    }

    #[test]
    fn a_cancelled_host_stays_down_but_is_not_a_failure() {
        let plan = group(hosts("a b c"), "$g", 1, "a b");
        let mut run = Run::new(&plan);
        assert_eq!(run.start(), ["a", "c"]);
        let changes = run.run.cancel(run.h("a")).unwrap();
        assert_eq!(changes.stopped, None, "max_failures 0, yet no stop");
        assert_eq!(run.state("a"), HostState::Cancelled);
        assert!(run.start().is_empty());
        run.ok("c");
        let RunStatus::Blocked(blockers) = run.run.status() else {
            panic!("expected blocked, got {:?}", run.run.status());
        };
        assert!(matches!(
            &blockers[0],
            Blocker::GroupFull { down, .. } if down == &[(run.h("a"), HostState::Cancelled)]
        ));
    }

    #[test]
    fn only_a_running_host_can_finish() {
        let plan = hosts("a b");
        let mut run = Run::new(&plan);
        let a = run.h("a");
        assert_eq!(
            run.run.finish(a, Outcome::Succeeded),
            Err(SchedulerError::NotRunning {
                host: a,
                state: HostState::Pending
            })
        );
        run.start();
        run.ok("a");
        assert_eq!(
            run.run.cancel(a),
            Err(SchedulerError::NotRunning {
                host: a,
                state: HostState::Succeeded
            })
        );
        assert!(run.run.finish(HostIdx::new(9), Outcome::Succeeded).is_err());
    }

    #[test]
    fn resume_never_runs_a_succeeded_host_again() {
        let plan = thread(hosts("a b c d"), "main", &["a b", "c d"]);
        let mut run = Run::resume(
            &plan,
            &[
                ("a", HostState::Succeeded),
                ("b", HostState::Succeeded),
                ("c", HostState::Skipped),
                ("d", HostState::Cancelled),
            ],
            FailedHosts::StayFailed,
        );
        assert_eq!(run.start(), ["c", "d"]);
        run.ok("c");
        run.ok("d");
        assert_eq!(run.run.status(), RunStatus::Complete);
        assert_eq!(run.run.tally().succeeded, 4);
    }

    #[test]
    fn resume_keeps_failed_hosts_failed_and_down_unless_asked_to_retry_them() {
        let plan = thread(hosts("a b c d"), "main", &["a b", "c d"]);
        let plan = max_failures(group(plan, "$g", 2, "b c d"), 5);
        let previous = [
            ("a", HostState::Succeeded),
            ("b", HostState::Failed { exit_code: 1 }),
            ("c", HostState::Skipped),
        ];
        let mut run = Run::resume(&plan, &previous, FailedHosts::StayFailed);
        assert_eq!(run.state("b"), HostState::Failed { exit_code: 1 });
        assert_eq!(run.start(), ["c"], "b holds one of $g's two places");
        assert_eq!(run.run.tally().failures(), 1);

        let mut run = Run::resume(&plan, &previous, FailedHosts::Retry);
        assert_eq!(run.start(), ["b"], "c and d wait for b's slot again");
        run.ok("b");
        assert_eq!(run.start(), ["c", "d"]);
    }

    #[test]
    fn resume_counts_the_previous_failures_against_the_budget() {
        let plan = thread(hosts("a b c"), "main", &["a", "b c"]);
        let previous = [("a", HostState::Unreachable)];
        let run = Run::resume(&plan, &previous, FailedHosts::StayFailed);
        assert_eq!(
            run.run.status(),
            RunStatus::Stopped(&StopReason::FailureBudget {
                failures: 1,
                max_failures: 0
            })
        );
        assert_eq!(run.state("b"), HostState::Skipped);
        let mut run = Run::resume(&plan, &previous, FailedHosts::Retry);
        assert_eq!(run.start(), ["a"]);
    }

    #[test]
    fn resume_refuses_a_host_left_running_and_a_state_list_of_another_plan() {
        let plan = hosts("a b");
        let running = [HostState::Succeeded, HostState::Running];
        assert_eq!(
            Scheduler::resume(
                &plan,
                LimitOverrides::default(),
                &running,
                FailedHosts::Retry
            )
            .unwrap_err(),
            SchedulerError::ResumeRunning {
                host: HostIdx::new(1)
            }
        );
        assert_eq!(
            Scheduler::resume(
                &plan,
                LimitOverrides::default(),
                &[HostState::Pending],
                FailedHosts::Retry
            )
            .unwrap_err(),
            SchedulerError::ResumeMismatch {
                found: 1,
                expected: 2
            }
        );
    }

    #[test]
    fn a_cycle_through_an_empty_slot_is_refused() {
        // one: h1 before h2 (through an empty step); two: h2 before h1.
        let plan = thread(hosts("h1 h2"), "one", &["h1", "", "h2"]);
        let plan = thread(plan, "two", &["h2", "h1"]);
        assert!(plan.validate().is_err());
        assert!(matches!(
            Scheduler::new(&plan, LimitOverrides::default()),
            Err(SchedulerError::InvalidPlan(_))
        ));
    }

    #[test]
    fn an_invalid_plan_is_refused() {
        let mut plan = hosts("a");
        plan.unordered.clear();
        assert!(matches!(
            Scheduler::new(&plan, LimitOverrides::default()),
            Err(SchedulerError::InvalidPlan(_))
        ));
    }

    #[test]
    fn a_plan_without_hosts_is_complete_at_once() {
        let run = Scheduler::new(&hosts(""), LimitOverrides::default()).unwrap();
        assert_eq!(run.status(), RunStatus::Complete);
    }

    #[test]
    fn long_lists_of_hosts_are_summed_up() {
        let names: Vec<String> = (0..13).map(|i| format!("h{i}")).collect();
        let blocker = Blocker::SlotIncomplete {
            slot: "main.0".into(),
            unfinished: vec![HostIdx::new(0)],
            waiting: (1..13).map(HostIdx::new).collect(),
        };
        assert_eq!(
            blocker.describe(&names),
            "slot `main.0` can never complete (h0 cannot start); so 12 hosts waiting for it, \
             directly or through the slots after it, cannot start: h1, h2, h3, h4, h5, h6, h7, \
             h8, h9, h10 and 2 more"
        );
    }
}
