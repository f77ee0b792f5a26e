//! The supervisor of a local command: a small re-executed pogo between the transport and the
//! shell, so that a command dies with the pogo (or worker) that started it.
//!
//! Killed with SIGKILL, a pogo cannot kill the commands it started: they ran on as orphans,
//! finishing their side effects while a dispatcher reported the host lost, and a quick
//! `pogo retry` then ran the host twice at the same time. With a supervisor, the local
//! transport starts `pogo` itself with [`SUPERVISE_ENV`] set (the pogo binary checks it first
//! thing in `main`, as for askpass), in the command's new process group; the supervisor
//!
//! 1. asks the kernel for SIGTERM when its parent thread dies (`PR_SET_PDEATHSIG`; the signal
//!    follows the *thread* that spawned it, which is a runtime worker thread that lives as
//!    long as the runtime), and checks that its parent is still the one that started it;
//! 2. runs `/bin/sh -c COMMAND` as its child, in the same process group, with the same
//!    standard streams;
//! 3. on SIGTERM (its parent died, or the transport kills the group), sends SIGTERM to the
//!    whole group, then SIGKILL after the grace period, and exits;
//! 4. when the shell exits, exits the same way: the same code, or the same signal (SIGTERM and
//!    the signals it handles itself become `128 + N`).
//!
//! It needs no `unsafe` (the workspace forbids it): the signal is set on the supervisor itself,
//! not in a `pre_exec` hook.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};

/// Set, to the kill grace in milliseconds, in the supervisor's environment.
pub const SUPERVISE_ENV: &str = "POGO_SUPERVISE";
/// The pid of the process that started the supervisor, to detect a parent that died first.
pub const PARENT_ENV: &str = "POGO_SUPERVISE_PARENT";

/// Whether this process was started as a local command's supervisor.
pub fn supervise_requested() -> bool {
    std::env::var_os(SUPERVISE_ENV).is_some()
}

/// The supervisor's `main`: its arguments are the program to run and its arguments.
pub fn supervise_main() -> ExitCode {
    let grace = std::env::var(SUPERVISE_ENV)
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(Duration::from_secs(5), Duration::from_millis);
    let parent: Option<i32> = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|pid| pid.parse().ok());
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        let _ = eprintln_safe("pogo: the supervisor needs a program to run");
        return ExitCode::from(125);
    };
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::TERM));
    // The parent may have died before the signal was asked for.
    let ppid = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
    if parent.is_some() && ppid != parent {
        return ExitCode::from(143);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = eprintln_safe(&format!("pogo: the supervisor cannot start: {e}"));
            return ExitCode::from(125);
        }
    };
    runtime.block_on(supervise(program, rest, grace))
}

fn eprintln_safe(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{text}")
}

async fn supervise(
    program: &std::ffi::OsString,
    args: &[std::ffi::OsString],
    grace: Duration,
) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(_) => return ExitCode::from(125),
    };
    let mut child = match tokio::process::Command::from(command(program, args))
        .env_remove(SUPERVISE_ENV)
        .env_remove(PARENT_ENV)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let _ = eprintln_safe(&format!(
                "pogo: cannot run {}: {e}",
                program.to_string_lossy()
            ));
            return ExitCode::from(127);
        }
    };
    let group = rustix::process::getpgrp();
    tokio::select! {
        status = child.wait() => exit_like(status.ok()),
        _ = terminate.recv() => {
            end_group(group, grace, &mut child).await;
            ExitCode::from(143)
        }
    }
}

fn command(program: &std::ffi::OsString, args: &[std::ffi::OsString]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// SIGTERM to the group (the supervisor included: it handles it), then SIGKILL to the others
/// after `grace` if the shell has not ended.
async fn end_group(group: Pid, grace: Duration, child: &mut tokio::process::Child) {
    let _ = kill_process_group(group, Signal::TERM);
    let deadline = Instant::now() + grace;
    let ended = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        child.wait(),
    )
    .await
    .is_ok();
    if !ended {
        let _ = child.start_kill();
    }
    // Whatever of the group is left (the command's own children) goes too. The supervisor
    // is in the group: it is the last to go.
    let _ = kill_process_group(group, Signal::KILL);
}

/// Ends the supervisor as the shell ended: its exit code, or its signal.
fn exit_like(status: Option<std::process::ExitStatus>) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return ExitCode::from(125);
    };
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(255));
    }
    let signal = status.signal().unwrap_or(0);
    if signal != libc_term() {
        if let Some(sig) = Signal::from_named_raw(signal) {
            let _ = rustix::process::kill_process(rustix::process::getpid(), sig);
            // Still here: the signal is handled or ignored; say it as a shell would.
        }
    }
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(255))
}

/// SIGTERM's number: the supervisor handles it, so raising it would not end the supervisor.
fn libc_term() -> i32 {
    Signal::TERM.as_raw()
}
