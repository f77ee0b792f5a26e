//! `pogo dispatcher` and `pogo worker`: the two daemons of remote apply, run in the
//! foreground until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pogo_executor::transport::CancelToken;
use pogo_remote::dispatcher::lease;
use pogo_remote::dispatcher::store::postgres::Database;
use pogo_remote::dispatcher::{Dispatcher, DispatcherConfig, StoreConfig};
use pogo_remote::tls::TlsFiles;
use pogo_remote::worker::{self, WorkerConfig};

use super::DispatcherFlags;
use crate::failure::{emit, exit, invalid, usage, Failure};

/// A duration on the command line: `500ms`, or whole seconds as the plan options take them
/// (`30`, `45s`, `10m`, `1h30m`). Zero is refused: every duration here paces something.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.strip_suffix("ms") {
        Some(ms) => ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("`{text}` is not a duration (500ms, 2s, 1m30s)"))?,
        None => Duration::from_secs(pogo_planner::spec::parse_duration(text)?),
    };
    if duration.is_zero() {
        return Err(format!(
            "`{text}` is no time at all; give a positive duration"
        ));
    }
    Ok(duration)
}

#[derive(Args)]
#[command(
    long_about = "Serve the dispatcher of remote apply: an HTTPS server with mutual TLS that \
        takes jobs (plans) from operators, keeps them in a SQLite database in --state-dir (or \
        in PostgreSQL, --database), \
        schedules their hosts with the rules of a local apply (constraint groups hold across \
        every worker, since only the dispatcher decides) and hands each host's task to a \
        worker. Every client shows a certificate from the CA (--ca), and a certificate grants \
        its own role only (`pogo certs` makes them).\n\n\
        Once it listens, it prints one line on stdout, `pogo dispatcher listening on \
        https://ADDR` (with --listen 127.0.0.1:0, ADDR shows the port chosen). SIGINT or \
        SIGTERM stops it: it stops accepting, ends open streams and makes everything durable; \
        started again on the same --state-dir, it goes on with the unfinished jobs. A worker \
        not heard from for --worker-timeout is lost, and so are the tasks it ran: they count \
        as failed (their command may have run) and run again only when retried.\n\n\
        On PostgreSQL (--database), any number of dispatchers share the database and one \
        leads: the one holding the lease (--lease). The others redirect every request to it, \
        and take over when its lease lapses (its machine lost, say), carrying on as a \
        restarted dispatcher does. Each needs its own certificate and --advertise URL. The \
        database's password comes from PGPASSWORD or the password file (PGPASSFILE, else \
        ~/.pgpass), never from the URL.",
    after_help = "Examples:\n  \
        pogo dispatcher --listen 0.0.0.0:8443 --state-dir /var/lib/pogo \\\n      \
            --cert certs/dispatcher.pem --key certs/dispatcher-key.pem --ca certs/ca.pem\n  \
        pogo dispatcher --listen 127.0.0.1:0 --state-dir state --heartbeat 500ms \\\n      \
            --worker-timeout 3s --cert d.pem --key d-key.pem --ca ca.pem\n  \
        pogo dispatcher --listen 0.0.0.0:8443 --advertise https://d1.example:8443 \\\n      \
            --database 'postgres://pogo@db.example/pogo?sslmode=require' \\\n      \
            --cert dispatcher-d1.pem --key dispatcher-d1-key.pem --ca ca.pem"
)]
#[command(group(clap::ArgGroup::new("store").required(true).args(["state_dir", "database"])))]
pub struct DispatcherArgs {
    /// Where to listen, ADDR:PORT (port 0 picks a free one)
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The dispatcher's certificate (PEM), made by the CA
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// The dispatcher's private key (PEM)
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The deployment's CA certificate (PEM): clients must show a certificate it made
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// Where the jobs are kept (the SQLite database pogo.db), by one dispatcher
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep the jobs in PostgreSQL instead, shared by several dispatchers, one leading:
    /// postgres://USER@HOST[:PORT]/DB[?sslmode=require&sslrootcert=CA.pem] (no password in it)
    #[arg(long, value_name = "URL", env = "POGO_DATABASE")]
    database: Option<String>,
    /// How long a leader's lease lasts on PostgreSQL: a standby takes over this long after
    /// the leader was last heard from [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, requires = "database")]
    lease: Option<Duration>,
    /// The URL operators and workers reach this dispatcher at, which standbys redirect to
    /// [default: https://ADDR of --listen]
    #[arg(long, value_name = "URL")]
    advertise: Option<String>,
    /// How often workers heartbeat: 500ms, 2s, 1m [default: 2s]
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    heartbeat: Option<Duration>,
    /// How long a silent worker is waited for before it (and its tasks) count as lost
    /// [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    worker_timeout: Option<Duration>,
    /// Serve /metrics (Prometheus), /healthz and /readyz over plain HTTP on ADDR:PORT, for
    /// loopback or a management network (they carry no host name, command or secret)
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    logs: LogFlags,
}

/// How a daemon's log lines look, and how many there are.
#[derive(Args)]
pub struct LogFlags {
    /// How log lines (on standard error) look: human, or json (one object a line, with the
    /// job and task ids as fields)
    #[arg(long, value_name = "FORMAT", default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
    /// The least severe lines logged: error, warn, info, debug or trace [default: info];
    /// without it, RUST_LOG says (with levels per crate, for dependencies too)
    #[arg(long, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: Option<String>,
}

/// Installs the log output the flags ask for (the library only emits events).
fn init_logs(flags: &LogFlags) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // Dependencies stay at warnings unless RUST_LOG says otherwise: their traces would
    // show protocol details (and, at their most verbose, request contents).
    // --verbose means debug, unless --log-level or RUST_LOG says otherwise.
    let verbose = crate::output::get().verbose.then_some("debug");
    let filter = match flags.log_level.as_deref().or(verbose) {
        Some(level) if flags.log_level.is_some() || std::env::var_os("RUST_LOG").is_none() => {
            EnvFilter::new(format!("warn,pogo_remote={level},pogo={level}"))
        }
        _ => EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("warn,pogo_remote=info,pogo=info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if flags.log_format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder
            .with_target(false)
            .with_ansi(crate::output::get().color(std::io::stderr().is_terminal()))
            .try_init()
    };
}

/// SIGINT and SIGTERM, installed before anything is started.
pub(crate) struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn new() -> Result<Signals, Failure> {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind| {
            signal(kind).map_err(|e| invalid(format!("cannot watch for Ctrl-C and SIGTERM: {e}")))
        };
        Ok(Signals {
            interrupt: watch(SignalKind::interrupt())?,
            terminate: watch(SignalKind::terminate())?,
        })
    }

    pub(crate) async fn next(&mut self) {
        tokio::select! {
            Some(()) = self.interrupt.recv() => {}
            Some(()) = self.terminate.recv() => {}
            // Without a signal driver no signal comes.
            else => std::future::pending().await,
        }
    }
}

pub(crate) fn daemon_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| invalid(format!("cannot start the async runtime: {e}")))
}

/// `pogo dispatcher`.
pub fn dispatcher(args: DispatcherArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    init_logs(&args.logs);
    let config = DispatcherConfig {
        listen: args.listen,
        tls: TlsFiles {
            cert: args.cert,
            key: args.key,
            ca: args.ca,
        },
        store: match (args.state_dir, args.database) {
            (Some(dir), _) => StoreConfig::StateDir(dir),
            (None, Some(url)) => StoreConfig::Postgres {
                database: Box::new(
                    Database::parse(&url).map_err(|e| usage(format!("--database: {e}")))?,
                ),
                lease: args.lease.unwrap_or(lease::DEFAULT_LEASE),
            },
            (None, None) => return Err(usage("give --state-dir or --database".to_string())),
        },
        advertise: args.advertise,
        heartbeat_interval: args
            .heartbeat
            .unwrap_or(DispatcherConfig::DEFAULT_HEARTBEAT),
        worker_timeout: args
            .worker_timeout
            .unwrap_or(DispatcherConfig::DEFAULT_WORKER_TIMEOUT),
        metrics_listen: args.metrics_listen,
    };
    if matches!(config.store, StoreConfig::Postgres { .. })
        && config.advertise.is_none()
        && config.listen.ip().is_unspecified()
    {
        return Err(usage(format!(
            "with --database, give --advertise https://NAME:{}: standbys send operators and \
             workers to the leader's URL, and {} is no address to reach",
            config.listen.port(),
            config.listen.ip()
        )));
    }
    if config.worker_timeout <= config.heartbeat_interval {
        return Err(usage(format!(
            "--worker-timeout ({:?}) must be longer than the heartbeat interval ({:?}), or \
             every worker would be lost between two heartbeats",
            config.worker_timeout, config.heartbeat_interval
        )));
    }
    let runtime = daemon_runtime()?;
    let result = runtime.block_on(async {
        let mut signals = Signals::new()?;
        let dispatcher = Dispatcher::start(config)
            .await
            .map_err(|e| invalid(format!("cannot start the dispatcher: {e}")))?;
        // The first line, which scripts and tests wait for.
        emit(
            out,
            &format!(
                "pogo dispatcher listening on https://{}\n",
                dispatcher.local_addr()
            ),
        )?;
        if let Some(at) = dispatcher.metrics_addr() {
            tracing::info!("metrics and health on http://{at}/metrics, /healthz, /readyz");
        }
        tokio::select! {
            _ = signals.next() => {}
            reason = dispatcher.failed() => {
                // Its state on disk is what counts; a restart reloads it.
                return Err(invalid(format!("the dispatcher stopped: {reason}")));
            }
        }
        tracing::info!("shutting down");
        dispatcher.shutdown().await;
        Ok(exit::OK)
    });
    // Connections still open are not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "Run a worker of remote apply: it connects out to the dispatcher, takes up to \
         --capacity tasks at once, runs each host's command with the transport its job asks \
         for (ssh, as a local apply does, from this machine; or local), streams the output \
         back, reports the results and heartbeats. Its name is its certificate's (a worker \
         certificate, from `pogo certs`). When the dispatcher is away it tries again, pausing \
         up to --max-backoff between attempts, and delivers the results it holds once it is \
         back.\n\n\
         Ctrl-C (or SIGTERM) once: no more tasks are taken, running ones finish and their \
         results are delivered, then it exits. Twice: the running commands are killed (their \
         results, cancelled, are still delivered).\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo worker --dispatcher https://dispatch.example:8443 \\\n      \
            --cert worker-w1.pem --key worker-w1-key.pem --ca ca.pem\n  \
        POGO_CLIENT_CONFIG=/etc/pogo/worker.toml pogo worker --capacity 64"
)]
pub struct WorkerArgs {
    /// How many tasks it runs at once
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    capacity: u32,
    /// The longest pause between two attempts to reach the dispatcher: 500ms, 30s, 2m
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_interval)]
    max_backoff: Duration,
    /// Serve /metrics (Prometheus), /healthz and /readyz over plain HTTP on ADDR:PORT, for
    /// loopback or a management network (they carry no host name, command or secret)
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    logs: LogFlags,
    #[command(flatten)]
    connection: DispatcherFlags,
}

/// `pogo worker`.
pub fn worker(args: WorkerArgs) -> Result<u8, Failure> {
    init_logs(&args.logs);
    let connection = args.connection.connection()?;
    let config = WorkerConfig {
        dispatcher: connection.url.clone(),
        tls: connection.tls,
        capacity: args.capacity,
        max_backoff: args.max_backoff,
        // Local commands die with the worker, even one killed with SIGKILL.
        keeper: std::env::current_exe().ok(),
        metrics_listen: args.metrics_listen,
    };
    let runtime = daemon_runtime()?;
    let result = runtime.block_on(async {
        let mut signals = Signals::new()?;
        let (stop, kill) = (CancelToken::new(), CancelToken::new());
        let give_up = CancelToken::new();
        let watcher = {
            let (stop, kill, give_up) = (stop.clone(), kill.clone(), give_up.clone());
            tokio::spawn(async move {
                signals.next().await;
                stop.cancel();
                tracing::info!(
                    "stopping: no more tasks are taken, running ones finish; Ctrl-C again \
                     kills them"
                );
                signals.next().await;
                kill.cancel();
                tracing::warn!(
                    "killing the running commands; Ctrl-C again exits without delivering the \
                     results it holds"
                );
                signals.next().await;
                give_up.cancel();
            })
        };
        let ended = tokio::select! {
            ended = worker::run(config, stop, kill) => {
                ended.map_err(|e| invalid(format!("the worker stopped: {e}")))
            }
            () = give_up.cancelled() => Err(invalid(
                "the worker exited without delivering the results it held; the dispatcher \
                 counts their tasks as lost once it misses this worker's heartbeats",
            )),
        };
        watcher.abort();
        ended
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map(|()| exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_take_milliseconds_and_the_plan_durations() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("0ms").is_err());
        assert!(parse_interval("fast").is_err());
        assert!(parse_interval("1.5ms").is_err());
    }
}
