//! `pogo apply PLAN`, `pogo apply --resume RUN_ID` and `pogo run` (plan and apply in one step,
//! the original `pogo-one`): parse the options, prepare the run (a new run directory, or a run
//! reopened from its journal), then drive the executor's runner on a tokio runtime of its own,
//! with Ctrl-C wired to halt and kill, and render the events as they come and the summary at
//! the end. The rest of the CLI stays synchronous.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};
use pogo_executor::events::{self, Event, RunResult};
use pogo_executor::journal::Journal;
use pogo_executor::rundir::{NewRun, Reopened, RunDir, RunDirError, RunId, RunLock, RunSpec};
use pogo_executor::runner::{self, Control, Reporter, RunSettings};
use pogo_executor::scheduler::{named_retry, FailedHosts, HostState, LimitOverrides, Scheduler};
use pogo_executor::transport::{HostKeyPolicy, Secret, TransportSpec};
use pogo_model::{LoweredLimits, Plan, ALLOW_STALE, JOB_GROUP_ID};
use pogo_planner::spec::parse_duration;
use pogo_planner::{FailureLimit, Limit};
use pogo_remote::api::SubmitJob;

use crate::failure::{emit, exit, invalid, usage, Failure};
use crate::inputs::{read_plan, state_dir, PlanFlags};
use crate::remote::DispatcherFlags;
use crate::stale::{check_plan, check_seal, check_sources, Against, Edited};
use pogo_views::report::{
    summary, Json, Ledger, Lines, Notice, Progress, SummaryOptions, Tee, Where,
};
use pogo_views::text::plural;

#[derive(Args)]
#[command(
    long_about = "Run a plan: its command on every target, in the plan's order, never more \
        hosts down at once than a constraint group allows, stopping once more than \
        max_failures hosts failed.\n\n\
        Each run gets a directory, .pogo/runs/RUN_ID/ (--state-dir, POGO_STATE_DIR): the plan \
        as applied, the journal of every event (made durable before it is shown) and each \
        host's output in logs/HOST.log. On a terminal a live view shows progress; otherwise \
        one `host: message` line per event; --json streams the events as NDJSON, exactly as \
        the journal holds them. A summary table ends the run, with the output of failed \
        hosts.\n\n\
        Ctrl-C (or SIGTERM) once halts the run: no more hosts start, running ones finish \
        (--kill: they are killed at once); twice kills the running commands. A halted, \
        stopped or crashed run continues with --resume RUN_ID, which never runs a succeeded \
        host again. Hosts that failed stay failed unless --retry-failed; so do hosts that \
        were interrupted (started, never finished: the pogo running them died), since their \
        command may have run.\n\n\
        With --dispatcher, the plan runs on the dispatcher's workers instead of from here: \
        pogo checks it as for a local run (--against, lowered limits), submits it as a job \
        (the transport options say how the workers reach the hosts; paths in them are paths \
        on the workers' machines, and must be absolute; --password is asked here and kept in \
        the dispatcher's memory only), then follows the job's events with the same views and \
        summary as a local run. The first Ctrl-C halts the job on the dispatcher (--kill: \
        and kills its running commands) and goes on showing it until it ends; the second \
        detaches, leaving the job to the dispatcher (exit status 4): `pogo log JOB -f` and \
        `pogo status JOB` follow it later. A lost connection halts nothing: pogo reconnects \
        and goes on where it was. --detach submits the job, prints its id and exits. \
        --resume and --state-dir are for local runs; a job goes on with `pogo resume JOB` or \
        `pogo retry JOB`. The dispatcher and the certificate come from the flags, the \
        environment or the client config file (see `pogo jobs --help`); a bare --dispatcher \
        means the configured one.\n\n\
        Exit status: 0 every host succeeded; 3 some hosts failed; 4 the run stopped (failure \
        budget, halt, run timeout) or was blocked; 1 invalid plan or input; 64 usage.",
    after_help = "Examples:\n  \
        pogo apply east.plan.json\n  \
        pogo apply east.plan.json --against examples/plans/east-hotfix.yaml --concurrent 5\n  \
        pogo apply triple.plan.json --transport local\n  \
        pogo apply --resume last --retry-failed\n  \
        pogo apply --resume last --retry-failed=web-e03,web-e07\n  \
        pogo apply east.plan.json --only 'web-e0[1-4]'\n  \
        pogo apply east.plan.json --json | jq -c 'select(.event == \"host_finished\")'\n  \
        pogo apply --dispatcher east.plan.json\n  \
        pogo apply --dispatcher https://dispatch.example:8443 east.plan.json --detach"
)]
pub struct ApplyArgs {
    /// The plan file to run
    #[arg(value_name = "PLAN", required_unless_present = "resume")]
    plan: Option<PathBuf>,
    /// Continue a halted, stopped or interrupted run instead of starting one: its id, the
    /// start of its id, or `last`
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["plan", "against", "allow_edited", "allow_stale"])]
    resume: Option<String>,
    /// With --resume: run the hosts that failed, timed out, were unreachable or were
    /// interrupted again (by default they stay failed); --retry-failed=HOST,... runs only
    /// those again, the other failed hosts staying failed and down
    #[arg(
        long,
        requires = "resume",
        value_name = "HOSTS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    retry_failed: Option<String>,
    /// Run only these hosts of the plan (names or patterns, comma-separated; Ansible's
    /// --limit): the others are skipped, not run. Order and limits stay the whole plan's;
    /// the journal records the choice, and a later --resume without --only runs the rest
    #[arg(long, value_name = "HOSTS")]
    only: Option<String>,
    #[command(flatten)]
    checks: CheckFlags,
    /// List every host in the summary (past 20 hosts, only those that did not succeed are)
    #[arg(long)]
    full: bool,
    /// With --dispatcher: submit the job, print its id and exit, without following it
    #[arg(long, requires = "dispatcher")]
    detach: bool,
    /// With --dispatcher: run hosts that are in no fleet of the dispatcher (once it has
    /// fleets, such hosts are refused); the job records it
    #[arg(long, requires = "dispatcher")]
    allow_unfleeted: bool,
    #[command(flatten)]
    limits: LimitFlags,
    #[command(flatten)]
    exec: ExecFlags,
    #[command(flatten)]
    remote: DispatcherFlags,
}

/// What is checked before a plan runs: that it is what `pogo plan` wrote (its seal), and that
/// it is not stale.
#[derive(Args)]
pub struct CheckFlags {
    /// Check the plan against this config or plan spec, running its inventory commands,
    /// instead of against the sources the plan records (which are checked by default, when
    /// they can be found, beside the plan file or from here)
    #[arg(long, value_name = "SPEC_OR_CONFIG")]
    against: Option<PathBuf>,
    /// Run a stale plan all the same (its config or spec changed since it was made), with a
    /// warning; the run records it
    #[arg(long)]
    allow_stale: bool,
    /// Run a plan edited after `pogo plan` wrote it (its seal does not match), with a
    /// warning; the run records it
    #[arg(long)]
    allow_edited: bool,
}

/// Limits a run may lower (never raise): the plan was reviewed with its limits.
#[derive(Args, Default)]
#[command(next_help_heading = "Limits (a run can lower the plan's, never raise them)")]
pub struct LimitFlags {
    /// Stop starting hosts once more than this many failed: a number, or a percentage of the
    /// targets [default: the plan's]
    #[arg(long, value_name = "N|P%")]
    max_failures: Option<String>,
    /// Job-wide limit on hosts down at once: a number, or a percentage of the targets
    /// [default: the plan's]
    #[arg(long, value_name = "N|P%")]
    concurrent: Option<String>,
}

/// How a run reaches its hosts, what it shows, and where it is kept: `pogo apply` and
/// `pogo run`.
#[derive(Args)]
#[command(next_help_heading = "Run options")]
pub struct ExecFlags {
    /// How commands reach the hosts: `ssh`, or `local` (on this machine, with POGO_HOST set
    /// to the host's name: for trying pogo, tests and demos) [default: ssh; a resumed run:
    /// its own]
    #[arg(long, value_enum)]
    transport: Option<TransportKind>,
    /// An ssh config file to read instead of ~/.ssh/config
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// Log in as this user (ssh -l)
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Connect to this port (ssh -p)
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// Offer only this key (ssh -i, with IdentitiesOnly)
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// How host keys are checked: `strict` (known_hosts only, as ssh without a terminal),
    /// `accept-new` (record unknown keys, refuse changed ones) or `off` [default: strict]
    #[arg(long, value_enum, value_name = "POLICY")]
    known_hosts: Option<KnownHosts>,
    /// Ask for a password once, without echo, and log in with it
    #[arg(long)]
    password: bool,
    /// Pause before retrying a failed host: seconds, or 45s, 10m; 0 for none [default: 5s]
    #[arg(long, value_name = "DURATION")]
    retry_delay: Option<String>,
    /// Stream the run's events as JSON, one object per line (as the journal holds them); the
    /// summary goes to stderr
    #[arg(long)]
    json: bool,
    /// On Ctrl-C, kill the running commands at once instead of letting them finish
    #[arg(long)]
    kill: bool,
    /// Keep runs here [default: $POGO_STATE_DIR, or .pogo in the current directory]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportKind {
    /// OpenSSH, as `ssh HOST COMMAND` (one connection per host for phases or retries);
    /// honours ~/.ssh/config, the agent and known_hosts
    Ssh,
    /// `sh -c` on this machine, with POGO_HOST set
    Local,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KnownHosts {
    Strict,
    AcceptNew,
    Off,
}

impl KnownHosts {
    fn policy(self) -> HostKeyPolicy {
        match self {
            KnownHosts::Strict => HostKeyPolicy::Strict,
            KnownHosts::AcceptNew => HostKeyPolicy::AcceptNew,
            KnownHosts::Off => HostKeyPolicy::Off,
        }
    }
}

/// The default pause before a retry.
const RETRY_DELAY: Duration = Duration::from_secs(5);

#[derive(Args)]
#[command(
    long_about = "Plan and apply in one step (the original pogo-one): compile the config (or \
        plan spec) with the plan options, print the schedule, ask for confirmation, and run \
        it as `pogo apply` does. The plan is kept in the run's directory.\n\n\
        On a terminal it asks before running anything; --yes skips the question, and without \
        a terminal --yes is required. Exit status as `pogo apply`; 4 also when not confirmed.",
    after_help = "Examples:\n  \
        pogo run --config t/cfgs/triple.cfg --transport local --yes \\\n      \
            --command 'echo deployed on $POGO_HOST'\n  \
        pogo run --config fleet.cfg --targets '$colo.east' --password \\\n      \
            --command 'sudo systemctl restart app'\n  \
        pogo run examples/plans/rolling-restart.yaml"
)]
pub struct RunArgs {
    #[command(flatten)]
    source: crate::inputs::PlanSource,
    /// Run without asking for confirmation
    #[arg(long, short = 'y')]
    yes: bool,
    /// Show every host in the schedule and the summary instead of cutting long lists
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    flags: PlanFlags,
    #[command(flatten)]
    exec: ExecFlags,
}

/// The run options as given, checked; what was not given is the run's own on a resume.
struct Exec {
    flags: ExecFlags,
    retry_delay: Option<Duration>,
    state_dir: PathBuf,
    /// ` --state-dir DIR` when one was given on the command line, for the commands the
    /// summary suggests.
    state_dir_flag: String,
}

impl ExecFlags {
    fn check(self) -> Result<Exec, Failure> {
        let retry_delay = match self.retry_delay.as_deref().map(str::trim) {
            None => None,
            Some("0" | "0s") => Some(Duration::ZERO),
            Some(text) => Some(Duration::from_secs(
                parse_duration(text)
                    .map_err(|problem| invalid(format!("invalid --retry-delay: {problem}")))?,
            )),
        };
        let (state_dir, state_dir_flag) = state_dir(self.state_dir.as_deref())?;
        Ok(Exec {
            flags: self,
            retry_delay,
            state_dir,
            state_dir_flag,
        })
    }
}

impl Exec {
    /// The spec of a new local run: the flags, with the operator's defaults (environment,
    /// client config file) and then pogo's for what they leave out.
    fn new_spec(&self) -> Result<RunSpec, Failure> {
        let kind = self.flags.transport.unwrap_or(TransportKind::Ssh);
        let mut spec = self.spec(kind, None)?;
        if let TransportSpec::Ssh {
            user,
            identity,
            known_hosts,
            ..
        } = &mut spec.transport
        {
            if user.is_none() {
                *user = crate::defaults::from_environment("user", None)?.map(|g| g.value);
            }
            if identity.is_none() {
                *identity = crate::defaults::from_environment("identity", None)?
                    .map(|g| std::path::absolute(&g.value).unwrap_or(PathBuf::from(g.value)));
            }
            if self.flags.known_hosts.is_none() {
                if let Some(given) = crate::defaults::from_environment("known_hosts", None)? {
                    let policy = KnownHosts::from_str(&given.value, true).map_err(|_| {
                        invalid(format!(
                            "invalid known_hosts `{}` from {}: strict, accept-new or off",
                            given.value,
                            given.origin("known_hosts")
                        ))
                    })?;
                    *known_hosts = policy.policy().to_string();
                }
            }
        }
        Ok(spec)
    }

    /// The spec of a job: the flags and pogo's defaults alone (the operator's defaults are
    /// for runs from this machine; the workers have their own ssh settings).
    fn job_spec(&self) -> Result<RunSpec, Failure> {
        let kind = self.flags.transport.unwrap_or(TransportKind::Ssh);
        self.spec(kind, None)
    }

    /// The spec of a resumed run: its own, with what the flags change. Its transport cannot
    /// change: a run made over ssh and resumed with the local transport would run the fleet's
    /// command on this machine, once per host.
    fn resumed_spec(&self, id: &RunId, before: Option<RunSpec>) -> Result<RunSpec, Failure> {
        let Some(before) = before else {
            return self.new_spec();
        };
        let kind = match &before.transport {
            TransportSpec::Local => TransportKind::Local,
            TransportSpec::Ssh { .. } => TransportKind::Ssh,
        };
        if let Some(given) = self.flags.transport {
            if given != kind {
                return Err(invalid(format!(
                    "run {id} reaches its hosts with the {} transport, and a resume goes on \
                     the same way; leave out --transport, or start a new run",
                    before.transport.kind()
                )));
            }
        }
        self.spec(kind, Some(before))
    }

    fn spec(&self, kind: TransportKind, before: Option<RunSpec>) -> Result<RunSpec, Failure> {
        let f = &self.flags;
        let transport = match kind {
            TransportKind::Local => {
                let ssh_only: Vec<&str> = [
                    ("--password", f.password),
                    ("--ssh-config", f.ssh_config.is_some()),
                    ("--user", f.user.is_some()),
                    ("--port", f.port.is_some()),
                    ("--identity", f.identity.is_some()),
                    ("--known-hosts", f.known_hosts.is_some()),
                ]
                .into_iter()
                .filter_map(|(flag, given)| given.then_some(flag))
                .collect();
                if !ssh_only.is_empty() {
                    return Err(usage(format!(
                        "{} {} for the ssh transport; --transport local runs commands on \
                         this machine, with no login",
                        ssh_only.join(", "),
                        if ssh_only.len() == 1 { "is" } else { "are" }
                    )));
                }
                TransportSpec::Local
            }
            TransportKind::Ssh => {
                let (user, port, identity, ssh_config, known_hosts, password) =
                    match before.as_ref().map(|b| &b.transport) {
                        Some(TransportSpec::Ssh {
                            user,
                            port,
                            identity,
                            ssh_config,
                            known_hosts,
                            password,
                        }) => (
                            user.clone(),
                            *port,
                            identity.clone(),
                            ssh_config.clone(),
                            known_hosts.clone(),
                            *password,
                        ),
                        _ => (None, None, None, None, "strict".to_string(), false),
                    };
                let absolute = |path: &PathBuf| std::path::absolute(path).unwrap_or(path.clone());
                TransportSpec::Ssh {
                    user: f.user.clone().or(user),
                    port: f.port.or(port),
                    identity: f.identity.as_ref().map(absolute).or(identity),
                    ssh_config: f.ssh_config.as_ref().map(absolute).or(ssh_config),
                    known_hosts: f
                        .known_hosts
                        .map(|k| k.policy().to_string())
                        .unwrap_or(known_hosts),
                    password: f.password || password,
                }
            }
        };
        let retry_delay = self
            .retry_delay
            .or(before
                .as_ref()
                .map(|b| Duration::from_millis(b.retry_delay_ms)))
            .unwrap_or(RETRY_DELAY);
        let (limits, overrides) = before
            .map(|b| (b.limits, b.overrides.clone()))
            .unwrap_or_default();
        Ok(RunSpec {
            transport,
            retry_delay_ms: retry_delay.as_millis() as u64,
            limits,
            overrides,
        })
    }
}

/// A run ready to start.
struct Job {
    plan: Plan,
    spec: RunSpec,
    scheduler: Scheduler,
    /// A new run (its directory is made once the password, if any, is in), or a reopened one.
    existing: Option<(RunDir, RunLock, Journal<Event>)>,
    /// The events of the run's earlier sessions.
    earlier: Vec<Event>,
    /// The hosts this session may start, when `--only` chose some.
    only: Option<Vec<String>>,
}

/// `pogo apply`.
pub fn apply(args: ApplyArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    if args.remote.is_given() {
        return apply_remote(args, out);
    }
    let tls_flags = args.remote.tls_flags_given();
    if !tls_flags.is_empty() {
        return Err(usage(format!(
            "{} {} for a remote apply; add --dispatcher to run the plan on a dispatcher",
            tls_flags.join(", "),
            if tls_flags.len() == 1 { "is" } else { "are" }
        )));
    }
    let exec = args.exec.check()?;
    let retry = Retry::from_flag(args.retry_failed.as_deref())?;
    let job = match &args.resume {
        Some(given) => resume(&exec, given, &args.limits, &retry, args.only.as_deref())?,
        None => {
            let path = args
                .plan
                .as_deref()
                .expect("clap requires PLAN without --resume");
            let plan = read_plan(path)?;
            runnable(&plan)?;
            let overrides = checked(path, &plan, &args.checks)?;
            let mut spec = exec.new_spec()?;
            spec.overrides = overrides;
            let mut job = fresh(plan, spec, &args.limits)?;
            if let Some(given) = args.only.as_deref() {
                let only = Only::parse(&job.plan, given)?;
                let states = vec![HostState::Pending; job.plan.hosts.len()];
                let followed = job.plan.lowered(&job.spec.limits);
                job.scheduler = Scheduler::resume_only(
                    &followed,
                    LimitOverrides::default(),
                    &states,
                    FailedHosts::StayFailed,
                    &only.mask,
                )
                .map_err(|e| invalid(format!("cannot run the plan: {e}")))?;
                say(&only.note(&job.plan));
                job.only = Some(only.hosts);
            }
            job
        }
    };
    execute(job, &exec, args.full, out)
}

/// A note on stderr about what a run is about to do, unless --quiet.
fn say(note: &str) {
    if !crate::output::get().quiet {
        let _ = std::io::stderr().write_all(note.as_bytes());
    }
}

/// What `--retry-failed` asks of a resume.
enum Retry {
    /// Failed hosts stay failed.
    No,
    /// Every failed host runs again.
    All,
    /// These hosts run again; the other failed hosts stay failed and down.
    Named(Vec<String>),
}

impl Retry {
    fn from_flag(flag: Option<&str>) -> Result<Retry, Failure> {
        match flag.map(str::trim) {
            None => Ok(Retry::No),
            Some("") => Ok(Retry::All),
            Some(list) => Ok(Retry::Named(expand_hosts(list, "--retry-failed")?)),
        }
    }
}

/// Host names and patterns, comma-separated, expanded (`web[01-03],db1`).
fn expand_hosts(list: &str, flag: &str) -> Result<Vec<String>, Failure> {
    pogo_planner::pattern::expand(list.trim())
        .map_err(|e| invalid(format!("invalid {flag} `{list}`: {e}")))
}

/// The hosts a session runs when `--only` chose some.
struct Only {
    /// Indexed like the plan's hosts.
    mask: Vec<bool>,
    /// The chosen hosts, in plan order.
    hosts: Vec<String>,
}

impl Only {
    /// Every host given must be the plan's: a typo would otherwise run nothing it meant.
    fn parse(plan: &Plan, given: &str) -> Result<Only, Failure> {
        let names = expand_hosts(given, "--only")?;
        let index: std::collections::HashMap<&str, usize> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let mut mask = vec![false; plan.hosts.len()];
        let mut unknown = Vec::new();
        for name in &names {
            match index.get(name.as_str()) {
                Some(&i) => mask[i] = true,
                None => unknown.push(name.as_str()),
            }
        }
        if !unknown.is_empty() {
            let shown: Vec<&str> = unknown.iter().take(10).copied().collect();
            return Err(invalid(format!(
                "--only names {} that the plan does not have: {}{}",
                plural(unknown.len(), "host"),
                shown.join(", "),
                if unknown.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            )));
        }
        let hosts = plan
            .hosts
            .iter()
            .zip(&mask)
            .filter(|(_, &chosen)| chosen)
            .map(|(h, _)| h.clone())
            .collect();
        Ok(Only { mask, hosts })
    }

    fn note(&self, plan: &Plan) -> String {
        format!(
            "Running only {} of the plan's {} (--only); the others are skipped. Order and \
             limits are the whole plan's.\n",
            plural(self.hosts.len(), "host"),
            plan.hosts.len()
        )
    }
}

/// `pogo apply --dispatcher`: the plan checked and lowered as for a local run, then submitted
/// as a job and followed.
fn apply_remote(mut args: ApplyArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let plan_arg = args.plan.take().map(|p| p.display().to_string());
    if args.resume.is_some() {
        return Err(usage(
            "--resume is for local runs; a job on the dispatcher goes on with `pogo resume \
             JOB`, or `pogo retry JOB` to run its failed hosts again",
        ));
    }
    if args.exec.state_dir.is_some() {
        return Err(usage(
            "--state-dir is for local runs; the dispatcher keeps its jobs itself",
        ));
    }
    if args.only.is_some() {
        return Err(usage(
            "--only is for local runs; on a dispatcher, plan the hosts to run (pogo plan \
             --targets) and submit that plan",
        ));
    }
    for (flag, path) in [
        ("--identity", &args.exec.identity),
        ("--ssh-config", &args.exec.ssh_config),
    ] {
        if let Some(path) = path.as_ref().filter(|p| p.is_relative()) {
            return Err(usage(format!(
                "{flag} {}: with --dispatcher, paths are paths on the workers' machines; \
                 give an absolute one",
                path.display()
            )));
        }
    }
    let Some(plan_arg) = plan_arg else {
        return Err(usage("give the PLAN file to run on the dispatcher"));
    };
    let path = PathBuf::from(plan_arg);
    let exec = args.exec.check()?;
    let plan = read_plan(&path)?;
    runnable(&plan)?;
    let mut overrides = checked(&path, &plan, &args.checks)?;
    // The dispatcher checks the plan against its fleets' configs too: --allow-stale accepts
    // a plan stale there as here.
    let mut wanted = Vec::new();
    if args.checks.allow_stale {
        wanted.push(ALLOW_STALE);
    }
    if args.allow_unfleeted {
        wanted.push(pogo_remote::api::ALLOW_UNFLEETED);
    }
    for flag in wanted {
        if !overrides.iter().any(|o| o == flag) {
            overrides.push(flag.to_string());
        }
    }
    let limits = lower_limits(&plan, &args.limits)?;
    // Checked here as a run would be, so a plan the scheduler refuses is never submitted.
    Scheduler::new(&plan.lowered(&limits), LimitOverrides::default())
        .map_err(|e| invalid(format!("cannot run the plan: {e}")))?;
    let spec = exec.job_spec()?;
    // Before the password is asked: a dispatcher that cannot be named is said first.
    let client = args.remote.client()?;
    let password = match spec.transport {
        TransportSpec::Ssh { password: true, .. } => Some(crate::remote::ask_password()?),
        _ => None,
    };
    let request = SubmitJob {
        plan,
        limits,
        overrides,
        transport: spec.transport,
        retry_delay_ms: spec.retry_delay_ms,
        password,
        submission: Some(crate::remote::submission_id()),
    };
    let options = crate::remote::follow::ApplyOptions {
        json: exec.flags.json,
        kill: exec.flags.kill,
        full: args.full,
        detach: args.detach,
    };
    crate::remote::follow::apply(&client, request, &args.remote.repeat(), options, out)
}

/// `pogo run`: the plan's schedule first, then a confirmation, then `pogo apply`'s run.
pub fn run(args: RunArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let exec = args.exec.check()?;
    let plan = crate::inputs::compile_plan(&args.source, &args.flags)?;
    runnable(&plan)?;
    let table = format!("{}\n", pogo_views::plan::plan_text(&plan, args.full));
    let spec = exec.new_spec()?;
    if crate::output::get().quiet && args.yes {
        // Nothing to confirm: the summary says what ran.
    } else if exec.flags.json {
        // stdout is for the events alone.
        let _ = std::io::stderr().write_all(table.as_bytes());
    } else {
        emit(out, &table)?;
    }
    if !args.yes && !confirm(&plan, &spec)? {
        let _ = writeln!(std::io::stderr(), "Not confirmed: nothing ran.");
        return Ok(exit::STOPPED);
    }
    let job = fresh(plan, spec, &LimitFlags::default())?;
    execute(job, &exec, args.full, out)
}

/// The checks a plan passes before it runs: its seal, then whether it is stale (against
/// --against, or the sources it records). Returns the overrides the run records.
fn checked(path: &Path, plan: &Plan, args: &CheckFlags) -> Result<Vec<String>, Failure> {
    let mut overrides = Vec::new();
    let edited = Edited::Refuse {
        allow: args.allow_edited,
    };
    overrides.extend(check_seal(path, plan, edited)?);
    let stale = match &args.against {
        Some(against) => {
            let against = Against::load(against)?;
            let verdict = check_plan(path, plan, &against, args.allow_stale)?;
            (!verdict.starts_with("up to date")).then_some(ALLOW_STALE)
        }
        None => check_sources(path, plan, args.allow_stale)?,
    };
    overrides.extend(stale);
    Ok(overrides.into_iter().map(str::to_string).collect())
}

fn runnable(plan: &Plan) -> Result<(), Failure> {
    pogo_executor::check_runnable(plan).map_err(|e| invalid(format!("cannot run the plan: {e}")))
}

/// Asks on the terminal; refuses rather than waits when there is none.
fn confirm(plan: &Plan, spec: &RunSpec) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "pogo run asks before running anything, and stdin is not a terminal; add --yes to \
             run without asking",
        ));
    }
    let transport = match spec.transport {
        TransportSpec::Ssh { .. } => "over ssh",
        TransportSpec::Local => "on this machine (--transport local)",
    };
    eprint!(
        "Run `{}` on {} {transport}? [y/N] ",
        plan.command.as_deref().unwrap_or_default(),
        plural(plan.hosts.len(), "host")
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| invalid(format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// A new run of `plan`, its limits lowered as asked.
fn fresh(plan: Plan, mut spec: RunSpec, limits: &LimitFlags) -> Result<Job, Failure> {
    spec.limits = lower_limits(&plan, limits)?;
    let scheduler = Scheduler::new(&plan.lowered(&spec.limits), LimitOverrides::default())
        .map_err(|e| invalid(format!("cannot run the plan: {e}")))?;
    Ok(Job {
        plan,
        spec,
        scheduler,
        existing: None,
        earlier: Vec::new(),
        only: None,
    })
}

/// `--max-failures` and `--concurrent` as limits beside `plan` (the plan a run follows: a
/// resumed run's already lowered), which the run keeps in its `run.json` and a job in the
/// dispatcher's database: a resumed run then holds to them without being told again, and the
/// sealed plan is never rewritten. Raising a limit is refused.
fn lower_limits(plan: &Plan, limits: &LimitFlags) -> Result<LoweredLimits, Failure> {
    let targets = plan.hosts.len() as u64;
    let mut errors = Vec::new();
    let mut lowered = LoweredLimits::default();
    if let Some(text) = &limits.max_failures {
        match FailureLimit::parse(text) {
            Ok(limit) => {
                let amount = limit.resolve(targets);
                if amount.value > plan.options.max_failures.value {
                    errors.push(format!(
                        "--max-failures {text}{} would raise the plan's max_failures \
                         ({}); a run can lower the plan's limits, never raise them",
                        resolved(&amount),
                        plan.options.max_failures
                    ));
                } else {
                    lowered.max_failures = Some(amount);
                }
            }
            Err(problem) => errors.push(format!("invalid --max-failures: {problem}")),
        }
    }
    if let Some(text) = &limits.concurrent {
        match Limit::parse(text) {
            Ok(limit) => {
                let amount = limit.resolve(targets);
                match plan.constraint(JOB_GROUP_ID) {
                    Some(job) if amount.value > job.max_parallel.value => errors.push(format!(
                        "--concurrent {text}{} would raise the plan's job-wide limit ({}); a \
                         run can lower the plan's limits, never raise them",
                        resolved(&amount),
                        job.max_parallel
                    )),
                    // An --unconstrained plan gets a job group of every host
                    // (`Plan::lowered`).
                    _ => lowered.concurrent = Some(amount),
                }
            }
            Err(problem) => errors.push(format!("invalid --concurrent: {problem}")),
        }
    }
    if errors.is_empty() {
        Ok(lowered)
    } else {
        Err(Failure {
            message: errors.iter().map(|e| format!("error: {e}\n")).collect(),
            code: exit::INVALID,
        })
    }
}

/// ` (5 of 50 targets)` for a percentage; nothing for a number.
fn resolved(amount: &pogo_model::Amount) -> String {
    match (amount.percent, amount.base) {
        (Some(_), Some(base)) => format!(" ({} of {base} targets)", amount.value),
        _ => String::new(),
    }
}

fn run_dir_error(error: RunDirError) -> Failure {
    match error {
        RunDirError::NotFound { .. } => invalid(format!("{error}; `pogo runs` lists the runs")),
        other => invalid(other.to_string()),
    }
}

/// Reopens a run and rebuilds its scheduler from the journal.
fn resume(
    exec: &Exec,
    given: &str,
    limits: &LimitFlags,
    retry: &Retry,
    only: Option<&str>,
) -> Result<Job, Failure> {
    let dir = RunDir::find(&exec.state_dir, given).map_err(run_dir_error)?;
    let Reopened {
        dir,
        lock,
        plan,
        spec,
        journal,
        events,
    } = dir.reopen().map_err(run_dir_error)?;
    let mut spec = exec.resumed_spec(dir.id(), spec)?;
    runnable(&plan)?;
    let lowered = lower_limits(&plan.lowered(&spec.limits), limits)?;
    if !lowered.is_none() {
        spec.limits = spec.limits.then(lowered);
        dir.write_spec(&spec).map_err(run_dir_error)?;
    }
    let followed = plan.lowered(&spec.limits);
    let (mut states, mut interrupted) = events::replay(&plan.hosts, &events);
    let id = dir.id().clone();
    if states.iter().all(|s| *s == HostState::Succeeded) {
        return Err(Failure {
            message: format!("Nothing to resume: every host of run {id} succeeded.\n"),
            code: exit::OK,
        });
    }
    let only = only.map(|given| Only::parse(&plan, given)).transpose()?;
    let mut retried = Vec::new();
    let policy = match retry {
        Retry::No => FailedHosts::StayFailed,
        Retry::All => FailedHosts::Retry,
        Retry::Named(names) => {
            let resume = format!("pogo apply --resume {id}");
            let chosen = named_retry(&plan.hosts, &states, names, &format!("run {id}"), &resume)
                .map_err(invalid)?;
            if let Some(only) = &only {
                let outside: Vec<&str> = chosen
                    .iter()
                    .filter(|&&i| !only.mask[i])
                    .map(|&i| plan.hosts[i].as_str())
                    .collect();
                if !outside.is_empty() {
                    return Err(usage(format!(
                        "--retry-failed names hosts that --only leaves out: {}",
                        outside.join(", ")
                    )));
                }
            }
            for &i in &chosen {
                states[i] = HostState::Pending;
            }
            interrupted.retain(|h| !chosen.contains(&h.index()));
            retried = chosen.iter().map(|&i| plan.hosts[i].clone()).collect();
            // The other failed hosts stay down, and failures count from here: theirs must
            // not stop the retry before it starts (as `pogo retry JOB HOST`).
            FailedHosts::StayDown
        }
    };
    let scheduler = match &only {
        Some(only) => Scheduler::resume_only(
            &followed,
            LimitOverrides::default(),
            &states,
            policy,
            &only.mask,
        ),
        None => Scheduler::resume(&followed, LimitOverrides::default(), &states, policy),
    }
    .map_err(|e| invalid(format!("cannot resume run {id}: {e}")))?;
    let mut note = pogo_views::runs::resume_note(
        &followed,
        &states,
        &interrupted,
        matches!(retry, Retry::All),
    );
    if !retried.is_empty() {
        note.push_str(&format!(
            "Running again (--retry-failed=...): {}.\n",
            retried.join(", ")
        ));
    }
    if let Some(only) = &only {
        note.push_str(&only.note(&plan));
    }
    say(&note);
    Ok(Job {
        plan,
        spec,
        scheduler,
        existing: Some((dir, lock, journal)),
        earlier: events,
        only: only.map(|o| o.hosts),
    })
}

/// Runs the job to its end and renders it; the exit code says how it ended.
fn execute(job: Job, exec: &Exec, full: bool, out: &mut dyn Write) -> Result<u8, Failure> {
    let Job {
        plan,
        spec,
        mut scheduler,
        existing,
        earlier,
        only,
    } = job;
    let password = match spec.transport {
        TransportSpec::Ssh { password: true, .. } => {
            Some(Secret::new(crate::remote::ask_password()?))
        }
        _ => None,
    };
    let transport = pogo_executor::transport::from_spec_kept(
        &spec.transport,
        password,
        std::env::current_exe().ok(),
        pogo_executor::transport::multiplex_for(&plan.options),
    )
    .map_err(invalid)?;
    let resumed = existing.is_some();
    let (dir, lock, mut journal) = match existing {
        Some(reopened) => reopened,
        None => {
            let NewRun { dir, lock, journal } =
                RunDir::create(&exec.state_dir, &plan, &spec, SystemTime::now())
                    .map_err(run_dir_error)?;
            (dir, lock, journal)
        }
    };
    // The run follows the plan with the limits lowered; its `plan.json` stays as sealed.
    let plan = plan.lowered(&spec.limits);
    let settings = RunSettings {
        run_id: dir.id().to_string(),
        command: plan.command.clone().unwrap_or_default(),
        timeout: (plan.options.timeout > 0).then(|| Duration::from_secs(plan.options.timeout)),
        retries: plan.options.retries,
        retry_delay: Duration::from_millis(spec.retry_delay_ms),
        run_timeout: plan.options.run_timeout.map(Duration::from_secs),
        log_dir: Some(dir.log_dir()),
        resumed,
        overrides: spec.overrides.clone(),
        only,
        concurrent: spec.limits.concurrent.map(|amount| amount.value),
        max_output: plan
            .options
            .max_output
            .unwrap_or(pogo_executor::hostlog::DEFAULT_MAX_OUTPUT),
        log_reserve: pogo_executor::hostlog::RESERVE,
        phases: pogo_executor::phases::Phases::of(&plan.options),
        run_dir: Some(dir.path().to_path_buf()),
        gates_passed: earlier
            .iter()
            .filter_map(|e| match e {
                Event::GatePassed { step, .. } => Some(step.clone()),
                _ => None,
            })
            .collect(),
        approved: earlier
            .iter()
            .filter_map(|e| match e {
                Event::Approved { step, .. } => Some(step.clone()),
                _ => None,
            })
            .collect(),
    };
    let mut ledger = Ledger::new(&plan.hosts);
    for event in &earlier {
        ledger.record(event);
    }
    // Hosts skipped at the start (left out by --only) are counted by the session's own
    // `hosts_skipped`, not here.
    let done_before = scheduler
        .host_states()
        .iter()
        .filter(|s| s.is_terminal() && **s != HostState::Skipped)
        .count();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| invalid(format!("cannot start the async runtime: {e}")))?;
    let quiet = crate::output::get().quiet;
    let live = !exec.flags.json
        && !quiet
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal();
    let control = Control::new();
    let ended = {
        let mut json;
        let mut lines;
        let mut progress;
        let mut silent;
        let (view, notice): (&mut dyn Reporter, Notice) = if exec.flags.json {
            json = Json { out: &mut *out };
            (&mut json, Notice::Stderr)
        } else if quiet {
            silent = pogo_views::report::Silent;
            (&mut silent, Notice::Stderr)
        } else if live {
            progress = Progress::new(&plan, done_before, &earlier);
            let notice = progress.notice();
            (&mut progress, notice)
        } else {
            lines = Lines::new(&mut *out, progress_every());
            (&mut lines, Notice::Stderr)
        };
        let mut tee = Tee {
            ledger: &mut ledger,
            view,
        };
        runtime.block_on(async {
            let watcher = watch_interrupts(control.clone(), exec.flags.kill, notice)
                .map_err(|e| invalid(format!("cannot watch for Ctrl-C: {e}")))?;
            let ended = runner::run(
                &plan,
                &mut scheduler,
                transport,
                &settings,
                &control,
                &mut journal,
                &mut tee,
            )
            .await;
            watcher.abort();
            Ok::<_, Failure>(ended)
        })?
    };
    // Masters and their sockets are shut down with the runtime still up.
    drop(runtime);
    let id = dir.id().clone();
    let end = match ended {
        Ok(end) => end,
        Err(error) => {
            drop(lock);
            return Err(invalid(format!(
                "run {id} cannot go on: {error}\nThe journal holds what happened until then; \
                 resume with: pogo apply --resume {id}{}",
                exec.state_dir_flag
            )));
        }
    };
    drop(lock);
    let text = summary(
        &ledger,
        &SummaryOptions {
            place: Where::Run(&dir),
            flags: exec.state_dir_flag.clone(),
            full,
            running: false,
            every_output: crate::output::get().verbose,
        },
    );
    if exec.flags.json {
        let _ = std::io::stderr().write_all(format!("\n{text}").as_bytes());
    } else {
        emit(out, &format!("\n{text}"))?;
    }
    Ok(match end.result {
        RunResult::Succeeded if !end.output_lost.is_empty() => exit::OUTPUT_LOST,
        RunResult::Succeeded => exit::OK,
        RunResult::Failed => exit::FAILED,
        RunResult::Stopped => exit::STOPPED,
    })
}

/// Ctrl-C (SIGINT) or SIGTERM once halts the run (or kills, with `--kill`); again, kills.
/// SIGHUP (the terminal closed, the SSH session to the jump host dropped) halts: running
/// hosts finish and the run ends in order, recorded, instead of pogo dying and leaving them
/// unobserved; a hang-up is no operator's second press, so it never kills.
/// The handlers are installed before this returns, so no signal in between ends pogo.
fn watch_interrupts(
    control: Control,
    kill_at_once: bool,
    notice: Notice,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        let mut presses = 0;
        loop {
            tokio::select! {
                Some(()) = interrupt.recv() => {}
                Some(()) = terminate.recv() => {}
                Some(()) = hangup.recv() => {
                    if !control.is_halted() {
                        control.halt();
                        notice.say(
                            "pogo: hung up (SIGHUP): halting; running hosts finish and the run \
                             ends in order",
                        );
                    }
                    continue;
                }
                else => return,
            }
            presses += 1;
            if presses == 1 && !kill_at_once {
                control.halt();
                notice.say(
                    "pogo: halting: no more hosts start, running ones finish; Ctrl-C again \
                     kills them",
                );
            } else if presses == 1 || presses == 2 {
                control.kill();
                notice.say("pogo: killing the running commands");
            }
        }
    }))
}

/// How often `pogo apply` without a terminal writes a progress line: `POGO_PROGRESS_EVERY`
/// (`30s`, `2m`, `0` for never), else every 10 seconds.
fn progress_every() -> Option<std::time::Duration> {
    match std::env::var("POGO_PROGRESS_EVERY") {
        Ok(text) if text.trim() == "0" => None,
        Ok(text) => crate::remote::serve::parse_interval(text.trim())
            .ok()
            .or(Some(pogo_views::report::PROGRESS_EVERY)),
        Err(_) => Some(pogo_views::report::PROGRESS_EVERY),
    }
}
