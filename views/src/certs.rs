//! The view of a certificate for `pogo certs show`: its role and name as pogo reads them, its
//! validity, usages and names, and every reason pogo would refuse it.

use std::time::SystemTime;

use pogo_remote::certs::{self, CertInfo};

use crate::text::plural;

/// One `  key      value` line per fact of `info`, then one `problem` line per entry of
/// `problems` (from [`CertInfo::problems`]), as of `now`.
pub fn describe(info: &CertInfo, problems: &[String], now: SystemTime) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    match (&info.identity, info.is_ca) {
        (_, true) => rows.push(("role", "CA (signs certificates)".into())),
        (Ok(identity), false) => {
            rows.push(("role", identity.role.to_string()));
            rows.push(("name", identity.name.clone()));
        }
        (Err(_), false) => rows.push(("role", "(none pogo can read)".into())),
    }
    rows.push(("subject", info.subject.clone()));
    rows.push(("issuer", info.issuer.clone()));
    let left = match info.not_after.duration_since(now) {
        Ok(left) => format!(
            "{} left",
            plural(((left.as_secs() + 43_200) / 86_400) as usize, "day")
        ),
        Err(_) => "expired".to_string(),
    };
    rows.push((
        "valid",
        format!(
            "{} to {} ({left})",
            certs::format_utc(info.not_before),
            certs::format_utc(info.not_after)
        ),
    ));
    rows.push((
        "usage",
        match &info.extended_key_usage {
            Some(usages) if usages.is_empty() => "(none)".into(),
            Some(usages) => usages.join(", "),
            None => "any (no extended key usage)".into(),
        },
    ));
    if !info.names.is_empty() {
        rows.push(("names", info.names.join(", ")));
    }
    for problem in problems {
        rows.push(("problem", problem.clone()));
    }
    rows.iter()
        .map(|(key, value)| format!("  {key:<8} {value}\n"))
        .collect()
}
