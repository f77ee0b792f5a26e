//! The README's console examples are real: each `$ pogo ...` block is run and its output
//! (stdout, then stderr) compared with what the README shows, so the README cannot drift
//! from what pogo prints.

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

#[test]
fn readme_console_examples_are_real_output() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
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
            .output()
            .unwrap();
        let actual = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            actual, expected,
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
