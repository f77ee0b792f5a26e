//! The human view of a plan: the schedule (one row per thread, one column per step, as the
//! original `pogo-schedule` printed it), the constraint groups, the run options and warnings.
//! Rendering never depends on the terminal, so the same plan always prints the same text.

use comfy_table::{Cell, Table};
use pogo_executor::hostlog;
use pogo_model::{Plan, RunOptions, JOB_GROUP_ID};

use crate::text::{host_list, new_table, plural, render};

/// Each host's attempt in phases, a line each: what runs `before` its command, the health
/// check that must pass after it (`verify`), and what runs `after`.
pub fn phases_text(options: &RunOptions) -> String {
    let mut out = String::from("Each host: ");
    let mut steps = Vec::new();
    if let Some(before) = &options.before {
        steps.push(format!("before `{before}`"));
    }
    steps.push("the command".to_string());
    if let Some(verify) = &options.verify {
        steps.push(format!(
            "verify `{}` (until it passes, every {}s, within {}s)",
            verify.command, verify.every, verify.within
        ));
    }
    if let Some(after) = &options.after {
        steps.push(format!("after `{after}`"));
    }
    out.push_str(&steps.join(", then "));
    out.push_str("; a failed phase fails the host, and what follows it does not run\n");
    out
}

/// What waits after each gated step: `- after $canary: gate `…`, then an approval (within
/// 1h)`, under a heading; nothing for a plan without gates.
pub fn gates_text(plan: &Plan) -> String {
    let lines: Vec<String> = plan
        .slots()
        .filter(|(_, slot)| slot.is_gated())
        .map(|(_, slot)| {
            let mut waits = Vec::new();
            if let Some(gate) = &slot.gate {
                waits.push(format!("gate `{gate}`"));
            }
            match slot.approve.map(|a| a.within) {
                Some(Some(within)) => waits.push(format!("an approval (within {within}s)")),
                Some(None) => waits.push("an approval".to_string()),
                None => {}
            }
            format!("- after {}: {}\n", slot.id, waits.join(", then "))
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nGates and approvals (the steps ordered after each wait for it)\n{}",
        lines.concat()
    )
}

pub fn plan_text(plan: &Plan, full: bool) -> String {
    let mut out = String::new();
    let slot_count: usize = plan.threads.iter().map(|t| t.slots.len()).sum();
    out.push_str(&format!(
        "Command: {}\n",
        plan.command
            .as_deref()
            .unwrap_or("(none: this plan can be shown but not applied)")
    ));
    out.push_str(&format!(
        "Targets: {} in {} ({} in all), {} unordered{}\n",
        plural(plan.hosts.len(), "host"),
        plural(plan.threads.len(), "thread"),
        plural(slot_count, "slot"),
        plan.unordered.len(),
        if plan.not_in_config.is_empty() || plan.source.config == pogo_model::NO_CONFIG {
            String::new()
        } else {
            format!(" ({} not in the config)", plan.not_in_config.len())
        }
    ));
    let options = &plan.options;
    out.push_str(&format!(
        "Options: timeout {}s, retries {}, max_failures {}, run_timeout {}{}\n\n",
        options.timeout,
        options.retries,
        options.max_failures,
        options
            .run_timeout
            .map_or("none".to_string(), |s| format!("{s}s")),
        options.max_output.map_or(String::new(), |m| format!(
            ", max_output {}",
            hostlog::bytes(m)
        ))
    ));
    if options.has_phases() {
        // Drop the blank line the options left: the phases belong with them.
        out.pop();
        out.push_str(&phases_text(options));
        out.push('\n');
    }

    out.push_str("Schedule\n");
    out.push_str(&render(&mut schedule_table(plan, full)));
    out.push_str("\n\n");

    out.push_str("Constraints\n");
    if plan.constraints.is_empty() {
        out.push_str("(none: every host may run at once)\n");
    } else {
        out.push_str(&render(&mut constraint_table(plan, full)));
        out.push('\n');
    }
    if plan.constraint(JOB_GROUP_ID).is_none() {
        out.push_str("No job-wide limit (--unconstrained).\n");
    }
    out.push_str(&gates_text(plan));

    if !plan.external_tags.is_empty() {
        // An operator reviewing the plan should see which hosts came from a command, not
        // from the config's text.
        out.push_str("\nTags from commands (run once, when this plan was made)\n");
        for tag in &plan.external_tags {
            out.push_str(&format!(
                "- ${}: {} from `{}`\n",
                tag.tag,
                plural(tag.hosts.len(), "host"),
                tag.command
            ));
        }
    }

    if !plan.warnings.is_empty() {
        out.push_str("\nWarnings\n");
        for warning in &plan.warnings {
            out.push_str(&format!("- {warning}\n"));
        }
    }
    out
}

/// A thread of more steps than this is shown a step a row: as columns, they would be a
/// character wide each on a terminal (and laid out at great cost).
pub const MOST_STEP_COLUMNS: usize = 8;

fn schedule_table(plan: &Plan, full: bool) -> Table {
    let mut table = new_table();
    let width = plan
        .threads
        .iter()
        .map(|t| t.slots.len())
        .max()
        .unwrap_or(0)
        .max(1);
    if width > MOST_STEP_COLUMNS {
        return schedule_rows(plan, full, table);
    }
    let mut header = vec![Cell::new("Thread")];
    header.extend((1..=width).map(|i| Cell::new(format!("Step {i}"))));
    table.set_header(header);
    for thread in &plan.threads {
        let mut row = vec![Cell::new(match &thread.filter {
            Some(filter) if *filter != thread.name => format!("{} ({filter})", thread.name),
            _ => thread.name.clone(),
        })];
        for slot in &thread.slots {
            row.push(Cell::new(step_cell(slot, full)));
        }
        row.resize(width + 1, Cell::new(""));
        table.add_row(row);
    }
    let mut row = vec![
        Cell::new("unordered"),
        Cell::new(if plan.unordered.is_empty() {
            "(none)".to_string()
        } else {
            host_list(&plan.unordered, full)
        }),
    ];
    row.resize(width + 1, Cell::new(""));
    table.add_row(row);
    table
}

/// A step of the schedule: its slot id, its hosts, and what the steps after it wait for
/// besides its hosts.
fn step_cell(slot: &pogo_model::SlotSpec, full: bool) -> String {
    format!(
        "[{}]\n{}{}",
        slot.id,
        host_list(&slot.hosts, full),
        then(slot)
    )
}

fn then(slot: &pogo_model::SlotSpec) -> String {
    let waits: Vec<&str> = [
        slot.gate.as_ref().map(|_| "gate"),
        slot.approve.as_ref().map(|_| "approval"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if waits.is_empty() {
        String::new()
    } else {
        format!("\nthen: {}", waits.join(", "))
    }
}

/// The schedule a step a row, for threads of many steps.
fn schedule_rows(plan: &Plan, full: bool, mut table: Table) -> Table {
    table.set_header(vec!["Thread", "Step", "Hosts"]);
    for thread in &plan.threads {
        let name = match &thread.filter {
            Some(filter) if *filter != thread.name => format!("{} ({filter})", thread.name),
            _ => thread.name.clone(),
        };
        for (i, slot) in thread.slots.iter().enumerate() {
            table.add_row(vec![
                Cell::new(&name),
                Cell::new(i + 1),
                Cell::new(step_cell(slot, full)),
            ]);
        }
    }
    table.add_row(vec![
        Cell::new("unordered"),
        Cell::new(""),
        Cell::new(if plan.unordered.is_empty() {
            "(none)".to_string()
        } else {
            host_list(&plan.unordered, full)
        }),
    ]);
    table
}

fn constraint_table(plan: &Plan, full: bool) -> Table {
    let mut table = new_table();
    table.set_header(vec!["Group", "From", "max_parallel", "Hosts"]);
    for group in &plan.constraints {
        let from = if group.id == JOB_GROUP_ID {
            "--concurrent".to_string()
        } else if group.from == group.id {
            String::new()
        } else {
            group.from.clone()
        };
        table.add_row(vec![
            Cell::new(&group.id),
            Cell::new(from),
            Cell::new(group.max_parallel.to_string()),
            Cell::new(format!(
                "{}: {}",
                group.hosts.len(),
                host_list(&group.hosts, full)
            )),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> String {
        (1..=n).map(|i| format!("h{i} ")).collect()
    }

    #[test]
    fn a_thread_of_many_steps_is_shown_a_step_a_row() {
        crate::text::set_table_width(100);
        let steps: Vec<String> = (1..=MOST_STEP_COLUMNS + 1)
            .map(|i| format!("h{i}"))
            .collect();
        let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
        let many = Plan::sketch(&hosts(MOST_STEP_COLUMNS + 1)).with_thread("t", &steps);
        let text = plan_text(&many, false);
        assert!(text.contains(" ┆ Step ┆ Hosts "), "{text}");
        for (i, host) in steps.iter().enumerate() {
            let row = text
                .lines()
                .find(|line| line.contains(&format!("[t.{i}]")))
                .unwrap_or_else(|| panic!("no row for step {}:\n{text}", i + 1));
            assert!(row.contains(&format!("┆ {:<4} ┆", i + 1)), "{row}");
            let next = text.lines().skip_while(|line| *line != row).nth(1).unwrap();
            assert!(next.contains(&format!(" {host} ")), "{next}");
        }

        let few =
            Plan::sketch(&hosts(MOST_STEP_COLUMNS)).with_thread("t", &steps[..MOST_STEP_COLUMNS]);
        let text = plan_text(&few, false);
        assert!(
            text.contains(&format!("Step {MOST_STEP_COLUMNS}")),
            "as columns up to {MOST_STEP_COLUMNS} steps:\n{text}"
        );
    }
}
