//! Gates and approvals between steps as an operator uses them (spec `semantics.md` §9): real
//! pogo processes with the local transport; `pogo approve` from a second process, as an
//! operator would give it from another terminal.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Run;
use serde_json::Value;

const CONFIG: &str = "tag:
  a: [a1]
  b: [b1]
  c: [c1]
  d: [d1]
  u: [u1]
sequence:
  one: [$a, $b]
  two: [$c, $d]
";

/// `pogo ARGS` in `dir`, as operator alice.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = common::pogo_command(dir, args);
    command.env("USER", "alice");
    command
}

fn pogo(dir: &Path, args: &[&str]) -> Run {
    Run(command(dir, args).output().unwrap())
}

/// The journal of the only run in `dir`.
fn journal(dir: &Path) -> Vec<Value> {
    let runs = dir.join(".pogo/runs");
    let Some(Ok(run)) = std::fs::read_dir(runs).ok().and_then(|mut d| d.next()) else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(run.path().join("journal.ndjson")).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn position(events: &[Value], event: &str, key: &str, value: &str) -> Option<usize> {
    events
        .iter()
        .position(|e| e["event"] == event && e[key] == value)
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn finish(child: Child) -> Run {
    Run(child.wait_with_output().unwrap())
}

fn scene(gates: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.cfg"), CONFIG).unwrap();
    let mut args = vec![
        "plan",
        "--config",
        "fleet.cfg",
        "--command",
        "echo ran on $POGO_HOST",
        "-o",
        "plan.json",
    ];
    args.extend_from_slice(gates);
    pogo(dir.path(), &args).expect(0);
    dir
}

#[test]
fn a_failed_gate_stops_the_run_and_a_resume_runs_it_again_and_goes_on() {
    let dir = scene(&[
        "--gate",
        "one.$a=test -e ok && echo checked $POGO_STEP_HOSTS",
    ]);
    let d = dir.path();
    let plan = pogo(d, &["show", "plan.json"]).expect(0).stdout();
    assert!(plan.contains("- after one.$a: gate `test -e ok"), "{plan}");
    assert!(
        plan.contains("u1") && plan.contains("not wait for any gate or approval: u1"),
        "the plan warns about the unordered host: {plan}"
    );
    let run = pogo(d, &["apply", "plan.json", "--transport", "local", "--json"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    let events = journal(d);
    let failed = position(&events, "gate_failed", "step", "one.$a").expect("gate_failed");
    assert_eq!(events[failed]["message"], "exit code 1");
    assert!(position(&events, "host_started", "host", "b1").is_none());
    // The hosts that started with a1 (another thread's first step, the unordered host) were
    // not held by its gate; what had not started when it failed was skipped with b1.
    for host in ["c1", "u1"] {
        assert!(
            position(&events, "host_finished", "host", host).is_some(),
            "{host}"
        );
    }
    let id = events[0]["run_id"].as_str().unwrap().to_string();

    // Fixed: the resumed run runs the gate again, and then the step after it.
    std::fs::write(d.join("ok"), "").unwrap();
    pogo(d, &["apply", "--resume", &id, "--transport", "local"]).expect(0);
    let events = journal(d);
    let passed = position(&events, "gate_passed", "step", "one.$a").expect("gate_passed");
    let b1 = position(&events, "host_started", "host", "b1").expect("b1 ran");
    assert!(passed < b1);
    let runs_of_a1 = events
        .iter()
        .filter(|e| e["event"] == "host_started" && e["host"] == "a1")
        .count();
    assert_eq!(runs_of_a1, 1, "a1 succeeded before: it does not run again");
    let gate_log = std::fs::read_dir(d.join(".pogo/runs").join(&id).join("gates"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(std::fs::read_to_string(gate_log).unwrap(), "checked a1\n");
}

#[test]
fn an_approval_from_another_process_releases_the_waiting_thread_only() {
    let dir = scene(&["--approve", "one.$a"]);
    let d = dir.path();
    let child = command(d, &["apply", "plan.json", "--transport", "local"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The other thread and the unordered host go on while `one` waits.
    wait_for(
        "the approval to be awaited and thread two to finish",
        || {
            let events = journal(d);
            position(&events, "approval_waiting", "step", "one.$a").is_some()
                && position(&events, "host_finished", "host", "d1").is_some()
                && position(&events, "host_finished", "host", "u1").is_some()
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(position(&journal(d), "host_started", "host", "b1").is_none());
    let refused = pogo(d, &["approve", "last", "one.$b"]);
    assert_ne!(refused.code(), 0);
    assert!(
        refused
            .stderr()
            .contains("its steps that wait for one: one.$a"),
        "{}",
        refused.stderr()
    );
    let said = pogo(d, &["approve", "last", "one.$a"]).expect(0).stdout();
    assert!(said.contains("approved by alice"), "{said}");
    assert!(said.contains("The running pogo goes on"), "{said}");
    let run = finish(child);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stdout().contains("Step one.$a: approved by alice"),
        "{}",
        run.stdout()
    );
    let events = journal(d);
    let approved = position(&events, "approved", "step", "one.$a").expect("approved");
    assert_eq!(events[approved]["by"], "alice");
    assert!(approved < position(&events, "host_started", "host", "b1").unwrap());
}

#[test]
fn an_approval_not_given_in_time_stops_the_run_and_one_given_later_lets_the_resume_go_on() {
    let dir = scene(&["--approve", "one.$a=1s"]);
    let d = dir.path();
    let run = pogo(d, &["apply", "plan.json", "--transport", "local"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(
        run.stdout()
            .contains("step `one.$a` was not approved in time"),
        "{}",
        run.stdout()
    );
    let events = journal(d);
    assert!(position(&events, "approval_expired", "step", "one.$a").is_some());
    assert!(position(&events, "host_started", "host", "b1").is_none());
    // Approved while no pogo runs it: the next session finds it at once.
    let said = pogo(d, &["approve", "last", "one.$a"]).expect(0).stdout();
    assert!(said.contains("No pogo runs it now"), "{said}");
    let id = events[0]["run_id"].as_str().unwrap().to_string();
    pogo(d, &["apply", "--resume", &id, "--transport", "local"]).expect(0);
    let events = journal(d);
    assert!(position(&events, "host_finished", "host", "b1").is_some());
    let again = pogo(d, &["approve", "last", "one.$a"]).expect(0).stdout();
    assert!(again.contains("was approved already, by alice"), "{again}");
}

#[test]
fn a_job_waiting_for_approval_waits_through_a_dispatcher_crash_until_an_operator_approves() {
    use common::deploy::{free_port, Deployment};
    let d = Deployment::new(&["w1"]);
    let port = free_port();
    let mut dispatcher = d.dispatcher(port, &[]);
    let _w1 = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    std::fs::write(d.path().join("fleet.cfg"), CONFIG).unwrap();
    d.pogo(&[
        "plan",
        "--config",
        "fleet.cfg",
        "--command",
        "echo ran on $POGO_HOST",
        "--approve",
        "one.$a",
        "-o",
        "plan.json",
    ])
    .expect(0);
    let job = d.submit();
    let waiting = |d: &Deployment| {
        let status = d.status(&job);
        status["approvals"][0]["step"] == "one.$a" && status["counts"]["succeeded"] == 4
    };
    wait_for("the job to wait for the approval", || waiting(&d));
    let status = d.pogo(&["status", &job]).expect(0).stdout();
    assert!(
        status.contains("Waiting for approval of step one.$a since "),
        "{status}"
    );
    // What the live view of `pogo apply --dispatcher` polls, and `--why` prints.
    let why = d.pogo(&["status", &job, "--why"]).expect(0).stdout();
    assert!(
        why.contains("b1 (thread one): waits for approval of step `one.$a` (since "),
        "{why}"
    );
    dispatcher.crash();
    let _dispatcher = d.dispatcher(port, &[]);
    wait_for("the restarted dispatcher to serve the job", || waiting(&d));
    let approved = d.pogo(&["approve", &job, "one.$a"]).expect(0).stdout();
    assert!(approved.contains("approved"), "{approved}");
    d.wait_for_state(&job, "succeeded");
    let events = d.events(&job);
    let by = events
        .iter()
        .find(|e| e["event"] == "approved")
        .map(|e| e["by"].clone());
    assert_eq!(by, Some("alice".into()));
}

#[test]
fn a_gate_runs_on_a_worker_stops_the_job_when_it_fails_and_runs_again_on_resume() {
    use common::deploy::{free_port, Deployment};
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(free_port(), &[]);
    let _w1 = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    std::fs::write(d.path().join("fleet.cfg"), CONFIG).unwrap();
    d.pogo(&[
        "plan",
        "--config",
        "fleet.cfg",
        "--command",
        "echo ran on $POGO_HOST",
        "--gate",
        "one.$a=test -e ok && echo checked $POGO_STEP_RESULTS",
        "-o",
        "plan.json",
    ])
    .expect(0);
    let job = d.submit();
    d.wait_for_state(&job, "stopped");
    let status = d.pogo(&["status", &job]).expect(0).stdout();
    assert!(
        status.contains("one.$a") && status.contains("exit code 1"),
        "{status}"
    );
    let events = d.events(&job);
    assert!(position(&events, "gate_failed", "step", "one.$a").is_some());
    assert!(position(&events, "host_started", "host", "b1").is_none());

    // Fixed on the worker's machine: a resume runs the gate again, then the step after it.
    std::fs::write(d.path().join("ok"), "").unwrap();
    d.pogo(&["resume", &job]).expect(0);
    d.wait_for_state(&job, "succeeded");
    let events = d.events(&job);
    let passed = position(&events, "gate_passed", "step", "one.$a").expect("gate_passed");
    let b1 = position(&events, "host_started", "host", "b1").expect("b1 ran");
    assert!(passed < b1);
    let log = d.pogo(&["log", &job]).expect(0).stdout();
    assert!(log.contains("checked a1 succeeded"), "{log}");
    assert!(log.contains("gate one.$a"), "{log}");
}
