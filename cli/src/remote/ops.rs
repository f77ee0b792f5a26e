//! The operator's commands about jobs and workers: `pogo jobs`, `pogo status`, `pogo log JOB`,
//! `pogo halt`, `pogo resume`, `pogo retry` and `pogo workers`. Tables render from the API's
//! values alone, so they are tested without a dispatcher.

use std::io::Write;

use clap::Args;
use pogo_remote::api::{HaltJob, ResumeJob, RetryJob};
use pogo_remote::client::Client;

use super::follow::{self, Feed, Update};
use super::{ask_password, client_failure, find_job, runtime, DispatcherFlags};
use crate::failure::{emit, invalid, Failure};
use pogo_views::jobs::{
    jobs_table, state_line, status_text, waiting_hint, why_text, workers_table, LogText,
};

#[derive(Args)]
#[command(
    long_about = concat!(
        "List the dispatcher's jobs, newest first: id, state, hosts, how many succeeded (of \
         all), how many failed (failed, timed out, unreachable or lost), when (UTC) and by \
         whom (the name on the operator's certificate) each was submitted, and the command. \
         --json prints the list as the dispatcher gives it (keys in pogo_remote::api).\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo jobs\n  \
        pogo jobs --dispatcher https://dispatch.example:8443\n  \
        pogo jobs --json | jq -r '.[] | select(.state == \"failed\") | .id'"
)]
pub struct JobsArgs {
    /// Print the jobs as a JSON array
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "Show a job: its command, who submitted it and when, its state with the count of \
         hosts in each state, why it stopped or is blocked, and a table of its hosts (state, \
         attempts, the worker that ran the last attempt, how it ended). Up to 20 hosts every \
         host is listed; past that only the hosts that are running or did not succeed, unless \
         --full.\n\n\
         --why says why hosts have not started: the first host not started of each thread's \
         current step, or the HOSTs named. A host waits for a step of the plan before it, for \
         room in a full group (naming the hosts that hold it, and on a fleet the job each is \
         running or failed in), or for the job it is busy in; `pogo close JOB` frees the \
         places of a finished job's failed hosts.\n\n\
         JOB is a job id, the start of one (`job-` may be left out), or `last` for the newest \
         job.\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo status last\n  \
        pogo status job-20261124T230102Z-3f9a --full\n  \
        pogo status last --why\n  \
        pogo status last --why web03 web04\n  \
        pogo status 20261124T2301 --json | jq '.host_states[] | select(.state != \"succeeded\")'"
)]
pub struct StatusArgs {
    /// The job: its id, the start of its id, or `last`
    #[arg(value_name = "JOB")]
    job: String,
    /// List every host
    #[arg(long)]
    full: bool,
    /// Say why hosts have not started: these HOSTs, or the head of each thread
    #[arg(long, value_name = "HOST", num_args = 0.., value_delimiter = ',')]
    why: Option<Vec<String>>,
    /// Print the job and its hosts as JSON (with --why HOST: why those hosts wait)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "Halt a job: no more of its hosts start; running ones finish (--kill: the workers \
         kill their commands at their next heartbeat). Prints the job's state. `pogo resume` \
         goes on from there.\n\n\
         JOB is a job id, the start of one, or `last`.\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo halt last\n  \
        pogo halt job-20261124T230102Z-3f9a --kill"
)]
pub struct HaltArgs {
    /// The job: its id, the start of its id, or `last`
    #[arg(value_name = "JOB")]
    job: String,
    /// Also kill the commands that run
    #[arg(long)]
    kill: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "Resume a halted or stopped job: the hosts that have not run yet run, within the \
         plan's limits; hosts that failed stay failed (`pogo retry` runs them again). A job \
         that waits for its SSH password (the dispatcher restarted, and keeps passwords in \
         memory only) needs --password. Prints the job's state; `pogo log JOB -f` follows \
         it.\n\n\
         JOB is a job id, the start of one, or `last`.\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo resume last\n  \
        pogo resume job-20261124T230102Z-3f9a --password"
)]
pub struct ResumeArgs {
    /// The job: its id, the start of its id, or `last`
    #[arg(value_name = "JOB")]
    job: String,
    /// Ask for the SSH password, without echo, and give it to the job
    #[arg(long)]
    password: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "Run a job's failed hosts again (those that failed, timed out, were unreachable, \
         lost or cancelled): the HOSTs named, or every one of them. Like `pogo resume`, the \
         hosts that have not run yet run too. Prints the job's state.\n\n\
         JOB is a job id, the start of one, or `last`.\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo retry last\n  \
        pogo retry job-20261124T230102Z-3f9a web-e03 web-e07"
)]
pub struct RetryArgs {
    /// The job: its id, the start of its id, or `last`
    #[arg(value_name = "JOB")]
    job: String,
    /// The hosts to run again [default: every failed host]
    #[arg(value_name = "HOST")]
    hosts: Vec<String>,
    /// Ask for the SSH password, without echo, and give it to the job
    #[arg(long)]
    password: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "List the workers the dispatcher knows: name (its certificate's), whether it is \
         connected (heartbeats), when it was last heard from, its capacity, the tasks it runs \
         now and the tasks it finished since the dispatcher started.\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo workers\n  \
        pogo workers --json"
)]
pub struct WorkersArgs {
    /// Print the workers as a JSON array
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "List the audit trail of the dispatcher: every operator action it took (submit, \
         halt, resume, retry, close, approve, fleet push), with who (the operator \
         certificate's name), when, from which address, and what. Oldest first.\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo audit-log\n  \
        pogo audit-log --json"
)]
pub struct AuditLogArgs {
    /// Print the records as a JSON array
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

/// `pogo audit-log`.
pub fn audit_log(args: AuditLogArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let client = args.connection.client()?;
    let records = runtime()?
        .block_on(client.audit(0))
        .map_err(client_failure)?;
    let text = if args.json {
        json_text(&records)?
    } else if records.is_empty() {
        format!(
            "No operator has acted through the dispatcher at {} yet.\n",
            client.url()
        )
    } else {
        pogo_views::jobs::audit_table(&records)
    };
    emit(out, &text).map(|()| crate::failure::exit::OK)
}

/// Pretty JSON and a newline.
pub(crate) fn json_text(value: &impl serde::Serialize) -> Result<String, Failure> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| invalid(format!("cannot write JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// `pogo jobs`.
pub fn jobs(args: JobsArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let client = args.connection.client()?;
    let jobs = runtime()?.block_on(client.jobs()).map_err(client_failure)?;
    let text = if args.json {
        json_text(&jobs)?
    } else if jobs.is_empty() {
        format!("No jobs on the dispatcher at {}.\n", client.url())
    } else {
        jobs_table(&jobs)
    };
    emit(out, &text).map(|()| crate::failure::exit::OK)
}

/// `pogo status`.
pub fn status(mut args: StatusArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let given = std::mem::take(&mut args.job);
    let client = args.connection.client()?;
    let asked = args.why.clone().unwrap_or_default();
    let (detail, whys) = runtime()?.block_on(async {
        let id = find_job(&client, &given).await?;
        let detail = client.job(&id).await.map_err(client_failure)?;
        let whys = if asked.is_empty() {
            detail.waiting.clone()
        } else {
            client.why(&id, &asked).await.map_err(client_failure)?
        };
        Ok::<_, Failure>((detail, whys))
    })?;
    let text = match (args.json, &args.why) {
        (true, Some(hosts)) if !hosts.is_empty() => json_text(&whys)?,
        (true, _) => json_text(&detail)?,
        (false, why) => {
            let repeat = args.connection.repeat();
            let mut text = status_text(&detail, args.full, &repeat);
            if why.is_some() {
                text.push_str(&why_text(&detail.summary, &whys, !asked.is_empty()));
            } else {
                text.push_str(&waiting_hint(&detail, &repeat));
            }
            text
        }
    };
    emit(out, &text).map(|()| crate::failure::exit::OK)
}

/// What `pogo log JOB` is asked for.
pub struct JobLog<'a> {
    pub connection: &'a DispatcherFlags,
    pub job: &'a str,
    /// One host's output, or every host's (each line prefixed with its host).
    pub host: Option<&'a str>,
    /// The job's events instead of its output.
    pub json: bool,
    /// Follow until the job (or the host) ends.
    pub follow: bool,
}

/// Writes to stdout; `Ok(false)` once it is closed (`pogo log JOB -f | head`).
fn put(out: &mut dyn Write, text: &str) -> Result<bool, Failure> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(invalid(format!("cannot write to stdout: {e}"))),
    }
}

/// Shows every record of `feed` with `show` until it ends; notices go to stderr. Returns
/// how many records were shown.
async fn show_feed<F: Feed>(
    feed: F,
    out: &mut dyn Write,
    mut show: impl FnMut(&F::Record) -> String,
) -> Result<usize, Failure> {
    let mut updates = follow::spawn(feed, 0);
    let mut shown = 0;
    while let Some(update) = updates.recv().await {
        match update {
            Update::Record(record) => {
                shown += 1;
                if !put(out, &show(&record))? {
                    break;
                }
            }
            Update::Notice(text) => eprintln!("{text}"),
            Update::End => break,
            Update::Failed(error) => return Err(client_failure(error)),
        }
    }
    Ok(shown)
}

/// `pogo log JOB [HOST]`: the job's output (or, with `json`, its events).
pub fn log(request: JobLog, out: &mut dyn Write) -> Result<(), Failure> {
    let client = request.connection.client()?;
    runtime()?.block_on(async {
        let id = find_job(&client, request.job).await?;
        if request.json {
            let feed = follow::Events {
                client: client.clone(),
                job: id.clone(),
                until_finished: false,
                follow: request.follow,
            };
            show_feed(feed, out, |record| {
                let mut line = serde_json::to_string(record).unwrap_or_default();
                line.push('\n');
                line
            })
            .await?;
            return Ok(());
        }
        if let Some(host) = request.host {
            check_host(&client, &id, host).await?;
        }
        let feed = follow::Output {
            client: client.clone(),
            job: id.clone(),
            host: request.host.map(str::to_string),
            follow: request.follow,
        };
        let mut format = LogText::new(request.host.is_none());
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            format = format.for_terminal();
        }
        let shown = show_feed(feed, out, |record| {
            let mut text = String::new();
            format.push(record, &mut text);
            text
        })
        .await?;
        if shown == 0 {
            let said = match request.host {
                None => format!("No host printed anything in job {id} (yet)"),
                Some(host) => {
                    // An unreachable host never ran: its reason says more than its silence.
                    let why = client
                        .job(&id)
                        .await
                        .ok()
                        .and_then(|detail| detail.host_states.into_iter().find(|h| h.host == host))
                        .filter(|h| h.state != "succeeded" && !h.message.is_empty())
                        .map(|h| format!(": {}", pogo_views::text::printable(&h.message)))
                        .unwrap_or_else(|| " (yet)".to_string());
                    format!("{host} printed nothing in job {id}{why}")
                }
            };
            let _ = writeln!(std::io::stderr(), "{said}");
        }
        Ok(())
    })
}

/// Refuses a host the job does not have.
async fn check_host(client: &Client, id: &str, host: &str) -> Result<(), Failure> {
    let detail = client.job(id).await.map_err(client_failure)?;
    if detail.host_states.iter().any(|h| h.host == host) {
        Ok(())
    } else {
        Err(invalid(format!(
            "job {id} has no host `{host}`; `pogo status {id}` lists its hosts"
        )))
    }
}

/// `pogo halt`.
pub fn halt(mut args: HaltArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let given = std::mem::take(&mut args.job);
    let client = args.connection.client()?;
    let job = runtime()?.block_on(async {
        let id = find_job(&client, &given).await?;
        client
            .halt(&id, &HaltJob { kill: args.kill })
            .await
            .map_err(client_failure)
    })?;
    emit(out, &state_line(&job, true)).map(|()| crate::failure::exit::OK)
}

/// `pogo resume`.
pub fn resume(mut args: ResumeArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let given = std::mem::take(&mut args.job);
    let client = args.connection.client()?;
    let password = args.password.then(ask_password).transpose()?;
    let job = runtime()?.block_on(async {
        let id = find_job(&client, &given).await?;
        client
            .resume(&id, &ResumeJob { password })
            .await
            .map_err(client_failure)
    })?;
    emit(out, &state_line(&job, false)).map(|()| crate::failure::exit::OK)
}

/// `pogo retry`.
pub fn retry(mut args: RetryArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let given = std::mem::take(&mut args.job);
    let client = args.connection.client()?;
    let password = args.password.then(ask_password).transpose()?;
    let body = RetryJob {
        hosts: args.hosts,
        password,
    };
    let job = runtime()?.block_on(async {
        let id = find_job(&client, &given).await?;
        client.retry(&id, &body).await.map_err(client_failure)
    })?;
    emit(out, &state_line(&job, false)).map(|()| crate::failure::exit::OK)
}

/// `pogo workers`.
pub fn workers(args: WorkersArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let client = args.connection.client()?;
    let mut workers = runtime()?
        .block_on(client.workers())
        .map_err(client_failure)?;
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    let text = if args.json {
        json_text(&workers)?
    } else if workers.is_empty() {
        format!(
            "No workers have reached the dispatcher at {} since it started.\n",
            client.url()
        )
    } else {
        workers_table(&workers)
    };
    emit(out, &text).map(|()| crate::failure::exit::OK)
}
