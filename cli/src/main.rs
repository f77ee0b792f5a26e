//! `pogo`: run commands on many hosts in a controlled manner.
//!
//! Thin by design: parse what the user typed, call the libraries, render, map errors to the
//! exit codes documented in the README.

mod apply;
mod certs;
mod diff;
mod git;
mod graph;
mod remote;
mod render;
mod report;
mod resolver;
mod runs;
mod simulate;
mod stale;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pogo_model::Plan;
use pogo_planner::spec::{normalize, parse_duration, read_hostfile};
use pogo_planner::{
    compile, Config, FailureLimit, Files, Filesystem, JobLimit, JobSpec, Limit, PlanError,
    PlanRequest, ReadError, Source, Span, TargetSpec,
};
use render::plural;

/// Exit codes; the README's "Exit codes" section documents them.
mod exit {
    pub const OK: u8 = 0;
    /// A config, plan spec, plan or target list is invalid, or a file cannot be read/written.
    pub const INVALID: u8 = 1;
    /// `pogo diff`: the two plans differ (as `terraform plan -detailed-exitcode`).
    pub const DIFFERENT: u8 = 2;
    /// `pogo apply`/`pogo run`: every host ran, and some failed.
    pub const FAILED: u8 = 3;
    /// `pogo apply`/`pogo run`: the run stopped (failure budget, halt, run timeout) or was
    /// blocked before every host ran, or `pogo run` was not confirmed.
    pub const STOPPED: u8 = 4;
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
        deterministic files you can review, diff and keep in a repository; `pogo apply` runs \
        them over SSH, and `pogo run` plans and runs in one step.",
    after_help = "Start with: pogo plan --config t/cfgs/triple.cfg\n\
        Then:       pogo run --config t/cfgs/triple.cfg --transport local --command 'echo $POGO_HOST'"
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
    /// Compare two plans (or the specs or configs they come from) and say what the change does
    #[command(
        long_about = "Compare two plans and say what the change does to the rollout: the \
            command and run options that changed, hosts added and removed, hosts that move to \
            another slot or to or from the unordered lane, threads and slots added, removed \
            and reordered, dependency edges, constraint groups added and removed, limits \
            raised or lowered (with their resolved numbers) and hosts entering or leaving a \
            group; then a summary line.\n\n\
            Each side is a plan file, a plan spec or a config, told apart as `pogo validate` \
            does; specs and configs are compiled with the plan options given here, the same \
            for both sides. With --git REV, the spec (or --config) is compiled as it is at \
            REV, read with git, the config and host file it names included, and as it is in \
            the working tree. A spec that does not exist at REV is new: everything in it is \
            listed as added.\n\n\
            Exit status: 0 when the plans run the same rollout (their digests may differ), \
            2 when they differ, 1 on an error.",
        after_help = "Examples:\n  \
            pogo diff t/diff/review.old.cfg t/diff/review.new.cfg\n  \
            pogo diff old.plan.json new.plan.json --text\n  \
            pogo diff --git origin/main examples/plans/rolling-restart.yaml --format markdown\n  \
            pogo diff --git HEAD~1 --config examples/fleet.cfg --targets '$colo.east'"
    )]
    Diff(Box<DiffArgs>),
    /// Print a plan file as a table, as JSON, or as a Mermaid or Graphviz graph
    #[command(
        long_about = "Print a plan file: as the schedule table `pogo plan` prints, as its JSON, \
            or as a graph of its slots for review.\n\n\
            `--format mermaid` writes a Mermaid flowchart, which GitHub and GitLab draw inside \
            a ```mermaid block of markdown; `--format dot` writes a Graphviz digraph \
            (`pogo show PLAN --format dot | dot -Tsvg > plan.svg`). Both draw one node per slot \
            (its id and host count, the hosts when few), threads as boxes, sequence edges as \
            arrows, the unordered lane, and the constraint groups with their limits; each slot \
            names the groups that limit it. Slots that share a host across threads are outlined \
            in orange. Long host lists are cut, so a plan of any size draws as many nodes as it \
            has slots and groups. Mermaid output too large for GitHub to draw is flagged on \
            stderr.",
        after_help = "Examples:\n  \
            pogo show east.plan.json\n  \
            pogo show east.plan.json --format mermaid > east.mmd\n  \
            pogo show east.plan.json --format dot | dot -Tsvg > east.svg"
    )]
    Show(ShowArgs),
    /// Check configs, plan specs and plan files; exit non-zero with every error found
    #[command(
        long_about = "Check configs, plan specs and plan files, and exit non-zero with \
        every error found. Meant for the CI of config repositories.\n\n\
        A file is taken as a plan when it is JSON, as a config when its top level has `tag:`, \
        and as a plan spec otherwise. Configs are checked completely: every tag reference, \
        pattern, limit and sequence (cycles included), as if planned for all their hosts.\n\n\
        With --against, every FILE is a plan, checked against the config or plan spec it was \
        made from: a plan is stale, and refused (exit status 1), when the config's text \
        changed since it was written, when the hosts behind the config's tags changed (a \
        `!command` tag that now prints other hosts), or, against a plan spec, when the spec \
        asks for other targets, another command or other options. --allow-stale reports a \
        stale plan as a warning instead; `pogo apply` will take the same flag.",
        after_help = "Examples:\n  \
            pogo validate examples/fleet.cfg examples/plans/*.yaml\n  \
            pogo validate east.plan.json --against examples/plans/east-hotfix.yaml\n  \
            pogo validate east.plan.json --against examples/fleet.cfg --allow-stale"
    )]
    Validate(ValidateArgs),
    // Its help is on `SimulateArgs`, beside the rest of the command.
    Simulate(Box<simulate::SimulateArgs>),
    /// Run a plan: its command on every target, in order, within its limits; or resume a run
    Apply(Box<apply::ApplyArgs>),
    /// Plan and apply in one step: print the schedule, confirm, run
    Run(Box<apply::RunArgs>),
    /// List the runs kept in the state directory (.pogo)
    Runs(runs::RunsArgs),
    /// Show a run's summary, or the output of its hosts; or a job's output
    Log(runs::LogArgs),
    /// Serve the dispatcher of remote apply (HTTPS, mutual TLS, jobs kept in SQLite)
    Dispatcher(remote::serve::DispatcherArgs),
    /// Run a worker of remote apply: take tasks from the dispatcher and run them
    Worker(remote::serve::WorkerArgs),
    /// List the dispatcher's jobs
    Jobs(remote::ops::JobsArgs),
    /// Show a job on the dispatcher: its state and its hosts
    Status(remote::ops::StatusArgs),
    /// Halt a job on the dispatcher: no more hosts start
    Halt(remote::ops::HaltArgs),
    /// Resume a halted or stopped job on the dispatcher
    Resume(remote::ops::ResumeArgs),
    /// Run a job's failed hosts again
    Retry(remote::ops::RetryArgs),
    /// List the workers the dispatcher knows
    Workers(remote::ops::WorkersArgs),
    /// Make and read the certificates of a remote deployment (CA, dispatcher, workers,
    /// operators)
    Certs(certs::CertsArgs),
}

/// Where a plan comes from: a plan spec, or a config (`pogo plan` and `pogo run`).
#[derive(Args)]
struct PlanSource {
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
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    source: PlanSource,
    /// Write the plan file here (`-` writes the plan JSON to stdout instead of the table)
    #[arg(long, short = 'o', value_name = "PLAN")]
    output: Option<PathBuf>,
    /// Show every host in the tables instead of cutting long lists
    #[arg(long)]
    full: bool,
    // Last: the flattened flags' help heading holds for the arguments after them.
    #[command(flatten)]
    flags: PlanFlags,
}

/// What a plan is compiled with besides its config: `pogo plan` and both sides of `pogo diff`.
#[derive(Args)]
#[command(next_help_heading = "Plan options")]
struct PlanFlags {
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
}

impl PlanFlags {
    /// Whether any of them was given.
    fn given(&self) -> bool {
        !self.targets.is_empty()
            || self.hostfile.is_some()
            || self.command.is_some()
            || self.concurrent.is_some()
            || self.unconstrained
            || self.timeout.is_some()
            || self.retry.is_some()
            || self.max_failures.is_some()
            || self.run_timeout.is_some()
            || self.strict_targets
    }
}

#[derive(Args)]
struct DiffArgs {
    /// The old side: a plan file, plan spec or config. With --git: the plan spec (or plan
    /// file, or config) to compare with itself at REV
    old: Option<PathBuf>,
    /// The new side: a plan file, plan spec or config
    new: Option<PathBuf>,
    /// Compare the file (and the config and host file it names) at this git revision with
    /// the working tree
    #[arg(long, value_name = "REV")]
    git: Option<String>,
    /// With --git: the config to compare, instead of a plan spec
    #[arg(long, short = 'c', value_name = "FILE", requires = "git")]
    config: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = DiffFormat::Terminal)]
    format: DiffFormat,
    /// Also print a unified diff of the two plan files
    #[arg(long)]
    text: bool,
    /// Show every host instead of cutting long lists (terminal format)
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    flags: PlanFlags,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    /// Text for a terminal, coloured when stdout is one and NO_COLOR is not set
    Terminal,
    /// A JSON document for tools (keys documented in docs/diff.md)
    Json,
    /// Markdown to post as a pull-request comment
    Markdown,
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
    /// The schedule and constraint tables
    Table,
    /// The plan file itself
    Json,
    /// A Mermaid flowchart (GitHub and GitLab render it in markdown)
    Mermaid,
    /// A Graphviz digraph (`dot -Tsvg`)
    Dot,
}

#[derive(Args)]
struct ValidateArgs {
    /// Configs, plan specs and plan files
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Check that each FILE, a plan, is not stale: that this config or plan spec, as it is
    /// now, is what the plan was made from
    #[arg(long, value_name = "SPEC_OR_CONFIG")]
    against: Option<PathBuf>,
    /// With --against: accept a stale plan, with a warning on stderr, instead of refusing it
    #[arg(long, requires = "against")]
    allow_stale: bool,
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
    // Started by ssh as the SSH_ASKPASS helper of a run with --password: the argument is a
    // prompt, not a command line (see pogo_executor::transport::askpass).
    if pogo_executor::transport::askpass_requested() {
        return pogo_executor::transport::askpass_main();
    }
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
        Command::Plan(args) => plan(*args, &mut stdout).map(|()| exit::OK),
        Command::Diff(args) => diff(*args, &mut stdout),
        Command::Show(args) => show(args, &mut stdout).map(|()| exit::OK),
        Command::Validate(args) => validate(args, &mut stdout).map(|()| exit::OK),
        Command::Simulate(args) => simulate::run(*args, &mut stdout).map(|()| exit::OK),
        Command::Apply(args) => apply::apply(*args, &mut stdout),
        Command::Run(args) => apply::run(*args, &mut stdout),
        Command::Runs(args) => runs::runs(args, &mut stdout).map(|()| exit::OK),
        Command::Log(args) => runs::log(args, &mut stdout).map(|()| exit::OK),
        Command::Dispatcher(args) => remote::serve::dispatcher(args, &mut stdout),
        Command::Worker(args) => remote::serve::worker(args),
        Command::Jobs(args) => remote::ops::jobs(args, &mut stdout),
        Command::Status(args) => remote::ops::status(args, &mut stdout),
        Command::Halt(args) => remote::ops::halt(args, &mut stdout),
        Command::Resume(args) => remote::ops::resume(args, &mut stdout),
        Command::Retry(args) => remote::ops::retry(args, &mut stdout),
        Command::Workers(args) => remote::ops::workers(args, &mut stdout),
        Command::Certs(args) => certs::run(args, &mut stdout),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            let _ = stdout.flush();
            let _ = std::io::stderr().write_all(failure.message.as_bytes());
            ExitCode::from(failure.code)
        }
    }
}

/// Writes to stdout; a closed pipe (`pogo show x | head`) is not an error.
fn emit(out: &mut (impl Write + ?Sized), text: &str) -> Result<(), Failure> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(invalid(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn plan(args: PlanArgs, out: &mut impl Write) -> Result<(), Failure> {
    let plan = compile_plan(&args.source, &args.flags)?;
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

/// Compiles a plan spec, or a config, with the plan options: `pogo plan` and `pogo run`.
fn compile_plan(source: &PlanSource, flags: &PlanFlags) -> Result<Plan, Failure> {
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
        None => {
            let path = normalize(source.config.as_deref().expect("clap requires --config"));
            let config = Config::load(&path, &resolver::Shell)?;
            let request = PlanRequest {
                config_name: path.display().to_string(),
                ..PlanRequest::default()
            };
            (config, request)
        }
    };
    apply_flags(flags, &mut request)?;
    Ok(compile(&config, &request)?)
}

/// Command-line flags override what a plan spec says.
fn apply_flags(args: &PlanFlags, request: &mut PlanRequest) -> Result<(), Failure> {
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
        ShowFormat::Mermaid => {
            let text = graph::mermaid(&plan);
            if let Some(warning) = graph::mermaid_too_large(&text) {
                let _ = std::io::stderr().write_all(warning.as_bytes());
            }
            emit(out, &text)
        }
        ShowFormat::Dot => emit(out, &graph::dot(&plan)),
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
    if let Some(against) = &args.against {
        return stale::validate_against(&args.files, against, args.allow_stale, out);
    }
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

/// One side of a diff, loaded.
struct Side {
    plan: Plan,
    /// Compiled from a spec or config (so the plan options applied to it).
    compiled: bool,
}

/// Reads `path` from `files` and makes it a plan: a plan file as it is, a spec or config
/// compiled with the plan options. `kind` forces a config (`--config`).
fn load_side(
    files: &dyn Files,
    path: &Path,
    text: &str,
    kind: FileKind,
    flags: &PlanFlags,
) -> Result<Side, Failure> {
    let name = path.display().to_string();
    let (config, mut request) = match kind {
        FileKind::Plan => {
            let plan = Plan::from_json(text)
                .map_err(|e| invalid(format!("cannot read plan `{name}`: {e}")))?;
            return Ok(Side {
                plan,
                compiled: false,
            });
        }
        FileKind::Config => {
            let config = Config::parse_with(&name, text, &resolver::Shell)?;
            let request = PlanRequest {
                config_name: name,
                ..PlanRequest::default()
            };
            (config, request)
        }
        FileKind::Spec => {
            let dir = path.parent().unwrap_or(Path::new(""));
            let spec = JobSpec::parse_from(files, &name, text, dir, &resolver::Shell)?;
            (spec.config, spec.request)
        }
    };
    apply_flags(flags, &mut request)?;
    Ok(Side {
        plan: compile(&config, &request)?,
        compiled: true,
    })
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        ..invalid(message)
    }
}

/// `pogo diff`: exit 0 when the plans run the same rollout, 2 when they differ.
fn diff(args: DiffArgs, out: &mut impl Write) -> Result<u8, Failure> {
    let read = |files: &dyn Files, path: &Path| {
        files
            .read(path)
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))
    };
    let (old, new, labels, note) = match &args.git {
        None => {
            let (Some(old_path), Some(new_path), None) = (&args.old, &args.new, &args.config)
            else {
                return Err(usage(
                    "give two files to compare (OLD NEW), or --git REV and one file",
                ));
            };
            let (old_path, new_path) = (normalize(old_path), normalize(new_path));
            let sides = [&old_path, &new_path].map(|path| {
                read(&Filesystem, path).and_then(|text| {
                    let kind = file_kind(&text);
                    load_side(&Filesystem, path, &text, kind, &args.flags)
                })
            });
            let [old, new] = sides;
            let labels = (
                old_path.display().to_string(),
                new_path.display().to_string(),
            );
            (old?, new?, labels, None)
        }
        Some(rev) => {
            let path = match (&args.old, &args.new, &args.config) {
                (Some(spec), None, None) => spec,
                (None, None, Some(config)) => config,
                _ => {
                    return Err(usage(
                        "with --git, give one plan spec (or plan file), or --config FILE",
                    ))
                }
            };
            let path = normalize(path);
            let forced = |text: &str| match args.config {
                Some(_) => FileKind::Config,
                None => file_kind(text),
            };
            let text = read(&Filesystem, &path)?;
            let new = load_side(&Filesystem, &path, &text, forced(&text), &args.flags)?;
            let git = git::GitRevision::open(rev, path.parent().unwrap_or(Path::new("")))
                .map_err(invalid)?;
            let labels = (
                format!("{rev}:{}", path.display()),
                path.display().to_string(),
            );
            match git.read(&path) {
                Err(ReadError::NotFoundAt(_)) => {
                    // A spec new in a pull request: everything in it is added.
                    let note = format!(
                        "`{}` does not exist at {rev}: it is new, so everything in it is added",
                        path.display()
                    );
                    let old = Side {
                        plan: pogo_planner::diff::nothing_before(&new.plan),
                        compiled: new.compiled,
                    };
                    (old, new, labels, Some(note))
                }
                Err(e) => {
                    return Err(invalid(format!(
                        "cannot read `{}` at {rev}: {e}",
                        path.display()
                    )))
                }
                Ok(text) => {
                    let old = load_side(&git, &path, &text, forced(&text), &args.flags).map_err(
                        |mut failure| {
                            failure.message.push_str(&format!(
                                "note: the errors above are in the files as they are at {rev} \
                                 (the old side of the diff)\n"
                            ));
                            failure
                        },
                    )?;
                    (old, new, labels, None)
                }
            }
        }
    };
    if args.flags.given() && !old.compiled && !new.compiled {
        return Err(usage(
            "the plan options (--targets, --command, --concurrent...) apply to plan specs and \
             configs, and both sides are plan files",
        ));
    }
    let changes = pogo_planner::diff(&old.plan, &new.plan);
    let report = diff::Report {
        text: args
            .text
            .then(|| diff::unified(&old.plan, &new.plan, &labels.0, &labels.1)),
        old: labels.0,
        new: labels.1,
        note,
        diff: &changes,
    };
    let text = match args.format {
        DiffFormat::Terminal => {
            use std::io::IsTerminal;
            let color = std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            diff::terminal(&report, args.full, color)
        }
        DiffFormat::Json => diff::json(&report),
        DiffFormat::Markdown => diff::markdown(&report),
    };
    emit(out, &text)?;
    Ok(if changes.is_empty() {
        exit::OK
    } else {
        exit::DIFFERENT
    })
}
