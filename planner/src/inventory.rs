//! Tags resolved to hosts: `$tag` is the tag's own members and all its sub-tags' members,
//! depth first in document order, each host once.

use crate::config::{Config, TagId, TagItem, ROOT};
use crate::diag::{suggest, Diagnostic, Errors, PlanError};
use crate::expr::{evaluate, Excluded, Exclusion, HostItem, TagExpr};
use crate::hosts::{dedup_list_in_order, HostId, HostSet};

/// References between tags deeper than this are refused rather than risking the stack.
const MAX_REFERENCE_DEPTH: usize = 512;

/// The resolved members of every tag of a config.
#[derive(Debug)]
pub struct Inventory {
    members: Vec<Vec<HostId>>,
    sets: Vec<HostSet>,
    host_count: usize,
    /// Exclusions in tags that removed nothing, with their place.
    warnings: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unvisited,
    Resolving,
    Done,
}

impl Inventory {
    /// Checks every tag reference of the config and resolves every tag.
    pub fn resolve(config: &Config) -> Result<Inventory, PlanError> {
        let mut errors = Errors::default();
        check_references(config, &mut errors);
        let mut resolver = Resolver {
            config,
            members: vec![Vec::new(); config.tags.len()],
            state: vec![State::Unvisited; config.tags.len()],
            errors,
            warnings: Vec::new(),
        };
        for tag in 0..config.tags.len() {
            resolver.resolve(tag, 0);
        }
        let Resolver {
            members,
            errors,
            warnings,
            ..
        } = resolver;
        let host_count = config.hosts.len();
        let sets = members.iter().map(|m| HostSet::of(m, host_count)).collect();
        errors.finish(Inventory {
            members,
            sets,
            host_count,
            warnings,
        })
    }

    /// Warnings about the tags: exclusions that removed nothing.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The resolved members of a tag.
    pub fn members(&self, tag: TagId) -> &[HostId] {
        &self.members[tag]
    }

    pub fn set(&self, tag: TagId) -> &HostSet {
        &self.sets[tag]
    }

    /// The hosts of an AND of tags, in the order of its first term. The expression must have
    /// been checked (every term a defined tag).
    pub fn eval(&self, config: &Config, expr: &TagExpr) -> Vec<HostId> {
        let tags: Vec<TagId> = expr
            .terms
            .iter()
            .filter_map(|t| config.tag_index.get(t).copied())
            .collect();
        self.intersect(&tags)
    }

    /// The hosts in every one of `tags`, in the order of the first.
    pub fn intersect(&self, tags: &[TagId]) -> Vec<HostId> {
        let Some((&first, rest)) = tags.split_first() else {
            return Vec::new();
        };
        self.members[first]
            .iter()
            .copied()
            .filter(|&h| rest.iter().all(|&t| self.sets[t].contains(h)))
            .collect()
    }

    /// `sha256:` over every tag's resolved members, in tag order.
    pub fn digest(&self, config: &Config) -> String {
        let mut hasher = pogo_model::HashWriter::default();
        for (tag, members) in config.tags.iter().zip(&self.members) {
            hasher.put(tag.path.as_bytes());
            hasher.put(b"\t");
            for &host in members {
                hasher.put(config.hosts.name(host).as_bytes());
                hasher.put(b",");
            }
            hasher.put(b"\n");
        }
        for host in config.hosts.ids() {
            hasher.put(config.hosts.name(host).as_bytes());
            hasher.put(b"\n");
        }
        hasher.finish()
    }

    pub fn host_count(&self) -> usize {
        self.host_count
    }
}

struct Resolver<'c> {
    config: &'c Config,
    members: Vec<Vec<HostId>>,
    state: Vec<State>,
    errors: Errors,
    warnings: Vec<String>,
}

impl Resolver<'_> {
    fn resolve(&mut self, tag: TagId, depth: usize) {
        if self.state[tag] != State::Unvisited {
            return;
        }
        self.state[tag] = State::Resolving;
        let config = self.config;
        let mut members = Vec::new();
        let mut exclusions = Vec::new();
        for item in &config.tags[tag].items {
            match item {
                TagItem::Hosts(hosts) => members.extend_from_slice(hosts),
                TagItem::Except(exclusion) => {
                    if let Excluded::Tag(expr) = &exclusion.what {
                        if !self.resolve_terms(tag, expr, depth) {
                            continue;
                        }
                    }
                    exclusions.push(HostItem::Except((**exclusion).clone()));
                }
                TagItem::Child(child) => {
                    self.resolve(*child, depth + 1);
                    members.extend_from_slice(&self.members[*child]);
                }
                TagItem::Ref(expr) => {
                    let tags: Vec<TagId> = expr
                        .terms
                        .iter()
                        .filter_map(|t| config.tag_index.get(t).copied())
                        .collect();
                    if depth >= MAX_REFERENCE_DEPTH {
                        self.report(
                            expr,
                            format!("tag references nest deeper than {MAX_REFERENCE_DEPTH} levels"),
                        );
                        continue;
                    }
                    for &t in &tags {
                        if self.state[t] == State::Resolving {
                            let message = format!(
                                "tag `{}` includes itself through `{}`",
                                config.tags[tag].path, expr.text
                            );
                            self.report(expr, message);
                        }
                        self.resolve(t, depth + 1);
                    }
                    if let Some((&first, rest)) = tags.split_first() {
                        let capacity = config.hosts.len();
                        let sets: Vec<HostSet> = rest
                            .iter()
                            .map(|&t| HostSet::of(&self.members[t], capacity))
                            .collect();
                        members.extend(
                            self.members[first]
                                .iter()
                                .copied()
                                .filter(|&h| sets.iter().all(|s| s.contains(h))),
                        );
                    }
                }
            }
        }
        let mut members = dedup_list_in_order(members, config.hosts.len());
        if !exclusions.is_empty() {
            let listed = evaluate(
                std::iter::once(&HostItem::Hosts(members)).chain(&exclusions),
                &config.hosts,
                Vec::new,
                |expr| self.intersect(expr),
            );
            members = listed.hosts;
            self.warnings.extend(listed.unused);
        }
        self.members[tag] = members;
        self.state[tag] = State::Done;
    }

    /// Resolves the tags of an exclusion's expression first, refusing a tag that excludes
    /// itself. False when it cannot be evaluated.
    fn resolve_terms(&mut self, tag: TagId, expr: &TagExpr, depth: usize) -> bool {
        let config = self.config;
        if depth >= MAX_REFERENCE_DEPTH {
            self.report(
                expr,
                format!("tag references nest deeper than {MAX_REFERENCE_DEPTH} levels"),
            );
            return false;
        }
        for term in &expr.terms {
            let Some(&t) = config.tag_index.get(term) else {
                return false;
            };
            if self.state[t] == State::Resolving {
                let message = format!(
                    "tag `{}` excludes itself through `{}`",
                    config.tags[tag].path, expr.text
                );
                self.report(expr, message);
                return false;
            }
            self.resolve(t, depth + 1);
        }
        true
    }

    /// The hosts in every tag of `expr` (all resolved).
    fn intersect(&self, expr: &TagExpr) -> Vec<HostId> {
        let tags: Vec<TagId> = expr
            .terms
            .iter()
            .filter_map(|t| self.config.tag_index.get(t).copied())
            .collect();
        let Some((&first, rest)) = tags.split_first() else {
            return Vec::new();
        };
        let capacity = self.config.hosts.len();
        let sets: Vec<HostSet> = rest
            .iter()
            .map(|&t| HostSet::of(&self.members[t], capacity))
            .collect();
        self.members[first]
            .iter()
            .copied()
            .filter(|&h| sets.iter().all(|s| s.contains(h)))
            .collect()
    }

    fn report(&mut self, expr: &TagExpr, message: String) {
        let diagnostic = match &expr.span {
            Some(span) => Diagnostic::at(span.clone(), message),
            None => Diagnostic::general(message),
        };
        self.errors
            .push(diagnostic.with_help(
                "a tag may list other tags, but not itself, directly or through others",
            ));
    }
}

/// Reports every reference to a tag the config does not define.
fn check_references(config: &Config, errors: &mut Errors) {
    for tag in &config.tags {
        for item in &tag.items {
            match item {
                TagItem::Ref(expr) => {
                    check_expr(config, expr, errors);
                }
                TagItem::Except(exclusion) => {
                    if let Excluded::Tag(expr) = &exclusion.what {
                        check_expr(config, expr, errors);
                    }
                }
                TagItem::Hosts(_) | TagItem::Child(_) => {}
            }
        }
    }
    for thread in &config.threads {
        if let Some(filter) = &thread.filter {
            check_expr(config, filter, errors);
        }
        for step in &thread.steps {
            for item in &step.items {
                match item {
                    HostItem::Tag(expr) => {
                        check_expr(config, expr, errors);
                    }
                    HostItem::Except(Exclusion {
                        what: Excluded::Tag(expr),
                        ..
                    }) => {
                        check_expr(config, expr, errors);
                    }
                    _ => {}
                }
            }
        }
    }
    for constraint in &config.constraints {
        check_expr(config, &constraint.expr, errors);
    }
}

/// Reports each term of `expr` that names no tag, with the closest defined tag as a hint.
/// True when every term is defined.
pub(crate) fn check_expr(config: &Config, expr: &TagExpr, errors: &mut Errors) -> bool {
    let mut ok = true;
    for term in &expr.terms {
        if config.tag_index.contains_key(term) {
            continue;
        }
        ok = false;
        let message = if expr.terms.len() == 1 {
            format!("undefined tag `${term}`")
        } else {
            format!("undefined tag `${term}` in `{}`", expr.text)
        };
        let help = suggest(term, config.tags.iter().skip(1).map(|t| t.path.as_str()))
            .map(|s| format!("did you mean `${s}`?"))
            .unwrap_or_else(|| {
                if config.tags.len() <= 1 {
                    "the config defines no tags; define it under `tag:`".to_string()
                } else {
                    format!(
                        "define it under `tag:`, or use one of: {}",
                        tag_list(config)
                    )
                }
            });
        let diagnostic = match &expr.span {
            Some(span) => Diagnostic::at(span.clone(), message),
            None => Diagnostic::general(message),
        };
        errors.push(diagnostic.with_help(help));
    }
    ok
}

/// The top-level tags, for a hint; long lists are cut.
pub(crate) fn tag_list(config: &Config) -> String {
    let names: Vec<String> = config.tags[ROOT]
        .children
        .iter()
        .map(|&t| format!("`${}`", config.tags[t].path))
        .collect();
    if names.len() > 8 {
        format!("{}, ... ({} in all)", names[..8].join(", "), names.len())
    } else {
        names.join(", ")
    }
}
