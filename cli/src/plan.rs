//! `pogo plan`, `pogo show` and `pogo validate`: compile a plan, print one, check files.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use pogo_model::SealState;
use pogo_planner::{compile, Config, JobSpec, PlanRequest};
use pogo_views::text::plural;

use crate::failure::{emit, exit, invalid, Failure};
use crate::inputs::{
    compile_plan, file_kind, read_plan, write_atomically, FileKind, PlanFlags, PlanSource,
};
use crate::stale::{check_seal, check_seal_state, Edited};
use crate::{resolver, stale};

#[derive(Args)]
pub struct PlanArgs {
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

#[derive(Args)]
pub struct ShowArgs {
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
pub struct ValidateArgs {
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

pub fn plan(args: PlanArgs, out: &mut impl Write) -> Result<(), Failure> {
    let plan = compile_plan(&args.source, &args.flags)?;
    let written = write_plan(&args, &plan, out);
    // The process ends now: a million hosts' strings are given back with its memory, at once,
    // rather than freed one by one (a fifth of planning a million hosts).
    std::mem::forget(plan);
    written
}

fn write_plan(
    args: &PlanArgs,
    plan: &pogo_model::Plan,
    out: &mut impl Write,
) -> Result<(), Failure> {
    match args.output.as_deref() {
        Some(path) if path == Path::new("-") => emit(out, &plan.to_json()),
        Some(path) => {
            write_atomically(path, |out| plan.write_json(out))?;
            emit(out, &pogo_views::plan::plan_text(plan, args.full))?;
            let note = format!("\nPlan written to {}\n", path.display());
            let _ = std::io::stderr().write_all(note.as_bytes());
            Ok(())
        }
        None => emit(out, &pogo_views::plan::plan_text(plan, args.full)),
    }
}

pub fn show(args: ShowArgs, out: &mut impl Write) -> Result<(), Failure> {
    let plan = read_plan(&args.plan)?;
    check_seal(&args.plan, &plan, Edited::Warn)?;
    match args.format {
        ShowFormat::Table => emit(out, &pogo_views::plan::plan_text(&plan, args.full)),
        ShowFormat::Json => emit(out, &plan.to_json()),
        ShowFormat::Mermaid => {
            let text = pogo_views::graph::mermaid(&plan);
            if let Some(warning) = pogo_views::graph::mermaid_too_large(&text) {
                let _ = std::io::stderr().write_all(warning.as_bytes());
            }
            emit(out, &text)
        }
        ShowFormat::Dot => emit(out, &pogo_views::graph::dot(&plan)),
    }
}

pub fn validate(args: ValidateArgs, out: &mut impl Write) -> Result<(), Failure> {
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
    let text = pogo_planner::files::read_text(path)
        .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))?;
    match file_kind(&text) {
        FileKind::Plan => {
            let plan = read_plan(path)?;
            let state = plan.seal_state();
            check_seal_state(path, &state, Edited::Warn)?;
            let seal = match state {
                SealState::Intact => "sealed",
                SealState::Legacy => "format 1, unsealed",
                SealState::Missing => "NOT SEALED",
                SealState::Edited { .. } => "EDITED after it was sealed",
            };
            Ok(format!(
                "plan, {}, {seal}",
                plural(plan.hosts.len(), "host")
            ))
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
