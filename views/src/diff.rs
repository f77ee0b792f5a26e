//! The views of `pogo diff`: terminal text, markdown for a pull-request comment, and JSON for
//! tools, all rendered from the same [`PlanDiff`] (the JSON keys are documented in
//! `docs/diff.md`). Sections come in the order of [`PlanDiff`]'s fields, then the digests line
//! and the summary; nothing depends on the terminal but the colours.

use std::fmt::Write as _;

use pogo_model::{Amount, Approval, Plan, Verify};
use pogo_planner::diff::{
    Change, Direction, HostMove, HostOrder, OptionChanges, PlanDiff, SlotOrder, ThreadSummary,
};
use serde::Serialize;

use crate::text::plural;

/// Host lists longer than this are cut in the terminal (unless `--full`) and folded into a
/// `<details>` block in markdown.
const HOSTS_SHOWN: usize = 10;

/// What `pogo diff` reports: the two sides and what differs.
pub struct Report<'a> {
    /// How the old and new sides are named (`plan.json`, `origin/main:examples/x.yaml`).
    pub old: String,
    pub new: String,
    /// Said before the changes (the old side did not exist, say).
    pub note: Option<String>,
    pub diff: &'a PlanDiff,
    /// The unified line diff of the two plan files, with `--text`.
    pub text: Option<String>,
}

/// A unified diff of the canonical plan files (the bytes `pogo plan -o` writes), labelled
/// with the sides' names. Empty when the files are identical.
pub fn unified(old: &Plan, new: &Plan, old_label: &str, new_label: &str) -> String {
    let (a, b) = (old.to_json(), new.to_json());
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Terminal

/// ANSI colours, or none.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn heading(self, text: &str) -> String {
        self.wrap("1", text)
    }
    fn added(self, text: &str) -> String {
        self.wrap("32", text)
    }
    fn removed(self, text: &str) -> String {
        self.wrap("31", text)
    }
    fn changed(self, text: &str) -> String {
        self.wrap("33", text)
    }
}

/// The terminal view. `full` shows every host; `color` uses ANSI colours.
pub fn terminal(report: &Report, full: bool, color: bool) -> String {
    let paint = Paint(color);
    let diff = report.diff;
    let hosts = |list: &[String]| host_list(list, full);
    let mut out = format!("old: {}\nnew: {}\n", report.old, report.new);
    if let Some(note) = &report.note {
        let _ = writeln!(out, "\nnote: {note}");
    }
    let mut section = |title: &str, lines: Vec<String>| {
        if !lines.is_empty() {
            let _ = writeln!(out, "\n{}", paint.heading(title));
            for line in lines {
                let _ = writeln!(out, "  {line}");
            }
        }
    };

    let lines: Vec<String> = option_rows(&diff.options)
        .into_iter()
        .map(|(name, old, new, how)| {
            paint.changed(&format!("~ {name}: {old} → {new}{}", suffix(how)))
        })
        .collect();
    section("Run options", lines);

    let h = &diff.hosts;
    let mut lines = Vec::new();
    if !h.added.is_empty() {
        lines.push(paint.added(&format!(
            "+ {} added: {}",
            plural(h.added.len(), "host"),
            hosts(&h.added)
        )));
    }
    if !h.removed.is_empty() {
        lines.push(paint.removed(&format!(
            "- {} removed: {}",
            plural(h.removed.len(), "host"),
            hosts(&h.removed)
        )));
    }
    for m in &h.moved {
        lines.push(paint.changed(&format!(
            "~ {} {}: {}",
            moving(m.hosts.len()),
            move_text(m),
            hosts(&m.hosts)
        )));
    }
    for o in &h.reordered {
        lines.push(paint.changed(&format!(
            "~ order of hosts in {}: {} → {}",
            lane(o),
            hosts(&o.old),
            hosts(&o.new)
        )));
    }
    section("Hosts", lines);

    let t = &diff.threads;
    let mut lines = Vec::new();
    for thread in &t.added {
        lines.push(paint.added(&format!("+ thread {}", thread_text(thread))));
    }
    for thread in &t.removed {
        lines.push(paint.removed(&format!("- thread {}", thread_text(thread))));
    }
    if let Some(order) = &t.order {
        lines.push(paint.changed(&format!(
            "~ order of threads: {} → {}",
            order.old.join(", "),
            order.new.join(", ")
        )));
    }
    for f in &t.filters {
        lines.push(paint.changed(&format!(
            "~ filter of thread {}: {} → {}",
            f.thread,
            f.old.as_deref().unwrap_or("none"),
            f.new.as_deref().unwrap_or("none")
        )));
    }
    section("Threads", lines);

    let s = &diff.slots;
    let mut lines = Vec::new();
    for slot in &s.added {
        lines.push(paint.added(&format!(
            "+ slot {}, {}",
            slot.id,
            counted_hosts(&slot.hosts, full)
        )));
    }
    for slot in &s.removed {
        lines.push(paint.removed(&format!(
            "- slot {}, {}",
            slot.id,
            counted_hosts(&slot.hosts, full)
        )));
    }
    for order in &s.reordered {
        let (old, new) = slot_order(order);
        lines.push(paint.changed(&format!(
            "~ order of slots in thread {}: {old} → {new}",
            order.thread
        )));
    }
    section("Slots", lines);

    let e = &diff.edges;
    let mut lines = Vec::new();
    for edge in &e.added {
        lines.push(paint.added(&format!("+ {} → {}", edge.from, edge.to)));
    }
    for edge in &e.removed {
        lines.push(paint.removed(&format!("- {} → {}", edge.from, edge.to)));
    }
    section("Edges (slot → slot that waits for it)", lines);

    let c = &diff.constraints;
    let mut lines = Vec::new();
    for group in &c.added {
        lines.push(paint.added(&format!(
            "+ {} max_parallel {}, {}",
            group.id,
            group.max_parallel,
            counted_hosts(&group.hosts, full)
        )));
    }
    for group in &c.removed {
        lines.push(paint.removed(&format!(
            "- {} max_parallel {}, {}",
            group.id,
            group.max_parallel,
            counted_hosts(&group.hosts, full)
        )));
    }
    for limit in &c.limits {
        lines.push(paint.changed(&format!(
            "~ {} max_parallel {} → {}{}",
            limit.group,
            limit.old,
            limit.new,
            suffix(Some(limit.direction))
        )));
    }
    for m in &c.members {
        if !m.entered.is_empty() {
            lines.push(paint.added(&format!(
                "+ {} {} {}: {}",
                plural(m.entered.len(), "host"),
                if m.entered.len() == 1 {
                    "enters"
                } else {
                    "enter"
                },
                m.group,
                hosts(&m.entered)
            )));
        }
        if !m.left.is_empty() {
            lines.push(paint.removed(&format!(
                "- {} {} {}: {}",
                plural(m.left.len(), "host"),
                if m.left.len() == 1 { "leaves" } else { "leave" },
                m.group,
                hosts(&m.left)
            )));
        }
    }
    section("Constraints", lines);

    let w = &diff.warnings;
    let lines = w
        .added
        .iter()
        .map(|x| paint.added(&format!("+ {x}")))
        .chain(w.removed.iter().map(|x| paint.removed(&format!("- {x}"))))
        .collect();
    section("Warnings", lines);

    out.push('\n');
    if let Some(line) = digests_line(diff) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{} {}", paint.heading("Summary:"), diff.summary());
    if let Some(text) = &report.text {
        let _ = writeln!(out, "\n{}", paint.heading("Plan files (--text)"));
        if text.is_empty() {
            out.push_str("(identical)\n");
        }
        for line in text.lines() {
            let line = match line.as_bytes().first() {
                Some(b'+') => paint.added(line),
                Some(b'-') => paint.removed(line),
                Some(b'@') => paint.wrap("36", line),
                _ => line.to_string(),
            };
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// `a, b, c`, cut after [`HOSTS_SHOWN`] hosts unless `full`.
fn host_list(hosts: &[String], full: bool) -> String {
    if full || hosts.len() <= HOSTS_SHOWN {
        return hosts.join(", ");
    }
    format!(
        "{}, ... (+{} more)",
        hosts[..HOSTS_SHOWN].join(", "),
        hosts.len() - HOSTS_SHOWN
    )
}

/// `3 hosts: a, b, c`, or `no hosts`.
fn counted_hosts(hosts: &[String], full: bool) -> String {
    if hosts.is_empty() {
        "no hosts".to_string()
    } else {
        format!(
            "{}: {}",
            plural(hosts.len(), "host"),
            host_list(hosts, full)
        )
    }
}

fn moving(n: usize) -> String {
    format!(
        "{} {}",
        plural(n, "host"),
        if n == 1 { "moves" } else { "move" }
    )
}

/// Where hosts were and go: slot ids (`+` between several), or the unordered lane.
fn places(slots: &[String]) -> String {
    if slots.is_empty() {
        "the unordered lane".to_string()
    } else {
        slots.join(" + ")
    }
}

fn move_text(m: &HostMove) -> String {
    format!("from {} to {}", places(&m.from), places(&m.to))
}

fn lane(order: &HostOrder) -> String {
    match &order.slot {
        Some(slot) => format!("slot {slot}"),
        None => "the unordered lane".to_string(),
    }
}

fn thread_text(thread: &ThreadSummary) -> String {
    let filter = match &thread.filter {
        Some(f) if *f != thread.name => format!(" (filter {f})"),
        _ => String::new(),
    };
    format!(
        "{}{filter}: {}, {}: {}",
        thread.name,
        plural(thread.slots.len(), "slot"),
        plural(thread.hosts, "host"),
        thread.slots.join(", ")
    )
}

/// The slots' order, without the thread name every id starts with.
fn slot_order(order: &SlotOrder) -> (String, String) {
    let prefix = format!("{}.", order.thread);
    let short = |ids: &[String]| {
        ids.iter()
            .map(|id| id.strip_prefix(&prefix).unwrap_or(id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    (short(&order.old), short(&order.new))
}

fn suffix(direction: Option<Direction>) -> &'static str {
    match direction {
        Some(Direction::Raised) => ", raised",
        Some(Direction::Lowered) => ", lowered",
        Some(Direction::Same) => ", same value",
        None => "",
    }
}

/// Rows of the options that changed: name, old, new, and which way a limit moved.
fn option_rows(o: &OptionChanges) -> Vec<(String, String, String, Option<Direction>)> {
    fn row<T>(
        name: &str,
        change: &Option<Change<T>>,
        show: impl Fn(&T) -> String,
    ) -> Option<(String, String, String, Option<Direction>)> {
        change
            .as_ref()
            .map(|c| (name.to_string(), show(&c.old), show(&c.new), None))
    }
    let command = |c: &Option<String>| match c {
        Some(c) => format!("`{c}`"),
        None => "none".to_string(),
    };
    let seconds = |s: &u64| format!("{s}s");
    let job =
        |a: &Option<Amount>| a.map_or("none (--unconstrained)".to_string(), |a| a.to_string());
    let verify = |v: &Option<Verify>| match v {
        Some(v) => format!("`{}` within {}s, every {}s", v.command, v.within, v.every),
        None => "none".to_string(),
    };
    let approval = |a: &Option<Approval>| match a {
        Some(Approval { within: Some(s) }) => format!("wait for it, within {s}s"),
        Some(Approval { within: None }) => "wait for it".to_string(),
        None => "none".to_string(),
    };
    let gates = o.gates.iter().flat_map(|g| {
        [
            row(&format!("gate after {}", g.step), &g.gate, command),
            row(&format!("approval after {}", g.step), &g.approve, approval),
        ]
    });
    [
        row("command", &o.command, command),
        row("before", &o.before, command),
        row("verify", &o.verify, verify),
        row("after", &o.after, command),
    ]
    .into_iter()
    .chain(gates)
    .chain([
        o.concurrent.as_ref().map(|c| {
            (
                "job limit".to_string(),
                job(&c.old),
                job(&c.new),
                Some(c.direction),
            )
        }),
        row("timeout", &o.timeout, seconds),
        row("retries", &o.retries, u32::to_string),
        row("max_failures", &o.max_failures, Amount::to_string),
        row("run_timeout", &o.run_timeout, |s: &Option<u64>| {
            s.map_or("none".to_string(), |s| format!("{s}s"))
        }),
    ])
    .flatten()
    .collect()
}

/// One line when the digests differ: plans made from the old inputs are stale for the new.
fn digests_line(diff: &PlanDiff) -> Option<String> {
    let short = |c: &Change<String>| format!("{} → {}", short_digest(&c.old), short_digest(&c.new));
    let d = &diff.digests;
    let parts: Vec<String> = [("config", &d.config), ("inventory", &d.inventory)]
        .into_iter()
        .filter_map(|(name, change)| change.as_ref().map(|c| format!("{name} {}", short(c))))
        .collect();
    (!parts.is_empty()).then(|| format!("Digests changed: {}", parts.join(", ")))
}

/// `sha256:` and the first 12 hex digits: enough to tell digests apart in a review.
fn short_digest(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// A code span that holds any text (a command may contain backticks or `|`).
fn code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// In a table cell, `|` ends the cell even inside a code span.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A list item's text `head` followed by hosts as code spans: inline when few, otherwise
/// folded into `<details>` on the lines after the item (indented to stay inside it).
fn md_hosts(head: &str, hosts: &[String]) -> String {
    if hosts.is_empty() {
        return format!("{head}: no hosts");
    }
    let spans = hosts.iter().map(|h| code(h)).collect::<Vec<_>>().join(", ");
    if hosts.len() <= HOSTS_SHOWN {
        format!("{head}: {spans}")
    } else {
        format!(
            // The blank line after `</details>` ends the HTML block, so the next item is
            // markdown again.
            "{head}\n  <details><summary>show the {}</summary>\n\n  {spans}\n\n  </details>\n\n",
            plural(hosts.len(), "host")
        )
    }
}

fn md_places(slots: &[String]) -> String {
    if slots.is_empty() {
        "the unordered lane".to_string()
    } else {
        slots
            .iter()
            .map(|s| code(s))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

fn md_item(out: &mut String, text: String) {
    out.push_str("- ");
    out.push_str(&text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
}

/// The markdown view, ready to paste into a pull-request comment. The summary comes first,
/// under the title, because a comment is read from the top.
pub fn markdown(report: &Report) -> String {
    let diff = report.diff;
    let mut out = format!(
        "### pogo diff: {} → {}\n\n**{}**\n",
        code(&report.old),
        code(&report.new),
        diff.summary()
    );
    if let Some(note) = &report.note {
        let _ = write!(out, "\n> {note}\n");
    }
    let mut section = |title: &str, body: String| {
        if !body.is_empty() {
            let _ = write!(out, "\n#### {title}\n\n{body}");
        }
    };

    let rows = option_rows(&diff.options);
    let mut body = String::new();
    if !rows.is_empty() {
        body.push_str("| option | old | new |\n|---|---|---|\n");
        for (name, old, new, how) in rows {
            let code_or = |v: String| {
                if let Some(inner) = v.strip_prefix('`').and_then(|v| v.strip_suffix('`')) {
                    code(inner)
                } else {
                    v
                }
            };
            let _ = writeln!(
                body,
                "| {name} | {} | {}{} |",
                cell(&code_or(old)),
                cell(&code_or(new)),
                suffix(how)
            );
        }
    }
    section("Run options", body);

    let h = &diff.hosts;
    let mut body = String::new();
    if !h.added.is_empty() {
        let head = format!("**{} added**", plural(h.added.len(), "host"));
        md_item(&mut body, md_hosts(&head, &h.added));
    }
    if !h.removed.is_empty() {
        let head = format!("**{} removed**", plural(h.removed.len(), "host"));
        md_item(&mut body, md_hosts(&head, &h.removed));
    }
    for m in &h.moved {
        let head = format!(
            "**{}** from {} to {}",
            moving(m.hosts.len()),
            md_places(&m.from),
            md_places(&m.to)
        );
        md_item(&mut body, md_hosts(&head, &m.hosts));
    }
    for o in &h.reordered {
        let lane = match &o.slot {
            Some(slot) => format!("slot {}", code(slot)),
            None => "the unordered lane".to_string(),
        };
        md_item(
            &mut body,
            format!(
                "**order of hosts** in {lane}: {} → {}",
                md_hosts_short(&o.old),
                md_hosts_short(&o.new)
            ),
        );
    }
    section("Hosts", body);

    let t = &diff.threads;
    let mut body = String::new();
    for (sign, list) in [("added", &t.added), ("removed", &t.removed)] {
        for thread in list {
            let filter = match &thread.filter {
                Some(f) if *f != thread.name => format!(" (filter {})", code(f)),
                _ => String::new(),
            };
            md_item(
                &mut body,
                format!(
                    "**{sign}** {}{filter}: {}, {}: {}",
                    code(&thread.name),
                    plural(thread.slots.len(), "slot"),
                    plural(thread.hosts, "host"),
                    thread
                        .slots
                        .iter()
                        .map(|s| code(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    if let Some(order) = &t.order {
        let names = |list: &[String]| list.iter().map(|s| code(s)).collect::<Vec<_>>().join(", ");
        md_item(
            &mut body,
            format!("**order**: {} → {}", names(&order.old), names(&order.new)),
        );
    }
    for f in &t.filters {
        let filter = |x: &Option<String>| x.as_deref().map_or("none".to_string(), code);
        md_item(
            &mut body,
            format!(
                "**filter** of {}: {} → {}",
                code(&f.thread),
                filter(&f.old),
                filter(&f.new)
            ),
        );
    }
    section("Threads", body);

    let s = &diff.slots;
    let mut body = String::new();
    for (sign, list) in [("added", &s.added), ("removed", &s.removed)] {
        for slot in list {
            let head = format!(
                "**{sign}** {} ({})",
                code(&slot.id),
                plural(slot.hosts.len(), "host")
            );
            md_item(&mut body, md_hosts(&head, &slot.hosts));
        }
    }
    for order in &s.reordered {
        let (old, new) = slot_order(order);
        md_item(
            &mut body,
            format!(
                "**order** in thread {}: {} → {}",
                code(&order.thread),
                code(&old),
                code(&new)
            ),
        );
    }
    section("Slots", body);

    let e = &diff.edges;
    let mut body = String::new();
    for (sign, list) in [("added", &e.added), ("removed", &e.removed)] {
        for edge in list {
            md_item(
                &mut body,
                format!("**{sign}** {} → {}", code(&edge.from), code(&edge.to)),
            );
        }
    }
    section("Edges (slot → slot that waits for it)", body);

    let c = &diff.constraints;
    let mut body = String::new();
    for (sign, list) in [("added", &c.added), ("removed", &c.removed)] {
        for group in list {
            let head = format!(
                "**{sign}** {} max_parallel {} ({})",
                code(&group.id),
                group.max_parallel,
                plural(group.hosts.len(), "host")
            );
            md_item(&mut body, md_hosts(&head, &group.hosts));
        }
    }
    for limit in &c.limits {
        md_item(
            &mut body,
            format!(
                "{} max_parallel **{} → {}**{}",
                code(&limit.group),
                limit.old,
                limit.new,
                suffix(Some(limit.direction))
            ),
        );
    }
    for m in &c.members {
        for (verb, list) in [("enter", &m.entered), ("leave", &m.left)] {
            if !list.is_empty() {
                let verb = if list.len() == 1 {
                    format!("{verb}s")
                } else {
                    verb.to_string()
                };
                let head = format!(
                    "**{} {verb}** {}",
                    plural(list.len(), "host"),
                    code(&m.group)
                );
                md_item(&mut body, md_hosts(&head, list));
            }
        }
    }
    section("Constraints", body);

    let w = &diff.warnings;
    let mut body = String::new();
    for (sign, list) in [("new", &w.added), ("gone", &w.removed)] {
        for warning in list {
            md_item(&mut body, format!("**{sign}**: {warning}"));
        }
    }
    section("Warnings", body);

    if let Some(line) = digests_line(diff) {
        let _ = write!(out, "\n{line}\n");
    }
    if let Some(text) = &report.text {
        let fence = "`".repeat(3.max(longest_backtick_run(text) + 1));
        let _ = write!(
            out,
            "\n<details><summary>Plan files (unified diff)</summary>\n\n{fence}diff\n{text}{fence}\n\n</details>\n"
        );
    }
    out
}

/// A host order in a list item: cut, since a `<details>` block cannot sit on either side of
/// an arrow.
fn md_hosts_short(hosts: &[String]) -> String {
    let mut shown: Vec<String> = hosts.iter().take(HOSTS_SHOWN).map(|h| code(h)).collect();
    if hosts.len() > HOSTS_SHOWN {
        shown.push(format!("... (+{} more)", hosts.len() - HOSTS_SHOWN));
    }
    shown.join(", ")
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Version of the JSON document below; bumped when a key is removed or changes meaning.
const JSON_FORMAT_VERSION: u32 = 1;

/// `pogo diff --format json`. Field order is key order; `docs/diff.md` documents every key.
#[derive(Serialize)]
struct JsonReport<'a> {
    format_version: u32,
    old: &'a str,
    new: &'a str,
    /// Whether the rollouts differ: the exit status is 2 when true.
    changed: bool,
    summary: String,
    note: Option<&'a str>,
    changes: &'a PlanDiff,
    text: Option<&'a str>,
}

pub fn json(report: &Report) -> String {
    let doc = JsonReport {
        format_version: JSON_FORMAT_VERSION,
        old: &report.old,
        new: &report.new,
        changed: !report.diff.is_empty(),
        summary: report.diff.summary(),
        note: report.note.as_deref(),
        changes: report.diff,
        text: report.text.as_deref(),
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("a diff always serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_backticks() {
        assert_eq!(code("date"), "`date`");
        assert_eq!(code("echo `id`"), "`` echo `id` ``");
        assert_eq!(code("a``b"), "```a``b```");
    }

    #[test]
    fn long_host_lists_are_cut_in_the_terminal() {
        let hosts: Vec<String> = (1..=25).map(|i| format!("h{i}")).collect();
        assert!(host_list(&hosts, false).ends_with("h10, ... (+15 more)"));
        assert!(host_list(&hosts, true).ends_with("h24, h25"));
        let md = md_hosts("**added**", &hosts);
        assert!(md.starts_with("**added**\n  <details>"), "{md}");
        assert_eq!(md_hosts("x", &hosts[..2]), "x: `h1`, `h2`");
    }

    #[test]
    fn colours_only_when_asked() {
        let diff = PlanDiff {
            hosts: pogo_planner::diff::HostChanges {
                added: vec!["h1".to_string()],
                ..Default::default()
            },
            ..PlanDiff::default()
        };
        let report = Report {
            old: "a".to_string(),
            new: "b".to_string(),
            note: None,
            diff: &diff,
            text: None,
        };
        let plain = terminal(&report, false, false);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(plain.contains("  + 1 host added: h1\n"), "{plain}");
        let coloured = terminal(&report, false, true);
        assert!(
            coloured.contains("\x1b[32m+ 1 host added: h1\x1b[0m"),
            "{coloured}"
        );
        assert!(coloured.contains("\x1b[1mHosts\x1b[0m"), "{coloured}");
    }

    #[test]
    fn digests_are_shortened() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
    }
}
