//! `pogo dispatcher`: the HTTPS server, the job store and the scheduling core.
//!
//! On SQLite (`--state-dir`) one dispatcher owns the directory (a lock refuses a second) and
//! its core runs from start to stop. On PostgreSQL (`--database`) any number of dispatchers
//! share the database and the one holding the lease leads ([`lease`]): it runs the core, the
//! others answer every request with a redirect to it. A leader that loses its lease or its
//! database steps down (its core stops; it does not exit) and may lead again later, loading
//! the jobs as a restarted dispatcher does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::tls::TlsFiles;
use core::{Cmd, Core, CoreHandle, Timing};
use lease::{Candidate, Keeper, Role};
use store::postgres::{Database, PostgresStore};
use store::{SqliteStore, Store, StoreError};

mod core;
mod fleets;
pub mod lease;
mod server;
pub mod store;

/// Where a dispatcher keeps its state.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// SQLite, `pogo.db` in this directory, which one dispatcher at a time may use.
    StateDir(PathBuf),
    /// PostgreSQL: several dispatchers, one leader, each lease lasting `lease`.
    Postgres {
        database: Box<Database>,
        lease: Duration,
    },
}

/// How a dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Where to listen; port 0 picks a free one (see [`Dispatcher::local_addr`]).
    pub listen: SocketAddr,
    pub tls: TlsFiles,
    pub store: StoreConfig,
    /// The URL operators and workers reach this dispatcher at, which standbys redirect to
    /// while it leads; `https://` and the address it listens on when `None`.
    pub advertise: Option<String>,
    /// How often workers are asked to heartbeat.
    pub heartbeat_interval: Duration,
    /// A worker not heard from for this long is lost, and so are the tasks it ran.
    pub worker_timeout: Duration,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (plain HTTP), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl DispatcherConfig {
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);
    pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DispatchError(pub String);

/// What the HTTP side does with a request: serve it, or send it to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    Leading,
    /// Another dispatcher leads (at this URL, when known), or none does yet.
    Standby {
        leader: Option<String>,
    },
}

/// The lock file that keeps a second dispatcher off a state directory.
const LOCK_FILE: &str = "pogo.lock";

/// A running dispatcher.
pub struct Dispatcher {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    url: String,
    closing: watch::Sender<bool>,
    core: CoreHandle,
    serving: watch::Receiver<Serving>,
    server: tokio::task::JoinHandle<()>,
    failed: watch::Receiver<Option<String>>,
    backend: Running,
}

enum Running {
    Sqlite {
        core_thread: Option<std::thread::JoinHandle<Result<(), StoreError>>>,
        /// Held while it runs: the directory's lock.
        _lock: std::fs::File,
    },
    Postgres {
        supervisor: tokio::task::JoinHandle<()>,
    },
}

impl Dispatcher {
    /// Opens the store (reloading unfinished jobs, on SQLite or once leading on PostgreSQL),
    /// binds, and serves in the background.
    pub async fn start(config: DispatcherConfig) -> Result<Dispatcher, DispatchError> {
        let tls = crate::tls::server_config(&config.tls)
            .map_err(|e| DispatchError(format!("cannot set up TLS: {e}")))?;
        let timing = Timing {
            heartbeat_interval: config.heartbeat_interval,
            worker_timeout: config.worker_timeout,
        };
        let commits = Arc::new(watch::channel(0u64).0);
        let metrics = crate::metrics::DispatcherMetrics::new();
        let (failed_tx, failed) = watch::channel(None);
        let (closing, closing_rx) = watch::channel(false);
        let (tx, _) = std::sync::mpsc::channel();
        let handle = CoreHandle::new(tx);

        // The store first: a dispatcher that cannot open it does not listen.
        let sqlite = match &config.store {
            StoreConfig::StateDir(dir) => {
                create_state_dir(dir)?;
                let lock = lock_state_dir(dir)?;
                let store: Store =
                    Box::new(SqliteStore::open(dir).map_err(|e| DispatchError(e.to_string()))?);
                let core = load(store, timing, commits.clone()).await?;
                Some((core.with_metrics(metrics.clone()), lock))
            }
            StoreConfig::Postgres { database, .. } => {
                // Creates or migrates the schema, and says at once when the database is
                // out of reach.
                let database = (**database).clone();
                tokio::task::spawn_blocking(move || PostgresStore::open(&database).map(drop))
                    .await
                    .map_err(|e| DispatchError(e.to_string()))?
                    .map_err(|e| DispatchError(e.to_string()))?;
                None
            }
        };

        let listener = server::bind(config.listen)
            .await
            .map_err(|e| DispatchError(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DispatchError(format!("cannot listen on {}: {e}", config.listen)))?;
        let url = config
            .advertise
            .clone()
            .unwrap_or_else(|| format!("https://{addr}"));

        let (serving_tx, serving) = watch::channel(Serving::Standby { leader: None });
        let backend = match (sqlite, &config.store) {
            (Some((core, lock)), _) => {
                let (tx, rx) = std::sync::mpsc::channel();
                handle.replace(tx);
                let (core_thread, ended) = spawn_core(core, rx)?;
                tokio::spawn(async move {
                    if let Ok(Some(reason)) = ended.await {
                        failed_tx.send_replace(Some(reason));
                    }
                });
                serving_tx.send_replace(Serving::Leading);
                Running::Sqlite {
                    core_thread: Some(core_thread),
                    _lock: lock,
                }
            }
            (None, StoreConfig::Postgres { database, lease }) => {
                let me = Candidate {
                    name: format!("{} pid {}", host_name(), std::process::id()),
                    url: url.clone(),
                };
                let keeper = Keeper::start((**database).clone(), me, *lease);
                let supervisor = tokio::spawn(lead(Leading {
                    keeper,
                    database: (**database).clone(),
                    lease: *lease,
                    timing,
                    commits: commits.clone(),
                    handle: handle.clone(),
                    serving: serving_tx,
                    closing: closing_rx.clone(),
                    metrics: metrics.clone(),
                }));
                Running::Postgres { supervisor }
            }
            (None, StoreConfig::StateDir(_)) => unreachable!("SQLite is opened above"),
        };

        let router = server::router(server::AppState {
            core: handle.clone(),
            commits: commits.subscribe(),
            closing: closing_rx.clone(),
            serving: serving.clone(),
        });
        let server = tokio::spawn(server::serve(listener, tls, router, closing_rx.clone()));
        let metrics_addr = match config.metrics_listen {
            Some(at) => {
                let probe = Arc::new(Probe {
                    core: handle.clone(),
                    serving: serving.clone(),
                    metrics,
                });
                let (bound, _task) =
                    crate::metrics::serve(at, probe, closing_rx)
                        .await
                        .map_err(|e| {
                            DispatchError(format!("cannot listen on {at} for metrics: {e}"))
                        })?;
                Some(bound)
            }
            None => None,
        };
        Ok(Dispatcher {
            addr,
            metrics_addr,
            url,
            closing,
            core: handle,
            serving,
            server,
            failed,
            backend,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it serves metrics and health, if it does.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The URL it gives for itself.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether it leads now, and its changes.
    pub fn serving(&self) -> watch::Receiver<Serving> {
        self.serving.clone()
    }

    /// Completes if the dispatcher fails on its own (its SQLite database cannot be written),
    /// with the reason; never completes otherwise (on PostgreSQL it steps down instead).
    pub async fn failed(&self) -> String {
        let mut failed = self.failed.clone();
        let reason = match failed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }

    /// Stops accepting, ends open streams, and makes everything durable; on PostgreSQL,
    /// gives its lease back so that a standby leads at once.
    pub async fn shutdown(mut self) {
        self.closing.send_replace(true);
        let _ = (&mut self.server).await;
        match &mut self.backend {
            Running::Sqlite { core_thread, .. } => {
                let (done, stopped) = oneshot::channel();
                if self.core.send(Cmd::Shutdown { reply: done }) {
                    let _ = stopped.await;
                }
                if let Some(thread) = core_thread.take() {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
            }
            Running::Postgres { supervisor } => {
                let _ = supervisor.await;
            }
        }
    }
}

/// Loads the core off the async runtime (a PostgreSQL client blocks on a runtime of its own).
async fn load(
    store: Store,
    timing: Timing,
    commits: Arc<watch::Sender<u64>>,
) -> Result<Core, DispatchError> {
    tokio::task::spawn_blocking(move || Core::load(store, timing, commits))
        .await
        .map_err(|e| DispatchError(e.to_string()))?
        .map_err(|e| DispatchError(e.to_string()))
}

/// Runs the core on a thread of its own; the receiver says why it ended (`None`: told to).
#[allow(clippy::type_complexity)]
fn spawn_core(
    core: Core,
    commands: std::sync::mpsc::Receiver<Cmd>,
) -> Result<
    (
        std::thread::JoinHandle<Result<(), StoreError>>,
        oneshot::Receiver<Option<String>>,
    ),
    DispatchError,
> {
    let (ended_tx, ended) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("pogo-dispatcher-core".into())
        .spawn(move || {
            // A panic in the core (a broken invariant) must not leave a dispatcher that
            // accepts connections and answers nothing: it fails, and says so.
            let ended =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.run(commands)));
            let failure = match &ended {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some("an internal error (a panic, printed above)".to_string()),
            };
            if let Some(reason) = &failure {
                tracing::warn!("stopping: {reason}");
            }
            let _ = ended_tx.send(failure);
            ended.unwrap_or(Ok(()))
        })
        .map_err(|e| DispatchError(format!("cannot start the core thread: {e}")))?;
    Ok((thread, ended))
}

/// What a dispatcher on PostgreSQL needs to lead, again and again.
struct Leading {
    keeper: Keeper,
    database: Database,
    lease: Duration,
    timing: Timing,
    commits: Arc<watch::Sender<u64>>,
    handle: CoreHandle,
    serving: watch::Sender<Serving>,
    closing: watch::Receiver<bool>,
    metrics: Arc<crate::metrics::DispatcherMetrics>,
}

/// What the metrics listener asks of a dispatcher.
struct Probe {
    core: CoreHandle,
    serving: watch::Receiver<Serving>,
    metrics: Arc<crate::metrics::DispatcherMetrics>,
}

impl crate::metrics::Probe for Probe {
    async fn metrics(&self) -> String {
        let leading = *self.serving.borrow() == Serving::Leading;
        self.metrics.leader.set(i64::from(leading));
        if leading {
            // The gauges of a standby stay as they were when it last led.
            let _ = self.core.call(|reply| Cmd::Metrics { reply }).await;
        }
        self.metrics.render()
    }

    async fn ready(&self) -> Result<(), String> {
        match self.serving.borrow().clone() {
            Serving::Leading => {}
            Serving::Standby { leader: Some(url) } => {
                return Err(format!("a standby; the leader is {url}"))
            }
            Serving::Standby { leader: None } => return Err("a standby; none leads".into()),
        }
        // Its core answers: it runs, and its last commit went through.
        self.core
            .call(|reply| Cmd::Metrics { reply })
            .await
            .map_err(|e| e.message)
    }
}

/// Follows the lease: while this dispatcher holds it, runs the core on a store fenced by it;
/// when the core stops (the lease lost, the database gone), gives the lease back and serves
/// redirects until it leads again.
async fn lead(mut leading: Leading) {
    let mut role = leading.keeper.role();
    loop {
        let now = role.borrow_and_update().clone();
        match now {
            Role::Standby { leader } => {
                leading.serving.send_replace(Serving::Standby { leader });
                tokio::select! {
                    changed = role.changed() => if changed.is_err() { break },
                    _ = leading.closing.changed() => break,
                }
            }
            Role::Leader { epoch } => {
                let Some(lease) = leading.keeper.lease(epoch) else {
                    continue;
                };
                let database = leading.database.clone();
                let duration = leading.lease;
                let opened = tokio::task::spawn_blocking(move || {
                    PostgresStore::open(&database)
                        .and_then(|store| store.fenced(lease, duration))
                        .map(|store| Box::new(store) as Store)
                })
                .await;
                let store = match opened {
                    Ok(Ok(store)) => store,
                    Ok(Err(error)) => {
                        tracing::warn!("cannot lead: {error}");
                        leading.keeper.release();
                        role.changed().await.ok();
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!("cannot lead: {error}");
                        leading.keeper.release();
                        continue;
                    }
                };
                let core = match load(store, leading.timing, leading.commits.clone()).await {
                    Ok(core) => core.with_metrics(leading.metrics.clone()),
                    Err(error) => {
                        tracing::warn!("cannot lead: {error}");
                        leading.keeper.release();
                        role.changed().await.ok();
                        continue;
                    }
                };
                let (tx, rx) = std::sync::mpsc::channel();
                leading.handle.replace(tx);
                let Ok((thread, ended)) = spawn_core(core, rx) else {
                    leading.keeper.release();
                    continue;
                };
                leading.serving.send_replace(Serving::Leading);
                let thread = Arc::new(Mutex::new(Some(thread)));
                let join = |thread: Arc<Mutex<Option<std::thread::JoinHandle<_>>>>| async move {
                    let taken = thread.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(thread) = taken {
                        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                    }
                };
                tokio::select! {
                    _ = ended => {
                        // It stopped on its own: it leads no more.
                        leading.serving.send_replace(Serving::Standby { leader: None });
                        join(thread).await;
                        leading.keeper.release();
                        // The lease is given back; the keeper says when it is this
                        // dispatcher's again.
                        let _ = role.changed().await;
                    }
                    _ = leading.closing.changed() => {
                        let (done, stopped) = oneshot::channel();
                        if leading.handle.send(Cmd::Shutdown { reply: done }) {
                            let _ = stopped.await;
                        }
                        join(thread).await;
                        break;
                    }
                }
            }
        }
    }
    tokio::task::spawn_blocking(move || leading.keeper.stop())
        .await
        .ok();
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Creates the state directory, private to its owner: the database holds every job's output.
fn create_state_dir(dir: &std::path::Path) -> Result<(), DispatchError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            DispatchError(format!(
                "cannot create the state dir {}: {e}",
                dir.display()
            ))
        })
}

/// Locks the state directory for this dispatcher (an advisory lock on `pogo.lock`, released
/// when the process ends, however it ends).
fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File, DispatchError> {
    use rustix::fs::{flock, FlockOperation};
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DispatchError(format!("cannot open {}: {e}", path.display())))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(DispatchError(format!(
            "another dispatcher uses the state dir {} (it holds {}): stop it first; several \
             dispatchers share a PostgreSQL database (--database), not a state dir",
            dir.display(),
            path.display()
        ))),
        Err(error) => Err(DispatchError(format!(
            "cannot lock {}: {error}",
            path.display()
        ))),
    }
}
