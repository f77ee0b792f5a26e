//! `pogo fleet push|list|show|diff` and `pogo close`: the fleets a dispatcher serves, whose
//! budgets hold every job (docs/fleets.md).

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use pogo_planner::spec::normalize;
use pogo_planner::{Config, Recording};
use pogo_remote::api::PushFleet;
use pogo_views::text::plural;

use super::ops::json_text;
use super::{client_failure, find_job, runtime, DispatcherFlags};
use crate::diff::DiffFormat;
use crate::failure::{emit, exit, invalid, Failure};
use crate::resolver;

#[derive(Args)]
#[command(
    long_about = concat!(
        "Register and read the fleets a dispatcher serves. A fleet is a config (tags, \
         sequences, constraints) whose constraint groups, computed over all its hosts, are \
         budgets that hold every job on the dispatcher: two jobs over `$colo.east` with \
         `max_parallel: 2` take down 2 of its hosts between them, whatever their plans say. \
         A host is in at most one fleet. Once a fleet exists, jobs with hosts in no fleet are \
         refused unless submitted with --allow-unfleeted, and a plan compiled from an older \
         revision of its fleet's config is refused unless --allow-stale. See docs/fleets.md.\n\n",
        super::config_help!()
    ),
    after_help = "Examples:\n  \
        pogo fleet push prod examples/fleet.cfg\n  \
        pogo fleet list\n  \
        pogo fleet show prod\n  \
        pogo fleet diff prod examples/fleet.cfg"
)]
pub struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Push a config as the fleet's new revision (operators)
    #[command(
        long_about = "Push a config as the fleet's new revision; the first push creates the \
            fleet. Tags resolved by a command (`tag: !command CMD`) run here, on this machine, \
            and their output goes with the config: the dispatcher never runs commands. \
            Pushing the config of the current revision again changes nothing.\n\n\
            From then on the config's groups are budgets for every job: running jobs keep the \
            budgets they started under too (the stricter of old and new holds for the hosts \
            they have yet to start), and plans compiled from an older revision are stale.",
        after_help = "Examples:\n  \
            pogo fleet push prod examples/fleet.cfg"
    )]
    Push(PushArgs),
    /// List the fleets: each one's current revision
    List(ListArgs),
    /// Show a revision of a fleet: who pushed it, its budgets, its config
    Show(ShowArgs),
    /// Say what pushing a config would change in a fleet's budgets, or what a revision changed
    #[command(
        long_about = "Compare a fleet's current revision (or --revision N) with a config on \
            this machine: what pushing it would change (hosts added and removed, groups \
            added and removed, limits raised and lowered, hosts entering or leaving a group). \
            Without CONFIG, compare the revision with the one before it. The comparison is \
            `pogo diff`'s, of the two configs compiled over all their hosts.\n\n\
            Exit status: 0 when the budgets are the same, 2 when they differ, 1 on an error.",
        after_help = "Examples:\n  \
            pogo fleet diff prod examples/fleet.cfg\n  \
            pogo fleet diff prod --revision 3"
    )]
    Diff(DiffArgs),
}

#[derive(Args)]
pub struct PushArgs {
    /// The fleet's name: letters, digits, `.`, `_`, `-`
    #[arg(value_name = "NAME")]
    name: String,
    /// The config file
    #[arg(value_name = "CONFIG")]
    config: String,
    /// Print the new revision as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print the list as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The fleet
    #[arg(value_name = "NAME")]
    name: String,
    /// The revision [default: the current one]
    #[arg(long, value_name = "N")]
    revision: Option<u32>,
    /// Print the revision's config file as it was pushed, and nothing else
    #[arg(long, conflicts_with = "json")]
    config: bool,
    /// Every revision of the fleet, oldest first
    #[arg(long, conflicts_with_all = ["revision", "config"])]
    history: bool,
    /// List every host of each budget
    #[arg(long)]
    full: bool,
    /// Print as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

#[derive(Args)]
pub struct DiffArgs {
    /// The fleet
    #[arg(value_name = "NAME")]
    name: String,
    /// A config on this machine [default: compare the revision with the one before]
    #[arg(value_name = "CONFIG")]
    config: Option<String>,
    /// The revision to compare [default: the current one]
    #[arg(long, value_name = "N")]
    revision: Option<u32>,
    /// Output format
    #[arg(long, value_enum, default_value_t = DiffFormat::Terminal)]
    format: DiffFormat,
    /// Show every host instead of cutting long lists (terminal format)
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

pub fn fleet(args: FleetArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    match args.command {
        FleetCommand::Push(args) => push(args, out),
        FleetCommand::List(args) => list(args, out),
        FleetCommand::Show(args) => show(args, out),
        FleetCommand::Diff(args) => diff(args, out),
    }
}

/// Reads a config and runs its external tags' commands here, keeping what they printed.
fn read_config(path: &str) -> Result<PushFleet, Failure> {
    let path = normalize(Path::new(path));
    let text = pogo_planner::files::read_text(&path)
        .map_err(|e| invalid(format!("cannot read config `{}`: {e}", path.display())))?;
    let name = path.display().to_string();
    let recording = Recording::new(&resolver::Shell);
    Config::parse_with(&name, &text, &recording).map_err(|e| invalid(format!("{e}\n")))?;
    Ok(PushFleet {
        config: text,
        config_name: name,
        outputs: recording.into_outputs(),
    })
}

fn push(mut args: PushArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let (name, config) = (
        std::mem::take(&mut args.name),
        std::mem::take(&mut args.config),
    );
    let body = read_config(&config)?;
    let client = args.connection.client()?;
    let before = runtime()?.block_on(async {
        let current = client.fleets().await.map_err(client_failure)?;
        Ok::<_, Failure>(current.into_iter().find(|f| f.fleet == name))
    })?;
    let info = runtime()?
        .block_on(client.push_fleet(&name, &body))
        .map_err(client_failure)?;
    let text = if args.json {
        json_text(&info)?
    } else if before.as_ref().is_some_and(|b| b.revision == info.revision) {
        format!(
            "Fleet {name} is at revision {} already: {config} is its config.\n",
            info.revision
        )
    } else {
        format!(
            "Fleet {name}: revision {} pushed to {}: {}, {}.\n  \
             its budgets:  pogo fleet show {name}\n",
            info.revision,
            client.url(),
            plural(info.hosts, "host"),
            plural(info.budgets, "budget"),
        )
    };
    emit(out, &text).map(|()| exit::OK)
}

fn list(args: ListArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let client = args.connection.client()?;
    let fleets = runtime()?
        .block_on(client.fleets())
        .map_err(client_failure)?;
    let text = if args.json {
        json_text(&fleets)?
    } else if fleets.is_empty() {
        format!(
            "No fleets on the dispatcher at {}: jobs are held by their own plans' limits \
             only. `pogo fleet push NAME CONFIG` registers one.\n",
            client.url()
        )
    } else {
        pogo_views::fleets::revisions_table(&fleets)
    };
    emit(out, &text).map(|()| exit::OK)
}

fn show(mut args: ShowArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let name = std::mem::take(&mut args.name);
    let client = args.connection.client()?;
    if args.history {
        let list = runtime()?
            .block_on(client.fleet_revisions(&name))
            .map_err(client_failure)?;
        let text = if args.json {
            json_text(&list)?
        } else {
            pogo_views::fleets::revisions_table(&list)
        };
        return emit(out, &text).map(|()| exit::OK);
    }
    let revision = runtime()?
        .block_on(client.fleet_revision(&name, args.revision))
        .map_err(client_failure)?;
    let text = if args.config {
        revision.config.clone()
    } else if args.json {
        json_text(&revision)?
    } else {
        pogo_views::fleets::revision_text(&revision, args.full)
    };
    emit(out, &text).map(|()| exit::OK)
}

fn diff(mut args: DiffArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let (name, config) = (std::mem::take(&mut args.name), args.config.take());
    let client = args.connection.client()?;
    let (old, new, labels) = runtime()?.block_on(async {
        let at = client
            .fleet_revision(&name, args.revision)
            .await
            .map_err(client_failure)?;
        let at_label = format!("{name} revision {}", at.info.revision);
        match &config {
            Some(path) => {
                let body = read_config(path)?;
                let plan = pogo_planner::fleet::compile_fleet(
                    &body.config_name,
                    &body.config,
                    &body.outputs,
                )
                .map_err(|e| invalid(format!("{e}\n")))?;
                Ok::<_, Failure>((at.plan, plan, (at_label, path.clone())))
            }
            None if at.info.revision == 1 => Err(invalid(format!(
                "{at_label} is the fleet's first: there is nothing before it to compare with; \
                 give a CONFIG to compare it with"
            ))),
            None => {
                let before = client
                    .fleet_revision(&name, Some(at.info.revision - 1))
                    .await
                    .map_err(client_failure)?;
                let label = format!("{name} revision {}", before.info.revision);
                Ok((before.plan, at.plan, (label, at_label)))
            }
        }
    })?;
    let changes = pogo_planner::diff(&old, &new);
    let report = pogo_views::diff::Report {
        old: labels.0,
        new: labels.1,
        note: None,
        diff: &changes,
        text: None,
    };
    crate::diff::show(&report, args.format, args.full, out)
}

#[derive(Args)]
#[command(
    long_about = concat!(
        "Close a job that has ended: the operator has looked at its hosts that failed (or \
         timed out, were unreachable, lost or cancelled), and they no longer count as down \
         in their fleet's budgets. Until then a failed host holds its place in every budget \
         it is in, whatever the state of the job that broke it, so other jobs over the same \
         groups wait (or end blocked, naming it). A closed job cannot be resumed or retried; \
         a host that later succeeds in any job is back in service anyway.\n\n\
         JOB is a job id, the start of one, or `last`.\n\n",
        super::config_help!()
    ),
    after_help = "Examples:\n  \
        pogo close job-20261124T230102Z-3f9a"
)]
pub struct CloseArgs {
    /// The job: its id, the start of its id, or `last`
    #[arg(value_name = "JOB")]
    job: String,
    /// Print the job's summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: DispatcherFlags,
}

/// `pogo close JOB`.
pub fn close(mut args: CloseArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let given = std::mem::take(&mut args.job);
    let client = args.connection.client()?;
    let summary = runtime()?.block_on(async {
        let id = find_job(&client, &given).await?;
        client.close(&id).await.map_err(client_failure)
    })?;
    let text = if args.json {
        json_text(&summary)?
    } else {
        let down = summary.counts.ended_down();
        format!(
            "Job {} closed: {} no longer down in the fleets' budgets.\n",
            summary.id,
            plural(down, "host")
        )
    };
    emit(out, &text).map(|()| exit::OK)
}
