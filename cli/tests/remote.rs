//! Remote apply as it is deployed: real `pogo dispatcher`, `pogo worker` and operator
//! processes on loopback, with certificates made by `pogo certs init`, each test in a
//! directory of its own. End to end runs, halt, resume and retry through the operator
//! commands, what the mutual TLS lets in and what it refuses, that an SSH password is never
//! written down, and what happens when a dispatcher or a worker dies mid-job.
//!
//! Every host runs `rec.sh`, which appends `start NANOS` and `end NANOS` to `rec/HOST`, so a
//! test can count how often each host ran and check order and limits against the plan, as
//! the local apply tests do: a host's recorded span lies within the time the dispatcher
//! counts it down, so spans that break the plan's order or limits prove pogo wrong. A host
//! fails (exit 3) while the file `fail-HOST` exists.
//!
//! Processes are guarded: each one (and whatever it started that still runs) is killed when
//! its guard drops, and when a test fails every process's stdout and stderr is printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::deploy::*;
use common::{check_order_and_limits, processes_matching, Run};
use pogo_executor::transport::TransportSpec;
use pogo_remote::api::{HaltJob, Heartbeat, Poll, SubmitJob};
use pogo_remote::certs::{self, Role, Validity};
use pogo_remote::client::ClientError;
use pogo_remote::tls::TlsFiles;
use serde_json::Value;

/// Two threads (east before west; the databases beside them) and a limit per colo.
const FLEET: &str = "tag:
  colo:
    east: [east1, east2, east3, east4]
    west: [west1, west2, west3, west4]
  role:
    db: [db1, db2]
sequence:
  web:
    - $colo.east
    - $colo.west
  data:
    - $role.db
constraint:
  $colo:
    max_parallel: 2
";

/// Heartbeats and the worker timeout of the fault tests: a lost worker is noticed in 2 s.
const FAST_HEARTBEAT: &[&str] = &["--heartbeat", "200ms", "--worker-timeout", "2s"];

/// Each host's entry in a job's status, by name.
fn hosts_of(status: &Value) -> BTreeMap<String, Value> {
    status["host_states"]
        .as_array()
        .unwrap_or_else(|| panic!("no host_states in {status}"))
        .iter()
        .map(|h| (h["host"].as_str().unwrap().to_string(), h.clone()))
        .collect()
}

/// Checks a job's event stream from the start: sequence numbers 1..N without a gap, and for
/// each host of `hosts` exactly `sessions` host_started and host_finished events.
fn check_events(events: &[Value], hosts: &[String], sessions: usize) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as u64 + 1, "event {i}: {event}");
    }
    for host in hosts {
        for kind in ["host_started", "host_finished"] {
            let n = events
                .iter()
                .filter(|e| e["event"] == kind && e["host"] == host.as_str())
                .count();
            assert_eq!(n, sessions, "{host} has {n} {kind} events: {events:#?}");
        }
    }
    let ends = events
        .iter()
        .filter(|e| e["event"] == "run_finished")
        .count();
    assert_eq!(ends, sessions, "{events:#?}");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
}

// 1. End to end.

#[test]
fn two_workers_run_a_plan_in_its_order_and_within_its_limits() {
    let d = Deployment::new(&["w1", "w2"]);
    let _dispatcher = d.dispatcher(0, &[]);
    // Two tasks at most on each: with three hosts running at once, both workers run some.
    let _w1 = d.worker("w1", 2);
    let _w2 = d.worker("w2", 2);
    d.wait_for_workers(&["w1", "w2"]);
    let plan = d.plan(
        Some(FLEET),
        &["--command", &d.rec("0.3"), "--concurrent", "3"],
    );
    assert!(!plan.edges.is_empty() && plan.constraints.len() == 3);

    // Every connection setting as a flag, none from the environment.
    let alice = d.files(Role::Operator, "alice");
    let url = d.url();
    let run = Run(d
        .command(&[
            "apply",
            "--dispatcher",
            &url,
            "plan.json",
            "--transport",
            "local",
            "--cert",
            &path_text(&alice.cert),
            "--key",
            &path_text(&alice.key),
            "--ca",
            &path_text(&alice.ca),
        ])
        .env_remove("POGO_DISPATCHER")
        .env_remove("POGO_CERT")
        .env_remove("POGO_KEY")
        .env_remove("POGO_CA")
        .output()
        .unwrap());
    run.expect(0);
    let out = run.stdout();
    assert!(out.contains("east1: Running target\n"), "{out}");
    assert!(out.contains("west4: Success\n"), "{out}");
    assert!(out.contains("Succeeded: all 10 hosts\n"), "{out}");

    let peaks = check_order_and_limits(&plan, &d.spans());
    assert_eq!(peaks["job"], 3, "{peaks:?}");
    assert_eq!(peaks["$colo.east"], 2, "{peaks:?}");

    // Both workers ran hosts, and the dispatcher knows which ran what.
    let jobs = d.pogo(&["jobs", "--json"]).json();
    let job = jobs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(jobs[0]["state"], "succeeded");
    assert_eq!(jobs[0]["submitted_by"], "alice");
    let status = d.status(&job);
    let mut ran_by: BTreeMap<String, usize> = BTreeMap::new();
    for (host, entry) in hosts_of(&status) {
        assert_eq!(entry["state"], "succeeded", "{host}: {entry}");
        assert_eq!(entry["attempts"], 1, "{host}: {entry}");
        *ran_by
            .entry(entry["worker"].as_str().unwrap_or("none").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        ran_by.keys().collect::<Vec<_>>(),
        ["w1", "w2"],
        "{ran_by:?}"
    );
    let finished: Vec<u64> = ["w1", "w2"]
        .iter()
        .map(|w| d.worker_info(w).unwrap()["finished"].as_u64().unwrap())
        .collect();
    assert_eq!(finished, [ran_by["w1"] as u64, ran_by["w2"] as u64]);
    check_events(&d.events(&job), &plan.hosts, 1);

    // The job's record, audited from its events, agrees with the spans the hosts wrote.
    let audit = d.pogo(&["audit", &job]);
    audit.expect(0);
    let text = audit.stdout();
    assert!(
        text.starts_with(&format!("Audit of job {job}: 1 session")),
        "{text}"
    );
    let peak = |group: &str| -> String {
        let row = text
            .lines()
            .find(|l| l.contains(&format!("│ {group} ")))
            .expect(&text);
        row.split('┆').nth(2).unwrap().trim().to_string()
    };
    assert_eq!(peak("job"), peaks["job"].to_string(), "{text}");
    assert_eq!(
        peak("$colo.east"),
        peaks["$colo.east"].to_string(),
        "{text}"
    );
    assert!(
        text.contains("10 succeeded") && text.contains("OK: "),
        "{text}"
    );
}

// 2. Halt, resume, retry.

#[test]
fn ctrl_c_once_halts_the_job_and_twice_detaches() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    d.plan(None, &["--command", &d.rec("0.8"), "--concurrent", "2"]);
    let args = ["apply", "plan.json", "--dispatcher", "--transport", "local"];

    // Once: the job halts on the dispatcher, the running hosts finish, and apply follows it
    // to its end: stopped, exit 4.
    let mut apply = d.spawn("apply-halted", &args);
    wait_until("two hosts to start", || d.spans().len() == 2);
    kill(apply.pid(), "INT");
    apply.expect(4);
    assert!(apply.stderr().contains("halting job"), "{}", apply.stderr());
    let job = d.pogo(&["jobs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = d.status(&job);
    assert_eq!(status["state"], "stopped", "{status}");
    assert_eq!(status["counts"]["succeeded"], 2, "{status}");
    assert!(d.all_ended());

    // Twice: apply detaches at once, and the job goes on to its end without it.
    let mut apply = d.spawn("apply-detached", &args);
    // The same hosts run again in this job: count runs, not hosts.
    wait_until("two more hosts to start", || {
        d.spans().values().map(Vec::len).sum::<usize>() == 4
    });
    kill(apply.pid(), "INT");
    wait_until("the halt to be asked", || {
        apply.stderr().contains("halting job")
    });
    kill(apply.pid(), "INT");
    apply.expect(4);
    assert!(
        apply.stderr().contains("detached from job"),
        "{}",
        apply.stderr()
    );
    let second = d.pogo(&["jobs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, job);
    let status = d.wait_for_state(&second, "stopped");
    assert_eq!(status["counts"]["succeeded"], 2, "{status}");
}

#[test]
fn a_halted_job_lets_running_hosts_finish_and_resume_runs_only_the_rest() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    let plan = d.plan(None, &["--command", &d.rec("0.6"), "--concurrent", "2"]);
    let job = d.submit();

    wait_until("two hosts to start", || d.spans().len() == 2);
    let halt = d.pogo(&["halt", &job]);
    let halted_at = now_nanos();
    assert!(
        halt.expect(0)
            .stdout()
            .starts_with(&format!("{job}: halting")),
        "{}",
        halt.stdout()
    );
    let status = d.wait_for_state(&job, "stopped");

    // The running hosts finished, and succeeded; no host started after the halt.
    let spans = d.spans();
    assert!(d.all_ended(), "{spans:?}");
    let hosts = hosts_of(&status);
    for (host, entry) in &hosts {
        match spans.get(host) {
            Some(ran) => {
                assert_eq!(ran.len(), 1, "{host}: {ran:?}");
                assert!(ran[0].0 < halted_at, "{host} started after the halt");
                assert_eq!(entry["state"], "succeeded", "{host}: {entry}");
            }
            None => assert_eq!(entry["state"], "skipped", "{host}: {entry}"),
        }
    }
    let skipped = 9 - spans.len();
    assert!(skipped >= 5, "{spans:?}");
    assert_eq!(status["counts"]["skipped"], skipped as u64, "{status}");
    assert_eq!(
        status["counts"]["succeeded"],
        spans.len() as u64,
        "{status}"
    );

    // Resumed: the others run, each once; no succeeded host runs again.
    let resume = d.pogo(&["resume", &job]);
    assert!(
        resume
            .expect(0)
            .stdout()
            .starts_with(&format!("{job}: running")),
        "{}",
        resume.stdout()
    );
    d.wait_for_state(&job, "succeeded");
    check_order_and_limits(&plan, &d.spans());
    // Both sessions are in the job's events, numbered on.
    let events = d.events(&job);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as u64 + 1, "event {i}: {event}");
    }
    let sessions: Vec<(&Value, &Value)> = events
        .iter()
        .filter(|e| e["event"] == "run_started")
        .map(|e| (&e["resumed"], &e["seq"]))
        .collect();
    assert_eq!(sessions.len(), 2, "{events:#?}");
    assert_eq!(
        (sessions[0].0, sessions[1].0),
        (&false.into(), &true.into())
    );
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "run_finished")
        .map(|e| &e["result"])
        .collect();
    assert_eq!(results, ["stopped", "succeeded"], "{events:#?}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "run_stopping" && e["reason"] == "halted by the operator"),
        "{events:#?}"
    );
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "host_started")
        .map(|e| &e["host"])
        .collect();
    assert_eq!(started.len(), 9, "{events:#?}");
    let distinct: BTreeSet<String> = started.iter().map(|h| h.to_string()).collect();
    assert_eq!(distinct.len(), 9, "{events:#?}");
}

/// `pogo apply --dispatcher` refuses what a local apply refuses: a stale plan and an edited
/// one; the overrides let them through and the job records them, and lowered limits travel
/// beside the plan.
#[test]
fn a_remote_apply_refuses_stale_and_edited_plans_unless_told_and_the_job_records_it() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    d.plan(
        Some(FLEET),
        &["--command", &d.rec("0"), "--concurrent", "3"],
    );
    let submit = |extra: &[&str]| {
        let mut args = vec!["apply", "plan.json", "--dispatcher", "--transport", "local"];
        args.push("--detach");
        args.extend_from_slice(extra);
        d.pogo(&args)
    };

    // The config changed after the plan was made.
    std::fs::write(d.path().join("fleet.cfg"), FLEET.replace("db2", "db3")).unwrap();
    let stale = submit(&[]);
    stale.expect(1);
    assert!(
        stale.stderr().starts_with(
            "error: plan is stale: config changed since the plan was written; run pogo plan \
             again\n"
        ),
        "{}",
        stale.stderr()
    );
    let job = submit(&["--allow-stale", "--concurrent", "1"])
        .expect(0)
        .stdout();
    let job = job.trim();
    d.wait_for_state(job, "succeeded");
    let events = d.events(job);
    assert_eq!(events[0]["event"], "run_started");
    assert_eq!(events[0]["overrides"], serde_json::json!(["allow-stale"]));

    // Edited by hand.
    std::fs::write(d.path().join("fleet.cfg"), FLEET).unwrap();
    let mut plan: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("plan.json")).unwrap())
            .unwrap();
    plan["options"]["retries"] = serde_json::json!(3);
    std::fs::write(d.path().join("plan.json"), plan.to_string()).unwrap();
    let edited = submit(&[]);
    edited.expect(1);
    assert!(
        edited.stderr().starts_with(
            "error: the plan was edited after `pogo plan` wrote it: `options` is not what was \
             sealed\n"
        ),
        "{}",
        edited.stderr()
    );
    let job = submit(&["--allow-edited"]).expect(0).stdout();
    let job = job.trim();
    d.wait_for_state(job, "succeeded");
    assert_eq!(
        d.events(job)[0]["overrides"],
        serde_json::json!(["allow-edited"])
    );
}

#[test]
fn retry_runs_the_named_failed_host_again_and_no_other() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    d.plan(
        None,
        &[
            "--targets",
            "host1,host2,host3",
            "--command",
            &d.rec("0.1"),
            "--max-failures",
            "1",
        ],
    );
    d.touch("fail-host2");
    let run = d.pogo(&["apply", "plan.json", "--dispatcher", "--transport", "local"]);
    run.expect(3);
    assert!(
        run.stdout().contains("host2: Failed (exit code 3)\n"),
        "{}",
        run.stdout()
    );
    let job = d.pogo(&["jobs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = d.status(&job);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(hosts_of(&status)["host2"]["state"], "failed");

    // The command succeeds now: a retry runs host2 alone.
    std::fs::remove_file(d.path().join("fail-host2")).unwrap();
    let retry = d.pogo(&["retry", &job, "host2"]);
    retry.expect(0);
    assert!(
        retry.stdout().starts_with(&format!("{job}: ")),
        "{}",
        retry.stdout()
    );
    let status = d.wait_for_state(&job, "succeeded");
    let hosts = hosts_of(&status);
    assert_eq!(hosts["host2"]["state"], "succeeded", "{status}");
    // Attempts of the last session, as host_finished says (the status said 2 and the event 1).
    assert_eq!(hosts["host2"]["attempts"], 1, "{status}");
    assert_eq!(hosts["host1"]["attempts"], 1, "{status}");
    let last_finish = d
        .events(&job)
        .into_iter()
        .rfind(|e| e["event"] == "host_finished" && e["host"] == "host2")
        .expect("host2 finished");
    assert_eq!(last_finish["attempts"], hosts["host2"]["attempts"]);
    assert_eq!(
        d.runs_per_host(),
        BTreeMap::from([
            ("host1".to_string(), 1),
            ("host2".to_string(), 2),
            ("host3".to_string(), 1)
        ])
    );
    // A succeeded host is never run again by a retry.
    let refused = d.pogo(&["retry", &job, "host1"]);
    refused.expect(1);
    assert!(
        refused.stderr().contains("host `host1`") && refused.stderr().contains("succeeded"),
        "{}",
        refused.stderr()
    );
    assert_eq!(d.status(&job)["state"], "succeeded");
    assert_eq!(d.runs_per_host()["host1"], 1);
    // Two sessions, the second running host2 again: the record still agrees with the plan.
    let audit = d.pogo(&["audit", &job]);
    audit.expect(0);
    assert!(
        audit.stdout().contains(": 2 sessions,"),
        "{}",
        audit.stdout()
    );
    assert!(
        audit.stdout().contains("(3 succeeded)"),
        "{}",
        audit.stdout()
    );
}

// 3. Security.

/// A raw TLS client of the dispatcher: trusts the deployment's CA, and shows `client` (a
/// certificate and its key), or no certificate.
fn raw_tls_config(
    ca: &Path,
    client: Option<&TlsFiles>,
    version: &'static rustls::SupportedProtocolVersion,
) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Connects to the dispatcher with `config`, finishes the handshake, waits up to `verdict`
/// for the dispatcher to refuse the client, and asks for the jobs: the answer's status line,
/// or the TLS error that ended the connection.
fn tls_request(
    port: u16,
    config: rustls::ClientConfig,
    verdict: Duration,
) -> Result<String, rustls::Error> {
    tls_send(
        port,
        config,
        verdict,
        b"GET /v1/jobs HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )
}

/// [`tls_request`] with this request.
fn tls_send(
    port: u16,
    config: rustls::ClientConfig,
    verdict: Duration,
    request: &[u8],
) -> Result<String, rustls::Error> {
    tls_answer(port, config, verdict, request, false)
        .map(|answer| answer.lines().next().unwrap_or_default().to_string())
}

/// [`tls_send`], and the whole answer (headers and body) when `whole`, else its first line
/// at least.
fn tls_answer(
    port: u16,
    config: rustls::ClientConfig,
    verdict: Duration,
    request: &[u8],
    whole: bool,
) -> Result<String, rustls::Error> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tls_error = |e: std::io::Error| -> rustls::Error {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(error) => error.clone(),
            None => panic!("not a TLS error, but {e:?}"),
        }
    };
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(tls_error)?;
    }
    // With TLS 1.3 the client's certificate is checked after the client has finished: the
    // dispatcher's verdict comes as the first thing to read. Nothing is sent before it, so
    // that the dispatcher closes a connection with nothing unread and the alert arrives.
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    if !verdict.is_zero() {
        tls.sock.set_read_timeout(Some(verdict)).unwrap();
        let mut probe = [0u8; 1];
        match tls.read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(tls_error(e)),
            Ok(n) => panic!("the dispatcher spoke first ({n} bytes)"),
        }
    }
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    tls.write_all(request).map_err(tls_error)?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while whole || !answer.windows(2).any(|w| w == b"\r\n") {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // The dispatcher closed the connection it was asked to close.
            Err(e) if whole && e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(tls_error(e)),
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn clients_without_a_good_certificate_fail_in_the_handshake() {
    use rustls::AlertDescription;
    let d = Deployment::new(&["w1"]);
    let dispatcher = d.dispatcher(0, &[]);
    let port: u16 = d.url().rsplit_once(':').unwrap().1.parse().unwrap();
    let ca = d.files(Role::Operator, "alice").ca;

    // Another deployment's operator.
    d.pogo(&["certs", "init", "other", "--operator", "mallory"])
        .expect(0);
    let stranger = TlsFiles {
        cert: d.path().join("other/operator-mallory.pem"),
        key: d.path().join("other/operator-mallory-key.pem"),
        ca: ca.clone(),
    };
    // An operator of this deployment whose certificate expired yesterday.
    let day = Duration::from_secs(24 * 3600);
    let now = SystemTime::now();
    let old = certs::issue(
        &d.certs(),
        Role::Operator,
        "old",
        &[],
        Validity {
            not_before: now - 2 * day,
            not_after: now - day,
        },
    )
    .unwrap();
    let expired = TlsFiles {
        cert: old.cert,
        key: old.key,
        ca: ca.clone(),
    };
    let alice = d.files(Role::Operator, "alice");

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let attempt = |client: Option<&TlsFiles>, verdict: Duration| {
            tls_request(port, raw_tls_config(&ca, client, version), verdict)
        };
        // The same client with the operator's own certificate gets in: the refusals below
        // are the certificates', not the client's.
        assert_eq!(
            attempt(Some(&alice), Duration::ZERO).as_deref(),
            Ok("HTTP/1.1 200 OK"),
            "{version:?}"
        );
        for (client, alert) in [
            (None, AlertDescription::CertificateRequired),
            (Some(&stranger), AlertDescription::UnknownCA),
            (Some(&expired), AlertDescription::CertificateExpired),
        ] {
            let got = attempt(client, Duration::from_secs(5));
            assert_eq!(
                got,
                Err(rustls::Error::AlertReceived(alert)),
                "{version:?}, {:?}",
                client.map(|c| &c.cert)
            );
        }
    }
    // And pogo's own client says so, pointing at the certificate.
    let refused = Run(d
        .command(&["jobs"])
        .env("POGO_CERT", &stranger.cert)
        .env("POGO_KEY", &stranger.key)
        .output()
        .unwrap());
    refused.expect(1);
    assert!(
        refused
            .stderr()
            .contains("the dispatcher did not accept this client's certificate"),
        "{}",
        refused.stderr()
    );

    // A refused handshake is final: `pogo apply` says so at once, not after 7.5 s of
    // retries ending in "the dispatcher may have made the job" (nothing was sent).
    d.plan(None, &["--command", "true"]);
    let started = std::time::Instant::now();
    let apply = Run(d
        .command(&["apply", "plan.json", "--dispatcher", "--transport", "local"])
        .env("POGO_CERT", &stranger.cert)
        .env("POGO_KEY", &stranger.key)
        .output()
        .unwrap());
    apply.expect(1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        apply
            .stderr()
            .contains("the dispatcher did not accept this client's certificate")
            && !apply.stderr().contains("may have made"),
        "{}",
        apply.stderr()
    );

    // A worker of another deployment exits with the reason, as one with the wrong role does,
    // instead of retrying for ever.
    d.pogo(&["certs", "init", "third", "--worker", "w9"])
        .expect(0);
    let foreign = TlsFiles {
        cert: d.path().join("third/worker-w9.pem"),
        key: d.path().join("third/worker-w9-key.pem"),
        ca: ca.clone(),
    };
    let mut worker = d.worker_with("w9", 1, &foreign);
    wait_until("the foreign worker to exit", || worker.exited());
    assert_ne!(worker.wait(), 0);
    assert!(
        worker.stderr().contains("certificate"),
        "{}",
        worker.stderr()
    );
    drop(dispatcher);
}

#[test]
fn a_certificate_reaches_only_the_endpoints_of_its_role() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let plan = d.plan(None, &["--command", "true"]);
    let worker = d.client(Role::Worker, "w1");
    let alice = d.client(Role::Operator, "alice");
    let forbidden = |result: Result<(), ClientError>, role: &str| match result {
        Err(ClientError::Status { status, message }) => {
            assert_eq!(status, 403, "{message}");
            assert!(
                message.contains(&format!("this endpoint is for {role}s")),
                "{message}"
            );
        }
        other => panic!("not refused: {other:?}"),
    };
    // The role is checked before the body is read: a worker's certificate posting something
    // that is not a job at all is refused for its role, not for its body.
    let port: u16 = d.url().rsplit_once(':').unwrap().1.parse().unwrap();
    let files = d.files(Role::Worker, "w1");
    let garbage = "not a job";
    let request = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{garbage}",
        garbage.len()
    );
    let config = raw_tls_config(&files.ca, Some(&files), &rustls::version::TLS13);
    assert_eq!(
        tls_send(port, config, Duration::ZERO, request.as_bytes()).as_deref(),
        Ok("HTTP/1.1 403 Forbidden")
    );
    Deployment::runtime().block_on(async {
        let job = SubmitJob {
            plan,
            limits: Default::default(),
            overrides: Vec::new(),
            transport: TransportSpec::Local,
            retry_delay_ms: 0,
            password: None,
            submission: None,
        };
        // A worker's certificate calling the operators' endpoints.
        forbidden(worker.jobs().await.map(drop), "operator");
        forbidden(worker.submit(&job).await.map(drop), "operator");
        forbidden(
            worker.halt("job-x", &HaltJob::default()).await.map(drop),
            "operator",
        );
        forbidden(worker.workers().await.map(drop), "operator");
        forbidden(worker.approve("job-x", "t.0").await.map(drop), "operator");
        // An operator's calling the workers'.
        let poll = Poll {
            free: 1,
            capacity: 1,
            wait_ms: 0,
            features: Vec::new(),
        };
        forbidden(alice.poll(&poll).await.map(drop), "worker");
        forbidden(
            alice.heartbeat(&Heartbeat::default()).await.map(drop),
            "worker",
        );
        // Nothing came of them: no job, and the operator is no worker.
        assert!(alice.jobs().await.unwrap().is_empty());
        assert!(alice.workers().await.unwrap().is_empty());
        // The operator may submit.
        alice.submit(&job).await.unwrap();
    });

    // `pogo jobs` with a worker's certificate: refused, and it says why.
    let w1 = d.files(Role::Worker, "w1");
    let run = Run(d
        .command(&["jobs"])
        .env("POGO_CERT", &w1.cert)
        .env("POGO_KEY", &w1.key)
        .output()
        .unwrap());
    run.expect(1);
    assert!(
        run.stderr().contains("this endpoint is for operators") && run.stderr().contains("403"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_dashboard_is_served_to_operators_and_its_actions_need_a_csrf_token() {
    use rustls::AlertDescription;
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let port: u16 = d.url().rsplit_once(':').unwrap().1.parse().unwrap();
    let (alice, w1) = (
        d.files(Role::Operator, "alice"),
        d.files(Role::Worker, "w1"),
    );
    let get = |files: Option<&TlsFiles>, request: &str| {
        let config = raw_tls_config(&alice.ca, files, &rustls::version::TLS13);
        tls_answer(port, config, Duration::ZERO, request.as_bytes(), true)
    };
    let page = "GET /ui/ HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";

    // An operator's certificate gets the page, its policy and a CSRF token.
    let answer = get(Some(&alice), page).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'self'"),
        "{answer}"
    );
    assert!(lower.contains("set-cookie: pogo_csrf="), "{answer}");
    assert!(answer.contains("app.js"), "{answer}");
    for file in ["app.js", "app.css", "config.json"] {
        let request =
            format!("GET /ui/{file} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
        let answer = get(Some(&alice), &request).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{file}: {answer}");
    }
    // A worker's certificate is refused for its role; no certificate, in the handshake.
    let answer = get(Some(&w1), page).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden"), "{answer}");
    assert!(
        answer.contains("this endpoint is for operators"),
        "{answer}"
    );
    let config = raw_tls_config(&alice.ca, None, &rustls::version::TLS13);
    assert_eq!(
        tls_request(port, config, Duration::from_secs(2)),
        Err(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
        ))
    );

    // A job to halt.
    d.plan(None, &["--command", "sleep 30"]);
    let job = d.submit();
    let halt = |headers: &str| {
        let body = r#"{"kill":true}"#;
        let request = format!(
            "POST /v1/jobs/{job}/halt HTTP/1.1\r\nhost: 127.0.0.1\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n{headers}\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        let answer = get(Some(&alice), &request).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    };
    // From a browser (it sends Origin): without the token, with another, or with the header
    // alone, refused; the job runs on.
    for headers in [
        "origin: https://127.0.0.1\r\n",
        "origin: https://evil.example\r\ncookie: pogo_csrf=abc\r\n",
        "origin: https://127.0.0.1\r\ncookie: pogo_csrf=abc\r\nx-pogo-csrf: abd\r\n",
        "sec-fetch-site: same-origin\r\nx-pogo-csrf: abc\r\n",
    ] {
        assert_eq!(halt(headers), "HTTP/1.1 403 Forbidden", "{headers}");
        assert_eq!(d.status(&job)["state"], "running", "{headers}");
    }
    // A body not declared JSON (a form's, say) is refused, browser or not.
    let request = format!(
        "POST /v1/jobs/{job}/halt HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    let answer = get(Some(&alice), &request).unwrap();
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert_eq!(d.status(&job)["state"], "running");
    // With its session's token, it halts.
    let headers = "origin: https://127.0.0.1\r\ncookie: pogo_csrf=abc\r\nx-pogo-csrf: abc\r\n";
    assert_eq!(halt(headers), "HTTP/1.1 200 OK");
    let state = d.status(&job)["state"].clone();
    assert!(state == "stopping" || state == "stopped", "{state}");
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            files.push((path, bytes));
        }
    }
    files
}

#[test]
fn the_ssh_password_is_never_written_down() {
    let d = Deployment::new(&["w1"]);
    // Logs at their most verbose, in both formats: no line may hold the password.
    let mut dispatcher = d.dispatcher(0, &["--log-level", "trace", "--log-format", "json"]);
    let mut w1 = d.worker_args(
        "w1",
        4,
        &d.files(Role::Worker, "w1"),
        &["--log-level", "trace"],
    );
    d.wait_for_workers(&["w1"]);
    let password = format!("s3cret-Pa55-{}-{}", std::process::id(), now_nanos());
    // A command of its own, to show that the files searched do hold what the job wrote.
    let command = format!("echo never-runs-{}", now_nanos());
    let plan = d.plan(
        Some("tag:\n  box:\n    - 127.0.0.1\n"),
        &["--command", &command],
    );
    let closed = free_port();
    let job = Deployment::runtime().block_on(async {
        let job = SubmitJob {
            plan,
            limits: Default::default(),
            overrides: Vec::new(),
            transport: TransportSpec::Ssh {
                user: None,
                port: Some(closed),
                identity: None,
                ssh_config: None,
                known_hosts: "off".into(),
                password: true,
            },
            retry_delay_ms: 0,
            password: Some(password.clone()),
            submission: None,
        };
        d.client(Role::Operator, "alice")
            .submit(&job)
            .await
            .unwrap()
            .id
    });
    // The worker tried the host: it ran the job, so the search below is not vacuous.
    let status = d.wait_for_state(&job, "failed");
    let host = &hosts_of(&status)["127.0.0.1"];
    assert_eq!(host["state"], "unreachable", "{status}");
    assert_eq!(host["worker"], "w1", "{status}");
    let log = d.pogo(&["log", &job]);
    let events = d.events(&job);
    let shown = format!("{}{}{events:?}{status}", log.stdout(), log.stderr());
    assert!(!shown.contains(&password), "{shown}");

    let search = |when: &str| {
        let mut searched = files_under(&d.state_dir());
        searched.extend(files_under(&d.path().join("logs")));
        assert!(
            searched
                .iter()
                .any(|(_, bytes)| contains(bytes, command.as_bytes())),
            "{when}: the job is in none of the files searched"
        );
        for (path, bytes) in &searched {
            assert!(
                !contains(bytes, password.as_bytes()),
                "{when}: the password is in {}",
                path.display()
            );
        }
        searched.len()
    };
    // While the dispatcher runs (its write-ahead log holds the latest writes), and after
    // every process ended.
    assert!(search("running") >= 3);
    kill(w1.pid(), "TERM");
    w1.expect(0);
    kill(dispatcher.pid(), "TERM");
    dispatcher.expect(0);
    search("stopped");
}

// 4. Faults.

#[test]
fn a_dispatcher_killed_mid_job_comes_back_and_every_host_runs_once() {
    let d = Deployment::new(&["w1", "w2"]);
    let port = free_port();
    let mut dispatcher = d.dispatcher(port, FAST_HEARTBEAT);
    let _w1 = d.worker("w1", 2);
    let _w2 = d.worker("w2", 2);
    d.wait_for_workers(&["w1", "w2"]);
    let plan = d.plan(None, &["--command", &d.rec("0.4"), "--concurrent", "2"]);
    // The operator follows the job all along.
    let mut apply = d.spawn(
        "apply",
        &["apply", "plan.json", "--dispatcher", "--transport", "local"],
    );

    wait_until("three hosts to start", || d.spans().len() >= 3);
    dispatcher.crash();
    assert!(d.spans().len() < 9, "the job ended before the crash");
    // Results come while it is away: the workers keep them.
    wait_until("the running commands to end", || d.all_ended());
    let mut dispatcher = d.dispatcher(port, FAST_HEARTBEAT);

    apply.expect(0);
    assert!(
        apply.stdout().contains("Succeeded: all 9 hosts\n"),
        "{}",
        apply.stdout()
    );
    assert!(apply.stderr().contains("reconnected"), "{}", apply.stderr());
    check_order_and_limits(&plan, &d.spans());
    let job = d.pogo(&["jobs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    check_events(&d.events(&job), &plan.hosts, 1);
    let status = d.status(&job);
    assert!(
        hosts_of(&status)
            .values()
            .all(|h| h["state"] == "succeeded" && h["attempts"] == 1),
        "{status}"
    );
    kill(dispatcher.pid(), "TERM");
    dispatcher.expect(0);
}

#[test]
fn a_worker_killed_mid_task_leaves_its_host_lost_and_the_other_worker_finishes() {
    let d = Deployment::new(&["w1", "w2"]);
    let _dispatcher = d.dispatcher(0, FAST_HEARTBEAT);
    // One task each: the first two hosts run one on each worker.
    let mut w1 = d.worker("w1", 1);
    let _w2 = d.worker("w2", 1);
    d.wait_for_workers(&["w1", "w2"]);
    // No sequences: a lost host holds up nothing but its place in the job-wide limit.
    let plan = d.plan(
        Some("tag:\n  all: [h1, h2, h3, h4]\n"),
        &[
            "--command",
            &d.rec("0.8"),
            "--concurrent",
            "2",
            "--max-failures",
            "1",
        ],
    );
    let mut apply = d.spawn(
        "apply",
        &["apply", "plan.json", "--dispatcher", "--transport", "local"],
    );
    let mut on_w1 = String::new();
    wait_until("a host to run on w1", || {
        let Some(job) = d.pogo(&["jobs", "--json"]).json()[0]["id"]
            .as_str()
            .map(String::from)
        else {
            return false;
        };
        let status = d.status(&job);
        match hosts_of(&status)
            .into_iter()
            .find(|(_, h)| h["state"] == "running" && h["worker"] == "w1")
        {
            Some((host, _)) => {
                on_w1 = host;
                true
            }
            None => false,
        }
    });
    // The worker dies (SIGKILL): its command dies with it, ended by its keeper, instead of
    // running on as an orphan that a quick `pogo retry` would run a second time beside.
    w1.crash();

    apply.expect(3);
    let job = d.pogo(&["jobs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = d.status(&job);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["counts"]["lost"], 1, "{status}");
    assert_eq!(status["counts"]["succeeded"], 3, "{status}");
    for (host, entry) in hosts_of(&status) {
        if host == on_w1 {
            assert_eq!(entry["state"], "lost", "{entry}");
            let message = entry["message"].as_str().unwrap();
            assert!(message.contains("w1"), "{message}");
        } else {
            assert_eq!(entry["state"], "succeeded", "{host}: {entry}");
            assert_eq!(entry["worker"], "w2", "{host}: {entry}");
        }
    }
    // Lost once the worker timeout (2 s) passed since w1 was last heard from, which was
    // at most a heartbeat (0.2 s) before it died, and after its host started.
    let lost = d
        .events(&job)
        .into_iter()
        .find(|e| e["event"] == "host_finished" && e["state"] == "lost")
        .expect("a host_finished event with state lost");
    assert_eq!(lost["host"], on_w1.as_str());
    assert!(lost["duration_ms"].as_u64().unwrap() >= 1500, "{lost}");
    // run_finished counts it apart, and its counts add up to the hosts (it had no `lost`).
    let finished = d
        .events(&job)
        .into_iter()
        .find(|e| e["event"] == "run_finished")
        .expect("a run_finished event");
    assert_eq!(
        (&finished["lost"], &finished["failed"]),
        (&1.into(), &0.into()),
        "{finished}"
    );
    assert_eq!(d.worker_info("w1").unwrap()["connected"], false);
    // The operator's view says so, and counts it.
    let out = apply.stdout();
    assert!(out.contains(&format!("{on_w1}: Lost (")), "{out}");
    let verdict = out
        .lines()
        .find(|l| l.starts_with("Failed: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{out}"));
    assert!(
        verdict.contains("3 succeeded") && verdict.contains("1 lost"),
        "the summary does not count the lost host: {verdict}"
    );

    // Each host ran once: the lost one was not run again, and its command did not finish.
    let rec = format!("{}/rec.sh", d.path().display());
    wait_until("the lost host's command to be gone", || {
        processes_matching(&rec).is_empty()
    });
    // (Killed perhaps before it recorded its start.)
    let spans = d.spans();
    for host in &plan.hosts {
        let runs = spans.get(host).map_or(&[][..], Vec::as_slice);
        if *host == on_w1 {
            assert!(
                runs.len() <= 1 && runs.iter().all(|(_, end)| *end == 0),
                "{spans:?}"
            );
        } else {
            assert_eq!(runs.len(), 1, "{host}: {spans:?}");
        }
    }
}

#[test]
fn a_worker_that_lost_the_dispatcher_delivers_its_result_once() {
    let d = Deployment::new(&["w1"]);
    let port = free_port();
    let mut dispatcher = d.dispatcher(port, FAST_HEARTBEAT);
    let _w1 = d.worker("w1", 2);
    d.wait_for_workers(&["w1"]);
    d.plan(None, &["--targets", "host1", "--command", &d.rec("2")]);
    let job = d.submit();
    wait_until("host1 to start", || d.spans().contains_key("host1"));
    dispatcher.crash();
    // The task ends while the dispatcher is away; the worker keeps its result.
    wait_until("host1's command to end", || d.all_ended());
    let _dispatcher = d.dispatcher(port, FAST_HEARTBEAT);

    let status = d.wait_for_state(&job, "succeeded");
    let host1 = &hosts_of(&status)["host1"];
    assert_eq!(host1["state"], "succeeded", "{status}");
    assert_eq!(host1["attempts"], 1, "{status}");
    assert_eq!(host1["worker"], "w1", "{status}");
    check_events(&d.events(&job), &["host1".to_string()], 1);
    assert_eq!(
        d.runs_per_host(),
        BTreeMap::from([("host1".to_string(), 1)])
    );
    // Its output came too.
    let log = d.pogo(&["log", &job, "host1"]);
    assert_eq!(log.expect(0).stdout(), "ran on host1\n");
}

#[test]
fn last_names_the_newest_job_when_a_dispatcher_is_configured() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _w1 = d.worker("w1", 2);
    d.wait_for_workers(&["w1"]);
    d.pogo(&[
        "plan",
        "--targets",
        "h[1-2]",
        "--command",
        "echo hello from $POGO_HOST",
        "-o",
        "plan.json",
    ])
    .expect(0);
    let job = d.submit();
    d.wait_for_state(&job, "succeeded");
    // The dispatcher is configured (here, in the environment): `last` is its newest job, for
    // `pogo log` as for `pogo status`, following included.
    let followed = d.pogo(&["log", "last", "-f"]);
    let text = followed.expect(0).stdout();
    assert!(
        text.contains("hello from h1") && text.contains("hello from h2"),
        "{text}"
    );
    let status = d.pogo(&["status", "last", "--json"]).json();
    assert_eq!(status["id"], job.as_str());
}
