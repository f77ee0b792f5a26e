//! Property tests for the fleet scheduler (`pogo_executor::fleet`), spec `semantics.md` §8.
//!
//! Random fleets (one or two, over disjoint hosts, some hosts in none) with random budgets,
//! 1 to 6 jobs over overlapping hosts with their own threads, groups and job limits, added at
//! random moments; random outcomes and durations; halts, resumes (retrying failed hosts or
//! not), closes and new fleet revisions at random moments. A discrete-event loop drives one
//! [`FleetScheduler`] and, after every call, compares it with a model that applies §8's rules
//! by brute force from its own record of what ran where:
//!
//! - every host started had room, at that moment, in every group it is in: its plan's groups
//!   (down = running or ended other than by succeeding, in that job), and the budgets of its
//!   fleet's current revision and of the revision its job started under (down = running in any
//!   job, or ended other than by succeeding in a job not closed, until it succeeds somewhere;
//!   a host down already takes no new place); it ran in no other job; its slots' predecessors
//!   were complete;
//! - whenever the scheduler has nothing to start, the model has nothing either (no job waits
//!   while it could start a host), and jobs take turns: no job starts a host twice in a row at
//!   one moment while another job could start one all along;
//! - whenever nothing runs and nothing is to come, every job has ended, every host in exactly
//!   one terminal state; a job that ended blocked by a budget names a budget that is full of
//!   hosts down without running.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pogo_executor::fleet::{BudgetSpec, FleetRevision, FleetScheduler, JobStart, Wait};
use pogo_executor::scheduler::{
    Blocker, FailedHosts, HostIdx, HostState, LimitOverrides, Outcome, RunStatus, StopReason,
};
use pogo_model::{Amount, Plan};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

const HOSTS: usize = 8;

#[derive(Debug, Clone)]
struct JobGen {
    at: u32,
    hosts: Vec<bool>,
    /// A thread of two slots over some of its hosts: per host, none, first or second.
    slot: Vec<u8>,
    group: Option<(Vec<bool>, u64)>,
    job_limit: Option<u64>,
    max_failures: u64,
    /// Per host and session: outcome and duration.
    outcomes: Vec<(Outcome, u32)>,
}

/// A revision's budgets: each a member mask over the hosts and a limit.
type Budgets = Vec<(Vec<bool>, u64)>;

#[derive(Debug, Clone)]
enum Action {
    Halt(usize),
    Resume(usize, bool),
    Close(usize),
    /// Push revision `k` of the generated ones for fleet `f`.
    Push(usize, usize),
}

#[derive(Debug, Clone)]
struct Scenario {
    /// Per host: its fleet (0, 1) or none (2).
    fleet_of: Vec<usize>,
    /// Per fleet: revisions (budgets over its hosts, each a member mask and a limit).
    revisions: Vec<Vec<Budgets>>,
    jobs: Vec<JobGen>,
    actions: Vec<(u32, Action)>,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Succeeded),
        2 => Just(Outcome::Failed { exit_code: 1 }),
        1 => Just(Outcome::TimedOut),
        1 => Just(Outcome::Unreachable),
    ]
}

fn budgets() -> impl Strategy<Value = Budgets> {
    prop::collection::vec(
        (
            prop::collection::vec(prop::bool::weighted(0.6), HOSTS),
            1..=3u64,
        ),
        0..=3,
    )
}

fn job() -> impl Strategy<Value = JobGen> {
    (
        0..=6u32,
        prop::collection::vec(prop::bool::weighted(0.6), HOSTS),
        prop::collection::vec(0..3u8, HOSTS),
        prop::option::weighted(
            0.4,
            (prop::collection::vec(prop::bool::ANY, HOSTS), 1..=2u64),
        ),
        prop::option::weighted(0.3, 1..=3u64),
        0..=3u64,
        prop::collection::vec((outcome(), 1..=4u32), HOSTS * 3),
    )
        .prop_map(
            |(at, hosts, slot, group, job_limit, max_failures, outcomes)| JobGen {
                at,
                hosts,
                slot,
                group,
                job_limit,
                max_failures,
                outcomes,
            },
        )
}

fn action() -> impl Strategy<Value = (u32, Action)> {
    (
        0..=20u32,
        prop_oneof![
            2 => (0..6usize).prop_map(Action::Halt),
            3 => (0..6usize, prop::bool::ANY).prop_map(|(j, r)| Action::Resume(j, r)),
            3 => (0..6usize).prop_map(Action::Close),
            2 => (0..2usize, 1..3usize).prop_map(|(f, k)| Action::Push(f, k)),
        ],
    )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(
            prop_oneof![3 => Just(0usize), 2 => Just(1), 1 => Just(2)],
            HOSTS,
        ),
        prop::collection::vec(prop::collection::vec(budgets(), 3), 2),
        prop::collection::vec(job(), 1..=6),
        prop::collection::vec(action(), 0..=8),
    )
        .prop_map(|(fleet_of, revisions, jobs, mut actions)| {
            actions.sort_by_key(|(at, _)| *at);
            Scenario {
                fleet_of,
                revisions,
                jobs,
                actions,
            }
        })
}

fn name(h: usize) -> String {
    format!("h{h}")
}

fn revision(s: &Scenario, f: usize, k: usize) -> FleetRevision {
    let hosts: Vec<usize> = (0..HOSTS).filter(|&h| s.fleet_of[h] == f).collect();
    FleetRevision {
        hosts: hosts.iter().map(|&h| name(h)).collect(),
        budgets: s.revisions[f][k]
            .iter()
            .enumerate()
            .map(|(i, (mask, limit))| BudgetSpec {
                id: format!("g{i}"),
                max_parallel: *limit,
                hosts: hosts
                    .iter()
                    .filter(|&&h| mask[h])
                    .map(|&h| name(h))
                    .collect(),
            })
            .collect(),
    }
}

fn plan_of(gen: &JobGen) -> Plan {
    let hosts: Vec<usize> = (0..HOSTS).filter(|&h| gen.hosts[h]).collect();
    let names = |pick: &dyn Fn(usize) -> bool| -> String {
        hosts
            .iter()
            .filter(|&&h| pick(h))
            .map(|&h| name(h))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut plan = Plan::sketch(&names(&|_| true));
    let first = names(&|h| gen.slot[h] == 1);
    let second = names(&|h| gen.slot[h] == 2);
    if !first.is_empty() || !second.is_empty() {
        plan = plan.with_thread("t", &[&first, &second]);
    }
    if let Some((mask, limit)) = &gen.group {
        let members = names(&|h| mask[h]);
        if !members.is_empty() {
            plan = plan.with_group("own", Amount::number(*limit), &members);
        }
    }
    if let Some(limit) = gen.job_limit {
        plan = plan.with_job_limit(limit);
    }
    plan.with_max_failures(gen.max_failures)
}

/// What the model knows: what it drove, and the fleets' revisions.
struct Model {
    plans: Vec<Option<Plan>>,
    /// Per job: fleet -> revision it started under.
    under: Vec<BTreeMap<usize, usize>>,
    closed: Vec<bool>,
    /// Per fleet: the revisions pushed (index of generated revision).
    pushed: Vec<Vec<usize>>,
    running_in: HashMap<usize, usize>,
    /// Per host: jobs it is down in since it last succeeded.
    down_in: HashMap<usize, BTreeSet<usize>>,
}

impl Model {
    fn down(&self, h: usize) -> bool {
        self.running_in.contains_key(&h) || self.down_in.get(&h).is_some_and(|s| !s.is_empty())
    }

    fn fleets_of(&self, s: &Scenario, gen: &JobGen) -> BTreeMap<usize, usize> {
        (0..HOSTS)
            .filter(|&h| {
                gen.hosts[h] && s.fleet_of[h] < 2 && !self.pushed[s.fleet_of[h]].is_empty()
            })
            .map(|h| (s.fleet_of[h], self.pushed[s.fleet_of[h]].len()))
            .collect()
    }

    /// The budgets (revision number, budget index) that hold job `j`'s host `h`.
    fn budgets_of(&self, s: &Scenario, j: usize, h: usize) -> Vec<(usize, usize, usize)> {
        let f = s.fleet_of[h];
        if f == 2 || self.pushed[f].is_empty() {
            return Vec::new();
        }
        let mut revisions = BTreeSet::new();
        revisions.insert(self.pushed[f].len());
        if let Some(&r) = self.under[j].get(&f) {
            revisions.insert(r);
        }
        let mut out = Vec::new();
        for r in revisions {
            let k = self.pushed[f][r - 1];
            for (b, (mask, _)) in s.revisions[f][k].iter().enumerate() {
                if mask[h] {
                    out.push((f, k, b));
                }
            }
        }
        out
    }

    fn budget_down(&self, s: &Scenario, f: usize, k: usize, b: usize) -> u64 {
        (0..HOSTS)
            .filter(|&m| s.fleet_of[m] == f && s.revisions[f][k][b].0[m] && self.down(m))
            .count() as u64
    }

    /// Why host `h` (by generation index) of job `j` may not start now, if it may not.
    fn refusal(&self, s: &Scenario, fs: &FleetScheduler, j: usize, h: usize) -> Option<String> {
        let plan = self.plans[j].as_ref()?;
        let sched = fs.scheduler(&format!("j{j}"))?;
        if sched.status() != RunStatus::Running {
            return Some("job not running".into());
        }
        let idx = plan.hosts.iter().position(|n| *n == name(h))?;
        let host = HostIdx::new(idx);
        if sched.host_state(host) != HostState::Pending {
            return Some("not pending".into());
        }
        if !sched.is_ready(host) {
            return Some("slot".into());
        }
        for group in &plan.constraints {
            if group.hosts.contains(&name(h)) {
                let down = group
                    .hosts
                    .iter()
                    .filter(|n| {
                        let i = plan.hosts.iter().position(|x| x == *n).unwrap();
                        sched.host_state(HostIdx::new(i)).is_down()
                    })
                    .count() as u64;
                if down >= group.max_parallel.value {
                    return Some(format!("own group {} full", group.id));
                }
            }
        }
        if let Some(other) = self.running_in.get(&h) {
            return Some(format!("busy in j{other}"));
        }
        if !self.down(h) {
            for (f, k, b) in self.budgets_of(s, j, h) {
                if self.budget_down(s, f, k, b) >= s.revisions[f][k][b].1 {
                    return Some(format!("budget {f}/{k}/{b} full"));
                }
            }
        }
        None
    }

    fn startable_jobs(&self, s: &Scenario, fs: &FleetScheduler) -> BTreeSet<usize> {
        (0..self.plans.len())
            .filter(|&j| {
                (0..HOSTS).any(|h| {
                    self.plans[j]
                        .as_ref()
                        .is_some_and(|p| p.hosts.contains(&name(h)))
                        && self.refusal(s, fs, j, h).is_none()
                })
            })
            .collect()
    }
}

fn host_of(plan: &Plan, host: HostIdx) -> usize {
    plan.hosts[host.index()][1..].parse().unwrap()
}

fn check_blockers(
    s: &Scenario,
    model: &Model,
    fs: &FleetScheduler,
    j: usize,
) -> Result<(), TestCaseError> {
    let sched = fs.scheduler(&format!("j{j}")).unwrap();
    if let RunStatus::Blocked(blockers) = sched.status() {
        prop_assert!(!blockers.is_empty());
        for blocker in blockers {
            if let Blocker::BudgetFull {
                fleet,
                group,
                max_parallel,
                down,
                ..
            } = blocker
            {
                let f: usize = fleet[1..].parse().unwrap();
                let b: usize = group[1..].parse().unwrap();
                // Full of hosts that are down without running (and will stay so).
                let stuck: BTreeSet<&str> = down
                    .iter()
                    .filter(|d| d.state != HostState::Running)
                    .map(|d| d.host.as_str())
                    .collect();
                prop_assert!(stuck.len() as u64 >= *max_parallel, "{blocker:?}");
                // Some budget of that number is full of hosts down without running.
                let full = model.pushed[f].iter().any(|&k| {
                    s.revisions[f][k].get(b).is_some_and(|(mask, limit)| {
                        (0..HOSTS)
                            .filter(|&m| s.fleet_of[m] == f && mask[m] && model.down(m))
                            .count() as u64
                            >= *limit
                    })
                });
                prop_assert!(full, "{blocker:?}");
                let _ = (fs, j);
            }
        }
    }
    Ok(())
}

fn run(s: &Scenario) -> Result<(), TestCaseError> {
    let mut fs = FleetScheduler::new();
    let mut model = Model {
        plans: vec![None; s.jobs.len()],
        under: vec![BTreeMap::new(); s.jobs.len()],
        closed: vec![false; s.jobs.len()],
        pushed: vec![Vec::new(); 2],
        running_in: HashMap::new(),
        down_in: HashMap::new(),
    };
    let mut sessions = vec![0usize; s.jobs.len()];
    // (finish time, job, host index in plan)
    let mut running: BTreeSet<(u32, usize, usize)> = BTreeSet::new();
    let id = |j: usize| format!("j{j}");
    // Every fleet's first revision is there from the start (unless it lists no host).
    for f in 0..2 {
        if s.fleet_of.contains(&f) {
            fs.push(&format!("f{f}"), revision(s, f, 0)).unwrap();
            model.pushed[f].push(0);
        }
    }
    let mut added = vec![false; s.jobs.len()];
    let mut seen_ended = vec![false; s.jobs.len()];
    let mut actions = s.actions.iter().peekable();
    let mut t = 0u32;
    let mut last = None::<usize>;
    loop {
        // What happens at `t`.
        for (j, gen) in s.jobs.iter().enumerate() {
            if gen.at == t && !added[j] {
                added[j] = true;
                let plan = plan_of(gen);
                model.under[j] = model.fleets_of(s, gen);
                fs.add_job(
                    &id(j),
                    &plan,
                    LimitOverrides::default(),
                    JobStart::Fresh,
                    None,
                )
                .unwrap();
                model.plans[j] = Some(plan);
            }
        }
        while let Some((at, action)) = actions.peek() {
            if *at != t {
                break;
            }
            actions.next();
            match *action {
                Action::Halt(j) if added.get(j) == Some(&true) => {
                    fs.stop(&id(j), StopReason::Halted).unwrap();
                }
                Action::Resume(j, retry) if added.get(j) == Some(&true) && !model.closed[j] => {
                    let sched = fs.scheduler(&id(j)).unwrap();
                    if sched.status().is_ended() {
                        let previous = sched.host_states().to_vec();
                        let failed = if retry {
                            FailedHosts::Retry
                        } else {
                            FailedHosts::StayFailed
                        };
                        model.under[j] = model.fleets_of(s, &s.jobs[j]);
                        sessions[j] += 1;
                        seen_ended[j] = false;
                        let plan = model.plans[j].clone().unwrap();
                        fs.resume(&id(j), &plan, LimitOverrides::default(), &previous, failed)
                            .unwrap();
                    }
                }
                Action::Close(j) if added.get(j) == Some(&true) && !model.closed[j] => {
                    let ended = fs.scheduler(&id(j)).unwrap().status().is_ended();
                    let closed = fs.close(&id(j));
                    prop_assert_eq!(closed.is_ok(), ended, "{:?}", closed);
                    if ended {
                        model.closed[j] = true;
                        for jobs in model.down_in.values_mut() {
                            jobs.remove(&j);
                        }
                    }
                }
                Action::Push(f, k) if !model.pushed[f].is_empty() => {
                    fs.push(&format!("f{f}"), revision(s, f, k)).unwrap();
                    model.pushed[f].push(k);
                }
                _ => {}
            }
        }
        fs.take_ended();
        // Start what may start.
        let mut streak: Option<(usize, BTreeSet<usize>)> = None;
        loop {
            let startable = model.startable_jobs(s, &fs);
            let Some((job, host)) = fs.next_to_start().map(|(id, h)| (id.to_string(), h)) else {
                if !startable.is_empty() && std::env::var("FLEET_DEBUG").is_ok() {
                    for &j in &startable {
                        let plan = model.plans[j].as_ref().unwrap();
                        for (i, n) in plan.hosts.iter().enumerate() {
                            let h: usize = n[1..].parse().unwrap();
                            eprintln!(
                                "t={t} j{j} {n}: model {:?} why {:?} under {:?} pushed {:?}",
                                model.refusal(s, &fs, j, h),
                                fs.why(&id(j), HostIdx::new(i)),
                                model.under[j],
                                model.pushed
                            );
                        }
                    }
                }
                prop_assert!(
                    startable.is_empty(),
                    "nothing started, but the model could start a host of {:?}",
                    startable
                );
                break;
            };
            let j: usize = job[1..].parse().unwrap();
            let plan = model.plans[j].clone().unwrap();
            let h = host_of(&plan, host);
            // `next` marked it running already: check against the state before.
            let sched = fs.scheduler(&job).unwrap();
            prop_assert_eq!(sched.host_state(host), HostState::Running);
            prop_assert!(
                startable.contains(&j),
                "j{} started {} but the model says it could start nothing",
                j,
                h
            );
            prop_assert!(
                !model.running_in.contains_key(&h),
                "h{} runs in two jobs",
                h
            );
            if !model.down(h) {
                for (f, k, b) in model.budgets_of(s, j, h) {
                    prop_assert!(
                        model.budget_down(s, f, k, b) < s.revisions[f][k][b].1,
                        "h{} of j{} started over budget f{}/{}/{}",
                        h,
                        j,
                        f,
                        k,
                        b
                    );
                }
            }
            // Turns: a job does not start twice in a row while another could all along.
            match &mut streak {
                Some((sj, others)) if *sj == j => {
                    others.retain(|o| startable.contains(o));
                    prop_assert!(
                        others.is_empty(),
                        "j{} started twice in a row while j{:?} could start all along",
                        j,
                        others
                    );
                }
                _ => {
                    let mut others = startable.clone();
                    others.remove(&j);
                    streak = Some((j, others));
                }
            }
            last = Some(j);
            model.running_in.insert(h, j);
            let session = sessions[j];
            let (_, duration) = s.jobs[j].outcomes[(h * 3 + session) % s.jobs[j].outcomes.len()];
            running.insert((t + duration, j, host.index()));
        }
        let _ = last;
        // A job that ended since: its reasons are true now.
        for j in 0..s.jobs.len() {
            if added[j] && !seen_ended[j] && fs.scheduler(&id(j)).unwrap().status().is_ended() {
                seen_ended[j] = true;
                check_blockers(s, &model, &fs, j)?;
            }
        }
        // The next moment something happens.
        let next_finish = running.iter().next().map(|&(at, _, _)| at);
        let next_job = s
            .jobs
            .iter()
            .enumerate()
            .filter(|(j, g)| !added[*j] && g.at > t)
            .map(|(_, g)| g.at)
            .min();
        let next_action = actions.peek().map(|(at, _)| *at);
        let Some(next) = [next_finish, next_job, next_action]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        t = next;
        while let Some(&(at, j, idx)) = running.iter().next() {
            if at != t {
                break;
            }
            running.remove(&(at, j, idx));
            let plan = model.plans[j].clone().unwrap();
            let h = host_of(&plan, HostIdx::new(idx));
            let (outcome, _) = s.jobs[j].outcomes[(h * 3 + sessions[j]) % s.jobs[j].outcomes.len()];
            fs.finish(&id(j), HostIdx::new(idx), outcome).unwrap();
            model.running_in.remove(&h);
            if outcome == Outcome::Succeeded {
                model.down_in.remove(&h);
            } else {
                model.down_in.entry(h).or_default().insert(j);
            }
            for j in 0..s.jobs.len() {
                if added[j] && !seen_ended[j] && fs.scheduler(&id(j)).unwrap().status().is_ended() {
                    seen_ended[j] = true;
                    check_blockers(s, &model, &fs, j)?;
                }
            }
        }
    }
    // Nothing runs and nothing is to come: every job has ended, every host in one state.
    for j in 0..s.jobs.len() {
        let sched = fs.scheduler(&id(j)).unwrap();
        prop_assert!(
            sched.status().is_ended(),
            "j{} never ended: {:?}",
            j,
            sched.status()
        );
        for (i, state) in sched.host_states().iter().enumerate() {
            prop_assert!(state.is_terminal(), "j{} host {} is {}", j, i, state);
            let why = fs.why(&id(j), HostIdx::new(i)).unwrap();
            prop_assert_eq!(why, Wait::NotPending(*state));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1500,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn budgets_hold_across_jobs_and_no_job_waits_while_it_could_start(s in scenario()) {
        run(&s)?;
    }
}
