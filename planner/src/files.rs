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
    /// Where the first byte that is not UTF-8 is.
    #[error("it is not UTF-8 text (line {line}, column {column}: byte 0x{byte:02x})")]
    NotText {
        line: usize,
        column: usize,
        byte: u8,
    },
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
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            std::io::ErrorKind::IsADirectory => ReadError::Directory,
            _ => ReadError::Other(e.to_string()),
        })?;
        text(bytes)
    }
}

/// The bytes of a file as UTF-8 text, or where they stop being it.
pub fn text(bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // Valid up to here, so the column counts characters.
        let column = 1 + String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count();
        ReadError::NotText {
            line,
            column,
            byte: e.as_bytes()[valid.len()],
        }
    })
}

/// Reads a file as [`Filesystem`] does, with the error as a fragment for "cannot read `x`: ".
pub fn read_text(path: &Path) -> Result<String, String> {
    Filesystem.read(path).map_err(|e| match e {
        ReadError::Other(message) => message,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_not_utf8_says_where() {
        assert_eq!(text(b"tag:\n".to_vec()).unwrap(), "tag:\n");
        let error = text(b"tag:\n  a: [h\xc3\xa9, h\xff2]\n".to_vec()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "it is not UTF-8 text (line 2, column 12: byte 0xff)"
        );
    }
}
