//! Running part of a plan: `pogo apply --only HOSTS` (the rest skipped, order and limits the
//! whole plan's, the choice in the journal) and `--resume RUN --retry-failed=HOST,...`.

mod common;

use common::{pogo_in as pogo, read_spans};

/// Records each host's start and end in `rec/HOST`; fails while `fail-HOST` exists (at
/// once, without its 0.3 s, while `fail-now-HOST` does).
const REC: &str = r#"d="$(dirname "$0")"
echo "start $(date +%s%N)" >> "$d/rec/$POGO_HOST"
[ ! -e "$d/fail-now-$POGO_HOST" ] || { echo "end $(date +%s%N)" >> "$d/rec/$POGO_HOST"; exit 4; }
sleep 0.3
echo "end $(date +%s%N)" >> "$d/rec/$POGO_HOST"
[ ! -e "$d/fail-$POGO_HOST" ] || exit 3
"#;

/// Two databases, then four web hosts, `web_limit` of them at once.
fn config(web_limit: u32) -> String {
    format!(
        "tag:\n  web: w[1-4]\n  db: [d1, d2]\nsequence:\n  - $db\n  - $web\n\
         constraint:\n  $web:\n    max_parallel: {web_limit}\n"
    )
}

fn setup(d: &std::path::Path, web_limit: u32, extra: &[&str]) {
    std::fs::write(d.join("rec.sh"), REC).unwrap();
    std::fs::create_dir(d.join("rec")).unwrap();
    std::fs::write(d.join("fleet.cfg"), config(web_limit)).unwrap();
    let command = format!("sh {}/rec.sh", d.display());
    let mut args = vec![
        "plan",
        "--config",
        "fleet.cfg",
        "--command",
        &command,
        "-o",
        "p.json",
    ];
    args.extend_from_slice(extra);
    pogo(d, &args).expect(0);
}

fn journal(d: &std::path::Path) -> Vec<serde_json::Value> {
    let runs = std::fs::read_dir(d.join(".pogo/runs")).unwrap();
    let dir = runs.map(|e| e.unwrap().path()).next().unwrap();
    std::fs::read_to_string(dir.join("journal.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn only_runs_the_subset_in_the_plans_order_and_limits_and_resume_runs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, 2, &[]);
    let unknown = pogo(
        d,
        &[
            "apply",
            "p.json",
            "--transport",
            "local",
            "--only",
            "w1,w9,x",
        ],
    );
    assert_eq!(unknown.code(), 1);
    assert!(
        unknown
            .stderr()
            .contains("--only names 2 hosts that the plan does not have: w9, x"),
        "{}",
        unknown.stderr()
    );
    assert!(!d.join(".pogo/runs").exists() || journal(d).is_empty());

    let run = pogo(
        d,
        &[
            "apply",
            "p.json",
            "--transport",
            "local",
            "--only",
            "w[1-3],d1",
        ],
    );
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    assert!(run
        .stderr()
        .contains("Running only 4 hosts of the plan's 6 (--only)"));
    assert!(
        run.stdout()
            .contains("Succeeded: 4 succeeded, 2 skipped (6 hosts)"),
        "{}",
        run.stdout()
    );
    let spans = read_spans(&d.join("rec"));
    assert_eq!(
        spans.keys().collect::<Vec<_>>(),
        ["d1", "w1", "w2", "w3"],
        "{spans:?}"
    );
    // The whole plan's order: the web hosts after the databases chosen (d1) ended.
    let d1_end = spans["d1"][0].1;
    for web in ["w1", "w2", "w3"] {
        assert!(
            spans[web][0].0 > d1_end,
            "{web} started before d1 ended: {spans:?}"
        );
    }
    // The whole plan's limit: at most 2 of $web at once, and 2 did run together.
    let mut moments: Vec<(u128, i32)> = ["w1", "w2", "w3"]
        .iter()
        .flat_map(|w| [(spans[*w][0].0, 1), (spans[*w][0].1, -1)])
        .collect();
    moments.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, step) in moments {
        now += step;
        peak = peak.max(now);
    }
    assert_eq!(peak, 2, "{spans:?}");
    // The journal records the choice and the hosts it left out.
    let events = journal(d);
    assert_eq!(
        events[0]["only"],
        serde_json::json!(["d1", "w1", "w2", "w3"])
    );
    assert_eq!(events[1]["event"], "hosts_skipped");
    assert_eq!(events[1]["hosts"], serde_json::json!(["d2", "w4"]));
    pogo(d, &["audit", "last"]).expect(0);

    // A resume without --only runs the rest, and nothing twice.
    let rest = pogo(d, &["apply", "--resume", "last"]);
    assert_eq!(rest.code(), 0, "{}{}", rest.stdout(), rest.stderr());
    let spans = read_spans(&d.join("rec"));
    assert_eq!(spans.len(), 6, "{spans:?}");
    assert!(spans.values().all(|s| s.len() == 1), "{spans:?}");
    assert!(journal(d)
        .iter()
        .filter(|e| e["event"] == "run_started")
        .all(|e| e.get("only").is_none() || e["resumed"] == false));
    pogo(d, &["audit", "last"]).expect(0);
}

#[test]
fn retry_failed_with_hosts_runs_those_again_and_leaves_the_other_failed_hosts_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two failed web hosts stay down and leave room for one more of $web.
    setup(d, 3, &["--max-failures", "3"]);
    for host in ["w2", "w3"] {
        std::fs::write(d.join(format!("fail-{host}")), "").unwrap();
    }
    pogo(d, &["apply", "p.json", "--transport", "local"]).expect(3);
    std::fs::remove_file(d.join("fail-w2")).unwrap();
    std::fs::remove_file(d.join("fail-w3")).unwrap();

    let refused = pogo(d, &["apply", "--resume", "last", "--retry-failed=w1,zz"]);
    assert_eq!(refused.code(), 1);
    let text = refused.stderr();
    assert!(text.contains("has no host `zz`"), "{text}");
    assert!(text.contains("host `w1` succeeded"), "{text}");

    let retried = pogo(d, &["apply", "--resume", "last", "--retry-failed=w2"]);
    // w3 still failed: the run's result is still "some failed".
    assert_eq!(
        retried.code(),
        3,
        "{}{}",
        retried.stdout(),
        retried.stderr()
    );
    assert!(
        retried
            .stderr()
            .contains("Running again (--retry-failed=...): w2."),
        "{}",
        retried.stderr()
    );
    let spans = read_spans(&d.join("rec"));
    assert_eq!(spans["w2"].len(), 2, "{spans:?}");
    assert_eq!(spans["w3"].len(), 1, "{spans:?}");
    assert_eq!(spans["w1"].len(), 1, "{spans:?}");
    pogo(d, &["audit", "last"]).expect(0);

    // The bare flag keeps its meaning: every failed host.
    let all = pogo(d, &["apply", "--resume", "last", "--retry-failed"]);
    assert_eq!(all.code(), 0, "{}{}", all.stdout(), all.stderr());
    assert_eq!(read_spans(&d.join("rec"))["w3"].len(), 2);
    let audit = pogo(d, &["audit", "last"]);
    audit.expect(0);
    assert!(
        audit.stdout().contains(": 3 sessions,"),
        "{}",
        audit.stdout()
    );
}

#[test]
fn retry_failed_with_only_is_not_stopped_by_the_failures_it_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two web hosts at a time (w1 and w2), and the first failure stops the run: w2 fails,
    // w3 and w4 never run.
    setup(d, 2, &[]);
    std::fs::write(d.join("fail-now-w2"), "").unwrap();
    pogo(d, &["apply", "p.json", "--transport", "local"]).expect(4);
    assert!(!d.join("rec/w3").exists());
    // Retrying what failed, but only for w3 (not run yet): w2's failure is left out and
    // does not stop the session before it starts.
    let only = pogo(
        d,
        &[
            "apply",
            "--resume",
            "last",
            "--retry-failed",
            "--only",
            "w3",
        ],
    );
    // w3 ran; w2 stays failed (exit 3), w4 was left out.
    assert_eq!(only.code(), 3, "{}{}", only.stdout(), only.stderr());
    let spans = read_spans(&d.join("rec"));
    assert_eq!(spans["w3"].len(), 1, "{spans:?}");
    assert_eq!(spans["w2"].len(), 1, "{spans:?}");
    assert!(!spans.contains_key("w4"), "{spans:?}");
    pogo(d, &["audit", "last"]).expect(0);
}
