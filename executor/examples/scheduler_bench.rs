//! Prints what the scheduler costs per event: `cargo run --release -p pogo-executor --example
//! scheduler_bench [HOSTS]` (default 10,000 hosts).
//!
//! Each scenario builds a plan in memory, then drives a run the way `pogo apply` does: start
//! every host that may start, finish the oldest running host, again, until the run ends (every
//! command takes the same time, so hosts finish in the order they started). An event is one
//! start or one finish. The figures are the scheduler's own cost, with no process, clock or
//! I/O: they say how much of the `xargs -P 200` comparison the scheduler can take.
//!
//! Scenarios:
//! - `unordered, job 200`: the executor benchmark's shape (every host in the unordered lane,
//!   the job-wide limit 200);
//! - `fleet`: colos of 100 hosts (limit 10 each), 5 roles (limit 2% each), one thread per role
//!   over the colos, job 200, so most ready hosts wait for a colo or role group;
//! - `fleet, 1% fail`: the same with one host in a hundred failing (within the budget). Failed
//!   hosts stay down, so the role groups fill up with them and the run ends blocked part way:
//!   that is the rule working, and it times the blocked report too.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pogo_executor::scheduler::{LimitOverrides, Outcome, RunStatus, Scheduler};
use pogo_model::{Amount, ConstraintSpec, EdgeSpec, Plan, SlotSpec, ThreadSpec, JOB_GROUP_ID};

/// A plan of these hosts in no thread and no group yet: the callers place them.
fn empty_plan(hosts: Vec<String>, max_failures: u64) -> Plan {
    let mut plan = Plan::sketch_of(hosts).with_max_failures(max_failures);
    plan.unordered.clear();
    plan
}

fn group(id: &str, from: &str, limit: u64, hosts: Vec<String>) -> ConstraintSpec {
    ConstraintSpec {
        id: id.into(),
        from: from.into(),
        max_parallel: Amount::number(limit),
        hosts,
    }
}

fn unordered(n: usize) -> Plan {
    let hosts: Vec<String> = (0..n).map(|i| format!("host{i:06}")).collect();
    let mut plan = empty_plan(hosts.clone(), 0);
    plan.unordered = hosts.clone();
    plan.constraints
        .push(group(JOB_GROUP_ID, JOB_GROUP_ID, 200, hosts));
    plan
}

const ROLES: [&str; 5] = ["web", "api", "db", "cache", "queue"];

/// Colos of 100 hosts, 20 per role; hosts in plan order (wave by wave: the first colo of every
/// role, then the second...).
fn fleet(n: usize, max_failures: u64) -> Plan {
    let colos = n.div_ceil(100);
    let name = |role: &str, colo: usize, i: usize| format!("{role}-c{colo:04}-{i:02}");
    let mut hosts = Vec::with_capacity(n);
    for colo in 0..colos {
        for role in ROLES {
            hosts.extend((0..20).map(|i| name(role, colo, i)));
        }
    }
    let mut plan = empty_plan(hosts.clone(), max_failures);
    for role in ROLES {
        let slots: Vec<SlotSpec> = (0..colos)
            .map(|colo| SlotSpec {
                id: format!("$role.{role}.$colo.c{colo:04}"),
                step: format!("$colo.c{colo:04}"),
                hosts: (0..20).map(|i| name(role, colo, i)).collect(),
                gate: None,
                approve: None,
            })
            .collect();
        for pair in slots.windows(2) {
            plan.edges.push(EdgeSpec {
                from: pair[0].id.clone(),
                to: pair[1].id.clone(),
            });
        }
        plan.threads.push(ThreadSpec {
            name: format!("$role.{role}"),
            filter: Some(format!("$role.{role}")),
            slots,
        });
    }
    plan.constraints
        .push(group(JOB_GROUP_ID, JOB_GROUP_ID, 200, hosts.clone()));
    for colo in 0..colos {
        let members = ROLES
            .iter()
            .flat_map(|role| (0..20).map(move |i| name(role, colo, i)))
            .collect();
        plan.constraints
            .push(group(&format!("$colo.c{colo:04}"), "$colo", 10, members));
    }
    for role in ROLES {
        let members: Vec<String> = (0..colos)
            .flat_map(|colo| (0..20).map(move |i| name(role, colo, i)))
            .collect();
        let limit = (members.len() as u64 * 2 / 100).max(1);
        plan.constraints
            .push(group(&format!("$role.{role}"), "$role", limit, members));
    }
    plan
}

/// A name, a plan, and which hosts fail.
type Scenario = (&'static str, Plan, fn(usize) -> bool);

struct Figures {
    build: Duration,
    run: Duration,
    events: usize,
    peak_running: usize,
    status: String,
}

/// Drives a run to its end; host `i` fails when `fails(i)`.
fn drive(plan: &Plan, fails: impl Fn(usize) -> bool) -> Figures {
    let clock = Instant::now();
    let mut run = Scheduler::new(plan, LimitOverrides::default()).expect("a valid plan");
    let build = clock.elapsed();

    let clock = Instant::now();
    let mut running = VecDeque::new();
    let mut events = 0;
    let mut peak_running = 0;
    loop {
        while let Some(host) = run.next_to_start() {
            running.push_back(host);
            events += 1;
        }
        peak_running = peak_running.max(running.len());
        let Some(host) = running.pop_front() else {
            break;
        };
        let outcome = if fails(host.index()) {
            Outcome::Failed { exit_code: 1 }
        } else {
            Outcome::Succeeded
        };
        run.finish(host, outcome).expect("a running host");
        events += 1;
    }
    let run_time = clock.elapsed();
    let tally = run.tally();
    let end = match run.status() {
        RunStatus::Complete => "complete".to_string(),
        RunStatus::Stopped(reason) => format!("stopped: {reason}"),
        RunStatus::Blocked(blockers) => format!("blocked ({} reasons)", blockers.len()),
        RunStatus::Running | RunStatus::Stopping(_) => unreachable!("the run has ended"),
    };
    Figures {
        build,
        run: run_time,
        events,
        peak_running,
        status: format!(
            "{end}: {} succeeded, {} failed, {} skipped",
            tally.succeeded, tally.failed, tally.skipped
        ),
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.replace('_', "").parse().expect("HOSTS is a number"))
        .unwrap_or(10_000);
    if cfg!(debug_assertions) {
        println!("(debug build: use --release for figures worth comparing)");
    }
    println!(
        "{:<20} {:>8} {:>10} {:>10} {:>8} {:>9} {:>12} {:>5}  result",
        "scenario", "hosts", "build", "run", "events", "ns/event", "events/s", "peak"
    );
    let scenarios: [Scenario; 3] = [
        ("unordered, job 200", unordered(n), |_| false),
        ("fleet", fleet(n, 0), |_| false),
        ("fleet, 1% fail", fleet(n, n as u64), |i| i % 100 == 7),
    ];
    for (name, plan, fails) in scenarios {
        // The best of 5, so a busy machine does not make the figure.
        let figures = (0..5)
            .map(|_| drive(&plan, fails))
            .min_by_key(|f| f.run)
            .expect("five runs");
        let per_event = figures.run.as_nanos() as f64 / figures.events as f64;
        println!(
            "{:<20} {:>8} {:>8.2}ms {:>8.2}ms {:>8} {:>9.0} {:>12.0} {:>5}  {}",
            name,
            plan.hosts.len(),
            figures.build.as_secs_f64() * 1e3,
            figures.run.as_secs_f64() * 1e3,
            figures.events,
            per_event,
            1e9 / per_event,
            figures.peak_running,
            figures.status
        );
    }
}
