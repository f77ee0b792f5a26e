//! `pogo diff`: load both sides (plan files, or specs and configs compiled with the same plan
//! options, or a file against itself at a git revision), compare them with the planner, and
//! render the comparison with `pogo_views::diff`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use pogo_model::Plan;
use pogo_planner::spec::normalize;
use pogo_planner::{compile, Config, Files, Filesystem, JobSpec, PlanRequest, ReadError};

use crate::failure::{emit, exit, invalid, usage, Failure};
use crate::inputs::{apply_flags, file_kind, FileKind, PlanFlags};
use crate::{git, resolver};

#[derive(Args)]
pub struct DiffArgs {
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
pub(crate) enum DiffFormat {
    /// Text for a terminal, coloured when stdout is one and NO_COLOR is not set
    Terminal,
    /// A JSON document for tools (keys documented in docs/diff.md)
    Json,
    /// Markdown to post as a pull-request comment
    Markdown,
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
            crate::stale::check_seal(path, &plan, crate::stale::Edited::Warn)?;
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

/// `pogo diff`: exit 0 when the plans run the same rollout, 2 when they differ.
pub fn run(args: DiffArgs, out: &mut impl Write) -> Result<u8, Failure> {
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
            let load = |path: &Path| {
                read(&Filesystem, path).and_then(|text| {
                    let kind = file_kind(&text);
                    load_side(&Filesystem, path, &text, kind, &args.flags)
                })
            };
            // The two sides are read (parsed, checked, maybe compiled) at once: for big plans
            // that is most of a diff. An error of the old side is still told first.
            let (old, new) = std::thread::scope(|scope| {
                let old = scope.spawn(|| load(&old_path));
                let new = load(&new_path);
                let old = old
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (old, new)
            });
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
    let report = pogo_views::diff::Report {
        text: args
            .text
            .then(|| pogo_views::diff::unified(&old.plan, &new.plan, &labels.0, &labels.1)),
        old: labels.0,
        new: labels.1,
        note,
        diff: &changes,
    };
    let shown = show(&report, args.format, args.full, out);
    // The process ends now: the plans' strings go with its memory rather than one by one.
    std::mem::forget(changes);
    std::mem::forget((old, new));
    shown
}

/// Writes a comparison in `format`; the exit status says whether the plans differ.
pub(crate) fn show(
    report: &pogo_views::diff::Report,
    format: DiffFormat,
    full: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let text = match format {
        DiffFormat::Terminal => {
            use std::io::IsTerminal;
            let color = crate::output::get().color(std::io::stdout().is_terminal());
            pogo_views::diff::terminal(report, full, color)
        }
        DiffFormat::Json => pogo_views::diff::json(report),
        DiffFormat::Markdown => pogo_views::diff::markdown(report),
    };
    emit(out, &text)?;
    Ok(if report.diff.is_empty() {
        exit::OK
    } else {
        exit::DIFFERENT
    })
}
