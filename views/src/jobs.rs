//! The views of remote apply's jobs and workers: the tables of `pogo jobs`, `pogo status` and
//! `pogo workers`, the line an operator's call answers with, and a job's output as text. They
//! render from the API's values alone (`pogo_api`), so the CLI and the dashboard show
//! the same words, and they are tested without a dispatcher.

use std::collections::HashMap;

use comfy_table::Cell;
use pogo_api::{
    Counts, HostEntry, HostWhy, JobDetail, JobState, JobSummary, OutputRecord, WorkerInfo,
};

use crate::text::{counted, cut, new_table, plural, render, utc};

/// Past this many hosts, `pogo status` lists only the hosts that need a look, unless --full.
const HOSTS_IN_FULL: usize = 20;
/// At most this many of them, unless --full.
const ROWS_SHOWN: usize = 30;
/// Commands longer than this are cut in `pogo jobs` (`--json` has them whole).
const COMMAND_SHOWN: usize = 40;
/// Host messages longer than this are cut in `pogo status`.
const MESSAGE_SHOWN: usize = 60;

/// Failed in any way: failed, timed out, unreachable or lost.
/// The table of `pogo jobs`.
pub fn jobs_table(jobs: &[JobSummary]) -> String {
    let mut table = new_table();
    table.set_header(vec![
        "Job",
        "State",
        "Hosts",
        "Done",
        "Failed",
        "Submitted (UTC)",
        "By",
        "Command",
    ]);
    for job in jobs {
        table.add_row(vec![
            Cell::new(&job.id),
            Cell::new(job.state.word()),
            Cell::new(job.hosts),
            Cell::new(format!("{}/{}", job.counts.succeeded, job.hosts)),
            Cell::new(job.counts.failures()),
            Cell::new(utc(job.submitted_at)),
            Cell::new(&job.submitted_by),
            Cell::new(cut(&job.command, COMMAND_SHOWN)),
        ]);
    }
    format!("{}\n", render(&mut table))
}

/// `3 succeeded, 1 failed, 5 pending`: every state some host is in.
pub fn counts_text(counts: &Counts) -> String {
    let c = counts;
    counted(&[
        (c.succeeded, "succeeded"),
        (c.failed, "failed"),
        (c.timed_out, "timed out"),
        (c.unreachable, "unreachable"),
        (c.lost, "lost"),
        (c.cancelled, "cancelled"),
        (c.skipped, "skipped"),
        (c.running, "running"),
        (c.pending, "pending"),
    ])
}

/// A host's state for a person: `timed out` for `timed_out`.
fn state_word(state: &str) -> String {
    state.replace('_', " ")
}

/// Whether a host is worth a row when only some are listed.
fn needs_a_look(host: &HostEntry) -> bool {
    !matches!(host.state.as_str(), "succeeded" | "pending" | "skipped")
}

/// What `pogo status` prints: the job, its state and why, and its hosts.
pub fn status_text(detail: &JobDetail, full: bool, repeat: &str) -> String {
    let job = &detail.summary;
    let mut out = format!(
        "Job {}: `{}` on {}\nSubmitted {} UTC by {}\n",
        job.id,
        job.command,
        plural(job.hosts, "host"),
        utc(job.submitted_at),
        job.submitted_by
    );
    let counts = counts_text(&job.counts);
    if counts.is_empty() {
        out.push_str(&format!("State: {}\n", job.state.word()));
    } else {
        out.push_str(&format!("State: {} ({counts})\n", job.state.word()));
    }
    for reason in &job.reasons {
        out.push_str(&format!("  because {reason}\n"));
    }
    for waiting in &job.approvals {
        out.push_str(&format!(
            "Waiting for approval of step {} since {} UTC{}: pogo approve {} '{}'{repeat}\n",
            waiting.step,
            utc(waiting.since),
            waiting
                .within
                .map_or(String::new(), |w| format!(" (for at most {w}s)")),
            job.id,
            waiting.step
        ));
    }
    if job.closed {
        out.push_str(&format!(
            "Closed{}{}: its failed hosts hold no place in a fleet's budget; it cannot be \
             resumed\n",
            job.closed_at
                .map(|at| format!(" {} UTC", utc(at)))
                .unwrap_or_default(),
            job.closed_by
                .as_deref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default()
        ));
    }
    if job.state == JobState::NeedsPassword {
        out.push_str(&format!(
            "  give the password with: pogo resume {} --password{repeat}\n",
            job.id
        ));
    }
    let hosts = &detail.host_states;
    let rows: Vec<&HostEntry> = if full || hosts.len() <= HOSTS_IN_FULL {
        hosts.iter().collect()
    } else {
        hosts
            .iter()
            .filter(|h| needs_a_look(h))
            .take(ROWS_SHOWN)
            .collect()
    };
    if !rows.is_empty() {
        let mut table = new_table();
        table.set_header(vec!["Host", "State", "Attempts", "Worker", "Message"]);
        for host in &rows {
            let attempts = if host.attempts == 0 {
                String::new()
            } else {
                host.attempts.to_string()
            };
            table.add_row(vec![
                Cell::new(&host.host),
                Cell::new(state_word(&host.state)),
                Cell::new(attempts),
                Cell::new(host.worker.as_deref().unwrap_or_default()),
                Cell::new(cut(&host.message, MESSAGE_SHOWN)),
            ]);
        }
        out.push_str(&format!("\n{}\n", render(&mut table)));
    }
    if rows.len() < hosts.len() {
        // What the hidden rows are, by state, in the order states first appear.
        let mut hidden: Vec<(String, usize)> = Vec::new();
        let listed: std::collections::HashSet<&str> =
            rows.iter().map(|h| h.host.as_str()).collect();
        for host in hosts.iter().filter(|h| !listed.contains(h.host.as_str())) {
            let word = state_word(&host.state);
            match hidden.iter_mut().find(|(w, _)| *w == word) {
                Some((_, n)) => *n += 1,
                None => hidden.push((word, 1)),
            }
        }
        let hidden_text: Vec<String> = hidden.iter().map(|(w, n)| format!("{n} {w}")).collect();
        out.push_str(&format!(
            "{} not listed ({}); --full lists every host\n",
            plural(hosts.len() - rows.len(), "host"),
            hidden_text.join(", ")
        ));
    }
    out
}

/// The line after a job's status when threads of it wait for something: how to ask why.
pub fn waiting_hint(detail: &JobDetail, repeat: &str) -> String {
    if detail.waiting.is_empty() {
        return String::new();
    }
    format!(
        "Hosts wait for something; `pogo status {} --why{repeat}` says what\n",
        detail.summary.id
    )
}

/// `pogo status JOB --why`: why hosts have not started, one line each; `asked` when the
/// operator named them (else they are the heads of the job's threads).
pub fn why_text(job: &JobSummary, whys: &[HostWhy], asked: bool) -> String {
    if whys.is_empty() {
        let why = if job.state.is_ended() {
            "the job has ended"
        } else {
            "the first host not started of each thread's current step waits for nothing but its \
             turn and a free worker"
        };
        return format!("\nNothing waits: {why}.\n");
    }
    let mut out = String::from(if asked {
        "\nWhy:\n"
    } else {
        "\nWaiting (the first host not started of each thread's current step):\n"
    });
    for why in whys {
        let place = match (&why.thread, asked) {
            (_, true) => String::new(),
            (Some(thread), false) => format!(" (thread {thread})"),
            (None, false) => " (unordered)".to_string(),
        };
        out.push_str(&format!("  {}{place}: {}\n", why.host, why.reason));
    }
    out
}

/// Output records as text: each line as the command printed it, stderr lines marked
/// `stderr: ` and a retry's output under `--- attempt N ---`, as a local run's logs hold it;
/// each line prefixed with `HOST: ` when the output of several hosts is interleaved.
pub struct LogText {
    prefixed: bool,
    attempts: HashMap<String, u32>,
    /// For a terminal: control sequences shown, not acted on ([`crate::text::printable`]).
    printable: bool,
}

impl LogText {
    pub fn new(prefixed: bool) -> LogText {
        LogText {
            prefixed,
            attempts: HashMap::new(),
            printable: false,
        }
    }

    /// Lines for a terminal: a host's escape sequences cannot clear it or retitle it.
    pub fn for_terminal(mut self) -> LogText {
        self.printable = true;
        self
    }

    /// Appends `record`'s line(s) to `text`.
    pub fn push(&mut self, record: &OutputRecord, text: &mut String) {
        let prefix = if self.prefixed {
            format!("{}: ", record.host)
        } else {
            String::new()
        };
        let previous = self.attempts.insert(record.host.clone(), record.attempt);
        if record.attempt > 1 && previous != Some(record.attempt) {
            text.push_str(&format!("{prefix}--- attempt {} ---\n", record.attempt));
        }
        let stream = if record.stream == "stderr" {
            "stderr: "
        } else {
            ""
        };
        if self.printable {
            let line = crate::text::printable(&record.text);
            text.push_str(&format!("{prefix}{stream}{line}\n"));
        } else {
            text.push_str(&format!("{prefix}{stream}{}\n", record.text));
        }
    }
}

/// `job-…: halting (3 hosts still running)`: a job's state after an operator's call.
pub fn state_line(job: &JobSummary, halted: bool) -> String {
    let word = match job.state {
        JobState::Stopping if halted => "halting",
        state => state.word(),
    };
    let c = &job.counts;
    let mut parts = Vec::new();
    if c.running > 0 {
        parts.push(format!("{} still running", plural(c.running, "host")));
    }
    if c.pending > 0 && job.state == JobState::Running {
        parts.push(format!("{} to start", plural(c.pending, "host")));
    }
    let mut line = format!("{}: {word}", job.id);
    if !parts.is_empty() {
        line.push_str(&format!(" ({})", parts.join(", ")));
    }
    if job.state == JobState::NeedsPassword {
        line.push_str(&format!(
            "; give the password with: pogo resume {} --password",
            job.id
        ));
    }
    line.push('\n');
    line
}

/// `1.2s ago`, `3m05s ago`, `2h10m ago`, `3d04h ago`.
fn ago(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        format!("{:.1}s ago", ms as f64 / 1000.0)
    } else if secs < 3600 {
        format!("{}m{:02}s ago", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{:02}m ago", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}d{:02}h ago", secs / 86_400, secs % 86_400 / 3600)
    }
}

/// The table of `pogo workers`.
pub fn workers_table(workers: &[WorkerInfo]) -> String {
    let mut table = new_table();
    table.set_header(vec![
        "Name",
        "Connected",
        "Last seen",
        "Capacity",
        "Running",
        "Finished",
    ]);
    for w in workers {
        table.add_row(vec![
            Cell::new(&w.name),
            Cell::new(if w.connected { "yes" } else { "no" }),
            Cell::new(ago(w.last_seen_ms)),
            Cell::new(w.capacity),
            Cell::new(w.running),
            Cell::new(w.finished),
        ]);
    }
    format!("{}\n", render(&mut table))
}

/// The table of `pogo audit-log`: each operator action, oldest first.
pub fn audit_table(records: &[pogo_api::AuditRecord]) -> String {
    let mut table = new_table();
    table.set_header(vec![
        "#",
        "When (UTC)",
        "Who",
        "From",
        "Action",
        "Job",
        "What",
    ]);
    for r in records {
        table.add_row(vec![
            Cell::new(r.seq),
            Cell::new(utc(r.at)),
            Cell::new(&r.by),
            Cell::new(&r.from),
            Cell::new(&r.action),
            Cell::new(r.job.as_deref().unwrap_or("")),
            Cell::new(cut(&r.detail, 60)),
        ]);
    }
    format!("{}\n", render(&mut table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pogo_api::JobSummary;

    fn summary(id: &str, state: JobState, counts: Counts, hosts: usize) -> JobSummary {
        JobSummary {
            id: id.to_string(),
            state,
            command: "sudo systemctl restart app".to_string(),
            hosts,
            counts,
            submitted_at: 1_795_561_262,
            submitted_by: "alice".to_string(),
            reasons: Vec::new(),
            last_event: 0,
            closed: false,
            closed_by: None,
            closed_at: None,
            approvals: Vec::new(),
        }
    }

    fn host(name: &str, state: &str, attempts: u32, message: &str) -> HostEntry {
        HostEntry {
            host: name.to_string(),
            state: state.to_string(),
            exit_code: None,
            attempts,
            worker: (attempts > 0).then(|| "worker-1".to_string()),
            message: message.to_string(),
            duration_ms: None,
        }
    }

    /// The cells of a table's row that holds `first`, trimmed.
    fn row<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
        let line = text
            .lines()
            .find(|l| {
                l.split('┆')
                    .next()
                    .is_some_and(|c| c.trim_matches(['│', ' ']) == first)
            })
            .unwrap_or_else(|| panic!("no row for {first} in\n{text}"));
        line.split(['│', '┆'])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    #[test]
    fn jobs_list_counts_done_and_failed_hosts() {
        let counts = Counts {
            succeeded: 5,
            failed: 1,
            timed_out: 1,
            unreachable: 1,
            lost: 1,
            skipped: 2,
            ..Counts::default()
        };
        let mut long = summary("job-20261124T230300Z-00aa", JobState::Running, counts, 11);
        long.command = "x".repeat(100);
        let jobs = [
            long,
            summary(
                "job-20261124T230102Z-3f9a",
                JobState::Succeeded,
                Counts {
                    succeeded: 3,
                    ..Counts::default()
                },
                3,
            ),
        ];
        let text = jobs_table(&jobs);
        assert!(text.contains("Submitted (UTC)"), "{text}");
        let first = row(&text, "job-20261124T230300Z-00aa");
        assert_eq!(
            first[1..7],
            ["running", "11", "5/11", "4", "2026-11-24 23:01:02", "alice"]
        );
        assert_eq!(first[7].chars().count(), COMMAND_SHOWN, "{}", first[7]);
        assert!(first[7].ends_with('…'));
        let second = row(&text, "job-20261124T230102Z-3f9a");
        assert_eq!(second[1..5], ["succeeded", "3", "3/3", "0"]);
        assert_eq!(second[7], "sudo systemctl restart app");
        // Newest first, as the dispatcher lists them.
        assert!(text.find("230300Z").expect("first") < text.find("230102Z").expect("second"));
    }

    #[test]
    fn status_lists_every_host_of_a_small_job() {
        let mut job = summary(
            "job-20261124T230102Z-3f9a",
            JobState::Stopped,
            Counts {
                succeeded: 1,
                failed: 1,
                skipped: 1,
                ..Counts::default()
            },
            3,
        );
        job.reasons = vec!["more than 0 hosts failed (max_failures 0)".to_string()];
        let detail = JobDetail {
            summary: job,
            host_states: vec![
                host("web1", "succeeded", 1, "exit code 0"),
                host("web2", "failed", 2, "exit code 3"),
                host("web3", "skipped", 0, ""),
            ],
            waiting: Vec::new(),
        };
        let text = status_text(&detail, false, "");
        assert!(
            text.starts_with(
                "Job job-20261124T230102Z-3f9a: `sudo systemctl restart app` on 3 hosts\n\
                 Submitted 2026-11-24 23:01:02 UTC by alice\n\
                 State: stopped (1 succeeded, 1 failed, 1 skipped)\n  \
                 because more than 0 hosts failed (max_failures 0)\n"
            ),
            "{text}"
        );
        assert_eq!(
            row(&text, "web2"),
            ["web2", "failed", "2", "worker-1", "exit code 3"]
        );
        assert_eq!(row(&text, "web3"), ["web3", "skipped"]);
        assert!(!text.contains("not listed"), "{text}");
    }

    #[test]
    fn status_of_a_large_job_lists_the_hosts_that_need_a_look() {
        let mut hosts: Vec<HostEntry> = (1..=25)
            .map(|i| host(&format!("web{i:02}"), "succeeded", 1, "exit code 0"))
            .collect();
        hosts[3] = host("web04", "timed_out", 1, "timed out; the command was killed");
        hosts[7] = host("web08", "running", 1, "");
        hosts[24] = host("web25", "pending", 0, "");
        let detail = JobDetail {
            summary: summary(
                "job-20261124T230102Z-3f9a",
                JobState::Running,
                Counts {
                    succeeded: 22,
                    timed_out: 1,
                    running: 1,
                    pending: 1,
                    ..Counts::default()
                },
                25,
            ),
            host_states: hosts,
            waiting: Vec::new(),
        };
        let text = status_text(&detail, false, "");
        assert_eq!(
            row(&text, "web04"),
            [
                "web04",
                "timed out",
                "1",
                "worker-1",
                "timed out; the command was killed"
            ]
        );
        assert_eq!(row(&text, "web08")[1], "running");
        assert!(!text.contains("web01"), "{text}");
        assert!(
            text.contains("23 hosts not listed (22 succeeded, 1 pending); --full lists every host"),
            "{text}"
        );
        let full = status_text(&detail, true, "");
        assert_eq!(row(&full, "web01")[1], "succeeded");
        assert_eq!(row(&full, "web25"), ["web25", "pending"]);
        assert!(!full.contains("not listed"), "{full}");
    }

    #[test]
    fn a_job_waiting_for_its_password_says_how_to_give_it() {
        let detail = JobDetail {
            summary: summary(
                "job-20261124T230102Z-3f9a",
                JobState::NeedsPassword,
                Counts {
                    pending: 2,
                    ..Counts::default()
                },
                2,
            ),
            host_states: Vec::new(),
            waiting: Vec::new(),
        };
        let text = status_text(&detail, false, " --dispatcher https://d:1");
        assert!(
            text.contains(
                "give the password with: pogo resume job-20261124T230102Z-3f9a --password \
                 --dispatcher https://d:1"
            ),
            "{text}"
        );
    }

    #[test]
    fn workers_show_when_they_were_last_seen() {
        let worker = |name: &str, connected, last_seen_ms| WorkerInfo {
            name: name.to_string(),
            connected,
            last_seen_ms,
            capacity: 32,
            running: 3,
            finished: 120,
        };
        let text = workers_table(&[worker("w1", true, 1234), worker("w2", false, 185_000)]);
        assert_eq!(
            row(&text, "w1"),
            ["w1", "yes", "1.2s ago", "32", "3", "120"]
        );
        assert_eq!(row(&text, "w2")[1..3], ["no", "3m05s ago"]);
        assert_eq!(ago(7_500_000), "2h05m ago");
        assert_eq!(ago(90_000_000), "1d01h ago");
    }

    #[test]
    fn state_lines_say_what_still_runs() {
        let halting = summary(
            "job-x",
            JobState::Stopping,
            Counts {
                running: 3,
                pending: 4,
                ..Counts::default()
            },
            7,
        );
        assert_eq!(
            state_line(&halting, true),
            "job-x: halting (3 hosts still running)\n"
        );
        let running = JobSummary {
            state: JobState::Running,
            ..halting.clone()
        };
        assert_eq!(
            state_line(&running, false),
            "job-x: running (3 hosts still running, 4 hosts to start)\n"
        );
        let stopped = summary("job-x", JobState::Stopped, Counts::default(), 7);
        assert_eq!(state_line(&stopped, true), "job-x: stopped\n");
    }

    #[test]
    fn log_text_reads_like_a_local_log() {
        let record = |host: &str, attempt, stream: &str, text: &str| OutputRecord {
            seq: 0,
            host: host.to_string(),
            attempt,
            stream: stream.to_string(),
            text: text.to_string(),
        };
        let records = [
            record("web1", 1, "stdout", "starting"),
            record("web1", 1, "stderr", "oops"),
            record("web2", 1, "stdout", "fine"),
            record("web1", 2, "stdout", "again"),
            record("web1", 2, "stdout", "done"),
        ];
        let mut bare = LogText::new(false);
        let mut text = String::new();
        for r in records.iter().filter(|r| r.host == "web1") {
            bare.push(r, &mut text);
        }
        assert_eq!(
            text,
            "starting\nstderr: oops\n--- attempt 2 ---\nagain\ndone\n"
        );
        let mut prefixed = LogText::new(true);
        let mut text = String::new();
        for r in &records {
            prefixed.push(r, &mut text);
        }
        assert_eq!(
            text,
            "web1: starting\nweb1: stderr: oops\nweb2: fine\nweb1: --- attempt 2 ---\n\
             web1: again\nweb1: done\n"
        );
    }
}
