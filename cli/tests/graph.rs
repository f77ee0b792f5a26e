//! The dot output is real Graphviz: every golden plan, a plan of 500 slots and names that
//! need escaping go through `dot -Tsvg`. Graphviz is required (`.ci/run` installs it); the
//! tests fail rather than skip without it, so a green run means the check ran.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate is inside the workspace")
        .to_path_buf()
}

fn pogo(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pogo"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("pogo runs")
}

/// `dot -Tsvg` of `text`: the SVG, or what dot said.
fn dot_svg(text: &str) -> Result<String, String> {
    let mut child = match Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run Graphviz's `dot` ({e}): these tests need it; install it with \
             `apt-get install -y graphviz` (.ci/run does)"
        ),
    };
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("dot runs");
    writer.join().unwrap().expect("dot reads its input");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // dot warns on stderr about text it does not like and exits 0 all the same: a warning
    // is a failure here.
    if !output.status.success() || !stderr.is_empty() {
        return Err(format!("dot exited with {}: {stderr}", output.status));
    }
    let svg = String::from_utf8(output.stdout).expect("SVG is UTF-8");
    if !svg.trim_end().ends_with("</svg>") {
        return Err(format!("dot wrote no SVG:\n{svg}"));
    }
    Ok(svg)
}

/// `pogo show PLAN --format dot`, checked.
fn show_dot(plan: &Path, dir: &Path) -> String {
    let output = pogo(&["show", plan.to_str().unwrap(), "--format", "dot"], dir);
    assert!(
        output.status.success(),
        "pogo show {} --format dot failed: {}",
        plan.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("dot text is UTF-8")
}

fn golden_plans() -> Vec<PathBuf> {
    let mut plans = Vec::new();
    let mut pending = vec![root().join("tests/golden")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("the golden directory exists") {
            let path = entry.expect("a readable directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(".plan.json") {
                plans.push(path);
            }
        }
    }
    plans.sort();
    plans
}

#[test]
fn dot_accepts_the_graph_of_every_golden_plan() {
    let plans = golden_plans();
    assert!(plans.len() > 10, "the golden plans are missing");
    let mut failures = Vec::new();
    for plan in &plans {
        if let Err(problem) = dot_svg(&show_dot(plan, &root())) {
            failures.push(format!("{}: {problem}", plan.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "dot refused {} graphs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn dot_keeps_names_with_special_characters_whole() {
    let plan = root().join("tests/golden/cfgs/names-special-characters.plan.json");
    let svg = dot_svg(&show_dot(&plan, &root())).unwrap();
    // SVG escapes for XML what dot drew; a name cut by an unescaped quote or eaten as a dot
    // escape (`\s`) would not be there whole.
    for drawn in [
        "q&quot;uote&lt;x&gt;",
        "back\\slash$$",
        "hash#35;",
        "amp&amp;lt;",
        "tick`s",
        "t&quot;2 &lt;&amp;&gt;",
    ] {
        assert!(svg.contains(drawn), "{drawn} is not in the SVG:\n{svg}");
    }
}

#[test]
fn dot_draws_a_plan_of_500_slots_and_106_groups() {
    // bench/gen-fleet.py's shape with 2 hosts per role and colo: 5 threads of 100 slots,
    // a limit per colo and per role, and the job-wide limit.
    let dir = std::env::temp_dir().join(format!("pogo-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let roles = ["web", "api", "db", "cache", "queue"];
    let colos: Vec<String> = (1..=100).map(|c| format!("c{c:03}")).collect();
    let mut config = String::from("tag:\n  colo:\n");
    for colo in &colos {
        config.push_str(&format!("    {colo}:\n"));
        for role in roles {
            config.push_str(&format!("      - {role}-{colo}-[1-2]\n"));
        }
    }
    config.push_str("  role:\n");
    for role in roles {
        config.push_str(&format!("    {role}:\n"));
        for colo in &colos {
            config.push_str(&format!("      - {role}-{colo}-[1-2]\n"));
        }
    }
    config.push_str("sequence:\n");
    for role in roles {
        config.push_str(&format!("  $role.{role}:\n"));
        for colo in &colos {
            config.push_str(&format!("    - $colo.{colo}\n"));
        }
    }
    config
        .push_str("constraint:\n  $colo:\n    max_parallel: 10%\n  $role:\n    max_parallel: 2%\n");
    std::fs::write(dir.join("fleet.cfg"), config).unwrap();
    let planned = pogo(
        &["plan", "--config", "fleet.cfg", "-o", "fleet.plan.json"],
        &dir,
    );
    assert!(
        planned.status.success(),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    let text = show_dot(Path::new("fleet.plan.json"), &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let nodes = |prefix: &str| {
        text.lines()
            .filter(|l| {
                l.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count()
    };
    let (slots, groups) = (nodes("    s"), nodes("    g"));
    assert_eq!((slots, groups), (500, 106));
    assert!(text.len() < 100_000, "{} bytes of dot", text.len());
    let started = std::time::Instant::now();
    dot_svg(&text).unwrap();
    // Not a benchmark: a layout that took minutes would make the output useless in practice.
    assert!(
        started.elapsed().as_secs() < 60,
        "dot took {:?}",
        started.elapsed()
    );
}
