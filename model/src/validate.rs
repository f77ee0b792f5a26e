//! Invariants every plan must hold before anything runs it.
//!
//! The planner only writes plans that hold them; the check is for plans edited by hand or
//! produced by other tools, so that the executor can trust what it reads and never hangs on a
//! dependency cycle or runs a host twice.

use crate::{FastMap, FastSet};

use crate::{host_name_problem, shown_host_name, Plan, FORMAT_VERSION, OLDEST_FORMAT_VERSION};

/// A broken plan invariant, described so that a person can find the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanInvariantError(String);

fn fail<T>(message: String) -> Result<T, PlanInvariantError> {
    Err(PlanInvariantError(message))
}

impl Plan {
    /// Checks that the plan is internally consistent: hosts listed once, every host placed
    /// exactly once (in slots or the unordered lane), references resolve, limits are positive,
    /// and the dependencies cannot form a cycle.
    pub fn validate(&self) -> Result<(), PlanInvariantError> {
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&self.format_version) {
            return fail(format!(
                "format_version is {}, expected {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}",
                self.format_version
            ));
        }
        if self.options.timeout == 0 || self.options.run_timeout == Some(0) {
            return fail("a timeout of 0 seconds would never let a command run".to_string());
        }
        let mut hosts = FastMap::with_capacity_and_hasher(self.hosts.len(), Default::default());
        for (index, host) in self.hosts.iter().enumerate() {
            if let Some(problem) = host_name_problem(host) {
                return fail(format!(
                    "hosts[{index}] `{}`: {problem}",
                    shown_host_name(host)
                ));
            }
            if hosts.insert(host.as_str(), index).is_some() {
                return fail(format!("host `{host}` is listed twice in `hosts`"));
            }
        }
        // `place` is made only for the error: not once for each host of a big plan.
        let known = |host: &str, place: &dyn Fn() -> String| -> Result<(), PlanInvariantError> {
            if hosts.contains_key(host) {
                Ok(())
            } else {
                fail(format!(
                    "{} names host `{host}`, which is not in `hosts`",
                    place()
                ))
            }
        };

        let mut slot_ids = FastSet::default();
        let mut sequenced = FastSet::default();
        for thread in &self.threads {
            let mut in_thread = FastSet::default();
            for slot in &thread.slots {
                if !slot_ids.insert(slot.id.as_str()) {
                    return fail(format!("slot id `{}` is used twice", slot.id));
                }
                for host in &slot.hosts {
                    known(host, &|| format!("slot `{}`", slot.id))?;
                    if !in_thread.insert(host.as_str()) {
                        return fail(format!(
                            "host `{host}` is in two slots of thread `{}`",
                            thread.name
                        ));
                    }
                    sequenced.insert(host.as_str());
                }
            }
        }
        let mut unordered = FastSet::default();
        for host in &self.unordered {
            known(host, &|| "the unordered lane".to_string())?;
            if sequenced.contains(host.as_str()) {
                return fail(format!(
                    "host `{host}` is both in a slot and in the unordered lane"
                ));
            }
            if !unordered.insert(host.as_str()) {
                return fail(format!("host `{host}` is twice in the unordered lane"));
            }
        }
        for host in &self.not_in_config {
            if !unordered.contains(host.as_str()) {
                return fail(format!(
                    "host `{host}` is in `not_in_config` but not in the unordered lane"
                ));
            }
        }
        if let Some(host) = self
            .hosts
            .iter()
            .find(|h| !sequenced.contains(h.as_str()) && !unordered.contains(h.as_str()))
        {
            return fail(format!(
                "host `{host}` is in no slot and not in the unordered lane"
            ));
        }

        let mut group_ids = FastSet::default();
        for group in &self.constraints {
            if !group_ids.insert(group.id.as_str()) {
                return fail(format!("constraint group `{}` is listed twice", group.id));
            }
            if group.max_parallel.value == 0 {
                return fail(format!(
                    "constraint group `{}` has max_parallel 0: nothing could ever run",
                    group.id
                ));
            }
            let mut members = FastSet::default();
            for host in &group.hosts {
                known(host, &|| format!("constraint group `{}`", group.id))?;
                if !members.insert(host.as_str()) {
                    return fail(format!(
                        "host `{host}` is twice in constraint group `{}`",
                        group.id
                    ));
                }
            }
        }

        for edge in &self.edges {
            for end in [&edge.from, &edge.to] {
                if !slot_ids.contains(end.as_str()) {
                    return fail(format!("an edge names slot `{end}`, which does not exist"));
                }
            }
        }
        self.check_acyclic()
    }

    /// Kahn's algorithm over slots and hosts: a host waits for every slot with an edge into a
    /// slot that holds it, and a slot completes only after each of its hosts and its
    /// predecessors. A cycle here
    /// would leave hosts waiting forever.
    fn check_acyclic(&self) -> Result<(), PlanInvariantError> {
        let mut index: FastMap<&str, usize> = FastMap::default();
        for (_, slot) in self.slots() {
            let next = index.len();
            index.insert(slot.id.as_str(), next);
        }
        let slot_count = index.len();
        let mut host_node: FastMap<&str, usize> = FastMap::default();
        let mut successors: Vec<Vec<usize>> = vec![Vec::new(); slot_count];
        let mut preds_of_slot: Vec<Vec<usize>> = vec![Vec::new(); slot_count];
        for edge in &self.edges {
            let (from, to) = (index[edge.from.as_str()], index[edge.to.as_str()]);
            preds_of_slot[to].push(from);
            // A slot is complete only once its predecessors are: an empty slot still passes
            // the order on, so a cycle through one is a cycle.
            successors[from].push(to);
        }
        for (_, slot) in self.slots() {
            let slot_node = index[slot.id.as_str()];
            for host in &slot.hosts {
                let node = *host_node.entry(host.as_str()).or_insert_with(|| {
                    successors.push(Vec::new());
                    successors.len() - 1
                });
                successors[node].push(slot_node);
                for &pred in &preds_of_slot[slot_node] {
                    successors[pred].push(node);
                }
            }
        }
        let mut indegree = vec![0usize; successors.len()];
        for next in successors.iter().flatten() {
            indegree[*next] += 1;
        }
        let mut queue: Vec<usize> = (0..successors.len())
            .filter(|&n| indegree[n] == 0)
            .collect();
        let mut seen = 0;
        while let Some(node) = queue.pop() {
            seen += 1;
            for &next in &successors[node] {
                indegree[next] -= 1;
                if indegree[next] == 0 {
                    queue.push(next);
                }
            }
        }
        if seen == successors.len() {
            return Ok(());
        }
        let stuck: Vec<&str> = self
            .slots()
            .map(|(_, s)| s.id.as_str())
            .filter(|id| indegree[index[id]] > 0)
            .collect();
        fail(format!(
            "the slot dependencies form a cycle, so these slots could never complete: {}",
            stuck.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::{EdgeSpec, Plan};

    /// Thread `one` runs h1, then an empty step, then h2; thread `two` runs h2, then h1.
    fn crossed_through_an_empty_slot() -> Plan {
        let text = r#"{
          "format_version": 1, "producer": "test",
          "source": {"config": "inline", "spec": null},
          "digests": {"config": "", "inventory": ""},
          "command": null,
          "options": {"timeout": 600, "retries": 0, "max_failures": {"value": 0}, "run_timeout": null},
          "hosts": ["h1", "h2"],
          "threads": [
            {"name": "one", "filter": null, "slots": [
              {"id": "one.h1", "step": "h1", "hosts": ["h1"]},
              {"id": "one.[]", "step": "[]", "hosts": []},
              {"id": "one.h2", "step": "h2", "hosts": ["h2"]}]},
            {"name": "two", "filter": null, "slots": [
              {"id": "two.h2", "step": "h2", "hosts": ["h2"]},
              {"id": "two.h1", "step": "h1", "hosts": ["h1"]}]}],
          "unordered": [], "not_in_config": [], "external_tags": [], "constraints": [],
          "edges": [], "warnings": []
        }"#;
        serde_json::from_str(text).unwrap()
    }

    fn edge(from: &str, to: &str) -> EdgeSpec {
        EdgeSpec {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn a_cycle_through_an_empty_slot_is_refused() {
        // The old check dropped the order at the empty slot and accepted this.
        let mut plan = crossed_through_an_empty_slot();
        plan.edges = vec![
            edge("one.h1", "one.[]"),
            edge("one.[]", "one.h2"),
            edge("two.h2", "two.h1"),
        ];
        let err = plan.validate().unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
    }

    #[test]
    fn the_same_threads_without_the_crossing_are_accepted() {
        let mut plan = crossed_through_an_empty_slot();
        plan.edges = vec![edge("one.h1", "one.[]"), edge("one.[]", "one.h2")];
        plan.validate().unwrap();
    }
}
