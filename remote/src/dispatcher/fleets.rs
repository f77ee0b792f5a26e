//! The fleets a dispatcher serves: every revision of every fleet's config, as pushed, and the
//! checks a submission passes against them (spec `semantics.md` §8).
//!
//! A revision is compiled once, when it is pushed, with the planner over all the fleet's hosts
//! ([`pogo_planner::fleet::compile_fleet`]); the compiled plan is stored with it, so a
//! dispatcher restarts with the budgets that were pushed whatever pogo compiled them. The
//! budgets themselves live in the [`FleetScheduler`]; this module keeps what operators read
//! (`pogo fleet list/show/diff`) and what a submission is checked against.

use std::collections::{BTreeMap, BTreeSet};

use pogo_api::{BudgetInfo, FleetRevision, FleetRevisionInfo, PushFleet, ALLOW_UNFLEETED};
use pogo_executor::fleet::{self, BudgetSpec, FleetScheduler};
use pogo_model::{Plan, ALLOW_STALE};
use pogo_planner::fleet::{budgets, compile_fleet};
use pogo_views::text::{list_cut, plural};

use super::core::ApiErr;
use super::store::FleetRow;

/// The longest fleet name.
const MAX_NAME: usize = 64;

/// How many changes a stale submission's refusal names before it says how many more.
const NAMED_CHANGES: usize = 6;

struct Revision {
    info: FleetRevisionInfo,
    config: String,
    outputs: BTreeMap<String, String>,
    plan: Plan,
}

/// Every revision of every fleet, by fleet name.
#[derive(Default)]
pub struct Fleets {
    by_name: BTreeMap<String, Vec<Revision>>,
}

/// What a fleet plan's budgets are, for the fleet scheduler.
fn scheduler_revision(plan: &Plan) -> fleet::FleetRevision {
    fleet::FleetRevision {
        hosts: plan.hosts.clone(),
        budgets: budgets(plan)
            .map(|group| BudgetSpec {
                id: group.id.clone(),
                max_parallel: group.max_parallel.value,
                hosts: group.hosts.clone(),
            })
            .collect(),
    }
}

fn check_name(name: &str) -> Result<(), ApiErr> {
    let mut chars = name.chars();
    let good = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.len() <= MAX_NAME;
    if good {
        Ok(())
    } else {
        Err(ApiErr::new(
            400,
            format!(
                "`{name}` is not a fleet name: letters, digits, `.`, `_` and `-`, starting with \
                 a letter or digit, at most {MAX_NAME} characters"
            ),
        ))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Fleets {
    /// Reloads a stored revision (in the order they were pushed) into `scheduler` too.
    pub fn reload(&mut self, scheduler: &mut FleetScheduler, row: FleetRow) -> Result<(), String> {
        let corrupt =
            |what: String| format!("fleet {} revision {}: {what}", row.name, row.revision);
        let plan = Plan::from_json(&row.plan).map_err(|e| corrupt(e.to_string()))?;
        let outputs: BTreeMap<String, String> =
            serde_json::from_str(&row.outputs).map_err(|e| corrupt(e.to_string()))?;
        let number = scheduler
            .push(&row.name, scheduler_revision(&plan))
            .map_err(|e| corrupt(e.to_string()))?;
        if number != row.revision {
            return Err(corrupt(format!("stored as revision {number}")));
        }
        let info = FleetRevisionInfo {
            fleet: row.name.clone(),
            revision: row.revision,
            current: true,
            digest: row.digest,
            inventory: row.inventory,
            pushed_at: row.pushed_at,
            pushed_by: row.pushed_by,
            config_name: row.config_name,
            hosts: plan.hosts.len(),
            budgets: budgets(&plan).count(),
        };
        self.by_name.entry(row.name).or_default().push(Revision {
            info,
            config: row.config,
            outputs,
            plan,
        });
        Ok(())
    }

    /// Compiles and registers a new revision; `None` for the row when the config (and what
    /// its commands printed) is the current revision's already: pushing it again changes
    /// nothing.
    pub fn push(
        &mut self,
        scheduler: &mut FleetScheduler,
        name: &str,
        push: PushFleet,
        by: &str,
    ) -> Result<(FleetRevisionInfo, Option<FleetRow>), ApiErr> {
        check_name(name)?;
        let plan = compile_fleet(&push.config_name, &push.config, &push.outputs).map_err(|e| {
            ApiErr::new(
                400,
                format!("the config of fleet {name} does not compile:\n{e}"),
            )
        })?;
        if plan.hosts.is_empty() {
            return Err(ApiErr::new(
                400,
                format!("the config of fleet {name} lists no host"),
            ));
        }
        if let Some(current) = self.by_name.get(name).and_then(|revs| revs.last()) {
            if current.info.digest == plan.digests.config
                && current.info.inventory == plan.digests.inventory
            {
                return Ok((current.info.clone(), None));
            }
        }
        let number = scheduler
            .push(name, scheduler_revision(&plan))
            .map_err(|e| ApiErr::new(409, format!("cannot push fleet {name}: {e}")))?;
        let revisions = self.by_name.entry(name.to_string()).or_default();
        if let Some(previous) = revisions.last_mut() {
            previous.info.current = false;
        }
        let info = FleetRevisionInfo {
            fleet: name.to_string(),
            revision: number,
            current: true,
            digest: plan.digests.config.clone(),
            inventory: plan.digests.inventory.clone(),
            pushed_at: now_secs(),
            pushed_by: by.to_string(),
            config_name: push.config_name.clone(),
            hosts: plan.hosts.len(),
            budgets: budgets(&plan).count(),
        };
        let row = FleetRow {
            name: name.to_string(),
            revision: number,
            digest: info.digest.clone(),
            inventory: info.inventory.clone(),
            config_name: push.config_name,
            config: push.config.clone(),
            outputs: serde_json::to_string(&push.outputs).unwrap_or_default(),
            plan: plan.to_json(),
            pushed_at: info.pushed_at,
            pushed_by: info.pushed_by.clone(),
        };
        revisions.push(Revision {
            info: info.clone(),
            config: push.config,
            outputs: push.outputs,
            plan,
        });
        Ok((info, Some(row)))
    }

    /// Each fleet's current revision, by fleet name.
    pub fn current(&self) -> Vec<FleetRevisionInfo> {
        self.by_name
            .values()
            .filter_map(|revs| revs.last())
            .map(|rev| rev.info.clone())
            .collect()
    }

    fn of(&self, name: &str) -> Result<&[Revision], ApiErr> {
        self.by_name
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| ApiErr::new(404, format!("no fleet `{name}` on this dispatcher")))
    }

    /// Every revision of a fleet, oldest first.
    pub fn revisions(&self, name: &str) -> Result<Vec<FleetRevisionInfo>, ApiErr> {
        Ok(self.of(name)?.iter().map(|rev| rev.info.clone()).collect())
    }

    /// A revision whole; 0 for the current one.
    pub fn revision(&self, name: &str, number: u32) -> Result<FleetRevision, ApiErr> {
        let revisions = self.of(name)?;
        let rev = match number {
            0 => revisions.last(),
            n => revisions.get(n as usize - 1),
        }
        .ok_or_else(|| {
            ApiErr::new(
                404,
                format!(
                    "fleet {name} has no revision {number} (it has {})",
                    revisions.len()
                ),
            )
        })?;
        Ok(FleetRevision {
            info: rev.info.clone(),
            config: rev.config.clone(),
            outputs: rev.outputs.clone(),
            plan: rev.plan.clone(),
            groups: budgets(&rev.plan)
                .map(|group| BudgetInfo {
                    group: group.id.clone(),
                    from: group.from.clone(),
                    max_parallel: group.max_parallel,
                    hosts: group.hosts.clone(),
                })
                .collect(),
        })
    }

    /// Refuses a plan with hosts in no fleet (unless the operator allows it), or compiled
    /// from another revision of a fleet's config than the current one (unless the operator
    /// accepts stale plans). A plan compiled from a config the dispatcher never saw is not
    /// refused: it is held by the fleets' budgets like any other.
    pub fn check_submission(
        &self,
        scheduler: &FleetScheduler,
        plan: &Plan,
        overrides: &[String],
    ) -> Result<(), String> {
        if !scheduler.has_fleets() {
            return Ok(());
        }
        let allowed = |what: &str| overrides.iter().any(|o| o == what);
        let mut fleets = BTreeSet::new();
        let mut unfleeted = Vec::new();
        for host in &plan.hosts {
            match scheduler.fleet_of(host) {
                Some(fleet) => {
                    fleets.insert(fleet);
                }
                None => unfleeted.push(host.as_str()),
            }
        }
        if !unfleeted.is_empty() && !allowed(ALLOW_UNFLEETED) {
            return Err(format!(
                "{} of the plan {} in no fleet of this dispatcher ({}); once a dispatcher has \
                 fleets, each host of a job is in one (pogo fleet push), or the job says it \
                 runs hosts outside them (--allow-unfleeted)",
                plural(unfleeted.len(), "host"),
                if unfleeted.len() == 1 { "is" } else { "are" },
                first_names(&unfleeted)
            ));
        }
        if allowed(ALLOW_STALE) {
            return Ok(());
        }
        for fleet in fleets {
            let revisions = &self.by_name[fleet];
            let current = revisions.last().expect("a fleet has a revision");
            if current.info.digest == plan.digests.config {
                if current.info.inventory == plan.digests.inventory {
                    continue;
                }
                return Err(format!(
                    "plan is stale for fleet {fleet}: it was compiled from the config of its \
                     revision {}, and the hosts behind the config's tags were not what the \
                     revision's commands printed; run pogo plan again, or submit with \
                     --allow-stale to run it as it is under the current budgets",
                    current.info.revision
                ));
            }
            let Some(old) = revisions
                .iter()
                .rev()
                .find(|rev| rev.info.digest == plan.digests.config)
            else {
                continue;
            };
            return Err(format!(
                "plan is stale for fleet {fleet}: it was compiled from revision {} of the \
                 fleet's config, and revision {} (pushed by {}) is current: {}; run pogo plan \
                 again with the current config (pogo fleet show {fleet} --config), or submit \
                 with --allow-stale to run it as it is under the current budgets",
                old.info.revision,
                current.info.revision,
                current.info.pushed_by,
                changes(&old.plan, &current.plan)
            ));
        }
        Ok(())
    }
}

/// The first few of `names`, quoted, and how many more.
fn first_names(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    list_cut(&quoted, 5)
}

/// What changed between two revisions' budgets and hosts, named: `` `$colo.east` max_parallel
/// 3 -> 2 ``, `` group `$rack.r9` added ``, `2 hosts added (`web9`, `web10`)`.
pub fn changes(old: &Plan, new: &Plan) -> String {
    let diff = pogo_planner::diff(old, new);
    let mut said = Vec::new();
    let constraints = &diff.constraints;
    for limit in &constraints.limits {
        said.push(format!(
            "`{}` max_parallel {} -> {}",
            limit.group, limit.old.value, limit.new.value
        ));
    }
    for group in &constraints.added {
        said.push(format!(
            "group `{}` added (max_parallel {})",
            group.id, group.max_parallel.value
        ));
    }
    for group in &constraints.removed {
        said.push(format!("group `{}` removed", group.id));
    }
    for members in &constraints.members {
        let mut parts = Vec::new();
        if !members.entered.is_empty() {
            parts.push(format!("{} entered", plural(members.entered.len(), "host")));
        }
        if !members.left.is_empty() {
            parts.push(format!("{} left", plural(members.left.len(), "host")));
        }
        said.push(format!("`{}`: {}", members.group, parts.join(", ")));
    }
    let added: Vec<&str> = diff.hosts.added.iter().map(String::as_str).collect();
    if !added.is_empty() {
        said.push(format!(
            "{} added ({})",
            plural(added.len(), "host"),
            first_names(&added)
        ));
    }
    let removed: Vec<&str> = diff.hosts.removed.iter().map(String::as_str).collect();
    if !removed.is_empty() {
        said.push(format!(
            "{} removed ({})",
            plural(removed.len(), "host"),
            first_names(&removed)
        ));
    }
    if said.is_empty() {
        return match diff.is_empty() {
            true => "the budgets are the same, the config's text is not".to_string(),
            false => diff.summary(),
        };
    }
    let more = said.len().saturating_sub(NAMED_CHANGES);
    said.truncate(NAMED_CHANGES);
    let mut text = said.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {} more", plural(more, "change")));
    }
    text
}
