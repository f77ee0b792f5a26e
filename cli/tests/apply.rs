//! `pogo apply`, `pogo run`, `pogo runs` and `pogo log` as an operator uses them: real pogo
//! processes with the local transport, each test in a directory of its own (its working
//! directory, so runs go to its own `.pogo`).
//!
//! Every host runs `rec.sh`, which appends `start NANOS` and `end NANOS` to `rec/HOST`, so a
//! test can count how often each host ran, and check order and limits against the plan: a
//! host's recorded span lies within the time pogo counts it down (pogo starts it before its
//! `start` and sees it end after its `end`), so recorded spans that respect the plan's order
//! and limits prove nothing, while ones that break them prove pogo wrong.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{check_order_and_limits, config, processes_matching, read_spans, Run};
use pogo_model::Plan;

const REC: &str = r#"rec="$(dirname "$0")/rec/$POGO_HOST"
echo "start $(date +%s%N)" >> "$rec"
case " $SLOW " in *" $POGO_HOST "*) sleep "$SLOW_SLEEP";; *) sleep "${SLEEP:-0.2}";; esac
echo "end $(date +%s%N)" >> "$rec"
echo "ran on $POGO_HOST"
case " $FAIL " in *" $POGO_HOST "*) echo "failing on purpose" >&2; exit 3;; esac
exit 0
"#;

/// A test's own directory: the working directory of its pogo processes.
struct Scene {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rec.sh"), REC).unwrap();
        std::fs::create_dir(dir.path().join("rec")).unwrap();
        Scene {
            dir,
            env: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The command every host runs.
    fn rec(&self) -> String {
        format!("sh {}/rec.sh", self.path().display())
    }

    /// Sets an environment variable of the pogo processes (and so of the hosts' commands).
    fn env(mut self, key: &str, value: &str) -> Scene {
        self.env.push((key.into(), value.into()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pogo"));
        command
            .args(args)
            .current_dir(self.path())
            .env_remove("POGO_STATE_DIR")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    fn pogo(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    /// `pogo run --config CONFIG --command COMMAND EXTRA... --transport local --yes`.
    fn run_local(&self, config_file: &str, command: &str, extra: &[&str]) -> Run {
        let config = config(config_file);
        let mut args = vec!["run", "--config", &config, "--command", command];
        args.extend_from_slice(extra);
        args.extend(["--transport", "local", "--yes"]);
        self.pogo(&args)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Each host's recorded (start, end) spans, in the order they ran; an end of 0 for a span
    /// that never ended.
    fn spans(&self) -> BTreeMap<String, Vec<(u128, u128)>> {
        read_spans(&self.path().join("rec"))
    }

    /// How many times each host's command started.
    fn runs_per_host(&self) -> BTreeMap<String, usize> {
        self.spans()
            .into_iter()
            .map(|(h, spans)| (h, spans.len()))
            .collect()
    }

    /// The run directories, oldest first.
    fn run_dirs(&self) -> Vec<PathBuf> {
        let runs = self.path().join(".pogo/runs");
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(runs) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        dirs.sort();
        dirs
    }

    fn only_run(&self) -> PathBuf {
        let dirs = self.run_dirs();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs.into_iter().next().unwrap()
    }

    fn run_plan(&self) -> Plan {
        let text = std::fs::read_to_string(self.only_run().join("plan.json")).unwrap();
        Plan::from_json(&text).unwrap()
    }

    fn journal(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.only_run().join("journal.ndjson"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `ready` holds of the recorded spans.
    fn wait_for(&self, what: &str, ready: impl Fn(&BTreeMap<String, Vec<(u128, u128)>>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(&self.spans()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `pogo run` of `command` on host1 of t/cfgs/one.cfg over the local transport, without
/// asking, with `extra` flags: the arguments.
fn one_host_run(command: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--config",
        &config("t/cfgs/one.cfg"),
        "--targets",
        "host1",
        "--command",
        command,
        "--transport",
        "local",
        "--yes",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn wait(mut child: Child) -> Run {
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pogo did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run(child.wait_with_output().unwrap())
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_run_keeps_the_plans_order_and_its_job_wide_limit() {
    let scene = Scene::new();
    let command = scene.rec();
    let run = scene.run_local("t/cfgs/triple.cfg", &command, &["--concurrent", "2"]);
    run.expect(0);
    let plan = scene.run_plan();
    let peaks = check_order_and_limits(&plan, &scene.spans());
    assert_eq!(peaks["job"], 2, "two hosts ran at once");
    let out = run.stdout();
    assert!(out.contains("host1: Running target\n"), "{out}");
    assert!(out.contains("host6: Success\n"), "{out}");
    assert!(out.contains("Succeeded: all 9 hosts\n"), "{out}");
    // The schedule comes first.
    assert!(out.starts_with("Command: sh "), "{out}");
}

#[test]
fn a_run_keeps_sequences_and_per_colo_constraints() {
    // Colo east before west, one host of a colo at a time.
    let scene = Scene::new().env("SLEEP", "0.1");
    let command = scene.rec();
    scene
        .run_local("t/cfgs/targets-hosts-and-tags.cfg", &command, &[])
        .expect(0);
    let plan = scene.run_plan();
    assert!(!plan.edges.is_empty() && plan.constraints.len() > 1);
    check_order_and_limits(&plan, &scene.spans());
}

#[test]
fn a_fleet_rollout_keeps_every_limit() {
    // 45 hosts, three threads, canaries first, 25% per colo, one database at a time.
    let scene = Scene::new().env("SLEEP", "0.05");
    let command = scene.rec();
    let run = scene.run_local("examples/fleet.cfg", &command, &[]);
    run.expect(0);
    let plan = scene.run_plan();
    let peaks = check_order_and_limits(&plan, &scene.spans());
    assert!(peaks.values().any(|&p| p > 1), "{peaks:?}");
    // A large run lists no succeeded host, it counts them.
    let n = plan.hosts.len();
    assert!(n > 30);
    assert!(
        run.stdout().contains(&format!(
            "{n} hosts not listed ({n} succeeded); --full lists every host"
        )),
        "{}",
        run.stdout()
    );
}

#[test]
fn failures_within_max_failures_exit_3_and_beyond_it_stop_with_4() {
    // Within the budget: every host runs, host2 fails.
    let scene = Scene::new().env("FAIL", "host2");
    let command = scene.rec();
    let run = scene.run_local(
        "t/cfgs/triple.cfg",
        &command,
        &["--concurrent", "2", "--max-failures", "1"],
    );
    run.expect(3);
    assert_eq!(scene.runs_per_host().len(), 9);
    let out = run.stdout();
    assert!(out.contains("host2: Failed (exit code 3)\n"), "{out}");
    assert!(
        out.contains("Failed: 8 succeeded, 1 failed (9 hosts)\n"),
        "{out}"
    );
    // The failed host's output is shown.
    assert!(out.contains("  | stderr: failing on purpose\n"), "{out}");

    // Over the budget (0): the run stops; hosts that never started are skipped.
    let scene = Scene::new().env("FAIL", "host1").env("SLEEP", "0.3");
    let command = scene.rec();
    let run = scene.run_local("t/cfgs/triple.cfg", &command, &["--concurrent", "2"]);
    run.expect(4);
    let out = run.stdout();
    assert!(
        out.contains("Stopping: 1 host failed, more than max_failures (0)"),
        "{out}"
    );
    let ran = scene.runs_per_host();
    let skipped: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_suffix(": Skipped"))
        .collect();
    assert!(skipped.len() >= 5, "{out}");
    for host in &skipped {
        assert!(!ran.contains_key(*host), "skipped {host} ran");
    }
    assert_eq!(ran.len() + skipped.len(), 9, "{out}");
    let finished = scene.journal().pop().unwrap();
    assert_eq!(finished["event"], "run_finished");
    assert_eq!(finished["result"], "stopped");
    assert_eq!(finished["skipped"], skipped.len());
}

#[test]
fn a_timed_out_command_is_killed() {
    let scene = Scene::new();
    let marker = scene.path().join("marker");
    // A sleep of its own length (2 to 3 s), to find any leftover process.
    let sleep = format!("sleep 2.{:04}", std::process::id() % 10_000);
    let command = format!("{sleep}; touch {}", marker.display());
    let started = Instant::now();
    let child = scene.spawn(&[
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--targets",
        "host1",
        "--command",
        &command,
        "--timeout",
        "1",
        "--transport",
        "local",
        "--yes",
    ]);
    // The shell running the command names the marker: seen running, then gone.
    let needle = marker.display().to_string();
    while processes_matching(&needle).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "never saw the command run"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = wait(child);
    // The only host failed (timed out): the run is complete, with a failure.
    run.expect(3);
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(
        run.stdout()
            .contains("host1: Timed out (the command was killed on the target)\n"),
        "{}",
        run.stdout()
    );
    for needle in [needle.as_str(), sleep.as_str()] {
        let leftovers = processes_matching(needle);
        assert!(leftovers.is_empty(), "left running: {leftovers:?}");
    }
    std::thread::sleep(Duration::from_millis(3300).saturating_sub(started.elapsed()));
    assert!(!marker.exists(), "the command went on after its timeout");
    let finished = &scene.journal()[2];
    assert_eq!(finished["event"], "host_finished");
    assert_eq!(finished["state"], "timed_out");
}

#[test]
fn failed_attempts_are_retried() {
    let scene = Scene::new();
    // host1 fails its first attempt only; host2 fails every attempt.
    let command = format!(
        "f={dir}/count-$POGO_HOST; echo x >> $f; n=$(wc -l < $f); echo attempt $n; \
         [ $POGO_HOST = host1 ] && [ $n -ge 2 ]",
        dir = scene.path().display()
    );
    let run = scene.pogo(&[
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--targets",
        "host1,host2",
        "--command",
        &command,
        "--retry",
        "2",
        "--retry-delay",
        "0",
        "--max-failures",
        "1",
        "--transport",
        "local",
        "--yes",
    ]);
    run.expect(3);
    let out = run.stdout();
    assert!(
        out.contains("host1: Retrying after exit code 1 (attempt 2)\n"),
        "{out}"
    );
    assert!(out.contains("host1: Success (after 2 attempts)\n"), "{out}");
    assert!(
        out.contains("host2: Failed (exit code 1, after 3 attempts)\n"),
        "{out}"
    );
    let count = |host: &str| {
        std::fs::read_to_string(scene.path().join(format!("count-{host}")))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!((count("host1"), count("host2")), (2, 3));
    // Each attempt's output is kept.
    let log = scene.pogo(&["log", "last", "host2"]);
    assert_eq!(
        log.expect(0).stdout(),
        "attempt 1\n--- attempt 2 ---\nattempt 2\n--- attempt 3 ---\nattempt 3\n"
    );
}

#[test]
fn ctrl_c_halts_running_hosts_finish_and_resume_runs_only_the_rest() {
    let scene = Scene::new().env("SLEEP", "0.6");
    let command = scene.rec();
    let child = scene.spawn(&[
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--command",
        &command,
        "--concurrent",
        "2",
        "--transport",
        "local",
        "--yes",
    ]);
    scene.wait_for("two hosts to start", |spans| spans.len() == 2);
    signal(&child, "INT");
    let run = wait(child);
    run.expect(4);
    assert!(
        run.stderr().contains("pogo: halting: no more hosts start"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stdout()
            .contains("Stopping: halted by the operator; no more hosts start"),
        "{}",
        run.stdout()
    );
    // The two running hosts finished, and succeeded; nothing else started.
    let spans = scene.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(spans.values().all(|s| s.len() == 1 && s[0].1 > 0));
    assert!(run
        .stdout()
        .contains("Stopped: 2 succeeded, 7 skipped (9 hosts)"));

    // Resumed: the transport is the run's own; only the 7 others run.
    let resumed = scene.pogo(&["apply", "--resume", "last"]);
    resumed.expect(0);
    assert!(
        resumed
            .stderr()
            .contains("Resuming: 2 hosts succeeded before and will not run again."),
        "{}",
        resumed.stderr()
    );
    assert!(scene.runs_per_host().values().all(|&n| n == 1));
    assert_eq!(scene.runs_per_host().len(), 9);
    check_order_and_limits(&scene.run_plan(), &scene.spans());
    // The journal holds both sessions.
    let sessions = scene
        .journal()
        .iter()
        .filter(|e| e["event"] == "run_started")
        .count();
    assert_eq!(sessions, 2);
}

/// SIGHUP (the terminal closed, the SSH session to the jump host dropped) killed pogo as
/// SIGKILL would, orphaning the running commands and leaving the run interrupted. It halts:
/// the running hosts finish, the run ends in order and says so in its journal, though nothing
/// can read pogo's output any more.
#[test]
fn a_hang_up_halts_and_the_run_ends_in_order_without_its_terminal() {
    let scene = Scene::new().env("SLEEP", "0.6");
    let command = scene.rec();
    let mut child = scene.spawn(&[
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--command",
        &command,
        "--concurrent",
        "2",
        "--transport",
        "local",
        "--yes",
    ]);
    scene.wait_for("two hosts to start", |spans| spans.len() == 2);
    // The terminal is gone: whatever pogo writes now fails.
    drop(child.stdout.take());
    drop(child.stderr.take());
    signal(&child, "HUP");
    let status = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "pogo did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(status.code(), Some(4), "{status:?}");
    let spans = scene.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(
        spans.values().all(|s| s.len() == 1 && s[0].1 > 0),
        "{spans:?}"
    );
    let journal = scene.journal();
    let last = journal.last().unwrap();
    assert_eq!(last["event"], "run_finished", "{last}");
    assert_eq!(last["result"], "stopped", "{last}");
}

/// A terminal's Ctrl-C signals its whole foreground process group, not pogo alone: pogo and
/// everything it started that shares its group. The running hosts' commands must not be in
/// it, or they would die instead of finishing: pogo alone decides what a Ctrl-C does.
#[test]
fn ctrl_c_on_the_terminal_reaches_pogo_alone_and_running_hosts_finish() {
    use std::os::unix::process::CommandExt;
    let scene = Scene::new().env("SLEEP", "1");
    let command = scene.rec();
    scene
        .pogo(&[
            "plan",
            "--config",
            &config("t/cfgs/triple.cfg"),
            "--command",
            &command,
            "--concurrent",
            "3",
            "-o",
            "triple.plan.json",
        ])
        .expect(0);
    // pogo leads a process group, as a shell's job on a terminal does.
    let child = scene
        .command(&["apply", "triple.plan.json", "--transport", "local"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    scene.wait_for("three hosts to start", |spans| spans.len() == 3);
    let status = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let run = wait(child);
    run.expect(4);
    assert!(
        run.stderr().contains("pogo: halting: no more hosts start"),
        "{}",
        run.stderr()
    );
    // The three running hosts finished their commands, and succeeded; nothing else started.
    let spans = scene.spans();
    assert_eq!(spans.len(), 3, "{spans:?}");
    assert!(
        spans.values().all(|s| s.len() == 1 && s[0].1 > 0),
        "{spans:?}"
    );
    assert!(
        run.stdout()
            .contains("Stopped: 3 succeeded, 6 skipped (9 hosts)"),
        "{}",
        run.stdout()
    );
}

#[test]
fn after_a_crash_resume_keeps_finished_hosts_and_reruns_interrupted_ones_only_if_asked() {
    // host1 is quick; the others take long enough to be running when pogo dies.
    let scene = Scene::new()
        .env("SLEEP", "0.4")
        .env("SLOW", "host1")
        .env("SLOW_SLEEP", "0.05");
    let command = scene.rec();
    let child = scene.spawn(&[
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--command",
        &command,
        "--concurrent",
        "2",
        "--transport",
        "local",
        "--yes",
    ]);
    // host1 ended, host2 and host3 run.
    scene.wait_for("host3 to start", |spans| spans.contains_key("host3"));
    signal(&child, "KILL");
    wait(child);
    // Their commands die with pogo: its keeper, whose pipe the kernel closes when pogo is
    // gone, ends their process groups. (They ran on as orphans, finishing their side effects
    // unobserved.)
    let rec = format!("{}/rec.sh", scene.path().display());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_matching(&rec).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", processes_matching(&rec));
        std::thread::sleep(Duration::from_millis(20));
    }
    let spans = scene.spans();
    assert!(
        ["host2", "host3"]
            .iter()
            .all(|h| spans[*h].iter().all(|(_, end)| *end == 0)),
        "{spans:?}"
    );
    let runs = scene.pogo(&["runs"]);
    assert!(
        runs.expect(0).stdout().contains("interrupted"),
        "{}",
        runs.stdout()
    );

    // host2 and host3 were interrupted: they count as failed, and the run stops at once.
    let resumed = scene.pogo(&["apply", "--resume", "last"]);
    resumed.expect(4);
    assert!(
        resumed
            .stderr()
            .contains("2 hosts were interrupted (started, but the pogo running them ended before they finished): host2, host3."),
        "{}",
        resumed.stderr()
    );
    assert!(
        resumed.stdout().contains(
            "  2 hosts were interrupted: started, but the pogo running them ended before they \
             finished; they count as failed, and a resume runs them again only with \
             --retry-failed\n"
        ),
        "{}",
        resumed.stdout()
    );
    assert_eq!(
        scene.runs_per_host(),
        BTreeMap::from([
            ("host1".to_string(), 1),
            ("host2".to_string(), 1),
            ("host3".to_string(), 1)
        ])
    );

    // With --retry-failed they run again; host1 never does.
    let retried = scene.pogo(&["apply", "--resume", "last", "--retry-failed"]);
    retried.expect(0);
    let ran = scene.runs_per_host();
    assert_eq!(ran.len(), 9);
    assert_eq!(ran["host1"], 1);
    assert_eq!(ran["host2"], 2);
    assert_eq!(ran["host3"], 2);
    assert!(ran
        .iter()
        .all(|(h, &n)| n == 1 || h == "host2" || h == "host3"));
}

#[test]
fn json_output_is_the_journal() {
    let scene = Scene::new().env("FAIL", "host3").env("SLEEP", "0");
    let command = scene.rec();
    let run = scene.pogo(&[
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--command",
        &command,
        "--max-failures",
        "2",
        "--transport",
        "local",
        "--yes",
        "--json",
    ]);
    run.expect(3);
    let journal = std::fs::read_to_string(scene.only_run().join("journal.ndjson")).unwrap();
    assert_eq!(run.stdout(), journal);
    let events: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "run_started");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    assert!(events.iter().any(|e| e["event"] == "host_finished"
        && e["host"] == "host3"
        && e["state"] == "failed"
        && e["exit_code"] == 3));
    // The schedule and the summary went to stderr.
    assert!(run.stderr().contains("Schedule\n"));
    assert!(run
        .stderr()
        .contains("Failed: 8 succeeded, 1 failed (9 hosts)"));
}

#[test]
fn runs_and_log_read_runs_back() {
    let scene = Scene::new().env("FAIL", "host2").env("SLEEP", "0");
    let command = scene.rec();
    scene
        .pogo(&[
            "run",
            "--config",
            &config("t/cfgs/one.cfg"),
            "--targets",
            "host1,host2",
            "--command",
            &command,
            "--max-failures",
            "1",
            "--transport",
            "local",
            "--yes",
        ])
        .expect(3);
    let id = scene
        .only_run()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    // Wide enough that the long command of the test's temporary directory leaves the result
    // on one line (into a pipe, tables are otherwise 100 columns wide).
    let runs = scene.pogo(&["runs", "--width", "200"]);
    let out = runs.expect(0).stdout();
    assert!(
        out.contains(&id) && out.contains("failed: 1 succeeded, 1 failed"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&scene.pogo(&["runs", "--json"]).expect(0).stdout()).unwrap();
    assert_eq!(json[0]["run_id"], id.as_str());
    assert_eq!(json[0]["state"], "failed");
    assert_eq!(json[0]["hosts"], 2);
    assert_eq!(json[0]["totals"]["failed"], 1);

    // A host's output, as it printed it (stdout and stderr are two pipes: lines of the two
    // come in the order pogo reads them).
    let log = scene.pogo(&["log", &id[..18], "host2"]);
    let mut lines: Vec<String> = log.expect(0).stdout().lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["ran on host2", "stderr: failing on purpose"]);
    // Every host's, headed.
    let all = scene.pogo(&["log", "last", "--all"]);
    let out = all.expect(0).stdout();
    assert!(
        out.starts_with("==> host2 <==\n") && out.contains("\n==> host1 <==\nran on host1\n"),
        "{out}"
    );
    // The summary.
    let summary = scene.pogo(&["log", "last"]);
    let out = summary.expect(0).stdout();
    assert!(
        out.contains("Failed: 1 succeeded, 1 failed (2 hosts)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("pogo apply --resume {id} --retry-failed")),
        "{out}"
    );
    // The journal.
    let journal = scene.pogo(&["log", "last", "--json"]);
    assert_eq!(
        journal.expect(0).stdout().lines().count(),
        scene.journal().len()
    );

    // Mistakes.
    let unknown = scene.pogo(&["log", "last", "host9"]);
    assert!(unknown.expect(1).stderr().contains("has no host `host9`"));
    let missing = scene.pogo(&["log", "2030"]);
    assert_eq!(
        missing.expect(1).stderr(),
        "error: no run `2030` in `.pogo/runs`; `pogo runs` lists the runs\n"
    );
}

#[test]
fn pogo_run_without_a_terminal_needs_yes() {
    let scene = Scene::new();
    let command = scene.rec();
    let run = scene.pogo(&[
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--command",
        &command,
        "--transport",
        "local",
    ]);
    run.expect(64);
    assert!(run.stderr().contains("add --yes to run without asking"));
    assert!(scene.run_dirs().is_empty());
    assert!(scene.runs_per_host().is_empty());
}

#[test]
fn apply_runs_a_plan_file_and_refuses_a_stale_one() {
    let scene = Scene::new().env("SLEEP", "0");
    let cfg = scene.path().join("fleet.cfg");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(config("t/cfgs/triple.cfg")).unwrap(),
    )
    .unwrap();
    let command = scene.rec();
    scene
        .pogo(&[
            "plan",
            "--config",
            "fleet.cfg",
            "--command",
            &command,
            "-o",
            "triple.plan.json",
        ])
        .expect(0);
    let plan_args = ["apply", "triple.plan.json", "--transport", "local"];

    // Up to date: it runs.
    scene
        .pogo(&[&plan_args[..], &["--against", "fleet.cfg"]].concat())
        .expect(0);
    assert_eq!(scene.runs_per_host().len(), 9);

    // The config changed: refused, nothing runs.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("- host9", "- host9\n      - host10")).unwrap();
    let stale = scene.pogo(&[&plan_args[..], &["--against", "fleet.cfg"]].concat());
    stale.expect(1);
    assert!(
        stale.stderr().starts_with("error: plan is stale: "),
        "{}",
        stale.stderr()
    );
    assert_eq!(scene.run_dirs().len(), 1);
    // --allow-stale runs it all the same, with a warning.
    let allowed =
        scene.pogo(&[&plan_args[..], &["--against", "fleet.cfg", "--allow-stale"]].concat());
    allowed.expect(0);
    assert!(allowed.stderr().starts_with("warning: plan is stale: "));
}

#[test]
fn limits_can_be_lowered_never_raised() {
    let scene = Scene::new().env("SLEEP", "0.1");
    let command = scene.rec();
    scene
        .pogo(&[
            "plan",
            "--config",
            &config("t/cfgs/triple.cfg"),
            "--command",
            &command,
            "--concurrent",
            "3",
            "--max-failures",
            "20%",
            "-o",
            "p.json",
        ])
        .expect(0);
    let raise = scene.pogo(&[
        "apply",
        "p.json",
        "--transport",
        "local",
        "--concurrent",
        "4",
    ]);
    raise.expect(1);
    assert_eq!(
        raise.stderr(),
        "error: --concurrent 4 would raise the plan's job-wide limit (3); a run can lower the \
         plan's limits, never raise them\n"
    );
    let raise = scene.pogo(&[
        "apply",
        "p.json",
        "--transport",
        "local",
        "--max-failures",
        "50%",
    ]);
    raise.expect(1);
    assert!(raise.stderr().contains(
        "--max-failures 50% (4 of 9 targets) would raise the plan's max_failures (1 (20% of 9))"
    ));
    assert!(scene.run_dirs().is_empty());

    // Lowered: the run keeps the lower limits beside its sealed plan, and holds to them.
    scene
        .pogo(&[
            "apply",
            "p.json",
            "--transport",
            "local",
            "--concurrent",
            "1",
            "--max-failures",
            "0",
        ])
        .expect(0);
    let sealed = scene.run_plan();
    assert_eq!(sealed.seal_state(), pogo_model::SealState::Intact);
    assert_eq!(sealed.constraints[0].max_parallel.value, 3);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scene.only_run().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(
        spec["limits"],
        serde_json::json!({"max_failures": {"value": 0}, "concurrent": {"value": 1}})
    );
    let limits: pogo_model::LoweredLimits = serde_json::from_value(spec["limits"].clone()).unwrap();
    let plan = sealed.lowered(&limits);
    assert_eq!(plan.constraints[0].max_parallel.value, 1);
    assert_eq!(plan.options.max_failures.value, 0);
    let peaks = check_order_and_limits(&plan, &scene.spans());
    assert_eq!(peaks["job"], 1);
}

#[test]
fn mistakes_in_the_run_options_are_refused_before_anything_runs() {
    let scene = Scene::new();
    let command = scene.rec();
    let base = [
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--command",
        &command,
        "--yes",
        "--transport",
        "local",
    ];
    let password = scene.pogo(&[&base[..], &["--password"]].concat());
    password.expect(64);
    assert_eq!(
        password.stderr(),
        "error: --password is for the ssh transport; --transport local runs commands on this \
         machine, with no login\n"
    );
    let no_command = scene.pogo(&["run", "--config", &config("t/cfgs/triple.cfg"), "--yes"]);
    no_command.expect(1);
    assert!(no_command.stderr().contains("the plan has no command"));
    assert!(scene.run_dirs().is_empty());

    // A local run is not resumed over ssh.
    scene
        .pogo(&[&base[..], &["--targets", "host1", "--timeout", "1"]].concat())
        .expect(0);
    let other = scene.pogo(&["apply", "--resume", "last", "--transport", "ssh"]);
    other.expect(1);
    assert!(
        other
            .stderr()
            .contains("reaches its hosts with the local transport"),
        "{}",
        other.stderr()
    );
    let done = scene.pogo(&["apply", "--resume", "last"]);
    done.expect(0);
    assert!(done
        .stderr()
        .starts_with("Nothing to resume: every host of run "));
}

/// `pogo log` of a host that printed nothing says why when its end does (an unreachable host
/// never ran), and `--all` never says "no host printed nothing".
#[test]
fn the_log_of_a_silent_host_says_why_it_is_silent() {
    let scene = Scene::new();
    let run = scene.pogo(&[
        "run",
        "--config",
        &config("t/cfgs/one.cfg"),
        "--targets",
        "localhost",
        "--command",
        "true",
        "--transport",
        "ssh",
        "--port",
        "1",
        "--yes",
    ]);
    run.expect(3);
    let log = scene.pogo(&["log", "last", "localhost"]);
    log.expect(0);
    let said = log.stderr();
    assert!(
        said.starts_with("localhost printed nothing in run ")
            && said.contains(": unreachable: could not connect"),
        "{said}"
    );
    let all = scene.pogo(&["log", "last", "--all"]);
    all.expect(0);
    assert_eq!(all.stdout(), "No host printed anything.\n");
    assert!(
        !all.stderr().contains("printed nothing"),
        "{}",
        all.stderr()
    );
}

/// A host's log keeps at most the plan's max_output; past it the rest is counted and dropped
/// with a marker line, and the run still succeeds.
#[test]
fn a_log_keeps_max_output_and_says_what_it_dropped() {
    let scene = Scene::new();
    let run = scene.pogo(&strs(&one_host_run(
        "yes 0123456789012345678901234567890123456789012345678901234567 | head -n 50000",
        &["--max-output", "1MB"],
    )));
    run.expect(0);
    let log = std::fs::read_to_string(scene.only_run().join("logs/host1.log")).unwrap();
    assert!(log.len() <= (1 << 20) + 100, "{} bytes", log.len());
    assert!(
        log.ends_with("--- output cut at max_output (1 MiB): 1.8 MiB more dropped ---\n"),
        "{}",
        &log[log.len() - 200..]
    );
}

/// With the state dir's disk full, output was lost without a word and the run exited 0.
/// Now the loss is recorded for the host, said in the summary, and the run exits 5. A full
/// disk is /dev/full in place of the host's log: writes fail with ENOSPC.
#[test]
fn output_that_cannot_be_written_is_reported_and_the_run_exits_5() {
    let scene = Scene::new();
    let child = scene.spawn(&strs(&one_host_run("sleep 1; echo hello", &[])));
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        if let Some(run) = scene.run_dirs().first() {
            let logs = run.join("logs");
            if logs.is_dir() {
                break logs;
            }
        }
        assert!(Instant::now() < deadline, "no run directory");
        std::thread::sleep(Duration::from_millis(10));
    };
    std::os::unix::fs::symlink("/dev/full", logs.join("host1.log")).unwrap();
    let run = wait(child);
    run.expect(5);
    let out = run.stdout();
    assert!(out.contains("host1: Output lost (cannot write"), "{out}");
    assert!(
        out.contains("Output lost: the logs of 1 host are not whole"),
        "{out}"
    );
    assert!(out.contains("No space left on device"), "{out}");
    let lost: Vec<serde_json::Value> = scene
        .journal()
        .into_iter()
        .filter(|e| e["event"] == "output_lost")
        .collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0]["host"], "host1");
}

/// Lines written at least 10 ms apart on stdout and stderr keep their order in the log, as
/// docs/apply.md promises.
#[test]
fn lines_10_ms_apart_keep_their_order_across_stdout_and_stderr() {
    let scene = Scene::new();
    let command = "for i in 1 2 3 4 5 6 7 8; do echo out$i; sleep 0.01; echo err$i >&2; \
                   sleep 0.01; done";
    scene.pogo(&strs(&one_host_run(command, &[]))).expect(0);
    let log = std::fs::read_to_string(scene.only_run().join("logs/host1.log")).unwrap();
    let expected: String = (1..=8)
        .map(|i| format!("out{i}\nstderr: err{i}\n"))
        .collect();
    assert_eq!(log, expected);
}

/// The summary is for people: a host's huge output is cut (a 50 MB line put 650 KB into it),
/// and its escape sequences are shown, not acted on.
#[test]
fn the_summary_cuts_a_hosts_output_and_neutralises_its_escapes() {
    let scene = Scene::new();
    let run = scene.pogo(&strs(&one_host_run(
        "head -c 3000000 /dev/zero | tr '\\0' x; printf '\\n\\033[2Jcleared\\n'; exit 1",
        &[],
    )));
    run.expect(3);
    let out = run.stdout();
    assert!(out.len() < 8 * 1024, "{} bytes of summary", out.len());
    assert!(out.contains("  | \\x1b[2Jcleared\n"), "{out}");
    assert!(!out.contains('\u{1b}'), "an escape reached the terminal");
}

/// `pogo log` streams a log: it read a whole log into memory (a 300 MB log took 300 MB). Under
/// an address-space limit far below the log's size, it still prints all of it.
#[test]
fn pogo_log_streams_a_log_bigger_than_its_memory() {
    let scene = Scene::new();
    scene
        .pogo(&strs(&one_host_run(
            "yes 0123456789012345678901234567890123456789012345678901234567 | head -n 2500000",
            &["--max-output", "1GB"],
        )))
        .expect(0);
    let log = scene.only_run().join("logs/host1.log");
    let size = std::fs::metadata(&log).unwrap().len();
    // 58 characters and a newline a line.
    assert_eq!(size, 2_500_000 * 59);
    let copy = scene.path().join("copy.log");
    let limited = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 120000 && exec \"$0\" log last host1 > {}",
            copy.display()
        ))
        .arg(env!("CARGO_BIN_EXE_pogo"))
        .current_dir(scene.path())
        .env_remove("POGO_STATE_DIR")
        .output()
        .unwrap();
    assert!(
        limited.status.success(),
        "{}",
        String::from_utf8_lossy(&limited.stderr)
    );
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), size);
}

#[test]
fn without_a_terminal_a_progress_line_says_every_so_often_that_the_run_is_alive() {
    let dir = tempfile::tempdir().unwrap();
    common::pogo_in(
        dir.path(),
        &[
            "plan",
            "--targets",
            "h[1-3]",
            "--concurrent",
            "2",
            "--command",
            "sleep 1.5",
            "-o",
            "plan.json",
        ],
    )
    .expect(0);
    let mut apply =
        common::pogo_command(dir.path(), &["apply", "plan.json", "--transport", "local"]);
    apply.env("POGO_PROGRESS_EVERY", "1s");
    let run = common::Run(apply.output().unwrap());
    let out = run.expect(0).stdout();
    let progress: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Progress: "))
        .collect();
    assert!(progress.len() >= 2, "{out}");
    assert!(
        progress[0].starts_with("Progress: 0 of 3 done, 2 running, 1 left; "),
        "{out}"
    );
    assert!(
        progress
            .iter()
            .any(|l| l.contains("about ") && l.contains(" to go")),
        "an estimate once a host is done: {out}"
    );
}
