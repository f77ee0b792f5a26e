//! Times `pogo_executor::simulate` alone, without reading or rendering:
//! `cargo run --release -p pogo-executor --example simulate_bench PLAN [RUNS]`.
//!
//! The plan is read once; the simulation (with 50% jitter, so nearly every host ends at its
//! own instant: the worst case for the event loop) runs RUNS times (default 7) and the minimum
//! and median are printed. `bench/README.md` has the figures for the 100,000-host fleet of
//! `bench/gen-fleet.py`.

use std::time::{Duration, Instant};

use pogo_executor::simulate::{simulate, SimulationPolicy};
use pogo_model::Plan;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: simulate_bench PLAN [RUNS]");
    let runs: usize = args
        .next()
        .map_or(7, |r| r.parse().expect("RUNS is a number"));
    let clock = Instant::now();
    let text = std::fs::read_to_string(&path).expect("a readable plan");
    let plan = Plan::from_json(&text).expect("a valid plan");
    let read = clock.elapsed();

    for jitter_percent in [0, 50] {
        let policy = SimulationPolicy {
            jitter_percent,
            ..SimulationPolicy::default()
        };
        let mut times: Vec<Duration> = Vec::new();
        let mut sim = None;
        for _ in 0..runs {
            let clock = Instant::now();
            sim = Some(simulate(&plan, &policy).expect("a simulation"));
            times.push(clock.elapsed());
        }
        times.sort();
        let sim = sim.expect("at least one run");
        println!(
            "{} hosts, jitter {jitter_percent}%: simulate min {:.1} ms, median {:.1} ms \
             ({} waves, critical path of {} hosts, makespan {} s); reading the plan took {:.1} ms",
            plan.hosts.len(),
            times[0].as_secs_f64() * 1e3,
            times[times.len() / 2].as_secs_f64() * 1e3,
            sim.waves.len(),
            sim.critical_path.len(),
            sim.makespan_ms / 1000,
            read.as_secs_f64() * 1e3,
        );
    }
}
