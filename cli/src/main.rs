//! `pogo`: run commands on many hosts in a controlled manner.
//!
//! Thin by design: parse what the user typed, call the libraries, render, map errors to the
//! exit codes documented in the README.

mod render;
mod resolver;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pogo_model::Plan;
use pogo_planner::spec::{normalize, parse_duration, read_hostfile};
use pogo_planner::{
    compile, Config, FailureLimit, JobLimit, JobSpec, Limit, PlanError, PlanRequest, Source, Span,
    TargetSpec,
};
use render::plural;

/// Exit codes; the README's "Exit codes" section documents them.
mod exit {
    pub const OK: u8 = 0;
    /// A config, plan spec, plan or target list is invalid, or a file cannot be read/written.
    pub const INVALID: u8 = 1;
    /// The command line itself is wrong (unknown flag, missing argument).
    pub const USAGE: u8 = 64;
}

#[derive(Parser)]
#[command(
    name = "pogo",
    version,
    about = "Run commands on many hosts in a controlled manner",
    long_about = "Run commands on many hosts in a controlled manner.\n\n\
        pogo compiles a fleet config (tags, sequences, constraints) plus targets and a \
        command into a plan: who runs, in which order, under which limits. Plans are \
        deterministic files you can review, diff and keep in a repository.",
    after_help = "Start with: pogo plan --config t/cfgs/triple.cfg"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a config (or a plan spec) into a plan and print its schedule
    #[command(
        long_about = "Compile a fleet config, or a plan spec that names one, into a plan.\n\n\
            Prints the schedule (one row per thread, one column per step), the constraint \
            groups with their resolved limits, and any warnings. With -o, also writes the plan \
            file: pretty JSON, byte-identical for the same inputs, ready to review and apply.\n\n\
            Flags given here override the plan spec's values.",
        after_help = "Examples:\n  \
            pogo plan --config t/cfgs/triple.cfg\n  \
            pogo plan --config fleet.cfg --targets '$colo.east' --command 'sudo restart app' -o east.plan.json\n  \
            pogo plan examples/plans/rolling-restart.yaml -o rolling-restart.plan.json"
    )]
    Plan(Box<PlanArgs>),
    /// Print a plan file as a table or as JSON
    Show(ShowArgs),
    /// Check configs, plan specs and plan files; exit non-zero with every error found
    #[command(
        long_about = "Check configs, plan specs and plan files, and exit non-zero with \
        every error found. Meant for the CI of config repositories.\n\n\
        A file is taken as a plan when it is JSON, as a config when its top level has `tag:`, \
        and as a plan spec otherwise. Configs are checked completely: every tag reference, \
        pattern, limit and sequence (cycles included), as if planned for all their hosts."
    )]
    Validate(ValidateArgs),
}

#[derive(Args)]
struct PlanArgs {
    /// A plan spec (YAML) declaring the config, targets, command and options
    #[arg(value_name = "SPEC")]
    spec: Option<PathBuf>,
    /// The fleet config (tags, sequences, constraints)
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present = "spec"
    )]
    config: Option<PathBuf>,
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
    /// Refuse targets the config does not name (by default they run unordered)
    #[arg(long)]
    strict_targets: bool,
    /// Write the plan file here (`-` writes the plan JSON to stdout instead of the table)
    #[arg(long, short = 'o', value_name = "PLAN")]
    output: Option<PathBuf>,
    /// Show every host in the tables instead of cutting long lists
    #[arg(long)]
    full: bool,
}

#[derive(Args)]
struct ShowArgs {
    /// The plan file
    plan: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
    format: ShowFormat,
    /// Show every host in the tables instead of cutting long lists
    #[arg(long)]
    full: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowFormat {
    Table,
    Json,
}

#[derive(Args)]
struct ValidateArgs {
    /// Configs, plan specs and plan files
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// An error on its way to the user: the text to print and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl From<PlanError> for Failure {
    fn from(error: PlanError) -> Self {
        Failure {
            message: error.to_string(),
            code: exit::INVALID,
        }
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        message: format!("error: {}\n", message.into()),
        code: exit::INVALID,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let result = match cli.command {
        Command::Plan(args) => plan(*args, &mut stdout),
        Command::Show(args) => show(args, &mut stdout),
        Command::Validate(args) => validate(args, &mut stdout),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            let _ = stdout.flush();
            let _ = std::io::stderr().write_all(failure.message.as_bytes());
            ExitCode::from(failure.code)
        }
    }
}

/// Writes to stdout; a closed pipe (`pogo show x | head`) is not an error.
fn emit(out: &mut impl Write, text: &str) -> Result<(), Failure> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(invalid(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn plan(args: PlanArgs, out: &mut impl Write) -> Result<(), Failure> {
    let (config, mut request) = match &args.spec {
        Some(spec) => {
            if args.config.is_some() {
                return Err(invalid(
                    "give either a plan spec or --config, not both: the spec names its config",
                ));
            }
            let spec = JobSpec::load(spec, &resolver::Shell)?;
            (spec.config, spec.request)
        }
        None => {
            let path = normalize(args.config.as_deref().expect("clap requires --config"));
            let config = Config::load(&path, &resolver::Shell)?;
            let request = PlanRequest {
                config_name: path.display().to_string(),
                ..PlanRequest::default()
            };
            (config, request)
        }
    };
    apply_flags(&args, &mut request)?;
    let plan = compile(&config, &request)?;
    match args.output.as_deref() {
        Some(path) if path == Path::new("-") => emit(out, &plan.to_json()),
        Some(path) => {
            write_atomically(path, &plan.to_json())?;
            emit(out, &render::plan_text(&plan, args.full))?;
            let note = format!("\nPlan written to {}\n", path.display());
            let _ = std::io::stderr().write_all(note.as_bytes());
            Ok(())
        }
        None => emit(out, &render::plan_text(&plan, args.full)),
    }
}

/// Command-line flags override what a plan spec says.
fn apply_flags(args: &PlanArgs, request: &mut PlanRequest) -> Result<(), Failure> {
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
    if let Some(text) = &args.max_failures {
        match FailureLimit::parse(text) {
            Ok(limit) => request.max_failures = limit,
            Err(problem) => errors.push(format!("error: invalid --max-failures: {problem}\n")),
        }
    }
    if args.strict_targets {
        request.strict_targets = true;
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
/// truncated plan behind.
fn write_atomically(path: &Path, text: &str) -> Result<(), Failure> {
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
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        invalid(format!("cannot write plan to `{}`: {e}", path.display()))
    })
}

fn read_plan(path: &Path) -> Result<Plan, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read plan `{}`: {e}", path.display())))?;
    Plan::from_json(&text)
        .map_err(|e| invalid(format!("cannot read plan `{}`: {e}", path.display())))
}

fn show(args: ShowArgs, out: &mut impl Write) -> Result<(), Failure> {
    let plan = read_plan(&args.plan)?;
    match args.format {
        ShowFormat::Table => emit(out, &render::plan_text(&plan, args.full)),
        ShowFormat::Json => emit(out, &plan.to_json()),
    }
}

/// What `validate` takes a file to be.
enum FileKind {
    Plan,
    Config,
    Spec,
}

fn file_kind(text: &str) -> FileKind {
    if text.trim_start().starts_with('{') {
        return FileKind::Plan;
    }
    let has_tag = matches!(
        pogo_planner::yaml::parse(text),
        Ok(Some(pogo_planner::yaml::Node { value: pogo_planner::yaml::Value::Map(ref pairs), .. }))
            if pairs.iter().any(|(k, _)| k.as_str() == Some("tag"))
    );
    // A config that does not parse as YAML is still most likely a config if it says `tag:`.
    if has_tag || text.lines().any(|l| l.starts_with("tag:")) {
        FileKind::Config
    } else {
        FileKind::Spec
    }
}

fn validate(args: ValidateArgs, out: &mut impl Write) -> Result<(), Failure> {
    let mut failures = Vec::new();
    for path in &args.files {
        let result = validate_one(path);
        match result {
            Ok(summary) => emit(out, &format!("ok: {} ({summary})\n", path.display()))?,
            Err(failure) => failures.push(failure.message),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        let count = failures.len();
        Err(Failure {
            message: format!(
                "{}\n{count} of {} files invalid\n",
                failures.join("\n"),
                args.files.len()
            ),
            code: exit::INVALID,
        })
    }
}

fn validate_one(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))?;
    match file_kind(&text) {
        FileKind::Plan => {
            let plan = read_plan(path)?;
            Ok(format!("plan, {}", plural(plan.hosts.len(), "host")))
        }
        FileKind::Config => {
            let config = Config::parse_with(&path.display().to_string(), &text, &resolver::Shell)?;
            let plan = compile(&config, &PlanRequest::default())?;
            Ok(format!(
                "config, {}, {}, {}",
                plural(plan.hosts.len(), "host"),
                plural(plan.threads.len(), "thread"),
                plural(plan.constraints.len(), "constraint group")
            ))
        }
        FileKind::Spec => {
            let spec = JobSpec::load(path, &resolver::Shell)?;
            let plan = compile(&spec.config, &spec.request)?;
            Ok(format!("plan spec, {}", plural(plan.hosts.len(), "target")))
        }
    }
}
