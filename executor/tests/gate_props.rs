//! Property tests of gates and approvals in the scheduler (spec `semantics.md` §9): random
//! threads of steps, gates on random steps, each decided at random (passed, failed, or never
//! decided: an approval nobody gives), a random job-wide limit, hosts ending in random order.
//!
//! After every step: no host of a step starts before every gated step before it in its
//! thread has passed its gate, and every step before it has finished; nothing starts after a
//! gate failed; a gate is due only once every host of its step has finished. At the end:
//! threads without a gate are never held by another thread's gate (all their hosts ran), and
//! a run with an undecided gate is not over.

use std::collections::BTreeMap;

use pogo_executor::scheduler::{
    HostIdx, HostState, LimitOverrides, Outcome, RunStatus, Scheduler, SlotIdx, StopReason,
};
use pogo_model::Plan;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Pass,
    Fail,
    Never,
}

#[derive(Debug, Clone)]
struct Scenario {
    /// Per thread, per step: how many hosts, and the step's gate decision (None: no gate).
    threads: Vec<Vec<(usize, Option<Decision>)>>,
    job_limit: u64,
    /// Which running host ends next: an index into the running list, taken modulo.
    picks: Vec<usize>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let decision = prop_oneof![
        4 => Just(None),
        2 => Just(Some(Decision::Pass)),
        1 => Just(Some(Decision::Fail)),
        1 => Just(Some(Decision::Never)),
    ];
    let step = (1usize..4, decision);
    let thread = prop::collection::vec(step, 1..5);
    (
        prop::collection::vec(thread, 1..4),
        1u64..5,
        prop::collection::vec(0usize..100, 64),
    )
        .prop_map(|(threads, job_limit, picks)| Scenario {
            threads,
            job_limit,
            picks,
        })
}

/// The plan, and for each slot (in plan order): its thread, its position, its hosts.
fn plan_of(s: &Scenario) -> (Plan, Vec<(usize, usize, Vec<String>)>) {
    let mut names = Vec::new();
    let mut slots = Vec::new();
    for (t, steps) in s.threads.iter().enumerate() {
        for (k, &(n, _)) in steps.iter().enumerate() {
            let hosts: Vec<String> = (0..n).map(|i| format!("t{t}s{k}h{i}")).collect();
            names.extend(hosts.iter().cloned());
            slots.push((t, k, hosts));
        }
    }
    let mut plan = Plan::sketch_of(names);
    for (t, steps) in s.threads.iter().enumerate() {
        let texts: Vec<String> = slots
            .iter()
            .filter(|(st, _, _)| *st == t)
            .map(|(_, _, hosts)| hosts.join(" "))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        plan = plan.with_thread(&format!("t{t}"), &refs);
        for (k, &(_, gate)) in steps.iter().enumerate() {
            if gate.is_some() {
                plan = plan.with_gate(&format!("t{t}.{k}"), "check");
            }
        }
    }
    (plan.with_job_limit(s.job_limit), slots)
}

fn run(s: &Scenario) -> Result<(), TestCaseError> {
    let (plan, slots) = plan_of(s);
    let index: BTreeMap<&str, usize> = plan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let slot_of_host: BTreeMap<usize, usize> = slots
        .iter()
        .enumerate()
        .flat_map(|(s, (_, _, hosts))| hosts.iter().map(move |h| (s, h)))
        .map(|(s, h)| (index[h.as_str()], s))
        .collect();
    let decision = |slot: usize| s.threads[slots[slot].0][slots[slot].1].1;
    let mut sched = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let mut passed = vec![false; slots.len()];
    let mut failed_gate = false;
    let mut running: Vec<usize> = Vec::new();
    let mut ended = vec![false; plan.hosts.len()];
    let mut picks = s.picks.iter().cycle();
    let mut decided = vec![false; slots.len()];
    loop {
        while let Some(h) = sched.next_to_start() {
            let h = h.index();
            prop_assert!(!failed_gate, "a host started after a gate failed");
            let slot = slot_of_host[&h];
            let (t, k, _) = &slots[slot];
            for (earlier, (et, ek, hosts)) in slots.iter().enumerate() {
                if et == t && ek < k {
                    prop_assert!(
                        hosts.iter().all(|e| ended[index[e.as_str()]]),
                        "{} started before step {ek} of its thread finished",
                        plan.hosts[h]
                    );
                    if decision(earlier).is_some() {
                        prop_assert!(
                            passed[earlier],
                            "{} started before the gate of step {ek} passed",
                            plan.hosts[h]
                        );
                    }
                }
            }
            running.push(h);
        }
        for due in sched.gates_due() {
            let slot = due.index();
            prop_assert!(decision(slot).is_some(), "a gate due on a step without one");
            prop_assert!(
                slots[slot].2.iter().all(|h| ended[index[h.as_str()]]),
                "a gate due before its step's hosts all finished"
            );
        }
        if !running.is_empty() {
            let i = picks.next().unwrap() % running.len();
            let h = running.remove(i);
            ended[h] = true;
            sched.finish(HostIdx::new(h), Outcome::Succeeded).unwrap();
            continue;
        }
        // Nothing runs: decide the first gate due that gets a decision.
        let next = sched
            .gates_due()
            .into_iter()
            .find(|g| !decided[g.index()] && decision(g.index()) != Some(Decision::Never));
        let Some(gate) = next else {
            break;
        };
        let slot = gate.index();
        decided[slot] = true;
        match decision(slot) {
            Some(Decision::Pass) => {
                sched.pass_gate(SlotIdx::new(slot)).unwrap();
                passed[slot] = true;
            }
            _ => {
                let reason = StopReason::GateFailed {
                    step: format!("t{}.{}", slots[slot].0, slots[slot].1),
                    how: "exit code 1".into(),
                };
                let changes = sched.fail_gate(SlotIdx::new(slot), reason).unwrap();
                prop_assert!(changes.stopped.is_some());
                failed_gate = true;
            }
        }
    }
    let undecided = !sched.gates_due().is_empty();
    if undecided && !failed_gate {
        prop_assert_eq!(sched.status(), RunStatus::Running);
    } else {
        prop_assert!(sched.status().is_ended(), "{:?}", sched.status());
    }
    if !failed_gate {
        // A thread without a gate is held by no other thread's gate: all its hosts ran.
        for (t, steps) in s.threads.iter().enumerate() {
            if steps.iter().all(|(_, gate)| gate.is_none()) {
                for (_, _, hosts) in slots.iter().filter(|(st, _, _)| *st == t) {
                    for host in hosts {
                        prop_assert!(ended[index[host.as_str()]], "{host} was held");
                    }
                }
            }
        }
    }
    for (h, &done) in ended.iter().enumerate() {
        if !done {
            prop_assert!(
                matches!(
                    sched.host_state(HostIdx::new(h)),
                    HostState::Pending | HostState::Skipped
                ),
                "{} never ran yet is {:?}",
                plan.hosts[h],
                sched.host_state(HostIdx::new(h))
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn gates_hold_exactly_the_steps_after_them(s in scenario()) {
        run(&s)?;
    }
}
