//! Refusing stale plans on the command line: `pogo validate PLAN --against SPEC_OR_CONFIG`
//! now, `pogo apply` later (with the same `--allow-stale`). The check itself is the planner's
//! (`pogo_planner::stale`); this module loads what a plan is checked against and words the
//! outcome.

use std::io::Write;
use std::path::{Path, PathBuf};

use pogo_model::Plan;
use pogo_planner::spec::normalize;
use pogo_planner::stale::{check, CheckError};
use pogo_planner::{Config, JobSpec, PlanRequest};

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
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))?;
        match file_kind(&text) {
            FileKind::Plan => Err(invalid(format!(
                "--against takes the config or plan spec a plan was made from, and `{}` is a \
                 plan",
                path.display()
            ))),
            FileKind::Config => {
                let path = normalize(path);
                let config =
                    Config::parse_with(&path.display().to_string(), &text, &resolver::Shell)?;
                Ok(Against {
                    path,
                    config,
                    request: None,
                })
            }
            FileKind::Spec => {
                let spec = JobSpec::load(path, &resolver::Shell)?;
                Ok(Against {
                    path: path.to_path_buf(),
                    config: spec.config,
                    request: Some(spec.request),
                })
            }
        }
    }
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
        Err(CheckError::Stale(stale)) if allow_stale => {
            let warning = format!(
                "warning: {stale}\n  --> {}\n  = note: checked against {}; used anyway \
                 because of --allow-stale\n",
                plan_path.display(),
                against.path.display()
            );
            let _ = std::io::stderr().write_all(warning.as_bytes());
            Ok(format!(
                "stale against {}, allowed by --allow-stale",
                against.path.display()
            ))
        }
        Err(CheckError::Stale(stale)) => Err(Failure {
            message: format!(
                "error: {stale}\n  --> {}\n  = note: checked against {}; to use it all the \
                 same, add --allow-stale\n",
                plan_path.display(),
                against.path.display()
            ),
            code: exit::INVALID,
        }),
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
        let result = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))
            .and_then(|text| match file_kind(&text) {
                FileKind::Plan => read_plan(path),
                _ => Err(invalid(format!(
                    "`{}` is not a plan file: with --against, every file is a plan to check",
                    path.display()
                ))),
            })
            .and_then(|plan| {
                let verdict = check_plan(path, &plan, &against, allow_stale)?;
                Ok(format!(
                    "plan, {}, {verdict}",
                    plural(plan.hosts.len(), "host")
                ))
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
