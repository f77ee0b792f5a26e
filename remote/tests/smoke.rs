//! A dispatcher, a worker and an operator client in one process, over real mTLS on loopback:
//! the pieces fit.

use std::time::Duration;

use futures_util::StreamExt;
use pogo_executor::events::Event;
use pogo_executor::transport::CancelToken;
use pogo_executor::transport::TransportSpec;
use pogo_model::{Amount, Plan};
use pogo_remote::api::{JobState, SubmitJob};
use pogo_remote::certs::{self, InitOptions, Role, Validity};
use pogo_remote::client::Client;
use pogo_remote::dispatcher::{Dispatcher, DispatcherConfig, StoreConfig};
use pogo_remote::tls::TlsFiles;
use pogo_remote::worker::{self, WorkerConfig};

fn files(dir: &std::path::Path, role: Role, name: &str) -> TlsFiles {
    let issued = certs::issued_paths(dir, role, name);
    TlsFiles {
        cert: issued.cert,
        key: issued.key,
        ca: dir.join(certs::CA_CERT),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_runs_through_a_dispatcher_and_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    certs::init(
        &pki,
        &InitOptions {
            dispatcher_names: vec!["127.0.0.1".into(), "localhost".into()],
            workers: vec!["w1".into()],
            operators: vec!["alice".into()],
            validity: Validity::days_from_now(1),
        },
    )
    .unwrap();
    let dispatcher = Dispatcher::start(DispatcherConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: files(&pki, Role::Dispatcher, "dispatcher"),
        store: StoreConfig::StateDir(dir.path().join("state")),
        advertise: None,
        heartbeat_interval: Duration::from_millis(200),
        worker_timeout: Duration::from_secs(5),
        metrics_listen: None,
    })
    .await
    .unwrap();
    let url = format!("https://{}", dispatcher.local_addr());
    let (stop, kill) = (CancelToken::new(), CancelToken::new());
    let worker = tokio::spawn(worker::run(
        WorkerConfig {
            dispatcher: url.clone(),
            tls: files(&pki, Role::Worker, "w1"),
            capacity: 4,
            max_backoff: Duration::from_secs(1),
            keeper: None,
            metrics_listen: None,
        },
        stop.clone(),
        kill,
    ));
    let client = Client::new(&url, &files(&pki, Role::Operator, "alice")).unwrap();
    let plan = Plan::sketch("a b c d")
        .with_thread("main", &["a", "b c", "d"])
        .with_group("pair", Amount::number(1), "b c");
    let mut plan = plan;
    plan.command = Some("echo hello from $POGO_HOST".into());
    let plan = plan.sealed();
    let job = client
        .submit(&SubmitJob {
            limits: Default::default(),
            overrides: Vec::new(),
            plan,
            transport: TransportSpec::Local,
            retry_delay_ms: 0,
            password: None,
            submission: None,
        })
        .await
        .unwrap();
    let mut events = client.events(&job.id, 0, true).await.unwrap();
    let mut started = Vec::new();
    while let Some(record) = events.next().await {
        let record = record.unwrap();
        if let Event::HostStarted { host, .. } = &record.event {
            started.push(host.clone());
        }
    }
    assert_eq!(started, ["a", "b", "c", "d"]);
    let detail = client.job(&job.id).await.unwrap();
    assert_eq!(detail.summary.state, JobState::Succeeded);
    // A plan of tens of thousands of hosts is megabytes of JSON: taken whole.
    let names: Vec<String> = (0..40_000).map(|i| format!("bulk-host-{i:06}")).collect();
    let big = Plan::sketch_of(names).with_job_limit(1);
    assert!(big.to_json().len() > 2 << 20);
    let bulk = client
        .submit(&SubmitJob {
            limits: Default::default(),
            overrides: Vec::new(),
            plan: big,
            transport: TransportSpec::Local,
            retry_delay_ms: 0,
            password: None,
            submission: None,
        })
        .await
        .unwrap();
    assert_eq!(bulk.hosts, 40_000);
    client
        .halt(&bulk.id, &pogo_remote::api::HaltJob { kill: true })
        .await
        .unwrap();
    let mut output = client.output(&job.id, Some("c"), 0, false).await.unwrap();
    let line = output.next().await.unwrap().unwrap();
    assert_eq!(line.text, "hello from c");
    stop.cancel();
    worker.await.unwrap().unwrap();
    dispatcher.shutdown().await;
}
