//! The pogo plan: the compiled, self-contained description of a rollout.
//!
//! A plan says who runs, in which order, under which limits, and what command. The planner
//! writes it, the executor and the dispatcher read it; none of them needs the fleet config
//! again. This crate owns the wire format (see `docs/plan-format.md`): the field order of the
//! structs below *is* the order of the keys in the file, so a `git diff` of two plans reads
//! naturally and the same plan always serialises to the same bytes.

mod digest;
mod host;
mod json;
mod read;
mod seal;
mod sketch;
mod validate;

use serde::{Deserialize, Serialize};

/// A hash map for host names and ids: foldhash, seeded per process (names come from inventory
/// commands: a fixed hash could be steered into collisions), much faster than SipHash on short
/// keys.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set, as [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub use digest::HashWriter;
pub use host::{host_name_problem, shown_host_name, MAX_HOST_NAME};
pub use read::PlanReadError;
pub use seal::{Seal, SealState, ALLOW_EDITED, ALLOW_STALE};
pub use validate::PlanInvariantError;

/// The plan format this pogo writes. Bump it on any change that an older reader would
/// misread; readers refuse a plan of a newer version with a clear message. Format 2 added
/// the [`Seal`]; later changes to format 2 add optional keys only.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest plan format this pogo reads: format 1 plans (no seal) are read as unsealed,
/// with a warning, so that runs and jobs of the previous release still resume.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// From how many hosts the planner and the seal hash a big part of a plan (the inventory
/// digest, the constraint groups' digest) on a second thread: below it, starting the thread
/// costs more than it saves.
pub const PARALLEL_HOSTS: usize = 20_000;

/// What an ad-hoc plan (`pogo run --targets ... --command ...`, no config) records as its
/// config: its hosts are the targets alone, unordered, under the job-wide limit.
pub const NO_CONFIG: &str = "none";

/// Id of the job-wide constraint group (`--concurrent`). Tag expressions always start with
/// `$`, so it cannot collide with a group that comes from the config.
pub const JOB_GROUP_ID: &str = "job";

/// A compiled rollout. Field order is the file's key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub format_version: u32,
    /// The program that wrote the plan, for example `pogo 0.1.0`.
    pub producer: String,
    pub source: SourceSpec,
    pub digests: Digests,
    /// The command to run on every host; a plan without one can be shown but not applied.
    pub command: Option<String>,
    pub options: RunOptions,
    /// Every target, exactly once, in plan order (the order in which ready hosts are preferred).
    pub hosts: Vec<String>,
    pub threads: Vec<ThreadSpec>,
    /// Targets in no slot of any thread: they run unordered, subject to constraints.
    pub unordered: Vec<String>,
    /// Targets the config does not name: also in `unordered`, limited only by the job group.
    pub not_in_config: Vec<String>,
    /// Tags whose hosts came from a command when the plan was made, with what it printed.
    pub external_tags: Vec<ExternalTagSpec>,
    pub constraints: Vec<ConstraintSpec>,
    /// "Must complete before" dependencies between slots.
    pub edges: Vec<EdgeSpec>,
    pub warnings: Vec<String>,
    /// Digests of every key above, written by the planner last (format 2; absent in format 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<Seal>,
}

/// Where the plan came from, as given on the command line (informational).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The config file, or `inline` when the plan spec carries the config itself.
    pub config: String,
    /// The plan spec file, when the plan was made from one.
    pub spec: Option<String>,
}

/// Digests that let a plan be refused as stale when its inputs changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digests {
    /// `sha256:` of the config file's bytes (of the canonical form of an inline config).
    pub config: String,
    /// `sha256:` of every tag's resolved members, so an inventory change is caught even when
    /// the config text is unchanged (external tag resolvers).
    pub inventory: String,
}

/// Run options recorded at plan time. The job-wide limit is not here: it is the constraint
/// group with id [`JOB_GROUP_ID`], so the executor treats it like any other group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// Per-host command timeout, in seconds (1 or more).
    #[serde(deserialize_with = "read::seconds")]
    pub timeout: u64,
    /// How many times a failed host is tried again.
    pub retries: u32,
    /// The run stops starting hosts once more than this many have failed.
    pub max_failures: Amount,
    /// Timeout of the whole run, in seconds; none when absent.
    #[serde(deserialize_with = "read::optional_seconds")]
    pub run_timeout: Option<u64>,
    /// The most a host's log keeps, in bytes; past it the rest is counted and dropped.
    /// Absent: 10 MiB (`pogo_executor::hostlog::DEFAULT_MAX_OUTPUT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<u64>,
    /// Run on each host before its command (drain it from a load balancer); a failure fails
    /// the host, and its command does not run. Runs again on a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The health check after the command, tried until it passes (spec `semantics.md` §9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    /// Run on each host once its command succeeded and `verify` passed (put it back); never
    /// after a failed phase, so a broken host stays out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl RunOptions {
    /// Whether a host's attempt is more than its command.
    pub fn has_phases(&self) -> bool {
        self.before.is_some() || self.verify.is_some() || self.after.is_some()
    }
}

/// A health check: `command` run after a host's command until it exits 0, every `every`
/// seconds, for at most `within` seconds in all; a host whose check never passes has failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    pub command: String,
    #[serde(deserialize_with = "read::seconds")]
    pub within: u64,
    #[serde(deserialize_with = "read::seconds")]
    pub every: u64,
}

impl Verify {
    /// `within` when none is given.
    pub const WITHIN: u64 = 60;
    /// `every` when none is given.
    pub const EVERY: u64 = 5;
}

/// A resolved limit: the number that applies, and the percentage and its base when the user
/// wrote a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub value: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
}

impl Amount {
    pub fn number(value: u64) -> Self {
        Amount {
            value,
            percent: None,
            base: None,
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.percent, self.base) {
            (Some(p), Some(b)) => write!(f, "{} ({p}% of {b})", self.value),
            _ => write!(f, "{}", self.value),
        }
    }
}

/// Limits lowered when a plan is applied (`pogo apply --concurrent N --max-failures M`). They
/// travel beside the sealed plan (a run's `run.json`, a job's submission) and never rewrite
/// it; [`Plan::lowered`] gives the plan a run actually follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoweredLimits {
    /// Replaces `options.max_failures`; never above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<Amount>,
    /// Replaces the `job` group's `max_parallel` (or adds a `job` group of every host to a
    /// plan without one); never above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<Amount>,
}

impl LoweredLimits {
    pub fn is_none(&self) -> bool {
        self.max_failures.is_none() && self.concurrent.is_none()
    }

    /// Why these limits would raise `plan`'s rather than lower them, if they would: a run
    /// can lower the limits a reviewer approved, never raise them.
    pub fn raises(&self, plan: &Plan) -> Option<String> {
        if let Some(given) = self.max_failures {
            if given.value > plan.options.max_failures.value {
                return Some(format!(
                    "max_failures {given} would raise the plan's ({})",
                    plan.options.max_failures
                ));
            }
        }
        match (self.concurrent, plan.constraint(JOB_GROUP_ID)) {
            (Some(given), _) if given.value == 0 => {
                Some("a job-wide limit of 0 would never let a host start".to_string())
            }
            (Some(given), Some(job)) if given.value > job.max_parallel.value => Some(format!(
                "a job-wide limit of {given} would raise the plan's ({})",
                job.max_parallel
            )),
            _ => None,
        }
    }

    /// These limits, then `later` where it gives one: what a resumed run keeps when it is
    /// lowered again.
    pub fn then(self, later: LoweredLimits) -> LoweredLimits {
        LoweredLimits {
            max_failures: later.max_failures.or(self.max_failures),
            concurrent: later.concurrent.or(self.concurrent),
        }
    }
}

/// A tag resolved by running a command (`tag: !command CMD` in the config). Recorded so a
/// reviewer sees where hosts came from; a plan never runs the command again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalTagSpec {
    /// The tag's dotted name, without `$`.
    pub tag: String,
    pub command: String,
    /// What the command printed, expanded, in order.
    pub hosts: Vec<String>,
}

/// One sequence: ordered slots that run one after another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadSpec {
    pub name: String,
    /// The tag expression every step was intersected with (mapping keys that start with `$`).
    pub filter: Option<String>,
    pub slots: Vec<SlotSpec>,
}

/// One step of a thread: the targeted hosts of that step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    /// `THREAD.STEP`, unique in the plan (a repeated step gets `#2`, `#3`...).
    pub id: String,
    /// The step as written in the config.
    pub step: String,
    pub hosts: Vec<String>,
    /// Run on the machine that drives the run once every host of the step has finished, with
    /// the step's hosts and results in its environment; the steps ordered after it wait until
    /// it exits 0, and a failure stops the run (spec `semantics.md` §9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// The steps ordered after it wait for an operator's approval (`pogo approve`), after the
    /// gate when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<Approval>,
}

impl SlotSpec {
    /// Whether the step's completion waits for a gate or an approval.
    pub fn is_gated(&self) -> bool {
        self.gate.is_some() || self.approve.is_some()
    }
}

/// An approval a step waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Seconds the step waits, from when its hosts have all finished; unapproved by then, the
    /// run stops (resumable). None: no limit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "read::optional_seconds"
    )]
    pub within: Option<u64>,
}

/// A group of hosts of which at most `max_parallel` may be down at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintSpec {
    /// The tag expression of the group (`$colo.one`, `$frontend.$colo.east`), or `job`.
    pub id: String,
    /// The constraint key it came from (`$colo` for its per-value groups), or `job`.
    pub from: String,
    pub max_parallel: Amount,
    /// The targeted members of the group, in plan order.
    pub hosts: Vec<String>,
}

/// Every host of slot `to` waits until slot `from` is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    pub from: String,
    pub to: String,
}

impl Plan {
    /// Reads a plan (see [`read`] for how strictly): its format version first, so that a plan
    /// of another version gets a message about versions rather than about some field, then
    /// every key, then its invariants. The seal is not checked here: [`Plan::seal_state`]
    /// says whether the plan was edited, and its callers decide what that means.
    pub fn from_json(text: &str) -> Result<Plan, PlanReadError> {
        read::plan(text)
    }

    /// The canonical text of the plan: pretty JSON, keys in struct order, one host per line,
    /// ending with a newline. Equal plans give identical bytes.
    pub fn to_json(&self) -> String {
        let mut text = Vec::new();
        self.write_json(&mut text)
            .expect("a plan always serialises into memory");
        String::from_utf8(text).expect("serde_json writes UTF-8")
    }

    /// Writes [`Plan::to_json`]'s text to `out` as it is made, without holding it all (a
    /// million hosts' plan is over 100 MB of text). Generic, not `dyn Write`: the JSON is
    /// written a few bytes at a time, and each write through a `dyn` was a call of its own.
    pub fn write_json<W: std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        json::write_pretty(out, self)?;
        out.write_all(b"\n")
    }

    /// The plan a run follows when `limits` were lowered at apply time: the same plan with
    /// `max_failures` and the `job` group replaced, and no seal (it is not what was sealed).
    /// Checking that the limits only lower the plan's is the caller's job.
    pub fn lowered(&self, limits: &LoweredLimits) -> Plan {
        let mut plan = self.clone();
        if limits.is_none() {
            return plan;
        }
        plan.seal = None;
        if let Some(amount) = limits.max_failures {
            plan.options.max_failures = amount;
        }
        if let Some(amount) = limits.concurrent {
            match plan.constraints.iter_mut().find(|c| c.id == JOB_GROUP_ID) {
                Some(job) => job.max_parallel = amount,
                None => plan.constraints.insert(
                    0,
                    ConstraintSpec {
                        id: JOB_GROUP_ID.to_string(),
                        from: JOB_GROUP_ID.to_string(),
                        max_parallel: amount,
                        hosts: plan.hosts.clone(),
                    },
                ),
            }
        }
        plan
    }

    /// The constraint group with this id, if any.
    pub fn constraint(&self, id: &str) -> Option<&ConstraintSpec> {
        self.constraints.iter().find(|c| c.id == id)
    }

    /// All slots of all threads, in thread order.
    pub fn slots(&self) -> impl Iterator<Item = (&ThreadSpec, &SlotSpec)> {
        self.threads
            .iter()
            .flat_map(|t| t.slots.iter().map(move |s| (t, s)))
    }
}
