//! The operator's defaults: each from its flag, else its variable, else `[defaults]` in the
//! client config file, else pogo's built-in value; shown by `pogo config`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{pogo_command, Run};

/// `pogo ARGS` in `dir` with a home of its own (`dir/home`, which may hold
/// `.config/pogo/client.toml`) and these variables.
fn pogo(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command: Command = pogo_command(dir, args);
    command
        .env("HOME", dir.join("home"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("POGO_CLIENT_CONFIG");
    for name in [
        "POGO_CONCURRENT",
        "POGO_TIMEOUT",
        "POGO_SSH_USER",
        "POGO_SSH_IDENTITY",
        "POGO_KNOWN_HOSTS",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    Run(command.output().unwrap())
}

fn write_client_config(dir: &Path, text: &str) {
    let file = dir.join("home/.config/pogo/client.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

/// The job-wide limit of a plan made here of 50 hosts.
fn planned_limit(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> u64 {
    let mut args = vec![
        "plan",
        "--targets",
        "h[01-50]",
        "--command",
        "true",
        "-o",
        "p.json",
    ];
    args.extend_from_slice(extra);
    pogo(dir, env, &args).expect(0);
    job_limit(&dir.join("p.json"))
}

/// The job-wide limit a plan file records.
fn job_limit(plan: &Path) -> u64 {
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plan).unwrap()).unwrap();
    let job = plan["constraints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "job")
        .unwrap();
    job["max_parallel"]["value"].as_u64().unwrap()
}

fn config_row(dir: &Path, env: &[(&str, &str)], key: &str) -> (String, String) {
    let shown = pogo(dir, env, &["config", "--json"]);
    shown.expect(0);
    let json: serde_json::Value = serde_json::from_str(&shown.stdout()).unwrap();
    let row = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap();
    (
        row["value"].as_str().unwrap_or("").to_string(),
        row["from"].as_str().unwrap().to_string(),
    )
}

#[test]
fn concurrent_comes_from_the_built_in_value_without_a_file_or_variable() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(planned_limit(dir.path(), &[], &[]), 32);
    assert_eq!(
        config_row(dir.path(), &[], "concurrent"),
        ("32".into(), "built-in".into())
    );
}

#[test]
fn the_client_config_file_beats_the_built_in_value() {
    let dir = tempfile::tempdir().unwrap();
    write_client_config(dir.path(), "[defaults]\nconcurrent = 7\ntimeout = \"2m\"\n");
    assert_eq!(planned_limit(dir.path(), &[], &[]), 7);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("p.json")).unwrap()).unwrap();
    assert_eq!(plan["options"]["timeout"], 120);
    let (value, from) = config_row(dir.path(), &[], "concurrent");
    assert_eq!(value, "7");
    assert!(from.ends_with("home/.config/pogo/client.toml"), "{from}");
}

#[test]
fn the_environment_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_client_config(dir.path(), "[defaults]\nconcurrent = 7\n");
    let env = [("POGO_CONCURRENT", "5")];
    assert_eq!(planned_limit(dir.path(), &env, &[]), 5);
    assert_eq!(
        config_row(dir.path(), &env, "concurrent"),
        ("5".into(), "$POGO_CONCURRENT".into())
    );
}

#[test]
fn a_flag_beats_the_environment_and_a_plan_spec_keeps_its_own_options() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_client_config(d, "[defaults]\nconcurrent = 7\n");
    let env = [("POGO_CONCURRENT", "5")];
    assert_eq!(planned_limit(d, &env, &["--concurrent", "3"]), 3);
    // A reviewed spec that says nothing of concurrency gets pogo's default, not this
    // operator's.
    std::fs::write(d.join("fleet.cfg"), "tag:\n  web: h[01-50]\n").unwrap();
    std::fs::write(
        d.join("spec.yaml"),
        "config: fleet.cfg\ncommand: \"true\"\n",
    )
    .unwrap();
    pogo(d, &env, &["plan", "spec.yaml", "-o", "s.json"]).expect(0);
    assert_eq!(job_limit(&d.join("s.json")), 32);
}

#[test]
fn run_defaults_reach_new_ssh_runs_and_the_state_dir_and_a_bad_value_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_client_config(
        d,
        "[defaults]\nuser = \"deploy\"\nknown_hosts = \"accept-new\"\nstate_dir = \"../../runs\"\n",
    );
    pogo(
        d,
        &[],
        &[
            "plan",
            "--targets",
            "127.0.0.1",
            "--command",
            "true",
            "-o",
            "p.json",
        ],
    )
    .expect(0);
    // Port 1 refuses at once: the run ends unreachable, its spec written.
    let env = [("POGO_KNOWN_HOSTS", "off")];
    let run = pogo(d, &env, &["apply", "p.json", "--port", "1"]);
    assert_ne!(run.code(), 0);
    // state_dir is relative to the file's directory: home/.config/pogo/../../runs = home/runs.
    let runs: Vec<_> = std::fs::read_dir(d.join("home/runs/runs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].path().join("run.json")).unwrap())
            .unwrap();
    let transport = &spec["transport"];
    assert_eq!(transport["user"], "deploy", "{spec}");
    assert_eq!(
        transport["known_hosts"], "off",
        "the variable beats the file: {spec}"
    );
    assert!(!d.join(".pogo").exists());
    // `pogo runs` looks in the same place.
    let id = runs[0].file_name().to_string_lossy().into_owned();
    assert!(pogo(d, &[], &["runs"]).stdout().contains(&id));

    let bad = pogo(
        d,
        &[("POGO_KNOWN_HOSTS", "sometimes")],
        &["apply", "p.json", "--port", "1"],
    );
    assert_eq!(bad.code(), 1);
    assert!(
        bad.stderr()
            .contains("invalid known_hosts `sometimes` from $POGO_KNOWN_HOSTS"),
        "{}",
        bad.stderr()
    );
}
