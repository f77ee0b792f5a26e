//! `pogo log RUN -f` follows a local run from another process, as `tail -f` would, until the
//! run ends: its events and summary, its journal with --json, or one host's output.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{pogo_command, pogo_in as pogo};

fn wait_with_deadline(child: &mut Child, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end with the run");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
    text
}

fn journal_text(d: &std::path::Path) -> String {
    let Ok(runs) = std::fs::read_dir(d.join(".pogo/runs")) else {
        return String::new();
    };
    runs.flatten()
        .map(|e| std::fs::read_to_string(e.path().join("journal.ndjson")).unwrap_or_default())
        .collect()
}

#[test]
fn log_follow_shows_a_running_local_run_from_another_process_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let command = r#"echo "begin $POGO_HOST"; sleep 0.7; echo "end $POGO_HOST""#;
    let mut apply = pogo_command(
        d,
        &[
            "run",
            "--targets",
            "h1,h2,h3",
            "--concurrent",
            "1",
            "--command",
            command,
            "--transport",
            "local",
            "--yes",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !journal_text(d).contains(r#""host":"h1""#) {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let spawn = |args: &[&str]| {
        pogo_command(d, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut events = spawn(&["log", "last", "-f"]);
    let mut json = spawn(&["log", "last", "-f", "--json"]);
    let mut h3 = spawn(&["log", "last", "h3", "-f"]);
    // The followers started while h3 had yet to run: what they show of it came later.
    assert!(!journal_text(d).contains(r#""host_started","host":"h3""#));
    assert!(apply.wait().unwrap().success());

    let shown = wait_with_deadline(&mut events, "pogo log -f");
    for line in ["h1: Running target", "h3: Running target", "h3: Success"] {
        assert!(shown.contains(line), "{shown}");
    }
    assert!(shown.contains("Succeeded: all 3 hosts"), "{shown}");
    assert_eq!(shown.matches("h2: Success").count(), 1, "{shown}");

    let lines = wait_with_deadline(&mut json, "pogo log -f --json");
    assert_eq!(lines, journal_text(d), "the journal, line for line");

    assert_eq!(
        wait_with_deadline(&mut h3, "pogo log HOST -f"),
        "begin h3\nend h3\n"
    );

    // A run that has ended is shown whole at once.
    let again = pogo(d, &["log", "last", "-f"]);
    assert_eq!(again.code(), 0);
    assert_eq!(again.stdout(), shown);
}

#[test]
fn log_follow_takes_one_host_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pogo(
        d,
        &[
            "run",
            "--targets",
            "a,b",
            "--command",
            "true",
            "--transport",
            "local",
            "--yes",
        ],
    );
    let refused = pogo(d, &["log", "last", "a", "b", "-f"]);
    assert_eq!(refused.code(), 64, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("one HOST"),
        "{}",
        refused.stderr()
    );
}

#[test]
fn a_hosts_escape_sequences_are_shown_not_played_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let command = r#"printf 'clear\033[2Jdone\n'"#;
    pogo(
        d,
        &[
            "run",
            "--targets",
            "h1",
            "--command",
            command,
            "--transport",
            "local",
            "--yes",
        ],
    );
    // Into a pipe, the bytes as the host wrote them.
    let piped = pogo(d, &["log", "last", "h1", "-f"]);
    assert_eq!(piped.stdout(), "clear\x1b[2Jdone\n");
    // On a terminal (script(1), as in tests/output.rs), shown.
    let line = format!("{} log last h1 -f", env!("CARGO_BIN_EXE_pogo"));
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(d)
        .env_remove("POGO_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("script(1) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("clear\\x1b[2Jdone"), "{text:?}");
}
