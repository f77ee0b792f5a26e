//! Runs the commands of external tags (`tag: !command CMD`) through the shell.
//!
//! An inventory command is trusted to print hosts, not to behave: it runs in a process group
//! of its own, and when it exits or runs out of time the whole group is killed, so a
//! background child (`sleep 600 & echo h1`) can neither hold `pogo plan` past the limit nor
//! outlive it. What it prints is bounded: stdout up to [`MAX_OUTPUT`], stderr kept to its
//! first lines for the error message.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pogo_planner::TagResolver;
use rustix::process::{kill_process_group, Pid, Signal};

/// How long an inventory command may take before pogo gives up on it, unless
/// [`TIMEOUT_ENV`] says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Seconds an inventory command may take, for inventories slower (or tests quicker) than
/// [`TIMEOUT`].
pub const TIMEOUT_ENV: &str = "POGO_INVENTORY_TIMEOUT";

/// The most an inventory command may print on stdout: far more than a million host names.
pub const MAX_OUTPUT: usize = 256 << 20;

/// How much of stderr is kept for the error message.
const KEPT_STDERR: usize = 4096;

/// Runs `sh -c CMD` in the config's directory, with no input, and takes its output.
pub struct Shell;

impl TagResolver for Shell {
    fn run(&self, command: &str, dir: &Path) -> Result<String, String> {
        let timeout = match std::env::var(TIMEOUT_ENV) {
            Err(_) => TIMEOUT,
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
                _ => {
                    return Err(format!(
                        "was not run: {TIMEOUT_ENV}={text:?} is not a number of seconds (1 or \
                         more)"
                    ))
                }
            },
        };
        run(command, dir, timeout)
    }
}

/// Reads `stream` to its end, keeping at most `keep` bytes; whether it had more.
fn drain(mut stream: impl Read, keep: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut more = false;
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (kept, more),
            Ok(n) => {
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                more |= n > room;
            }
        }
    }
}

fn run(command: &str, dir: &Path, timeout: Duration) -> Result<String, String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    let group = Pid::from_child(&child);
    // Both pipes are drained while the command runs, so a chatty command cannot block.
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || drain(stdout, MAX_OUTPUT));
    let err = std::thread::spawn(move || drain(stderr, KEPT_STDERR));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = kill_process_group(group, Signal::KILL);
                let _ = child.wait();
                return Err(format!("could not be waited for: {e}"));
            }
        }
    };
    // Whatever the command left behind goes with it: its pipes close, the readers end.
    let _ = kill_process_group(group, Signal::KILL);
    let _ = child.wait();
    let (stdout, too_long) = out.join().unwrap_or_default();
    let (stderr, _) = err.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!(
            "did not finish within {} s and was stopped, with every process it started",
            timeout.as_secs()
        ));
    };
    if !status.success() {
        let said = String::from_utf8_lossy(&stderr);
        let what = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_string(),
        };
        let first: Vec<String> = said
            .trim()
            .lines()
            .take(5)
            .map(|line| pogo_views::text::cut(line, 200))
            .collect();
        return Err(if first.is_empty() {
            what
        } else {
            format!("{what}: {}", first.join(" / "))
        });
    }
    if too_long {
        return Err(format!(
            "printed more than {} MiB; an inventory prints one host per line",
            MAX_OUTPUT >> 20
        ));
    }
    String::from_utf8(stdout).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        format!("printed something that is not UTF-8 text (on line {line} of its output)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_of_a_successful_command_is_returned() {
        let out = Shell.run("printf 'h1\\nh2\\n'", Path::new("")).unwrap();
        assert_eq!(out, "h1\nh2\n");
    }

    #[test]
    fn failing_commands_say_how_and_what_they_printed() {
        let err = Shell
            .run("echo inventory down >&2; exit 3", Path::new(""))
            .unwrap_err();
        assert!(err.contains("exited with status 3"), "{err}");
        assert!(err.contains("inventory down"), "{err}");
    }

    /// A child left running in the background neither holds the planner past the command's
    /// end nor outlives it.
    #[test]
    fn a_command_that_leaves_a_child_returns_at_once_and_the_child_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let out = run(
            "sleep 30 & echo $! > child.pid; echo h1",
            dir.path(),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out, "h1\n");
        assert!(started.elapsed() < Duration::from_secs(20));
        wait_gone(dir.path());
    }

    /// At the limit, the command and everything it started are stopped.
    #[test]
    fn a_command_past_its_limit_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let err = run(
            "sleep 30 & echo $! > child.pid; sleep 30",
            dir.path(),
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(err.starts_with("did not finish within 0 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20));
        wait_gone(dir.path());
    }

    /// Waits (a bounded time) for the child whose pid the command wrote in `child.pid` in
    /// `dir` to be killed; fails if it lives.
    fn wait_gone(dir: &Path) {
        let pid: i32 = std::fs::read_to_string(dir.join("child.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let state = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
            // Gone, or a zombie waiting for its parent (init) to reap it: not running.
            if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("process {pid} still runs");
    }

    #[test]
    fn a_flood_on_stderr_is_cut_to_its_first_lines() {
        let err = Shell
            .run(
                "head -c 20000000 /dev/zero | tr '\\0' x >&2; exit 2",
                Path::new(""),
            )
            .unwrap_err();
        assert!(
            err.starts_with("exited with status 2: xxxx"),
            "{}",
            &err[..50]
        );
        assert!(err.len() < 300, "{} bytes", err.len());
    }

    #[test]
    fn output_that_is_not_utf8_names_its_line() {
        let err = Shell
            .run("printf 'h1\\nh2\\n\\377\\n'", Path::new(""))
            .unwrap_err();
        assert_eq!(
            err,
            "printed something that is not UTF-8 text (on line 3 of its output)"
        );
    }

    #[test]
    fn commands_run_in_the_config_directory() {
        let dir = std::env::temp_dir();
        let out = Shell.run("pwd", &dir).unwrap();
        assert_eq!(
            Path::new(out.trim()).canonicalize().unwrap(),
            dir.canonicalize().unwrap()
        );
    }
}
