//! The PostgreSQL backend: `pogo dispatcher --database postgres://USER@HOST/DB`, for
//! dispatchers that must survive the loss of their machine (the database keeps the state,
//! with its own replication and backups).
//!
//! The same tables as the SQLite backend (schema version [`SCHEMA_VERSION`], kept in
//! `pogo_schema`), written in one transaction per batch of the core. A connection URL never
//! carries the password: it comes from `PGPASSWORD` or the password file (`PGPASSFILE`, else
//! `~/.pgpass`), as libpq reads them, so that it shows in no process list.
//!
//! TLS: `sslmode=require` (or `prefer`) in the URL; the server's certificate is always
//! verified, against `sslrootcert=FILE` in the URL, `PGSSLROOTCERT`, or
//! `~/.postgresql/root.crt`.
//!
//! PostgreSQL text cannot hold a NUL character: one in a command's output or a message is
//! stored as U+FFFD.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::types::ToSql;
use postgres::{Client, Config, Statement};

use super::{Backend, FleetRow, HostRow, JobRow, StoreError, SCHEMA_VERSION};
use crate::api::{AuditRecord, EventRecord, OutputRecord};
use crate::dispatcher::lease::Lease;

/// The tables of schema version 3 (the SQLite backend's, in PostgreSQL's types); later
/// versions add [`MIGRATIONS`].
const SCHEMA: &str = "
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    -- The order of submission.
    ord BIGINT GENERATED ALWAYS AS IDENTITY,
    plan TEXT NOT NULL,
    transport TEXT NOT NULL,
    retry_delay_ms BIGINT NOT NULL,
    has_password BOOLEAN NOT NULL,
    submitted_at BIGINT NOT NULL,
    submitted_by TEXT NOT NULL,
    state TEXT NOT NULL,
    reasons TEXT NOT NULL,
    halted BOOLEAN NOT NULL,
    killed BOOLEAN NOT NULL,
    session_started_ms BIGINT NOT NULL,
    submission TEXT UNIQUE,
    applied TEXT NOT NULL DEFAULT '{}',
    under TEXT NOT NULL DEFAULT '{}',
    closed_by TEXT,
    closed_at BIGINT
);
CREATE TABLE hosts (
    job TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    exit_code INTEGER,
    attempts BIGINT NOT NULL,
    first_attempt BIGINT NOT NULL,
    worker TEXT,
    task TEXT,
    confirmed BOOLEAN NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job, idx)
);
CREATE TABLE events (
    job TEXT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (job, seq)
);
CREATE TABLE output (
    job TEXT NOT NULL,
    seq BIGINT NOT NULL,
    host BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    stream TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (job, seq)
);
CREATE INDEX output_by_host ON output (job, host, seq);
CREATE TABLE chunks (
    task TEXT NOT NULL,
    chunk BIGINT NOT NULL,
    PRIMARY KEY (task, chunk)
);
-- Which dispatcher leads (see the dispatcher's lease module): one row, its epoch going up
-- by one at each takeover, its expiry timed by the database's clock.
CREATE TABLE pogo_leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    url TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires TIMESTAMPTZ NOT NULL
);
CREATE TABLE fleets (
    name TEXT NOT NULL,
    revision BIGINT NOT NULL,
    digest TEXT NOT NULL,
    inventory TEXT NOT NULL,
    config_name TEXT NOT NULL,
    config TEXT NOT NULL,
    outputs TEXT NOT NULL,
    plan TEXT NOT NULL,
    pushed_at BIGINT NOT NULL,
    pushed_by TEXT NOT NULL,
    PRIMARY KEY (name, revision)
);
";

/// The version [`SCHEMA`] makes.
const BASE_VERSION: i64 = 3;

/// The statements that bring a database of version `BASE_VERSION + i` to the next.
const MIGRATIONS: &[&str] = &[
    // 3 -> 4: the audit trail, every operator action with who, when and from where.
    "CREATE TABLE audit (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        origin TEXT NOT NULL,
        action TEXT NOT NULL,
        job TEXT,
        detail TEXT NOT NULL
    );",
];

/// The key of the transaction-scoped advisory lock that serialises dispatchers creating or
/// migrating the schema at the same moment (`pogo` in ASCII).
const MIGRATION_LOCK: i64 = 0x706f_676f;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL backend. See the [module documentation](self).
pub struct PostgresStore {
    client: RefCell<Client>,
    statements: RefCell<HashMap<&'static str, Statement>>,
    in_transaction: bool,
    /// The URL, without secrets, for messages.
    shown: String,
    /// The lease every write is fenced by, on a leader.
    fence: Option<Lease>,
    /// Why a write of the open transaction failed: PostgreSQL has aborted the transaction
    /// (a COMMIT would quietly roll it back), so the batch is lost and the core must stop.
    broken: Option<String>,
}

/// Where a dispatcher's PostgreSQL is, parsed from `--database`.
#[derive(Clone)]
pub struct Database {
    config: Config,
    /// The CA file that verifies the server's certificate, when TLS is asked for.
    root_cert: Option<PathBuf>,
    shown: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Database {
    /// Parses a `postgres://` URL (or a `key=value` connection string). Refuses one with a
    /// password in it; the password comes from `PGPASSWORD` or the password file.
    pub fn parse(url: &str) -> Result<Database, String> {
        let mut root_cert = std::env::var_os("PGSSLROOTCERT").map(PathBuf::from);
        // `sslrootcert` is libpq's; the client does not know it.
        let (url, from_url) = take_param(url, "sslrootcert");
        if let Some(file) = from_url {
            root_cert = Some(PathBuf::from(file));
        }
        let mut config: Config = url
            .parse()
            .map_err(|e| format!("`{}` is not a PostgreSQL URL: {e}", strip_secrets(&url)))?;
        if config.get_password().is_some() {
            return Err(
                "the database URL has a password in it, where every process list shows it: \
                 give it in PGPASSWORD or in the password file (PGPASSFILE, else ~/.pgpass) \
                 instead"
                    .into(),
            );
        }
        if config.get_user().is_none() {
            if let Ok(user) = std::env::var("PGUSER").or_else(|_| std::env::var("USER")) {
                config.user(&user);
            }
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A dead database (or the path to it) is noticed within seconds, not at TCP's pace.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(5));
        config.tcp_user_timeout(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("pogo dispatcher");
        }
        if let Some(password) = password_for(&config) {
            config.password(password);
        }
        if config.get_ssl_mode() != SslMode::Disable && root_cert.is_none() {
            let default = std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(".postgresql/root.crt"))
                .filter(|path| path.exists());
            root_cert = default;
        }
        let shown = strip_secrets(&url);
        Ok(Database {
            config,
            root_cert,
            shown,
        })
    }

    /// The URL, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A new connection.
    pub fn connect(&self) -> Result<Client, StoreError> {
        let open = |reason: String| StoreError::Open {
            path: self.shown.clone(),
            reason,
        };
        match self.config.get_ssl_mode() {
            SslMode::Disable => self
                .config
                .connect(postgres::NoTls)
                .map_err(|e| open(with_causes(&e))),
            _ => {
                let tls = self.tls().map_err(open)?;
                self.config.connect(tls).map_err(|e| open(with_causes(&e)))
            }
        }
    }

    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
        let Some(file) = &self.root_cert else {
            return Err(
                "TLS to the database needs the CA that signed its certificate: sslrootcert=FILE \
                 in the URL, PGSSLROOTCERT, or ~/.postgresql/root.crt"
                    .into(),
            );
        };
        let pem = std::fs::read(file)
            .map_err(|e| format!("cannot read the database's CA {}: {e}", file.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: {e}", file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

use rustls_pki_types::pem::PemObject as _;

/// An error and what caused it, as one line: "error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer".
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// `url` without the query parameter `key`, and its value.
fn take_param(url: &str, key: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((k, v)) if k == key => {
                value = Some(v.to_string());
                false
            }
            _ => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_string(), value)
    } else {
        (format!("{base}?{}", kept.join("&")), value)
    }
}

/// The URL with any password in it replaced, for messages.
fn strip_secrets(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// The password for `config`: `PGPASSWORD`, else the first matching line of the password
/// file (`PGPASSFILE`, else `~/.pgpass`; ignored, as libpq does, when others can read it).
fn password_for(config: &Config) -> Option<String> {
    if let Ok(password) = std::env::var("PGPASSWORD") {
        return Some(password);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    let meta = std::fs::metadata(&file).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "the password file {} is readable by others; it is ignored \
                 (chmod 0600 it)",
                file.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&file).ok()?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(_)) | None => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default().to_string();
    let dbname = config.get_dbname().unwrap_or(&user).to_string();
    pgpass_lookup(&text, [&host, &port, &dbname, &user])
}

/// The password of the first line of a password file matching host, port, database and user
/// (`*` matches anything; `\:` and `\\` are a colon and a backslash).
fn pgpass_lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(field, want)| field == "*" || field == want)
        {
            return fields.pop();
        }
    }
    None
}

/// Text as PostgreSQL stores it: no NUL.
fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

impl PostgresStore {
    /// Connects, and creates or migrates the schema (one dispatcher at a time).
    pub fn open(database: &Database) -> Result<PostgresStore, StoreError> {
        let mut client = database.connect()?;
        let shown = database.shown().to_string();
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS pogo_schema (version BIGINT NOT NULL)")?;
        let found: Option<i64> = tx
            .query_opt("SELECT version FROM pogo_schema", &[])?
            .map(|row| row.get(0));
        match found {
            None => {
                tx.batch_execute(SCHEMA)?;
                for step in MIGRATIONS {
                    tx.batch_execute(step)?;
                }
                tx.execute(
                    "INSERT INTO pogo_schema (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(found) if (BASE_VERSION..SCHEMA_VERSION).contains(&found) => {
                for step in &MIGRATIONS[(found - BASE_VERSION) as usize..] {
                    tx.batch_execute(step)?;
                }
                tx.execute("UPDATE pogo_schema SET version = $1", &[&SCHEMA_VERSION])?;
                tracing::info!(
                    "{shown}: migrated from schema version {found} to \
                     {SCHEMA_VERSION}"
                );
            }
            Some(found) => return Err(StoreError::Version { path: shown, found }),
        }
        tx.commit()?;
        Ok(PostgresStore {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            in_transaction: false,
            shown,
            fence: None,
            broken: None,
        })
    }

    /// Fences every write by `lease`: each transaction begins by checking, and locking for
    /// its duration, that the lease row still has its epoch and has not expired; without a
    /// write, [`Backend::commit`] checks that the lease is still held. A session left idle in
    /// a transaction (its process paused) is ended by the server after half a lease, so that
    /// it cannot hold a takeover back.
    pub fn fenced(mut self, lease: Lease, duration: Duration) -> Result<PostgresStore, StoreError> {
        let idle = (duration / 2).as_millis().max(100);
        self.client
            .get_mut()
            .batch_execute(&format!("SET idle_in_transaction_session_timeout = {idle}"))?;
        self.fence = Some(lease);
        Ok(self)
    }

    /// The URL it was opened with, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether its connection is encrypted.
    #[cfg(test)]
    pub(crate) fn encrypted(&self) -> bool {
        self.client
            .borrow_mut()
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .map(|row| row.get(0))
            .unwrap_or(false)
    }

    /// The prepared statement of `sql`, prepared once per connection.
    fn statement(&self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.borrow_mut().prepare(sql)?;
        self.statements.borrow_mut().insert(sql, statement.clone());
        Ok(statement)
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        let begun = self.begin_fenced();
        if let Err(error) = &begun {
            self.broken.get_or_insert_with(|| error.to_string());
        }
        begun
    }

    fn begin_fenced(&mut self) -> Result<(), StoreError> {
        if self.in_transaction {
            return Ok(());
        }
        self.client.get_mut().batch_execute("BEGIN")?;
        self.in_transaction = true;
        if let Some(lease) = &self.fence {
            let epoch = lease.epoch();
            let statement = self.statement(
                "SELECT 1 FROM pogo_leader WHERE id = 1 AND epoch = $1 AND expires > now()
                 FOR SHARE",
            )?;
            let held = self.client.get_mut().query(&statement, &[&epoch])?;
            if held.is_empty() {
                self.client.get_mut().batch_execute("ROLLBACK")?;
                self.in_transaction = false;
                return Err(StoreError::Fenced(format!(
                    "its lease (epoch {epoch}) is no longer valid in the database"
                )));
            }
        }
        Ok(())
    }

    /// Runs a write in the open transaction; returns the rows it changed.
    fn write(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.begin()?;
        let done = self
            .statement(sql)
            .and_then(|statement| Ok(self.client.get_mut().execute(&statement, params)?));
        if let Err(error) = &done {
            self.broken.get_or_insert_with(|| error.to_string());
        }
        done
    }

    fn read(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.borrow_mut().query(&statement, params)?)
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Backend for PostgresStore {
    fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(reason) = self.broken.take() {
            if self.in_transaction {
                self.in_transaction = false;
                let _ = self.client.get_mut().batch_execute("ROLLBACK");
            }
            return Err(StoreError::Lost(reason));
        }
        if self.client.get_mut().is_closed() {
            return Err(StoreError::Lost("the connection to it closed".into()));
        }
        if self.in_transaction {
            self.in_transaction = false;
            self.client.get_mut().batch_execute("COMMIT")?;
        } else if let Some(lease) = &self.fence {
            // Nothing written: what is answered now is answered under a lease still held.
            if !lease.held() {
                return Err(StoreError::Fenced(format!(
                    "its lease (epoch {}) ran out",
                    lease.epoch()
                )));
            }
        }
        Ok(())
    }

    fn insert_job(&mut self, job: &JobRow, hosts: usize) -> Result<(), StoreError> {
        let reasons = serde_json::to_string(&job.reasons).unwrap_or_default();
        self.write(
            "INSERT INTO jobs (id, plan, transport, retry_delay_ms, has_password, submitted_at,
                submitted_by, state, reasons, halted, killed, session_started_ms, submission,
                applied, under)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &job.id,
                &job.plan,
                &job.transport,
                &int(job.retry_delay_ms),
                &job.has_password,
                &int(job.submitted_at),
                &job.submitted_by,
                &job.state,
                &clean(&reasons).as_ref(),
                &job.halted,
                &job.killed,
                &int(job.session_started_ms),
                &job.submission,
                &job.applied,
                &job.under,
            ],
        )?;
        let hosts = i32::try_from(hosts).unwrap_or(i32::MAX);
        self.write(
            "INSERT INTO hosts (job, idx, state, exit_code, attempts, first_attempt, worker, task,
                confirmed, message)
             SELECT $1, i, 'pending', NULL, 0, 1, NULL, NULL, FALSE, ''
             FROM generate_series(0, $2 - 1) AS i",
            &[&job.id, &hosts],
        )?;
        Ok(())
    }

    fn update_job(
        &mut self,
        id: &str,
        state: &str,
        reasons: &[String],
        halted: bool,
        killed: bool,
        session_started_ms: u64,
    ) -> Result<(), StoreError> {
        let reasons = serde_json::to_string(reasons).unwrap_or_default();
        self.write(
            "UPDATE jobs SET state = $2, reasons = $3, halted = $4, killed = $5,
                session_started_ms = $6 WHERE id = $1",
            &[
                &id,
                &state,
                &clean(&reasons).as_ref(),
                &halted,
                &killed,
                &int(session_started_ms),
            ],
        )?;
        Ok(())
    }

    fn update_under(&mut self, id: &str, under: &str) -> Result<(), StoreError> {
        self.write("UPDATE jobs SET under = $2 WHERE id = $1", &[&id, &under])?;
        Ok(())
    }

    fn close_job(&mut self, id: &str, by: &str, at: u64) -> Result<(), StoreError> {
        self.write(
            "UPDATE jobs SET closed_by = $2, closed_at = $3 WHERE id = $1",
            &[&id, &by, &int(at)],
        )?;
        Ok(())
    }

    fn insert_fleet(&mut self, row: &FleetRow) -> Result<(), StoreError> {
        self.write(
            "INSERT INTO fleets (name, revision, digest, inventory, config_name, config, outputs,
                plan, pushed_at, pushed_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &row.name,
                &i64::from(row.revision),
                &row.digest,
                &clean(&row.inventory).as_ref(),
                &row.config_name,
                &clean(&row.config).as_ref(),
                &clean(&row.outputs).as_ref(),
                &row.plan,
                &int(row.pushed_at),
                &row.pushed_by,
            ],
        )?;
        Ok(())
    }

    fn fleets(&self) -> Result<Vec<FleetRow>, StoreError> {
        let rows = self.read(
            "SELECT name, revision, digest, inventory, config_name, config, outputs, plan,
                pushed_at, pushed_by
             FROM fleets ORDER BY name, revision",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok(FleetRow {
                    name: row.try_get(0)?,
                    revision: u32::try_from(row.try_get::<_, i64>(1)?).unwrap_or(u32::MAX),
                    digest: row.try_get(2)?,
                    inventory: row.try_get(3)?,
                    config_name: row.try_get(4)?,
                    config: row.try_get(5)?,
                    outputs: row.try_get(6)?,
                    plan: row.try_get(7)?,
                    pushed_at: row.try_get::<_, i64>(8)? as u64,
                    pushed_by: row.try_get(9)?,
                })
            })
            .collect()
    }

    fn update_host(&mut self, job: &str, idx: usize, host: &HostRow) -> Result<(), StoreError> {
        let idx = i32::try_from(idx).unwrap_or(i32::MAX);
        self.write(
            "UPDATE hosts SET state = $3, exit_code = $4, attempts = $5, worker = $6,
                task = $7, message = $8, first_attempt = $9, confirmed = $10
             WHERE job = $1 AND idx = $2",
            &[
                &job,
                &idx,
                &host.state,
                &host.exit_code,
                &i64::from(host.attempts),
                &host.worker,
                &host.task,
                &clean(&host.message).as_ref(),
                &i64::from(host.first_attempt),
                &host.confirmed,
            ],
        )?;
        Ok(())
    }

    fn insert_event(&mut self, job: &str, record: &EventRecord) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(&record.event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.write(
            "INSERT INTO events (job, seq, body) VALUES ($1, $2, $3)",
            &[&job, &int(record.seq), &body],
        )?;
        Ok(())
    }

    fn claim_chunk(&mut self, task: &str, chunk: u64) -> Result<bool, StoreError> {
        let inserted = self.write(
            "INSERT INTO chunks (task, chunk) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&task, &int(chunk)],
        )?;
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
        self.write(
            "INSERT INTO output (job, seq, host, attempt, stream, text)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &job,
                &int(seq),
                &host,
                &i64::from(attempt),
                &stream,
                &clean(text).as_ref(),
            ],
        )?;
        Ok(())
    }

    fn insert_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        self.write(
            "INSERT INTO audit (at, actor, origin, action, job, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &int(record.at),
                &record.by,
                &record.from,
                &record.action,
                &record.job,
                &clean(&record.detail).as_ref(),
            ],
        )?;
        Ok(())
    }

    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self.read(
            "SELECT seq, at, actor, origin, action, job, detail FROM audit
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&int(after), &int(limit as u64)],
        )?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    seq: row.try_get::<_, i64>(0)? as u64,
                    at: row.try_get::<_, i64>(1)? as u64,
                    by: row.try_get(2)?,
                    from: row.try_get(3)?,
                    action: row.try_get(4)?,
                    job: row.try_get(5)?,
                    detail: row.try_get(6)?,
                })
            })
            .collect()
    }

    fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let rows = self.read(
            "SELECT id, plan, transport, retry_delay_ms, has_password, submitted_at,
                submitted_by, state, reasons, halted, killed, session_started_ms, submission,
                applied, under, closed_by, closed_at
             FROM jobs ORDER BY ord",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                let reasons: String = row.try_get(8)?;
                Ok(JobRow {
                    id: row.try_get(0)?,
                    plan: row.try_get(1)?,
                    transport: row.try_get(2)?,
                    retry_delay_ms: row.try_get::<_, i64>(3)? as u64,
                    has_password: row.try_get(4)?,
                    submitted_at: row.try_get::<_, i64>(5)? as u64,
                    submitted_by: row.try_get(6)?,
                    state: row.try_get(7)?,
                    reasons: serde_json::from_str(&reasons).unwrap_or_default(),
                    halted: row.try_get(9)?,
                    killed: row.try_get(10)?,
                    session_started_ms: row.try_get::<_, i64>(11)? as u64,
                    submission: row.try_get(12)?,
                    applied: row.try_get(13)?,
                    under: row.try_get(14)?,
                    closed: match (
                        row.try_get::<_, Option<String>>(15)?,
                        row.try_get::<_, Option<i64>>(16)?,
                    ) {
                        (Some(by), Some(at)) => Some((by, at as u64)),
                        _ => None,
                    },
                })
            })
            .collect()
    }

    fn hosts(&self, job: &str) -> Result<Vec<HostRow>, StoreError> {
        let rows = self.read(
            "SELECT state, exit_code, attempts, worker, task, message, first_attempt, confirmed
             FROM hosts WHERE job = $1 ORDER BY idx",
            &[&job],
        )?;
        rows.iter()
            .map(|row| {
                Ok(HostRow {
                    state: row.try_get(0)?,
                    exit_code: row.try_get(1)?,
                    attempts: u32::try_from(row.try_get::<_, i64>(2)?).unwrap_or(u32::MAX),
                    worker: row.try_get(3)?,
                    task: row.try_get(4)?,
                    message: row.try_get(5)?,
                    first_attempt: u32::try_from(row.try_get::<_, i64>(6)?).unwrap_or(u32::MAX),
                    confirmed: row.try_get(7)?,
                })
            })
            .collect()
    }

    fn last_seqs(&self, job: &str) -> Result<(u64, u64), StoreError> {
        let rows = self.read(
            "SELECT (SELECT MAX(seq) FROM events WHERE job = $1),
                    (SELECT MAX(seq) FROM output WHERE job = $1)",
            &[&job],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("no answer to a count".into()))?;
        let events: Option<i64> = row.try_get(0)?;
        let output: Option<i64> = row.try_get(1)?;
        Ok((events.unwrap_or(0) as u64, output.unwrap_or(0) as u64))
    }

    fn events(&self, job: &str, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let rows = self.read(
            "SELECT seq, body FROM events WHERE job = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&job, &int(after), &int(limit as u64)],
        )?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0)?;
                let body: String = row.try_get(1)?;
                let event =
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(EventRecord {
                    seq: seq as u64,
                    event,
                })
            })
            .collect()
    }

    fn output(
        &self,
        job: &str,
        host: Option<usize>,
        label: &dyn Fn(i64) -> String,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OutputRecord>, StoreError> {
        let limit = int(limit as u64);
        let rows = match host {
            Some(h) => self.read(
                "SELECT seq, host, attempt, stream, text FROM output
                 WHERE job = $1 AND host = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                &[&job, &(h as i64), &int(after), &limit],
            )?,
            None => self.read(
                "SELECT seq, host, attempt, stream, text FROM output
                 WHERE job = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&job, &int(after), &limit],
            )?,
        };
        rows.iter()
            .map(|row| {
                Ok(OutputRecord {
                    seq: row.try_get::<_, i64>(0)? as u64,
                    host: label(row.try_get(1)?),
                    attempt: u32::try_from(row.try_get::<_, i64>(2)?).unwrap_or(u32::MAX),
                    stream: row.try_get(3)?,
                    text: row.try_get(4)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_line_matches_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db.example:5432:other:pogo:wrong\n\
                    db.example:*:pogo:pogo:s3cr\\:et\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, ["db.example", "5432", "pogo", "pogo"]),
            Some("s3cr:et".into())
        );
        assert_eq!(
            pgpass_lookup(text, ["elsewhere", "5433", "x", "y"]),
            Some("fallback".into())
        );
        assert_eq!(pgpass_lookup("a:b:c:d\n", ["a", "b", "c", "d"]), None);
    }

    #[test]
    fn a_url_with_a_password_is_refused_and_shown_without_it() {
        let refused = Database::parse("postgres://pogo:hunter2@db.example/pogo").unwrap_err();
        assert!(refused.contains("PGPASSWORD"), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
        assert_eq!(
            strip_secrets("postgres://pogo:hunter2@db.example/pogo"),
            "postgres://pogo:***@db.example/pogo"
        );
        let (url, root) = take_param(
            "postgres://pogo@db/pogo?sslmode=require&sslrootcert=/etc/ca.pem",
            "sslrootcert",
        );
        assert_eq!(url, "postgres://pogo@db/pogo?sslmode=require");
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
    }
}
