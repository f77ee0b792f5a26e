//! Small plans written by hand, for tests, examples and tools that need a plan without a
//! config. Host lists are whitespace-separated names. Each step seals the plan again, as the
//! planner would: a field changed afterwards shows as an edit.
//!
//! ```
//! use pogo_model::Plan;
//! let plan = Plan::sketch("a b c u")
//!     .with_thread("t", &["a", "b c"])
//!     .with_job_limit(2);
//! assert_eq!(plan.unordered, ["u"]);
//! assert_eq!(plan.validate(), Ok(()));
//! ```

use crate::{
    Amount, Approval, ConstraintSpec, Digests, EdgeSpec, Plan, RunOptions, SlotSpec, SourceSpec,
    ThreadSpec, FORMAT_VERSION, JOB_GROUP_ID,
};

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

impl Plan {
    /// A plan of these hosts, in this plan order, all in the unordered lane, without limits,
    /// running `true`.
    pub fn sketch(hosts: &str) -> Plan {
        Plan::sketch_of(words(hosts))
    }

    /// [`Plan::sketch`] from a list of host names.
    pub fn sketch_of(hosts: Vec<String>) -> Plan {
        Plan {
            format_version: FORMAT_VERSION,
            producer: "sketch".into(),
            source: SourceSpec {
                config: "inline".into(),
                spec: None,
            },
            digests: Digests {
                config: String::new(),
                inventory: String::new(),
            },
            command: Some("true".into()),
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
            unordered: hosts.clone(),
            hosts,
            threads: Vec::new(),
            not_in_config: Vec::new(),
            external_tags: Vec::new(),
            constraints: Vec::new(),
            edges: Vec::new(),
            warnings: Vec::new(),
            seal: None,
        }
        .sealed()
    }

    /// Adds a thread whose slots `NAME.0`, `NAME.1`... hold these hosts, one after another;
    /// its hosts leave the unordered lane.
    pub fn with_thread(mut self, name: &str, slots: &[&str]) -> Plan {
        let slots: Vec<SlotSpec> = slots
            .iter()
            .enumerate()
            .map(|(i, hosts)| SlotSpec {
                id: format!("{name}.{i}"),
                step: hosts.to_string(),
                hosts: words(hosts),
                gate: None,
                approve: None,
            })
            .collect();
        for pair in slots.windows(2) {
            self.edges.push(EdgeSpec {
                from: pair[0].id.clone(),
                to: pair[1].id.clone(),
            });
        }
        self.unordered
            .retain(|h| !slots.iter().any(|s| s.hosts.contains(h)));
        self.threads.push(ThreadSpec {
            name: name.into(),
            filter: None,
            slots,
        });
        self.sealed()
    }

    /// Adds a constraint group of these hosts.
    pub fn with_group(mut self, id: &str, max_parallel: Amount, hosts: &str) -> Plan {
        self.constraints.push(ConstraintSpec {
            id: id.into(),
            from: id.into(),
            max_parallel,
            hosts: words(hosts),
        });
        self.sealed()
    }

    /// Adds the job-wide group over every host.
    pub fn with_job_limit(self, limit: u64) -> Plan {
        let hosts = self.hosts.join(" ");
        self.with_group(JOB_GROUP_ID, Amount::number(limit), &hosts)
    }

    pub fn with_max_failures(mut self, value: u64) -> Plan {
        self.options.max_failures = Amount::number(value);
        self.sealed()
    }

    /// Puts a gate after slot `slot` (`NAME.0`...).
    ///
    /// # Panics
    /// If the plan has no such slot.
    pub fn with_gate(mut self, slot: &str, command: &str) -> Plan {
        self.slot_mut(slot).gate = Some(command.to_string());
        self.sealed()
    }

    /// Makes slot `slot` wait for an approval, for at most `within` seconds when given.
    ///
    /// # Panics
    /// If the plan has no such slot.
    pub fn with_approval(mut self, slot: &str, within: Option<u64>) -> Plan {
        self.slot_mut(slot).approve = Some(Approval { within });
        self.sealed()
    }

    fn slot_mut(&mut self, id: &str) -> &mut SlotSpec {
        self.threads
            .iter_mut()
            .flat_map(|t| t.slots.iter_mut())
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no slot `{id}` in the sketch"))
    }
}
