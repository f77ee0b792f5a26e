//! The fleet scheduler's decision time per started host as the number of jobs grows: the
//! pure core of the dispatcher (spec `semantics.md` §8), no runtime, no I/O.
//!
//! One fleet of 10,000 hosts in 10 colos with a per-colo budget (`$colo: max_parallel 100`),
//! and 256 worker slots: while a slot is free the driver asks `next_to_start`, then the host
//! that started first finishes (succeeds). Two shapes of jobs, at 1, 10 and 100 jobs:
//!
//! - `split`: the 10,000 hosts split between the jobs (job k takes host i when i % J == k),
//!   so the work is the same at every J and only the number of jobs changes;
//! - `overlap`: every job 1,000 hosts (job k from host 1,000·k mod 10,000 on), so at 100
//!   jobs each host is in 10 of them and runs 10 times, one job at a time.
//!
//! `cargo bench -p pogo-executor --bench fleet_decisions` prints one line per case: hosts
//! started, total time, and time per started host (the median of 5 runs).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pogo_executor::fleet::{BudgetSpec, FleetRevision, FleetScheduler, JobStart};
use pogo_executor::scheduler::{HostIdx, LimitOverrides, Outcome};
use pogo_model::Plan;

const HOSTS: usize = 10_000;
const COLOS: usize = 10;
const COLO_LIMIT: u64 = 100;
const SLOTS: usize = 256;
const RUNS: usize = 5;

fn name(i: usize) -> String {
    format!("h{i:05}")
}

fn fleet() -> FleetRevision {
    let per_colo = HOSTS / COLOS;
    FleetRevision {
        hosts: (0..HOSTS).map(name).collect(),
        budgets: (0..COLOS)
            .map(|c| BudgetSpec {
                id: format!("$colo.c{c:02}"),
                max_parallel: COLO_LIMIT,
                // Colo c holds the hosts i with i % COLOS == c: every job spans every colo.
                hosts: (0..per_colo).map(|k| name(k * COLOS + c)).collect(),
            })
            .collect(),
    }
}

/// The jobs' plans: each its hosts, unordered, with a job-wide limit of 64.
fn jobs(shape: &str, jobs: usize) -> Vec<Plan> {
    (0..jobs)
        .map(|k| {
            let hosts: Vec<String> = match shape {
                "split" => (k..HOSTS).step_by(jobs).map(name).collect(),
                _ => (0..1_000).map(|i| name((k * 1_000 + i) % HOSTS)).collect(),
            };
            Plan::sketch_of(hosts).with_job_limit(64)
        })
        .collect()
}

/// One run: every job to its end. Returns the hosts started and the time taken.
fn run(plans: &[Plan]) -> (usize, Duration) {
    let mut fs = FleetScheduler::new();
    fs.push("prod", fleet()).expect("the fleet is valid");
    let ids: Vec<String> = (0..plans.len()).map(|k| format!("job{k:03}")).collect();
    let clock = Instant::now();
    for (id, plan) in ids.iter().zip(plans) {
        fs.add_job(id, plan, LimitOverrides::default(), JobStart::Fresh, None)
            .expect("the job is valid");
    }
    let mut running: VecDeque<(usize, HostIdx)> = VecDeque::new();
    let mut started = 0;
    loop {
        while running.len() < SLOTS {
            let Some((id, host)) = fs.next_to_start() else {
                break;
            };
            let k = ids
                .binary_search_by(|x| x.as_str().cmp(id))
                .expect("a known job");
            running.push_back((k, host));
            started += 1;
        }
        let Some((k, host)) = running.pop_front() else {
            break;
        };
        fs.finish(&ids[k], host, Outcome::Succeeded)
            .expect("a running host finishes");
        fs.take_ended();
    }
    let took = clock.elapsed();
    for id in &ids {
        assert!(
            fs.status(id).is_some_and(|s| s.is_ended()),
            "job {id} did not end"
        );
    }
    (started, took)
}

fn main() {
    println!(
        "fleet scheduler: {HOSTS} hosts, {COLOS} colos at max_parallel {COLO_LIMIT}, \
         {SLOTS} slots, each job limited to 64; median of {RUNS} runs"
    );
    for shape in ["split", "overlap"] {
        for n in [1, 10, 100] {
            let plans = jobs(shape, n);
            let mut times = Vec::new();
            let mut started = 0;
            for _ in 0..RUNS {
                let (s, took) = run(&plans);
                started = s;
                times.push(took);
            }
            times.sort();
            let median = times[RUNS / 2];
            println!(
                "{shape:>7} {n:>3} jobs: {started:>6} hosts started in {:>7.1} ms, \
                 {:>5.2} us per started host",
                median.as_secs_f64() * 1e3,
                median.as_secs_f64() * 1e6 / started as f64
            );
        }
    }
}
