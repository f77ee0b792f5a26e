//! A fleet's budgets: its config compiled over all its hosts (spec `semantics.md` §8).
//!
//! The dispatcher keeps the config of each fleet; the constraint groups of the config,
//! computed over **every** host it lists, are the fleet's budgets, which hold every job on the
//! dispatcher whatever its plan says. They are computed here with the planner itself, so a
//! budget is exactly the group a plan of the whole fleet would have (a `max_parallel: 10%` is
//! 10% of the group's hosts in the fleet).

use std::collections::BTreeMap;

use pogo_model::{Plan, JOB_GROUP_ID};

use crate::compile::{compile, PlanRequest};
use crate::config::Config;
use crate::diag::PlanError;
use crate::resolve::Replay;

/// Compiles a fleet's config over all its hosts, with no command. External tags take their
/// hosts from `outputs` (what their commands printed on the operator's machine); nothing runs.
/// `name` is how messages name the config file; the plan's digests are those of any plan
/// compiled from the same text and inventory.
pub fn compile_fleet(
    name: &str,
    text: &str,
    outputs: &BTreeMap<String, String>,
) -> Result<Plan, PlanError> {
    let config = Config::parse_with(name, text, &Replay(outputs))?;
    let request = PlanRequest {
        config_name: name.to_string(),
        ..PlanRequest::default()
    };
    compile(&config, &request)
}

/// The budgets of a fleet plan ([`compile_fleet`]): its groups but the job-wide one.
pub fn budgets(plan: &Plan) -> impl Iterator<Item = &pogo_model::ConstraintSpec> {
    plan.constraints.iter().filter(|c| c.id != JOB_GROUP_ID)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "tag:\n  colo:\n    east: [e1, e2, e3, e4]\n    west: !command list-west\nconstraint:\n  $colo: { max_parallel: 50% }\n";

    #[test]
    fn budgets_are_the_groups_over_every_host_with_recorded_outputs() {
        let outputs = BTreeMap::from([("list-west".to_string(), "w1\nw2\n".to_string())]);
        let plan = compile_fleet("fleet.yaml", CONFIG, &outputs).unwrap();
        let budgets: Vec<(String, u64, Vec<String>)> = budgets(&plan)
            .map(|c| (c.id.clone(), c.max_parallel.value, c.hosts.clone()))
            .collect();
        let names = |hosts: &[&str]| hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(
            budgets,
            [
                (
                    "$colo.east".to_string(),
                    2,
                    names(&["e1", "e2", "e3", "e4"])
                ),
                ("$colo.west".to_string(), 1, names(&["w1", "w2"])),
            ]
        );
        assert_eq!(plan.hosts.len(), 6);
        assert!(plan.command.is_none());
    }

    #[test]
    fn a_command_whose_output_was_not_sent_is_an_error_not_a_run() {
        let error = compile_fleet("fleet.yaml", CONFIG, &BTreeMap::new()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("its output was not sent with the config"),
            "{error}"
        );
    }
}
