//! What a dispatcher and a worker tell a monitoring system, and the plain-HTTP listener that
//! tells it (`--metrics-listen ADDR`, off by default): `/metrics` in the OpenMetrics text
//! format Prometheus scrapes, `/healthz` (the process is alive) and `/readyz` (it can serve:
//! for a dispatcher, it leads and its store answers).
//!
//! The listener is plain HTTP, for loopback or a management network: what it serves is
//! counts and durations, never a host name, a command, its output or a secret, and it takes
//! no request that changes anything. Names follow Prometheus' conventions: `pogo_` first,
//! counters ending in `_total`, durations in `_seconds`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The content type of `/metrics`.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabel {
    pub fleet: String,
    pub revision: String,
    pub group: String,
}

/// A dispatcher's metrics. Counters and histograms move as things happen; the gauges are
/// brought up to date by the core when `/metrics` is asked for.
pub struct DispatcherMetrics {
    registry: Registry,
    pub jobs: Family<StateLabel, Gauge>,
    pub hosts: Family<StateLabel, Gauge>,
    pub tasks_handed_out: Counter,
    pub tasks_finished: Counter,
    pub tasks_lost: Counter,
    pub task_seconds: Histogram,
    pub step_seconds: Histogram,
    pub commit_seconds: Histogram,
    pub workers_connected: Gauge,
    pub workers_capacity: Gauge,
    pub budget_down: Family<BudgetLabel, Gauge>,
    pub budget_limit: Family<BudgetLabel, Gauge>,
    pub leader: Gauge,
}

impl DispatcherMetrics {
    pub fn new() -> Arc<DispatcherMetrics> {
        let mut registry = Registry::default();
        let jobs = Family::<StateLabel, Gauge>::default();
        registry.register(
            "pogo_jobs",
            "Jobs the dispatcher has, by state",
            jobs.clone(),
        );
        let hosts = Family::<StateLabel, Gauge>::default();
        registry.register(
            "pogo_hosts",
            "Hosts of the jobs that have not ended, by state",
            hosts.clone(),
        );
        let tasks_handed_out = Counter::default();
        registry.register(
            "pogo_tasks_handed_out",
            "Tasks (host attempts and gates) handed to workers",
            tasks_handed_out.clone(),
        );
        let tasks_finished = Counter::default();
        registry.register(
            "pogo_tasks_finished",
            "Tasks whose result a worker reported",
            tasks_finished.clone(),
        );
        let tasks_lost = Counter::default();
        registry.register(
            "pogo_tasks_lost",
            "Tasks whose worker stopped heartbeating or forgot them after running them",
            tasks_lost.clone(),
        );
        let task_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 20));
        registry.register(
            "pogo_task_seconds",
            "How long tasks ran on their workers",
            task_seconds.clone(),
        );
        let step_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 20));
        registry.register(
            "pogo_step_seconds",
            "How long steps of jobs took, from their first host handed out to their last done",
            step_seconds.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "pogo_store_commit_seconds",
            "How long committing a batch to the store took",
            commit_seconds.clone(),
        );
        let workers_connected = Gauge::default();
        registry.register(
            "pogo_workers_connected",
            "Workers heard from within the worker timeout",
            workers_connected.clone(),
        );
        let workers_capacity = Gauge::default();
        registry.register(
            "pogo_workers_capacity",
            "Tasks the connected workers can run at once, together",
            workers_capacity.clone(),
        );
        let budget_down = Family::<BudgetLabel, Gauge>::default();
        registry.register(
            "pogo_fleet_budget_down",
            "Hosts of a fleet budget that are down (running, or failed and not yet closed)",
            budget_down.clone(),
        );
        let budget_limit = Family::<BudgetLabel, Gauge>::default();
        registry.register(
            "pogo_fleet_budget_limit",
            "How many hosts of a fleet budget may be down at once",
            budget_limit.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "pogo_leader",
            "Whether this dispatcher leads (1) or stands by (0); always 1 on SQLite",
            leader.clone(),
        );
        Arc::new(DispatcherMetrics {
            registry,
            jobs,
            hosts,
            tasks_handed_out,
            tasks_finished,
            tasks_lost,
            task_seconds,
            step_seconds,
            commit_seconds,
            workers_connected,
            workers_capacity,
            budget_down,
            budget_limit,
            leader,
        })
    }

    /// The metrics, in the text format.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// A worker's metrics.
pub struct WorkerMetrics {
    registry: Registry,
    pub tasks_running: Gauge,
    pub tasks_finished: Counter,
    pub output_bytes: Counter,
    pub reconnects: Counter,
    pub connected: Gauge,
}

impl WorkerMetrics {
    pub fn new() -> Arc<WorkerMetrics> {
        let mut registry = Registry::default();
        let tasks_running = Gauge::default();
        registry.register(
            "pogo_worker_tasks_running",
            "Tasks the worker runs now",
            tasks_running.clone(),
        );
        let tasks_finished = Counter::default();
        registry.register(
            "pogo_worker_tasks_finished",
            "Tasks the worker ran to their end",
            tasks_finished.clone(),
        );
        let output_bytes = Counter::default();
        registry.register(
            "pogo_worker_output_bytes",
            "Bytes of command output the worker sent to the dispatcher",
            output_bytes.clone(),
        );
        let reconnects = Counter::default();
        registry.register(
            "pogo_worker_reconnects",
            "Times the worker reached its dispatcher again after losing it",
            reconnects.clone(),
        );
        let connected = Gauge::default();
        registry.register(
            "pogo_worker_connected",
            "Whether the worker reaches its dispatcher (1) or not (0)",
            connected.clone(),
        );
        Arc::new(WorkerMetrics {
            registry,
            tasks_running,
            tasks_finished,
            output_bytes,
            reconnects,
            connected,
        })
    }

    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// What `/metrics` and `/readyz` ask of their process.
pub trait Probe: Send + Sync + 'static {
    /// The metrics, brought up to date.
    fn metrics(&self) -> impl std::future::Future<Output = String> + Send;
    /// Whether it can serve; why not otherwise.
    fn ready(&self) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// Binds `addr` now (so that a bad address is an error at start), and serves `/metrics`,
/// `/healthz` and `/readyz` in the background until `closing` turns true.
pub async fn serve<P: Probe>(
    addr: SocketAddr,
    probe: Arc<P>,
    mut closing: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let metrics = probe.clone();
    let ready = probe;
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let probe = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, CONTENT_TYPE)],
                        probe.metrics().await,
                    )
                        .into_response()
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let probe = ready.clone();
                async move {
                    match probe.ready().await {
                        Ok(()) => "ready\n".into_response(),
                        Err(why) => {
                            (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
                        }
                    }
                }
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "the metrics listener serves /metrics, /healthz and /readyz\n",
            )
        });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = closing.wait_for(|closed| *closed).await;
            })
            .await;
    });
    Ok((bound, task))
}
