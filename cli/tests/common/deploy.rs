//! A remote deployment on loopback for the tests: real `pogo dispatcher`, `pogo worker` and
//! operator processes, with certificates made by `pogo certs init`, in a directory of the
//! test's own. Processes are guarded: each one (and whatever it started that still runs) is
//! killed when its guard drops, and when a test fails every process's output is printed.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pogo_model::Plan;
use pogo_remote::certs::{self, Role};
use pogo_remote::client::Client;
use pogo_remote::tls::TlsFiles;
use serde_json::Value;

use super::{config, read_spans, Run};

/// The command of every host: `sh DIR/rec.sh SECONDS`.
pub const REC: &str = r#"dir="$(dirname "$0")"
rec="$dir/rec/$POGO_HOST"
echo "start $(date +%s%N)" >> "$rec"
sleep "${1:-0.2}"
echo "end $(date +%s%N)" >> "$rec"
echo "ran on $POGO_HOST"
if [ -e "$dir/fail-$POGO_HOST" ]; then echo "failing on purpose" >&2; exit 3; fi
exit 0
"#;

/// How long any condition a test waits for may take to come true.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Waits until `ready` holds, or fails the test naming `what`.
#[track_caller]
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// A port nobody listens on now (for a restart on the same port, or a closed port).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Each process's parent, from /proc.
pub fn parents() -> BTreeMap<u32, u32> {
    let mut parents = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold anything but ends at the last `)`.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// Every process below `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parents = parents();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, &p)| p == parent)
                .map(|(&child, _)| child),
        );
        i += 1;
    }
    found.remove(0);
    found
}

pub fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A pogo process that runs in the background, its output going to files. Dropping it kills
/// it, and the commands it started that still run.
pub struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until its stderr has a line containing `needle`.
    #[track_caller]
    pub fn wait_for_stderr(&self, needle: &str) {
        wait_until(&format!("{} to say `{needle}`", self.name), || {
            self.stderr().contains(needle)
        });
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// SIGKILL, as a crash: whatever it started goes on.
    pub fn crash(&mut self) {
        kill(self.pid(), "KILL");
        self.child.wait().unwrap();
    }

    /// Waits until it has printed its first line, which starts with `prefix`: the rest of
    /// it. Fails the test if it ends first.
    #[track_caller]
    pub fn first_line(&mut self, prefix: &str) -> String {
        let mut rest = None;
        let name = self.name.clone();
        wait_until(&format!("{name} to start"), || {
            let out = self.stdout();
            rest = out
                .lines()
                .next()
                .filter(|_| out.contains('\n'))
                .and_then(|l| l.strip_prefix(prefix))
                .map(String::from);
            assert!(
                rest.is_some() || !self.exited(),
                "{name} ended: stdout:\n{out}\nstderr:\n{}",
                self.stderr()
            );
            rest.is_some()
        });
        rest.unwrap()
    }

    /// Waits for it to end on its own; its exit code.
    #[track_caller]
    pub fn wait(&mut self) -> i32 {
        let name = self.name.clone();
        wait_until(&format!("{name} to end"), || self.exited());
        let status = self.child.wait().unwrap();
        status.code().expect("pogo exits, it is not killed")
    }

    /// Waits for it to end with `code`; the end of its stdout shows otherwise.
    #[track_caller]
    pub fn expect(&mut self, code: i32) {
        let got = self.wait();
        assert_eq!(
            got,
            code,
            "{}: stdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout(),
            self.stderr()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // The commands it runs first, so that none outlives the test.
        let below = descendants(self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in below {
            kill(pid, "KILL");
        }
    }
}

impl Run {
    #[track_caller]
    pub fn json(&self) -> Value {
        self.expect(0);
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("{e}: not JSON:\n{}", self.stdout()))
    }
}

/// A test's deployment: a directory with its certificates (a CA, the dispatcher, the workers
/// and operator `alice`), `rec.sh`, the hosts' records, the dispatcher's state and every
/// process's output. When the test fails, every process's output is printed.
pub struct Deployment {
    dir: tempfile::TempDir,
    /// The dispatcher's URL, once one listens.
    url: RefCell<Option<String>>,
    /// Numbers the processes' output files.
    started: Cell<usize>,
}

impl Deployment {
    pub fn new(workers: &[&str]) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rec.sh"), REC).unwrap();
        for sub in ["rec", "logs", "home"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let deployment = Deployment {
            dir,
            url: RefCell::new(None),
            started: Cell::new(0),
        };
        let mut args = vec!["certs", "init", "certs", "--operator", "alice"];
        for worker in workers {
            args.extend(["--worker", worker]);
        }
        deployment.pogo(&args).expect(0);
        deployment
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn certs(&self) -> PathBuf {
        self.path().join("certs")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    pub fn url(&self) -> String {
        self.url.borrow().clone().expect("a dispatcher was started")
    }

    /// The certificate files of a worker or an operator.
    pub fn files(&self, role: Role, name: &str) -> TlsFiles {
        let issued = certs::issued_paths(&self.certs(), role, name);
        TlsFiles {
            cert: issued.cert,
            key: issued.key,
            ca: self.certs().join(certs::CA_CERT),
        }
    }

    /// The command every host runs: it records its span and sleeps `seconds`.
    pub fn rec(&self, seconds: &str) -> String {
        format!("sh {}/rec.sh {seconds}", self.path().display())
    }

    /// A pogo command in the test's directory, with a home of its own (no client config
    /// file but the test's) and operator alice's certificates in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let alice = self.files(Role::Operator, "alice");
        let mut command = Command::new(env!("CARGO_BIN_EXE_pogo"));
        command
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path().join("home"))
            .env("XDG_CONFIG_HOME", self.path().join("home"))
            .env_remove("POGO_CLIENT_CONFIG")
            .env_remove("POGO_STATE_DIR")
            .env("POGO_CERT", &alice.cert)
            .env("POGO_KEY", &alice.key)
            .env("POGO_CA", &alice.ca)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        match self.url.borrow().as_deref() {
            Some(url) => command.env("POGO_DISPATCHER", url),
            None => command.env_remove("POGO_DISPATCHER"),
        };
        command
    }

    /// Runs a pogo command to its end.
    pub fn pogo(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    /// Starts a pogo command in the background.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        self.spawn_command(name, self.command(args))
    }

    /// Starts `command` (pogo or another program) in the background, guarded as pogo's are.
    pub fn spawn_command(&self, name: &str, mut command: Command) -> Proc {
        let n = self.started.get() + 1;
        self.started.set(n);
        let logs = self.path().join("logs");
        let stdout = logs.join(format!("{n:02}-{name}.stdout"));
        let stderr = logs.join(format!("{n:02}-{name}.stderr"));
        let child = command
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    /// Starts the dispatcher on `port` (0: any free one) and waits until it listens.
    pub fn dispatcher(&self, port: u16, extra: &[&str]) -> Proc {
        let certs = self.certs();
        let file = |name: &str| path_text(&certs.join(name));
        let listen = format!("127.0.0.1:{port}");
        let state = path_text(&self.state_dir());
        let mut args = vec!["dispatcher", "--listen", &listen, "--state-dir", &state];
        let (cert, key, ca) = (
            file("dispatcher.pem"),
            file("dispatcher-key.pem"),
            file("ca.pem"),
        );
        args.extend(["--cert", &cert, "--key", &key, "--ca", &ca]);
        args.extend_from_slice(extra);
        let mut dispatcher = self.spawn("dispatcher", &args);
        let url = dispatcher.first_line("pogo dispatcher listening on ");
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        if port != 0 {
            assert_eq!(url, format!("https://127.0.0.1:{port}"));
        }
        *self.url.borrow_mut() = Some(url);
        dispatcher
    }

    /// Starts a dispatcher on the PostgreSQL database at `database` (several may share it;
    /// one leads) on `port`, and waits until it listens. Operators and workers started after
    /// it talk to it (see [`Deployment::use_dispatcher`]).
    /// Each dispatcher has a certificate of its own: `name`'s is issued on its first start.
    pub fn dispatcher_on(&self, database: &str, name: &str, port: u16, extra: &[&str]) -> Proc {
        let certs = self.certs();
        let issued = certs::issued_paths(&certs, Role::Dispatcher, name);
        if !issued.cert.exists() {
            let dir = path_text(&certs);
            self.pogo(&[
                "certs",
                "issue",
                "--dir",
                &dir,
                "--role",
                "dispatcher",
                name,
            ])
            .expect(0);
        }
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["dispatcher", "--listen", &listen, "--database", database];
        let (cert, key, ca) = (
            path_text(&issued.cert),
            path_text(&issued.key),
            path_text(&certs.join(certs::CA_CERT)),
        );
        args.extend(["--cert", &cert, "--key", &key, "--ca", &ca]);
        args.extend_from_slice(extra);
        let mut dispatcher = self.spawn("dispatcher", &args);
        let url = dispatcher.first_line("pogo dispatcher listening on ");
        *self.url.borrow_mut() = Some(url);
        dispatcher
    }

    /// From now on, operators and workers started talk to the dispatcher at `url`.
    pub fn use_dispatcher(&self, url: &str) {
        *self.url.borrow_mut() = Some(url.to_string());
    }

    /// Starts worker `name` with `capacity`: it reconnects quickly when the dispatcher is away.
    pub fn worker(&self, name: &str, capacity: u32) -> Proc {
        self.worker_with(name, capacity, &self.files(Role::Worker, name))
    }

    /// `pogo worker` with these certificate files (another deployment's, say).
    pub fn worker_with(&self, name: &str, capacity: u32, files: &TlsFiles) -> Proc {
        self.worker_args(name, capacity, files, &[])
    }

    /// `pogo worker` with these certificate files and `extra` flags.
    pub fn worker_args(&self, name: &str, capacity: u32, files: &TlsFiles, extra: &[&str]) -> Proc {
        let url = self.url();
        let capacity = capacity.to_string();
        let (cert, key, ca) = (
            path_text(&files.cert),
            path_text(&files.key),
            path_text(&files.ca),
        );
        let mut args = vec![
            "worker",
            "--dispatcher",
            &url,
            "--cert",
            &cert,
            "--key",
            &key,
            "--ca",
            &ca,
            "--capacity",
            &capacity,
            "--max-backoff",
            "200ms",
        ];
        args.extend_from_slice(extra);
        self.spawn(name, &args)
    }

    /// `pogo workers --json`.
    pub fn workers(&self) -> Vec<Value> {
        match self.pogo(&["workers", "--json"]).json() {
            Value::Array(workers) => workers,
            other => panic!("not a list of workers: {other}"),
        }
    }

    pub fn worker_info(&self, name: &str) -> Option<Value> {
        self.workers().into_iter().find(|w| w["name"] == name)
    }

    /// Waits until the dispatcher knows these workers, connected.
    pub fn wait_for_workers(&self, names: &[&str]) {
        wait_until("the workers to connect", || {
            let workers = self.workers();
            names.iter().all(|name| {
                workers
                    .iter()
                    .any(|w| w["name"] == *name && w["connected"] == true)
            })
        });
    }

    /// Writes a config file in the test's directory and plans it into `plan.json`.
    pub fn plan(&self, config_text: Option<&str>, args: &[&str]) -> Plan {
        let config_path = match config_text {
            Some(text) => {
                std::fs::write(self.path().join("fleet.cfg"), text).unwrap();
                "fleet.cfg".to_string()
            }
            None => config("t/cfgs/triple.cfg"),
        };
        let mut all = vec!["plan", "--config", &config_path, "-o", "plan.json"];
        all.extend_from_slice(args);
        self.pogo(&all).expect(0);
        let text = std::fs::read_to_string(self.path().join("plan.json")).unwrap();
        Plan::from_json(&text).unwrap()
    }

    /// `pogo apply plan.json --dispatcher --transport local --detach`: the job's id.
    pub fn submit(&self) -> String {
        let run = self.pogo(&[
            "apply",
            "plan.json",
            "--dispatcher",
            "--transport",
            "local",
            "--detach",
        ]);
        let id = run.expect(0).stdout().trim().to_string();
        assert!(id.starts_with("job-"), "{id}");
        id
    }

    /// `pogo status JOB --json`.
    pub fn status(&self, job: &str) -> Value {
        self.pogo(&["status", job, "--json"]).json()
    }

    /// Waits until the job is in `state`; its status then.
    #[track_caller]
    pub fn wait_for_state(&self, job: &str, state: &str) -> Value {
        let mut status = Value::Null;
        wait_until(&format!("job {job} to be {state}"), || {
            // A dispatcher taking over answers 503 for a moment: asked again.
            let run = self.pogo(&["status", job, "--json"]);
            if run.code() != 0 && run.stderr().contains("no dispatcher leads now") {
                return false;
            }
            status = run.json();
            status["state"] == state
        });
        status
    }

    /// The job's events, as `pogo log JOB --json` prints them.
    pub fn events(&self, job: &str) -> Vec<Value> {
        let run = self.pogo(&["log", job, "--json"]);
        run.expect(0)
            .stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    pub fn touch(&self, name: &str) {
        std::fs::write(self.path().join(name), "").unwrap();
    }

    /// Each host's recorded (start, end) spans, in the order they ran; an end of 0 for a
    /// span that has not ended.
    pub fn spans(&self) -> BTreeMap<String, Vec<(u128, u128)>> {
        read_spans(&self.path().join("rec"))
    }

    /// How many times each host's command started.
    pub fn runs_per_host(&self) -> BTreeMap<String, usize> {
        self.spans()
            .into_iter()
            .map(|(h, spans)| (h, spans.len()))
            .collect()
    }

    /// Whether every command that started has ended.
    pub fn all_ended(&self) -> bool {
        self.spans()
            .values()
            .all(|spans| spans.iter().all(|(_, end)| *end > 0))
    }

    /// An async runtime for the library client.
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    pub fn client(&self, role: Role, name: &str) -> Client {
        Client::new(&self.url(), &self.files(role, name)).unwrap()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.path().join("logs")) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!(
                "----- {} -----\n{text}",
                log.file_name().unwrap().to_string_lossy()
            );
        }
        eprintln!("----- hosts' records -----\n{:?}", self.spans());
    }
}
