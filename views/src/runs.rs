//! The views of local runs: the table and JSON of `pogo runs`, the head of `pogo log RUN`, and
//! what a resume is about to do. The run report itself (events, the summary table) is
//! [`crate::report`].

use std::path::Path;

use comfy_table::Cell;
use pogo_executor::events::RunResult;
use pogo_executor::rundir::{RunInfo, RunState, Totals};
use pogo_executor::scheduler::{HostIdx, HostState};
use pogo_model::Plan;
use serde_json::json;

use crate::text::{counted, cut, new_table, plural, render};

/// `pogo runs`: the runs of the state dir `dir`, one row each, or a line saying there are none.
pub fn table(runs: &[RunInfo], dir: &Path) -> String {
    if runs.is_empty() {
        return format!("No runs in `{}`.\n", dir.join("runs").display());
    }
    let mut table = new_table();
    table.set_header(vec!["Run", "Started (UTC)", "Hosts", "Result", "Command"]);
    for run in runs {
        let result = match run.sessions {
            0 | 1 => state_text(&run.state),
            n => format!("{} ({n} sessions)", state_text(&run.state)),
        };
        table.add_row(vec![
            Cell::new(run.id.as_str()),
            Cell::new(run.started.replace('T', " ").replace('Z', "")),
            Cell::new(run.hosts),
            Cell::new(result),
            Cell::new(cut(&run.command, COMMAND_SHOWN)),
        ]);
    }
    format!("{}\n", render(&mut table))
}

/// `pogo runs --json`: the runs as a pretty JSON array.
pub fn json(runs: &[RunInfo]) -> String {
    let list: Vec<serde_json::Value> = runs.iter().map(run_json).collect();
    let mut text = serde_json::to_string_pretty(&list).expect("JSON values serialise");
    text.push('\n');
    text
}

/// The first line of `pogo log RUN`: `Run ID, started T: `CMD` on N hosts, K sessions`.
pub fn log_head(info: &RunInfo, plan: &Plan) -> String {
    format!(
        "Run {}, started {}: `{}` on {}{}\n",
        info.id,
        info.started,
        plan.command.as_deref().unwrap_or_default(),
        plural(plan.hosts.len(), "host"),
        match info.sessions {
            0 | 1 => String::new(),
            n => format!(", {n} sessions"),
        }
    )
}

/// Commands longer than this are cut in the table (`--json` has them whole).
const COMMAND_SHOWN: usize = 50;

fn result_word(result: RunResult) -> &'static str {
    match result {
        RunResult::Succeeded => "succeeded",
        RunResult::Failed => "failed",
        RunResult::Stopped => "stopped",
    }
}

/// `failed: 2 of 9 hosts`, `stopped: 3 succeeded, 1 failed, 5 skipped`, `interrupted`.
fn state_text(state: &RunState) -> String {
    match state {
        RunState::Finished {
            result: RunResult::Succeeded,
            ..
        } => "succeeded".to_string(),
        RunState::Finished { result, totals } => {
            format!("{}: {}", result_word(*result), totals_text(totals))
        }
        RunState::Running => "running".to_string(),
        RunState::Interrupted => "interrupted".to_string(),
    }
}

fn totals_text(t: &Totals) -> String {
    counted(&[
        (t.succeeded, "succeeded"),
        (t.failed, "failed"),
        (t.timed_out, "timed out"),
        (t.unreachable, "unreachable"),
        (t.cancelled, "cancelled"),
        (t.skipped, "skipped"),
    ])
}

fn run_json(run: &RunInfo) -> serde_json::Value {
    let (state, totals) = match &run.state {
        RunState::Finished { result, totals } => (
            result_word(*result),
            json!({
                "succeeded": totals.succeeded,
                "failed": totals.failed,
                "timed_out": totals.timed_out,
                "unreachable": totals.unreachable,
                "skipped": totals.skipped,
                "cancelled": totals.cancelled,
            }),
        ),
        RunState::Running => ("running", serde_json::Value::Null),
        RunState::Interrupted => ("interrupted", serde_json::Value::Null),
    };
    json!({
        "run_id": run.id.as_str(),
        "started": run.started,
        "command": run.command,
        "hosts": run.hosts,
        "sessions": run.sessions,
        "state": state,
        "totals": totals,
    })
}

/// What a resume does with each host, said before it starts.
pub fn resume_note(
    plan: &Plan,
    states: &[HostState],
    interrupted: &[HostIdx],
    retry_failed: bool,
) -> String {
    let succeeded = states
        .iter()
        .filter(|s| **s == HostState::Succeeded)
        .count();
    let failed = states.iter().filter(|s| s.is_failure()).count() - interrupted.len();
    let mut note = format!(
        "Resuming: {} succeeded before and will not run again",
        plural(succeeded, "host")
    );
    if failed > 0 {
        note.push_str(&format!(
            "; {} failed before and {}",
            plural(failed, "host"),
            match (retry_failed, failed) {
                (true, _) => "will run again (--retry-failed)",
                (false, 1) => "stays failed (--retry-failed runs it again)",
                (false, _) => "stay failed (--retry-failed runs them again)",
            }
        ));
    }
    note.push_str(".\n");
    if !interrupted.is_empty() {
        let names: Vec<&str> = interrupted
            .iter()
            .take(10)
            .map(|h| plan.hosts[h.index()].as_str())
            .collect();
        let more = if interrupted.len() > names.len() {
            format!(" and {} more", interrupted.len() - names.len())
        } else {
            String::new()
        };
        let (were, them, they) = match interrupted.len() {
            1 => ("1 host was".to_string(), "it", "it"),
            n => (format!("{n} hosts were"), "them", "they"),
        };
        note.push_str(&format!(
            "{were} interrupted (started, but the pogo running {them} ended before {they} \
             finished): {}{more}.\n",
            names.join(", ")
        ));
        note.push_str(if retry_failed {
            "Their command may have run in part; they run again (--retry-failed).\n"
        } else {
            "Their command may have run, so they count as failed and do not run again; \
             --retry-failed runs them again.\n"
        });
    }
    note
}
