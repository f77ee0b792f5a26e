//! Stale plans are refused: `pogo validate PLAN --against SPEC_OR_CONFIG` after the config,
//! the hosts behind its tags or the plan spec changed, in a directory of the test's own.
//! Commands run in that directory with relative paths, so the messages are compared whole.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pogo-stale-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.0.join(file), text).unwrap();
    }

    /// Runs pogo here: (exit status, stdout, stderr).
    fn pogo(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_pogo"))
            .args(args)
            .current_dir(&self.0)
            .env("NO_COLOR", "1")
            .output()
            .expect("pogo runs");
        (
            output.status.code().expect("pogo exits"),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }

    fn plan(&self, args: &[&str]) {
        let (code, _, stderr) = self.pogo(&[&["plan"], args].concat());
        assert_eq!(code, 0, "pogo plan failed: {stderr}");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn triple() -> String {
    std::fs::read_to_string(root().join("t/cfgs/triple.cfg")).unwrap()
}

#[test]
fn a_plan_whose_config_changed_is_refused_and_an_unchanged_one_accepted() {
    let dir = Scratch::new("config");
    dir.write("fleet.cfg", &triple());
    dir.plan(&[
        "--config",
        "fleet.cfg",
        "--command",
        "uptime",
        "-o",
        "fleet.plan.json",
    ]);

    let fresh = dir.pogo(&["validate", "fleet.plan.json", "--against", "fleet.cfg"]);
    assert_eq!(
        fresh,
        (
            0,
            "ok: fleet.plan.json (plan, 9 hosts, up to date with fleet.cfg)\n".to_string(),
            String::new()
        )
    );

    // host9 moves from colo three to colo two.
    let moved = triple()
        .replace("      - host6\n", "      - host6\n      - host9\n")
        .replace("      - host8\n      - host9\n", "      - host8\n");
    dir.write("fleet.cfg", &moved);
    let stale = dir.pogo(&["validate", "fleet.plan.json", "--against", "fleet.cfg"]);
    assert_eq!(
        stale,
        (
            1,
            String::new(),
            "error: plan is stale: config changed since the plan was written; run pogo plan \
             again\n  --> fleet.plan.json\n  = note: checked against fleet.cfg; to use it all \
             the same, add --allow-stale\n\n1 of 1 plan refused\n"
                .to_string()
        )
    );
}

#[test]
fn allow_stale_turns_the_refusal_into_a_warning() {
    let dir = Scratch::new("allow");
    dir.write("fleet.cfg", &triple());
    dir.plan(&["--config", "fleet.cfg", "-o", "fleet.plan.json"]);
    dir.write("fleet.cfg", &format!("{}# reviewed\n", triple()));
    let allowed = dir.pogo(&[
        "validate",
        "fleet.plan.json",
        "--against",
        "fleet.cfg",
        "--allow-stale",
    ]);
    assert_eq!(
        allowed,
        (
            0,
            "ok: fleet.plan.json (plan, 9 hosts, stale against fleet.cfg, allowed by \
             --allow-stale)\n"
                .to_string(),
            "warning: plan is stale: config changed since the plan was written; run pogo plan \
             again\n  --> fleet.plan.json\n  = note: checked against fleet.cfg; used anyway \
             because of --allow-stale\n"
                .to_string()
        )
    );
    // The flag only means something with --against.
    let (code, _, stderr) = dir.pogo(&["validate", "fleet.plan.json", "--allow-stale"]);
    assert_eq!(code, 64, "{stderr}");
}

#[test]
fn hosts_from_an_inventory_command_that_changed_make_the_plan_stale() {
    let dir = Scratch::new("inventory");
    dir.write(
        "fleet.cfg",
        "tag:\n  colo:\n    east: !command cat east.hosts\n    west: [w1, w2]\nsequence:\n  \
         - $colo.east\n  - $colo.west\n",
    );
    dir.write("east.hosts", "e1\ne2\n");
    dir.plan(&["--config", "fleet.cfg", "-o", "fleet.plan.json"]);
    let (code, _, stderr) = dir.pogo(&["validate", "fleet.plan.json", "--against", "fleet.cfg"]);
    assert_eq!(code, 0, "{stderr}");

    // The config's text is the same; the inventory behind `$colo.east` is not.
    dir.write("east.hosts", "e1\ne3\n");
    let stale = dir.pogo(&["validate", "fleet.plan.json", "--against", "fleet.cfg"]);
    assert_eq!(
        stale,
        (
            1,
            String::new(),
            "error: plan is stale: the hosts behind the config's tags changed since the plan \
             was written (`$colo.east` gained 1 host and lost 1); run pogo plan again\n  --> \
             fleet.plan.json\n  = note: checked against fleet.cfg; to use it all the same, add \
             --allow-stale\n\n1 of 1 plan refused\n"
                .to_string()
        )
    );
}

#[test]
fn a_plan_spec_asking_for_something_else_makes_the_plan_stale() {
    let dir = Scratch::new("spec");
    dir.write("fleet.cfg", &triple());
    let spec = "config: fleet.cfg\ntargets: [$colo.one]\ncommand: uptime\n";
    dir.write("job.yaml", spec);
    dir.plan(&["job.yaml", "-o", "job.plan.json"]);
    let fresh = dir.pogo(&["validate", "job.plan.json", "--against", "job.yaml"]);
    assert_eq!(fresh.0, 0, "{}", fresh.2);
    assert_eq!(
        fresh.1,
        "ok: job.plan.json (plan, 3 hosts, up to date with job.yaml)\n"
    );

    // A comment in the spec changes nothing that runs.
    dir.write("job.yaml", &format!("# reviewed by ops\n{spec}"));
    let (code, _, stderr) = dir.pogo(&["validate", "job.plan.json", "--against", "job.yaml"]);
    assert_eq!(code, 0, "{stderr}");

    dir.write(
        "job.yaml",
        &spec
            .replace("[$colo.one]", "[$colo.one, host4]")
            .replace("uptime", "reboot"),
    );
    let (code, stdout, stderr) = dir.pogo(&["validate", "job.plan.json", "--against", "job.yaml"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        stderr.starts_with(
            "error: plan is stale: the plan spec changed since the plan was written (targets, \
             command); run pogo plan again\n"
        ),
        "{stderr}"
    );
    // Against its config alone, the plan is fresh: the config did not change.
    let (code, _, stderr) = dir.pogo(&["validate", "job.plan.json", "--against", "fleet.cfg"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn each_plan_is_checked_and_every_refusal_reported() {
    let dir = Scratch::new("several");
    dir.write("fleet.cfg", &triple());
    dir.plan(&["--config", "fleet.cfg", "-o", "old.plan.json"]);
    dir.write("fleet.cfg", &triple().replace("host9", "host10"));
    dir.plan(&["--config", "fleet.cfg", "-o", "new.plan.json"]);
    let (code, stdout, stderr) = dir.pogo(&[
        "validate",
        "old.plan.json",
        "new.plan.json",
        "--against",
        "fleet.cfg",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        "ok: new.plan.json (plan, 9 hosts, up to date with fleet.cfg)\n"
    );
    assert!(stderr.contains("  --> old.plan.json\n"), "{stderr}");
    assert!(stderr.ends_with("\n1 of 2 plans refused\n"), "{stderr}");
}

#[test]
fn against_takes_a_config_or_a_spec_and_checks_only_plans() {
    let dir = Scratch::new("kinds");
    dir.write("fleet.cfg", &triple());
    dir.plan(&["--config", "fleet.cfg", "-o", "fleet.plan.json"]);
    let (code, _, stderr) = dir.pogo(&[
        "validate",
        "fleet.plan.json",
        "--against",
        "fleet.plan.json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: --against takes the config or plan spec a plan was made from, and \
         `fleet.plan.json` is a plan\n"
    );
    let (code, _, stderr) = dir.pogo(&["validate", "fleet.cfg", "--against", "fleet.cfg"]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(
            "error: `fleet.cfg` is not a plan file: with --against, every file is a plan to \
             check\n"
        ),
        "{stderr}"
    );
}

#[test]
fn an_inventory_that_cannot_be_read_is_an_error_not_a_verdict() {
    let dir = Scratch::new("broken");
    dir.write("fleet.cfg", "tag:\n  east: !command cat east.hosts\n");
    dir.write("east.hosts", "e1\n");
    dir.plan(&["--config", "fleet.cfg", "-o", "fleet.plan.json"]);
    std::fs::remove_file(dir.0.join("east.hosts")).unwrap();
    let (code, _, stderr) = dir.pogo(&["validate", "fleet.plan.json", "--against", "fleet.cfg"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cat east.hosts"), "{stderr}");
    assert!(!stderr.contains("stale"), "{stderr}");
}
