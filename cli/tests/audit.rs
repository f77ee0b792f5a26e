//! `pogo audit`: a real run's journal checked against its plan, and the same journal edited
//! by hand to break a limit and the order.

mod common;

use common::pogo_in as pogo;

const CONFIG: &str = "tag:
  web: [w1, w2, w3]
  db: [d1, d2]
sequence:
  - $db
  - $web
constraint:
  $web:
    max_parallel: 1
";

/// A finished local run of CONFIG in a new directory, and its journal's path.
fn finished_run(d: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(d.join("fleet.cfg"), CONFIG).unwrap();
    let run = pogo(
        d,
        &[
            "run",
            "--config",
            "fleet.cfg",
            "--transport",
            "local",
            "--command",
            "sleep 0.1",
            "--yes",
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let runs = std::fs::read_dir(d.join(".pogo/runs")).unwrap();
    let dir = runs.map(|e| e.unwrap().path()).next().unwrap();
    dir.join("journal.ndjson")
}

fn journal_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn line_of(lines: &[String], event: &str, host: &str) -> usize {
    lines
        .iter()
        .position(|l| {
            l.contains(&format!("\"event\":\"{event}\""))
                && l.contains(&format!("\"host\":\"{host}\""))
        })
        .unwrap_or_else(|| panic!("no {event} of {host} in:\n{}", lines.join("\n")))
}

#[test]
fn a_real_run_passes_and_prints_each_groups_peak() {
    let dir = tempfile::tempdir().unwrap();
    finished_run(dir.path());
    let audit = pogo(dir.path(), &["audit", "last"]);
    assert_eq!(audit.code(), 0, "{}{}", audit.stdout(), audit.stderr());
    let text = audit.stdout();
    let web = text.lines().find(|l| l.contains("$web")).expect(&text);
    let cells: Vec<&str> = web.split('┆').map(str::trim).collect();
    assert_eq!(cells[1], "1", "{web}");
    assert_eq!(cells[2], "1", "the peak: {web}");
    assert!(text.contains("1 order edge"), "{text}");
    assert!(text.contains("5 succeeded"), "{text}");
    assert!(
        text.contains("OK: the record agrees with the plan"),
        "{text}"
    );
    assert!(text.contains("not a signature"), "{text}");
}

#[test]
fn a_journal_edited_to_break_a_limit_and_the_order_fails_naming_the_group_and_the_moment() {
    let dir = tempfile::tempdir().unwrap();
    let journal = finished_run(dir.path());
    let mut lines = journal_lines(&journal);
    // w2 now starts right after w1 did, before w1 finished: two of $web down at once.
    let w2 = lines.remove(line_of(&lines, "host_started", "w2"));
    let w1 = line_of(&lines, "host_started", "w1");
    lines.insert(w1 + 1, w2);
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let audit = pogo(dir.path(), &["audit", "last"]);
    assert_eq!(audit.code(), 1, "{}{}", audit.stdout(), audit.stderr());
    let text = audit.stdout();
    let place = format!("line {}", w1 + 2);
    let broken = text
        .lines()
        .find(|l| l.contains("group $web had 2 down at once, over its limit of 1"))
        .expect(&text);
    assert!(broken.contains("when w2 started"), "{broken}");
    assert!(
        broken.contains("session 1, +") && broken.contains(&place),
        "{broken}"
    );
    assert!(text.contains("FAILED: 1 place"), "{text}");

    // A web host moved before the databases finished breaks the order instead.
    let mut lines = journal_lines(&journal);
    let w3 = lines.remove(line_of(&lines, "host_started", "w3"));
    lines.insert(1, w3);
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let audit = pogo(dir.path(), &["audit", "last"]);
    assert_eq!(audit.code(), 1);
    let text = audit.stdout();
    assert!(
        text.lines().any(|l| l
            .contains("w3 (slot main.$web) started before slot main.$db was complete")
            && l.contains("line 2")),
        "{text}"
    );
}
