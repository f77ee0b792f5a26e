//! The text of `pogo audit`: what was checked, each group's peak against its limit, and each
//! finding with the place in the record where it happened.

use comfy_table::Cell;
use pogo_executor::audit::{Audit, Finding, Place};

use crate::text::{cut, host_list, new_table, plural, render, wrap_words};

/// Prose wraps at this many columns.
const WIDTH: usize = 90;

/// `session 2, +1.25s, event 17`: `unit` names the places (`line` of a journal, `event` of a
/// job's sequence).
fn place(at: &Place, unit: &str) -> String {
    format!(
        "session {}, +{}.{:02}s, {unit} {}",
        at.session,
        at.at_ms / 1000,
        at.at_ms % 1000 / 10,
        at.place
    )
}

fn finding(finding: &Finding, unit: &str) -> String {
    match finding {
        Finding::OverLimit {
            group,
            limit,
            host,
            down,
            at,
        } => format!(
            "group {group} had {} down at once, over its limit of {limit}, when {host} \
             started ({}): {}",
            down.len(),
            place(at, unit),
            host_list(down, false).replace('\n', " ")
        ),
        Finding::OutOfOrder {
            host,
            slot,
            before,
            waiting_for,
            at,
        } => format!(
            "{host} (slot {slot}) started before slot {before} was complete: {waiting_for} \
             had not finished ({})",
            place(at, unit)
        ),
        Finding::StartedAgain { host, was, at } => {
            format!(
                "{host} started while it {} ({})",
                match *was {
                    "running" => "was running",
                    _ => "had already succeeded",
                },
                place(at, unit)
            )
        }
        Finding::NotRunning { host, event, at } => {
            format!(
                "{event} of {host}, which was not running ({})",
                place(at, unit)
            )
        }
        Finding::UnknownHost { host, at } => {
            format!("{host} is not a host of the plan ({})", place(at, unit))
        }
        Finding::NoFinalState { host, state } => {
            format!("{host} ends the record {state}, in no final state")
        }
    }
}

/// The report of `pogo audit`. `what` names the run (`run 2026...` or `job job-...`);
/// `unit` what a place in its record is (`line`, `event`).
pub fn text(audit: &Audit, what: &str, unit: &str) -> String {
    let mut out = format!(
        "Audit of {what}: {}, {} in the record, read in its order.\n\n",
        plural(audit.sessions, "session"),
        plural(audit.events, unit)
    );
    let mut table = new_table();
    table.set_header(vec!["Group", "Limit", "Peak down", "First at"]);
    for peak in &audit.peaks {
        table.add_row(vec![
            Cell::new(cut(&peak.group, 40)),
            Cell::new(peak.limit),
            Cell::new(peak.peak),
            Cell::new(
                peak.at
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |at| place(at, unit)),
            ),
        ]);
    }
    if audit.peaks.is_empty() {
        out.push_str("The plan has no constraint groups.\n");
    } else {
        out.push_str(&format!("{}\n", render(&mut table)));
    }
    let finals: Vec<String> = audit
        .finals
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    out.push('\n');
    out.push_str(&wrap_words(
        &format!(
            "Checked: each group's hosts down at once (running, or ended other than by \
         succeeding and not run again) against its limit; {} (a host starts only once the \
         slots before its slot are complete); each host's final state ({}).",
            plural(audit.edges, "order edge"),
            if finals.is_empty() {
                "none".to_string()
            } else {
                finals.join(", ")
            }
        ),
        WIDTH,
    ));
    if !audit.ended {
        out.push_str(&wrap_words(
            "The record does not end with the end of a session: the run is still going, or \
             was interrupted.",
            WIDTH,
        ));
    }
    if audit.findings.is_empty() {
        out.push('\n');
        out.push_str(&wrap_words(
            "OK: the record agrees with the plan. This checks the record as it is written (a \
             journal can be edited by hand): it is not a signature.",
            WIDTH,
        ));
    } else {
        out.push_str(&format!(
            "\nFAILED: {} where the record breaks the plan's rules:\n",
            plural(audit.findings.len(), "place")
        ));
        for found in &audit.findings {
            out.push_str(&format!("  - {}\n", finding(found, unit)));
        }
    }
    out
}
