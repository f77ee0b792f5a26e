//! The pogo planner: fleet config (YAML) + targets + command → [`pogo_model::Plan`].
//!
//! Reads the files it is given and nothing else: no network, no processes, no printing.
//! Errors come back as a [`PlanError`] holding every problem found, each pointing at its text.

pub mod compile;
pub mod config;
pub mod diag;
pub mod diff;
pub mod expr;
pub mod files;
pub mod fleet;
pub mod hosts;
pub mod inventory;
pub mod pattern;
pub mod resolve;
pub mod spec;
pub mod stale;
pub mod yaml;

pub use compile::{compile, FailureLimit, GateRequest, JobLimit, PlanRequest, TargetSpec};
pub use config::{Config, Limit};
pub use diag::{Diagnostic, PlanError, Source, Span};
pub use diff::{diff, PlanDiff};
pub use files::{Files, Filesystem, ReadError};
pub use resolve::{NoCommands, Recording, Replay, TagResolver};
pub use spec::JobSpec;
pub use stale::StaleError;
