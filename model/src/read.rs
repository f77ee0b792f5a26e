//! Reading a plan file as strictly as the planner writes one.
//!
//! A plan is read by `pogo apply`, by the dispatcher and by tools; whatever a person or a
//! program put in it, the reader either gets a plan the executor can trust or says exactly
//! what is wrong, naming the key path and its line (`options.timeout: expected a number of
//! seconds, got "600" (line 12, column 16)`):
//!
//! - `format_version` first: a number, of a format this pogo reads (1 or 2);
//! - every key known, none twice (JSON allows duplicates; a plan where `command` appears
//!   twice says two things, and which one a reader keeps is not something to guess);
//! - values of the right type; timeouts of 1 second or more (a 0 would mean no timeout);
//! - then the invariants of [`Plan::validate`] (host names, references, no cycle).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::validate::PlanInvariantError;
use crate::{Plan, FORMAT_VERSION, OLDEST_FORMAT_VERSION};

/// Why a plan file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlanReadError {
    #[error("not a JSON document: {0}")]
    Json(String),
    #[error("not a pogo plan: it has no `format_version`")]
    NotAPlan,
    #[error("malformed plan: format_version: expected a whole number, got {0}")]
    BadVersion(String),
    #[error(
        "plan format {found} is newer than this pogo understands (up to {FORMAT_VERSION}); \
         upgrade pogo"
    )]
    TooNew { found: u64 },
    #[error(
        "plan format {found} is older than this pogo reads ({OLDEST_FORMAT_VERSION} to \
         {FORMAT_VERSION}); compile it again with `pogo plan`"
    )]
    TooOld { found: u64 },
    #[error("malformed plan: {0}")]
    Malformed(String),
    #[error("inconsistent plan: {0}")]
    Invalid(#[from] PlanInvariantError),
}

/// Only the version, whatever else the document holds.
#[derive(Deserialize)]
struct Version {
    format_version: Option<serde_json::Value>,
}

pub(crate) fn plan(text: &str) -> Result<Plan, PlanReadError> {
    // A well-formed plan of a version this pogo reads (nearly all of them) is read in one
    // typed pass; anything else is read again, slowly, for the error that says what is wrong.
    let mut json = serde_json::Deserializer::from_str(text);
    if let Ok(plan) = Plan::deserialize(&mut json).and_then(|plan| json.end().map(|()| plan)) {
        let found = u64::from(plan.format_version);
        if (u64::from(OLDEST_FORMAT_VERSION)..=u64::from(FORMAT_VERSION)).contains(&found)
            && (found >= 2 || plan.seal.is_none())
        {
            plan.validate()?;
            return Ok(plan);
        }
    }
    let version: Version = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => PlanReadError::Malformed(located(&e)),
        _ => PlanReadError::Json(located(&e)),
    })?;
    let found = match version.format_version {
        None => return Err(PlanReadError::NotAPlan),
        Some(value) => value
            .as_u64()
            .ok_or_else(|| PlanReadError::BadVersion(shown(&value)))?,
    };
    if found > u64::from(FORMAT_VERSION) {
        return Err(PlanReadError::TooNew { found });
    }
    if found < u64::from(OLDEST_FORMAT_VERSION) {
        return Err(PlanReadError::TooOld { found });
    }
    let mut json = serde_json::Deserializer::from_str(text);
    let plan: Plan = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let message = located(e.inner());
        PlanReadError::Malformed(if path == "." {
            message
        } else {
            format!("{path}: {message}")
        })
    })?;
    if found < 2 && plan.seal.is_some() {
        return Err(PlanReadError::Malformed(
            "seal: a format 1 plan has no seal; a sealed plan is format 2".to_string(),
        ));
    }
    plan.validate()?;
    Ok(plan)
}

/// A JSON value as a message quotes it: short, on one line.
fn shown(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// serde_json's message, reworded as `expected X, got Y` for a value of the wrong type, with
/// its place as `(line L, column C)`.
fn located(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let place = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&place).unwrap_or(&full);
    let message = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once(", expected "))
        .map(|(got, expected)| {
            let got = got.strip_prefix("string ").unwrap_or(got);
            format!("expected {expected}, got {got}")
        })
        .unwrap_or_else(|| message.to_string());
    if error.line() == 0 {
        message
    } else {
        format!(
            "{message} (line {}, column {})",
            error.line(),
            error.column()
        )
    }
}

struct Seconds;

impl Visitor<'_> for Seconds {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number of seconds")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        if value == 0 {
            Err(E::custom(
                "a timeout of 0 seconds would never let a command run; give 1 or more",
            ))
        } else {
            Ok(value)
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
            .and_then(|v| self.visit_u64(v))
    }
}

/// A timeout: a whole number of seconds, 1 or more.
pub(crate) fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_u64(Seconds)
}

/// An optional timeout: `null`, or as [`seconds`].
pub(crate) fn optional_seconds<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    struct Optional;
    impl<'de> Visitor<'de> for Optional {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number of seconds or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
            seconds(d).map(Some)
        }
    }
    deserializer.deserialize_option(Optional)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed plan as JSON, with `edit` applied to its text.
    fn plan_text(edit: impl Fn(String) -> String) -> String {
        let plan = Plan::sketch("h1 h2").with_job_limit(1).sealed();
        edit(plan.to_json())
    }

    fn error(text: &str) -> String {
        Plan::from_json(text).unwrap_err().to_string()
    }

    #[test]
    fn a_timeout_of_zero_is_refused_with_its_key_path() {
        let text = plan_text(|t| t.replace("\"timeout\": 600", "\"timeout\": 0"));
        let message = error(&text);
        assert!(
            message.starts_with(
                "malformed plan: options.timeout: a timeout of 0 seconds would never let a \
                 command run; give 1 or more (line "
            ),
            "{message}"
        );
    }

    #[test]
    fn a_timeout_as_a_string_names_the_key_and_the_value() {
        let text = plan_text(|t| t.replace("\"timeout\": 600", "\"timeout\": \"600\""));
        let message = error(&text);
        assert!(
            message.starts_with(
                "malformed plan: options.timeout: expected a number of seconds, got \"600\" \
                 (line "
            ),
            "{message}"
        );
        let text = plan_text(|t| t.replace("\"run_timeout\": null", "\"run_timeout\": 0"));
        assert!(error(&text).contains("options.run_timeout: a timeout of 0 seconds"));
    }

    #[test]
    fn a_duplicate_key_is_refused() {
        let text = plan_text(|t| {
            t.replace(
                "\"command\": \"true\",",
                "\"command\": \"true\",\n  \"command\": \"rm -rf /\",",
            )
        });
        let message = error(&text);
        assert!(
            message.starts_with("malformed plan: duplicate field `command` (line "),
            "{message}"
        );
    }

    #[test]
    fn a_version_as_a_string_is_named() {
        let text = plan_text(|t| t.replace("\"format_version\": 2", "\"format_version\": \"2\""));
        assert_eq!(
            error(&text),
            "malformed plan: format_version: expected a whole number, got \"2\""
        );
        let text = plan_text(|t| t.replace("\"format_version\": 2", "\"format_version\": 3"));
        assert!(error(&text).starts_with("plan format 3 is newer"));
    }

    #[test]
    fn a_type_error_deep_in_the_plan_names_its_path() {
        let text = plan_text(|t| t.replace("\"value\": 1", "\"value\": \"one\""));
        let message = error(&text);
        assert!(
            message.starts_with(
                "malformed plan: constraints[0].max_parallel.value: expected u64, got \"one\""
            ),
            "{message}"
        );
        let text = plan_text(|t| t.replacen("\"h1\"", "7", 1));
        assert!(error(&text)
            .starts_with("malformed plan: hosts[0]: expected a string, got integer `7`"));
    }

    #[test]
    fn a_format_1_plan_is_read_unsealed_and_may_not_carry_a_seal() {
        let text = plan_text(|t| t.replace("\"format_version\": 2", "\"format_version\": 1"));
        assert!(error(&text).contains("a format 1 plan has no seal"));
        let mut plan = Plan::sketch("h1");
        plan.format_version = 1;
        plan.seal = None;
        let read = Plan::from_json(&plan.to_json()).unwrap();
        assert_eq!(read.seal_state(), crate::SealState::Legacy);
    }

    #[test]
    fn a_bad_host_name_is_refused() {
        for (name, problem) in [
            ("h1\\nhost2: Success", "whitespace or control characters"),
            ("", "cannot be empty"),
            ("-oProxyCommand=x", "cannot start with `-`"),
        ] {
            let text = plan_text(|t| t.replace("\"h1\"", &format!("\"{name}\"")));
            let message = error(&text);
            assert!(message.contains(problem), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }
}
