//! Invariants every plan must hold before anything runs it.
//!
//! The planner only writes plans that hold them; the check is for plans edited by hand or
//! produced by other tools, so that the executor can trust what it reads and never hangs on a
//! dependency cycle or runs a host twice.

use std::hash::BuildHasher;

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
        // Each host is looked up by name once where it is named; everything after works on
        // its index in `hosts`.
        let hosts = HostIndex::of(&self.hosts)?;
        // `place` is made only for the error: not once for each host of a big plan. Lists
        // follow plan order, mostly a run of `hosts` at a time: the host after the last one
        // found is tried before the index.
        let mut after = 0;
        let mut index_of =
            |host: &str, place: &dyn Fn() -> String| -> Result<usize, PlanInvariantError> {
                let found = match self.hosts.get(after) {
                    Some(next) if next == host => Some(after),
                    _ => hosts.get(&self.hosts, host),
                };
                match found {
                    Some(index) => {
                        after = index + 1;
                        Ok(index)
                    }
                    None => fail(format!(
                        "{} names host `{host}`, which is not in `hosts`",
                        place()
                    )),
                }
            };

        // Marks by host index: the number (from 1) of the thread, group... that last saw it.
        let mut seen_in = vec![0usize; self.hosts.len()];
        let mut sequenced = vec![false; self.hosts.len()];
        let mut slot_ids = FastSet::default();
        let mut slot_hosts: Vec<Vec<usize>> = Vec::new();
        for (number, thread) in self.threads.iter().enumerate() {
            for slot in &thread.slots {
                if !slot_ids.insert(slot.id.as_str()) {
                    return fail(format!("slot id `{}` is used twice", slot.id));
                }
                let mut indices = Vec::with_capacity(slot.hosts.len());
                for host in &slot.hosts {
                    let index = index_of(host, &|| format!("slot `{}`", slot.id))?;
                    if seen_in[index] == number + 1 {
                        return fail(format!(
                            "host `{host}` is in two slots of thread `{}`",
                            thread.name
                        ));
                    }
                    seen_in[index] = number + 1;
                    sequenced[index] = true;
                    indices.push(index);
                }
                slot_hosts.push(indices);
            }
        }
        let mut unordered = vec![false; self.hosts.len()];
        for host in &self.unordered {
            let index = index_of(host, &|| "the unordered lane".to_string())?;
            if sequenced[index] {
                return fail(format!(
                    "host `{host}` is both in a slot and in the unordered lane"
                ));
            }
            if unordered[index] {
                return fail(format!("host `{host}` is twice in the unordered lane"));
            }
            unordered[index] = true;
        }
        for host in &self.not_in_config {
            if !hosts
                .get(&self.hosts, host)
                .is_some_and(|index| unordered[index])
            {
                return fail(format!(
                    "host `{host}` is in `not_in_config` but not in the unordered lane"
                ));
            }
        }
        if let Some(host) = (0..self.hosts.len()).find(|&i| !sequenced[i] && !unordered[i]) {
            return fail(format!(
                "host `{}` is in no slot and not in the unordered lane",
                self.hosts[host]
            ));
        }

        let mut group_ids = FastSet::default();
        seen_in.fill(0);
        for (number, group) in self.constraints.iter().enumerate() {
            if !group_ids.insert(group.id.as_str()) {
                return fail(format!("constraint group `{}` is listed twice", group.id));
            }
            if group.max_parallel.value == 0 {
                return fail(format!(
                    "constraint group `{}` has max_parallel 0: nothing could ever run",
                    group.id
                ));
            }
            for host in &group.hosts {
                let index = index_of(host, &|| format!("constraint group `{}`", group.id))?;
                if seen_in[index] == number + 1 {
                    return fail(format!(
                        "host `{host}` is twice in constraint group `{}`",
                        group.id
                    ));
                }
                seen_in[index] = number + 1;
            }
        }

        for edge in &self.edges {
            for end in [&edge.from, &edge.to] {
                if !slot_ids.contains(end.as_str()) {
                    return fail(format!("an edge names slot `{end}`, which does not exist"));
                }
            }
        }
        self.check_acyclic(&slot_hosts)
    }

    /// Kahn's algorithm over slots and hosts: a host waits for every slot with an edge into a
    /// slot that holds it, and a slot completes only after each of its hosts and its
    /// predecessors. A cycle here would leave hosts waiting forever. `slot_hosts` are the
    /// indices (in `hosts`) of each slot's hosts, slots in plan order. Nodes are the slots,
    /// then the hosts; the edges are counted rather than listed: a slot's successors are the
    /// slots its edges lead to and the hosts of those, a host's the slots that hold it.
    fn check_acyclic(&self, slot_hosts: &[Vec<usize>]) -> Result<(), PlanInvariantError> {
        let mut index: FastMap<&str, usize> = FastMap::default();
        for (_, slot) in self.slots() {
            let next = index.len();
            index.insert(slot.id.as_str(), next);
        }
        let slot_count = index.len();
        let host_node = |host: usize| slot_count + host;
        let mut next_slots: Vec<Vec<usize>> = vec![Vec::new(); slot_count];
        let mut indegree = vec![0usize; slot_count + self.hosts.len()];
        for edge in &self.edges {
            let (from, to) = (index[edge.from.as_str()], index[edge.to.as_str()]);
            // A slot is complete only once its predecessors are: an empty slot still passes
            // the order on, so a cycle through one is a cycle.
            next_slots[from].push(to);
            indegree[to] += 1;
            for &host in &slot_hosts[to] {
                indegree[host_node(host)] += 1;
            }
        }
        // Which slots hold each host, as one list cut by host (a host is in a slot of each
        // thread at most).
        let mut starts = vec![0usize; self.hosts.len() + 1];
        for (slot, hosts) in slot_hosts.iter().enumerate() {
            indegree[slot] += hosts.len();
            for &host in hosts {
                starts[host + 1] += 1;
            }
        }
        for i in 0..self.hosts.len() {
            starts[i + 1] += starts[i];
        }
        let mut holders = vec![0usize; starts[self.hosts.len()]];
        let mut filled = starts.clone();
        for (slot, hosts) in slot_hosts.iter().enumerate() {
            for &host in hosts {
                holders[filled[host]] = slot;
                filled[host] += 1;
            }
        }

        let mut queue: Vec<usize> = (0..indegree.len()).filter(|&n| indegree[n] == 0).collect();
        let mut seen = 0;
        let mut release = |node: usize, queue: &mut Vec<usize>| {
            indegree[node] -= 1;
            if indegree[node] == 0 {
                queue.push(node);
            }
        };
        while let Some(node) = queue.pop() {
            seen += 1;
            if node < slot_count {
                for &next in &next_slots[node] {
                    release(next, &mut queue);
                    for &host in &slot_hosts[next] {
                        release(host_node(host), &mut queue);
                    }
                }
            } else {
                let host = node - slot_count;
                for &slot in &holders[starts[host]..starts[host + 1]] {
                    release(slot, &mut queue);
                }
            }
        }
        if seen == indegree.len() {
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

/// The index of each host of a plan's `hosts` by name: entries of 4 bytes (the host's
/// position) in a table sized once, names compared only on a match of the hash's tag.
struct HostIndex {
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl HostIndex {
    /// The index of `hosts`, refusing an invalid or repeated name.
    fn of(hosts: &[String]) -> Result<HostIndex, PlanInvariantError> {
        let hasher = foldhash::fast::RandomState::default();
        let mut table = hashbrown::HashTable::with_capacity(hosts.len());
        let rehash = |&i: &u32| hasher.hash_one(hosts[i as usize].as_str());
        for (index, host) in hosts.iter().enumerate() {
            if let Some(problem) = host_name_problem(host) {
                return fail(format!(
                    "hosts[{index}] `{}`: {problem}",
                    shown_host_name(host)
                ));
            }
            let hash = hasher.hash_one(host.as_str());
            match table.entry(hash, |&i| hosts[i as usize] == *host, rehash) {
                hashbrown::hash_table::Entry::Occupied(_) => {
                    return fail(format!("host `{host}` is listed twice in `hosts`"));
                }
                hashbrown::hash_table::Entry::Vacant(entry) => {
                    let index = u32::try_from(index).map_err(|_| {
                        PlanInvariantError(format!("a plan has at most {} hosts", u32::MAX))
                    })?;
                    entry.insert(index);
                }
            }
        }
        Ok(HostIndex { table, hasher })
    }

    /// Where `host` is in `hosts` (the list the index was made of).
    fn get(&self, hosts: &[String], host: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(host);
        self.table
            .find(hash, |&i| hosts[i as usize] == host)
            .map(|&i| i as usize)
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

    /// Hosts are found by name in any order (the next-host guess missing every time), and a
    /// name repeated in `hosts`, or missing from it, is refused.
    #[test]
    fn hosts_are_looked_up_by_name_in_any_order() {
        let names: Vec<String> = (0..2_000).map(|i| format!("h{i}")).collect();
        let reversed: Vec<&str> = names.iter().rev().map(String::as_str).collect();
        let plan = Plan::sketch(&names.join(" "))
            .with_thread("t", &[&reversed.join(" ")])
            .with_group("g", crate::Amount::number(1), &reversed[..999].join(" "));
        plan.validate().unwrap();

        let mut twice = plan.clone();
        twice.hosts[1500] = "h7".into();
        let err = twice.validate().unwrap_err().to_string();
        assert!(
            err.contains("host `h7` is listed twice in `hosts`"),
            "{err}"
        );

        let mut missing = plan.clone();
        missing.constraints[0].hosts[3] = "h2000".into();
        let err = missing.validate().unwrap_err().to_string();
        assert!(
            err.contains("names host `h2000`, which is not in `hosts`"),
            "{err}"
        );

        let mut not_unordered = plan;
        not_unordered.not_in_config.push("h5".into());
        let err = not_unordered.validate().unwrap_err().to_string();
        assert!(
            err.contains("`h5` is in `not_in_config` but not in the unordered"),
            "{err}"
        );
    }
}
