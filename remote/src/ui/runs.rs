//! The runs of a local state dir, in the shapes of the dispatcher's API: `pogo ui` serves them
//! under `/local/v1/runs`, so the dashboard shows a local run with the very pages it shows a
//! job with. Everything is read from the run directory (`pogo apply` writes it; this only
//! reads), so a run that another process runs now is shown as it goes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pogo_executor::events::{Event, FinalState, RunResult};
use pogo_executor::rundir::{self, RunDir, RunDirError};
use pogo_model::Plan;

use pogo_views::report::{Ledger, Standing};

use crate::api::{Counts, EventRecord, HostEntry, JobDetail, JobState, JobSummary, OutputRecord};

/// Why something of a local run cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    /// `pogo ui` shows no local runs.
    #[error("pogo ui was started without a state dir: it shows the dispatcher's jobs only")]
    Off,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unreadable(String),
}

impl From<RunDirError> for RunsError {
    fn from(error: RunDirError) -> Self {
        match error {
            RunDirError::NotFound { .. } => RunsError::NotFound(error.to_string()),
            other => RunsError::Unreadable(other.to_string()),
        }
    }
}

/// The runs of one state dir. What a run's journal tells is kept by the journal's length, so
/// that listing runs again (the dashboard does every few seconds) reads only the journals that
/// grew.
#[derive(Debug, Clone)]
pub struct LocalRuns {
    state_dir: PathBuf,
    told: Arc<Mutex<Told>>,
}

/// Each run's tale by its id, with the length of the journal it was read from.
type Told = HashMap<String, (u64, Arc<Tale>)>;

/// What a run's journal tells, whatever process holds it now.
#[derive(Debug, Default)]
struct Tale {
    command: String,
    hosts: usize,
    counts: Counts,
    stopping: bool,
    reasons: Vec<String>,
    finished: Option<RunResult>,
    last_event: u64,
}

impl LocalRuns {
    pub fn new(state_dir: &Path) -> LocalRuns {
        LocalRuns {
            state_dir: state_dir.to_path_buf(),
            told: Arc::default(),
        }
    }

    /// Every run, newest first (as `GET /v1/jobs` lists jobs).
    pub fn list(&self) -> Result<Vec<JobSummary>, RunsError> {
        let dirs = rundir::dirs(&self.state_dir)?;
        let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
        told.retain(|id, _| dirs.iter().any(|dir| dir.id().as_str() == id));
        let mut list = Vec::with_capacity(dirs.len());
        for dir in dirs.iter().rev() {
            let length = std::fs::metadata(dir.journal_path()).map_or(0, |m| m.len());
            let tale = match told.get(dir.id().as_str()) {
                Some((known, tale)) if *known == length => Arc::clone(tale),
                _ => {
                    let hosts = dir.read_plan().map(|plan| plan.hosts).unwrap_or_default();
                    // One run that cannot be read (a damaged journal, a directory going
                    // away) is listed as such; the others still are.
                    let tale = match dir.read_events() {
                        Ok(events) => tell(&hosts, &events).0,
                        Err(e) => Tale {
                            hosts: hosts.len(),
                            reasons: vec![format!("cannot be read: {e}")],
                            finished: Some(RunResult::Stopped),
                            ..Tale::default()
                        },
                    };
                    let tale = Arc::new(tale);
                    told.insert(dir.id().to_string(), (length, Arc::clone(&tale)));
                    tale
                }
            };
            // A run whose lock cannot be looked at is gone since it was listed.
            if let Ok(summary) = summary(dir, &tale) {
                list.push(summary);
            }
        }
        Ok(list)
    }

    /// A run with its hosts, in plan order (as `GET /v1/jobs/{job}`).
    pub fn detail(&self, id: &str) -> Result<JobDetail, RunsError> {
        let dir = self.find(id)?;
        let plan = dir.read_plan()?;
        let (tale, mut ledger) = tell(&plan.hosts, &dir.read_events()?);
        let summary = summary(&dir, &tale)?;
        if summary.state == JobState::Stopped && tale.finished.is_none() {
            ledger.interrupt_running();
        }
        let host_states = plan
            .hosts
            .iter()
            .zip(ledger.hosts)
            .map(|(host, record)| {
                let (state, exit_code) = match record.standing {
                    Standing::Pending => ("pending", None),
                    Standing::Running => ("running", None),
                    Standing::Interrupted => ("failed", None),
                    Standing::Done(done) => (state_key(done), exit_code_of(done)),
                };
                let message = match record.standing {
                    Standing::Interrupted => {
                        "interrupted: the pogo that ran it ended before it finished".to_string()
                    }
                    _ => record.message,
                };
                HostEntry {
                    host: host.clone(),
                    state: state.to_string(),
                    exit_code,
                    attempts: record.attempts,
                    worker: None,
                    message,
                    duration_ms: record.duration_ms,
                }
            })
            .collect();
        Ok(JobDetail {
            summary,
            host_states,
            // Only the running pogo knows its scheduler: a live view shows why its hosts wait.
            waiting: Vec::new(),
        })
    }

    /// The plan the run follows: its limits as lowered when it was applied or resumed, as the
    /// dispatcher serves a job's.
    pub fn plan(&self, id: &str) -> Result<Plan, RunsError> {
        Ok(self.find(id)?.followed_plan()?)
    }

    /// Where a run's events are read from, and whether it has ended (no process holds it).
    pub fn journal(&self, id: &str) -> Result<(PathBuf, bool), RunsError> {
        let dir = self.find(id)?;
        Ok((dir.journal_path(), !dir.is_locked()?))
    }

    /// Where `host`'s output is, and whether the run has ended.
    pub fn log(&self, id: &str, host: &str) -> Result<(PathBuf, bool), RunsError> {
        let dir = self.find(id)?;
        let plan = dir.read_plan()?;
        if !plan.hosts.iter().any(|h| h == host) {
            return Err(RunsError::NotFound(format!(
                "run {} has no host `{host}`",
                dir.id()
            )));
        }
        Ok((dir.log_path(host), !dir.is_locked()?))
    }

    fn find(&self, id: &str) -> Result<RunDir, RunsError> {
        // Whole ids only: the dashboard links to runs it listed.
        if rundir::RunId::parse(id).is_none() {
            return Err(RunsError::NotFound(format!("no run `{id}`")));
        }
        Ok(RunDir::find(&self.state_dir, id)?)
    }
}

/// A run's summary in a job's shape: what its journal tells, and whether a process holds it.
fn summary(dir: &RunDir, tale: &Tale) -> Result<JobSummary, RunsError> {
    let mut counts = tale.counts;
    let mut reasons = tale.reasons.clone();
    let state = match tale.finished {
        Some(RunResult::Succeeded) => JobState::Succeeded,
        Some(RunResult::Failed) => JobState::Failed,
        Some(RunResult::Stopped) => JobState::Stopped,
        None if dir.is_locked()? => match tale.stopping {
            true => JobState::Stopping,
            false => JobState::Running,
        },
        None => {
            // Its process died: what ran counts as failed, as a resume counts it.
            reasons = vec![format!(
                "the pogo that ran it ended before it finished; `pogo apply --resume {}` \
                 resumes it",
                dir.id()
            )];
            counts.failed += counts.running;
            counts.running = 0;
            JobState::Stopped
        }
    };
    let plan_hosts = counts.pending
        + counts.running
        + counts.succeeded
        + counts.failed
        + counts.timed_out
        + counts.unreachable
        + counts.lost
        + counts.skipped
        + counts.cancelled;
    Ok(JobSummary {
        id: dir.id().to_string(),
        state,
        command: tale.command.clone(),
        hosts: tale.hosts.max(plan_hosts),
        counts,
        submitted_at: rundir_epoch(dir.id().as_str()),
        submitted_by: "this machine".to_string(),
        reasons,
        last_event: tale.last_event,
        closed: false,
        closed_by: None,
        closed_at: None,
        approvals: Vec::new(),
    })
}

/// Reads a run's events into the ledger `pogo log RUN` reads them into: what they tell of the
/// run, and each host's record.
fn tell(hosts: &[String], events: &[Event]) -> (Tale, Ledger) {
    let mut ledger = Ledger::new(hosts);
    let mut tale = Tale {
        hosts: hosts.len(),
        last_event: events.len() as u64,
        ..Tale::default()
    };
    for event in events {
        ledger.record(event);
        match event {
            Event::RunStarted {
                command,
                hosts: count,
                ..
            } => {
                tale.stopping = false;
                tale.command.clone_from(command);
                tale.hosts = *count;
            }
            Event::RunStopping { .. } => tale.stopping = true,
            _ => {}
        }
    }
    tale.reasons.clone_from(&ledger.reasons);
    tale.finished = ledger.result;
    for record in &ledger.hosts {
        let count = match record.standing {
            Standing::Pending => &mut tale.counts.pending,
            Standing::Running => &mut tale.counts.running,
            // A host a dead session left running: failed, as a resume counts it.
            Standing::Interrupted => &mut tale.counts.failed,
            Standing::Done(done) => match done {
                FinalState::Succeeded => &mut tale.counts.succeeded,
                FinalState::Failed { .. } => &mut tale.counts.failed,
                FinalState::TimedOut => &mut tale.counts.timed_out,
                FinalState::Unreachable => &mut tale.counts.unreachable,
                FinalState::Lost => &mut tale.counts.lost,
                FinalState::Skipped => &mut tale.counts.skipped,
                FinalState::Cancelled => &mut tale.counts.cancelled,
            },
        };
        *count += 1;
    }
    (tale, ledger)
}

fn exit_code_of(state: FinalState) -> Option<i32> {
    match state {
        FinalState::Failed { exit_code } => Some(exit_code),
        _ => None,
    }
}

/// The API's word for how a host ended.
fn state_key(state: FinalState) -> &'static str {
    match state {
        FinalState::Succeeded => "succeeded",
        FinalState::Failed { .. } => "failed",
        FinalState::TimedOut => "timed_out",
        FinalState::Unreachable => "unreachable",
        FinalState::Skipped => "skipped",
        FinalState::Cancelled => "cancelled",
        FinalState::Lost => "lost",
    }
}

/// A run's start, in seconds since the Unix epoch, from its id (`20261124T230102Z-3f9a`).
fn rundir_epoch(s: &str) -> u64 {
    let digits = |range: std::ops::Range<usize>| -> i64 {
        s.get(range).and_then(|d| d.parse().ok()).unwrap_or(0)
    };
    let (year, month, day) = (digits(0..4), digits(4..6), digits(6..8));
    let (hour, minute, second) = (digits(9..11), digits(11..13), digits(13..15));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).unwrap_or(0)
}

/// Complete lines of a file, each with its number, and where the next read starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Lines {
    pub lines: Vec<(u64, String)>,
    /// The byte offset after the last line.
    pub offset: u64,
    /// The number of the last line.
    pub number: u64,
}

/// Reads the complete lines of `path` from byte `offset`: at most `limit` of them, each with
/// its number (counted from `number + 1`). A missing file has no lines; a torn last line is
/// left for the next read.
pub fn read_lines(path: &Path, offset: u64, number: u64, limit: usize) -> std::io::Result<Lines> {
    let nothing = Lines {
        lines: Vec::new(),
        offset,
        number,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(nothing),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(offset))?;
    let (mut offset, mut number) = (offset, number);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    while lines.len() < limit {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        offset += read as u64;
        number += 1;
        line.pop();
        lines.push((number, String::from_utf8_lossy(&line).into_owned()));
    }
    Ok(Lines {
        lines,
        offset,
        number,
    })
}

/// A journal line as an event record: its line number is its sequence number.
pub fn event_record(seq: u64, line: &str) -> Option<EventRecord> {
    serde_json::from_str::<Event>(line)
        .ok()
        .map(|event| EventRecord { seq, event })
}

/// Turns the lines of a host's log into output records, as the runner wrote them: `stderr: `
/// marks a line of stderr, `--- attempt N ---` starts an attempt (the marker itself is not a
/// line of output; the dashboard draws its own).
pub struct LogReader {
    host: String,
    attempt: u32,
}

impl LogReader {
    pub fn new(host: &str) -> LogReader {
        LogReader {
            host: host.to_string(),
            attempt: 1,
        }
    }

    pub fn record(&mut self, seq: u64, line: String) -> Option<OutputRecord> {
        if let Some(n) = line
            .strip_prefix("--- attempt ")
            .and_then(|rest| rest.strip_suffix(" ---"))
            .and_then(|n| n.parse().ok())
        {
            self.attempt = n;
            return None;
        }
        let (stream, text) = match line.strip_prefix("stderr: ") {
            Some(text) => ("stderr", text.to_string()),
            None => ("stdout", line),
        };
        Some(OutputRecord {
            seq,
            host: self.host.clone(),
            attempt: self.attempt,
            stream: stream.to_string(),
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn run_ids_give_their_start_in_unix_seconds() {
        assert_eq!(rundir_epoch("19700101T000000Z-0000"), 0);
        assert_eq!(rundir_epoch("20261124T230102Z-3f9a"), 1_795_561_262);
    }

    #[test]
    fn a_local_run_reads_as_a_job_while_it_runs_and_after_its_process_died() {
        use pogo_executor::rundir::RunSpec;
        use pogo_executor::transport::TransportSpec;
        let state = tempfile::tempdir().unwrap();
        let plan = Plan::sketch("a b c");
        let spec = RunSpec {
            transport: TransportSpec::Local,
            retry_delay_ms: 0,
            limits: Default::default(),
            overrides: Vec::new(),
        };
        let started = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_561_262);
        let new = RunDir::create(state.path(), &plan, &spec, started).unwrap();
        let (lock, mut journal) = (new.lock, new.journal);
        let id = new.dir.id().to_string();
        let runs = LocalRuns::new(state.path());
        let event = |e: serde_json::Value| serde_json::from_value::<Event>(e).unwrap();
        journal
            .append(&[
                event(
                    serde_json::json!({"event": "run_started", "run_id": id, "hosts": 3,
                    "command": "true", "resumed": false, "at_ms": 0}),
                ),
                event(serde_json::json!({"event": "host_started", "host": "a", "at_ms": 1})),
                event(serde_json::json!({"event": "host_started", "host": "b", "at_ms": 1})),
            ])
            .unwrap();
        let list = runs.list().unwrap();
        assert_eq!(list[0].state, JobState::Running);
        assert_eq!((list[0].counts.running, list[0].counts.pending), (2, 1));
        assert_eq!(list[0].submitted_at, 1_795_561_262);
        assert_eq!(list[0].last_event, 3);
        // A journal that grew is read again.
        journal
            .append(&[event(
                serde_json::json!({"event": "host_finished", "host": "a",
                "state": "failed", "exit_code": 3, "attempts": 1, "duration_ms": 5,
                "message": "exit code 3", "at_ms": 6}),
            )])
            .unwrap();
        let list = runs.list().unwrap();
        assert_eq!((list[0].counts.running, list[0].counts.failed), (1, 1));
        let detail = runs.detail(&id).unwrap();
        assert_eq!(detail.host_states[0].exit_code, Some(3));
        assert_eq!(detail.host_states[0].duration_ms, Some(5));
        assert_eq!(detail.host_states[0].message, "exit code 3");
        assert_eq!(detail.host_states[1].state, "running");
        // Its process dies: the running host counts as failed, and the reason says so.
        drop(lock);
        let list = runs.list().unwrap();
        assert_eq!(list[0].state, JobState::Stopped);
        assert_eq!((list[0].counts.running, list[0].counts.failed), (0, 2));
        assert!(
            list[0].reasons[0].contains("--resume"),
            "{:?}",
            list[0].reasons
        );
        let detail = runs.detail(&id).unwrap();
        assert_eq!(detail.host_states[1].state, "failed");
        assert!(runs.journal(&id).unwrap().1, "an interrupted run has ended");
        // A run whose journal is damaged is listed as such; the others still are.
        let other = RunDir::create(state.path(), &plan, &spec, started).unwrap();
        std::fs::write(other.dir.journal_path(), "not json\n").unwrap();
        drop(other.lock);
        let list = runs.list().unwrap();
        assert_eq!(list.len(), 2);
        let damaged = list.iter().find(|r| r.id != id).unwrap();
        assert_eq!(damaged.state, JobState::Stopped);
        assert!(
            damaged.reasons[0].contains("cannot be read"),
            "{:?}",
            damaged.reasons
        );
        assert!(matches!(
            runs.detail("nothing"),
            Err(RunsError::NotFound(_))
        ));
    }

    #[test]
    fn lines_are_read_from_an_offset_and_a_torn_last_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"one\ntwo\nthr").unwrap();
        let read = read_lines(&path, 0, 0, 10).unwrap();
        assert_eq!(read.lines, [(1, "one".into()), (2, "two".into())]);
        assert_eq!((read.offset, read.number), (8, 2));
        file.write_all(b"ee\n").unwrap();
        let read = read_lines(&path, read.offset, read.number, 10).unwrap();
        assert_eq!(read.lines, [(3, "three".into())]);
        assert_eq!(read.number, 3);
        assert_eq!(read_lines(&path, 0, 0, 1).unwrap().lines.len(), 1);
        assert_eq!(
            read_lines(&dir.path().join("none"), 0, 0, 5).unwrap().lines,
            []
        );
    }

    #[test]
    fn log_lines_become_output_records() {
        let mut reader = LogReader::new("web1");
        let out = reader.record(1, "hello".into()).unwrap();
        assert_eq!(
            (out.stream.as_str(), out.text.as_str(), out.attempt),
            ("stdout", "hello", 1)
        );
        assert!(reader.record(2, "--- attempt 2 ---".into()).is_none());
        let err = reader.record(3, "stderr: boom".into()).unwrap();
        assert_eq!(
            (err.stream.as_str(), err.text.as_str(), err.attempt),
            ("stderr", "boom", 2)
        );
    }
}
