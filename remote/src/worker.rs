//! `pogo worker`: connects out to the dispatcher, takes tasks, runs them with the executor's
//! transports, streams their output, reports results and heartbeats.
//!
//! How it behaves:
//!
//! - It polls for as many tasks as it has free slots, and runs each task at once, on its own.
//!   The dispatcher knows the worker by its certificate; no request names it.
//! - A task's output goes out in numbered chunks (at [`CHUNK_LINES`] lines, or
//!   [`BATCH_WINDOW`] after the first line of a chunk, and at once when the command ends);
//!   then its result joins the **outbox**. The outbox goes out in one request with whatever is
//!   queued, and a result leaves it only when the dispatcher says it has it: a result is never
//!   dropped, and one sent twice is applied once.
//! - Heartbeats list the tasks that run or whose result is not delivered yet; the reply names
//!   tasks to kill.
//! - When the dispatcher is away (no connection, 5xx), everything retries with exponential
//!   backoff and jitter, and commands go on running. A refusal of a poll (4xx: a certificate
//!   of the wrong role, say) ends the worker.
//! - `stop` ends polling; running tasks finish and their results are delivered (given up
//!   after [`GIVE_UP`] without the dispatcher). `kill` also kills the running commands.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pogo_executor::phases::{self, Phase};
use pogo_executor::transport::TransportSpec;
use pogo_executor::transport::{
    self, CancelToken, ConnectError, ConnectErrorKind, ExitStatus, Outcome, RunResult, Secret,
    Stream, Transport,
};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{
    self, Heartbeat, OutputChunk, Poll, Results, Task, TaskOutcome, TaskResult, FEATURE_GATES,
    FEATURE_PHASES,
};
use crate::client::{Client, ClientError};
use crate::metrics::WorkerMetrics;
use crate::tls::TlsFiles;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `https://HOST:PORT`.
    pub dispatcher: String,
    pub tls: TlsFiles,
    /// How many tasks it runs at once.
    pub capacity: u32,
    /// The longest pause between two attempts to reach a dispatcher that is away.
    pub max_backoff: Duration,
    /// The pogo binary started as the keeper of the local commands, so that the commands die
    /// with the worker, even one killed with SIGKILL (`pogo worker` gives itself; see
    /// `pogo_executor::transport::keeper`).
    pub keeper: Option<std::path::PathBuf>,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (plain HTTP), if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Why a worker ended on its own: its dispatcher refused it, or it could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WorkerError(pub String);

/// How long a poll waits for tasks at the dispatcher.
pub const POLL_WAIT: Duration = Duration::from_secs(25);
/// A chunk of output goes out when it has this many lines...
pub const CHUNK_LINES: usize = 256;
/// ...or this many bytes of text...
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// ...or this long after its first line.
pub const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// The most results in one request.
pub const RESULTS_PER_REQUEST: usize = 1000;
/// The first pause before reaching a dispatcher that is away again.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// When stopping, how long without delivering anything before the worker gives up on the
/// results it still holds.
pub const GIVE_UP: Duration = Duration::from_secs(30);
/// The heartbeat interval until the dispatcher says otherwise.
pub const FIRST_HEARTBEAT: Duration = Duration::from_secs(2);

/// Chunks of one task ready to go while one is being delivered; beyond that the task's
/// output waits in the transport's channel (which slows the command down rather than
/// filling memory while the dispatcher is away).
const READY_CHUNKS: usize = 64;
/// A job's transport is dropped when none of its tasks ran for this long.
const TRANSPORT_IDLE: Duration = Duration::from_secs(60);
/// How many delivered task ids are remembered, so that a task handed out again is not run
/// again.
const RECENT_IDS: usize = 100_000;

/// Runs until `stop` fires (then takes no more tasks, lets running ones finish and delivers
/// their results) or `kill` fires (running commands are killed, results still delivered).
pub async fn run(
    config: WorkerConfig,
    stop: CancelToken,
    kill: CancelToken,
) -> Result<(), WorkerError> {
    if config.capacity == 0 {
        return Err(WorkerError("a worker's capacity must be at least 1".into()));
    }
    let client =
        Client::new(&config.dispatcher, &config.tls).map_err(|e| WorkerError(e.to_string()))?;
    let mut settings = Settings::new(config.capacity, config.max_backoff);
    settings.keeper = config.keeper;
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    if let Some(at) = config.metrics_listen {
        let probe = Arc::new(Probe(settings.metrics.clone()));
        let (bound, _task) = crate::metrics::serve(at, probe, closing_rx)
            .await
            .map_err(|e| WorkerError(format!("cannot listen on {at} for metrics: {e}")))?;
        (settings.log)(&format!(
            "pogo worker: metrics and health on http://{bound}/metrics, /healthz, /readyz"
        ));
    }
    let ended = run_with(client, settings, stop, kill).await;
    closing.send_replace(true);
    ended
}

/// What the metrics listener asks of a worker.
struct Probe(Arc<WorkerMetrics>);

impl crate::metrics::Probe for Probe {
    async fn metrics(&self) -> String {
        self.0.render()
    }

    async fn ready(&self) -> Result<(), String> {
        if self.0.connected.get() == 1 {
            Ok(())
        } else {
            Err("the dispatcher is out of reach".into())
        }
    }
}

/// The worker's knobs ([`run`] takes the defaults; tests shorten them).
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) capacity: u32,
    pub(crate) poll_wait: Duration,
    pub(crate) first_heartbeat: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) give_up: Duration,
    /// Where the worker's lines go (standard error).
    pub(crate) log: Arc<dyn Fn(&str) + Send + Sync>,
    /// See [`WorkerConfig::keeper`].
    pub(crate) keeper: Option<std::path::PathBuf>,
    pub(crate) metrics: Arc<WorkerMetrics>,
}

impl Settings {
    /// The defaults, with the worker's capacity and longest backoff.
    pub(crate) fn new(capacity: u32, max_backoff: Duration) -> Settings {
        Settings {
            capacity,
            poll_wait: POLL_WAIT,
            first_heartbeat: FIRST_HEARTBEAT,
            min_backoff: MIN_BACKOFF,
            max_backoff,
            give_up: GIVE_UP,
            log: Arc::new(log_line),
            keeper: None,
            metrics: WorkerMetrics::new(),
        }
    }
}

/// A line of the worker's, as a log event (the binary chooses how it looks): a warning when
/// something went wrong.
fn log_line(line: &str) {
    let line = line.strip_prefix("pogo worker: ").unwrap_or(line);
    let trouble = ["unreachable", "refused", "gave up", "cannot"];
    if trouble.iter().any(|word| line.contains(word)) {
        tracing::warn!("{line}");
    } else {
        tracing::info!("{line}");
    }
}

/// [`run`] with a client and settings made elsewhere.
pub(crate) async fn run_with(
    client: Client,
    settings: Settings,
    stop: CancelToken,
    kill: CancelToken,
) -> Result<(), WorkerError> {
    let shared = Arc::new(Shared::new(client, settings));
    // `halt` ends polling, for `stop` and `kill` alike; `kill` also kills what runs, now
    // and whatever starts later.
    let halt = CancelToken::new();
    let watcher = tokio::spawn({
        let (shared, halt, stop, kill) = (shared.clone(), halt.clone(), stop, kill);
        async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = kill.cancelled() => {}
            }
            halt.cancel();
            kill.cancelled().await;
            shared.lock().registry.kill_all();
        }
    });

    let interval = match connect(&shared, &halt).await {
        Ok(Some(interval)) => interval,
        Ok(None) => {
            watcher.abort();
            return Ok(());
        }
        Err(error) => {
            watcher.abort();
            return Err(error);
        }
    };
    shared.log(&format!(
        "pogo worker: connected to {}, capacity {}",
        shared.client.url(),
        shared.settings.capacity
    ));
    let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), interval));
    let sender = tokio::spawn(results_loop(shared.clone()));
    let mut tasks = JoinSet::new();

    let fatal = poll_loop(&shared, &halt, &mut tasks).await;
    drain(&shared, &mut tasks).await;

    shared.abandon.cancel();
    tasks.shutdown().await;
    heartbeat.abort();
    sender.abort();
    watcher.abort();
    match fatal {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// State the worker's parts share.
struct Shared {
    client: Client,
    settings: Settings,
    link: Link,
    state: Mutex<State>,
    /// A command ended: a slot is free.
    slot_freed: Notify,
    /// A result joined the outbox.
    outbox_filled: Notify,
    /// Something the drain waits for happened (a command ended, something was delivered).
    progress: Notify,
    /// Fired when the worker gives up: deliveries stop retrying.
    abandon: CancelToken,
}

struct State {
    registry: Registry,
    outbox: Outbox,
    transports: TransportCache,
    /// When an output chunk or a result was last delivered.
    last_delivery: Instant,
    /// When a command last ended.
    last_command_end: Instant,
}

impl Shared {
    fn new(client: Client, settings: Settings) -> Shared {
        let now = Instant::now();
        let keeper = settings.keeper.clone();
        Shared {
            client,
            link: Link::new(settings.log.clone(), settings.metrics.clone()),
            settings,
            state: Mutex::new(State {
                registry: Registry::default(),
                outbox: Outbox::default(),
                transports: TransportCache {
                    keeper,
                    ..TransportCache::default()
                },
                last_delivery: now,
                last_command_end: now,
            }),
            slot_freed: Notify::new(),
            outbox_filled: Notify::new(),
            progress: Notify::new(),
            abandon: CancelToken::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn log(&self, line: &str) {
        (self.settings.log)(line);
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.settings.min_backoff, self.settings.max_backoff)
    }

    fn free(&self) -> u32 {
        let executing = self.lock().registry.executing.len();
        self.settings
            .capacity
            .saturating_sub(u32::try_from(executing).unwrap_or(u32::MAX))
    }

    fn delivered(&self) {
        self.lock().last_delivery = Instant::now();
        self.progress.notify_waiters();
    }

    fn command_done(&self, task: &Task, generation: Option<u64>) {
        {
            let mut state = self.lock();
            state.registry.command_done(&task.id);
            if let Some(generation) = generation {
                state
                    .transports
                    .release(&task.job, generation, Instant::now());
            }
            state.last_command_end = Instant::now();
        }
        self.slot_freed.notify_one();
        self.progress.notify_waiters();
    }

    fn queue_result(&self, result: TaskResult) {
        self.lock().outbox.push(result);
        self.outbox_filled.notify_one();
    }

    fn accept(&self, ids: &[String]) {
        {
            let mut state = self.lock();
            state.outbox.accept(ids);
            state.registry.accepted(ids);
            state.last_delivery = Instant::now();
        }
        self.progress.notify_waiters();
    }
}

/// Heartbeats until the dispatcher answers: `Some(interval)` then, `None` when `halt` fired
/// first, an error when the dispatcher refused.
async fn connect(shared: &Shared, halt: &CancelToken) -> Result<Option<Duration>, WorkerError> {
    let mut backoff = shared.backoff();
    let hello = Heartbeat {
        capacity: shared.settings.capacity,
        running: Vec::new(),
    };
    loop {
        let answer = tokio::select! {
            answer = shared.client.heartbeat(&hello) => answer,
            () = halt.cancelled() => return Ok(None),
        };
        match answer {
            Ok(reply) => {
                shared.link.up_quietly();
                return Ok(Some(heartbeat_interval(
                    reply.interval_ms,
                    shared.settings.first_heartbeat,
                )));
            }
            Err(error) if error.is_transient() => shared.link.down(&error),
            Err(error) => return Err(WorkerError(error.to_string())),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = halt.cancelled() => return Ok(None),
        }
    }
}

fn heartbeat_interval(interval_ms: u64, default: Duration) -> Duration {
    if interval_ms == 0 {
        default
    } else {
        Duration::from_millis(interval_ms).clamp(Duration::from_millis(50), Duration::from_secs(60))
    }
}

/// Polls while there are free slots, and starts what comes; returns when `halt` fires, or
/// with the dispatcher's refusal.
async fn poll_loop(
    shared: &Arc<Shared>,
    halt: &CancelToken,
    tasks: &mut JoinSet<()>,
) -> Option<WorkerError> {
    let mut backoff = shared.backoff();
    loop {
        while tasks.try_join_next().is_some() {}
        if halt.is_cancelled() {
            return None;
        }
        let free = shared.free();
        if free == 0 {
            tokio::select! {
                () = shared.slot_freed.notified() => {}
                () = halt.cancelled() => return None,
            }
            continue;
        }
        let poll = Poll {
            free,
            capacity: shared.settings.capacity,
            wait_ms: u64::try_from(shared.settings.poll_wait.as_millis()).unwrap_or(u64::MAX),
            features: vec![FEATURE_PHASES.to_string(), FEATURE_GATES.to_string()],
        };
        // Stopping abandons a poll that waits: tasks the dispatcher hands out as it is
        // abandoned never show in a heartbeat, which is how the dispatcher can tell.
        let answer = tokio::select! {
            answer = shared.client.poll(&poll) => answer,
            () = halt.cancelled() => return None,
        };
        match answer {
            Ok(answer) => {
                shared.link.up();
                backoff.reset();
                let admitted: Vec<(Task, CancelToken)> = answer
                    .tasks
                    .into_iter()
                    .filter_map(|task| {
                        // Handed out again: it runs, or ran, here already.
                        let cancel = shared.lock().registry.admit(&task.id)?;
                        Some((task, cancel))
                    })
                    .collect();
                if admitted.is_empty() {
                    continue;
                }
                let taken: Vec<String> = admitted.iter().map(|(t, _)| t.id.clone()).collect();
                match confirm(shared, &taken, halt, &mut backoff).await {
                    Ok(Some(cancelled)) => {
                        for (task, cancel) in admitted {
                            if cancelled.contains(&task.id) {
                                shared.lock().registry.forget(&task.id);
                            } else {
                                shared.lock().registry.confirmed(&task.id);
                                let metrics = shared.settings.metrics.clone();
                                let running = run_task(shared.clone(), task, cancel);
                                tasks.spawn(async move {
                                    metrics.tasks_running.inc();
                                    running.await;
                                    metrics.tasks_running.dec();
                                    metrics.tasks_finished.inc();
                                });
                            }
                        }
                    }
                    outcome => {
                        // Never confirmed: the dispatcher takes these tasks back.
                        for (task, _) in &admitted {
                            shared.lock().registry.forget(&task.id);
                        }
                        match outcome {
                            Err(error) => return Some(error),
                            _ => return None,
                        }
                    }
                }
            }
            Err(error) if error.is_transient() => {
                shared.link.down(&error);
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = halt.cancelled() => return None,
                }
            }
            Err(error) => return Some(WorkerError(error.to_string())),
        }
    }
}

/// Tells the dispatcher which tasks this worker has, the ones just taken included, and waits
/// for its answer: a command starts only once the dispatcher has recorded that its task
/// reached this worker, so a task whose answer was lost on the way is taken back by the
/// dispatcher and never runs twice. Returns the tasks the dispatcher took back or cancelled,
/// `None` when `halt` fired first.
async fn confirm(
    shared: &Shared,
    taken: &[String],
    halt: &CancelToken,
    backoff: &mut Backoff,
) -> Result<Option<HashSet<String>>, WorkerError> {
    loop {
        let mut running = shared.lock().registry.running();
        running.extend(taken.iter().cloned());
        let beat = Heartbeat {
            capacity: shared.settings.capacity,
            running,
        };
        let answer = tokio::select! {
            answer = shared.client.heartbeat(&beat) => answer,
            () = halt.cancelled() => return Ok(None),
        };
        match answer {
            Ok(reply) => {
                shared.link.up();
                shared.lock().registry.cancel(&reply.cancel);
                return Ok(Some(reply.cancel.into_iter().collect()));
            }
            Err(error) if error.is_transient() => shared.link.down(&error),
            Err(error) => return Err(WorkerError(error.to_string())),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = halt.cancelled() => return Ok(None),
        }
    }
}

/// Runs one task: its command, its output, then its result into the outbox.
async fn run_task(shared: Arc<Shared>, task: Task, cancel: CancelToken) {
    if task.gate.is_some() {
        return run_gate(shared, task, cancel).await;
    }
    let started = Instant::now();
    // A task is one attempt (a retry is a task of its own, and the host's connection is
    // closed after each): only phases make a connection per host worth its setup.
    let transport = shared.lock().transports.acquire(
        &task.job,
        &task.transport,
        task.password.as_deref(),
        !task.phases.is_empty(),
        started,
    );
    let (lines_tx, lines_rx) = mpsc::channel(1024);
    let (ended_tx, ended_rx) = oneshot::channel();
    let timeout = task.timeout_ms.map(Duration::from_millis);

    let command = async {
        let (result, generation) = match &transport {
            Ok((transport, generation)) => {
                let ended = phases::attempt(
                    transport.as_ref(),
                    &task.host,
                    &task.command,
                    &task.phases,
                    timeout,
                    &cancel,
                    &lines_tx,
                )
                .await;
                drop(lines_tx);
                let _ = ended_tx.send(());
                transport.close(&task.host).await;
                (ended, Some(*generation))
            }
            Err(message) => {
                drop(lines_tx);
                let _ = ended_tx.send(());
                let result = RunResult {
                    outcome: Outcome::Unreachable(ConnectError {
                        kind: ConnectErrorKind::Local,
                        message: message.clone(),
                    }),
                    duration: started.elapsed(),
                };
                let ended = phases::Attempt {
                    result,
                    phase: Phase::Command,
                };
                (ended, None)
            }
        };
        shared.command_done(&task, generation);
        result
    };
    let max_output = task
        .max_output
        .unwrap_or(pogo_executor::hostlog::DEFAULT_MAX_OUTPUT);
    let output = forward_output(&shared, &task.id, max_output, lines_rx, ended_rx);
    let (ended, chunks) = tokio::join!(command, output);
    let result = &ended.result;
    let failed =
        (!result.outcome.is_success() && ended.phase != Phase::Command).then_some(ended.phase);
    shared.queue_result(TaskResult {
        task: task.id.clone(),
        outcome: task_outcome(&result.outcome),
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        message: match failed {
            Some(phase) => format!("{phase} failed: {}", result.outcome),
            None => result.outcome.to_string(),
        },
        chunks,
        phase: failed,
    });
}

/// Runs a gate on this machine (`sh -c`, as the local transport runs a command, under the
/// worker's keeper), its output streamed as a task's is.
async fn run_gate(shared: Arc<Shared>, task: Task, cancel: CancelToken) {
    let env = task
        .gate
        .as_ref()
        .map(|g| g.env.clone())
        .unwrap_or_default();
    let keeper = shared.lock().transports.keeper.clone();
    let local = match keeper {
        Some(pogo) => transport::LocalTransport::new().with_keeper(pogo),
        None => transport::LocalTransport::new(),
    };
    let (lines_tx, lines_rx) = mpsc::channel(1024);
    let (ended_tx, ended_rx) = oneshot::channel();
    let timeout = task.timeout_ms.map(Duration::from_millis);
    let command = async {
        let result = local
            .run_here(&task.command, &env, timeout, &cancel, lines_tx)
            .await;
        let _ = ended_tx.send(());
        shared.command_done(&task, None);
        result
    };
    let max_output = task
        .max_output
        .unwrap_or(pogo_executor::hostlog::DEFAULT_MAX_OUTPUT);
    let output = forward_output(&shared, &task.id, max_output, lines_rx, ended_rx);
    let (result, chunks) = tokio::join!(command, output);
    shared.queue_result(TaskResult {
        task: task.id.clone(),
        outcome: task_outcome(&result.outcome),
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        message: result.outcome.to_string(),
        chunks,
        phase: None,
    });
}

/// How an attempt ended, in the API's terms.
pub(crate) fn task_outcome(outcome: &Outcome) -> TaskOutcome {
    match outcome {
        Outcome::Exited(ExitStatus::Code(code)) => TaskOutcome::Exited { exit_code: *code },
        Outcome::Exited(ExitStatus::Signal(Some(signal))) => TaskOutcome::Exited {
            exit_code: signal.saturating_add(128),
        },
        Outcome::Exited(ExitStatus::Signal(None)) => TaskOutcome::Exited { exit_code: 128 },
        Outcome::TimedOut(_) => TaskOutcome::TimedOut,
        Outcome::Cancelled(_) => TaskOutcome::Cancelled,
        Outcome::Unreachable(_) => TaskOutcome::Unreachable,
    }
}

type Delivery<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Collects a task's output lines into chunks and delivers them in order; returns, with the
/// number of chunks, once the command ended and every chunk is delivered (or given up).
async fn forward_output(
    shared: &Shared,
    task: &str,
    max_output: u64,
    mut lines: mpsc::Receiver<transport::Output>,
    mut ended: oneshot::Receiver<()>,
) -> u64 {
    let mut chunker = Chunker::new(task, max_output);
    let mut ready: VecDeque<OutputChunk> = VecDeque::new();
    let mut sending: Option<Delivery<'_>> = None;
    let mut deadline: Option<Instant> = None;
    let mut open = true;
    loop {
        if sending.is_none() {
            if let Some(chunk) = ready.pop_front() {
                sending = Some(Box::pin(deliver_chunk(shared, chunk)));
            }
        }
        if !open && sending.is_none() && ready.is_empty() {
            return chunker.count();
        }
        let room = ready.len() < READY_CHUNKS;
        tokio::select! {
            batch = lines.recv(), if open && room => match batch {
                Some(batch) => {
                    let before = ready.len();
                    for line in batch.lines() {
                        ready.extend(chunker.push(batch.stream, line));
                    }
                    if ready.len() > before {
                        deadline = None;
                    }
                    if deadline.is_none() && chunker.has_lines() {
                        deadline = Some(Instant::now() + BATCH_WINDOW);
                    }
                }
                None => {
                    open = false;
                    chunker.mark_cut();
                    ready.extend(chunker.cut());
                }
            },
            // The command ended: what it wrote is in the channel (a transport may drop its
            // end of the channel a little later). Send it all now.
            _ = &mut ended, if open => {
                while let Ok(batch) = lines.try_recv() {
                    for line in batch.lines() {
                        ready.extend(chunker.push(batch.stream, line));
                    }
                }
                open = false;
                chunker.mark_cut();
                ready.extend(chunker.cut());
            }
            () = sleep_until(deadline), if open && deadline.is_some() => {
                deadline = None;
                ready.extend(chunker.cut());
            }
            () = async {
                match sending.as_mut() {
                    Some(delivery) => delivery.await,
                    None => std::future::pending().await,
                }
            }, if sending.is_some() => {
                sending = None;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Delivers one chunk, retrying while the dispatcher is away, until delivered, refused or
/// given up.
async fn deliver_chunk(shared: &Shared, chunk: OutputChunk) {
    let mut backoff = shared.backoff();
    loop {
        let answer = tokio::select! {
            answer = shared.client.send_output(&chunk) => answer,
            () = shared.abandon.cancelled() => return,
        };
        match answer {
            Ok(()) => {
                shared.link.up();
                shared.delivered();
                let bytes: usize = chunk.lines.iter().map(|line| line.text.len()).sum();
                shared.settings.metrics.output_bytes.inc_by(bytes as u64);
                return;
            }
            Err(error) if error.is_transient() => shared.link.down(&error),
            Err(error) => {
                // Sending it again would be refused again; the result still goes.
                tracing::warn!(
                    task = %chunk.task,
                    "output chunk {} of task {} was refused: {error}",
                    chunk.chunk,
                    chunk.task
                );
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = shared.abandon.cancelled() => return,
        }
    }
}

/// Sends what the outbox holds, one request at a time, for as long as the worker runs.
async fn results_loop(shared: Arc<Shared>) {
    let mut backoff = shared.backoff();
    // The last refusal told, so that one repeated at every retry is told once.
    let mut refused: Option<String> = None;
    loop {
        let batch = shared.lock().outbox.batch(RESULTS_PER_REQUEST);
        if batch.is_empty() {
            shared.outbox_filled.notified().await;
            continue;
        }
        let sent = batch.len();
        match shared
            .client
            .send_results(&Results { results: batch })
            .await
        {
            Ok(accepted) => {
                shared.link.up();
                refused = None;
                let all = accepted.tasks.len() >= sent;
                shared.accept(&accepted.tasks);
                if all {
                    backoff.reset();
                    continue;
                }
                // Some were not taken: not at once again.
            }
            Err(error) if error.is_transient() => shared.link.down(&error),
            Err(error) => {
                let message = error.to_string();
                if refused.as_ref() != Some(&message) {
                    shared.log(&format!(
                        "pogo worker: results were refused: {message}; retrying"
                    ));
                    refused = Some(message);
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Heartbeats every interval from the last answer, and kills the tasks the answers name.
async fn heartbeat_loop(shared: Arc<Shared>, mut interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let running = shared.lock().registry.running();
        let beat = Heartbeat {
            capacity: shared.settings.capacity,
            running,
        };
        match shared.client.heartbeat(&beat).await {
            Ok(reply) => {
                shared.link.up();
                shared.lock().registry.cancel(&reply.cancel);
                interval = heartbeat_interval(reply.interval_ms, interval);
            }
            Err(error) => shared.link.down(&error),
        }
    }
}

/// After polling ended: waits for the running tasks and the delivery of their results,
/// giving up after [`Settings::give_up`] without delivering anything once no command runs.
async fn drain(shared: &Shared, tasks: &mut JoinSet<()>) {
    let started = Instant::now();
    loop {
        while tasks.try_join_next().is_some() {}
        let progress = shared.progress.notified();
        let (executing, undelivered, since) = {
            let state = shared.lock();
            let since = started.max(state.last_delivery).max(state.last_command_end);
            (
                state.registry.executing.len(),
                state.registry.unaccepted.len(),
                since,
            )
        };
        if undelivered == 0 && tasks.is_empty() {
            return;
        }
        if executing > 0 || undelivered == 0 {
            tokio::select! {
                () = progress => {}
                Some(_) = tasks.join_next() => {}
            }
            continue;
        }
        let give_up_at = since + shared.settings.give_up;
        if Instant::now() >= give_up_at {
            let ids = shared.lock().registry.running();
            shared.log(&format!(
                "pogo worker: gave up delivering results after {} without reaching the \
                 dispatcher; not delivered: {}",
                seconds(shared.settings.give_up),
                ids.join(", ")
            ));
            return;
        }
        tokio::select! {
            () = progress => {}
            () = tokio::time::sleep_until(give_up_at) => {}
        }
    }
}

/// `30 s`, or `0.5 s` for less than a second.
fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} s", duration.as_secs_f64())
    } else {
        format!("{} s", duration.as_secs())
    }
}

/// Whether the dispatcher answers, told once per change on the log.
struct Link {
    away: Mutex<bool>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
    metrics: Arc<WorkerMetrics>,
}

impl Link {
    fn new(log: Arc<dyn Fn(&str) + Send + Sync>, metrics: Arc<WorkerMetrics>) -> Link {
        Link {
            away: Mutex::new(false),
            log,
            metrics,
        }
    }

    fn set(&self, away: bool) -> bool {
        let mut state = self
            .away
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *state, away)
    }

    fn down(&self, error: &ClientError) {
        self.metrics.connected.set(0);
        if !self.set(true) {
            (self.log)(&format!(
                "pogo worker: dispatcher unreachable ({}); retrying",
                away_reason(error)
            ));
        }
    }

    fn up(&self) {
        self.metrics.connected.set(1);
        if self.set(false) {
            self.metrics.reconnects.inc();
            (self.log)("pogo worker: reconnected");
        }
    }

    /// Up, without saying so (the first connection says more).
    fn up_quietly(&self) {
        self.metrics.connected.set(1);
        self.set(false);
    }
}

fn away_reason(error: &ClientError) -> String {
    match error {
        ClientError::Connect { message, .. } | ClientError::Refused { message, .. } => {
            message.clone()
        }
        ClientError::Status { status, message } => format!("HTTP {status}: {message}"),
        other => other.to_string(),
    }
}

/// Exponential backoff with jitter: each pause is between half and all of
/// `min * 2^attempt`, and never more than `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1).min(31);
        ceiling.mul_f64(0.5 + 0.5 * random_fraction())
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A number in [0, 1), different on each call: enough for jitter.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    // Every `RandomState` has new keys, so the hash of nothing differs each time.
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Cuts a task's output lines into numbered chunks.
#[derive(Debug)]
pub(crate) struct Chunker {
    task: String,
    lines: Vec<api::OutputLine>,
    bytes: usize,
    /// Chunks cut so far.
    cut: u64,
    /// The most of the task's output uploaded, and how much went (or was dropped) so far.
    max_output: u64,
    sent: u64,
    dropped: u64,
}

impl Chunker {
    pub(crate) fn new(task: &str, max_output: u64) -> Chunker {
        Chunker {
            task: task.to_string(),
            lines: Vec::new(),
            bytes: 0,
            cut: 0,
            max_output,
            sent: 0,
            dropped: 0,
        }
    }

    /// Adds a line; returns the chunk it completed, if it did. Past `max_output`, the line
    /// is counted and dropped.
    pub(crate) fn push(&mut self, stream: Stream, line: &[u8]) -> Option<OutputChunk> {
        let text = String::from_utf8_lossy(line).into_owned();
        let length = text.len() as u64 + 1;
        if self.sent + length > self.max_output {
            self.dropped += length;
            return None;
        }
        self.sent += length;
        self.bytes += text.len();
        self.lines.push(api::OutputLine {
            stream: match stream {
                Stream::Stdout => "stdout".into(),
                Stream::Stderr => "stderr".into(),
            },
            text,
        });
        if self.lines.len() >= CHUNK_LINES || self.bytes >= CHUNK_BYTES {
            self.cut()
        } else {
            None
        }
    }

    /// The lines so far as a chunk, if there are any.
    pub(crate) fn cut(&mut self) -> Option<OutputChunk> {
        if self.lines.is_empty() {
            return None;
        }
        self.cut += 1;
        self.bytes = 0;
        Some(OutputChunk {
            task: self.task.clone(),
            chunk: self.cut,
            lines: std::mem::take(&mut self.lines),
        })
    }

    /// Whether lines wait for the next chunk.
    pub(crate) fn has_lines(&self) -> bool {
        !self.lines.is_empty()
    }

    /// How many chunks were cut.
    pub(crate) fn count(&self) -> u64 {
        self.cut
    }

    /// At the end of the output: a marker line saying how much was dropped, if anything was.
    pub(crate) fn mark_cut(&mut self) {
        if self.dropped > 0 {
            self.lines.push(api::OutputLine {
                stream: "stdout".into(),
                text: format!(
                    "--- output cut at max_output ({}): {} more dropped ---",
                    pogo_executor::hostlog::bytes(self.max_output),
                    pogo_executor::hostlog::bytes(self.dropped)
                ),
            });
            self.dropped = 0;
        }
    }
}

/// Results waiting for the dispatcher to accept them, in the order they came.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    results: Vec<TaskResult>,
}

impl Outbox {
    /// Queues a result; a second result of a task already queued is ignored (a task runs
    /// once, so it can only be the same).
    pub(crate) fn push(&mut self, result: TaskResult) {
        if !self.results.iter().any(|queued| queued.task == result.task) {
            self.results.push(result);
        }
    }

    /// Up to `max` of the queued results, oldest first. They stay queued.
    pub(crate) fn batch(&self, max: usize) -> Vec<TaskResult> {
        self.results.iter().take(max).cloned().collect()
    }

    /// Forgets the results the dispatcher has; ids not queued are ignored.
    pub(crate) fn accept(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.results
            .retain(|result| !ids.contains(result.task.as_str()));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.results.len()
    }
}

/// The tasks this worker took: which run, which wait for their result to be accepted, and
/// which were done lately (so that none runs twice).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Commands that run, and how to kill them.
    executing: HashMap<String, CancelToken>,
    /// Tasks taken whose result the dispatcher has not accepted yet (running ones included).
    unaccepted: BTreeSet<String>,
    recent: VecDeque<String>,
    recent_set: HashSet<String>,
    /// Taken, and not yet confirmed by the dispatcher: named only in the confirming
    /// heartbeat, so that no other heartbeat confirms a task this worker may still drop.
    unconfirmed: HashSet<String>,
    killed: bool,
}

impl Registry {
    /// Takes a task: its cancel token, or `None` when it was taken before.
    pub(crate) fn admit(&mut self, id: &str) -> Option<CancelToken> {
        if self.unaccepted.contains(id) || self.recent_set.contains(id) {
            return None;
        }
        let token = CancelToken::new();
        if self.killed {
            token.cancel();
        }
        self.unaccepted.insert(id.to_string());
        self.unconfirmed.insert(id.to_string());
        self.executing.insert(id.to_string(), token.clone());
        Some(token)
    }

    /// The dispatcher confirmed the task: its command may start.
    pub(crate) fn confirmed(&mut self, id: &str) {
        self.unconfirmed.remove(id);
    }

    pub(crate) fn command_done(&mut self, id: &str) {
        self.executing.remove(id);
    }

    /// Drops a task taken but never started (the dispatcher took it back).
    pub(crate) fn forget(&mut self, id: &str) {
        self.executing.remove(id);
        self.unaccepted.remove(id);
        self.unconfirmed.remove(id);
    }

    pub(crate) fn accepted(&mut self, ids: &[String]) {
        for id in ids {
            if self.unaccepted.remove(id) && self.recent_set.insert(id.clone()) {
                self.recent.push_back(id.clone());
                if self.recent.len() > RECENT_IDS {
                    if let Some(old) = self.recent.pop_front() {
                        self.recent_set.remove(&old);
                    }
                }
            }
        }
    }

    /// Kills the commands of these tasks, if they run.
    pub(crate) fn cancel(&mut self, ids: &[String]) {
        for id in ids {
            if let Some(token) = self.executing.get(id) {
                token.cancel();
            }
        }
    }

    /// Kills every command, and every one that starts from now on.
    pub(crate) fn kill_all(&mut self) {
        self.killed = true;
        for token in self.executing.values() {
            token.cancel();
        }
    }

    /// The tasks to name in a heartbeat, in order: confirmed ones, running or with a result
    /// not yet accepted.
    pub(crate) fn running(&self) -> Vec<String> {
        self.unaccepted
            .iter()
            .filter(|id| !self.unconfirmed.contains(*id))
            .cloned()
            .collect()
    }
}

/// Transports per job, built on a job's first task and dropped when its tasks have not used
/// them for a while.
#[derive(Default)]
pub(crate) struct TransportCache {
    entries: HashMap<String, CachedTransport>,
    generation: u64,
    keeper: Option<std::path::PathBuf>,
}

struct CachedTransport {
    spec: TransportSpec,
    password: Option<String>,
    multiplex: bool,
    transport: Arc<dyn Transport>,
    generation: u64,
    active: usize,
    idle_since: Instant,
}

impl TransportCache {
    /// The job's transport, and the generation to hand back to [`TransportCache::release`].
    /// A job whose transport or password changed (a resume) gets a new one.
    pub(crate) fn acquire(
        &mut self,
        job: &str,
        spec: &TransportSpec,
        password: Option<&str>,
        multiplex: bool,
        now: Instant,
    ) -> Result<(Arc<dyn Transport>, u64), String> {
        self.entries.retain(|_, entry| {
            entry.active > 0 || now.duration_since(entry.idle_since) < TRANSPORT_IDLE
        });
        if let Some(entry) = self.entries.get_mut(job) {
            if entry.spec == *spec
                && entry.password.as_deref() == password
                && entry.multiplex == multiplex
            {
                entry.active += 1;
                return Ok((entry.transport.clone(), entry.generation));
            }
        }
        let transport = transport::from_spec_kept(
            spec,
            password.map(Secret::new),
            self.keeper.clone(),
            multiplex,
        )
        .map_err(|e| format!("could not start the transport: {e}"))?;
        self.generation += 1;
        self.entries.insert(
            job.to_string(),
            CachedTransport {
                spec: spec.clone(),
                password: password.map(str::to_string),
                multiplex,
                transport: transport.clone(),
                generation: self.generation,
                active: 1,
                idle_since: now,
            },
        );
        Ok((transport, self.generation))
    }

    /// A task of `job` is done with the transport it got.
    pub(crate) fn release(&mut self, job: &str, generation: u64, now: Instant) {
        if let Some(entry) = self.entries.get_mut(job) {
            if entry.generation == generation {
                entry.active = entry.active.saturating_sub(1);
                if entry.active == 0 {
                    entry.idle_since = now;
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::extract::State as Shared_;
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::{Json, Router};
    use pogo_executor::transport::Kill;

    use super::*;
    use crate::api::{Accepted, ApiError, HeartbeatReply, Tasks};

    fn result(task: &str) -> TaskResult {
        TaskResult {
            task: task.into(),
            outcome: TaskOutcome::Exited { exit_code: 0 },
            duration_ms: 1,
            message: "exit code 0".into(),
            chunks: 0,
            phase: None,
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn outcomes_map_to_the_api_with_signals_as_shell_codes() {
        let unreachable = ConnectError {
            kind: ConnectErrorKind::Auth,
            message: "denied".into(),
        };
        for (outcome, expected) in [
            (
                Outcome::Exited(ExitStatus::Code(3)),
                TaskOutcome::Exited { exit_code: 3 },
            ),
            (
                Outcome::Exited(ExitStatus::Signal(Some(9))),
                TaskOutcome::Exited { exit_code: 137 },
            ),
            (
                Outcome::Exited(ExitStatus::Signal(None)),
                TaskOutcome::Exited { exit_code: 128 },
            ),
            (Outcome::TimedOut(Kill::Killed), TaskOutcome::TimedOut),
            (Outcome::Cancelled(Kill::NotStarted), TaskOutcome::Cancelled),
            (
                Outcome::Unreachable(unreachable.clone()),
                TaskOutcome::Unreachable,
            ),
        ] {
            assert_eq!(task_outcome(&outcome), expected, "{outcome}");
        }
        assert_eq!(
            Outcome::Unreachable(unreachable).to_string(),
            "unreachable: authentication failed: denied"
        );
    }

    #[test]
    fn output_is_cut_into_numbered_chunks_of_256_lines() {
        let mut chunker = Chunker::new("job-1/0/1", u64::MAX);
        assert_eq!(chunker.cut().map(|c| c.chunk), None);
        let mut chunks = Vec::new();
        for n in 0..600 {
            let stream = if n % 2 == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            chunks.extend(chunker.push(stream, n.to_string().as_bytes()));
        }
        chunks.extend(chunker.cut());
        assert_eq!(chunker.cut().map(|c| c.chunk), None);
        assert_eq!(
            chunks
                .iter()
                .map(|c| (c.chunk, c.lines.len()))
                .collect::<Vec<_>>(),
            vec![(1, 256), (2, 256), (3, 88)]
        );
        assert_eq!(chunker.count(), 3);
        assert!(chunks.iter().all(|c| c.task == "job-1/0/1"));
        let all: Vec<&api::OutputLine> = chunks.iter().flat_map(|c| &c.lines).collect();
        assert_eq!(all[0].stream, "stdout");
        assert_eq!(all[1].stream, "stderr");
        assert_eq!(all[599].text, "599");
    }

    /// A worker uploads at most the plan's max_output of a task, as a local run keeps at most
    /// that much in a host's log; the rest is counted and said in a marker line.
    #[test]
    fn output_past_max_output_is_dropped_with_a_marker() {
        let mut chunker = Chunker::new("t", 100);
        let mut chunks = Vec::new();
        for n in 0..50 {
            chunks.extend(chunker.push(Stream::Stdout, format!("{n:09}").as_bytes()));
        }
        chunker.mark_cut();
        chunks.extend(chunker.cut());
        let texts: Vec<&str> = chunks
            .iter()
            .flat_map(|c| &c.lines)
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(texts.len(), 11, "{texts:?}");
        assert_eq!(
            texts[10],
            "--- output cut at max_output (100 B): 400 B more dropped ---"
        );
    }

    #[test]
    fn a_chunk_is_cut_early_at_a_megabyte_and_text_is_lossy_utf8() {
        let mut chunker = Chunker::new("t", u64::MAX);
        let big = vec![b'x'; transport::MAX_LINE];
        let mut cut_at = None;
        for n in 1..=CHUNK_LINES {
            if let Some(chunk) = chunker.push(Stream::Stdout, &big) {
                cut_at = Some((n, chunk.lines.len()));
                break;
            }
        }
        assert_eq!(cut_at, Some((16, 16)));
        chunker.push(Stream::Stdout, b"caf\xe9");
        let chunk = chunker.cut().unwrap();
        assert_eq!(chunk.chunk, 2);
        assert_eq!(chunk.lines[0].text, "caf\u{fffd}");
    }

    #[test]
    fn a_result_stays_in_the_outbox_until_it_is_accepted() {
        let mut outbox = Outbox::default();
        outbox.push(result("a"));
        outbox.push(result("b"));
        outbox.push(result("c"));
        // Sending does not take them out.
        assert_eq!(outbox.batch(2).len(), 2);
        assert_eq!(outbox.batch(10).len(), 3);
        outbox.accept(&ids(&["b"]));
        assert_eq!(
            outbox
                .batch(10)
                .iter()
                .map(|r| r.task.as_str())
                .collect::<Vec<_>>(),
            ["a", "c"]
        );
        // Duplicates are harmless: accepted twice, unknown ids, a result queued twice.
        outbox.accept(&ids(&["b", "zzz"]));
        outbox.push(result("a"));
        assert_eq!(outbox.len(), 2);
        outbox.accept(&ids(&["a", "c"]));
        assert_eq!(outbox.len(), 0);
        assert!(outbox.batch(10).is_empty());
    }

    #[test]
    fn backoff_grows_from_the_minimum_to_the_maximum_with_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = Backoff::new(min, max);
        let delays: Vec<Duration> = (0..40).map(|_| backoff.next_delay()).collect();
        for (n, delay) in delays.iter().enumerate() {
            let ceiling = (min * 2u32.pow(n.min(20) as u32)).min(max);
            assert!(*delay <= ceiling, "{n}: {delay:?} > {ceiling:?}");
            assert!(*delay >= ceiling / 2, "{n}: {delay:?} < {:?}", ceiling / 2);
        }
        assert!(delays[39] >= max / 2);
        // Jittered: not every pause at the ceiling is the same.
        assert!(delays[20..].iter().any(|d| *d != delays[20]));
        backoff.reset();
        assert!(backoff.next_delay() <= min);
        // A maximum under the minimum is the minimum.
        let mut tiny = Backoff::new(min, Duration::ZERO);
        assert!((0..10).all(|_| tiny.next_delay() <= min));
    }

    #[test]
    fn a_task_is_never_taken_twice() {
        let mut registry = Registry::default();
        let token = registry.admit("j/0/1").unwrap();
        assert!(
            registry.running().is_empty(),
            "heartbeats name a task only once the dispatcher confirmed it"
        );
        registry.confirmed("j/0/1");
        assert!(registry.admit("j/0/1").is_none(), "while it runs");
        registry.command_done("j/0/1");
        assert!(registry.admit("j/0/1").is_none(), "while its result waits");
        assert_eq!(registry.running(), ids(&["j/0/1"]));
        registry.accepted(&ids(&["j/0/1", "unknown"]));
        assert!(registry.running().is_empty());
        assert!(
            registry.admit("j/0/1").is_none(),
            "after its result was accepted"
        );
        assert!(!token.is_cancelled());
        // The next attempt is another task.
        assert!(registry.admit("j/0/2").is_some());
    }

    #[test]
    fn cancels_reach_running_commands_and_kill_reaches_later_ones_too() {
        let mut registry = Registry::default();
        let a = registry.admit("a").unwrap();
        let b = registry.admit("b").unwrap();
        registry.cancel(&ids(&["b", "not-here"]));
        assert!(!a.is_cancelled());
        assert!(b.is_cancelled());
        registry.kill_all();
        assert!(a.is_cancelled());
        assert!(registry.admit("c").unwrap().is_cancelled());
    }

    #[test]
    fn a_jobs_transport_is_shared_rebuilt_on_a_new_password_and_dropped_when_idle() {
        let mut cache = TransportCache::default();
        let now = Instant::now();
        let local = TransportSpec::Local;
        let (first, g1) = cache.acquire("job-1", &local, None, false, now).unwrap();
        let (second, g2) = cache.acquire("job-1", &local, None, false, now).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(g1, g2);
        let (other, _) = cache.acquire("job-2", &local, None, false, now).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        // A new password (a resume) gets a new transport; releases of the old one do not
        // count against it.
        let (third, g3) = cache
            .acquire("job-1", &local, Some("pw"), false, now)
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
        cache.release("job-1", g1, now);
        cache.release("job-1", g1, now);
        let later = now + TRANSPORT_IDLE * 2;
        cache.release("job-2", 2, now);
        cache.acquire("job-3", &local, None, false, later).unwrap();
        // job-1's transport is still in use; job-2's was idle.
        assert_eq!(cache.len(), 2);
        cache.release("job-1", g3, later);
        cache
            .acquire("job-3", &local, None, false, later + TRANSPORT_IDLE * 2)
            .unwrap();
        assert_eq!(cache.len(), 1);

        let ssh = TransportSpec::Ssh {
            user: None,
            port: None,
            identity: None,
            ssh_config: None,
            known_hosts: "sometimes".into(),
            password: false,
        };
        let error = cache
            .acquire("job-4", &ssh, None, false, later)
            .err()
            .unwrap();
        assert!(
            error.starts_with("could not start the transport: unknown host-key policy"),
            "{error}"
        );
    }

    #[test]
    fn the_heartbeat_interval_is_the_dispatchers_within_bounds() {
        let default = Duration::from_secs(2);
        assert_eq!(heartbeat_interval(0, default), default);
        assert_eq!(heartbeat_interval(500, default), Duration::from_millis(500));
        assert_eq!(heartbeat_interval(1, default), Duration::from_millis(50));
        assert_eq!(
            heartbeat_interval(u64::MAX, default),
            Duration::from_secs(60)
        );
    }

    // The worker's loop against a stand-in for the dispatcher's worker API, over plain HTTP on
    // loopback: failures on demand, and a record of what arrived.

    #[derive(Default)]
    struct Fake {
        queue: VecDeque<Task>,
        handed: Vec<String>,
        results: HashMap<String, TaskResult>,
        result_posts: usize,
        chunks: HashMap<String, BTreeMap<u64, OutputChunk>>,
        /// Answer this many of the next results posts with 503.
        fail_results: usize,
        /// Answer this many of the next output posts with 503.
        fail_output: usize,
        refuse_poll: Option<String>,
        /// Tasks the next heartbeat replies tell to kill.
        cancel: Vec<String>,
        heartbeats: Vec<Heartbeat>,
    }

    #[derive(Clone)]
    struct FakeState {
        fake: Arc<Mutex<Fake>>,
        changed: Arc<Notify>,
    }

    impl FakeState {
        fn with<T>(&self, f: impl FnOnce(&mut Fake) -> T) -> T {
            let out = f(&mut self.fake.lock().unwrap());
            self.changed.notify_waiters();
            out
        }
    }

    type Answer<T> = Result<Json<T>, (StatusCode, Json<ApiError>)>;

    fn refuse(status: StatusCode, error: &str) -> (StatusCode, Json<ApiError>) {
        (
            status,
            Json(ApiError {
                error: error.into(),
            }),
        )
    }

    async fn fake_poll(
        Shared_(state): Shared_<FakeState>,
        Json(poll): Json<Poll>,
    ) -> Answer<Tasks> {
        let deadline = Instant::now() + Duration::from_millis(poll.wait_ms);
        loop {
            let changed = state.changed.notified();
            {
                let mut fake = state.fake.lock().unwrap();
                if let Some(error) = &fake.refuse_poll {
                    return Err(refuse(StatusCode::FORBIDDEN, error));
                }
                if !fake.queue.is_empty() {
                    let n = (poll.free as usize).min(fake.queue.len());
                    let tasks: Vec<Task> = fake.queue.drain(..n).collect();
                    fake.handed.extend(tasks.iter().map(|t| t.id.clone()));
                    return Ok(Json(Tasks { tasks }));
                }
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => return Ok(Json(Tasks::default())),
            }
        }
    }

    async fn fake_output(
        Shared_(state): Shared_<FakeState>,
        Json(chunk): Json<OutputChunk>,
    ) -> Result<StatusCode, (StatusCode, Json<ApiError>)> {
        state.with(|fake| {
            if fake.fail_output > 0 {
                fake.fail_output -= 1;
                return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "busy"));
            }
            fake.chunks
                .entry(chunk.task.clone())
                .or_default()
                .insert(chunk.chunk, chunk);
            Ok(StatusCode::NO_CONTENT)
        })
    }

    #[test]
    fn results_on_the_wire_read_back() {
        let json = serde_json::to_string(&Results {
            results: vec![result("a")],
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"results":[{"task":"a","outcome":"exited","exit_code":0,"duration_ms":1,"message":"exit code 0","chunks":0}]}"#
        );
        let back: Results = serde_json::from_str(&json).unwrap();
        assert_eq!(back.results, [result("a")]);
    }

    async fn fake_results(
        Shared_(state): Shared_<FakeState>,
        Json(results): Json<Results>,
    ) -> Answer<Accepted> {
        state.with(|fake| {
            fake.result_posts += 1;
            if fake.fail_results > 0 {
                fake.fail_results -= 1;
                return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "busy"));
            }
            let mut accepted = Accepted::default();
            for result in results.results {
                accepted.tasks.push(result.task.clone());
                fake.results.entry(result.task.clone()).or_insert(result);
            }
            Ok(Json(accepted))
        })
    }

    async fn fake_heartbeat(
        Shared_(state): Shared_<FakeState>,
        Json(beat): Json<Heartbeat>,
    ) -> Answer<HeartbeatReply> {
        state.with(|fake| {
            fake.heartbeats.push(beat);
            Ok(Json(HeartbeatReply {
                cancel: std::mem::take(&mut fake.cancel),
                interval_ms: 50,
            }))
        })
    }

    struct FakeDispatcher {
        url: String,
        state: FakeState,
        shutdown: oneshot::Sender<()>,
        server: tokio::task::JoinHandle<()>,
    }

    impl FakeDispatcher {
        async fn start() -> FakeDispatcher {
            let state = FakeState {
                fake: Arc::default(),
                changed: Arc::default(),
            };
            let router = Router::new()
                .route("/v1/worker/poll", post(fake_poll))
                .route("/v1/worker/output", post(fake_output))
                .route("/v1/worker/results", post(fake_results))
                .route("/v1/worker/heartbeat", post(fake_heartbeat))
                .with_state(state.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let (shutdown, stopped) = oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
            FakeDispatcher {
                url,
                state,
                shutdown,
                server,
            }
        }

        fn client(&self) -> Client {
            Client::with_tls_config(&self.url, crate::client::tests::test_tls_config(), true)
                .unwrap()
        }

        fn add(&self, tasks: impl IntoIterator<Item = Task>) {
            self.state.with(|fake| fake.queue.extend(tasks));
        }

        fn with<T>(&self, f: impl FnOnce(&mut Fake) -> T) -> T {
            self.state.with(f)
        }

        /// Waits (20 s at most) until `done` holds of what arrived.
        async fn until(&self, what: &str, done: impl Fn(&Fake) -> bool) {
            let wait = async {
                loop {
                    let changed = self.state.changed.notified();
                    if done(&self.state.fake.lock().unwrap()) {
                        return;
                    }
                    changed.await;
                }
            };
            tokio::time::timeout(Duration::from_secs(20), wait)
                .await
                .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
        }

        async fn stop(self) {
            let _ = self.shutdown.send(());
            let mut server = self.server;
            if tokio::time::timeout(Duration::from_secs(5), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }

    fn task(n: usize, command: &str) -> Task {
        Task {
            id: format!("job-1/{n}/1"),
            job: "job-1".into(),
            host: format!("h{n}"),
            attempt: 1,
            command: command.into(),
            timeout_ms: None,
            transport: TransportSpec::Local,
            password: None,
            max_output: None,
            phases: Default::default(),
            gate: None,
        }
    }

    struct Running {
        stop: CancelToken,
        kill: CancelToken,
        log: Arc<Mutex<Vec<String>>>,
        worker: tokio::task::JoinHandle<Result<(), WorkerError>>,
    }

    impl Running {
        fn start(dispatcher: &FakeDispatcher, capacity: u32) -> Running {
            let log: Arc<Mutex<Vec<String>>> = Arc::default();
            let settings = Settings {
                capacity,
                poll_wait: Duration::from_millis(300),
                first_heartbeat: Duration::from_millis(50),
                min_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                give_up: Duration::from_millis(500),
                log: {
                    let log = log.clone();
                    Arc::new(move |line| log.lock().unwrap().push(line.to_string()))
                },
                keeper: None,
                metrics: WorkerMetrics::new(),
            };
            let (stop, kill) = (CancelToken::new(), CancelToken::new());
            let worker = tokio::spawn(run_with(
                dispatcher.client(),
                settings,
                stop.clone(),
                kill.clone(),
            ));
            Running {
                stop,
                kill,
                log,
                worker,
            }
        }

        /// Stops the worker and returns what it returned and logged.
        async fn stop(self) -> (Result<(), WorkerError>, Vec<String>) {
            self.stop.cancel();
            let result = tokio::time::timeout(Duration::from_secs(20), self.worker)
                .await
                .expect("the worker stops")
                .unwrap();
            let log = self.log.lock().unwrap().clone();
            (result, log)
        }
    }

    #[tokio::test]
    async fn every_task_runs_once_and_its_output_and_result_arrive() {
        let dispatcher = FakeDispatcher::start().await;
        let worker = Running::start(&dispatcher, 4);
        dispatcher.add((0..20).map(|n| match n {
            0 => task(n, "seq 1 600"),
            1 => task(n, "echo out; echo err >&2; exit 3"),
            2 => task(n, "kill -TERM $$"),
            _ => task(n, "echo $POGO_HOST"),
        }));
        dispatcher
            .until("20 results", |fake| fake.results.len() == 20)
            .await;
        let (ended, log) = worker.stop().await;
        ended.unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(log[0].starts_with("pogo worker: connected to http://127.0.0.1:"));
        assert!(log[0].ends_with(", capacity 4"), "{log:?}");

        dispatcher.with(|fake| {
            assert_eq!(fake.handed.len(), 20);
            let lines = |n: usize| -> Vec<(String, String)> {
                let id = format!("job-1/{n}/1");
                let chunks = fake.chunks.get(&id).cloned().unwrap_or_default();
                assert_eq!(
                    chunks.keys().copied().collect::<Vec<_>>(),
                    (1..=fake.results[&id].chunks).collect::<Vec<_>>(),
                    "{id}: every chunk the result counts arrived"
                );
                chunks
                    .into_values()
                    .flat_map(|c| c.lines)
                    .map(|l| (l.stream, l.text))
                    .collect()
            };
            let seq = lines(0);
            assert_eq!(seq.len(), 600);
            assert!(seq
                .iter()
                .enumerate()
                .all(|(i, (stream, text))| stream == "stdout" && *text == (i + 1).to_string()));
            assert!(fake.results["job-1/0/1"].chunks >= 3);

            let mut mixed = lines(1);
            mixed.sort();
            assert_eq!(
                mixed,
                [
                    ("stderr".into(), "err".into()),
                    ("stdout".into(), "out".into())
                ]
            );
            assert_eq!(
                fake.results["job-1/1/1"].outcome,
                TaskOutcome::Exited { exit_code: 3 }
            );
            assert_eq!(fake.results["job-1/1/1"].message, "exit code 3");
            assert_eq!(
                fake.results["job-1/2/1"].outcome,
                TaskOutcome::Exited { exit_code: 143 }
            );
            for n in 3..20 {
                assert_eq!(lines(n), [("stdout".into(), format!("h{n}"))]);
                assert_eq!(
                    fake.results[&format!("job-1/{n}/1")].outcome,
                    TaskOutcome::Exited { exit_code: 0 }
                );
            }
        });
        dispatcher.stop().await;
    }

    #[tokio::test]
    async fn a_task_handed_out_twice_runs_once() {
        let dir = tempfile::tempdir().unwrap();
        let marks = dir.path().join("marks");
        let command = format!("echo ran >> {}", marks.display());
        let dispatcher = FakeDispatcher::start().await;
        let worker = Running::start(&dispatcher, 2);
        dispatcher.add([task(0, &command)]);
        dispatcher
            .until("the result", |fake| fake.results.len() == 1)
            .await;
        dispatcher.add([task(0, &command), task(1, "true")]);
        dispatcher
            .until("the next result", |fake| fake.results.len() == 2)
            .await;
        let (ended, _) = worker.stop().await;
        ended.unwrap();
        assert_eq!(std::fs::read_to_string(&marks).unwrap(), "ran\n");
        dispatcher.stop().await;
    }

    #[tokio::test]
    async fn output_and_results_are_retried_until_the_dispatcher_takes_them() {
        let dispatcher = FakeDispatcher::start().await;
        dispatcher.with(|fake| {
            fake.fail_output = 3;
            fake.fail_results = 3;
        });
        let worker = Running::start(&dispatcher, 2);
        dispatcher.add([task(0, "echo one"), task(1, "echo two")]);
        dispatcher
            .until("both results", |fake| fake.results.len() == 2)
            .await;
        let (ended, log) = worker.stop().await;
        ended.unwrap();
        dispatcher.with(|fake| {
            assert!(fake.result_posts >= 4);
            for (n, text) in [(0, "one"), (1, "two")] {
                let id = format!("job-1/{n}/1");
                assert_eq!(fake.results[&id].chunks, 1);
                assert_eq!(fake.chunks[&id][&1].lines[0].text, text);
            }
        });
        assert!(
            log.iter()
                .any(|l| l == "pogo worker: dispatcher unreachable (HTTP 503: busy); retrying"),
            "{log:?}"
        );
        assert!(
            log.iter().any(|l| l == "pogo worker: reconnected"),
            "{log:?}"
        );
        dispatcher.stop().await;
    }

    #[tokio::test]
    async fn output_goes_out_while_the_command_runs() {
        let dispatcher = FakeDispatcher::start().await;
        let worker = Running::start(&dispatcher, 1);
        dispatcher.add([task(0, "echo early; sleep 2; echo late")]);
        dispatcher
            .until("the early line", |fake| !fake.chunks.is_empty())
            .await;
        dispatcher.with(|fake| {
            assert!(
                fake.results.is_empty(),
                "the early line came before the result"
            );
            assert_eq!(fake.chunks["job-1/0/1"][&1].lines[0].text, "early");
        });
        dispatcher
            .until("the result", |fake| fake.results.len() == 1)
            .await;
        let (ended, _) = worker.stop().await;
        ended.unwrap();
        dispatcher.with(|fake| {
            assert_eq!(fake.results["job-1/0/1"].chunks, 2);
            assert_eq!(fake.chunks["job-1/0/1"][&2].lines[0].text, "late");
        });
        dispatcher.stop().await;
    }

    #[tokio::test]
    async fn a_heartbeat_reply_kills_the_task_it_names() {
        let dispatcher = FakeDispatcher::start().await;
        let worker = Running::start(&dispatcher, 2);
        dispatcher.add([task(0, "sleep 30"), task(1, "sleep 0.5")]);
        dispatcher
            .until("a heartbeat that lists the task", |fake| {
                fake.heartbeats
                    .iter()
                    .any(|beat| beat.running.contains(&"job-1/0/1".to_string()))
            })
            .await;
        dispatcher.with(|fake| fake.cancel = ids(&["job-1/0/1"]));
        dispatcher
            .until("both results", |fake| fake.results.len() == 2)
            .await;
        let (ended, _) = worker.stop().await;
        ended.unwrap();
        dispatcher.with(|fake| {
            assert_eq!(fake.results["job-1/0/1"].outcome, TaskOutcome::Cancelled);
            assert!(fake.results["job-1/0/1"].message.starts_with("cancelled; "));
            assert_eq!(
                fake.results["job-1/1/1"].outcome,
                TaskOutcome::Exited { exit_code: 0 }
            );
            // Delivered results leave the heartbeat.
            assert!(fake.heartbeats.last().unwrap().running.len() <= 2);
        });
        dispatcher.stop().await;
    }

    #[tokio::test]
    async fn stop_lets_tasks_finish_and_kill_cancels_them() {
        let dispatcher = FakeDispatcher::start().await;
        let worker = Running::start(&dispatcher, 2);
        dispatcher.add([
            task(0, "echo started; sleep 0.5; echo finished"),
            task(1, "echo started; sleep 30"),
        ]);
        // Both commands run (a task taken but not yet confirmed when the worker stops is
        // dropped, for the dispatcher to take back).
        dispatcher
            .until("both commands started", |fake| fake.chunks.len() == 2)
            .await;
        worker.stop.cancel();
        // More work is not taken any more.
        dispatcher.add([task(2, "true")]);
        dispatcher
            .until("the short task's result", |fake| fake.results.len() == 1)
            .await;
        assert!(!worker.worker.is_finished(), "the long task still runs");
        worker.kill.cancel();
        let (ended, _) = worker.stop().await;
        ended.unwrap();
        dispatcher.with(|fake| {
            assert_eq!(fake.handed.len(), 2);
            assert_eq!(
                fake.results["job-1/0/1"].outcome,
                TaskOutcome::Exited { exit_code: 0 }
            );
            assert_eq!(fake.results["job-1/1/1"].outcome, TaskOutcome::Cancelled);
        });
        dispatcher.stop().await;
    }

    #[tokio::test]
    async fn stopping_gives_up_on_results_the_dispatcher_never_takes() {
        let dispatcher = FakeDispatcher::start().await;
        dispatcher.with(|fake| fake.fail_results = usize::MAX);
        let worker = Running::start(&dispatcher, 1);
        dispatcher.add([task(0, "true")]);
        dispatcher
            .until("a results post", |fake| fake.result_posts > 0)
            .await;
        let (ended, log) = worker.stop().await;
        ended.unwrap();
        let gave_up = log.iter().find(|l| l.contains("gave up")).expect("a line");
        assert_eq!(
            gave_up,
            "pogo worker: gave up delivering results after 0.5 s without reaching the \
             dispatcher; not delivered: job-1/0/1"
        );
        dispatcher.stop().await;
    }

    #[tokio::test]
    async fn a_refused_poll_ends_the_worker_with_the_dispatchers_message() {
        let dispatcher = FakeDispatcher::start().await;
        dispatcher.with(|fake| {
            fake.refuse_poll = Some("a certificate of role operator cannot poll".into())
        });
        let worker = Running::start(&dispatcher, 1);
        let ended = tokio::time::timeout(Duration::from_secs(20), worker.worker)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ended.unwrap_err().to_string(),
            "the dispatcher refused: a certificate of role operator cannot poll (HTTP 403)"
        );
        dispatcher.stop().await;
    }

    #[tokio::test]
    async fn a_worker_waits_for_a_dispatcher_that_is_not_there_yet_and_stops_when_told() {
        // A port that was free a moment ago: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = Client::with_tls_config(
            &format!("http://127.0.0.1:{port}"),
            crate::client::tests::test_tls_config(),
            true,
        )
        .unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut settings = Settings::new(1, Duration::from_millis(50));
        settings.log = {
            let log = log.clone();
            Arc::new(move |line| log.lock().unwrap().push(line.to_string()))
        };
        let (stop, kill) = (CancelToken::new(), CancelToken::new());
        let worker = tokio::spawn(run_with(client, settings, stop.clone(), kill));
        tokio::time::timeout(Duration::from_secs(10), async {
            while log.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        stop.cancel();
        worker.await.unwrap().unwrap();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(
            log[0].starts_with("pogo worker: dispatcher unreachable (")
                && log[0].contains("refused")
                && log[0].ends_with("); retrying"),
            "{log:?}"
        );
    }
}
