//! The README's console examples are real: each `$ pogo ...` block is run and its output
//! (stdout, then stderr) compared with what the README shows, so the README cannot drift
//! from what pogo prints. Blocks run in order, with runs kept in a state directory of the
//! test's own (so `pogo log last` reads the run of a block before it); what varies from one
//! run to the next, run ids and durations, is redacted on both sides before comparing.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the workspace")
        .to_path_buf()
}

/// Splits a command line on blanks, honouring single quotes (enough for the README).
fn split(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// `20261124T230102Z-3f9a` (a run id: its start time) becomes `RUN_ID`, and the digits of a
/// duration (`0.21s`, `12.30s`) become zeros, which keeps table columns as wide.
fn redact(text: &str) -> String {
    let is_run_id = |w: &[u8]| {
        w.len() == 21
            && w[..8].iter().all(u8::is_ascii_digit)
            && w[8] == b'T'
            && w[9..15].iter().all(u8::is_ascii_digit)
            && w[15] == b'Z'
            && w[16] == b'-'
            && w[17..].iter().all(u8::is_ascii_hexdigit)
    };
    let is_duration = |w: &str| {
        w.strip_suffix('s')
            .and_then(|n| n.split_once('.'))
            .is_some_and(|(whole, frac)| {
                !whole.is_empty()
                    && whole.bytes().all(|b| b.is_ascii_digit())
                    && frac.len() == 2
                    && frac.bytes().all(|b| b.is_ascii_digit())
            })
    };
    let mut out = String::new();
    let mut rest = text;
    let mut word_start = true;
    while let Some(c) = rest.chars().next() {
        let bytes = rest.as_bytes();
        if bytes.len() >= 21 && is_run_id(&bytes[..21]) {
            out.push_str("RUN_ID");
            rest = &rest[21..];
            word_start = false;
            continue;
        }
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if word_start && is_duration(&rest[..word_len]) {
            out.extend(
                rest[..word_len]
                    .chars()
                    .map(|c| if c.is_ascii_digit() { '0' } else { c }),
            );
            rest = &rest[word_len..];
            word_start = false;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        word_start = c.is_whitespace();
    }
    out
}

#[test]
fn redaction_keeps_all_but_run_ids_and_durations() {
    assert_eq!(
        redact("Run 20261124T230102Z-3f9a\n│ host1 ┆ 0.21s    │ 12.30s 1.5s x0.21s\n"),
        "Run RUN_ID\n│ host1 ┆ 0.00s    │ 00.00s 1.5s x0.21s\n"
    );
}

#[test]
fn readme_console_examples_are_real_output() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for block in readme.split("```console\n").skip(1) {
        let block = &block[..block.find("```").expect("console blocks are closed")];
        let (command, expected) = block.split_once('\n').unwrap();
        let words = split(
            command
                .strip_prefix("$ pogo ")
                .expect("blocks start with $ pogo"),
        );
        let output = Command::new(env!("CARGO_BIN_EXE_pogo"))
            .args(&words)
            .current_dir(root())
            .env("POGO_STATE_DIR", state.path())
            // A slow machine must not add progress lines to what the README shows.
            .env("POGO_PROGRESS_EVERY", "0")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let actual = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            redact(&actual),
            redact(expected),
            "the README's output of `{command}` is out of date; paste the actual output"
        );
        checked += 1;
    }
    assert!(checked >= 2, "the README should show real console examples");
}

/// Output shown in another kind of block (a ```mermaid block that GitHub draws) is real too:
/// such a block follows `<!-- output of: pogo ARGS -->` and holds exactly what pogo prints.
#[test]
fn readme_rendered_examples_are_real_output() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let marker = "<!-- output of: pogo ";
    let mut checked = 0;
    for rest in readme.split(marker).skip(1) {
        let (args, after) = rest.split_once(" -->\n").expect("the marker is closed");
        let fence = after.lines().next().unwrap();
        assert!(
            fence.starts_with("```"),
            "the marker is followed by a block"
        );
        let body = &after[fence.len() + 1..];
        let expected = &body[..body.find("```").expect("the block is closed")];
        let output = Command::new(env!("CARGO_BIN_EXE_pogo"))
            .args(split(args))
            .current_dir(root())
            .output()
            .unwrap();
        assert!(output.status.success(), "`pogo {args}` failed");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            expected,
            "the README's output of `pogo {args}` is out of date; paste the actual output"
        );
        checked += 1;
    }
    assert!(checked >= 1, "the README should show a graph");
}

/// The README's shell examples that work on files alone (plan, validate, show, simulate) run
/// as written, in order, in a directory holding what they name: the example fleet as
/// `fleet.cfg`, a host file, and the repository's `examples/` and `t/`. The rest (a
/// dispatcher, git history) are checked for flags by the binary's own tests.
#[test]
fn readme_local_shell_examples_run_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(root().join("examples/fleet.cfg"), d.join("fleet.cfg")).unwrap();
    std::fs::write(d.join("incident-4711.hosts"), "web-e03\napi-w02 # paged\n").unwrap();
    for shared in ["examples", "t"] {
        std::os::unix::fs::symlink(root().join(shared), d.join(shared)).unwrap();
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pogo"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = Vec::new();
    for block in readme.split("```sh\n").skip(1) {
        let block = &block[..block.find("```").expect("sh blocks are closed")];
        let mut joined = Vec::new();
        let mut pending = String::new();
        for part in block.lines() {
            match part.strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => joined.push(std::mem::take(&mut pending) + part),
            }
        }
        for line in &joined {
            let words = split(line);
            let local = ["plan", "validate", "show", "simulate"];
            if words.first().map(String::as_str) != Some("pogo")
                || !local.contains(&words[1].as_str())
            {
                continue;
            }
            let output = Command::new("bash")
                .args(["-c", line])
                .current_dir(d)
                .env("PATH", &path)
                .env("NO_COLOR", "1")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "the README's `{line}` fails:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            ran.push(words[1].clone());
        }
    }
    for command in ["plan", "validate", "simulate"] {
        assert!(
            ran.iter().any(|c| c == command),
            "no `pogo {command}` ran: {ran:?}"
        );
    }
}
