//! The async loop around the [`Scheduler`]: starts what the scheduler allows on a
//! [`Transport`], retries failed attempts, keeps each host's output, and records every event in
//! the journal (durably) before reporting it.
//!
//! Time comes from tokio's clock, so tests run a whole rollout, timeouts and retry delays
//! included, under a paused clock in no real time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pogo_model::Plan;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::events::{self, Event, FinalState, RunResult};
use crate::gates::{self, GateEnd};
use crate::hostlog;
use crate::journal::{Journal, JournalError};
use crate::phases::{self, Phase, Phases};
use crate::rundir::log_file_name;
use crate::scheduler::{
    Changes, HostIdx, Outcome, Scheduler, SchedulerError, SlotIdx, StopReason, Tally,
};
use crate::transport::{self, CancelToken, Output, Transport};
use crate::why::{self, Heads, HostWhy};

/// How hosts are run, beyond what the scheduler decides.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub run_id: String,
    pub command: String,
    /// Per attempt; `None` for no timeout.
    pub timeout: Option<Duration>,
    /// How many times a failed attempt is tried again (not after a cancellation).
    pub retries: u32,
    /// The pause before a retry.
    pub retry_delay: Duration,
    /// The whole run's timeout: when it expires, the run halts and running commands are killed.
    pub run_timeout: Option<Duration>,
    /// Where each host's output goes (`HOST.log`, appended across attempts and sessions);
    /// `None` discards it.
    pub log_dir: Option<PathBuf>,
    /// Whether this session resumes an earlier one (recorded in the journal).
    pub resumed: bool,
    /// The checks the operator overrode to start the run (recorded in the journal).
    pub overrides: Vec<String>,
    /// The hosts this session may start when the operator chose some (`--only`; recorded in
    /// the journal): the scheduler skips the others ([`Scheduler::resume_only`]).
    pub only: Option<Vec<String>>,
    /// The job-wide limit, when the run lowered the plan's (recorded in the journal).
    pub concurrent: Option<u64>,
    /// The most a host's log keeps ([`hostlog::DEFAULT_MAX_OUTPUT`] unless the plan says).
    pub max_output: u64,
    /// Room kept free for the journal on the logs' disk ([`hostlog::RESERVE`]).
    pub log_reserve: u64,
    /// What each attempt runs around the command ([`Phases::of`] the plan's options).
    pub phases: Phases,
    /// The run's directory: where approvals are left ([`gates::write_approval`]) and the
    /// gates' output goes. A plan with gates needs one.
    pub run_dir: Option<PathBuf>,
    /// Steps whose gate passed, and steps approved, in earlier sessions of the run: they are
    /// not asked again.
    pub gates_passed: BTreeSet<String>,
    pub approved: BTreeSet<String>,
}

/// How often a run that waits for an approval looks for it in the run directory.
pub const APPROVAL_POLL: Duration = Duration::from_millis(250);

/// A step whose completion the runner is deciding.
enum Deciding {
    /// Its gate runs.
    Gate(tokio::task::AbortHandle),
    /// It waits for an approval, until the deadline when there is one; asked at the time
    /// given (seconds since the Unix epoch).
    Approval(Option<Instant>, u64),
}

/// The operator's hold on a running run: halt (stop starting hosts) and kill (also cancel the
/// commands that run). Cheap to clone into a signal handler.
#[derive(Debug, Clone)]
pub struct Control {
    halt: Arc<watch::Sender<bool>>,
    kill: CancelToken,
}

impl Default for Control {
    fn default() -> Self {
        Control::new()
    }
}

impl Control {
    pub fn new() -> Control {
        Control {
            halt: Arc::new(watch::Sender::new(false)),
            kill: CancelToken::new(),
        }
    }

    /// Stops starting hosts; running ones finish.
    pub fn halt(&self) {
        self.halt.send_replace(true);
    }

    /// Halts and kills the commands that run.
    pub fn kill(&self) {
        self.halt();
        self.kill.cancel();
    }

    pub fn is_halted(&self) -> bool {
        *self.halt.borrow()
    }
}

/// Receives events, after they are durable.
pub trait Reporter {
    fn report(&mut self, event: &Event);

    /// Whether it shows why the heads of the threads wait (a live view): the runner then calls
    /// [`Reporter::waiting`] when that changes, at most every [`EXPLAIN_EVERY`].
    fn explains(&self) -> bool {
        false
    }

    /// Why the first host not started of each thread's current step waits
    /// ([`crate::why::Heads`]), in plan order of the threads, the unordered hosts' last.
    fn waiting(&mut self, _heads: &[HostWhy]) {}

    /// Whether it wants [`Reporter::tick`] every [`TICK_EVERY`] while the run goes on (a
    /// view without a terminal that says, now and then, that the run is alive).
    fn ticks(&self) -> bool {
        false
    }

    /// Called every [`TICK_EVERY`] when [`Reporter::ticks`].
    fn tick(&mut self) {}
}

/// How often a reporter that asks for it is ticked.
pub const TICK_EVERY: Duration = Duration::from_secs(1);

/// Under load, how long after the last commit the runner waits for more completions before
/// the next (see `Run::gather`): the most a host's next start is delayed to share an
/// `fdatasync` with others.
pub const GROUP_WINDOW: Duration = Duration::from_millis(10);

/// How often a live view's explanations are brought up to date, at most: finding them
/// scans the full groups of the heads, so they are not computed per event.
pub const EXPLAIN_EVERY: Duration = Duration::from_millis(500);

/// Why a run could not go on. Hosts failing is not an error: it is in the [`RunEnd`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the scheduler refused a step: {0}")]
    Scheduler(#[from] SchedulerError),
    #[error("cannot write the output of `{host}` to `{path}`: {source}")]
    Log {
        host: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub result: RunResult,
    pub tally: Tally,
    /// Why it stopped or was blocked, when it did.
    pub reasons: Vec<String>,
    /// Hosts of this session whose output could not all be kept (see [`Event::OutputLost`]).
    pub output_lost: Vec<String>,
}

/// What a host's task tells the loop.
struct Attempted {
    host: HostIdx,
    attempt: u32,
    result: transport::RunResult,
    /// The attempt did not start: the run was halted while it waited for its retry delay.
    /// `attempt` and `result` are then the previous attempt's.
    not_retried: bool,
    /// The phase that decided it.
    phase: Phase,
    /// How its output was written.
    log: hostlog::LogReport,
}

/// Runs `scheduler`'s hosts until the run ends. The scheduler may be fresh or resumed.
pub async fn run(
    plan: &Plan,
    scheduler: &mut Scheduler,
    transport: Arc<dyn Transport>,
    settings: &RunSettings,
    control: &Control,
    journal: &mut Journal<Event>,
    reporter: &mut dyn Reporter,
) -> Result<RunEnd, RunError> {
    let explainer = reporter.explains().then(|| Explainer {
        heads: Heads::new(plan),
        at: None,
        due: None,
        last: Vec::new(),
    });
    let mut run = Run {
        plan,
        explainer,
        deciding: BTreeMap::new(),
        settings,
        transport,
        control,
        journal,
        reporter,
        start: Instant::now(),
        batch: Vec::new(),
        last_commit: Instant::now(),
        attempts: HashMap::new(),
        started_at: HashMap::new(),
        running: 0,
        output_lost: Vec::new(),
    };
    run.go(scheduler).await
}

/// What the runner keeps to explain the heads to a live view.
struct Explainer {
    heads: Heads,
    /// When they were last explained.
    at: Option<Instant>,
    /// When they are to be explained again, having changed since.
    due: Option<Instant>,
    last: Vec<HostWhy>,
}

struct Run<'a> {
    plan: &'a Plan,
    explainer: Option<Explainer>,
    /// Steps whose gate or approval is being decided, by slot index.
    deciding: BTreeMap<usize, Deciding>,
    settings: &'a RunSettings,
    transport: Arc<dyn Transport>,
    control: &'a Control,
    journal: &'a mut Journal<Event>,
    reporter: &'a mut dyn Reporter,
    start: Instant,
    /// Events not yet durable.
    batch: Vec<Event>,
    /// When the journal last made a batch durable.
    last_commit: Instant,
    attempts: HashMap<HostIdx, u32>,
    started_at: HashMap<HostIdx, Instant>,
    running: usize,
    output_lost: Vec<String>,
}

impl<'a> Run<'a> {
    async fn go(&mut self, scheduler: &mut Scheduler) -> Result<RunEnd, RunError> {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Attempted>();
        let (gate_tx, mut gate_rx) = mpsc::unbounded_channel::<(usize, GateEnd)>();
        let mut halt = self.control.halt.subscribe();
        let mut halted = false;
        let run_timeout = async {
            match self.settings.run_timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(run_timeout);
        let mut timed_out = false;
        let mut next_tick = Instant::now() + TICK_EVERY;

        self.batch.push(Event::RunStarted {
            run_id: self.settings.run_id.clone(),
            hosts: self.plan.hosts.len(),
            command: self.settings.command.clone(),
            resumed: self.settings.resumed,
            overrides: self.settings.overrides.clone(),
            only: self.settings.only.clone(),
            concurrent: self.settings.concurrent,
            at_ms: 0,
        });
        self.batch
            .extend(events::start_events(&self.plan.hosts, scheduler));

        loop {
            if !halted && self.control.is_halted() {
                halted = true;
                // The run timeout halts too: its reason is its own, not an operator's.
                let reason = if timed_out {
                    StopReason::RunTimeout
                } else {
                    StopReason::Halted
                };
                let changes = scheduler.stop(reason);
                self.note_changes(scheduler, &changes);
                self.stop_deciding();
            }
            let mut starting = Vec::new();
            while let Some(host) = scheduler.next_to_start() {
                self.attempts.insert(host, 1);
                self.started_at.insert(host, Instant::now());
                self.batch.push(Event::HostStarted {
                    host: self.name(host).to_string(),
                    at_ms: self.now_ms(),
                });
                starting.push(host);
            }
            // Durable before the commands start: a crash after this point leaves them
            // recorded as started, so a resume does not silently run them twice.
            self.commit()?;
            for host in starting {
                self.spawn_attempt(host, 1, Duration::ZERO, None, &done_tx);
            }
            if self.decide_gates(scheduler, &gate_tx)? {
                // A step completed: hosts after it may start now.
                continue;
            }
            // A gate started, an approval awaited: said before waiting for either.
            self.commit()?;
            if self.running == 0 && self.deciding.is_empty() {
                break;
            }
            self.explain(scheduler);
            let explain_due = self.explainer.as_ref().and_then(|e| e.due);
            let tick_due = self.reporter.ticks().then_some(next_tick);
            let approvals = self
                .deciding
                .values()
                .any(|d| matches!(d, Deciding::Approval(..)));
            tokio::select! {
                Some(done) = done_rx.recv() => {
                    self.attempted(scheduler, done, &done_tx)?;
                    self.gather(scheduler, &mut done_rx, &done_tx).await?;
                }
                Ok(()) = halt.changed(), if !halted => {}
                () = &mut run_timeout, if !timed_out => {
                    timed_out = true;
                    self.control.kill();
                }
                () = sleep_until(explain_due), if explain_due.is_some() => {}
                () = sleep_until(tick_due), if tick_due.is_some() => {
                    self.reporter.tick();
                    next_tick = Instant::now() + TICK_EVERY;
                }
                Some((slot, end)) = gate_rx.recv() => self.gate_ended(scheduler, slot, end)?,
                () = tokio::time::sleep(APPROVAL_POLL), if approvals => {}
            }
        }
        self.finish(scheduler)
    }

    /// Completions come in bursts under load: every one already waiting is taken before the
    /// next commit, and while other hosts still run, more are waited for until
    /// [`GROUP_WINDOW`] after the last commit, so that one `fdatasync` covers many. A run
    /// with nothing else running (a sequential chain) commits at once.
    async fn gather(
        &mut self,
        scheduler: &mut Scheduler,
        done_rx: &mut mpsc::UnboundedReceiver<Attempted>,
        done_tx: &mpsc::UnboundedSender<Attempted>,
    ) -> Result<(), RunError> {
        loop {
            while let Ok(done) = done_rx.try_recv() {
                self.attempted(scheduler, done, done_tx)?;
            }
            if self.running == 0 || self.control.is_halted() {
                return Ok(());
            }
            let deadline = self.last_commit + GROUP_WINDOW;
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(done)) => self.attempted(scheduler, done, done_tx)?,
                Ok(None) | Err(_) => return Ok(()),
            }
        }
    }

    /// A host's attempt ended: retry it, or tell the scheduler.
    fn attempted(
        &mut self,
        scheduler: &mut Scheduler,
        done: Attempted,
        done_tx: &mpsc::UnboundedSender<Attempted>,
    ) -> Result<(), RunError> {
        self.running -= 1;
        let Attempted {
            host,
            attempt,
            result,
            not_retried,
            phase,
            log,
        } = done;
        if let Some(reason) = log.lost {
            let host_name = self.name(host).to_string();
            if !self.output_lost.contains(&host_name) {
                self.output_lost.push(host_name.clone());
            }
            self.batch.push(Event::OutputLost {
                host: host_name,
                reason,
                at_ms: self.now_ms(),
            });
        }
        let outcome = &result.outcome;
        let failed_phase = (!outcome.is_success() && phase != Phase::Command).then_some(phase);
        let how = match failed_phase {
            Some(phase) => format!("{phase} failed: {outcome}"),
            None => outcome.to_string(),
        };
        // After a halt no retry starts: the host ends with the attempt it had.
        let halted = not_retried || self.control.is_halted();
        let retry = !outcome.is_success()
            && !matches!(outcome, transport::Outcome::Cancelled(_))
            && attempt <= self.settings.retries
            && !halted
            && !self.control.kill.is_cancelled();
        if retry {
            self.batch.push(Event::HostRetrying {
                host: self.name(host).to_string(),
                attempt: attempt + 1,
                after: how,
                delay_ms: self.settings.retry_delay.as_millis() as u64,
                at_ms: self.now_ms(),
            });
            self.attempts.insert(host, attempt + 1);
            self.spawn_attempt(
                host,
                attempt + 1,
                self.settings.retry_delay,
                Some(phases::Attempt { result, phase }),
                done_tx,
            );
            return Ok(());
        }
        let (final_state, changes) = match outcome {
            transport::Outcome::Cancelled(_) => (FinalState::Cancelled, scheduler.cancel(host)?),
            other => {
                let (state, outcome) = match other {
                    transport::Outcome::Exited(status) if status.success() => {
                        (FinalState::Succeeded, Outcome::Succeeded)
                    }
                    transport::Outcome::Exited(status) => {
                        let exit_code = match status {
                            transport::ExitStatus::Code(code) => *code,
                            transport::ExitStatus::Signal(Some(signal)) => 128 + signal,
                            transport::ExitStatus::Signal(None) => 128,
                        };
                        (
                            FinalState::Failed { exit_code },
                            Outcome::Failed { exit_code },
                        )
                    }
                    transport::Outcome::TimedOut(_) => (FinalState::TimedOut, Outcome::TimedOut),
                    _ => (FinalState::Unreachable, Outcome::Unreachable),
                };
                (state, scheduler.finish(host, outcome)?)
            }
        };
        let started = self.started_at.remove(&host).unwrap_or(self.start);
        let would_retry = !outcome.is_success()
            && !matches!(outcome, transport::Outcome::Cancelled(_))
            && attempt <= self.settings.retries;
        let message = if halted && would_retry {
            format!("{how}; not retried: the run was halted")
        } else {
            how
        };
        self.batch.push(Event::HostFinished {
            host: self.name(host).to_string(),
            result: final_state,
            attempts: attempt,
            duration_ms: started.elapsed().as_millis() as u64,
            message,
            phase: failed_phase,
            at_ms: self.now_ms(),
        });
        self.note_changes(scheduler, &changes);
        Ok(())
    }

    /// Records what a scheduler step changed that a person should hear of.
    fn note_changes(&mut self, scheduler: &Scheduler, changes: &Changes) {
        let at_ms = self.now_ms();
        let events = events::change_events(&self.plan.hosts, scheduler, changes, at_ms);
        self.batch.extend(events);
    }

    fn finish(&mut self, scheduler: &Scheduler) -> Result<RunEnd, RunError> {
        let (result, reasons) = events::run_result(&self.plan.hosts, scheduler)
            .expect("the loop ends only when nothing runs or may start");
        let tally = scheduler.tally();
        self.batch
            .push(events::finished_event(result, &tally, 0, self.now_ms()));
        self.commit()?;
        Ok(RunEnd {
            result,
            tally,
            reasons,
            output_lost: std::mem::take(&mut self.output_lost),
        })
    }

    /// Starts deciding the steps whose gates are due, and decides the approvals that came or
    /// expired. Returns whether a step completed (hosts may start).
    fn decide_gates(
        &mut self,
        scheduler: &mut Scheduler,
        gate_tx: &mpsc::UnboundedSender<(usize, GateEnd)>,
    ) -> Result<bool, RunError> {
        let mut completed = false;
        for slot in scheduler.gates_due() {
            let s = slot.index();
            if self.deciding.contains_key(&s) {
                continue;
            }
            let spec = self.slot(s);
            let step = spec.id.clone();
            if spec.gate.is_some() && !self.settings.gates_passed.contains(&step) {
                self.start_gate(scheduler, s, gate_tx);
            } else {
                completed |= self.after_gate(scheduler, s)?;
            }
        }
        let now = Instant::now();
        let waiting: Vec<(usize, Option<Instant>)> = self
            .deciding
            .iter()
            .filter_map(|(&s, d)| match d {
                Deciding::Approval(deadline, _) => Some((s, *deadline)),
                Deciding::Gate(_) => None,
            })
            .collect();
        for (s, deadline) in waiting {
            let step = self.slot(s).id.clone();
            let given = self
                .settings
                .run_dir
                .as_deref()
                .and_then(|dir| gates::read_approval(dir, &step));
            if let Some(record) = given {
                self.deciding.remove(&s);
                self.batch.push(Event::Approved {
                    step,
                    by: record.by,
                    at: record.at,
                    at_ms: self.now_ms(),
                });
                let changes = scheduler.pass_gate(SlotIdx::new(s))?;
                self.note_changes(scheduler, &changes);
                completed = true;
            } else if deadline.is_some_and(|d| now >= d) {
                self.deciding.remove(&s);
                self.batch.push(Event::ApprovalExpired {
                    step: step.clone(),
                    at_ms: self.now_ms(),
                });
                let changes =
                    scheduler.fail_gate(SlotIdx::new(s), StopReason::ApprovalExpired { step })?;
                self.note_changes(scheduler, &changes);
                self.stop_deciding();
            }
        }
        Ok(completed)
    }

    /// The step's gate passed (or it has none, or it passed in an earlier session): wait for
    /// its approval, or complete it. Returns whether it completed.
    fn after_gate(&mut self, scheduler: &mut Scheduler, s: usize) -> Result<bool, RunError> {
        let spec = self.slot(s);
        let step = spec.id.clone();
        if let Some(approval) = spec.approve {
            if !self.settings.approved.contains(&step) {
                let within = approval.within.map(Duration::from_secs);
                self.batch.push(Event::ApprovalWaiting {
                    step,
                    within_ms: within.map(|w| w.as_millis() as u64),
                    at_ms: self.now_ms(),
                });
                let asked = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.deciding.insert(
                    s,
                    Deciding::Approval(within.map(|w| Instant::now() + w), asked),
                );
                return Ok(false);
            }
        }
        let changes = scheduler.pass_gate(SlotIdx::new(s))?;
        self.note_changes(scheduler, &changes);
        Ok(true)
    }

    /// Runs the gate after step `s` on this machine, with the step's hosts and how they
    /// ended in its environment.
    fn start_gate(
        &mut self,
        scheduler: &Scheduler,
        s: usize,
        gate_tx: &mpsc::UnboundedSender<(usize, GateEnd)>,
    ) {
        let spec = self.slot(s);
        let step = spec.id.clone();
        let command = spec.gate.clone().unwrap_or_default();
        let index: HashMap<&str, usize> = self
            .plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let env = gates::gate_env(&self.settings.run_id, &step, &spec.hosts, |h| {
            index.get(h).map(|&i| scheduler.host_state(HostIdx::new(i)))
        });
        let log = match &self.settings.run_dir {
            Some(dir) => gates::gate_log(dir, &step),
            None => std::env::temp_dir().join(crate::rundir::file_name(&step, "gate.log")),
        };
        self.batch.push(Event::GateStarted {
            step,
            at_ms: self.now_ms(),
        });
        let cancel = self.control.kill.clone();
        let gate_tx = gate_tx.clone();
        let task = tokio::spawn(async move {
            let end = gates::run_gate(&command, &env, &log, &cancel).await;
            let _ = gate_tx.send((s, end));
        });
        self.deciding.insert(s, Deciding::Gate(task.abort_handle()));
    }

    /// A gate ended.
    fn gate_ended(
        &mut self,
        scheduler: &mut Scheduler,
        s: usize,
        end: GateEnd,
    ) -> Result<(), RunError> {
        if self.deciding.remove(&s).is_none() {
            // The run stopped meanwhile: its gates decide nothing any more.
            return Ok(());
        }
        let step = self.slot(s).id.clone();
        match end {
            GateEnd::Passed => {
                self.batch.push(Event::GatePassed {
                    step,
                    at_ms: self.now_ms(),
                });
                self.after_gate(scheduler, s)?;
            }
            GateEnd::Failed(how) => {
                self.batch.push(Event::GateFailed {
                    step: step.clone(),
                    message: how.clone(),
                    at_ms: self.now_ms(),
                });
                let changes =
                    scheduler.fail_gate(SlotIdx::new(s), StopReason::GateFailed { step, how })?;
                self.note_changes(scheduler, &changes);
                self.stop_deciding();
            }
            GateEnd::Cancelled => {}
        }
        Ok(())
    }

    /// The run stopped: gates that run are killed, approvals no longer awaited.
    fn stop_deciding(&mut self) {
        for (_, deciding) in std::mem::take(&mut self.deciding) {
            if let Deciding::Gate(task) = deciding {
                task.abort();
            }
        }
    }

    /// Slot `s` of the plan, in [`Plan::slots`] order.
    fn slot(&self, s: usize) -> &'a pogo_model::SlotSpec {
        self.plan
            .slots()
            .nth(s)
            .map(|(_, slot)| slot)
            .expect("the scheduler's slots are the plan's")
    }

    /// Tells the reporter why the heads wait, if it shows that, when it changed and
    /// [`EXPLAIN_EVERY`] has passed since it was last told (else later: `due`).
    fn explain(&mut self, scheduler: &Scheduler) {
        let Some(explainer) = self.explainer.as_mut() else {
            return;
        };
        let now = Instant::now();
        if let Some(at) = explainer.at {
            if now < at + EXPLAIN_EVERY {
                explainer.due = Some(at + EXPLAIN_EVERY);
                return;
            }
        }
        explainer.at = Some(now);
        explainer.due = None;
        let names = &self.plan.hosts;
        let slots: Vec<&str> = self
            .plan
            .slots()
            .map(|(_, spec)| spec.id.as_str())
            .collect();
        let deciding = &self.deciding;
        let approval_since = |step: &str| {
            deciding.iter().find_map(|(&s, d)| match d {
                Deciding::Approval(_, since) if slots.get(s) == Some(&step) => Some(*since),
                _ => None,
            })
        };
        let heads = explainer.heads.find(|h| scheduler.host_state(h));
        let waits: Vec<HostWhy> = heads
            .into_iter()
            .map(|head| {
                HostWhy::new(
                    names[head.host.index()].clone(),
                    head.thread
                        .map(|t| explainer.heads.thread_name(t).to_string()),
                    scheduler.host_state(head.host).to_string(),
                    why::of_run(scheduler, head.host, |h| names[h.index()].clone())
                        .map(|why| why.approval(|step| approval_since(step))),
                )
            })
            .collect();
        if waits != explainer.last {
            self.reporter.waiting(&waits);
            explainer.last = waits;
        }
    }

    /// Makes the pending events durable, then reports them.
    fn commit(&mut self) -> Result<(), RunError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.journal.append(&self.batch)?;
        self.last_commit = Instant::now();
        for event in self.batch.drain(..) {
            self.reporter.report(&event);
        }
        Ok(())
    }

    /// Starts attempt `attempt` of `host`, after `delay`. A retry (`previous`: the attempt
    /// before) that is still waiting when the run is halted does not start.
    fn spawn_attempt(
        &mut self,
        host: HostIdx,
        attempt: u32,
        delay: Duration,
        previous: Option<phases::Attempt>,
        done_tx: &mpsc::UnboundedSender<Attempted>,
    ) {
        self.running += 1;
        let name = self.plan.hosts[host.index()].clone();
        let command = self.settings.command.clone();
        let phases = self.settings.phases.clone();
        let timeout = self.settings.timeout;
        let transport = Arc::clone(&self.transport);
        let cancel = self.control.kill.clone();
        let log = self
            .settings
            .log_dir
            .as_ref()
            .map(|dir| hostlog::LogTarget {
                path: dir.join(log_file_name(&name)),
                attempt,
                resumed: self.settings.resumed,
                max_output: self.settings.max_output,
                reserve: self.settings.log_reserve,
            });
        let done_tx = done_tx.clone();
        let mut halt = self.control.halt.subscribe();
        tokio::spawn(async move {
            if let Some(previous) = previous {
                let halted = async {
                    // Ends when the run is halted (or the control is gone).
                    let _ = halt.wait_for(|halted| *halted).await;
                };
                let go_on = tokio::select! {
                    () = tokio::time::sleep(delay) => true,
                    () = cancel.cancelled() => true,
                    () = halted => false,
                };
                if !go_on || *halt.borrow() {
                    let _ = done_tx.send(Attempted {
                        host,
                        attempt: attempt - 1,
                        result: previous.result,
                        phase: previous.phase,
                        not_retried: true,
                        log: hostlog::LogReport::default(),
                    });
                    return;
                }
            }
            let (out_tx, out_rx) = mpsc::channel::<Output>(64);
            let writer = tokio::spawn(hostlog::write(log, out_rx));
            let ended = phases::attempt(
                transport.as_ref(),
                &name,
                &command,
                &phases,
                timeout,
                &cancel,
                &out_tx,
            )
            .await;
            // The output is complete once the last sender is dropped.
            drop(out_tx);
            let log = writer.await.unwrap_or_default();
            transport.close(&name).await;
            let _ = done_tx.send(Attempted {
                host,
                attempt,
                result: ended.result,
                phase: ended.phase,
                not_retried: false,
                log,
            });
        });
    }

    fn name(&self, host: HostIdx) -> &str {
        &self.plan.hosts[host.index()]
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
