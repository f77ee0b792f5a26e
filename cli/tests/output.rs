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

/// The widest table line of `pogo ARGS`, in characters.
fn widest_table_line(args: &[&str]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let spec = config("examples/plans/rolling-restart.yaml");
    let mut all = vec!["plan", spec.as_str()];
    all.extend_from_slice(args);
    let run = pogo(dir.path(), &all);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let text = run.stdout();
    text.lines()
        .filter(|l| l.starts_with(['│', '┌', '└', '╞']))
        .map(|l| l.chars().count())
        .max()
        .expect("tables")
}

#[test]
fn tables_fit_the_width_given_and_a_fixed_one_into_a_pipe() {
    // The rolling restart's schedule is 175 columns wide when nothing limits it.
    assert_eq!(widest_table_line(&["--width", "1000"]), 175);
    // Into a pipe: 100 columns, the same every time.
    assert_eq!(widest_table_line(&[]), 100);
    assert_eq!(widest_table_line(&["--width", "60"]), 60);
    let refused = pogo(
        tempfile::tempdir().unwrap().path(),
        &["runs", "--width", "10"],
    );
    assert_eq!(refused.code(), 64);
}

#[test]
fn on_a_terminal_tables_fit_its_width() {
    // A real pseudo-terminal of 80 columns, from util-linux's script(1) (Debian's bsdutils,
    // an essential package).
    let dir = tempfile::tempdir().unwrap();
    let spec = config("examples/plans/rolling-restart.yaml");
    let line = format!(
        "stty cols 80 rows 40; {} plan {spec}",
        env!("CARGO_BIN_EXE_pogo")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let widest = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with(['│', '┌', '└', '╞']))
        .map(|l| l.chars().count())
        .max()
        .unwrap_or_else(|| panic!("no table in:\n{text}"));
    assert_eq!(widest, 80, "{text}");
}
