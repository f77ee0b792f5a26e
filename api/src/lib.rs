//! The dispatcher's HTTP API, version 1: every request and response body, as JSON.
//!
//! All paths start with `/v1`. Operators (certificate role `operator`) use:
//!
//! | Method and path                              | Body → answer                                |
//! |----------------------------------------------|----------------------------------------------|
//! | `POST /v1/jobs`                              | [`SubmitJob`] → [`JobSummary`] (201)         |
//! | `GET /v1/jobs`                               | → `[JobSummary]`, newest first               |
//! | `GET /v1/jobs/{job}`                         | → [`JobDetail`]                              |
//! | `GET /v1/jobs/{job}/plan`                    | → the job's plan (`pogo_model::Plan`)        |
//! | `GET /v1/jobs/{job}/why?hosts=H1,H2`         | → `[HostWhy]` (the heads without `hosts`)    |
//! | `GET /v1/jobs/{job}/events?after=N&follow=B` | → NDJSON of [`EventRecord`]                  |
//! | `GET /v1/jobs/{job}/output?host=H&after=N&follow=B&limit=L` | → NDJSON of [`OutputRecord`]  |
//! | `POST /v1/jobs/{job}/halt`                   | [`HaltJob`] → [`JobSummary`]                 |
//! | `POST /v1/jobs/{job}/resume`                 | [`ResumeJob`] → [`JobSummary`]               |
//! | `POST /v1/jobs/{job}/retry`                  | [`RetryJob`] → [`JobSummary`]                |
//! | `POST /v1/jobs/{job}/close`                  | `{}` → [`JobSummary`]                        |
//! | `POST /v1/jobs/{job}/approve`                | [`ApproveStep`] → [`JobSummary`]             |
//! | `GET /v1/workers`                            | → `[WorkerInfo]`                             |
//! | `GET /v1/fleets`                             | → `[FleetRevisionInfo]`, each fleet's current |
//! | `POST /v1/fleets/{fleet}`                    | [`PushFleet`] → [`FleetRevisionInfo`] (201)  |
//! | `GET /v1/fleets/{fleet}`                     | → `[FleetRevisionInfo]`, oldest first        |
//! | `GET /v1/fleets/{fleet}/revisions/{n}`       | → [`FleetRevision`], config and budgets      |
//!
//! Workers (role `worker`; the worker's name is its certificate's common name, never a field
//! of a body) use:
//!
//! | Method and path              | Body → answer                        |
//! |------------------------------|--------------------------------------|
//! | `POST /v1/worker/poll`       | [`Poll`] → [`Tasks`]                 |
//! | `POST /v1/worker/output`     | [`OutputChunk`] → 204                |
//! | `POST /v1/worker/results`    | [`Results`] → [`Accepted`]           |
//! | `POST /v1/worker/heartbeat`  | [`Heartbeat`] → [`HeartbeatReply`]   |
//!
//! Errors come as a status code and an [`ApiError`] body. Streams (`follow=true`) send one
//! JSON object per line as things happen and end when the job (or the host's task) has ended;
//! a client that lost one starts again with `after=` the last sequence number it saw. With
//! `limit=L` a stream sends at most L records and ends (a page; the next starts after the
//! last one's sequence number).
//!
//! `GET /ui/` and its files are the web dashboard, for operators (`pogo_remote::ui`).
//!
//! These bodies are a crate of their own, serde and the plan and event types alone, so that
//! what renders them (`pogo-views`) needs no server or client to do so.

use pogo_executor::events::Event;
use pogo_executor::phases::{Phase, Phases};
use pogo_executor::transport::TransportSpec;
pub use pogo_executor::why::{Holder, HostWhy, Why};
use pogo_model::{LoweredLimits, Plan};
use serde::{Deserialize, Serialize};

/// The path prefix of this version of the API.
pub const PREFIX: &str = "/v1";

/// A plan to run, as `pogo apply --dispatcher` sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The plan, as sealed: the dispatcher refuses one whose seal does not match unless
    /// `overrides` holds `allow-edited`.
    pub plan: Plan,
    /// Limits the operator lowered (`--concurrent`, `--max-failures`), beside the plan.
    /// Clients of the previous release lowered them in the plan itself and send none.
    #[serde(default, skip_serializing_if = "LoweredLimits::is_none")]
    pub limits: LoweredLimits,
    /// The checks the operator overrode (`allow-edited`, `allow-stale`), recorded in the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// How workers reach the hosts. Paths in it (identity, ssh config) are paths on the
    /// workers' machines.
    pub transport: TransportSpec,
    /// The pause before a retry, in milliseconds.
    pub retry_delay_ms: u64,
    /// The SSH password, when `transport` says there is one. The dispatcher keeps it in
    /// memory only; after a dispatcher restart the job waits until `resume` gives it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A random id the client makes once per job it means to submit, and sends again when it
    /// repeats the request (its answer was lost): the dispatcher then answers with the job it
    /// made the first time instead of making a second one, which would run every host again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<String>,
}

/// The override a job records when the operator lets it run hosts that are in no fleet of a
/// dispatcher that has fleets (`pogo apply --allow-unfleeted`).
pub const ALLOW_UNFLEETED: &str = "allow-unfleeted";

/// `POST /v1/fleets/{fleet}`: a new revision of a fleet's config (`pogo fleet push`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushFleet {
    /// The config file's text, as the plans compiled from it read it (its digest is theirs).
    pub config: String,
    /// How the operator named the file, for messages (`fleet.yaml`).
    pub config_name: String,
    /// What each external tag's command (`tag: !command CMD`) printed on the operator's
    /// machine, by command: the dispatcher never runs commands.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub outputs: std::collections::BTreeMap<String, String>,
}

/// One revision of a fleet's config, in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRevisionInfo {
    pub fleet: String,
    /// Numbered from 1 in the fleet.
    pub revision: u32,
    /// Whether it is the fleet's current revision (the others hold only the jobs that
    /// started under them).
    pub current: bool,
    /// `sha256:` of the config's text: a plan compiled from it records the same.
    pub digest: String,
    /// `sha256:` of the hosts behind its tags, as a plan records it.
    pub inventory: String,
    /// Seconds since the Unix epoch.
    pub pushed_at: u64,
    /// The operator who pushed it.
    pub pushed_by: String,
    pub config_name: String,
    pub hosts: usize,
    /// How many budgets (constraint groups) it has.
    pub budgets: usize,
}

/// A fleet's budget: one constraint group of its config, over all its hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetInfo {
    /// The group (`$colo.east`).
    pub group: String,
    /// The constraint it came from (`$colo`).
    pub from: String,
    pub max_parallel: pogo_model::Amount,
    pub hosts: Vec<String>,
}

/// `GET /v1/fleets/{fleet}/revisions/{n}`: a revision whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRevision {
    #[serde(flatten)]
    pub info: FleetRevisionInfo,
    pub config: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub outputs: std::collections::BTreeMap<String, String>,
    /// The config compiled over all the fleet's hosts (no command): its groups are the
    /// budgets, and `pogo fleet diff` compares two of them as it compares plans.
    pub plan: Plan,
    /// Its budgets (`info.budgets` counts them).
    pub groups: Vec<BudgetInfo>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Hosts are running or will start.
    Running,
    /// Halted or stopped by the failure budget: no host starts; running ones finish.
    Stopping,
    /// Waiting for the SSH password, which the dispatcher lost when it restarted: `pogo resume
    /// JOB` gives it again. Hosts that ran on go on.
    NeedsPassword,
    /// Every host succeeded.
    Succeeded,
    /// Every host ran; some failed.
    Failed,
    /// The job stopped (failure budget, halt, run timeout) or was blocked before every host
    /// ran: `resume` or `retry` continue it.
    Stopped,
}

impl JobState {
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Stopped
        )
    }

    pub fn word(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Stopping => "stopping",
            JobState::NeedsPassword => "needs password",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Stopped => "stopped",
        }
    }
}

/// Counts of hosts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub unreachable: usize,
    pub lost: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

impl Counts {
    /// Hosts that failed: failed, timed out, unreachable or lost.
    pub fn failures(&self) -> usize {
        self.failed + self.timed_out + self.unreachable + self.lost
    }

    /// Hosts that ended down (the failures and the cancelled): in a job that is not closed,
    /// each holds its place in its fleet budgets until it succeeds.
    pub fn ended_down(&self) -> usize {
        self.failures() + self.cancelled
    }
}

/// A job, in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// `job-YYYYMMDDTHHMMSSZ-xxxx`: a local run's id with `job-` in front, so that `pogo log` tells
    /// the two apart.
    pub id: String,
    pub state: JobState,
    pub command: String,
    pub hosts: usize,
    pub counts: Counts,
    /// Seconds since the Unix epoch.
    pub submitted_at: u64,
    /// The operator who submitted it (their certificate's common name).
    pub submitted_by: String,
    /// Why it stopped or is blocked, when it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The sequence number of its last event.
    pub last_event: u64,
    /// Closed by an operator (`pogo close`): its failed hosts count as down in no budget.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
    /// Who closed it (their certificate's common name), and when (seconds since the Unix
    /// epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<u64>,
    /// Steps it waits at for an operator's approval (`pogo approve JOB STEP`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<AwaitedApproval>,
}

/// A step a job waits at for an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitedApproval {
    pub step: String,
    /// Since when, in seconds since the Unix epoch.
    pub since: u64,
    /// For at most this many seconds from then, when there is a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<u64>,
}

/// One host of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub host: String,
    /// `pending`, `running`, `succeeded`, `failed`, `timed_out`, `unreachable`, `lost`,
    /// `skipped` or `cancelled`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Attempts of its last session (0 before its first), as its `host_finished` counts them:
    /// a retried host counts again from 1.
    pub attempts: u32,
    /// The worker running it, or that ran its last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// How it ended, for a person.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// How long its last attempt took, when known (local runs' journals say it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// `pogo approve JOB STEP`: the step the job waits at, approved by the caller (the name on
/// their certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveStep {
    pub step: String,
}

/// A job with its hosts, in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub host_states: Vec<HostEntry>,
    /// Why the head of each thread waits (the first host not started of its current step,
    /// then the unordered hosts' first), while the job runs. Omitted when none waits, and by
    /// dispatchers older than fleets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<HostWhy>,
}

/// The query of `GET /v1/jobs/{job}/why`: the hosts to explain, comma-separated; without
/// it, the heads of the job's threads (as [`JobDetail::waiting`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WhyQuery {
    #[serde(default)]
    pub hosts: Option<String>,
}

impl WhyQuery {
    /// The hosts asked about, `None` for the heads.
    pub fn hosts(&self) -> Option<Vec<String>> {
        self.hosts.as_ref().map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect()
        })
    }
}

/// `GET /v1/audit`: one operator action the dispatcher took (its audit trail), numbered
/// from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// Who: the name in the operator's certificate.
    pub by: String,
    /// From where: the address the request came from.
    pub from: String,
    /// `submit`, `halt`, `halt --kill`, `resume`, `retry`, `close`, `approve`, `fleet push`.
    pub action: String,
    /// The job it was about, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// What else says what was done: the hosts retried, the step approved, the fleet and
    /// revision pushed, the job's size and command.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One event of a job's stream: the executor's event, numbered from 1 in the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The query of a stream (`GET /v1/jobs/{job}/events` and `.../output`): the records after
/// sequence number `after`; with `follow`, new ones as they come until the job (or the host)
/// ends; with `limit`, at most that many, then the answer ends (a page: the next one starts
/// after its last record).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    pub after: u64,
    #[serde(default)]
    pub follow: bool,
    /// Output of this host only.
    pub host: Option<String>,
    pub limit: Option<usize>,
}

impl StreamQuery {
    /// A page: one read answers, and the stream ends.
    pub fn is_paged(&self) -> bool {
        self.limit.is_some()
    }

    /// Whether the stream goes on as records come (never for a page).
    pub fn follows(&self) -> bool {
        self.follow && !self.is_paged()
    }

    /// How many records one read takes: `most`, or fewer when the client asked for fewer.
    pub fn page_size(&self, most: usize) -> usize {
        self.limit.map_or(most, |limit| limit.clamp(1, most))
    }
}

/// One line of a host's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Numbered from 1 in the job.
    pub seq: u64,
    pub host: String,
    pub attempt: u32,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line, invalid UTF-8 replaced.
    pub text: String,
}

/// `POST /v1/jobs/{job}/halt`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaltJob {
    /// Also kill the commands that run (workers are told at their next heartbeat).
    #[serde(default)]
    pub kill: bool,
}

/// `POST /v1/jobs/{job}/resume`: hosts not run yet run; failed ones stay failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `POST /v1/jobs/{job}/retry`: like resume, and the named failed (or lost, timed-out,
/// unreachable, cancelled) hosts run again; every failed host when `hosts` is empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryJob {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A worker, as the dispatcher sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its certificate's common name.
    pub name: String,
    /// Whether it heartbeats.
    pub connected: bool,
    /// Milliseconds since it was last heard from.
    pub last_seen_ms: u64,
    pub capacity: u32,
    /// Tasks it runs now.
    pub running: usize,
    /// Tasks it finished since the dispatcher started.
    pub finished: u64,
}

/// `POST /v1/worker/poll`: waits up to `wait_ms` for up to `free` tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// How many more tasks the worker can run now.
    pub free: u32,
    /// Its whole capacity (shown by `pogo workers`).
    pub capacity: u32,
    pub wait_ms: u64,
    /// What it can do beyond running a command: [`FEATURE_PHASES`], [`FEATURE_GATES`].
    /// Workers of the previous release send none, and get no task of a job with phases (they
    /// would run the command alone) and no gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// A worker runs a task's `before`, `verify` and `after` around its command.
pub const FEATURE_PHASES: &str = "phases";

/// A worker runs gates: a task with a [`Task::gate`] runs its command on the worker itself.
pub const FEATURE_GATES: &str = "gates";

/// The gate after a step, run by a worker (spec `semantics.md` §9): `sh -c COMMAND` on the
/// worker's own machine, with `env` added to its environment (`POGO_STEP`,
/// `POGO_STEP_HOSTS`, `POGO_STEP_RESULTS`, ...). Its exit code decides: 0 passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateTask {
    /// The step (slot id) it comes after.
    pub step: String,
    pub env: Vec<(String, String)>,
}

/// One attempt of one host of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// `JOB/HOST_INDEX/ATTEMPT`: a result carries it, and is applied once however often it is
    /// delivered.
    pub id: String,
    pub job: String,
    pub host: String,
    pub attempt: u32,
    pub command: String,
    /// Per attempt; `None` for none.
    pub timeout_ms: Option<u64>,
    pub transport: TransportSpec,
    /// The SSH password, when the job has one: held in the worker's memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The most of the task's output the worker uploads, in bytes (the plan's `max_output`);
    /// past it, the rest is counted and dropped with a marker line. Dispatchers of the
    /// previous release send none: then 10 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<u64>,
    /// What the attempt runs around the command (only to workers with [`FEATURE_PHASES`]).
    #[serde(default, skip_serializing_if = "Phases::is_empty")]
    pub phases: Phases,
    /// Set for a gate, not a host's attempt (only to workers with [`FEATURE_GATES`]): its
    /// id is `JOB/gate/SLOT/N`, `host` is empty, `command` is the gate's and `transport` is
    /// not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateTask>,
}

/// Tasks handed to a worker; it must run each (they are recorded as started).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    pub tasks: Vec<Task>,
}

/// Output lines of a task, in order. `chunk` numbers the worker's chunks of the task from 1,
/// so a chunk sent twice is stored once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputChunk {
    pub task: String,
    pub chunk: u64,
    pub lines: Vec<OutputLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputLine {
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: String,
}

/// How an attempt ended, as a worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TaskOutcome {
    /// The command ran and exited with this code (`128 + N` for signal N).
    Exited {
        exit_code: i32,
    },
    TimedOut,
    /// Killed because the operator halted with kill.
    Cancelled,
    /// The host could not be reached; the command did not run.
    Unreachable,
}

// Not `deny_unknown_fields`: serde cannot combine it with `flatten`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task: String,
    #[serde(flatten)]
    pub outcome: TaskOutcome,
    pub duration_ms: u64,
    /// How it ended, for a person (`exit code 3`, `timed out; the command was killed`).
    pub message: String,
    /// How many output chunks the worker sent for the task, so the dispatcher can tell
    /// whether it has all of them.
    pub chunks: u64,
    /// The phase that failed, when it was not the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    pub results: Vec<TaskResult>,
}

/// The ids of the results the dispatcher has now (applied now, or before): the worker can
/// forget them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Accepted {
    pub tasks: Vec<String>,
}

/// A worker's heartbeat: it is alive, and runs these tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub capacity: u32,
    pub running: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Tasks to kill now (the operator halted with kill).
    pub cancel: Vec<String>,
    /// How often the dispatcher wants heartbeats, in milliseconds.
    pub interval_ms: u64,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's detail as the previous release's dispatcher answered it, before hosts had a
    /// `duration_ms`: read as it was, and a host without one is written as it was.
    #[test]
    fn a_detail_from_before_host_durations_still_reads_and_writes_the_same() {
        let old = r#"{"id":"job-20261124T230102Z-3f9a","state":"running","command":"true",
            "hosts":1,"counts":{"pending":0,"running":1,"succeeded":0,"failed":0,
            "timed_out":0,"unreachable":0,"lost":0,"skipped":0,"cancelled":0},
            "submitted_at":1795561262,"submitted_by":"alice","last_event":2,
            "host_states":[{"host":"web1","state":"running","attempts":1,"worker":"w1"}]}"#;
        let detail: JobDetail = serde_json::from_str(old).unwrap();
        assert_eq!(detail.host_states[0].duration_ms, None);
        let again = serde_json::to_value(&detail.host_states[0]).unwrap();
        assert_eq!(
            again,
            serde_json::json!({"host": "web1", "state": "running", "attempts": 1, "worker": "w1"})
        );
        let mut host = detail.host_states[0].clone();
        host.duration_ms = Some(850);
        let text = serde_json::to_string(&host).unwrap();
        assert!(text.contains(r#""duration_ms":850"#), "{text}");
    }
}
