//! The dispatcher's durable state: fleets, jobs, host states, events and output, behind one
//! interface ([`Backend`]) with two backends: SQLite ([`sqlite`], the embedded default, one
//! file in the state directory) and PostgreSQL ([`postgres`], for dispatchers that must
//! survive the loss of a machine).
//!
//! Only the core thread writes, in one transaction per batch of work, committed before any
//! answer of that batch leaves the dispatcher (so a worker never runs a task the database does
//! not know was handed out, and an operator never sees an event a crash could take back).
//!
//! Secrets are never written: a job records only whether it has an SSH password.

use crate::api::{AuditRecord, EventRecord, OutputRecord};

pub mod postgres;
pub mod sqlite;

pub use sqlite::{SqliteStore, DB_FILE};

/// The schema's version, the same for both backends: a database of an older version is
/// migrated when it is opened; one of a newer version is refused.
pub const SCHEMA_VERSION: i64 = 4;

/// The dispatcher's store: one backend or the other.
pub type Store = Box<dyn Backend>;

/// What the core reads and writes. Writes go into the open transaction (begun by the first
/// write after a commit); [`Backend::commit`] makes them durable.
pub trait Backend: Send {
    /// Makes everything written since the last commit durable.
    fn commit(&mut self) -> Result<(), StoreError>;
    /// A new job, with `hosts` pending host rows.
    fn insert_job(&mut self, job: &JobRow, hosts: usize) -> Result<(), StoreError>;
    /// Updates what changes in a job's row after it is submitted.
    fn update_job(
        &mut self,
        id: &str,
        state: &str,
        reasons: &[String],
        halted: bool,
        killed: bool,
        session_started_ms: u64,
    ) -> Result<(), StoreError>;
    /// Records the revisions a job's new session runs under.
    fn update_under(&mut self, id: &str, under: &str) -> Result<(), StoreError>;
    /// Records that an operator closed a job.
    fn close_job(&mut self, id: &str, by: &str, at: u64) -> Result<(), StoreError>;
    fn insert_fleet(&mut self, row: &FleetRow) -> Result<(), StoreError>;
    /// Every revision of every fleet, by fleet name then revision.
    fn fleets(&self) -> Result<Vec<FleetRow>, StoreError>;
    fn update_host(&mut self, job: &str, idx: usize, host: &HostRow) -> Result<(), StoreError>;
    fn insert_event(&mut self, job: &str, record: &EventRecord) -> Result<(), StoreError>;
    /// Records that a task's output chunk is stored; false when it was already.
    fn claim_chunk(&mut self, task: &str, chunk: u64) -> Result<bool, StoreError>;
    /// A line of output of a host (`host` its index) or of a gate (below 0).
    fn insert_output(
        &mut self,
        job: &str,
        seq: u64,
        host: i64,
        attempt: u32,
        stream: &str,
        text: &str,
    ) -> Result<(), StoreError>;
    /// Records an operator's action (its `seq` is given by the store).
    fn insert_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Up to `limit` records of the audit trail after `after`, oldest first.
    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// Every job, oldest first.
    fn jobs(&self) -> Result<Vec<JobRow>, StoreError>;
    /// A job's hosts, by index.
    fn hosts(&self, job: &str) -> Result<Vec<HostRow>, StoreError>;
    /// The last event's and output line's sequence numbers of a job.
    fn last_seqs(&self, job: &str) -> Result<(u64, u64), StoreError>;
    /// Up to `limit` events of a job after `after`.
    fn events(&self, job: &str, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    /// Up to `limit` output lines of a job (of one host) after `after`, `label` naming the
    /// host (or gate) of each.
    fn output(
        &self,
        job: &str,
        host: Option<usize>,
        label: &dyn Fn(i64) -> String,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OutputRecord>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the dispatcher's database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "the dispatcher's database {path} has schema version {found}, and this pogo knows \
         version {SCHEMA_VERSION}; use the pogo that made it, or another database"
    )]
    Version { path: String, found: i64 },
    #[error("the dispatcher's database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the dispatcher's database: {}", describe(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("the dispatcher's database holds a record it cannot read: {0}")]
    Corrupt(String),
    /// A write of the batch failed, so the batch was not recorded.
    #[error("the dispatcher's database failed a write, and the batch was lost: {0}")]
    Lost(String),
    /// A leader on PostgreSQL lost its lease: it writes and answers nothing more.
    #[error("this dispatcher no longer leads: {0}")]
    Fenced(String),
}

/// A PostgreSQL error, with the server's message when it sent one (the client's own text
/// for those is only "db error").
fn describe(error: &::postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// A job's row.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub plan: String,
    pub transport: String,
    pub retry_delay_ms: u64,
    pub has_password: bool,
    pub submitted_at: u64,
    pub submitted_by: String,
    pub state: String,
    pub reasons: Vec<String>,
    pub halted: bool,
    pub killed: bool,
    pub session_started_ms: u64,
    pub submission: Option<String>,
    /// JSON of what was applied beside the plan (`{}` for jobs of schema version 1).
    pub applied: String,
    /// JSON: the revision of each fleet the job started under (`{}` before fleets).
    pub under: String,
    /// Who closed it and when (seconds since the epoch), once an operator did.
    pub closed: Option<(String, u64)>,
}

/// A revision of a fleet's config.
#[derive(Debug, Clone)]
pub struct FleetRow {
    pub name: String,
    pub revision: u32,
    pub digest: String,
    pub inventory: String,
    pub config_name: String,
    pub config: String,
    /// JSON: command -> what it printed.
    pub outputs: String,
    /// JSON: the plan compiled over all the fleet's hosts.
    pub plan: String,
    pub pushed_at: u64,
    pub pushed_by: String,
}

/// A host's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    pub state: String,
    pub exit_code: Option<i32>,
    pub attempts: u32,
    pub first_attempt: u32,
    pub worker: Option<String>,
    pub task: Option<String>,
    pub confirmed: bool,
    pub message: String,
}
