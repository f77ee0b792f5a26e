//! Ad-hoc runs, the pssh habit: `pogo run --targets 'web[01-04]' --command ...` with no
//! config makes a plan of the targets alone, unordered, under the job-wide limit.

mod common;

use common::{pogo_in as pogo, read_spans};

/// Records each host's start and end in `rec/HOST`, as the apply tests do.
const REC: &str = r#"rec="$(dirname "$0")/rec/$POGO_HOST"
echo "start $(date +%s%N)" >> "$rec"
sleep 0.3
echo "end $(date +%s%N)" >> "$rec"
"#;

#[test]
fn targets_alone_make_a_plan_run_under_the_job_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("rec.sh"), REC).unwrap();
    std::fs::create_dir(d.join("rec")).unwrap();
    let command = format!("sh {}/rec.sh", d.display());
    let run = pogo(
        d,
        &[
            "run",
            "--targets",
            "web[01-05]",
            "--concurrent",
            "2",
            "--command",
            &command,
            "--transport",
            "local",
            "--yes",
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let schedule = run.stdout();
    assert!(!schedule.contains("not in the config"), "{schedule}");
    let spans = read_spans(&d.join("rec"));
    assert_eq!(spans.len(), 5, "{spans:?}");
    // At most 2 at once.
    let mut edges: Vec<(u128, i32)> = spans
        .values()
        .flatten()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    edges.sort();
    let (mut open, mut most) = (0, 0);
    for (_, delta) in edges {
        open += delta;
        most = most.max(open);
    }
    assert_eq!(most, 2, "{spans:?}");

    // The same as a plan file: it records no config, and applies without a stale warning.
    pogo(
        d,
        &[
            "plan",
            "--targets",
            "db1,db2",
            "--command",
            "true",
            "-o",
            "db.json",
        ],
    )
    .expect(0);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("db.json")).unwrap()).unwrap();
    assert_eq!(plan["source"]["config"], "none");
    assert_eq!(plan["hosts"], serde_json::json!(["db1", "db2"]));
    let applied = pogo(d, &["apply", "db.json", "--transport", "local"]);
    assert_eq!(applied.code(), 0, "{}", applied.stderr());
    assert!(
        !applied.stderr().contains("warning"),
        "{}",
        applied.stderr()
    );

    // Neither a config, a spec nor targets: what to give is said.
    let refused = pogo(d, &["plan", "--command", "true"]);
    assert_eq!(refused.code(), 64);
    assert!(
        refused.stderr().contains("--config"),
        "{}",
        refused.stderr()
    );
}

#[test]
fn nothing_to_plan_names_the_three_ways_to_give_it() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["plan", "run"] {
        let refused = pogo(dir.path(), &[command]);
        assert_eq!(refused.code(), 64, "{}", refused.stderr());
        let text = refused.stderr();
        for way in ["plan spec", "--config FILE", "--targets LIST"] {
            assert!(text.contains(way), "`pogo {command}`: {text}");
        }
        assert!(!text.contains("required"), "{text}");
    }
}

#[test]
fn a_config_without_tags_is_checked_as_a_config_not_as_a_plan_spec() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sequence.cfg"), "sequence:\n  - $web\n").unwrap();
    std::fs::write(d.join("constraint.cfg"), "constraint:\n  $web: 1\n").unwrap();
    std::fs::write(d.join("spec.yaml"), "config: fleet.cfg\nsequence: 1\n").unwrap();
    let checked = pogo(d, &["validate", "sequence.cfg", "constraint.cfg"]);
    assert_eq!(checked.code(), 1);
    let text = checked.stderr();
    assert_eq!(
        text.matches("the config has no `tag:` section").count(),
        2,
        "{text}"
    );
    assert!(!text.contains("plan spec"), "{text}");
    // A spec that names its config stays a spec, whatever else it says.
    let spec = pogo(d, &["validate", "spec.yaml"]);
    assert!(
        spec.stderr().contains("in the plan spec"),
        "{}",
        spec.stderr()
    );
}
