//! What changes between two plans, as a reviewer reads a rollout: `pogo diff`.
//!
//! [`diff`] is a pure function of two plans. It compares what the plans *do* — who runs, in
//! which slot and order, under which limits, with which command and options, and what a
//! reviewer is warned about — and ignores what only says where a plan or a part of it came
//! from: `producer`, `source`, a slot's `step` (its id says it), a group's `from`, the commands
//! of `external_tags` and `not_in_config` (their effects are in the hosts, slots and groups).
//! The digests are compared on their own ([`PlanDiff::digests`]): a comment added to a config
//! changes its digest, not the rollout, so it does not make the plans differ
//! ([`PlanDiff::is_empty`]).
//!
//! Every list is in a deterministic order: a plan's own order (plan order for hosts, config
//! order for threads, slots, groups and warnings), the new plan's where both have the item.
//! The field order of the structs is the key order of `pogo diff --format json`
//! (`docs/diff.md` documents it).

use pogo_model::{FastMap, FastSet};

use pogo_model::{Amount, Approval, ConstraintSpec, EdgeSpec, Plan, Verify, JOB_GROUP_ID};
use serde::Serialize;

/// Every difference between two plans that matters to a rollout, section by section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanDiff {
    pub options: OptionChanges,
    pub hosts: HostChanges,
    pub threads: ThreadChanges,
    pub slots: SlotChanges,
    pub edges: EdgeChanges,
    pub constraints: ConstraintChanges,
    pub warnings: WarningChanges,
    /// Not a difference of the rollout: see the module documentation.
    pub digests: DigestChanges,
}

/// A value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change<T> {
    pub old: T,
    pub new: T,
}

impl<T: PartialEq> Change<T> {
    fn of(old: T, new: T) -> Option<Change<T>> {
        (old != new).then_some(Change { old, new })
    }
}

/// The command and the run options; a field is `None` when it did not change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OptionChanges {
    pub command: Option<Change<Option<String>>>,
    /// The job-wide limit (the `job` group; `--concurrent`): `None` inside for no limit.
    pub concurrent: Option<JobLimitChange>,
    pub timeout: Option<Change<u64>>,
    pub retries: Option<Change<u32>>,
    pub max_failures: Option<Change<Amount>>,
    pub run_timeout: Option<Change<Option<u64>>>,
    /// A host's phases around its command (`None` inside: no such phase).
    pub before: Option<Change<Option<String>>>,
    pub verify: Option<Change<Option<Verify>>>,
    pub after: Option<Change<Option<String>>>,
    /// Gates and approvals after steps that changed, by step, in plan order (old plan's
    /// first): a removed approval is a change a reviewer must see.
    pub gates: Vec<GateChange>,
}

/// What waits after one step, before and after; a field is `None` when it did not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateChange {
    pub step: String,
    pub gate: Option<Change<Option<String>>>,
    pub approve: Option<Change<Option<Approval>>>,
}

impl OptionChanges {
    /// The phases that changed, by name: a reviewer must see a changed health check.
    pub fn phases_changed(&self) -> Vec<&'static str> {
        [
            ("before", self.before.is_some()),
            ("verify", self.verify.is_some()),
            ("after", self.after.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    pub fn is_empty(&self) -> bool {
        *self == OptionChanges::default()
    }

    /// How many of the run options besides the command and the job limit changed.
    fn run_options_changed(&self) -> usize {
        [
            self.timeout.is_some(),
            self.retries.is_some(),
            self.max_failures.is_some(),
            self.run_timeout.is_some(),
        ]
        .into_iter()
        .filter(|&c| c)
        .count()
    }
}

/// The job-wide limit before and after; `None` is no limit (`--unconstrained`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobLimitChange {
    pub old: Option<Amount>,
    pub new: Option<Amount>,
    pub direction: Direction,
}

/// Which way a limit moved: more hosts may be down at once (`raised`), fewer (`lowered`), or
/// as many, written another way (`same`: `2` became `50%` of 4, or a percentage's base grew
/// without changing its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Raised,
    Lowered,
    Same,
}

impl Direction {
    /// `None` is no limit at all, more than any number.
    fn of(old: Option<u64>, new: Option<u64>) -> Direction {
        let rank = |v: Option<u64>| v.map_or(u128::MAX, u128::from);
        match rank(new).cmp(&rank(old)) {
            std::cmp::Ordering::Greater => Direction::Raised,
            std::cmp::Ordering::Less => Direction::Lowered,
            std::cmp::Ordering::Equal => Direction::Same,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostChanges {
    /// Targets of the new plan only, in its plan order.
    pub added: Vec<String>,
    /// Targets of the old plan only, in its plan order.
    pub removed: Vec<String>,
    /// Hosts of both plans that are in other slots, grouped by where they go from and to.
    pub moved: Vec<HostMove>,
    /// Slots (and the unordered lane) whose hosts, counting those of both plans, are in
    /// another order: which of them start first when a limit holds some back.
    pub reordered: Vec<HostOrder>,
}

/// Hosts that left the same slots for the same slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostMove {
    /// The slot ids that held the hosts (several when threads share them); empty for the
    /// unordered lane.
    pub from: Vec<String>,
    /// The slot ids that hold them now; empty for the unordered lane.
    pub to: Vec<String>,
    /// In the new plan's order.
    pub hosts: Vec<String>,
}

/// The order of the hosts that a slot holds in both plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostOrder {
    /// The slot id; `None` for the unordered lane.
    pub slot: Option<String>,
    pub old: Vec<String>,
    pub new: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThreadChanges {
    /// Threads of the new plan only, with their slots.
    pub added: Vec<ThreadSummary>,
    pub removed: Vec<ThreadSummary>,
    /// The order of the threads that both plans have, when it changed: it decides the order of
    /// the waves in plan order.
    pub order: Option<Change<Vec<String>>>,
    /// Threads of both plans whose filter changed.
    pub filters: Vec<FilterChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadSummary {
    pub name: String,
    pub filter: Option<String>,
    /// Slot ids, in order.
    pub slots: Vec<String>,
    /// How many hosts its slots hold.
    pub hosts: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterChange {
    pub thread: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Slots of the threads both plans have (a new or removed thread lists its slots itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SlotChanges {
    pub added: Vec<SlotSummary>,
    pub removed: Vec<SlotSummary>,
    /// Threads whose slots, counting those of both plans, are in another order.
    pub reordered: Vec<SlotOrder>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotSummary {
    pub thread: String,
    pub id: String,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotOrder {
    pub thread: String,
    /// The slot ids both plans have, in the old order and in the new.
    pub old: Vec<String>,
    pub new: Vec<String>,
    /// How many of them changed place.
    pub moved: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EdgeChanges {
    pub added: Vec<EdgeSpec>,
    pub removed: Vec<EdgeSpec>,
}

/// The config's constraint groups; the job-wide limit is under [`OptionChanges::concurrent`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConstraintChanges {
    pub added: Vec<ConstraintSpec>,
    pub removed: Vec<ConstraintSpec>,
    /// Groups of both plans whose `max_parallel` changed.
    pub limits: Vec<LimitChange>,
    /// Groups of both plans whose hosts changed.
    pub members: Vec<MemberChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitChange {
    pub group: String,
    pub old: Amount,
    pub new: Amount,
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberChange {
    pub group: String,
    /// In the new plan's order.
    pub entered: Vec<String>,
    /// In the old plan's order.
    pub left: Vec<String>,
}

/// Warnings are compared without the `file:line:col: ` they start with, so that a line added
/// above a warned-about step, or another name of the same file, is not a new warning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WarningChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// `None` where the digest is the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DigestChanges {
    pub config: Option<Change<String>>,
    pub inventory: Option<Change<String>>,
}

impl DigestChanges {
    pub fn is_empty(&self) -> bool {
        self.config.is_none() && self.inventory.is_none()
    }
}

/// Compares two plans.
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let mut names = Hosts::of(old, new);
    PlanDiff {
        options: options(old, new),
        hosts: hosts(old, new, &mut names),
        threads: threads(old, new),
        slots: slots(old, new),
        edges: edges(old, new),
        constraints: constraints(old, new, &mut names),
        warnings: warnings(old, new),
        digests: DigestChanges {
            config: Change::of(old.digests.config.clone(), new.digests.config.clone()),
            inventory: Change::of(old.digests.inventory.clone(), new.digests.inventory.clone()),
        },
    }
}

/// The old side of a plan that did not exist before (a plan spec new in a pull request): the
/// same command, options, job-wide limit, external tags and digests, and nothing else, so that
/// a diff lists every host, thread, slot, edge, group and warning of `plan` as added.
pub fn nothing_before(plan: &Plan) -> Plan {
    Plan {
        hosts: Vec::new(),
        threads: Vec::new(),
        unordered: Vec::new(),
        not_in_config: Vec::new(),
        constraints: plan
            .constraint(JOB_GROUP_ID)
            .map(|job| ConstraintSpec {
                hosts: Vec::new(),
                ..job.clone()
            })
            .into_iter()
            .collect(),
        edges: Vec::new(),
        warnings: Vec::new(),
        ..plan.clone()
    }
}

impl PlanDiff {
    /// True when the plans describe the same rollout (they may still differ in their digests,
    /// producer and source).
    pub fn is_empty(&self) -> bool {
        PlanDiff {
            digests: DigestChanges::default(),
            ..self.clone()
        } == PlanDiff::default()
    }

    /// One line that says what changed, for example `3 hosts move, 1 limit raised, order of 2
    /// slots changed`; `no difference` when nothing did. Edges are left out: they change only
    /// with the slots and threads, which are counted.
    pub fn summary(&self) -> String {
        let mut parts = Summary::default();
        let options = &self.options;
        if options.command.is_some() {
            parts.say("command changed");
        }
        let phases = options.phases_changed();
        if !phases.is_empty() {
            parts.say(format!("phases changed: {}", phases.join(", ")));
        }
        if !options.gates.is_empty() {
            let steps: Vec<&str> = options.gates.iter().map(|g| g.step.as_str()).collect();
            parts.say(format!("gates changed after {}", steps.join(", ")));
        }
        parts.count(
            options.run_options_changed(),
            "run option changed",
            "run options changed",
        );
        parts.count(self.hosts.added.len(), "host added", "hosts added");
        parts.count(self.hosts.removed.len(), "host removed", "hosts removed");
        parts.count(
            self.hosts.moved.iter().map(|m| m.hosts.len()).sum(),
            "host moves",
            "hosts move",
        );
        let reordered = self.hosts.reordered.len();
        if reordered > 0 {
            parts.say(format!(
                "order of hosts changed in {}",
                count(reordered, "slot", "slots")
            ));
        }
        parts.count(self.threads.added.len(), "thread added", "threads added");
        parts.count(
            self.threads.removed.len(),
            "thread removed",
            "threads removed",
        );
        if self.threads.order.is_some() {
            parts.say("order of threads changed");
        }
        parts.count(
            self.threads.filters.len(),
            "thread filter changed",
            "thread filters changed",
        );
        parts.count(self.slots.added.len(), "slot added", "slots added");
        parts.count(self.slots.removed.len(), "slot removed", "slots removed");
        let moved: usize = self.slots.reordered.iter().map(|o| o.moved).sum();
        if moved > 0 {
            parts.say(format!(
                "order of {} changed",
                count(moved, "slot", "slots")
            ));
        }
        let c = &self.constraints;
        parts.count(c.added.len(), "group added", "groups added");
        parts.count(c.removed.len(), "group removed", "groups removed");
        let directions: Vec<Direction> = options
            .concurrent
            .iter()
            .map(|l| l.direction)
            .chain(c.limits.iter().map(|l| l.direction))
            .collect();
        for (direction, one, many) in [
            (Direction::Raised, "limit raised", "limits raised"),
            (Direction::Lowered, "limit lowered", "limits lowered"),
            (
                Direction::Same,
                "limit restated at the same value",
                "limits restated at the same values",
            ),
        ] {
            let n = directions.iter().filter(|&&d| d == direction).count();
            parts.count(n, one, many);
        }
        if !c.members.is_empty() {
            parts.say(format!(
                "members of {} changed",
                count(c.members.len(), "group", "groups")
            ));
        }
        parts.count(self.warnings.added.len(), "new warning", "new warnings");
        parts.count(self.warnings.removed.len(), "warning gone", "warnings gone");
        if parts.0.is_empty() {
            "no difference".to_string()
        } else {
            parts.0.join(", ")
        }
    }
}

/// The phrases of a summary line.
#[derive(Default)]
struct Summary(Vec<String>);

impl Summary {
    fn say(&mut self, phrase: impl Into<String>) {
        self.0.push(phrase.into());
    }

    fn count(&mut self, n: usize, one: &str, many: &str) {
        if n > 0 {
            self.0.push(count(n, one, many));
        }
    }
}

/// `1 host moves`, `3 hosts move`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Items of `a` that are not in `b`, in `a`'s order.
fn only_in(a: &[String], b: &[String]) -> Vec<String> {
    if a == b {
        return Vec::new();
    }
    let b: FastSet<&str> = b.iter().map(String::as_str).collect();
    a.iter()
        .filter(|x| !b.contains(x.as_str()))
        .cloned()
        .collect()
}

/// Items of `a` that are also in `b`, in `a`'s order.
fn common<'a>(a: &'a [String], b: &[String]) -> Vec<&'a str> {
    if a == b {
        return a.iter().map(String::as_str).collect();
    }
    let b: FastSet<&str> = b.iter().map(String::as_str).collect();
    a.iter()
        .map(String::as_str)
        .filter(|x| b.contains(x))
        .collect()
}

fn job_limit(plan: &Plan) -> Option<Amount> {
    plan.constraint(JOB_GROUP_ID).map(|g| g.max_parallel)
}

fn options(old: &Plan, new: &Plan) -> OptionChanges {
    let (o, n) = (&old.options, &new.options);
    let (old_limit, new_limit) = (job_limit(old), job_limit(new));
    OptionChanges {
        command: Change::of(old.command.clone(), new.command.clone()),
        concurrent: (old_limit != new_limit).then(|| JobLimitChange {
            old: old_limit,
            new: new_limit,
            direction: Direction::of(old_limit.map(|a| a.value), new_limit.map(|a| a.value)),
        }),
        timeout: Change::of(o.timeout, n.timeout),
        retries: Change::of(o.retries, n.retries),
        max_failures: Change::of(o.max_failures, n.max_failures),
        run_timeout: Change::of(o.run_timeout, n.run_timeout),
        before: Change::of(o.before.clone(), n.before.clone()),
        verify: Change::of(o.verify.clone(), n.verify.clone()),
        after: Change::of(o.after.clone(), n.after.clone()),
        gates: gate_changes(old, new),
    }
}

/// The steps whose gate or approval differ between the plans (a step only one plan has
/// counts with none on the other side).
fn gate_changes<'a>(old: &'a Plan, new: &'a Plan) -> Vec<GateChange> {
    // Step id → its gate and approval, the first slot of an id (slot ids are unique).
    type Waits<'a> = FastMap<&'a str, (&'a Option<String>, Option<Approval>)>;
    let waits = |plan: &'a Plan| -> Waits<'a> {
        let mut waits = Waits::default();
        for (_, s) in plan.slots() {
            waits.entry(&s.id).or_insert((&s.gate, s.approve));
        }
        waits
    };
    let (old_waits, new_waits) = (waits(old), waits(new));
    let find = |waits: &Waits<'_>, id: &str| {
        waits
            .get(id)
            .map(|&(g, a)| (g.clone(), a))
            .unwrap_or_default()
    };
    // Plan order, the old plan's first; each step once.
    let mut steps: Vec<&str> = Vec::new();
    let mut listed = FastSet::default();
    for (_, s) in old.slots().chain(new.slots()) {
        if listed.insert(s.id.as_str()) {
            steps.push(&s.id);
        }
    }
    steps
        .into_iter()
        .filter_map(|step| {
            let (old_gate, old_approve) = find(&old_waits, step);
            let (new_gate, new_approve) = find(&new_waits, step);
            let change = GateChange {
                step: step.to_string(),
                gate: Change::of(old_gate, new_gate),
                approve: Change::of(old_approve, new_approve),
            };
            (change.gate.is_some() || change.approve.is_some()).then_some(change)
        })
        .collect()
}

fn warnings(old: &Plan, new: &Plan) -> WarningChanges {
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        let b: FastSet<&str> = b.iter().map(|w| unlocated(w)).collect();
        a.iter()
            .filter(|w| !b.contains(unlocated(w)))
            .cloned()
            .collect()
    };
    WarningChanges {
        added: only(&new.warnings, &old.warnings),
        removed: only(&old.warnings, &new.warnings),
    }
}

/// A warning without its `file:line:col: ` prefix, when it has one.
fn unlocated(warning: &str) -> &str {
    let Some((location, rest)) = warning.split_once(": ") else {
        return warning;
    };
    let mut parts = location.rsplitn(3, ':');
    let numbers = parts
        .by_ref()
        .take(2)
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if numbers && parts.next().is_some_and(|file| !file.is_empty()) {
        rest
    } else {
        warning
    }
}

/// Which plan of the two.
#[derive(Clone, Copy)]
enum Side {
    Old,
    New,
}

/// No index: a host not in a plan, a host in no slot, the end of a chain.
const NONE: u32 = u32::MAX;

/// Both plans' hosts, each name looked up once: where each target of one plan is in the other,
/// and every name's index in each plan's `hosts`.
struct Hosts<'a> {
    old: &'a [String],
    new: &'a [String],
    /// By index in the new plan's `hosts`: the host's index in the old plan's (`NONE`: added).
    was: Vec<u32>,
    /// By index in the old plan's `hosts`: the host's index in the new plan's (`NONE`: removed).
    now: Vec<u32>,
    /// Name → its index in the old and in the new plan's `hosts`. Lists follow plan order,
    /// mostly a run of `hosts` at a time, so the host after the last one found is tried first;
    /// the map is made only when that guess fails (never for two plans of the same hosts in
    /// the same order).
    map: Option<FastMap<&'a str, (u32, u32)>>,
    /// Marks by host index for [`Hosts::only_in`], kept from one call to the next: a mark is
    /// the number of the call that set it, so no call clears the vector.
    marks: Vec<u32>,
    calls: u32,
}

impl<'a> Hosts<'a> {
    fn of(old: &'a Plan, new: &'a Plan) -> Hosts<'a> {
        assert!(
            old.hosts.len().max(new.hosts.len()) < NONE as usize,
            "fewer than 2^32 - 1 hosts"
        );
        let mut hosts = Hosts {
            old: &old.hosts,
            new: &new.hosts,
            was: Vec::with_capacity(new.hosts.len()),
            now: vec![NONE; old.hosts.len()],
            map: None,
            marks: Vec::new(),
            calls: 0,
        };
        let mut after = 0;
        for (index, host) in new.hosts.iter().enumerate() {
            let before = hosts.find(Side::Old, host, &mut after).unwrap_or(NONE);
            if before != NONE {
                hosts.now[before as usize] = index as u32;
            }
            hosts.was.push(before);
        }
        hosts
    }

    /// The index of `host` in the `side` plan's `hosts` (`None`: not a target of it), trying
    /// the one at `after` first and leaving `after` past what was found.
    fn find(&mut self, side: Side, host: &str, after: &mut usize) -> Option<u32> {
        let list = match side {
            Side::Old => self.old,
            Side::New => self.new,
        };
        let found = match list.get(*after) {
            Some(next) if next == host => Some(*after as u32),
            _ => {
                let (old, new) = self.map().get(host).copied().unwrap_or((NONE, NONE));
                let index = match side {
                    Side::Old => old,
                    Side::New => new,
                };
                (index != NONE).then_some(index)
            }
        };
        if let Some(index) = found {
            *after = index as usize + 1;
        }
        found
    }

    fn map(&mut self) -> &FastMap<&'a str, (u32, u32)> {
        let (old, new) = (self.old, self.new);
        self.map.get_or_insert_with(|| {
            let mut map = FastMap::with_capacity_and_hasher(old.len(), Default::default());
            // The first of a name listed twice (no valid plan has one).
            for (index, host) in old.iter().enumerate() {
                map.entry(host.as_str()).or_insert((index as u32, NONE));
            }
            for (index, host) in new.iter().enumerate() {
                let both = map.entry(host.as_str()).or_insert((NONE, NONE));
                if both.1 == NONE {
                    both.1 = index as u32;
                }
            }
            map
        })
    }

    /// The indices of `list`'s names in the `side` plan's `hosts`; `None` when one of them is
    /// not a target of that plan (no valid plan has such a list).
    fn indices(&mut self, side: Side, list: &[String]) -> Option<Vec<u32>> {
        let mut after = 0;
        list.iter()
            .map(|host| self.find(side, host, &mut after))
            .collect()
    }

    /// The names of `a` (a list of the `side` plan) that are not in `b` (the other plan's), in
    /// `a`'s order.
    fn only_in(&mut self, side: Side, a: &[String], b: &[String]) -> Vec<String> {
        if a == b {
            return Vec::new();
        }
        let (other, len) = match side {
            Side::Old => (Side::New, self.old.len()),
            Side::New => (Side::Old, self.new.len()),
        };
        let (Some(mine), Some(theirs)) = (self.indices(side, a), self.indices(other, b)) else {
            return only_in(a, b);
        };
        // `b`'s hosts that `side`'s plan has, by their index in it.
        let here = match side {
            Side::Old => &self.was,
            Side::New => &self.now,
        };
        if self.marks.len() < len {
            self.marks.resize(len, 0);
        }
        self.calls += 1;
        let call = self.calls;
        for &index in &theirs {
            if let Some(&mine) = here.get(index as usize).filter(|&&i| i != NONE) {
                self.marks[mine as usize] = call;
            }
        }
        let in_b = &self.marks;
        a.iter()
            .zip(mine)
            .filter(|&(_, index)| in_b[index as usize] != call)
            .map(|(host, _)| host.clone())
            .collect()
    }
}

/// The slots that hold each host of a plan, in plan order: one list of entries, each host's a
/// chain through it, so that the usual host of one slot costs no list of its own.
struct Places<'a> {
    /// By index in `hosts`: the host's first and last entry (`NONE`: in no slot).
    ends: Vec<(u32, u32)>,
    /// A slot id, and the host's next entry (`NONE`: none).
    entries: Vec<(&'a str, u32)>,
}

impl<'a> Places<'a> {
    fn of(plan: &'a Plan, side: Side, hosts: &mut Hosts<'a>) -> Places<'a> {
        let mut places = Places {
            ends: vec![(NONE, NONE); plan.hosts.len()],
            entries: Vec::with_capacity(plan.hosts.len()),
        };
        let mut after = 0;
        for (_, slot) in plan.slots() {
            for host in &slot.hosts {
                // A name that is not a target of the plan (no valid plan has one) is in no
                // host's chain: the diff asks only for the targets' slots.
                let Some(index) = hosts.find(side, host, &mut after) else {
                    continue;
                };
                let entry = u32::try_from(places.entries.len()).expect("fewer than 2^32 places");
                places.entries.push((&slot.id, NONE));
                let ends = &mut places.ends[index as usize];
                if ends.0 == NONE {
                    *ends = (entry, entry);
                } else {
                    places.entries[ends.1 as usize].1 = entry;
                    ends.1 = entry;
                }
            }
        }
        places
    }

    /// The slots that hold host `index`, in plan order.
    fn get(&self, index: u32) -> impl Iterator<Item = &'a str> + '_ {
        let mut next = self.ends[index as usize].0;
        std::iter::from_fn(move || {
            let (slot, after) = *self.entries.get(next as usize)?;
            next = after;
            Some(slot)
        })
    }

    /// Whether host `index` here is in the same slots as host `theirs` in `other`, whatever
    /// their order.
    fn same(&self, index: u32, other: &Places<'_>, theirs: u32) -> bool {
        let (mut mine, mut others) = (self.get(index), other.get(theirs));
        match (mine.next(), mine.next(), others.next(), others.next()) {
            (a, None, b, None) => a == b,
            _ => {
                sorted(&self.get(index).collect::<Vec<_>>())
                    == sorted(&other.get(theirs).collect::<Vec<_>>())
            }
        }
    }
}

fn hosts<'a>(old: &'a Plan, new: &'a Plan, names: &mut Hosts<'a>) -> HostChanges {
    let old_places = Places::of(old, Side::Old, names);
    let new_places = Places::of(new, Side::New, names);
    let mut moved: Vec<HostMove> = Vec::new();
    // (from, to) as sorted lists, so a change of thread order alone moves no host.
    let mut move_index: FastMap<(Vec<&str>, Vec<&str>), usize> = FastMap::default();
    for (index, (host, &before)) in new.hosts.iter().zip(&names.was).enumerate() {
        let index = index as u32;
        if before == NONE || old_places.same(before, &new_places, index) {
            continue;
        }
        let from: Vec<&str> = old_places.get(before).collect();
        let to: Vec<&str> = new_places.get(index).collect();
        let key = (sorted(&from), sorted(&to));
        let slot = *move_index.entry(key).or_insert_with(|| {
            moved.push(HostMove {
                from: from.iter().map(|s| s.to_string()).collect(),
                to: to.iter().map(|s| s.to_string()).collect(),
                hosts: Vec::new(),
            });
            moved.len() - 1
        });
        moved[slot].hosts.push(host.clone());
    }

    let mut reordered = Vec::new();
    let old_slots: FastMap<&str, &Vec<String>> = old
        .slots()
        .map(|(_, s)| (s.id.as_str(), &s.hosts))
        .collect();
    let lanes = new
        .slots()
        .filter_map(|(_, s)| {
            old_slots
                .get(s.id.as_str())
                .map(|&o| (Some(s.id.clone()), o, &s.hosts))
        })
        .chain([(None, &old.unordered, &new.unordered)]);
    for (slot, old_hosts, new_hosts) in lanes {
        let (o, n) = (common(old_hosts, new_hosts), common(new_hosts, old_hosts));
        if o != n {
            reordered.push(HostOrder {
                slot,
                old: o.into_iter().map(str::to_string).collect(),
                new: n.into_iter().map(str::to_string).collect(),
            });
        }
    }

    let absent = |list: &[String], other: &[u32]| -> Vec<String> {
        (list.iter().zip(other))
            .filter(|&(_, &there)| there == NONE)
            .map(|(host, _)| host.clone())
            .collect()
    };
    HostChanges {
        added: absent(&new.hosts, &names.was),
        removed: absent(&old.hosts, &names.now),
        moved,
        reordered,
    }
}

fn sorted<'a>(list: &[&'a str]) -> Vec<&'a str> {
    let mut list = list.to_vec();
    list.sort_unstable();
    list
}

fn thread_summary(thread: &pogo_model::ThreadSpec) -> ThreadSummary {
    let hosts: FastSet<&str> = thread
        .slots
        .iter()
        .flat_map(|s| s.hosts.iter().map(String::as_str))
        .collect();
    ThreadSummary {
        name: thread.name.clone(),
        filter: thread.filter.clone(),
        slots: thread.slots.iter().map(|s| s.id.clone()).collect(),
        hosts: hosts.len(),
    }
}

fn thread_names(plan: &Plan) -> Vec<String> {
    plan.threads.iter().map(|t| t.name.clone()).collect()
}

fn threads(old: &Plan, new: &Plan) -> ThreadChanges {
    let (old_names, new_names) = (thread_names(old), thread_names(new));
    let summaries = |plan: &Plan, names: Vec<String>| -> Vec<ThreadSummary> {
        let names: FastSet<String> = names.into_iter().collect();
        plan.threads
            .iter()
            .filter(|t| names.contains(&t.name))
            .map(thread_summary)
            .collect()
    };
    let old_order = common(&old_names, &new_names);
    let new_order = common(&new_names, &old_names);
    let order = Change::of(
        old_order.iter().map(|s| s.to_string()).collect(),
        new_order.iter().map(|s| s.to_string()).collect(),
    );
    let old_threads: FastMap<&str, &pogo_model::ThreadSpec> =
        old.threads.iter().map(|t| (t.name.as_str(), t)).collect();
    let filters = new
        .threads
        .iter()
        .filter_map(|t| {
            let before = old_threads.get(t.name.as_str())?;
            (before.filter != t.filter).then(|| FilterChange {
                thread: t.name.clone(),
                old: before.filter.clone(),
                new: t.filter.clone(),
            })
        })
        .collect();
    ThreadChanges {
        added: summaries(new, only_in(&new_names, &old_names)),
        removed: summaries(old, only_in(&old_names, &new_names)),
        order,
        filters,
    }
}

fn slots(old: &Plan, new: &Plan) -> SlotChanges {
    let old_threads: FastMap<&str, &pogo_model::ThreadSpec> =
        old.threads.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut changes = SlotChanges::default();
    let summary = |thread: &str, slot: &pogo_model::SlotSpec| SlotSummary {
        thread: thread.to_string(),
        id: slot.id.clone(),
        hosts: slot.hosts.clone(),
    };
    // Removed slots in the old plan's thread order, the rest in the new plan's.
    let new_names: FastSet<&str> = new.threads.iter().map(|t| t.name.as_str()).collect();
    for before in old
        .threads
        .iter()
        .filter(|t| new_names.contains(t.name.as_str()))
    {
        let after = new
            .threads
            .iter()
            .find(|t| t.name == before.name)
            .expect("a thread of both plans");
        let ids: FastSet<&str> = after.slots.iter().map(|s| s.id.as_str()).collect();
        for slot in before.slots.iter().filter(|s| !ids.contains(s.id.as_str())) {
            changes.removed.push(summary(&before.name, slot));
        }
    }
    for after in &new.threads {
        let Some(before) = old_threads.get(after.name.as_str()) else {
            continue;
        };
        let old_ids: Vec<String> = before.slots.iter().map(|s| s.id.clone()).collect();
        let new_ids: Vec<String> = after.slots.iter().map(|s| s.id.clone()).collect();
        let known: FastSet<&str> = old_ids.iter().map(String::as_str).collect();
        for slot in after
            .slots
            .iter()
            .filter(|s| !known.contains(s.id.as_str()))
        {
            changes.added.push(summary(&after.name, slot));
        }
        let (o, n) = (common(&old_ids, &new_ids), common(&new_ids, &old_ids));
        let moved = o.iter().zip(&n).filter(|(a, b)| a != b).count();
        if moved > 0 {
            changes.reordered.push(SlotOrder {
                thread: after.name.clone(),
                old: o.into_iter().map(str::to_string).collect(),
                new: n.into_iter().map(str::to_string).collect(),
                moved,
            });
        }
    }
    changes
}

fn edges(old: &Plan, new: &Plan) -> EdgeChanges {
    let only = |a: &[EdgeSpec], b: &[EdgeSpec]| -> Vec<EdgeSpec> {
        let b: FastSet<(&str, &str)> = b.iter().map(|e| (e.from.as_str(), e.to.as_str())).collect();
        a.iter()
            .filter(|e| !b.contains(&(e.from.as_str(), e.to.as_str())))
            .cloned()
            .collect()
    };
    EdgeChanges {
        added: only(&new.edges, &old.edges),
        removed: only(&old.edges, &new.edges),
    }
}

fn config_groups(plan: &Plan) -> impl Iterator<Item = &ConstraintSpec> {
    plan.constraints.iter().filter(|g| g.id != JOB_GROUP_ID)
}

fn constraints(old: &Plan, new: &Plan, hosts: &mut Hosts<'_>) -> ConstraintChanges {
    let old_groups: FastMap<&str, &ConstraintSpec> =
        config_groups(old).map(|g| (g.id.as_str(), g)).collect();
    let new_ids: FastSet<&str> = config_groups(new).map(|g| g.id.as_str()).collect();
    let mut changes = ConstraintChanges {
        removed: config_groups(old)
            .filter(|g| !new_ids.contains(g.id.as_str()))
            .cloned()
            .collect(),
        ..ConstraintChanges::default()
    };
    for group in config_groups(new) {
        let Some(before) = old_groups.get(group.id.as_str()) else {
            changes.added.push(group.clone());
            continue;
        };
        if before.max_parallel != group.max_parallel {
            changes.limits.push(LimitChange {
                group: group.id.clone(),
                old: before.max_parallel,
                new: group.max_parallel,
                direction: Direction::of(
                    Some(before.max_parallel.value),
                    Some(group.max_parallel.value),
                ),
            });
        }
        let entered = hosts.only_in(Side::New, &group.hosts, &before.hosts);
        let left = hosts.only_in(Side::Old, &before.hosts, &group.hosts);
        if !entered.is_empty() || !left.is_empty() {
            changes.members.push(MemberChange {
                group: group.id.clone(),
                entered,
                left,
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile, JobLimit, PlanRequest, TargetSpec};
    use crate::config::{Config, Limit};
    use crate::diag::{Source, Span};

    fn plan(text: &str) -> Plan {
        plan_with(text, PlanRequest::default())
    }

    fn plan_with(text: &str, request: PlanRequest) -> Plan {
        let config = Config::parse("test.cfg", text).expect("a valid config");
        compile(&config, &request).expect("a plan")
    }

    fn targets(list: &str) -> PlanRequest {
        let source = Source::argument("--targets", list);
        PlanRequest {
            targets: vec![TargetSpec {
                text: list.to_string(),
                span: Span::new(
                    &source,
                    crate::yaml::Pos { line: 1, col: 1 },
                    list.chars().count(),
                ),
            }],
            ..PlanRequest::default()
        }
    }

    const TRIPLE: &str = "\
tag:
  colo:
    one: [host1, host2, host3]
    two: [host4, host5, host6]
    three: [host7, host8, host9]
sequence:
  foo: [$colo.one, $colo.two]
  bar: [$colo.three]
constraint:
  $colo:
    max_parallel: 2
";

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_plan_diffed_with_itself_is_empty() {
        let p = plan(TRIPLE);
        let d = diff(&p, &p);
        assert_eq!(d, PlanDiff::default());
        assert!(d.is_empty());
        assert_eq!(d.summary(), "no difference");
    }

    #[test]
    fn producer_and_source_are_not_differences() {
        let old = plan(TRIPLE);
        let mut new = old.clone();
        new.producer = "pogo 9.9.9".to_string();
        new.source.config = "elsewhere.cfg".to_string();
        new.source.spec = Some("x.yaml".to_string());
        assert_eq!(diff(&old, &new), PlanDiff::default());
    }

    #[test]
    fn a_comment_changes_the_digest_but_not_the_rollout() {
        let old = plan(TRIPLE);
        let new = plan(&format!("# a comment\n{TRIPLE}"));
        let d = diff(&old, &new);
        assert!(d.is_empty());
        assert!(d.digests.config.is_some());
        assert!(d.digests.inventory.is_none());
    }

    #[test]
    fn hosts_moving_between_slots_are_grouped_by_from_and_to() {
        let old = plan(TRIPLE);
        let new = plan(&TRIPLE.replace(
            "one: [host1, host2, host3]\n    two: [host4, host5, host6]",
            "one: [host1]\n    two: [host4, host5, host6, host2, host3]",
        ));
        let d = diff(&old, &new);
        assert_eq!(
            d.hosts.moved,
            [HostMove {
                from: strings(&["foo.$colo.one"]),
                to: strings(&["foo.$colo.two"]),
                hosts: strings(&["host2", "host3"]),
            }]
        );
        assert_eq!(
            d.constraints.members,
            [
                MemberChange {
                    group: "$colo.one".to_string(),
                    entered: vec![],
                    left: strings(&["host2", "host3"]),
                },
                MemberChange {
                    group: "$colo.two".to_string(),
                    entered: strings(&["host2", "host3"]),
                    left: vec![],
                },
            ]
        );
        assert!(d.hosts.added.is_empty() && d.hosts.removed.is_empty());
        assert_eq!(d.summary(), "2 hosts move, members of 2 groups changed");
    }

    #[test]
    fn hosts_leaving_every_slot_move_to_the_unordered_lane() {
        let old = plan(TRIPLE);
        let new = plan(&TRIPLE.replace("  bar: [$colo.three]\n", ""));
        let d = diff(&old, &new);
        assert_eq!(
            d.hosts.moved,
            [HostMove {
                from: strings(&["bar.$colo.three"]),
                to: vec![],
                hosts: strings(&["host7", "host8", "host9"]),
            }]
        );
        assert_eq!(d.threads.removed.len(), 1);
        assert_eq!(d.threads.removed[0].name, "bar");
        assert_eq!(d.threads.removed[0].hosts, 3);
        // The slots of a removed thread are listed with the thread, not again as slots.
        assert!(d.slots.removed.is_empty());
    }

    #[test]
    fn hosts_added_and_removed_follow_plan_order() {
        let old = plan_with(TRIPLE, targets("host1,host2,host7"));
        let new = plan_with(TRIPLE, targets("host2,host8,host7,host4"));
        let d = diff(&old, &new);
        assert_eq!(d.hosts.added, ["host8", "host4"]);
        assert_eq!(d.hosts.removed, ["host1"]);
        assert_eq!(d.summary().split(", ").next(), Some("2 hosts added"));
    }

    #[test]
    fn reordered_slots_count_the_slots_that_changed_place() {
        let old = plan(TRIPLE);
        let new =
            plan(&TRIPLE.replace("foo: [$colo.one, $colo.two]", "foo: [$colo.two, $colo.one]"));
        let d = diff(&old, &new);
        assert_eq!(
            d.slots.reordered,
            [SlotOrder {
                thread: "foo".to_string(),
                old: strings(&["foo.$colo.one", "foo.$colo.two"]),
                new: strings(&["foo.$colo.two", "foo.$colo.one"]),
                moved: 2,
            }]
        );
        assert_eq!(
            d.edges.added,
            [EdgeSpec {
                from: "foo.$colo.two".to_string(),
                to: "foo.$colo.one".to_string()
            }]
        );
        assert_eq!(d.edges.removed.len(), 1);
        // Every host of both slots is in the same slot as before: none moves.
        assert!(d.hosts.moved.is_empty());
        assert_eq!(d.summary(), "order of 2 slots changed");
    }

    #[test]
    fn slots_and_threads_added_and_reordered() {
        let old = plan(TRIPLE);
        let new = plan(&TRIPLE.replace(
            "  foo: [$colo.one, $colo.two]\n  bar: [$colo.three]\n",
            "  bar: [$colo.three]\n  foo: [host1, $colo.one, $colo.two]\n  baz: [host4]\n",
        ));
        let d = diff(&old, &new);
        assert_eq!(
            d.threads.order,
            Some(Change {
                old: strings(&["foo", "bar"]),
                new: strings(&["bar", "foo"]),
            })
        );
        assert_eq!(
            d.threads.added.iter().map(|t| &t.name).collect::<Vec<_>>(),
            ["baz"]
        );
        assert_eq!(
            d.slots.added,
            [SlotSummary {
                thread: "foo".to_string(),
                id: "foo.host1".to_string(),
                hosts: strings(&["host1"]),
            }]
        );
        // Adding a slot in front shifts the others, but their order among themselves holds.
        assert!(d.slots.reordered.is_empty());
        assert_eq!(
            d.hosts.moved,
            [
                HostMove {
                    from: strings(&["foo.$colo.one"]),
                    to: strings(&["foo.host1"]),
                    hosts: strings(&["host1"]),
                },
                HostMove {
                    from: strings(&["foo.$colo.two"]),
                    to: strings(&["foo.$colo.two", "baz.host4"]),
                    hosts: strings(&["host4"]),
                },
            ]
        );
    }

    #[test]
    fn a_change_of_thread_order_alone_moves_no_shared_host() {
        let config = "\
tag:
  a: [h1, h2]
sequence:
  x: [h1, h2]
  y: [h1]
";
        let old = plan(config);
        let new = plan(&config.replace("  x: [h1, h2]\n  y: [h1]\n", "  y: [h1]\n  x: [h1, h2]\n"));
        let d = diff(&old, &new);
        assert!(d.hosts.moved.is_empty(), "{:?}", d.hosts.moved);
        assert!(d.threads.order.is_some());
    }

    #[test]
    fn limits_say_which_way_they_moved() {
        let old = plan(TRIPLE);
        let new = plan(&TRIPLE.replace("max_parallel: 2", "max_parallel: 67%"));
        let d = diff(&old, &new);
        assert_eq!(d.constraints.limits.len(), 3);
        assert!(d
            .constraints
            .limits
            .iter()
            .all(|l| l.old.value == 2 && l.new.value == 2 && l.direction == Direction::Same));
        assert_eq!(d.constraints.limits[0].new.to_string(), "2 (67% of 3)");
        let raised = plan(&TRIPLE.replace("max_parallel: 2", "max_parallel: 3"));
        let d = diff(&old, &raised);
        assert!(d
            .constraints
            .limits
            .iter()
            .all(|l| l.direction == Direction::Raised));
        assert_eq!(d.summary(), "3 limits raised");
        assert_eq!(diff(&raised, &old).summary(), "3 limits lowered");
    }

    #[test]
    fn the_job_limit_is_a_run_option_and_no_limit_is_the_highest() {
        let old = plan(TRIPLE);
        let new = plan_with(
            TRIPLE,
            PlanRequest {
                concurrent: JobLimit::Unconstrained,
                ..PlanRequest::default()
            },
        );
        let d = diff(&old, &new);
        let change = d.options.concurrent.clone().expect("the job limit changed");
        assert_eq!(change.old, Some(Amount::number(32)));
        assert_eq!(change.new, None);
        assert_eq!(change.direction, Direction::Raised);
        assert!(
            d.constraints.removed.is_empty(),
            "the job group is not a config group"
        );
        let limited = plan_with(
            TRIPLE,
            PlanRequest {
                concurrent: JobLimit::Limit(Limit::Percent(50)),
                ..PlanRequest::default()
            },
        );
        let d = diff(&old, &limited);
        assert_eq!(
            d.options.concurrent.as_ref().map(|c| c.direction),
            Some(Direction::Lowered)
        );
        assert_eq!(d.summary(), "1 limit lowered");
    }

    #[test]
    fn groups_added_and_removed() {
        let old = plan(TRIPLE);
        let new = plan(&TRIPLE.replace("$colo:", "$colo.one:"));
        let d = diff(&old, &new);
        assert!(d.constraints.added.is_empty());
        assert_eq!(
            d.constraints
                .removed
                .iter()
                .map(|g| g.id.as_str())
                .collect::<Vec<_>>(),
            ["$colo.two", "$colo.three"]
        );
        // `$colo.one` is still limited to 2, now by a constraint of its own: where a limit
        // comes from is not a difference of the rollout.
        assert!(d.constraints.limits.is_empty());
        assert_eq!(d.summary(), "2 groups removed");
    }

    #[test]
    fn options_and_command() {
        let old = plan(TRIPLE);
        let new = plan_with(
            TRIPLE,
            PlanRequest {
                command: Some("uptime".to_string()),
                timeout: Some(60),
                retries: 2,
                ..PlanRequest::default()
            },
        );
        let d = diff(&old, &new);
        assert_eq!(
            d.options.command,
            Some(Change {
                old: None,
                new: Some("uptime".to_string())
            })
        );
        assert_eq!(d.options.timeout, Some(Change { old: 600, new: 60 }));
        assert_eq!(d.options.retries, Some(Change { old: 0, new: 2 }));
        assert_eq!(d.summary(), "command changed, 2 run options changed");
    }

    /// Where hosts go and which groups they enter or leave, by the definitions, name by name:
    /// the oracle of the diff's lookups by index.
    fn by_name(old: &Plan, new: &Plan) -> (HostChanges, Vec<MemberChange>) {
        let places = |plan: &Plan, host: &str| -> Vec<String> {
            plan.slots()
                .filter(|(_, s)| s.hosts.iter().any(|h| h == host))
                .map(|(_, s)| s.id.clone())
                .collect()
        };
        let sorted = |mut list: Vec<String>| {
            list.sort();
            list
        };
        let mut moved: Vec<HostMove> = Vec::new();
        for host in new.hosts.iter().filter(|h| old.hosts.contains(h)) {
            let (from, to) = (places(old, host), places(new, host));
            if sorted(from.clone()) == sorted(to.clone()) {
                continue;
            }
            match moved.iter_mut().find(|m| {
                sorted(m.from.clone()) == sorted(from.clone())
                    && sorted(m.to.clone()) == sorted(to.clone())
            }) {
                Some(group) => group.hosts.push(host.clone()),
                None => moved.push(HostMove {
                    from,
                    to,
                    hosts: vec![host.clone()],
                }),
            }
        }
        let absent = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|h| !b.contains(h)).cloned().collect()
        };
        let hosts = HostChanges {
            added: absent(&new.hosts, &old.hosts),
            removed: absent(&old.hosts, &new.hosts),
            moved,
            reordered: diff(old, new).hosts.reordered,
        };
        let members = config_groups(new)
            .filter_map(|group| {
                let before = config_groups(old).find(|g| g.id == group.id)?;
                let entered = absent(&group.hosts, &before.hosts);
                let left = absent(&before.hosts, &group.hosts);
                (!entered.is_empty() || !left.is_empty()).then(|| MemberChange {
                    group: group.id.clone(),
                    entered,
                    left,
                })
            })
            .collect();
        (hosts, members)
    }

    /// xorshift64: a fixed sequence, so that a failing case can be named by its number.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn shuffle<T>(&mut self, list: &mut [T]) {
            for i in (1..list.len()).rev() {
                list.swap(i, self.below(i + 1));
            }
        }
    }

    /// TRIPLE's threads, slots and groups over a random set of hosts: some hosts in another
    /// slot, in no slot, lists in another order; now and then a name that is not a target
    /// (no valid plan has one: the diff must still answer).
    fn shuffled(base: &Plan, random: &mut Random) -> Plan {
        let mut plan = base.clone();
        let mut hosts: Vec<String> = (1..=12)
            .map(|n| format!("host{n}"))
            .filter(|_| random.below(4) != 0)
            .collect();
        if random.below(2) == 0 {
            random.shuffle(&mut hosts);
        }
        let mut placed = vec![false; hosts.len()];
        for thread in &mut plan.threads {
            for slot in &mut thread.slots {
                slot.hosts.clear();
            }
            let lanes = thread.slots.len() + 1;
            for (index, host) in hosts.iter().enumerate() {
                if let Some(slot) = thread.slots.get_mut(random.below(lanes)) {
                    slot.hosts.push(host.clone());
                    placed[index] = true;
                }
            }
            for slot in &mut thread.slots {
                if random.below(3) == 0 {
                    random.shuffle(&mut slot.hosts);
                }
                if random.below(20) == 0 {
                    slot.hosts.push("ghost".to_string());
                }
            }
        }
        plan.unordered = (hosts.iter().zip(&placed))
            .filter(|&(_, &placed)| !placed)
            .map(|(host, _)| host.clone())
            .collect();
        for group in plan.constraints.iter_mut().filter(|g| g.id != JOB_GROUP_ID) {
            group.hosts = hosts
                .iter()
                .filter(|_| random.below(2) == 0)
                .cloned()
                .collect();
            if random.below(3) == 0 {
                random.shuffle(&mut group.hosts);
            }
            if random.below(20) == 0 {
                group.hosts.push("ghost".to_string());
            }
        }
        plan.hosts = hosts;
        plan
    }

    #[test]
    fn hosts_and_members_by_index_agree_with_their_definitions() {
        let base = plan(TRIPLE);
        let mut random = Random(0x9E37_79B9_7F4A_7C15);
        for case in 0..3000 {
            let (old, new) = (shuffled(&base, &mut random), shuffled(&base, &mut random));
            let d = diff(&old, &new);
            let (hosts, members) = by_name(&old, &new);
            assert_eq!(d.hosts, hosts, "case {case}: {old:?}\n{new:?}");
            assert_eq!(
                d.constraints.members, members,
                "case {case}: {old:?}\n{new:?}"
            );
        }
    }

    #[test]
    fn hosts_reordered_within_a_slot() {
        let old = plan(TRIPLE);
        let new = plan(&TRIPLE.replace("[host1, host2, host3]", "[host3, host1, host2]"));
        let d = diff(&old, &new);
        assert_eq!(
            d.hosts.reordered,
            [HostOrder {
                slot: Some("foo.$colo.one".to_string()),
                old: strings(&["host1", "host2", "host3"]),
                new: strings(&["host3", "host1", "host2"]),
            }]
        );
        assert!(d.hosts.moved.is_empty());
        // The group lists its hosts in plan order, which changed: no host entered or left.
        assert!(d.constraints.members.is_empty());
        assert_eq!(d.summary(), "order of hosts changed in 1 slot");
    }

    #[test]
    fn against_nothing_everything_is_added() {
        let new = plan_with(
            TRIPLE,
            PlanRequest {
                command: Some("uptime".to_string()),
                ..PlanRequest::default()
            },
        );
        let d = diff(&nothing_before(&new), &new);
        assert_eq!(d.hosts.added, new.hosts);
        assert_eq!(d.threads.added.len(), 2);
        assert_eq!(d.edges.added, new.edges);
        assert_eq!(d.constraints.added.len(), 3);
        assert!(d.options.is_empty() && d.digests.is_empty());
        assert!(d.hosts.moved.is_empty() && d.constraints.members.is_empty());
        assert_eq!(
            d.summary(),
            "9 hosts added, 2 threads added, 3 groups added"
        );
    }

    #[test]
    fn warnings_are_compared_without_their_location() {
        assert_eq!(unlocated("a.cfg:12:5: step `x` names"), "step `x` names");
        assert_eq!(unlocated("dir/a b.cfg:1:1: x: y"), "x: y");
        assert_eq!(
            unlocated("nothing limits this run: no"),
            "nothing limits this run: no"
        );
        assert_eq!(unlocated("a.cfg:x:5: y"), "a.cfg:x:5: y");
        let config = TRIPLE.replace("bar: [$colo.three]", "bar: [$colo.three, host7]");
        let old = plan(&config);
        let new = plan(&format!("# a comment moves every line\n{config}"));
        assert_ne!(old.warnings, new.warnings);
        assert_eq!(diff(&old, &new).warnings, WarningChanges::default());
    }

    #[test]
    fn warnings_added_and_gone() {
        let old = plan(TRIPLE);
        let new = plan(&TRIPLE.replace("bar: [$colo.three]", "bar: [$colo.three, host7]"));
        let d = diff(&old, &new);
        assert_eq!(d.warnings.added.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings.added[0].contains("host7"));
        let back = diff(&new, &old);
        assert_eq!(back.warnings.removed, d.warnings.added);
        assert_eq!(back.summary().rsplit(", ").next(), Some("1 warning gone"));
    }
}
