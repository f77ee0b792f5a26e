//! The runner under a paused tokio clock: order, limits, retries, timeouts, failure budget,
//! halt, kill, run timeout, and resume from the journal, without waiting in real time.
//!
//! The transport here is scripted (each host's attempts take a given virtual time and end a
//! given way) because the real transports run real processes, which a paused clock cannot
//! drive; they have their own tests against real processes and a real sshd.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pogo_executor::events::{self, Event, FinalState, RunResult};
use pogo_executor::journal::{self, Journal};
use pogo_executor::runner::{self, Control, Reporter, RunSettings};
use pogo_executor::scheduler::{FailedHosts, LimitOverrides, Scheduler};
use pogo_executor::transport::{
    BoxFuture, CancelToken, ExitStatus, Kill, Outcome, Output, RunResult as Attempt, Stream,
    Transport,
};
use pogo_executor::why::HostWhy;
use pogo_model::Plan;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How one attempt on a host goes: it takes `seconds` and exits with `code`.
#[derive(Clone, Copy)]
struct Step {
    seconds: u64,
    code: i32,
}

/// A transport whose hosts behave as scripted, recording when each attempt ran.
#[derive(Default)]
struct Scripted {
    script: HashMap<String, Vec<Step>>,
    default: Option<Step>,
    calls: Mutex<HashMap<String, usize>>,
    spans: Mutex<Vec<(String, Duration, Duration)>>,
    origin: Mutex<Option<Instant>>,
}

impl Scripted {
    fn every_host(seconds: u64) -> Scripted {
        Scripted {
            default: Some(Step { seconds, code: 0 }),
            ..Scripted::default()
        }
    }

    fn host(mut self, host: &str, steps: &[(u64, i32)]) -> Scripted {
        let steps = steps
            .iter()
            .map(|&(seconds, code)| Step { seconds, code })
            .collect();
        self.script.insert(host.to_string(), steps);
        self
    }

    /// Every attempt as (host, start, end), from the first call.
    fn spans(&self) -> Vec<(String, Duration, Duration)> {
        self.spans.lock().unwrap().clone()
    }

    fn attempts(&self, host: &str) -> usize {
        self.calls.lock().unwrap().get(host).copied().unwrap_or(0)
    }
}

impl Transport for Scripted {
    fn run<'a>(
        &'a self,
        host: &'a str,
        _command: &'a str,
        timeout: Option<Duration>,
        cancel: &'a CancelToken,
        output: mpsc::Sender<Output>,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let origin = *self.origin.lock().unwrap().get_or_insert_with(Instant::now);
            let attempt = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(host.to_string()).or_insert(0);
                *n += 1;
                *n
            };
            let step = self
                .script
                .get(host)
                .and_then(|steps| steps.get(attempt - 1).or(steps.last()))
                .copied()
                .or(self.default)
                .expect("every host is scripted");
            let start = Instant::now();
            let _ = output
                .send(Output::line(
                    Stream::Stdout,
                    format!("{host} attempt {attempt}").into_bytes(),
                ))
                .await;
            let work = tokio::time::sleep(Duration::from_secs(step.seconds));
            let limit = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            let outcome = tokio::select! {
                () = work => Outcome::Exited(ExitStatus::Code(step.code)),
                () = limit => Outcome::TimedOut(Kill::Killed),
                () = cancel.cancelled() => Outcome::Cancelled(Kill::Killed),
            };
            self.spans.lock().unwrap().push((
                host.to_string(),
                start - origin,
                Instant::now() - origin,
            ));
            Attempt {
                outcome,
                duration: start.elapsed(),
            }
        })
    }

    fn close<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[derive(Default)]
struct Collect(Vec<Event>);

impl Reporter for Collect {
    fn report(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}

/// `threads`: each a list of slots, each a list of hosts; `groups`: (id, max_parallel, hosts).
fn plan(threads: &[&[&[&str]]], unordered: &[&str], groups: &[(&str, u64, &[&str])]) -> Plan {
    let mut hosts: Vec<String> = Vec::new();
    let add = |h: &str, hosts: &mut Vec<String>| {
        if !hosts.iter().any(|x| x == h) {
            hosts.push(h.to_string());
        }
    };
    let mut thread_specs = Vec::new();
    let mut edges = Vec::new();
    for (t, slots) in threads.iter().enumerate() {
        let mut slot_specs = Vec::new();
        for (s, slot) in slots.iter().enumerate() {
            for h in slot.iter() {
                add(h, &mut hosts);
            }
            let id = format!("t{t}.s{s}");
            if s > 0 {
                edges.push(serde_json::json!({"from": format!("t{t}.s{}", s - 1), "to": id}));
            }
            slot_specs.push(serde_json::json!({"id": id, "step": id, "hosts": slot}));
        }
        thread_specs.push(
            serde_json::json!({"name": format!("t{t}"), "filter": null, "slots": slot_specs}),
        );
    }
    for h in unordered {
        add(h, &mut hosts);
    }
    let constraints: Vec<_> = groups
        .iter()
        .map(|(id, max, members)| {
            serde_json::json!({"id": id, "from": id, "max_parallel": {"value": max}, "hosts": members})
        })
        .collect();
    let value = serde_json::json!({
        "format_version": 1, "producer": "test",
        "source": {"config": "inline", "spec": null},
        "digests": {"config": "", "inventory": ""},
        "command": "deploy",
        "options": {"timeout": 600, "retries": 0, "max_failures": {"value": 0}, "run_timeout": null},
        "hosts": hosts, "threads": thread_specs, "unordered": unordered, "not_in_config": [],
        "external_tags": [], "constraints": constraints, "edges": edges, "warnings": []
    });
    Plan::from_json(&value.to_string()).expect("test plans are valid")
}

fn settings(dir: &tempfile::TempDir) -> RunSettings {
    RunSettings {
        run_id: "test-run".into(),
        command: "deploy".into(),
        timeout: Some(Duration::from_secs(600)),
        retries: 0,
        retry_delay: Duration::from_secs(5),
        run_timeout: None,
        log_dir: Some(dir.path().to_path_buf()),
        resumed: false,
        overrides: Vec::new(),
        only: None,
        concurrent: None,
        max_output: pogo_executor::hostlog::DEFAULT_MAX_OUTPUT,
        log_reserve: 0,
        phases: Default::default(),
        run_dir: None,
        gates_passed: Default::default(),
        approved: Default::default(),
    }
}

struct Finished {
    end: runner::RunEnd,
    events: Vec<Event>,
    journal: Vec<Event>,
    /// How many batches the journal made durable (one fdatasync each).
    syncs: u64,
}

async fn go(
    plan: &Plan,
    scheduler: &mut Scheduler,
    transport: Arc<Scripted>,
    settings: &RunSettings,
    control: &Control,
    journal_path: &std::path::Path,
) -> Finished {
    let mut journal = if journal_path.exists() {
        Journal::reopen(journal_path).unwrap().0
    } else {
        Journal::create(journal_path).unwrap()
    };
    let mut reporter = Collect::default();
    let end = runner::run(
        plan,
        scheduler,
        transport,
        settings,
        control,
        &mut journal,
        &mut reporter,
    )
    .await
    .unwrap();
    Finished {
        end,
        events: reporter.0,
        journal: journal::read(journal_path).unwrap(),
        syncs: journal.syncs(),
    }
}

fn final_state(events: &[Event], host: &str) -> Option<FinalState> {
    events.iter().rev().find_map(|e| match e {
        Event::HostFinished {
            host: h, result, ..
        } if h == host => Some(*result),
        _ => None,
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn slots_run_in_order_and_groups_hold() {
    // Thread t0: a1,a2 then b1,b2; thread t1: c1,c2,c3 at once; group g allows 2 of c*.
    let plan = plan(
        &[&[&["a1", "a2"], &["b1", "b2"]], &[&["c1", "c2", "c3"]]],
        &["u1"],
        &[("$g", 2, &["c1", "c2", "c3"])],
    );
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Scripted::every_host(10).host("a2", &[(30, 0)]));
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings(&dir),
        &Control::new(),
        &dir.path().join("journal"),
    )
    .await;
    assert_eq!(run.end.result, RunResult::Succeeded);
    let spans: HashMap<String, (Duration, Duration)> = transport
        .spans()
        .into_iter()
        .map(|(h, s, e)| (h, (s, e)))
        .collect();
    // b* start only when a2, the slower of slot 1, is done at 30 s.
    assert_eq!(spans["b1"].0, secs(30));
    assert_eq!(spans["b2"].0, secs(30));
    // At most 2 of the c* group at once: c3 waits for the first to end.
    assert_eq!(spans["c3"].0, secs(10));
    // The unordered host runs at once.
    assert_eq!(spans["u1"].0, secs(0));
    // Events are the journal's, in the same order.
    assert_eq!(run.events, run.journal);
    assert!(matches!(
        run.events.last(),
        Some(Event::RunFinished { succeeded: 8, .. })
    ));
    // Each host's output is in its log.
    let log = std::fs::read_to_string(dir.path().join("c3.log")).unwrap();
    assert_eq!(log, "c3 attempt 1\n");
}

#[tokio::test(start_paused = true)]
async fn completions_that_arrive_together_are_made_durable_in_one_batch() {
    let hosts: Vec<String> = (1..=40).map(|i| format!("h{i:02}")).collect();
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let plan = plan(&[], &names, &[("$all", 40, &names)]);
    let dir = tempfile::tempdir().unwrap();
    // All 40 start at once and end at the same moment.
    let transport = Arc::new(Scripted::every_host(10));
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings(&dir),
        &Control::new(),
        &dir.path().join("journal"),
    )
    .await;
    assert_eq!(run.end.result, RunResult::Succeeded);
    assert_eq!(
        run.events, run.journal,
        "reported only once durable, in order"
    );
    let finished = run
        .journal
        .iter()
        .filter(|e| matches!(e, Event::HostFinished { .. }))
        .count();
    assert_eq!(finished, 40);
    // The start (run and hosts started), the 40 ends together, the run's end: a handful of
    // fdatasyncs, where one per completion made 40 more.
    assert!(run.syncs <= 4, "{} syncs for 40 hosts", run.syncs);
}

#[tokio::test(start_paused = true)]
async fn a_sequential_chain_commits_each_step_at_once() {
    let names = ["c1", "c2", "c3", "c4", "c5"];
    let plan = plan(&[], &names, &[("$one", 1, &names)]);
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Scripted::every_host(1));
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings(&dir),
        &Control::new(),
        &dir.path().join("journal"),
    )
    .await;
    assert_eq!(run.end.result, RunResult::Succeeded);
    // Each host starts the moment the one before it ends: grouping never waits when nothing
    // else runs.
    let mut spans = transport.spans();
    spans.sort_by_key(|(_, start, _)| *start);
    for pair in spans.windows(2) {
        assert_eq!(pair[1].1, pair[0].2, "{spans:?}");
    }
}

/// A live view's stand-in: it asks for explanations and keeps each set it is given, with
/// when it came.
struct Explained {
    start: Instant,
    waits: Vec<(Duration, Vec<String>)>,
}

impl Reporter for Explained {
    fn report(&mut self, _event: &Event) {}

    fn explains(&self) -> bool {
        true
    }

    fn waiting(&mut self, heads: &[HostWhy]) {
        let lines = heads
            .iter()
            .map(|h| {
                format!(
                    "{} {}: {}",
                    h.thread.as_deref().unwrap_or("-"),
                    h.host,
                    h.reason
                )
            })
            .collect();
        self.waits.push((self.start.elapsed(), lines));
    }
}

#[tokio::test(start_paused = true)]
async fn a_live_view_hears_why_the_head_of_each_thread_waits() {
    // Thread t0: a1,a2,a3 in one step, 1 at a time (group $g); thread t1: b1 then b2.
    let plan = plan(
        &[&[&["a1", "a2", "a3"]], &[&["b1"], &["b2"]]],
        &[],
        &[("$g", 1, &["a1", "a2", "a3"])],
    );
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Scripted::every_host(10).host("b1", &[(25, 0)]));
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let mut journal = Journal::create(&dir.path().join("journal")).unwrap();
    let mut view = Explained {
        start: Instant::now(),
        waits: Vec::new(),
    };
    let end = runner::run(
        &plan,
        &mut scheduler,
        transport,
        &settings(&dir),
        &Control::new(),
        &mut journal,
        &mut view,
    )
    .await
    .unwrap();
    assert_eq!(end.result, RunResult::Succeeded);
    assert_eq!(
        view.waits[0],
        (
            secs(0),
            vec!["t0 a2: group `$g` is full, 1 of 1 down: a1 running".to_string()]
        )
    );
    // Thread t1 has no head: its current step's only host, b1, runs (b2 is in the next
    // step). At 10 s a1 is done and a2 runs: a3 waits for a2. Only changes are told, and
    // each at most every half second.
    assert_eq!(
        view.waits[1],
        (
            secs(10),
            vec!["t0 a3: group `$g` is full, 1 of 1 down: a2 running".to_string()]
        )
    );
    assert!(view
        .waits
        .windows(2)
        .all(|w| w[1].0 >= w[0].0 + runner::EXPLAIN_EVERY && w[0].1 != w[1].1));
    // Nothing waits once every host has started.
    assert!(view.waits.last().unwrap().1.is_empty(), "{:?}", view.waits);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_is_retried_after_the_delay() {
    let plan = plan(&[&[&["a"], &["b"]]], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Scripted::every_host(10).host("a", &[(10, 1), (10, 0)]));
    let mut settings = settings(&dir);
    settings.retries = 2;
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings,
        &Control::new(),
        &dir.path().join("journal"),
    )
    .await;
    assert_eq!(run.end.result, RunResult::Succeeded);
    assert_eq!(transport.attempts("a"), 2);
    let spans = transport.spans();
    // Attempt 1: 0-10 s; the retry after the 5 s delay: 15-25 s; then b.
    assert_eq!(spans[1], ("a".to_string(), secs(15), secs(25)));
    assert_eq!(spans[2].1, secs(25));
    assert!(run.events.iter().any(|e| matches!(e,
        Event::HostRetrying { host, attempt: 2, after, .. } if host == "a" && after == "exit code 1")));
    let log = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
    assert_eq!(log, "a attempt 1\n--- attempt 2 ---\na attempt 2\n");
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_host_fails_and_the_first_failure_halts_the_rollout() {
    let plan = plan(&[&[&["a", "b"], &["c"]]], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Scripted::every_host(10).host("a", &[(1000, 0)]));
    let mut settings = settings(&dir);
    settings.timeout = Some(secs(60));
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings,
        &Control::new(),
        &dir.path().join("journal"),
    )
    .await;
    assert_eq!(run.end.result, RunResult::Stopped);
    assert_eq!(final_state(&run.events, "a"), Some(FinalState::TimedOut));
    assert_eq!(final_state(&run.events, "b"), Some(FinalState::Succeeded));
    assert_eq!(
        transport.attempts("c"),
        0,
        "nothing starts after the budget is spent"
    );
    assert!(run
        .events
        .iter()
        .any(|e| matches!(e, Event::HostsSkipped { hosts, .. } if hosts == &["c"])));
    assert_eq!(transport.spans()[1].2, secs(60), "killed at the timeout");
}

#[tokio::test(start_paused = true)]
async fn halt_lets_running_hosts_finish_and_resume_runs_only_the_rest() {
    let plan = plan(&[&[&["a", "b"], &["c", "d"]]], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal");
    let transport = Arc::new(Scripted::every_host(10));
    let control = Control::new();
    let halter = control.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(5)).await;
        halter.halt();
    });
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let first = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings(&dir),
        &control,
        &journal_path,
    )
    .await;
    assert_eq!(first.end.result, RunResult::Stopped);
    assert_eq!(final_state(&first.events, "a"), Some(FinalState::Succeeded));
    assert_eq!(transport.attempts("c"), 0);

    // Resume from the journal: a and b succeeded and do not run again.
    let (states, interrupted) = events::replay(&plan.hosts, &journal::read(&journal_path).unwrap());
    assert!(interrupted.is_empty());
    let mut scheduler = Scheduler::resume(
        &plan,
        LimitOverrides::default(),
        &states,
        FailedHosts::StayFailed,
    )
    .unwrap();
    let mut settings = settings(&dir);
    settings.resumed = true;
    let second = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings,
        &Control::new(),
        &journal_path,
    )
    .await;
    assert_eq!(second.end.result, RunResult::Succeeded);
    assert_eq!(transport.attempts("a"), 1);
    assert_eq!(transport.attempts("b"), 1);
    assert_eq!(transport.attempts("c"), 1);
    // The journal holds both sessions.
    let all = journal::read::<Event>(&journal_path).unwrap();
    assert_eq!(all.len(), first.journal.len() + second.events.len());
}

/// Ctrl-C stops retries: a halt while a retry waits out its delay, or while an attempt that
/// will fail runs, leaves the host failed with the attempt it had; no attempt starts after the
/// halt. (Before, attempts 2, 3 and 4 of `--retry 3` all ran after one Ctrl-C.)
#[tokio::test(start_paused = true)]
async fn a_halt_stops_retries_waiting_or_to_come() {
    let plan = plan(&[], &["a", "b"], &[]);
    let dir = tempfile::tempdir().unwrap();
    // a fails at 1 s and waits 5 s for its retry; b fails at 8 s, after the halt at 3 s.
    let transport = Arc::new(
        Scripted::every_host(10)
            .host("a", &[(1, 1), (1, 1), (1, 1), (1, 1)])
            .host("b", &[(8, 2), (1, 2), (1, 2), (1, 2)]),
    );
    let mut settings = settings(&dir);
    settings.retries = 3;
    let control = Control::new();
    let halter = control.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(3)).await;
        halter.halt();
    });
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let started = tokio::time::Instant::now();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings,
        &control,
        &dir.path().join("journal"),
    )
    .await;
    assert_eq!(transport.attempts("a"), 1);
    assert_eq!(transport.attempts("b"), 1);
    // a's retry was due at 6 s; the run ends when b's attempt does, at 8 s.
    assert_eq!(started.elapsed(), secs(8));
    assert_eq!(run.end.result, RunResult::Stopped);
    for (host, code) in [("a", 1), ("b", 2)] {
        let finished = run.events.iter().find_map(|e| match e {
            Event::HostFinished {
                host: h,
                result,
                attempts,
                message,
                ..
            } if h == host => Some((*result, *attempts, message.clone())),
            _ => None,
        });
        assert_eq!(
            finished,
            Some((
                FinalState::Failed { exit_code: code },
                1,
                format!("exit code {code}; not retried: the run was halted")
            ))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn kill_cancels_running_commands() {
    let plan = plan(&[&[&["a", "b"], &["c"]]], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Scripted::every_host(100));
    let control = Control::new();
    let killer = control.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(5)).await;
        killer.kill();
    });
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings(&dir),
        &control,
        &dir.path().join("journal"),
    )
    .await;
    assert_eq!(run.end.result, RunResult::Stopped);
    assert_eq!(final_state(&run.events, "a"), Some(FinalState::Cancelled));
    assert_eq!(final_state(&run.events, "b"), Some(FinalState::Cancelled));
    assert!(transport.spans().iter().all(|(_, _, end)| *end == secs(5)));
    assert_eq!(transport.attempts("c"), 0);
}

#[tokio::test(start_paused = true)]
async fn the_run_timeout_halts_and_kills() {
    let plan = plan(&[&[&["a"], &["b"]]], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Scripted::every_host(100));
    let mut settings = settings(&dir);
    settings.run_timeout = Some(secs(30));
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings,
        &Control::new(),
        &dir.path().join("journal"),
    )
    .await;
    assert_eq!(run.end.result, RunResult::Stopped);
    assert_eq!(final_state(&run.events, "a"), Some(FinalState::Cancelled));
    assert_eq!(transport.spans()[0].2, secs(30));
    // The run timeout is the one reason given: not also "halted by the operator" (as before),
    // and once.
    let reasons: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RunStopping { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        ["the run timeout expired; running commands are killed"]
    );
    assert!(
        !run.end.reasons.iter().any(|r| r.contains("operator")),
        "{:?}",
        run.end.reasons
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_leaves_started_hosts_interrupted_and_they_do_not_rerun_by_default() {
    // A journal as a crashed session leaves it: a finished, b started and never finished.
    let plan = plan(&[&[&["a", "b"], &["c"]]], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal");
    let mut journal = Journal::<Event>::create(&journal_path).unwrap();
    journal
        .append(&[
            Event::HostStarted {
                host: "a".into(),
                at_ms: 0,
            },
            Event::HostStarted {
                host: "b".into(),
                at_ms: 0,
            },
            Event::HostFinished {
                host: "a".into(),
                result: FinalState::Succeeded,
                attempts: 1,
                duration_ms: 10,
                message: "exit code 0".into(),
                phase: None,
                at_ms: 10,
            },
        ])
        .unwrap();
    drop(journal);
    let (states, interrupted) = events::replay(&plan.hosts, &journal::read(&journal_path).unwrap());
    assert_eq!(interrupted.len(), 1);

    // By default an interrupted host counts as failed: with max_failures 0 nothing runs.
    let scheduler = Scheduler::resume(
        &plan,
        LimitOverrides::default(),
        &states,
        FailedHosts::StayFailed,
    )
    .unwrap();
    assert!(scheduler.status().is_ended());

    // With failed hosts retried, b runs again and c after it; a never again.
    let transport = Arc::new(Scripted::every_host(10));
    let mut scheduler = Scheduler::resume(
        &plan,
        LimitOverrides::default(),
        &states,
        FailedHosts::Retry,
    )
    .unwrap();
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings(&dir),
        &Control::new(),
        &journal_path,
    )
    .await;
    assert_eq!(run.end.result, RunResult::Succeeded);
    assert_eq!(transport.attempts("a"), 0);
    assert_eq!(transport.attempts("b"), 1);
    assert_eq!(transport.attempts("c"), 1);
}

/// Regression: a resumed run that was over before anything started (an interrupted host over
/// the failure budget) journaled neither why it stopped nor the hosts it skipped.
#[tokio::test(start_paused = true)]
async fn a_resumed_run_over_at_once_journals_why_and_what_it_skips() {
    let plan = plan(&[&[&["a", "b"], &["c"]]], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal");
    let mut journal = Journal::<Event>::create(&journal_path).unwrap();
    journal
        .append(&[
            Event::HostStarted {
                host: "a".into(),
                at_ms: 0,
            },
            Event::HostStarted {
                host: "b".into(),
                at_ms: 0,
            },
            Event::HostFinished {
                host: "a".into(),
                result: FinalState::Succeeded,
                attempts: 1,
                duration_ms: 10,
                message: "exit code 0".into(),
                phase: None,
                at_ms: 10,
            },
        ])
        .unwrap();
    drop(journal);
    let (states, _) = events::replay(&plan.hosts, &journal::read(&journal_path).unwrap());
    let mut scheduler = Scheduler::resume(
        &plan,
        LimitOverrides::default(),
        &states,
        FailedHosts::StayFailed,
    )
    .unwrap();
    let transport = Arc::new(Scripted::every_host(10));
    let mut settings = settings(&dir);
    settings.resumed = true;
    let run = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings,
        &Control::new(),
        &journal_path,
    )
    .await;
    assert_eq!(run.end.result, RunResult::Stopped);
    assert_eq!(transport.attempts("c"), 0);
    assert!(
        run.events.iter().any(|e| matches!(e,
            Event::RunStopping { reason, .. } if reason.contains("max_failures"))),
        "{:?}",
        run.events
    );
    assert!(run.events.iter().any(|e| matches!(e,
        Event::HostsSkipped { hosts, .. } if hosts == &["c".to_string()])));
    let (states, _) = events::replay(&plan.hosts, &journal::read(&journal_path).unwrap());
    assert_eq!(states[2], pogo_executor::scheduler::HostState::Skipped);
}

/// Regression: a host run again by a resumed session had its new output appended right after
/// its old output, with nothing to tell the sessions apart.
#[tokio::test(start_paused = true)]
async fn a_resumed_sessions_output_is_marked_in_the_log() {
    let plan = plan(&[&[&["a"]]], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal");
    let transport = Arc::new(Scripted::default().host("a", &[(1, 1), (1, 0)]));
    let mut scheduler = Scheduler::new(&plan, LimitOverrides::default()).unwrap();
    let first = go(
        &plan,
        &mut scheduler,
        transport.clone(),
        &settings(&dir),
        &Control::new(),
        &journal_path,
    )
    .await;
    assert_eq!(first.end.result, RunResult::Failed);

    let (states, _) = events::replay(&plan.hosts, &journal::read(&journal_path).unwrap());
    let mut scheduler = Scheduler::resume(
        &plan,
        LimitOverrides::default(),
        &states,
        FailedHosts::Retry,
    )
    .unwrap();
    let mut settings = settings(&dir);
    settings.resumed = true;
    let second = go(
        &plan,
        &mut scheduler,
        transport,
        &settings,
        &Control::new(),
        &journal_path,
    )
    .await;
    assert_eq!(second.end.result, RunResult::Succeeded);
    let log = std::fs::read_to_string(dir.path().join(pogo_executor::rundir::log_file_name("a")))
        .unwrap();
    assert_eq!(log, "a attempt 1\n--- resumed ---\na attempt 2\n");
}
