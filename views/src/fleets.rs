//! `pogo fleet list` and `pogo fleet show`: a fleet's revisions and budgets, from the API's
//! values alone.

use comfy_table::Cell;
use pogo_api::{FleetRevision, FleetRevisionInfo};

use crate::text::{host_list, new_table, plural, render, utc};

/// The table of `pogo fleet list` (each fleet's current revision) and `pogo fleet show
/// --history` (every revision of one).
pub fn revisions_table(list: &[FleetRevisionInfo]) -> String {
    let mut table = new_table();
    table.set_header(vec![
        "Fleet",
        "Revision",
        "Hosts",
        "Budgets",
        "Pushed (UTC)",
        "By",
        "Config",
    ]);
    for info in list {
        let revision = match info.current {
            true => info.revision.to_string(),
            false => format!("{} (old)", info.revision),
        };
        table.add_row(vec![
            Cell::new(&info.fleet),
            Cell::new(revision),
            Cell::new(info.hosts),
            Cell::new(info.budgets),
            Cell::new(utc(info.pushed_at)),
            Cell::new(&info.pushed_by),
            Cell::new(&info.config_name),
        ]);
    }
    format!("{}\n", render(&mut table))
}

/// `pogo fleet show NAME`: who pushed the revision, and its budgets.
pub fn revision_text(revision: &FleetRevision, full: bool) -> String {
    let info = &revision.info;
    let mut text = format!(
        "Fleet {} revision {}{}: pushed by {} at {} UTC from {}\n{}, config {}\n\n",
        info.fleet,
        info.revision,
        if info.current { " (current)" } else { " (old)" },
        info.pushed_by,
        utc(info.pushed_at),
        info.config_name,
        plural(info.hosts, "host"),
        info.digest
    );
    if revision.groups.is_empty() {
        text.push_str("No budgets: the config has no constraint.\n");
        return text;
    }
    let mut table = new_table();
    table.set_header(vec!["Budget", "From", "max_parallel", "Hosts"]);
    for budget in &revision.groups {
        table.add_row(vec![
            Cell::new(&budget.group),
            Cell::new(&budget.from),
            Cell::new(budget.max_parallel),
            Cell::new(format!(
                "{}: {}",
                budget.hosts.len(),
                host_list(&budget.hosts, full)
            )),
        ]);
    }
    text.push_str(&format!("{}\n", render(&mut table)));
    if !revision.outputs.is_empty() {
        text.push_str("\nTags from commands, as they printed on the pusher's machine:\n");
        for (command, output) in &revision.outputs {
            let lines = output.lines().filter(|l| !l.trim().is_empty()).count();
            text.push_str(&format!("  {command}: {}\n", plural(lines, "line")));
        }
    }
    text
}
