//! Remote apply for pogo: the dispatcher, the worker and the operator client.
//!
//! - The dispatcher accepts plans (never configs) over HTTPS with mutual TLS, stores jobs
//!   durably (SQLite), and schedules them with the executor's scheduler, the very state
//!   machine a local apply uses; constraint groups hold across all workers because only the
//!   dispatcher decides.
//! - Workers connect out to the dispatcher, run tasks with the executor's transports and report
//!   results; they never schedule.
//! - Every role authenticates with a certificate from the deployment's CA, and a certificate
//!   grants its own role only.
//! - TLS, HTTP and the database stay in this crate; the planner and the executor's scheduler
//!   know nothing of them.

/// The API's bodies live in their own crate, which the views read too without the server.
pub use pogo_api as api;
pub mod certs;
pub mod client;
pub mod dispatcher;
pub mod metrics;
pub mod tls;
pub mod ui;
pub mod worker;
