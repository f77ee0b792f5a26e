//! Remote apply for pogo: the dispatcher, the worker and the operator client.
//!
//! Boundaries, fixed now so the pieces that come later fit:
//!
//! - The dispatcher accepts plans (never configs) over HTTPS with mutual TLS, stores jobs
//!   durably, and schedules them with the executor's scheduler, the very state machine a local
//!   apply uses; constraint groups hold across all workers because only the dispatcher decides.
//! - Workers connect out to the dispatcher, run tasks with the executor's transports and report
//!   results; they never schedule.
//! - Every role authenticates with a certificate from the deployment's CA, and a certificate
//!   grants its own role only.
//! - TLS, HTTP and the database stay in this crate; the planner and the executor's scheduler
//!   know nothing of them.
//!
//! This crate has no code yet; it depends on the plan model so that its place in the
//! workspace, and what it may depend on, are settled.

pub use pogo_model::Plan;
