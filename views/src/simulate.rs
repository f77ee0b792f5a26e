//! The views of `pogo simulate`: tables for a reviewer and a JSON document for tools (keys
//! documented in `docs/simulate.md`), rendered from the executor's [`Simulation`] of a plan.

use comfy_table::Cell;
use pogo_executor::scheduler::{Blocker, HostIdx, HostState, StopReason, Tally};
use pogo_executor::simulate::{
    PathStep, SimulatedEnd, Simulation, SimulationPolicy, WaitedFor, Wave,
};
use pogo_model::{Plan, JOB_GROUP_ID};

use crate::text::{counted, host_list, list_cut, new_table, plural, render};

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// Tables longer than this many rows show their first and last halves unless `--full`.
const ROWS_SHOWN: usize = 30;

pub fn text(
    plan: &Plan,
    source: &str,
    policy: &SimulationPolicy,
    sim: &Simulation,
    full: bool,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Simulated run of {source}: {}, {}\n",
        plural(plan.hosts.len(), "host"),
        durations(plan, policy)
    ));
    out.push_str(&format!(
        "Failing: {}; max_failures {}",
        if policy.failing.is_empty() {
            "none".to_string()
        } else {
            let names: Vec<String> = names(plan, policy.failing.iter().copied());
            format!("{} ({})", policy.failing.len(), list_cut(&names, 10))
        },
        match policy.overrides.max_failures {
            Some(n) if n != plan.options.max_failures.value => {
                format!("{n} (lowered from {})", plan.options.max_failures)
            }
            _ => plan.options.max_failures.to_string(),
        }
    ));
    if let Some(limit) = policy.overrides.concurrent {
        match plan.constraint(JOB_GROUP_ID) {
            Some(job) if job.max_parallel.value == limit => {}
            Some(job) => out.push_str(&format!(
                "; job-wide limit {limit} (lowered from {})",
                job.max_parallel
            )),
            None => out.push_str(&format!("; job-wide limit {limit} (the plan has none)")),
        }
    }
    out.push('\n');
    out.push('\n');
    out.push_str(&format!("Outcome: {}\n", outcome(plan, sim)));
    out.push_str(&format!(
        "Makespan: {} ({})\n",
        span(sim.makespan_ms),
        clock(sim.makespan_ms)
    ));
    out.push_str(&format!(
        "\nTimeline: hosts starting in each {} window\n",
        span(sim.wave_ms)
    ));
    if sim.waves.is_empty() {
        out.push_str("(no host started)\n");
    } else {
        out.push_str(&wave_table(plan, sim, full));
    }

    out.push_str("\nLimits: most hosts down at once (running, or failed and so kept down)\n");
    out.push_str(&limits_table(sim));

    out.push_str(&format!(
        "\nCritical path: {}, {}; each waited for the one before it\n",
        plural(sim.critical_path.len(), "host"),
        span(sim.makespan_ms)
    ));
    if sim.critical_path.is_empty() {
        out.push_str("(no host started)\n");
    } else {
        out.push_str(&path_table(plan, sim, full));
    }
    out
}

/// `30s each`, `30s ±50% (seed 1)`, and the timeout and retries when they matter.
fn durations(plan: &Plan, policy: &SimulationPolicy) -> String {
    let mut text = span(policy.duration_ms);
    if policy.jitter_percent > 0 {
        text.push_str(&format!(
            " ±{}% (seed {})",
            policy.jitter_percent, policy.seed
        ));
    }
    text.push_str(" per host");
    if policy.before_ms > 0 || policy.after_ms > 0 {
        text.push_str(&format!(
            " (plus {} before it, {} of verify and after once it succeeded)",
            span(policy.before_ms),
            span(policy.after_ms)
        ));
    }
    let gated = plan.slots().any(|(_, slot)| slot.is_gated());
    if gated {
        text.push_str(&format!(
            "; gates pass {}, approvals come {}",
            if policy.gate_ms == 0 {
                "at once".to_string()
            } else {
                format!("after {}", span(policy.gate_ms))
            },
            if policy.approval_ms == 0 {
                "at once".to_string()
            } else {
                format!("after {}", span(policy.approval_ms))
            }
        ));
    }
    let timeout = plan.options.timeout.saturating_mul(1000);
    let longest = policy.duration_ms + policy.duration_ms * u64::from(policy.jitter_percent) / 100;
    if longest > timeout {
        text.push_str(&format!(", cut by the timeout ({})", span(timeout)));
    }
    if plan.options.retries > 0 {
        let retries = plan.options.retries;
        text.push_str(&format!(
            ", {retries} {} {} for a host that does not succeed",
            if retries == 1 { "retry" } else { "retries" },
            if policy.retry_delay_ms == 0 {
                "at once".to_string()
            } else {
                format!("after {}", span(policy.retry_delay_ms))
            }
        ));
    }
    if let Some(limit) = plan.options.run_timeout {
        text.push_str(&format!(
            ", run timeout {}",
            span(limit.saturating_mul(1000))
        ));
    }
    text
}

fn outcome(plan: &Plan, sim: &Simulation) -> String {
    let tally = tally(&sim.tally);
    match &sim.end {
        SimulatedEnd::Complete => format!("complete: {tally}"),
        SimulatedEnd::Stopped { reason, at_ms } => {
            format!(
                "stopped at {} {}; {tally}",
                clock(*at_ms),
                stop_reason(reason)
            )
        }
        SimulatedEnd::Blocked { blockers, at_ms } => {
            let mut text = format!(
                "blocked at {}: the hosts left can never start; {tally}",
                clock(*at_ms)
            );
            for blocker in blockers {
                text.push_str(&format!("\n  - {}", blocker.describe(&plan.hosts)));
            }
            text
        }
        SimulatedEnd::RunTimeout { at_ms } => format!(
            "halted at {} by the run timeout, killing the commands still running; {tally}",
            clock(*at_ms)
        ),
    }
}

fn stop_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::FailureBudget {
            failures,
            max_failures,
        } => format!(
            "by the failure budget: {}, more than max_failures ({max_failures})",
            plural(*failures, "failure")
        ),
        StopReason::Halted => format!("as {reason}"),
        StopReason::RunTimeout => "by the run timeout".to_string(),
        StopReason::GateFailed { .. } | StopReason::ApprovalExpired { .. } => {
            format!("because {reason}")
        }
    }
}

/// `7 succeeded, 2 failed`: the states some host ended in.
fn tally(t: &Tally) -> String {
    let text = counted(&[
        (t.succeeded, "succeeded"),
        (t.failed, "failed"),
        (t.timed_out, "timed out"),
        (t.unreachable, "unreachable"),
        (t.cancelled, "cancelled"),
        (t.skipped, "skipped"),
    ]);
    if text.is_empty() {
        "no hosts".to_string()
    } else {
        text
    }
}

fn names(plan: &Plan, hosts: impl IntoIterator<Item = HostIdx>) -> Vec<String> {
    hosts
        .into_iter()
        .map(|h| plan.hosts[h.index()].clone())
        .collect()
}

fn slot_label(slots: &[String]) -> String {
    if slots.is_empty() {
        "(unordered)".to_string()
    } else {
        slots.join(" + ")
    }
}

/// One row per wave; when there are more than [`ROWS_SHOWN`], consecutive waves that start
/// hosts of the same slots share a row, so a long step under a limit reads as one line, not
/// hundreds.
fn wave_table(plan: &Plan, sim: &Simulation, full: bool) -> String {
    let mut rows: Vec<(usize, usize)> = Vec::new();
    let merge = sim.waves.len() > ROWS_SHOWN;
    for (i, wave) in sim.waves.iter().enumerate() {
        match rows.last_mut() {
            Some((first, last)) if merge && same_slots(&sim.waves[*first], wave) => *last = i,
            _ => rows.push((i, i)),
        }
    }
    let mut table = new_table();
    table.set_header(vec!["Wave", "Starts", "Slot", "Hosts", "Started"]);
    for row in cut(&rows, full) {
        let Some(&(first, last)) = row else {
            table.add_row(cut_marker(rows.len()));
            continue;
        };
        let waves = &sim.waves[first..=last];
        let starts: Vec<u64> = waves
            .iter()
            .flat_map(Wave::hosts)
            .filter_map(|h| sim.hosts[h.index()].start_ms)
            .collect();
        let (from, to) = (starts[0], starts[starts.len() - 1]);
        let label = if first == last {
            (first + 1).to_string()
        } else {
            format!("{}-{}", first + 1, last + 1)
        };
        let when = if from == to {
            clock(from)
        } else {
            format!("{}-{}", clock(from), clock(to))
        };
        // The lanes of these waves, merged, in the order they first started a host.
        let mut lanes: Vec<(&[String], Vec<HostIdx>)> = Vec::new();
        for lane in waves.iter().flat_map(|w| &w.lanes) {
            match lanes
                .iter_mut()
                .find(|(slots, _)| *slots == lane.slots.as_slice())
            {
                Some((_, hosts)) => hosts.extend(&lane.hosts),
                None => lanes.push((&lane.slots, lane.hosts.clone())),
            }
        }
        for (i, (slots, hosts)) in lanes.iter().enumerate() {
            let (label, when) = if i == 0 {
                (label.clone(), when.clone())
            } else {
                (String::new(), String::new())
            };
            table.add_row(vec![
                Cell::new(label),
                Cell::new(when),
                Cell::new(slot_label(slots)),
                Cell::new(hosts.len()),
                Cell::new(short_list(&names(plan, hosts.iter().copied()), full)),
            ]);
        }
    }
    format!("{}\n", render(&mut table))
}

/// Host lists in the timeline are cut shorter than elsewhere: a wave is read by its slot and
/// count, the names only say where it begins.
const WAVE_HOSTS_SHOWN: usize = 4;

fn short_list(hosts: &[String], full: bool) -> String {
    if full || hosts.len() <= WAVE_HOSTS_SHOWN {
        host_list(hosts, full)
    } else {
        format!(
            "{}, ... (+{} more)",
            hosts[..WAVE_HOSTS_SHOWN].join(", "),
            hosts.len() - WAVE_HOSTS_SHOWN
        )
    }
}

fn same_slots(a: &Wave, b: &Wave) -> bool {
    let mut a: Vec<&Vec<String>> = a.lanes.iter().map(|l| &l.slots).collect();
    let mut b: Vec<&Vec<String>> = b.lanes.iter().map(|l| &l.slots).collect();
    a.sort();
    b.sort();
    a == b
}

/// The rows to show: all of them, or the first and last halves of [`ROWS_SHOWN`] with `None`
/// where the others were.
fn cut<T>(rows: &[T], full: bool) -> Vec<Option<&T>> {
    if full || rows.len() <= ROWS_SHOWN {
        return rows.iter().map(Some).collect();
    }
    let half = ROWS_SHOWN / 2;
    let mut shown: Vec<Option<&T>> = rows[..half].iter().map(Some).collect();
    shown.push(None);
    shown.extend(rows[rows.len() - half..].iter().map(Some));
    shown
}

/// The row that stands for the rows [`cut`] left out of a table of `total` rows.
fn cut_marker(total: usize) -> Vec<Cell> {
    vec![
        Cell::new("..."),
        Cell::new(""),
        Cell::new(format!(
            "({} more rows; --full shows them)",
            total - ROWS_SHOWN
        )),
    ]
}

fn limits_table(sim: &Simulation) -> String {
    let mut table = new_table();
    table.set_header(vec![
        "Group",
        "max_parallel",
        "Hosts",
        "Peak",
        "First at",
        "Full for",
    ]);
    for group in &sim.groups {
        let (limit, full) = match group.max_parallel {
            Some(limit) => (limit.to_string(), full_for(group.full_ms, sim.makespan_ms)),
            None => ("none".to_string(), "-".to_string()),
        };
        table.add_row(vec![
            Cell::new(&group.id),
            Cell::new(limit),
            Cell::new(group.members),
            Cell::new(group.peak),
            Cell::new(if group.peak == 0 {
                "-".to_string()
            } else {
                clock(group.peak_at_ms)
            }),
            Cell::new(full),
        ]);
    }
    format!("{}\n", render(&mut table))
}

/// `never`, or how long and which share of the run.
fn full_for(full_ms: u64, makespan_ms: u64) -> String {
    if full_ms == 0 {
        return "never".to_string();
    }
    // Rounded, but a group full for most of the run is not said to be full for all of it.
    let mut percent = (full_ms * 100 + makespan_ms / 2) / makespan_ms.max(1);
    if percent == 100 && full_ms < makespan_ms {
        percent = 99;
    }
    format!("{} ({percent}%)", span(full_ms))
}

/// Consecutive steps that waited for room in the same group, in the same slots, are one row:
/// hosts going through a limit one batch after another.
fn path_table(plan: &Plan, sim: &Simulation, full: bool) -> String {
    let path = &sim.critical_path;
    let mut rows: Vec<(usize, usize)> = Vec::new();
    for (i, step) in path.iter().enumerate() {
        match rows.last_mut() {
            Some((first, last))
                if matches!(step.waited_for, WaitedFor::Room { .. })
                    && path[*first].waited_for == step.waited_for
                    && path[*first].slots == step.slots =>
            {
                *last = i
            }
            _ => rows.push((i, i)),
        }
    }
    let mut table = new_table();
    table.set_header(vec!["Start", "End", "Host", "Slot", "Waited for"]);
    for row in cut(&rows, full) {
        let Some(&(first, last)) = row else {
            table.add_row(cut_marker(rows.len()));
            continue;
        };
        let steps = &path[first..=last];
        let hosts = names(plan, steps.iter().map(|s| s.host));
        let host = if hosts.len() == 1 {
            hosts[0].clone()
        } else {
            format!(
                "{} one after another:\n{}",
                plural(hosts.len(), "host"),
                host_list(&hosts, full)
            )
        };
        table.add_row(vec![
            Cell::new(clock(steps[0].start_ms)),
            Cell::new(clock(steps[steps.len() - 1].end_ms)),
            Cell::new(host),
            Cell::new(slot_label(&steps[0].slots)),
            Cell::new(waited_for(&steps[0])),
        ]);
    }
    format!("{}\n", render(&mut table))
}

fn waited_for(step: &PathStep) -> String {
    match &step.waited_for {
        WaitedFor::Start => "nothing: it started with the run".to_string(),
        WaitedFor::Slot { slot } => format!("slot {slot} to complete"),
        WaitedFor::Room { group } => format!("room in {group}"),
        WaitedFor::Gate { slot, wait_ms } => {
            format!("the gate or approval after {slot} ({})", span(*wait_ms))
        }
    }
}

/// A point of the run: `H:MM:SS`, with tenths of a second when it is not a whole second.
fn clock(ms: u64) -> String {
    let tenths = ms.saturating_add(50) / 100;
    let (seconds, tenth) = (tenths / 10, tenths % 10);
    let hms = format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if tenth == 0 {
        hms
    } else {
        format!("{hms}.{tenth}")
    }
}

/// A length of time: `30s`, `2m`, `1m30s`, `26h02m30s`, `45.5s`.
fn span(ms: u64) -> String {
    let tenths = ms.saturating_add(50) / 100;
    let (seconds, tenth) = (tenths / 10, tenths % 10);
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 || (h > 0 && (s > 0 || tenth > 0)) {
        text.push_str(&if h > 0 {
            format!("{m:02}m")
        } else {
            format!("{m}m")
        });
    }
    if s > 0 || tenth > 0 || text.is_empty() {
        text.push_str(&if text.is_empty() {
            format!("{s}")
        } else {
            format!("{s:02}")
        });
        if tenth > 0 {
            text.push_str(&format!(".{tenth}"));
        }
        text.push('s');
    }
    text
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// Version of the JSON document below; bumped when a key is removed or changes meaning.
const JSON_FORMAT_VERSION: u32 = 1;

/// `pogo simulate --format json`. Field order is key order; `docs/simulate.md` documents
/// every key. Times are integers in milliseconds from the start of the run.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    format_version: u32,
    plan: &'a str,
    settings: JsonSettings,
    outcome: JsonOutcome,
    makespan_ms: u64,
    tally: JsonTally,
    wave_ms: u64,
    waves: Vec<JsonWave>,
    groups: Vec<JsonGroup<'a>>,
    critical_path: Vec<JsonStep<'a>>,
    hosts: Vec<JsonHost<'a>>,
}

#[derive(serde::Serialize)]
struct JsonSettings {
    duration_ms: u64,
    jitter_percent: u32,
    seed: u64,
    fail: Vec<String>,
    /// In force: the plan's, or lower.
    max_failures: u64,
    /// `--concurrent`, when given.
    concurrent: Option<u64>,
    timeout_ms: u64,
    retries: u32,
    retry_delay_ms: u64,
    /// The plan's run timeout, or `null`.
    run_timeout_ms: Option<u64>,
    /// Each attempt's `before`, and `verify` with `after` after a command that succeeded
    /// (absent for a plan without phases).
    #[serde(skip_serializing_if = "is_zero")]
    before_ms: u64,
    #[serde(skip_serializing_if = "is_zero")]
    after_ms: u64,
    /// Each gate's time and each approval's wait (absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    gate_ms: u64,
    #[serde(skip_serializing_if = "is_zero")]
    approval_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(serde::Serialize)]
struct JsonOutcome {
    /// `complete`, `stopped`, `blocked` or `run_timeout`.
    result: &'static str,
    /// When the run stopped or became blocked.
    at_ms: Option<u64>,
    /// Why it stopped.
    reason: Option<String>,
    blockers: Vec<JsonBlocker>,
}

#[derive(serde::Serialize)]
struct JsonBlocker {
    /// `group_full` or `slot_incomplete`.
    kind: &'static str,
    /// The group or slot id.
    id: String,
    /// The group's down hosts (`group_full`) or the slot's unfinished hosts.
    hosts: Vec<String>,
    /// The hosts it holds back.
    waiting: Vec<String>,
    message: String,
}

#[derive(serde::Serialize)]
struct JsonTally {
    succeeded: usize,
    failed: usize,
    timed_out: usize,
    unreachable: usize,
    cancelled: usize,
    skipped: usize,
}

#[derive(serde::Serialize)]
struct JsonWave {
    start_ms: u64,
    end_ms: u64,
    lanes: Vec<JsonLane>,
}

#[derive(serde::Serialize)]
struct JsonLane {
    slots: Vec<String>,
    hosts: Vec<String>,
}

#[derive(serde::Serialize)]
struct JsonGroup<'a> {
    id: &'a str,
    max_parallel: Option<u64>,
    members: usize,
    peak: u64,
    peak_at_ms: u64,
    full_ms: u64,
}

#[derive(serde::Serialize)]
struct JsonStep<'a> {
    host: &'a str,
    slots: &'a [String],
    start_ms: u64,
    end_ms: u64,
    /// `start`, `slot` or `room`.
    waited_for: &'static str,
    /// The slot (`slot`) or group (`room`) waited for.
    on: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    state: &'static str,
    exit_code: Option<i32>,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    attempts: u32,
    duration_ms: u64,
}

fn state_key(state: HostState) -> (&'static str, Option<i32>) {
    match state {
        HostState::Pending => ("pending", None),
        HostState::Running => ("running", None),
        HostState::Succeeded => ("succeeded", None),
        HostState::Failed { exit_code } => ("failed", Some(exit_code)),
        HostState::TimedOut => ("timed_out", None),
        HostState::Unreachable => ("unreachable", None),
        HostState::Skipped => ("skipped", None),
        HostState::Cancelled => ("cancelled", None),
    }
}

pub fn json(plan: &Plan, source: &str, policy: &SimulationPolicy, sim: &Simulation) -> String {
    let hosts_of = |hosts: &[HostIdx]| names(plan, hosts.iter().copied());
    let (result, at_ms, reason, blockers) = match &sim.end {
        SimulatedEnd::Complete => ("complete", None, None, Vec::new()),
        SimulatedEnd::RunTimeout { at_ms } => (
            "run_timeout",
            Some(*at_ms),
            Some("the run timeout expired; running commands were killed".to_string()),
            Vec::new(),
        ),
        SimulatedEnd::Stopped { reason, at_ms } => (
            "stopped",
            Some(*at_ms),
            Some(reason.to_string()),
            Vec::new(),
        ),
        SimulatedEnd::Blocked { blockers, at_ms } => {
            let blockers = blockers
                .iter()
                .map(|b| {
                    let (kind, id, hosts) = match b {
                        Blocker::GroupFull { group, down, .. } => (
                            "group_full",
                            group.clone(),
                            names(plan, down.iter().map(|&(h, _)| h)),
                        ),
                        Blocker::BudgetFull {
                            fleet, group, down, ..
                        } => (
                            "budget_full",
                            format!("{fleet}:{group}"),
                            down.iter().map(|d| d.host.clone()).collect(),
                        ),
                        Blocker::SlotIncomplete {
                            slot, unfinished, ..
                        } => ("slot_incomplete", slot.clone(), hosts_of(unfinished)),
                    };
                    JsonBlocker {
                        kind,
                        id,
                        hosts,
                        waiting: hosts_of(b.waiting()),
                        message: b.describe(&plan.hosts),
                    }
                })
                .collect();
            ("blocked", Some(*at_ms), None, blockers)
        }
    };
    let t = &sim.tally;
    let doc = JsonReport {
        format_version: JSON_FORMAT_VERSION,
        plan: source,
        settings: JsonSettings {
            duration_ms: policy.duration_ms,
            jitter_percent: policy.jitter_percent,
            seed: policy.seed,
            fail: hosts_of(&policy.failing),
            max_failures: policy
                .overrides
                .max_failures
                .unwrap_or(plan.options.max_failures.value),
            concurrent: policy.overrides.concurrent,
            timeout_ms: plan.options.timeout.saturating_mul(1000),
            retries: plan.options.retries,
            retry_delay_ms: policy.retry_delay_ms,
            run_timeout_ms: plan.options.run_timeout.map(|s| s.saturating_mul(1000)),
            before_ms: policy.before_ms,
            after_ms: policy.after_ms,
            gate_ms: policy.gate_ms,
            approval_ms: policy.approval_ms,
        },
        outcome: JsonOutcome {
            result,
            at_ms,
            reason,
            blockers,
        },
        makespan_ms: sim.makespan_ms,
        tally: JsonTally {
            succeeded: t.succeeded,
            failed: t.failed,
            timed_out: t.timed_out,
            unreachable: t.unreachable,
            cancelled: t.cancelled,
            skipped: t.skipped,
        },
        wave_ms: sim.wave_ms,
        waves: sim
            .waves
            .iter()
            .map(|w| JsonWave {
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                lanes: w
                    .lanes
                    .iter()
                    .map(|l| JsonLane {
                        slots: l.slots.clone(),
                        hosts: hosts_of(&l.hosts),
                    })
                    .collect(),
            })
            .collect(),
        groups: sim
            .groups
            .iter()
            .map(|g| JsonGroup {
                id: &g.id,
                max_parallel: g.max_parallel.map(|a| a.value),
                members: g.members,
                peak: g.peak,
                peak_at_ms: g.peak_at_ms,
                full_ms: g.full_ms,
            })
            .collect(),
        critical_path: sim
            .critical_path
            .iter()
            .map(|s| {
                let (waited_for, on) = match &s.waited_for {
                    WaitedFor::Start => ("start", None),
                    WaitedFor::Slot { slot } => ("slot", Some(slot.as_str())),
                    WaitedFor::Room { group } => ("room", Some(group.as_str())),
                    WaitedFor::Gate { slot, .. } => ("gate", Some(slot.as_str())),
                };
                JsonStep {
                    host: &plan.hosts[s.host.index()],
                    slots: &s.slots,
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    waited_for,
                    on,
                }
            })
            .collect(),
        hosts: sim
            .hosts
            .iter()
            .enumerate()
            .map(|(h, r)| {
                let (state, exit_code) = state_key(r.state);
                JsonHost {
                    host: &plan.hosts[h],
                    state,
                    exit_code,
                    start_ms: r.start_ms,
                    end_ms: r.end_ms,
                    attempts: r.attempts,
                    duration_ms: r.duration_ms,
                }
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("a simulation always serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_clocks_and_spans() {
        assert_eq!(clock(0), "0:00:00");
        assert_eq!(clock(90_000), "0:01:30");
        assert_eq!(clock(93_784_040), "26:03:04");
        assert_eq!(clock(12_345), "0:00:12.3");
        assert_eq!(clock(59_960), "0:01:00");
        assert_eq!(span(0), "0s");
        assert_eq!(span(30_000), "30s");
        assert_eq!(span(120_000), "2m");
        assert_eq!(span(90_000), "1m30s");
        assert_eq!(span(3_600_000), "1h");
        assert_eq!(span(3_630_000), "1h00m30s");
        assert_eq!(span(3_720_000), "1h02m");
        assert_eq!(span(45_500), "45.5s");
    }

    /// A plan edited to a timeout of u64::MAX seconds made `pogo simulate --allow-edited`
    /// overflow here (found by the fuzz corpus, `cli/tests/fuzz.rs`).
    #[test]
    fn the_longest_times_read_without_overflow() {
        assert_eq!(clock(u64::MAX), "5124095576030:25:51.6");
        assert!(span(u64::MAX).starts_with("5124095576030h"));
    }

    #[test]
    fn long_tables_keep_their_ends() {
        let rows: Vec<usize> = (0..100).collect();
        let shown = cut(&rows, false);
        assert_eq!(shown.len(), ROWS_SHOWN + 1);
        assert_eq!(shown[0], Some(&0));
        assert_eq!(shown[ROWS_SHOWN / 2], None);
        assert_eq!(shown[ROWS_SHOWN], Some(&99));
        assert_eq!(cut(&rows, true).len(), 100);
    }
}
