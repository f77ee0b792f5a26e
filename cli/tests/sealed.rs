//! A plan runs as `pogo plan` wrote it and against the config it was made from: edited plans
//! are refused by `pogo apply` and `pogo simulate`, read with a warning by `pogo show`, and
//! named by `pogo validate --against`; stale plans are refused by a plain `pogo apply`; the
//! overrides work and the run records them; plans and runs of the previous release still work.
//! Each test runs pogo in a directory of its own, with the local transport.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const FLEET: &str = "\
tag:
  colo:
    east: [h1, h2]
    west: [h3]
sequence:
  - $colo.east
  - $colo.west
constraint:
  $colo:
    max_parallel: 1
";

/// A scratch directory, removed when the test ends.
struct Scratch(tempfile::TempDir);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = Scratch(tempfile::tempdir().unwrap());
        dir.write("fleet.cfg", FLEET);
        dir
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, file: &str, text: &str) {
        let path = self.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap()
    }

    fn pogo_in(&self, dir: &str, args: &[&str]) -> Out {
        let output = Command::new(env!("CARGO_BIN_EXE_pogo"))
            .args(args)
            .current_dir(self.path().join(dir))
            .env("NO_COLOR", "1")
            .env("POGO_STATE_DIR", self.path().join("state"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("pogo runs");
        Out {
            code: output.status.code().expect("pogo exits"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    fn pogo(&self, args: &[&str]) -> Out {
        self.pogo_in(".", args)
    }

    /// `pogo plan --config fleet.cfg -o FILE` with these flags.
    fn plan(&self, file: &str, flags: &[&str]) {
        let out = self.pogo(&[&["plan", "--config", "fleet.cfg", "-o", file], flags].concat());
        assert_eq!(out.code, 0, "pogo plan failed: {}", out.stderr);
    }

    fn plan_json(&self, file: &str) -> Value {
        serde_json::from_str(&self.read(file)).unwrap()
    }

    fn write_json(&self, file: &str, value: &Value) {
        self.write(file, &serde_json::to_string_pretty(value).unwrap());
    }

    fn runs(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.path().join("state/runs")) else {
            return Vec::new();
        };
        let mut runs: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        runs.sort();
        runs
    }

    /// The `run_started` events of the only run.
    fn run_started(&self) -> Vec<Value> {
        let runs = self.runs();
        assert_eq!(runs.len(), 1, "{runs:?}");
        std::fs::read_to_string(runs[0].join("journal.ndjson"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] == "run_started")
            .collect()
    }
}

/// Each hand edit of the issue that found them: the command, a limit raised, every edge
/// deleted, the job group deleted, a host added, an option changed. The keys the seal names.
type Tamper = (&'static str, fn(&mut Value), &'static str);

fn tampers() -> Vec<Tamper> {
    vec![
        (
            "command",
            |p| p["command"] = json!("rm -rf ./important"),
            "`command`",
        ),
        (
            "limit",
            |p| p["constraints"][1]["max_parallel"]["value"] = json!(1000),
            "`constraints`",
        ),
        ("edge", |p| p["edges"] = json!([]), "`edges`"),
        (
            "group",
            |p| {
                let groups = p["constraints"].as_array_mut().unwrap();
                groups.retain(|g| g["id"] != "job");
            },
            "`constraints`",
        ),
        (
            "host",
            |p| {
                for key in ["hosts", "unordered", "not_in_config"] {
                    p[key].as_array_mut().unwrap().push(json!("intruder"));
                }
            },
            "`hosts`, `not_in_config`, `unordered`",
        ),
        (
            "options",
            |p| p["options"]["retries"] = json!(5),
            "`options`",
        ),
    ]
}

#[test]
fn every_tamper_is_refused_by_apply_and_simulate_warned_by_show_and_named_by_against() {
    let dir = Scratch::new();
    dir.plan(
        "p.json",
        &["--command", "touch ran-$POGO_HOST", "--concurrent", "2"],
    );
    let sealed = dir.plan_json("p.json");
    for (what, tamper, keys) in tampers() {
        let mut edited = sealed.clone();
        tamper(&mut edited);
        dir.write_json("edited.json", &edited);
        let named = format!("the plan was edited after `pogo plan` wrote it: {keys}");

        let apply = dir.pogo(&["apply", "edited.json", "--transport", "local"]);
        assert_eq!(apply.code, 1, "{what}: {}", apply.stderr);
        assert!(
            apply.stderr.starts_with(&format!("error: {named}")),
            "{what}: {}",
            apply.stderr
        );
        assert!(apply.stderr.contains("--allow-edited"), "{}", apply.stderr);

        let simulate = dir.pogo(&["simulate", "edited.json"]);
        assert_eq!(simulate.code, 1, "{what}: {}", simulate.stderr);
        assert!(
            simulate.stderr.contains(&named),
            "{what}: {}",
            simulate.stderr
        );

        let show = dir.pogo(&["show", "edited.json"]);
        assert_eq!(show.code, 0, "{what}: {}", show.stderr);
        assert!(
            show.stderr.starts_with(&format!("warning: {named}")),
            "{}",
            show.stderr
        );

        let validate = dir.pogo(&["validate", "edited.json"]);
        assert_eq!(validate.code, 0, "{what}: {}", validate.stderr);
        assert!(
            validate.stdout.contains("EDITED after it was sealed"),
            "{}",
            validate.stdout
        );

        let against = dir.pogo(&["validate", "edited.json", "--against", "fleet.cfg"]);
        assert_eq!(against.code, 1, "{what}: {}", against.stdout);
        assert!(
            against.stderr.starts_with(&format!("error: {named}")),
            "{}",
            against.stderr
        );

        let diff = dir.pogo(&["diff", "p.json", "edited.json"]);
        assert!(diff.stderr.contains(&named), "{what}: {}", diff.stderr);
    }
    // Against its config, the content is compared too: what the config decides is named
    // even where the seal was made to match.
    let mut resealed = sealed.clone();
    resealed["edges"] = json!([]);
    let mut plan = pogo_model::Plan::from_json(&resealed.to_string()).unwrap();
    plan = plan.sealed();
    dir.write("resealed.json", &plan.to_json());
    let against = dir.pogo(&["validate", "resealed.json", "--against", "fleet.cfg"]);
    assert_eq!(against.code, 1);
    assert!(
        against.stderr.starts_with(
            "error: plan is stale: it is not what its inputs compile to today (`edges` key \
             differs)"
        ),
        "{}",
        against.stderr
    );
    let apply = dir.pogo(&["apply", "resealed.json", "--transport", "local"]);
    assert_eq!(apply.code, 1, "{}", apply.stderr);
    assert!(
        apply.stderr.contains("`edges` key differs"),
        "{}",
        apply.stderr
    );
    // Nothing ran.
    assert!(dir.runs().is_empty());
    assert!(!dir.path().join("ran-h1").exists());
}

#[test]
fn allow_edited_runs_the_plan_as_it_is_and_the_run_records_it() {
    let dir = Scratch::new();
    dir.plan("p.json", &["--command", "touch ran-$POGO_HOST"]);
    let mut edited = dir.plan_json("p.json");
    edited["command"] = json!("touch edited-$POGO_HOST");
    dir.write_json("edited.json", &edited);
    let apply = dir.pogo(&[
        "apply",
        "edited.json",
        "--transport",
        "local",
        "--allow-edited",
    ]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(
        apply
            .stderr
            .contains("used anyway because of --allow-edited"),
        "{}",
        apply.stderr
    );
    assert!(dir.path().join("edited-h3").exists());
    let started = dir.run_started();
    assert_eq!(started[0]["overrides"], json!(["allow-edited"]));
    // The run keeps the plan as it was given, edit and seal both.
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.runs()[0].join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(kept["command"], edited["command"]);
    assert_eq!(kept["seal"], edited["seal"]);
}

#[test]
fn a_plain_apply_refuses_a_plan_whose_config_changed_and_allow_stale_records_it() {
    let dir = Scratch::new();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    dir.plan("plans/p.json", &["--command", "touch ran-$POGO_HOST"]);
    // A host renamed after the plan was made.
    dir.write("fleet.cfg", &FLEET.replace("h3", "h3-new"));
    let apply = dir.pogo(&["apply", "plans/p.json", "--transport", "local"]);
    assert_eq!(apply.code, 1, "{}", apply.stderr);
    assert_eq!(
        apply.stderr,
        "error: plan is stale: config changed since the plan was written; run pogo plan again\n  \
         --> plans/p.json\n  = note: checked against fleet.cfg; to use it all the same, add \
         --allow-stale\n"
    );
    assert!(dir.runs().is_empty());

    // Found beside the plan file too, when pogo runs elsewhere.
    let elsewhere = dir.pogo_in("plans", &["apply", "p.json", "--transport", "local"]);
    assert_eq!(elsewhere.code, 0, "{}", elsewhere.stderr);
    assert!(
        elsewhere.stderr.contains(
            "warning: the plan's source `fleet.cfg` is not here (looked beside p.json and in \
             the current directory)"
        ),
        "{}",
        elsewhere.stderr
    );
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    dir.write("plans/fleet.cfg", &FLEET.replace("h1", "h1-new"));
    let beside = dir.pogo_in("plans", &["apply", "p.json", "--transport", "local"]);
    assert_eq!(beside.code, 1, "{}", beside.stderr);
    assert!(
        beside.stderr.contains("checked against fleet.cfg"),
        "{}",
        beside.stderr
    );
    std::fs::remove_file(dir.path().join("plans/fleet.cfg")).unwrap();

    let allowed = dir.pogo(&[
        "apply",
        "plans/p.json",
        "--transport",
        "local",
        "--allow-stale",
    ]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    assert!(
        allowed.stderr.starts_with("warning: plan is stale"),
        "{}",
        allowed.stderr
    );
    assert_eq!(dir.run_started()[0]["overrides"], json!(["allow-stale"]));

    // The same config again: fresh, and nothing recorded.
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    dir.write("fleet.cfg", FLEET);
    let fresh = dir.pogo(&["apply", "plans/p.json", "--transport", "local"]);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(!fresh.stderr.contains("warning"), "{}", fresh.stderr);
    assert_eq!(dir.run_started()[0].get("overrides"), None);
}

#[test]
fn a_plain_apply_does_not_run_inventory_commands_and_against_does() {
    let dir = Scratch::new();
    dir.write(
        "fleet.cfg",
        "tag:\n  east: !command touch asked; echo h1; echo h2\nsequence:\n  - $east\n",
    );
    dir.plan("p.json", &["--command", "true"]);
    std::fs::remove_file(dir.path().join("asked")).unwrap();
    let apply = dir.pogo(&["apply", "p.json", "--transport", "local"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(!dir.path().join("asked").exists());
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let against = dir.pogo(&[
        "apply",
        "p.json",
        "--transport",
        "local",
        "--against",
        "fleet.cfg",
    ]);
    assert_eq!(against.code, 0, "{}", against.stderr);
    assert!(dir.path().join("asked").exists());
}

/// A plan of the previous release (format 1, no seal) still runs, with a warning, and a run it
/// started, with its limits lowered into its `plan.json` as that release did, still resumes.
#[test]
fn plans_and_runs_of_the_previous_release_still_work() {
    let dir = Scratch::new();
    dir.plan(
        "p.json",
        &["--command", "test -e ok || test $POGO_HOST != h2"],
    );
    let mut old = dir.plan_json("p.json");
    old["format_version"] = json!(1);
    old.as_object_mut().unwrap().remove("seal");
    // The previous release wrote `--concurrent 1` into the run's plan.
    old["constraints"][0]["max_parallel"] = json!({"value": 1});
    dir.write_json("old.json", &old);

    let first = dir.pogo(&["apply", "old.json", "--transport", "local"]);
    assert_eq!(first.code, 4, "{}", first.stderr);
    assert!(
        first.stderr.contains("warning: plan format 1 has no seal"),
        "{}",
        first.stderr
    );
    // The run as the previous release left it: its plan.json of format 1, a run.json without
    // limits or overrides.
    let run = dir.runs()[0].clone();
    std::fs::write(
        run.join("plan.json"),
        serde_json::to_string_pretty(&old).unwrap(),
    )
    .unwrap();
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json.get("limits"), None);

    dir.write("ok", "");
    let resumed = dir.pogo(&["apply", "--resume", "last", "--retry-failed"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let started = dir.run_started();
    assert_eq!(started.len(), 2);
    assert_eq!(started[1]["resumed"], json!(true));
}

/// `pogo plan -o /dev/null` renamed its temporary file over /dev/null, turning the device into
/// a regular file (as root). A path that is not a regular file is written to in place; a named
/// pipe stands in for the device here.
#[test]
fn a_plan_written_to_a_device_or_a_pipe_leaves_it_as_it_was() {
    let dir = Scratch::new();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = dir.pogo(&["plan", "--config", "fleet.cfg", "-o", "pipe"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Checked before the reader is joined: a pipe replaced by a file has no writer.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    let plan = reader.join().unwrap();
    assert!(plan.starts_with("{\n  \"format_version\": 2"), "{plan}");
}
