//! Config + targets + command + options → [`Plan`].
//!
//! The slots of all threads form a petgraph DAG whose edges are "must complete before". A host
//! that several threads hold runs once, after the preceding step of each, so it ties those
//! threads together; the graph checked for cycles therefore also holds such hosts, and a cycle
//! is refused with the chain of waits spelled out.

use pogo_model::{FastMap, FastSet};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use pogo_model::{
    Amount, Approval, ConstraintSpec, Digests, EdgeSpec, ExternalTagSpec, Plan, RunOptions,
    SlotSpec, SourceSpec, ThreadSpec, Verify, FORMAT_VERSION, JOB_GROUP_ID,
};

use crate::config::{Config, Limit, TagId, ThreadDef, ROOT};
use crate::diag::{suggest, Diagnostic, Errors, PlanError, Span};
use crate::expr::{evaluate, Excluded, HostItem};
use crate::hosts::{dedup_in_order, dedup_list_in_order, HostId, HostSet, HostTable};
use crate::inventory::{check_expr, Inventory};

/// The job-wide limit when neither `--concurrent` nor `--unconstrained` is given: as many
/// sessions as pdsh and parallel-ssh open by default, so a first run cannot take down a
/// fleet that has no constraints in its config.
pub const DEFAULT_CONCURRENT: u64 = 32;

/// Per-host command timeout when none is given, in seconds (the original Pogo's).
pub const DEFAULT_TIMEOUT: u64 = 600;

/// One target entry as the user wrote it: a comma list of hosts, patterns and `$tag`s.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub text: String,
    /// Where it is written (a spec file, a host file line, a command-line argument).
    pub span: Span,
}

/// A gate or an approval asked for after a step (spec key `gates`, `--gate`, `--approve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRequest {
    /// The step: a slot id of the plan (`$role.web.$canary`).
    pub step: String,
    /// Where it is written, for an error about it.
    pub span: Span,
    pub gate: Option<String>,
    pub approve: Option<Approval>,
}

/// The job-wide limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobLimit {
    #[default]
    Default,
    Limit(Limit),
    Unconstrained,
}

/// `max_failures`: like a limit, but 0 is allowed (and is the default: halt at the first failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureLimit {
    Count(u64),
    Percent(u32),
}

impl Default for FailureLimit {
    fn default() -> Self {
        FailureLimit::Count(0)
    }
}

impl FailureLimit {
    /// Parses `N` or `P%` (0 allowed). The error is a fragment.
    pub fn parse(text: &str) -> Result<FailureLimit, String> {
        let text = text.trim();
        if let Some(number) = text.strip_suffix('%') {
            return match number.trim().parse::<u32>() {
                Ok(p) if p <= 100 => Ok(FailureLimit::Percent(p)),
                _ => Err(format!(
                    "`{text}` is not a percentage from 0% to 100% of the targets"
                )),
            };
        }
        text.parse::<u64>().map(FailureLimit::Count).map_err(|_| {
            format!("`{text}` is neither a number of hosts (`3`) nor a percentage (`5%`)")
        })
    }

    /// A percentage is of the targets, rounded down (`0` keeps "halt at the first failure").
    pub fn resolve(self, targets: u64) -> Amount {
        match self {
            FailureLimit::Count(n) => Amount::number(n),
            FailureLimit::Percent(p) => Amount {
                value: targets * u64::from(p) / 100,
                percent: Some(p),
                base: Some(targets),
            },
        }
    }
}

/// Everything besides the config that a plan is compiled from.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Empty: every host of the config.
    pub targets: Vec<TargetSpec>,
    /// Exact host names instead of `targets`, as a plan lists them: how a plan is compiled
    /// again from itself to be compared with its config.
    pub hosts: Option<Vec<String>>,
    pub command: Option<String>,
    pub concurrent: JobLimit,
    pub timeout: Option<u64>,
    pub retries: u32,
    pub max_failures: FailureLimit,
    pub run_timeout: Option<u64>,
    /// The most a host's log keeps, in bytes; `None`: the default (10 MiB), not written.
    pub max_output: Option<u64>,
    /// A host's phases around its command (spec `semantics.md` §9).
    pub before: Option<String>,
    pub verify: Option<Verify>,
    pub after: Option<String>,
    /// Gates and approvals after steps, in the order given; a later one for the same step
    /// replaces what it gives (flags after a spec).
    pub gates: Vec<GateRequest>,
    /// Refuse targets the config does not name, instead of running them unordered.
    pub strict_targets: bool,
    /// The config and spec paths, recorded in the plan as given.
    pub config_name: String,
    pub spec_name: Option<String>,
}

/// Compiles a plan.
pub fn compile(config: &Config, request: &PlanRequest) -> Result<Plan, PlanError> {
    let inventory = Inventory::resolve(config)?;
    let mut errors = Errors::default();
    // Targets may name hosts the config does not: only then is a copy of the host table needed.
    let mut hosts = std::borrow::Cow::Borrowed(&config.hosts);
    let mut warnings = inventory.warnings().to_vec();
    let targets = resolve_targets(
        config,
        &inventory,
        request,
        &mut hosts,
        &mut errors,
        &mut warnings,
    );
    errors.finish(())?;
    std::thread::scope(|scope| {
        // A big inventory's digest (every tag's members, as text) is hashed on a second
        // thread while the plan is compiled.
        let digest = (config.hosts.len() >= pogo_model::PARALLEL_HOSTS)
            .then(|| scope.spawn(|| inventory.digest(config)));
        let compiler = Compiler {
            config,
            inventory: &inventory,
            hosts: &hosts,
            target_set: HostSet::of(&targets, hosts.len()),
            targets,
            warnings,
        };
        compiler.compile(request, || match digest {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => inventory.digest(config),
        })
    })
}

fn resolve_targets(
    config: &Config,
    inventory: &Inventory,
    request: &PlanRequest,
    hosts: &mut std::borrow::Cow<'_, HostTable>,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> Vec<HostId> {
    if let Some(names) = &request.hosts {
        let hosts = hosts.to_mut();
        let ids: Vec<HostId> = names.iter().map(|name| hosts.intern(name)).collect();
        return dedup_in_order(ids, hosts.len());
    }
    if request.targets.is_empty() {
        if config.hosts.is_empty() {
            errors.push(
                Diagnostic::at(
                    config.tags[ROOT].span.clone(),
                    "no targets: the config names no host",
                )
                .with_help(
                    "list hosts under `tag:` (or in `sequence:`), or give targets with \
                         --targets or --hostfile",
                ),
            );
        }
        return config.hosts.ids().collect();
    }
    let hosts = hosts.to_mut();
    let mut targets = Vec::new();
    // The entry that first named each host, to point at targets --strict-targets refuses.
    let mut named_by: FastMap<HostId, usize> = FastMap::default();
    // Exclusions are subtracted once every entry's inclusions are in (spec §3).
    let mut exclusions = Vec::new();
    let mut any_inclusion = false;
    for (entry, target) in request.targets.iter().enumerate() {
        let items = match HostItem::parse_list(&target.text, hosts, &target.span, false) {
            Ok(items) => items,
            Err(diagnostic) => {
                errors.push(diagnostic);
                continue;
            }
        };
        for item in items {
            match item {
                HostItem::Except(exclusion) => {
                    if let Excluded::Tag(expr) = &exclusion.what {
                        if !check_expr(config, expr, errors) {
                            continue;
                        }
                    }
                    exclusions.push(HostItem::Except(exclusion));
                }
                HostItem::Hosts(ids) => {
                    any_inclusion = true;
                    for &id in &ids {
                        named_by.entry(id).or_insert(entry);
                    }
                    targets.extend(ids);
                }
                HostItem::Tag(expr) => {
                    any_inclusion = true;
                    if !check_expr(config, &expr, errors) {
                        continue;
                    }
                    let members = inventory.eval(config, &expr);
                    if members.is_empty() {
                        let help = if expr.terms.len() > 1 {
                            "no host is in all of these tags; check the config"
                        } else {
                            "the tag exists but has no hosts; check the config"
                        };
                        errors.push(
                            Diagnostic::at(
                                expr.span.clone().unwrap_or_else(|| target.span.clone()),
                                format!("target `{}` names no host", expr.text),
                            )
                            .with_help(help),
                        );
                    }
                    targets.extend(members);
                }
            }
        }
    }
    let mut targets = dedup_list_in_order(targets, hosts.len());
    if !exclusions.is_empty() {
        // Targets of only exclusions start from every host of the config.
        if !any_inclusion {
            targets = config.hosts.ids().collect();
        }
        let listed = evaluate(
            std::iter::once(&HostItem::Hosts(targets)).chain(&exclusions),
            hosts,
            Vec::new,
            |expr| inventory.eval(config, expr),
        );
        targets = listed.hosts;
        warnings.extend(listed.unused);
        if targets.is_empty() && errors.is_empty() {
            let first = &request.targets[0];
            errors.push(
                Diagnostic::at(
                    first.span.clone(),
                    "the targets exclude every host they name",
                )
                .with_help("an exclusion removes hosts; check what the targets include"),
            );
        }
    }
    if request.strict_targets {
        // One error per target entry (a --targets list, a host file line), at the entry.
        let mut unknown_by_entry: Vec<Vec<&str>> = vec![Vec::new(); request.targets.len()];
        for &h in targets
            .iter()
            .filter(|&&h| h as usize >= config.hosts.len())
        {
            unknown_by_entry[named_by[&h]].push(hosts.name(h));
        }
        // Suggestions compare with every host of the config: only for the first few.
        let mut suggestions_left = 10;
        for (target, unknown) in request.targets.iter().zip(&unknown_by_entry) {
            if unknown.is_empty() {
                continue;
            }
            let close = match unknown[..] {
                [one] if suggestions_left > 0 => {
                    suggestions_left -= 1;
                    suggest(one, config.hosts.ids().map(|h| config.hosts.name(h)))
                }
                _ => None,
            };
            let help = match close {
                Some(host) => format!("did you mean `{host}`?"),
                None => "--strict-targets refuses hosts the config does not name; check the \
                         spelling, add them to a tag, or plan without --strict-targets to run \
                         them unordered"
                    .to_string(),
            };
            errors.push(
                Diagnostic::at(
                    target.span.clone(),
                    format!(
                        "{} not in the config: {}",
                        count(unknown.len(), "target is", "targets are"),
                        abbreviate(unknown, 20)
                    ),
                )
                .with_help(help),
            );
        }
    }
    targets
}

/// Puts the gates and approvals asked for on their steps, and warns when unordered hosts do
/// not wait for them.
fn with_gates(mut plan: Plan, gates: &[GateRequest]) -> Result<Plan, PlanError> {
    if gates.is_empty() {
        return Ok(plan);
    }
    let mut errors = Errors::default();
    let ids: Vec<String> = plan.slots().map(|(_, s)| s.id.clone()).collect();
    for request in gates {
        let slot = plan
            .threads
            .iter_mut()
            .flat_map(|t| t.slots.iter_mut())
            .find(|s| s.id == request.step);
        let Some(slot) = slot else {
            let mut diagnostic = Diagnostic::at(
                request.span.clone(),
                format!("no step `{}` in the plan to put a gate after", request.step),
            );
            diagnostic = match suggest(&request.step, ids.iter().map(String::as_str)) {
                Some(s) => diagnostic.with_help(format!("did you mean `{s}`?")),
                None if ids.is_empty() => diagnostic
                    .with_help("the plan has no steps: gates go after steps of a sequence"),
                None => diagnostic.with_help(format!(
                    "steps are named by their slot ids: {}",
                    abbreviate(&ids.iter().map(String::as_str).collect::<Vec<_>>(), 10)
                )),
            };
            errors.push(diagnostic);
            continue;
        };
        if request.gate.is_some() {
            slot.gate.clone_from(&request.gate);
        }
        if request.approve.is_some() {
            slot.approve = request.approve;
        }
    }
    errors.finish(())?;
    if !plan.unordered.is_empty() {
        let names: Vec<&str> = plan.unordered.iter().map(String::as_str).collect();
        plan.warnings.push(format!(
            "{} in no step, and so {} not wait for any gate or approval: {}",
            count(names.len(), "target is", "targets are"),
            if names.len() == 1 { "does" } else { "do" },
            abbreviate(&names, 20)
        ));
    }
    Ok(plan)
}

struct Compiler<'a> {
    config: &'a Config,
    inventory: &'a Inventory,
    hosts: &'a HostTable,
    targets: Vec<HostId>,
    target_set: HostSet,
    warnings: Vec<String>,
}

/// A slot under construction: its thread, position and hosts.
struct Slot {
    thread: usize,
    id: String,
    ids: Vec<HostId>,
}

enum GraphNode {
    Slot(usize),
    Host(HostId),
}

impl Compiler<'_> {
    /// The plan; `inventory_digest` gives the inventory's digest when the plan needs it.
    fn compile(
        mut self,
        request: &PlanRequest,
        inventory_digest: impl FnOnce() -> String,
    ) -> Result<Plan, PlanError> {
        let (threads, slots) = self.threads();
        let (graph, edges) = self.graph(&threads, &slots)?;
        debug_assert!(toposort(&graph, None).is_ok());

        let mut in_slot = HostSet::with_capacity(self.hosts.len());
        for slot in &slots {
            for &h in &slot.ids {
                in_slot.insert(h);
            }
        }
        let unordered: Vec<HostId> = self
            .targets
            .iter()
            .copied()
            .filter(|&h| !in_slot.contains(h))
            .collect();
        let order = plan_order(&threads, &slots, &unordered, self.hosts.len());
        let mut rank = vec![u32::MAX; self.hosts.len()];
        for (i, &h) in order.iter().enumerate() {
            rank[h as usize] = i as u32;
        }

        let not_in_config: Vec<HostId> = unordered
            .iter()
            .copied()
            .filter(|&h| h as usize >= self.config.hosts.len())
            .collect();
        // An ad-hoc plan has no config: its targets are all it has, nothing to warn about.
        if !not_in_config.is_empty() && request.config_name != pogo_model::NO_CONFIG {
            let names: Vec<&str> = not_in_config.iter().map(|&h| self.hosts.name(h)).collect();
            self.warnings.push(format!(
                "{} not in the config and run unordered, limited only by the job-wide limit: {}",
                count(names.len(), "target is", "targets are"),
                abbreviate(&names, 20)
            ));
        }

        let mut constraints = Vec::new();
        let target_count = self.targets.len() as u64;
        let job_limit = match request.concurrent {
            JobLimit::Default => Some(Limit::Count(DEFAULT_CONCURRENT)),
            JobLimit::Limit(limit) => Some(limit),
            JobLimit::Unconstrained => None,
        };
        if let Some(limit) = job_limit {
            constraints.push(ConstraintSpec {
                id: JOB_GROUP_ID.to_string(),
                from: JOB_GROUP_ID.to_string(),
                max_parallel: limit.resolve(target_count),
                hosts: self.names(&order),
            });
        }
        constraints.extend(self.constraint_groups(&rank)?);
        if constraints.is_empty() {
            self.warnings.push(
                "nothing limits this run: no constraint applies to its targets and it is \
                 --unconstrained, so every host may run at once"
                    .to_string(),
            );
        }

        let plan = Plan {
            format_version: FORMAT_VERSION,
            producer: format!("pogo {}", env!("CARGO_PKG_VERSION")),
            source: SourceSpec {
                config: request.config_name.clone(),
                spec: request.spec_name.clone(),
            },
            digests: Digests {
                config: crate::spec::digest(&self.config.digest_input),
                inventory: inventory_digest(),
            },
            command: request.command.clone(),
            options: RunOptions {
                timeout: request.timeout.unwrap_or(DEFAULT_TIMEOUT),
                retries: request.retries,
                max_failures: request.max_failures.resolve(target_count),
                run_timeout: request.run_timeout,
                max_output: request.max_output,
                before: request.before.clone(),
                verify: request.verify.clone(),
                after: request.after.clone(),
            },
            hosts: self.names(&order),
            threads,
            unordered: self.names(&unordered),
            not_in_config: self.names(&not_in_config),
            external_tags: self
                .config
                .external
                .iter()
                .map(|e| ExternalTagSpec {
                    tag: self.config.tags[e.tag].path.clone(),
                    command: e.command.clone(),
                    hosts: self.names(&e.hosts),
                })
                .collect(),
            constraints,
            edges,
            warnings: self.warnings,
            seal: None,
        };
        let plan = with_gates(plan, &request.gates)?;
        debug_assert_eq!(plan.validate(), Ok(()));
        Ok(plan.sealed())
    }

    fn names(&self, ids: &[HostId]) -> Vec<String> {
        ids.iter()
            .map(|&h| self.hosts.name(h).to_string())
            .collect()
    }

    /// Threads with their slots. A thread none of whose steps holds a target is left out;
    /// empty steps of the others stay, because the order around them holds.
    fn threads(&mut self) -> (Vec<ThreadSpec>, Vec<Slot>) {
        let config = self.config;
        let capacity = self.hosts.len();
        let mut threads = Vec::new();
        let mut slots: Vec<Slot> = Vec::new();
        // Ids are given over every thread of the config, kept or not, so a step has the same
        // id whatever the targets.
        let mut slot_ids = SlotIds::default();
        for def in &config.threads {
            let filter = def
                .filter
                .as_ref()
                .map(|f| HostSet::of(&self.inventory.eval(config, f), capacity));
            let mut placed = HostSet::with_capacity(capacity);
            let mut thread_slots = Vec::with_capacity(def.steps.len());
            for step in &def.steps {
                let mut ids = Vec::new();
                let mut again = Vec::new();
                let step_hosts = evaluate(&step.items, self.hosts, Vec::new, |expr| {
                    self.inventory.eval(config, expr)
                });
                self.warnings.extend(step_hosts.unused);
                for h in step_hosts.hosts {
                    if !self.target_set.contains(h)
                        || filter.as_ref().is_some_and(|f| !f.contains(h))
                    {
                        continue;
                    }
                    if placed.insert(h) {
                        ids.push(h);
                    } else {
                        again.push(self.hosts.name(h));
                    }
                }
                if !again.is_empty() {
                    self.warnings.push(format!(
                        "{}: step `{}` of thread `{}` names {} of an earlier step; \
                         {} once, in the earlier step: {}",
                        step.span.location(),
                        step.text,
                        def.name,
                        count(again.len(), "host", "hosts"),
                        if again.len() == 1 {
                            "it runs"
                        } else {
                            "they run"
                        },
                        abbreviate(&again, 10)
                    ));
                }
                let id = slot_ids.issue(format!("{}.{}", def.name, step.text));
                thread_slots.push((step.text.clone(), id, ids));
            }
            if thread_slots.iter().all(|(_, _, ids)| ids.is_empty()) {
                self.warn_if_never_holds_a_host(def, filter.as_ref());
                continue;
            }
            let thread = threads.len();
            let mut specs = Vec::with_capacity(thread_slots.len());
            for (step, id, ids) in thread_slots {
                specs.push(SlotSpec {
                    id: id.clone(),
                    step,
                    hosts: self.names(&ids),
                    gate: None,
                    approve: None,
                });
                slots.push(Slot { thread, id, ids });
            }
            threads.push(ThreadSpec {
                name: def.name.clone(),
                filter: def.filter.as_ref().map(|f| f.text.clone()),
                slots: specs,
            });
        }
        (threads, slots)
    }

    /// A thread left out because no host is targeted is normal; one that would hold no host
    /// whatever the targets is a config mistake (a filter that matches none of its steps'
    /// hosts, say), and leaving it out silently would run its hosts unordered.
    fn warn_if_never_holds_a_host(&mut self, def: &ThreadDef, filter: Option<&HostSet>) {
        let config = self.config;
        let mut named_any = false;
        for step in &def.steps {
            for item in &step.items {
                let hosts = match item {
                    HostItem::Hosts(ids) => ids.clone(),
                    HostItem::Tag(expr) => self.inventory.eval(config, expr),
                    HostItem::Except(_) => Vec::new(),
                };
                named_any |= !hosts.is_empty();
                if hosts.iter().any(|&h| filter.is_none_or(|f| f.contains(h))) {
                    return;
                }
            }
        }
        let why = match &def.filter {
            Some(f) if named_any => format!("none of the hosts its steps name is in `{}`", f.text),
            _ => "its steps name no host".to_string(),
        };
        self.warnings.push(format!(
            "{}: thread `{}` holds no host, so it is left out: {why}",
            def.span.location(),
            def.name
        ));
    }

    /// The DAG of slots. Hosts held by several threads join it as nodes of their own (a host
    /// waits for the predecessors of each slot holding it; each such slot waits for the host),
    /// so a contradictory order between threads shows up as a cycle.
    fn graph(
        &self,
        threads: &[ThreadSpec],
        slots: &[Slot],
    ) -> Result<(DiGraph<GraphNode, ()>, Vec<EdgeSpec>), PlanError> {
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..slots.len())
            .map(|i| graph.add_node(GraphNode::Slot(i)))
            .collect();
        let mut predecessor = vec![None; slots.len()];
        let mut edges = Vec::new();
        for pair in (0..slots.len()).collect::<Vec<_>>().windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if slots[a].thread == slots[b].thread {
                graph.add_edge(nodes[a], nodes[b], ());
                predecessor[b] = Some(a);
                edges.push(EdgeSpec {
                    from: slots[a].id.clone(),
                    to: slots[b].id.clone(),
                });
            }
        }
        let mut holders: FastMap<HostId, Vec<usize>> = FastMap::default();
        let mut seen = HostSet::with_capacity(self.hosts.len());
        let mut shared = HostSet::with_capacity(self.hosts.len());
        for slot in slots {
            for &h in &slot.ids {
                if !seen.insert(h) {
                    shared.insert(h);
                }
            }
        }
        for (i, slot) in slots.iter().enumerate() {
            for &h in &slot.ids {
                if shared.contains(h) {
                    holders.entry(h).or_default().push(i);
                }
            }
        }
        let mut shared_hosts: Vec<(HostId, Vec<usize>)> = holders.into_iter().collect();
        shared_hosts.sort_unstable_by_key(|(h, _)| *h);
        for (h, holding) in shared_hosts {
            let host_node = graph.add_node(GraphNode::Host(h));
            for &slot in &holding {
                graph.add_edge(host_node, nodes[slot], ());
                if let Some(pred) = predecessor[slot] {
                    graph.add_edge(nodes[pred], host_node, ());
                }
            }
        }
        if toposort(&graph, None).is_err() {
            return Err(self.cycle_error(&graph, threads, slots).into());
        }
        Ok((graph, edges))
    }

    fn cycle_error(
        &self,
        graph: &DiGraph<GraphNode, ()>,
        threads: &[ThreadSpec],
        slots: &[Slot],
    ) -> Diagnostic {
        let component = tarjan_scc(graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .min_by_key(|c| c.iter().map(|n| n.index()).min())
            .expect("toposort found a cycle");
        let cycle = find_cycle(graph, &component);
        let slot_name = |i: usize| format!("`{}`", slots[i].id);
        let mut links = Vec::new();
        for (k, &node) in cycle.iter().enumerate() {
            let next = cycle[(k + 1) % cycle.len()];
            match (&graph[node], &graph[next]) {
                (GraphNode::Slot(a), GraphNode::Host(h)) => links.push(format!(
                    "{} waits for slot {}",
                    self.hosts.name(*h),
                    slot_name(*a)
                )),
                (GraphNode::Slot(a), GraphNode::Slot(b)) => links.push(format!(
                    "slot {} waits for slot {}",
                    slot_name(*b),
                    slot_name(*a)
                )),
                (GraphNode::Host(h), GraphNode::Slot(b)) => links.push(format!(
                    "slot {} is complete only once {} has run",
                    slot_name(*b),
                    self.hosts.name(*h)
                )),
                (GraphNode::Host(_), GraphNode::Host(_)) => {}
            }
        }
        let first_slot = cycle
            .iter()
            .find_map(|&n| match graph[n] {
                GraphNode::Slot(i) => Some(i),
                GraphNode::Host(_) => None,
            })
            .expect("a cycle passes through a slot");
        let thread = &threads[slots[first_slot].thread];
        let def = self
            .config
            .threads
            .iter()
            .find(|t| t.name == thread.name)
            .expect("every thread comes from the config");
        Diagnostic::at(
            def.span.clone(),
            format!(
                "the sequences order hosts in a cycle, so none of them could ever start: {}",
                links.join("; ")
            ),
        )
        .with_help(
            "a host in several threads runs after the preceding step of each; \
             remove it from one of the steps, or make the threads agree on the order",
        )
    }

    /// One group per constraint, or per direct sub-tag (and per combination of sub-tags for
    /// an AND); groups with no targeted host are left out.
    fn constraint_groups(&mut self, rank: &[u32]) -> Result<Vec<ConstraintSpec>, PlanError> {
        let config = self.config;
        let mut errors = Errors::default();
        let mut groups: Vec<ConstraintSpec> = Vec::new();
        let mut by_id: FastMap<String, (usize, Span)> = FastMap::default();
        for def in &config.constraints {
            let mut variants: Vec<Vec<TagId>> = vec![Vec::new()];
            for term in &def.expr.terms {
                let tag = config.tag_index[term];
                let values = if config.tags[tag].children.is_empty() {
                    vec![tag]
                } else if config.tags[tag].has_own_members() {
                    errors.push(
                        Diagnostic::at(
                            def.span.clone(),
                            format!(
                                "tag `{term}` has hosts of its own and sub-tags, so the \
                                 per-value limit of `{}` cannot tell which value they belong to",
                                def.expr.text
                            ),
                        )
                        .with_help(format!(
                            "move the hosts listed directly on `{term}` into a sub-tag"
                        )),
                    );
                    continue;
                } else {
                    config.tags[tag].children.clone()
                };
                variants = variants
                    .iter()
                    .flat_map(|prefix| {
                        values.iter().map(move |&v| {
                            let mut next = prefix.clone();
                            next.push(v);
                            next
                        })
                    })
                    .collect();
            }
            for tags in variants {
                let members = self.inventory.intersect(&tags);
                let mut targeted: Vec<HostId> = members
                    .iter()
                    .copied()
                    .filter(|&h| self.target_set.contains(h))
                    .collect();
                if targeted.is_empty() {
                    continue;
                }
                targeted.sort_unstable_by_key(|&h| rank[h as usize]);
                let id = tags
                    .iter()
                    .map(|&t| format!("${}", config.tags[t].path))
                    .collect::<Vec<_>>()
                    .join(".");
                let group = ConstraintSpec {
                    id: id.clone(),
                    from: def.expr.text.clone(),
                    max_parallel: def.limit.resolve(members.len() as u64),
                    hosts: self.names(&targeted),
                };
                match by_id.get(&id) {
                    None => {
                        by_id.insert(id, (groups.len(), def.span.clone()));
                        groups.push(group);
                    }
                    Some((index, first)) => {
                        let kept = &mut groups[*index];
                        let stricter = group.max_parallel.value < kept.max_parallel.value;
                        self.warnings.push(format!(
                            "{}: group `{id}` is limited twice (also at {}); the stricter limit, {}, applies",
                            def.span.location(),
                            first.location(),
                            if stricter { group.max_parallel.value } else { kept.max_parallel.value }
                        ));
                        if stricter {
                            *kept = group;
                        }
                    }
                }
            }
        }
        errors.finish(groups)
    }
}

/// Unique slot ids: `THREAD.STEP`, then `THREAD.STEP#2`, `#3`... for repeats. A step's own
/// text may already end in `#2` (a host named `h1#2`), so every candidate is checked against
/// all ids given so far.
#[derive(Default)]
struct SlotIds {
    issued: FastSet<String>,
    repeats: FastMap<String, usize>,
}

impl SlotIds {
    fn issue(&mut self, base: String) -> String {
        if self.issued.insert(base.clone()) {
            return base;
        }
        let n = self.repeats.entry(base.clone()).or_insert(1);
        loop {
            *n += 1;
            let id = format!("{base}#{n}");
            if self.issued.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// A cycle through `component`'s first node, found by breadth-first search inside it.
fn find_cycle(graph: &DiGraph<GraphNode, ()>, component: &[NodeIndex]) -> Vec<NodeIndex> {
    let start = *component.iter().min().expect("components are not empty");
    let inside: FastSet<NodeIndex> = component.iter().copied().collect();
    let mut parent: FastMap<NodeIndex, NodeIndex> = FastMap::default();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.edges(node).map(|e| e.target()).collect();
        next.sort_unstable();
        for succ in next {
            if !inside.contains(&succ) {
                continue;
            }
            if succ == start {
                let mut cycle = vec![node];
                let mut at = node;
                while at != start {
                    at = parent[&at];
                    cycle.push(at);
                }
                cycle.reverse();
                return cycle;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(succ) {
                e.insert(node);
                queue.push_back(succ);
            }
        }
    }
    unreachable!("a strongly connected component of several nodes has a cycle through each")
}

/// Wave by wave: the first step of every thread, then the second..., then the unordered lane.
fn plan_order(
    threads: &[ThreadSpec],
    slots: &[Slot],
    unordered: &[HostId],
    capacity: usize,
) -> Vec<HostId> {
    let mut by_thread: Vec<Vec<&Slot>> = vec![Vec::new(); threads.len()];
    for slot in slots {
        by_thread[slot.thread].push(slot);
    }
    let depth = by_thread.iter().map(Vec::len).max().unwrap_or(0);
    let waves = (0..depth).flat_map(|level| {
        by_thread
            .iter()
            .filter_map(move |t| t.get(level))
            .flat_map(|s| s.ids.iter().copied())
    });
    dedup_in_order(waves.chain(unordered.iter().copied()), capacity)
}

fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The first `max` names, then how many more.
fn abbreviate(names: &[&str], max: usize) -> String {
    if names.len() <= max {
        names.join(", ")
    } else {
        format!(
            "{}, and {} more",
            names[..max].join(", "),
            names.len() - max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ids_stay_unique_when_a_step_text_ends_like_a_repeat() {
        let mut ids = SlotIds::default();
        let issued: Vec<String> = ["main.h1", "main.h1", "main.h1#2", "main.h1", "main.h1#2"]
            .into_iter()
            .map(|base| ids.issue(base.to_string()))
            .collect();
        assert_eq!(
            issued,
            [
                "main.h1",
                "main.h1#2",
                "main.h1#2#2",
                "main.h1#3",
                "main.h1#2#3"
            ]
        );
    }
}
