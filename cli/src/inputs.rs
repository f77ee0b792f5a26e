//! What the commands read: where a plan comes from (a plan spec or a config, with the plan
//! options of the command line), plan files, and which kind of file a path holds.

use std::path::{Path, PathBuf};

use clap::Args;
use pogo_model::{Approval, Plan, Verify};
use pogo_planner::spec::{normalize, parse_duration, read_hostfile};
use pogo_planner::{
    compile, Config, FailureLimit, GateRequest, JobLimit, JobSpec, Limit, PlanRequest, Source,
    Span, TargetSpec,
};

use crate::failure::{exit, invalid, usage, Failure};
use crate::resolver;

/// Where a plan comes from: a plan spec, or a config (`pogo plan` and `pogo run`).
#[derive(Args)]
pub struct PlanSource {
    /// A plan spec (YAML) declaring the config, targets, command and options
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// The fleet config (tags, sequences, constraints); without one, --targets alone makes
    /// an ad-hoc plan: the hosts given, unordered, under the job-wide limit
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// What a plan made without a config records as its config: an ad-hoc plan of the targets
/// alone ([`pogo_model::NO_CONFIG`]).
const NO_CONFIG_TEXT: &str = "tag: {}\n";

/// What a plan is compiled with besides its config: `pogo plan` and both sides of `pogo diff`.
#[derive(Args)]
#[command(next_help_heading = "Plan options")]
pub struct PlanFlags {
    /// Hosts, host patterns (web[1-9]) and $tags to run on, comma-separated; repeatable.
    /// Default: every host in the config
    #[arg(long, short = 't', value_name = "LIST")]
    targets: Vec<String>,
    /// A file of targets, one host, pattern or $tag per line (# starts a comment)
    #[arg(long, value_name = "FILE")]
    hostfile: Option<PathBuf>,
    /// The command to run on each host
    #[arg(long, value_name = "CMD")]
    command: Option<String>,
    /// Job-wide limit on hosts down at once: a number, or a percentage of the targets
    /// [default: 32]
    #[arg(long, value_name = "N|P%", conflicts_with = "unconstrained")]
    concurrent: Option<String>,
    /// No job-wide limit: only the config's constraints apply
    #[arg(long)]
    unconstrained: bool,
    /// Per-host command timeout: seconds, or 45s, 10m, 1h30m [default: 600]
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// How many times to retry a host whose command failed [default: 0]
    #[arg(long, value_name = "N")]
    retry: Option<u32>,
    /// Stop starting hosts once more than this many have failed: a number, or a percentage
    /// of the targets [default: 0, the first failure halts the rollout]
    #[arg(long, value_name = "N|P%")]
    max_failures: Option<String>,
    /// Timeout of the whole run: seconds, or 45s, 10m, 1h30m [default: none]
    #[arg(long, value_name = "DURATION")]
    run_timeout: Option<String>,
    /// The most output a host's log keeps: bytes, or 512KB, 10MB, 1GB; past it the rest is
    /// counted and dropped with a marker line [default: 10MB]
    #[arg(long, value_name = "SIZE")]
    max_output: Option<String>,
    /// Refuse targets the config does not name (by default they run unordered)
    #[arg(long)]
    strict_targets: bool,
    /// Run this on each host before its command (drain it); if it fails, the command does
    /// not run and the host has failed
    #[arg(long, value_name = "CMD", help_heading = "Phases of each host")]
    before: Option<String>,
    /// A health check run on each host after its command, tried until it exits 0 (within
    /// --verify-within, every --verify-every); a host that never passes has failed
    #[arg(long, value_name = "CMD", help_heading = "Phases of each host")]
    verify: Option<String>,
    /// How long the health check may take to pass [default: 1m]
    #[arg(
        long,
        value_name = "DURATION",
        requires = "verify",
        help_heading = "Phases of each host"
    )]
    verify_within: Option<String>,
    /// The pause between two tries of the health check [default: 5s]
    #[arg(
        long,
        value_name = "DURATION",
        requires = "verify",
        help_heading = "Phases of each host"
    )]
    verify_every: Option<String>,
    /// Run this on each host after its command succeeded and the health check passed (put
    /// it back); never after a failure, so a broken host stays out
    #[arg(long, value_name = "CMD", help_heading = "Phases of each host")]
    after: Option<String>,
    /// After STEP (a slot id, as `pogo plan` lists them), run CMD on this machine once every
    /// host of the step has finished; the steps after it wait until it exits 0, and a
    /// failure stops the run. Repeatable
    #[arg(long, value_name = "STEP=CMD", help_heading = "Gates between steps")]
    gate: Vec<String>,
    /// After STEP, wait for an operator's `pogo approve RUN STEP` (for at most DURATION when
    /// given; unapproved by then, the run stops). Repeatable
    #[arg(
        long,
        value_name = "STEP[=DURATION]",
        help_heading = "Gates between steps"
    )]
    approve: Vec<String>,
}

impl PlanFlags {
    /// Whether any of them was given.
    pub fn given(&self) -> bool {
        !self.targets.is_empty()
            || self.hostfile.is_some()
            || self.command.is_some()
            || self.concurrent.is_some()
            || self.unconstrained
            || self.timeout.is_some()
            || self.retry.is_some()
            || self.max_failures.is_some()
            || self.run_timeout.is_some()
            || self.max_output.is_some()
            || self.strict_targets
            || self.before.is_some()
            || self.verify.is_some()
            || self.after.is_some()
            || !self.gate.is_empty()
            || !self.approve.is_empty()
    }
}

/// Compiles a plan spec, or a config, with the plan options: `pogo plan` and `pogo run`.
pub fn compile_plan(source: &PlanSource, flags: &PlanFlags) -> Result<Plan, Failure> {
    let (config, mut request) = match &source.spec {
        Some(spec) => {
            if source.config.is_some() {
                return Err(invalid(
                    "give either a plan spec or --config, not both: the spec names its config",
                ));
            }
            let spec = JobSpec::load(spec, &resolver::Shell)?;
            (spec.config, spec.request)
        }
        None => match source.config.as_deref() {
            Some(path) => {
                let path = normalize(path);
                let config = Config::load(&path, &resolver::Shell)?;
                let request = PlanRequest {
                    config_name: path.display().to_string(),
                    ..PlanRequest::default()
                };
                (config, request)
            }
            None if flags.targets.is_empty() && flags.hostfile.is_none() => {
                return Err(usage(
                    "nothing to plan: give a plan spec (SPEC), a config (--config FILE), or \
                     the hosts themselves (--targets LIST, --hostfile FILE)",
                ))
            }
            // The plan is of the hosts given alone.
            None => {
                let config = Config::parse(pogo_model::NO_CONFIG, NO_CONFIG_TEXT)?;
                let request = PlanRequest {
                    config_name: pogo_model::NO_CONFIG.to_string(),
                    ..PlanRequest::default()
                };
                (config, request)
            }
        },
    };
    apply_flags(flags, &mut request)?;
    // The operator's defaults shape plans made here from a config or targets alone; a plan
    // spec's options are its own (see `crate::defaults`).
    if source.spec.is_none() {
        operator_defaults(flags, &mut request)?;
    }
    let plan = compile(&config, &request);
    // Used once, by a process that ends soon after: the config of a million hosts is given
    // back with the process's memory rather than freed string by string.
    std::mem::forget(config);
    Ok(plan?)
}

/// `concurrent` and `timeout` from the environment or the client config file, where no flag
/// gave them.
fn operator_defaults(flags: &PlanFlags, request: &mut PlanRequest) -> Result<(), Failure> {
    use crate::defaults::from_environment;
    if flags.concurrent.is_none() && !flags.unconstrained {
        if let Some(given) = from_environment("concurrent", None)? {
            let limit = Limit::parse(&given.value).map_err(|problem| {
                invalid(format!(
                    "invalid concurrent `{}` from {}: {problem}",
                    given.value,
                    given.origin("concurrent")
                ))
            })?;
            request.concurrent = JobLimit::Limit(limit);
        }
    }
    if flags.timeout.is_none() {
        if let Some(given) = from_environment("timeout", None)? {
            let seconds = parse_duration(&given.value).map_err(|problem| {
                invalid(format!(
                    "invalid timeout `{}` from {}: {problem}",
                    given.value,
                    given.origin("timeout")
                ))
            })?;
            request.timeout = Some(seconds);
        }
    }
    Ok(())
}

/// Command-line flags override what a plan spec says.
pub fn apply_flags(args: &PlanFlags, request: &mut PlanRequest) -> Result<(), Failure> {
    let mut errors = Vec::new();
    if !args.targets.is_empty() || args.hostfile.is_some() {
        request.targets.clear();
    }
    for text in &args.targets {
        let source = Source::argument("--targets", text.as_str());
        request.targets.push(TargetSpec {
            text: text.clone(),
            span: Span::new(
                &source,
                pogo_planner::yaml::Pos { line: 1, col: 1 },
                text.chars().count(),
            ),
        });
    }
    if let Some(file) = &args.hostfile {
        match read_hostfile(file) {
            Ok(targets) => request.targets.extend(targets),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(command) = &args.command {
        request.command = Some(command.clone());
    }
    if let Some(text) = &args.concurrent {
        match Limit::parse(text) {
            Ok(limit) => request.concurrent = JobLimit::Limit(limit),
            Err(problem) => errors.push(format!("error: invalid --concurrent: {problem}\n")),
        }
    }
    if args.unconstrained {
        request.concurrent = JobLimit::Unconstrained;
    }
    for (flag, value, slot) in [
        ("--timeout", &args.timeout, &mut request.timeout),
        ("--run-timeout", &args.run_timeout, &mut request.run_timeout),
    ] {
        if let Some(text) = value {
            match parse_duration(text) {
                Ok(seconds) => *slot = Some(seconds),
                Err(problem) => errors.push(format!("error: invalid {flag}: {problem}\n")),
            }
        }
    }
    if let Some(retries) = args.retry {
        request.retries = retries;
    }
    if let Some(text) = &args.max_output {
        match pogo_planner::spec::parse_size(text) {
            Ok(size) => request.max_output = Some(size),
            Err(problem) => errors.push(format!("error: invalid --max-output: {problem}\n")),
        }
    }
    if let Some(text) = &args.max_failures {
        match FailureLimit::parse(text) {
            Ok(limit) => request.max_failures = limit,
            Err(problem) => errors.push(format!("error: invalid --max-failures: {problem}\n")),
        }
    }
    if args.strict_targets {
        request.strict_targets = true;
    }
    for (flag, value, slot) in [
        ("--before", &args.before, &mut request.before),
        ("--after", &args.after, &mut request.after),
    ] {
        match value {
            Some(command) if command.trim().is_empty() => {
                errors.push(format!("error: {flag} is an empty command\n"))
            }
            Some(command) => *slot = Some(command.clone()),
            None => {}
        }
    }
    if let Some(command) = &args.verify {
        if command.trim().is_empty() {
            errors.push("error: --verify is an empty command\n".to_string());
        }
        request.verify = Some(Verify {
            command: command.clone(),
            within: Verify::WITHIN,
            every: Verify::EVERY,
        });
    }
    if let Some(verify) = request.verify.as_mut() {
        for (flag, value, slot) in [
            ("--verify-within", &args.verify_within, &mut verify.within),
            ("--verify-every", &args.verify_every, &mut verify.every),
        ] {
            if let Some(text) = value {
                match parse_duration(text) {
                    Ok(seconds) => *slot = seconds,
                    Err(problem) => errors.push(format!("error: invalid {flag}: {problem}\n")),
                }
            }
        }
    }
    for text in &args.gate {
        let Some((step, command)) = text.split_once('=') else {
            errors.push(format!(
                "error: --gate {text}: write STEP=CMD (the step's slot id, then the command)\n"
            ));
            continue;
        };
        if command.trim().is_empty() {
            errors.push(format!("error: --gate {text}: the command is empty\n"));
            continue;
        }
        request.gates.push(GateRequest {
            step: step.to_string(),
            span: Span::start(&Source::argument("--gate", text.as_str())),
            gate: Some(command.to_string()),
            approve: None,
        });
    }
    for text in &args.approve {
        // A step id may hold `=` only in odd configs; the last `=` splits a time limit off.
        let (step, within) = match text.rsplit_once('=') {
            Some((step, limit)) => match parse_duration(limit) {
                Ok(seconds) => (step, Some(seconds)),
                Err(problem) => {
                    errors.push(format!("error: invalid --approve {text}: {problem}\n"));
                    continue;
                }
            },
            None => (text.as_str(), None),
        };
        request.gates.push(GateRequest {
            step: step.to_string(),
            span: Span::start(&Source::argument("--approve", text.as_str())),
            gate: None,
            approve: Some(Approval { within }),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            message: errors.join("\n"),
            code: exit::INVALID,
        })
    }
}

/// Writes through a temporary file and a rename, so an interrupted write never leaves a
/// truncated plan behind. A path that is not a regular file (`/dev/null`, `/dev/stdout`, a
/// named pipe) is written to as it is: a rename would replace the device with a file, and
/// `pogo plan -o /dev/null` run as root once turned /dev/null into a plan.
pub fn write_atomically(
    path: &Path,
    write: impl Fn(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let buffered = |file: std::fs::File| -> std::io::Result<std::fs::File> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        write(&mut out)?;
        out.into_inner()
            .map_err(std::io::IntoInnerError::into_error)
    };
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(buffered)
                .map(drop)
                .map_err(|e| invalid(format!("cannot write plan to `{}`: {e}", path.display())));
        }
    }
    let file_name = path.file_name().ok_or_else(|| {
        invalid(format!(
            "cannot write plan to `{}`: not a file name",
            path.display()
        ))
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let result = std::fs::File::create(&temp)
        .and_then(buffered)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        invalid(format!("cannot write plan to `{}`: {e}", path.display()))
    })
}

pub fn read_plan(path: &Path) -> Result<Plan, Failure> {
    let text = pogo_planner::files::read_text(path)
        .map_err(|e| invalid(format!("cannot read plan `{}`: {e}", path.display())))?;
    Plan::from_json(&text)
        .map_err(|e| invalid(format!("cannot read plan `{}`: {e}", path.display())))
}

/// What `validate` takes a file to be.
pub enum FileKind {
    Plan,
    Config,
    Spec,
}

/// A config has `tag:`, `sequence:` or `constraint:` at its top level (one that forgot `tag:`
/// is told so as a config); a plan spec has none of them, or names its config with `config:`.
pub fn file_kind(text: &str) -> FileKind {
    use pogo_planner::config::TOP_LEVEL_KEYS;
    use pogo_planner::yaml::{Node, Value};
    if text.trim_start().starts_with('{') {
        return FileKind::Plan;
    }
    let config_like = match pogo_planner::yaml::parse(text) {
        Ok(Some(Node {
            value: Value::Map(ref pairs),
            ..
        })) => {
            let has = |key: &str| pairs.iter().any(|(k, _)| k.as_str() == Some(key));
            TOP_LEVEL_KEYS.iter().any(|key| has(key)) && !has("config")
        }
        // A config that does not parse as YAML is still most likely a config if it starts a
        // line with one of a config's keys.
        _ => text.lines().any(|line| {
            TOP_LEVEL_KEYS.iter().any(|key| {
                line.strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with(':'))
            })
        }),
    };
    if config_like {
        FileKind::Config
    } else {
        FileKind::Spec
    }
}

/// The state directory from `--state-dir`, `POGO_STATE_DIR`, `state_dir` in the client config
/// file's `[defaults]`, or `.pogo`; and the flag to repeat in suggested commands (only a flag
/// needs repeating): for `pogo apply`, `pogo runs`, `pogo log` and the others that read runs.
pub fn state_dir(flag: Option<&Path>) -> Result<(PathBuf, String), Failure> {
    if let Some(dir) = flag {
        return Ok((dir.to_path_buf(), format!(" --state-dir {}", dir.display())));
    }
    Ok(
        match crate::defaults::from_environment("state_dir", None)? {
            Some(given) => (PathBuf::from(given.value), String::new()),
            None => (
                PathBuf::from(pogo_executor::rundir::DEFAULT_STATE_DIR),
                String::new(),
            ),
        },
    )
}
