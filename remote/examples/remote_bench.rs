//! Throughput and per-step latency of remote apply, in one process over loopback mTLS: one
//! dispatcher, four workers, the local transport.
//!
//! `cargo run --release -p pogo-remote --example remote_bench [TASKS] [CHAIN]`

use std::time::{Duration, Instant};

use futures_util::StreamExt;
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

async fn run(client: &Client, plan: Plan) -> Duration {
    let start = Instant::now();
    let job = client
        .submit(&SubmitJob {
            plan,
            limits: Default::default(),
            overrides: Vec::new(),
            transport: TransportSpec::Local,
            retry_delay_ms: 0,
            password: None,
            submission: None,
        })
        .await
        .expect("submitted");
    let mut events = client.events(&job.id, 0, true).await.expect("events");
    while let Some(record) = events.next().await {
        record.expect("an event");
    }
    let elapsed = start.elapsed();
    let state = client.job(&job.id).await.expect("job").summary.state;
    assert_eq!(state, JobState::Succeeded);
    elapsed
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let chain: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().expect("a temp dir");
    let pki = dir.path().join("pki");
    let workers: Vec<String> = (1..=4).map(|i| format!("w{i}")).collect();
    certs::init(
        &pki,
        &InitOptions {
            dispatcher_names: vec!["127.0.0.1".into()],
            workers: workers.clone(),
            operators: vec!["bench".into()],
            validity: Validity::days_from_now(1),
        },
    )
    .expect("certificates");
    let dispatcher = Dispatcher::start(DispatcherConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        tls: files(&pki, Role::Dispatcher, "dispatcher"),
        store: StoreConfig::StateDir(dir.path().join("state")),
        advertise: None,
        heartbeat_interval: DispatcherConfig::DEFAULT_HEARTBEAT,
        worker_timeout: DispatcherConfig::DEFAULT_WORKER_TIMEOUT,
        metrics_listen: None,
    })
    .await
    .expect("a dispatcher");
    let url = format!("https://{}", dispatcher.local_addr());
    let stop = CancelToken::new();
    let mut running = Vec::new();
    for name in &workers {
        running.push(tokio::spawn(worker::run(
            WorkerConfig {
                dispatcher: url.clone(),
                tls: files(&pki, Role::Worker, name),
                capacity: 64,
                max_backoff: Duration::from_secs(1),
                keeper: None,
                metrics_listen: None,
            },
            stop.clone(),
            CancelToken::new(),
        )));
    }
    let client = Client::new(&url, &files(&pki, Role::Operator, "bench")).expect("a client");

    let names: Vec<String> = (0..tasks).map(|i| format!("h{i:05}")).collect();
    let plan = Plan::sketch_of(names);
    let took = run(&client, plan).await;
    println!(
        "{tasks} no-op tasks, 4 workers x 64: {:.2} s, {:.0} tasks/s",
        took.as_secs_f64(),
        tasks as f64 / took.as_secs_f64()
    );

    let names: Vec<String> = (0..chain).map(|i| format!("c{i:03}")).collect();
    let all = names.join(" ");
    let plan = Plan::sketch_of(names).with_group("one", Amount::number(1), &all);
    let took = run(&client, plan).await;
    println!(
        "chain of {chain} hosts at max_parallel 1: {:.2} s, {:.2} ms per step",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / chain as f64
    );
    stop.cancel();
    for worker in running {
        let _ = worker.await;
    }
    dispatcher.shutdown().await;
}
