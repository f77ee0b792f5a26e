//! pogo's views: everything pogo shows a person or a tool, rendered from owned data.
//!
//! The `pogo` binary parses what the user typed, calls the planner, the executor or the
//! dispatcher's client, and hands the result to a view here, so a plan, a run or a job reads
//! the same wherever it is looked at (as terraform keeps `internal/command/views` apart from
//! its commands). The web dashboard draws in the browser from the API's values; where its
//! server shapes them, it uses these views too: `pogo ui` reads a local run's journal into the
//! same [`report::Ledger`] as `pogo log RUN`. The API's bodies come from `pogo-api`, so the
//! views need no server or client, and the server may use them.
//!
//! Boundaries:
//!
//! - Views take values (a [`pogo_model::Plan`], a `PlanDiff`, a `Simulation`, run events, the
//!   dispatcher's API values) and return text, or write to the stream they are given
//!   ([`report::Lines`], [`report::Json`], [`report::Progress`] for the live terminal view).
//!   They never read files, parse arguments or choose an exit code, and never print on their
//!   own.
//! - Output is deterministic: no hash order, no terminal width, no clock read here (times come
//!   in with the data), so golden files hold byte for byte.
//! - Untrusted text (host names, commands, output) is escaped by the format that needs it
//!   (Mermaid, dot, markdown); plain text shows it as it is.
//!
//! Modules: [`plan`] (the schedule and constraint tables), [`graph`] (Mermaid and dot),
//! [`diff`] (`pogo diff`: terminal, markdown, JSON), [`simulate`] (`pogo simulate`),
//! [`report`] (a run's events: lines, NDJSON, the live view, the summary), [`runs`] (the
//! state dir's runs), [`jobs`] (the dispatcher's jobs and workers), and [`text`] (what they
//! all share).

pub mod audit;
pub mod diff;
pub mod fleets;
pub mod graph;
pub mod jobs;
pub mod plan;
pub mod report;
pub mod runs;
pub mod simulate;
pub mod text;
