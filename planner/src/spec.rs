//! Plan specs: a job declared in a YAML file (config, targets, command, run options), so that a
//! rollout is reviewed in a repository like any other change. Also host files and durations.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::compile::{FailureLimit, GateRequest, JobLimit, PlanRequest, TargetSpec};
use crate::config::{yaml_error, Config, Limit};
use crate::diag::{suggest, Diagnostic, Errors, PlanError, Source, Span};
use crate::files::{Files, Filesystem};
use crate::resolve::TagResolver;
use crate::yaml::{self, Node, Value};
use pogo_model::{Approval, Verify};

const SPEC_KEYS: [&str; 16] = [
    "config",
    "targets",
    "hostfile",
    "command",
    "concurrent",
    "unconstrained",
    "timeout",
    "retries",
    "max_failures",
    "run_timeout",
    "max_output",
    "strict_targets",
    "before",
    "verify",
    "after",
    "gates",
];

/// A plan spec, loaded: its config and the request it makes.
#[derive(Debug)]
pub struct JobSpec {
    pub config: Config,
    pub request: PlanRequest,
}

impl JobSpec {
    /// Reads a plan spec and the config and host file it names (paths relative to the spec).
    /// External tags of its config run through `resolver`.
    pub fn load(path: &Path, resolver: &dyn TagResolver) -> Result<JobSpec, PlanError> {
        JobSpec::load_from(&Filesystem, path, resolver)
    }

    /// [`JobSpec::load`], reading the spec, its config and its host file from `files`.
    pub fn load_from(
        files: &dyn Files,
        path: &Path,
        resolver: &dyn TagResolver,
    ) -> Result<JobSpec, PlanError> {
        let name = path.display().to_string();
        let text = read(files, path, "plan spec")?;
        JobSpec::parse_from(
            files,
            &name,
            &text,
            path.parent().unwrap_or(Path::new("")),
            resolver,
        )
    }

    /// Parses spec text; `dir` is where relative paths in it start from.
    pub fn parse(
        name: &str,
        text: &str,
        dir: &Path,
        resolver: &dyn TagResolver,
    ) -> Result<JobSpec, PlanError> {
        JobSpec::parse_from(&Filesystem, name, text, dir, resolver)
    }

    /// [`JobSpec::parse`], reading the files the spec names from `files`.
    pub fn parse_from(
        files: &dyn Files,
        name: &str,
        text: &str,
        dir: &Path,
        resolver: &dyn TagResolver,
    ) -> Result<JobSpec, PlanError> {
        let source = Source::file(name, text);
        let root = yaml::parse(text).map_err(|e| PlanError::one(yaml_error(&source, e)))?;
        let Some(root) = root else {
            return Err(
                Diagnostic::at(Span::start(&source), "the plan spec is empty")
                    .with_help("a plan spec needs at least `config:`; see docs/plan-spec.md")
                    .into(),
            );
        };
        let Value::Map(map) = &root.value else {
            return Err(Diagnostic::at(
                span(&source, &root),
                format!("a plan spec is a mapping, not {}", root.kind()),
            )
            .into());
        };

        let mut errors = Errors::default();
        let mut request = PlanRequest {
            spec_name: Some(name.to_string()),
            ..PlanRequest::default()
        };
        let mut config = None;
        let mut seen = std::collections::HashMap::new();
        for (key, value) in map {
            let Some(key_text) = key.as_str() else {
                errors.push(Diagnostic::at(span(&source, key), "a key must be a name"));
                continue;
            };
            if let Some(line) = seen.insert(key_text, key.pos.line) {
                errors.push(Diagnostic::at(
                    span(&source, key),
                    format!("`{key_text}` appears twice in the plan spec (first on line {line})"),
                ));
                continue;
            }
            let at = span(&source, value);
            let scalar = |errors: &mut Errors| -> Option<&str> {
                let text = value.as_str();
                if text.is_none() {
                    errors.push(Diagnostic::at(
                        at.clone(),
                        format!("`{key_text}` must be a single value, not {}", value.kind()),
                    ));
                }
                text
            };
            match key_text {
                "config" => {
                    config = load_config_ref(
                        files,
                        &source,
                        value,
                        dir,
                        resolver,
                        &mut errors,
                        &mut request,
                    )
                }
                "targets" => match &value.value {
                    Value::Scalar(text) => request.targets.push(TargetSpec {
                        text: text.clone(),
                        span: at,
                    }),
                    Value::Seq(items) => {
                        for item in items {
                            match item.as_str() {
                                Some(text) => request.targets.push(TargetSpec {
                                    text: text.to_string(),
                                    span: span(&source, item),
                                }),
                                None => errors.push(Diagnostic::at(
                                    span(&source, item),
                                    format!(
                                        "a target is a host, a pattern or a `$tag`, not {}",
                                        item.kind()
                                    ),
                                )),
                            }
                        }
                    }
                    _ => errors.push(Diagnostic::at(
                        at,
                        "`targets` must be a list (or a comma list) of hosts, patterns and `$tag`s",
                    )),
                },
                "hostfile" => {
                    if let Some(file) = scalar(&mut errors) {
                        match read_hostfile_from(files, &normalize(&dir.join(file))) {
                            Ok(targets) => request.targets.extend(targets),
                            Err(e) => errors.extend(located_at(e, &at)),
                        }
                    }
                }
                "command" => request.command = scalar(&mut errors).map(str::to_string),
                "before" => request.before = phase_command(value, key_text, at, &mut errors),
                "after" => request.after = phase_command(value, key_text, at, &mut errors),
                "verify" => request.verify = verify_of(&source, value, &mut errors),
                "gates" => request.gates = gates_of(&source, value, &mut errors),
                "concurrent" => {
                    if let Some(text) = scalar(&mut errors) {
                        match Limit::parse(text) {
                            Ok(limit) => {
                                if request.concurrent == JobLimit::Unconstrained {
                                    errors.push(conflict(at));
                                } else {
                                    request.concurrent = JobLimit::Limit(limit);
                                }
                            }
                            Err(problem) => errors.push(
                                Diagnostic::at(at, format!("invalid concurrent: {problem}"))
                                    .with_help("write a number of hosts (`20`) or a percentage of the targets (`10%`)"),
                            ),
                        }
                    }
                }
                "unconstrained" | "strict_targets" => {
                    let Some(text) = scalar(&mut errors) else {
                        continue;
                    };
                    let flag = match text {
                        "true" => true,
                        "false" => false,
                        other => {
                            errors.push(Diagnostic::at(
                                at,
                                format!("`{key_text}` is `true` or `false`, not `{other}`"),
                            ));
                            continue;
                        }
                    };
                    if key_text == "strict_targets" {
                        request.strict_targets = flag;
                    } else if flag {
                        if matches!(request.concurrent, JobLimit::Limit(_)) {
                            errors.push(conflict(at));
                        } else {
                            request.concurrent = JobLimit::Unconstrained;
                        }
                    }
                }
                "timeout" | "run_timeout" => {
                    if let Some(text) = scalar(&mut errors) {
                        match parse_duration(text) {
                            Ok(seconds) if key_text == "timeout" => request.timeout = Some(seconds),
                            Ok(seconds) => request.run_timeout = Some(seconds),
                            Err(problem) => errors
                                .push(Diagnostic::at(at, format!("invalid {key_text}: {problem}"))),
                        }
                    }
                }
                "max_output" => {
                    if let Some(text) = scalar(&mut errors) {
                        match parse_size(text) {
                            Ok(size) => request.max_output = Some(size),
                            Err(problem) => errors
                                .push(Diagnostic::at(at, format!("invalid max_output: {problem}"))),
                        }
                    }
                }
                "retries" => {
                    if let Some(text) = scalar(&mut errors) {
                        match text.parse::<u32>() {
                            Ok(n) => request.retries = n,
                            Err(_) => errors.push(Diagnostic::at(
                                at,
                                format!("invalid retries: `{text}` is not a whole number from 0"),
                            )),
                        }
                    }
                }
                "max_failures" => {
                    if let Some(text) = scalar(&mut errors) {
                        match FailureLimit::parse(text) {
                            Ok(limit) => request.max_failures = limit,
                            Err(problem) => errors.push(Diagnostic::at(
                                at,
                                format!("invalid max_failures: {problem}"),
                            )),
                        }
                    }
                }
                other => {
                    let help = match suggest(other, SPEC_KEYS) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("a plan spec has: {}", SPEC_KEYS.join(", ")),
                    };
                    errors.push(
                        Diagnostic::at(
                            span(&source, key),
                            format!("unknown key `{other}` in the plan spec"),
                        )
                        .with_help(help),
                    );
                }
            }
        }
        if config.is_none() && !seen.contains_key("config") {
            errors.push(
                Diagnostic::at(span(&source, &root), "the plan spec has no `config`").with_help(
                    "add `config: path/to/fleet.cfg`, or the config itself under `config:`",
                ),
            );
        }
        errors.finish(())?;
        Ok(JobSpec {
            config: config.expect("a spec without errors has its config"),
            request,
        })
    }
}

/// `before: CMD` or `after: CMD`: a command, not empty.
fn phase_command(value: &Node, key: &str, at: Span, errors: &mut Errors) -> Option<String> {
    match value.as_str() {
        Some(text) if !text.trim().is_empty() => Some(text.to_string()),
        Some(_) => {
            errors.push(Diagnostic::at(at, format!("`{key}` is an empty command")));
            None
        }
        None => {
            errors.push(Diagnostic::at(
                at,
                format!("`{key}` must be a command, not {}", value.kind()),
            ));
            None
        }
    }
}

/// `gates: {STEP: {gate: CMD, approve: true | {within: 1h}}}`: what waits after each step.
fn gates_of(source: &Arc<Source>, value: &Node, errors: &mut Errors) -> Vec<GateRequest> {
    let Value::Map(entries) = &value.value else {
        errors.push(
            Diagnostic::at(
                span(source, value),
                format!("`gates` must be a mapping of steps, not {}", value.kind()),
            )
            .with_help("write `gates: {$canary: {approve: true}}`, steps named by slot ids"),
        );
        return Vec::new();
    };
    let mut gates = Vec::new();
    for (key, item) in entries {
        let Some(step) = key.as_str() else {
            errors.push(Diagnostic::at(span(source, key), "a step must be a name"));
            continue;
        };
        let mut request = GateRequest {
            step: step.to_string(),
            span: span(source, key),
            gate: None,
            approve: None,
        };
        let Value::Map(fields) = &item.value else {
            errors.push(
                Diagnostic::at(
                    span(source, item),
                    format!(
                        "what waits after `{step}` must be a mapping, not {}",
                        item.kind()
                    ),
                )
                .with_help("`gate: CMD` and/or `approve: true` (or `approve: {within: 1h}`)"),
            );
            continue;
        };
        for (field, v) in fields {
            let at = span(source, v);
            match field.as_str() {
                Some("gate") => request.gate = phase_command(v, "gate", at, errors),
                Some("approve") => match (&v.value, v.as_str()) {
                    (_, Some("true")) => request.approve = Some(Approval { within: None }),
                    (_, Some("false")) => {}
                    (Value::Map(limits), _) => {
                        let mut approval = Approval { within: None };
                        for (name, limit) in limits {
                            match (name.as_str(), limit.as_str().map(parse_duration)) {
                                (Some("within"), Some(Ok(seconds))) => {
                                    approval.within = Some(seconds)
                                }
                                (Some("within"), Some(Err(problem))) => {
                                    errors.push(Diagnostic::at(
                                        span(source, limit),
                                        format!("invalid approve.within: {problem}"),
                                    ))
                                }
                                _ => errors.push(
                                    Diagnostic::at(span(source, name), "unknown key in `approve`")
                                        .with_help("`approve` has `within` (a duration)"),
                                ),
                            }
                        }
                        request.approve = Some(approval);
                    }
                    _ => errors.push(Diagnostic::at(
                        at,
                        "`approve` is `true`, `false` or `{within: DURATION}`",
                    )),
                },
                other => {
                    let help = match other.and_then(|o| suggest(o, ["gate", "approve"])) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "after a step wait a `gate` and/or an `approve`".to_string(),
                    };
                    errors.push(
                        Diagnostic::at(span(source, field), "unknown key after a step")
                            .with_help(help),
                    );
                }
            }
        }
        gates.push(request);
    }
    gates
}

/// `verify: CMD`, or `verify: {command: CMD, within: 2m, every: 5s}`.
fn verify_of(source: &Arc<Source>, value: &Node, errors: &mut Errors) -> Option<Verify> {
    let at = span(source, value);
    let entries = match &value.value {
        Value::Scalar(_) => {
            let command = phase_command(value, "verify", at, errors)?;
            return Some(Verify {
                command,
                within: Verify::WITHIN,
                every: Verify::EVERY,
            });
        }
        Value::Map(entries) => entries,
        _ => {
            errors.push(
                Diagnostic::at(
                    at,
                    format!(
                        "`verify` must be a command or a mapping, not {}",
                        value.kind()
                    ),
                )
                .with_help("write `verify: {command: CMD, within: 2m, every: 5s}`"),
            );
            return None;
        }
    };
    let (mut command, mut within, mut every) = (None, Verify::WITHIN, Verify::EVERY);
    let mut ok = true;
    for (key, item) in entries {
        let item_at = span(source, item);
        match key.as_str() {
            Some("command") => command = phase_command(item, "verify.command", item_at, errors),
            Some(name @ ("within" | "every")) => match item.as_str().map(parse_duration) {
                Some(Ok(seconds)) if name == "within" => within = seconds,
                Some(Ok(seconds)) => every = seconds,
                Some(Err(problem)) => {
                    errors.push(Diagnostic::at(
                        item_at,
                        format!("invalid verify.{name}: {problem}"),
                    ));
                    ok = false;
                }
                None => {
                    errors.push(Diagnostic::at(
                        item_at,
                        format!("`verify.{name}` must be a duration, not {}", item.kind()),
                    ));
                    ok = false;
                }
            },
            other => {
                const KEYS: [&str; 3] = ["command", "within", "every"];
                let help = match other.and_then(|o| suggest(o, KEYS)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "`verify` has `command`, `within` and `every`".to_string(),
                };
                errors.push(
                    Diagnostic::at(span(source, key), "unknown key in `verify`").with_help(help),
                );
                ok = false;
            }
        }
    }
    let Some(command) = command else {
        errors.push(Diagnostic::at(at, "`verify` has no `command`"));
        return None;
    };
    if within == 0 || every == 0 {
        errors.push(Diagnostic::at(
            at,
            "`verify.within` and `verify.every` are 1 second or more",
        ));
        return None;
    }
    ok.then_some(Verify {
        command,
        within,
        every,
    })
}

fn conflict(at: Span) -> Diagnostic {
    Diagnostic::at(
        at,
        "`concurrent` and `unconstrained: true` contradict each other",
    )
    .with_help("keep one: a job-wide limit, or none")
}

fn span(source: &Arc<Source>, node: &Node) -> Span {
    Span::new(source, node.pos, node.width)
}

/// A file the spec names that cannot be read at all is reported where the spec names it.
fn located_at(mut error: PlanError, at: &Span) -> PlanError {
    for d in &mut error.diagnostics {
        if d.span.is_none() && d.file.is_some() {
            d.span = Some(at.clone());
        }
    }
    error
}

/// `config: PATH` (relative to the spec) or `config: {tag: ..., ...}` (inline).
fn load_config_ref(
    files: &dyn Files,
    source: &Arc<Source>,
    value: &Node,
    dir: &Path,
    resolver: &dyn TagResolver,
    errors: &mut Errors,
    request: &mut PlanRequest,
) -> Option<Config> {
    let result = match &value.value {
        Value::Scalar(path) => {
            let path = normalize(&dir.join(path));
            request.config_name = path.display().to_string();
            Config::load_from(files, &path, resolver)
                .map_err(|e| located_at(e, &span(source, value)))
        }
        Value::Map(_) => {
            request.config_name = "inline".to_string();
            Config::from_node(Arc::clone(source), value, canonical(value), resolver, dir)
        }
        _ => Err(Diagnostic::at(
            span(source, value),
            format!(
                "`config` must be a path or a mapping with `tag:`, not {}",
                value.kind()
            ),
        )
        .into()),
    };
    result.map_err(|e| errors.extend(e)).ok()
}

/// A stable text of a YAML tree, so an inline config's digest ignores layout and comments.
fn canonical(node: &Node) -> String {
    match &node.value {
        Value::Null => "~".to_string(),
        Value::Scalar(s) => format!("{s:?}"),
        Value::Seq(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        Value::Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", canonical(k), canonical(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

impl Config {
    /// Reads and parses a config file; external tags run through `resolver`.
    pub fn load(path: &Path, resolver: &dyn TagResolver) -> Result<Config, PlanError> {
        Config::load_from(&Filesystem, path, resolver)
    }

    /// [`Config::load`], reading the file from `files`.
    pub fn load_from(
        files: &dyn Files,
        path: &Path,
        resolver: &dyn TagResolver,
    ) -> Result<Config, PlanError> {
        let text = read(files, path, "config")?;
        Config::parse_with(&path.display().to_string(), &text, resolver)
    }
}

/// `sha256:` of some text, as plans record digests.
pub fn digest(text: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

fn read(files: &dyn Files, path: &Path, what: &str) -> Result<String, PlanError> {
    files.read(path).map_err(|reason| {
        Diagnostic::about_file(
            path.display().to_string(),
            format!("cannot read {what} `{}`: {reason}", path.display()),
        )
        .into()
    })
}

/// Targets from a host file: one host, pattern or `$tag` per line; `#` starts a comment.
pub fn read_hostfile(path: &Path) -> Result<Vec<TargetSpec>, PlanError> {
    read_hostfile_from(&Filesystem, path)
}

/// [`read_hostfile`], reading the file from `files`.
pub fn read_hostfile_from(files: &dyn Files, path: &Path) -> Result<Vec<TargetSpec>, PlanError> {
    let text = read(files, path, "host file")?;
    let source = Source::file(path.display().to_string(), text);
    let mut targets = Vec::new();
    for (number, line) in source.text.lines().enumerate() {
        let content = match line.find('#') {
            Some(at) => &line[..at],
            None => line,
        };
        let entry = content.trim();
        if entry.is_empty() {
            continue;
        }
        let col = content[..content.len() - content.trim_start().len()]
            .chars()
            .count()
            + 1;
        targets.push(TargetSpec {
            text: entry.to_string(),
            span: Span::new(
                &source,
                yaml::Pos {
                    line: number + 1,
                    col,
                },
                entry.chars().count(),
            ),
        });
    }
    Ok(targets)
}

/// Seconds from `600`, `45s`, `10m`, `2h` or `1h30m`. The error is a fragment.
/// A size in bytes: `10MB`, `512KB`, `1GB` (powers of 1024: `MB` and `MiB` are the same),
/// or a number of bytes. At least 1 KiB. The error is a fragment.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let wrong = || {
        format!("`{text}` is not a size; write bytes (`1048576`) or units (`512KB`, `10MB`, `1GB`)")
    };
    let upper = text.to_ascii_uppercase();
    let digits = upper.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = upper[digits.len()..]
        .trim_end_matches("IB")
        .trim_end_matches('B');
    let scale: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(wrong()),
    };
    let size = digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(wrong)?;
    if size < 1024 {
        return Err(format!(
            "`{text}` is less than 1 KiB of output a host may keep"
        ));
    }
    Ok(size)
}

pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let wrong = || {
        format!(
            "`{text}` is not a duration; write seconds (`600`) or units (`45s`, `10m`, `1h30m`)"
        )
    };
    if let Ok(seconds) = text.parse::<u64>() {
        return if seconds == 0 {
            Err("a duration of 0 would end everything at once".to_string())
        } else {
            Ok(seconds)
        };
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(wrong()),
        };
        let n: u64 = number.parse().map_err(|_| wrong())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(wrong)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(wrong());
    }
    Ok(total)
}

/// Removes `.` and resolvable `..` components, so paths recorded in plans read naturally.
pub fn normalize(path: &Path) -> PathBuf {
    let mut parts: Vec<Component> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match parts.last() {
                Some(Component::Normal(_)) => {
                    parts.pop();
                }
                _ => parts.push(component),
            },
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600"), Ok(600));
        assert_eq!(parse_duration("45s"), Ok(45));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("10m5").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(
            normalize(Path::new("examples/plans/../../t/cfgs/one.cfg")),
            PathBuf::from("t/cfgs/one.cfg")
        );
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
    }
}
