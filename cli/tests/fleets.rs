//! Fleets as they are deployed: a real dispatcher and two workers on loopback, a fleet pushed
//! with `pogo fleet push`, and jobs whose budgets are shared (spec `semantics.md` §8).
//!
//! Every host runs `rec.sh`, which records each start and end in `rec/HOST`: a host's
//! recorded span lies within the time the dispatcher counts it down, so overlapping spans of
//! more hosts of a group than its budget allows, or two overlapping spans of one host, prove
//! pogo wrong whichever jobs ran them.

mod common;

use std::collections::BTreeMap;

use common::deploy::*;
use serde_json::Value;

const FLEET: &str = "tag:
  colo:
    east: [e1, e2, e3, e4, e5, e6]
    west: [w1, w2]
constraint:
  $colo:
    max_parallel: 2
";

const EAST: [&str; 6] = ["e1", "e2", "e3", "e4", "e5", "e6"];

/// The most spans of `hosts` open at once, over every job; fails when a host's own spans
/// overlap (it ran in two jobs at once).
fn peak(spans: &BTreeMap<String, Vec<(u128, u128)>>, hosts: &[&str]) -> usize {
    let mut edges = Vec::new();
    for (host, list) in spans {
        for pair in list.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "{host} ran twice at once: {list:?}");
        }
        if hosts.contains(&host.as_str()) {
            for &(start, end) in list {
                assert!(end > 0, "{host} has not ended: {list:?}");
                edges.push((start, 1i64));
                edges.push((end, -1i64));
            }
        }
    }
    // Ends before starts at the same instant: a place freed is taken after.
    edges.sort_by_key(|&(at, delta)| (at, delta));
    let (mut open, mut most) = (0i64, 0i64);
    for (_, delta) in edges {
        open += delta;
        most = most.max(open);
    }
    most as usize
}

fn runs(d: &Deployment, host: &str) -> usize {
    d.spans().get(host).map_or(0, Vec::len)
}

/// `pogo apply PLAN --dispatcher --transport local --detach EXTRA...`: the job's id.
fn submit(d: &Deployment, plan: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "apply",
        plan,
        "--dispatcher",
        "--transport",
        "local",
        "--detach",
    ];
    args.extend_from_slice(extra);
    let id = d.pogo(&args).expect(0).stdout().trim().to_string();
    assert!(id.starts_with("job-"), "{id}");
    id
}

fn plan(d: &Deployment, config: &str, out: &str, extra: &[&str]) {
    let mut args = vec!["plan", "--config", config, "-o", out];
    args.extend_from_slice(extra);
    d.pogo(&args).expect(0);
}

fn reasons(status: &Value) -> String {
    status["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

#[test]
fn jobs_share_a_fleet_budget_whatever_their_plans_say_until_an_operator_closes_a_failure() {
    let d = Deployment::new(&["w1", "w2"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 4);
    let _w2 = d.worker("w2", 4);
    d.wait_for_workers(&["w1", "w2"]);
    std::fs::write(d.path().join("fleet.cfg"), FLEET).unwrap();
    std::fs::write(d.path().join("rev1.cfg"), FLEET).unwrap();
    let pushed = d
        .pogo(&["fleet", "push", "prod", "fleet.cfg"])
        .expect(0)
        .stdout();
    assert!(pushed.contains("Fleet prod: revision 1 pushed"), "{pushed}");
    assert!(pushed.contains("8 hosts, 2 budgets"), "{pushed}");
    let shown = d.pogo(&["fleet", "show", "prod"]).expect(0).stdout();
    assert!(
        shown.contains("Fleet prod revision 1 (current): pushed by alice")
            && shown.contains("│ $colo.east ┆ $colo ┆ 2            ┆ 6: e1, e2, e3, e4, e5, e6 │"),
        "{shown}"
    );
    let config = d
        .pogo(&["fleet", "show", "prod", "--config"])
        .expect(0)
        .stdout();
    assert_eq!(config, FLEET);

    // Three jobs over the east hosts: one compiled from the fleet's config, one hand-edited
    // to a limit of 1000, one from a config with no limit at all.
    let rec = d.rec("0.3");
    plan(
        &d,
        "fleet.cfg",
        "a.json",
        &["--targets", "$colo.east", "--command", &rec],
    );
    plan(
        &d,
        "fleet.cfg",
        "b.json",
        &["--targets", "$colo.east", "--command", &rec],
    );
    let mut edited: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("b.json")).unwrap()).unwrap();
    for group in edited["constraints"].as_array_mut().unwrap() {
        group["max_parallel"]["value"] = 1000.into();
    }
    std::fs::write(d.path().join("b.json"), edited.to_string()).unwrap();
    std::fs::write(
        d.path().join("bare.cfg"),
        "tag:\n  all: [e1, e2, e3, e4, e5, e6]\n",
    )
    .unwrap();
    plan(&d, "bare.cfg", "c.json", &["--command", &rec]);
    let jobs = [
        submit(&d, "a.json", &[]),
        submit(&d, "b.json", &["--allow-edited", "--allow-stale"]),
        submit(&d, "c.json", &[]),
    ];
    for job in &jobs {
        d.wait_for_state(job, "succeeded");
    }
    for host in EAST {
        assert_eq!(runs(&d, host), 3, "{host}");
    }
    assert_eq!(peak(&d.spans(), &EAST), 2, "{:?}", d.spans());

    // A plan of revision 1 is stale once revision 2 is pushed: refused, the change named.
    plan(
        &d,
        "rev1.cfg",
        "stale.json",
        &["--targets", "e1", "--command", &rec],
    );
    std::fs::write(
        d.path().join("fleet.cfg"),
        FLEET.replace("max_parallel: 2", "max_parallel: 3"),
    )
    .unwrap();
    let diff = d.pogo(&["fleet", "diff", "prod", "fleet.cfg"]);
    assert_eq!(diff.code(), 2, "{}", diff.stderr());
    assert!(diff.stdout().contains("$colo.east"), "{}", diff.stdout());
    d.pogo(&["fleet", "push", "prod", "fleet.cfg"]).expect(0);
    let refused = d.pogo(&[
        "apply",
        "stale.json",
        "--dispatcher",
        "--transport",
        "local",
        "--detach",
    ]);
    assert_ne!(refused.code(), 0);
    let said = refused.stderr();
    assert!(said.contains("plan is stale for fleet prod"), "{said}");
    assert!(said.contains("`$colo.east` max_parallel 2 -> 3"), "{said}");
    let list = d.pogo(&["fleet", "list"]).expect(0).stdout();
    assert!(list.contains("prod") && list.contains(" 2 "), "{list}");

    // Back to 2; a halted job leaves e1 and e2 failed: they hold both places until closed.
    d.pogo(&["fleet", "push", "prod", "rev1.cfg"]).expect(0);
    d.touch("fail-e1");
    d.touch("fail-e2");
    let slow = d.rec("1");
    plan(
        &d,
        "rev1.cfg",
        "d.json",
        &[
            "--targets",
            "e1,e2",
            "--command",
            &slow,
            "--max-failures",
            "5",
        ],
    );
    let broken = submit(&d, "d.json", &[]);
    wait_until("e1 and e2 to run again", || {
        runs(&d, "e1") == 4 && runs(&d, "e2") == 4
    });
    d.pogo(&["halt", &broken]).expect(0);
    let status = d.wait_for_state(&broken, "stopped");
    assert_eq!(status["counts"]["failed"], 2, "{status}");
    plan(
        &d,
        "rev1.cfg",
        "e.json",
        &["--targets", "e3,e4", "--command", &rec],
    );
    let held = submit(&d, "e.json", &[]);
    let status = d.wait_for_state(&held, "stopped");
    let why = reasons(&status);
    assert!(
        why.contains("$colo.east") && why.contains("e1") && why.contains(&broken),
        "{status}"
    );
    assert_eq!(
        runs(&d, "e3"),
        3,
        "e3 did not start while the budget was full"
    );
    let closed = d.pogo(&["close", &broken]).expect(0).stdout();
    assert!(closed.contains("2 hosts no longer down"), "{closed}");
    let status = d.pogo(&["status", &broken]).expect(0).stdout();
    assert!(
        status.contains(" UTC by alice: its failed hosts hold no place in a fleet's budget"),
        "{status}"
    );
    d.pogo(&["resume", &held]).expect(0);
    d.wait_for_state(&held, "succeeded");
    assert_eq!(peak(&d.spans(), &EAST), 2);
}

#[test]
fn a_dispatcher_killed_with_three_jobs_running_rebuilds_its_budgets_and_runs_nothing_twice() {
    let d = Deployment::new(&["w1", "w2"]);
    let port = free_port();
    let fast = ["--heartbeat", "200ms", "--worker-timeout", "2s"];
    let mut dispatcher = d.dispatcher(port, &fast);
    let _w1 = d.worker("w1", 4);
    let _w2 = d.worker("w2", 4);
    d.wait_for_workers(&["w1", "w2"]);
    std::fs::write(d.path().join("fleet.cfg"), FLEET).unwrap();
    d.pogo(&["fleet", "push", "prod", "fleet.cfg"]).expect(0);
    let rec = d.rec("0.4");
    plan(
        &d,
        "fleet.cfg",
        "all.json",
        &["--targets", "$colo.east", "--command", &rec],
    );
    let jobs: Vec<String> = (0..3).map(|_| submit(&d, "all.json", &[])).collect();
    wait_until("three hosts to start", || {
        d.spans().values().map(Vec::len).sum::<usize>() >= 3
    });
    dispatcher.crash();
    assert!(
        d.spans().values().map(Vec::len).sum::<usize>() < 18,
        "the jobs ended before the crash"
    );
    wait_until("the running commands to end", || d.all_ended());
    let mut dispatcher = d.dispatcher(port, &fast);
    for job in &jobs {
        d.wait_for_state(job, "succeeded");
    }
    for host in EAST {
        assert_eq!(runs(&d, host), 3, "{host}: {:?}", d.spans());
    }
    assert!(peak(&d.spans(), &EAST) <= 2, "{:?}", d.spans());
    kill(dispatcher.pid(), "TERM");
    dispatcher.expect(0);
}

/// Runs until the file `release` appears in the test's directory, recording its span.
const HOLD: &str = r#"dir="$(dirname "$0")"
echo "start $(date +%s%N)" >> "$dir/rec/$POGO_HOST"
while [ ! -e "$dir/release" ]; do sleep 0.05; done
echo "end $(date +%s%N)" >> "$dir/rec/$POGO_HOST"
"#;

#[test]
fn status_why_names_the_full_budget_the_hosts_holding_it_and_their_jobs() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    std::fs::write(d.path().join("fleet.cfg"), FLEET).unwrap();
    std::fs::write(d.path().join("hold.sh"), HOLD).unwrap();
    d.pogo(&["fleet", "push", "prod", "fleet.cfg"]).expect(0);
    let hold = format!("sh {}/hold.sh", d.path().display());
    plan(
        &d,
        "fleet.cfg",
        "first.json",
        &["--targets", "e1,e2", "--command", &hold],
    );
    let first = submit(&d, "first.json", &[]);
    wait_until("e1 and e2 to run", || {
        let spans = d.spans();
        spans.contains_key("e1") && spans.contains_key("e2")
    });
    plan(
        &d,
        "fleet.cfg",
        "second.json",
        &["--targets", "e1,e3", "--command", &hold],
    );
    let second = submit(&d, "second.json", &[]);
    d.wait_for_state(&second, "running");

    // e1 runs in the first job; e3 finds `$colo.east` full of the first job's hosts.
    let why = d
        .pogo(&["status", &second, "--why", "e3", "e1"])
        .expect(0)
        .stdout();
    assert!(
        why.contains(&format!(
            "\nWhy:\n  e3: group `$colo.east` (fleet prod, revision 1) is full, 2 of 2 down: e1 \
             running in job {first}, e2 running in job {first}\n  e1: busy in job {first}\n"
        )),
        "{why}"
    );
    // Without hosts: the head of each thread (here the unordered hosts' first, e1).
    let heads = d.pogo(&["status", &second, "--why"]).expect(0).stdout();
    assert!(
        heads.contains(&format!("  e1 (unordered): busy in job {first}\n")),
        "{heads}"
    );
    let status = d.pogo(&["status", &second]).expect(0).stdout();
    assert!(
        status.contains(&format!("`pogo status {second} --why` says what")),
        "{status}"
    );
    let json: Value = serde_json::from_str(
        &d.pogo(&["status", &second, "--why", "e3", "--json"])
            .expect(0)
            .stdout(),
    )
    .unwrap();
    let budget = &json[0]["why"];
    assert_eq!(budget["waits"], "group", "{json}");
    assert_eq!(budget["fleet"], "prod");
    assert_eq!(budget["max_parallel"], 2);
    assert_eq!(budget["holders"][1]["host"], "e2");
    assert_eq!(budget["holders"][1]["job"], first.as_str());
    let detail = d.status(&second);
    assert_eq!(detail["waiting"][0]["host"], "e1", "{detail}");
    assert_eq!(detail["waiting"][0]["why"]["waits"], "busy");
    let unknown = d.pogo(&["status", &second, "--why", "nope"]);
    assert_ne!(unknown.code(), 0);
    assert!(
        unknown.stderr().contains("has no host `nope`"),
        "{}",
        unknown.stderr()
    );

    // The first job ends; the second runs; nothing waits any more.
    d.touch("release");
    d.wait_for_state(&first, "succeeded");
    d.wait_for_state(&second, "succeeded");
    let done = d.pogo(&["status", &second, "--why"]).expect(0).stdout();
    assert!(done.contains("Nothing waits: the job has ended."), "{done}");
    let asked = d
        .pogo(&["status", &second, "--why", "e3"])
        .expect(0)
        .stdout();
    assert!(asked.contains("  e3: not waiting: succeeded\n"), "{asked}");
}
