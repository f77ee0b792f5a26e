//! The SSH transport: OpenSSH, an `ssh` process per attempt or one multiplexed master
//! connection per host.
//!
//! # Connections
//!
//! [`SshOptions::multiplex`] chooses, and [`multiplex_for`] decides it from a plan's options:
//!
//! - **One `ssh` per attempt** (a plan whose hosts run one command, with no retries): each
//!   attempt is `ssh -T HOST WRAPPER`, exactly what `ssh HOST COMMAND` costs. ssh's own messages
//!   go to a log file of the attempt (`-E`), so the remote stderr is the command's alone.
//! - **One master per host** (phases or retries): the first run on a host starts an OpenSSH
//!   master (`ssh -M -f -N`) with its control socket in a private directory (mode 0700) of this
//!   transport; every command on the host, phases and retries included, is a session
//!   multiplexed over it through the `openssh` crate's native mux client. The master is started
//!   by this module rather than by `openssh::SessionBuilder`, because the builder always sets
//!   `BatchMode=yes` (which rules out password authentication) and cannot set the master's
//!   environment (which the askpass helper needs) nor turn host-key checking off without
//!   writing to the user's known_hosts.
//!
//! The user's `~/.ssh/config` (or the file given with [`SshOptions::config_file`]), agent and
//! known_hosts apply as for `ssh HOST`; the options given here take precedence over the config
//! file, as on ssh's command line.
//!
//! A connection that could not be made is reported as [`Outcome::Unreachable`], from what ssh
//! logged (`ssh -E`): authentication refused, host key not accepted, or no connection. Once
//! connected, a command's exit status comes from the wrapper's own report (below), so a
//! command that exits 255 is a command that exited 255. When the report is missing, the
//! wrapper itself was killed (the command killed `$$`) or the connection was lost, which ssh's
//! log or the master's state (`Session::check`) tells apart; a dead master is dropped and the
//! next run connects again. Masters are started with `ControlPersist` set to an idle time
//! ([`SshOptions::control_persist`]): if pogo dies without closing them, they exit on their own.
//! Every ssh pogo starts is in a process group of its own (a master, once in the background,
//! in a session of its own): a Ctrl-C on pogo's terminal signals pogo alone, which halts the
//! run and lets the running hosts finish over their connections.
//!
//! # The wrapper, and killing a command on the target
//!
//! Closing a session does not stop its remote command (without a terminal it gets no
//! `SIGHUP`), and a command's exit status arrives only once its output is closed. So every
//! command runs under a small wrapper, which OpenSSH's `sshd` runs with the account's login
//! shell (`SHELL -c WRAPPER`), in a session of its own (`setsid()`):
//!
//! ```sh
//! exec 3<&0; echo pogo-pid-NONCE $$ >&2;
//! (read -r pogo_eof; kill -TERM -$$) <&3 >/dev/null 2>&1 &
//! (eval 'COMMAND') </dev/null 3<&-; s=$?; kill $! 2>/dev/null; exec 3<&-;
//! echo pogo-pid-NONCE exit $s >&2; exit $s
//! ```
//!
//! - It runs in the login shell itself: the target starts no other program than the login
//!   shell and the command, as for `ssh HOST COMMAND` (the two parentheses are forks of the
//!   shell, not programs). The command is one single-quoted word (each `'` written `'\''`), so
//!   it reaches `eval` byte for byte, and runs in a subshell: an `exit` or `cd` in it stays
//!   there. As with `ssh HOST COMMAND`, `$$` in the command is the login shell's.
//! - The login shell's PID is its process group and session id. The wrapper reports it on
//!   stderr, marked with a per-run nonce, before anything of the command runs; the transport
//!   takes that line out of the output (and holds back what the shell printed before it).
//! - The transport keeps the session's stdin open for the whole run and writes nothing to it.
//!   A watcher in the wrapper waits for its end, which comes only when this process dies (a
//!   worker killed with SIGKILL) or the connection drops, and then ends the command's process
//!   group: the command does not outlive its session. (A background job of a non-interactive
//!   shell gets /dev/null as stdin: the watcher reads a copy of it, fd 3, which the command
//!   does not get.) The command's own stdin is `/dev/null`.
//! - Once the command has exited, the wrapper reports its status on stderr (taken out of the
//!   output): a cancel or timeout that comes after never hides what the command did. A command
//!   killed by signal N exits with the shell's code 128 + N.
//!
//! A login shell that is not POSIX (fish, csh, tcsh) refuses that line before running any of
//! it (fish for `$$`, csh for `<&`): no report comes, the shell exits with a status, and the
//! attempt is made again, over a master, under `/bin/sh` — and so is every later attempt on
//! that host:
//!
//! ```sh
//! exec /bin/sh -c 'echo pogo-pid-NONCE $$ >&2; exec 3<&0; IFS= read -r n;
//!   c=$(dd bs=1 count="$n" 2>/dev/null);
//!   /bin/sh -c "$c" </dev/null 3<&- & p=$!;
//!   (cat <&3 >/dev/null 2>&1; kill -TERM -$$ 2>/dev/null) & w=$!; exec 3<&-;
//!   wait $p; s=$?; kill $w 2>/dev/null; echo pogo-pid-NONCE exit $s >&2; exit $s'
//! ```
//!
//! There the command comes on stdin after its length (its quoting would be the login shell's),
//! and the same reports and watcher apply.
//!
//! On timeout or cancellation the transport runs a second command on the host, over the master
//! or over a connection of its own, `exec /bin/sh -s`, with a kill script on its stdin: it
//! sends `SIGTERM` to the process group (`kill -TERM -PID`) and to anything left in the session
//! (`pkill -s PID`, which also catches children that made a process group of their own), waits
//! up to the grace period ([`SshOptions::kill_grace`]) for every process of the group and
//! session to be gone (zombies count as gone; `ps`, or `kill -0` without it), sends `SIGKILL`
//! if not, and exits 0 only when nothing is left. That confirms [`Kill::Killed`]; anything
//! else (the connection is gone, the script failed) is [`Kill::Unconfirmed`] with the reason.
//! A process that started a session of its own (a daemon) is not killed, as with the local
//! transport. The PID is checked to be above 1 before it goes into the script. If a run is
//! abandoned instead (its future dropped while the command runs), the same kill is started in
//! the background on the runtime. A timeout or cancel that comes before the wrapper reported
//! (ssh still connecting) ends the `ssh` process; a report that was on its way by then gets
//! the command killed as above, and without one nothing of the command ran.
//!
//! # Passwords
//!
//! With [`SshOptions::password`], ssh authenticates through `SSH_ASKPASS`: see
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
    /// One master connection per host, every attempt and phase a session over it (default);
    /// or each attempt an `ssh` process of its own, with no master. [`multiplex_for`] decides
    /// it from a plan's options.
    pub multiplex: bool,
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
            multiplex: true,
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

/// Whether the SSH transport keeps one multiplexed connection per host ([`SshOptions::multiplex`])
/// for runs of a plan with these options: when a host's attempt is more than one command (its
/// phases) or may be tried again, one connection for all of them pays off; otherwise each
/// attempt is one `ssh` process, as cheap as `ssh HOST COMMAND`.
pub fn multiplex_for(options: &pogo_model::RunOptions) -> bool {
    options.has_phases() || options.retries > 0
}

/// What starts `ssh`: the transport's options, its password and its directory, shared with the
/// background kills of abandoned runs.
struct Connector {
    options: SshOptions,
    password: Option<Arc<Secret>>,
    askpass_program: Option<PathBuf>,
    root: Arc<tempfile::TempDir>,
}

impl Connector {
    /// A private directory for one connection's log (and askpass socket).
    fn dir(&self, prefix: &str) -> Result<tempfile::TempDir, ConnectError> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.root.path())
            .map_err(|e| local_error("make a directory for the connection", e))
    }

    /// `ssh` with the transport's options, its own messages to `DIR/log`, in a process group
    /// of its own and killed when dropped; the caller adds what is particular to the
    /// connection, then `--` and the host. The askpass server, when there is a password, must
    /// live until ssh has logged in.
    fn command(
        &self,
        dir: &std::path::Path,
    ) -> Result<(tokio::process::Command, Option<AskpassServer>), ConnectError> {
        let o = &self.options;
        let mut ssh = tokio::process::Command::new(&o.ssh_program);
        // Its own process group: the SIGINT of the operator's Ctrl-C, which goes to the
        // terminal's foreground group, is pogo's to handle (halt, let running hosts finish),
        // not a signal that kills a connection.
        ssh.process_group(0)
            .kill_on_drop(true)
            .arg("-E")
            .arg(dir.join("log"));
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
                let server = AskpassServer::start(dir, password.clone())
                    .map_err(|e| local_error("start the askpass socket", e))?;
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
        Ok((ssh, askpass))
    }

    fn spawn_failed(&self, error: io::Error) -> ConnectError {
        local_error(
            &format!("run {}", self.options.ssh_program.to_string_lossy()),
            error,
        )
    }
}

fn local_error(what: &str, error: io::Error) -> ConnectError {
    ConnectError {
        kind: ConnectErrorKind::Local,
        message: format!("failed to {what}: {error}"),
    }
}

/// The host's login shell did not run the wrapper at all (it is not a POSIX shell): nothing of
/// the command ran, and the `/bin/sh` wrapper is to be used instead.
struct NotPosix;

/// Which wrapper an attempt runs the command under: see the module docs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wrapper {
    /// In the login shell itself, the command quoted into the command line.
    Posix,
    /// Under `/bin/sh`, the command on stdin: for login shells that are not POSIX.
    Sh,
}

/// The command line that runs `command` under `wrapper`, its reports marked with `marker`.
fn wrapper_line(wrapper: Wrapper, marker: &str, command: &str) -> String {
    match wrapper {
        Wrapper::Posix => format!(
            "exec 3<&0; echo {marker} $$ >&2; \
             (read -r pogo_eof; kill -TERM -$$) <&3 >/dev/null 2>&1 & \
             (eval {command}) </dev/null 3<&-; s=$?; kill $! 2>/dev/null; exec 3<&-; \
             echo {marker} exit $s >&2; exit $s",
            command = single_quoted(command)
        ),
        Wrapper::Sh => format!(
            "exec /bin/sh -c 'echo {marker} $$ >&2; exec 3<&0; IFS= read -r n; \
             c=$(dd bs=1 count=\"$n\" 2>/dev/null); \
             /bin/sh -c \"$c\" </dev/null 3<&- & p=$!; \
             (cat <&3 >/dev/null 2>&1; kill -TERM -$$ 2>/dev/null) & w=$!; exec 3<&-; \
             wait $p; s=$?; kill $w 2>/dev/null; echo {marker} exit $s >&2; exit $s'"
        ),
    }
}

/// `text` as one word of a POSIX shell: in single quotes, each `'` written `'\''`.
fn single_quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// Where a kill goes: over the host's master, or over a connection of its own.
#[derive(Clone)]
enum Route {
    Master(Conn),
    Direct {
        connector: Arc<Connector>,
        host: String,
    },
}

/// Runs commands over SSH. See the [module documentation](self).
pub struct SshTransport {
    hosts: std::sync::Mutex<HashMap<String, Slot>>,
    /// Hosts whose login shell turned out not to be POSIX: their commands use [`Wrapper::Sh`].
    not_posix: std::sync::Mutex<std::collections::HashSet<String>>,
    connector: Arc<Connector>,
}

impl fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTransport")
            .field("options", &self.connector.options)
            .field("control_root", &self.connector.root.path())
            .finish_non_exhaustive()
    }
}

impl SshTransport {
    /// Makes the transport's private directory for control sockets and logs (in the system's
    /// temporary directory) and resolves the askpass helper. Connects to nothing yet.
    pub fn new(mut options: SshOptions) -> io::Result<Self> {
        let root = Arc::new(tempfile::Builder::new().prefix("pogo-ssh-").tempdir()?);
        let password = options.password.take().map(Arc::new);
        let askpass_program = match (&password, options.askpass_program.take()) {
            (None, _) => None,
            (Some(_), Some(program)) => Some(program),
            (Some(_), None) => Some(std::env::current_exe()?),
        };
        Ok(SshTransport {
            hosts: std::sync::Mutex::new(HashMap::new()),
            not_posix: std::sync::Mutex::new(Default::default()),
            connector: Arc::new(Connector {
                options,
                password,
                askpass_program,
                root,
            }),
        })
    }

    fn slot(&self, host: &str) -> Slot {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.entry(host.to_string()).or_default().clone()
    }

    fn is_posix(&self, host: &str) -> bool {
        let not_posix = self.not_posix.lock().unwrap_or_else(|e| e.into_inner());
        !not_posix.contains(host)
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
        let connector = &self.connector;
        let dir = connector.dir("h")?;
        let (mut ssh, askpass) = connector.command(dir.path())?;
        ssh.stdin(Stdio::null())
            .stdout(Stdio::null())
            // The master keeps its stderr once in the background: a pipe would never close.
            .stderr(Stdio::null())
            .arg("-S")
            .arg(dir.path().join("master"))
            .args(["-M", "-f", "-N", "-o"])
            .arg(format!(
                "ControlPersist={}s",
                connector.options.control_persist.as_secs().max(1)
            ))
            // `--`: a host name is never taken for an option.
            .arg("--")
            .arg(host);

        // With -f, ssh exits once the master is authenticated and in the background.
        let status = ssh.status().await;
        drop(askpass);
        let status = status.map_err(|e| connector.spawn_failed(e))?;
        if status.success() {
            return Ok(Conn(Arc::new(ConnInner {
                session: Session::new_native_mux(dir),
                _root: connector.root.clone(),
            })));
        }
        let text = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
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
        if self.is_posix(host) {
            let tried = if self.connector.options.multiplex {
                self.attempt_master(host, command, Wrapper::Posix, deadline, cancel, &output)
                    .await
            } else {
                self.attempt_direct(host, command, deadline, cancel, &output)
                    .await
            };
            match tried {
                Ok(outcome) => return outcome,
                Err(NotPosix) => {
                    let mut not_posix = self.not_posix.lock().unwrap_or_else(|e| e.into_inner());
                    not_posix.insert(host.to_string());
                }
            }
        }
        match self
            .attempt_master(host, command, Wrapper::Sh, deadline, cancel, &output)
            .await
        {
            Ok(outcome) => outcome,
            // Only the POSIX wrapper tells of a shell that did not run it.
            Err(NotPosix) => Outcome::Unreachable(ConnectError {
                kind: ConnectErrorKind::Connect,
                message: "the login shell ran neither of pogo's wrappers".into(),
            }),
        }
    }

    /// One attempt as one `ssh HOST WRAPPER` process, with no master.
    async fn attempt_direct(
        &self,
        host: &str,
        command: &str,
        deadline: Option<Instant>,
        cancel: &CancelToken,
        output: &mpsc::Sender<Output>,
    ) -> Result<Outcome, NotPosix> {
        let connector = &self.connector;
        let prepared = connector.dir("a").and_then(|dir| {
            let (ssh, askpass) = connector.command(dir.path())?;
            Ok((dir, ssh, askpass))
        });
        let (dir, mut ssh, askpass) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return Ok(Outcome::Unreachable(error)),
        };
        let marker = format!("pogo-pid-{}", nonce());
        ssh.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // No terminal, as for any `ssh HOST COMMAND`, whatever the config says.
            .arg("-T")
            .arg("--")
            .arg(host)
            .arg(wrapper_line(Wrapper::Posix, &marker, command));
        let mut child = match ssh.spawn() {
            Ok(child) => child,
            Err(error) => return Ok(Outcome::Unreachable(connector.spawn_failed(error))),
        };
        // Held until the run ends: its end is the wrapper's sign that this side is gone.
        let stdin = child.stdin.take();
        let (pid_tx, pid_rx) = watch::channel(None::<u32>);
        let (exit_tx, exit_rx) = watch::channel(None::<i32>);
        let pump = tokio::spawn(pump_wrapper(
            child.stdout.take(),
            child.stderr.take(),
            marker,
            output.clone(),
            pid_tx,
            exit_tx,
        ));
        let pump_abort = pump.abort_handle();
        let route = Route::Direct {
            connector: connector.clone(),
            host: host.to_string(),
        };
        let mut guard = AbandonGuard {
            route: Some(route.clone()),
            pid: pid_rx.clone(),
            grace: connector.options.kill_grace,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut stop_tx = Some(stop_tx);
        let mut work = std::pin::pin!(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                Ok(()) = stop_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let unreported = pump.await.ok().flatten();
            (status, unreported)
        });
        let timed_out = tokio::select! {
            biased;
            (status, unreported) = &mut work => {
                guard.route = None;
                drop((stdin, askpass));
                let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
                let reported_pid = pid_rx.borrow().is_some();
                let exited = *exit_rx.borrow();
                let status = match status {
                    Ok(status) => status,
                    Err(error) => return Ok(Outcome::Unreachable(local_error("wait for ssh", error))),
                };
                if let Some(code) = exited {
                    return Ok(Outcome::Exited(ExitStatus::Code(code)));
                }
                if !reported_pid {
                    if status.code() == Some(255) || status.code().is_none() {
                        return Ok(Outcome::Unreachable(classify_failure(&log, status)));
                    }
                    // The login shell ran, and did not run the wrapper.
                    return Err(NotPosix);
                }
                forward_unreported(output, unreported).await;
                if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
                    // ssh itself was killed, here: the connection is gone with it.
                    return Ok(Outcome::Unreachable(ConnectError {
                        kind: ConnectErrorKind::Lost,
                        message: format!("ssh was killed by signal {signal}"),
                    }));
                }
                // The wrapper ran and did not report the command's end: it was killed, or the
                // connection was lost, which ssh says in its log.
                return Ok(match last_line(&log) {
                    Some(said) if status.code() == Some(255) => {
                        Outcome::Unreachable(ConnectError {
                            kind: ConnectErrorKind::Lost,
                            message: format!("the connection ended: {said}"),
                        })
                    }
                    _ => Outcome::Exited(match status.code() {
                        Some(255) | None => ExitStatus::Signal(None),
                        Some(code) => ExitStatus::Code(code),
                    }),
                });
            }
            () = passed(deadline) => true,
            () = cancel.cancelled() => false,
        };

        let mut finished = false;
        let mut pid = *pid_rx.borrow();
        if pid.is_none() {
            // Not connected yet, or the report is on its way: end ssh (a wrapper that started
            // ends its command when the connection closes) and see what came.
            if let Some(stop) = stop_tx.take() {
                let _ = stop.send(());
            }
            finished = tokio::time::timeout(AFTER_KILL, &mut work).await.is_ok();
            pid = *pid_rx.borrow();
        }
        let exited = *exit_rx.borrow();
        guard.route = None;
        let kill = match pid {
            Some(pid) => Some(kill_remote(&route, pid, connector.options.kill_grace).await),
            None => None,
        };
        drop(stdin);
        if let Some(stop) = stop_tx.take() {
            let _ = stop.send(());
        }
        if !finished {
            let _ = tokio::time::timeout(AFTER_KILL, &mut work).await;
        }
        pump_abort.abort();
        drop(askpass);
        Ok(match (exited, kill) {
            (Some(code), _) => Outcome::Exited(ExitStatus::Code(code)),
            (None, Some(kill)) if timed_out => Outcome::TimedOut(kill),
            (None, Some(kill)) => Outcome::Cancelled(kill),
            (None, None) if timed_out => Outcome::Unreachable(ConnectError {
                kind: ConnectErrorKind::Connect,
                message: "no connection before the command's timeout".into(),
            }),
            (None, None) => Outcome::Cancelled(Kill::NotStarted),
        })
    }

    /// One attempt as a session over the host's master.
    async fn attempt_master(
        &self,
        host: &str,
        command: &str,
        wrapper: Wrapper,
        deadline: Option<Instant>,
        cancel: &CancelToken,
        output: &mpsc::Sender<Output>,
    ) -> Result<Outcome, NotPosix> {
        let session = tokio::select! {
            session = self.session(host) => match session {
                Ok(session) => session,
                Err(error) => return Ok(Outcome::Unreachable(error)),
            },
            () = passed(deadline) => {
                return Ok(Outcome::Unreachable(ConnectError {
                    kind: ConnectErrorKind::Connect,
                    message: "no connection before the command's timeout".into(),
                }))
            }
            () = cancel.cancelled() => return Ok(Outcome::Cancelled(Kill::NotStarted)),
        };

        let marker = format!("pogo-pid-{}", nonce());
        let line = wrapper_line(wrapper, &marker, command);
        let spawned = Session::to_raw_command(session.clone(), &line)
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
                return Ok(Outcome::Unreachable(ConnectError {
                    kind: ConnectErrorKind::Connect,
                    message: format!("failed to open a session: {error}"),
                }));
            }
        };

        // Held until the run ends: its end is the wrapper's sign that this side is gone.
        let mut stdin = child.stdin().take();
        if wrapper == Wrapper::Sh {
            if let Some(stdin) = stdin.as_mut() {
                let framed = format!("{}\n{command}", command.len());
                let _ = stdin.write_all(framed.as_bytes()).await;
                let _ = stdin.flush().await;
            }
        }
        let (pid_tx, mut pid_rx) = watch::channel(None::<u32>);
        let (exit_tx, exit_rx) = watch::channel(None::<i32>);
        let pump = tokio::spawn(pump_wrapper(
            child.stdout().take(),
            child.stderr().take(),
            marker,
            output.clone(),
            pid_tx,
            exit_tx,
        ));
        let pump_abort = pump.abort_handle();
        let mut guard = AbandonGuard {
            route: Some(Route::Master(session.clone())),
            pid: pid_rx.clone(),
            grace: self.connector.options.kill_grace,
        };

        // The session is waited for only once the output is closed: the mux client drops its
        // connection when the exit status arrives, and the master then discards the output it
        // still holds.
        let mut work = std::pin::pin!(async move {
            let unreported = pump.await.ok().flatten();
            (child.wait().await, unreported)
        });
        let timed_out = tokio::select! {
            biased;
            (status, unreported) = &mut work => {
                guard.route = None;
                let reported_pid = pid_rx.borrow().is_some();
                let exited = *exit_rx.borrow();
                if let Some(code) = exited {
                    return Ok(Outcome::Exited(ExitStatus::Code(code)));
                }
                let code = match &status {
                    Ok(status) => status.code(),
                    // The crate turns exit code 127 into an error of its own.
                    Err(openssh::Error::Remote(e)) if e.kind() == io::ErrorKind::NotFound => {
                        Some(127)
                    }
                    Err(_) => None,
                };
                if wrapper == Wrapper::Posix && !reported_pid && code.is_some() {
                    // The login shell ran, and did not run the wrapper.
                    return Err(NotPosix);
                }
                forward_unreported(output, unreported).await;
                return Ok(match (code, status) {
                    (Some(code), _) => Outcome::Exited(ExitStatus::Code(code)),
                    (None, Ok(_)) => Outcome::Exited(ExitStatus::Signal(None)),
                    (None, Err(error)) => {
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
                });
            }
            () = passed(deadline) => true,
            () = cancel.cancelled() => false,
        };

        let pid = match tokio::time::timeout(PID_WAIT, pid_rx.wait_for(Option::is_some)).await {
            Ok(Ok(pid)) => *pid,
            _ => None,
        };
        // The command exited before the cancel or the timeout: that is its outcome. What it
        // left holding its output is killed all the same.
        let exited = *exit_rx.borrow();
        guard.route = None;
        let kill = match pid {
            Some(pid) => {
                let route = Route::Master(session.clone());
                kill_remote(&route, pid, self.connector.options.kill_grace).await
            }
            None => Kill::Unconfirmed(
                "the command did not report its process id, so it could not be killed".into(),
            ),
        };
        let _ = tokio::time::timeout(AFTER_KILL, &mut work).await;
        pump_abort.abort();
        drop(stdin);
        Ok(match (exited, timed_out) {
            (Some(code), _) => Outcome::Exited(ExitStatus::Code(code)),
            (None, true) => Outcome::TimedOut(kill),
            (None, false) => Outcome::Cancelled(kill),
        })
    }
}

/// Completes when `deadline` has passed; never without one.
async fn passed(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The most of the login shell's own stderr (before the wrapper's report) held back, so that a
/// shell that does not run the wrapper leaves nothing in the host's output.
const HOLD_LIMIT: u64 = 64 * 1024;

/// Sends the wrapper's output to `output`, less its two reports, which go to `pid` and `exit`.
/// What the login shell wrote on stderr before the wrapper's first report is held back; when
/// the report never came, it is returned instead of sent (the caller decides: a shell that did
/// not run the wrapper is not the command's output).
async fn pump_wrapper<O, E>(
    stdout: Option<O>,
    stderr: Option<E>,
    marker: String,
    output: mpsc::Sender<Output>,
    pid: watch::Sender<Option<u32>>,
    exit: watch::Sender<Option<i32>>,
) -> Option<Vec<bytes::Bytes>>
where
    O: tokio::io::AsyncRead + Unpin,
    E: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let out = async {
        if let Some(stdout) = stdout {
            pump_lines(stdout, Stream::Stdout, &output, |_| true).await;
        }
    };
    let err = async {
        let stderr = stderr?;
        let mut reader = tokio::io::BufReader::new(stderr);
        let mut held: Vec<bytes::Bytes> = Vec::new();
        let mut held_bytes = 0;
        let mut reported = false;
        loop {
            let mut line = Vec::new();
            let mut limited = (&mut reader).take(HOLD_LIMIT - held_bytes);
            match limited.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return Some(held),
                Ok(n) => held_bytes += n as u64,
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if let Some(reported_pid) = parse_pid_report(&line, &marker) {
                pid.send_replace(Some(reported_pid));
                reported = true;
                break;
            }
            held.push(line.into());
            if held_bytes >= HOLD_LIMIT {
                break;
            }
        }
        forward_unreported(&output, Some(held)).await;
        let keep = |line: &[u8]| {
            if !reported {
                if let Some(reported_pid) = parse_pid_report(line, &marker) {
                    reported = true;
                    pid.send_replace(Some(reported_pid));
                    return false;
                }
                return true;
            }
            match parse_exit_report(line, &marker) {
                Some(code) => {
                    exit.send_replace(Some(code));
                    false
                }
                None => true,
            }
        };
        pump_lines(reader, Stream::Stderr, &output, keep).await;
        None
    };
    tokio::join!(out, err).1
}

/// Sends the stderr lines [`pump_wrapper`] held back.
async fn forward_unreported(output: &mpsc::Sender<Output>, lines: Option<Vec<bytes::Bytes>>) {
    for line in lines.into_iter().flatten() {
        if output
            .send(Output::line(Stream::Stderr, line))
            .await
            .is_err()
        {
            return;
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
async fn kill_remote(route: &Route, pid: u32, grace: Duration) -> Kill {
    let script = kill_script(pid, grace);
    let mut limit = grace + KILL_SLACK;
    let run = async {
        match route {
            Route::Master(session) => {
                let mut child = Session::to_raw_command(session.clone(), "exec /bin/sh -s")
                    .stdin(openssh::Stdio::piped())
                    .stdout(openssh::Stdio::piped())
                    .stderr(openssh::Stdio::piped())
                    .spawn()
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(mut stdin) = child.stdin().take() {
                    stdin
                        .write_all(script.as_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                child.wait_with_output().await.map_err(|e| e.to_string())
            }
            Route::Direct { connector, host } => {
                let dir = connector.dir("k").map_err(|e| e.message)?;
                let (mut ssh, askpass) = connector.command(dir.path()).map_err(|e| e.message)?;
                ssh.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .args(["-T", "--"])
                    .arg(host)
                    .arg("exec /bin/sh -s");
                let mut child = ssh.spawn().map_err(|e| connector.spawn_failed(e).message)?;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin
                        .write_all(script.as_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let output = child.wait_with_output().await.map_err(|e| e.to_string());
                drop(askpass);
                if matches!(&output, Ok(o) if o.status.code() == Some(255)) {
                    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
                    return Err(format!(
                        "no connection for the kill: {}",
                        classify_failure(&log, output.map(|o| o.status).unwrap_or_default())
                            .message
                    ));
                }
                output
            }
        }
    };
    if let Route::Direct { connector, .. } = route {
        // The kill needs a connection of its own first.
        limit += connector.options.connect_timeout.unwrap_or(KILL_SLACK);
    }
    match tokio::time::timeout(limit, run).await {
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
    route: Option<Route>,
    pid: watch::Receiver<Option<u32>>,
    grace: Duration,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        let (Some(route), Some(pid)) = (self.route.take(), *self.pid.borrow()) else {
            return;
        };
        let grace = self.grace;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                kill_remote(&route, pid, grace).await;
            });
        }
    }
}

/// The last thing ssh logged, if anything.
fn last_line(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with("Warning: Permanently"))
        .map(str::to_string)
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
    last_line(&std::fs::read_to_string(log).ok()?)
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
    fn a_connection_per_host_only_for_phases_or_retries() {
        let plain = pogo_model::RunOptions {
            timeout: 600,
            retries: 0,
            max_failures: pogo_model::Amount::number(0),
            run_timeout: None,
            max_output: None,
            before: None,
            verify: None,
            after: None,
        };
        assert!(!multiplex_for(&plain));
        assert!(multiplex_for(&pogo_model::RunOptions {
            retries: 1,
            ..plain.clone()
        }));
        assert!(multiplex_for(&pogo_model::RunOptions {
            before: Some("drain".into()),
            ..plain.clone()
        }));
        assert!(multiplex_for(&pogo_model::RunOptions {
            after: Some("undrain".into()),
            ..plain
        }));
    }

    #[test]
    fn a_command_is_one_word_of_the_login_shell_byte_for_byte() {
        for command in [
            "plain",
            "it's",
            "'",
            "''\\'",
            "a\nb 'c' \"d\" $x `y` \\",
            "",
        ] {
            let echoed = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf %s {}", single_quoted(command)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&echoed.stdout), command);
        }
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
