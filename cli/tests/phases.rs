//! A host's phases as an operator uses them (spec `semantics.md` §9): `before`, the command,
//! `verify` and `after`, run by real pogo processes with the local transport. Every phase
//! appends `PHASE HOST` to `trace`, so a test sees which phases ran on which host, in order.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::pogo_in as pogo;
use serde_json::Value;

/// `phase.sh PHASE`: records the phase, then fails when `fail-PHASE-HOST` exists. `verify`
/// passes from the try `need-HOST` says (1 when absent), counting tries in `tries-HOST`.
const PHASE: &str = r#"dir="$(dirname "$0")"
echo "$1 $POGO_HOST" >> "$dir/trace"
echo "$1 ran on $POGO_HOST"
if [ "$1" = verify ]; then
  n=$(( $(cat "$dir/tries-$POGO_HOST" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$dir/tries-$POGO_HOST"
  [ "$n" -ge "$(cat "$dir/need-$POGO_HOST" 2>/dev/null || echo 1)" ] || exit 7
fi
[ ! -e "$dir/fail-$1-$POGO_HOST" ] || exit 5
"#;

const CONFIG: &str = "tag:\n  web: [h1, h2, h3, h4]\n";

/// Each host's phases, in the order they ran.
fn trace(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut phases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let text = std::fs::read_to_string(dir.join("trace")).unwrap_or_default();
    for line in text.lines() {
        let (phase, host) = line.split_once(' ').unwrap();
        phases
            .entry(host.to_string())
            .or_default()
            .push(phase.to_string());
    }
    phases
}

fn finished(events: &[Value], host: &str) -> Value {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "host_finished" && e["host"] == host)
        .cloned()
        .unwrap_or_else(|| panic!("no host_finished of {host}"))
}

#[test]
fn each_phase_runs_only_after_the_one_before_succeeded_and_the_failed_phase_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("phase.sh"), PHASE).unwrap();
    std::fs::write(d.join("fleet.cfg"), CONFIG).unwrap();
    let phase = |name: &str| format!("sh {}/phase.sh {name}", d.display());
    // h1 passes its check on the third try; h2's `before` fails; h3's command fails; h4's
    // check never passes within 4 s.
    std::fs::write(d.join("need-h1"), "3").unwrap();
    std::fs::write(d.join("fail-before-h2"), "").unwrap();
    std::fs::write(d.join("fail-command-h3"), "").unwrap();
    std::fs::write(d.join("need-h4"), "99").unwrap();
    let run = pogo(
        d,
        &[
            "run",
            "--config",
            "fleet.cfg",
            "--command",
            &phase("command"),
            "--before",
            &phase("before"),
            "--verify",
            &phase("verify"),
            "--verify-within",
            "4s",
            "--verify-every",
            "1s",
            "--after",
            &phase("after"),
            "--max-failures",
            "10",
            "--transport",
            "local",
            "--yes",
            "--json",
        ],
    );
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let events: Vec<Value> = run
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let traced = trace(d);
    assert_eq!(
        traced["h1"],
        ["before", "command", "verify", "verify", "verify", "after"]
    );
    assert_eq!(traced["h2"], ["before"], "its command never runs");
    assert_eq!(traced["h3"], ["before", "command"], "no verify, no after");
    let h4 = &traced["h4"];
    assert_eq!(h4[..2], ["before", "command"]);
    assert!(
        h4[2..].iter().all(|p| p == "verify") && (3..=5).contains(&(h4.len() - 2)),
        "verify tried every second for 4 s, then no after: {h4:?}"
    );

    assert_eq!(finished(&events, "h1")["state"], "succeeded");
    assert!(finished(&events, "h1").get("phase").is_none());
    let h2 = finished(&events, "h2");
    assert_eq!(
        (&h2["state"], &h2["phase"]),
        (&"failed".into(), &"before".into())
    );
    assert_eq!(h2["message"], "before failed: exit code 5");
    let h3 = finished(&events, "h3");
    assert!(h3.get("phase").is_none(), "the command failed: {h3}");
    assert_eq!(h3["exit_code"], 5);
    let h4 = finished(&events, "h4");
    assert_eq!(h4["phase"], "verify", "{h4}");
    assert!(
        h4["message"]
            .as_str()
            .unwrap()
            .starts_with("verify failed: "),
        "{h4}"
    );

    // The host's log says which phase printed what.
    let log = pogo(d, &["log", "last", "h1"]).expect(0).stdout();
    assert!(
        log.contains(
            "--- before ---\nbefore ran on h1\n--- command ---\ncommand ran on h1\n\
             --- verify (try 1) ---\nverify ran on h1\n"
        ) && log
            .contains("--- verify (try 3) ---\nverify ran on h1\n--- after ---\nafter ran on h1\n"),
        "{log}"
    );
}

#[test]
fn a_retry_runs_every_phase_again_from_before() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("phase.sh"), PHASE).unwrap();
    std::fs::write(d.join("fleet.cfg"), "tag:\n  web: [h1]\n").unwrap();
    let phase = |name: &str| format!("sh {}/phase.sh {name}", d.display());
    // The check passes on its second try overall: the first attempt's only try fails.
    std::fs::write(d.join("need-h1"), "2").unwrap();
    let spec = format!(
        "config: fleet.cfg\ncommand: {}\nbefore: {}\nverify:\n  command: {}\n  within: 1s\n  \
         every: 5s\nafter: {}\nretries: 1\n",
        phase("command"),
        phase("before"),
        phase("verify"),
        phase("after")
    );
    std::fs::write(d.join("job.yaml"), spec).unwrap();
    pogo(d, &["plan", "job.yaml", "-o", "job.plan.json"]).expect(0);
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("job.plan.json")).unwrap()).unwrap();
    assert_eq!(plan["options"]["verify"]["within"], 1);
    assert_eq!(plan["options"]["verify"]["every"], 5);
    pogo(
        d,
        &[
            "apply",
            "job.plan.json",
            "--transport",
            "local",
            "--retry-delay",
            "0",
        ],
    )
    .expect(0);
    assert_eq!(
        trace(d)["h1"],
        ["before", "command", "verify", "before", "command", "verify", "after"]
    );
}

#[test]
fn a_worker_runs_every_phase_of_a_remote_task_and_says_which_failed() {
    use common::deploy::Deployment;
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    let dir = d.path();
    std::fs::write(dir.join("phase.sh"), PHASE).unwrap();
    std::fs::write(dir.join("fleet.cfg"), "tag:\n  web: [h1, h2]\n").unwrap();
    std::fs::write(dir.join("need-h1"), "2").unwrap();
    std::fs::write(dir.join("fail-verify-h2"), "").unwrap();
    let phase = |name: &str| format!("sh {}/phase.sh {name}", dir.display());
    d.pogo(&[
        "plan",
        "--config",
        "fleet.cfg",
        "--command",
        &phase("command"),
        "--before",
        &phase("before"),
        "--verify",
        &phase("verify"),
        "--verify-within",
        "3s",
        "--verify-every",
        "1s",
        "--after",
        &phase("after"),
        "--max-failures",
        "5",
        "-o",
        "job.plan.json",
    ])
    .expect(0);
    let run = d.pogo(&[
        "apply",
        "job.plan.json",
        "--dispatcher",
        "--transport",
        "local",
    ]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let traced = trace(dir);
    assert_eq!(
        traced["h1"],
        ["before", "command", "verify", "verify", "after"]
    );
    let h2 = &traced["h2"];
    assert_eq!(h2[..2], ["before", "command"]);
    assert!(h2[2..].iter().all(|p| p == "verify"), "no after: {h2:?}");
    let status = d.pogo(&["status", "last", "--json"]).expect(0).stdout();
    let status: Value = serde_json::from_str(&status).unwrap();
    let h2 = &status["host_states"][1];
    assert!(
        h2["message"]
            .as_str()
            .unwrap()
            .starts_with("verify failed: exit code 5"),
        "{status}"
    );
    let id = status["id"].as_str().unwrap();
    let events = d.events(id);
    assert_eq!(finished(&events, "h2")["phase"], "verify");
    let log = d.pogo(&["log", id, "h1"]).expect(0).stdout();
    assert!(
        log.contains("--- verify (try 2) ---\nverify ran on h1\n--- after ---\n"),
        "{log}"
    );
}
