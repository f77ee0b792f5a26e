//! `pogo audit RUN`: a run's record checked against its plan (`pogo_executor::audit`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use futures_util::StreamExt;
use pogo_executor::audit::audit;
use pogo_executor::rundir::RunDir;

use crate::failure::{emit, exit, Failure};
use crate::inputs::state_dir;
use crate::remote::{client_failure, find_job, runtime, DispatcherFlags};
use crate::runs::failed;

#[derive(Args)]
#[command(
    long_about = concat!(
        "Check what a finished run did against its plan, from its record: the journal of a \
         local run, or the events of a job on a dispatcher, read in their order in the \
         record.\n\n\
         Checked: at no moment were more of a constraint group's hosts down than its limit \
         (down: running, or ended other than by succeeding, until the run ends or runs the \
         host again); no host started before the slots before its slot were complete; every \
         host ends in exactly one final state, and no host ran again after it succeeded. \
         Prints each group's peak and where in the record it was first reached; each \
         problem names the group or the slot, the host, and its place in the record \
         (session, time from the session's start, journal line or event number).\n\n\
         Each session is checked against the limits it ran under: the plan's, or a lower \
         job-wide limit it was given (--concurrent; journals of earlier releases did not \
         record it, and are checked against the plan's). This is a consistency check of the record, which can be edited by hand: \
         it is not a signature, and it says nothing of what the commands did.\n\n\
         Exit status: 0 when the record agrees with the plan, 1 when it does not or cannot be \
         read.\n\n",
        crate::remote::config_help!()
    ),
    after_help = "Examples:\n  \
        pogo audit last\n  \
        pogo audit 20261124T230102Z-3f9a\n  \
        pogo audit job-20261124T230102Z-3f9a"
)]
pub struct AuditArgs {
    /// The run: its id, the start of its id, or `last`; or a job, `job-...`
    #[arg(value_name = "RUN_ID")]
    run: String,
    /// Where runs are kept [default: $POGO_STATE_DIR, or .pogo in the current directory]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    remote: DispatcherFlags,
}

/// `pogo audit`.
pub fn run(args: AuditArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let (report, passed) = if args.remote.names_job(&args.run) {
        job(&args)?
    } else {
        local(&args)?
    };
    emit(out, &report)?;
    Ok(if passed { exit::OK } else { exit::INVALID })
}

fn local(args: &AuditArgs) -> Result<(String, bool), Failure> {
    let (dir, _) = state_dir(args.state_dir.as_deref())?;
    let run = RunDir::find(&dir, &args.run).map_err(failed)?;
    let plan = run.read_plan().map_err(failed)?;
    let events = run.read_events().map_err(failed)?;
    // One event a line: its place is its line in the journal.
    let numbered: Vec<_> = (1..).zip(events).collect();
    let found = audit(&plan, &numbered);
    let what = format!("run {}", run.id().as_str());
    Ok((
        pogo_views::audit::text(&found, &what, "line"),
        found.passed(),
    ))
}

fn job(args: &AuditArgs) -> Result<(String, bool), Failure> {
    let client = args.remote.client()?;
    let (id, plan, events) = runtime()?.block_on(async {
        let id = find_job(&client, &args.run).await?;
        let plan = client.plan(&id).await.map_err(client_failure)?;
        let mut stream = client.events(&id, 0, false).await.map_err(client_failure)?;
        let mut events = Vec::new();
        while let Some(record) = stream.next().await {
            let record = record.map_err(client_failure)?;
            events.push((record.seq, record.event));
        }
        Ok::<_, Failure>((id, plan, events))
    })?;
    let found = audit(&plan, &events);
    Ok((
        pogo_views::audit::text(&found, &format!("job {id}"), "event"),
        found.passed(),
    ))
}
