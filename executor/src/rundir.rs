//! Run directories: what a run keeps on disk so that it can be resumed after a halt or a crash,
//! and read afterwards.
//!
//! ```text
//! .pogo/                          the state directory (the CLI's --state-dir, POGO_STATE_DIR)
//!   runs/
//!     20261124T230102Z-3f9a/      one run; its id is its UTC start time and a random suffix
//!       plan.json                 the plan as the run applies it (written atomically)
//!       run.json                  how it reaches its hosts (RunSpec), for a resume to do the same
//!       journal.ndjson            the journal: one event per line, every session of the run
//!       logs/HOST.log             each host's output (see log_file_name)
//! ```
//!
//! A process that applies a run holds an exclusive `flock` on the run's directory for as long
//! as it runs: a second process cannot resume the same run at the same time (and run hosts
//! twice), and a run whose journal has no end is told apart as still running (locked) or
//! interrupted (its process died: the kernel released the lock).
//!
//! The library does not read the clock: whoever creates a run says when it started.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pogo_model::{LoweredLimits, Plan, PlanReadError};
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::events::{Event, RunResult};
use crate::journal::{self, Journal, JournalError};
use crate::transport::TransportSpec;

/// Where runs are kept when nothing else is said: in the current directory, like `.git`.
pub const DEFAULT_STATE_DIR: &str = ".pogo";
/// The environment variable that names another state directory.
pub const STATE_DIR_ENV: &str = "POGO_STATE_DIR";

const RUNS: &str = "runs";
const PLAN_FILE: &str = "plan.json";
const SPEC_FILE: &str = "run.json";
const JOURNAL_FILE: &str = "journal.ndjson";
const LOG_DIR: &str = "logs";
/// How long taking a run waits for processes that only look at it (see `RunDir::lock`).
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);

/// Why a run directory could not be made, found or read.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("no run `{given}` in `{runs}`")]
    NotFound { given: String, runs: PathBuf },
    #[error("`{given}` could be any of {} runs: {}; give more of the id", .matches.len(), .matches.join(", "))]
    Ambiguous { given: String, matches: Vec<String> },
    #[error(
        "run `{id}` is in use by another pogo process; a run is applied by one process at a time"
    )]
    Busy { id: RunId },
    #[error("cannot read the plan of run `{id}`: {source}")]
    Plan { id: RunId, source: PlanReadError },
    #[error("cannot read `{path}`: {message}")]
    Spec { path: PathBuf, message: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How a run reaches its hosts and paces its retries, kept in the run's `run.json` so that a
/// resume does the same: a run made over SSH must not be resumed on this machine by mistake
/// (the local transport would run the fleet's command here, once per host). Never a password:
/// only whether one was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub transport: TransportSpec,
    /// The pause before a retry, in milliseconds.
    pub retry_delay_ms: u64,
    /// Limits lowered when the run was applied or resumed, beside the sealed `plan.json`
    /// (runs of the previous release wrote them into `plan.json` instead, and have none).
    #[serde(default, skip_serializing_if = "LoweredLimits::is_none")]
    pub limits: LoweredLimits,
    /// The checks the operator overrode to start the run (`allow-edited`, `allow-stale`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

/// A run's id: its UTC start time to the second and 4 random hex digits,
/// `20261124T230102Z-3f9a`. Ids sort in the order the runs started.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(String);

impl RunId {
    /// The id of a run started at `started`, with `suffix` to tell apart runs of one second.
    pub fn new(started: SystemTime, suffix: u16) -> RunId {
        let secs = started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let t = Utc::from_unix(secs);
        RunId(format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{suffix:04x}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ))
    }

    /// Accepts what [`RunId::new`] makes, and nothing that could step out of the runs
    /// directory.
    pub fn parse(text: &str) -> Option<RunId> {
        let b = text.as_bytes();
        let ok = b.len() == 21
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'T'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'Z'
            && b[16] == b'-'
            && b[17..]
                .iter()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| RunId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the run started, as RFC 3339 UTC: `2026-11-24T23:01:02Z`.
    pub fn started(&self) -> String {
        let s = &self.0;
        format!(
            "{}-{}-{}T{}:{}:{}Z",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[9..11],
            &s[11..13],
            &s[13..15]
        )
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A UTC calendar time.
struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Utc {
    /// Howard Hinnant's `civil_from_days`: exact for every date, no table, no dependency.
    fn from_unix(secs: u64) -> Utc {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }
}

/// The directory of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    id: RunId,
    path: PathBuf,
}

/// A run just made: its directory (locked), its plan written, its journal empty.
#[derive(Debug)]
pub struct NewRun {
    pub dir: RunDir,
    pub lock: RunLock,
    pub journal: Journal<Event>,
}

/// A run reopened to be resumed: locked, its plan and every event of its earlier sessions
/// read, its journal open for appending.
#[derive(Debug)]
pub struct Reopened {
    pub dir: RunDir,
    pub lock: RunLock,
    pub plan: Plan,
    /// `None` when the process died before writing it.
    pub spec: Option<RunSpec>,
    pub journal: Journal<Event>,
    pub events: Vec<Event>,
}

/// The exclusive hold of one process on a run; released when dropped, or by the kernel when
/// the process dies.
#[derive(Debug)]
pub struct RunLock {
    _dir: File,
}

impl RunDir {
    /// Makes the directory of a new run started at `started`, writes `plan` and `spec` into it
    /// and creates its empty journal. The state directory is created if need be.
    pub fn create(
        state_dir: &Path,
        plan: &Plan,
        spec: &RunSpec,
        started: SystemTime,
    ) -> Result<NewRun, RunDirError> {
        let runs = state_dir.join(RUNS);
        std::fs::create_dir_all(&runs).map_err(|e| io_error("create", &runs, e))?;
        let mut attempt = 0u32;
        let dir = loop {
            let id = RunId::new(started, random_suffix(attempt));
            let path = runs.join(id.as_str());
            match std::fs::create_dir(&path) {
                Ok(()) => break RunDir { id, path },
                // Another run started in the same second drew the same suffix: draw again.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 64 => {
                    attempt += 1;
                }
                Err(e) => return Err(io_error("create", &path, e)),
            }
        };
        let lock = dir.lock()?;
        let logs = dir.log_dir();
        std::fs::create_dir(&logs).map_err(|e| io_error("create", &logs, e))?;
        dir.write_plan(plan)?;
        dir.write_spec(spec)?;
        let journal = Journal::create(&dir.journal_path())?;
        Ok(NewRun { dir, lock, journal })
    }

    /// Finds a run by its id, a unique beginning of it, or `last` (the latest run).
    pub fn find(state_dir: &Path, given: &str) -> Result<RunDir, RunDirError> {
        let runs = state_dir.join(RUNS);
        let not_found = || RunDirError::NotFound {
            given: given.to_string(),
            runs: runs.clone(),
        };
        let ids = match run_ids(&runs) {
            Ok(ids) => ids,
            Err(RunDirError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(not_found())
            }
            Err(e) => return Err(e),
        };
        let id = if given == "last" {
            ids.last().cloned().ok_or_else(not_found)?
        } else if let Some(id) = ids.iter().find(|id| id.as_str() == given) {
            id.clone()
        } else {
            let matches: Vec<&RunId> = if given.is_empty() {
                Vec::new()
            } else {
                ids.iter()
                    .filter(|id| id.as_str().starts_with(given))
                    .collect()
            };
            match matches.as_slice() {
                [] => return Err(not_found()),
                [one] => (*one).clone(),
                _ => {
                    return Err(RunDirError::Ambiguous {
                        given: given.to_string(),
                        matches: matches.iter().map(|id| id.to_string()).collect(),
                    })
                }
            }
        };
        Ok(RunDir {
            path: runs.join(id.as_str()),
            id,
        })
    }

    /// Takes the run for this process and reads what resuming it needs. Refused while
    /// another process holds it.
    pub fn reopen(self) -> Result<Reopened, RunDirError> {
        let lock = self.lock()?;
        let plan = self.read_plan()?;
        let spec = self.read_spec()?;
        let path = self.journal_path();
        let (journal, events) = if path.exists() {
            Journal::reopen(&path)?
        } else {
            // The process died between writing the plan and creating the journal.
            (Journal::create(&path)?, Vec::new())
        };
        Ok(Reopened {
            dir: self,
            lock,
            plan,
            spec,
            journal,
            events,
        })
    }

    pub fn id(&self) -> &RunId {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn plan_path(&self) -> PathBuf {
        self.path.join(PLAN_FILE)
    }

    pub fn spec_path(&self) -> PathBuf {
        self.path.join(SPEC_FILE)
    }

    /// The run's [`RunSpec`]; `None` if it was never written.
    pub fn read_spec(&self) -> Result<Option<RunSpec>, RunDirError> {
        let path = self.spec_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| RunDirError::Spec {
                path,
                message: e.to_string(),
            })
    }

    pub fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL_FILE)
    }

    /// Where the runner writes each host's output.
    pub fn log_dir(&self) -> PathBuf {
        self.path.join(LOG_DIR)
    }

    /// The log of `host` (which exists only if the host printed something).
    pub fn log_path(&self, host: &str) -> PathBuf {
        self.log_dir().join(log_file_name(host))
    }

    pub fn read_plan(&self) -> Result<Plan, RunDirError> {
        let path = self.plan_path();
        let text = std::fs::read_to_string(&path).map_err(|e| io_error("read", &path, e))?;
        Plan::from_json(&text).map_err(|source| RunDirError::Plan {
            id: self.id.clone(),
            source,
        })
    }

    fn write_plan(&self, plan: &Plan) -> Result<(), RunDirError> {
        let path = self.plan_path();
        write_atomically(&path, plan.to_json().as_bytes()).map_err(|e| io_error("write", &path, e))
    }

    /// Replaces the run's `run.json` (atomically): a resumed run that lowers its limits keeps
    /// them lowered for the sessions after it, and its `plan.json` stays as it was sealed.
    pub fn write_spec(&self, spec: &RunSpec) -> Result<(), RunDirError> {
        let path = self.spec_path();
        let mut text = serde_json::to_string_pretty(spec).expect("a run spec serialises");
        text.push('\n');
        write_atomically(&path, text.as_bytes()).map_err(|e| io_error("write", &path, e))
    }

    /// The plan the run follows: its `plan.json` with the limits of its `run.json` lowered.
    pub fn followed_plan(&self) -> Result<Plan, RunDirError> {
        let plan = self.read_plan()?;
        let limits = self.read_spec()?.map(|s| s.limits).unwrap_or_default();
        Ok(plan.lowered(&limits))
    }

    /// Every complete event of the journal, all sessions (none if it was never created).
    pub fn read_events(&self) -> Result<Vec<Event>, RunDirError> {
        let path = self.journal_path();
        if !path.exists() {
            return Ok(Vec::new());
        }
        Ok(journal::read(&path)?)
    }

    /// How the run stands, from its journal and its lock.
    pub fn info(&self) -> Result<RunInfo, RunDirError> {
        let events = self.read_events()?;
        let mut info = RunInfo {
            id: self.id.clone(),
            started: self.id.started(),
            command: String::new(),
            hosts: 0,
            sessions: 0,
            state: RunState::Interrupted,
        };
        let mut finished = None;
        for event in &events {
            match event {
                Event::RunStarted { hosts, command, .. } => {
                    info.hosts = *hosts;
                    info.command.clone_from(command);
                    info.sessions += 1;
                    finished = None;
                }
                Event::RunFinished {
                    result,
                    succeeded,
                    failed,
                    timed_out,
                    unreachable,
                    skipped,
                    cancelled,
                    ..
                } => {
                    finished = Some(RunState::Finished {
                        result: *result,
                        totals: Totals {
                            succeeded: *succeeded,
                            failed: *failed,
                            timed_out: *timed_out,
                            unreachable: *unreachable,
                            skipped: *skipped,
                            cancelled: *cancelled,
                        },
                    })
                }
                _ => {}
            }
        }
        if info.sessions == 0 {
            // Nothing journaled yet: the plan says what the run is.
            if let Ok(plan) = self.read_plan() {
                info.hosts = plan.hosts.len();
                info.command = plan.command.unwrap_or_default();
            }
        }
        info.state = match finished {
            Some(state) => state,
            None if self.is_locked()? => RunState::Running,
            None => RunState::Interrupted,
        };
        Ok(info)
    }

    /// Takes the run for this process. A process that only looks ([`RunDir::is_locked`], as
    /// `pogo runs` and the dashboard do) holds a shared lock for an instant: that is waited
    /// out, for up to [`LOCK_PATIENCE`]; a process that runs the run holds it far longer.
    fn lock(&self) -> Result<RunLock, RunDirError> {
        let dir = File::open(&self.path).map_err(|e| io_error("open", &self.path, e))?;
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match rustix::fs::flock(&dir, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(RunLock { _dir: dir }),
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(RunDirError::Busy {
                        id: self.id.clone(),
                    })
                }
                Err(e) => return Err(io_error("lock", &self.path, e.into())),
            }
        }
    }

    /// Whether a process holds the run now: it runs (or is about to end).
    pub fn is_locked(&self) -> Result<bool, RunDirError> {
        let dir = File::open(&self.path).map_err(|e| io_error("open", &self.path, e))?;
        match rustix::fs::flock(&dir, FlockOperation::NonBlockingLockShared) {
            Ok(()) => Ok(false),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
            Err(e) => Err(io_error("lock", &self.path, e.into())),
        }
    }
}

/// One run, as `pogo runs` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub id: RunId,
    /// RFC 3339 UTC, from the id.
    pub started: String,
    pub command: String,
    pub hosts: usize,
    /// How many times it was started: 1, plus one per resume.
    pub sessions: usize,
    pub state: RunState,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Its last session ended, this way.
    Finished { result: RunResult, totals: Totals },
    /// A process is running it now.
    Running,
    /// Its last session never ended, and no process runs it: that process died (or the
    /// machine did). It can be resumed.
    Interrupted,
}

/// The host counts of a `run_finished` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub succeeded: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub unreachable: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

/// Every run of the state directory, oldest first. No state directory: no runs.
pub fn list(state_dir: &Path) -> Result<Vec<RunInfo>, RunDirError> {
    dirs(state_dir)?.iter().map(RunDir::info).collect()
}

/// The directory of every run of the state directory, oldest first, read from nothing but
/// their names. No state directory: no runs.
pub fn dirs(state_dir: &Path) -> Result<Vec<RunDir>, RunDirError> {
    let runs = state_dir.join(RUNS);
    let ids = match run_ids(&runs) {
        Err(RunDirError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(Vec::new())
        }
        other => other?,
    };
    Ok(ids
        .into_iter()
        .map(|id| RunDir {
            path: runs.join(id.as_str()),
            id,
        })
        .collect())
}

/// The ids of the run directories in `runs`, sorted; other entries are ignored.
fn run_ids(runs: &Path) -> Result<Vec<RunId>, RunDirError> {
    let entries = std::fs::read_dir(runs).map_err(|e| io_error("read", runs, e))?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("read", runs, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(RunId::parse) {
            if entry.path().is_dir() {
                ids.push(id);
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// 16 bits that differ between processes and between calls, for [`RunId::new`]: `RandomState`
/// is seeded from the operating system's randomness once per process, and varied for each
/// instance. `attempt` counts the ids tried for one start time.
pub fn random_suffix(attempt: u32) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u32(attempt);
    hasher.finish() as u16
}

/// Writes through a temporary file, a sync and a rename, then syncs the directory: a crash
/// leaves the old file or the new one, never a torn one.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    let temp = dir.join(name);
    let result = File::create(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path))
        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> RunDirError {
    RunDirError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A file name for a host's log: host names are mostly safe already, but a name from a config
/// could hold a `/` or start with a dot.
pub fn log_file_name(host: &str) -> String {
    file_name(host, "log")
}

/// A safe file name for `name` with extension `ext`: the name itself when it is safe, else a
/// cleaned name with a hash of the real one, so different names never share a file.
pub fn file_name(name: &str, ext: &str) -> String {
    let host = name;
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = safe.trim_start_matches('.');
    if trimmed == host {
        return format!("{host}.{ext}");
    }
    // Changed names get a hash of the real one, so `a b` and `a_b` keep separate logs.
    let hash = host.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{trimmed}-{:08x}.{ext}", hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn spec() -> RunSpec {
        RunSpec {
            transport: TransportSpec::Ssh {
                user: Some("deploy".into()),
                port: None,
                identity: None,
                ssh_config: None,
                known_hosts: "strict".into(),
                password: true,
            },
            retry_delay_ms: 5000,
            limits: Default::default(),
            overrides: Vec::new(),
        }
    }

    fn plan() -> Plan {
        let json = serde_json::json!({
            "format_version": pogo_model::FORMAT_VERSION,
            "producer": "test",
            "source": {"config": "inline", "spec": null},
            "digests": {"config": "", "inventory": ""},
            "command": "true",
            "options": {"timeout": 600, "retries": 0, "max_failures": {"value": 0}, "run_timeout": null},
            "hosts": ["a", "b"],
            "threads": [],
            "unordered": ["a", "b"],
            "not_in_config": [],
            "external_tags": [],
            "constraints": [],
            "edges": [],
            "warnings": []
        });
        Plan::from_json(&json.to_string()).unwrap()
    }

    /// A look at whether a run runs (`pogo runs`, the dashboard) takes a shared lock for an
    /// instant; a process taking the run at that moment waits it out instead of failing.
    #[test]
    fn taking_a_run_waits_out_a_process_that_only_looks() {
        let state = tempfile::tempdir().unwrap();
        let plan = Plan::sketch("a");
        let new = RunDir::create(state.path(), &plan, &spec(), at(1)).unwrap();
        let dir = RunDir::find(state.path(), new.dir.id().as_str()).unwrap();
        drop(new.lock);
        // Someone looking, holding a shared lock for 50 ms.
        let look = File::open(dir.path()).unwrap();
        rustix::fs::flock(&look, FlockOperation::NonBlockingLockShared).unwrap();
        let looker = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(look);
        });
        let taken = dir.lock();
        looker.join().unwrap();
        assert!(taken.is_ok(), "{:?}", taken.err());
        drop(taken);
        // A process that holds it (longer than the patience) keeps it.
        let held = dir.lock().unwrap();
        assert!(matches!(dir.lock(), Err(RunDirError::Busy { .. })));
        drop(held);
    }

    #[test]
    fn log_file_names_are_safe() {
        assert_eq!(log_file_name("web01.example.com"), "web01.example.com.log");
        let escaped = log_file_name("../etc/passwd");
        assert!(
            escaped.starts_with("_etc_passwd-") && !escaped.contains('/'),
            "{escaped}"
        );
        assert_ne!(log_file_name("a b"), log_file_name("a_b"));
        assert!(!log_file_name("..").starts_with('.'));
    }

    #[test]
    fn ids_are_utc_times_that_sort_and_read_back() {
        // 2026-11-24 23:01:02 UTC.
        let id = RunId::new(at(1_795_561_262), 0x3f9a);
        assert_eq!(id.as_str(), "20261124T230102Z-3f9a");
        assert_eq!(id.started(), "2026-11-24T23:01:02Z");
        assert_eq!(RunId::parse(id.as_str()), Some(id));
        assert_eq!(RunId::new(at(0), 0).as_str(), "19700101T000000Z-0000");
        // A leap day, and the last second of a year.
        assert_eq!(
            RunId::new(at(951_782_400), 1).as_str(),
            "20000229T000000Z-0001"
        );
        assert_eq!(
            RunId::new(at(1_704_067_199), 0xffff).as_str(),
            "20231231T235959Z-ffff"
        );
        assert!(RunId::new(at(100), 0) < RunId::new(at(101), 0));
        for bad in [
            "",
            "last",
            "../../etc",
            "20261124T230102Z-3F9A",
            "20261124T230102Z-3f9a/x",
        ] {
            assert_eq!(RunId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_new_run_has_its_plan_an_empty_journal_and_a_log_directory() {
        let state = tempfile::tempdir().unwrap();
        let run = RunDir::create(state.path(), &plan(), &spec(), at(1_795_561_262)).unwrap();
        let dir = &run.dir;
        assert!(dir.id().as_str().starts_with("20261124T230102Z-"));
        assert_eq!(
            dir.path(),
            state.path().join("runs").join(dir.id().as_str())
        );
        assert_eq!(dir.read_plan().unwrap(), plan());
        assert_eq!(dir.read_spec().unwrap(), Some(spec()));
        assert!(dir.read_events().unwrap().is_empty());
        assert!(dir.log_dir().is_dir());
        assert_eq!(dir.log_path("web1"), dir.log_dir().join("web1.log"));
    }

    #[test]
    fn runs_of_one_second_get_different_ids() {
        let state = tempfile::tempdir().unwrap();
        let ids: std::collections::BTreeSet<String> = (0..20)
            .map(|_| {
                let run = RunDir::create(state.path(), &plan(), &spec(), at(1000)).unwrap();
                run.dir.id().to_string()
            })
            .collect();
        assert_eq!(ids.len(), 20);
    }

    #[test]
    fn a_run_is_found_by_id_prefix_or_last_and_is_held_by_one_process() {
        let state = tempfile::tempdir().unwrap();
        let first = RunDir::create(state.path(), &plan(), &spec(), at(1000)).unwrap();
        let second = RunDir::create(state.path(), &plan(), &spec(), at(2000)).unwrap();
        let id = second.dir.id().clone();
        assert_eq!(RunDir::find(state.path(), id.as_str()).unwrap().id(), &id);
        assert_eq!(RunDir::find(state.path(), "last").unwrap().id(), &id);
        assert_eq!(
            RunDir::find(state.path(), &first.dir.id().as_str()[..16])
                .unwrap()
                .id(),
            first.dir.id()
        );
        assert!(matches!(
            RunDir::find(state.path(), "1970"),
            Err(RunDirError::Ambiguous { .. })
        ));
        assert!(matches!(
            RunDir::find(state.path(), "2030"),
            Err(RunDirError::NotFound { .. })
        ));
        assert!(matches!(
            RunDir::find(&state.path().join("none"), "last"),
            Err(RunDirError::NotFound { .. })
        ));

        // Held by `second`: it cannot be reopened, and it is listed as running.
        let err = RunDir::find(state.path(), "last")
            .unwrap()
            .reopen()
            .unwrap_err();
        assert!(matches!(err, RunDirError::Busy { .. }), "{err}");
        let infos = list(state.path()).unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[1].state, RunState::Running);
        assert_eq!(infos[1].hosts, 2);
        assert_eq!(infos[1].command, "true");

        // Let go: interrupted (no end in its journal), and it can be reopened.
        drop(second);
        let infos = list(state.path()).unwrap();
        assert_eq!(infos[1].state, RunState::Interrupted);
        let reopened = RunDir::find(state.path(), "last")
            .unwrap()
            .reopen()
            .unwrap();
        assert_eq!(reopened.plan, plan());
        assert_eq!(reopened.spec, Some(spec()));
        assert!(reopened.events.is_empty());
    }

    #[test]
    fn the_state_is_the_last_sessions_end() {
        let state = tempfile::tempdir().unwrap();
        let NewRun {
            dir,
            lock,
            mut journal,
        } = RunDir::create(state.path(), &plan(), &spec(), at(1000)).unwrap();
        drop(lock);
        let started = |resumed| Event::RunStarted {
            run_id: dir.id().to_string(),
            hosts: 2,
            command: "true".into(),
            resumed,
            at_ms: 0,
            overrides: Vec::new(),
            only: None,
            concurrent: None,
        };
        let finished = Event::RunFinished {
            result: RunResult::Stopped,
            succeeded: 1,
            failed: 0,
            timed_out: 0,
            unreachable: 0,
            skipped: 1,
            cancelled: 0,
            lost: 0,
            at_ms: 5,
        };
        journal.append(&[started(false), finished]).unwrap();
        let info = dir.info().unwrap();
        assert_eq!(info.sessions, 1);
        assert!(matches!(
            info.state,
            RunState::Finished {
                result: RunResult::Stopped,
                totals: Totals { skipped: 1, .. }
            }
        ));
        // Resumed, and that session never ended.
        journal.append(&[started(true)]).unwrap();
        let info = dir.info().unwrap();
        assert_eq!(info.sessions, 2);
        assert_eq!(info.state, RunState::Interrupted);
    }

    #[test]
    fn no_state_directory_means_no_runs() {
        let state = tempfile::tempdir().unwrap();
        assert!(list(&state.path().join("missing")).unwrap().is_empty());
    }
}
