//! The fleet scheduler: the dispatcher's pure decision core across jobs (spec `semantics.md`
//! §8).
//!
//! A [`FleetScheduler`] owns the [`Scheduler`] of every job on a dispatcher and the limits
//! they share: the **budgets** of each fleet (the constraint groups of the fleet's config,
//! computed over all its hosts) and the rule that a host runs in one job at a time. Like the
//! single-job scheduler it has no runtime, no clock and no I/O; the dispatcher's core drives
//! it, and property tests drive it with no runtime at all.
//!
//! # The rules
//!
//! - A host of a job starts when its own job would start it (its plan's order and groups, as
//!   [`Scheduler`] decides), it runs in no other job, and every budget it is in has room.
//!   The budgets a job is held by are those of its fleets' **current** revisions and of the
//!   revisions it **started under**: a new fleet config never loosens a running job's limits,
//!   and the stricter of old and new applies to the hosts it has yet to start. The budgets of
//!   a host are found from the fleets' configs, never from the plan.
//! - **Down** in a budget is the distinct hosts of the group running in any job, plus those
//!   that ended other than by succeeding (failed, timed out, unreachable, lost, cancelled) in a
//!   job that is not closed, until the host later succeeds in some job. A host that is down
//!   already takes no new place when it starts (a retry of a failed host is never held by its
//!   own failure). Halting or stopping a job frees nothing; closing it
//!   ([`FleetScheduler::close`]) does.
//! - A host's places in all its groups are taken in one decision: [`FleetScheduler::next_to_start`]
//!   returns a host only when every group has room, and then it counts in all of them.
//! - **Fair share**: jobs that have a host that may start take turns, in the order they were
//!   added (submission order): a large job never starves a small one.
//! - **Blocked**: a job ends blocked when nothing of it runs, nothing of it may start, and each
//!   host it holds back can never start: its budget is full of hosts that are down without
//!   running, which only an operator can change (a retry, a close). A job that waits only for
//!   other jobs' running hosts waits. So when nothing runs anywhere, every job with hosts left
//!   ends, blocked, naming the hosts and jobs that hold it.
//!
//! # How it decides, and what it costs
//!
//! A job's candidate (the host its scheduler would start next) that an outer limit holds back
//! is taken out of its candidates ([`Scheduler::hold`]) and parked: on the full budget that
//! holds it, or on the host it waits for. When a budget gains room, the jobs with hosts parked
//! on it are marked as having something to start; when its turn comes, a job takes back the
//! first host it has parked on each budget with room, so the room goes to the job whose turn
//! it is, in plan order within the job. A host that starts or ends gives back the hosts of
//! other jobs waiting for it. So a decision costs O(log n) per budget and group of the host,
//! plus O(log jobs) to find the next job in turn; nothing scans the hosts per event, and only
//! the jobs that wait on holds alone are looked at again after an event (to end those that can
//! no longer start anything).
//!
//! A host that is down already (failed in another job, not closed) may start in a job whose
//! turn it is: it takes no new place, as its place is counted already. That is what lets a
//! retry run, and what lets a second change reach a host the first one broke.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use pogo_model::Plan;

use crate::scheduler::{
    Blocker, Changes, DownHost, FailedHosts, HostIdx, HostState, LimitOverrides, Outcome, OwnWait,
    RunStatus, Scheduler, SchedulerError, SlotIdx, StopReason,
};

/// A constraint group of a fleet's config, as the planner computed it over all the fleet's
/// hosts: one budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpec {
    /// The group's id in the config (`$colo.east`).
    pub id: String,
    pub max_parallel: u64,
    pub hosts: Vec<String>,
}

/// One revision of a fleet's config: the hosts it lists and its budgets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetRevision {
    pub hosts: Vec<String>,
    pub budgets: Vec<BudgetSpec>,
}

/// How a job comes into the fleet scheduler.
#[derive(Debug, Clone)]
pub enum JobStart {
    /// A new job: every host pending.
    Fresh,
    /// A new session of a job, from its hosts' states when the last one ended
    /// ([`Scheduler::resume`]).
    Resume {
        previous: Vec<HostState>,
        failed: FailedHosts,
    },
    /// A job that goes on where it was, after a restart of the dispatcher
    /// ([`Scheduler::restore`]): its running hosts still run.
    Restore { states: Vec<HostState> },
    /// A job that has ended and is not closed: only its hosts that are down count, in the
    /// budgets.
    Ended { states: Vec<HostState> },
}

/// Why a host of a job has not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// It is not pending: it runs or has ended.
    NotPending(HostState),
    /// Its own run holds it: a slot before it, or a group of its plan (the job-wide limit is
    /// the group `job`).
    Own(OwnWait),
    /// A budget of its fleet is full: its down hosts, with the job each is down in.
    Budget {
        fleet: String,
        revision: u32,
        group: String,
        max_parallel: u64,
        down: Vec<DownHost>,
    },
    /// It runs in another job.
    Busy { job: String },
    /// Its job is paused ([`FleetScheduler::pause`]).
    Paused,
    /// Its job stops: it starts no more hosts.
    Stopping,
    /// Nothing holds it: it starts when a worker is free (taking turns with other jobs).
    Starting,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("host `{host}` is in fleet `{fleet}` already, and a host is in at most one fleet")]
    HostInTwoFleets { host: String, fleet: String },
    #[error(
        "fleet `{fleet}`: budget `{group}` names host `{host}`, which the fleet does not list"
    )]
    UnlistedHost {
        fleet: String,
        group: String,
        host: String,
    },
    #[error("no job `{0}`")]
    UnknownJob(String),
    #[error("job `{0}` exists already")]
    DuplicateJob(String),
    #[error("fleet `{fleet}` has no revision {revision}")]
    UnknownRevision { fleet: String, revision: u32 },
    #[error("job `{0}` has hosts running; it can be closed once they have finished")]
    CloseRunning(String),
    #[error("job `{0}` is closed")]
    Closed(String),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

/// What holds a parked host back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// A full budget.
    Budget(u32),
    /// The host runs in another job.
    Busy,
}

#[derive(Debug, Default)]
struct HostRt {
    /// The job it runs in.
    running_in: Option<u32>,
    /// Jobs, not closed, it ended in other than by succeeding (since it last succeeded).
    down_in: Vec<(u32, HostState)>,
    /// The live budgets it is a member of.
    budgets: Vec<u32>,
    /// Jobs holding this host back (for any reason): each looks again when it starts or ends.
    held_in: Vec<u32>,
}

impl HostRt {
    fn is_down(&self) -> bool {
        self.running_in.is_some() || !self.down_in.is_empty()
    }
}

#[derive(Debug)]
struct Budget {
    fleet: u32,
    revision: u32,
    id: String,
    max_parallel: u64,
    members: Vec<u32>,
    /// Members down, and of them members running.
    down: u64,
    running: u64,
    /// Held hosts that found it full, per job, smallest index first.
    parked: BTreeMap<u32, BinaryHeap<Reverse<u32>>>,
}

impl Budget {
    fn is_full(&self) -> bool {
        self.down >= self.max_parallel
    }

    /// Full of hosts that are down without running: only an operator can change that.
    fn is_stuck(&self) -> bool {
        self.down - self.running >= self.max_parallel
    }
}

/// A live budget's use: its hosts down (running or failed) against its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUse {
    pub fleet: String,
    pub revision: u32,
    pub group: String,
    pub down: u64,
    pub max_parallel: u64,
}

#[derive(Debug)]
struct FleetRt {
    name: String,
    revisions: Vec<FleetRevision>,
    /// Per revision: its budgets, while it is live (current, or a job started under it).
    live: Vec<Option<Vec<u32>>>,
}

#[derive(Debug)]
struct JobRt {
    id: String,
    sched: Option<Scheduler>,
    /// Per host of the plan: the fleet-wide host.
    global: Vec<u32>,
    /// Fleet -> the revision the job started under.
    under: BTreeMap<u32, u32>,
    /// Held hosts, and what holds each.
    holds: HashMap<u32, Hold>,
    /// Budgets it has hosts parked on (some may have been given back since).
    parked_on: BTreeSet<u32>,
    /// Per budget: the host last given back from it, while it may still be a candidate.
    given: BTreeMap<u32, u32>,
    closed: bool,
    /// Starts nothing for now (the dispatcher waits for something only an operator can
    /// give, such as a password); its running hosts go on.
    paused: bool,
}

/// Every job on a dispatcher and the limits they share; see the module documentation.
#[derive(Debug)]
pub struct FleetScheduler {
    names: Vec<String>,
    index: HashMap<String, u32>,
    hosts: Vec<HostRt>,
    /// Host -> the fleet whose current revision lists it.
    fleet_of: HashMap<u32, u32>,
    fleets: Vec<FleetRt>,
    fleet_index: HashMap<String, u32>,
    budgets: Vec<Option<Budget>>,
    jobs: Vec<JobRt>,
    job_index: HashMap<String, u32>,
    /// Jobs whose scheduler has a candidate.
    ready: BTreeSet<u32>,
    /// The job served last.
    turn: u32,
    /// Jobs with nothing running and nothing to start, but hosts held back.
    waiting: BTreeSet<u32>,
    /// Budgets that may have gained room for their parked hosts.
    to_offer: Vec<u32>,
    /// Jobs that ended because of another job's doing, not yet taken.
    ended: Vec<(String, Changes)>,
}

impl Default for FleetScheduler {
    fn default() -> FleetScheduler {
        FleetScheduler::new()
    }
}

impl FleetScheduler {
    pub fn new() -> FleetScheduler {
        FleetScheduler {
            names: Vec::new(),
            index: HashMap::new(),
            hosts: Vec::new(),
            fleet_of: HashMap::new(),
            fleets: Vec::new(),
            fleet_index: HashMap::new(),
            budgets: Vec::new(),
            jobs: Vec::new(),
            job_index: HashMap::new(),
            ready: BTreeSet::new(),
            turn: u32::MAX,
            waiting: BTreeSet::new(),
            to_offer: Vec::new(),
            ended: Vec::new(),
        }
    }

    fn host(&mut self, name: &str) -> u32 {
        if let Some(&g) = self.index.get(name) {
            return g;
        }
        let g = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), g);
        self.hosts.push(HostRt::default());
        g
    }

    // ---- fleets ----------------------------------------------------------------------------

    /// How full each live budget is (for metrics), in the order they were made.
    pub fn budget_use(&self) -> Vec<BudgetUse> {
        self.budgets
            .iter()
            .flatten()
            .map(|b| BudgetUse {
                fleet: self.fleets[b.fleet as usize].name.clone(),
                revision: b.revision,
                group: b.id.clone(),
                down: b.down,
                max_parallel: b.max_parallel,
            })
            .collect()
    }

    /// Whether any fleet is registered.
    pub fn has_fleets(&self) -> bool {
        !self.fleets.is_empty()
    }

    /// The fleet whose current config lists `host`.
    pub fn fleet_of(&self, host: &str) -> Option<&str> {
        let g = self.index.get(host)?;
        let f = self.fleet_of.get(g)?;
        Some(&self.fleets[*f as usize].name)
    }

    /// The number of the fleet's current revision (1 for its first).
    pub fn current_revision(&self, fleet: &str) -> Option<u32> {
        let f = self.fleet_index.get(fleet)?;
        Some(self.fleets[*f as usize].revisions.len() as u32)
    }

    /// Checks that `revision` may become the fleet's current one: no host in another fleet,
    /// every budget's hosts listed.
    pub fn check_push(&self, fleet: &str, revision: &FleetRevision) -> Result<(), FleetError> {
        let listed: BTreeSet<&str> = revision.hosts.iter().map(String::as_str).collect();
        for host in &revision.hosts {
            if let Some(other) = self.fleet_of(host) {
                if other != fleet {
                    return Err(FleetError::HostInTwoFleets {
                        host: host.clone(),
                        fleet: other.to_string(),
                    });
                }
            }
        }
        for budget in &revision.budgets {
            if let Some(host) = budget.hosts.iter().find(|h| !listed.contains(h.as_str())) {
                return Err(FleetError::UnlistedHost {
                    fleet: fleet.to_string(),
                    group: budget.id.clone(),
                    host: host.clone(),
                });
            }
        }
        Ok(())
    }

    /// Makes `revision` the fleet's current config (creating the fleet on its first push);
    /// returns its number. Running jobs keep the revisions they started under as well.
    pub fn push(&mut self, fleet: &str, revision: FleetRevision) -> Result<u32, FleetError> {
        self.check_push(fleet, &revision)?;
        let f = match self.fleet_index.get(fleet) {
            Some(&f) => f,
            None => {
                let f = self.fleets.len() as u32;
                self.fleets.push(FleetRt {
                    name: fleet.to_string(),
                    revisions: Vec::new(),
                    live: Vec::new(),
                });
                self.fleet_index.insert(fleet.to_string(), f);
                f
            }
        };
        let before = self.fleets[f as usize].revisions.len();
        if before > 0 {
            for host in &self.fleets[f as usize].revisions[before - 1].hosts {
                let g = self.index[host.as_str()];
                self.fleet_of.remove(&g);
            }
        }
        for host in &revision.hosts {
            let g = self.host(host);
            self.fleet_of.insert(g, f);
        }
        self.fleets[f as usize].revisions.push(revision);
        self.fleets[f as usize].live.push(None);
        let number = self.fleets[f as usize].revisions.len() as u32;
        self.make_live(f, number);
        if before > 0 {
            // The budgets of the revision that was current hold only the jobs that started
            // under it now: every host parked on them looks again.
            let previous = self.fleets[f as usize].live[before - 1].clone();
            for b in previous.into_iter().flatten() {
                // (Giving back may end a job, and retire the revision on the way.)
                let Some(budget) = self.budgets[b as usize].as_mut() else {
                    continue;
                };
                let parked = std::mem::take(&mut budget.parked);
                for (j, heap) in parked {
                    for Reverse(h) in heap {
                        self.give_back(j, h, Hold::Budget(b));
                    }
                }
            }
            self.retire(f, before as u32);
        }
        // A stricter budget holds from now on; a looser one may give room.
        self.settle();
        Ok(number)
    }

    /// Builds the budgets of a revision, counting the hosts down now.
    fn make_live(&mut self, f: u32, revision: u32) {
        let fleet = &self.fleets[f as usize];
        if fleet.live[revision as usize - 1].is_some() {
            return;
        }
        let specs = fleet.revisions[revision as usize - 1].budgets.clone();
        let mut ids = Vec::with_capacity(specs.len());
        for spec in specs {
            let b = self.budgets.len() as u32;
            let mut members: Vec<u32> = spec.hosts.iter().map(|h| self.host(h)).collect();
            members.sort_unstable();
            members.dedup();
            let mut budget = Budget {
                fleet: f,
                revision,
                id: spec.id,
                max_parallel: spec.max_parallel,
                members,
                down: 0,
                running: 0,
                parked: BTreeMap::new(),
            };
            for &m in &budget.members {
                let host = &mut self.hosts[m as usize];
                host.budgets.push(b);
                budget.down += u64::from(host.is_down());
                budget.running += u64::from(host.running_in.is_some());
            }
            self.budgets.push(Some(budget));
            ids.push(b);
        }
        self.fleets[f as usize].live[revision as usize - 1] = Some(ids);
    }

    /// Drops a revision's budgets when it is neither current nor a live job's; the hosts
    /// parked on them look again.
    fn retire(&mut self, f: u32, revision: u32) {
        let fleet = &self.fleets[f as usize];
        if revision as usize == fleet.revisions.len() {
            return;
        }
        let in_use = self.jobs.iter().any(|job| {
            !job.closed
                && job.sched.as_ref().is_some_and(|s| !s.status().is_ended())
                && job.under.get(&f) == Some(&revision)
        });
        if in_use {
            return;
        }
        let Some(ids) = self.fleets[f as usize].live[revision as usize - 1].take() else {
            return;
        };
        for b in ids {
            let budget = self.budgets[b as usize].take().expect("a live budget");
            for m in budget.members {
                self.hosts[m as usize].budgets.retain(|&x| x != b);
            }
            for (j, heap) in budget.parked {
                for Reverse(h) in heap {
                    self.give_back(j, h, Hold::Budget(b));
                }
            }
        }
    }

    // ---- jobs -------------------------------------------------------------------------------

    /// Adds a job (in submission order: jobs take turns in the order they were added).
    /// `under`: the revision of each fleet it started under, for a job that goes on after a
    /// restart ([`JobStart::Restore`]); otherwise the fleets' current revisions.
    pub fn add_job(
        &mut self,
        id: &str,
        plan: &Plan,
        overrides: LimitOverrides,
        start: JobStart,
        under: Option<&BTreeMap<String, u32>>,
    ) -> Result<Changes, FleetError> {
        if self.job_index.contains_key(id) {
            return Err(FleetError::DuplicateJob(id.to_string()));
        }
        let ended_states = match &start {
            JobStart::Ended { states } => Some(states.clone()),
            _ => None,
        };
        let sched = match start {
            JobStart::Fresh => Some(Scheduler::new(plan, overrides)?),
            JobStart::Resume { previous, failed } => {
                Some(Scheduler::resume(plan, overrides, &previous, failed)?)
            }
            JobStart::Restore { states } => Some(Scheduler::restore(plan, overrides, &states)?),
            JobStart::Ended { .. } => None,
        };
        let global: Vec<u32> = plan.hosts.iter().map(|h| self.host(h)).collect();
        let mut fleets = self.current_revisions(&global);
        if let Some(under) = under {
            for (name, &revision) in under {
                let Some(&f) = self.fleet_index.get(name) else {
                    return Err(FleetError::UnknownRevision {
                        fleet: name.clone(),
                        revision,
                    });
                };
                if revision == 0 || revision as usize > self.fleets[f as usize].revisions.len() {
                    return Err(FleetError::UnknownRevision {
                        fleet: name.clone(),
                        revision,
                    });
                }
                fleets.insert(f, revision);
            }
        }
        let j = self.jobs.len() as u32;
        self.job_index.insert(id.to_string(), j);
        self.jobs.push(JobRt {
            id: id.to_string(),
            sched,
            global,
            under: fleets.clone(),
            holds: HashMap::new(),
            parked_on: BTreeSet::new(),
            given: BTreeMap::new(),
            closed: false,
            paused: false,
        });
        let live = self.jobs[j as usize]
            .sched
            .as_ref()
            .is_some_and(|s| !s.status().is_ended());
        for (&f, &revision) in &fleets {
            if live || revision as usize == self.fleets[f as usize].revisions.len() {
                self.make_live(f, revision);
            }
        }
        // The hosts it has running or down take their places.
        let states: Vec<HostState> = match (&self.jobs[j as usize].sched, ended_states) {
            (Some(sched), _) => sched.host_states().to_vec(),
            (None, Some(states)) => states,
            (None, None) => Vec::new(),
        };
        for (h, state) in states.into_iter().enumerate() {
            let g = self.jobs[j as usize].global[h];
            if state == HostState::Running {
                self.mark_running(j, g);
            } else if state.is_down() {
                self.mark_ended(j, g, state);
            }
        }
        let mut changes = Changes::default();
        if let Some(sched) = &self.jobs[j as usize].sched {
            // A resumed run may be over at once (all done, or still blocked by its own groups).
            changes.ended = sched.status().is_ended();
        }
        self.after(j);
        self.settle();
        Ok(changes)
    }

    /// A new session of an ended job ([`JobStart::Resume`]), under the fleets' current
    /// revisions. Its earlier failures stay down in the budgets until its hosts succeed.
    pub fn resume(
        &mut self,
        id: &str,
        plan: &Plan,
        overrides: LimitOverrides,
        previous: &[HostState],
        failed: FailedHosts,
    ) -> Result<Changes, FleetError> {
        let j = self.job(id)?;
        if self.jobs[j as usize].closed {
            return Err(FleetError::Closed(id.to_string()));
        }
        let sched = Scheduler::resume(plan, overrides, previous, failed)?;
        let ended = sched.status().is_ended();
        let fleets = self.current_revisions(&self.jobs[j as usize].global);
        let old = std::mem::replace(&mut self.jobs[j as usize].under, fleets);
        self.jobs[j as usize].sched = Some(sched);
        self.jobs[j as usize].holds.clear();
        self.jobs[j as usize].paused = false;
        // It runs under current revisions, which are live; the old ones may retire.
        for (f, revision) in old {
            self.retire(f, revision);
        }
        self.after(j);
        self.settle();
        Ok(Changes {
            ended,
            ..Changes::default()
        })
    }

    /// The current revision of each fleet that lists any of `hosts`.
    fn current_revisions(&self, hosts: &[u32]) -> BTreeMap<u32, u32> {
        hosts
            .iter()
            .filter_map(|g| self.fleet_of.get(g))
            .map(|&f| (f, self.fleets[f as usize].revisions.len() as u32))
            .collect()
    }

    fn job(&self, id: &str) -> Result<u32, FleetError> {
        self.job_index
            .get(id)
            .copied()
            .ok_or_else(|| FleetError::UnknownJob(id.to_string()))
    }

    fn sched_of(&mut self, j: u32) -> Result<&mut Scheduler, FleetError> {
        let job = &mut self.jobs[j as usize];
        match job.sched.as_mut() {
            Some(sched) => Ok(sched),
            None => Err(FleetError::UnknownJob(job.id.clone())),
        }
    }

    /// The job's scheduler (its own run's state), if it has one (a job added as
    /// [`JobStart::Ended`] has none).
    pub fn scheduler(&self, id: &str) -> Option<&Scheduler> {
        let j = self.job_index.get(id)?;
        self.jobs[*j as usize].sched.as_ref()
    }

    /// The next host to start, with its job: jobs take turns; `None` when no host of any job
    /// may start now. The host is marked running in its job and takes its places in every
    /// group at once.
    pub fn next_to_start(&mut self) -> Option<(&str, HostIdx)> {
        loop {
            let j = self
                .ready
                .range(self.turn.wrapping_add(1)..)
                .next()
                .or_else(|| self.ready.iter().next())
                .copied()?;
            match self.try_start(j) {
                Some(h) => {
                    self.turn = j;
                    self.settle();
                    return Some((&self.jobs[j as usize].id, h));
                }
                None => {
                    self.ready.remove(&j);
                    self.settle();
                }
            }
        }
    }

    /// Starts the job's first host that may start, in plan order: its candidates, and the
    /// first of its hosts parked on each budget that has room now. Parks the ones held.
    fn try_start(&mut self, j: u32) -> Option<HostIdx> {
        loop {
            self.give_room(j);
            let h = self.jobs[j as usize].sched.as_ref()?.peek_next()?;
            let g = self.jobs[j as usize].global[h.index()];
            match self.outer_hold(j, g) {
                None => {
                    let sched = self.jobs[j as usize].sched.as_mut().expect("peeked");
                    let started = sched.next_to_start();
                    debug_assert_eq!(started, Some(h));
                    self.mark_running(j, g);
                    self.after(j);
                    return Some(h);
                }
                Some(hold) => {
                    let sched = self.jobs[j as usize].sched.as_mut().expect("peeked");
                    sched.hold();
                    self.park(j, h.index() as u32, g, hold);
                    self.after(j);
                }
            }
        }
    }

    /// What keeps host `g` of job `j` from starting, beyond its own run's rules.
    fn outer_hold(&self, j: u32, g: u32) -> Option<Hold> {
        let host = &self.hosts[g as usize];
        if host.running_in.is_some() {
            return Some(Hold::Busy);
        }
        if host.is_down() {
            // It holds its places already: starting it takes no new one.
            return None;
        }
        host.budgets
            .iter()
            .copied()
            .find(|&b| self.applies(j, b) && self.budget(b).is_full())
            .map(Hold::Budget)
    }

    fn budget(&self, b: u32) -> &Budget {
        self.budgets[b as usize].as_ref().expect("a live budget")
    }

    fn budget_mut(&mut self, b: u32) -> &mut Budget {
        self.budgets[b as usize].as_mut().expect("a live budget")
    }

    /// Whether budget `b` holds job `j`: it is of its fleet's current revision, or of the
    /// revision the job started under.
    fn applies(&self, j: u32, b: u32) -> bool {
        let budget = self.budget(b);
        let fleet = &self.fleets[budget.fleet as usize];
        budget.revision as usize == fleet.revisions.len()
            || self.jobs[j as usize].under.get(&budget.fleet) == Some(&budget.revision)
    }

    fn park(&mut self, j: u32, h: u32, g: u32, hold: Hold) {
        self.jobs[j as usize].holds.insert(h, hold);
        let held_in = &mut self.hosts[g as usize].held_in;
        if !held_in.contains(&j) {
            held_in.push(j);
        }
        if let Hold::Budget(b) = hold {
            self.budget_mut(b)
                .parked
                .entry(j)
                .or_default()
                .push(Reverse(h));
            self.jobs[j as usize].parked_on.insert(b);
        }
    }

    /// Gives job `j` back, from each budget with room it has hosts parked on, the first of
    /// them (unless the one given before is still its candidate). The room goes to the job
    /// whose turn it is, so jobs take turns for it too.
    fn give_room(&mut self, j: u32) {
        let parked_on: Vec<u32> = self.jobs[j as usize].parked_on.iter().copied().collect();
        for b in parked_on {
            loop {
                let Some(budget) = self.budgets[b as usize].as_mut() else {
                    self.jobs[j as usize].parked_on.remove(&b);
                    break;
                };
                if budget.is_full() {
                    break;
                }
                let job = &self.jobs[j as usize];
                if let (Some(&given), Some(sched)) = (job.given.get(&b), job.sched.as_ref()) {
                    if sched.is_candidate(HostIdx::new(given as usize)) {
                        break;
                    }
                }
                let Some(heap) = budget.parked.get_mut(&j) else {
                    self.jobs[j as usize].parked_on.remove(&b);
                    self.jobs[j as usize].given.remove(&b);
                    break;
                };
                let Reverse(h) = heap.pop().expect("no empty heap is kept");
                if heap.is_empty() {
                    budget.parked.remove(&j);
                }
                if self.give_back(j, h, Hold::Budget(b)) {
                    self.jobs[j as usize].given.insert(b, h);
                }
            }
        }
    }

    /// Whether job `j` has a host parked on a budget that has room.
    fn has_room(&self, j: u32) -> bool {
        self.jobs[j as usize].parked_on.iter().any(|&b| {
            self.budgets[b as usize]
                .as_ref()
                .is_some_and(|budget| !budget.is_full() && budget.parked.contains_key(&j))
        })
    }

    /// Gives a held host back to its job, if it is still held for that reason.
    fn give_back(&mut self, j: u32, h: u32, hold: Hold) -> bool {
        let job = &mut self.jobs[j as usize];
        if job.holds.get(&h) != Some(&hold) {
            return false;
        }
        job.holds.remove(&h);
        let g = job.global[h as usize];
        let changes = match job.sched.as_mut() {
            Some(sched) => sched.release(HostIdx::new(h as usize)),
            None => Changes::default(),
        };
        // A plan names a host once: this was the job's only hold on it.
        self.hosts[g as usize].held_in.retain(|&x| x != j);
        if changes.ended {
            // Its own groups, full of its failed hosts, keep it from starting anything more.
            self.ended.push((self.jobs[j as usize].id.clone(), changes));
            self.after(j);
            self.retire_under(j);
        } else {
            self.after(j);
        }
        true
    }

    fn mark_running(&mut self, j: u32, g: u32) {
        let was_down = self.hosts[g as usize].is_down();
        self.hosts[g as usize].running_in = Some(j);
        for i in 0..self.hosts[g as usize].budgets.len() {
            let b = self.hosts[g as usize].budgets[i];
            let budget = self.budget_mut(b);
            budget.running += 1;
            budget.down += u64::from(!was_down);
        }
        self.wake_holders(g);
    }

    /// Host `g` ended in job `j` in `state` (not running any more there).
    fn mark_ended(&mut self, j: u32, g: u32, state: HostState) {
        let host = &mut self.hosts[g as usize];
        let was_down = host.is_down();
        let was_running = host.running_in == Some(j);
        if was_running {
            host.running_in = None;
        }
        if state == HostState::Succeeded {
            // Back in service, whatever broke it before.
            host.down_in.clear();
        } else if state.is_down() {
            host.down_in.retain(|&(x, _)| x != j);
            host.down_in.push((j, state));
        }
        let now_down = host.is_down();
        for i in 0..self.hosts[g as usize].budgets.len() {
            let b = self.hosts[g as usize].budgets[i];
            let budget = self.budget_mut(b);
            budget.running -= u64::from(was_running);
            if was_down && !now_down {
                budget.down -= 1;
                self.to_offer.push(b);
            } else if !was_down && now_down {
                // Down without having run here: a job added as it ended (after a restart).
                budget.down += 1;
            }
        }
        self.wake_holders(g);
    }

    /// Other jobs holding host `g` back look again: it started or ended somewhere.
    fn wake_holders(&mut self, g: u32) {
        let jobs = std::mem::take(&mut self.hosts[g as usize].held_in);
        for j in jobs {
            let held: Vec<(u32, Hold)> = self.jobs[j as usize]
                .holds
                .iter()
                .filter(|(&h, _)| self.jobs[j as usize].global[h as usize] == g)
                .map(|(&h, &hold)| (h, hold))
                .collect();
            for (h, hold) in held {
                self.give_back(j, h, hold);
            }
        }
    }

    /// After any change to job `j`: whether it has a host that may start, whether it waits
    /// on holds alone.
    fn after(&mut self, j: u32) {
        let job = &self.jobs[j as usize];
        let (candidate, waits) = match &job.sched {
            Some(sched) if !sched.status().is_ended() => (
                !job.paused && (sched.peek_next().is_some() || self.has_room(j)),
                sched.peek_next().is_none() && sched.tally().running == 0 && sched.held_count() > 0,
            ),
            _ => (false, false),
        };
        if candidate {
            self.ready.insert(j);
        } else {
            self.ready.remove(&j);
        }
        if waits {
            self.waiting.insert(j);
        } else {
            self.waiting.remove(&j);
        }
    }

    /// A budget that gained room makes the jobs with hosts parked on it take their turn.
    fn offer(&mut self, b: u32) {
        let Some(budget) = self.budgets[b as usize].as_ref() else {
            return;
        };
        if budget.is_full() {
            return;
        }
        let jobs: Vec<u32> = budget.parked.keys().copied().collect();
        for j in jobs {
            self.after(j);
        }
    }

    /// Offers what budgets have room for, then ends the jobs that can never start anything.
    fn settle(&mut self) {
        while let Some(b) = self.to_offer.pop() {
            self.offer(b);
        }
        let waiting: Vec<u32> = self.waiting.iter().copied().collect();
        for j in waiting {
            if self.holds_are_stuck(j) {
                let blockers = self.blockers(j);
                let job = &mut self.jobs[j as usize];
                let sched = job.sched.as_mut().expect("a waiting job has a scheduler");
                let changes = sched.block(blockers);
                job.holds.clear();
                let id = job.id.clone();
                self.waiting.remove(&j);
                self.after(j);
                self.ended.push((id, changes));
                self.retire_under(j);
            }
        }
        while let Some(b) = self.to_offer.pop() {
            self.offer(b);
        }
    }

    /// Whether every host job `j` holds back can never start: none waits for a running host.
    fn holds_are_stuck(&self, j: u32) -> bool {
        let job = &self.jobs[j as usize];
        job.holds.iter().all(|(&h, hold)| match hold {
            Hold::Busy => false,
            Hold::Budget(_) => {
                let g = job.global[h as usize];
                let host = &self.hosts[g as usize];
                !host.is_down()
                    && host
                        .budgets
                        .iter()
                        .any(|&b| self.applies(j, b) && self.budget(b).is_stuck())
            }
        })
    }

    /// The full budgets holding back job `j`'s held hosts.
    fn blockers(&self, j: u32) -> Vec<Blocker> {
        let job = &self.jobs[j as usize];
        let mut by_budget: BTreeMap<u32, Vec<HostIdx>> = BTreeMap::new();
        for &h in job.holds.keys() {
            let g = job.global[h as usize];
            if let Some(&b) = self.hosts[g as usize]
                .budgets
                .iter()
                .find(|&&b| self.applies(j, b) && self.budget(b).is_stuck())
            {
                by_budget
                    .entry(b)
                    .or_default()
                    .push(HostIdx::new(h as usize));
            }
        }
        by_budget
            .into_iter()
            .map(|(b, mut waiting)| {
                waiting.sort_unstable();
                let budget = self.budget(b);
                Blocker::BudgetFull {
                    fleet: self.fleets[budget.fleet as usize].name.clone(),
                    group: budget.id.clone(),
                    max_parallel: budget.max_parallel,
                    down: self.down_hosts(b),
                    waiting,
                }
            })
            .collect()
    }

    /// A budget's down hosts with the jobs they are down in, by host name then job.
    fn down_hosts(&self, b: u32) -> Vec<DownHost> {
        let mut down = Vec::new();
        for &m in &self.budget(b).members {
            let host = &self.hosts[m as usize];
            if let Some(j) = host.running_in {
                down.push(DownHost {
                    host: self.names[m as usize].clone(),
                    job: self.jobs[j as usize].id.clone(),
                    state: HostState::Running,
                });
            }
            for &(j, state) in &host.down_in {
                down.push(DownHost {
                    host: self.names[m as usize].clone(),
                    job: self.jobs[j as usize].id.clone(),
                    state,
                });
            }
        }
        down.sort_by(|a, b| (&a.host, &a.job).cmp(&(&b.host, &b.job)));
        down
    }

    /// Records the final outcome of a running host of job `id`.
    pub fn finish(
        &mut self,
        id: &str,
        host: HostIdx,
        outcome: Outcome,
    ) -> Result<Changes, FleetError> {
        self.end_host(id, host, HostState::from(outcome), |sched| {
            sched.finish(host, outcome)
        })
    }

    /// Records that a running host of job `id` was killed: down, not a failure.
    pub fn cancel(&mut self, id: &str, host: HostIdx) -> Result<Changes, FleetError> {
        self.end_host(id, host, HostState::Cancelled, |sched| sched.cancel(host))
    }

    /// Takes back a host marked running whose command never began: its places are free.
    pub fn unstart(&mut self, id: &str, host: HostIdx) -> Result<Changes, FleetError> {
        self.end_host(id, host, HostState::Pending, |sched| sched.unstart(host))
    }

    /// A running host of job `id` stops running there, in `state`, as `call` tells its job.
    fn end_host(
        &mut self,
        id: &str,
        host: HostIdx,
        state: HostState,
        call: impl FnOnce(&mut Scheduler) -> Result<Changes, SchedulerError>,
    ) -> Result<Changes, FleetError> {
        let j = self.job(id)?;
        let changes = call(self.sched_of(j)?)?;
        let g = self.jobs[j as usize].global[host.index()];
        self.mark_ended(j, g, state);
        self.ended_job(j, &changes);
        Ok(changes)
    }

    /// The gate (or approval) after slot `slot` of job `id` passed: the steps after it may
    /// start ([`Scheduler::pass_gate`]).
    pub fn pass_gate(&mut self, id: &str, slot: SlotIdx) -> Result<Changes, FleetError> {
        let j = self.job(id)?;
        let changes = self.sched_of(j)?.pass_gate(slot)?;
        self.ended_job(j, &changes);
        Ok(changes)
    }

    /// The gate (or approval) after slot `slot` of job `id` failed: the job stops
    /// ([`Scheduler::fail_gate`]). Frees nothing, as a halt.
    pub fn fail_gate(
        &mut self,
        id: &str,
        slot: SlotIdx,
        reason: StopReason,
    ) -> Result<Changes, FleetError> {
        let j = self.job(id)?;
        let changes = self.sched_of(j)?.fail_gate(slot, reason)?;
        self.jobs[j as usize].holds.clear();
        self.ended_job(j, &changes);
        Ok(changes)
    }

    /// Stops starting hosts of job `id` (a halt, the run timeout). Frees nothing: its failed
    /// hosts stay down until they succeed or the job is closed.
    pub fn stop(&mut self, id: &str, reason: StopReason) -> Result<Changes, FleetError> {
        let j = self.job(id)?;
        let changes = self.sched_of(j)?.stop(reason);
        self.jobs[j as usize].holds.clear();
        self.ended_job(j, &changes);
        Ok(changes)
    }

    fn ended_job(&mut self, j: u32, changes: &Changes) {
        self.after(j);
        if changes.ended {
            self.retire_under(j);
        }
        self.settle();
    }

    /// The revisions job `j` started under are dropped if no other live job uses them.
    fn retire_under(&mut self, j: u32) {
        let under: Vec<(u32, u32)> = self.jobs[j as usize]
            .under
            .iter()
            .map(|(&f, &r)| (f, r))
            .collect();
        for (f, revision) in under {
            self.retire(f, revision);
        }
    }

    /// Closes an ended job ("I have looked at these hosts"): its hosts that are down in it
    /// are down no more, for every budget. A closed job cannot be resumed.
    pub fn close(&mut self, id: &str) -> Result<(), FleetError> {
        let j = self.job(id)?;
        let job = &self.jobs[j as usize];
        if job.sched.as_ref().is_some_and(|s| !s.status().is_ended()) {
            return Err(FleetError::CloseRunning(id.to_string()));
        }
        self.jobs[j as usize].closed = true;
        for i in 0..self.jobs[j as usize].global.len() {
            let g = self.jobs[j as usize].global[i];
            let host = &mut self.hosts[g as usize];
            if !host.down_in.iter().any(|&(x, _)| x == j) {
                continue;
            }
            let was_down = host.is_down();
            host.down_in.retain(|&(x, _)| x != j);
            if was_down && !host.is_down() {
                for i in 0..self.hosts[g as usize].budgets.len() {
                    let b = self.hosts[g as usize].budgets[i];
                    self.budget_mut(b).down -= 1;
                    self.to_offer.push(b);
                }
            }
        }
        self.settle();
        Ok(())
    }

    /// Whether job `id` was added (and so may be resumed or closed here).
    pub fn has_job(&self, id: &str) -> bool {
        self.job_index.contains_key(id)
    }

    /// The revision of each fleet that job `id` runs under (its fleets' current ones when it
    /// was added or resumed), by fleet name.
    pub fn under(&self, id: &str) -> BTreeMap<String, u32> {
        let Some(&j) = self.job_index.get(id) else {
            return BTreeMap::new();
        };
        self.jobs[j as usize]
            .under
            .iter()
            .map(|(&f, &revision)| (self.fleets[f as usize].name.clone(), revision))
            .collect()
    }

    /// Pauses job `id` (it starts nothing; its running hosts go on and keep their places) or
    /// lets it go on. A paused job never ends blocked for being paused.
    pub fn pause(&mut self, id: &str, paused: bool) -> Result<(), FleetError> {
        let j = self.job(id)?;
        self.jobs[j as usize].paused = paused;
        self.after(j);
        self.settle();
        Ok(())
    }

    /// Jobs that ended because of what happened elsewhere (blocked by budgets that other
    /// jobs' failures fill), with what changed in each, since the last call.
    pub fn take_ended(&mut self) -> Vec<(String, Changes)> {
        std::mem::take(&mut self.ended)
    }

    /// Where job `id` stands, by its own run.
    pub fn status(&self, id: &str) -> Option<RunStatus<'_>> {
        self.scheduler(id).map(Scheduler::status)
    }

    /// Why a host of job `id` has not started.
    pub fn why(&self, id: &str, host: HostIdx) -> Result<Wait, FleetError> {
        let j = self.job(id)?;
        let job = &self.jobs[j as usize];
        let Some(sched) = job.sched.as_ref() else {
            return Ok(Wait::NotPending(HostState::Skipped));
        };
        let state = sched.host_state(host);
        if state != HostState::Pending {
            return Ok(Wait::NotPending(state));
        }
        if matches!(sched.status(), RunStatus::Stopping(_)) {
            return Ok(Wait::Stopping);
        }
        if let Some(own) = sched.why(host) {
            return Ok(Wait::Own(own));
        }
        if job.paused {
            return Ok(Wait::Paused);
        }
        let g = job.global[host.index()];
        let hostrt = &self.hosts[g as usize];
        if let Some(other) = hostrt.running_in {
            if other != j {
                return Ok(Wait::Busy {
                    job: self.jobs[other as usize].id.clone(),
                });
            }
        }
        if !hostrt.is_down() {
            if let Some(&b) = hostrt
                .budgets
                .iter()
                .find(|&&b| self.applies(j, b) && self.budget(b).is_full())
            {
                let budget = self.budget(b);
                return Ok(Wait::Budget {
                    fleet: self.fleets[budget.fleet as usize].name.clone(),
                    revision: budget.revision,
                    group: budget.id.clone(),
                    max_parallel: budget.max_parallel,
                    down: self.down_hosts(b),
                });
            }
        }
        Ok(Wait::Starting)
    }
}

#[cfg(test)]
mod tests {
    use pogo_model::Amount;

    use super::*;

    fn fleet(hosts: &str, budgets: &[(&str, u64, &str)]) -> FleetRevision {
        let words = |text: &str| text.split_whitespace().map(str::to_string).collect();
        FleetRevision {
            hosts: words(hosts),
            budgets: budgets
                .iter()
                .map(|&(id, max_parallel, hosts)| BudgetSpec {
                    id: id.to_string(),
                    max_parallel,
                    hosts: words(hosts),
                })
                .collect(),
        }
    }

    fn add(fs: &mut FleetScheduler, id: &str, plan: &Plan) {
        fs.add_job(id, plan, LimitOverrides::default(), JobStart::Fresh, None)
            .unwrap();
    }

    fn start_all(fs: &mut FleetScheduler) -> Vec<(String, String)> {
        let mut started = Vec::new();
        while let Some((job, host)) = fs.next_to_start() {
            let job = job.to_string();
            let name = format!("web{}", host.index() + 1);
            started.push((job, name));
        }
        started
    }

    #[test]
    fn a_host_is_in_one_fleet_at_most() {
        let mut fs = FleetScheduler::new();
        fs.push("prod", fleet("web1 web2", &[])).unwrap();
        let err = fs.push("staging", fleet("web2 web3", &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host `web2` is in fleet `prod` already, and a host is in at most one fleet"
        );
        // Its own fleet may list it again, and let go of it.
        assert_eq!(fs.push("prod", fleet("web1", &[])), Ok(2));
        assert_eq!(fs.push("staging", fleet("web2 web3", &[])), Ok(1));
    }

    /// Two jobs over the same budget of 1: one host down at a time between them; a host that
    /// failed holds the place after its job ended, and `why` says so, until the job is closed.
    #[test]
    fn a_budget_holds_across_jobs_until_the_failed_job_is_closed() {
        let mut fs = FleetScheduler::new();
        fs.push(
            "prod",
            fleet("web1 web2 web3", &[("$colo.east", 1, "web1 web2 web3")]),
        )
        .unwrap();
        let plan = Plan::sketch("web1 web2 web3");
        // A plan with a looser limit of its own is held to the fleet's all the same.
        add(
            &mut fs,
            "J1",
            &plan
                .clone()
                .with_group("$colo.east", Amount::number(1000), "web1 web2 web3"),
        );
        let others = Plan::sketch("web2 web3");
        add(&mut fs, "J2", &others);
        assert_eq!(start_all(&mut fs), [("J1".to_string(), "web1".to_string())]);
        let Wait::Budget { group, down, .. } = fs.why("J2", HostIdx::new(0)).unwrap() else {
            panic!("held by the budget");
        };
        assert_eq!(group, "$colo.east");
        assert_eq!(down[0].to_string(), "web1 (running in job J1)");

        // web1 fails in J1, which stops (max_failures 0): the budget stays full, and J2,
        // which nothing running can free, ends blocked naming it.
        let changes = fs
            .finish("J1", HostIdx::new(0), Outcome::Failed { exit_code: 3 })
            .unwrap();
        assert!(changes.ended);
        let ended = fs.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0, "J2");
        let RunStatus::Blocked(blockers) = fs.status("J2").unwrap() else {
            panic!("J2 is blocked");
        };
        let text = blockers[0].describe(&others.hosts);
        assert!(
            text.contains("group `$colo.east` of fleet `prod` (max_parallel 1)"),
            "{text}"
        );
        assert!(text.contains("web1 (failed (exit 3) in job J1)"), "{text}");

        // Closing J1 frees web1's place: a new job runs.
        fs.close("J1").unwrap();
        add(&mut fs, "J3", &plan);
        assert_eq!(start_all(&mut fs), [("J3".to_string(), "web1".to_string())]);
    }

    /// After a restart, running hosts are restored as running: they hold their places.
    #[test]
    fn restored_running_hosts_hold_their_places() {
        let mut fs = FleetScheduler::new();
        fs.push(
            "prod",
            fleet("web1 web2 web3", &[("all", 2, "web1 web2 web3")]),
        )
        .unwrap();
        let plan = Plan::sketch("web1 web2 web3");
        let states = vec![HostState::Running, HostState::Pending, HostState::Pending];
        fs.add_job(
            "J1",
            &plan,
            LimitOverrides::default(),
            JobStart::Restore { states },
            None,
        )
        .unwrap();
        let mut under = BTreeMap::new();
        under.insert("prod".to_string(), 1);
        let states = vec![HostState::Pending, HostState::Running, HostState::Pending];
        fs.add_job(
            "J2",
            &plan,
            LimitOverrides::default(),
            JobStart::Restore { states },
            Some(&under),
        )
        .unwrap();
        assert!(
            fs.next_to_start().is_none(),
            "two running already fill the budget of 2"
        );
        // web1 is busy in J1, so J2 waits for it, and says so.
        assert_eq!(
            fs.why("J2", HostIdx::new(0)).unwrap(),
            Wait::Busy { job: "J1".into() }
        );
        fs.finish("J1", HostIdx::new(0), Outcome::Succeeded)
            .unwrap();
        // One place is free: J1's turn comes first (submission order), then the budget is full.
        assert_eq!(
            fs.next_to_start().map(|(j, h)| (j.to_string(), h)),
            Some(("J1".to_string(), HostIdx::new(2)))
        );
        assert!(fs.next_to_start().is_none());
    }

    /// After a restart, a job that ended with a failed host is added as ended: the host never
    /// ran in this process, and holds its place all the same (and so does a restored job's).
    #[test]
    fn hosts_failed_before_a_restart_hold_their_places() {
        let mut fs = FleetScheduler::new();
        fs.push(
            "prod",
            fleet("web1 web2 web3", &[("all", 1, "web1 web2 web3")]),
        )
        .unwrap();
        let plan = Plan::sketch("web1 web2 web3");
        let failed = HostState::Failed { exit_code: 3 };
        let states = vec![failed, HostState::Skipped, HostState::Skipped];
        fs.add_job(
            "J1",
            &plan,
            LimitOverrides::default(),
            JobStart::Ended { states },
            None,
        )
        .unwrap();
        add(&mut fs, "J2", &Plan::sketch("web2 web3"));
        assert!(fs.next_to_start().is_none());
        assert_eq!(fs.take_ended().len(), 1, "J2 ends blocked by web1");
        fs.close("J1").unwrap();
        let states = vec![HostState::Pending, failed, HostState::Pending];
        fs.add_job(
            "J3",
            &plan,
            LimitOverrides::default(),
            JobStart::Restore { states },
            None,
        )
        .unwrap();
        // web2 failed in J3 itself: the budget is full, and only web2 may run again.
        assert!(fs.next_to_start().is_none());
    }

    /// A new revision never loosens a running job's limits: the stricter of old and new.
    #[test]
    fn a_running_job_keeps_the_budgets_it_started_under() {
        let mut fs = FleetScheduler::new();
        fs.push(
            "prod",
            fleet("web1 web2 web3", &[("all", 1, "web1 web2 web3")]),
        )
        .unwrap();
        let plan = Plan::sketch("web1 web2 web3");
        add(&mut fs, "J1", &plan);
        assert_eq!(start_all(&mut fs).len(), 1);
        fs.push(
            "prod",
            fleet("web1 web2 web3", &[("all", 3, "web1 web2 web3")]),
        )
        .unwrap();
        assert!(fs.next_to_start().is_none(), "J1 is still held to 1");
        // A job submitted now runs under the new revision, and under J1's running host.
        add(&mut fs, "J2", &Plan::sketch("web2 web3"));
        assert_eq!(start_all(&mut fs).len(), 2);
    }
}
