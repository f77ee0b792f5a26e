//! A real PostgreSQL server for tests: `initdb` and `postgres` in a temporary directory, on a
//! free loopback port, as an unprivileged user (PostgreSQL refuses to run as root: under root
//! the server runs as the `postgres` account that Debian's package creates). Each test takes a
//! database of its own ([`PostgresServer::database`]).
//!
//! A watchdog shell runs beside the server and stops it (and removes its directory) once the
//! test process is gone, however it ended; [`PostgresServer::stop`] stops it at once.
//!
//! Included by path by the tests that need it (the dispatcher's core tests, the CLI's remote
//! tests); not part of any binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The database superuser the tests connect as (no password: trust on loopback).
pub const USER: &str = "pogo";

pub struct PostgresServer {
    /// The temporary directory: `data/`, the socket, `server.log`.
    root: PathBuf,
    port: u16,
    bin: PathBuf,
    /// The account the server runs as, when the tests run as root.
    account: Option<String>,
    watchdog: Option<Child>,
    databases: AtomicUsize,
    /// Settings added to the server's command line.
    settings: String,
}

impl PostgresServer {
    /// One server for the whole test process, started on first use.
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(PostgresServer::start)
    }

    /// Makes a cluster and starts its server. Panics, saying why, when PostgreSQL is not
    /// installed (`.ci/run` installs Debian's `postgresql`).
    pub fn start() -> PostgresServer {
        PostgresServer::start_with(&[])
    }

    /// A server that also takes TLS connections, with this certificate and key (PEM).
    pub fn start_tls(cert: &str, key: &str) -> PostgresServer {
        PostgresServer::start_with(&[("server.crt", cert), ("server.key", key)])
    }

    fn start_with(files: &[(&str, &str)]) -> PostgresServer {
        let bin = find_bin();
        let account = is_root().then(|| "postgres".to_string());
        let root = std::env::temp_dir().join(format!(
            "pogo-test-pg-{}-{}",
            std::process::id(),
            PORTS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).unwrap();
        if let Some(account) = &account {
            let (uid, gid) = ids(account);
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
        }
        let mut settings = String::new();
        for (name, text) in files {
            let path = root.join(name);
            std::fs::write(&path, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if let Some(account) = &account {
                let (uid, gid) = ids(account);
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        }
        if !files.is_empty() {
            settings = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".into();
            settings = settings.replace("server.", &format!("{}/server.", text(&root)));
        }
        let data = root.join("data");
        let initdb = run_as(
            &account,
            bin.join("initdb"),
            &[
                "-D",
                &text(&data),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        )
        .output()
        .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut server = PostgresServer {
            root,
            port: free_port(),
            bin,
            account,
            watchdog: None,
            databases: AtomicUsize::new(0),
            settings,
        };
        server.run();
        server
    }

    /// Starts the server on its directory and port, and waits until it answers.
    fn run(&mut self) {
        let script = r#"
"$PG_BIN/postgres" -D "$PG_ROOT/data" -p "$PG_PORT" -k "$PG_ROOT" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
    -c max_connections=200 $PG_SETTINGS >>"$PG_ROOT/server.log" 2>&1 &
pg=$!
while [ -d "/proc/$PG_PARENT" ] && kill -0 "$pg" 2>/dev/null; do sleep 0.2; done
kill -INT "$pg" 2>/dev/null
wait "$pg"
[ -d "/proc/$PG_PARENT" ] || rm -rf "$PG_ROOT"
"#;
        let mut watchdog = run_as(&self.account, PathBuf::from("/bin/sh"), &["-c", script]);
        watchdog
            .env("PG_BIN", &self.bin)
            .env("PG_ROOT", &self.root)
            .env("PG_PORT", self.port.to_string())
            .env("PG_PARENT", std::process::id().to_string())
            .env("PG_SETTINGS", &self.settings)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.watchdog = Some(watchdog.spawn().expect("start postgres"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if postgres::Client::connect(&self.conninfo("postgres"), postgres::NoTls).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `key=value` connection string to `dbname`.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={USER} dbname={dbname} sslmode=disable",
            self.port
        )
    }

    /// The URL of a database of its own (made now, empty), as `--database` takes it.
    pub fn database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{n}");
        let mut client =
            postgres::Client::connect(&self.conninfo("postgres"), postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(&name)
    }

    /// The URL of database `dbname`.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.port
        )
    }

    /// Stops the server (a fast shutdown: connections are closed).
    pub fn stop(&mut self) {
        let _ = run_as(
            &self.account,
            self.bin.join("pg_ctl"),
            &[
                "-D",
                &text(&self.root.join("data")),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.wait();
        }
    }

    /// Stops the server and starts it again on the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

static PORTS: AtomicUsize = AtomicUsize::new(0);

fn text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_string()
}

/// `program ARGS`, as `account` when there is one.
fn run_as(account: &Option<String>, program: PathBuf, args: &[&str]) -> Command {
    match account {
        Some(account) => {
            let mut command = Command::new("runuser");
            command.args(["-u", account, "--"]).arg(program).args(args);
            command.current_dir("/");
            command
        }
        None => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn ids(account: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, account])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!("no account `{account}` to run PostgreSQL as (Debian's postgresql makes it)")
            })
    };
    (id("-u"), id("-g"))
}

/// The directory of `initdb`, `postgres` and `pg_ctl`: on the PATH, else Debian's
/// `/usr/lib/postgresql/VERSION/bin` (the newest).
fn find_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                return dir;
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL is not installed (no initdb on the PATH or in /usr/lib/postgresql): \
         apt-get install postgresql",
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
