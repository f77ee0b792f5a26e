//! The dispatcher as a daemon that a monitoring system watches: `/metrics` read back with a
//! Prometheus text-format parser, `/healthz` and `/readyz`, from real processes.

mod common;

use common::deploy::{free_port, Deployment};
use common::http_get as get;

/// The value of sample `name` with these labels.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|l| l == *v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn metrics_of_a_dispatcher_that_ran_a_job_parse_and_count_its_tasks() {
    let d = Deployment::new(&["w1"]);
    let metrics = free_port();
    let listen = format!("127.0.0.1:{metrics}");
    let _dispatcher = d.dispatcher(0, &["--metrics-listen", &listen]);
    let worker_metrics = free_port();
    let worker_listen = format!("127.0.0.1:{worker_metrics}");
    let _w1 = d.worker_args(
        "w1",
        8,
        &d.files(pogo_remote::certs::Role::Worker, "w1"),
        &["--metrics-listen", &worker_listen],
    );
    d.wait_for_workers(&["w1"]);
    d.pogo(&[
        "plan",
        "--targets",
        "host-[01-20]",
        "--concurrent",
        "5",
        "--command",
        "echo secret-output-of $POGO_HOST",
        "-o",
        "plan.json",
    ])
    .expect(0);
    let job = d.submit();
    d.wait_for_state(&job, "succeeded");

    let (status, text) = get(metrics, "/metrics");
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the metrics parse");
    assert_eq!(sample(&scrape, "pogo_tasks_finished_total", &[]), 20.0);
    assert_eq!(sample(&scrape, "pogo_tasks_handed_out_total", &[]), 20.0);
    assert_eq!(sample(&scrape, "pogo_tasks_lost_total", &[]), 0.0);
    assert_eq!(sample(&scrape, "pogo_jobs", &[("state", "succeeded")]), 1.0);
    assert_eq!(sample(&scrape, "pogo_jobs", &[("state", "running")]), 0.0);
    assert_eq!(sample(&scrape, "pogo_workers_connected", &[]), 1.0);
    assert_eq!(sample(&scrape, "pogo_workers_capacity", &[]), 8.0);
    assert_eq!(sample(&scrape, "pogo_leader", &[]), 1.0);
    let count = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Histogram(ref buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => -1.0,
            })
    };
    let timed = count("pogo_task_seconds_count").or(count("pogo_task_seconds"));
    assert_eq!(timed, Some(20.0), "{text}");
    assert!(
        text.contains("# TYPE pogo_step_seconds histogram"),
        "{text}"
    );
    // Counts and durations only: no host name, no output.
    assert!(!text.contains("host-"), "{text}");
    assert!(!text.contains("secret-output"), "{text}");

    assert_eq!(get(metrics, "/healthz").0, 200);
    let (ready, why) = get(metrics, "/readyz");
    assert_eq!(ready, 200, "{why}");
    assert_eq!(get(metrics, "/nothing").0, 404);

    // The worker's own.
    let (status, text) = get(worker_metrics, "/metrics");
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the metrics parse");
    assert_eq!(
        sample(&scrape, "pogo_worker_tasks_finished_total", &[]),
        20.0
    );
    assert_eq!(sample(&scrape, "pogo_worker_tasks_running", &[]), 0.0);
    assert_eq!(sample(&scrape, "pogo_worker_connected", &[]), 1.0);
    // Each host said `secret-output-of host-NN`: 24 bytes, twenty times.
    assert_eq!(
        sample(&scrape, "pogo_worker_output_bytes_total", &[]),
        480.0
    );
    assert!(
        !text.contains("host-") && !text.contains("secret-output"),
        "{text}"
    );
    assert_eq!(get(worker_metrics, "/readyz").0, 200);
}

#[test]
fn json_logs_parse_line_by_line_and_carry_job_and_task_ids() {
    let d = Deployment::new(&["w1"]);
    // The most verbose level: still JSON on every line, and never a command's output.
    let dispatcher = d.dispatcher(0, &["--log-format", "json", "--log-level", "trace"]);
    let worker = d.worker_args(
        "w1",
        2,
        &d.files(pogo_remote::certs::Role::Worker, "w1"),
        &["--log-format", "json", "--log-level", "trace"],
    );
    d.wait_for_workers(&["w1"]);
    d.pogo(&[
        "plan",
        "--targets",
        "host-[1-3]",
        "--command",
        // Its output is not in its text, which the log names.
        "printf 'secret-%s-of-%s\\n' output $POGO_HOST",
        "-o",
        "plan.json",
    ])
    .expect(0);
    let job = d.submit();
    d.wait_for_state(&job, "succeeded");
    let log = d.pogo(&["log", &job]).expect(0).stdout();
    assert!(
        log.contains("secret-output-of-host-1"),
        "the job did print: {log}"
    );
    for text in [dispatcher.stderr(), worker.stderr()] {
        assert!(!text.contains("secret-output"), "{text}");
    }
    let lines = |text: String| -> Vec<serde_json::Value> {
        text.lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    };
    let said = lines(dispatcher.stderr());
    let of_job: Vec<&serde_json::Value> = said.iter().filter(|l| l["job"] == job).collect();
    assert!(
        of_job.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("submitted by alice"))),
        "{said:?}"
    );
    let handed: Vec<&&serde_json::Value> = of_job
        .iter()
        .filter(|l| l["message"] == "handed out")
        .collect();
    assert_eq!(handed.len(), 3, "{said:?}");
    assert!(handed.iter().all(|l| l["task"]
        .as_str()
        .is_some_and(|t| t.starts_with(&format!("{job}/")))));
    assert!(said
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    let worker_said = lines(worker.stderr());
    assert!(
        worker_said.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("connected to"))),
        "{worker_said:?}"
    );
}

#[test]
fn the_audit_trail_lists_each_operators_action_with_who_and_from_where() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 2);
    d.wait_for_workers(&["w1"]);
    d.touch("fail-h1");
    d.pogo(&[
        "plan",
        "--targets",
        "h[1-2]",
        "--concurrent",
        "1",
        "--command",
        &d.rec("1"),
        "-o",
        "plan.json",
    ])
    .expect(0);
    let job = d.submit();
    d.pogo(&["halt", &job]).expect(0);
    d.wait_for_state(&job, "stopped");
    std::fs::remove_file(d.path().join("fail-h1")).unwrap();
    d.pogo(&["retry", &job, "h1"]).expect(0);
    common::deploy::wait_until("the retried host to succeed", || {
        d.status(&job)["counts"]["succeeded"] == 1
    });

    let records = d.pogo(&["audit-log", "--json"]).json();
    let actions: Vec<(&str, &str, &str, &str)> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["by"].as_str().unwrap(),
                r["from"].as_str().unwrap(),
                r["job"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("submit", "alice", "127.0.0.1", job.as_str()),
            ("halt", "alice", "127.0.0.1", job.as_str()),
            ("retry", "alice", "127.0.0.1", job.as_str()),
        ]
    );
    assert_eq!(records[2]["detail"], "h1");
    let table = d.pogo(&["audit-log"]).expect(0).stdout();
    assert!(
        table.contains("retry") && table.contains("alice"),
        "{table}"
    );
}
