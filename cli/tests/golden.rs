//! Golden tests of the `pogo` binary: plans, schedule tables and error messages, compared
//! byte for byte with the files in `tests/golden/` (see `tests/golden/README.md`).
//!
//! `POGO_UPDATE_GOLDEN=1 cargo test -p pogo-cli --test golden` rewrites them; review the diff
//! before committing. Every command runs from the workspace root with relative paths, so the
//! outputs hold no absolute path and read the same on every machine.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pogo_model::Plan;

const UPDATE_VAR: &str = "POGO_UPDATE_GOLDEN";
const REGENERATE: &str = "POGO_UPDATE_GOLDEN=1 cargo test -p pogo-cli --test golden";

/// Config cases: `t/cfgs/NAME.cfg` (+ `NAME.args`, `NAME.VARIANT.args`).
const CFGS: &str = "t/cfgs";
/// Error cases: `.cfg`, plan specs (`.yaml`) and argument-only cases (`.args`).
const ERRORS: &str = "t/errors";
/// Example plan specs, planned as they are.
const EXAMPLES: &str = "examples/plans";
/// `pogo diff` cases: `NAME.old.EXT` and `NAME.new.EXT` (configs, plan specs or plan files)
/// with the arguments of `NAME.args` after them, or `NAME.args` alone: the whole command line.
const DIFFS: &str = "t/diff";
/// Diff cases whose plans run the same rollout: `pogo diff` exits with 0 for them, 2 for the
/// others.
const SAME_ROLLOUT: [&str; 4] = [
    "comment-only",
    "identical",
    "plan-and-its-config",
    "plan-with-itself",
];
/// The formats every diff case is checked in: golden extension and arguments.
const DIFF_FORMATS: [(&str, &[&str]); 3] = [
    ("txt", &[]),
    ("md", &["--format", "markdown"]),
    ("json", &["--format", "json"]),
];
const GOLDEN: &str = "tests/golden";
/// Golden plans whose graphs are kept too, as `NAME.mmd` and `NAME.dot` beside
/// `NAME.plan.json`: plans that between them show every element of a graph (threads, empty
/// slots, the unordered lane, groups linked to slots, hosts shared across threads, names
/// that need escaping), and the examples.
const GRAPHS: &[&str] = &[
    "cfgs/triple",
    "cfgs/seq-cross-thread-host",
    "cfgs/seq-empty-step",
    "cfgs/seq-mapping-filter",
    "cfgs/constraint-overlapping-groups",
    "cfgs/constraint-per-value",
    "cfgs/targets-not-in-config",
    "cfgs/names-special-characters",
    "examples/canary-first",
    "examples/canary-drain",
    "examples/db-before-web",
    "examples/east-hotfix",
    "examples/rolling-restart",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate is inside the workspace")
        .to_path_buf()
}

fn updating() -> bool {
    std::env::var_os(UPDATE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// One invocation of `pogo plan` whose outputs are kept in golden files.
#[derive(Debug, Clone)]
struct Case {
    /// `NAME` or `NAME.VARIANT`: the golden files' stem.
    name: String,
    /// Arguments after `pogo plan`, paths relative to the workspace root.
    args: Vec<String>,
}

impl Case {
    fn command_line(&self, extra: &[&str]) -> String {
        self.command_line_of("plan", extra)
    }

    fn command_line_of(&self, subcommand: &str, extra: &[&str]) -> String {
        let mut line = format!("pogo {subcommand}");
        for arg in self
            .args
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
        {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        line
    }
}

/// Quotes an argument for a POSIX shell when it needs it, so a golden's command line can be
/// pasted into a terminal as it is.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./,:=@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Reads a sidecar: one argument per line, taken literally (no quoting, no comments), so
/// `$colo.one` or `10%` need no escaping. A final newline is not an empty argument.
fn read_args(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines().map(str::to_string).collect()
}

fn files_with_extension(dir: &str, extension: &str) -> Vec<String> {
    let path = root().join(dir);
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.expect("a readable directory entry").file_name())
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.ends_with(&format!(".{extension}")))
        .collect();
    names.sort();
    names
}

/// Input `STEM.cfg` or `STEM.yaml` with sidecars `STEM.args` and `STEM.VARIANT.args`.
/// `base` gives the arguments that name the input. Argument files that belong to no input
/// are returned as orphans.
fn cases_in(dir: &str, inputs: &[(String, Vec<String>)], orphans: &mut Vec<String>) -> Vec<Case> {
    let mut cases = Vec::new();
    let sidecars = files_with_extension(dir, "args");
    let mut used = BTreeSet::new();
    for (stem, base) in inputs {
        assert!(
            !stem.contains('.'),
            "{dir}/{stem}: input names must not contain `.`, which separates a variant \
             (`NAME.VARIANT.args`)"
        );
        let own = format!("{stem}.args");
        let mut args = base.clone();
        if sidecars.contains(&own) {
            args.extend(read_args(&root().join(dir).join(&own)));
            used.insert(own);
        }
        cases.push(Case {
            name: stem.clone(),
            args,
        });
        let prefix = format!("{stem}.");
        for sidecar in &sidecars {
            let Some(variant) = sidecar
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".args"))
            else {
                continue;
            };
            if variant == "args" || variant.is_empty() {
                continue;
            }
            let mut args = base.clone();
            args.extend(read_args(&root().join(dir).join(sidecar)));
            cases.push(Case {
                name: format!("{stem}.{variant}"),
                args,
            });
            used.insert(sidecar.clone());
        }
    }
    orphans.extend(
        sidecars
            .into_iter()
            .filter(|s| !used.contains(s))
            .map(|s| format!("{dir}/{s}")),
    );
    cases
}

fn stems(dir: &str, extension: &str) -> Vec<String> {
    files_with_extension(dir, extension)
        .into_iter()
        .map(|n| n[..n.len() - extension.len() - 1].to_string())
        .collect()
}

/// Every `t/cfgs` case.
fn cfg_cases() -> Vec<Case> {
    let inputs: Vec<(String, Vec<String>)> = stems(CFGS, "cfg")
        .into_iter()
        .map(|stem| {
            let args = vec!["--config".to_string(), format!("{CFGS}/{stem}.cfg")];
            (stem, args)
        })
        .collect();
    let mut orphans = Vec::new();
    let cases = cases_in(CFGS, &inputs, &mut orphans);
    assert!(
        orphans.is_empty(),
        "argument files with no config: {orphans:?}"
    );
    cases
}

/// Every `t/errors` case: configs, plan specs, and `.args` files that stand alone (a missing
/// config file, say).
fn error_cases() -> Vec<Case> {
    let mut inputs: Vec<(String, Vec<String>)> = Vec::new();
    for stem in stems(ERRORS, "cfg") {
        let args = vec!["--config".to_string(), format!("{ERRORS}/{stem}.cfg")];
        inputs.push((stem, args));
    }
    for stem in stems(ERRORS, "yaml") {
        assert!(
            !inputs.iter().any(|(s, _)| *s == stem),
            "{ERRORS}/{stem}: both a .cfg and a .yaml; rename one"
        );
        inputs.push((stem.clone(), vec![format!("{ERRORS}/{stem}.yaml")]));
    }
    inputs.sort();
    let mut alone = Vec::new();
    let mut cases = cases_in(ERRORS, &inputs, &mut alone);
    for path in alone {
        let file = Path::new(&path);
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name")
            .to_string();
        cases.push(Case {
            name,
            args: read_args(&root().join(file)),
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Every `t/diff` case.
fn diff_cases() -> Vec<Case> {
    let mut files = Vec::new();
    for extension in ["cfg", "yaml", "json"] {
        files.extend(files_with_extension(DIFFS, extension));
    }
    let sidecars = files_with_extension(DIFFS, "args");
    let side = |stem: &str, which: &str| {
        let found: Vec<&String> = files
            .iter()
            .filter(|f| {
                f.strip_prefix(stem)
                    .and_then(|rest| rest.strip_prefix(which))
                    .is_some_and(|ext| !ext.contains('.'))
            })
            .collect();
        assert!(
            found.len() == 1,
            "{DIFFS}/{stem}: needs exactly one `{stem}{which}EXT`, found {found:?}"
        );
        format!("{DIFFS}/{}", found[0])
    };
    let mut stems: BTreeSet<String> = BTreeSet::new();
    for file in &files {
        let stem = file
            .split_once('.')
            .map(|(stem, _)| stem.to_string())
            .expect("a file name with an extension");
        assert!(
            file.starts_with(&format!("{stem}.old.")) || file.starts_with(&format!("{stem}.new.")),
            "{DIFFS}/{file}: diff inputs are named NAME.old.EXT and NAME.new.EXT"
        );
        stems.insert(stem);
    }
    let mut cases = Vec::new();
    for stem in &stems {
        let mut args = vec![side(stem, ".old."), side(stem, ".new.")];
        let own = format!("{stem}.args");
        if sidecars.contains(&own) {
            args.extend(read_args(&root().join(DIFFS).join(&own)));
        }
        cases.push(Case {
            name: stem.clone(),
            args,
        });
    }
    for sidecar in &sidecars {
        let stem = sidecar.strip_suffix(".args").expect("an .args file");
        if !stems.contains(stem) {
            cases.push(Case {
                name: stem.to_string(),
                args: read_args(&root().join(DIFFS).join(sidecar)),
            });
        }
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

fn example_cases() -> Vec<Case> {
    stems(EXAMPLES, "yaml")
        .into_iter()
        .map(|stem| Case {
            args: vec![format!("{EXAMPLES}/{stem}.yaml")],
            name: stem,
        })
        .collect()
}

/// `pogo plan ARGS`.
fn pogo_plan(args: &[String]) -> Output {
    let mut all = vec!["plan".to_string()];
    all.extend_from_slice(args);
    pogo(&all)
}

fn pogo(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pogo"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_BACKTRACE")
        .env("NO_COLOR", "1")
        .output()
        .expect("pogo runs")
}

fn text(bytes: &[u8], what: &str) -> String {
    String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| panic!("{what} is not UTF-8"))
}

/// Collects mismatches, so one run reports every golden that differs.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
}

impl Report {
    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    /// Compares `actual` with the golden file, or rewrites it when updating.
    fn check(&mut self, golden: &str, actual: &str, command: &str) {
        let path = root().join(golden);
        if updating() {
            let current = std::fs::read_to_string(&path).ok();
            if current.as_deref() != Some(actual) {
                std::fs::create_dir_all(path.parent().expect("golden files are in a directory"))
                    .expect("can create the golden directory");
                std::fs::write(&path, actual)
                    .unwrap_or_else(|e| panic!("cannot write {golden}: {e}"));
                eprintln!("updated {golden}");
            }
            return;
        }
        match std::fs::read_to_string(&path) {
            Err(_) => self.fail(format!(
                "{golden} is missing (output of `{command}`)\n  create it with: {REGENERATE}"
            )),
            Ok(expected) if expected == actual => {}
            Ok(expected) => self.fail(format!(
                "{golden} differs from the output of `{command}` (- golden, + actual):\n{}  \
                 if the new output is right, regenerate with: {REGENERATE}",
                diff(&expected, actual)
            )),
        }
    }

    fn finish(self, what: &str) {
        if !self.failures.is_empty() {
            panic!(
                "{} {what} failed:\n\n{}",
                self.failures.len(),
                self.failures.join("\n\n")
            );
        }
    }
}

/// The differing lines, with a little context: a line diff over the longest common
/// subsequence, cut to the first hunks. Large files fall back to the first differing line.
fn diff(expected: &str, actual: &str) -> String {
    const CONTEXT: usize = 2;
    const MAX_LINES: usize = 40;
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    if expected.lines().eq(actual.lines()) {
        return "  (the files differ only in line endings or the final newline)\n".to_string();
    }
    if old.len().saturating_mul(new.len()) > 4_000_000 {
        let first = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
        let _ = writeln!(out, "  first difference at line {}:", first + 1);
        let _ = writeln!(out, "  - {}", old.get(first).unwrap_or(&"(end of file)"));
        let _ = writeln!(out, "  + {}", new.get(first).unwrap_or(&"(end of file)"));
        return out;
    }
    // lcs[i][j]: length of the longest common subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, old line number, text)
    let mut ops: Vec<(char, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            ops.push((' ', i + 1, old[i]));
            i += 1;
            j += 1;
        } else if i < old.len() && (j == new.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i + 1, old[i]));
            i += 1;
        } else {
            ops.push(('+', i + 1, new[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut shown = 0;
    let mut last: Option<usize> = None;
    for &k in &changed {
        let start = k.saturating_sub(CONTEXT).max(last.map_or(0, |l| l + 1));
        if last.is_none_or(|l| start > l + 1) {
            let _ = writeln!(out, "  @@ line {}", ops[start].1);
        }
        for (tag, _, line) in &ops[start..=k] {
            let _ = writeln!(out, "  {tag} {line}");
            shown += 1;
        }
        last = Some(k);
        if shown >= MAX_LINES {
            let _ = writeln!(out, "  ... (more differences)");
            return out;
        }
    }
    if let Some(l) = last {
        for (tag, _, line) in ops.iter().skip(l + 1).take(CONTEXT) {
            let _ = writeln!(out, "  {tag} {line}");
        }
    }
    out
}

/// Plans a case that must succeed: checks the plan JSON (`-o -`) and the table (stdout).
fn check_plan_case(report: &mut Report, case: &Case, dir: &str) {
    let json_args: Vec<String> = case
        .args
        .iter()
        .cloned()
        .chain(["-o".to_string(), "-".to_string()])
        .collect();
    for (args, extension, extra) in [
        (&json_args, "plan.json", &["-o", "-"][..]),
        (&case.args, "table.txt", &[][..]),
    ] {
        let command = case.command_line(extra);
        let output = pogo_plan(args);
        if !output.status.success() || !output.stderr.is_empty() {
            report.fail(format!(
                "`{command}` should plan and print nothing on stderr, but exited with {} and \
                 printed:\n{}",
                output.status,
                text(&output.stderr, "stderr")
            ));
            continue;
        }
        let golden = format!("{GOLDEN}/{dir}/{}.{extension}", case.name);
        report.check(&golden, &text(&output.stdout, "stdout"), &command);
    }
}

#[test]
fn config_corpus_plans_and_tables() {
    let mut report = Report::default();
    let cases = cfg_cases();
    assert!(cases.len() > 2, "the corpus in {CFGS} is missing");
    for case in &cases {
        check_plan_case(&mut report, case, "cfgs");
    }
    report.finish("config cases");
}

#[test]
fn example_plan_specs_plans_and_tables() {
    let mut report = Report::default();
    for case in example_cases() {
        check_plan_case(&mut report, &case, "examples");
    }
    report.finish("example plan specs");
}

/// The golden text of a failing case: the command, its exit status and stderr (and stdout,
/// should it print anything).
fn error_golden(case: &Case, output: &Output) -> String {
    let mut golden = format!(
        "$ {}\nexit status: {}\n--- stderr\n{}",
        case.command_line(&[]),
        output
            .status
            .code()
            .map_or("killed by a signal".to_string(), |c| c.to_string()),
        text(&output.stderr, "stderr")
    );
    if !output.stdout.is_empty() {
        golden.push_str("--- stdout\n");
        golden.push_str(&text(&output.stdout, "stdout"));
    }
    golden
}

#[test]
fn error_corpus_messages_and_exit_codes() {
    let mut report = Report::default();
    let cases = error_cases();
    assert!(!cases.is_empty(), "the corpus in {ERRORS} is missing");
    for case in &cases {
        let output = pogo_plan(&case.args);
        let command = case.command_line(&[]);
        if output.status.success() {
            report.fail(format!(
                "`{command}` should fail, but it planned:\n{}",
                text(&output.stdout, "stdout")
            ));
            continue;
        }
        if output.stderr.is_empty() {
            report.fail(format!("`{command}` failed without a message"));
        }
        let golden = format!("{GOLDEN}/errors/{}.stderr", case.name);
        report.check(&golden, &error_golden(case, &output), &command);
    }
    report.finish("error cases");
}

/// `pogo diff` in every format: the output is the golden file, the exit status 0 for the
/// cases in [`SAME_ROLLOUT`] and 2 for the others, stderr empty, and the JSON's `changed`
/// agrees with the exit status.
#[test]
fn diff_corpus_in_every_format() {
    let mut report = Report::default();
    let cases = diff_cases();
    assert!(cases.len() > 5, "the corpus in {DIFFS} is missing");
    for name in SAME_ROLLOUT {
        assert!(
            cases.iter().any(|c| c.name == name),
            "no diff case `{name}`"
        );
    }
    for case in &cases {
        let expected = if SAME_ROLLOUT.contains(&case.name.as_str()) {
            0
        } else {
            2
        };
        for (extension, extra) in DIFF_FORMATS {
            let command = case.command_line_of("diff", extra);
            let mut args = vec!["diff".to_string()];
            args.extend(case.args.iter().cloned());
            args.extend(extra.iter().map(|a| a.to_string()));
            let output = pogo(&args);
            if output.status.code() != Some(expected) || !output.stderr.is_empty() {
                report.fail(format!(
                    "`{command}` should exit with {expected} and print nothing on stderr, but \
                     exited with {} and printed:\n{}",
                    output.status,
                    text(&output.stderr, "stderr")
                ));
                continue;
            }
            let stdout = text(&output.stdout, "stdout");
            if extension == "json" {
                let doc: serde_json::Value =
                    serde_json::from_str(&stdout).expect("pogo diff --format json prints JSON");
                if doc["changed"] != serde_json::Value::Bool(expected == 2) {
                    report.fail(format!(
                        "`{command}`: `changed` is {} but the exit status is {expected}",
                        doc["changed"]
                    ));
                }
            }
            let golden = format!("{GOLDEN}/diff/{}.{extension}", case.name);
            report.check(&golden, &stdout, &command);
        }
    }
    report.finish("diff cases");
}

/// A plan diffed with itself is empty: every golden plan, with no change in any section.
#[test]
fn every_golden_plan_diffed_with_itself_is_empty() {
    let mut report = Report::default();
    for golden in golden_plans() {
        let args = ["diff", &golden, &golden, "--format", "json"].map(str::to_string);
        let output = pogo(&args);
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("`pogo diff {golden} {golden}` prints JSON"));
        let mut lists = Vec::new();
        for section in doc["changes"].as_object().expect("changes").values() {
            for value in section.as_object().expect("a section").values() {
                lists.push(value.clone());
            }
        }
        let empty = lists
            .iter()
            .all(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty));
        if output.status.code() != Some(0) || !empty || doc["summary"] != "no difference" {
            report.fail(format!(
                "`pogo diff {golden} {golden}` is not empty (exit {}):\n{}",
                output.status,
                text(&output.stdout, "stdout")
            ));
        }
    }
    report.finish("plans diffed with themselves");
}

/// Every golden file the inputs account for, relative to the workspace root.
fn expected_goldens() -> BTreeSet<String> {
    let mut expected = BTreeSet::new();
    for (cases, dir) in [(cfg_cases(), "cfgs"), (example_cases(), "examples")] {
        for case in cases {
            for extension in ["plan.json", "table.txt"] {
                expected.insert(format!("{GOLDEN}/{dir}/{}.{extension}", case.name));
            }
        }
    }
    for case in error_cases() {
        expected.insert(format!("{GOLDEN}/errors/{}.stderr", case.name));
    }
    for case in diff_cases() {
        for (extension, _) in DIFF_FORMATS {
            expected.insert(format!("{GOLDEN}/diff/{}.{extension}", case.name));
        }
    }
    for name in GRAPHS {
        for extension in ["mmd", "dot"] {
            expected.insert(format!("{GOLDEN}/{name}.{extension}"));
        }
    }
    expected.extend(simulate_cases().iter().map(simulate_golden));
    expected.insert(format!("{GOLDEN}/README.md"));
    expected
}

/// Files under `dir` (relative to `base`) that are not in `expected`.
fn stale_files(base: &Path, dir: &str, expected: &BTreeSet<String>) -> Vec<String> {
    let mut stale = Vec::new();
    let mut pending = vec![dir.to_string()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(base.join(&current)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("a readable directory entry");
            let name = format!("{current}/{}", entry.file_name().to_string_lossy());
            if entry.file_type().expect("a file type").is_dir() {
                pending.push(name);
            } else if !expected.contains(&name) {
                stale.push(name);
            }
        }
    }
    stale.sort();
    stale
}

/// A golden whose input is gone must not linger: it would be checked by nothing and mislead
/// whoever reads it. Updating removes such files.
#[test]
fn no_golden_file_without_an_input() {
    let stale = stale_files(&root(), GOLDEN, &expected_goldens());
    if updating() {
        for file in &stale {
            std::fs::remove_file(root().join(file))
                .unwrap_or_else(|e| panic!("cannot remove {file}: {e}"));
            eprintln!("removed stale {file}");
        }
        return;
    }
    assert!(
        stale.is_empty(),
        "golden files with no input (remove them, or run {REGENERATE}):\n  {}",
        stale.join("\n  ")
    );
}

#[test]
fn stale_golden_detection_finds_orphans_at_any_depth() {
    let base = std::env::temp_dir().join(format!("pogo-golden-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    for file in [
        "golden/cfgs/kept.plan.json",
        "golden/cfgs/gone.plan.json",
        "golden/errors/deep/gone.stderr",
    ] {
        let path = base.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }
    let expected = BTreeSet::from(["golden/cfgs/kept.plan.json".to_string()]);
    let stale = stale_files(&base, "golden", &expected);
    let _ = std::fs::remove_dir_all(&base);
    assert_eq!(
        stale,
        [
            "golden/cfgs/gone.plan.json",
            "golden/errors/deep/gone.stderr"
        ]
    );
}

fn golden_plans() -> Vec<String> {
    expected_goldens()
        .into_iter()
        .filter(|f| f.ends_with(".plan.json"))
        .filter(|f| root().join(f).exists())
        .collect()
}

/// A golden plan is a real plan file: it reads back to the same bytes, `pogo show` prints
/// exactly it, and its table is the one `pogo plan` printed (the human view is rendered from
/// the plan alone).
#[test]
fn golden_plans_round_trip_and_show_reproduces_them() {
    let mut report = Report::default();
    for golden in golden_plans() {
        let text = std::fs::read_to_string(root().join(&golden)).unwrap();
        match Plan::from_json(&text) {
            Err(e) => report.fail(format!("{golden} is not a valid plan: {e}")),
            Ok(plan) if plan.to_json() != text => report.fail(format!(
                "{golden} changes when read and written again (- file, + rewritten):\n{}",
                diff(&text, &plan.to_json())
            )),
            Ok(_) => {}
        }
        let args = [
            "show".to_string(),
            golden.clone(),
            "--format".to_string(),
            "json".to_string(),
        ];
        let output = pogo(&args);
        if !output.status.success() {
            report.fail(format!(
                "`pogo show {golden} --format json` failed:\n{}",
                self::text(&output.stderr, "stderr")
            ));
        } else if output.stdout != text.as_bytes() {
            report.fail(format!(
                "`pogo show {golden} --format json` does not reproduce the file (- file, + shown):\n{}",
                diff(&text, &self::text(&output.stdout, "stdout"))
            ));
        }
        let table_golden = golden.replace(".plan.json", ".table.txt");
        let Ok(table) = std::fs::read_to_string(root().join(&table_golden)) else {
            continue;
        };
        let output = pogo(&["show".to_string(), golden.clone()]);
        if output.stdout != table.as_bytes() {
            report.fail(format!(
                "`pogo show {golden}` does not print {table_golden} (- golden table, + shown):\n{}",
                diff(&table, &self::text(&output.stdout, "stdout"))
            ));
        }
    }
    report.finish("golden plans");
}

/// Graphs are drawn from the plan alone: `pogo show PLAN --format mermaid|dot` of the golden
/// plans named in [`GRAPHS`].
#[test]
fn golden_plans_render_as_mermaid_and_dot() {
    let mut report = Report::default();
    for name in GRAPHS {
        let plan = format!("{GOLDEN}/{name}.plan.json");
        assert!(
            expected_goldens().contains(&plan),
            "{plan}, named in GRAPHS, is not a golden plan"
        );
        for (format, extension) in [("mermaid", "mmd"), ("dot", "dot")] {
            let command = format!("pogo show {plan} --format {format}");
            let output = pogo(&["show", &plan, "--format", format].map(String::from));
            if !output.status.success() || !output.stderr.is_empty() {
                report.fail(format!(
                    "`{command}` should print a graph and nothing on stderr, but exited with {} \
                     and printed:\n{}",
                    output.status,
                    text(&output.stderr, "stderr")
                ));
                continue;
            }
            let golden = format!("{GOLDEN}/{name}.{extension}");
            report.check(&golden, &text(&output.stdout, "stdout"), &command);
        }
    }
    report.finish("graphs");
}

/// The same inputs give the same bytes: every case planned twice, in separate processes (so
/// with different hash seeds).
#[test]
fn planning_twice_gives_identical_bytes() {
    let mut report = Report::default();
    for case in cfg_cases().into_iter().chain(example_cases()) {
        let mut args = case.args.clone();
        args.extend(["-o".to_string(), "-".to_string()]);
        let first = pogo_plan(&args);
        let second = pogo_plan(&args);
        if first.stdout != second.stdout || first.stderr != second.stderr {
            report.fail(format!(
                "`{}` gave different output on a second run:\n{}",
                case.command_line(&["-o", "-"]),
                diff(
                    &text(&first.stdout, "stdout"),
                    &text(&second.stdout, "stdout")
                )
            ));
        }
    }
    report.finish("repeated plans");
}

#[test]
fn diff_shows_changed_lines_with_context() {
    let shown = diff("a\nb\nc\nd\ne\n", "a\nb\nX\nd\ne\n");
    assert_eq!(
        shown,
        "  @@ line 1\n    a\n    b\n  - c\n  + X\n    d\n    e\n"
    );
    assert!(diff("a\n", "a").contains("final newline"));
}

#[test]
fn shell_quoting_of_command_lines() {
    assert_eq!(shell_quote("t/cfgs/one.cfg"), "t/cfgs/one.cfg");
    assert_eq!(shell_quote("$colo.one"), "'$colo.one'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

// ---------------------------------------------------------------------------------------------
// `pogo simulate`
// ---------------------------------------------------------------------------------------------

/// `pogo simulate` cases: `t/simulate/NAME.args` holds the whole argument list after
/// `pogo simulate` (a golden plan, which is a real plan file, and options). A case named
/// `error-*` must fail; its golden is `simulate/NAME.stderr` (command, exit status, stderr).
/// Any other must succeed with nothing on stderr; its golden is what it printed:
/// `simulate/NAME.json` with `--format json`, `simulate/NAME.txt` otherwise.
const SIMULATIONS: &str = "t/simulate";

fn simulate_cases() -> Vec<Case> {
    stems(SIMULATIONS, "args")
        .into_iter()
        .map(|stem| Case {
            args: read_args(&root().join(SIMULATIONS).join(format!("{stem}.args"))),
            name: stem,
        })
        .collect()
}

fn simulate_golden(case: &Case) -> String {
    let extension = if case.name.starts_with("error-") {
        "stderr"
    } else if case
        .args
        .windows(2)
        .any(|w| w[0] == "--format" && w[1] == "json")
    {
        "json"
    } else {
        "txt"
    };
    format!("{GOLDEN}/simulate/{}.{extension}", case.name)
}

/// Every simulation is also run twice, in separate processes: the output is deterministic
/// (durations come from a seeded generator, never from a clock or a hash order).
#[test]
fn simulate_corpus() {
    let mut report = Report::default();
    let cases = simulate_cases();
    assert!(cases.len() > 5, "the corpus in {SIMULATIONS} is missing");
    for case in &cases {
        let command = case.command_line_of("simulate", &[]);
        let mut args = vec!["simulate".to_string()];
        args.extend(case.args.iter().cloned());
        let output = pogo(&args);
        let golden = simulate_golden(case);
        if case.name.starts_with("error-") {
            if output.status.success() || output.stderr.is_empty() {
                report.fail(format!(
                    "`{command}` should fail with a message, but exited with {}",
                    output.status
                ));
                continue;
            }
            let actual = format!(
                "$ {command}\nexit status: {}\n--- stderr\n{}",
                output
                    .status
                    .code()
                    .map_or("killed by a signal".to_string(), |c| c.to_string()),
                text(&output.stderr, "stderr")
            );
            report.check(&golden, &actual, &command);
            continue;
        }
        if !output.status.success() || !output.stderr.is_empty() {
            report.fail(format!(
                "`{command}` should simulate and print nothing on stderr, but exited with {} \
                 and printed:\n{}",
                output.status,
                text(&output.stderr, "stderr")
            ));
            continue;
        }
        let stdout = text(&output.stdout, "stdout");
        if golden.ends_with(".json") {
            let doc: serde_json::Value =
                serde_json::from_str(&stdout).expect("pogo simulate --format json prints JSON");
            assert_eq!(doc["format_version"], 1, "{command}");
        }
        if pogo(&args).stdout != output.stdout {
            report.fail(format!("`{command}` gave different output on a second run"));
        }
        report.check(&golden, &stdout, &command);
    }
    report.finish("simulations");
}
