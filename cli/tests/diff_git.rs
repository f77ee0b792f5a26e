//! `pogo diff --git REV`, against a git repository made for the test: the old side is read
//! from the revision (the spec, the config it names and its host file), the new side from the
//! working tree.

use std::path::Path;
use std::process::{Command, Output};

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=pogo test",
            "-c",
            "user.email=test@example.com",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn pogo(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pogo"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        // Never find a repository above the test's temporary directories.
        .env("GIT_CEILING_DIRECTORIES", std::env::temp_dir())
        .output()
        .expect("pogo runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

const FLEET: &str = "\
tag:
  colo:
    east: [e1, e2, e3]
    west: [w1, w2, w3]
sequence:
  - $colo.east
  - $colo.west
constraint:
  $colo:
    max_parallel: 1
";

const SPEC: &str = "\
config: ../fleet.cfg
hostfile: restart.hosts
command: sudo systemctl restart app
";

/// A repository with one commit: `fleet.cfg`, and `plans/restart.yaml` naming it and the host
/// file `plans/restart.hosts`.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    write(root, "fleet.cfg", FLEET);
    write(root, "plans/restart.yaml", SPEC);
    write(root, "plans/restart.hosts", "e1\ne2\nw1\n");
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "fleet"]);
    dir
}

#[test]
fn the_spec_its_config_and_its_host_file_are_read_at_the_revision() {
    let repo = repository();
    let root = repo.path();
    // The working tree moves e2 to the west, raises the limit and adds w2 to the host file.
    write(
        root,
        "fleet.cfg",
        &FLEET
            .replace("[e1, e2, e3]", "[e1, e3]")
            .replace("[w1, w2, w3]", "[w1, w2, w3, e2]")
            .replace("max_parallel: 1", "max_parallel: 2"),
    );
    write(root, "plans/restart.hosts", "e1\ne2\nw1\nw2\n");

    let output = pogo(root, &["diff", "--git", "HEAD", "plans/restart.yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "\
old: HEAD:plans/restart.yaml
new: plans/restart.yaml

Hosts
  + 1 host added: w2
  ~ 1 host moves from main.$colo.east to main.$colo.west: e2

Constraints
  ~ $colo.east max_parallel 1 → 2, raised
  ~ $colo.west max_parallel 1 → 2, raised
  - 1 host leaves $colo.east: e2
  + 2 hosts enter $colo.west: w2, e2

Digests changed: config sha256:bb3008b6363b → sha256:2f0462f10604, inventory sha256:47f0079a6a96 \
→ sha256:ae9db74cb27c
Summary: 1 host added, 1 host moves, 2 limits raised, members of 2 groups changed
"
    );

    // The same from the spec's directory, and with --config for the config alone.
    let output = pogo(
        &root.join("plans"),
        &["diff", "--git", "HEAD", "restart.yaml"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stdout(&output).contains("1 host moves from main.$colo.east to main.$colo.west: e2"));
    let output = pogo(
        root,
        &[
            "diff",
            "--git",
            "HEAD",
            "--config",
            "fleet.cfg",
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(doc["old"], "HEAD:fleet.cfg");
    assert_eq!(doc["changes"]["hosts"]["moved"][0]["hosts"][0], "e2");

    // Once committed, there is no difference.
    git(root, &["commit", "-q", "-am", "move e2"]);
    let output = pogo(root, &["diff", "--git", "HEAD", "plans/restart.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).ends_with("Summary: no difference\n"));
    let output = pogo(root, &["diff", "--git", "HEAD~1", "plans/restart.yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn a_spec_new_in_the_working_tree_is_all_added() {
    let repo = repository();
    let root = repo.path();
    write(
        root,
        "plans/new.yaml",
        "config: ../fleet.cfg\ntargets: $colo.west\n",
    );
    let output = pogo(
        root,
        &[
            "diff",
            "--git",
            "HEAD",
            "plans/new.yaml",
            "--format",
            "markdown",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "> `plans/new.yaml` does not exist at HEAD: it is new, so everything in it is added"
        ),
        "{text}"
    );
    assert!(
        text.contains("**3 hosts added, 1 thread added, 1 group added**"),
        "{text}"
    );
}

#[test]
fn unknown_revisions_and_files_missing_at_the_revision_are_clear_errors() {
    let repo = repository();
    let root = repo.path();

    let output = pogo(
        root,
        &["diff", "--git", "no-such-branch", "plans/restart.yaml"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: unknown revision `no-such-branch`: give a branch, tag or commit of the \
         repository (in a CI checkout, fetch it first, for example `git fetch origin main`)\n"
    );

    // At HEAD the spec names a config that was never committed.
    write(root, "plans/other.yaml", "config: ../other.cfg\n");
    git(root, &["add", "plans/other.yaml"]);
    git(root, &["commit", "-q", "-m", "other"]);
    write(root, "plans/other.yaml", "config: ../fleet.cfg\n");
    let output = pogo(root, &["diff", "--git", "HEAD", "plans/other.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("cannot read config `other.cfg`: it does not exist at HEAD"),
        "{message}"
    );
    assert!(
        message.ends_with(
            "note: the errors above are in the files as they are at HEAD (the old side of the \
             diff)\n"
        ),
        "{message}"
    );

    // A file that does not exist in the working tree is an error, whatever REV holds.
    let output = pogo(root, &["diff", "--git", "HEAD", "plans/gone.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: cannot read `plans/gone.yaml`: no such file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn outside_a_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fleet.cfg", FLEET);
    let output = pogo(
        dir.path(),
        &["diff", "--git", "HEAD", "--config", "fleet.cfg"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: `.` is not in a git repository: --git reads the old version of the files from \
         the repository that holds them\n"
    );
}

#[test]
fn usage_mistakes_exit_with_64() {
    let repo = repository();
    let root = repo.path();
    for args in [
        &["diff", "plans/restart.yaml"][..],
        &["diff", "--git", "HEAD"],
        &["diff", "--git", "HEAD", "a.yaml", "b.yaml"],
        &["diff", "--config", "fleet.cfg"],
    ] {
        let output = pogo(root, args);
        assert_eq!(
            output.status.code(),
            Some(64),
            "pogo {args:?}: {}",
            stderr(&output)
        );
    }
    // Plan options change nothing when both sides are plan files: refused, not ignored.
    let output = pogo(
        root,
        &["plan", "--config", "fleet.cfg", "-o", "fleet.plan.json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let args = [
        "diff",
        "fleet.plan.json",
        "fleet.plan.json",
        "--command",
        "true",
    ];
    let output = pogo(root, &args);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(stderr(&output).contains("both sides are plan files"));
    let output = pogo(
        root,
        &["diff", "fleet.plan.json", "fleet.cfg", "--command", "true"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}
