//! Property tests for the plan compiler (`pogo_planner::compile`).
//!
//! The generator builds random but valid fleet configs and writes them as YAML TEXT, so the
//! whole pipeline (YAML reader, config parser, inventory, compiler) is exercised. Alongside the
//! text it keeps the structure it generated, from which an independent reference model
//! computes what the plan must say (spec `semantics.md` §2–§5): tag members, targets, slots,
//! the ordering graph, constraint groups and their limits. Nothing in the model calls planner
//! internals.
//!
//! Interpretations of the spec this file assumes (where the spec is silent or loose):
//! - a host "in the config" is any host the file names, in a tag or in a sequence step;
//! - `$tag` members are depth first in document order, a `$ref` member expanding in place;
//!   an AND (`$a.$b`) keeps the order of its first term;
//! - a thread none of whose steps holds a target is left out of the plan (its empty steps
//!   could order nothing);
//! - "hosts of its own" (which forbid a per-value limit) are the entries listed on the tag
//!   itself; an empty list (`a: []`) lists none;
//! - two constraints that give the same group keep one group with the stricter limit (the
//!   first one written when they are equal): equivalent, since a host needs room in both;
//! - when a config both orders hosts in a cycle and puts a per-value limit on a tag with hosts
//!   of its own and sub-tags, refusing it for either reason is right.
//!
//! Refusals are accepted only when the model agrees: a cycle must exist in the model's own
//! ordering graph (and the chain of waits the error spells out must be made of real links
//! that close), a per-value conflict must exist in the generated tags.

use std::collections::{HashMap, HashSet};
use std::fmt;

use pogo_model::{Amount, Plan, JOB_GROUP_ID};
use pogo_planner::compile::DEFAULT_CONCURRENT;
use pogo_planner::{
    compile, Config, JobLimit, Limit, PlanError, PlanRequest, Source, Span, TargetSpec,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// Tag names; tag `i` of a generated config is always `NAMES[i]`, so paths never collide.
const NAMES: [&str; 8] = [
    "colo",
    "web",
    "db",
    "east",
    "west",
    "north_america",
    "web-canary",
    "v2",
];
const THREAD_NAMES: [&str; 4] = ["one", "two", "canary", "rest"];
/// Hosts a config may name. Patterns range over `h1`..`h12`.
const POOL: [&str; 15] = [
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "h7",
    "h8",
    "h9",
    "h10",
    "h11",
    "h12",
    "db1",
    "db2",
    "lb.example.com",
];
/// Hosts no generated config names (targets only).
const OUTSIDE: [&str; 3] = ["x1", "x2", "web9.example.com"];

fn pool(n: u8) -> String {
    POOL[n as usize % POOL.len()].to_string()
}

fn hnum(n: u8) -> u32 {
    u32::from(n % 12) + 1
}

fn dedup(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Raw generated input: plain numbers, shrinkable by proptest, normalised into a valid config by
// `build`.
// ---------------------------------------------------------------------------------------------

/// A host or a host pattern.
#[derive(Debug, Clone)]
enum RawHosts {
    Host(u8),
    /// One of `h1`..`h4`: sequence steps name these often, so that threads share hosts and
    /// sometimes order them in opposite ways (a cycle).
    Few(u8),
    /// `h[lo-hi]`
    Range(u8, u8),
    /// `h[lo-hi,c]`
    RangePlus(u8, u8, u8),
    /// `h[lo-hi,!c]`
    RangeMinus(u8, u8, u8),
    /// `h{a,b}`
    Braces(u8, u8),
    /// `h[a]`: a pattern of one host is that host
    Single(u8),
    /// `h[lo-hi],dbK`: a comma list inside one entry
    Comma(u8, u8, u8),
}

impl RawHosts {
    /// The text and the hosts it expands to (spec §3), computed here, not by the planner.
    fn render(&self) -> (String, Vec<String>) {
        let range = |a: u8, b: u8| {
            let lo = hnum(a);
            (lo, (lo + u32::from(b % 4)).min(12))
        };
        let hs = |r: std::ops::RangeInclusive<u32>| r.map(|n| format!("h{n}")).collect::<Vec<_>>();
        match *self {
            RawHosts::Host(n) => (pool(n), vec![pool(n)]),
            RawHosts::Few(n) => (format!("h{}", n % 4 + 1), vec![format!("h{}", n % 4 + 1)]),
            RawHosts::Range(a, b) => {
                let (lo, hi) = range(a, b);
                (format!("h[{lo}-{hi}]"), hs(lo..=hi))
            }
            RawHosts::RangePlus(a, b, c) => {
                let (lo, hi) = range(a, b);
                let c = hnum(c);
                let mut v = hs(lo..=hi);
                v.push(format!("h{c}"));
                (format!("h[{lo}-{hi},{c}]"), dedup(v))
            }
            RawHosts::RangeMinus(a, b, c) => {
                let (mut lo, mut hi) = range(a, b);
                if lo == hi {
                    if hi < 12 {
                        hi += 1;
                    } else {
                        lo -= 1;
                    }
                }
                let c = lo + u32::from(c) % (hi - lo + 1);
                let v = hs(lo..=hi)
                    .into_iter()
                    .filter(|h| *h != format!("h{c}"))
                    .collect();
                (format!("h[{lo}-{hi},!{c}]"), v)
            }
            RawHosts::Braces(a, b) => {
                let (a, b) = (hnum(a), hnum(b));
                (
                    format!("h{{{a},{b}}}"),
                    dedup([format!("h{a}"), format!("h{b}")]),
                )
            }
            RawHosts::Single(a) => {
                let a = hnum(a);
                (format!("h[{a}]"), vec![format!("h{a}")])
            }
            RawHosts::Comma(a, b, k) => {
                let (lo, hi) = range(a, b);
                let db = format!("db{}", k % 2 + 1);
                let mut v = hs(lo..=hi);
                v.push(db.clone());
                (format!("h[{lo}-{hi}],{db}"), v)
            }
        }
    }
}

/// One entry of a host list: hosts/pattern, or a tag expression `$a` / `$a.$b`.
#[derive(Debug, Clone)]
enum RawItem {
    Hosts(RawHosts),
    Tag(u8, Option<u8>),
}

/// A scalar of a host list: one item, or two joined with a comma.
#[derive(Debug, Clone)]
struct RawEntry {
    first: RawItem,
    second: Option<RawItem>,
    quoted: bool,
}

#[derive(Debug, Clone)]
struct RawTag {
    /// `% (index + 1)`: 0 is top level, `k` is a sub-tag of tag `k - 1`.
    parent: u8,
    /// The tag's own member list, when it has one (possibly empty: `[]`).
    own: Option<Vec<RawEntry>>,
    /// Sub-tags nested in a mapping (when the tag has no own list) rather than dotted keys.
    nest: bool,
    /// Where the own list is written among the sub-tags' entries.
    own_pos: u8,
    /// 0 block list, 1 flow list, 2 a scalar when there is one entry.
    style: u8,
}

#[derive(Debug, Clone)]
enum RawStep {
    One(RawEntry),
    Flow(Vec<RawItem>),
    Block(Vec<RawItem>),
    Empty,
}

#[derive(Debug, Clone)]
struct RawThread {
    filter: Option<(u8, Option<u8>)>,
    name: u8,
    scalar_form: bool,
    steps: Vec<RawStep>,
}

#[derive(Debug, Clone)]
enum RawSeq {
    Absent,
    List(Vec<RawStep>),
    Map(Vec<RawThread>),
}

#[derive(Debug, Clone, Copy)]
enum RawLimit {
    Count(u8),
    Percent(u8),
}

#[derive(Debug, Clone)]
struct RawConstraint {
    expr: (u8, Option<u8>),
    limit: Option<RawLimit>,
    /// `max_parallel` written after the nested keys rather than before them.
    limit_last: bool,
    inner: Vec<RawConstraint>,
}

#[derive(Debug, Clone)]
enum RawTarget {
    Host(u8),
    Outside(u8),
    Pattern(RawHosts),
    Tag(u8, Option<u8>),
}

#[derive(Debug, Clone, Copy)]
enum RawJob {
    Default,
    Count(u8),
    Percent(u8),
    Unconstrained,
}

#[derive(Debug, Clone)]
struct Raw {
    tags: Vec<RawTag>,
    seq: RawSeq,
    constraints: Vec<RawConstraint>,
    targets: Option<Vec<Vec<RawTarget>>>,
    job: RawJob,
    order: u8,
}

fn raw_hosts() -> impl Strategy<Value = RawHosts> {
    prop_oneof![
        5 => any::<u8>().prop_map(RawHosts::Host),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| RawHosts::Range(a, b)),
        1 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c)| RawHosts::RangePlus(a, b, c)),
        1 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c)| RawHosts::RangeMinus(a, b, c)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| RawHosts::Braces(a, b)),
        1 => any::<u8>().prop_map(RawHosts::Single),
        1 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, k)| RawHosts::Comma(a, b, k)),
    ]
}

fn tag_expr() -> impl Strategy<Value = (u8, Option<u8>)> {
    (any::<u8>(), proptest::option::weighted(0.2, any::<u8>()))
}

/// Items of a host list; the weights are of hosts, of `h1`..`h4` and of `$tag`s.
fn raw_item(hosts: u32, few: u32, tags: u32) -> impl Strategy<Value = RawItem> {
    prop_oneof![
        hosts => raw_hosts().prop_map(RawItem::Hosts),
        few => any::<u8>().prop_map(|n| RawItem::Hosts(RawHosts::Few(n))),
        tags => tag_expr().prop_map(|(a, b)| RawItem::Tag(a, b)),
    ]
}

fn raw_entry(hosts: u32, few: u32, tags: u32) -> impl Strategy<Value = RawEntry> {
    (
        raw_item(hosts, few, tags),
        proptest::option::weighted(0.15, raw_item(hosts, few, tags)),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(first, second, quoted)| RawEntry {
            first,
            second,
            quoted,
        })
}

fn raw_tag() -> impl Strategy<Value = RawTag> {
    (
        any::<u8>(),
        proptest::option::weighted(0.75, proptest::collection::vec(raw_entry(5, 1, 1), 0..=3)),
        any::<bool>(),
        any::<u8>(),
        0u8..3,
    )
        .prop_map(|(parent, own, nest, own_pos, style)| RawTag {
            parent,
            own,
            nest,
            own_pos,
            style,
        })
}

fn raw_step() -> impl Strategy<Value = RawStep> {
    prop_oneof![
        6 => raw_entry(1, 6, 3).prop_map(RawStep::One),
        1 => proptest::collection::vec(raw_item(1, 6, 3), 1..=3).prop_map(RawStep::Flow),
        1 => proptest::collection::vec(raw_item(1, 6, 3), 1..=3).prop_map(RawStep::Block),
        1 => Just(RawStep::Empty),
    ]
}

fn raw_thread() -> impl Strategy<Value = RawThread> {
    (
        proptest::option::weighted(0.35, tag_expr()),
        any::<u8>(),
        proptest::bool::weighted(0.3),
        proptest::collection::vec(raw_step(), 0..=5),
    )
        .prop_map(|(filter, name, scalar_form, steps)| RawThread {
            filter,
            name,
            scalar_form,
            steps,
        })
}

fn raw_seq() -> impl Strategy<Value = RawSeq> {
    prop_oneof![
        1 => Just(RawSeq::Absent),
        2 => proptest::collection::vec(raw_step(), 0..=4).prop_map(RawSeq::List),
        5 => proptest::collection::vec(raw_thread(), 1..=4).prop_map(RawSeq::Map),
    ]
}

fn raw_limit() -> impl Strategy<Value = RawLimit> {
    prop_oneof![
        any::<u8>().prop_map(RawLimit::Count),
        any::<u8>().prop_map(RawLimit::Percent),
    ]
}

fn raw_constraint() -> impl Strategy<Value = RawConstraint> {
    let leaf = (tag_expr(), raw_limit()).prop_map(|(expr, limit)| RawConstraint {
        expr,
        limit: Some(limit),
        limit_last: false,
        inner: Vec::new(),
    });
    (
        tag_expr(),
        proptest::option::weighted(0.8, raw_limit()),
        any::<bool>(),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => proptest::collection::vec(leaf, 1..=2),
        ],
    )
        .prop_map(|(expr, limit, limit_last, inner)| RawConstraint {
            expr,
            limit,
            limit_last,
            inner,
        })
}

fn raw_target() -> impl Strategy<Value = RawTarget> {
    prop_oneof![
        3 => any::<u8>().prop_map(RawTarget::Host),
        1 => any::<u8>().prop_map(RawTarget::Outside),
        1 => raw_hosts().prop_map(RawTarget::Pattern),
        2 => tag_expr().prop_map(|(a, b)| RawTarget::Tag(a, b)),
    ]
}

fn raw_job() -> impl Strategy<Value = RawJob> {
    prop_oneof![
        2 => Just(RawJob::Default),
        1 => any::<u8>().prop_map(RawJob::Count),
        2 => any::<u8>().prop_map(RawJob::Percent),
        1 => Just(RawJob::Unconstrained),
    ]
}

fn raw() -> impl Strategy<Value = Raw> {
    (
        proptest::collection::vec(raw_tag(), 1..=6),
        raw_seq(),
        proptest::collection::vec(raw_constraint(), 0..=3),
        proptest::option::weighted(
            0.6,
            proptest::collection::vec(proptest::collection::vec(raw_target(), 1..=3), 1..=3),
        ),
        raw_job(),
        any::<u8>(),
    )
        .prop_map(|(tags, seq, constraints, targets, job, order)| Raw {
            tags,
            seq,
            constraints,
            targets,
            job,
            order,
        })
}

// ---------------------------------------------------------------------------------------------
// The generated config: a YAML tree whose scalars remember what they mean, and its text.
// ---------------------------------------------------------------------------------------------

/// What one comma-separated part of a host list means.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Hosts(Vec<String>),
    /// AND of tag paths.
    Tag(Vec<String>),
}

#[derive(Debug, Clone)]
struct Scalar {
    text: String,
    quoted: bool,
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
enum Y {
    S(Scalar),
    Flow(Vec<Scalar>),
    Block(Vec<Y>),
    Map(Vec<(String, Y)>),
}

fn plain(text: impl Into<String>) -> Y {
    Y::S(Scalar {
        text: text.into(),
        quoted: false,
        items: Vec::new(),
    })
}

fn scalar_text(s: &Scalar, flow: bool) -> String {
    let quote =
        s.quoted || s.text.is_empty() || (flow && s.text.contains(['[', ']', '{', '}', ',']));
    if quote {
        format!("\"{}\"", s.text)
    } else {
        s.text.clone()
    }
}

fn flow_text(items: &[Scalar]) -> String {
    let parts: Vec<String> = items.iter().map(|s| scalar_text(s, true)).collect();
    format!("[{}]", parts.join(", "))
}

fn write_map(out: &mut String, entries: &[(String, Y)], indent: usize) {
    for (key, value) in entries {
        out.push_str(&" ".repeat(indent));
        out.push_str(key);
        out.push(':');
        match value {
            Y::S(s) => {
                out.push(' ');
                out.push_str(&scalar_text(s, false));
                out.push('\n');
            }
            Y::Flow(items) => {
                out.push(' ');
                out.push_str(&flow_text(items));
                out.push('\n');
            }
            Y::Block(items) if items.is_empty() => out.push_str(" []\n"),
            Y::Block(items) => {
                out.push('\n');
                for item in items {
                    out.push_str(&" ".repeat(indent + 2));
                    write_seq_item(out, item, indent + 2);
                }
            }
            Y::Map(inner) if inner.is_empty() => out.push_str(" {}\n"),
            Y::Map(inner) => {
                out.push('\n');
                write_map(out, inner, indent + 2);
            }
        }
    }
}

/// Writes `- item` with the cursor already at column `indent`.
fn write_seq_item(out: &mut String, item: &Y, indent: usize) {
    out.push_str("- ");
    match item {
        Y::S(s) => {
            out.push_str(&scalar_text(s, false));
            out.push('\n');
        }
        Y::Flow(items) => {
            out.push_str(&flow_text(items));
            out.push('\n');
        }
        Y::Block(inner) if inner.is_empty() => out.push_str("[]\n"),
        Y::Block(inner) => {
            write_seq_item(out, &inner[0], indent + 2);
            for rest in &inner[1..] {
                out.push_str(&" ".repeat(indent + 2));
                write_seq_item(out, rest, indent + 2);
            }
        }
        Y::Map(_) => unreachable!("the generator puts no mapping in a list"),
    }
}

/// Every scalar of a value, in document order.
fn scalars(y: &Y) -> Vec<&Scalar> {
    match y {
        Y::S(s) => vec![s],
        Y::Flow(v) => v.iter().collect(),
        Y::Block(v) => v.iter().flat_map(scalars).collect(),
        Y::Map(entries) => entries.iter().flat_map(|(_, v)| scalars(v)).collect(),
    }
}

#[derive(Debug, Clone)]
struct StepM {
    text: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
struct ThreadM {
    name: String,
    filter: Option<(String, Vec<String>)>,
    steps: Vec<StepM>,
}

#[derive(Debug, Clone)]
struct ConstraintM {
    text: String,
    terms: Vec<String>,
    limit: Limit,
}

/// A generated case: the config text plus the structure it was written from.
#[derive(Clone)]
struct Case {
    yaml: String,
    /// Top-level sections in the order written.
    doc: Vec<(String, Y)>,
    threads: Vec<ThreadM>,
    constraints: Vec<ConstraintM>,
    /// Target entries (a comma list each) with their meaning; `None`: every host.
    targets: Option<Vec<(String, Vec<Item>)>>,
    job: JobLimit,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n----- config -----\n{}------------------", self.yaml)?;
        let targets: Option<Vec<&str>> = self
            .targets
            .as_ref()
            .map(|t| t.iter().map(|(text, _)| text.as_str()).collect());
        writeln!(f, "targets: {targets:?}")?;
        writeln!(f, "job limit: {:?}", self.job)
    }
}

fn tag_ref(paths: &[String], a: u8, b: Option<u8>) -> (String, Vec<usize>) {
    let n = paths.len();
    let first = a as usize % n;
    let mut terms = vec![first];
    if let Some(b) = b {
        let second = b as usize % n;
        if second != first {
            terms.push(second);
        }
    }
    let text = terms
        .iter()
        .map(|&t| format!("${}", paths[t]))
        .collect::<Vec<_>>()
        .join(".");
    (text, terms)
}

fn reaches(deps: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut stack = vec![from];
    let mut seen = HashSet::new();
    while let Some(at) = stack.pop() {
        if at == to {
            return true;
        }
        if seen.insert(at) {
            stack.extend(deps[at].iter().copied());
        }
    }
    false
}

fn limit_of(raw: RawLimit) -> (Limit, String) {
    match raw {
        RawLimit::Count(n) => {
            let n = u64::from(n % 5) + 1;
            (Limit::Count(n), n.to_string())
        }
        RawLimit::Percent(p) => {
            let p = u32::from(p % 100) + 1;
            (Limit::Percent(p), format!("{p}%"))
        }
    }
}

struct Builder<'a> {
    raw: &'a Raw,
    paths: Vec<String>,
    children: Vec<Vec<usize>>,
    own: Vec<Option<Vec<Scalar>>>,
}

impl Builder<'_> {
    fn item(&self, raw: &RawItem) -> (String, Item) {
        match raw {
            RawItem::Hosts(h) => {
                let (text, hosts) = h.render();
                (text, Item::Hosts(hosts))
            }
            RawItem::Tag(a, b) => self.tag_item(*a, *b),
        }
    }

    fn tag_item(&self, a: u8, b: Option<u8>) -> (String, Item) {
        let (text, terms) = tag_ref(&self.paths, a, b);
        (
            text,
            Item::Tag(terms.iter().map(|&t| self.paths[t].clone()).collect()),
        )
    }

    fn entry(&self, entry: &RawEntry) -> Scalar {
        let mut texts = Vec::new();
        let mut items = Vec::new();
        for raw in std::iter::once(&entry.first).chain(entry.second.as_ref()) {
            let (text, item) = self.item(raw);
            texts.push(text);
            items.push(item);
        }
        Scalar {
            text: texts.join(","),
            quoted: entry.quoted,
            items,
        }
    }

    fn members_y(&self, tag: usize) -> Y {
        let scalars = self.own[tag].clone().unwrap_or_default();
        match self.raw.tags[tag].style {
            _ if scalars.is_empty() => Y::Flow(Vec::new()),
            2 if scalars.len() == 1 => Y::S(scalars[0].clone()),
            1 => Y::Flow(scalars),
            _ => Y::Block(scalars.into_iter().map(Y::S).collect()),
        }
    }

    /// The entries that write tag `tag` (and its sub-tags) in a mapping whose keys are
    /// relative to `prefix`.
    fn render_tag(&self, tag: usize, prefix: &str) -> Vec<(String, Y)> {
        let key = if prefix.is_empty() {
            NAMES[tag].to_string()
        } else {
            format!("{prefix}.{}", NAMES[tag])
        };
        let kids = &self.children[tag];
        if self.own[tag].is_none() && !kids.is_empty() {
            if !self.raw.tags[tag].nest {
                return kids
                    .iter()
                    .flat_map(|&c| self.render_tag(c, &key))
                    .collect();
            }
            // Some sub-tags nested in a mapping, the others as dotted keys next to it (before
            // or after): both open the same tag.
            let split = 1 + self.raw.tags[tag].own_pos as usize % kids.len();
            let inner = kids[..split]
                .iter()
                .flat_map(|&c| self.render_tag(c, ""))
                .collect();
            let dotted: Vec<(String, Y)> = kids[split..]
                .iter()
                .flat_map(|&c| self.render_tag(c, &key))
                .collect();
            let map = (key, Y::Map(inner));
            return if self.raw.tags[tag].style == 1 {
                dotted.into_iter().chain([map]).collect()
            } else {
                std::iter::once(map).chain(dotted).collect()
            };
        }
        let value = self.members_y(tag);
        let pos = self.raw.tags[tag].own_pos as usize % (kids.len() + 1);
        let mut out = Vec::new();
        for (k, &c) in kids.iter().enumerate() {
            if k == pos {
                out.push((key.clone(), value.clone()));
            }
            out.extend(self.render_tag(c, &key));
        }
        if pos == kids.len() {
            out.push((key, value));
        }
        out
    }

    fn step(&self, step: &RawStep) -> (Y, StepM) {
        let list = |raws: &[RawItem]| -> (Vec<Scalar>, StepM) {
            let mut scalars = Vec::new();
            let mut texts = Vec::new();
            let mut items = Vec::new();
            for raw in raws {
                let (text, item) = self.item(raw);
                scalars.push(Scalar {
                    text: text.clone(),
                    quoted: false,
                    items: vec![item.clone()],
                });
                texts.push(text);
                items.push(item);
            }
            let text = texts.join(",");
            (scalars, StepM { text, items })
        };
        match step {
            RawStep::One(entry) => {
                let s = self.entry(entry);
                let m = StepM {
                    text: s.text.clone(),
                    items: s.items.clone(),
                };
                (Y::S(s), m)
            }
            RawStep::Flow(raws) => {
                let (scalars, m) = list(raws);
                (Y::Flow(scalars), m)
            }
            RawStep::Block(raws) => {
                let (scalars, m) = list(raws);
                (Y::Block(scalars.into_iter().map(Y::S).collect()), m)
            }
            RawStep::Empty => (
                Y::Flow(Vec::new()),
                StepM {
                    // An empty step reads `[]` in slot ids (`main.[]`).
                    text: "[]".to_string(),
                    items: Vec::new(),
                },
            ),
        }
    }

    fn steps(&self, raws: &[RawStep]) -> (Y, Vec<StepM>) {
        let (ys, models): (Vec<Y>, Vec<StepM>) = raws.iter().map(|s| self.step(s)).unzip();
        (Y::Block(ys), models)
    }

    fn constraint(
        &self,
        raw: &RawConstraint,
        outer: Option<&(String, Vec<String>)>,
        out: &mut Vec<ConstraintM>,
    ) -> (String, Y) {
        let (key, terms) = tag_ref(&self.paths, raw.expr.0, raw.expr.1);
        let mut text = key.clone();
        let mut all_terms: Vec<String> = terms.iter().map(|&t| self.paths[t].clone()).collect();
        if let Some((outer_text, outer_terms)) = outer {
            text = format!("{outer_text}.{key}");
            all_terms = outer_terms.iter().cloned().chain(all_terms).collect();
        }
        let expr = (text, all_terms);
        let mut entries = Vec::new();
        let inner_keys: Vec<&RawConstraint> = {
            let mut seen = HashSet::new();
            raw.inner
                .iter()
                .filter(|c| seen.insert(tag_ref(&self.paths, c.expr.0, c.expr.1).0))
                .collect()
        };
        let limit = match raw.limit {
            Some(l) => Some(l),
            None if inner_keys.is_empty() => Some(RawLimit::Count(0)),
            None => None,
        };
        // Constraints are listed in document order, so a limit written after the nested keys
        // comes after theirs.
        let mut own = None;
        if let Some(l) = limit {
            let (limit, text) = limit_of(l);
            own = Some((
                ("max_parallel".to_string(), plain(text)),
                ConstraintM {
                    text: expr.0.clone(),
                    terms: expr.1.clone(),
                    limit,
                },
            ));
        }
        if !raw.limit_last {
            if let Some((entry, model)) = own.take() {
                entries.push(entry);
                out.push(model);
            }
        }
        for inner in inner_keys {
            entries.push(self.constraint(inner, Some(&expr), out));
        }
        if let Some((entry, model)) = own {
            entries.push(entry);
            out.push(model);
        }
        (key, Y::Map(entries))
    }
}

fn build(raw: &Raw) -> Case {
    let n = raw.tags.len();
    let mut paths: Vec<String> = Vec::with_capacity(n);
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut top = Vec::new();
    for (i, tag) in raw.tags.iter().enumerate() {
        let p = tag.parent as usize % (i + 1);
        if p == 0 {
            top.push(i);
            paths.push(NAMES[i].to_string());
        } else {
            children[p - 1].push(i);
            paths.push(format!("{}.{}", paths[p - 1], NAMES[i]));
        }
    }
    let mut builder = Builder {
        raw,
        paths,
        children: children.clone(),
        own: vec![None; n],
    };

    // Own members; a `$ref` that would make a tag include itself becomes a host instead.
    let mut deps = children;
    for i in 0..n {
        let Some(entries) = &raw.tags[i].own else {
            continue;
        };
        let mut list = Vec::new();
        for entry in entries {
            let mut entry = entry.clone();
            for item in std::iter::once(&mut entry.first).chain(entry.second.as_mut()) {
                if let RawItem::Tag(a, b) = *item {
                    let (_, terms) = tag_ref(&builder.paths, a, b);
                    if terms.iter().any(|&t| reaches(&deps, t, i)) {
                        *item = RawItem::Hosts(RawHosts::Host(a));
                    } else {
                        deps[i].extend(terms);
                    }
                }
            }
            list.push(builder.entry(&entry));
        }
        builder.own[i] = Some(list);
    }

    let tag_entries: Vec<(String, Y)> = top
        .iter()
        .flat_map(|&t| builder.render_tag(t, ""))
        .collect();
    let tags = TagModel::interpret(&tag_entries);

    let mut threads = Vec::new();
    let seq_y = match &raw.seq {
        RawSeq::Absent => None,
        RawSeq::List(steps) => {
            let (y, steps) = builder.steps(steps);
            threads.push(ThreadM {
                name: "main".to_string(),
                filter: None,
                steps,
            });
            Some(y)
        }
        RawSeq::Map(raw_threads) => {
            let mut entries = Vec::new();
            let mut keys = HashSet::new();
            for t in raw_threads {
                let (key, filter) = match t.filter {
                    Some((a, b)) => {
                        let (text, terms) = tag_ref(&builder.paths, a, b);
                        let terms = terms.iter().map(|&i| builder.paths[i].clone()).collect();
                        (text.clone(), Some((text, terms)))
                    }
                    None => (THREAD_NAMES[t.name as usize % 4].to_string(), None),
                };
                if !keys.insert(key.clone()) {
                    continue;
                }
                let (y, steps) = match (&t.steps[..], t.scalar_form) {
                    ([one @ RawStep::One(_)], true) => {
                        let (y, m) = builder.step(one);
                        (y, vec![m])
                    }
                    _ => builder.steps(&t.steps),
                };
                entries.push((key.clone(), y));
                threads.push(ThreadM {
                    name: key,
                    filter,
                    steps,
                });
            }
            Some(Y::Map(entries))
        }
    };

    let mut constraints = Vec::new();
    let mut constraint_entries = Vec::new();
    let mut keys = HashSet::new();
    for c in &raw.constraints {
        if !keys.insert(tag_ref(&builder.paths, c.expr.0, c.expr.1).0) {
            continue;
        }
        constraint_entries.push(builder.constraint(c, None, &mut constraints));
    }

    // Targets: a `$tag` with no host would be refused, so it becomes a host not in the config.
    let targets = raw.targets.as_ref().map(|specs| {
        specs
            .iter()
            .map(|spec| {
                let mut texts = Vec::new();
                let mut items = Vec::new();
                for t in spec {
                    let (text, item) = match t {
                        RawTarget::Host(n) => (pool(*n), Item::Hosts(vec![pool(*n)])),
                        RawTarget::Outside(n) => {
                            let h = OUTSIDE[*n as usize % OUTSIDE.len()].to_string();
                            (h.clone(), Item::Hosts(vec![h]))
                        }
                        RawTarget::Pattern(p) => {
                            let (text, hosts) = p.render();
                            (text, Item::Hosts(hosts))
                        }
                        RawTarget::Tag(a, b) => {
                            let (text, item) = builder.tag_item(*a, *b);
                            let Item::Tag(terms) = &item else {
                                unreachable!()
                            };
                            if tags.eval(terms).is_empty() {
                                let h = OUTSIDE[*a as usize % OUTSIDE.len()].to_string();
                                (h.clone(), Item::Hosts(vec![h]))
                            } else {
                                (text, item)
                            }
                        }
                    };
                    texts.push(text);
                    items.push(item);
                }
                (texts.join(","), items)
            })
            .collect()
    });

    let job = match raw.job {
        RawJob::Default => JobLimit::Default,
        RawJob::Count(n) => JobLimit::Limit(Limit::Count(u64::from(n % 40) + 1)),
        RawJob::Percent(p) => JobLimit::Limit(Limit::Percent(u32::from(p % 100) + 1)),
        RawJob::Unconstrained => JobLimit::Unconstrained,
    };

    let mut sections = vec![("tag".to_string(), Y::Map(tag_entries))];
    if let Some(y) = seq_y {
        sections.push(("sequence".to_string(), y));
    }
    if !constraint_entries.is_empty() {
        sections.push(("constraint".to_string(), Y::Map(constraint_entries)));
    }
    // Mostly `tag` first; sometimes sequences or constraints come before the tags they use.
    if raw.order >= 192 {
        let k = raw.order as usize % sections.len();
        sections.rotate_left(k);
    }
    let mut yaml = String::new();
    if raw.order % 7 == 0 {
        yaml.push_str("# generated by planner/tests/properties.rs\n");
    }
    write_map(&mut yaml, &sections, 0);
    Case {
        yaml,
        doc: sections,
        threads,
        constraints,
        targets,
        job,
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum TagItemM {
    Host(String),
    Child(usize),
    Ref(Vec<String>),
}

#[derive(Debug)]
struct TagM {
    path: String,
    items: Vec<TagItemM>,
    children: Vec<usize>,
    /// Entries listed on the tag itself (hosts, patterns, `$ref`s).
    own_entries: usize,
}

/// The tag tree as the spec defines it from the text: a dotted key is the same as nesting,
/// members and sub-tags in document order. Index 0 is the root.
struct TagModel {
    tags: Vec<TagM>,
    index: HashMap<String, usize>,
    members: Vec<Vec<String>>,
}

impl TagModel {
    fn interpret(entries: &[(String, Y)]) -> TagModel {
        let mut model = TagModel {
            tags: vec![TagM {
                path: String::new(),
                items: Vec::new(),
                children: Vec::new(),
                own_entries: 0,
            }],
            index: HashMap::new(),
            members: Vec::new(),
        };
        model.walk(entries, 0);
        let mut memo: Vec<Option<Vec<String>>> = vec![None; model.tags.len()];
        for t in 0..model.tags.len() {
            model.resolve(t, &mut memo, 0);
        }
        model.members = memo.into_iter().map(Option::unwrap).collect();
        model
    }

    fn walk(&mut self, entries: &[(String, Y)], parent: usize) {
        for (key, value) in entries {
            let mut cur = parent;
            for seg in key.split('.') {
                let path = if self.tags[cur].path.is_empty() {
                    seg.to_string()
                } else {
                    format!("{}.{seg}", self.tags[cur].path)
                };
                cur = match self.index.get(&path) {
                    Some(&t) => t,
                    None => {
                        let t = self.tags.len();
                        self.tags.push(TagM {
                            path: path.clone(),
                            items: Vec::new(),
                            children: Vec::new(),
                            own_entries: 0,
                        });
                        self.index.insert(path, t);
                        self.tags[cur].children.push(t);
                        self.tags[cur].items.push(TagItemM::Child(t));
                        t
                    }
                };
            }
            if let Y::Map(inner) = value {
                self.walk(inner, cur);
                continue;
            }
            for s in scalars(value) {
                for item in &s.items {
                    self.tags[cur].own_entries += 1;
                    match item {
                        Item::Hosts(hosts) => self.tags[cur]
                            .items
                            .extend(hosts.iter().cloned().map(TagItemM::Host)),
                        Item::Tag(terms) => self.tags[cur].items.push(TagItemM::Ref(terms.clone())),
                    }
                }
            }
        }
    }

    fn resolve(&self, t: usize, memo: &mut Vec<Option<Vec<String>>>, depth: usize) -> Vec<String> {
        assert!(depth < 64, "the generator made a reference cycle");
        if let Some(m) = &memo[t] {
            return m.clone();
        }
        let mut out = Vec::new();
        for item in &self.tags[t].items {
            match item {
                TagItemM::Host(h) => out.push(h.clone()),
                TagItemM::Child(c) => out.extend(self.resolve(*c, memo, depth + 1)),
                TagItemM::Ref(terms) => {
                    let sets: Vec<Vec<String>> = terms
                        .iter()
                        .map(|p| self.resolve(self.index[p], memo, depth + 1))
                        .collect();
                    out.extend(
                        sets[0]
                            .iter()
                            .filter(|h| sets[1..].iter().all(|s| s.contains(h)))
                            .cloned(),
                    );
                }
            }
        }
        let out = dedup(out);
        memo[t] = Some(out.clone());
        out
    }

    fn members_of(&self, path: &str) -> &[String] {
        &self.members[self.index[path]]
    }

    /// The hosts of an AND of tag paths, in the order of the first.
    fn eval(&self, terms: &[String]) -> Vec<String> {
        let first = self.members_of(&terms[0]);
        first
            .iter()
            .filter(|h| terms[1..].iter().all(|t| self.members_of(t).contains(h)))
            .cloned()
            .collect()
    }
}

fn item_hosts(tags: &TagModel, items: &[Item]) -> Vec<String> {
    dedup(items.iter().flat_map(|item| match item {
        Item::Hosts(h) => h.clone(),
        Item::Tag(terms) => tags.eval(terms),
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    /// (thread, step) of the config's threads
    Slot(usize, usize),
    Host(usize),
}

/// What the plan must say, computed from the generated structure.
struct Expected {
    tags: TagModel,
    config_hosts: HashSet<String>,
    targets: Vec<String>,
    /// Per config thread, per step: the slot's hosts.
    slots: Vec<Vec<Vec<String>>>,
    /// Per config thread, per step: the slot id the plan gives it.
    slot_ids: Vec<Vec<String>>,
    /// Threads with a host repeated in a later step (a warning).
    repeats: Vec<String>,
    hosts: Vec<String>,
    edges: HashSet<(Node, Node)>,
    cycle: bool,
    /// Constraints on a tag with hosts of its own and sub-tags (by constraint text).
    conflicts: Vec<String>,
}

impl Expected {
    fn new(case: &Case) -> Expected {
        let tag_entries = match &case.doc.iter().find(|(k, _)| k == "tag").unwrap().1 {
            Y::Map(entries) => entries.clone(),
            _ => unreachable!(),
        };
        let tags = TagModel::interpret(&tag_entries);
        // Every host the file names, in tags or sequence steps.
        let config_hosts: Vec<String> = dedup(
            case.doc
                .iter()
                .flat_map(|(_, y)| scalars(y))
                .flat_map(|s| s.items.iter())
                .flat_map(|item| match item {
                    Item::Hosts(h) => h.clone(),
                    Item::Tag(_) => Vec::new(),
                }),
        );
        let targets = match &case.targets {
            None => config_hosts.clone(),
            Some(specs) => dedup(specs.iter().flat_map(|(_, items)| item_hosts(&tags, items))),
        };
        let target_set: HashSet<&String> = targets.iter().collect();

        let mut slots = Vec::new();
        let mut slot_ids = Vec::new();
        let mut repeats = Vec::new();
        let mut id_count: HashMap<String, usize> = HashMap::new();
        for thread in &case.threads {
            let filter: Option<HashSet<String>> = thread
                .filter
                .as_ref()
                .map(|(_, terms)| tags.eval(terms).into_iter().collect());
            let mut placed: HashSet<String> = HashSet::new();
            let mut thread_slots = Vec::new();
            let mut ids = Vec::new();
            let mut repeated = false;
            for step in &thread.steps {
                let mut slot = Vec::new();
                for h in item_hosts(&tags, &step.items) {
                    if !target_set.contains(&h) || filter.as_ref().is_some_and(|f| !f.contains(&h))
                    {
                        continue;
                    }
                    if placed.insert(h.clone()) {
                        slot.push(h);
                    } else {
                        repeated = true;
                    }
                }
                thread_slots.push(slot);
                let base = format!("{}.{}", thread.name, step.text);
                let k = id_count.entry(base.clone()).or_insert(0);
                *k += 1;
                ids.push(if *k == 1 { base } else { format!("{base}#{k}") });
            }
            if repeated {
                repeats.push(thread.name.clone());
            }
            slots.push(thread_slots);
            slot_ids.push(ids);
        }

        // The ordering graph: a slot follows the previous step of its thread; a host runs
        // after the previous step of every slot holding it; a slot completes after its hosts.
        let mut host_index: HashMap<String, usize> = HashMap::new();
        let mut hosts = Vec::new();
        let mut edges = HashSet::new();
        for (t, thread_slots) in slots.iter().enumerate() {
            for (k, slot) in thread_slots.iter().enumerate() {
                if k > 0 {
                    edges.insert((Node::Slot(t, k - 1), Node::Slot(t, k)));
                }
                for h in slot {
                    let hi = *host_index.entry(h.clone()).or_insert_with(|| {
                        hosts.push(h.clone());
                        hosts.len() - 1
                    });
                    edges.insert((Node::Host(hi), Node::Slot(t, k)));
                    if k > 0 {
                        edges.insert((Node::Slot(t, k - 1), Node::Host(hi)));
                    }
                }
            }
        }
        let mut nodes: Vec<Node> = (0..hosts.len()).map(Node::Host).collect();
        for (t, thread_slots) in slots.iter().enumerate() {
            nodes.extend((0..thread_slots.len()).map(|k| Node::Slot(t, k)));
        }
        let cycle = has_cycle(&nodes, &edges);

        let mut conflicts = Vec::new();
        for c in &case.constraints {
            for term in &c.terms {
                let tag = &tags.tags[tags.index[term]];
                if !tag.children.is_empty() && tag.own_entries > 0 {
                    conflicts.push(c.text.clone());
                }
            }
        }

        Expected {
            config_hosts: config_hosts.into_iter().collect(),
            tags,
            targets,
            slots,
            slot_ids,
            repeats,
            hosts,
            edges,
            cycle,
            conflicts,
        }
    }

    /// The constraint groups, in the order written: `(id, from, limit, hosts)`.
    fn groups(&self, case: &Case) -> Vec<(String, String, Amount, Vec<String>)> {
        let targets: HashSet<&String> = self.targets.iter().collect();
        let mut groups: Vec<(String, String, Amount, Vec<String>)> = Vec::new();
        for c in &case.constraints {
            // Per value: a tag with sub-tags stands for each direct sub-tag in turn.
            let mut variants: Vec<Vec<String>> = vec![Vec::new()];
            for term in &c.terms {
                let tag = &self.tags.tags[self.tags.index[term]];
                let values: Vec<String> = if tag.children.is_empty() {
                    vec![term.clone()]
                } else {
                    tag.children
                        .iter()
                        .map(|&k| self.tags.tags[k].path.clone())
                        .collect()
                };
                variants = variants
                    .iter()
                    .flat_map(|prefix| {
                        values.iter().map(move |v| {
                            let mut next = prefix.clone();
                            next.push(v.clone());
                            next
                        })
                    })
                    .collect();
            }
            for terms in variants {
                let members = self.tags.eval(&terms);
                let hosts: Vec<String> = members
                    .iter()
                    .filter(|h| targets.contains(h))
                    .cloned()
                    .collect();
                if hosts.is_empty() {
                    continue;
                }
                let base = members.len() as u64;
                let amount = match c.limit {
                    Limit::Count(n) => Amount::number(n),
                    Limit::Percent(p) => Amount {
                        value: (u64::from(p) * base / 100).max(1),
                        percent: Some(p),
                        base: Some(base),
                    },
                };
                let id = terms
                    .iter()
                    .map(|t| format!("${t}"))
                    .collect::<Vec<_>>()
                    .join(".");
                match groups.iter_mut().find(|g| g.0 == id) {
                    Some(g) if amount.value < g.2.value => {
                        *g = (id, c.text.clone(), amount, hosts);
                    }
                    Some(_) => {}
                    None => groups.push((id, c.text.clone(), amount, hosts)),
                }
            }
        }
        groups
    }
}

/// Kahn's algorithm: true when `edges` over `nodes` hold a cycle.
fn has_cycle<N: Copy + Eq + std::hash::Hash>(nodes: &[N], edges: &HashSet<(N, N)>) -> bool {
    let mut indegree: HashMap<N, usize> = nodes.iter().map(|&n| (n, 0)).collect();
    let mut next: HashMap<N, Vec<N>> = HashMap::new();
    for &(a, b) in edges {
        *indegree.get_mut(&b).expect("edge to a known node") += 1;
        next.entry(a).or_default().push(b);
    }
    let mut ready: Vec<N> = nodes.iter().copied().filter(|n| indegree[n] == 0).collect();
    let mut done = 0;
    while let Some(n) = ready.pop() {
        done += 1;
        for &m in next.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
            let d = indegree.get_mut(&m).unwrap();
            *d -= 1;
            if *d == 0 {
                ready.push(m);
            }
        }
    }
    done < nodes.len()
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

/// How a cycle refusal reads today; the chain of waits after it is checked link by link.
/// (If the wording changes, the refusal is still recognised by `cycle` and checked against
/// the model, only the chain is not read.)
const CYCLE_CHAIN: &str = "could ever start: ";
const CONFLICT: &str = "hosts of its own and sub-tags";

fn is_cycle_error(message: &str) -> bool {
    message.contains("cycle")
}

fn is_conflict_error(message: &str) -> bool {
    message.contains(CONFLICT)
}

fn request(case: &Case) -> PlanRequest {
    PlanRequest {
        targets: case
            .targets
            .iter()
            .flatten()
            .map(|(text, _)| TargetSpec {
                text: text.clone(),
                span: Span::start(&Source::argument("--targets", text.clone())),
            })
            .collect(),
        concurrent: case.job,
        command: Some("uptime".to_string()),
        config_name: "prop.yaml".to_string(),
        ..PlanRequest::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Plan,
    Cycle,
    Conflict,
    NoHosts,
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(format!($($arg)*));
        }
    };
}

fn check(case: &Case) -> Result<Outcome, String> {
    let config = Config::parse("prop.yaml", &case.yaml)
        .map_err(|e| format!("a valid generated config was refused:\n{e}"))?;
    let expected = Expected::new(case);
    let request = request(case);
    match compile(&config, &request) {
        Err(error) => check_refusal(case, &expected, &error),
        Ok(plan) => {
            // (A config naming no host, with no targets, is refused today; see the plain test
            // `a_config_naming_no_host_has_no_default_targets`. Here an empty plan would only
            // have to be consistent.)
            ensure!(
                !expected.cycle,
                "the sequences order hosts in a cycle, but a plan was made:\n{}",
                plan.to_json()
            );
            ensure!(
                expected.conflicts.is_empty(),
                "per-value limit on a tag with own hosts and sub-tags ({:?}) was accepted",
                expected.conflicts
            );
            check_plan(case, &expected, &plan)
                .map_err(|e| format!("{e}\n----- plan -----\n{}", plan.to_json()))?;
            // Determinism: the same inputs, compiled again (and from the text parsed again).
            let again = compile(&config, &request).map_err(|e| e.to_string())?;
            ensure!(
                again.to_json() == plan.to_json(),
                "compiling twice gave two plans"
            );
            let reparsed = Config::parse("prop.yaml", &case.yaml).map_err(|e| e.to_string())?;
            let third = compile(&reparsed, &request).map_err(|e| e.to_string())?;
            ensure!(
                third.to_json() == plan.to_json(),
                "parsing again gave another plan"
            );
            let read = Plan::from_json(&plan.to_json())
                .map_err(|e| format!("the plan does not read back: {e}"))?;
            ensure!(read == plan, "the plan does not round-trip through JSON");
            ensure!(
                read.to_json() == plan.to_json(),
                "the plan's JSON is not stable"
            );
            Ok(Outcome::Plan)
        }
    }
}

fn check_refusal(case: &Case, expected: &Expected, error: &PlanError) -> Result<Outcome, String> {
    let text = error.to_string();
    if expected.targets.is_empty() {
        ensure!(
            case.targets.is_none() && text.contains("no targets"),
            "unexpected error for a config naming no host:\n{text}"
        );
        return Ok(Outcome::NoHosts);
    }
    ensure!(
        expected.cycle || !expected.conflicts.is_empty(),
        "a valid config was refused:\n{text}"
    );
    let mut outcome = None;
    for d in &error.diagnostics {
        if is_cycle_error(&d.message) {
            ensure!(
                expected.cycle,
                "a cycle was reported where there is none:\n{text}"
            );
            if let Some((_, chain)) = d.message.split_once(CYCLE_CHAIN) {
                check_cycle_message(expected, chain).map_err(|e| format!("{e}\n{text}"))?;
            }
            outcome = Some(Outcome::Cycle);
        } else if is_conflict_error(&d.message) {
            ensure!(
                expected
                    .conflicts
                    .iter()
                    .any(|c| d.message.contains(&format!("`{c}`"))),
                "a per-value conflict was reported where there is none:\n{text}"
            );
            outcome.get_or_insert(Outcome::Conflict);
        } else {
            return Err(format!("unexpected error:\n{text}"));
        }
    }
    outcome.ok_or_else(|| format!("an error without diagnostics: {error:?}"))
}

/// The cycle the planner spells out must be a real closed chain of waits in the model.
fn check_cycle_message(expected: &Expected, chain: &str) -> Result<(), String> {
    let mut slots: HashMap<&str, Node> = HashMap::new();
    for (t, ids) in expected.slot_ids.iter().enumerate() {
        for (k, id) in ids.iter().enumerate() {
            slots.insert(id.as_str(), Node::Slot(t, k));
        }
    }
    let host = |name: &str| -> Result<Node, String> {
        expected
            .hosts
            .iter()
            .position(|h| h == name)
            .map(Node::Host)
            .ok_or_else(|| format!("the cycle names `{name}`, which is in no slot"))
    };
    let slot = |id: &str| -> Result<Node, String> {
        slots
            .get(id)
            .copied()
            .ok_or_else(|| format!("the cycle names slot `{id}`, which does not exist"))
    };
    let quoted = |s: &str| -> Option<String> {
        s.strip_prefix('`')
            .and_then(|s| s.strip_suffix('`'))
            .map(str::to_string)
    };
    let mut links = Vec::new();
    for link in chain.split("; ") {
        let edge = if let Some(rest) = link.strip_prefix("slot ") {
            if let Some((b, a)) = rest.split_once(" waits for slot ") {
                (
                    slot(&quoted(a).unwrap_or_default())?,
                    slot(&quoted(b).unwrap_or_default())?,
                )
            } else if let Some((b, h)) = rest.split_once(" is complete only once ") {
                let h = h
                    .strip_suffix(" has run")
                    .ok_or(format!("bad link `{link}`"))?;
                (host(h)?, slot(&quoted(b).unwrap_or_default())?)
            } else {
                return Err(format!("cannot read the link `{link}`"));
            }
        } else if let Some((h, a)) = link.split_once(" waits for slot ") {
            (slot(&quoted(a).unwrap_or_default())?, host(h)?)
        } else {
            return Err(format!("cannot read the link `{link}`"));
        };
        ensure!(
            expected.edges.contains(&edge),
            "the cycle's link `{link}` is not a real dependency"
        );
        links.push(edge);
    }
    ensure!(!links.is_empty(), "the cycle is empty");
    for k in 0..links.len() {
        let next = links[(k + 1) % links.len()];
        ensure!(
            links[k].1 == next.0,
            "the cycle's links do not chain up: {chain}"
        );
    }
    Ok(())
}

fn check_plan(case: &Case, expected: &Expected, plan: &Plan) -> Result<(), String> {
    plan.validate()
        .map_err(|e| format!("the plan breaks an invariant: {e}"))?;

    // Targets: each exactly once in `hosts`.
    let mut listed = HashSet::new();
    for h in &plan.hosts {
        ensure!(listed.insert(h.as_str()), "`{h}` is twice in hosts");
    }
    let targets: HashSet<&str> = expected.targets.iter().map(String::as_str).collect();
    ensure!(
        listed == targets,
        "hosts {:?} are not the targets {:?}",
        plan.hosts,
        expected.targets
    );
    let rank: HashMap<&str, usize> = plan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();

    // Slots: the model's, thread by thread; threads holding no target are left out.
    let kept: Vec<usize> = (0..case.threads.len())
        .filter(|&t| expected.slots[t].iter().any(|s| !s.is_empty()))
        .collect();
    ensure!(
        plan.threads.len() == kept.len(),
        "the plan has threads {:?}, expected {:?}",
        plan.threads.iter().map(|t| &t.name).collect::<Vec<_>>(),
        kept.iter()
            .map(|&t| &case.threads[t].name)
            .collect::<Vec<_>>()
    );
    let mut slot_ids = HashSet::new();
    let mut in_slot: HashSet<&str> = HashSet::new();
    let mut expected_edges = Vec::new();
    for (thread, &t) in plan.threads.iter().zip(&kept) {
        let model = &case.threads[t];
        ensure!(
            thread.name == model.name,
            "thread `{}` is not `{}`",
            thread.name,
            model.name
        );
        ensure!(
            thread.filter == model.filter.as_ref().map(|f| f.0.clone()),
            "thread `{}` has filter {:?}",
            thread.name,
            thread.filter
        );
        ensure!(
            thread.slots.len() == model.steps.len(),
            "thread `{}` has {} slots for {} steps",
            thread.name,
            thread.slots.len(),
            model.steps.len()
        );
        for (k, slot) in thread.slots.iter().enumerate() {
            ensure!(
                slot_ids.insert(slot.id.as_str()),
                "slot id `{}` twice",
                slot.id
            );
            let base = format!("{}.{}", model.name, model.steps[k].text);
            ensure!(
                slot.id == base || slot.id.starts_with(&format!("{base}#")),
                "slot id `{}` is not `{base}`",
                slot.id
            );
            ensure!(
                slot.step == model.steps[k].text,
                "slot `{}` has step `{}`",
                slot.id,
                slot.step
            );
            ensure!(
                slot.hosts == expected.slots[t][k],
                "slot `{}` holds {:?}, expected {:?} (step ∩ filter ∩ targets, minus earlier steps)",
                slot.id,
                slot.hosts,
                expected.slots[t][k]
            );
            in_slot.extend(slot.hosts.iter().map(String::as_str));
            if k > 0 {
                expected_edges.push((thread.slots[k - 1].id.clone(), slot.id.clone()));
            }
        }
    }
    let edges: Vec<(String, String)> = plan
        .edges
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    ensure!(
        edges == expected_edges,
        "edges {edges:?}, expected each slot after the previous step of its thread {expected_edges:?}"
    );
    check_plan_acyclic(plan)?;

    // The unordered lane and the targets not in the config.
    let unordered: HashSet<&str> = plan.unordered.iter().map(String::as_str).collect();
    ensure!(
        unordered.len() == plan.unordered.len(),
        "unordered lists a host twice"
    );
    for h in &expected.targets {
        let (a, b) = (in_slot.contains(h.as_str()), unordered.contains(h.as_str()));
        ensure!(a != b, "target `{h}`: in a slot {a}, unordered {b}");
    }
    ensure!(
        unordered.iter().all(|h| targets.contains(h)),
        "unordered holds a host that is not a target"
    );
    let outside: HashSet<&str> = expected
        .targets
        .iter()
        .filter(|h| !expected.config_hosts.contains(*h))
        .map(String::as_str)
        .collect();
    let not_in_config: HashSet<&str> = plan.not_in_config.iter().map(String::as_str).collect();
    ensure!(
        not_in_config == outside && not_in_config.len() == plan.not_in_config.len(),
        "not_in_config {:?}, expected {outside:?}",
        plan.not_in_config
    );

    // Repeated hosts in a thread are a warning.
    for t in &kept {
        let name = &case.threads[*t].name;
        let warned = plan
            .warnings
            .iter()
            .any(|w| w.contains(&format!("thread `{name}`")) && w.contains("earlier step"));
        ensure!(
            warned == expected.repeats.contains(name),
            "thread `{name}`: repeated-host warning {warned}, expected {}",
            !warned
        );
    }

    // Constraint groups.
    let in_plan_order = |hosts: &[String]| {
        hosts
            .windows(2)
            .all(|w| rank[w[0].as_str()] < rank[w[1].as_str()])
    };
    match case.job {
        JobLimit::Unconstrained => {
            ensure!(
                plan.constraint(JOB_GROUP_ID).is_none(),
                "--unconstrained has a job group"
            );
        }
        limit => {
            let job = plan
                .constraint(JOB_GROUP_ID)
                .ok_or("the job group is missing")?;
            let n = expected.targets.len() as u64;
            let amount = match limit {
                JobLimit::Limit(Limit::Count(c)) => Amount::number(c),
                JobLimit::Limit(Limit::Percent(p)) => Amount {
                    value: (u64::from(p) * n / 100).max(1),
                    percent: Some(p),
                    base: Some(n),
                },
                _ => Amount::number(DEFAULT_CONCURRENT),
            };
            ensure!(job.from == JOB_GROUP_ID, "job group from `{}`", job.from);
            ensure!(
                job.max_parallel == amount,
                "job limit {:?}, expected {amount:?}",
                job.max_parallel
            );
            let hosts: HashSet<&str> = job.hosts.iter().map(String::as_str).collect();
            ensure!(
                hosts == targets && job.hosts.len() == targets.len(),
                "the job group does not hold every target once"
            );
            ensure!(
                in_plan_order(&job.hosts),
                "the job group is not in plan order"
            );
        }
    }
    let groups = plan.constraints.iter().filter(|g| g.id != JOB_GROUP_ID);
    let actual: Vec<_> = groups.collect();
    let wanted = expected.groups(case);
    ensure!(
        actual.iter().map(|g| &g.id).eq(wanted.iter().map(|g| &g.0)),
        "constraint groups {:?}, expected {:?}",
        actual.iter().map(|g| &g.id).collect::<Vec<_>>(),
        wanted.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    for (group, (id, from, amount, hosts)) in actual.iter().zip(&wanted) {
        ensure!(
            group.from == *from,
            "group `{id}` from `{}`, expected `{from}`",
            group.from
        );
        ensure!(
            group.max_parallel == *amount,
            "group `{id}`: max_parallel {:?}, expected {amount:?}",
            group.max_parallel
        );
        let got: HashSet<&String> = group.hosts.iter().collect();
        let want: HashSet<&String> = hosts.iter().collect();
        ensure!(
            got == want && group.hosts.len() == hosts.len(),
            "group `{id}` holds {:?}, expected the targeted members {hosts:?}",
            group.hosts
        );
        ensure!(
            in_plan_order(&group.hosts),
            "group `{id}` is not in plan order"
        );
    }
    Ok(())
}

/// A topological check of the plan itself: slots, and every host as a node that waits for the
/// predecessors of each slot holding it and that each such slot waits for.
fn check_plan_acyclic(plan: &Plan) -> Result<(), String> {
    let mut nodes: Vec<String> = Vec::new();
    let mut edges: HashSet<(usize, usize)> = HashSet::new();
    let id = |name: String, nodes: &mut Vec<String>| match nodes.iter().position(|n| *n == name) {
        Some(i) => i,
        None => {
            nodes.push(name);
            nodes.len() - 1
        }
    };
    for (_, slot) in plan.slots() {
        let s = id(format!("slot {}", slot.id), &mut nodes);
        for h in &slot.hosts {
            let hn = id(format!("host {h}"), &mut nodes);
            edges.insert((hn, s));
            for e in plan.edges.iter().filter(|e| e.to == slot.id) {
                let p = id(format!("slot {}", e.from), &mut nodes);
                edges.insert((p, hn));
            }
        }
    }
    for e in &plan.edges {
        let a = id(format!("slot {}", e.from), &mut nodes);
        let b = id(format!("slot {}", e.to), &mut nodes);
        edges.insert((a, b));
    }
    let all: Vec<usize> = (0..nodes.len()).collect();
    ensure!(!has_cycle(&all, &edges), "the plan's DAG has a cycle");
    Ok(())
}

/// Threads over a few shared hosts, in every order: the cross-thread ordering and its cycles.
fn crossing_threads() -> impl Strategy<Value = Raw> {
    let step = prop_oneof![
        3 => any::<u8>().prop_map(|n| RawStep::One(RawEntry {
            first: RawItem::Hosts(RawHosts::Few(n)),
            second: None,
            quoted: false,
        })),
        1 => proptest::collection::vec(any::<u8>().prop_map(|n| RawItem::Hosts(RawHosts::Few(n))), 1..=2)
            .prop_map(RawStep::Flow),
        1 => Just(RawStep::Empty),
    ];
    let thread =
        (any::<u8>(), proptest::collection::vec(step, 1..=4)).prop_map(|(name, steps)| RawThread {
            filter: None,
            name,
            scalar_form: false,
            steps,
        });
    let all = RawTag {
        parent: 0,
        own: Some(vec![RawEntry {
            first: RawItem::Hosts(RawHosts::Range(0, 3)),
            second: None,
            quoted: false,
        }]),
        nest: false,
        own_pos: 0,
        style: 2,
    };
    (
        proptest::collection::vec(thread, 2..=4),
        proptest::option::weighted(
            0.3,
            proptest::collection::vec(
                proptest::collection::vec(any::<u8>().prop_map(RawTarget::Host), 1..=3),
                1..=2,
            ),
        ),
    )
        .prop_map(move |(threads, targets)| Raw {
            tags: vec![all.clone()],
            seq: RawSeq::Map(threads),
            constraints: Vec::new(),
            targets,
            job: RawJob::Default,
            order: 0,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn compiled_plans_match_the_reference_model(case in raw().prop_map(|r| build(&r))) {
        if let Err(problem) = check(&case) {
            prop_assert!(false, "{}", problem);
        }
    }

    #[test]
    fn threads_sharing_hosts_are_ordered_or_refused_as_a_cycle(case in crossing_threads().prop_map(|r| build(&r))) {
        if let Err(problem) = check(&case) {
            prop_assert!(false, "{}", problem);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Edge cases the generator rarely hits
// ---------------------------------------------------------------------------------------------

fn plan_of(yaml: &str, targets: &[&str], job: JobLimit) -> Result<Plan, PlanError> {
    let config = Config::parse("edge.yaml", yaml)?;
    let request = PlanRequest {
        targets: targets
            .iter()
            .map(|t| TargetSpec {
                text: t.to_string(),
                span: Span::start(&Source::argument("--targets", *t)),
            })
            .collect(),
        concurrent: job,
        ..PlanRequest::default()
    };
    compile(&config, &request)
}

fn slot_hosts(plan: &Plan) -> Vec<(String, Vec<String>)> {
    plan.slots()
        .map(|(_, s)| (s.id.clone(), s.hosts.clone()))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_percentage_is_of_the_whole_group_even_when_few_are_targeted() {
    let yaml = "tag:\n  web: h[1-20]\nconstraint:\n  $web:\n    max_parallel: 15%\n";
    let plan = plan_of(yaml, &["h1,h2"], JobLimit::Default).unwrap();
    let group = plan.constraint("$web").unwrap();
    assert_eq!(
        group.max_parallel,
        Amount {
            value: 3,
            percent: Some(15),
            base: Some(20)
        }
    );
    assert_eq!(group.hosts, strings(&["h1", "h2"]));
}

#[test]
fn a_small_percentage_never_rounds_to_zero() {
    let yaml = "tag:\n  web: [h1, h2, h3]\nconstraint:\n  $web:\n    max_parallel: 1%\n";
    let plan = plan_of(yaml, &[], JobLimit::Limit(Limit::Percent(10))).unwrap();
    let one = |base| Amount {
        value: 1,
        percent: Some(if base == 3 { 1 } else { 10 }),
        base: Some(base),
    };
    assert_eq!(plan.constraint("$web").unwrap().max_parallel, one(3));
    // --concurrent 10% of 3 targets: 0.3 → 1
    let job = plan.constraint(JOB_GROUP_ID).unwrap();
    assert_eq!(job.max_parallel.value, 1);
    assert_eq!(
        (job.max_parallel.percent, job.max_parallel.base),
        (Some(10), Some(3))
    );
}

#[test]
fn the_job_percentage_is_of_the_targets_not_the_config() {
    let yaml = "tag:\n  web: h[1-10]\n";
    let plan = plan_of(yaml, &["h[1-4],x1"], JobLimit::Limit(Limit::Percent(50))).unwrap();
    let job = plan.constraint(JOB_GROUP_ID).unwrap();
    assert_eq!(
        job.max_parallel,
        Amount {
            value: 2,
            percent: Some(50),
            base: Some(5)
        }
    );
    assert_eq!(plan.not_in_config, strings(&["x1"]));
    assert!(plan.unordered.contains(&"x1".to_string()));
}

#[test]
fn opposite_orders_in_two_threads_are_a_cycle() {
    let yaml = "tag:\n  all: [h1, h2]\nsequence:\n  a: [h1, h2]\n  b: [h2, h1]\n";
    let error = plan_of(yaml, &[], JobLimit::Default).unwrap_err();
    let message = &error.diagnostics[0].message;
    assert!(is_cycle_error(message), "{error}");
    assert!(message.contains("h1") && message.contains("h2"), "{error}");
}

#[test]
fn a_cycle_through_three_threads_is_found() {
    let yaml = "tag:\n  all: h[1-3]\nsequence:\n  a: [h1, h2]\n  b: [h2, h3]\n  c: [h3, h1]\n";
    let error = plan_of(yaml, &[], JobLimit::Default).unwrap_err();
    assert!(is_cycle_error(&error.diagnostics[0].message), "{error}");
    // Without one of the three hosts there is no cycle.
    let plan = plan_of(yaml, &["h1,h2"], JobLimit::Default).unwrap();
    plan.validate().unwrap();
}

#[test]
fn threads_that_agree_share_hosts_without_a_cycle() {
    let yaml = "tag:\n  all: h[1-3]\nsequence:\n  a: [h1, h2, h3]\n  b: [h1, h3]\n";
    let plan = plan_of(yaml, &[], JobLimit::Default).unwrap();
    assert_eq!(
        slot_hosts(&plan),
        [
            ("a.h1".to_string(), strings(&["h1"])),
            ("a.h2".to_string(), strings(&["h2"])),
            ("a.h3".to_string(), strings(&["h3"])),
            ("b.h1".to_string(), strings(&["h1"])),
            ("b.h3".to_string(), strings(&["h3"])),
        ]
    );
    assert!(plan.unordered.is_empty());
}

#[test]
fn a_per_value_limit_needs_a_parent_without_hosts_of_its_own() {
    let refused =
        "tag:\n  colo: [h9]\n  colo.east: [h1]\nconstraint:\n  $colo:\n    max_parallel: 1\n";
    let error = plan_of(refused, &[], JobLimit::Default).unwrap_err();
    assert!(error.to_string().contains(CONFLICT), "{error}");
    // An empty own list is no hosts of its own.
    let fine = "tag:\n  colo: []\n  colo.east: [h1, h2]\n  colo.west: h3\nconstraint:\n  $colo:\n    max_parallel: 1\n";
    let plan = plan_of(fine, &[], JobLimit::Unconstrained).unwrap();
    let ids: Vec<&str> = plan.constraints.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["$colo.east", "$colo.west"]);
    assert!(plan.constraints.iter().all(|c| c.from == "$colo"));
}

#[test]
fn nested_constraint_keys_are_an_and_per_value() {
    let yaml = "tag:\n  colo:\n    east: h[1-4]\n    west: h[5-8]\n  web: [h1, h2, h5]\n\
                constraint:\n  $web:\n    $colo:\n      max_parallel: 50%\n";
    let plan = plan_of(yaml, &[], JobLimit::Unconstrained).unwrap();
    let groups: Vec<(&str, &[String], u64)> = plan
        .constraints
        .iter()
        .map(|c| (c.id.as_str(), c.hosts.as_slice(), c.max_parallel.value))
        .collect();
    assert_eq!(
        groups,
        [
            ("$web.$colo.east", &strings(&["h1", "h2"])[..], 1),
            ("$web.$colo.west", &strings(&["h5"])[..], 1),
        ]
    );
}

#[test]
fn an_empty_step_keeps_the_order_around_it() {
    let yaml = "tag:\n  a: h1\n  b: h2\nsequence:\n  - $a\n  - []\n  - $b\n";
    let plan = plan_of(yaml, &[], JobLimit::Default).unwrap();
    let ids: Vec<String> = plan.slots().map(|(_, s)| s.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    let edges: Vec<(&str, &str)> = plan
        .edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    assert_eq!(
        edges,
        [
            (ids[0].as_str(), ids[1].as_str()),
            (ids[1].as_str(), ids[2].as_str())
        ]
    );
    assert!(plan.slots().nth(1).unwrap().1.hosts.is_empty());
}

#[test]
fn a_filter_that_matches_no_step_leaves_its_hosts_unordered() {
    let yaml = "tag:\n  db: [db1, db2]\n  web: [h1]\nsequence:\n  $db:\n    - $web\n";
    let plan = plan_of(yaml, &[], JobLimit::Default).unwrap();
    assert!(plan.threads.is_empty());
    assert_eq!(plan.unordered, strings(&["db1", "db2", "h1"]));
    assert!(plan.not_in_config.is_empty());
}

#[test]
fn plain_hosts_in_mapping_threads_are_sequenced_and_in_the_config() {
    let yaml = "tag:\n  web: [h1]\nsequence:\n  first:\n    - h7\n    - $web\n";
    let plan = plan_of(yaml, &[], JobLimit::Default).unwrap();
    assert_eq!(
        slot_hosts(&plan),
        [
            ("first.h7".to_string(), strings(&["h7"])),
            ("first.$web".to_string(), strings(&["h1"])),
        ]
    );
    assert!(plan.not_in_config.is_empty());
}

#[test]
fn a_host_repeated_in_a_thread_runs_in_its_first_step_with_a_warning() {
    let yaml = "tag:\n  a: [h1, h2]\n  b: [h2, h3]\nsequence:\n  - $a\n  - $b\n  - h[1-3]\n";
    let plan = plan_of(yaml, &[], JobLimit::Default).unwrap();
    let hosts: Vec<Vec<String>> = plan.slots().map(|(_, s)| s.hosts.clone()).collect();
    assert_eq!(hosts, [strings(&["h1", "h2"]), strings(&["h3"]), vec![]]);
    let warnings = plan
        .warnings
        .iter()
        .filter(|w| w.contains("earlier step"))
        .count();
    assert_eq!(warnings, 2, "{:?}", plan.warnings);
}

#[test]
fn zero_padded_and_single_host_patterns() {
    let yaml = "tag:\n  a: \"h[08-10]\"\n  b: [\"x[3]\", \"y{1}\"]\n";
    let plan = plan_of(yaml, &[], JobLimit::Default).unwrap();
    assert_eq!(plan.hosts, strings(&["h08", "h09", "h10", "x3", "y1"]));
}

#[test]
fn a_config_naming_no_host_has_no_default_targets() {
    let error = plan_of("tag:\n  empty: []\n", &[], JobLimit::Default).unwrap_err();
    assert!(error.to_string().contains("no targets"), "{error}");
    let plan = plan_of("tag:\n  empty: []\n", &["x1"], JobLimit::Default).unwrap();
    assert_eq!(plan.not_in_config, strings(&["x1"]));
}

#[test]
fn duplicate_targets_keep_the_first() {
    let yaml = "tag:\n  web: [h1, h2]\n";
    let plan = plan_of(yaml, &["h2,$web", "h1,h2"], JobLimit::Default).unwrap();
    assert_eq!(plan.unordered, strings(&["h2", "h1"]));
}

/// Slot ids must stay unique (model docs: "`THREAD.STEP`, unique in the plan (a repeated step
/// gets `#2`, `#3`...)"). A step whose text already ends in `#2` collides with the id given to
/// the second repeat of another step: today the debug build panics on its own invariant check,
/// and a release build writes a plan that `Plan::from_json` then refuses.
#[test]
fn slot_ids_stay_unique_when_a_step_reads_like_a_repeat() {
    let yaml = "tag:\n  all: [h1, \"h1#2\"]\nsequence:\n  - h1\n  - h1\n  - \"h1#2\"\n";
    match plan_of(yaml, &[], JobLimit::Default) {
        Ok(plan) => {
            plan.validate().unwrap();
            Plan::from_json(&plan.to_json()).unwrap();
        }
        // Refusing such a config with an error would do too; a panic or a bad plan would not.
        Err(error) => assert!(!error.diagnostics.is_empty()),
    }
}

/// Guards the generator itself: a change that stops it from reaching an outcome or a feature
/// would silently weaken every property above. `--nocapture` prints the figures.
#[test]
fn generator_reaches_every_outcome_and_feature() {
    const CASES: usize = 400;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let strategy = raw();
    for _ in 0..CASES {
        let raw = strategy.new_tree(&mut runner).unwrap().current();
        let case = build(&raw);
        let outcome = check(&case).unwrap_or_else(|e| panic!("{case:?}\n{e}"));
        *counts
            .entry(match outcome {
                Outcome::Plan => "plan",
                Outcome::Cycle => "refused: cycle",
                Outcome::Conflict => "refused: per-value conflict",
                Outcome::NoHosts => "refused: no host",
            })
            .or_default() += 1;
        let y = &case.yaml;
        for (feature, hit) in [
            (
                "dotted tag key",
                y.lines().any(|l| {
                    l.trim_start()
                        .split(':')
                        .next()
                        .is_some_and(|k| k.contains('.') && !k.contains('$'))
                }),
            ),
            (
                "$ref member",
                case.doc[0].0 == "tag"
                    && scalars(&case.doc[0].1)
                        .iter()
                        .any(|s| s.items.iter().any(|i| matches!(i, Item::Tag(_)))),
            ),
            ("pattern", y.contains('[') && y.contains('-')),
            (
                "filter thread",
                case.threads.iter().any(|t| t.filter.is_some()),
            ),
            (
                "empty step",
                case.threads
                    .iter()
                    .any(|t| t.steps.iter().any(|s| s.items.is_empty())),
            ),
            (
                "AND step",
                case.threads
                    .iter()
                    .any(|t| t.steps.iter().any(|s| s.text.contains(".$"))),
            ),
            (
                "percent constraint",
                case.constraints
                    .iter()
                    .any(|c| matches!(c.limit, Limit::Percent(_))),
            ),
            ("nested constraint", y.contains("    $")),
            ("targets given", case.targets.is_some()),
            ("repeated host", !Expected::new(&case).repeats.is_empty()),
        ] {
            if hit {
                *counts.entry(feature).or_default() += 1;
            }
        }
    }
    let crossing = crossing_threads();
    for _ in 0..CASES {
        let case = build(&crossing.new_tree(&mut runner).unwrap().current());
        if check(&case).unwrap_or_else(|e| panic!("{case:?}\n{e}")) == Outcome::Cycle {
            *counts.entry("crossing threads: cycle").or_default() += 1;
        }
    }
    let mut figures: Vec<_> = counts.iter().collect();
    figures.sort();
    for (what, n) in figures {
        println!("{what:30} {n:5} / {CASES}");
    }
    for what in [
        "plan",
        "refused: cycle",
        "refused: per-value conflict",
        "dotted tag key",
        "$ref member",
        "pattern",
        "filter thread",
        "empty step",
        "AND step",
        "percent constraint",
        "nested constraint",
        "targets given",
        "repeated host",
        "crossing threads: cycle",
    ] {
        assert!(
            counts.get(what).copied().unwrap_or(0) > 0,
            "the generator never produced `{what}` in {CASES} cases"
        );
    }
}
