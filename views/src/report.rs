//! The views of a run, all rendered from its events (`pogo_executor::events::Event`), the same
//! data as `--json` and the journal:
//!
//! - [`Lines`]: one `host: message` line per event, as the original Pogo printed
//!   (`host2: Running target`, `host2: Success`), when stdout is not a terminal;
//! - [`Json`]: the events as NDJSON, byte for byte the journal's records (`--json`);
//! - [`Progress`]: a live view on a terminal (indicatif): an overall bar with counts, a line
//!   per thread (its current slot, from [`Lanes`]) and for the unordered lane, the hosts that
//!   run, and failures as they happen;
//! - [`Ledger`] and [`summary`]: each host's final state, exit code, attempts and duration, for
//!   the table at the end of a run and for `pogo log RUN_ID`.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use comfy_table::Cell;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pogo_executor::events::{Event, FinalState, RunResult};
use pogo_executor::rundir::RunDir;
use pogo_executor::runner::Reporter;
use pogo_executor::why::HostWhy;

use crate::text::{cut, new_table, plural, printable, render};

/// Past this many hosts, the summary table lists only the hosts that did not succeed (and
/// counts the rest) unless `--full` is given.
const HOSTS_IN_FULL: usize = 20;
/// At most this many rows of hosts that did not succeed, unless `--full`.
const ROWS_SHOWN: usize = 30;
/// The output of at most this many failed hosts is shown at the end of a run...
const TAILS_SHOWN: usize = 5;
/// ...this many lines each.
const TAIL_LINES: usize = 10;

/// The line for an event, as the original printed it; `None` for events that have no line of
/// their own (the summary says how the run ended). Several lines for skipped hosts.
pub fn event_lines(event: &Event) -> Vec<String> {
    match event {
        Event::RunStarted {
            run_id,
            hosts,
            command,
            resumed,
            overrides,
            ..
        } => vec![format!(
            "Run {run_id}{}: `{command}` on {}{}",
            if *resumed { " (resumed)" } else { "" },
            plural(*hosts, "host"),
            overrides
                .iter()
                .map(|o| format!(", with --{o}"))
                .collect::<String>()
        )],
        Event::HostStarted { host, .. } => vec![format!("{host}: Running target")],
        Event::HostRetrying {
            host,
            attempt,
            after,
            delay_ms,
            ..
        } => vec![format!(
            "{host}: Retrying after {after} (attempt {attempt}{})",
            if *delay_ms == 0 {
                String::new()
            } else {
                format!(", in {}", short_duration(*delay_ms))
            }
        )],
        Event::HostFinished {
            host,
            result,
            attempts,
            message,
            ..
        } => {
            let after = if *attempts > 1 {
                format!(", after {attempts} attempts")
            } else {
                String::new()
            };
            let line = match result {
                FinalState::Succeeded if *attempts > 1 => {
                    format!("{host}: Success (after {attempts} attempts)")
                }
                FinalState::Succeeded => format!("{host}: Success"),
                FinalState::Failed { .. } => format!("{host}: Failed ({message}{after})"),
                FinalState::TimedOut => format!(
                    "{host}: Timed out ({}{after})",
                    strip(message, "timed out; ")
                ),
                FinalState::Unreachable => format!(
                    "{host}: Unreachable ({}{after})",
                    strip(message, "unreachable: ")
                ),
                FinalState::Cancelled => {
                    format!("{host}: Cancelled ({})", strip(message, "cancelled; "))
                }
                FinalState::Skipped => format!("{host}: Skipped"),
                FinalState::Lost => format!("{host}: Lost ({message})"),
            };
            vec![line]
        }
        Event::HostsSkipped { hosts, .. } => {
            hosts.iter().map(|h| format!("{h}: Skipped")).collect()
        }
        Event::RunStopping { reason, .. } => vec![format!(
            "Stopping: {reason}; no more hosts start, running ones finish"
        )],
        Event::RunBlocked { reasons, .. } => {
            reasons.iter().map(|r| format!("Blocked: {r}")).collect()
        }
        Event::OutputLost { host, reason, .. } => {
            vec![format!("{host}: Output lost ({})", printable(reason))]
        }
        Event::GateStarted { step, .. } => vec![format!("Step {step}: gate running")],
        Event::GatePassed { step, .. } => vec![format!("Step {step}: gate passed")],
        Event::GateFailed { step, message, .. } => {
            vec![format!("Step {step}: gate failed ({})", printable(message))]
        }
        Event::ApprovalWaiting {
            step, within_ms, ..
        } => vec![format!(
            "Step {step}: waiting for approval{} (pogo approve RUN {step})",
            within_ms.map_or(String::new(), |ms| format!(
                ", for at most {}",
                short_duration(ms)
            ))
        )],
        Event::Approved { step, by, at, .. } => vec![format!(
            "Step {step}: approved by {by} at {} UTC",
            crate::text::utc(*at)
        )],
        Event::ApprovalExpired { step, .. } => {
            vec![format!("Step {step}: not approved in time")]
        }
        Event::RunFinished { .. } => Vec::new(),
    }
}

fn strip<'a>(message: &'a str, prefix: &str) -> &'a str {
    message.strip_prefix(prefix).unwrap_or(message)
}

/// `5s`, `1.5s`, `250ms`.
fn short_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// A host's duration in the summary: `0.21s`, `12.30s`, `2m05s`, `1h02m`.
pub fn duration_cell(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        format!("{}.{:02}s", secs, ms % 1000 / 10)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    }
}

/// `host: message` lines (stdout not a terminal). Write errors are ignored: a closed pipe
/// (`pogo apply plan.json | head`) must not stop a rollout.
pub struct Lines<'a> {
    out: &'a mut dyn Write,
    /// How often a progress line is written (none when `None`).
    every: Option<Duration>,
    began: std::time::Instant,
    last: std::time::Instant,
    hosts: usize,
    running: usize,
    done: usize,
    failed: usize,
    skipped: usize,
}

/// A view that shows nothing while the run goes on (`--quiet`): its summary says how it
/// ended.
pub struct Silent;

impl Reporter for Silent {
    fn report(&mut self, _event: &Event) {}
}

/// How often a view without a terminal writes a progress line, unless told otherwise.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl<'a> Lines<'a> {
    /// A line per event worth one, and a progress line every `every` (done, running,
    /// failed, left, elapsed, an estimate), so that a long rollout in a CI log shows it is
    /// alive.
    pub fn new(out: &'a mut dyn Write, every: Option<Duration>) -> Lines<'a> {
        let now = std::time::Instant::now();
        Lines {
            out,
            every,
            began: now,
            last: now,
            hosts: 0,
            running: 0,
            done: 0,
            failed: 0,
            skipped: 0,
        }
    }

    /// `Progress: 120 of 1000 done (3 failed), 8 running, 872 left; 1m30s elapsed, about
    /// 10m59s to go`.
    fn progress_line(&self) -> String {
        let elapsed = self.began.elapsed();
        let left = self
            .hosts
            .saturating_sub(self.done + self.running + self.skipped);
        let mut line = format!("Progress: {} of {} done", self.done, self.hosts);
        if self.failed > 0 {
            line.push_str(&format!(" ({} failed)", self.failed));
        }
        line.push_str(&format!(
            ", {} running, {left} left; {} elapsed",
            self.running,
            clock(elapsed)
        ));
        if self.done > 0 && left + self.running > 0 {
            let per_host = elapsed.as_secs_f64() / self.done as f64;
            let to_go = Duration::from_secs_f64(per_host * (left + self.running) as f64);
            line.push_str(&format!(", about {} to go", clock(to_go)));
        }
        line
    }
}

/// `1h02m`, `3m05s`, `42s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Reporter for Lines<'_> {
    fn report(&mut self, event: &Event) {
        match event {
            Event::RunStarted { hosts, .. } => self.hosts = *hosts,
            Event::HostStarted { .. } => self.running += 1,
            Event::HostFinished { result, .. } => {
                self.running = self.running.saturating_sub(1);
                self.done += 1;
                if *result != FinalState::Succeeded {
                    self.failed += 1;
                }
            }
            Event::HostsSkipped { hosts, .. } => self.skipped += hosts.len(),
            _ => {}
        }
        for line in event_lines(event) {
            let _ = writeln!(self.out, "{line}");
        }
        let _ = self.out.flush();
    }

    fn ticks(&self) -> bool {
        self.every.is_some()
    }

    fn tick(&mut self) {
        let Some(every) = self.every else {
            return;
        };
        if self.last.elapsed() < every {
            return;
        }
        self.last = std::time::Instant::now();
        let line = self.progress_line();
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}

/// `--json`: every event as one line of JSON, exactly as the journal records it.
pub struct Json<'a> {
    pub out: &'a mut dyn Write,
}

impl Reporter for Json<'_> {
    fn report(&mut self, event: &Event) {
        let line = serde_json::to_string(event).expect("events serialise");
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}

/// Where a message for the operator goes while a run is shown: above the live view on a
/// terminal, or on stderr.
#[derive(Clone)]
pub enum Notice {
    Stderr,
    Above(MultiProgress),
}

impl Notice {
    pub fn say(&self, text: &str) {
        match self {
            // Not eprintln!: with the terminal gone (SIGHUP), a failed write must not panic.
            Notice::Stderr => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
            Notice::Above(multi) => {
                let _ = multi.println(text);
            }
        }
    }
}

/// The live view on a terminal: an overall bar with counts, a line per thread and for the
/// unordered lane ([`Lanes`]), the hosts that run, and the lines of failures, retries and stops printed above it as they happen.
pub struct Progress {
    multi: MultiProgress,
    bar: ProgressBar,
    /// One line per thread (its current slot) and the unordered lane.
    lanes: Lanes,
    lane_lines: Vec<ProgressBar>,
    running_line: ProgressBar,
    /// Running hosts, in the order they started.
    running: Vec<String>,
    succeeded: usize,
    failed: usize,
    skipped: usize,
    cancelled: usize,
}

impl Progress {
    /// A view of the run of `plan`, `done` hosts of which finished in the `earlier` sessions
    /// of the run (their events).
    pub fn new(plan: &pogo_model::Plan, done: usize, earlier: &[Event]) -> Progress {
        let total = plan.hosts.len();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bar = multi.add(ProgressBar::new(total as u64));
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} hosts  {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        bar.set_position(done as u64);
        let mut lanes = Lanes::new(plan);
        for event in earlier {
            lanes.record(event);
        }
        let lane_style =
            ProgressStyle::with_template("  {wide_msg}").expect("the template is valid");
        let lane_lines: Vec<ProgressBar> = lanes
            .lines()
            .into_iter()
            .map(|line| {
                let lane = multi.add(ProgressBar::new_spinner());
                lane.set_style(lane_style.clone());
                lane.set_message(line);
                lane
            })
            .collect();
        let running_line = multi.add(ProgressBar::new_spinner());
        running_line.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg}").expect("the template is valid"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        running_line.enable_steady_tick(Duration::from_millis(120));
        Progress {
            multi,
            bar,
            lanes,
            lane_lines,
            running_line,
            running: Vec::new(),
            succeeded: 0,
            failed: 0,
            skipped: 0,
            cancelled: 0,
        }
    }

    pub fn notice(&self) -> Notice {
        Notice::Above(self.multi.clone())
    }

    /// Takes the view off the terminal: at the end of the run, or when pogo stops showing it
    /// (detaching from a job).
    pub fn clear(&self) {
        self.bar.finish_and_clear();
        for lane in &self.lane_lines {
            lane.finish_and_clear();
        }
        self.running_line.finish_and_clear();
        let _ = self.multi.clear();
    }

    fn redraw(&self) {
        let mut counts = vec![format!("{} succeeded", self.succeeded)];
        if self.failed > 0 {
            counts.push(format!("{} failed", self.failed));
        }
        if self.cancelled > 0 {
            counts.push(format!("{} cancelled", self.cancelled));
        }
        if self.skipped > 0 {
            counts.push(format!("{} skipped", self.skipped));
        }
        counts.push(format!("{} running", self.running.len()));
        self.bar.set_message(counts.join(", "));
        for (lane, line) in self.lane_lines.iter().zip(self.lanes.lines()) {
            lane.set_message(line);
        }
        let shown: Vec<&str> = self.running.iter().take(8).map(String::as_str).collect();
        let mut text = if shown.is_empty() {
            "waiting".to_string()
        } else {
            format!("running: {}", shown.join(", "))
        };
        if self.running.len() > shown.len() {
            text.push_str(&format!(" (+{} more)", self.running.len() - shown.len()));
        }
        // Without thread lines, why the unordered hosts wait goes here.
        if self.lanes.is_empty() {
            text.push_str(&self.lanes.reason(self.lanes.threads.len()));
        }
        self.running_line.set_message(text);
    }
}

impl Reporter for Progress {
    fn report(&mut self, event: &Event) {
        self.lanes.record(event);
        match event {
            Event::HostStarted { host, .. } => self.running.push(host.clone()),
            Event::HostFinished { host, result, .. } => {
                self.running.retain(|h| h != host);
                self.bar.inc(1);
                match result {
                    FinalState::Succeeded => self.succeeded += 1,
                    FinalState::Cancelled => self.cancelled += 1,
                    FinalState::Skipped => self.skipped += 1,
                    _ => self.failed += 1,
                }
            }
            Event::HostsSkipped { hosts, .. } => {
                self.skipped += hosts.len();
                self.bar.inc(hosts.len() as u64);
            }
            Event::RunFinished { .. } => {
                self.clear();
                return;
            }
            _ => {}
        }
        // Successes, starts and skips show in the counts; the rest is worth a line.
        let worth_a_line = match event {
            Event::HostFinished { result, .. } => *result != FinalState::Succeeded,
            Event::HostRetrying { .. }
            | Event::RunStopping { .. }
            | Event::RunBlocked { .. }
            | Event::GateStarted { .. }
            | Event::GatePassed { .. }
            | Event::GateFailed { .. }
            | Event::ApprovalWaiting { .. }
            | Event::Approved { .. }
            | Event::ApprovalExpired { .. } => true,
            _ => false,
        };
        if worth_a_line {
            for line in event_lines(event) {
                let _ = self.multi.println(line);
            }
        }
        self.redraw();
    }

    fn explains(&self) -> bool {
        true
    }

    fn waiting(&mut self, heads: &[HostWhy]) {
        self.lanes.explain(heads);
        self.redraw();
    }
}

/// At most this many thread lines in the live view; the rest are counted on one more line.
const THREAD_LINES: usize = 10;
/// Thread names are padded to line up, up to this width.
const NAME_WIDTH: usize = 20;

/// Where a host stands, for [`Lanes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Pending,
    Running,
    Succeeded,
    /// Failed, timed out, unreachable, or interrupted (its session ended while it ran).
    Failed,
    Skipped,
    Cancelled,
}

impl Mark {
    fn of(state: FinalState) -> Mark {
        match state {
            FinalState::Succeeded => Mark::Succeeded,
            FinalState::Skipped => Mark::Skipped,
            FinalState::Cancelled => Mark::Cancelled,
            FinalState::Failed { .. }
            | FinalState::TimedOut
            | FinalState::Unreachable
            | FinalState::Lost => Mark::Failed,
        }
    }
}

/// How many hosts of a slot (or of the unordered lane) stand where, indexed by `Mark as usize`.
#[derive(Debug, Clone, Default)]
struct Tally {
    total: usize,
    marks: [usize; 6],
}

impl Tally {
    fn get(&self, mark: Mark) -> usize {
        self.marks[mark as usize]
    }

    fn running(&self) -> usize {
        self.get(Mark::Running)
    }

    fn done(&self) -> usize {
        self.total - self.get(Mark::Pending) - self.running()
    }

    fn complete(&self) -> bool {
        self.done() == self.total
    }

    /// ` (1 failed, 2 skipped)`, or nothing when every host done succeeded.
    fn troubles(&self) -> String {
        let mut troubles = Vec::new();
        for (mark, word) in [
            (Mark::Failed, "failed"),
            (Mark::Cancelled, "cancelled"),
            (Mark::Skipped, "skipped"),
        ] {
            if self.get(mark) > 0 {
                troubles.push(format!("{} {word}", self.get(mark)));
            }
        }
        if troubles.is_empty() {
            String::new()
        } else {
            format!(" ({})", troubles.join(", "))
        }
    }

    /// `2/3 done (1 failed), 1 running`, or `, waiting` when none runs.
    fn text(&self) -> String {
        let mut text = format!("{}/{} done{}", self.done(), self.total, self.troubles());
        if self.running() > 0 {
            text.push_str(&format!(", {} running", self.running()));
        } else if !self.complete() {
            text.push_str(", waiting");
        }
        text
    }
}

/// Where a host sits in the plan: a slot of a thread, or the unordered lane.
#[derive(Debug, Clone, Copy)]
enum Place {
    Slot { thread: usize, slot: usize },
    Unordered,
}

struct LaneThread {
    name: String,
    /// Slot ids and their tallies, in the thread's order.
    slots: Vec<(String, Tally)>,
}

/// Where each thread of a plan stands (its current slot: the first not complete) and the
/// unordered lane, one line each, from the run's events: the per-thread status of the live
/// view. Pure: events in, lines out. Past [`THREAD_LINES`] threads, the running ones are shown
/// first, then the waiting ones, then the done ones, and the rest are counted on one line.
pub struct Lanes {
    threads: Vec<LaneThread>,
    unordered: Tally,
    index: HashMap<String, usize>,
    places: Vec<Vec<Place>>,
    marks: Vec<Mark>,
    width: usize,
    /// Per thread, then for the unordered lane: why its head waits (`web3: group ... is
    /// full`), as last explained ([`Lanes::explain`]).
    reasons: Vec<Option<String>>,
}

impl Lanes {
    pub fn new(plan: &pogo_model::Plan) -> Lanes {
        let index: HashMap<String, usize> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i))
            .collect();
        let mut places = vec![Vec::new(); plan.hosts.len()];
        let mut threads = Vec::new();
        for (t, thread) in plan.threads.iter().enumerate() {
            let mut slots = Vec::new();
            for (s, slot) in thread.slots.iter().enumerate() {
                let mut tally = Tally::default();
                for host in &slot.hosts {
                    if let Some(&i) = index.get(host) {
                        places[i].push(Place::Slot { thread: t, slot: s });
                        tally.total += 1;
                    }
                }
                tally.marks[Mark::Pending as usize] = tally.total;
                slots.push((slot.id.clone(), tally));
            }
            threads.push(LaneThread {
                name: thread.name.clone(),
                slots,
            });
        }
        let mut unordered = Tally::default();
        for host in &plan.unordered {
            if let Some(&i) = index.get(host) {
                places[i].push(Place::Unordered);
                unordered.total += 1;
            }
        }
        unordered.marks[Mark::Pending as usize] = unordered.total;
        let width = threads
            .iter()
            .map(|t| t.name.chars().count())
            .chain((unordered.total > 0).then_some("unordered".len()))
            .max()
            .unwrap_or(0)
            .min(NAME_WIDTH);
        Lanes {
            reasons: vec![None; threads.len() + 1],
            threads,
            unordered,
            index,
            places,
            marks: vec![Mark::Pending; plan.hosts.len()],
            width,
        }
    }

    /// Takes why the head of each thread waits, as the driver of the run found it; a head
    /// that nothing holds (it starts at its turn) gets no reason.
    pub fn explain(&mut self, heads: &[HostWhy]) {
        self.reasons.iter_mut().for_each(|r| *r = None);
        for head in heads {
            let Some(why) = head.why.as_ref().filter(|why| why.holds()) else {
                continue;
            };
            let lane = match &head.thread {
                Some(name) => match self.threads.iter().position(|t| &t.name == name) {
                    Some(t) => t,
                    None => continue,
                },
                None => self.threads.len(),
            };
            self.reasons[lane] = Some(format!("{}: {why}", head.host));
        }
    }

    /// ` — web3: group ... is full`, or nothing.
    fn reason(&self, lane: usize) -> String {
        self.reasons[lane]
            .as_ref()
            .map_or_else(String::new, |r| format!(" \u{2014} {r}"))
    }

    /// Whether there is anything to show: a plan without threads has only the overall bar.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    fn set(&mut self, host: &str, mark: Mark) {
        let Some(&i) = self.index.get(host) else {
            return;
        };
        let old = std::mem::replace(&mut self.marks[i], mark);
        for &place in &self.places[i] {
            let tally = match place {
                Place::Slot { thread, slot } => &mut self.threads[thread].slots[slot].1,
                Place::Unordered => &mut self.unordered,
            };
            tally.marks[old as usize] -= 1;
            tally.marks[mark as usize] += 1;
        }
    }

    pub fn record(&mut self, event: &Event) {
        match event {
            // A host still running when a session starts was interrupted: it counts as failed.
            Event::RunStarted { .. } => {
                let running: Vec<String> = self
                    .index
                    .iter()
                    .filter(|(_, &i)| self.marks[i] == Mark::Running)
                    .map(|(h, _)| h.clone())
                    .collect();
                for host in running {
                    self.set(&host, Mark::Failed);
                }
            }
            Event::HostStarted { host, .. } => self.set(host, Mark::Running),
            Event::HostFinished { host, result, .. } => self.set(host, Mark::of(*result)),
            Event::HostsSkipped { hosts, .. } => {
                for host in hosts {
                    self.set(host, Mark::Skipped);
                }
            }
            _ => {}
        }
    }

    /// `foo        step 2/3 foo.$colo.two  2/3 done, 1 running`, one per thread shown, then
    /// `+N more threads` if any are not, then the unordered lane.
    pub fn lines(&self) -> Vec<String> {
        if self.is_empty() {
            return Vec::new();
        }
        let name = |text: &str| {
            let cut: String = text.chars().take(self.width).collect();
            format!("{cut:<w$}", w = self.width)
        };
        // 0 running, 1 waiting, 2 done.
        let standing = |t: &LaneThread| {
            if t.slots.iter().any(|(_, tally)| tally.running() > 0) {
                0
            } else if t.slots.iter().any(|(_, tally)| !tally.complete()) {
                1
            } else {
                2
            }
        };
        let mut shown: Vec<usize> = (0..self.threads.len()).collect();
        let mut hidden = [0usize; 3];
        if self.threads.len() > THREAD_LINES {
            let standings: Vec<usize> = self.threads.iter().map(standing).collect();
            shown.sort_by_key(|&t| standings[t]);
            for &t in &shown[THREAD_LINES..] {
                hidden[standings[t]] += 1;
            }
            shown.truncate(THREAD_LINES);
            shown.sort_unstable();
        }
        let mut lines = Vec::new();
        for t in shown {
            let thread = &self.threads[t];
            let steps = thread.slots.len();
            let line = match thread.slots.iter().position(|(_, tally)| !tally.complete()) {
                Some(s) => {
                    let (id, tally) = &thread.slots[s];
                    format!(
                        "{}  step {}/{steps} {id}  {}{}",
                        name(&thread.name),
                        s + 1,
                        tally.text(),
                        self.reason(t)
                    )
                }
                None => {
                    let mut all = Tally::default();
                    for (_, tally) in &thread.slots {
                        for (sum, n) in all.marks.iter_mut().zip(tally.marks) {
                            *sum += n;
                        }
                    }
                    format!(
                        "{}  {} done{}",
                        name(&thread.name),
                        if steps == 1 {
                            "1 step".to_string()
                        } else {
                            format!("all {steps} steps")
                        },
                        all.troubles()
                    )
                }
            };
            lines.push(line);
        }
        let more: usize = hidden.iter().sum();
        if more > 0 {
            let counts: Vec<String> = [(0, "running"), (1, "waiting"), (2, "done")]
                .iter()
                .filter(|(k, _)| hidden[*k] > 0)
                .map(|(k, word)| format!("{} {word}", hidden[*k]))
                .collect();
            lines.push(format!("+{more} more threads ({})", counts.join(", ")));
        }
        if self.unordered.total > 0 {
            let reason = if self.unordered.complete() {
                String::new()
            } else {
                self.reason(self.threads.len())
            };
            lines.push(format!(
                "{}  {}{reason}",
                name("unordered"),
                self.unordered.text()
            ));
        }
        lines
    }
}

/// Feeds every event to the ledger, then to the view.
pub struct Tee<'a> {
    pub ledger: &'a mut Ledger,
    pub view: &'a mut dyn Reporter,
}

impl Reporter for Tee<'_> {
    fn report(&mut self, event: &Event) {
        self.ledger.record(event);
        self.view.report(event);
    }

    fn explains(&self) -> bool {
        self.view.explains()
    }

    fn waiting(&mut self, heads: &[HostWhy]) {
        self.view.waiting(heads);
    }

    fn ticks(&self) -> bool {
        self.view.ticks()
    }

    fn tick(&mut self) {
        self.view.tick();
    }
}

/// Where a host stands, as the events tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Never started (yet).
    Pending,
    Running,
    /// Started in a session that ended without it finishing: that pogo died. It counts as
    /// failed on a resume.
    Interrupted,
    Done(FinalState),
}

impl Standing {
    fn word(self) -> &'static str {
        match self {
            Standing::Pending => "not run",
            Standing::Running => "running",
            Standing::Interrupted => "interrupted",
            Standing::Done(state) => state.word(),
        }
    }
}

/// One host's row.
#[derive(Debug, Clone)]
pub struct HostRecord {
    pub standing: Standing,
    pub attempts: u32,
    pub duration_ms: Option<u64>,
    /// How its last attempt ended, for a person, as its `host_finished` event said.
    pub message: String,
    /// Why its output could not all be kept, if it could not (`output_lost`).
    pub output_lost: Option<String>,
}

/// Each host's standing over every session of a run, from its events.
pub struct Ledger {
    names: Vec<String>,
    index: HashMap<String, usize>,
    pub hosts: Vec<HostRecord>,
    /// Sessions seen (one per `run_started`).
    pub sessions: usize,
    /// Why the last session stopped or was blocked.
    pub reasons: Vec<String>,
    /// How the last session ended, if it did.
    pub result: Option<RunResult>,
}

impl Ledger {
    pub fn new(hosts: &[String]) -> Ledger {
        Ledger {
            names: hosts.to_vec(),
            index: hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (h.clone(), i))
                .collect(),
            hosts: vec![
                HostRecord {
                    standing: Standing::Pending,
                    attempts: 0,
                    duration_ms: None,
                    message: String::new(),
                    output_lost: None,
                };
                hosts.len()
            ],
            sessions: 0,
            reasons: Vec::new(),
            result: None,
        }
    }

    fn host(&mut self, name: &str) -> Option<&mut HostRecord> {
        let i = *self.index.get(name)?;
        Some(&mut self.hosts[i])
    }

    pub fn record(&mut self, event: &Event) {
        match event {
            Event::RunStarted { .. } => {
                self.sessions += 1;
                self.reasons.clear();
                self.result = None;
                // A host still running when a new session starts was interrupted.
                self.interrupt_running();
            }
            Event::HostStarted { host, .. } => {
                if let Some(h) = self.host(host) {
                    *h = HostRecord {
                        standing: Standing::Running,
                        attempts: 1,
                        duration_ms: None,
                        message: String::new(),
                        output_lost: None,
                    };
                }
            }
            Event::HostRetrying { host, attempt, .. } => {
                if let Some(h) = self.host(host) {
                    h.attempts = *attempt;
                }
            }
            Event::HostFinished {
                host,
                result,
                attempts,
                duration_ms,
                message,
                ..
            } => {
                if let Some(h) = self.host(host) {
                    *h = HostRecord {
                        standing: Standing::Done(*result),
                        attempts: *attempts,
                        duration_ms: Some(*duration_ms),
                        message: message.clone(),
                        output_lost: h.output_lost.take(),
                    };
                }
            }
            Event::HostsSkipped { hosts, .. } => {
                for host in hosts {
                    if let Some(h) = self.host(host) {
                        h.standing = Standing::Done(FinalState::Skipped);
                    }
                }
            }
            Event::RunStopping { reason, .. } => {
                if !self.reasons.contains(reason) {
                    self.reasons.push(reason.clone());
                }
            }
            Event::RunBlocked { reasons, .. } => self.reasons.extend(reasons.iter().cloned()),
            Event::OutputLost { host, reason, .. } => {
                if let Some(h) = self.host(host) {
                    h.output_lost = Some(reason.clone());
                }
            }
            Event::RunFinished { result, .. } => self.result = Some(*result),
            Event::GateStarted { .. }
            | Event::GatePassed { .. }
            | Event::GateFailed { .. }
            | Event::ApprovalWaiting { .. }
            | Event::Approved { .. }
            | Event::ApprovalExpired { .. } => {}
        }
    }

    /// The run's process is gone: hosts it left running were interrupted.
    pub fn interrupt_running(&mut self) {
        for h in &mut self.hosts {
            if h.standing == Standing::Running {
                h.standing = Standing::Interrupted;
            }
        }
    }

    fn count(&self, f: impl Fn(Standing) -> bool) -> usize {
        self.hosts.iter().filter(|h| f(h.standing)).count()
    }

    /// `7 succeeded, 1 failed, 1 skipped`: every state that some host is in.
    pub fn counts(&self) -> String {
        let words = [
            "succeeded",
            "failed",
            "timed out",
            "unreachable",
            "lost",
            "interrupted",
            "cancelled",
            "skipped",
            "running",
            "not run",
        ];
        let parts: Vec<String> = words
            .iter()
            .filter_map(|word| {
                let n = self.count(|s| s.word() == *word);
                (n > 0).then(|| format!("{n} {word}"))
            })
            .collect();
        parts.join(", ")
    }

    /// The hosts whose output the summary shows: the first that failed, or with `every`,
    /// every host that ran (started, whatever its end).
    fn shown_output(&self, every: bool) -> Vec<usize> {
        if !every {
            return self.failed().into_iter().take(TAILS_SHOWN).collect();
        }
        (0..self.hosts.len())
            .filter(|&i| {
                !matches!(
                    self.hosts[i].standing,
                    Standing::Pending | Standing::Done(FinalState::Skipped)
                )
            })
            .collect()
    }

    /// Hosts that ended badly (not cancelled), in plan order: those whose output the summary
    /// shows.
    fn failed(&self) -> Vec<usize> {
        self.troubled()
            .filter(|&i| {
                !matches!(
                    self.hosts[i].standing,
                    Standing::Running | Standing::Done(FinalState::Cancelled)
                )
            })
            .collect()
    }

    /// Hosts that did not succeed and were not skipped, in plan order.
    fn troubled(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.hosts.len()).filter(|&i| {
            !matches!(
                self.hosts[i].standing,
                Standing::Done(FinalState::Succeeded | FinalState::Skipped) | Standing::Pending
            )
        })
    }
}

/// What the summary is of: a local run, or a job on a dispatcher.
pub enum Where<'a> {
    /// A local run: its directory holds each host's output.
    Run(&'a RunDir),
    /// A job on a dispatcher; `output` holds the output of the hosts [`tail_hosts`] names, as
    /// their logs would (a host missing from it is left out: its output could not be had).
    Job {
        id: &'a str,
        output: &'a HashMap<String, String>,
    },
}

/// How a run is shown at its end and by `pogo log`.
pub struct SummaryOptions<'a> {
    pub place: Where<'a>,
    /// Added to the commands the summary suggests (`--state-dir DIR` when one was given for a
    /// run; the dispatcher flags given, for a job).
    pub flags: String,
    /// Every host in the table, however many.
    pub full: bool,
    /// Whether a process runs it now.
    pub running: bool,
    /// Show the output of every host that ran (`--verbose`), not only of the first hosts
    /// that failed.
    pub every_output: bool,
}

/// The hosts whose output [`summary`] shows, in plan order: the first that failed, or with
/// `every`, every host that ran.
pub fn tail_hosts(ledger: &Ledger, every: bool) -> Vec<String> {
    ledger
        .shown_output(every)
        .into_iter()
        .map(|i| ledger.names[i].clone())
        .collect()
}

/// The summary table, the totals and why the run stopped, the last lines of failed hosts'
/// output, and what to do next.
/// How much of the end of a failed host's log the summary reads, and how much of a line it
/// shows: a 50 MB line of output must not become the summary.
const TAIL_BYTES: usize = 64 * 1024;
const TAIL_LINE_CHARS: usize = 300;

/// The end of a log, from a whole line on: at most [`TAIL_BYTES`], whatever the file's size.
fn log_tail(path: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let length = file.metadata().map_or(0, |m| m.len());
    let from = length.saturating_sub(TAIL_BYTES as u64);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match (from, text.find('\n')) {
        // Started inside a line: that part line is left out, unless it is all there is.
        (f, Some(end)) if f > 0 && end + 1 < text.len() => text[end + 1..].to_string(),
        _ => text,
    }
}

pub fn summary(ledger: &Ledger, options: &SummaryOptions) -> String {
    let mut out = String::new();
    let total = ledger.hosts.len();
    let rows: Vec<usize> = if options.full || total <= HOSTS_IN_FULL {
        (0..total).collect()
    } else {
        ledger.troubled().take(ROWS_SHOWN).collect()
    };
    if !rows.is_empty() {
        let mut table = new_table();
        table.set_header(vec!["Host", "State", "Exit", "Attempts", "Duration"]);
        for &i in &rows {
            let h = &ledger.hosts[i];
            let exit = match h.standing {
                Standing::Done(FinalState::Succeeded) => "0".to_string(),
                Standing::Done(FinalState::Failed { exit_code }) => exit_code.to_string(),
                _ => String::new(),
            };
            let attempts = if h.attempts == 0 {
                String::new()
            } else {
                h.attempts.to_string()
            };
            table.add_row(vec![
                Cell::new(&ledger.names[i]),
                Cell::new(h.standing.word()),
                Cell::new(exit),
                Cell::new(attempts),
                Cell::new(h.duration_ms.map(duration_cell).unwrap_or_default()),
            ]);
        }
        out.push_str(&render(&mut table));
        out.push('\n');
    }
    if rows.len() < total {
        let rest = total - rows.len();
        out.push_str(&format!(
            "{} not listed ({}); --full lists every host\n",
            plural(rest, "host"),
            ledger_rest(ledger, &rows)
        ));
    }

    let outcome = match (ledger.result, options.running) {
        (_, true) => "Running",
        (Some(RunResult::Succeeded), _) => "Succeeded",
        (Some(RunResult::Failed), _) => "Failed",
        (Some(RunResult::Stopped), _) => "Stopped",
        (None, _) => "Interrupted",
    };
    let succeeded = ledger.count(|s| s == Standing::Done(FinalState::Succeeded));
    if succeeded == total {
        out.push_str(&format!("{outcome}: all {}\n", plural(total, "host")));
    } else {
        out.push_str(&format!(
            "{outcome}: {} ({})\n",
            ledger.counts(),
            plural(total, "host")
        ));
    }
    for reason in &ledger.reasons {
        out.push_str(&format!("  because {reason}\n"));
    }
    let interrupted = ledger.count(|s| s == Standing::Interrupted);
    if interrupted > 0 && !options.running {
        let (were, them, they, counts) = match interrupted {
            1 => ("1 host was".to_string(), "it", "it", "it counts"),
            n => (format!("{n} hosts were"), "them", "they", "they count"),
        };
        match options.place {
            Where::Run(_) => out.push_str(&format!(
                "  {were} interrupted: started, but the pogo running {them} ended before {they} \
                 finished; {counts} as failed, and a resume runs {them} again only with \
                 --retry-failed\n"
            )),
            Where::Job { .. } => out.push_str(&format!(
                "  {were} interrupted: started, but the session running {them} ended before \
                 {they} finished; {counts} as failed, and only a retry runs {them} again\n"
            )),
        }
    }

    // The output of failed hosts, where the operator looks first (of every host, verbose).
    let mut silent = Vec::new();
    for i in ledger.shown_output(options.every_output) {
        let name = &ledger.names[i];
        let text = match options.place {
            Where::Run(dir) => log_tail(&dir.log_path(name)),
            Where::Job { output, .. } => match output.get(name) {
                Some(text) => {
                    let from = text.len().saturating_sub(TAIL_BYTES);
                    let from = (from..text.len())
                        .find(|&b| text.is_char_boundary(b))
                        .unwrap_or(text.len());
                    text[from..].to_string()
                }
                None => continue,
            },
        };
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(TAIL_LINES);
        if lines.is_empty() {
            // An unreachable host never ran: its reason says more than its silence. A host
            // that succeeded in silence is no news.
            let h = &ledger.hosts[i];
            if matches!(h.standing, Standing::Done(FinalState::Succeeded)) {
                continue;
            }
            if h.message.is_empty() {
                silent.push(name.clone());
            } else {
                silent.push(format!("{name} ({})", printable(&h.message)));
            }
            continue;
        }
        out.push_str(&format!(
            "\n{name}: {}\n",
            if start > 0 {
                format!("last {TAIL_LINES} lines of its output")
            } else {
                "its output".to_string()
            }
        ));
        for line in &lines[start..] {
            out.push_str(&format!("  | {}\n", printable(&cut(line, TAIL_LINE_CHARS))));
        }
    }
    if !silent.is_empty() {
        out.push_str(&format!("\n{} printed nothing\n", silent.join(", ")));
    }
    let lost: Vec<String> = ledger
        .names
        .iter()
        .zip(&ledger.hosts)
        .filter_map(|(name, h)| {
            h.output_lost
                .as_ref()
                .map(|why| format!("  {name}: {}\n", printable(why)))
        })
        .collect();
    if !lost.is_empty() {
        out.push_str(&format!(
            "\nOutput lost: the logs of {} are not whole\n{}",
            plural(lost.len(), "host"),
            lost.concat()
        ));
    }
    let failed = ledger.failed().len();
    if failed > TAILS_SHOWN && !options.every_output {
        out.push_str(&format!(
            "\n(the output of {} more failed hosts is not shown)\n",
            failed - TAILS_SHOWN
        ));
    }

    let flag = &options.flags;
    let failures = ledger.count(|s| {
        matches!(
            s,
            Standing::Interrupted
                | Standing::Done(
                    FinalState::Failed { .. } | FinalState::TimedOut | FinalState::Unreachable
                )
        )
    });
    let id = match options.place {
        Where::Run(dir) => dir.id().as_str(),
        Where::Job { id, .. } => {
            out.push_str(&format!("\nJob {id}\n"));
            out.push_str(&format!("  output of a host:  pogo log {id} HOST{flag}\n"));
            if !options.running && ledger.result != Some(RunResult::Succeeded) {
                if ledger.result != Some(RunResult::Failed) {
                    out.push_str(&format!("  resume it:         pogo resume {id}{flag}\n"));
                }
                // A job's retry also runs lost and cancelled hosts again.
                let retried = failures
                    + ledger.count(|s| {
                        matches!(s, Standing::Done(FinalState::Lost | FinalState::Cancelled))
                    });
                if retried > 0 {
                    out.push_str(&format!("  retry the failed:  pogo retry {id}{flag}\n"));
                }
            }
            return out;
        }
    };
    out.push_str(&format!("\nRun {id}\n"));
    out.push_str(&format!("  output of a host:  pogo log {id} HOST{flag}\n"));
    if !options.running && ledger.result != Some(RunResult::Succeeded) {
        if ledger.result == Some(RunResult::Failed) {
            out.push_str(&format!(
                "  retry the failed:  pogo apply --resume {id} --retry-failed{flag}\n"
            ));
        } else {
            let retry = if failures > 0 {
                " [--retry-failed]"
            } else {
                ""
            };
            out.push_str(&format!(
                "  resume it:         pogo apply --resume {id}{retry}{flag}\n"
            ));
        }
    }
    out
}

/// `9,950 succeeded, 40 skipped` for the hosts not in the table.
fn ledger_rest(ledger: &Ledger, rows: &[usize]) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    let mut listed = vec![false; ledger.hosts.len()];
    for &i in rows {
        listed[i] = true;
    }
    for (i, h) in ledger.hosts.iter().enumerate() {
        if listed[i] {
            continue;
        }
        let word = h.standing.word();
        match counts.iter_mut().find(|(w, _)| *w == word) {
            Some((_, n)) => *n += 1,
            None => counts.push((word, 1)),
        }
    }
    counts
        .iter()
        .map(|(w, n)| format!("{n} {w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_the_originals() {
        let finished = |result, attempts, message: &str| Event::HostFinished {
            host: "host3".into(),
            result,
            attempts,
            duration_ms: 10,
            message: message.into(),
            phase: None,
            at_ms: 0,
        };
        let line = |e: Event| event_lines(&e).join("\n");
        assert_eq!(
            line(Event::HostStarted {
                host: "host2".into(),
                at_ms: 0
            }),
            "host2: Running target"
        );
        assert_eq!(
            line(finished(FinalState::Succeeded, 1, "exit code 0")),
            "host3: Success"
        );
        assert_eq!(
            line(finished(
                FinalState::Failed { exit_code: 3 },
                1,
                "exit code 3"
            )),
            "host3: Failed (exit code 3)"
        );
        assert_eq!(
            line(finished(
                FinalState::Failed { exit_code: 3 },
                2,
                "exit code 3"
            )),
            "host3: Failed (exit code 3, after 2 attempts)"
        );
        assert_eq!(
            line(finished(
                FinalState::TimedOut,
                1,
                "timed out; the command was killed on the target"
            )),
            "host3: Timed out (the command was killed on the target)"
        );
        assert_eq!(
            line(Event::HostRetrying {
                host: "host3".into(),
                attempt: 2,
                after: "exit code 1".into(),
                delay_ms: 5000,
                at_ms: 0
            }),
            "host3: Retrying after exit code 1 (attempt 2, in 5s)"
        );
        assert_eq!(
            line(Event::HostsSkipped {
                hosts: vec!["a".into(), "b".into()],
                at_ms: 0
            }),
            "a: Skipped\nb: Skipped"
        );
    }

    /// A plan of `threads` (name, slots of hosts) and `unordered` hosts.
    fn plan(threads: &[(&str, &[&[&str]])], unordered: &[&str]) -> pogo_model::Plan {
        let mut hosts: Vec<String> = Vec::new();
        let mut specs = Vec::new();
        for (name, slots) in threads {
            let slots: Vec<serde_json::Value> = slots
                .iter()
                .enumerate()
                .map(|(i, members)| {
                    for h in *members {
                        if !hosts.iter().any(|x| x == h) {
                            hosts.push(h.to_string());
                        }
                    }
                    serde_json::json!({"id": format!("{name}.s{}", i + 1), "step": format!("s{}", i + 1), "hosts": members})
                })
                .collect();
            specs.push(serde_json::json!({"name": name, "filter": null, "slots": slots}));
        }
        hosts.extend(unordered.iter().map(|h| h.to_string()));
        serde_json::from_value(serde_json::json!({
            "format_version": 1,
            "producer": "test",
            "source": {"config": "test.cfg", "spec": null},
            "digests": {"config": "sha256:0", "inventory": "sha256:0"},
            "command": "true",
            "options": {"timeout": 600, "retries": 0, "max_failures": {"value": 0}, "run_timeout": null},
            "hosts": hosts,
            "threads": specs,
            "unordered": unordered,
            "not_in_config": [],
            "external_tags": [],
            "constraints": [],
            "edges": [],
            "warnings": [],
        }))
        .expect("a valid plan")
    }

    fn started(host: &str) -> Event {
        Event::HostStarted {
            host: host.into(),
            at_ms: 0,
        }
    }

    fn finished(host: &str, result: FinalState) -> Event {
        Event::HostFinished {
            host: host.into(),
            result,
            attempts: 1,
            duration_ms: 1,
            message: String::new(),
            phase: None,
            at_ms: 0,
        }
    }

    fn run_started(resumed: bool) -> Event {
        Event::RunStarted {
            run_id: "r".into(),
            hosts: 0,
            command: "x".into(),
            resumed,
            overrides: Vec::new(),
            only: None,
            concurrent: None,
            at_ms: 0,
        }
    }

    #[test]
    fn lanes_show_each_threads_current_slot_and_the_unordered_lane() {
        let plan = plan(
            &[
                ("foo", &[&["h1", "h2"], &["h3", "h4", "h5"]]),
                ("bar", &[&["h6"]]),
            ],
            &["u1", "u2"],
        );
        let mut lanes = Lanes::new(&plan);
        assert_eq!(
            lanes.lines(),
            [
                "foo        step 1/2 foo.s1  0/2 done, waiting",
                "bar        step 1/1 bar.s1  0/1 done, waiting",
                "unordered  0/2 done, waiting",
            ]
        );
        for event in [
            run_started(false),
            started("h1"),
            started("h2"),
            started("h6"),
            started("u1"),
            finished("h1", FinalState::Succeeded),
            finished("h2", FinalState::Succeeded),
            finished("h6", FinalState::Failed { exit_code: 3 }),
            finished("u1", FinalState::Succeeded),
            started("h3"),
            started("h4"),
            finished("h3", FinalState::Succeeded),
        ] {
            lanes.record(&event);
        }
        assert_eq!(
            lanes.lines(),
            [
                "foo        step 2/2 foo.s2  1/3 done, 1 running",
                "bar        1 step done (1 failed)",
                "unordered  1/2 done, waiting",
            ]
        );
        for event in [
            finished("h4", FinalState::TimedOut),
            Event::HostsSkipped {
                hosts: vec!["h5".into(), "u2".into()],
                at_ms: 0,
            },
        ] {
            lanes.record(&event);
        }
        assert_eq!(
            lanes.lines(),
            [
                "foo        all 2 steps done (1 failed, 1 skipped)",
                "bar        1 step done (1 failed)",
                "unordered  2/2 done (1 skipped)",
            ]
        );
    }

    #[test]
    fn a_waiting_lane_says_why_its_head_waits() {
        use pogo_executor::why::{Holder, Why};
        let plan = plan(&[("foo", &[&["h1", "h2"]]), ("bar", &[&["h3"]])], &["u1"]);
        let mut lanes = Lanes::new(&plan);
        for event in [run_started(false), started("h1")] {
            lanes.record(&event);
        }
        let full = Why::Group {
            group: "$colo.east".into(),
            fleet: Some("prod".into()),
            revision: Some(1),
            max_parallel: 1,
            down: 1,
            holders: vec![Holder {
                host: "h1".into(),
                state: "running".into(),
                job: Some("J2".into()),
            }],
        };
        lanes.explain(&[
            HostWhy::new(
                "h2".into(),
                Some("foo".into()),
                "pending".into(),
                Some(full),
            ),
            // Nothing holds h3: it is not worth a word.
            HostWhy::new(
                "h3".into(),
                Some("bar".into()),
                "pending".into(),
                Some(Why::Ready),
            ),
            HostWhy::new(
                "u1".into(),
                None,
                "pending".into(),
                Some(Why::Busy { job: "J9".into() }),
            ),
        ]);
        assert_eq!(
            lanes.lines(),
            [
                "foo        step 1/1 foo.s1  0/2 done, 1 running \u{2014} h2: group `$colo.east` \
                 (fleet prod, revision 1) is full, 1 of 1 down: h1 running in job J2",
                "bar        step 1/1 bar.s1  0/1 done, waiting",
                "unordered  0/1 done, waiting \u{2014} u1: busy in job J9",
            ]
        );
        lanes.explain(&[]);
        assert_eq!(
            lanes.lines()[0],
            "foo        step 1/1 foo.s1  0/2 done, 1 running"
        );
    }

    #[test]
    fn a_resumed_run_counts_the_hosts_of_a_dead_session_as_failed_until_they_run_again() {
        let plan = plan(&[("foo", &[&["h1", "h2"], &["h3"]])], &[]);
        let mut lanes = Lanes::new(&plan);
        for event in [
            run_started(false),
            started("h1"),
            started("h2"),
            finished("h1", FinalState::Succeeded),
            // pogo dies; the run is resumed.
            run_started(true),
        ] {
            lanes.record(&event);
        }
        assert_eq!(lanes.lines(), ["foo  step 2/2 foo.s2  0/1 done, waiting"]);
        // --retry-failed runs h2 again: its slot is current again.
        lanes.record(&started("h2"));
        assert_eq!(lanes.lines(), ["foo  step 1/2 foo.s1  1/2 done, 1 running"]);
    }

    #[test]
    fn past_ten_threads_the_busy_ones_show_and_the_rest_are_counted() {
        let names: Vec<String> = (1..=25).map(|i| format!("t{i:02}")).collect();
        let hosts: Vec<Vec<String>> = names.iter().map(|n| vec![format!("{n}-h")]).collect();
        let host_refs: Vec<Vec<&str>> = hosts
            .iter()
            .map(|h| h.iter().map(String::as_str).collect())
            .collect();
        let slots: Vec<[&[&str]; 1]> = host_refs.iter().map(|h| [h.as_slice()]).collect();
        let threads: Vec<(&str, &[&[&str]])> = names
            .iter()
            .zip(&slots)
            .map(|(n, s)| (n.as_str(), &s[..]))
            .collect();
        let plan = plan(&threads, &[]);
        let mut lanes = Lanes::new(&plan);
        let lines = lanes.lines();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "t01  step 1/1 t01.s1  0/1 done, waiting");
        assert_eq!(lines[10], "+15 more threads (15 waiting)");
        // The first five are done, t20 and t25 run: those two are shown first.
        for i in 1..=5 {
            lanes.record(&started(&format!("t{i:02}-h")));
            lanes.record(&finished(&format!("t{i:02}-h"), FinalState::Succeeded));
        }
        lanes.record(&started("t20-h"));
        lanes.record(&started("t25-h"));
        let lines = lanes.lines();
        assert_eq!(lines.len(), 11, "the view keeps its height");
        let shown: Vec<&str> = lines[..10].iter().map(|l| &l[..3]).collect();
        assert_eq!(
            shown,
            ["t06", "t07", "t08", "t09", "t10", "t11", "t12", "t13", "t20", "t25"]
        );
        assert_eq!(lines[9], "t25  step 1/1 t25.s1  0/1 done, 1 running");
        assert_eq!(lines[10], "+15 more threads (10 waiting, 5 done)");
    }

    #[test]
    fn durations_are_short_and_fixed_in_shape() {
        assert_eq!(duration_cell(0), "0.00s");
        assert_eq!(duration_cell(215), "0.21s");
        assert_eq!(duration_cell(12_300), "12.30s");
        assert_eq!(duration_cell(125_000), "2m05s");
        assert_eq!(duration_cell(3_720_000), "1h02m");
        assert_eq!(short_duration(250), "250ms");
        assert_eq!(short_duration(1500), "1.5s");
    }

    #[test]
    fn the_ledger_keeps_the_last_word_and_marks_hosts_of_a_dead_session_interrupted() {
        let hosts: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut ledger = Ledger::new(&hosts);
        let started = |resumed| Event::RunStarted {
            run_id: "r".into(),
            hosts: 3,
            command: "x".into(),
            resumed,
            overrides: Vec::new(),
            only: None,
            concurrent: None,
            at_ms: 0,
        };
        ledger.record(&started(false));
        ledger.record(&Event::HostStarted {
            host: "a".into(),
            at_ms: 0,
        });
        ledger.record(&Event::HostStarted {
            host: "b".into(),
            at_ms: 0,
        });
        ledger.record(&Event::HostFinished {
            host: "a".into(),
            result: FinalState::Succeeded,
            attempts: 1,
            duration_ms: 5,
            message: String::new(),
            phase: None,
            at_ms: 5,
        });
        // The process dies; a new session starts.
        ledger.record(&started(true));
        assert_eq!(ledger.hosts[1].standing, Standing::Interrupted);
        assert_eq!(ledger.counts(), "1 succeeded, 1 interrupted, 1 not run");
        assert_eq!(ledger.sessions, 2);
    }

    #[test]
    fn a_jobs_summary_shows_fetched_output_and_suggests_the_job_commands() {
        let hosts: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let mut ledger = Ledger::new(&hosts);
        let done = |host: &str, result| Event::HostFinished {
            host: host.into(),
            result,
            attempts: 1,
            duration_ms: 5,
            message: String::new(),
            phase: None,
            at_ms: 5,
        };
        ledger.record(&Event::RunStarted {
            run_id: "job-x".into(),
            hosts: 4,
            command: "x".into(),
            resumed: false,
            overrides: Vec::new(),
            only: None,
            concurrent: None,
            at_ms: 0,
        });
        ledger.record(&done("a", FinalState::Succeeded));
        ledger.record(&done("b", FinalState::Failed { exit_code: 3 }));
        ledger.record(&done("c", FinalState::Lost));
        ledger.record(&Event::HostsSkipped {
            hosts: vec!["d".into()],
            at_ms: 6,
        });
        ledger.record(&Event::RunFinished {
            result: RunResult::Stopped,
            succeeded: 1,
            failed: 2,
            timed_out: 0,
            unreachable: 0,
            skipped: 1,
            cancelled: 0,
            lost: 0,
            at_ms: 7,
        });
        assert_eq!(tail_hosts(&ledger, false), ["b", "c"]);
        assert_eq!(tail_hosts(&ledger, true), ["a", "b", "c"]);
        // The output of c could not be had: it is left out, not said to be empty.
        let output = HashMap::from([("b".to_string(), "stderr: boom\n".to_string())]);
        let text = summary(
            &ledger,
            &SummaryOptions {
                place: Where::Job {
                    id: "job-x",
                    output: &output,
                },
                flags: " --dispatcher https://d:1".into(),
                full: false,
                running: false,
                every_output: false,
            },
        );
        assert!(
            text.contains("Stopped: 1 succeeded, 1 failed, 1 lost, 1 skipped (4 hosts)"),
            "{text}"
        );
        assert!(
            text.contains("\nb: its output\n  | stderr: boom\n"),
            "{text}"
        );
        assert!(!text.contains("printed nothing"), "{text}");
        assert!(
            text.ends_with(
                "\nJob job-x\n  \
                 output of a host:  pogo log job-x HOST --dispatcher https://d:1\n  \
                 resume it:         pogo resume job-x --dispatcher https://d:1\n  \
                 retry the failed:  pogo retry job-x --dispatcher https://d:1\n"
            ),
            "{text}"
        );
    }
}
