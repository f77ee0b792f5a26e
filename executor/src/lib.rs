//! The pogo executor: runs any valid [`pogo_model::Plan`].
//!
//! Boundaries, fixed now so the pieces that come later fit:
//!
//! - It reads plans, never configs: it depends on `pogo-model` only, not on the planner, so a
//!   plan file is all a run needs (and the dispatcher can run plans it did not compile).
//! - Its heart is a pure scheduler state machine (no async runtime, no clock, no I/O): which
//!   hosts are ready, which may start under the plan's constraint groups, what a finish,
//!   failure or timeout changes, when the failure budget stops the run. The local apply and
//!   the remote dispatcher drive this same state machine.
//! - Around it: an async loop with an injected clock, transports behind one trait (`ssh`,
//!   `local`), the durable journal, and run events as owned data for every renderer.
//! - It never prints; the CLI renders its events.
//!
//! Modules: [`scheduler`] (the pure state machine), [`transport`] (local and SSH),
//! [`runner`] (the async loop that joins them), [`journal`] and [`events`] (what a run
//! records and reports), [`rundir`] (where a run keeps its plan, journal and logs),
//! [`hostlog`] (how a host's output is written there).
//! [`check_runnable`] is the check every runner makes before starting anything: that the plan
//! can be run at all.

pub mod audit;
pub mod events;
pub mod fleet;
pub mod gates;
pub mod hostlog;
pub mod journal;
pub mod phases;
pub mod rundir;
pub mod runner;
pub mod scheduler;
pub mod simulate;
pub mod transport;
pub mod why;

use pogo_model::Plan;

/// Why a plan cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrunnable {
    /// The plan was compiled without a command (for review only).
    NoCommand,
    /// The plan has no hosts.
    NoHosts,
}

impl std::fmt::Display for Unrunnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unrunnable::NoCommand => write!(
                f,
                "the plan has no command; compile it again with `pogo plan --command CMD`"
            ),
            Unrunnable::NoHosts => write!(f, "the plan has no hosts"),
        }
    }
}

impl std::error::Error for Unrunnable {}

/// Checks what a runner needs beyond [`Plan::validate`]: a command and at least one host.
pub fn check_runnable(plan: &Plan) -> Result<(), Unrunnable> {
    match plan.command.as_deref() {
        None | Some("") => Err(Unrunnable::NoCommand),
        Some(_) if plan.hosts.is_empty() => Err(Unrunnable::NoHosts),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(command: Option<&str>, hosts: &[&str]) -> Plan {
        let mut plan = Plan::sketch(&hosts.join(" "));
        plan.command = command.map(str::to_string);
        plan
    }

    #[test]
    fn a_plan_without_command_is_for_review_only() {
        assert_eq!(
            check_runnable(&plan(None, &["h1"])),
            Err(Unrunnable::NoCommand)
        );
        assert_eq!(
            check_runnable(&plan(Some(""), &["h1"])),
            Err(Unrunnable::NoCommand)
        );
        assert_eq!(
            check_runnable(&plan(Some("date"), &[])),
            Err(Unrunnable::NoHosts)
        );
        assert_eq!(check_runnable(&plan(Some("date"), &["h1"])), Ok(()));
    }
}
