//! External tag resolvers: a tag whose hosts come from a command, such as one that asks an
//! inventory service. The planner does no process I/O itself; the caller hands it a
//! [`TagResolver`] (the `pogo` binary runs the command through the shell).
//!
//! ```yaml
//! tag:
//!   web: !command inventory list --role web
//! ```
//!
//! The output is one host (or host pattern) per line; blank lines and `#` comments are
//! skipped. The hosts are cached in the plan (`external_tags`), so a plan never re-resolves.

use std::path::Path;

/// The YAML tag that marks a tag's value as a command to run.
pub const COMMAND_TAG: &str = "!command";

/// Runs the command of an external tag.
pub trait TagResolver {
    /// Runs `command` with `dir` as working directory and returns its standard output, or
    /// a fragment saying why it failed (reads after "the command ... ").
    fn run(&self, command: &str, dir: &Path) -> Result<String, String>;
}

/// A resolver that refuses: for callers that parse configs without running anything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCommands;

impl TagResolver for NoCommands {
    fn run(&self, _command: &str, _dir: &Path) -> Result<String, String> {
        Err("was not run: this program does not run external tag resolvers".to_string())
    }
}
