//! The seal: how a plan shows that it is what `pogo plan` wrote.
//!
//! A plan is what a reviewer approved; what runs must be that plan. Since format 2 the
//! planner records, under `seal`, a SHA-256 digest of each of the plan's other top-level keys
//! (of the key's value as compact JSON, object keys sorted). A reader computes them again:
//! a plan whose content no longer matches is *edited*, and the keys that differ say where
//! (`command`, `constraints`...). Whitespace and key order do not count, since the digests
//! are of the parsed content, not of the file's bytes.
//!
//! The seal catches edits; it is not a signature: whoever edits a plan on purpose can also
//! compute a new seal. Pogo offers no command to do that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::HashWriter;
use crate::PARALLEL_HOSTS;
use crate::{ConstraintSpec, Plan, SlotSpec, ThreadSpec};

/// The override a run or a job records when it runs a plan whose seal does not match.
pub const ALLOW_EDITED: &str = "allow-edited";
/// The override a run or a job records when it runs a stale plan.
pub const ALLOW_STALE: &str = "allow-stale";

/// `sha256:` digests of the plan's top-level keys, by key name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seal(pub BTreeMap<String, String>);

/// Whether a plan is what its producer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealState {
    /// Its content matches its seal.
    Intact,
    /// A format 1 plan: plans had no seal then. It is read, with a warning.
    Legacy,
    /// A format 2 plan without its seal: the seal was removed, or another tool wrote it.
    Missing,
    /// The content does not match the seal: these keys differ, were added or removed.
    Edited { keys: Vec<String> },
}

impl SealState {
    pub fn is_intact(&self) -> bool {
        matches!(self, SealState::Intact)
    }

    /// What is wrong, for a warning or an error; `None` when intact.
    pub fn problem(&self) -> Option<String> {
        match self {
            SealState::Intact => None,
            SealState::Legacy => Some(
                "plan format 1 has no seal, so edits to it cannot be detected; compile it \
                 again with `pogo plan` to get a sealed plan"
                    .to_string(),
            ),
            SealState::Missing => Some(
                "the plan has no seal: it was not written by `pogo plan`, or its seal was \
                 removed"
                    .to_string(),
            ),
            SealState::Edited { keys } => Some(format!(
                "the plan was edited after `pogo plan` wrote it: {} {} not what was sealed",
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if keys.len() == 1 { "is" } else { "are" }
            )),
        }
    }
}

/// The digests of every top-level key but `seal`, one key at a time, each key's JSON written
/// straight into its hash: the whole plan as one JSON `Value` at once was the peak of planning
/// a big fleet, and the text of its host lists the next.
fn digests(plan: &Plan) -> BTreeMap<String, String> {
    // Every field named (no `..`): a key added to plans does not compile until it is sealed.
    let Plan {
        format_version,
        producer,
        source,
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
        warnings,
        seal: _,
    } = plan;
    // The groups' host lists, the biggest key of a big plan, are hashed on a second thread
    // while this one hashes the rest.
    let grouped: usize = constraints.iter().map(|g| g.hosts.len()).sum();
    let parallel = grouped >= PARALLEL_HOSTS;
    std::thread::scope(|scope| {
        let constraints_digest =
            parallel.then(|| scope.spawn(|| hash(|w| seq(w, constraints, constraint))));
        let mut digests: BTreeMap<String, String> = [
            ("format_version", hash(|w| sorted(w, format_version))),
            ("producer", hash(|w| sorted(w, producer))),
            ("source", hash(|w| sorted(w, source))),
            ("digests", hash(|w| sorted(w, digests))),
            ("command", hash(|w| sorted(w, command))),
            ("options", hash(|w| sorted(w, options))),
            ("hosts", hash(|w| strings(w, hosts))),
            ("threads", hash(|w| seq(w, threads, thread))),
            ("unordered", hash(|w| strings(w, unordered))),
            ("not_in_config", hash(|w| strings(w, not_in_config))),
            ("external_tags", hash(|w| sorted(w, external_tags))),
            ("edges", hash(|w| sorted(w, edges))),
            ("warnings", hash(|w| compact(w, warnings))),
        ]
        .into_iter()
        .map(|(key, digest)| (key.to_string(), digest))
        .collect();
        let constraints_digest = match constraints_digest {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => hash(|w| seq(w, constraints, constraint)),
        };
        digests.insert("constraints".to_string(), constraints_digest);
        digests
    })
}

/// `sha256:HEX` of what `write` writes: a key's value as compact JSON, the keys of its objects
/// sorted (as a `serde_json::Value` writes them), as every seal was made.
fn hash(write: impl FnOnce(&mut HashWriter)) -> String {
    let mut writer = HashWriter::default();
    write(&mut writer);
    writer.finish()
}

/// A value with no big lists in it, through a `Value` (whose maps sort their keys).
fn sorted<T: Serialize>(w: &mut HashWriter, value: &T) {
    let value = serde_json::to_value(value).expect("a plan always serialises");
    compact(w, &value);
}

/// A value with no object in it (or whose objects' keys are in order), as it is.
fn compact<T: Serialize + ?Sized>(w: &mut HashWriter, value: &T) {
    serde_json::to_writer(w, value).expect("a plan always serialises");
}

/// A list of strings as compact JSON, as `serde_json` writes it; a string that needs no
/// escape (a host name never does) goes straight to the hash, the rest through `serde_json`.
fn strings(w: &mut HashWriter, list: &[String]) {
    w.put(b"[");
    for (i, text) in list.iter().enumerate() {
        let comma: &[u8] = if i > 0 { b"," } else { b"" };
        // Without an early exit the loop has no branch per byte: host names are short.
        let escaped = text.bytes().fold(false, |any, b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if escaped {
            w.put(comma);
            compact(w, text);
        } else {
            w.put_quoted(comma, text.as_bytes());
        }
    }
    w.put(b"]");
}

fn seq<T>(w: &mut HashWriter, items: &[T], item: fn(&mut HashWriter, &T)) {
    w.put(b"[");
    for (i, value) in items.iter().enumerate() {
        if i > 0 {
            w.put(b",");
        }
        item(w, value);
    }
    w.put(b"]");
}

/// A thread's object, keys sorted: `filter`, `name`, `slots`.
fn thread(w: &mut HashWriter, thread: &ThreadSpec) {
    let ThreadSpec {
        name,
        filter,
        slots,
    } = thread;
    w.put(b"{\"filter\":");
    compact(w, filter);
    w.put(b",\"name\":");
    compact(w, name);
    w.put(b",\"slots\":");
    seq(w, slots, slot);
    w.put(b"}");
}

/// A slot's object, keys sorted: `approve` and `gate` when present, `hosts`, `id`, `step`.
fn slot(w: &mut HashWriter, slot: &SlotSpec) {
    let SlotSpec {
        id,
        step,
        hosts,
        gate,
        approve,
    } = slot;
    w.put(b"{");
    if let Some(approve) = approve {
        w.put(b"\"approve\":");
        sorted(w, approve);
        w.put(b",");
    }
    if let Some(gate) = gate {
        w.put(b"\"gate\":");
        compact(w, gate);
        w.put(b",");
    }
    w.put(b"\"hosts\":");
    strings(w, hosts);
    w.put(b",\"id\":");
    compact(w, id);
    w.put(b",\"step\":");
    compact(w, step);
    w.put(b"}");
}

/// A group's object, keys sorted: `from`, `hosts`, `id`, `max_parallel`.
fn constraint(w: &mut HashWriter, group: &ConstraintSpec) {
    let ConstraintSpec {
        id,
        from,
        max_parallel,
        hosts,
    } = group;
    w.put(b"{\"from\":");
    compact(w, from);
    w.put(b",\"hosts\":");
    strings(w, hosts);
    w.put(b",\"id\":");
    compact(w, id);
    w.put(b",\"max_parallel\":");
    sorted(w, max_parallel);
    w.put(b"}");
}

impl Plan {
    /// The plan with a seal of its current content: what the planner does last.
    pub fn sealed(mut self) -> Plan {
        self.seal = None;
        self.seal = Some(Seal(digests(&self)));
        self
    }

    /// Whether the plan's content is what its seal says.
    pub fn seal_state(&self) -> SealState {
        let Some(Seal(sealed)) = &self.seal else {
            return if self.format_version < 2 {
                SealState::Legacy
            } else {
                SealState::Missing
            };
        };
        let now = digests(self);
        let mut keys: Vec<String> = now
            .iter()
            .filter(|(key, digest)| sealed.get(*key) != Some(*digest))
            .map(|(key, _)| key.clone())
            .chain(sealed.keys().filter(|k| !now.contains_key(*k)).cloned())
            .collect();
        keys.sort();
        if keys.is_empty() {
            SealState::Intact
        } else {
            SealState::Edited { keys }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The digests as every seal was made: of the whole plan as one `Value`, key by key.
    fn digests_of_the_whole_value(plan: &Plan) -> BTreeMap<String, String> {
        let serde_json::Value::Object(map) = serde_json::to_value(plan).unwrap() else {
            unreachable!()
        };
        map.into_iter()
            .filter(|(key, _)| key != "seal")
            .map(|(key, value)| {
                let text = serde_json::to_string(&value).unwrap();
                (key, format!("sha256:{:x}", Sha256::digest(text.as_bytes())))
            })
            .collect()
    }

    #[test]
    fn the_digests_key_by_key_are_those_of_the_whole_plan() {
        let mut plan = Plan::sketch("web1 web2 db1")
            .with_thread("t", &["db1", "web1 web2"])
            .with_thread("u", &["web\"3", ""])
            .with_group("web", crate::Amount::number(1), "web1 web2");
        plan.warnings.push("a warning".into());
        plan.command = Some("echo \"$POGO_HOST\"".into());
        plan.threads[0].filter = Some("$role.web".into());
        plan.threads[0].slots[0].gate = Some("check \"it\"".into());
        plan.threads[0].slots[1].approve = Some(crate::Approval { within: Some(60) });
        plan.threads[1].slots[0].approve = Some(crate::Approval { within: None });
        plan.constraints[0].max_parallel = crate::Amount {
            value: 2,
            percent: Some(50),
            base: Some(4),
        };
        plan.external_tags.push(crate::ExternalTagSpec {
            tag: "role.web".into(),
            command: "inventory web".into(),
            hosts: vec!["web1".into()],
        });
        plan.edges.push(crate::EdgeSpec {
            from: "t.db1".into(),
            to: "u.x".into(),
        });
        plan.options.verify = Some(crate::Verify {
            command: "curl".into(),
            within: 60,
            every: 5,
        });
        assert_eq!(digests(&plan), digests_of_the_whole_value(&plan));
    }

    /// A plan big enough to hash its groups on a second thread has the digests of the
    /// whole plan too.
    #[test]
    fn a_big_plan_hashed_on_two_threads_has_the_same_digests() {
        let names: Vec<String> = (0..PARALLEL_HOSTS).map(|i| format!("h{i}")).collect();
        let all = names.join(" ");
        let plan = Plan::sketch(&all)
            .with_thread("t", &[&names[..10].join(" "), "h10"])
            .with_group("first", crate::Amount::number(3), &names[..100].join(" "))
            .with_job_limit(10);
        let grouped: usize = plan.constraints.iter().map(|g| g.hosts.len()).sum();
        assert!(grouped >= PARALLEL_HOSTS, "{grouped} hosts in groups");
        assert_eq!(digests(&plan), digests_of_the_whole_value(&plan));
    }

    /// The string lists written by hand are the bytes `serde_json` writes, for every
    /// character that it escapes or not.
    #[test]
    fn string_lists_are_written_as_serde_json_writes_them() {
        let mut list: Vec<String> = (0..0x2100_u32)
            .filter_map(char::from_u32)
            .map(|c| format!("web{c}1"))
            .collect();
        list.push(String::new());
        list.push("\u{10ffff}".into());
        for list in [&list[..], &list[..1], &[]] {
            let by_hand = hash(|w| strings(w, list));
            let by_serde = hash(|w| compact(w, list));
            assert_eq!(by_hand, by_serde);
        }
    }

    use super::*;
    use crate::Amount;
    use sha2::{Digest, Sha256};

    fn plan() -> Plan {
        Plan::sketch("a b c")
            .with_thread("t", &["a", "b"])
            .with_job_limit(2)
            .sealed()
    }

    #[test]
    fn a_sealed_plan_is_intact_after_a_round_trip_through_its_file() {
        let read = Plan::from_json(&plan().to_json()).unwrap();
        assert_eq!(read.seal_state(), SealState::Intact);
    }

    #[test]
    fn each_edit_names_the_key_it_touched() {
        let mut command = plan();
        command.command = Some("rm -rf /".into());
        let mut limit = plan();
        limit.constraints[0].max_parallel = Amount::number(1000);
        let mut edges = plan();
        edges.edges.clear();
        let mut group = plan();
        group.constraints.clear();
        let mut options = plan();
        options.options.retries = 3;
        for (edited, key) in [
            (command, "command"),
            (limit, "constraints"),
            (edges, "edges"),
            (group, "constraints"),
            (options, "options"),
        ] {
            assert_eq!(
                edited.seal_state(),
                SealState::Edited {
                    keys: vec![key.to_string()]
                }
            );
        }
    }

    #[test]
    fn a_removed_seal_and_a_format_1_plan_are_told_apart() {
        let mut removed = plan();
        removed.seal = None;
        assert_eq!(removed.seal_state(), SealState::Missing);
        removed.format_version = 1;
        assert_eq!(removed.seal_state(), SealState::Legacy);
    }

    #[test]
    fn a_seal_digest_for_a_key_the_plan_lacks_is_an_edit() {
        let mut extra = plan();
        extra
            .seal
            .as_mut()
            .unwrap()
            .0
            .insert("hooks".into(), "sha256:00".into());
        assert_eq!(
            extra.seal_state(),
            SealState::Edited {
                keys: vec!["hooks".to_string()]
            }
        );
    }
}
