//! The global output flags: `--color auto|always|never` beside NO_COLOR, `--quiet` and
//! `--verbose`.

mod common;

use common::{config, pogo_command, pogo_in as pogo, Run};

fn diff(extra: &[&str], no_color: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let old = config("t/diff/review.old.cfg");
    let new = config("t/diff/review.new.cfg");
    let mut args = vec!["diff", old.as_str(), new.as_str()];
    args.extend_from_slice(extra);
    let mut command = pogo_command(dir.path(), &args);
    match no_color {
        Some(value) => command.env("NO_COLOR", value),
        None => command.env_remove("NO_COLOR"),
    };
    let run = Run(command.output().unwrap());
    assert_eq!(run.code(), 2, "{}", run.stderr());
    run.stdout()
}

#[test]
fn color_is_chosen_by_the_flag_and_otherwise_by_the_terminal_and_no_color() {
    // Into a pipe: none, unless asked for.
    assert!(!diff(&[], None).contains('\x1b'));
    assert!(diff(&["--color", "always"], None).contains("\x1b["));
    assert!(diff(&["--color=always"], None).contains("\x1b["));
    // An explicit choice beats NO_COLOR; auto honours it.
    assert!(diff(&["--color", "always"], Some("1")).contains("\x1b["));
    assert!(!diff(&["--color", "never"], None).contains('\x1b'));
    assert!(!diff(&["--color", "auto"], Some("1")).contains('\x1b'));
    // Before the command too, as a global flag.
    let dir = tempfile::tempdir().unwrap();
    let refused = pogo(dir.path(), &["--color", "sometimes", "runs"]);
    assert_eq!(refused.code(), 64);
    assert!(
        refused.stderr().contains("sometimes"),
        "{}",
        refused.stderr()
    );
}

#[test]
fn quiet_shows_the_summary_alone_and_verbose_every_hosts_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |flag: &str| {
        pogo(
            d,
            &[
                "run",
                "--targets",
                "a,b",
                "--command",
                "echo hi from $POGO_HOST",
                "--transport",
                "local",
                "--yes",
                flag,
            ],
        )
    };
    let quiet = run("--quiet");
    assert_eq!(quiet.code(), 0, "{}", quiet.stderr());
    let text = quiet.stdout();
    assert!(
        !text.contains("Running target") && !text.contains("Schedule"),
        "{text}"
    );
    assert!(text.contains("Succeeded: all 2 hosts"), "{text}");
    assert!(!text.contains("hi from a"), "{text}");

    let verbose = run("-v");
    assert_eq!(verbose.code(), 0, "{}", verbose.stderr());
    let text = verbose.stdout();
    assert!(text.contains("a: Running target"), "{text}");
    assert!(text.contains("\na: its output\n  | hi from a\n"), "{text}");
    assert!(text.contains("\nb: its output\n  | hi from b\n"), "{text}");
    // The same for the run read back.
    let log = pogo(d, &["log", "last", "--verbose"]);
    assert!(
        log.stdout().contains("\nb: its output\n  | hi from b\n"),
        "{}",
        log.stdout()
    );
    assert_eq!(pogo(d, &["runs", "-q", "-v"]).code(), 64);
}
