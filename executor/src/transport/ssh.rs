//! The SSH transport: OpenSSH, one multiplexed master connection per host.
//!
//! # Connections
//!
//! The first run on a host starts an OpenSSH master (`ssh -M -f -N`) with its control socket in
//! a private directory (mode 0700) of this transport; every command on the host, retries
//! included, is a session multiplexed over it through the `openssh` crate's native mux client.
//! The master is started by this module rather than by `openssh::SessionBuilder`, because the
//! builder always sets `BatchMode=yes` (which rules out password authentication) and cannot
//! set the master's environment (which the askpass helper needs) nor turn host-key checking
//! off without writing to the user's known_hosts. The user's `~/.ssh/config` (or the file given
//! with [`SshOptions::config_file`]), agent and known_hosts apply as for `ssh HOST`; the options
//! given here take precedence over the config file, as on ssh's command line.
//!
//! A master that could not connect is reported as [`Outcome::Unreachable`], from what the
//! master's log (`ssh -E`) says: authentication refused, host key not accepted, or no
//! connection. Once connected, a command's exit status comes from the multiplexing protocol,
//! so a command that exits 255 is a command that exited 255: when a session ends without a
//! status, the master is asked whether it is still alive (`Session::check`) to tell a command
//! killed by a signal from a lost connection. A dead master is dropped and the next run
//! connects again. Masters are started with `ControlPersist` set to an idle time
//! ([`SshOptions::control_persist`]): if pogo dies without closing them, they exit on their own.
//! A master is started in a process group of its own (and, once in the background, ssh puts it
//! in a session of its own): a Ctrl-C on pogo's terminal signals pogo alone, which halts the
//! run and lets the running hosts finish over their connections. Commands and kills are
//! sessions over the master (the native mux client), not `ssh` processes of their own.
//!
//! # The remote wrapper, and killing a command on the target
//!
//! The multiplexing protocol cannot signal a remote process, and closing the session does not
//! stop it (without a tty it gets no `SIGHUP`). So every command runs under a small wrapper,
//! sent as the session's command line:
//!
//! ```sh
//! exec /bin/sh -c 'echo pogo-pid-NONCE $$ >&2; exec 3<&0; IFS= read -r n;
//!   c=$(dd bs=1 count="$n" 2>/dev/null);
//!   /bin/sh -c "$c" </dev/null 3<&- & p=$!;
//!   (cat <&3 >/dev/null 2>&1; kill -TERM -$$ 2>/dev/null) & w=$!; exec 3<&-;
//!   wait $p; s=$?; kill $w 2>/dev/null; echo pogo-pid-NONCE exit $s >&2; exit $s'
//! ```
//!
//! - OpenSSH's `sshd` starts each session's process with `setsid()`, and the login shell
//!   `exec`s the wrapper, so the wrapper's PID is also its process group and session id. It
//!   reports that PID on stderr, marked with a per-run nonce, before anything of the command
//!   runs; the transport takes that line out of the output.
//! - The command itself is written to the wrapper's stdin (its length, a newline, its bytes)
//!   rather than quoted into its command line, so it reaches `/bin/sh -c` byte for byte
//!   whatever the login shell (bash, zsh, fish, csh) and whatever it contains. Its own stdin is
//!   `/dev/null`.
//! - The transport keeps the session's stdin open for the whole run. A watcher in the wrapper
//!   reads it to its end, which comes only when this process dies (a worker killed with
//!   SIGKILL) or the connection drops, and then ends the command's process group: the command
//!   does not outlive its session.
//! - The command runs as a child of the wrapper: a command killed by signal N exits with the
//!   shell's code 128 + N. Once it has exited, the wrapper reports its status on stderr (taken
//!   out of the output): a cancel or timeout that comes after never hides what the command
//!   did.
//!
//! On timeout or cancellation the transport runs a second command on the same master,
//! `exec /bin/sh -s`, with a kill script on its stdin: it sends `SIGTERM` to the process group
//! (`kill -TERM -PID`) and to anything left in the session (`pkill -s PID`, which also catches
//! children that made a process group of their own), waits up to the grace period
//! ([`SshOptions::kill_grace`]) for every process of the group and session to be gone (zombies
//! count as gone; `ps`, or `kill -0` without it), sends `SIGKILL` if not, and exits 0 only when
//! nothing is left. That confirms [`Kill::Killed`]; anything else (the connection is gone, the
//! script failed) is [`Kill::Unconfirmed`] with the reason. A process that started a session of
//! its own (a daemon) is not killed, as with the local transport. The PID is checked to be
//! above 1 before it goes into the script. If a run is abandoned instead (its future dropped
//! while the command runs), the same kill is started in the background on the runtime.
//!
//! # Passwords
//!
//! With [`SshOptions::password`], the master authenticates through `SSH_ASKPASS`: see
//! [`super::askpass`] for the protocol. `BatchMode` is then off (it forbids askpass), but no
//! prompt ever reaches a terminal: `SSH_ASKPASS_REQUIRE=force` sends every prompt to the helper,
//! which answers password prompts only.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssh::Session;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::askpass::AskpassServer;
use super::{
    one_line, pump_lines, timed, BoxFuture, CancelToken, ConnectError, ConnectErrorKind,
    ExitStatus, Kill, Outcome, Output, RunResult, Secret, Stream, Transport,
};

/// How the host's key is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// The key must be in known_hosts already (`StrictHostKeyChecking=yes`): OpenSSH's
    /// behaviour when it cannot ask.
    #[default]
    Strict,
    /// An unknown key is added to known_hosts; a changed key is refused
    /// (`StrictHostKeyChecking=accept-new`).
    AcceptNew,
    /// No checking at all: any key is accepted and none is recorded
    /// (`StrictHostKeyChecking=no`, known_hosts files `/dev/null`). Only on explicit request.
    Off,
}

impl HostKeyPolicy {
    /// The names used on the command line.
    pub const NAMES: [&'static str; 3] = ["strict", "accept-new", "off"];

    fn ssh_options(self) -> &'static [&'static str] {
        match self {
            HostKeyPolicy::Strict => &["StrictHostKeyChecking=yes"],
            HostKeyPolicy::AcceptNew => &["StrictHostKeyChecking=accept-new"],
            HostKeyPolicy::Off => &[
                "StrictHostKeyChecking=no",
                "UserKnownHostsFile=/dev/null",
                "GlobalKnownHostsFile=/dev/null",
            ],
        }
    }
}

impl fmt::Display for HostKeyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::Off => "off",
        })
    }
}

impl FromStr for HostKeyPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(HostKeyPolicy::Strict),
            "accept-new" => Ok(HostKeyPolicy::AcceptNew),
            "off" => Ok(HostKeyPolicy::Off),
            _ => Err(format!(
                "unknown host-key policy `{s}`; expected one of: {}",
                HostKeyPolicy::NAMES.join(", ")
            )),
        }
    }
}

/// Options of the SSH transport. `None` leaves a setting to the ssh config.
#[derive(Debug)]
pub struct SshOptions {
    /// `-l USER`.
    pub user: Option<String>,
    /// `-p PORT`.
    pub port: Option<u16>,
    /// `-i FILE` with `IdentitiesOnly=yes`: only this key (and no other of the agent's) is
    /// offered.
    pub identity: Option<PathBuf>,
    /// `-F FILE`, read instead of `~/.ssh/config` (and the system-wide file).
    pub config_file: Option<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    /// Password authentication through the askpass helper (see [`super::askpass`]).
    pub password: Option<Secret>,
    /// The askpass helper: a program that calls [`super::askpass_main`] when
    /// [`super::askpass_requested`]. Default: the current executable (the pogo binary).
    pub askpass_program: Option<PathBuf>,
    /// `ConnectTimeout`. Default 30 s, so that a dead host does not hold a slot for the
    /// system's TCP timeout.
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval` (with ssh's default `ServerAliveCountMax` of 3). Default 15 s, so
    /// that a connection lost while a command runs is noticed.
    pub server_alive_interval: Option<Duration>,
    /// How long a master stays up with no command running (`ControlPersist`): the bound on a
    /// master left behind by a pogo that died. Default 10 minutes; a master that expired
    /// between two runs on a host is started again.
    pub control_persist: Duration,
    /// Time between `SIGTERM` and `SIGKILL` when a command is killed. Default 5 s.
    pub kill_grace: Duration,
    /// The `ssh` program. Default `ssh`, from `PATH`.
    pub ssh_program: PathBuf,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            user: None,
            port: None,
            identity: None,
            config_file: None,
            host_key_policy: HostKeyPolicy::Strict,
            password: None,
            askpass_program: None,
            connect_timeout: Some(Duration::from_secs(30)),
            server_alive_interval: Some(Duration::from_secs(15)),
            control_persist: Duration::from_secs(600),
            kill_grace: Duration::from_secs(5),
            ssh_program: PathBuf::from("ssh"),
        }
    }
}

/// How long to wait for the wrapper's PID once the command must be killed: it is the first
/// thing the wrapper does, so it normally arrived long before.
const PID_WAIT: Duration = Duration::from_secs(5);
/// How long the kill script may take beyond the grace period (two `ps` runs, `SIGKILL`).
const KILL_SLACK: Duration = Duration::from_secs(15);
/// How long to wait for the session to end once its processes are dead.
const AFTER_KILL: Duration = Duration::from_secs(5);

type Slot = Arc<tokio::sync::Mutex<Option<Conn>>>;

/// A host's master connection, shared by the runs on the host (and a background kill). The
/// last one dropped shuts the master down (`ssh -O exit`) and only then lets go of the
/// transport's directory, where the control socket is: removing it first would strand the
/// master until its `ControlPersist` expires.
#[derive(Clone)]
struct Conn(Arc<ConnInner>);

struct ConnInner {
    session: Session,
    _root: Arc<tempfile::TempDir>,
}

impl std::ops::Deref for Conn {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0.session
    }
}

impl Conn {
    fn same(&self, other: &Conn) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Runs commands over SSH. See the [module documentation](self).
pub struct SshTransport {
    hosts: std::sync::Mutex<HashMap<String, Slot>>,
    options: SshOptions,
    password: Option<Arc<Secret>>,
    askpass_program: Option<PathBuf>,
    control_root: Arc<tempfile::TempDir>,
}

impl fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTransport")
            .field("options", &self.options)
            .field("control_root", &self.control_root.path())
            .finish_non_exhaustive()
    }
}

impl SshTransport {
    /// Makes the transport's private directory for control sockets (in the system's temporary
    /// directory) and resolves the askpass helper. Connects to nothing yet.
    pub fn new(mut options: SshOptions) -> io::Result<Self> {
        let control_root = Arc::new(tempfile::Builder::new().prefix("pogo-ssh-").tempdir()?);
        let password = options.password.take().map(Arc::new);
        let askpass_program = match (&password, options.askpass_program.take()) {
            (None, _) => None,
            (Some(_), Some(program)) => Some(program),
            (Some(_), None) => Some(std::env::current_exe()?),
        };
        Ok(SshTransport {
            hosts: std::sync::Mutex::new(HashMap::new()),
            options,
            password,
            askpass_program,
            control_root,
        })
    }

    fn slot(&self, host: &str) -> Slot {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.entry(host.to_string()).or_default().clone()
    }

    /// The host's live master, started if there is none (or the last one died).
    async fn session(&self, host: &str) -> Result<Conn, ConnectError> {
        let slot = self.slot(host);
        let mut slot = slot.lock().await;
        if let Some(session) = slot.as_ref() {
            if session.check().await.is_ok() {
                return Ok(session.clone());
            }
            *slot = None;
        }
        let session = self.connect(host).await?;
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Forgets `session` if it is still the host's, so that the next run connects again.
    async fn forget(&self, host: &str, session: &Conn) {
        let slot = self.slot(host);
        let mut slot = slot.lock().await;
        if slot.as_ref().is_some_and(|s| s.same(session)) {
            *slot = None;
        }
    }

    async fn connect(&self, host: &str) -> Result<Conn, ConnectError> {
        let local = |what: &str, error: io::Error| ConnectError {
            kind: ConnectErrorKind::Local,
            message: format!("failed to {what}: {error}"),
        };
        let dir = tempfile::Builder::new()
            .prefix("h")
            .tempdir_in(self.control_root.path())
            .map_err(|e| local("make a directory for the control socket", e))?;
        let log = dir.path().join("log");
        let o = &self.options;
        let mut ssh = tokio::process::Command::new(&o.ssh_program);
        ssh.stdin(Stdio::null())
            .stdout(Stdio::null())
            // The master keeps its stderr once in the background: a pipe would never close.
            .stderr(Stdio::null())
            // Its own process group: the SIGINT of the operator's Ctrl-C, which goes to the
            // terminal's foreground group, is pogo's to handle (halt, let running hosts
            // finish), not a signal that kills a master still connecting.
            .process_group(0)
            .kill_on_drop(true)
            .arg("-E")
            .arg(&log)
            .arg("-S")
            .arg(dir.path().join("master"))
            .args(["-M", "-f", "-N", "-o"])
            .arg(format!(
                "ControlPersist={}s",
                o.control_persist.as_secs().max(1)
            ));
        for option in o.host_key_policy.ssh_options() {
            ssh.args(["-o", option]);
        }
        if let Some(timeout) = o.connect_timeout {
            ssh.arg("-o")
                .arg(format!("ConnectTimeout={}", timeout.as_secs().max(1)));
        }
        if let Some(interval) = o.server_alive_interval {
            ssh.arg("-o")
                .arg(format!("ServerAliveInterval={}", interval.as_secs().max(1)));
        }
        if let Some(port) = o.port {
            ssh.arg("-p").arg(port.to_string());
        }
        if let Some(user) = &o.user {
            ssh.arg("-l").arg(user);
        }
        if let Some(identity) = &o.identity {
            ssh.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(identity);
        }
        if let Some(config) = &o.config_file {
            ssh.arg("-F").arg(config);
        }
        let askpass = match (&self.password, &self.askpass_program) {
            (Some(password), Some(program)) => {
                let server = AskpassServer::start(dir.path(), password.clone())
                    .map_err(|e| local("start the askpass socket", e))?;
                for (name, value) in server.ssh_env(program) {
                    if name == "DISPLAY" {
                        ssh.args(["-o", "ForwardX11=no"]);
                    }
                    ssh.env(name, value);
                }
                ssh.args(["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"]);
                Some(server)
            }
            _ => {
                ssh.args(["-o", "BatchMode=yes"]);
                None
            }
        };
        // `--`: a host name is never taken for an option.
        ssh.arg("--").arg(host);

        // With -f, ssh exits once the master is authenticated and in the background.
        let status = ssh.status().await;
        drop(askpass);
        let status =
            status.map_err(|e| local(&format!("run {}", o.ssh_program.to_string_lossy()), e))?;
        if status.success() {
            return Ok(Conn(Arc::new(ConnInner {
                session: Session::new_native_mux(dir),
                _root: self.control_root.clone(),
            })));
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Err(classify_failure(&text, status))
    }

    async fn attempt(
        &self,
        host: &str,
        command: &str,
        deadline: Option<Instant>,
        cancel: &CancelToken,
        output: mpsc::Sender<Output>,
    ) -> Outcome {
        if cancel.is_cancelled() {
            return Outcome::Cancelled(Kill::NotStarted);
        }
        let expired = || async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let session = tokio::select! {
            session = self.session(host) => match session {
                Ok(session) => session,
                Err(error) => return Outcome::Unreachable(error),
            },
            () = expired() => {
                return Outcome::Unreachable(ConnectError {
                    kind: ConnectErrorKind::Connect,
                    message: "no connection before the command's timeout".into(),
                })
            }
            () = cancel.cancelled() => return Outcome::Cancelled(Kill::NotStarted),
        };

        let marker = format!("pogo-pid-{}", nonce());
        // The wrapper reports its pid (to kill the command's group) and, once the command
        // has exited, its status: the exit status of the session comes only after the output
        // is closed, and a cancel or a timeout that comes in between must not be taken for
        // the command's end.
        //
        // The command comes on stdin after its length, and stdin then stays open for the
        // whole run: a watcher in the wrapper waits for its end, which comes when this process
        // (a worker, say) dies or the connection drops, and then ends the command's process
        // group. Without a terminal, a remote command would otherwise outlive its session.
        // (A background job of a non-interactive shell gets /dev/null as stdin: the watcher
        // reads a copy of it, fd 3, which the command does not get.)
        let wrapper = format!(
            "exec /bin/sh -c 'echo {marker} $$ >&2; exec 3<&0; IFS= read -r n; \
             c=$(dd bs=1 count=\"$n\" 2>/dev/null); \
             /bin/sh -c \"$c\" </dev/null 3<&- & p=$!; \
             (cat <&3 >/dev/null 2>&1; kill -TERM -$$ 2>/dev/null) & w=$!; exec 3<&-; \
             wait $p; s=$?; kill $w 2>/dev/null; echo {marker} exit $s >&2; exit $s'"
        );
        let spawned = Session::to_raw_command(session.clone(), &wrapper)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await;
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                // The master may have died since it was checked: the command did not start.
                self.forget(host, &session).await;
                return Outcome::Unreachable(ConnectError {
                    kind: ConnectErrorKind::Connect,
                    message: format!("failed to open a session: {error}"),
                });
            }
        };

        // Held until the run ends: its end is the wrapper's sign that this side is gone.
        let mut stdin = child.stdin().take();
        if let Some(stdin) = stdin.as_mut() {
            let framed = format!("{}\n{command}", command.len());
            let _ = stdin.write_all(framed.as_bytes()).await;
            let _ = stdin.flush().await;
        }
        let (pid_tx, mut pid_rx) = watch::channel(None::<u32>);
        let (exit_tx, exit_rx) = watch::channel(None::<i32>);
        let (stdout, stderr) = (child.stdout().take(), child.stderr().take());
        let pump = tokio::spawn(async move {
            let out = async {
                if let Some(stdout) = stdout {
                    pump_lines(stdout, Stream::Stdout, &output, |_| true).await;
                }
            };
            let err = async {
                if let Some(stderr) = stderr {
                    let mut reported = false;
                    let keep = |line: &[u8]| {
                        if reported {
                            if let Some(code) = parse_exit_report(line, &marker) {
                                exit_tx.send_replace(Some(code));
                                return false;
                            }
                            return true;
                        }
                        match parse_pid_report(line, &marker) {
                            Some(pid) => {
                                reported = true;
                                pid_tx.send_replace(Some(pid));
                                false
                            }
                            // Before the report: the login shell's own messages.
                            None => true,
                        }
                    };
                    pump_lines(stderr, Stream::Stderr, &output, keep).await;
                }
            };
            tokio::join!(out, err);
        });
        let pump_abort = pump.abort_handle();
        let mut guard = AbandonGuard {
            session: Some(session.clone()),
            pid: pid_rx.clone(),
            grace: self.options.kill_grace,
        };

        // The session is waited for only once the output is closed: the mux client drops its
        // connection when the exit status arrives, and the master then discards the output it
        // still holds.
        let mut work = std::pin::pin!(async move {
            let _ = pump.await;
            child.wait().await
        });
        let timed_out = tokio::select! {
            biased;
            status = &mut work => {
                guard.session = None;
                return match status {
                    Ok(status) => Outcome::Exited(match status.code() {
                        Some(code) => ExitStatus::Code(code),
                        None => ExitStatus::Signal(None),
                    }),
                    // The crate turns exit code 127 into an error of its own.
                    Err(openssh::Error::Remote(e)) if e.kind() == io::ErrorKind::NotFound => {
                        Outcome::Exited(ExitStatus::Code(127))
                    }
                    Err(error) => {
                        if session.check().await.is_ok() {
                            // No status, but the master is alive: the wrapper was killed.
                            Outcome::Exited(ExitStatus::Signal(None))
                        } else {
                            self.forget(host, &session).await;
                            let message = match master_log(&session) {
                                Some(said) => format!("the ssh master ended ({error}): {said}"),
                                None => format!("the ssh master ended ({error})"),
                            };
                            Outcome::Unreachable(ConnectError {
                                kind: ConnectErrorKind::Lost,
                                message,
                            })
                        }
                    }
                };
            }
            () = expired() => true,
            () = cancel.cancelled() => false,
        };

        let pid = match tokio::time::timeout(PID_WAIT, pid_rx.wait_for(Option::is_some)).await {
            Ok(Ok(pid)) => *pid,
            _ => None,
        };
        // The command exited before the cancel or the timeout: that is its outcome. What it
        // left holding its output is killed all the same.
        let exited = *exit_rx.borrow();
        guard.session = None;
        let kill = match pid {
            Some(pid) => kill_remote(&session, pid, self.options.kill_grace).await,
            None => Kill::Unconfirmed(
                "the command did not report its process id, so it could not be killed".into(),
            ),
        };
        let _ = tokio::time::timeout(AFTER_KILL, &mut work).await;
        pump_abort.abort();
        match (exited, timed_out) {
            (Some(code), _) => Outcome::Exited(ExitStatus::Code(code)),
            (None, true) => Outcome::TimedOut(kill),
            (None, false) => Outcome::Cancelled(kill),
        }
    }
}

impl Transport for SshTransport {
    fn run<'a>(
        &'a self,
        host: &'a str,
        command: &'a str,
        timeout: Option<Duration>,
        cancel: &'a CancelToken,
        output: mpsc::Sender<Output>,
    ) -> BoxFuture<'a, RunResult> {
        if let Some(refused) = super::refused_host(host) {
            return Box::pin(async move { refused });
        }
        Box::pin(timed(timeout, move |deadline| {
            self.attempt(host, command, deadline, cancel, output)
        }))
    }

    fn close<'a>(&'a self, host: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let slot = {
                let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
                hosts.remove(host)
            };
            let Some(slot) = slot else { return };
            let session = slot.lock().await.take();
            // The last reference shuts the master down when dropped (`ssh -O exit`); one still
            // held by a run finishing does so when that run lets go.
            if let Some(session) = session {
                let _ = tokio::task::spawn_blocking(move || drop(session)).await;
            }
        })
    }
}

/// Kills the wrapper's process group and session on the target: see the module docs.
async fn kill_remote(session: &Conn, pid: u32, grace: Duration) -> Kill {
    let script = kill_script(pid, grace);
    let run = async {
        let mut child = Session::to_raw_command(session.clone(), "exec /bin/sh -s")
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await?;
        if let Some(mut stdin) = child.stdin().take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(openssh::Error::ChildIo)?;
        }
        child.wait_with_output().await
    };
    match tokio::time::timeout(grace + KILL_SLACK, run).await {
        Ok(Ok(output)) if output.status.success() => Kill::Killed,
        Ok(Ok(output)) => {
            let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
            said.push_str(&String::from_utf8_lossy(&output.stderr));
            Kill::Unconfirmed(format!(
                "the kill command failed ({}): {}",
                output.status,
                one_line(&said)
            ))
        }
        Ok(Err(error)) => Kill::Unconfirmed(format!("failed to run the kill command: {error}")),
        Err(_) => Kill::Unconfirmed("the kill command did not finish".into()),
    }
}

/// Kills the command on the target, in the background, if the run is abandoned (its future
/// dropped) while the command runs.
struct AbandonGuard {
    session: Option<Conn>,
    pid: watch::Receiver<Option<u32>>,
    grace: Duration,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        let (Some(session), Some(pid)) = (self.session.take(), *self.pid.borrow()) else {
            return;
        };
        let grace = self.grace;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                kill_remote(&session, pid, grace).await;
            });
        }
    }
}

/// What a master's failure to connect was, from its log.
fn classify_failure(log: &str, status: std::process::ExitStatus) -> ConnectError {
    let kind = if log.contains("Bad configuration option")
        || log.contains("Can't open user config file")
        || log.contains("bad configuration options")
    {
        // The same for every host: the config (or an option) is wrong, not the host.
        ConnectErrorKind::Local
    } else if log.contains("Host key verification failed")
        || log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        ConnectErrorKind::HostKey
    } else if log.contains("Permission denied") || log.contains("Too many authentication failures")
    {
        ConnectErrorKind::Auth
    } else {
        ConnectErrorKind::Connect
    };
    // The last lines say what happened; the banner of a changed key is all `@`.
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty() && !line.starts_with('@') && !line.starts_with("Warning: Permanently")
        })
        .collect();
    let message = if lines.is_empty() {
        format!("ssh exited with {status} and said nothing")
    } else {
        lines[lines.len().saturating_sub(2)..].join("; ")
    };
    ConnectError { kind, message }
}

/// The last thing the master logged, if anything.
fn master_log(session: &Session) -> Option<String> {
    let log = session.control_socket().with_file_name("log");
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with("Warning: Permanently"))
        .map(str::to_string)
}

/// The wrapper's report, `MARKER PID`, if `line` is it. PIDs 0 and 1 are refused: `kill -0` and
/// `kill -1` mean something else entirely.
fn parse_pid_report(line: &[u8], marker: &str) -> Option<u32> {
    let line = std::str::from_utf8(line).ok()?;
    let pid = line.strip_prefix(marker)?.strip_prefix(' ')?;
    pid.trim_end()
        .parse::<u32>()
        .ok()
        .filter(|&pid| pid > 1 && pid <= i32::MAX as u32)
}

/// The wrapper's report that the command exited, `MARKER exit STATUS`.
fn parse_exit_report(line: &[u8], marker: &str) -> Option<i32> {
    let line = std::str::from_utf8(line).ok()?;
    let status = line.strip_prefix(marker)?.strip_prefix(" exit ")?;
    status.trim_end().parse::<i32>().ok()
}

/// A value no two runs of this process share, and unlikely to appear in output by chance.
fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:x}{:x}{count:x}", std::process::id(), nanos)
}

/// The script that kills process group and session `pid` on the target: see the module docs.
fn kill_script(pid: u32, grace: Duration) -> String {
    assert!(pid > 1, "refusing to kill process group {pid}");
    let ticks = (grace.as_millis() / 100).max(1);
    format!(
        r#"P={pid}
alive() {{
  if s=$(ps -A -o pgid= -o sid= -o stat= 2>/dev/null); then
    printf '%s\n' "$s" | awk -v p="$P" '($1 == p || $2 == p) && $3 !~ /^Z/ {{ f = 1 }} END {{ exit !f }}'
  else
    kill -0 -"$P" 2>/dev/null
  fi
}}
signal() {{
  kill -"$1" -"$P" 2>/dev/null
  pkill -"$1" -s "$P" 2>/dev/null
  return 0
}}
pause() {{
  sleep 0.1 2>/dev/null || sleep 1
}}
signal TERM
i=0
while alive && [ "$i" -lt {ticks} ]; do pause; i=$((i + 1)); done
if alive; then
  signal KILL
  i=0
  while alive && [ "$i" -lt 30 ]; do pause; i=$((i + 1)); done
fi
if alive; then
  echo "process group $P is still alive after SIGKILL"
  exit 1
fi
exit 0
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn host_key_policies_parse_and_print_their_names() {
        for name in HostKeyPolicy::NAMES {
            assert_eq!(name.parse::<HostKeyPolicy>().unwrap().to_string(), name);
        }
        assert_eq!(HostKeyPolicy::default(), HostKeyPolicy::Strict);
        assert!("no"
            .parse::<HostKeyPolicy>()
            .unwrap_err()
            .contains("accept-new"));
    }

    #[test]
    fn only_the_marked_report_with_a_sane_pid_is_taken() {
        assert_eq!(
            parse_pid_report(b"pogo-pid-ab 1234", "pogo-pid-ab"),
            Some(1234)
        );
        assert_eq!(
            parse_pid_report(b"pogo-pid-ab 1234\r", "pogo-pid-ab"),
            Some(1234)
        );
        assert_eq!(parse_pid_report(b"pogo-pid-ab 1", "pogo-pid-ab"), None);
        assert_eq!(parse_pid_report(b"pogo-pid-ab 0", "pogo-pid-ab"), None);
        assert_eq!(parse_pid_report(b"pogo-pid-ab -5", "pogo-pid-ab"), None);
        assert_eq!(parse_pid_report(b"pogo-pid-ac 1234", "pogo-pid-ab"), None);
        assert_eq!(parse_pid_report(b"pogo-pid-ab1234", "pogo-pid-ab"), None);
        assert_ne!(nonce(), nonce());
    }

    #[test]
    fn connection_failures_are_told_apart() {
        let failed = std::process::ExitStatus::from_raw(255 << 8);
        let e = classify_failure(
            "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n",
            failed,
        );
        assert_eq!(e.kind, ConnectErrorKind::Connect);
        assert_eq!(
            e.message,
            "ssh: connect to host 127.0.0.1 port 1: Connection refused"
        );
        let e = classify_failure("root@127.0.0.1: Permission denied (publickey).\r\n", failed);
        assert_eq!(e.kind, ConnectErrorKind::Auth);
        let e = classify_failure(
            "@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
             Offending ED25519 key in /k:1\r\nHost key for h has changed and you have \
             requested strict checking.\r\nHost key verification failed.\r\n",
            failed,
        );
        assert_eq!(e.kind, ConnectErrorKind::HostKey);
        assert_eq!(
            e.message,
            "Host key for h has changed and you have requested strict checking.; \
             Host key verification failed."
        );
        let e = classify_failure(
            "/etc/pogo.ssh: line 3: Bad configuration option: hostnmae\r\n\
             /etc/pogo.ssh: terminating, 1 bad configuration options\r\n",
            failed,
        );
        assert_eq!(e.kind, ConnectErrorKind::Local);
        let e = classify_failure("", failed);
        assert_eq!(e.kind, ConnectErrorKind::Connect);
        assert!(e.message.contains("said nothing"), "{}", e.message);
    }

    #[test]
    fn the_kill_script_is_valid_sh() {
        let script = kill_script(4242, Duration::from_secs(5));
        assert!(script.starts_with("P=4242\n"));
        assert!(script.contains("-lt 50 ]"));
        let check = std::process::Command::new("/bin/sh")
            .args(["-n", "-c", &script])
            .status()
            .unwrap();
        assert!(check.success());
    }

    #[test]
    #[should_panic(expected = "refusing to kill")]
    fn the_kill_script_refuses_pid_1() {
        kill_script(1, Duration::from_secs(1));
    }
}
