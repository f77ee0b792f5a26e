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
