//! `pogo completions` and `pogo man`: generated from the commands themselves, so every
//! command shows up, and what they write is usable (bash reads the script; `man` pages begin
//! as roff pages do).

mod common;

use std::process::Command;

use common::Run;

fn pogo(args: &[&str]) -> Run {
    Run(Command::new(env!("CARGO_BIN_EXE_pogo"))
        .args(args)
        .output()
        .unwrap())
}

#[test]
fn completion_scripts_name_every_command_and_bash_reads_its_own() {
    for shell in ["bash", "zsh", "fish"] {
        let script = pogo(&["completions", shell]).expect(0).stdout();
        for command in ["plan", "apply", "approve", "fleet", "status", "completions"] {
            assert!(script.contains(command), "{shell}: no `{command}`");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pogo.bash");
    std::fs::write(&path, pogo(&["completions", "bash"]).expect(0).stdout()).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let refused = pogo(&["completions", "tcsh"]);
    assert_eq!(refused.code(), 64, "{}", refused.stderr());
}

#[test]
fn a_man_page_is_written_for_pogo_and_each_of_its_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let said = pogo(&["man", "--out", out.to_str().unwrap()])
        .expect(0)
        .stdout();
    for page in [
        "pogo.1",
        "pogo-apply.1",
        "pogo-fleet-push.1",
        "pogo-approve.1",
    ] {
        let text = std::fs::read_to_string(out.join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}; said {said}"));
        let name = page.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {name} 1")), "{page}");
        assert!(text.contains(".SH NAME"), "{page}");
    }
    let apply = std::fs::read_to_string(out.join("pogo-apply.1")).unwrap();
    assert!(
        apply.contains("\\-\\-dispatcher"),
        "the flags are in the page"
    );
    assert!(!out.join("pogo-help.1").exists(), "no page for `help`");
    assert!(said.contains(" pages; `man -M "), "{said}");
}

#[test]
fn the_start_lines_of_pogo_help_work_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let help = common::pogo_in(dir.path(), &["--help"]).expect(0).stdout();
    let commands: Vec<String> = help
        .lines()
        .filter_map(|l| {
            ["Start with: ", "Then:       ", "And:        "]
                .iter()
                .find_map(|p| l.strip_prefix(p))
        })
        .map(|rest| rest.split("    (").next().unwrap().trim().to_string())
        .collect();
    assert_eq!(commands.len(), 3, "{help}");
    for command in &commands {
        let words = split_shell(command);
        assert_eq!(words[0], "pogo", "{command}");
        let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        if args[0] == "run" {
            // Without a terminal to confirm on.
            args.push("--yes");
        }
        let run = common::pogo_in(dir.path(), &args);
        assert_eq!(run.code(), 0, "`{command}`: {}", run.stderr());
    }
    let again = common::pogo_in(dir.path(), &["example"]);
    assert_ne!(again.code(), 0);
    assert!(
        again.stderr().contains("does not overwrite"),
        "{}",
        again.stderr()
    );
}

/// Splits a command line on blanks, honouring single quotes.
fn split_shell(line: &str) -> Vec<String> {
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
