//! The dispatcher's core: one thread that owns every job's scheduler, the workers' tasks and
//! the database. HTTP handlers send it commands and await its answers.
//!
//! It works in batches: it takes every command waiting, applies them (the scheduler decides,
//! the database records), hands tasks to the workers that wait for some, commits once, and only
//! then answers. So a worker never runs a task the database does not know was handed out, an
//! operator never sees an event a crash could take back, and one fsync covers a whole batch.
//! Constraint groups hold across all workers because this thread alone starts hosts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pogo_executor::events::{self, Event, FinalState, RunResult, LOST_EXIT_CODE};
use pogo_executor::fleet::{FleetScheduler, JobStart};
use pogo_executor::phases::{Phase, Phases};
use pogo_executor::rundir::{random_suffix, RunId};
use pogo_executor::scheduler::{
    named_retry, Changes, FailedHosts, HostIdx, HostState, LimitOverrides, Outcome, RunStatus,
    Scheduler, SlotIdx, StopReason,
};
use pogo_executor::transport::TransportSpec;
use pogo_executor::why::Heads;
use pogo_model::{LoweredLimits, Plan, SealState, ALLOW_EDITED};
use tokio::sync::{oneshot, watch};

use super::fleets::Fleets;
use super::store::{HostRow, JobRow, Store, StoreError};
use crate::api::*;

/// An error answer: an HTTP status and what to tell the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiErr {
    pub status: u16,
    pub message: String,
}

impl ApiErr {
    pub fn new(status: u16, message: impl Into<String>) -> ApiErr {
        ApiErr {
            status,
            message: message.into(),
        }
    }

    fn not_found(job: &str) -> ApiErr {
        ApiErr::new(404, format!("no job `{job}` on this dispatcher"))
    }

    fn conflict(message: impl Into<String>) -> ApiErr {
        ApiErr::new(409, message)
    }

    fn bad(message: impl Into<String>) -> ApiErr {
        ApiErr::new(400, message)
    }
}

pub type Reply<T> = oneshot::Sender<Result<T, ApiErr>>;

/// What the HTTP side asks of the core.
pub enum Cmd {
    Submit {
        job: Box<SubmitJob>,
        by: String,
        reply: Reply<JobSummary>,
    },
    Jobs {
        reply: Reply<Vec<JobSummary>>,
    },
    Job {
        id: String,
        reply: Reply<JobDetail>,
    },
    Plan {
        id: String,
        reply: Reply<Plan>,
    },
    /// Why these hosts (the heads of its threads, when `None`) have not started.
    Why {
        id: String,
        hosts: Option<Vec<String>>,
        reply: Reply<Vec<HostWhy>>,
    },
    Events {
        id: String,
        after: u64,
        limit: usize,
        reply: Reply<(Vec<EventRecord>, bool)>,
    },
    Output {
        id: String,
        host: Option<String>,
        after: u64,
        limit: usize,
        reply: Reply<(Vec<OutputRecord>, bool)>,
    },
    Halt {
        id: String,
        kill: bool,
        reply: Reply<JobSummary>,
    },
    Resume {
        id: String,
        password: Option<String>,
        retry: Option<Vec<String>>,
        reply: Reply<JobSummary>,
    },
    Close {
        id: String,
        by: String,
        reply: Reply<JobSummary>,
    },
    Approve {
        id: String,
        step: String,
        by: String,
        reply: Reply<JobSummary>,
    },
    PushFleet {
        fleet: String,
        push: Box<PushFleet>,
        by: String,
        reply: Reply<FleetRevisionInfo>,
    },
    Fleets {
        reply: Reply<Vec<FleetRevisionInfo>>,
    },
    FleetRevisions {
        fleet: String,
        reply: Reply<Vec<FleetRevisionInfo>>,
    },
    FleetRevision {
        fleet: String,
        revision: u32,
        reply: Reply<FleetRevision>,
    },
    Workers {
        reply: Reply<Vec<WorkerInfo>>,
    },
    /// Brings the metrics' gauges up to date (`/metrics`); answered when the core runs,
    /// which is what `/readyz` asks too.
    Metrics {
        reply: Reply<()>,
    },
    /// An operator's command, recorded in the audit trail (in the same batch) when it does
    /// what it was asked.
    Audited {
        who: Who,
        cmd: Box<Cmd>,
    },
    /// The audit trail after `after`.
    Audit {
        after: u64,
        limit: usize,
        reply: Reply<Vec<AuditRecord>>,
    },
    Poll {
        worker: String,
        poll: Poll,
        reply: Reply<Tasks>,
    },
    PutOutput {
        worker: String,
        chunk: OutputChunk,
        reply: Reply<()>,
    },
    Results {
        worker: String,
        results: Results,
        reply: Reply<Accepted>,
    },
    Heartbeat {
        worker: String,
        heartbeat: Heartbeat,
        reply: Reply<HeartbeatReply>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Who asked for an operator's command, and from where.
#[derive(Debug, Clone)]
pub struct Who {
    pub name: String,
    pub from: String,
}

impl Cmd {
    /// The job the command names, if any.
    fn job(&self) -> Option<&str> {
        match self {
            Cmd::Audited { cmd, .. } => cmd.job(),
            Cmd::Job { id, .. }
            | Cmd::Plan { id, .. }
            | Cmd::Why { id, .. }
            | Cmd::Events { id, .. }
            | Cmd::Output { id, .. }
            | Cmd::Halt { id, .. }
            | Cmd::Resume { id, .. }
            | Cmd::Close { id, .. }
            | Cmd::Approve { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// Timing settings of the core.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    pub worker_timeout: Duration,
}

/// The longest pause before a retry a job may ask for.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);
/// The longest a poll waits.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);
/// How often lost workers and due timers are looked for when nothing else happens.
const TICK: Duration = Duration::from_millis(250);
/// At most this many commands in one batch, so answers are not held back for long.
const MAX_BATCH: usize = 2000;

/// Where a host stands, as the dispatcher records it (the scheduler's states, plus lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HState {
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Unreachable,
    Lost,
    Skipped,
    Cancelled,
}

impl HState {
    fn as_str(self) -> &'static str {
        match self {
            HState::Pending => "pending",
            HState::Running => "running",
            HState::Succeeded => "succeeded",
            HState::Failed => "failed",
            HState::TimedOut => "timed_out",
            HState::Unreachable => "unreachable",
            HState::Lost => "lost",
            HState::Skipped => "skipped",
            HState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<HState> {
        Some(match text {
            "pending" => HState::Pending,
            "running" => HState::Running,
            "succeeded" => HState::Succeeded,
            "failed" => HState::Failed,
            "timed_out" => HState::TimedOut,
            "unreachable" => HState::Unreachable,
            "lost" => HState::Lost,
            "skipped" => HState::Skipped,
            "cancelled" => HState::Cancelled,
            _ => return None,
        })
    }

    fn of(state: FinalState) -> HState {
        match state {
            FinalState::Succeeded => HState::Succeeded,
            FinalState::Failed { .. } => HState::Failed,
            FinalState::TimedOut => HState::TimedOut,
            FinalState::Unreachable => HState::Unreachable,
            FinalState::Skipped => HState::Skipped,
            FinalState::Cancelled => HState::Cancelled,
            FinalState::Lost => HState::Lost,
        }
    }

    /// Ended other than by succeeding or being skipped: what a retry runs again.
    fn retryable(self) -> bool {
        matches!(
            self,
            HState::Failed
                | HState::TimedOut
                | HState::Unreachable
                | HState::Lost
                | HState::Cancelled
        )
    }
}

#[derive(Debug, Clone)]
struct HostRt {
    state: HState,
    exit_code: Option<i32>,
    /// Attempts over every session of the job: task ids stay unique.
    attempts: u32,
    /// The first attempt of this session: `retries` counts from it.
    first_attempt: u32,
    worker: Option<String>,
    task: Option<String>,
    /// Whether the worker confirmed it has `task`. Workers start a command only once the
    /// dispatcher has recorded this, so an unconfirmed task never ran: one that never reached
    /// its worker is taken back and handed out again, not lost.
    confirmed: bool,
    message: String,
    /// When its first attempt of this session started (Unix ms), for durations.
    started_ms: u64,
    /// How its last attempt ended, while it waits for a retry (memory only: after a restart
    /// `exit_code` stands in).
    last: Option<TaskOutcome>,
}

impl HostRt {
    fn row(&self) -> HostRow {
        HostRow {
            state: self.state.as_str().to_string(),
            exit_code: self.exit_code,
            attempts: self.attempts,
            first_attempt: self.first_attempt,
            worker: self.worker.clone(),
            task: self.task.clone(),
            confirmed: self.confirmed,
            message: self.message.clone(),
        }
    }

    /// The scheduler's view of it.
    fn scheduler_state(&self) -> HostState {
        match self.state {
            HState::Pending => HostState::Pending,
            HState::Running => HostState::Running,
            HState::Succeeded => HostState::Succeeded,
            HState::Failed => HostState::Failed {
                exit_code: self.exit_code.unwrap_or(1),
            },
            HState::TimedOut => HostState::TimedOut,
            HState::Unreachable => HostState::Unreachable,
            HState::Lost => HostState::Failed {
                exit_code: LOST_EXIT_CODE,
            },
            HState::Skipped => HostState::Skipped,
            HState::Cancelled => HostState::Cancelled,
        }
    }
}

/// What the operator applied beside the sealed plan, kept in the job's `applied` column.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Applied {
    #[serde(default, skip_serializing_if = "LoweredLimits::is_none")]
    limits: LoweredLimits,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    overrides: Vec<String>,
}

struct Job {
    id: String,
    /// The plan the job follows: the submitted plan with `applied.limits` lowered.
    plan: Plan,
    applied: Applied,
    transport: TransportSpec,
    retry_delay: Duration,
    has_password: bool,
    /// In memory only.
    password: Option<String>,
    submitted_at: u64,
    submitted_by: String,
    state: JobState,
    reasons: Vec<String>,
    halted: bool,
    killed: bool,
    session_started_ms: u64,
    /// The client's id of the request that made it.
    submission: Option<String>,
    /// Who closed it and when (seconds since the epoch): its failed hosts are down in no
    /// budget any more, and it cannot be resumed.
    closed: Option<(String, u64)>,
    hosts: Vec<HostRt>,
    /// Whether its session goes on: the fleet scheduler starts its hosts. Its scheduler
    /// lives in the fleet scheduler, which keeps it after the session ends (while the job's
    /// failed hosts count in budgets).
    live: bool,
    /// Retries due: (host, attempt).
    ready: VecDeque<(usize, u32)>,
    last_event: u64,
    last_output: u64,
    run_deadline: Option<Instant>,
    /// Steps (by slot index) that wait for an operator's approval, with when that wait
    /// began (seconds since the epoch) and when it ends unapproved, if it does.
    approvals: BTreeMap<usize, (u64, Option<Instant>)>,
    /// Steps (by slot index) whose gate is due: waiting for a worker that runs gates, or
    /// handed to one. In memory only: after a restart a gate that had not passed runs again.
    gates: BTreeMap<usize, GateRun>,
    /// Each host's step (slot index), if it is in one.
    slot_of: Vec<Option<u32>>,
    /// When each step of this session had its first host handed out (for the step latency
    /// metric; in memory only).
    step_started: HashMap<usize, Instant>,
}

/// Each host's step (slot index), if it is in one.
fn slots_of(plan: &Plan) -> Vec<Option<u32>> {
    let index: HashMap<&str, usize> = plan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut slot_of = vec![None; plan.hosts.len()];
    for (s, (_, spec)) in plan.slots().enumerate() {
        for host in &spec.hosts {
            if let Some(&i) = index.get(host.as_str()) {
                slot_of[i] = u32::try_from(s).ok();
            }
        }
    }
    slot_of
}

/// A gate to run on a worker.
#[derive(Debug, Clone, Default)]
struct GateRun {
    /// The task and the worker it was handed to; `None` while it waits for one.
    task: Option<(String, String)>,
    /// Whether the worker said it has it: from then on the gate may run.
    confirmed: bool,
}

impl Job {
    fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for host in &self.hosts {
            *match host.state {
                HState::Pending => &mut counts.pending,
                HState::Running => &mut counts.running,
                HState::Succeeded => &mut counts.succeeded,
                HState::Failed => &mut counts.failed,
                HState::TimedOut => &mut counts.timed_out,
                HState::Unreachable => &mut counts.unreachable,
                HState::Lost => &mut counts.lost,
                HState::Skipped => &mut counts.skipped,
                HState::Cancelled => &mut counts.cancelled,
            } += 1;
        }
        counts
    }

    fn summary(&self) -> JobSummary {
        JobSummary {
            id: self.id.clone(),
            state: self.state,
            command: self.plan.command.clone().unwrap_or_default(),
            hosts: self.hosts.len(),
            counts: self.counts(),
            submitted_at: self.submitted_at,
            submitted_by: self.submitted_by.clone(),
            reasons: self.reasons.clone(),
            last_event: self.last_event,
            closed: self.closed.is_some(),
            closed_by: self.closed.as_ref().map(|(by, _)| by.clone()),
            closed_at: self.closed.as_ref().map(|&(_, at)| at),
            approvals: self
                .approvals
                .iter()
                .filter_map(|(&slot, &(since, _))| {
                    let (_, spec) = self.plan.slots().nth(slot)?;
                    Some(AwaitedApproval {
                        step: spec.id.clone(),
                        since,
                        within: spec.approve.and_then(|a| a.within),
                    })
                })
                .collect(),
        }
    }

    /// The job's row, but for its plan and what was applied, which are written once, when the
    /// job is inserted (see `submit`).
    fn row(&self) -> JobRow {
        JobRow {
            id: self.id.clone(),
            plan: String::new(),
            applied: String::new(),
            transport: serde_json::to_string(&self.transport).unwrap_or_default(),
            retry_delay_ms: self.retry_delay.as_millis() as u64,
            has_password: self.has_password,
            submitted_at: self.submitted_at,
            submitted_by: self.submitted_by.clone(),
            state: state_word(self.state).to_string(),
            reasons: self.reasons.clone(),
            halted: self.halted,
            killed: self.killed,
            session_started_ms: self.session_started_ms,
            submission: self.submission.clone(),
            under: String::new(),
            closed: self.closed.clone(),
        }
    }

    /// Whether tasks of this job may be handed out now.
    fn active(&self) -> bool {
        self.live && self.state != JobState::NeedsPassword
    }
}

fn state_word(state: JobState) -> &'static str {
    match state {
        JobState::Running => "running",
        JobState::Stopping => "stopping",
        // Not stored: it is what a reloaded job with a password is, until it gets it again.
        JobState::NeedsPassword => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Stopped => "stopped",
    }
}

fn parse_state(text: &str) -> Option<JobState> {
    Some(match text {
        "running" => JobState::Running,
        "stopping" => JobState::Stopping,
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "stopped" => JobState::Stopped,
        _ => return None,
    })
}

/// A task handed to a worker and not yet finished.
#[derive(Debug, Clone)]
struct Held {
    job: String,
    of: TaskOf,
    handed_at: Instant,
}

/// What a task is for: an attempt of a host (its index), or the gate after a step (its slot
/// index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskOf {
    Host(usize),
    Gate(usize),
}

/// How a host's last attempt ended, for a person: the message, and the phase that failed
/// when it was not the command.
struct Said {
    message: String,
    phase: Option<Phase>,
}

impl From<String> for Said {
    fn from(message: String) -> Said {
        Said {
            message,
            phase: None,
        }
    }
}

impl From<&str> for Said {
    fn from(message: &str) -> Said {
        message.to_string().into()
    }
}

#[derive(Debug)]
struct WorkerRt {
    last_seen: Instant,
    connected: bool,
    capacity: u32,
    tasks: HashMap<String, Held>,
    finished: u64,
    /// Whether it runs phases around commands (its polls say [`FEATURE_PHASES`]).
    phases: bool,
    /// Whether it runs gates (its polls say [`FEATURE_GATES`]).
    gates: bool,
}

impl WorkerRt {
    fn new(now: Instant) -> WorkerRt {
        WorkerRt {
            last_seen: now,
            connected: true,
            capacity: 0,
            tasks: HashMap::new(),
            finished: 0,
            phases: false,
            gates: false,
        }
    }
}

struct Waiter {
    worker: String,
    free: u32,
    deadline: Instant,
    reply: Reply<Tasks>,
}

/// A retry waiting for its delay.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RetryTimer {
    due: Instant,
    job: String,
    host: usize,
    attempt: u32,
}

pub struct Core {
    store: Store,
    timing: Timing,
    /// Jobs by id, and their order of submission.
    jobs: HashMap<String, Job>,
    order: Vec<String>,
    /// The jobs whose session goes on, oldest first: what serving a poll (for retries due)
    /// and the clock look at, however many ended jobs the dispatcher keeps.
    running: Vec<String>,
    /// Every job's scheduler and the limits they share: fleet budgets, one task per host,
    /// turns.
    fleet: FleetScheduler,
    /// Every revision of every fleet's config.
    fleets: Fleets,
    /// Job ids by the client's submission id.
    submissions: HashMap<String, String>,
    /// Ended jobs not loaded yet: they hold no place in any budget (they succeeded, or an
    /// operator closed them), so a dispatcher that starts (or takes over) loads them only when
    /// a request names them, or lists the jobs.
    unloaded: HashMap<String, JobRow>,
    workers: BTreeMap<String, WorkerRt>,
    waiters: VecDeque<Waiter>,
    retries: std::collections::BinaryHeap<std::cmp::Reverse<RetryTimer>>,
    /// Answers held until the batch is committed.
    answers: Vec<Box<dyn FnOnce() + Send>>,
    commits: std::sync::Arc<watch::Sender<u64>>,
    dirty: bool,
    /// Numbers gate tasks, from the clock at start: a gate run again after a restart gets an
    /// id no earlier run had (their output chunks are told apart by task id).
    gate_serial: u64,
    metrics: std::sync::Arc<crate::metrics::DispatcherMetrics>,
    /// Who asked for the command being handled, when it is an operator's (see
    /// [`Cmd::Audited`]).
    actor: Option<Who>,
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The instant `seconds` from now; `None` (no deadline) beyond what the clock can count.
fn deadline_in(seconds: u64) -> Option<Instant> {
    Instant::now().checked_add(Duration::from_secs(seconds))
}

fn task_id(job: &str, host: usize, attempt: u32) -> String {
    format!("{job}/{host}/{attempt}")
}

fn gate_task_id(job: &str, slot: usize, serial: u64) -> String {
    format!("{job}/gate/{slot}/{serial}")
}

/// A task id: `JOB/HOST/ATTEMPT` or `JOB/gate/SLOT/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskRef<'a> {
    Host {
        job: &'a str,
        host: usize,
        attempt: u32,
    },
    Gate {
        job: &'a str,
        slot: usize,
    },
}

fn parse_task(id: &str) -> Option<TaskRef<'_>> {
    let (rest, last) = id.rsplit_once('/')?;
    let (job, index) = rest.rsplit_once('/')?;
    let index = index.parse().ok()?;
    let last: u64 = last.parse().ok()?;
    match job.strip_suffix("/gate") {
        Some(job) => Some(TaskRef::Gate { job, slot: index }),
        None => Some(TaskRef::Host {
            job,
            host: index,
            attempt: u32::try_from(last).ok()?,
        }),
    }
}

/// Where a line of output is kept: a host's index, or below 0 the gate after a slot.
fn output_source(of: TaskOf) -> i64 {
    match of {
        TaskOf::Host(idx) => idx as i64,
        TaskOf::Gate(slot) => -(slot as i64) - 1,
    }
}

impl Core {
    /// Opens the core on `store`, reloading every job; unfinished ones carry on.
    pub fn load(
        store: Store,
        timing: Timing,
        commits: std::sync::Arc<watch::Sender<u64>>,
    ) -> Result<Core, StoreError> {
        let mut core = Core {
            store,
            timing,
            jobs: HashMap::new(),
            order: Vec::new(),
            running: Vec::new(),
            fleet: FleetScheduler::new(),
            fleets: Fleets::default(),
            submissions: HashMap::new(),
            unloaded: HashMap::new(),
            workers: BTreeMap::new(),
            waiters: VecDeque::new(),
            retries: Default::default(),
            answers: Vec::new(),
            commits,
            dirty: false,
            gate_serial: now_ms(),
            metrics: crate::metrics::DispatcherMetrics::new(),
            actor: None,
        };
        // The fleets first, in the order they were pushed: the budgets every job is held by.
        for row in core.store.fleets()? {
            core.fleets
                .reload(&mut core.fleet, row)
                .map_err(StoreError::Corrupt)?;
        }
        let now = Instant::now();
        for row in core.store.jobs()? {
            let ended = parse_state(&row.state).is_some_and(JobState::is_ended);
            if ended && (row.state == state_word(JobState::Succeeded) || row.closed.is_some()) {
                if let Some(submission) = &row.submission {
                    core.submissions.insert(submission.clone(), row.id.clone());
                }
                core.order.push(row.id.clone());
                core.unloaded.insert(row.id.clone(), row);
                continue;
            }
            let job = core.reload(row, now)?;
            if let Some(submission) = &job.submission {
                core.submissions.insert(submission.clone(), job.id.clone());
            }
            core.order.push(job.id.clone());
            if job.live {
                core.running.push(job.id.clone());
            }
            core.jobs.insert(job.id.clone(), job);
        }
        let ids = core.running.clone();
        for id in &ids {
            // Halted before the restart: its retries do not start after it either.
            if core.jobs[id].halted && !core.jobs[id].killed {
                core.drop_retries(id);
            }
            // A step that waited for its approval waits again; one approved goes on.
            core.await_gates(id)?;
            core.check_end(id);
        }
        core.others_ended();
        core.store.commit()?;
        Ok(core)
    }

    /// Reloads a job, and gives it to the fleet scheduler in the order of submission: one
    /// that goes on with its running hosts, one that has ended with the hosts it left down
    /// (unless an operator closed it).
    fn reload(&mut self, row: JobRow, now: Instant) -> Result<Job, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("job {}: {what}", row.id));
        let applied: Applied =
            serde_json::from_str(&row.applied).map_err(|e| corrupt(format!("applied: {e}")))?;
        let plan = Plan::from_json(&row.plan)
            .map_err(|e| corrupt(e.to_string()))?
            .lowered(&applied.limits);
        let transport: TransportSpec =
            serde_json::from_str(&row.transport).map_err(|e| corrupt(e.to_string()))?;
        let state =
            parse_state(&row.state).ok_or_else(|| corrupt(format!("state `{}`", row.state)))?;
        let mut hosts = Vec::with_capacity(plan.hosts.len());
        for host in self.store.hosts(&row.id)? {
            hosts.push(HostRt {
                state: HState::parse(&host.state)
                    .ok_or_else(|| corrupt(format!("host state `{}`", host.state)))?,
                exit_code: host.exit_code,
                attempts: host.attempts,
                first_attempt: host.first_attempt,
                worker: host.worker,
                task: host.task,
                confirmed: host.confirmed,
                message: host.message,
                started_ms: row.session_started_ms,
                last: None,
            });
        }
        if hosts.len() != plan.hosts.len() {
            return Err(corrupt(format!(
                "{} host records for {} hosts",
                hosts.len(),
                plan.hosts.len()
            )));
        }
        let (last_event, last_output) = self.store.last_seqs(&row.id)?;
        let mut job = Job {
            id: row.id.clone(),
            plan,
            applied,
            transport,
            retry_delay: Duration::from_millis(row.retry_delay_ms),
            has_password: row.has_password,
            password: None,
            submitted_at: row.submitted_at,
            submitted_by: row.submitted_by,
            state,
            reasons: row.reasons,
            halted: row.halted,
            killed: row.killed,
            session_started_ms: row.session_started_ms,
            submission: row.submission,
            closed: row.closed,
            hosts,
            live: false,
            ready: VecDeque::new(),
            last_event,
            last_output,
            run_deadline: None,
            approvals: BTreeMap::new(),
            gates: BTreeMap::new(),
            slot_of: Vec::new(),
            step_started: HashMap::new(),
        };
        job.slot_of = slots_of(&job.plan);
        let under: BTreeMap<String, u32> =
            serde_json::from_str(&row.under).map_err(|e| corrupt(format!("under: {e}")))?;
        let states: Vec<HostState> = job.hosts.iter().map(HostRt::scheduler_state).collect();
        if state.is_ended() {
            // Its hosts that are down hold their places in their budgets until they succeed
            // or the job is closed; a job that left none down needs no place (a resume adds
            // it back).
            if job.closed.is_none() && states.iter().any(|s| s.is_down()) {
                self.fleet
                    .add_job(
                        &job.id,
                        &job.plan,
                        LimitOverrides::default(),
                        JobStart::Ended { states },
                        None,
                    )
                    .map_err(|e| corrupt(e.to_string()))?;
            }
            return Ok(job);
        }
        self.fleet
            .add_job(
                &job.id,
                &job.plan,
                LimitOverrides::default(),
                JobStart::Restore { states },
                Some(&under),
            )
            .map_err(|e| corrupt(e.to_string()))?;
        if job.halted {
            self.fleet
                .stop(&job.id, StopReason::Halted)
                .map_err(|e| corrupt(e.to_string()))?;
        }
        for (idx, host) in job.hosts.iter().enumerate() {
            if host.state != HState::Running {
                continue;
            }
            match (&host.task, &host.worker) {
                (Some(task), Some(worker)) => {
                    // Its worker has `worker_timeout` from now to say it still runs it.
                    self.workers
                        .entry(worker.clone())
                        .or_insert_with(|| WorkerRt {
                            connected: false,
                            ..WorkerRt::new(now)
                        })
                        .tasks
                        .insert(
                            task.clone(),
                            Held {
                                job: job.id.clone(),
                                of: TaskOf::Host(idx),
                                handed_at: now,
                            },
                        );
                }
                // Between two attempts: the retry is due now.
                _ => job.ready.push_back((idx, host.attempts + 1)),
            }
        }
        if job.has_password {
            job.state = JobState::NeedsPassword;
            self.fleet
                .pause(&job.id, true)
                .map_err(|e| corrupt(e.to_string()))?;
        }
        if let Some(limit) = job.plan.options.run_timeout {
            let elapsed = now_ms().saturating_sub(job.session_started_ms);
            let left = Duration::from_secs(limit).saturating_sub(Duration::from_millis(elapsed));
            job.run_deadline = now.checked_add(left);
        }
        job.live = true;
        Ok(job)
    }

    /// Runs the core until it is told to stop, or its channel closes. A database error stops
    /// it: from then on, what it holds in memory may not be what is on disk.
    pub fn run(mut self, commands: Receiver<Cmd>) -> Result<(), StoreError> {
        loop {
            let wait = self.next_wake().saturating_duration_since(Instant::now());
            let mut stop = None;
            match commands.recv_timeout(wait.min(TICK)) {
                Ok(cmd) => {
                    stop = self.handle(cmd);
                    let mut taken = 1;
                    while stop.is_none() && taken < MAX_BATCH {
                        match commands.try_recv() {
                            Ok(cmd) => stop = self.handle(cmd),
                            Err(_) => break,
                        }
                        taken += 1;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = Some(None),
            }
            let now = Instant::now();
            self.tick(now);
            self.serve_waiters(now, stop.is_some());
            self.flush()?;
            if let Some(done) = stop {
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return Ok(());
            }
        }
    }

    /// The soonest deadline: a waiter's, a retry's or a run timeout.
    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + TICK;
        for waiter in &self.waiters {
            wake = wake.min(waiter.deadline);
        }
        if let Some(std::cmp::Reverse(timer)) = self.retries.peek() {
            wake = wake.min(timer.due);
        }
        for id in &self.running {
            for (_, deadline) in self.jobs[id].approvals.values() {
                if let Some(deadline) = deadline {
                    wake = wake.min(*deadline);
                }
            }
        }
        wake
    }

    /// Commits the batch, then answers.
    fn flush(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        let committed = self.store.commit();
        if self.dirty {
            self.metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if let Err(error) = committed {
            let message = format!("the dispatcher cannot write its database: {error}");
            for waiter in self.waiters.drain(..) {
                let _ = waiter.reply.send(Err(ApiErr::new(503, message.clone())));
            }
            // The held answers are dropped unsent: their callers see the dispatcher fail.
            self.answers.clear();
            return Err(error);
        }
        if self.dirty {
            self.dirty = false;
            self.commits.send_modify(|n| *n += 1);
        }
        for answer in self.answers.drain(..) {
            answer();
        }
        Ok(())
    }

    fn answer<T: Send + 'static>(&mut self, reply: Reply<T>, value: Result<T, ApiErr>) {
        self.answers.push(Box::new(move || {
            let _ = reply.send(value);
        }));
    }

    /// Counts into `metrics` from now on.
    pub fn with_metrics(
        mut self,
        metrics: std::sync::Arc<crate::metrics::DispatcherMetrics>,
    ) -> Core {
        self.metrics = metrics;
        self
    }

    /// Brings the metrics' gauges up to date: jobs and hosts by state, workers, budgets.
    fn measure(&mut self) {
        use crate::metrics::{BudgetLabel, StateLabel};
        let m = &self.metrics;
        let mut jobs: BTreeMap<&str, i64> = BTreeMap::new();
        for state in [
            JobState::Running,
            JobState::Stopping,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Stopped,
        ] {
            jobs.insert(state.word(), 0);
        }
        for job in self.jobs.values() {
            *jobs.entry(job.state.word()).or_default() += 1;
        }
        for row in self.unloaded.values() {
            *jobs.entry(row.state.as_str()).or_default() += 1;
        }
        for (state, n) in jobs {
            m.jobs
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(n);
        }
        let mut hosts: BTreeMap<&str, i64> = [
            HState::Pending,
            HState::Running,
            HState::Succeeded,
            HState::Failed,
            HState::TimedOut,
            HState::Unreachable,
            HState::Lost,
            HState::Skipped,
            HState::Cancelled,
        ]
        .iter()
        .map(|s| (s.as_str(), 0))
        .collect();
        for id in &self.running {
            for host in &self.jobs[id].hosts {
                *hosts.entry(host.state.as_str()).or_default() += 1;
            }
        }
        for (state, n) in hosts {
            m.hosts
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(n);
        }
        let connected: Vec<&WorkerRt> = self.workers.values().filter(|w| w.connected).collect();
        m.workers_connected.set(connected.len() as i64);
        m.workers_capacity
            .set(connected.iter().map(|w| i64::from(w.capacity)).sum());
        m.budget_down.clear();
        m.budget_limit.clear();
        for budget in self.fleet.budget_use() {
            let label = BudgetLabel {
                fleet: budget.fleet,
                revision: budget.revision.to_string(),
                group: budget.group,
            };
            m.budget_down
                .get_or_create(&label)
                .set(i64::try_from(budget.down).unwrap_or(i64::MAX));
            m.budget_limit
                .get_or_create(&label)
                .set(i64::try_from(budget.max_parallel).unwrap_or(i64::MAX));
        }
    }

    /// Records what the operator of the command being handled had done, if it is one's.
    fn audit(&mut self, action: &str, job: Option<&str>, detail: String) {
        let Some(who) = self.actor.clone() else {
            return;
        };
        let record = AuditRecord {
            seq: 0,
            at: now_secs(),
            by: who.name,
            from: who.from,
            action: action.to_string(),
            job: job.map(str::to_string),
            detail,
        };
        self.dirty = true;
        if let Err(error) = self.store.insert_audit(&record) {
            tracing::warn!("cannot record an operator's action in the audit trail: {error}");
        }
    }

    /// Loads job `id` if it was left unloaded at start.
    fn loaded(&mut self, id: &str) {
        let Some(row) = self.unloaded.remove(id) else {
            return;
        };
        match self.reload(row, Instant::now()) {
            Ok(job) => {
                self.jobs.insert(id.to_string(), job);
            }
            Err(error) => {
                // Its row stays out: the job answers as unknown, and the error says why.
                tracing::warn!(job = %id, "cannot load job {id}: {error}");
                self.order.retain(|other| other != id);
            }
        }
    }

    /// Applies one command; `Some` when it says to stop.
    fn handle(&mut self, cmd: Cmd) -> Option<Option<oneshot::Sender<()>>> {
        if let Some(id) = cmd.job() {
            let id = id.to_string();
            self.loaded(&id);
        }
        if matches!(cmd, Cmd::Jobs { .. }) {
            let ids: Vec<String> = self.unloaded.keys().cloned().collect();
            for id in ids {
                self.loaded(&id);
            }
        }
        match cmd {
            Cmd::Audited { who, cmd } => {
                self.actor = Some(who);
                let stop = self.handle(*cmd);
                self.actor = None;
                return stop;
            }
            Cmd::Audit {
                after,
                limit,
                reply,
            } => {
                let value = self
                    .store
                    .audit(after, limit)
                    .map_err(|e| ApiErr::new(500, e.to_string()));
                self.answer(reply, value);
            }
            Cmd::Submit { job, by, reply } => {
                let before = self.order.len();
                let value = self.submit(*job, by);
                if let Ok(summary) = &value {
                    // A submission sent again made no new job: nothing new to record.
                    if self.order.len() > before {
                        let detail = format!(
                            "{}, `{}`",
                            count(summary.hosts, "host", "hosts"),
                            summary.command
                        );
                        self.audit("submit", Some(&summary.id), detail);
                    }
                }
                self.answer(reply, value);
            }
            Cmd::Jobs { reply } => {
                let mut list: Vec<JobSummary> = self
                    .order
                    .iter()
                    .map(|id| self.jobs[id].summary())
                    .collect();
                list.reverse();
                self.answer(reply, Ok(list));
            }
            Cmd::Job { id, reply } => {
                let value = self.detail(&id);
                self.answer(reply, value);
            }
            Cmd::Why { id, hosts, reply } => {
                let value = self.why(&id, hosts);
                self.answer(reply, value);
            }
            Cmd::Plan { id, reply } => {
                let value = match self.jobs.get(&id) {
                    Some(job) => Ok(job.plan.clone()),
                    None => Err(ApiErr::not_found(&id)),
                };
                self.answer(reply, value);
            }
            Cmd::Events {
                id,
                after,
                limit,
                reply,
            } => {
                let value = match self.jobs.get(&id) {
                    None => Err(ApiErr::not_found(&id)),
                    Some(job) => {
                        let ended = job.state.is_ended();
                        self.store
                            .events(&id, after, limit)
                            .map(|events| (events, ended))
                            .map_err(|e| ApiErr::new(500, e.to_string()))
                    }
                };
                self.answer(reply, value);
            }
            Cmd::Output {
                id,
                host,
                after,
                limit,
                reply,
            } => {
                let value = self.output(&id, host.as_deref(), after, limit);
                self.answer(reply, value);
            }
            Cmd::Halt { id, kill, reply } => {
                let value = self.halt(&id, kill);
                if value.is_ok() {
                    let action = if kill { "halt --kill" } else { "halt" };
                    self.audit(action, Some(&id), String::new());
                }
                self.answer(reply, value);
            }
            Cmd::Resume {
                id,
                password,
                retry,
                reply,
            } => {
                let (action, detail) = match &retry {
                    None if password.is_some() => ("resume", "with the SSH password".to_string()),
                    None => ("resume", String::new()),
                    Some(hosts) if hosts.is_empty() => ("retry", "every failed host".to_string()),
                    Some(hosts) => ("retry", hosts.join(" ")),
                };
                let value = self.resume(&id, password, retry);
                if value.is_ok() {
                    self.audit(action, Some(&id), detail);
                }
                self.answer(reply, value);
            }
            Cmd::Metrics { reply } => {
                self.measure();
                self.answer(reply, Ok(()));
            }
            Cmd::Workers { reply } => {
                let now = Instant::now();
                let list = self
                    .workers
                    .iter()
                    .map(|(name, w)| WorkerInfo {
                        name: name.clone(),
                        connected: w.connected,
                        last_seen_ms: now.duration_since(w.last_seen).as_millis() as u64,
                        capacity: w.capacity,
                        running: w.tasks.len(),
                        finished: w.finished,
                    })
                    .collect();
                self.answer(reply, Ok(list));
            }
            Cmd::Poll {
                worker,
                poll,
                reply,
            } => {
                let now = Instant::now();
                let w = self.seen(&worker, now);
                w.capacity = poll.capacity;
                w.phases = poll.features.iter().any(|f| f == FEATURE_PHASES);
                w.gates = poll.features.iter().any(|f| f == FEATURE_GATES);
                let wait = Duration::from_millis(poll.wait_ms).min(MAX_POLL_WAIT);
                self.waiters.push_back(Waiter {
                    worker,
                    free: poll.free,
                    deadline: now + wait,
                    reply,
                });
            }
            Cmd::PutOutput {
                worker,
                chunk,
                reply,
            } => {
                self.seen(&worker, Instant::now());
                let value = self.store_output(&worker, chunk);
                self.answer(reply, value);
            }
            Cmd::Results {
                worker,
                results,
                reply,
            } => {
                self.seen(&worker, Instant::now());
                let mut accepted = Vec::new();
                for result in results.results {
                    match self.result(&worker, &result) {
                        Ok(()) => accepted.push(result.task),
                        Err(error) => {
                            tracing::warn!(worker = %worker, task = %result.task, "result of task {} from worker {worker} \
                                 not applied: {}",
                                result.task, error.message
                            );
                        }
                    }
                }
                self.answer(reply, Ok(Accepted { tasks: accepted }));
            }
            Cmd::Heartbeat {
                worker,
                heartbeat,
                reply,
            } => {
                let value = self.heartbeat(&worker, heartbeat);
                self.answer(reply, Ok(value));
            }
            Cmd::Close { id, by, reply } => {
                let value = self.close(&id, &by);
                if value.is_ok() {
                    self.audit("close", Some(&id), String::new());
                }
                self.answer(reply, value);
            }
            Cmd::Approve {
                id,
                step,
                by,
                reply,
            } => {
                let value = self.approve(&id, &step, &by);
                if value.is_ok() {
                    self.audit("approve", Some(&id), step);
                }
                self.answer(reply, value);
            }
            Cmd::PushFleet {
                fleet,
                push,
                by,
                reply,
            } => {
                let value = self.push_fleet(&fleet, *push, &by);
                if let Ok(info) = &value {
                    let detail = format!("{fleet} revision {}", info.revision);
                    self.audit("fleet push", None, detail);
                }
                self.answer(reply, value);
            }
            Cmd::Fleets { reply } => {
                let value = Ok(self.fleets.current());
                self.answer(reply, value);
            }
            Cmd::FleetRevisions { fleet, reply } => {
                let value = self.fleets.revisions(&fleet);
                self.answer(reply, value);
            }
            Cmd::FleetRevision {
                fleet,
                revision,
                reply,
            } => {
                let value = self.fleets.revision(&fleet, revision);
                self.answer(reply, value);
            }
            Cmd::Shutdown { reply } => return Some(Some(reply)),
        }
        self.others_ended();
        None
    }

    /// Ends the sessions that other jobs' doings ended (a budget filled with hosts down
    /// elsewhere, that only an operator can free): the fleet scheduler says which.
    fn others_ended(&mut self) {
        for (id, changes) in self.fleet.take_ended() {
            self.note_changes(&id, &changes);
            self.check_end(&id);
        }
    }

    fn seen(&mut self, worker: &str, now: Instant) -> &mut WorkerRt {
        let w = self
            .workers
            .entry(worker.to_string())
            .or_insert_with(|| WorkerRt::new(now));
        if !w.connected {
            tracing::info!(worker = %worker, "worker {worker} connected");
        }
        w.last_seen = now;
        w.connected = true;
        w
    }

    fn job_mut(&mut self, id: &str) -> Result<&mut Job, ApiErr> {
        self.jobs.get_mut(id).ok_or_else(|| ApiErr::not_found(id))
    }

    fn detail(&self, id: &str) -> Result<JobDetail, ApiErr> {
        let job = self.jobs.get(id).ok_or_else(|| ApiErr::not_found(id))?;
        Ok(JobDetail {
            summary: job.summary(),
            host_states: job
                .hosts
                .iter()
                .zip(&job.plan.hosts)
                .map(|(host, name)| HostEntry {
                    host: name.clone(),
                    state: host.state.as_str().to_string(),
                    exit_code: host.exit_code,
                    // Of its last session, as its `host_finished` counts them.
                    attempts: match host.attempts {
                        0 => 0,
                        n => (n + 1).saturating_sub(host.first_attempt),
                    },
                    worker: host.worker.clone(),
                    message: host.message.clone(),
                    // Not kept across restarts yet; the events say it as hosts finish.
                    duration_ms: None,
                })
                .collect(),
            waiting: self.why(id, None)?,
        })
    }

    /// Why hosts of job `id` have not started: `hosts`, or the heads of its threads (only
    /// those that wait for something, while its session goes on).
    fn why(&self, id: &str, hosts: Option<Vec<String>>) -> Result<Vec<HostWhy>, ApiErr> {
        let job = self.jobs.get(id).ok_or_else(|| ApiErr::not_found(id))?;
        let in_fleet = self.fleet.has_job(id);
        let approval_since = |step: &str| {
            job.approvals.iter().find_map(|(&slot, &(since, _))| {
                let (_, spec) = job.plan.slots().nth(slot)?;
                (spec.id == step).then_some(since)
            })
        };
        let explain = |idx: usize, thread: Option<String>| {
            let host = &job.hosts[idx];
            let why = if in_fleet && host.state == HState::Pending {
                self.fleet
                    .why(id, HostIdx::new(idx))
                    .ok()
                    .and_then(|wait| Why::fleet(wait, |h| job.plan.hosts[h.index()].clone()))
                    .map(|why| why.approval(|step| approval_since(step)))
            } else {
                None
            };
            HostWhy::new(
                job.plan.hosts[idx].clone(),
                thread,
                host.state.as_str().to_string(),
                why,
            )
        };
        let Some(hosts) = hosts else {
            if !job.live {
                return Ok(Vec::new());
            }
            let mut heads = Heads::new(&job.plan);
            return Ok(heads
                .find(|h| job.hosts[h.index()].scheduler_state())
                .into_iter()
                .map(|head| {
                    explain(
                        head.host.index(),
                        head.thread.map(|t| heads.thread_name(t).to_string()),
                    )
                })
                .filter(|wait| wait.why.as_ref().is_some_and(Why::holds))
                .collect());
        };
        let index: HashMap<&str, usize> = job
            .plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        hosts
            .iter()
            .map(|name| match index.get(name.as_str()) {
                Some(&idx) => Ok(explain(idx, None)),
                None => Err(ApiErr::new(404, format!("job {id} has no host `{name}`"))),
            })
            .collect()
    }

    fn output(
        &self,
        id: &str,
        host: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<OutputRecord>, bool), ApiErr> {
        let job = self.jobs.get(id).ok_or_else(|| ApiErr::not_found(id))?;
        let (index, ended) = match host {
            None => (None, job.state.is_ended()),
            Some(name) => {
                let Some(i) = job.plan.hosts.iter().position(|h| h == name) else {
                    return Err(ApiErr::new(404, format!("job {id} has no host `{name}`")));
                };
                let host = &job.hosts[i];
                let ended = job.state.is_ended()
                    || !matches!(host.state, HState::Pending | HState::Running);
                (Some(i), ended)
            }
        };
        // A gate's lines are kept below 0 (see `output_source`): `gate STEP`, which no host
        // name can be (it has a space).
        let steps: Vec<&str> = job.plan.slots().map(|(_, spec)| spec.id.as_str()).collect();
        let label = |source: i64| match usize::try_from(source) {
            Ok(idx) => job.plan.hosts.get(idx).cloned().unwrap_or_default(),
            Err(_) => {
                let slot = usize::try_from(-(source + 1)).unwrap_or(usize::MAX);
                format!("gate {}", steps.get(slot).copied().unwrap_or("?"))
            }
        };
        let records = self
            .store
            .output(id, index, &label, after, limit)
            .map_err(|e| ApiErr::new(500, e.to_string()))?;
        Ok((records, ended))
    }

    fn submit(&mut self, submit: SubmitJob, by: String) -> Result<JobSummary, ApiErr> {
        let SubmitJob {
            plan,
            limits,
            overrides,
            transport,
            retry_delay_ms,
            password,
            submission,
        } = submit;
        if let Some(first) = submission.as_ref().and_then(|s| self.submissions.get(s)) {
            // The same request again (its answer was lost): the job it made, not another.
            let first = first.clone();
            self.loaded(&first);
            if let Some(job) = self.jobs.get(&first) {
                return Ok(job.summary());
            }
        }
        plan.validate()
            .map_err(|e| ApiErr::bad(format!("the plan is invalid: {e}")))?;
        let seal = plan.seal_state();
        if let Some(problem) = seal.problem() {
            let legacy = seal == SealState::Legacy;
            if !legacy && !overrides.iter().any(|o| o == ALLOW_EDITED) {
                return Err(ApiErr::bad(format!(
                    "{problem}; the dispatcher runs plans as `pogo plan` wrote them (submit with \
                     --allow-edited to run it as it is)"
                )));
            }
        }
        if let Some(problem) = limits.raises(&plan) {
            return Err(ApiErr::bad(format!(
                "{problem}; a job can lower the plan's limits, never raise them"
            )));
        }
        let sealed = plan.to_json();
        let plan = plan.lowered(&limits);
        let applied = Applied { limits, overrides };
        if plan.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err(ApiErr::bad("the plan has no command to run"));
        }
        if plan.hosts.is_empty() {
            return Err(ApiErr::bad("the plan has no hosts"));
        }
        if retry_delay_ms > MAX_RETRY_DELAY.as_millis() as u64 {
            return Err(ApiErr::bad(format!(
                "a retry delay of {retry_delay_ms} ms is more than the dispatcher allows ({} s)",
                MAX_RETRY_DELAY.as_secs()
            )));
        }
        let wants_password = matches!(transport, TransportSpec::Ssh { password: true, .. });
        if wants_password && password.is_none() {
            return Err(ApiErr::bad(
                "the transport logs in with a password, and none was given",
            ));
        }
        if !wants_password && password.is_some() {
            return Err(ApiErr::bad(
                "a password was given, and the transport does not log in with one",
            ));
        }
        Scheduler::new(&plan, LimitOverrides::default())
            .map_err(|e| ApiErr::bad(format!("cannot run the plan: {e}")))?;
        self.fleets
            .check_submission(&self.fleet, &plan, &applied.overrides)
            .map_err(ApiErr::bad)?;
        let now = SystemTime::now();
        let id = (0..)
            .map(|attempt: u32| format!("job-{}", RunId::new(now, random_suffix(attempt))))
            .find(|id| !self.jobs.contains_key(id))
            .unwrap_or_default();
        let started = now_ms();
        let hosts = vec![
            HostRt {
                state: HState::Pending,
                exit_code: None,
                attempts: 0,
                first_attempt: 1,
                worker: None,
                task: None,
                confirmed: false,
                message: String::new(),
                started_ms: started,
                last: None,
            };
            plan.hosts.len()
        ];
        let run_deadline = plan.options.run_timeout.and_then(deadline_in);
        let job = Job {
            id: id.clone(),
            plan,
            applied,
            transport,
            retry_delay: Duration::from_millis(retry_delay_ms),
            has_password: wants_password,
            password,
            submitted_at: now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            submitted_by: by,
            state: JobState::Running,
            reasons: Vec::new(),
            halted: false,
            killed: false,
            session_started_ms: started,
            submission,
            closed: None,
            hosts,
            live: true,
            ready: VecDeque::new(),
            last_event: 0,
            last_output: 0,
            run_deadline,
            approvals: BTreeMap::new(),
            gates: BTreeMap::new(),
            slot_of: Vec::new(),
            step_started: HashMap::new(),
        };
        let job = Job {
            slot_of: slots_of(&job.plan),
            ..job
        };
        self.fleet
            .add_job(
                &id,
                &job.plan,
                LimitOverrides::default(),
                JobStart::Fresh,
                None,
            )
            .map_err(|e| ApiErr::bad(format!("cannot run the plan: {e}")))?;
        let row = JobRow {
            plan: sealed,
            applied: serde_json::to_string(&job.applied).unwrap_or_default(),
            under: serde_json::to_string(&self.fleet.under(&id)).unwrap_or_default(),
            ..job.row()
        };
        self.store
            .insert_job(&row, job.hosts.len())
            .map_err(|e| ApiErr::new(500, e.to_string()))?;
        tracing::info!(job = %id, "job {id} submitted by {}: {}, `{}`",
            job.submitted_by,
            count(job.hosts.len(), "host", "hosts"),
            job.plan.command.as_deref().unwrap_or_default()
        );
        let event = Event::RunStarted {
            run_id: id.clone(),
            hosts: job.hosts.len(),
            command: job.plan.command.clone().unwrap_or_default(),
            resumed: false,
            at_ms: 0,
            overrides: job.applied.overrides.clone(),
            only: None,
            concurrent: None,
        };
        self.order.push(id.clone());
        self.running.push(id.clone());
        if let Some(submission) = &job.submission {
            self.submissions.insert(submission.clone(), id.clone());
        }
        self.jobs.insert(id.clone(), job);
        self.emit(&id, event);
        self.note_ended_at_start(&id);
        self.check_end(&id);
        Ok(self.jobs[&id].summary())
    }

    /// Records an event of a job.
    fn emit(&mut self, id: &str, event: Event) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.last_event += 1;
        let record = EventRecord {
            seq: job.last_event,
            event,
        };
        self.dirty = true;
        if let Err(error) = self.store.insert_event(id, &record) {
            // The commit fails too, and stops the core.
            tracing::warn!(job = %id, "cannot record an event of job {id}: {error}");
        }
    }

    fn save_host(&mut self, id: &str, idx: usize) {
        let Some(job) = self.jobs.get(id) else { return };
        let row = job.hosts[idx].row();
        self.dirty = true;
        if let Err(error) = self.store.update_host(id, idx, &row) {
            tracing::warn!(job = %id, "cannot record a host of job {id}: {error}");
        }
    }

    fn save_job(&mut self, id: &str) {
        let Some(job) = self.jobs.get(id) else { return };
        let row = job.row();
        self.dirty = true;
        if let Err(error) = self.store.update_job(
            id,
            &row.state,
            &row.reasons,
            row.halted,
            row.killed,
            row.session_started_ms,
        ) {
            tracing::warn!(job = %id, "cannot record job {id}: {error}");
        }
    }

    fn at_ms(&self, id: &str) -> u64 {
        self.jobs
            .get(id)
            .map_or(0, |job| now_ms().saturating_sub(job.session_started_ms))
    }

    /// Hands tasks to the workers that wait for some; answers those whose wait is over.
    fn serve_waiters(&mut self, now: Instant, closing: bool) {
        let mut waiting = VecDeque::new();
        while let Some(mut waiter) = self.waiters.pop_front() {
            if waiter.reply.is_closed() {
                // The worker went away (its connection closed): a task handed to it now would
                // wait, unconfirmed, for the worker timeout.
                continue;
            }
            let mut tasks = Vec::new();
            if !closing
                && self
                    .workers
                    .get(&waiter.worker)
                    .is_some_and(|w| w.connected)
            {
                while waiter.free > 0 {
                    let Some(task) = self.next_task(&waiter.worker, now) else {
                        break;
                    };
                    tasks.push(task);
                    waiter.free -= 1;
                }
            }
            if !tasks.is_empty() || waiter.deadline <= now || closing {
                self.answer(waiter.reply, Ok(Tasks { tasks }));
            } else {
                waiting.push_back(waiter);
            }
        }
        self.waiters = waiting;
        self.others_ended();
    }

    /// The next task for `worker`, marked as handed out to it: a retry that is due (its host
    /// holds its places already), else the host the fleet scheduler starts next (jobs take
    /// turns; every limit is checked at once).
    /// A worker that does not run phases gets no task of a job that has them: it would run
    /// the command alone.
    fn next_task(&mut self, worker: &str, now: Instant) -> Option<Task> {
        let phases = self.workers.get(worker).is_some_and(|w| w.phases);
        let gates = self.workers.get(worker).is_some_and(|w| w.gates);
        // Gates first: each holds a step of its job.
        if gates {
            let due = self.running.iter().find_map(|id| {
                let job = &self.jobs[id];
                let (&slot, _) = job.gates.iter().find(|(_, g)| g.task.is_none())?;
                job.active().then(|| (id.clone(), slot))
            });
            if let Some((id, slot)) = due {
                return self.hand_out_gate(&id, slot, worker, now);
            }
        }
        for i in 0..self.running.len() {
            let job = self.jobs.get_mut(&self.running[i])?;
            if !job.active() || (!phases && job.plan.options.has_phases()) {
                continue;
            }
            if let Some((host, attempt)) = job.ready.pop_front() {
                let id = self.running[i].clone();
                return Some(self.hand_out(&id, host, attempt, false, worker, now));
            }
        }
        let (id, host) = self.fleet.next_to_start()?;
        let id = id.to_string();
        if !phases && self.jobs.get(&id)?.plan.options.has_phases() {
            // The host waits for a worker that runs phases; this one gets nothing now.
            if let Err(error) = self.fleet.unstart(&id, host) {
                tracing::warn!(job = %id, "job {id}: the scheduler refused a step: {error}");
            }
            return None;
        }
        let attempt = self.jobs.get(&id)?.hosts[host.index()].attempts + 1;
        Some(self.hand_out(&id, host.index(), attempt, true, worker, now))
    }

    /// Hands out `attempt` of a host; `first`: its first of this session.
    fn hand_out(
        &mut self,
        id: &str,
        idx: usize,
        attempt: u32,
        first: bool,
        worker: &str,
        now: Instant,
    ) -> Task {
        let task = task_id(id, idx, attempt);
        let job = self.jobs.get_mut(id).expect("a job being served");
        let host = &mut job.hosts[idx];
        host.state = HState::Running;
        host.attempts = attempt;
        host.worker = Some(worker.to_string());
        host.task = Some(task.clone());
        host.confirmed = false;
        if first {
            host.first_attempt = attempt;
            host.message.clear();
            host.exit_code = None;
            if let Some(slot) = job.slot_of.get(idx).copied().flatten() {
                job.step_started.entry(slot as usize).or_insert(now);
            }
        }
        let name = job.plan.hosts[idx].clone();
        let built = Task {
            id: task.clone(),
            job: id.to_string(),
            host: name.clone(),
            attempt,
            command: job.plan.command.clone().unwrap_or_default(),
            timeout_ms: (job.plan.options.timeout > 0)
                .then(|| job.plan.options.timeout.saturating_mul(1000)),
            transport: job.transport.clone(),
            password: job.password.clone(),
            max_output: job.plan.options.max_output,
            phases: Phases::of(&job.plan.options),
            gate: None,
        };
        if let Some(w) = self.workers.get_mut(worker) {
            w.tasks.insert(
                task,
                Held {
                    job: id.to_string(),
                    of: TaskOf::Host(idx),
                    handed_at: now,
                },
            );
        }
        self.metrics.tasks_handed_out.inc();
        tracing::debug!(job = %id, task = %built.id, worker = %worker, "handed out");
        self.save_host(id, idx);
        built
    }

    /// Hands out the gate after step `slot` of job `id`, with the step's hosts and how they
    /// ended in its environment.
    fn hand_out_gate(&mut self, id: &str, slot: usize, worker: &str, now: Instant) -> Option<Task> {
        self.gate_serial += 1;
        let task = gate_task_id(id, slot, self.gate_serial);
        let job = self.jobs.get(id)?;
        let (_, spec) = job.plan.slots().nth(slot)?;
        let index: HashMap<&str, usize> = job
            .plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let scheduler = self.fleet.scheduler(id)?;
        let env = pogo_executor::gates::gate_env(id, &spec.id, &spec.hosts, |h| {
            index.get(h).map(|&i| scheduler.host_state(HostIdx::new(i)))
        });
        let built = Task {
            id: task.clone(),
            job: id.to_string(),
            host: String::new(),
            attempt: 1,
            command: spec.gate.clone().unwrap_or_default(),
            timeout_ms: None,
            transport: job.transport.clone(),
            password: None,
            max_output: job.plan.options.max_output,
            phases: Phases::default(),
            gate: Some(GateTask {
                step: spec.id.clone(),
                env,
            }),
        };
        let job = self.jobs.get_mut(id)?;
        job.gates.insert(
            slot,
            GateRun {
                task: Some((task.clone(), worker.to_string())),
                confirmed: false,
            },
        );
        if let Some(w) = self.workers.get_mut(worker) {
            w.tasks.insert(
                task,
                Held {
                    job: id.to_string(),
                    of: TaskOf::Gate(slot),
                    handed_at: now,
                },
            );
        }
        self.metrics.tasks_handed_out.inc();
        Some(built)
    }

    /// The gate of `task` is the one job `id` runs after step `slot` now, on `worker`.
    fn gate_is(&self, id: &str, slot: usize, task: &str, worker: &str) -> bool {
        self.jobs
            .get(id)
            .and_then(|job| job.gates.get(&slot))
            .and_then(|g| g.task.as_ref())
            .is_some_and(|(t, w)| t == task && w == worker)
    }

    /// The worker has the gate's task: from now on it may run.
    fn confirm_gate(&mut self, id: &str, slot: usize) {
        let Some(gate) = self
            .jobs
            .get_mut(id)
            .and_then(|job| job.gates.get_mut(&slot))
        else {
            return;
        };
        if gate.confirmed || gate.task.is_none() {
            return;
        }
        gate.confirmed = true;
        let worker = gate
            .task
            .as_ref()
            .map(|(_, w)| w.clone())
            .unwrap_or_default();
        let step = self.step_id(id, slot);
        tracing::info!(job = %id, worker = %worker, "job {id}: the gate after step {step} runs on worker {worker}");
        let at_ms = self.at_ms(id);
        self.emit(id, Event::GateStarted { step, at_ms });
    }

    /// The id of step `slot` of job `id`.
    fn step_id(&self, id: &str, slot: usize) -> String {
        self.jobs
            .get(id)
            .and_then(|job| job.plan.slots().nth(slot))
            .map(|(_, spec)| spec.id.clone())
            .unwrap_or_default()
    }

    /// A gate's task that never reached its worker, or that its worker gave up unfinished
    /// (cancelled as it stopped): the gate waits for a worker again.
    fn requeue_gate(&mut self, worker: &str, task: &str, id: &str, slot: usize) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.tasks.remove(task);
        }
        if !self.gate_is(id, slot, task, worker) {
            return;
        }
        if let Some(gate) = self
            .jobs
            .get_mut(id)
            .and_then(|job| job.gates.get_mut(&slot))
        {
            *gate = GateRun::default();
        }
    }

    /// A gate ended on its worker: passed, or failed (the job stops).
    fn gate_ended(&mut self, id: &str, slot: usize, result: &TaskResult) {
        if let Some(job) = self.jobs.get_mut(id) {
            job.gates.remove(&slot);
        }
        let step = self.step_id(id, slot);
        let at_ms = self.at_ms(id);
        if matches!(result.outcome, TaskOutcome::Exited { exit_code: 0 }) {
            tracing::info!(job = %id, "job {id}: the gate after step {step} passed");
            self.emit(
                id,
                Event::GatePassed {
                    step: step.clone(),
                    at_ms,
                },
            );
            self.await_approval(id, slot, &[]);
        } else {
            self.fail_gate(id, slot, result.message.clone());
        }
    }

    /// The gate after step `slot` did not pass (`how`, for a person): the job stops.
    fn fail_gate(&mut self, id: &str, slot: usize, how: String) {
        if let Some(job) = self.jobs.get_mut(id) {
            job.gates.remove(&slot);
        }
        let step = self.step_id(id, slot);
        tracing::warn!(job = %id, "job {id}: the gate after step {step} failed: {how}");
        let at_ms = self.at_ms(id);
        self.emit(
            id,
            Event::GateFailed {
                step: step.clone(),
                message: how.clone(),
                at_ms,
            },
        );
        self.decide_gate(id, slot, Some(StopReason::GateFailed { step, how }));
    }

    /// The worker has the task: from now on its command may run. The first attempt of a
    /// host in a session is when the host starts, for the operator.
    fn confirm(&mut self, id: &str, idx: usize) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let host = &mut job.hosts[idx];
        if host.confirmed {
            return;
        }
        host.confirmed = true;
        let first = host.attempts == host.first_attempt;
        if first {
            host.started_ms = now_ms();
        }
        let name = job.plan.hosts[idx].clone();
        self.save_host(id, idx);
        if first {
            let at_ms = self.at_ms(id);
            self.emit(id, Event::HostStarted { host: name, at_ms });
        }
    }

    /// A task that never reached its worker (never confirmed) is taken back: its command
    /// never ran, so the host is handed out again (or skipped, when the job stopped since).
    fn withdraw(&mut self, worker: &str, task: &str, held: &Held) {
        let idx = match held.of {
            TaskOf::Host(idx) => idx,
            TaskOf::Gate(slot) => return self.requeue_gate(worker, task, &held.job, slot),
        };
        if let Some(w) = self.workers.get_mut(worker) {
            w.tasks.remove(task);
        }
        let Some(job) = self.jobs.get_mut(&held.job) else {
            return;
        };
        let host = &mut job.hosts[idx];
        if host.state != HState::Running || host.task.as_deref() != Some(task) || host.confirmed {
            return;
        }
        tracing::warn!(job = %held.job, worker = %worker, task = %task, "job {}: the task of host {} never reached worker {worker}; it \
             did not run and is handed out again",
            held.job, job.plan.hosts[idx]
        );
        let id = held.job.clone();
        let attempt = host.attempts;
        if attempt != host.first_attempt {
            // A retry: the scheduler still counts the host as running, between attempts.
            host.task = None;
            if job.killed {
                let attempts = attempt - host.first_attempt;
                self.finish_host(
                    &id,
                    idx,
                    attempts,
                    FinalState::Cancelled,
                    None,
                    "cancelled before its next attempt".into(),
                );
            } else {
                job.ready.push_front((idx, attempt + 1));
                self.save_host(&id, idx);
            }
            return;
        }
        host.task = None;
        host.worker = None;
        if !job.live {
            return;
        }
        let changes = match self.fleet.unstart(&id, HostIdx::new(idx)) {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(job = %id, "job {id}: the scheduler refused a step: {error}");
                return;
            }
        };
        if changes.hosts_skipped.is_empty() {
            if let Some(job) = self.jobs.get_mut(&id) {
                job.hosts[idx].state = HState::Pending;
            }
            self.save_host(&id, idx);
        }
        self.note_changes(&id, &changes);
        self.check_end(&id);
    }

    fn store_output(&mut self, worker: &str, chunk: OutputChunk) -> Result<(), ApiErr> {
        let task = parse_task(&chunk.task)
            .ok_or_else(|| ApiErr::bad(format!("`{}` is not a task id", chunk.task)))?;
        let (id, idx, attempt) = match task {
            TaskRef::Host { job, host, attempt } => (job, host, attempt),
            TaskRef::Gate { job, slot } => {
                // Output of a gate the job no longer runs (it stopped, or the dispatcher
                // restarted since) is dropped.
                if !self.gate_is(job, slot, &chunk.task, worker) {
                    return Ok(());
                }
                let id = job.to_string();
                self.confirm_gate(&id, slot);
                let fresh = self
                    .store
                    .claim_chunk(&chunk.task, chunk.chunk)
                    .map_err(|e| ApiErr::new(500, e.to_string()))?;
                if fresh {
                    for line in &chunk.lines {
                        let source = output_source(TaskOf::Gate(slot));
                        self.add_output(&id, source, 1, &line.stream, &line.text);
                    }
                }
                return Ok(());
            }
        };
        let job = self.jobs.get(id).ok_or_else(|| ApiErr::not_found(id))?;
        let host = job
            .hosts
            .get(idx)
            .ok_or_else(|| ApiErr::bad(format!("job {id} has no host {idx}")))?;
        if attempt > host.attempts || host.worker.as_deref() != Some(worker) {
            return Err(ApiErr::new(
                403,
                format!("task {} was not handed to worker {worker}", chunk.task),
            ));
        }
        let id = id.to_string();
        if host.state == HState::Running && host.task.as_deref() == Some(chunk.task.as_str()) {
            self.confirm(&id, idx);
        }
        let fresh = self
            .store
            .claim_chunk(&chunk.task, chunk.chunk)
            .map_err(|e| ApiErr::new(500, e.to_string()))?;
        if !fresh {
            return Ok(());
        }
        for line in &chunk.lines {
            self.add_output(&id, idx as i64, attempt, &line.stream, &line.text);
        }
        Ok(())
    }

    /// Keeps a line of output of a host (`source` its index) or a gate (see
    /// [`output_source`]).
    fn add_output(&mut self, id: &str, source: i64, attempt: u32, stream: &str, text: &str) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.last_output += 1;
        let seq = job.last_output;
        self.dirty = true;
        if let Err(error) = self
            .store
            .insert_output(id, seq, source, attempt, stream, text)
        {
            tracing::warn!(job = %id, "cannot record output of job {id}: {error}");
        }
    }

    /// Applies a result once; a result delivered again is accepted and ignored.
    fn result(&mut self, worker: &str, result: &TaskResult) -> Result<(), ApiErr> {
        let (id, idx, attempt) = match parse_task(&result.task) {
            Some(TaskRef::Host { job, host, attempt }) => (job, host, attempt),
            Some(TaskRef::Gate { job, slot }) => {
                // A gate the job no longer runs: nothing to apply.
                if self.gate_is(job, slot, &result.task, worker) {
                    let id = job.to_string();
                    if result.outcome == TaskOutcome::Cancelled {
                        // Its worker stopped and killed it: another runs it.
                        self.requeue_gate(worker, &result.task, &id, slot);
                    } else {
                        self.confirm_gate(&id, slot);
                        if let Some(w) = self.workers.get_mut(worker) {
                            w.tasks.remove(&result.task);
                            w.finished += 1;
                        }
                        self.finished(result);
                        self.gate_ended(&id, slot, result);
                    }
                }
                return Ok(());
            }
            // Nothing will ever apply it: let the worker forget it.
            None => return Ok(()),
        };
        let id = id.to_string();
        let Some(job) = self.jobs.get(&id) else {
            return Ok(());
        };
        let Some(host) = job.hosts.get(idx) else {
            return Ok(());
        };
        if host.task.as_deref() != Some(result.task.as_str()) {
            // An earlier attempt's, already decided.
            return Ok(());
        }
        if host.worker.as_deref() != Some(worker) {
            return Err(ApiErr::new(
                403,
                format!("task {} was not handed to worker {worker}", result.task),
            ));
        }
        if host.state != HState::Running {
            if host.state == HState::Lost {
                // The worker came back after its host was reported lost: say what became of
                // the command, which the operator could not know.
                let text = format!(
                    "[pogo] late result from worker {worker}, after the host was reported \
                     lost: {}",
                    result.message
                );
                self.add_output(&id, idx as i64, attempt, "stderr", &text);
                let worker_rt = self.workers.get_mut(worker);
                if let Some(w) = worker_rt {
                    w.tasks.remove(&result.task);
                }
                // The host stays lost: it counted as failed, and a retry is the operator's.
                let job = self.jobs.get_mut(&id).expect("present");
                job.hosts[idx].task = Some(format!("{}#late", result.task));
                self.save_host(&id, idx);
            }
            return Ok(());
        }
        // A result means the worker had the task, whether or not it said so before.
        self.confirm(&id, idx);
        if let Some(w) = self.workers.get_mut(worker) {
            w.tasks.remove(&result.task);
            w.finished += 1;
        }
        self.finished(result);
        self.attempted(&id, idx, attempt, result);
        Ok(())
    }

    /// Counts a task that ended on its worker.
    fn finished(&self, result: &TaskResult) {
        tracing::debug!(task = %result.task, outcome = %result.message, "finished");
        self.metrics.tasks_finished.inc();
        self.metrics
            .task_seconds
            .observe(result.duration_ms as f64 / 1000.0);
    }

    /// An attempt ended: retry the host, or tell the scheduler.
    fn attempted(&mut self, id: &str, idx: usize, attempt: u32, result: &TaskResult) {
        let job = self.jobs.get_mut(id).expect("a job with a running host");
        let failed = !matches!(
            result.outcome,
            TaskOutcome::Exited { exit_code: 0 } | TaskOutcome::Cancelled
        );
        let in_session = attempt + 1 - job.hosts[idx].first_attempt;
        let would_retry = failed && in_session <= job.plan.options.retries && !job.killed;
        // After a halt no retry starts: the host ends with the attempt it had.
        if would_retry && !job.halted {
            let delay = job.retry_delay;
            let host = &mut job.hosts[idx];
            host.task = None;
            host.message = result.message.clone();
            host.last = Some(result.outcome.clone());
            if let TaskOutcome::Exited { exit_code } = result.outcome {
                host.exit_code = Some(exit_code);
            }
            let name = job.plan.hosts[idx].clone();
            self.retries.push(std::cmp::Reverse(RetryTimer {
                due: Instant::now() + delay,
                job: id.to_string(),
                host: idx,
                attempt: attempt + 1,
            }));
            self.save_host(id, idx);
            let at_ms = self.at_ms(id);
            self.emit(
                id,
                Event::HostRetrying {
                    host: name,
                    attempt: in_session + 1,
                    after: result.message.clone(),
                    delay_ms: delay.as_millis() as u64,
                    at_ms,
                },
            );
            return;
        }
        let (state, outcome) = match result.outcome {
            TaskOutcome::Exited { exit_code: 0 } => {
                (FinalState::Succeeded, Some(Outcome::Succeeded))
            }
            TaskOutcome::Exited { exit_code } => (
                FinalState::Failed { exit_code },
                Some(Outcome::Failed { exit_code }),
            ),
            TaskOutcome::TimedOut => (FinalState::TimedOut, Some(Outcome::TimedOut)),
            TaskOutcome::Unreachable => (FinalState::Unreachable, Some(Outcome::Unreachable)),
            TaskOutcome::Cancelled => (FinalState::Cancelled, None),
        };
        let message = if would_retry {
            format!("{}; not retried: the job was halted", result.message)
        } else {
            result.message.clone()
        };
        self.finish_host(
            id,
            idx,
            in_session,
            state,
            outcome,
            Said {
                message,
                phase: result.phase,
            },
        );
    }

    /// Ends the hosts of a halted job that wait for a retry: no retry starts after a halt, and
    /// each ends with the attempt it had.
    fn drop_retries(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.ready.clear();
        let waiting: Vec<_> = job
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.state == HState::Running && h.task.is_none())
            .map(|(i, h)| {
                let (state, outcome) = match (h.last.clone(), h.exit_code) {
                    (Some(TaskOutcome::TimedOut), _) => (FinalState::TimedOut, Outcome::TimedOut),
                    (Some(TaskOutcome::Unreachable), _) => {
                        (FinalState::Unreachable, Outcome::Unreachable)
                    }
                    (Some(TaskOutcome::Exited { exit_code }), _) | (_, Some(exit_code)) => (
                        FinalState::Failed { exit_code },
                        Outcome::Failed { exit_code },
                    ),
                    _ => (
                        FinalState::Failed { exit_code: 1 },
                        Outcome::Failed { exit_code: 1 },
                    ),
                };
                let message = format!("{}; not retried: the job was halted", h.message);
                (i, h.attempts + 1 - h.first_attempt, state, outcome, message)
            })
            .collect();
        self.retries.retain(|std::cmp::Reverse(t)| t.job != id);
        for (idx, attempts, state, outcome, message) in waiting {
            self.finish_host(id, idx, attempts, state, Some(outcome), message.into());
        }
    }

    /// Records a host's final state (`outcome` `None`: cancelled).
    fn finish_host(
        &mut self,
        id: &str,
        idx: usize,
        attempts: u32,
        state: FinalState,
        outcome: Option<Outcome>,
        said: Said,
    ) {
        let Said { message, phase } = said;
        if !self.jobs.get(id).is_some_and(|job| job.live) {
            return;
        }
        let host = HostIdx::new(idx);
        let changes = match outcome {
            Some(outcome) => self.fleet.finish(id, host, outcome),
            None => self.fleet.cancel(id, host),
        };
        let changes = match changes {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(job = %id, "job {id}: the scheduler refused a step: {error}");
                return;
            }
        };
        let job = self.jobs.get_mut(id).expect("a job with a running host");
        let rt = &mut job.hosts[idx];
        rt.state = HState::of(state);
        rt.exit_code = match state {
            FinalState::Failed { exit_code } => Some(exit_code),
            _ => None,
        };
        rt.message = message.clone();
        let duration_ms = now_ms().saturating_sub(rt.started_ms);
        let name = job.plan.hosts[idx].clone();
        self.save_host(id, idx);
        let at_ms = self.at_ms(id);
        self.emit(
            id,
            Event::HostFinished {
                host: name,
                result: state,
                attempts,
                duration_ms,
                message,
                phase,
                at_ms,
            },
        );
        self.note_changes(id, &changes);
        self.check_end(id);
    }

    /// Records what a scheduler step changed that a person should hear of.
    fn note_changes(&mut self, id: &str, changes: &Changes) {
        if let Some(job) = self.jobs.get_mut(id) {
            for slot in &changes.slots_completed {
                if let Some(started) = job.step_started.remove(&slot.index()) {
                    self.metrics
                        .step_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
            }
        }
        let at_ms = self.at_ms(id);
        let job = &self.jobs[id];
        let Some(scheduler) = self.fleet.scheduler(id) else {
            return;
        };
        let events = events::change_events(&job.plan.hosts, scheduler, changes, at_ms);
        let skipped: Vec<usize> = changes.hosts_skipped.iter().map(|h| h.index()).collect();
        self.mark_skipped(id, &skipped);
        for event in events {
            self.emit(id, event);
        }
        if changes.stopped.is_some() {
            self.stop_deciding(id);
        }
        for &slot in &changes.gates_due {
            self.gate_due(id, slot.index(), &Earlier::default());
        }
    }

    /// The job stopped: its gates decide nothing any more (a gate that runs is killed: its
    /// worker's next heartbeat is told to cancel it), and no approval is awaited.
    fn stop_deciding(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.approvals.clear();
        let gates = std::mem::take(&mut job.gates);
        for (task, worker) in gates.into_values().filter_map(|g| g.task) {
            if let Some(w) = self.workers.get_mut(&worker) {
                w.tasks.remove(&task);
            }
        }
    }

    /// The steps of job `id` whose gate is due and not yet run or awaited (after a restart
    /// or a resume): a gate that passed before, or an approval given before (its events say
    /// so), is not asked again; the rest runs or waits.
    fn await_gates(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(due) = self.fleet.scheduler(id).map(Scheduler::gates_due) else {
            return Ok(());
        };
        if due.is_empty() {
            return Ok(());
        }
        let mut earlier = Earlier::default();
        for record in self.store.events(id, 0, usize::MAX)? {
            match record.event {
                Event::Approved { step, .. } => earlier.approved.push(step),
                Event::GatePassed { step, .. } => earlier.passed.push(step),
                _ => {}
            }
        }
        for slot in due {
            let job = &self.jobs[id];
            if !job.approvals.contains_key(&slot.index()) && !job.gates.contains_key(&slot.index())
            {
                self.gate_due(id, slot.index(), &earlier);
            }
        }
        Ok(())
    }

    /// Every host of step `slot` of job `id` has finished: its gate runs (on a worker that
    /// runs gates), unless it passed before (`earlier`); then its approval is awaited.
    fn gate_due(&mut self, id: &str, slot: usize, earlier: &Earlier) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let Some((_, spec)) = job.plan.slots().nth(slot) else {
            return;
        };
        if spec.gate.is_some() && !earlier.passed.contains(&spec.id) {
            let step = spec.id.clone();
            job.gates.insert(slot, GateRun::default());
            tracing::info!(job = %id, "job {id}: the gate after step {step} waits for a worker");
            return;
        }
        self.await_approval(id, slot, &earlier.approved);
    }

    /// The gate after step `slot` of job `id` passed, or it has none: its approval is
    /// awaited, unless `approved` names it (given in an earlier session).
    fn await_approval(&mut self, id: &str, slot: usize, approved: &[String]) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let Some((_, spec)) = job.plan.slots().nth(slot) else {
            return;
        };
        let step = spec.id.clone();
        let within = spec.approve.and_then(|a| a.within);
        if spec.approve.is_none() || approved.contains(&step) {
            self.decide_gate(id, slot, None);
            return;
        }
        let now = Instant::now();
        let since = now_secs();
        let job = self.jobs.get_mut(id).expect("looked up above");
        job.approvals.insert(
            slot,
            (
                since,
                within.and_then(|w| now.checked_add(Duration::from_secs(w))),
            ),
        );
        let at_ms = self.at_ms(id);
        tracing::info!(job = %id, "job {id}: step {step} waits for an approval");
        self.emit(
            id,
            Event::ApprovalWaiting {
                step,
                within_ms: within.map(|w| w.saturating_mul(1000)),
                at_ms,
            },
        );
    }

    /// Decides the gate after step `slot` of job `id`: passed (`reason` None), or failed.
    fn decide_gate(&mut self, id: &str, slot: usize, reason: Option<StopReason>) {
        if let Some(job) = self.jobs.get_mut(id) {
            job.approvals.remove(&slot);
            job.gates.remove(&slot);
        }
        let decided = match reason {
            None => self.fleet.pass_gate(id, SlotIdx::new(slot)),
            Some(reason) => self.fleet.fail_gate(id, SlotIdx::new(slot), reason),
        };
        match decided {
            Ok(changes) => {
                self.note_changes(id, &changes);
                self.check_end(id);
            }
            Err(error) => {
                tracing::warn!(job = %id, "job {id}: the scheduler refused a step: {error}");
            }
        }
    }

    /// `pogo approve JOB STEP`: an operator approves a step the job waits at.
    fn approve(&mut self, id: &str, step: &str, by: &str) -> Result<JobSummary, ApiErr> {
        let job = self.jobs.get(id).ok_or_else(|| ApiErr::not_found(id))?;
        let slot = job.plan.slots().position(|(_, s)| s.id == step);
        let waiting: Vec<&str> = job
            .approvals
            .keys()
            .filter_map(|&s| job.plan.slots().nth(s).map(|(_, spec)| spec.id.as_str()))
            .collect();
        let Some(slot) = slot.filter(|s| job.approvals.contains_key(s)) else {
            let what = if waiting.is_empty() {
                "it waits for no approval now".to_string()
            } else {
                format!("it waits for: {}", waiting.join(", "))
            };
            return Err(ApiErr::conflict(format!(
                "job {id} does not wait for an approval of step `{step}`; {what}"
            )));
        };
        let at_ms = self.at_ms(id);
        tracing::info!(job = %id, "job {id}: step {step} approved by {by}");
        self.emit(
            id,
            Event::Approved {
                step: step.to_string(),
                by: by.to_string(),
                at: now_secs(),
                at_ms,
            },
        );
        self.decide_gate(id, slot, None);
        Ok(self.jobs[id].summary())
    }

    fn mark_skipped(&mut self, id: &str, skipped: &[usize]) {
        let job = self.jobs.get_mut(id).expect("a job");
        for &h in skipped {
            job.hosts[h].state = HState::Skipped;
        }
        for &h in skipped {
            self.save_host(id, h);
        }
    }

    /// A session can be over before anything starts (as in the runner): say why.
    fn note_ended_at_start(&mut self, id: &str) {
        let job = &self.jobs[id];
        let Some(scheduler) = self.fleet.scheduler(id) else {
            return;
        };
        let events = events::start_events(&job.plan.hosts, scheduler);
        let skipped: Vec<usize> = scheduler
            .host_states()
            .iter()
            .enumerate()
            .filter(|(_, state)| **state == HostState::Skipped)
            .map(|(i, _)| i)
            .collect();
        self.mark_skipped(id, &skipped);
        for event in events {
            self.emit(id, event);
        }
    }

    /// Ends the job's session when nothing runs and nothing can start.
    fn check_end(&mut self, id: &str) {
        // The fleet scheduler may have ended this job too in the step just taken (blocked by
        // a budget full of its own failed hosts): its `run_blocked` and skipped hosts are
        // told first, so that `run_finished` is the job's last event, where clients stop.
        self.others_ended();
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if !job.live {
            return;
        }
        let Some(scheduler) = self.fleet.scheduler(id) else {
            return;
        };
        let Some((result, reasons)) = events::run_result(&job.plan.hosts, scheduler) else {
            let stopping = matches!(scheduler.status(), RunStatus::Stopping(_));
            if stopping && job.state == JobState::Running {
                job.state = JobState::Stopping;
                self.save_job(id);
            }
            return;
        };
        let tally = scheduler.tally();
        job.state = match result {
            RunResult::Succeeded => JobState::Succeeded,
            RunResult::Failed => JobState::Failed,
            RunResult::Stopped => JobState::Stopped,
        };
        job.reasons = reasons;
        job.live = false;
        self.running.retain(|other| other != id);
        job.ready.clear();
        job.run_deadline = None;
        let lost = job.hosts.iter().filter(|h| h.state == HState::Lost).count();
        let event = events::finished_event(
            result,
            &tally,
            lost,
            now_ms().saturating_sub(job.session_started_ms),
        );
        tracing::info!(job = %id, "job {id} {}",
            match result {
                RunResult::Succeeded => "succeeded",
                RunResult::Failed => "ended with failed hosts",
                RunResult::Stopped => "stopped",
            }
        );
        self.save_job(id);
        self.emit(id, event);
    }

    fn halt(&mut self, id: &str, kill: bool) -> Result<JobSummary, ApiErr> {
        self.stop(id, kill, StopReason::Halted)
    }

    /// Stops starting hosts of the job, for `reason` (an operator's halt, the run timeout);
    /// `kill` also kills its running commands.
    fn stop(&mut self, id: &str, kill: bool, reason: StopReason) -> Result<JobSummary, ApiErr> {
        let job = self.job_mut(id)?;
        if job.state.is_ended() {
            return Err(ApiErr::conflict(format!(
                "job {id} has ended ({}); nothing to halt",
                job.state.word()
            )));
        }
        let first = !job.halted;
        job.halted = true;
        let mut changes = Changes::default();
        if first && job.live {
            match self.fleet.stop(id, reason) {
                Ok(stopped) => changes = stopped,
                Err(error) => {
                    tracing::warn!(job = %id, "job {id}: the scheduler refused a step: {error}")
                }
            }
        }
        let job = self.jobs.get_mut(id).expect("looked up above");
        let mut cancelled = Vec::new();
        if kill && !job.killed {
            job.killed = true;
            // Hosts between two attempts are not on any worker: cancelled here.
            cancelled = job
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.state == HState::Running && h.task.is_none())
                .map(|(i, h)| (i, h.attempts + 1 - h.first_attempt))
                .collect();
            job.ready.clear();
        }
        self.save_job(id);
        if first {
            self.note_changes(id, &changes);
        }
        for (idx, attempts) in cancelled {
            self.finish_host(
                id,
                idx,
                attempts,
                FinalState::Cancelled,
                None,
                "cancelled before its next attempt".into(),
            );
        }
        self.retries
            .retain(|std::cmp::Reverse(t)| !(t.job == id && kill));
        if !kill {
            self.drop_retries(id);
        }
        self.check_end(id);
        Ok(self.jobs[id].summary())
    }

    /// `resume` (retry `None`) or `retry` (every failed host when the list is empty).
    fn resume(
        &mut self,
        id: &str,
        password: Option<String>,
        retry: Option<Vec<String>>,
    ) -> Result<JobSummary, ApiErr> {
        let job = self.jobs.get_mut(id).ok_or_else(|| ApiErr::not_found(id))?;
        if job.state == JobState::NeedsPassword && retry.is_none() {
            let Some(password) = password else {
                return Err(ApiErr::bad(format!(
                    "job {id} logs in with a password, which the dispatcher keeps in memory \
                     only and lost when it restarted; give it again (pogo resume {id} \
                     --password)"
                )));
            };
            job.password = Some(password);
            job.state = if job.halted {
                JobState::Stopping
            } else {
                JobState::Running
            };
            tracing::info!(job = %id, "job {id} has its password again and goes on");
            if let Err(error) = self.fleet.pause(id, false) {
                tracing::warn!(job = %id, "job {id}: the scheduler refused a step: {error}");
            }
            return Ok(self.jobs[id].summary());
        }
        if !job.state.is_ended() {
            return Err(ApiErr::conflict(format!(
                "job {id} is {}; resume and retry continue a job that has ended (halt it \
                 first, or wait for it to end)",
                job.state.word()
            )));
        }
        if let Some((by, _)) = &job.closed {
            return Err(ApiErr::conflict(format!(
                "job {id} was closed by {by}: its hosts count in no budget any more, and it \
                 cannot run again; submit its plan as a new job"
            )));
        }
        if job.has_password {
            match password {
                Some(password) => job.password = Some(password),
                None if job.password.is_some() => {}
                None => {
                    return Err(ApiErr::bad(format!(
                        "job {id} logs in with a password, which the dispatcher no longer \
                         holds; give it again (--password)"
                    )))
                }
            }
        }
        let mut states: Vec<HostState> = job.hosts.iter().map(HostRt::scheduler_state).collect();
        let policy = match &retry {
            Some(names) if !names.is_empty() => {
                let chosen = named_retry(
                    &job.plan.hosts,
                    &states,
                    names,
                    &format!("job {id}"),
                    "pogo resume",
                )
                .map_err(ApiErr::bad)?;
                for i in chosen {
                    states[i] = HostState::Pending;
                }
                // The other failed hosts stay down, and failures count from the retry: the
                // failures of hosts it leaves alone must not stop it before it starts.
                FailedHosts::StayDown
            }
            Some(_) => FailedHosts::Retry,
            None => FailedHosts::StayFailed,
        };
        let to_run = states
            .iter()
            .zip(&job.hosts)
            .filter(|(s, h)| match policy {
                FailedHosts::Retry => h.state != HState::Succeeded,
                FailedHosts::StayFailed | FailedHosts::StayDown => {
                    matches!(
                        s,
                        HostState::Pending | HostState::Skipped | HostState::Cancelled
                    )
                }
            })
            .count();
        if to_run == 0 {
            return Err(ApiErr::conflict(format!(
                "nothing to {} in job {id}: {}",
                if retry.is_some() { "retry" } else { "resume" },
                if job.hosts.iter().all(|h| h.state == HState::Succeeded) {
                    "every host succeeded"
                } else {
                    "every host that did not succeed failed; `pogo retry` runs them again"
                }
            )));
        }
        let scheduler = Scheduler::resume(&job.plan, LimitOverrides::default(), &states, policy)
            .map_err(|e| ApiErr::bad(format!("cannot resume job {id}: {e}")))?;
        // Nothing could start: say why (a group full of failed hosts that stay down, a slot
        // that cannot complete) rather than record a session that skips what was asked for.
        if let Some((_, reasons)) = events::run_result(&job.plan.hosts, &scheduler) {
            if !reasons.is_empty() {
                return Err(ApiErr::conflict(format!(
                    "cannot {} job {id}: nothing could start: {}",
                    if retry.is_some() { "retry" } else { "resume" },
                    reasons.join("; ")
                )));
            }
        }
        // Its new session runs under the fleets' current revisions.
        let resumed = if self.fleet.has_job(id) {
            self.fleet
                .resume(id, &job.plan, LimitOverrides::default(), &states, policy)
        } else {
            self.fleet.add_job(
                id,
                &job.plan,
                LimitOverrides::default(),
                JobStart::Resume {
                    previous: states,
                    failed: policy,
                },
                None,
            )
        };
        resumed.map_err(|e| ApiErr::bad(format!("cannot resume job {id}: {e}")))?;
        let under = serde_json::to_string(&self.fleet.under(id)).unwrap_or_default();
        if let Err(error) = self.store.update_under(id, &under) {
            tracing::warn!(job = %id, "cannot record job {id}: {error}");
        }
        let job = self.jobs.get_mut(id).expect("looked up above");
        // Hosts that run again start from pending, as in the new scheduler.
        for (host, state) in job.hosts.iter_mut().zip(scheduler.host_states()) {
            if *state == HostState::Pending {
                host.state = HState::Pending;
                host.task = None;
            }
        }
        job.live = true;
        job.state = JobState::Running;
        job.reasons.clear();
        job.halted = false;
        job.killed = false;
        job.session_started_ms = now_ms();
        job.run_deadline = job.plan.options.run_timeout.and_then(deadline_in);
        let pending: Vec<usize> = job
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.state == HState::Pending)
            .map(|(i, _)| i)
            .collect();
        let event = Event::RunStarted {
            run_id: id.to_string(),
            hosts: job.hosts.len(),
            command: job.plan.command.clone().unwrap_or_default(),
            resumed: true,
            at_ms: 0,
            overrides: job.applied.overrides.clone(),
            only: None,
            concurrent: None,
        };
        // Back among the running jobs, in the order of submission.
        let rank = |id: &str| self.order.iter().position(|o| o == id);
        let at = self
            .running
            .iter()
            .position(|other| rank(other) > rank(id))
            .unwrap_or(self.running.len());
        self.running.insert(at, id.to_string());
        for idx in pending {
            self.save_host(id, idx);
        }
        self.save_job(id);
        self.emit(id, event);
        self.note_ended_at_start(id);
        // A step whose approval did not come in time, or whose hosts all ran before: its
        // approval is awaited again (or, given before, not asked again).
        self.await_gates(id)
            .map_err(|e| ApiErr::new(500, e.to_string()))?;
        self.check_end(id);
        tracing::info!(job = %id, "job {id} {}",
            if retry.is_some() {
                "retried"
            } else {
                "resumed"
            }
        );
        Ok(self.jobs[id].summary())
    }

    /// Closes an ended job: its hosts left failed (or timed out, unreachable, lost,
    /// cancelled) are down in no budget any more. The operator has looked at them.
    fn close(&mut self, id: &str, by: &str) -> Result<JobSummary, ApiErr> {
        let job = self.jobs.get(id).ok_or_else(|| ApiErr::not_found(id))?;
        if job.closed.is_some() {
            return Ok(job.summary());
        }
        if !job.state.is_ended() {
            return Err(ApiErr::conflict(format!(
                "job {id} is {}; a job is closed once it has ended (halt it, and close it when \
                 its running hosts have finished)",
                job.state.word()
            )));
        }
        if self.fleet.has_job(id) {
            self.fleet
                .close(id)
                .map_err(|e| ApiErr::conflict(format!("cannot close job {id}: {e}")))?;
        }
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.store
            .close_job(id, by, at)
            .map_err(|e| ApiErr::new(500, e.to_string()))?;
        self.dirty = true;
        let down = job.hosts.iter().filter(|h| h.state.retryable()).count();
        tracing::info!(job = %id, "job {id} closed by {by}: {} no longer down in its budgets",
            count(down, "host", "hosts")
        );
        let job = self.jobs.get_mut(id).expect("looked up above");
        job.closed = Some((by.to_string(), at));
        Ok(job.summary())
    }

    /// A new revision of a fleet's config: from now on its budgets hold every job (running
    /// jobs keep the revision they started under as well).
    fn push_fleet(
        &mut self,
        fleet: &str,
        push: PushFleet,
        by: &str,
    ) -> Result<FleetRevisionInfo, ApiErr> {
        let (info, row) = self.fleets.push(&mut self.fleet, fleet, push, by)?;
        if let Some(row) = row {
            self.store
                .insert_fleet(&row)
                .map_err(|e| ApiErr::new(500, e.to_string()))?;
            self.dirty = true;
            tracing::info!(
                "fleet {fleet} revision {} pushed by {by}: {}, {}",
                info.revision,
                count(info.hosts, "host", "hosts"),
                count(info.budgets, "budget", "budgets")
            );
        }
        Ok(info)
    }

    fn heartbeat(&mut self, worker: &str, heartbeat: Heartbeat) -> HeartbeatReply {
        let now = Instant::now();
        let grace = self.grace();
        self.seen(worker, now).capacity = heartbeat.capacity;
        let w = &self.workers[worker];
        let mut cancel = Vec::new();
        let mut confirm = Vec::new();
        for task in &heartbeat.running {
            match w.tasks.get(task) {
                // Not this worker's (any more): taken back, or already decided.
                None => cancel.push(task.clone()),
                Some(held) => {
                    let killed = self.jobs.get(&held.job).is_some_and(|j| j.killed);
                    if killed {
                        // Killed: a command that runs is killed; one that has not started
                        // never will (its task is then taken back, unconfirmed).
                        cancel.push(task.clone());
                    } else if !self.confirmed(held) {
                        confirm.push((held.job.clone(), held.of));
                    }
                }
            }
        }
        let running: HashSet<&str> = heartbeat.running.iter().map(String::as_str).collect();
        let missing: Vec<(String, Held)> = w
            .tasks
            .iter()
            .filter(|(task, held)| {
                !running.contains(task.as_str()) && now.duration_since(held.handed_at) > grace
            })
            .map(|(task, held)| (task.clone(), held.clone()))
            .collect();
        for (job, of) in confirm {
            match of {
                TaskOf::Host(idx) => self.confirm(&job, idx),
                TaskOf::Gate(slot) => self.confirm_gate(&job, slot),
            }
        }
        for (task, held) in missing {
            self.gone(
                worker,
                &task,
                &held,
                format!(
                    "lost: worker {worker} no longer has it (the worker restarted); the command \
                     may or may not have run"
                ),
            );
        }
        HeartbeatReply {
            cancel,
            interval_ms: self.timing.heartbeat_interval.as_millis() as u64,
        }
    }

    /// A task its worker does not have: taken back when the worker never confirmed it, lost
    /// when it did.
    fn gone(&mut self, worker: &str, task: &str, held: &Held, message: String) {
        if self.confirmed(held) {
            self.lose(worker, task, held, message);
        } else {
            self.withdraw(worker, task, held);
        }
    }

    /// Whether the worker a task was handed to said it has it.
    fn confirmed(&self, held: &Held) -> bool {
        let Some(job) = self.jobs.get(&held.job) else {
            return false;
        };
        match held.of {
            TaskOf::Host(idx) => job.hosts.get(idx).is_some_and(|h| h.confirmed),
            TaskOf::Gate(slot) => job.gates.get(&slot).is_some_and(|g| g.confirmed),
        }
    }

    /// How long a task may be missing from its worker's heartbeat (on its way to the worker)
    /// before it counts as lost.
    fn grace(&self) -> Duration {
        (self.timing.heartbeat_interval * 2).max(Duration::from_secs(5))
    }

    /// A task's worker does not run it (any more): its host is lost.
    fn lose(&mut self, worker: &str, task: &str, held: &Held, message: String) {
        let idx = match held.of {
            TaskOf::Host(idx) => idx,
            TaskOf::Gate(slot) => {
                // A gate that may or may not have run decides nothing: the job stops, and a
                // resume runs it again.
                if self.gate_is(&held.job, slot, task, worker) {
                    if let Some(w) = self.workers.get_mut(worker) {
                        w.tasks.remove(task);
                    }
                    let how = message.replace("the command", "the gate");
                    self.metrics.tasks_lost.inc();
                    self.fail_gate(&held.job, slot, how);
                }
                return;
            }
        };
        if let Some(w) = self.workers.get_mut(worker) {
            w.tasks.remove(task);
        }
        let Some(job) = self.jobs.get(&held.job) else {
            return;
        };
        let host = &job.hosts[idx];
        if host.state != HState::Running || host.task.as_deref() != Some(task) {
            return;
        }
        self.metrics.tasks_lost.inc();
        tracing::warn!(job = %held.job, task = %task, "job {}: host {} is lost ({message})",
            held.job, job.plan.hosts[idx]
        );
        let attempts = host.attempts + 1 - host.first_attempt;
        let id = held.job.clone();
        self.finish_host(
            &id,
            idx,
            attempts,
            FinalState::Lost,
            Some(Outcome::Failed {
                exit_code: LOST_EXIT_CODE,
            }),
            message.into(),
        );
    }

    /// Due retries, run timeouts and workers that stopped heartbeating.
    fn tick(&mut self, now: Instant) {
        while let Some(std::cmp::Reverse(timer)) = self.retries.peek() {
            if timer.due > now {
                break;
            }
            let std::cmp::Reverse(timer) = self.retries.pop().expect("peeked");
            if let Some(job) = self.jobs.get_mut(&timer.job) {
                if job.live && !job.killed {
                    job.ready.push_back((timer.host, timer.attempt));
                }
            }
        }
        let expired: Vec<String> = self
            .running
            .iter()
            .filter(|id| {
                let job = &self.jobs[*id];
                !job.killed && job.run_deadline.is_some_and(|d| d <= now)
            })
            .cloned()
            .collect();
        for id in expired {
            let _ = self.stop(&id, true, StopReason::RunTimeout);
        }
        let lapsed: Vec<(String, usize)> = self
            .running
            .iter()
            .flat_map(|id| {
                self.jobs[id]
                    .approvals
                    .iter()
                    .filter(|(_, (_, deadline))| deadline.is_some_and(|d| d <= now))
                    .map(move |(&slot, _)| (id.clone(), slot))
            })
            .collect();
        for (id, slot) in lapsed {
            let Some((_, spec)) = self.jobs[&id].plan.slots().nth(slot) else {
                continue;
            };
            let step = spec.id.clone();
            let at_ms = self.at_ms(&id);
            self.emit(
                &id,
                Event::ApprovalExpired {
                    step: step.clone(),
                    at_ms,
                },
            );
            self.decide_gate(&id, slot, Some(StopReason::ApprovalExpired { step }));
        }
        self.others_ended();
        let timeout = self.timing.worker_timeout;
        let gone: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| w.connected || !w.tasks.is_empty())
            .filter(|(_, w)| now.duration_since(w.last_seen) > timeout)
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            let w = self.workers.get_mut(&name).expect("listed");
            w.connected = false;
            let silent = now.duration_since(w.last_seen).as_secs();
            let tasks: Vec<(String, Held)> = w.tasks.drain().collect();
            tracing::warn!(worker = %name, "worker {name} stopped heartbeating ({silent}s); {} lost",
                count(tasks.len(), "running task", "running tasks")
            );
            let mut tasks = tasks;
            tasks.sort_by(|a, b| a.0.cmp(&b.0));
            for (task, held) in tasks {
                self.gone(
                    &name,
                    &task,
                    &held,
                    format!(
                        "lost: worker {name} stopped heartbeating ({silent}s without a word) \
                         while it ran the command; the command may or may not have run"
                    ),
                );
            }
        }
    }
}

/// What passed or was given in a job's earlier sessions (its events), not asked again.
#[derive(Debug, Default)]
struct Earlier {
    /// Steps whose gate passed.
    passed: Vec<String>,
    /// Steps approved.
    approved: Vec<String>,
}

/// `1 host`, `2 hosts`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The HTTP side's hold on the core.
#[derive(Clone)]
pub struct CoreHandle {
    /// The running core's channel: a dispatcher that leads again runs a new core.
    tx: std::sync::Arc<std::sync::RwLock<Sender<Cmd>>>,
}

impl CoreHandle {
    pub fn new(tx: Sender<Cmd>) -> CoreHandle {
        CoreHandle {
            tx: std::sync::Arc::new(std::sync::RwLock::new(tx)),
        }
    }

    /// From now on, commands go to the core on `tx`.
    pub fn replace(&self, tx: Sender<Cmd>) {
        *self.tx.write().unwrap_or_else(|e| e.into_inner()) = tx;
    }

    fn sender(&self) -> Sender<Cmd> {
        self.tx.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends an operator's command, to be recorded in the audit trail as `who`'s when it
    /// does what it was asked, and waits for its answer.
    pub async fn call_as<T>(
        &self,
        who: Who,
        make: impl FnOnce(Reply<T>) -> Cmd,
    ) -> Result<T, ApiErr> {
        self.call(|reply| Cmd::Audited {
            who,
            cmd: Box::new(make(reply)),
        })
        .await
    }

    /// Sends a command and waits for its answer.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, ApiErr> {
        let (reply, answer) = oneshot::channel();
        self.sender().send(make(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub fn send(&self, cmd: Cmd) -> bool {
        self.sender().send(cmd).is_ok()
    }
}

fn stopped() -> ApiErr {
    ApiErr::new(503, "the dispatcher is stopping")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pogo_model::Amount;

    mod fleets;

    #[path = "../../../../test-support/postgres_server.rs"]
    mod postgres_server;

    use super::super::store::postgres::{Database, PostgresStore};
    use super::super::store::SqliteStore;
    use rstest::rstest;

    /// The store backend a test runs on: every test of the core that does not open a SQLite
    /// file itself runs on both.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Sqlite,
        Postgres,
    }

    /// Runs `work` on a thread of its own: the PostgreSQL client blocks on a runtime of its
    /// own, which cannot run inside a test's.
    fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| scope.spawn(work).join().unwrap())
    }

    /// A CA and a server certificate for 127.0.0.1 (the deployment's own maker does).
    fn ca_and_server(dir: &std::path::Path) -> (std::path::PathBuf, String, String) {
        use crate::certs::{self, InitOptions, Role, Validity};
        certs::init(
            dir,
            &InitOptions {
                dispatcher_names: vec!["127.0.0.1".into()],
                workers: vec![],
                operators: vec![],
                validity: Validity::days_from_now(1),
            },
        )
        .unwrap();
        let issued = certs::issued_paths(dir, Role::Dispatcher, "dispatcher");
        (
            dir.join(certs::CA_CERT),
            std::fs::read_to_string(issued.cert).unwrap(),
            std::fs::read_to_string(issued.key).unwrap(),
        )
    }

    #[test]
    fn tls_to_the_database_verifies_the_server_with_the_given_ca_only() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = ca_and_server(&dir.path().join("right"));
        let (other_ca, _, _) = ca_and_server(&dir.path().join("other"));
        let server = postgres_server::PostgresServer::start_tls(&cert, &key);
        let plain = server.database();
        let with = |mode: &str, root: Option<&std::path::Path>| {
            let mut url = plain.replace("sslmode=disable", &format!("sslmode={mode}"));
            if let Some(root) = root {
                url.push_str(&format!("&sslrootcert={}", root.display()));
            }
            Database::parse(&url).unwrap()
        };
        let store = PostgresStore::open(&with("require", Some(&ca))).unwrap();
        assert!(store.encrypted(), "the connection is encrypted");
        let refused = PostgresStore::open(&with("require", Some(&other_ca)))
            .err()
            .expect("a server certificate of another CA is refused");
        assert!(refused.to_string().contains("certificate"), "{refused}");
        let Err(StoreError::Open { reason, .. }) = with("require", None).connect() else {
            panic!("TLS without a CA to check the server with is refused");
        };
        assert!(reason.contains("sslrootcert"), "{reason}");
    }

    #[test]
    fn a_database_of_a_newer_schema_is_refused_and_one_of_the_same_opens() {
        let server = postgres_server::PostgresServer::shared();
        let database = Database::parse(&server.database()).unwrap();
        drop(PostgresStore::open(&database).unwrap());
        let mut client = database.connect().unwrap();
        client
            .execute(
                "UPDATE pogo_schema SET version = $1",
                &[&(super::super::store::SCHEMA_VERSION + 1)],
            )
            .unwrap();
        match PostgresStore::open(&database) {
            Err(StoreError::Version { found, .. }) => {
                assert_eq!(found, super::super::store::SCHEMA_VERSION + 1)
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a newer schema opened"),
        }
        client
            .execute(
                "UPDATE pogo_schema SET version = $1",
                &[&super::super::store::SCHEMA_VERSION],
            )
            .unwrap();
        let store = PostgresStore::open(&database).unwrap();
        assert!(super::super::store::Backend::jobs(&store)
            .unwrap()
            .is_empty());
    }

    struct Rig {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        /// Its PostgreSQL database, on the PostgreSQL backend.
        database: Option<Database>,
        handle: CoreHandle,
        thread: Option<std::thread::JoinHandle<Result<(), StoreError>>>,
    }

    const TIMING: Timing = Timing {
        heartbeat_interval: Duration::from_millis(100),
        worker_timeout: Duration::from_millis(600),
    };

    impl Rig {
        fn new(kind: Kind) -> Rig {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            let database = (kind == Kind::Postgres).then(|| {
                let url = off_runtime(|| postgres_server::PostgresServer::shared().database());
                Database::parse(&url).unwrap()
            });
            let mut rig = Rig {
                _dir: dir,
                path,
                database,
                handle: CoreHandle::new(std::sync::mpsc::channel().0),
                thread: None,
            };
            rig.start();
            rig
        }

        /// The store as the dispatcher opens it.
        fn open_store(&self) -> Store {
            match &self.database {
                None => Box::new(SqliteStore::open(&self.path).unwrap()),
                Some(database) => off_runtime(|| Box::new(PostgresStore::open(database).unwrap())),
            }
        }

        fn start(&mut self) {
            let store = self.open_store();
            let commits = std::sync::Arc::new(watch::channel(0).0);
            let core = off_runtime(|| Core::load(store, TIMING, commits).unwrap());
            let (tx, rx) = std::sync::mpsc::channel();
            self.handle = CoreHandle::new(tx);
            self.thread = Some(std::thread::spawn(move || core.run(rx)));
        }

        /// Stops the core as a crash would leave it: what was committed stays.
        async fn restart(&mut self) {
            let (done, stopped) = oneshot::channel();
            self.handle.send(Cmd::Shutdown { reply: done });
            stopped.await.unwrap();
            self.thread.take().unwrap().join().unwrap().unwrap();
            self.start();
        }

        async fn submit(&self, plan: Plan) -> JobSummary {
            self.send(submission(plan, Default::default(), &[])).await
        }

        async fn send(&self, job: SubmitJob) -> JobSummary {
            self.try_send(job).await.unwrap()
        }

        async fn try_send(&self, job: SubmitJob) -> Result<JobSummary, ApiErr> {
            self.handle
                .call(|reply| Cmd::Submit {
                    job: Box::new(job),
                    by: "alice".into(),
                    reply,
                })
                .await
        }

        /// Takes tasks and confirms them, as a worker does before it runs them.
        async fn poll(&self, worker: &str, free: u32) -> Vec<Task> {
            let tasks = self.take(worker, free).await;
            if !tasks.is_empty() {
                let reply = self
                    .heartbeat(worker, &tasks.iter().collect::<Vec<_>>())
                    .await;
                assert!(reply.cancel.is_empty(), "{:?}", reply.cancel);
            }
            tasks
        }

        /// Takes tasks without confirming them (their answer never reached the worker).
        async fn take(&self, worker: &str, free: u32) -> Vec<Task> {
            let poll = Poll {
                free,
                capacity: free,
                wait_ms: 0,
                features: vec![FEATURE_PHASES.to_string(), FEATURE_GATES.to_string()],
            };
            let worker = worker.to_string();
            self.handle
                .call(|reply| Cmd::Poll {
                    worker,
                    poll,
                    reply,
                })
                .await
                .unwrap()
                .tasks
        }

        async fn report(&self, worker: &str, task: &Task, exit_code: i32) -> Vec<String> {
            let results = Results {
                results: vec![TaskResult {
                    task: task.id.clone(),
                    outcome: TaskOutcome::Exited { exit_code },
                    duration_ms: 1,
                    message: format!("exit code {exit_code}"),
                    chunks: 0,
                    phase: None,
                }],
            };
            let worker = worker.to_string();
            self.handle
                .call(|reply| Cmd::Results {
                    worker,
                    results,
                    reply,
                })
                .await
                .unwrap()
                .tasks
        }

        /// Says which tasks `worker` has: every task it runs must be listed.
        async fn heartbeat(&self, worker: &str, running: &[&Task]) -> HeartbeatReply {
            let heartbeat = Heartbeat {
                capacity: 4,
                running: running.iter().map(|t| t.id.clone()).collect(),
            };
            let worker = worker.to_string();
            self.handle
                .call(|reply| Cmd::Heartbeat {
                    worker,
                    heartbeat,
                    reply,
                })
                .await
                .unwrap()
        }

        async fn job(&self, id: &str) -> JobDetail {
            let id = id.to_string();
            self.handle
                .call(|reply| Cmd::Job { id, reply })
                .await
                .unwrap()
        }

        async fn events(&self, id: &str) -> Vec<EventRecord> {
            let id = id.to_string();
            self.handle
                .call(|reply| Cmd::Events {
                    id,
                    after: 0,
                    limit: 10_000,
                    reply,
                })
                .await
                .unwrap()
                .0
        }
    }

    fn hosts_of(tasks: &[Task]) -> Vec<&str> {
        tasks.iter().map(|t| t.host.as_str()).collect()
    }

    #[rstest]
    #[tokio::test]
    async fn a_group_limit_holds_across_workers_and_results_apply_once(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let plan = Plan::sketch("a b c d").with_group("pair", Amount::number(2), "a b c d");
        let job = rig.submit(plan).await;
        let first = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&first), ["a", "b"]);
        // The group is full: the second worker gets nothing.
        assert!(rig.poll("w2", 4).await.is_empty());
        assert_eq!(rig.report("w1", &first[0], 0).await, [first[0].id.clone()]);
        // Delivered again: accepted, and not applied twice.
        assert_eq!(rig.report("w1", &first[0], 0).await, [first[0].id.clone()]);
        let second = rig.poll("w2", 4).await;
        assert_eq!(hosts_of(&second), ["c"]);
        rig.report("w1", &first[1], 0).await;
        rig.report("w2", &second[0], 0).await;
        let third = rig.poll("w2", 4).await;
        assert_eq!(hosts_of(&third), ["d"]);
        rig.report("w2", &third[0], 0).await;
        let detail = rig.job(&job.id).await;
        assert_eq!(detail.summary.state, JobState::Succeeded);
        assert_eq!(detail.summary.counts.succeeded, 4);
        let finished = rig
            .events(&job.id)
            .await
            .iter()
            .filter(|r| matches!(r.event, Event::HostFinished { .. }))
            .count();
        assert_eq!(finished, 4);
    }

    #[rstest]
    #[tokio::test]
    async fn a_worker_that_does_not_run_phases_gets_no_task_of_a_job_with_phases(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let mut plan = Plan::sketch("a b");
        plan.options.verify = Some(pogo_model::Verify {
            command: "curl -fs localhost/healthz".into(),
            within: 30,
            every: 2,
        });
        let job = rig
            .send(submission(plan, Default::default(), &[ALLOW_EDITED]))
            .await;
        // A worker of the previous release says nothing of phases: it would run the command
        // alone, so it gets nothing, again and again, and the hosts stay pending.
        for _ in 0..3 {
            let poll = Poll {
                free: 4,
                capacity: 4,
                wait_ms: 0,
                features: Vec::new(),
            };
            let old = rig
                .handle
                .call(|reply| Cmd::Poll {
                    worker: "old".into(),
                    poll,
                    reply,
                })
                .await
                .unwrap();
            assert!(old.tasks.is_empty(), "{:?}", old.tasks);
        }
        let detail = rig.job(&job.id).await;
        assert!(detail.host_states.iter().all(|h| h.state == "pending"));
        // A worker that runs phases gets both hosts, with the check.
        let tasks = rig.poll("w1", 4).await;
        assert_eq!(tasks.len(), 2);
        let verify = tasks[0].phases.verify.as_ref().expect("the check travels");
        assert_eq!((verify.within_ms, verify.every_ms), (30_000, 2_000));
        for task in &tasks {
            rig.report("w1", task, 0).await;
        }
        assert_eq!(rig.job(&job.id).await.summary.state, JobState::Succeeded);
    }

    /// A plan of hosts `a b c`: `a` then `b` in thread `t`, with a gate after `a`'s step;
    /// `c` in no step.
    fn gated_plan() -> Plan {
        Plan::sketch("a b c")
            .with_thread("t", &["a", "b"])
            .with_gate("t.0", "./check.sh")
    }

    /// Polls as a worker of the previous release would: no phases, no gates.
    async fn poll_as_old_worker(rig: &Rig) -> Vec<Task> {
        let poll = Poll {
            free: 4,
            capacity: 4,
            wait_ms: 0,
            features: Vec::new(),
        };
        rig.handle
            .call(|reply| Cmd::Poll {
                worker: "old".into(),
                poll,
                reply,
            })
            .await
            .unwrap()
            .tasks
    }

    async fn event_names(rig: &Rig, job: &str) -> Vec<String> {
        rig.events(job)
            .await
            .iter()
            .map(|r| serde_json::to_value(&r.event).unwrap()["event"].to_string())
            .map(|name| name.trim_matches('"').to_string())
            .collect()
    }

    /// Runs `a` and `c` of [`gated_plan`] on `w1`; returns the job.
    async fn up_to_the_gate(rig: &Rig) -> String {
        let job = rig.submit(gated_plan()).await;
        let first = rig.poll("w1", 10).await;
        assert_eq!(
            hosts_of(&first),
            ["a", "c"],
            "c is in no step: it does not wait"
        );
        for task in &first {
            rig.report("w1", task, 0).await;
        }
        job.id
    }

    #[rstest]
    #[tokio::test]
    async fn a_gate_runs_on_a_worker_that_runs_gates_once_its_step_ended_and_holds_what_follows(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let job = up_to_the_gate(&rig).await;
        assert!(
            poll_as_old_worker(&rig).await.is_empty(),
            "a worker that runs no gates gets neither the gate nor b"
        );
        let gate = rig.poll("w1", 10).await;
        assert_eq!(gate.len(), 1, "the gate alone, b waits for it: {gate:?}");
        let gate = &gate[0];
        let run = gate.gate.as_ref().expect("a gate task");
        assert_eq!(
            (run.step.as_str(), gate.command.as_str(), gate.host.as_str()),
            ("t.0", "./check.sh", "")
        );
        let env: HashMap<&str, &str> = run
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env["POGO_STEP_RESULTS"], "a succeeded");
        assert_eq!(env["POGO_STEP_FAILED"], "0");
        assert_eq!(env["POGO_RUN_ID"], job);
        assert!(rig.poll("w1", 10).await.is_empty(), "b waits for the gate");

        // Its output is the job's, under `gate STEP`.
        let chunk = OutputChunk {
            task: gate.id.clone(),
            chunk: 1,
            lines: vec![OutputLine {
                stream: "stdout".into(),
                text: "error rate 0.1%".into(),
            }],
        };
        rig.handle
            .call(|reply| Cmd::PutOutput {
                worker: "w1".into(),
                chunk,
                reply,
            })
            .await
            .unwrap();
        let id = job.clone();
        let (lines, _) = rig
            .handle
            .call(|reply| Cmd::Output {
                id,
                host: None,
                after: 0,
                limit: 100,
                reply,
            })
            .await
            .unwrap();
        let gate_lines: Vec<(&str, &str)> = lines
            .iter()
            .filter(|l| l.host.starts_with("gate"))
            .map(|l| (l.host.as_str(), l.text.as_str()))
            .collect();
        assert_eq!(gate_lines, [("gate t.0", "error rate 0.1%")]);

        rig.report("w1", gate, 0).await;
        let next = rig.poll("w1", 10).await;
        assert_eq!(hosts_of(&next), ["b"]);
        rig.report("w1", &next[0], 0).await;
        assert_eq!(rig.job(&job).await.summary.state, JobState::Succeeded);
        let names = event_names(&rig, &job).await;
        let at = |name: &str| names.iter().position(|n| n == name).unwrap_or(usize::MAX);
        assert!(at("gate_started") < at("gate_passed"), "{names:?}");
        assert_eq!(names.iter().filter(|n| *n == "host_started").count(), 3);
    }

    #[rstest]
    #[tokio::test]
    async fn a_failed_gate_stops_the_job_and_a_resume_runs_it_again(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let job = up_to_the_gate(&rig).await;
        let gate = rig.poll("w1", 10).await;
        rig.report("w1", &gate[0], 3).await;
        let summary = rig.job(&job).await.summary;
        assert_eq!(summary.state, JobState::Stopped, "{summary:?}");
        assert!(
            summary
                .reasons
                .iter()
                .any(|r| r.contains("t.0") && r.contains("exit code 3")),
            "{:?}",
            summary.reasons
        );
        assert_eq!(states(&rig, &job).await[1], "skipped");
        // A result delivered again changes nothing.
        rig.report("w1", &gate[0], 0).await;
        assert_eq!(rig.job(&job).await.summary.state, JobState::Stopped);

        resume(&rig, &job, None).await.unwrap();
        let again = rig.poll("w1", 10).await;
        assert_eq!(again.len(), 1);
        assert!(again[0].gate.is_some(), "{again:?}");
        assert_ne!(again[0].id, gate[0].id, "a new run of the gate");
        rig.report("w1", &again[0], 0).await;
        let next = rig.poll("w1", 10).await;
        assert_eq!(hosts_of(&next), ["b"]);
        rig.report("w1", &next[0], 0).await;
        assert_eq!(rig.job(&job).await.summary.state, JobState::Succeeded);
    }

    #[rstest]
    #[tokio::test]
    async fn a_gate_running_through_a_restart_runs_again_and_the_first_is_cancelled(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let job = up_to_the_gate(&rig).await;
        let first = rig.poll("w1", 10).await;
        rig.restart().await;
        let reply = rig.heartbeat("w1", &[&first[0]]).await;
        assert_eq!(
            reply.cancel,
            [first[0].id.clone()],
            "the first run is killed"
        );
        let second = rig.poll("w1", 10).await;
        assert_eq!(second.len(), 1);
        assert!(second[0].gate.is_some());
        assert_ne!(second[0].id, first[0].id);
        // The first run's result, late: it decides nothing.
        rig.report("w1", &first[0], 1).await;
        assert_eq!(rig.job(&job).await.summary.state, JobState::Running);
        rig.report("w1", &second[0], 0).await;
        assert_eq!(hosts_of(&rig.poll("w1", 10).await), ["b"]);
    }

    #[rstest]
    #[tokio::test]
    async fn a_gate_whose_worker_falls_silent_stops_the_job_and_one_never_confirmed_goes_to_another(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let job = up_to_the_gate(&rig).await;
        // Handed out, never confirmed: after the grace it goes to another worker.
        let lost_on_the_way = rig.take("w1", 10).await;
        assert_eq!(lost_on_the_way.len(), 1);
        tokio::time::sleep(Duration::from_millis(800)).await;
        let second = rig.poll("w2", 10).await;
        assert_eq!(second.len(), 1, "{second:?}");
        assert!(second[0].gate.is_some());
        // w2 confirmed it and falls silent: the gate may or may not have run.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let summary = rig.job(&job).await.summary;
        assert_eq!(summary.state, JobState::Stopped, "{summary:?}");
        assert!(
            summary.reasons.iter().any(|r| r.contains("t.0")),
            "{:?}",
            summary.reasons
        );
        assert!(event_names(&rig, &job)
            .await
            .contains(&"gate_failed".to_string()));
    }

    async fn approve(rig: &Rig, job: &str, step: &str) -> Result<JobSummary, ApiErr> {
        let (id, step) = (job.to_string(), step.to_string());
        rig.handle
            .call(|reply| Cmd::Approve {
                id,
                step,
                by: "bob".into(),
                reply,
            })
            .await
    }

    #[rstest]
    #[tokio::test]
    async fn a_step_waits_for_its_approval_through_a_restart_and_goes_on_once_approved(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let plan = Plan::sketch("a b c")
            .with_thread("t", &["a", "b"])
            .with_approval("t.0", None);
        let job = rig.submit(plan).await;
        let first = rig.poll("w1", 10).await;
        let hosts: Vec<&str> = first.iter().map(|t| t.host.as_str()).collect();
        assert_eq!(hosts, ["a", "c"], "c is in no step: it does not wait");
        for task in &first {
            rig.report("w1", task, 0).await;
        }
        assert!(
            rig.poll("w1", 10).await.is_empty(),
            "b waits for the approval"
        );
        let summary = rig.job(&job.id).await.summary;
        assert_eq!(summary.state, JobState::Running);
        assert_eq!(summary.approvals.len(), 1);
        assert_eq!(summary.approvals[0].step, "t.0");
        let refused = approve(&rig, &job.id, "t.1").await.unwrap_err();
        assert_eq!(refused.status, 409);
        assert!(
            refused.message.contains("it waits for: t.0"),
            "{}",
            refused.message
        );

        // A restart keeps it waiting.
        rig.restart().await;
        assert!(rig.poll("w1", 10).await.is_empty());
        assert_eq!(rig.job(&job.id).await.summary.approvals[0].step, "t.0");
        approve(&rig, &job.id, "t.0").await.unwrap();
        let next = rig.poll("w1", 10).await;
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].host, "b");
        rig.report("w1", &next[0], 0).await;
        assert_eq!(rig.job(&job.id).await.summary.state, JobState::Succeeded);
        let approved: Vec<serde_json::Value> = rig
            .events(&job.id)
            .await
            .iter()
            .map(|r| serde_json::to_value(&r.event).unwrap())
            .filter(|e| e["event"] == "approved")
            .collect();
        assert_eq!(approved.len(), 1);
        assert_eq!(approved[0]["by"], "bob");

        // Approved before a restart that lost nothing: the approval is not asked again.
        rig.restart().await;
        assert_eq!(rig.job(&job.id).await.summary.state, JobState::Succeeded);
    }

    #[rstest]
    #[tokio::test]
    async fn an_approval_not_given_in_time_stops_the_job(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let plan = Plan::sketch("a b")
            .with_thread("t", &["a", "b"])
            .with_approval("t.0", Some(1));
        let job = rig.submit(plan).await;
        for task in rig.poll("w1", 10).await {
            rig.report("w1", &task, 0).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let summary = rig.job(&job.id).await.summary;
        assert_eq!(summary.state, JobState::Stopped, "{summary:?}");
        assert!(
            summary
                .reasons
                .join(" ")
                .contains("step `t.0` was not approved in time"),
            "{:?}",
            summary.reasons
        );
        assert!(approve(&rig, &job.id, "t.0").await.is_err());
        // Resumed, it waits again; approved, it goes on.
        resume(&rig, &job.id, None).await.unwrap();
        assert!(rig.poll("w1", 10).await.is_empty());
        approve(&rig, &job.id, "t.0").await.unwrap();
        let b = rig.poll("w1", 10).await;
        assert_eq!(b.len(), 1);
        rig.report("w1", &b[0], 0).await;
        assert_eq!(rig.job(&job.id).await.summary.state, JobState::Succeeded);
    }

    #[rstest]
    #[tokio::test]
    async fn a_submission_sent_twice_makes_one_job(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let submit = |id: &str| SubmitJob {
            submission: Some(id.into()),
            ..submission(Plan::sketch("a b"), Default::default(), &[])
        };
        let first = rig.send(submit("s-1")).await;
        assert_eq!(rig.send(submit("s-1")).await.id, first.id);
        assert_ne!(rig.send(submit("s-2")).await.id, first.id);
        // Still known after a restart.
        rig.restart().await;
        assert_eq!(rig.send(submit("s-1")).await.id, first.id);
        let jobs = rig.handle.call(|reply| Cmd::Jobs { reply }).await.unwrap();
        assert_eq!(jobs.len(), 2);
    }

    /// A job of `plan` with the local transport and no retry delay, as tests submit them.
    fn submission(plan: Plan, limits: LoweredLimits, overrides: &[&str]) -> SubmitJob {
        SubmitJob {
            plan,
            limits,
            overrides: overrides.iter().map(|o| o.to_string()).collect(),
            transport: TransportSpec::Local,
            retry_delay_ms: 0,
            password: None,
            submission: None,
        }
    }

    #[rstest]
    #[tokio::test]
    async fn a_restart_loads_finished_jobs_only_when_they_are_asked_for(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let mut first = submission(Plan::sketch("a"), Default::default(), &[]);
        first.submission = Some("request-1".into());
        let done = rig.send(first.clone()).await;
        let a = rig.poll("w1", 4).await;
        rig.report("w1", &a[0], 0).await;
        assert_eq!(rig.job(&done.id).await.summary.state, JobState::Succeeded);
        let running = rig.submit(Plan::sketch("b")).await;
        rig.restart().await;

        // Loaded at start: the running job only.
        let commits = std::sync::Arc::new(watch::channel(0).0);
        let (unloaded, loaded) = off_runtime(|| {
            let core = Core::load(rig.open_store(), TIMING, commits).unwrap();
            let seen = (
                core.unloaded.keys().cloned().collect::<Vec<_>>(),
                core.jobs.keys().cloned().collect::<Vec<_>>(),
            );
            drop(core);
            seen
        });
        assert_eq!(unloaded, std::slice::from_ref(&done.id));
        assert_eq!(loaded, std::slice::from_ref(&running.id));

        // Asked for, it is there as it was; the same request again finds it; the list has
        // every job, newest first.
        assert_eq!(rig.job(&done.id).await.summary.state, JobState::Succeeded);
        assert_eq!(rig.send(first).await.id, done.id);
        let ids: Vec<String> = rig
            .handle
            .call(|reply| Cmd::Jobs { reply })
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(ids, [running.id.clone(), done.id.clone()]);
        let b = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&b), ["b"]);
    }

    #[rstest]
    #[tokio::test]
    async fn an_operators_action_is_audited_once_it_is_done_and_survives_a_restart(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let job = rig.submit(Plan::sketch("a b")).await;
        let bob = || Who {
            name: "bob".into(),
            from: "10.0.0.7".into(),
        };
        let id = job.id.clone();
        rig.handle
            .call_as(bob(), |reply| Cmd::Halt {
                id,
                kill: true,
                reply,
            })
            .await
            .unwrap();
        // Refused (the job has ended): nothing is recorded.
        let id = job.id.clone();
        rig.handle
            .call_as(bob(), |reply| Cmd::Halt {
                id,
                kill: false,
                reply,
            })
            .await
            .unwrap_err();
        rig.restart().await;
        let trail = rig
            .handle
            .call(|reply| Cmd::Audit {
                after: 0,
                limit: 100,
                reply,
            })
            .await
            .unwrap();
        let seen: Vec<(u64, &str, &str, &str, Option<&str>)> = trail
            .iter()
            .map(|r| {
                (
                    r.seq,
                    r.by.as_str(),
                    r.from.as_str(),
                    r.action.as_str(),
                    r.job.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [(1, "bob", "10.0.0.7", "halt --kill", Some(job.id.as_str()))]
        );
    }

    /// `pogo resume JOB` (`hosts` None) or `pogo retry JOB HOST...`.
    async fn resume(rig: &Rig, job: &str, hosts: Option<&[&str]>) -> Result<JobSummary, ApiErr> {
        let id = job.to_string();
        let retry = hosts.map(|hosts| hosts.iter().map(|h| h.to_string()).collect());
        rig.handle
            .call(|reply| Cmd::Resume {
                id,
                password: None,
                retry,
                reply,
            })
            .await
    }

    /// Each host's state, in plan order.
    async fn states(rig: &Rig, job: &str) -> Vec<String> {
        let detail = rig.job(job).await;
        detail.host_states.into_iter().map(|h| h.state).collect()
    }

    /// `pogo retry JOB HOST` with another host failed and max_failures 0 said "stopped" and
    /// turned HOST from failed to skipped without running it. A named retry counts failures
    /// from the retry, keeps the other failed hosts down, and never overwrites a failed state
    /// with skipped; when the named host cannot start, the retry is refused saying why.
    #[rstest]
    #[tokio::test]
    async fn a_named_retry_runs_its_host_whatever_the_other_failures(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let job = rig.submit(Plan::sketch("a b")).await;
        let tasks = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&tasks), ["a", "b"]);
        rig.report("w1", &tasks[0], 1).await;
        rig.report("w1", &tasks[1], 2).await;
        assert!(rig.job(&job.id).await.summary.state.is_ended());

        resume(&rig, &job.id, Some(&["b"])).await.unwrap();
        let again = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&again), ["b"]);
        rig.report("w1", &again[0], 0).await;
        assert_eq!(states(&rig, &job.id).await, ["failed", "succeeded"]);

        // A group of one with `a` failed and down in it: `b` could never start. A resume that
        // could start nothing is refused, naming the group, instead of recording a session
        // that skips `b` again.
        let rig = Rig::new(kind);
        let plan = Plan::sketch("a b")
            .with_group("$pair", Amount::number(1), "a b")
            .with_max_failures(5);
        let job = rig.submit(plan).await;
        let first = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&first), ["a"]);
        rig.report("w1", &first[0], 1).await;
        assert!(rig.job(&job.id).await.summary.state.is_ended());
        let refused = resume(&rig, &job.id, None).await.unwrap_err();
        assert!(
            refused.message.starts_with(&format!(
                "cannot resume job {}: nothing could start: ",
                job.id
            )) && refused.message.contains("$pair"),
            "{}",
            refused.message
        );
        assert_eq!(states(&rig, &job.id).await[0], "failed");
    }

    /// A halt stops retries, as Ctrl-C does for a local run: a host waiting for its retry ends
    /// failed with the attempt it had, and one whose attempt fails after the halt is not
    /// retried. (Before, only a halt with kill dropped retries.)
    #[rstest]
    #[tokio::test]
    async fn a_halt_stops_retries_waiting_or_to_come(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let mut plan = Plan::sketch("a b");
        plan.options.retries = 3;
        let mut job = submission(plan.sealed(), LoweredLimits::default(), &[]);
        job.retry_delay_ms = 60_000;
        let job = rig.send(job).await;
        let tasks = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&tasks), ["a", "b"]);
        rig.report("w1", &tasks[0], 1).await;
        let halt = |kill| {
            let id = job.id.clone();
            move |reply| Cmd::Halt { id, kill, reply }
        };
        rig.handle.call(halt(false)).await.unwrap();
        rig.report("w1", &tasks[1], 2).await;
        assert!(rig.poll("w1", 4).await.is_empty());
        let detail = rig.job(&job.id).await;
        let states: Vec<(&str, Option<i32>, u32, &str)> = detail
            .host_states
            .iter()
            .map(|h| {
                (
                    h.state.as_str(),
                    h.exit_code,
                    h.attempts,
                    h.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                (
                    "failed",
                    Some(1),
                    1,
                    "exit code 1; not retried: the job was halted"
                ),
                (
                    "failed",
                    Some(2),
                    1,
                    "exit code 2; not retried: the job was halted"
                ),
            ]
        );
        assert!(
            detail.summary.state.is_ended(),
            "{:?}",
            detail.summary.state
        );
        // Nothing starts after a restart either.
        rig.restart().await;
        assert!(rig.poll("w1", 4).await.is_empty());
    }

    #[rstest]
    #[tokio::test]
    async fn an_edited_plan_is_refused_unless_allowed_and_the_job_records_it(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let mut plan = Plan::sketch("a b");
        plan.command = Some("rm -rf /".into());
        let refused = rig
            .handle
            .call(|reply| Cmd::Submit {
                job: Box::new(submission(plan.clone(), LoweredLimits::default(), &[])),
                by: "alice".into(),
                reply,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.status, 400);
        assert!(
            refused.message.starts_with(
                "the plan was edited after `pogo plan` wrote it: `command` is not what was \
                 sealed; the dispatcher runs plans as `pogo plan` wrote them"
            ),
            "{}",
            refused.message
        );
        let job = rig
            .send(submission(plan, LoweredLimits::default(), &[ALLOW_EDITED]))
            .await;
        let events = rig.events(&job.id).await;
        let Event::RunStarted { overrides, .. } = &events[0].event else {
            panic!("{:?}", events[0].event)
        };
        assert_eq!(overrides, &[ALLOW_EDITED]);
    }

    #[rstest]
    #[tokio::test]
    async fn lowered_limits_hold_across_a_restart_and_the_stored_plan_stays_sealed(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let plan = Plan::sketch("a b c").with_job_limit(3);
        let lowered = LoweredLimits {
            concurrent: Some(Amount::number(1)),
            ..LoweredLimits::default()
        };
        // Raising is refused.
        let raise = LoweredLimits {
            concurrent: Some(Amount::number(4)),
            ..LoweredLimits::default()
        };
        let refused = rig
            .handle
            .call(|reply| Cmd::Submit {
                job: Box::new(submission(plan.clone(), raise, &[])),
                by: "alice".into(),
                reply,
            })
            .await
            .unwrap_err();
        assert!(
            refused.message.contains("would raise the plan's (3)"),
            "{}",
            refused.message
        );

        rig.send(submission(plan.clone(), lowered, &[])).await;
        assert_eq!(rig.poll("w1", 4).await.len(), 1);
        rig.restart().await;
        assert!(rig.poll("w1", 4).await.is_empty());
        let rows = off_runtime(|| rig.open_store().jobs().unwrap());
        let stored = Plan::from_json(&rows[0].plan).unwrap();
        assert_eq!(stored, plan);
        assert!(stored.seal_state().is_intact());
        assert_eq!(rows[0].applied, r#"{"limits":{"concurrent":{"value":1}}}"#);
    }

    /// A database of the previous release (schema version 1: no `applied` column, plans of
    /// format 1 with their limits lowered in them) is migrated when opened, and its job goes on.
    #[tokio::test]
    async fn a_database_of_schema_version_1_is_migrated_and_its_jobs_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Plan::sketch("a b").with_job_limit(1);
        old.format_version = 1;
        old.seal = None;
        {
            let conn =
                rusqlite::Connection::open(dir.path().join(super::super::store::DB_FILE)).unwrap();
            // Version 1's tables are SCHEMA's: migrations bring them up, new and old alike.
            let v1 = super::super::store::sqlite::SCHEMA;
            assert!(
                !v1.contains("applied"),
                "the version 1 schema has no `applied`"
            );
            conn.execute_batch(&format!("{v1} PRAGMA user_version = 1;"))
                .unwrap();
            conn.execute(
                "INSERT INTO jobs (id, plan, transport, retry_delay_ms, has_password,
                    submitted_at, submitted_by, state, reasons, halted, killed,
                    session_started_ms, submission)
                 VALUES ('job-old', ?1, '{\"kind\":\"local\"}', 0, 0, 1, 'alice', 'running',
                    '[]', 0, 0, 1, NULL)",
                [old.to_json()],
            )
            .unwrap();
            for idx in 0..2 {
                conn.execute(
                    "INSERT INTO hosts (job, idx, state, exit_code, attempts, first_attempt,
                        worker, task, confirmed, message)
                     VALUES ('job-old', ?1, 'pending', NULL, 0, 1, NULL, NULL, 0, '')",
                    [idx],
                )
                .unwrap();
            }
        }
        let mut rig = Rig {
            _dir: dir,
            path: std::path::PathBuf::new(),
            database: None,
            handle: CoreHandle::new(std::sync::mpsc::channel().0),
            thread: None,
        };
        rig.path = rig._dir.path().to_path_buf();
        rig.start();
        // The job's limit of 1 holds: one host at a time, both run.
        let first = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&first), ["a"]);
        rig.report("w1", &first[0], 0).await;
        let second = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&second), ["b"]);
        rig.report("w1", &second[0], 0).await;
        assert_eq!(rig.job("job-old").await.summary.state, JobState::Succeeded);
        rig.restart().await;
        let conn = rusqlite::Connection::open(rig.path.join(super::super::store::DB_FILE)).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, super::super::store::SCHEMA_VERSION);
    }

    #[rstest]
    #[tokio::test]
    async fn a_restarted_core_keeps_running_hosts_and_takes_their_results(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let plan = Plan::sketch("a b c").with_thread("main", &["a", "b", "c"]);
        let job = rig.submit(plan).await;
        let a = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&a), ["a"]);
        rig.restart().await;
        // `a` still runs on w1: nothing else may start, and nothing runs twice.
        assert!(rig.poll("w1", 4).await.is_empty());
        rig.heartbeat("w1", &[&a[0]]).await;
        rig.report("w1", &a[0], 0).await;
        let b = rig.poll("w1", 4).await;
        assert_eq!(hosts_of(&b), ["b"]);
        rig.report("w1", &b[0], 0).await;
        let c = rig.poll("w1", 4).await;
        rig.report("w1", &c[0], 0).await;
        assert_eq!(rig.job(&job.id).await.summary.state, JobState::Succeeded);
        let seqs: Vec<u64> = rig.events(&job.id).await.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }

    #[rstest]
    #[tokio::test]
    async fn a_task_that_never_reached_its_worker_is_taken_back_and_runs_once(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let mut rig = Rig::new(kind);
        let plan = Plan::sketch("a b").with_group("one", Amount::number(1), "a b");
        let job = rig.submit(plan).await;
        // w1's answer is lost on the way, and the dispatcher restarts: `a` stays handed out.
        let lost = rig.take("w1", 1).await;
        assert_eq!(hosts_of(&lost), ["a"]);
        rig.restart().await;
        assert!(
            rig.poll("w2", 1).await.is_empty(),
            "a still holds the group's place"
        );
        // w1 says what it has, without `a`, past the grace: `a` never ran and is taken back.
        for _ in 0..60 {
            rig.heartbeat("w1", &[]).await;
            if rig.job(&job.id).await.host_states[0].state == "pending" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let detail = rig.job(&job.id).await;
        assert_eq!(detail.host_states[0].state, "pending");
        let again = rig.poll("w2", 1).await;
        assert_eq!(hosts_of(&again), ["a"]);
        assert_ne!(again[0].id, lost[0].id);
        // The stale task is not w1's any more: told to drop it, should it ever arrive.
        assert_eq!(
            rig.heartbeat("w1", &[&lost[0]]).await.cancel,
            [lost[0].id.clone()]
        );
        rig.report("w2", &again[0], 0).await;
        let b = rig.poll("w2", 1).await;
        rig.report("w2", &b[0], 0).await;
        let detail = rig.job(&job.id).await;
        assert_eq!(detail.summary.state, JobState::Succeeded);
        let started = rig
            .events(&job.id)
            .await
            .iter()
            .filter(|r| matches!(&r.event, Event::HostStarted { host, .. } if host == "a"))
            .count();
        assert_eq!(started, 1, "a started once, on w2");
    }

    #[rstest]
    #[tokio::test]
    async fn a_silent_worker_loses_its_hosts_and_a_late_result_changes_nothing(
        #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
    ) {
        let rig = Rig::new(kind);
        let plan = Plan::sketch("a b").with_max_failures(1);
        let job = rig.submit(plan).await;
        let tasks = rig.poll("w1", 1).await;
        let others = rig.poll("w2", 1).await;
        assert_eq!(hosts_of(&tasks), ["a"]);
        assert_eq!(hosts_of(&others), ["b"]);
        // w2 keeps heartbeating; w1 says nothing for longer than the worker timeout.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            rig.heartbeat("w2", &[&others[0]]).await;
        }
        let detail = rig.job(&job.id).await;
        assert_eq!(detail.host_states[0].state, "lost");
        assert!(detail.host_states[0].message.contains("w1"));
        assert_eq!(detail.host_states[1].state, "running");
        // w1 comes back with its result: accepted, the host stays lost.
        assert_eq!(rig.report("w1", &tasks[0], 0).await.len(), 1);
        assert_eq!(rig.job(&job.id).await.host_states[0].state, "lost");
        rig.report("w2", &others[0], 0).await;
        let detail = rig.job(&job.id).await;
        assert_eq!(detail.summary.state, JobState::Failed);
        assert_eq!(detail.summary.counts.lost, 1);
        // A retry runs it again, on request only.
        let id = job.id.clone();
        rig.handle
            .call(|reply| Cmd::Resume {
                id,
                password: None,
                retry: Some(vec!["a".into()]),
                reply,
            })
            .await
            .unwrap();
        let again = rig.poll("w2", 4).await;
        assert_eq!(hosts_of(&again), ["a"]);
        assert_eq!(again[0].attempt, 2, "task ids stay unique across sessions");
        rig.report("w2", &again[0], 0).await;
        assert_eq!(rig.job(&job.id).await.summary.state, JobState::Succeeded);
    }
}
