//! Stale plans: refusing a plan whose inputs changed after it was written.
//!
//! A plan is self-contained, so nothing forces it to agree with today's config: a plan
//! reviewed on Monday may be applied on Friday, after a host moved to another colo or a limit
//! was raised. A plan records what it was compiled from (`digests.config`, of the config's
//! text; `digests.inventory`, of every tag's resolved hosts, which also covers tags whose
//! hosts come from a command), and [`check`] compares those with the current inputs:
//!
//! 1. the config's digest, then the inventory's: a changed config text, or changed hosts
//!    behind its tags (an inventory command that now prints other hosts), makes the plan
//!    stale whatever it was made for;
//! 2. with a plan spec (or any [`PlanRequest`]), the spec is compiled again and the plans are
//!    compared, ignoring only what says where a plan came from (`producer`, `source`) and its
//!    `warnings` (which name files by the path they were given as): a changed `targets`,
//!    `command` or option makes the plan stale too.
//!
//! A config alone carries no request (targets, command and options were flags of `pogo plan`),
//! so against a config only the digests are compared.
//!
//! The check is for `pogo apply`, the dispatcher and `pogo validate PLAN --against SPEC`; they
//! refuse a [`StaleError`] unless told otherwise (`--allow-stale`).

use std::collections::HashSet;

use pogo_model::{Amount, Plan, JOB_GROUP_ID};

use crate::compile::{compile, FailureLimit, GateRequest, JobLimit, PlanRequest};
use crate::config::Config;
use crate::config::Limit;
use crate::diag::{PlanError, Source, Span};
use crate::inventory::Inventory;
use crate::spec::digest;

/// Why a plan no longer matches its inputs. Each message says what changed and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaleError {
    /// The config's text (or an inline config's YAML tree) changed.
    #[error("plan is stale: config changed since the plan was written; run pogo plan again")]
    Config,
    /// The config's text is the same, but the hosts behind its tags are not: a tag resolved by
    /// a command (`tag: !command ...`) now gives other hosts.
    #[error(
        "plan is stale: the hosts behind the config's tags changed since the plan was \
         written{}; run pogo plan again",
        tag_changes(.changes)
    )]
    Inventory { changes: Vec<TagChange> },
    /// Config and inventory are the same, but the plan spec asks for something else: the
    /// spec keys whose values differ, in the spec's key order.
    #[error(
        "plan is stale: the plan spec changed since the plan was written ({}); run pogo plan \
         again",
        .keys.join(", ")
    )]
    Spec { keys: Vec<&'static str> },
    /// Same inputs, different plan: the plan's content is not what its inputs compile to
    /// today. Either it was edited by hand (then its seal says so too), or it was written by
    /// another version of pogo, which compiled the same inputs differently. `keys` are the
    /// plan's keys that differ, in the plan's key order.
    #[error(
        "plan is stale: it is not what its inputs compile to today ({} {} differ{}); run pogo \
         plan again",
        .keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
        if .keys.len() == 1 { "key" } else { "keys" },
        if .keys.len() == 1 { "s" } else { "" }
    )]
    Content { keys: Vec<&'static str> },
}

/// How the hosts of a tag resolved by a command changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    /// The tag's dotted name, without `$`.
    pub tag: String,
    pub added: usize,
    pub removed: usize,
}

fn tag_changes(changes: &[TagChange]) -> String {
    if changes.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = changes
        .iter()
        .take(3)
        .map(|c| match (c.added, c.removed) {
            (0, removed) => format!("`${}` lost {}", c.tag, hosts(removed)),
            (added, 0) => format!("`${}` gained {}", c.tag, hosts(added)),
            (added, removed) => format!("`${}` gained {} and lost {removed}", c.tag, hosts(added)),
        })
        .collect();
    let more = match changes.len() {
        n if n > 3 => format!(", and {} more tags", n - 3),
        _ => String::new(),
    };
    format!(" ({}{more})", shown.join("; "))
}

fn hosts(n: usize) -> String {
    if n == 1 {
        "1 host".to_string()
    } else {
        format!("{n} hosts")
    }
}

/// Why a plan could not be found fresh: it is stale, or the current inputs do not compile
/// (then nothing can be said about the plan, and the config's errors are what to fix).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Stale(#[from] StaleError),
    #[error(transparent)]
    Invalid(#[from] PlanError),
}

/// Checks that `plan` is what `config` (and `request`, for a plan spec) compile to today.
///
/// `request` is the plan spec's request ([`crate::JobSpec::request`]), or `None` when the
/// plan is checked against a config alone: then only the digests are compared.
pub fn check(
    plan: &Plan,
    config: &Config,
    request: Option<&PlanRequest>,
) -> Result<(), CheckError> {
    if digest(&config.digest_input) != plan.digests.config {
        return Err(StaleError::Config.into());
    }
    let inventory = Inventory::resolve(config)?;
    if inventory.digest(config) != plan.digests.inventory {
        return Err(StaleError::Inventory {
            changes: external_tag_changes(plan, config),
        }
        .into());
    }
    let current = match request {
        Some(request) => {
            let current = compile(config, request)?;
            let keys = spec_keys_changed(plan, &current);
            if !keys.is_empty() {
                return Err(StaleError::Spec { keys }.into());
            }
            current
        }
        None => compile(config, &request_of(plan))?,
    };
    let keys = differing_keys(plan, &current);
    if !keys.is_empty() {
        return Err(StaleError::Content { keys }.into());
    }
    Ok(())
}

/// What a plan made from a config alone was asked for, as the plan records it: its hosts
/// (exactly), command, options and job-wide limit. Compiled again with the config, it gives
/// the plan back unless the config or the plan changed.
fn request_of(plan: &Plan) -> PlanRequest {
    let limit = |amount: Amount| match amount.percent {
        Some(p) => Limit::Percent(p),
        None => Limit::Count(amount.value),
    };
    PlanRequest {
        hosts: Some(plan.hosts.clone()),
        command: plan.command.clone(),
        concurrent: match plan.constraint(JOB_GROUP_ID) {
            Some(job) => JobLimit::Limit(limit(job.max_parallel)),
            None => JobLimit::Unconstrained,
        },
        timeout: Some(plan.options.timeout),
        retries: plan.options.retries,
        max_failures: match plan.options.max_failures.percent {
            Some(p) => FailureLimit::Percent(p),
            None => FailureLimit::Count(plan.options.max_failures.value),
        },
        run_timeout: plan.options.run_timeout,
        max_output: plan.options.max_output,
        before: plan.options.before.clone(),
        verify: plan.options.verify.clone(),
        after: plan.options.after.clone(),
        gates: plan
            .slots()
            .filter(|(_, slot)| slot.is_gated())
            .map(|(_, slot)| GateRequest {
                step: slot.id.clone(),
                span: Span::start(&Source::argument("plan", slot.id.as_str())),
                gate: slot.gate.clone(),
                approve: slot.approve,
            })
            .collect(),
        strict_targets: false,
        config_name: plan.source.config.clone(),
        spec_name: plan.source.spec.clone(),
        targets: Vec::new(),
    }
}

/// The tags resolved by a command whose hosts differ from those the plan recorded, in
/// config order. With the config text unchanged, the same tags have commands on both sides.
fn external_tag_changes(plan: &Plan, config: &Config) -> Vec<TagChange> {
    let mut changes = Vec::new();
    for tag in &config.external {
        let name = &config.tags[tag.tag].path;
        let now: HashSet<&str> = tag.hosts.iter().map(|&h| config.hosts.name(h)).collect();
        let then: HashSet<&str> = plan
            .external_tags
            .iter()
            .find(|t| t.tag == *name)
            .map(|t| t.hosts.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let added = now.difference(&then).count();
        let removed = then.difference(&now).count();
        if added + removed > 0 {
            changes.push(TagChange {
                tag: name.clone(),
                added,
                removed,
            });
        }
    }
    changes
}

/// The plan spec keys (see `docs/plan-spec.md`) whose effect differs between the plans.
fn spec_keys_changed(old: &Plan, new: &Plan) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.hosts != new.hosts {
        keys.push("targets");
    }
    if old.command != new.command {
        keys.push("command");
    }
    let job = |plan: &Plan| plan.constraint(JOB_GROUP_ID).map(|g| g.max_parallel);
    if !same_limit(job(old), job(new)) {
        keys.push("concurrent");
    }
    let (a, b) = (&old.options, &new.options);
    if a.timeout != b.timeout {
        keys.push("timeout");
    }
    if a.retries != b.retries {
        keys.push("retries");
    }
    if !same_limit(Some(a.max_failures), Some(b.max_failures)) {
        keys.push("max_failures");
    }
    if a.run_timeout != b.run_timeout {
        keys.push("run_timeout");
    }
    if a.max_output != b.max_output {
        keys.push("max_output");
    }
    for (key, changed) in [
        ("before", a.before != b.before),
        ("verify", a.verify != b.verify),
        ("after", a.after != b.after),
    ] {
        if changed {
            keys.push(key);
        }
    }
    let gates = |plan: &Plan| -> Vec<(String, Option<String>, Option<pogo_model::Approval>)> {
        plan.slots()
            .filter(|(_, slot)| slot.is_gated())
            .map(|(_, slot)| (slot.id.clone(), slot.gate.clone(), slot.approve))
            .collect()
    };
    if gates(old) != gates(new) {
        keys.push("gates");
    }
    keys
}

/// A percentage is the same limit whatever its base: the base follows the targets, which
/// are compared on their own.
fn same_limit(a: Option<Amount>, b: Option<Amount>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => match (a.percent, b.percent) {
            (Some(p), Some(q)) => p == q,
            (None, None) => a.value == b.value,
            _ => false,
        },
        (None, None) => true,
        _ => false,
    }
}

/// The keys of the plan whose content differs, ignoring what says where a plan came from
/// (`format_version`, `producer`, `source`), its `warnings` (which name files by the path they
/// were given as) and its `seal`.
fn differing_keys(old: &Plan, new: &Plan) -> Vec<&'static str> {
    let Plan {
        format_version: _,
        producer: _,
        source: _,
        digests,
        command,
        options,
        hosts,
        threads,
        unordered,
        not_in_config,
        external_tags,
        constraints,
        edges,
        warnings: _,
        seal: _,
    } = old;
    [
        ("digests", *digests == new.digests),
        ("command", *command == new.command),
        ("options", *options == new.options),
        ("hosts", *hosts == new.hosts),
        ("threads", *threads == new.threads),
        ("unordered", *unordered == new.unordered),
        ("not_in_config", *not_in_config == new.not_in_config),
        ("external_tags", *external_tags == new.external_tags),
        ("constraints", *constraints == new.constraints),
        ("edges", *edges == new.edges),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(key, _)| key)
    .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::path::Path;

    use super::*;
    use crate::compile::{JobLimit, TargetSpec};
    use crate::diag::{Source, Span};
    use crate::resolve::TagResolver;
    use crate::yaml::Pos;

    const CONFIG: &str = "\
tag:
  colo:
    east: !command inventory east
    west: [w1, w2]
sequence:
  - $colo.east
  - $colo.west
constraint:
  $colo:
    max_parallel: 50%
";

    /// An inventory service whose answer the test changes.
    struct Service(RefCell<String>);

    impl TagResolver for Service {
        fn run(&self, _command: &str, _dir: &Path) -> Result<String, String> {
            Ok(self.0.borrow().clone())
        }
    }

    fn config(text: &str, inventory: &Service) -> Config {
        Config::parse_with("fleet.cfg", text, inventory).expect("a valid config")
    }

    fn targets(text: &str) -> Vec<TargetSpec> {
        let source = Source::argument("--targets", text);
        vec![TargetSpec {
            text: text.to_string(),
            span: Span::new(&source, Pos { line: 1, col: 1 }, text.len()),
        }]
    }

    fn plan_of(config: &Config, request: &PlanRequest) -> Plan {
        compile(config, request).expect("the config compiles")
    }

    fn stale(result: Result<(), CheckError>) -> StaleError {
        match result {
            Err(CheckError::Stale(e)) => e,
            Err(CheckError::Invalid(e)) => panic!("the inputs should compile: {e}"),
            Ok(()) => panic!("the plan should be stale"),
        }
    }

    #[test]
    fn an_unchanged_plan_is_fresh_against_its_config_and_its_spec() {
        let inventory = Service(RefCell::new("e1\ne2\n".to_string()));
        let config = config(CONFIG, &inventory);
        let request = PlanRequest {
            command: Some("uptime".to_string()),
            ..PlanRequest::default()
        };
        let plan = plan_of(&config, &request);
        assert!(check(&plan, &config, None).is_ok());
        assert!(check(&plan, &config, Some(&request)).is_ok());
    }

    #[test]
    fn a_changed_config_text_is_stale_with_the_documented_message() {
        let inventory = Service(RefCell::new("e1\n".to_string()));
        let plan = plan_of(&config(CONFIG, &inventory), &PlanRequest::default());
        let edited = config(&CONFIG.replace("50%", "25%"), &inventory);
        let error = stale(check(&plan, &edited, None));
        assert_eq!(error, StaleError::Config);
        assert_eq!(
            error.to_string(),
            "plan is stale: config changed since the plan was written; run pogo plan again"
        );
        // A comment is a change of the text too: the plan says which config it was made from.
        let commented = config(&format!("# reviewed\n{CONFIG}"), &inventory);
        assert_eq!(stale(check(&plan, &commented, None)), StaleError::Config);
    }

    #[test]
    fn hosts_from_a_command_that_changed_make_the_plan_stale() {
        let inventory = Service(RefCell::new("e1\ne2\n".to_string()));
        let plan = plan_of(&config(CONFIG, &inventory), &PlanRequest::default());
        *inventory.0.borrow_mut() = "e1\ne3\ne4\n".to_string();
        let error = stale(check(&plan, &config(CONFIG, &inventory), None));
        assert_eq!(
            error,
            StaleError::Inventory {
                changes: vec![TagChange {
                    tag: "colo.east".to_string(),
                    added: 2,
                    removed: 1
                }]
            }
        );
        assert_eq!(
            error.to_string(),
            "plan is stale: the hosts behind the config's tags changed since the plan was \
             written (`$colo.east` gained 2 hosts and lost 1); run pogo plan again"
        );
    }

    #[test]
    fn the_same_hosts_in_another_order_are_a_change_of_inventory() {
        // Tag order is plan order, so it matters even when the set of hosts does not change.
        let inventory = Service(RefCell::new("e1\ne2\n".to_string()));
        let plan = plan_of(&config(CONFIG, &inventory), &PlanRequest::default());
        *inventory.0.borrow_mut() = "e2\ne1\n".to_string();
        let error = stale(check(&plan, &config(CONFIG, &inventory), None));
        assert_eq!(error, StaleError::Inventory { changes: vec![] });
        assert_eq!(
            error.to_string(),
            "plan is stale: the hosts behind the config's tags changed since the plan was \
             written; run pogo plan again"
        );
    }

    #[test]
    fn a_spec_asking_for_other_targets_command_or_options_is_stale() {
        let inventory = Service(RefCell::new("e1\ne2\n".to_string()));
        let config = config(CONFIG, &inventory);
        let request = PlanRequest {
            targets: targets("$colo.east"),
            command: Some("uptime".to_string()),
            ..PlanRequest::default()
        };
        let plan = plan_of(&config, &request);
        let changed = PlanRequest {
            targets: targets("$colo"),
            command: Some("reboot".to_string()),
            concurrent: JobLimit::Unconstrained,
            retries: 2,
            ..request.clone()
        };
        let error = stale(check(&plan, &config, Some(&changed)));
        assert_eq!(
            error,
            StaleError::Spec {
                keys: vec!["targets", "command", "concurrent", "retries"]
            }
        );
        assert_eq!(
            error.to_string(),
            "plan is stale: the plan spec changed since the plan was written (targets, command, \
             concurrent, retries); run pogo plan again"
        );
        // The config alone carries no request: its digests still match.
        assert!(check(&plan, &config, None).is_ok());
    }

    #[test]
    fn a_spec_asking_for_other_phases_or_gates_names_them() {
        let inventory = Service(RefCell::new("e1\n".to_string()));
        let config = config(CONFIG, &inventory);
        let request = PlanRequest {
            command: Some("uptime".to_string()),
            ..PlanRequest::default()
        };
        let plan = plan_of(&config, &request);
        let changed = PlanRequest {
            verify: Some(pogo_model::Verify {
                command: "curl -f localhost".into(),
                within: 60,
                every: 5,
            }),
            gates: vec![GateRequest {
                step: "main.$colo.east".into(),
                span: Span::start(&Source::argument("--approve", "main.$colo.east")),
                gate: None,
                approve: Some(pogo_model::Approval { within: None }),
            }],
            ..request.clone()
        };
        let error = stale(check(&plan, &config, Some(&changed)));
        assert_eq!(
            error,
            StaleError::Spec {
                keys: vec!["verify", "gates"]
            }
        );
    }

    #[test]
    fn where_a_plan_came_from_does_not_make_it_stale() {
        let inventory = Service(RefCell::new("e1\n".to_string()));
        let config = config(CONFIG, &inventory);
        let request = PlanRequest {
            config_name: "fleet.cfg".to_string(),
            ..PlanRequest::default()
        };
        let mut plan = plan_of(&config, &request);
        plan.producer = "pogo 0.0.9".to_string();
        plan.source.config = "../elsewhere/fleet.cfg".to_string();
        assert!(check(&plan, &config, Some(&request)).is_ok());
        // But a different rollout from the same inputs is: another pogo compiled it.
        plan.edges.clear();
        let error = stale(check(&plan, &config, Some(&request)));
        assert_eq!(
            error,
            StaleError::Content {
                keys: vec!["edges"]
            }
        );
        assert_eq!(
            error.to_string(),
            "plan is stale: it is not what its inputs compile to today (`edges` key differs); \
             run pogo plan again"
        );
    }

    /// Each edit of a plan made from a config alone is named when it is checked against that
    /// config: the config gives back the plan's rollout from the plan's own hosts, command and
    /// limits, so whatever the config decides (slots, groups, edges, lanes) is compared.
    #[test]
    fn against_a_config_alone_every_edit_of_what_the_config_decides_is_named() {
        let inventory = Service(RefCell::new("e1\ne2\n".to_string()));
        let config = config(CONFIG, &inventory);
        let request = PlanRequest {
            command: Some("uptime".to_string()),
            concurrent: JobLimit::Limit(crate::Limit::Count(2)),
            ..PlanRequest::default()
        };
        let plan = plan_of(&config, &request);
        assert!(check(&plan, &config, None).is_ok());
        type Edit = (&'static str, fn(&mut Plan), &'static [&'static str]);
        let edits: [Edit; 5] = [
            ("an edge", |p| p.edges.clear(), &["edges"]),
            (
                "a group",
                |p| p.constraints.retain(|c| c.id != "$colo.west"),
                &["constraints"],
            ),
            (
                "a limit",
                |p| p.constraints[1].max_parallel = Amount::number(1000),
                &["constraints"],
            ),
            (
                "a host",
                |p| {
                    p.hosts.push("intruder".into());
                    p.unordered.push("intruder".into());
                },
                &["not_in_config", "constraints"],
            ),
            (
                "a slot",
                |p| {
                    p.threads[0].slots[0]
                        .hosts
                        .pop()
                        .map(|h| p.unordered.push(h))
                        .unwrap()
                },
                &["threads", "unordered"],
            ),
        ];
        for (what, edit, keys) in edits {
            let mut edited = plan.clone();
            edit(&mut edited);
            let error = stale(check(&edited, &config, None));
            assert_eq!(
                error,
                StaleError::Content {
                    keys: keys.to_vec()
                },
                "{what}"
            );
        }
    }

    #[test]
    fn a_config_that_no_longer_compiles_is_an_error_not_staleness() {
        let inventory = Service(RefCell::new("e1\n".to_string()));
        let config = config(CONFIG, &inventory);
        let plan = plan_of(&config, &PlanRequest::default());
        let request = PlanRequest {
            targets: targets("$nowhere"),
            ..PlanRequest::default()
        };
        match check(&plan, &config, Some(&request)) {
            Err(CheckError::Invalid(e)) => assert!(e.to_string().contains("nowhere"), "{e}"),
            other => panic!("expected the spec's error, got {other:?}"),
        }
    }
}
