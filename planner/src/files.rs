//! Where the planner reads the files it is given: plan specs, the configs they name, host files.
//!
//! The loaders (`JobSpec::load_from`, `Config::load_from`, `read_hostfile_from`) take a
//! [`Files`], so the same loader reads the working tree ([`Filesystem`]) or another version of
//! it: the `pogo` binary implements `Files` for a git revision (`pogo diff --git REV`), which
//! keeps running `git` out of the planner.

use std::path::Path;

/// Why a file could not be read. The text reads after "cannot read config `x`: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("no such file")]
    NotFound,
    /// Not in another version of the files (a git revision, say), named here.
    #[error("it does not exist at {0}")]
    NotFoundAt(String),
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("it is a directory")]
    Directory,
    /// Any other reason, as a fragment ("it does not exist at origin/main").
    #[error("{0}")]
    Other(String),
}

/// A tree of files the planner reads from. Paths are as the loaders build them: relative to
/// the current directory, or absolute.
pub trait Files {
    /// The whole file, as UTF-8 text.
    fn read(&self, path: &Path) -> Result<String, ReadError>;
}

/// The files on disk (the working tree).
#[derive(Debug, Default, Clone, Copy)]
pub struct Filesystem;

impl Files for Filesystem {
    fn read(&self, path: &Path) -> Result<String, ReadError> {
        std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            std::io::ErrorKind::InvalidData => ReadError::NotText,
            std::io::ErrorKind::IsADirectory => ReadError::Directory,
            _ => ReadError::Other(e.to_string()),
        })
    }
}
