//! Refusing plans that are not what was reviewed, on the command line:
//!
//! - edited plans: a plan whose content does not match its seal (`pogo_model::Seal`) is
//!   refused by `pogo apply` and `pogo simulate` unless `--allow-edited`, and read with a
//!   warning by `pogo show`, `pogo diff` and `pogo validate`;
//! - stale plans: `pogo apply PLAN` checks the plan against the config or plan spec it
//!   records (`source`), found beside the plan file or from the current directory, without
//!   running inventory commands (the plan's `external_tags` stand in for them); `--against
//!   SPEC_OR_CONFIG` checks against the given file and runs them. `--allow-stale` runs a stale
//!   plan anyway.
//!
//! The check itself is the planner's (`pogo_planner::stale`); this module loads what a plan is
//! checked against and words the outcome.

use std::io::Write;
use std::path::{Path, PathBuf};

use pogo_model::{Plan, SealState, ALLOW_EDITED, ALLOW_STALE};
use pogo_planner::spec::normalize;
use pogo_planner::stale::{check, CheckError};
use pogo_planner::{Config, JobSpec, PlanRequest, TagResolver};

use crate::failure::{emit, exit, invalid, Failure};
use crate::inputs::{file_kind, read_plan, FileKind};
use crate::resolver;
use pogo_views::text::plural;

/// What plans are checked against: the current config, and the plan spec's request when it
/// is a spec.
pub struct Against {
    pub path: PathBuf,
    pub config: Config,
    pub request: Option<PlanRequest>,
}

impl Against {
    /// Loads a config or a plan spec (told apart as `pogo validate` does), running the
    /// commands of its external tags, so that the inventory they give today is compared.
    pub fn load(path: &Path) -> Result<Against, Failure> {
        Against::load_with(path, &resolver::Shell)
    }

    /// [`Against::load`], with external tags resolved by `tags`.
    fn load_with(path: &Path, tags: &dyn TagResolver) -> Result<Against, Failure> {
        let text = pogo_planner::files::read_text(path)
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))?;
        match file_kind(&text) {
            FileKind::Plan => Err(invalid(format!(
                "--against takes the config or plan spec a plan was made from, and `{}` is a \
                 plan",
                path.display()
            ))),
            FileKind::Config => {
                let path = normalize(path);
                let config = Config::parse_with(&path.display().to_string(), &text, tags)?;
                Ok(Against {
                    path,
                    config,
                    request: None,
                })
            }
            FileKind::Spec => {
                let spec = JobSpec::load(path, tags)?;
                Ok(Against {
                    path: path.to_path_buf(),
                    config: spec.config,
                    request: Some(spec.request),
                })
            }
        }
    }
}

/// What a command does with a plan whose seal does not match its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    /// `pogo apply`, `pogo simulate`: refuse it, unless the operator allows it.
    Refuse { allow: bool },
    /// `pogo show`, `pogo diff`, `pogo validate`: read it, with a warning.
    Warn,
}

/// Checks the plan's seal. Returns the override to record when an edited plan is allowed.
pub fn check_seal(
    path: &Path,
    plan: &Plan,
    edited: Edited,
) -> Result<Option<&'static str>, Failure> {
    check_seal_state(path, &plan.seal_state(), edited)
}

/// [`check_seal`] of a seal state already computed (the digests are of the whole plan).
pub fn check_seal_state(
    path: &Path,
    state: &SealState,
    edited: Edited,
) -> Result<Option<&'static str>, Failure> {
    let Some(problem) = state.problem() else {
        return Ok(None);
    };
    let warn = |note: &str| {
        let _ = std::io::stderr()
            .write_all(format!("warning: {problem}\n  --> {}\n{note}", path.display()).as_bytes());
    };
    match (edited, state) {
        // A format 1 plan cannot say whether it was edited: runs of the previous release
        // resume, and its plans still run, with the warning.
        (_, SealState::Legacy) | (Edited::Warn, _) => {
            warn("");
            Ok(None)
        }
        (Edited::Refuse { allow: true }, _) => {
            warn("  = note: used anyway because of --allow-edited, which the run records\n");
            Ok(Some(ALLOW_EDITED))
        }
        (Edited::Refuse { allow: false }, _) => Err(Failure {
            message: format!(
                "error: {problem}\n  --> {}\n  = note: a plan runs as `pogo plan` wrote it \
                 and a reviewer approved it; `pogo diff REVIEWED_PLAN {}` shows what changed\n  \
                 = help: compile it again with `pogo plan`, or run it as it is with \
                 --allow-edited\n",
                path.display(),
                path.display()
            ),
            code: exit::INVALID,
        }),
    }
}

/// Answers an external tag's command with the hosts the plan recorded for it, so that a plan
/// is checked against its config without running inventory commands.
struct Recorded<'a>(&'a Plan);

impl TagResolver for Recorded<'_> {
    fn run(&self, command: &str, _dir: &Path) -> Result<String, String> {
        Ok(self
            .0
            .external_tags
            .iter()
            .find(|t| t.command == command)
            .map(|t| t.hosts.join("\n"))
            .unwrap_or_default())
    }
}

/// Where the plan's recorded source (its spec, else its config) may be: beside the plan file
/// first, then from the current directory, as `pogo plan` was given it. None for a plan of an
/// inline config without a spec file.
fn source_candidates(plan_path: &Path, plan: &Plan) -> Vec<PathBuf> {
    let recorded = match (&plan.source.spec, plan.source.config.as_str()) {
        (Some(spec), _) => PathBuf::from(spec),
        (None, "inline" | pogo_model::NO_CONFIG) => return Vec::new(),
        (None, config) => PathBuf::from(config),
    };
    if recorded.is_absolute() {
        return vec![recorded];
    }
    let beside = plan_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|dir| normalize(&dir.join(&recorded)));
    let mut candidates: Vec<PathBuf> = beside.into_iter().collect();
    if !candidates.contains(&recorded) {
        candidates.push(recorded);
    }
    candidates.into_iter().filter(|p| p.is_file()).collect()
}

/// `pogo apply PLAN` without --against: checks the plan against the sources it records, when
/// they can be found. Returns the override to record when a stale plan is allowed.
pub fn check_sources(
    plan_path: &Path,
    plan: &Plan,
    allow_stale: bool,
) -> Result<Option<&'static str>, Failure> {
    let candidates = source_candidates(plan_path, plan);
    if candidates.is_empty() {
        let no_file = [pogo_model::NO_CONFIG, "inline"].contains(&plan.source.config.as_str());
        if !no_file || plan.source.spec.is_some() {
            let recorded = plan.source.spec.as_deref().unwrap_or(&plan.source.config);
            let _ = writeln!(
                std::io::stderr(),
                "warning: the plan's source `{recorded}` is not here (looked beside {} and in \
                 the current directory), so whether the plan is stale was not checked; give \
                 it with --against to check",
                plan_path.display()
            );
        }
        return Ok(None);
    }
    let mut first_stale = None;
    for path in &candidates {
        let against = Against::load_with(path, &Recorded(plan))?;
        match check(plan, &against.config, against.request.as_ref()) {
            Ok(()) => return Ok(None),
            Err(CheckError::Invalid(error)) => return Err(error.into()),
            Err(CheckError::Stale(stale)) => {
                first_stale.get_or_insert((against, stale));
            }
        }
    }
    let (against, stale) = first_stale.expect("a candidate was checked");
    stale_verdict(plan_path, &against, stale, allow_stale).map(|_| Some(ALLOW_STALE))
}

/// A stale plan refused, or with `allow_stale` reported on stderr and accepted (the summary
/// for `ok:`).
fn stale_verdict(
    plan_path: &Path,
    against: &Against,
    stale: pogo_planner::StaleError,
    allow_stale: bool,
) -> Result<String, Failure> {
    if allow_stale {
        let warning = format!(
            "warning: {stale}\n  --> {}\n  = note: checked against {}; used anyway because \
             of --allow-stale\n",
            plan_path.display(),
            against.path.display()
        );
        let _ = std::io::stderr().write_all(warning.as_bytes());
        return Ok(format!(
            "stale against {}, allowed by --allow-stale",
            against.path.display()
        ));
    }
    Err(Failure {
        message: format!(
            "error: {stale}\n  --> {}\n  = note: checked against {}; to use it all the \
             same, add --allow-stale\n",
            plan_path.display(),
            against.path.display()
        ),
        code: exit::INVALID,
    })
}

/// Checks one plan. A fresh plan gives the summary for `ok:`; a stale one is refused, or
/// with `allow_stale` reported on stderr and accepted.
pub fn check_plan(
    plan_path: &Path,
    plan: &Plan,
    against: &Against,
    allow_stale: bool,
) -> Result<String, Failure> {
    match check(plan, &against.config, against.request.as_ref()) {
        Ok(()) => Ok(format!("up to date with {}", against.path.display())),
        Err(CheckError::Invalid(error)) => Err(error.into()),
        Err(CheckError::Stale(stale)) => stale_verdict(plan_path, against, stale, allow_stale),
    }
}

/// `pogo validate PLAN... --against SPEC_OR_CONFIG`.
pub fn validate_against(
    files: &[PathBuf],
    against: &Path,
    allow_stale: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let against = Against::load(against)?;
    let mut failures = Vec::new();
    for path in files {
        let result = pogo_planner::files::read_text(path)
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))
            .and_then(|text| match file_kind(&text) {
                FileKind::Plan => read_plan(path),
                _ => Err(invalid(format!(
                    "`{}` is not a plan file: with --against, every file is a plan to check",
                    path.display()
                ))),
            })
            .and_then(|plan| {
                // An edited plan is not up to date with anything: it is refused with what its
                // seal names, and with what the comparison names besides.
                let state = plan.seal_state();
                let edited = match state {
                    SealState::Edited { .. } | SealState::Missing => state.problem(),
                    SealState::Intact | SealState::Legacy => {
                        check_seal_state(path, &state, Edited::Warn)?;
                        None
                    }
                };
                let verdict = check_plan(path, &plan, &against, allow_stale);
                match (edited, verdict) {
                    (None, verdict) => Ok(format!(
                        "plan, {}, {}",
                        plural(plan.hosts.len(), "host"),
                        verdict?
                    )),
                    (Some(problem), verdict) => Err(Failure {
                        message: format!(
                            "error: {problem}\n  --> {}\n{}",
                            path.display(),
                            verdict.err().map(|f| f.message).unwrap_or_default()
                        ),
                        code: exit::INVALID,
                    }),
                }
            });
        match result {
            Ok(summary) => emit(out, &format!("ok: {} ({summary})\n", path.display()))?,
            Err(failure) => failures.push(failure.message),
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(Failure {
        message: format!(
            "{}\n{} of {} refused\n",
            failures.join("\n"),
            failures.len(),
            plural(files.len(), "plan")
        ),
        code: exit::INVALID,
    })
}
