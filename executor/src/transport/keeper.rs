//! The keeper of local commands: one small helper process per pogo (or worker) that ends the
//! process groups of its local commands when that pogo dies, even by SIGKILL.
//!
//! Killed with SIGKILL, a pogo cannot kill the commands it started: they ran on as orphans,
//! finishing their side effects while a dispatcher reported the host lost, and a quick
//! `pogo retry` then ran the host twice at the same time. The local transport therefore starts
//! one keeper, `pogo` itself with [`KEEPER_ENV`] set (the pogo binary checks it first thing in
//! `main`, as for askpass), and tells it, on its standard input, each command's process group
//! when the command starts (`+PGID`) and when it has ended (`-PGID`).
//!
//! The keeper holds the only other end of that pipe, which the kernel closes when pogo dies,
//! however it dies (the pipe is close-on-exec: no command holds it). At its end of input the
//! keeper sends SIGTERM to every group still held, then SIGKILL to what is left of them after
//! the grace period, and exits. It runs in a process group of its own: a Ctrl-C on pogo's
//! terminal is for pogo, which halts the run and lets its commands finish.
//!
//! One keeper for a whole run, rather than a supervisor process around each command: starting
//! a second program for each of 10,000 hosts cost more than the hosts' shells did. The price
//! is a window of a few microseconds, between a command's start and its `+PGID`, in which a
//! pogo killed with SIGKILL leaves that command running.
//!
//! It needs no `unsafe` (the workspace forbids it).

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};

/// Set, to the kill grace in milliseconds, in the keeper's environment.
pub const KEEPER_ENV: &str = "POGO_KEEPER";

/// Whether this process was started as a keeper.
pub fn keeper_requested() -> bool {
    std::env::var_os(KEEPER_ENV).is_some()
}

/// A running keeper, and the pipe to tell it about process groups.
#[derive(Debug)]
pub struct Keeper {
    pipe: Mutex<Option<(ChildStdin, Child)>>,
}

impl Keeper {
    /// Starts `pogo` as the keeper of this process's commands, with `grace` between SIGTERM
    /// and SIGKILL.
    pub fn start(pogo: &Path, grace: Duration) -> std::io::Result<Keeper> {
        let mut child = Command::new(pogo)
            .env(KEEPER_ENV, grace.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        Ok(Keeper {
            pipe: Mutex::new(Some((stdin, child))),
        })
    }

    /// The command leading process group `group` has started: end it if this process dies.
    pub fn keep(&self, group: Pid) {
        self.say(&format!("+{}\n", group.as_raw_nonzero()));
    }

    /// The command of `group` has ended: forget it (its id may be given to another group).
    pub fn release(&self, group: Pid) {
        self.say(&format!("-{}\n", group.as_raw_nonzero()));
    }

    fn say(&self, line: &str) {
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((stdin, _)) = pipe.as_mut() {
            // A keeper that died can do nothing more for the commands; they run on, as they
            // would without one.
            let _ = stdin.write_all(line.as_bytes());
        }
    }
}

impl Drop for Keeper {
    /// This process lets go of its commands in order: the keeper reads the end of its input,
    /// ends any group still held (none, once every command was waited for) and exits.
    fn drop(&mut self) {
        let pipe = self.pipe.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((stdin, mut child)) = pipe.take() {
            drop(stdin);
            // Reaped aside: a keeper still ending groups takes up to the grace period.
            let _ = std::thread::Builder::new()
                .name("pogo-keeper-reaper".into())
                .spawn(move || child.wait());
        }
    }
}

/// The keeper's `main`: reads `+PGID` and `-PGID` lines until its input ends, then ends the
/// groups it still holds.
pub fn keeper_main() -> ExitCode {
    let grace = std::env::var(KEEPER_ENV)
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(Duration::from_secs(5), Duration::from_millis);
    // Raw ids: `Pid` is not ordered.
    let mut held: BTreeSet<i32> = BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, id) = line.split_at(line.len().min(1));
        let Some(group) = id.parse::<i32>().ok().filter(|&g| g > 1) else {
            continue;
        };
        match sign {
            "+" => {
                held.insert(group);
            }
            "-" => {
                held.remove(&group);
            }
            _ => {}
        }
    }
    end_groups(&held, grace);
    ExitCode::SUCCESS
}

/// SIGTERM to every group, then SIGKILL to those with a live process once `grace` is over.
fn end_groups(groups: &BTreeSet<i32>, grace: Duration) {
    let groups: Vec<Pid> = groups.iter().filter_map(|&g| Pid::from_raw(g)).collect();
    if groups.is_empty() {
        return;
    }
    for &group in &groups {
        let _ = kill_process_group(group, Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && groups.iter().any(|&g| super::local::group_alive(g)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &group in &groups {
        let _ = kill_process_group(group, Signal::KILL);
    }
}
