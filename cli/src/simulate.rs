//! `pogo simulate PLAN`: a plan's run with a simulated clock, rendered for a reviewer (tables)
//! or for tools (`--format json`, keys documented in `docs/simulate.md`). The simulation is
//! the executor's (`pogo_executor::simulate`); this module parses the options, resolves
//! `--fail` patterns and limit overrides against the plan, and renders the result.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use pogo_executor::scheduler::{HostIdx, LimitOverrides};
use pogo_executor::simulate::{simulate, SimulationPolicy, DEFAULT_SEED};
use pogo_model::Plan;
use pogo_planner::spec::parse_duration;
use pogo_planner::{FailureLimit, Limit};

use crate::failure::{emit, invalid, Failure};
use crate::inputs::{file_kind, read_plan, FileKind};
use pogo_views::text::{list_cut, plural};

#[derive(Args)]
#[command(
    about = "Simulate a plan's run with a simulated clock: waves, makespan, peaks, critical path",
    long_about = "Simulate a plan's run with a simulated clock: the same scheduler as \
        `pogo apply`, with every host's command taking --duration, so a reviewer sees how long \
        the rollout takes and that its limits hold before anything runs. Nothing is run and \
        nothing is contacted.\n\n\
        Prints the outcome and the makespan (the run's total duration); the timeline, as waves \
        (the hosts that start in each window of one duration, grouped by slot); the peak of \
        hosts down at once in every constraint group and the job group, with its limit and how \
        long it was full; and the critical path: the chain of hosts that sets the makespan, \
        each one having waited for the one before it (the last host of a slot it waited for, \
        or a host whose end made room in a full group).\n\n\
        --fail makes hosts fail at the end of their duration: the plan's max_failures applies \
        (lowered by --max-failures, like a run's), and a failed host stays down, so the \
        simulation shows a run stopped by its failure budget, or blocked by a group full of \
        failed hosts. Hosts whose duration exceeds the plan's timeout time out; a host that \
        does not succeed is retried as the plan says, after --retry-delay; and when the plan's \
        run timeout expires, the run halts and the commands still running are killed, as in \
        `pogo apply`.\n\n\
        The output is deterministic: --jitter draws durations from a PRNG seeded by --seed. \
        The exit status is 0 whenever the simulation ran, whatever its outcome.",
    after_help = "Examples:\n  \
        pogo simulate tests/golden/cfgs/triple.plan.json\n  \
        pogo simulate east.plan.json --duration 2m --jitter 50%\n  \
        pogo simulate east.plan.json --fail 'web-e0[1-3]'\n  \
        pogo simulate east.plan.json --format json | jq .makespan_ms"
)]
pub struct SimulateArgs {
    /// The plan file
    plan: PathBuf,
    /// Simulate a plan edited after `pogo plan` wrote it (its seal does not match), with a
    /// warning
    #[arg(long)]
    allow_edited: bool,
    /// How long each host's command takes: seconds, or 45s, 10m, 1h30m
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    duration: String,
    /// Vary each host's duration uniformly within ±P% of --duration (0% to 100%)
    #[arg(long, value_name = "P%", default_value = "0%")]
    jitter: String,
    /// Seed of the generator that draws durations with --jitter
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Hosts that fail, at the end of their duration: host names and patterns (web[1-3]),
    /// comma-separated; repeatable
    #[arg(long, value_name = "HOSTS")]
    fail: Vec<String>,
    /// Pause before retrying a host that did not succeed, as `pogo apply --retry-delay`:
    /// seconds, or 45s, 10m; 0 for none
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    retry_delay: String,
    /// Lower the plan's max_failures, as a run can: a number, or a percentage of the targets
    #[arg(long, value_name = "N|P%")]
    max_failures: Option<String>,
    /// Lower the job-wide limit, as a run can: a number, or a percentage of the targets
    #[arg(long, value_name = "N|P%")]
    concurrent: Option<String>,
    /// How long the plan's `before` and `after` take on each host, each: seconds, or 45s,
    /// 10m [default: 0s; only for a plan that has them]
    #[arg(long, value_name = "DURATION")]
    hook_time: Option<String>,
    /// How long the plan's health check (`verify`) takes to pass on each host, tries and
    /// pauses included [default: 0s; only for a plan that has one]
    #[arg(long, value_name = "DURATION")]
    verify_time: Option<String>,
    /// How long each gate after a step takes to pass [default: 0s]
    #[arg(long, value_name = "DURATION")]
    gate_time: Option<String>,
    /// How long each approval after a step takes to come [default: 0s]
    #[arg(long, value_name = "DURATION")]
    approval_wait: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = SimulateFormat::Text)]
    format: SimulateFormat,
    /// Show every wave, every step of the critical path and every host instead of cutting
    /// long tables and lists
    #[arg(long)]
    full: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum SimulateFormat {
    /// Tables for a person
    Text,
    /// A JSON document for tools (keys documented in docs/simulate.md)
    Json,
}

pub fn run(args: SimulateArgs, out: &mut impl Write) -> Result<(), Failure> {
    let plan = load(&args.plan)?;
    crate::stale::check_seal(
        &args.plan,
        &plan,
        crate::stale::Edited::Refuse {
            allow: args.allow_edited,
        },
    )?;
    let policy = policy(&args, &plan)?;
    let sim = simulate(&plan, &policy)
        .map_err(|e| invalid(format!("cannot simulate `{}`: {e}", args.plan.display())))?;
    let source = args.plan.display().to_string();
    let text = match args.format {
        SimulateFormat::Text => {
            pogo_views::simulate::text(&plan, &source, &policy, &sim, args.full)
        }
        SimulateFormat::Json => pogo_views::simulate::json(&plan, &source, &policy, &sim),
    };
    emit(out, &text)
}

/// Reads the plan, saying what to do with a config or a plan spec given instead.
fn load(path: &std::path::Path) -> Result<Plan, Failure> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let kind = match file_kind(&text) {
            FileKind::Plan => None,
            FileKind::Config => Some(("a config", "--config ")),
            FileKind::Spec => Some(("a plan spec", "")),
        };
        if let Some((what, flag)) = kind {
            return Err(invalid(format!(
                "`{0}` is {what}, and pogo simulate takes a plan file; make one with \
                 `pogo plan {flag}{0} -o plan.json`",
                path.display()
            )));
        }
    }
    read_plan(path)
}

/// The simulation's settings from the command line, `--fail` resolved against the plan.
fn policy(args: &SimulateArgs, plan: &Plan) -> Result<SimulationPolicy, Failure> {
    let mut errors = Vec::new();
    let duration_ms = match parse_duration(&args.duration) {
        Ok(seconds) => seconds.saturating_mul(1000),
        Err(problem) => {
            errors.push(format!("invalid --duration: {problem}"));
            0
        }
    };
    let jitter_percent = match parse_percent(&args.jitter) {
        Ok(p) => p,
        Err(problem) => {
            errors.push(format!("invalid --jitter: {problem}"));
            0
        }
    };
    let retry_delay_ms = match args.retry_delay.trim() {
        "0" | "0s" => 0,
        text => match parse_duration(text) {
            Ok(seconds) => seconds.saturating_mul(1000),
            Err(problem) => {
                errors.push(format!("invalid --retry-delay: {problem}"));
                0
            }
        },
    };
    let mut span = |flag: &str, value: &Option<String>| match value.as_deref().map(str::trim) {
        None | Some("0" | "0s") => 0,
        Some(text) => match parse_duration(text) {
            Ok(seconds) => seconds.saturating_mul(1000),
            Err(problem) => {
                errors.push(format!("invalid {flag}: {problem}"));
                0
            }
        },
    };
    let hook_ms = span("--hook-time", &args.hook_time);
    let gate_ms = span("--gate-time", &args.gate_time);
    let approval_ms = span("--approval-wait", &args.approval_wait);
    let verify_ms = span("--verify-time", &args.verify_time);
    let options = &plan.options;
    let before_ms = if options.before.is_some() { hook_ms } else { 0 };
    let after_ms = if options.after.is_some() { hook_ms } else { 0 }
        + if options.verify.is_some() {
            verify_ms
        } else {
            0
        };
    let targets = plan.hosts.len() as u64;
    let mut overrides = LimitOverrides::default();
    if let Some(text) = &args.max_failures {
        match FailureLimit::parse(text) {
            Ok(limit) => overrides.max_failures = Some(limit.resolve(targets).value),
            Err(problem) => errors.push(format!("invalid --max-failures: {problem}")),
        }
    }
    if let Some(text) = &args.concurrent {
        match Limit::parse(text) {
            Ok(limit) => overrides.concurrent = Some(limit.resolve(targets).value),
            Err(problem) => errors.push(format!("invalid --concurrent: {problem}")),
        }
    }
    let failing = match failing_hosts(&args.fail, plan) {
        Ok(hosts) => hosts,
        Err(mut problems) => {
            errors.append(&mut problems);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(Failure {
            message: errors.iter().map(|e| format!("error: {e}\n")).collect(),
            code: crate::failure::exit::INVALID,
        });
    }
    Ok(SimulationPolicy {
        duration_ms,
        jitter_percent,
        seed: args.seed,
        failing,
        retry_delay_ms,
        overrides,
        before_ms,
        after_ms,
        gate_ms,
        approval_ms,
    })
}

/// `50%` or `50`, from 0 to 100.
fn parse_percent(text: &str) -> Result<u32, String> {
    let text = text.trim();
    match text.strip_suffix('%').unwrap_or(text).trim().parse::<u32>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!("`{text}` is not a percentage from 0% to 100%")),
    }
}

/// The plan's hosts that `--fail` names, in plan order. A name or pattern that matches no host
/// of the plan is an error: a typo must not make a simulation look better than it should.
fn failing_hosts(values: &[String], plan: &Plan) -> Result<Vec<HostIdx>, Vec<String>> {
    let index: HashMap<&str, usize> = plan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut failing = vec![false; plan.hosts.len()];
    let mut errors = Vec::new();
    let mut unknown = Vec::new();
    for value in values {
        match pogo_planner::pattern::expand(value) {
            Err(e) => errors.push(format!(
                "invalid --fail: invalid host pattern `{value}`: {e}"
            )),
            Ok(names) => {
                for name in names {
                    match index.get(name.as_str()) {
                        Some(&h) => failing[h] = true,
                        None => unknown.push(name),
                    }
                }
            }
        }
    }
    if !unknown.is_empty() {
        errors.push(format!(
            "--fail names {} that {} not in the plan: {}",
            plural(unknown.len(), "host"),
            if unknown.len() == 1 { "is" } else { "are" },
            list_cut(&unknown, 10)
        ));
    }
    if errors.is_empty() {
        Ok((0..plan.hosts.len())
            .filter(|&h| failing[h])
            .map(HostIdx::new)
            .collect())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("50%"), Ok(50));
        assert_eq!(parse_percent("0"), Ok(0));
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("half").is_err());
    }
}
