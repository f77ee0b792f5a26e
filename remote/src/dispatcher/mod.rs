//! `pogo dispatcher`: the HTTPS server, the job store and the scheduling core.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::tls::TlsFiles;
use core::{Cmd, Core, CoreHandle, Timing};
use store::{SqliteStore, Store, StoreError};

mod core;
mod fleets;
mod server;
pub mod store;

/// How a dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Where to listen; port 0 picks a free one (see [`Dispatcher::local_addr`]).
    pub listen: SocketAddr,
    pub tls: TlsFiles,
    /// Where the database (`pogo.db`) lives.
    pub state_dir: PathBuf,
    /// How often workers are asked to heartbeat.
    pub heartbeat_interval: Duration,
    /// A worker not heard from for this long is lost, and so are the tasks it ran.
    pub worker_timeout: Duration,
}

impl DispatcherConfig {
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);
    pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DispatchError(pub String);

/// A running dispatcher.
pub struct Dispatcher {
    addr: SocketAddr,
    closing: watch::Sender<bool>,
    core: CoreHandle,
    core_thread: Option<std::thread::JoinHandle<Result<(), StoreError>>>,
    server: tokio::task::JoinHandle<()>,
    failed: watch::Receiver<Option<String>>,
}

impl Dispatcher {
    /// Opens the state dir (reloading unfinished jobs), binds, and serves in the background.
    pub async fn start(config: DispatcherConfig) -> Result<Dispatcher, DispatchError> {
        let tls = crate::tls::server_config(&config.tls)
            .map_err(|e| DispatchError(format!("cannot set up TLS: {e}")))?;
        create_state_dir(&config.state_dir)?;
        let store: Store = Box::new(
            SqliteStore::open(&config.state_dir).map_err(|e| DispatchError(e.to_string()))?,
        );
        let (commits_tx, commits) = watch::channel(0u64);
        let timing = Timing {
            heartbeat_interval: config.heartbeat_interval,
            worker_timeout: config.worker_timeout,
        };
        let core =
            Core::load(store, timing, commits_tx).map_err(|e| DispatchError(e.to_string()))?;
        let listener = server::bind(config.listen)
            .await
            .map_err(|e| DispatchError(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DispatchError(format!("cannot listen on {}: {e}", config.listen)))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (failed_tx, failed) = watch::channel(None);
        let core_thread = std::thread::Builder::new()
            .name("pogo-dispatcher-core".into())
            .spawn(move || {
                // A panic in the core (a broken invariant) must not leave a dispatcher that
                // accepts connections and answers nothing: it fails, and says so.
                let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.run(rx)));
                let failure = match &ended {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(_) => Some("an internal error (a panic, printed above)".to_string()),
                };
                if let Some(reason) = failure {
                    eprintln!("pogo dispatcher: stopping: {reason}");
                    failed_tx.send_replace(Some(reason));
                }
                ended.unwrap_or(Ok(()))
            })
            .map_err(|e| DispatchError(format!("cannot start the core thread: {e}")))?;
        let handle = CoreHandle::new(tx);
        let (closing, closing_rx) = watch::channel(false);
        let router = server::router(server::AppState {
            core: handle.clone(),
            commits,
            closing: closing_rx.clone(),
        });
        let server = tokio::spawn(server::serve(listener, tls, router, closing_rx));
        Ok(Dispatcher {
            addr,
            closing,
            core: handle,
            core_thread: Some(core_thread),
            server,
            failed,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Completes if the dispatcher fails on its own (its database cannot be written), with
    /// the reason; never completes otherwise.
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

    /// Stops accepting, ends open streams, and makes everything durable.
    pub async fn shutdown(mut self) {
        self.closing.send_replace(true);
        let _ = (&mut self.server).await;
        let (done, stopped) = tokio::sync::oneshot::channel();
        if self.core.send(Cmd::Shutdown { reply: done }) {
            let _ = stopped.await;
        }
        if let Some(thread) = self.core_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
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
