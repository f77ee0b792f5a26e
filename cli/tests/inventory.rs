//! Inventory commands (`tag: !command CMD`) cannot hold `pogo plan` or outlive it: a command
//! that leaves a child running and never ends is stopped at the limit with everything it
//! started, and `pogo plan` fails with an error at the tag.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether process `pid` still runs (a zombie waiting for init does not count).
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && stat.split_whitespace().nth(2) != Some("Z")
}

/// Fails unless the child whose pid the command wrote in `child.pid` in `dir` is gone (or goes
/// within a few seconds: init reaps it).
fn assert_child_gone(dir: &Path) {
    let child: u32 = std::fs::read_to_string(dir.join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(child) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!running(child), "the command's child {child} still runs");
}

#[test]
fn a_command_that_leaves_a_child_is_stopped_at_the_limit_and_nothing_of_it_is_left() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fleet.cfg"),
        "tag:\n  east: !command sleep 120 & echo $! > child.pid; echo h1; sleep 120\n",
    )
    .unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_pogo"))
        .args(["plan", "--config", "fleet.cfg"])
        .current_dir(dir.path())
        .env("POGO_INVENTORY_TIMEOUT", "1")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "error: the command of tag `east` did not finish within 1 s and was stopped, with \
             every process it started\n  --> fleet.cfg:2:18\n"
        ),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(30), "pogo plan took {took:?}");
    assert_child_gone(dir.path());
}

#[test]
fn a_command_that_ends_but_leaves_a_child_gives_its_hosts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fleet.cfg"),
        "tag:\n  east: !command sleep 120 & echo $! > child.pid; echo h1\n",
    )
    .unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_pogo"))
        .args(["plan", "--config", "fleet.cfg", "-o", "p.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_child_gone(dir.path());
}
