//! The SQLite backend: one database, `pogo.db` in the state directory, the embedded default.
//!
//! Only the core thread writes, in one transaction per batch of work, committed before any
//! answer of that batch leaves the dispatcher (so a worker never runs a task the database does
//! not know was handed out, and an operator never sees an event a crash could take back). The
//! database runs in WAL mode with `synchronous=FULL`: a commit is on disk when it returns, a
//! power cut included.
//!
//! Secrets are never written: a job records only whether it has an SSH password.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Backend, FleetRow, HostRow, JobRow, StoreError, SCHEMA_VERSION};
use crate::api::{AuditRecord, EventRecord, OutputRecord};

/// The file in the state directory.
pub const DB_FILE: &str = "pogo.db";

/// The statements that bring a database of version `N` to `N + 1`, by `N - 1`. A new database
/// is made as version 1 ([`SCHEMA`]) and brought up by them all, so that every database, new or
/// old, has the same tables. Each runs in the same transaction as the version it sets, so a
/// migration happens whole or not at all.
const MIGRATIONS: &[&str] = &[
    // 1 -> 2: what the operator applied beside the sealed plan (lowered limits, overridden
    // checks). Jobs of version 1 had their limits lowered in the plan itself: nothing beside.
    "ALTER TABLE jobs ADD COLUMN applied TEXT NOT NULL DEFAULT '{}';",
    // 2 -> 3: fleets. Every revision of every fleet's config, as pushed, with what its
    // external tags' commands printed and the budgets compiled from it (a plan over all its
    // hosts): a dispatcher restarts with the budgets that were pushed, whatever version of
    // pogo compiled them. A job records the revision of each of its fleets it started under
    // (JSON object, fleet -> revision; `{}` for jobs from before fleets), and whether an
    // operator closed it.
    "CREATE TABLE fleets (
        name TEXT NOT NULL,
        revision INTEGER NOT NULL,
        digest TEXT NOT NULL,
        inventory TEXT NOT NULL,
        config_name TEXT NOT NULL,
        config TEXT NOT NULL,
        outputs TEXT NOT NULL,
        plan TEXT NOT NULL,
        pushed_at INTEGER NOT NULL,
        pushed_by TEXT NOT NULL,
        PRIMARY KEY (name, revision)
    ) WITHOUT ROWID;
    ALTER TABLE jobs ADD COLUMN under TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE jobs ADD COLUMN closed_by TEXT;
    ALTER TABLE jobs ADD COLUMN closed_at INTEGER;",
    // 3 -> 4: the audit trail, every operator action with who, when and from where.
    "CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        origin TEXT NOT NULL,
        action TEXT NOT NULL,
        job TEXT,
        detail TEXT NOT NULL
    );",
];

/// The tables of schema version 1; [`MIGRATIONS`] bring them to [`SCHEMA_VERSION`].
pub(crate) const SCHEMA: &str = "
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    transport TEXT NOT NULL,
    retry_delay_ms INTEGER NOT NULL,
    has_password INTEGER NOT NULL,
    submitted_at INTEGER NOT NULL,
    submitted_by TEXT NOT NULL,
    -- JobState, as in the API: running, stopping, succeeded, failed, stopped.
    state TEXT NOT NULL,
    reasons TEXT NOT NULL,
    halted INTEGER NOT NULL,
    killed INTEGER NOT NULL,
    -- Unix milliseconds when the current session began: events' at_ms count from it.
    session_started_ms INTEGER NOT NULL,
    -- The client's id of the submission (SubmitJob.submission): a repeat finds this job.
    submission TEXT UNIQUE
);
CREATE TABLE hosts (
    job TEXT NOT NULL,
    idx INTEGER NOT NULL,
    -- pending, running, succeeded, failed, timed_out, unreachable, lost, skipped, cancelled.
    state TEXT NOT NULL,
    exit_code INTEGER,
    attempts INTEGER NOT NULL,
    -- The first attempt of the current session: `retries` counts from it.
    first_attempt INTEGER NOT NULL,
    worker TEXT,
    -- The task of its current (running) or last attempt; NULL while a retry waits.
    task TEXT,
    -- Whether the worker confirmed it has the task (and so may have run the command).
    confirmed INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job, idx)
) WITHOUT ROWID;
CREATE TABLE events (
    job TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (job, seq)
) WITHOUT ROWID;
CREATE TABLE output (
    job TEXT NOT NULL,
    seq INTEGER NOT NULL,
    host INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    stream TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (job, seq)
) WITHOUT ROWID;
CREATE INDEX output_by_host ON output (job, host, seq);
-- Output chunks already stored, so that a chunk delivered twice is stored once.
CREATE TABLE chunks (
    task TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    PRIMARY KEY (task, chunk)
) WITHOUT ROWID;
";

/// The SQLite backend: `pogo.db` in the state directory.
pub struct SqliteStore {
    conn: Connection,
    in_transaction: bool,
}

impl SqliteStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = dir.join(DB_FILE);
        let shown = path.display().to_string();
        let open = |source: rusqlite::Error| StoreError::Open {
            path: shown.clone(),
            reason: source.to_string(),
        };
        let conn = Connection::open(&path).map_err(open)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open)?;
        match version {
            0 => {
                let steps: String = MIGRATIONS.concat();
                conn.execute_batch(&format!(
                    "BEGIN; {SCHEMA} {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(open)?;
            }
            SCHEMA_VERSION => {}
            found if (1..SCHEMA_VERSION).contains(&found) => {
                let steps: String = MIGRATIONS[found as usize - 1..].concat();
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(open)?;
                tracing::info!(
                    "{shown}: migrated from schema version {found} to \
                     {SCHEMA_VERSION}"
                );
            }
            found => return Err(StoreError::Version { path: shown, found }),
        }
        Ok(SqliteStore {
            conn,
            in_transaction: false,
        })
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_transaction = true;
        }
        Ok(())
    }
}

impl Backend for SqliteStore {
    /// Makes everything written since the last commit durable.
    fn commit(&mut self) -> Result<(), StoreError> {
        if self.in_transaction {
            self.conn.execute_batch("COMMIT")?;
            self.in_transaction = false;
        }
        Ok(())
    }

    fn insert_job(&mut self, job: &JobRow, hosts: usize) -> Result<(), StoreError> {
        self.begin()?;
        self.conn.execute(
            "INSERT INTO jobs (id, plan, transport, retry_delay_ms, has_password, submitted_at,
                submitted_by, state, reasons, halted, killed, session_started_ms, submission,
                applied, under)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                job.id,
                job.plan,
                job.transport,
                job.retry_delay_ms as i64,
                job.has_password,
                job.submitted_at as i64,
                job.submitted_by,
                job.state,
                serde_json::to_string(&job.reasons).unwrap_or_default(),
                job.halted,
                job.killed,
                job.session_started_ms as i64,
                job.submission,
                job.applied,
                job.under,
            ],
        )?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO hosts (job, idx, state, exit_code, attempts, first_attempt, worker, task,
                confirmed, message)
             VALUES (?1, ?2, 'pending', NULL, 0, 1, NULL, NULL, 0, '')",
        )?;
        for idx in 0..hosts {
            insert.execute(params![job.id, idx as i64])?;
        }
        Ok(())
    }

    /// Updates what changes in a job's row after it is submitted.
    fn update_job(
        &mut self,
        id: &str,
        state: &str,
        reasons: &[String],
        halted: bool,
        killed: bool,
        session_started_ms: u64,
    ) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE jobs SET state = ?2, reasons = ?3, halted = ?4, killed = ?5,
                    session_started_ms = ?6 WHERE id = ?1",
            )?
            .execute(params![
                id,
                state,
                serde_json::to_string(reasons).unwrap_or_default(),
                halted,
                killed,
                session_started_ms as i64
            ])?;
        Ok(())
    }

    /// Records the revisions a job's new session runs under.
    fn update_under(&mut self, id: &str, under: &str) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE jobs SET under = ?2 WHERE id = ?1")?
            .execute(params![id, under])?;
        Ok(())
    }

    /// Records that an operator closed a job.
    fn close_job(&mut self, id: &str, by: &str, at: u64) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE jobs SET closed_by = ?2, closed_at = ?3 WHERE id = ?1")?
            .execute(params![id, by, at as i64])?;
        Ok(())
    }

    fn insert_fleet(&mut self, row: &FleetRow) -> Result<(), StoreError> {
        self.begin()?;
        self.conn.execute(
            "INSERT INTO fleets (name, revision, digest, inventory, config_name, config, outputs,
                plan, pushed_at, pushed_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                row.name,
                row.revision,
                row.digest,
                row.inventory,
                row.config_name,
                row.config,
                row.outputs,
                row.plan,
                row.pushed_at as i64,
                row.pushed_by,
            ],
        )?;
        Ok(())
    }

    /// Every revision of every fleet, by fleet name then revision.
    fn fleets(&self) -> Result<Vec<FleetRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, revision, digest, inventory, config_name, config, outputs, plan,
                pushed_at, pushed_by
             FROM fleets ORDER BY name, revision",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(FleetRow {
                name: row.get(0)?,
                revision: row.get(1)?,
                digest: row.get(2)?,
                inventory: row.get(3)?,
                config_name: row.get(4)?,
                config: row.get(5)?,
                outputs: row.get(6)?,
                plan: row.get(7)?,
                pushed_at: row.get::<_, i64>(8)? as u64,
                pushed_by: row.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn update_host(&mut self, job: &str, idx: usize, host: &HostRow) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE hosts SET state = ?3, exit_code = ?4, attempts = ?5, worker = ?6,
                    task = ?7, message = ?8, first_attempt = ?9, confirmed = ?10
                 WHERE job = ?1 AND idx = ?2",
            )?
            .execute(params![
                job,
                idx as i64,
                host.state,
                host.exit_code,
                host.attempts,
                host.worker,
                host.task,
                host.message,
                host.first_attempt,
                host.confirmed
            ])?;
        Ok(())
    }

    fn insert_event(&mut self, job: &str, record: &EventRecord) -> Result<(), StoreError> {
        self.begin()?;
        let body =
            serde_json::to_string(&record.event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn
            .prepare_cached("INSERT INTO events (job, seq, body) VALUES (?1, ?2, ?3)")?
            .execute(params![job, record.seq as i64, body])?;
        Ok(())
    }

    /// Records that a task's output chunk is stored; false when it was already.
    fn claim_chunk(&mut self, task: &str, chunk: u64) -> Result<bool, StoreError> {
        self.begin()?;
        let inserted = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO chunks (task, chunk) VALUES (?1, ?2)")?
            .execute(params![task, chunk as i64])?;
        Ok(inserted == 1)
    }

    fn insert_output(
        &mut self,
        job: &str,
        seq: u64,
        host: i64,
        attempt: u32,
        stream: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO output (job, seq, host, attempt, stream, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![job, seq as i64, host, attempt, stream, text])?;
        Ok(())
    }

    fn insert_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO audit (at, actor, origin, action, job, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                record.at as i64,
                record.by,
                record.from,
                record.action,
                record.job,
                record.detail
            ])?;
        Ok(())
    }

    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at, actor, origin, action, job, detail FROM audit
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after as i64, limit as i64], |row| {
            Ok(AuditRecord {
                seq: row.get::<_, i64>(0)? as u64,
                at: row.get::<_, i64>(1)? as u64,
                by: row.get(2)?,
                from: row.get(3)?,
                action: row.get(4)?,
                job: row.get(5)?,
                detail: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every job, oldest first.
    fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, plan, transport, retry_delay_ms, has_password, submitted_at,
                submitted_by, state, reasons, halted, killed, session_started_ms, submission,
                applied, under, closed_by, closed_at
             FROM jobs ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |row| {
            let reasons: String = row.get(8)?;
            Ok(JobRow {
                id: row.get(0)?,
                plan: row.get(1)?,
                transport: row.get(2)?,
                retry_delay_ms: row.get::<_, i64>(3)? as u64,
                has_password: row.get(4)?,
                submitted_at: row.get::<_, i64>(5)? as u64,
                submitted_by: row.get(6)?,
                state: row.get(7)?,
                reasons: serde_json::from_str(&reasons).unwrap_or_default(),
                halted: row.get(9)?,
                killed: row.get(10)?,
                session_started_ms: row.get::<_, i64>(11)? as u64,
                submission: row.get(12)?,
                applied: row.get(13)?,
                under: row.get(14)?,
                closed: match (
                    row.get::<_, Option<String>>(15)?,
                    row.get::<_, Option<i64>>(16)?,
                ) {
                    (Some(by), Some(at)) => Some((by, at as u64)),
                    _ => None,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A job's hosts, by index.
    fn hosts(&self, job: &str) -> Result<Vec<HostRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT state, exit_code, attempts, worker, task, message, first_attempt, confirmed
             FROM hosts
             WHERE job = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map([job], |row| {
            Ok(HostRow {
                state: row.get(0)?,
                exit_code: row.get(1)?,
                attempts: row.get(2)?,
                worker: row.get(3)?,
                task: row.get(4)?,
                message: row.get(5)?,
                first_attempt: row.get(6)?,
                confirmed: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last event's and output line's sequence numbers of a job.
    fn last_seqs(&self, job: &str) -> Result<(u64, u64), StoreError> {
        let events: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM events WHERE job = ?1", [job], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
        let output: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM output WHERE job = ?1", [job], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
        Ok((events.unwrap_or(0) as u64, output.unwrap_or(0) as u64))
    }

    /// Up to `limit` events of a job after `after`.
    fn events(&self, job: &str, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, body FROM events WHERE job = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![job, after as i64, limit as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (seq, body) = row?;
            let event =
                serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            records.push(EventRecord {
                seq: seq as u64,
                event,
            });
        }
        Ok(records)
    }

    /// Up to `limit` output lines of a job (of one host) after `after`.
    fn output(
        &self,
        job: &str,
        host: Option<usize>,
        label: &dyn Fn(i64) -> String,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OutputRecord>, StoreError> {
        let map = |row: &rusqlite::Row<'_>| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        };
        let rows: Vec<(i64, i64, u32, String, String)> = match host {
            Some(h) => self
                .conn
                .prepare_cached(
                    "SELECT seq, host, attempt, stream, text FROM output
                     WHERE job = ?1 AND host = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
                )?
                .query_map(params![job, h as i64, after as i64, limit as i64], map)?
                .collect::<Result<_, _>>()?,
            None => self
                .conn
                .prepare_cached(
                    "SELECT seq, host, attempt, stream, text FROM output
                     WHERE job = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )?
                .query_map(params![job, after as i64, limit as i64], map)?
                .collect::<Result<_, _>>()?,
        };
        Ok(rows
            .into_iter()
            .map(|(seq, host, attempt, stream, text)| OutputRecord {
                seq: seq as u64,
                host: label(host),
                attempt,
                stream,
                text,
            })
            .collect())
    }
}
