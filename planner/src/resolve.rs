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

/// Runs commands through another resolver and keeps what each printed, by command: what
/// `pogo fleet push` sends with a config, so that the dispatcher sees the hosts the operator
/// saw without running anything.
pub struct Recording<'r> {
    inner: &'r dyn TagResolver,
    outputs: std::cell::RefCell<std::collections::BTreeMap<String, String>>,
}

impl<'r> Recording<'r> {
    pub fn new(inner: &'r dyn TagResolver) -> Recording<'r> {
        Recording {
            inner,
            outputs: Default::default(),
        }
    }

    /// What each command printed.
    pub fn into_outputs(self) -> std::collections::BTreeMap<String, String> {
        self.outputs.into_inner()
    }
}

impl TagResolver for Recording<'_> {
    fn run(&self, command: &str, dir: &Path) -> Result<String, String> {
        let output = self.inner.run(command, dir)?;
        self.outputs
            .borrow_mut()
            .insert(command.to_string(), output.clone());
        Ok(output)
    }
}

/// Answers each command with what it printed elsewhere ([`Recording`]), running nothing.
pub struct Replay<'o>(pub &'o std::collections::BTreeMap<String, String>);

impl TagResolver for Replay<'_> {
    fn run(&self, command: &str, _dir: &Path) -> Result<String, String> {
        self.0.get(command).cloned().ok_or_else(|| {
            "was not run here, and its output was not sent with the config".to_string()
        })
    }
}
