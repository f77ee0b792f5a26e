//! How a command ends: an exit code, and for a failure the message on stderr. Every command
//! returns `Result<u8, Failure>`; `main` prints the failure and exits with its code.

use std::io::Write;

use pogo_planner::PlanError;

/// Exit codes; the README's "Exit codes" section documents them.
pub mod exit {
    pub const OK: u8 = 0;
    /// A config, plan spec, plan or target list is invalid, or a file cannot be read/written.
    pub const INVALID: u8 = 1;
    /// `pogo diff`: the two plans differ (as `terraform plan -detailed-exitcode`).
    pub const DIFFERENT: u8 = 2;
    /// `pogo apply`/`pogo run`: every host ran, and some failed.
    pub const FAILED: u8 = 3;
    /// `pogo apply`/`pogo run`: the run stopped (failure budget, halt, run timeout) or was
    /// blocked before every host ran, or `pogo run` was not confirmed.
    pub const STOPPED: u8 = 4;
    /// `pogo apply`/`pogo run`: every host succeeded, but some output could not be kept (a
    /// write to the logs failed, or the disk was nearly full). 3 and 4 win over it; the
    /// summary says it in every case.
    pub const OUTPUT_LOST: u8 = 5;
    /// The command line itself is wrong (unknown flag, missing argument).
    pub const USAGE: u8 = 64;
}

/// An error on its way to the user: the text to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl From<PlanError> for Failure {
    fn from(error: PlanError) -> Self {
        Failure {
            message: error.to_string(),
            code: exit::INVALID,
        }
    }
}

pub fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        message: format!("error: {}\n", message.into()),
        code: exit::INVALID,
    }
}

pub fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        ..invalid(message)
    }
}

/// Writes to stdout; a closed pipe (`pogo show x | head`) is not an error.
pub fn emit(out: &mut (impl Write + ?Sized), text: &str) -> Result<(), Failure> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(invalid(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
