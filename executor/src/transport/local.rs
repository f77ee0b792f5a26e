//! The local transport: runs the command on this machine, with `POGO_HOST` set to the host's
//! name, for trying pogo without a fleet, for tests and for demos.
//!
//! The command runs as `/bin/sh -c COMMAND` in a new process group (the shell leads it). On
//! timeout or cancellation the group gets `SIGTERM`, then `SIGKILL` once the grace period is
//! over, so the command's children die with it. If the run's future is dropped instead, the
//! group gets `SIGKILL` at once.

use std::future::Future;
use std::pin::pin;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::keeper::Keeper;
use super::{
    pump_lines, timed, BoxFuture, CancelToken, ConnectError, ConnectErrorKind, ExitStatus, Kill,
    Outcome, Output, RunResult, Stream, Transport,
};

/// The environment variable that tells a local command which host it stands for.
pub const HOST_ENV: &str = "POGO_HOST";

/// How long a killed command has between `SIGTERM` and `SIGKILL`, unless set.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// How long to wait for the output to close once the group got `SIGKILL`: a process that left
/// the group (a daemon) may hold it open for ever.
const AFTER_KILL: Duration = Duration::from_secs(2);

/// Runs commands on this machine. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct LocalTransport {
    kill_grace: Duration,
    /// The keeper that ends the commands' groups if this process dies (see
    /// [`super::keeper`]), started with the first command.
    keeper: Option<Arc<KeeperCell>>,
}

/// The pogo binary to start as the keeper, and the keeper once started (or why not).
#[derive(Debug)]
struct KeeperCell {
    pogo: std::path::PathBuf,
    started: OnceLock<Result<Keeper, String>>,
}

impl KeeperCell {
    fn get(&self, grace: Duration) -> Result<&Keeper, String> {
        self.started
            .get_or_init(|| {
                Keeper::start(&self.pogo, grace).map_err(|e| {
                    format!(
                        "cannot start {} as the keeper of local commands: {e}",
                        self.pogo.display()
                    )
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A command's group held by the keeper until the command is done.
struct Kept<'k> {
    keeper: &'k Keeper,
    group: Pid,
}

impl Drop for Kept<'_> {
    fn drop(&mut self) {
        self.keeper.release(self.group);
    }
}

impl Default for LocalTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalTransport {
    pub fn new() -> Self {
        LocalTransport {
            kill_grace: DEFAULT_KILL_GRACE,
            keeper: None,
        }
    }

    /// Starts `pogo` (this binary) as the keeper of the commands, so that a command dies with
    /// the process that started it, even one killed with SIGKILL ([`super::keeper`]).
    pub fn with_keeper(mut self, pogo: std::path::PathBuf) -> Self {
        self.keeper = Some(Arc::new(KeeperCell {
            pogo,
            started: OnceLock::new(),
        }));
        self
    }

    /// Sets the time between `SIGTERM` and `SIGKILL` when a command is killed.
    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// Runs `command` on this machine for no host (`POGO_HOST` unset), with `env` added to its
    /// environment: what a worker does with a gate. Killed as a host's command is.
    pub async fn run_here(
        &self,
        command: &str,
        env: &[(String, String)],
        timeout: Option<Duration>,
        cancel: &CancelToken,
        output: mpsc::Sender<Output>,
    ) -> RunResult {
        timed(timeout, move |deadline| {
            self.attempt(None, env, command, deadline, cancel, output)
        })
        .await
    }

    /// One attempt: for `host` (in `POGO_HOST`), or for none.
    async fn attempt(
        &self,
        host: Option<&str>,
        env: &[(String, String)],
        command: &str,
        deadline: Option<Instant>,
        cancel: &CancelToken,
        output: mpsc::Sender<Output>,
    ) -> Outcome {
        if cancel.is_cancelled() {
            return Outcome::Cancelled(Kill::NotStarted);
        }
        let keeper = match self.keeper.as_deref().map(|cell| cell.get(self.kill_grace)) {
            Some(Ok(keeper)) => Some(keeper),
            Some(Err(message)) => {
                return Outcome::Unreachable(ConnectError {
                    kind: ConnectErrorKind::Local,
                    message,
                })
            }
            None => None,
        };
        let mut shell = Command::new("/bin/sh");
        shell.arg("-c").arg(command);
        match host {
            Some(host) => shell.env(HOST_ENV, host),
            None => shell.env_remove(HOST_ENV),
        };
        let mut child = match shell
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(error) => {
                return Outcome::Unreachable(ConnectError {
                    kind: ConnectErrorKind::Local,
                    message: format!("failed to run /bin/sh: {error}"),
                })
            }
        };
        // The shell leads its own process group: the group's id is its pid.
        let Some(group) = child.id().and_then(|id| Pid::from_raw(id as i32)) else {
            return Outcome::Unreachable(ConnectError {
                kind: ConnectErrorKind::Local,
                message: "the shell exited before it could be watched".into(),
            });
        };
        // Released last (declared first): after the guard below has killed an abandoned group.
        let _kept = keeper.map(|keeper| {
            keeper.keep(group);
            Kept { keeper, group }
        });
        let mut guard = GroupGuard { group: Some(group) };
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let pump = tokio::spawn(async move {
            let out = async {
                if let Some(stdout) = stdout {
                    pump_lines(stdout, Stream::Stdout, &output, |_| true).await;
                }
            };
            let err = async {
                if let Some(stderr) = stderr {
                    pump_lines(stderr, Stream::Stderr, &output, |_| true).await;
                }
            };
            tokio::join!(out, err);
        });
        let pump_abort = pump.abort_handle();
        let mut pump = pin!(pump);
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let mut expired = pin!(expired);

        // The command is done when the shell has exited and its output is read. A timeout or a
        // cancellation may come at the same moment as the shell's exit: what the command did
        // wins, so an operator is never told "killed" of a command that completed (and re-runs
        // it). `biased` polls the exit first, and `try_wait` asks the kernel once more before
        // anything is killed.
        let mut status = None;
        let mut output_done = false;
        let timed_out = loop {
            tokio::select! {
                biased;
                exited = child.wait(), if status.is_none() => status = Some(exited),
                _ = &mut pump, if !output_done => output_done = true,
                () = &mut expired => break true,
                () = cancel.cancelled() => break false,
            }
            if let (Some(_), true) = (&status, output_done) {
                guard.group = None;
                return shell_ended(status.expect("checked"));
            }
        };
        if status.is_none() {
            if let Ok(Some(exited)) = child.try_wait() {
                status = Some(Ok(exited));
            }
        }
        // Killed either way: the shell, or what it left holding its output.
        let kill = match status {
            None => {
                let work = async {
                    let exited = child.wait().await;
                    if !output_done {
                        let _ = pump.await;
                    }
                    exited
                };
                kill_group(group, self.kill_grace, work).await
            }
            Some(_) => {
                let work = async {
                    if !output_done {
                        let _ = pump.await;
                    }
                };
                kill_group(group, self.kill_grace, work).await
            }
        };
        pump_abort.abort();
        guard.group = None;
        match status {
            Some(exited) => shell_ended(exited),
            None if timed_out => Outcome::TimedOut(kill),
            None => Outcome::Cancelled(kill),
        }
    }
}

impl Transport for LocalTransport {
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
            self.attempt(Some(host), &[], command, deadline, cancel, output)
        }))
    }

    fn close<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// The outcome of a shell that exited (or could not be waited for).
fn shell_ended(exited: std::io::Result<std::process::ExitStatus>) -> Outcome {
    match exited {
        Ok(status) => Outcome::Exited(exit_status(status)),
        Err(error) => Outcome::Unreachable(ConnectError {
            kind: ConnectErrorKind::Local,
            message: format!("failed to wait for /bin/sh: {error}"),
        }),
    }
}

fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, signal) => ExitStatus::Signal(signal),
    }
}

/// Sends `SIGTERM` to the group, `SIGKILL` after `grace` if it still has live processes, and
/// says whether it is gone. `work` (the shell's exit, then the end of its output) is polled
/// meanwhile, so that the shell is reaped and the output read to the end.
async fn kill_group<W: Future>(group: Pid, grace: Duration, work: W) -> Kill {
    let mut work = pin!(work);
    let mut done = false;
    let _ = rustix::process::kill_process_group(group, Signal::TERM);
    let grace_end = Instant::now() + grace;
    let mut killed = false;
    loop {
        if done && !group_alive(group) {
            return Kill::Killed;
        }
        let now = Instant::now();
        if !killed && now >= grace_end {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
            killed = true;
        }
        if killed && now >= grace_end + AFTER_KILL {
            break;
        }
        let tick = tokio::time::sleep(Duration::from_millis(20));
        if done {
            tick.await;
        } else {
            tokio::select! {
                _ = &mut work => done = true,
                () = tick => {}
            }
        }
    }
    if group_alive(group) {
        Kill::Unconfirmed(format!(
            "process group {} still has live processes after SIGKILL",
            group.as_raw_nonzero()
        ))
    } else {
        // Dead, but something (a daemon that left the group) still holds the output open.
        Kill::Killed
    }
}

/// Whether the process group has a live (not zombie) member. Zombies count as dead: an orphan
/// is reaped by init whenever init gets to it.
pub(crate) fn group_alive(group: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No procfs: ask the kernel, zombies included.
        return rustix::process::test_kill_process_group(group).is_ok();
    };
    let group = group.as_raw_nonzero().get();
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may contain anything, so parse after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|pgrp| pgrp.parse::<i32>().ok());
        pgrp == Some(group) && state != "Z" && state != "X"
    })
}

/// Kills the group with `SIGKILL` if the run is abandoned (its future dropped) midway.
struct GroupGuard {
    group: Option<Pid>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
    }
}
