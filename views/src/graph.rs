//! Graph renderings of a plan: Mermaid (which GitHub and GitLab render inside markdown) and
//! Graphviz dot. Both draw the same picture, built once from the plan alone:
//!
//! - one node per slot, labelled with its id and host count (the hosts themselves when there
//!   are at most [`HOSTS_LISTED`]); threads are subgraphs (clusters), sequence edges arrows;
//! - the unordered lane as one node, when it holds a host;
//! - one node per constraint group, in a "constraint groups" subgraph: its id, `max_parallel`
//!   (with the percentage and its base) and host count;
//! - which groups limit a slot: written in the slot's label (`limited by $colo.east`), not
//!   drawn: a group usually spans several threads, and links from groups to slots cross the
//!   whole drawing and tangle it long before a plan is large;
//! - slots that share a host across threads (the host waits for both): outlined, and linked
//!   by a dashed line naming the hosts when each has few such partners, otherwise named in
//!   the slot's label, so that each pair appears exactly once and a large plan gains text,
//!   not a web of links.
//!
//! Never a node per host: a plan of 100,000 hosts draws as many nodes as it has slots and
//! groups. Labels come from configs (host and tag names), so each format escapes them.
//! Output order is plan order throughout; the same plan always gives the same bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use pogo_model::{Plan, JOB_GROUP_ID};

use crate::text::plural;

/// Host lists up to this long are written out; longer ones show the first host and a count.
const HOSTS_LISTED: usize = 4;
/// Lists of slot or group names in a label show this many, then `+N more`.
const NAMES_LISTED: usize = 3;
/// Two slots sharing hosts are linked when each shares hosts with at most this many slots.
const LINKS_PER_NODE: usize = 4;
/// Above this many shared-host links, none is drawn and the labels carry the relation.
const LINKS_MAX: usize = 64;

/// GitHub's Mermaid refuses diagrams with more links or characters than this (Mermaid's
/// default `maxEdges` and `maxTextSize`).
const MERMAID_MAX_EDGES: usize = 500;
const MERMAID_MAX_TEXT: usize = 50_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Slot,
    /// A slot with no targeted host: complete at once.
    EmptySlot,
    Lane,
}

struct Node {
    id: String,
    kind: NodeKind,
    /// Holds a host that slots of other threads hold too.
    shared: bool,
    lines: Vec<String>,
}

struct Cluster {
    title: String,
    nodes: std::ops::Range<usize>,
}

struct Group {
    id: String,
    lines: Vec<String>,
}

/// The picture, independent of the format.
struct Graph {
    summary: String,
    clusters: Vec<Cluster>,
    nodes: Vec<Node>,
    groups: Vec<Group>,
    /// Sequence edges, as node indexes.
    edges: Vec<(usize, usize)>,
    /// Slots that share hosts across threads, with a label naming the hosts.
    shared_links: Vec<(usize, usize, String)>,
    /// Each host's attempt, when it has phases around its command: one line each.
    phases: Vec<String>,
}

impl Graph {
    fn of(plan: &Plan) -> Graph {
        let mut nodes = Vec::new();
        let mut clusters = Vec::new();
        let mut by_slot_id: HashMap<&str, usize> = HashMap::new();
        let mut members: Vec<&[String]> = Vec::new();
        for thread in &plan.threads {
            let start = nodes.len();
            for slot in &thread.slots {
                by_slot_id.insert(&slot.id, nodes.len());
                members.push(&slot.hosts);
                nodes.push(Node {
                    id: format!("s{}", nodes.len()),
                    kind: if slot.hosts.is_empty() {
                        NodeKind::EmptySlot
                    } else {
                        NodeKind::Slot
                    },
                    shared: false,
                    lines: {
                        let mut lines = vec![slot.id.clone(), host_summary(&slot.hosts)];
                        if let Some(gate) = &slot.gate {
                            lines.push(format!("then gate `{gate}`"));
                        }
                        match slot.approve.map(|a| a.within) {
                            Some(Some(within)) => {
                                lines.push(format!("then approval (within {within}s)"))
                            }
                            Some(None) => lines.push("then approval".to_string()),
                            None => {}
                        }
                        lines
                    },
                });
            }
            clusters.push(Cluster {
                title: match &thread.filter {
                    Some(filter) if *filter != thread.name => {
                        format!("{} ({filter})", thread.name)
                    }
                    _ => thread.name.clone(),
                },
                nodes: start..nodes.len(),
            });
        }
        let slot_count = nodes.len();
        if !plan.unordered.is_empty() {
            let mut lines = vec!["unordered".to_string(), host_summary(&plan.unordered)];
            if !plan.not_in_config.is_empty() {
                lines.push(format!("{} not in the config", plan.not_in_config.len()));
            }
            members.push(&plan.unordered);
            nodes.push(Node {
                id: "u".to_string(),
                kind: NodeKind::Lane,
                shared: false,
                lines,
            });
        }

        // Which nodes hold each host: one node for most hosts, several for a host that
        // several threads hold.
        let mut holders: HashMap<&str, Vec<usize>> = HashMap::with_capacity(plan.hosts.len());
        for (node, hosts) in members.iter().enumerate() {
            for host in hosts.iter() {
                holders.entry(host).or_default().push(node);
            }
        }

        // Slots sharing hosts, each pair once, hosts in the first slot's order.
        let mut shared: BTreeMap<(usize, usize), Vec<&str>> = BTreeMap::new();
        for (node, hosts) in members.iter().enumerate().take(slot_count) {
            for host in hosts.iter() {
                let holding = &holders[host.as_str()];
                if holding.len() > 1 {
                    for &other in holding.iter().filter(|&&other| other > node) {
                        shared.entry((node, other)).or_default().push(host);
                    }
                }
            }
        }
        let mut partners = vec![0usize; nodes.len()];
        for &(a, b) in shared.keys() {
            partners[a] += 1;
            partners[b] += 1;
            nodes[a].shared = true;
            nodes[b].shared = true;
        }
        let mut linked_pairs: Vec<bool> = shared
            .keys()
            .map(|&(a, b)| partners[a] <= LINKS_PER_NODE && partners[b] <= LINKS_PER_NODE)
            .collect();
        if linked_pairs.iter().filter(|&&l| l).count() > LINKS_MAX {
            linked_pairs.iter_mut().for_each(|l| *l = false);
        }
        let mut unlinked_partners: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut shared_links = Vec::new();
        for ((&(a, b), hosts), linked) in shared.iter().zip(linked_pairs) {
            if linked {
                shared_links.push((a, b, host_list(hosts)));
            } else {
                unlinked_partners[a].push(b);
                unlinked_partners[b].push(a);
            }
        }
        for (node, others) in unlinked_partners.iter_mut().enumerate() {
            if !others.is_empty() {
                others.sort_unstable();
                let names: Vec<&str> = others.iter().map(|&o| nodes[o].lines[0].as_str()).collect();
                let line = format!("hosts also in {}", name_list(&names));
                nodes[node].lines.push(line);
            }
        }

        // Constraint groups and the nodes they limit. The job-wide group holds every target,
        // so it limits every node: saying so once, in its own label, is enough.
        let mut groups = Vec::new();
        let mut touched: Vec<BTreeSet<usize>> = Vec::new();
        for group in &plan.constraints {
            let is_job = group.id == JOB_GROUP_ID;
            let mut lines = Vec::new();
            if is_job {
                lines.push("job-wide limit".to_string());
            } else if group.from != group.id {
                lines.push(format!("{} (from {})", group.id, group.from));
            } else {
                lines.push(group.id.clone());
            }
            lines.push(format!("max_parallel {}", group.max_parallel));
            let nodes_of: BTreeSet<usize> = if is_job {
                BTreeSet::new()
            } else {
                group
                    .hosts
                    .iter()
                    .filter_map(|h| holders.get(h.as_str()))
                    .flatten()
                    .copied()
                    .collect()
            };
            if is_job {
                lines.push(format!("all {}", plural(group.hosts.len(), "target")));
            } else {
                lines.push(host_summary(&group.hosts));
            }
            groups.push(Group {
                id: format!("g{}", groups.len()),
                lines,
            });
            touched.push(nodes_of);
        }
        let mut limited_by: Vec<Vec<&str>> = vec![Vec::new(); nodes.len()];
        for (g, nodes_of) in touched.iter().enumerate() {
            let slots = nodes_of.range(..slot_count).count();
            let lane = nodes_of.len() > slots;
            let line = match (slots, lane) {
                (0, false) => None,
                (0, true) => Some("limits the unordered lane".to_string()),
                (n, false) => Some(format!("limits {}", plural(n, "slot"))),
                (n, true) => Some(format!(
                    "limits {} and the unordered lane",
                    plural(n, "slot")
                )),
            };
            groups[g].lines.extend(line);
            for &n in nodes_of {
                limited_by[n].push(&plan.constraints[g].id);
            }
        }
        for (node, names) in limited_by.iter().enumerate() {
            if !names.is_empty() {
                let line = format!("limited by {}", name_list(names));
                nodes[node].lines.push(line);
            }
        }

        let edges = plan
            .edges
            .iter()
            .filter_map(|e| {
                Some((
                    *by_slot_id.get(e.from.as_str())?,
                    *by_slot_id.get(e.to.as_str())?,
                ))
            })
            .collect();
        Graph {
            summary: format!(
                "pogo plan: {} in {} ({} in all), {} unordered, {}",
                plural(plan.hosts.len(), "host"),
                plural(plan.threads.len(), "thread"),
                plural(slot_count, "slot"),
                plan.unordered.len(),
                plural(plan.constraints.len(), "constraint group")
            ),
            clusters,
            nodes,
            groups,
            edges,
            shared_links,
            phases: phase_lines(&plan.options),
        }
    }
}

/// `each host:`, then `before `…``, `the command`, `verify `…` (every 5s, within 60s)`,
/// `after `…``; nothing for a plan whose hosts run their command alone.
fn phase_lines(options: &pogo_model::RunOptions) -> Vec<String> {
    if !options.has_phases() {
        return Vec::new();
    }
    let mut lines = vec!["each host:".to_string()];
    if let Some(before) = &options.before {
        lines.push(format!("before `{before}`"));
    }
    lines.push("the command".to_string());
    if let Some(verify) = &options.verify {
        lines.push(format!(
            "verify `{}` (every {}s, within {}s)",
            verify.command, verify.every, verify.within
        ));
    }
    if let Some(after) = &options.after {
        lines.push(format!("after `{after}`"));
    }
    lines
}

/// `3 hosts: a, b, c`, or `200 hosts: web01 … +199 more` past [`HOSTS_LISTED`].
fn host_summary(hosts: &[String]) -> String {
    match hosts.len() {
        0 => "no targeted host".to_string(),
        n => format!("{}: {}", plural(n, "host"), host_list(hosts)),
    }
}

fn host_list<S: AsRef<str>>(hosts: &[S]) -> String {
    if hosts.len() <= HOSTS_LISTED {
        hosts
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        format!("{} … +{} more", hosts[0].as_ref(), hosts.len() - 1)
    }
}

/// `a, b, c`, or `a, b, c, +4 more` past [`NAMES_LISTED`].
fn name_list(names: &[&str]) -> String {
    if names.len() <= NAMES_LISTED {
        names.join(", ")
    } else {
        format!(
            "{}, +{} more",
            names[..NAMES_LISTED].join(", "),
            names.len() - NAMES_LISTED
        )
    }
}

/// A Mermaid flowchart of the plan.
pub fn mermaid(plan: &Plan) -> String {
    let graph = Graph::of(plan);
    let mut out = String::new();
    let label = |lines: &[String]| {
        lines
            .iter()
            .map(|l| mermaid_escape(l))
            .collect::<Vec<_>>()
            .join("<br/>")
    };
    out.push_str("flowchart LR\n");
    let _ = writeln!(out, "  %% {}", graph.summary);
    let node_line = |out: &mut String, node: &Node| {
        let text = label(&node.lines);
        // Only a slot with hosts can share one; the lane holds hosts in no slot.
        let (shape, class) = match node.kind {
            NodeKind::Slot if node.shared => (format!("(\"{text}\")"), ":::shared"),
            NodeKind::Slot => (format!("(\"{text}\")"), ""),
            NodeKind::EmptySlot => (format!("(\"{text}\")"), ":::empty"),
            NodeKind::Lane => (format!("([\"{text}\"])"), ":::lane"),
        };
        let indent = if node.kind == NodeKind::Lane {
            "  "
        } else {
            "    "
        };
        let _ = writeln!(out, "{indent}{}{shape}{class}", node.id);
    };
    for (i, cluster) in graph.clusters.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph t{i}[\"{}\"]",
            mermaid_escape(&cluster.title)
        );
        for node in &graph.nodes[cluster.nodes.clone()] {
            node_line(&mut out, node);
        }
        out.push_str("  end\n");
    }
    for node in graph.nodes.iter().filter(|n| n.kind == NodeKind::Lane) {
        node_line(&mut out, node);
    }
    if !graph.phases.is_empty() {
        let _ = writeln!(out, "  phases[\"{}\"]:::phases", label(&graph.phases));
    }
    if !graph.groups.is_empty() {
        out.push_str("  subgraph groups[\"constraint groups\"]\n");
        // Side by side under the threads rather than one tall column.
        out.push_str("    direction TB\n");
        for group in &graph.groups {
            let _ = writeln!(out, "    {}>\"{}\"]:::group", group.id, label(&group.lines));
        }
        out.push_str("  end\n");
    }
    for &(a, b) in &graph.edges {
        let _ = writeln!(out, "  {} --> {}", graph.nodes[a].id, graph.nodes[b].id);
    }
    // Links are numbered in the order they are written, for `linkStyle`.
    let mut shared_styles = Vec::new();
    for (k, (a, b, hosts)) in graph.shared_links.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {} <-.->|\"{}\"| {}",
            graph.nodes[*a].id,
            mermaid_escape(hosts),
            graph.nodes[*b].id
        );
        shared_styles.push((graph.edges.len() + k).to_string());
    }
    // Strokes and dashes only, no fills or text colours, so the diagram reads in light and
    // dark themes alike. Only the classes in use are defined.
    for (class, style) in [
        ("empty", "stroke-dasharray:5 5"),
        ("lane", "stroke-dasharray:5 5"),
        ("shared", "stroke:#d97706,stroke-width:3px"),
        ("group", "stroke-dasharray:2 2"),
        ("phases", "stroke-dasharray:2 2"),
    ] {
        if out.contains(&format!(":::{class}\n")) {
            let _ = writeln!(out, "  classDef {class} {style}");
        }
    }
    if !shared_styles.is_empty() {
        let _ = writeln!(
            out,
            "  linkStyle {} stroke:#d97706,stroke-width:2px",
            shared_styles.join(",")
        );
    }
    out
}

/// Why GitHub would not render this Mermaid text, if it would not.
pub fn mermaid_too_large(text: &str) -> Option<String> {
    // Links are the lines `  sN --> sM` and `  sN <-.->|"…"| sM`; labels may hold arrows too.
    let links = text
        .lines()
        .filter_map(|l| l.strip_prefix("  s")?.split_once(' '))
        .filter(|(_, rest)| rest.starts_with("--> ") || rest.starts_with("<-.->|"))
        .count();
    let mut reasons = Vec::new();
    if links > MERMAID_MAX_EDGES {
        reasons.push(format!("{links} links (at most {MERMAID_MAX_EDGES})"));
    }
    let characters = text.chars().count();
    if characters > MERMAID_MAX_TEXT {
        reasons.push(format!(
            "{characters} characters (at most {MERMAID_MAX_TEXT})"
        ));
    }
    if reasons.is_empty() {
        None
    } else {
        Some(format!(
            "warning: this diagram has {}, more than GitHub's and GitLab's Mermaid render by \
             default; use --format dot for a plan this large\n",
            reasons.join(" and ")
        ))
    }
}

/// Text inside a quoted Mermaid label. Mermaid reads `#NN;` as a character code (its own
/// escape) and renders labels as HTML, so every character that means something to either is
/// written as a code: `"` would end the label, `#` start a code, `<`, `>` and `&` make HTML,
/// a backtick a markdown label, and `$$` starts maths, so a `$` next to another `$` is a code
/// too. A lone `$` is plain text and stays as it is, so that `$colo.east` reads as written in
/// the diagram's source too. Brackets, braces, `|` and `%` are plain text inside quotes.
fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let dollars = c == '$' && (i > 0 && chars[i - 1] == '$' || chars.get(i + 1) == Some(&'$'));
        match c {
            '"' | '#' | '&' | '<' | '>' | '`' => {
                let _ = write!(out, "#{};", u32::from(c));
            }
            '$' if dollars => out.push_str("#36;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Graphviz dot digraph of the plan.
pub fn dot(plan: &Plan) -> String {
    let graph = Graph::of(plan);
    let label = |lines: &[String]| {
        lines
            .iter()
            .map(|l| dot_escape(l))
            .collect::<Vec<_>>()
            .join("\\n")
    };
    let mut out = String::new();
    let _ = writeln!(out, "// {}", graph.summary);
    out.push_str("digraph plan {\n");
    out.push_str("  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, newrank=true];\n");
    out.push_str("  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    let node_line = |out: &mut String, node: &Node, indent: &str| {
        let mut attributes = vec![format!("label=\"{}\"", label(&node.lines))];
        match node.kind {
            NodeKind::Slot => {}
            NodeKind::EmptySlot => attributes.push("style=\"rounded,dashed\"".to_string()),
            NodeKind::Lane => {
                attributes.push("shape=box".to_string());
                attributes.push("style=\"rounded,dashed\"".to_string());
            }
        }
        if node.shared {
            attributes.push("color=\"#d97706\", penwidth=2".to_string());
        }
        let _ = writeln!(out, "{indent}{} [{}];", node.id, attributes.join(", "));
    };
    // With rankdir=LR, dot stacks what is declared first at the bottom: declaring the
    // groups, the lane and then the threads from last to first puts the first thread on top,
    // as in the schedule table.
    if !graph.phases.is_empty() {
        let _ = writeln!(
            out,
            "  phases [shape=note, style=\"\", label=\"{}\"];",
            label(&graph.phases)
        );
    }
    if !graph.groups.is_empty() {
        out.push_str("  subgraph cluster_groups {\n");
        out.push_str("    label=\"constraint groups\";\n");
        out.push_str("    style=dashed;\n");
        for group in &graph.groups {
            let _ = writeln!(
                out,
                "    {} [shape=note, style=\"\", label=\"{}\"];",
                group.id,
                label(&group.lines)
            );
        }
        out.push_str("  }\n");
    }
    for node in graph.nodes.iter().filter(|n| n.kind == NodeKind::Lane) {
        node_line(&mut out, node, "  ");
    }
    for (i, cluster) in graph.clusters.iter().enumerate().rev() {
        let _ = writeln!(out, "  subgraph cluster_t{i} {{");
        let _ = writeln!(out, "    label=\"{}\";", dot_escape(&cluster.title));
        for node in &graph.nodes[cluster.nodes.clone()] {
            node_line(&mut out, node, "    ");
        }
        out.push_str("  }\n");
    }
    for &(a, b) in &graph.edges {
        let _ = writeln!(out, "  {} -> {};", graph.nodes[a].id, graph.nodes[b].id);
    }
    // Links that are not "must complete before" must not pull nodes into other ranks.
    for (a, b, hosts) in &graph.shared_links {
        let _ = writeln!(
            out,
            "  {} -> {} [dir=both, style=dashed, color=\"#d97706\", constraint=false, xlabel=\"{}\"];",
            graph.nodes[*a].id,
            graph.nodes[*b].id,
            dot_escape(hosts)
        );
    }
    // An invisible chain lays the groups out in a row under the threads, one per rank,
    // instead of a column as tall as the plan has groups.
    if graph.groups.len() > 1 {
        let chain: Vec<&str> = graph.groups.iter().map(|g| g.id.as_str()).collect();
        let _ = writeln!(out, "  {} [style=invis];", chain.join(" -> "));
    }
    out.push_str("}\n");
    out
}

/// Text inside a quoted dot string: `"` and `\` are escaped, so a name cannot end the string
/// or smuggle in one of dot's label escapes (`\n`, `\N`, `\G`...), and `&` is `&amp;`, because
/// Graphviz reads HTML entities in labels (`amp&lt;` would be drawn `amp<`).
fn dot_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '&' => out.push_str("&amp;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use pogo_model::{
        Amount, ConstraintSpec, Digests, EdgeSpec, RunOptions, SlotSpec, SourceSpec, ThreadSpec,
        FORMAT_VERSION,
    };
    use pogo_planner::{compile, Config, NoCommands, PlanRequest};

    use super::*;

    /// Names that mean something to Mermaid, HTML, dot or a shell.
    const HOSTILE: [&str; 8] = [
        "q\"uote",
        "hash#35;x",
        "dollars$$x$$",
        "<b>bold</b>",
        "a&amp;b",
        "back`tick\\n",
        "pipe|[br]{c}%%",
        "slash\\\"end",
    ];

    fn slot(id: &str, hosts: &[&str]) -> SlotSpec {
        SlotSpec {
            id: id.to_string(),
            step: id.to_string(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            gate: None,
            approve: None,
        }
    }

    /// A plan written by hand: thread `t"1` with two slots, thread `t$$2` sharing a host, an
    /// unordered host and a group, all with hostile names.
    fn hostile_plan() -> Plan {
        let hosts: Vec<String> = HOSTILE.iter().map(|h| h.to_string()).collect();
        Plan {
            format_version: FORMAT_VERSION,
            producer: "pogo test".to_string(),
            source: SourceSpec {
                config: "x".to_string(),
                spec: None,
            },
            digests: Digests {
                config: "sha256:0".to_string(),
                inventory: "sha256:0".to_string(),
            },
            command: None,
            options: RunOptions {
                timeout: 600,
                retries: 0,
                max_failures: Amount::number(0),
                run_timeout: None,
                max_output: None,
                before: None,
                verify: None,
                after: None,
            },
            hosts: hosts.clone(),
            threads: vec![
                ThreadSpec {
                    name: "t\"1 <x>".to_string(),
                    filter: None,
                    slots: vec![
                        slot("t\"1.$a#b", &HOSTILE[..2]),
                        slot("t\"1.<c>&d", &HOSTILE[2..4]),
                    ],
                },
                ThreadSpec {
                    name: "t$$2".to_string(),
                    filter: Some("$a.$b".to_string()),
                    slots: vec![slot("t$$2.`e`", &[HOSTILE[1], HOSTILE[4], HOSTILE[5]])],
                },
            ],
            unordered: hosts[6..].to_vec(),
            not_in_config: vec![hosts[7].clone()],
            external_tags: vec![],
            constraints: vec![ConstraintSpec {
                id: "$g\"<&>".to_string(),
                from: "$g".to_string(),
                max_parallel: Amount {
                    value: 2,
                    percent: Some(25),
                    base: Some(8),
                },
                hosts: vec![hosts[0].clone(), hosts[6].clone()],
            }],
            edges: vec![EdgeSpec {
                from: "t\"1.$a#b".to_string(),
                to: "t\"1.<c>&d".to_string(),
            }],
            warnings: vec![],
            seal: None,
        }
    }

    /// The quoted strings of a line of Mermaid, as written (between `"`s).
    fn mermaid_strings(line: &str) -> Vec<&str> {
        line.split('"').skip(1).step_by(2).collect()
    }

    /// What Mermaid shows for a label: codes decoded, `<br/>` a line break.
    fn mermaid_decode(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('#') {
            out.push_str(&rest[..at]);
            let end = rest[at..].find(';').expect("a code ends with `;`") + at;
            let code: u32 = rest[at + 1..end].parse().expect("a code is a number");
            out.push(char::from_u32(code).unwrap());
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out.replace("<br/>", "\n")
    }

    /// Checks the structure of the subset of Mermaid that [`mermaid`] writes: known
    /// statements only, balanced subgraphs, links between declared nodes, and labels that
    /// neither end early nor carry markup. Returns the decoded labels.
    fn check_mermaid(text: &str) -> Vec<String> {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("flowchart LR"));
        let mut depth = 0;
        let mut declared = BTreeSet::new();
        let mut labels = Vec::new();
        for line in lines {
            let t = line.trim_start();
            for s in mermaid_strings(t) {
                let markup = s.replace("<br/>", "");
                assert!(
                    !markup.contains(['<', '>', '&', '`']) && !s.contains("$$"),
                    "unescaped text in {line}"
                );
                labels.push(mermaid_decode(s));
            }
            assert_eq!(t.matches('"').count() % 2, 0, "unbalanced quotes: {line}");
            let head = t.split(['(', '>', '[', ' ']).next().unwrap();
            if t.starts_with("%% ") || t == "direction TB" {
            } else if t.starts_with("subgraph ") {
                depth += 1;
                assert!(t.ends_with("\"]"), "{line}");
            } else if t == "end" {
                depth -= 1;
                assert!(depth >= 0, "`end` without subgraph");
            } else if t.starts_with("classDef ") || t.starts_with("linkStyle ") {
                assert!(!t.contains('"'), "{line}");
            } else if let Some(rest) = t[head.len()..].strip_prefix(' ') {
                let arrow = rest.split(' ').next().unwrap();
                assert!(
                    arrow == "-->" || rest.starts_with("<-.->|\""),
                    "unknown statement: {line}"
                );
                let to = rest.rsplit(' ').next().unwrap();
                assert!(
                    declared.contains(head),
                    "link from undeclared {head}: {line}"
                );
                assert!(declared.contains(to), "link to undeclared {to}: {line}");
            } else {
                // A node: `id("…")`, `id(["…"])`, `id>"…"]` or `id["…"]` (the phases), with
                // an optional `:::class`.
                let shape = t[head.len()..].split(":::").next().unwrap();
                assert!(
                    (shape.starts_with("(\"") && shape.ends_with("\")"))
                        || (shape.starts_with("[\"") && shape.ends_with("\"]"))
                        || (shape.starts_with("([\"") && shape.ends_with("\"])"))
                        || (shape.starts_with(">\"") && shape.ends_with("\"]")),
                    "unknown node shape: {line}"
                );
                assert!(declared.insert(head.to_string()), "{head} declared twice");
            }
        }
        assert_eq!(depth, 0, "unclosed subgraph");
        labels
    }

    /// The quoted strings of dot text, unescaped.
    fn dot_strings(text: &str) -> Vec<String> {
        let mut strings = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut s = String::new();
            loop {
                match chars.next().expect("a dot string ends") {
                    '"' => break,
                    '\\' => match chars.next().unwrap() {
                        'n' => s.push('\n'),
                        c @ ('"' | '\\') => s.push(c),
                        c => panic!("unexpected escape \\{c} in dot text"),
                    },
                    c => s.push(c),
                }
            }
            strings.push(s.replace("&amp;", "&"));
        }
        strings
    }

    #[test]
    fn mermaid_labels_escape_what_mermaid_or_html_would_read() {
        assert_eq!(
            mermaid_escape("a\"b#c<d>e&f`g$h$$i"),
            "a#34;b#35;c#60;d#62;e#38;f#96;g$h#36;#36;i"
        );
        let text = mermaid(&hostile_plan());
        let labels = check_mermaid(&text);
        // Every name comes through whole: the escaping loses nothing.
        for name in HOSTILE
            .iter()
            .chain(&["t\"1 <x>", "t$$2 ($a.$b)", "$g\"<&>"])
        {
            assert!(
                labels.iter().any(|l| l.contains(name)),
                "{name} is not in any label:\n{text}"
            );
        }
        assert!(labels
            .contains(&"t\"1.$a#b\n2 hosts: q\"uote, hash#35;x\nlimited by $g\"<&>".to_string()));
    }

    #[test]
    fn dot_labels_escape_quotes_and_backslashes() {
        assert_eq!(dot_escape("a\"b\\nc&lt;"), "a\\\"b\\\\nc&amp;lt;");
        let text = dot(&hostile_plan());
        let strings = dot_strings(&text);
        for name in HOSTILE {
            assert!(
                strings.iter().any(|s| s.contains(name)),
                "{name} is not in any label:\n{text}"
            );
        }
        assert!(strings
            .contains(&"t\"1.$a#b\n2 hosts: q\"uote, hash#35;x\nlimited by $g\"<&>".to_string()));
    }

    #[test]
    fn shared_slots_are_linked_and_groups_named_in_slot_labels() {
        let plan = hostile_plan();
        let text = mermaid(&plan);
        // hash#35;x is in a slot of each thread.
        assert!(text.contains("  s0 <-.->|\"hash#35;35;x\"| s2\n"), "{text}");
        assert!(
            text.contains(
                "  s0(\"t#34;1.$a#35;b<br/>2 hosts: q#34;uote, hash#35;35;x<br/>\
                 limited by $g#34;#60;#38;#62;\"):::shared\n"
            ),
            "{text}"
        );
        // The group holds a host of s0 and one of the lane: their labels say so.
        assert!(
            text.contains(
                "slash\\#34;end<br/>1 not in the config<br/>limited by $g#34;#60;#38;#62;\"])"
            ),
            "{text}"
        );
        assert!(
            text.contains("<br/>limits 1 slot and the unordered lane\"]:::group"),
            "{text}"
        );
        assert!(text.contains("  linkStyle 1 stroke:#d97706"), "{text}");
        let dot = dot(&plan);
        assert!(dot.contains("s0 -> s2 [dir=both"), "{dot}");
        assert!(!dot.contains("g0 ->"), "{dot}");
    }

    #[test]
    fn the_mermaid_of_every_golden_plan_is_well_formed() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden");
        let mut checked = 0;
        for dir in ["cfgs", "examples"] {
            for entry in std::fs::read_dir(golden.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if !path.to_string_lossy().ends_with(".plan.json") {
                    continue;
                }
                let plan = Plan::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
                check_mermaid(&mermaid(&plan));
                checked += 1;
            }
        }
        assert!(checked > 10, "the golden plans are missing");
    }

    fn bench_like_plan(colos: usize, per_role: usize) -> Plan {
        // bench/gen-fleet.py's shape: colos x 5 roles, a thread per role over the colos, a
        // limit per colo and per role.
        let roles = ["web", "api", "db", "cache", "queue"];
        let mut text = String::from("tag:\n  colo:\n");
        for c in 1..=colos {
            let _ = writeln!(text, "    c{c:03}:");
            for role in roles {
                let _ = writeln!(text, "      - {role}-c{c:03}-[001-{per_role:03}]");
            }
        }
        text.push_str("  role:\n");
        for role in roles {
            let _ = writeln!(text, "    {role}:");
            for c in 1..=colos {
                let _ = writeln!(text, "      - {role}-c{c:03}-[001-{per_role:03}]");
            }
        }
        text.push_str("sequence:\n");
        for role in roles {
            let _ = writeln!(text, "  $role.{role}:");
            for c in 1..=colos {
                let _ = writeln!(text, "    - $colo.c{c:03}");
            }
        }
        text.push_str(
            "constraint:\n  $colo:\n    max_parallel: 10%\n  $role:\n    max_parallel: 2%\n",
        );
        let config = Config::parse_with("fleet.cfg", &text, &NoCommands).unwrap();
        compile(&config, &PlanRequest::default()).unwrap()
    }

    #[test]
    fn a_plan_of_500_slots_and_106_groups_stays_small() {
        let plan = bench_like_plan(100, 20);
        assert_eq!(plan.slots().count(), 500);
        assert_eq!(plan.constraints.len(), 106);
        let text = mermaid(&plan);
        check_mermaid(&text);
        let nodes = text.lines().filter(|l| l.starts_with("    s")).count();
        let groups = text.lines().filter(|l| l.starts_with("    g")).count();
        let links = text
            .lines()
            .filter(|l| l.contains(" --> ") || l.contains("<-.->"))
            .count();
        // One node per slot and per group, the sequence edges and no other link: every group
        // limits 5 slots or more, so the slots' labels name them instead.
        assert_eq!((nodes, groups, links), (500, 106, 495));
        assert!(text.len() < 100_000, "{} bytes", text.len());
        assert!(text.lines().all(|l| l.chars().count() < 200));
        assert!(text.contains(
            "    s0(\"$role.web.$colo.c001<br/>20 hosts: web-c001-001 … +19 more<br/>\
             limited by $colo.c001, $role.web\")\n"
        ));
        assert!(text.contains("limits 5 slots\"]:::group"));
        let dot = dot(&plan);
        assert!(dot.len() < 100_000, "{} bytes", dot.len());
        assert_eq!(
            dot.matches(" -> ").count(),
            495 + 105,
            "edges and the group chain"
        );
    }

    #[test]
    fn a_slot_sharing_hosts_with_many_slots_names_them_instead_of_linking() {
        // Thread `all` holds six hosts in one step that thread `one` runs one by one.
        let text = "tag:\n  all: [h1, h2, h3, h4, h5, h6]\nsequence:\n  all:\n    - $all\n  \
                    one: [h1, h2, h3, h4, h5, h6]\n";
        let config = Config::parse_with("fleet.cfg", text, &NoCommands).unwrap();
        let plan = compile(&config, &PlanRequest::default()).unwrap();
        let mermaid = mermaid(&plan);
        assert!(!mermaid.contains("<-.->"), "{mermaid}");
        assert!(
            mermaid.contains("hosts also in one.h1, one.h2, one.h3, +3 more\"):::shared"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("s1(\"one.h1<br/>1 host: h1<br/>hosts also in all.$all\"):::shared"),
            "{mermaid}"
        );
        let dot = dot(&plan);
        assert!(!dot.contains("dir=both"), "{dot}");
    }

    #[test]
    fn mermaid_size_warning() {
        assert_eq!(mermaid_too_large("flowchart LR\n"), None);
        let big = bench_like_plan(100, 200);
        let warning = mermaid_too_large(&mermaid(&big)).expect("over GitHub's limit");
        assert!(warning.contains("use --format dot"), "{warning}");
    }
}
