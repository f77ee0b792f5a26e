//! What waits after a step (spec `semantics.md` §9): its **gate**, a command run on the
//! machine that drives the run once every host of the step has finished, and its
//! **approval**, given by an operator with `pogo approve RUN STEP`.
//!
//! A local run has one writer of its journal, the running pogo; an approval given from
//! another process is a file in the run's `approvals/` directory ([`write_approval`]), which
//! the running pogo reads and records in the journal ([`read_approval`]). An approval given
//! while no pogo runs the run waits there for the next session.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::rundir::file_name;
use crate::scheduler::HostState;
use crate::transport::CancelToken;

/// The directory of a run's approvals, in its run directory.
pub const APPROVALS: &str = "approvals";
/// The directory of its gates' output.
pub const GATES: &str = "gates";

/// An operator's approval of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub step: String,
    /// Who approved: the operator's user name locally, the certificate's name remotely.
    pub by: String,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

impl ApprovalRecord {
    /// An approval of `step` by `by`, now.
    pub fn now(step: &str, by: &str) -> ApprovalRecord {
        ApprovalRecord {
            step: step.to_string(),
            by: by.to_string(),
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

fn approval_path(run_dir: &Path, step: &str) -> PathBuf {
    run_dir.join(APPROVALS).join(file_name(step, "json"))
}

/// Leaves an approval in the run directory, for the pogo that runs it (now or next). Written
/// to a temporary file and renamed, so a reader never sees half of one.
pub fn write_approval(run_dir: &Path, record: &ApprovalRecord) -> std::io::Result<()> {
    let dir = run_dir.join(APPROVALS);
    std::fs::create_dir_all(&dir)?;
    let path = approval_path(run_dir, &record.step);
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(serde_json::to_string(record)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)
}

/// The approval of `step` left in the run directory, if any (a file that does not read as
/// one of `step` is none).
pub fn read_approval(run_dir: &Path, step: &str) -> Option<ApprovalRecord> {
    let text = std::fs::read_to_string(approval_path(run_dir, step)).ok()?;
    serde_json::from_str::<ApprovalRecord>(&text)
        .ok()
        .filter(|record| record.step == step)
}

/// Where the output of the gate after `step` goes.
pub fn gate_log(run_dir: &Path, step: &str) -> PathBuf {
    run_dir.join(GATES).join(file_name(step, "log"))
}

/// The environment of the gate after `step`, run `run_id` (a local run's id, a job's id
/// through a dispatcher): the step, its hosts, and how each ended (`state_of` a host; a
/// host it does not know reads `unknown`).
pub fn gate_env(
    run_id: &str,
    step: &str,
    hosts: &[String],
    state_of: impl Fn(&str) -> Option<HostState>,
) -> Vec<(String, String)> {
    let mut results = Vec::with_capacity(hosts.len());
    let mut failed = 0;
    for host in hosts {
        let state = state_of(host);
        if state != Some(HostState::Succeeded) {
            failed += 1;
        }
        results.push(format!(
            "{host} {}",
            state.map_or("unknown".to_string(), |s| s.to_string())
        ));
    }
    vec![
        ("POGO_RUN_ID".to_string(), run_id.to_string()),
        ("POGO_STEP".to_string(), step.to_string()),
        ("POGO_STEP_HOSTS".to_string(), hosts.join(" ")),
        ("POGO_STEP_RESULTS".to_string(), results.join("\n")),
        ("POGO_STEP_FAILED".to_string(), failed.to_string()),
    ]
}

/// How a gate ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateEnd {
    Passed,
    /// It ran and did not pass, or could not run: for a person.
    Failed(String),
    /// The run was cancelled while it ran (it was killed).
    Cancelled,
}

/// Runs a gate: `sh -c COMMAND` on this machine, with `env` added to its environment, its
/// stdin closed and its output (both streams) appended to `log`. Killed when `cancel` fires.
pub async fn run_gate(
    command: &str,
    env: &[(String, String)],
    log: &Path,
    cancel: &CancelToken,
) -> GateEnd {
    let output = match open_log(log) {
        Ok(file) => file,
        Err(e) => return GateEnd::Failed(format!("cannot write {}: {e}", log.display())),
    };
    let errors = match output.try_clone() {
        Ok(file) => file,
        Err(e) => return GateEnd::Failed(format!("cannot write {}: {e}", log.display())),
    };
    let mut child = match tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return GateEnd::Failed(format!("cannot start `sh`: {e}")),
    };
    tokio::select! {
        status = child.wait() => match status {
            Ok(status) if status.success() => GateEnd::Passed,
            Ok(status) => GateEnd::Failed(match status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_string(),
            }),
            Err(e) => GateEnd::Failed(format!("cannot wait for it: {e}")),
        },
        () = cancel.cancelled() => {
            let _ = child.kill().await;
            GateEnd::Cancelled
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_left_in_the_run_directory_is_read_back_for_its_step_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_approval(dir.path(), "t.$canary"), None);
        let record = ApprovalRecord::now("t.$canary", "alice");
        write_approval(dir.path(), &record).unwrap();
        assert_eq!(read_approval(dir.path(), "t.$canary"), Some(record));
        assert_eq!(read_approval(dir.path(), "t.$colo.east"), None);
    }

    #[tokio::test]
    async fn a_gate_passes_on_exit_0_and_keeps_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = gate_log(dir.path(), "t.0");
        let env = vec![("POGO_STEP".to_string(), "t.0".to_string())];
        let cancel = CancelToken::new();
        assert_eq!(
            run_gate("echo checked $POGO_STEP", &env, &log, &cancel).await,
            GateEnd::Passed
        );
        assert_eq!(
            run_gate("echo no >&2; exit 4", &env, &log, &cancel).await,
            GateEnd::Failed("exit code 4".into())
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "checked t.0\nno\n");
    }
}
