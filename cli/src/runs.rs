//! `pogo runs` and `pogo log`: the runs kept in the state directory, read back from their
//! journals and logs (`pogo_executor::rundir`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use pogo_executor::rundir::{self, RunDir, RunState};

use crate::failure::{emit, invalid, usage, Failure};
use crate::inputs::state_dir;
use crate::remote::DispatcherFlags;
use pogo_executor::events::FinalState;
use pogo_views::report::{summary, Ledger, Standing, SummaryOptions, Where};

#[derive(Args)]
#[command(
    long_about = "List the runs kept in the state directory (.pogo/runs; --state-dir, \
        POGO_STATE_DIR), oldest first: id, start time (UTC), hosts, how the last session \
        ended, and the command. A run whose journal has no end is `running` while a pogo \
        process holds it, `interrupted` otherwise (that process died): resume it with \
        `pogo apply --resume RUN_ID`."
)]
pub struct RunsArgs {
    /// Print the runs as a JSON array (keys in docs/apply.md)
    #[arg(long)]
    json: bool,
    /// Where runs are kept [default: $POGO_STATE_DIR, or .pogo in the current directory]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "Show what a run did. With no HOST: the run's summary (each host's state, \
         exit code, attempts and duration over every session, why it stopped, the output of \
         failed hosts). With HOSTs: their output, as the command printed it (stderr lines \
         marked `stderr: `; each retry under `--- attempt N ---`). --all shows every host's \
         output, each under a heading; --json prints the run's journal.\n\n\
         -f follows a local run that is going on, from another terminal, until it ends: its \
         events as `pogo apply` prints them without a terminal, then its summary (--json: the \
         journal's lines as they are written), or with one HOST, that host's output as it is \
         written, until the host is done.\n\n\
         A job on a dispatcher is shown instead when RUN_ID starts with `job-` (a job's id), \
         or when --dispatcher is given (then `last` and the start of an id name jobs too): \
         with no HOST, the output of every host, each line as `HOST: text`; with one HOST, \
         its output as it printed it, marked as above. -f follows the output until the job \
         (or the host's task) ends; --json prints the job's events instead, one JSON object \
         per line with its sequence number `seq`. `pogo status JOB` shows the job's \
         state.\n\n",
        crate::remote::config_help!()
    ),
    after_help = "Examples:\n  \
        pogo log last\n  \
        pogo log 20261124T230102Z-3f9a web-e03\n  \
        pogo log 20261124T2301 --all\n  \
        pogo log last --json | jq -c 'select(.event == \"host_finished\")'\n  \
        pogo log last -f\n  \
        pogo log job-20261124T230102Z-3f9a web-e03 -f\n  \
        pogo log --dispatcher last --json"
)]
pub struct LogArgs {
    /// The run: its id, the start of its id, or `last`; or a job, `job-...`
    #[arg(value_name = "RUN_ID")]
    run: String,
    /// Hosts whose output to show
    #[arg(value_name = "HOST")]
    hosts: Vec<String>,
    /// Show the output of every host that printed something, each under a heading
    #[arg(long, conflicts_with = "hosts")]
    all: bool,
    /// Print the run's journal: its events, one JSON object per line
    #[arg(long, conflicts_with_all = ["hosts", "all"])]
    json: bool,
    /// List every host in the summary
    #[arg(long)]
    full: bool,
    /// Where runs are kept [default: $POGO_STATE_DIR, or .pogo in the current directory]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Follow the run as it goes, until it ends: its events (as `pogo apply` prints them
    /// without a terminal, or the journal's lines with --json), or one HOST's output
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    remote: DispatcherFlags,
}

/// A run directory that cannot be read, for the operator.
pub fn failed(error: rundir::RunDirError) -> Failure {
    match error {
        rundir::RunDirError::NotFound { .. } => {
            invalid(format!("{error}; `pogo runs` lists the runs"))
        }
        other => invalid(other.to_string()),
    }
}

/// `pogo runs`.
pub fn runs(args: RunsArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let (dir, _) = state_dir(args.state_dir.as_deref())?;
    let runs = rundir::list(&dir).map_err(failed)?;
    if args.json {
        return emit(out, &pogo_views::runs::json(&runs));
    }
    emit(out, &pogo_views::runs::table(&runs, &dir))
}

/// `pogo log`: a local run's, or a job's when the id says so or --dispatcher is given.
pub fn log(mut args: LogArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let run = std::mem::take(&mut args.run);
    if args.remote.names_job(&run) {
        return job_log(&args, &run, out);
    }
    let remote_only = args.remote.tls_flags_given();
    if !remote_only.is_empty() {
        return Err(usage(format!(
            "{} {} for jobs on a dispatcher (ids starting with `job-`, or with --dispatcher); \
             `{run}` is a local run",
            remote_only.join(", "),
            if remote_only.len() == 1 { "is" } else { "are" }
        )));
    }
    let (state_dir, flag) = state_dir(args.state_dir.as_deref())?;
    let dir = RunDir::find(&state_dir, &run).map_err(failed)?;
    if args.follow {
        return follow_local(&args, &dir, &flag, out);
    }
    if args.json {
        let path = dir.journal_path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))?;
        // Only complete lines: a torn last line was never reported.
        let end = text.rfind('\n').map_or(0, |i| i + 1);
        return emit(out, &text[..end]);
    }
    let plan = dir.followed_plan().map_err(failed)?;
    if args.hosts.is_empty() && !args.all {
        let info = dir.info().map_err(failed)?;
        let mut ledger = Ledger::new(&plan.hosts);
        for event in dir.read_events().map_err(failed)? {
            ledger.record(&event);
        }
        let running = info.state == RunState::Running;
        if !running {
            ledger.interrupt_running();
        }
        let head = pogo_views::runs::log_head(&info, &plan);
        let text = summary(
            &ledger,
            &SummaryOptions {
                place: Where::Run(&dir),
                flags: flag,
                full: args.full,
                running,
                every_output: crate::output::get().verbose,
            },
        );
        return emit(out, &format!("{head}{text}"));
    }
    let hosts: Vec<&String> = if args.all {
        plan.hosts
            .iter()
            .filter(|h| dir.log_path(h).exists())
            .collect()
    } else {
        let unknown: Vec<&String> = args
            .hosts
            .iter()
            .filter(|h| !plan.hosts.contains(h))
            .collect();
        if !unknown.is_empty() {
            return Err(invalid(format!(
                "run {} has no host {}",
                dir.id(),
                unknown
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        args.hosts.iter().collect()
    };
    let headed = hosts.len() > 1 || args.all;
    // Why a host printed nothing, when its end says (an unreachable host never ran).
    let mut ledger = Ledger::new(&plan.hosts);
    for event in dir.read_events().map_err(failed)? {
        ledger.record(&event);
    }
    let reason = |host: &str| -> String {
        plan.hosts
            .iter()
            .position(|h| h == host)
            .map(|i| &ledger.hosts[i])
            .filter(|r| {
                !r.message.is_empty()
                    && !matches!(r.standing, Standing::Done(FinalState::Succeeded))
            })
            .map(|r| format!(": {}", pogo_views::text::printable(&r.message)))
            .unwrap_or_default()
    };
    let mut silent = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let path = dir.log_path(host);
        let file = match std::fs::File::open(&path) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(invalid(format!("cannot read `{}`: {e}", path.display())));
            }
        };
        let file = file.filter(|f| f.metadata().is_ok_and(|m| m.len() > 0));
        if headed {
            emit(
                out,
                &format!("{}==> {host} <==\n", if i > 0 { "\n" } else { "" }),
            )?;
        }
        let Some(file) = file else {
            if headed {
                emit(out, &format!("(no output{})\n", reason(host)))?;
            } else {
                silent.push((host, reason(host)));
            }
            continue;
        };
        // Streamed: a log of 300 MB takes no more memory than a small one. On a terminal, a
        // host's escape sequences are shown rather than acted on.
        let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
        let copied = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            copy_printable(&mut reader, out)
        } else {
            std::io::copy(&mut reader, out).map(drop)
        };
        match copied.and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(invalid(format!("cannot write to stdout: {e}")))
            }
            _ => {}
        }
    }
    for (host, why) in &silent {
        let why = if why.is_empty() { " (yet)" } else { why };
        let _ = writeln!(
            std::io::stderr(),
            "{host} printed nothing in run {}{why}",
            dir.id()
        );
    }
    if args.all && hosts.is_empty() {
        emit(out, "No host printed anything.\n")?;
    }
    Ok(())
}

/// How often `pogo log RUN -f` looks for more of a running run.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// `pogo log RUN -f`: a local run followed from another process, until it ends (no pogo holds
/// its lock any more). Without HOST, its events as `pogo apply` prints them without a
/// terminal, then its summary; with --json, its journal's lines as they are written; with one
/// HOST, that host's output as it is written, until the host is done in the run's session.
fn follow_local(
    args: &LogArgs,
    dir: &RunDir,
    flag: &str,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    if args.all || args.hosts.len() > 1 {
        return Err(usage(
            "-f follows a run's events, or the output of one HOST; for several hosts, follow \
             each in its own terminal, or read them with --all once the run ends",
        ));
    }
    let mut journal = Tail::new(dir.journal_path());
    let mut log = args.hosts.first().map(|host| Tail::new(dir.log_path(host)));
    let plan = dir.followed_plan().map_err(failed)?;
    if let Some(host) = args.hosts.first() {
        if !plan.hosts.contains(host) {
            return Err(invalid(format!("run {} has no host `{host}`", dir.id())));
        }
    }
    let mut text = String::new();
    // The host's state in the session being written: following it ends when it is done.
    let mut host_done = false;
    loop {
        // Whether the run had ended before this read: then what is read is all there is.
        let ended = !dir.is_locked().map_err(failed)?;
        for line in journal.lines()? {
            if args.json {
                text.push_str(&line);
                text.push('\n');
                continue;
            }
            let Ok(event) = serde_json::from_str::<pogo_executor::events::Event>(&line) else {
                continue;
            };
            match (&event, args.hosts.first()) {
                (pogo_executor::events::Event::RunStarted { .. }, Some(_)) => host_done = false,
                (pogo_executor::events::Event::HostFinished { host, .. }, Some(wanted))
                    if host == wanted =>
                {
                    host_done = true
                }
                (_, None) => {
                    for shown in pogo_views::report::event_lines(&event) {
                        text.push_str(&shown);
                        text.push('\n');
                    }
                }
                _ => {}
            }
        }
        if let Some(log) = &mut log {
            // Whole lines only (a character cut between two reads stays whole), the rest once
            // the host is done; on a terminal, a host's escape sequences are shown, not acted
            // on, as without -f.
            let mut bytes = log.complete()?;
            if ended || host_done {
                bytes.append(&mut log.partial);
            }
            let shown = String::from_utf8_lossy(&bytes);
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                for line in shown.split_inclusive('\n') {
                    let (body, newline) = match line.strip_suffix('\n') {
                        Some(body) => (body, "\n"),
                        None => (line, ""),
                    };
                    text.push_str(&pogo_views::text::printable(body));
                    text.push_str(newline);
                }
            } else {
                text.push_str(&shown);
            }
        }
        if !text.is_empty() {
            emit(out, &std::mem::take(&mut text))?;
        }
        if ended || (log.is_some() && host_done) {
            break;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
    if args.json || !args.hosts.is_empty() {
        return Ok(());
    }
    let mut ledger = Ledger::new(&plan.hosts);
    for event in dir.read_events().map_err(failed)? {
        ledger.record(&event);
    }
    ledger.interrupt_running();
    let text = summary(
        &ledger,
        &SummaryOptions {
            place: Where::Run(dir),
            flags: flag.to_string(),
            full: args.full,
            running: false,
            every_output: crate::output::get().verbose,
        },
    );
    emit(out, &format!("\n{text}"))
}

/// A file read as it grows: what was appended since the last read.
struct Tail {
    path: PathBuf,
    offset: u64,
    /// The start of a line not yet complete.
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The bytes appended since the last call (none while the file does not exist).
    fn bytes(&mut self) -> Result<Vec<u8>, Failure> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(invalid(format!(
                    "cannot read `{}`: {e}",
                    self.path.display()
                )))
            }
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", self.path.display())))?;
        self.offset += bytes.len() as u64;
        Ok(bytes)
    }

    /// The complete lines appended since the last call, as bytes; the start of a line not
    /// yet complete stays in `partial`.
    fn complete(&mut self) -> Result<Vec<u8>, Failure> {
        let bytes = self.bytes()?;
        self.partial.extend_from_slice(&bytes);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        Ok(self.partial.drain(..=end).collect())
    }

    /// The complete lines appended since the last call.
    fn lines(&mut self) -> Result<Vec<String>, Failure> {
        let complete = self.complete()?;
        Ok(String::from_utf8_lossy(&complete)
            .lines()
            .map(str::to_string)
            .collect())
    }
}

/// Copies lines, their control sequences shown as `\x1b` ([`pogo_views::text::printable`]).
fn copy_printable(reader: &mut impl std::io::BufRead, out: &mut dyn Write) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (text.as_ref(), ""),
        };
        write!(out, "{}{newline}", pogo_views::text::printable(body))?;
    }
}

/// `pogo log JOB [HOST]`.
fn job_log(args: &LogArgs, job: &str, out: &mut dyn Write) -> Result<(), Failure> {
    if args.state_dir.is_some() {
        return Err(usage(format!(
            "--state-dir is for local runs; `{job}` is a job, kept by the dispatcher"
        )));
    }
    if args.full {
        return Err(usage(format!(
            "--full is for local runs; `pogo status {job} --full` lists every host of a job"
        )));
    }
    if args.hosts.len() > 1 {
        return Err(usage(
            "give one HOST, or none for the output of every host of the job",
        ));
    }
    crate::remote::ops::log(
        crate::remote::ops::JobLog {
            connection: &args.remote,
            job,
            host: args.hosts.first().map(String::as_str),
            json: args.json,
            follow: args.follow,
        },
        out,
    )
}

#[derive(Args)]
#[command(
    long_about = "Approve a step of a local run, or of a job on the dispatcher, that waits for \
        it (a plan with `approve` after that step): the steps ordered after it go on. The \
        running pogo records who approved and when in the run's journal; a run that is not \
        running records it when it is resumed (`pogo apply --resume RUN`). A job (an id \
        starting with `job-`, or with --dispatcher) is approved on the dispatcher, under the \
        name on your operator certificate.\n\n\
        STEP is the step's slot id, as `pogo plan` lists it and the run's line `Step STEP: \
        waiting for approval` says. The approval is recorded under your user name ($USER).",
    after_help = "Examples:\n  \
        pogo approve last 'main.$canary'\n  \
        pogo approve 20261207T031323Z-040e '$role.web.$canary'\n  \
        pogo approve job-20261207T031323Z-0f1e '$role.web.$canary'"
)]
pub struct ApproveArgs {
    /// The run: its id, the start of its id, or `last`
    #[arg(value_name = "RUN")]
    run: String,
    /// The step to approve: its slot id
    #[arg(value_name = "STEP")]
    step: String,
    /// Where runs are kept [default: $POGO_STATE_DIR, or .pogo in the current directory]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    remote: DispatcherFlags,
}

/// `pogo approve RUN STEP`.
pub fn approve(args: ApproveArgs, out: &mut dyn Write) -> Result<(), Failure> {
    if args.remote.names_job(&args.run) {
        let client = args.remote.client()?;
        let summary = crate::remote::runtime()?.block_on(async {
            let id = crate::remote::find_job(&client, &args.run).await?;
            client
                .approve(&id, &args.step)
                .await
                .map_err(crate::remote::client_failure)
        })?;
        return emit(
            out,
            &format!(
                "Step {} of job {} approved; the steps after it go on.\n",
                args.step, summary.id
            ),
        );
    }
    let (state_dir, _) = state_dir(args.state_dir.as_deref())?;
    let dir = RunDir::find(&state_dir, &args.run).map_err(failed)?;
    let plan = dir
        .read_plan()
        .map_err(|e| invalid(format!("cannot read run {}: {e}", dir.id())))?;
    let approvable: Vec<&str> = plan
        .slots()
        .filter(|(_, slot)| slot.approve.is_some())
        .map(|(_, slot)| slot.id.as_str())
        .collect();
    if !approvable.contains(&args.step.as_str()) {
        let steps = if approvable.is_empty() {
            "its plan has no step that waits for an approval".to_string()
        } else {
            format!("its steps that wait for one: {}", approvable.join(", "))
        };
        return Err(invalid(format!(
            "run {} has no step `{}` that waits for an approval; {steps}",
            dir.id(),
            args.step
        )));
    }
    let events = dir.read_events().map_err(failed)?;
    if let Some((by, at)) = events.iter().rev().find_map(|e| match e {
        pogo_executor::events::Event::Approved { step, by, at, .. } if *step == args.step => {
            Some((by.clone(), *at))
        }
        _ => None,
    }) {
        return emit(
            out,
            &format!(
                "Step {} of run {} was approved already, by {by} at {} UTC.\n",
                args.step,
                dir.id(),
                pogo_views::text::utc(at)
            ),
        );
    }
    let by = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()));
    let record = pogo_executor::gates::ApprovalRecord::now(&args.step, &by);
    pogo_executor::gates::write_approval(dir.path(), &record).map_err(|e| {
        invalid(format!(
            "cannot leave the approval in `{}`: {e}",
            dir.path().display()
        ))
    })?;
    let running = dir.is_locked().unwrap_or(false);
    emit(
        out,
        &format!(
            "Step {} of run {} approved by {by}.\n{}\n",
            args.step,
            dir.id(),
            if running {
                "The running pogo goes on with the steps after it."
            } else {
                "No pogo runs it now: `pogo apply --resume RUN` goes on from there."
            }
        ),
    )
}
