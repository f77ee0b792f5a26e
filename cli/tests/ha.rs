//! Several dispatchers on one PostgreSQL database, as a team that must survive losing a
//! machine runs them: real dispatcher and worker processes, a real PostgreSQL server started
//! by the test, failures made with signals.

mod common;

#[path = "../../remote/test-support/postgres_server.rs"]
mod postgres_server;

use std::collections::BTreeMap;

use common::deploy::{free_port, kill, wait_until, Deployment, Proc};
use pogo_model::Plan;
use postgres_server::PostgresServer;
use serde_json::Value;

/// The dispatchers' flags in these tests: a short lease, quick heartbeats.
const FAST: &[&str] = &[
    "--lease",
    "2s",
    "--heartbeat",
    "200ms",
    "--worker-timeout",
    "5s",
];

/// Two dispatchers on `database`: the first leads; operators and workers go through the
/// second (a standby redirects them to the leader, and leads itself once the first is gone).
fn two_dispatchers(d: &Deployment, database: &str) -> (Proc, Proc, String, String) {
    let first = d.dispatcher_on(database, "d1", free_port(), FAST);
    first.wait_for_stderr("leading (epoch");
    let first_url = d.url();
    let second = d.dispatcher_on(database, "d2", free_port(), FAST);
    let second_url = d.url();
    (first, second, first_url, second_url)
}

/// Plans `hosts` hosts, at most `limit` at once, each running for `seconds`.
fn plan(d: &Deployment, hosts: usize, limit: usize, seconds: &str) -> Plan {
    let targets = format!("h[001-{hosts:03}]");
    d.pogo(&[
        "plan",
        "--targets",
        &targets,
        "--concurrent",
        &limit.to_string(),
        "--command",
        &d.rec(seconds),
        "-o",
        "plan.json",
    ])
    .expect(0);
    let text = std::fs::read_to_string(d.path().join("plan.json")).unwrap();
    Plan::from_json(&text).unwrap()
}

fn succeeded(status: &Value) -> u64 {
    status["counts"]["succeeded"].as_u64().unwrap_or(0)
}

/// The job's events are numbered 1, 2, 3... with none missing or repeated, and every host
/// finished exactly once.
fn check_events(d: &Deployment, job: &str, plan: &Plan) {
    let events = d.events(job);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "events renumbered or lost"
    );
    let mut finished: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        if event["event"] == "host_finished" {
            *finished
                .entry(event["host"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(finished.len(), plan.hosts.len(), "{finished:?}");
    assert!(finished.values().all(|&n| n == 1), "{finished:?}");
}

#[test]
fn a_standby_takes_over_from_a_killed_leader_and_the_job_finishes_with_nothing_twice() {
    let server = PostgresServer::start();
    let database = server.database();
    let d = Deployment::new(&["w1", "w2"]);
    let (mut first, second, first_url, second_url) = two_dispatchers(&d, &database);
    // Workers and the operator know both, the leader first.
    d.use_dispatcher(&format!("{first_url},{second_url}"));
    let _w1 = d.worker("w1", 6);
    let _w2 = d.worker("w2", 6);
    let plan = plan(&d, 100, 8, "0.1");
    // The operator follows the job live, as `pogo apply --dispatcher` does.
    let mut apply = d.spawn(
        "apply",
        &["apply", "plan.json", "--dispatcher", "--transport", "local"],
    );
    let mut job = String::new();
    wait_until("the job to be submitted", || {
        let jobs = d.pogo(&["jobs", "--json"]).json();
        job = jobs[0]["id"].as_str().unwrap_or_default().to_string();
        !job.is_empty()
    });
    wait_until("a third of the job to run", || {
        succeeded(&d.status(&job)) >= 30
    });

    first.crash();
    second.wait_for_stderr("leading (epoch 2)");
    assert_eq!(apply.wait(), 0, "{}", apply.stderr());
    assert!(
        apply.stdout().contains("100 succeeded"),
        "{}",
        apply.stdout()
    );
    let status = d.wait_for_state(&job, "succeeded");
    assert_eq!(succeeded(&status), 100, "{status}");
    wait_until("every command to end", || d.all_ended());
    let peaks = common::check_order_and_limits(&plan, &d.spans());
    assert!(peaks.values().all(|&peak| peak <= 8), "{peaks:?}");
    check_events(&d, &job, &plan);
}

#[test]
fn a_leader_paused_past_its_lease_steps_down_when_it_wakes_and_writes_nothing() {
    let server = PostgresServer::start();
    let database = server.database();
    let d = Deployment::new(&["w1"]);
    let (first, second, _, second_url) = two_dispatchers(&d, &database);
    d.use_dispatcher(&second_url);
    let _w1 = d.worker("w1", 4);
    let plan = plan(&d, 40, 4, "0.1");
    let job = d.submit();
    wait_until("the job to start", || succeeded(&d.status(&job)) >= 5);

    kill(first.pid(), "STOP");
    second.wait_for_stderr("leading (epoch 2)");
    kill(first.pid(), "CONT");
    first.wait_for_stderr("stepping down (epoch 1)");
    let status = d.wait_for_state(&job, "succeeded");
    assert_eq!(succeeded(&status), 40, "{status}");
    wait_until("every command to end", || d.all_ended());
    common::check_order_and_limits(&plan, &d.spans());
    check_events(&d, &job, &plan);
    // The lease is the second dispatcher's, and the first wrote nothing once it woke: its
    // core stopped on its first write or answer (the store refused it).
    let leader = leader_row(&server, &database);
    assert_eq!(leader.0, 2);
    assert_eq!(leader.1, second_url);
    // Woken, it found its lease gone (or its session, paused in a transaction, ended by
    // the server) and stopped before writing or answering anything.
    let said = first.stderr();
    assert!(
        said.contains("no longer leads") || said.contains("the batch was lost"),
        "the paused leader's core stopped: {said}"
    );
}

#[test]
fn the_job_finishes_when_postgresql_restarts_under_it() {
    let mut server = PostgresServer::start();
    let database = server.database();
    let d = Deployment::new(&["w1"]);
    let (_first, _second, _, second_url) = two_dispatchers(&d, &database);
    d.use_dispatcher(&second_url);
    let _w1 = d.worker("w1", 4);
    let plan = plan(&d, 40, 4, "0.1");
    let job = d.submit();
    wait_until("the job to start", || succeeded(&d.status(&job)) >= 5);
    server.restart();
    let status = d.wait_for_state(&job, "succeeded");
    assert_eq!(succeeded(&status), 40, "{status}");
    wait_until("every command to end", || d.all_ended());
    common::check_order_and_limits(&plan, &d.spans());
    check_events(&d, &job, &plan);
}

/// The lease row: epoch and URL of the leader.
fn leader_row(server: &PostgresServer, database: &str) -> (i64, String) {
    let name = database
        .rsplit_once('/')
        .and_then(|(_, rest)| rest.split('?').next())
        .unwrap();
    let mut client = postgres::Client::connect(&server.conninfo(name), postgres::NoTls).unwrap();
    let row = client
        .query_one("SELECT epoch, url FROM pogo_leader WHERE id = 1", &[])
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn a_second_dispatcher_on_the_same_state_dir_is_refused() {
    let d = Deployment::new(&[]);
    let _first = d.dispatcher(0, &[]);
    let certs = d.certs();
    let file = |name: &str| certs.join(name).display().to_string();
    let state = d.state_dir().display().to_string();
    let second = d.pogo(&[
        "dispatcher",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &state,
        "--cert",
        &file("dispatcher.pem"),
        "--key",
        &file("dispatcher-key.pem"),
        "--ca",
        &file("ca.pem"),
    ]);
    assert_ne!(second.code(), 0);
    assert!(
        second
            .stderr()
            .contains("another dispatcher uses the state dir"),
        "{}",
        second.stderr()
    );
}

#[test]
fn readyz_says_which_dispatcher_leads() {
    let server = PostgresServer::start();
    let database = server.database();
    let d = Deployment::new(&[]);
    let (m1, m2) = (free_port(), free_port());
    let with = |port: u16| {
        let mut flags: Vec<String> = FAST.iter().map(|f| f.to_string()).collect();
        flags.extend(["--metrics-listen".to_string(), format!("127.0.0.1:{port}")]);
        flags
    };
    let flags1 = with(m1);
    let flags1: Vec<&str> = flags1.iter().map(String::as_str).collect();
    let mut first = d.dispatcher_on(&database, "d1", free_port(), &flags1);
    first.wait_for_stderr("leading (epoch");
    let flags2 = with(m2);
    let flags2: Vec<&str> = flags2.iter().map(String::as_str).collect();
    let second = d.dispatcher_on(&database, "d2", free_port(), &flags2);
    wait_until("the standby to know the leader", || {
        common::http_get(m2, "/readyz").1.contains("the leader is")
    });
    assert_eq!(common::http_get(m1, "/readyz").0, 200);
    let (status, why) = common::http_get(m2, "/readyz");
    assert_eq!(status, 503, "{why}");
    assert_eq!(
        common::http_get(m2, "/healthz").0,
        200,
        "a standby is alive"
    );
    let leader = |port: u16| {
        common::http_get(port, "/metrics")
            .1
            .lines()
            .any(|line| line == "pogo_leader 1")
    };
    assert!(leader(m1), "{}", common::http_get(m1, "/metrics").1);
    assert!(!leader(m2), "{}", common::http_get(m2, "/metrics").1);

    first.crash();
    second.wait_for_stderr("leading (epoch 2)");
    wait_until("the new leader to be ready", || {
        common::http_get(m2, "/readyz").0 == 200
    });
    assert!(leader(m2));
}
