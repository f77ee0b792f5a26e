//! Files as they are at a git revision, for `pogo diff --git REV`: the planner's loaders read a
//! plan spec, its config and its host file through [`Files`], and this one reads them with
//! `git cat-file blob REV:PATH` (what `git show REV:PATH` prints for a file, byte for byte).
//! The planner runs no process; this module is where `git` runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pogo_planner::spec::normalize;
use pogo_planner::{Files, ReadError};

/// A revision of the repository that holds a given directory.
pub struct GitRevision {
    /// As the user wrote it, for messages.
    rev: String,
    /// The commit it names, resolved once so every file comes from the same commit.
    commit: String,
    /// The repository's top directory, as git prints it.
    top: PathBuf,
    /// The current directory, which relative paths start from.
    cwd: PathBuf,
}

impl GitRevision {
    /// Opens `rev` of the repository that holds `dir`. The error is a whole sentence.
    pub fn open(rev: &str, dir: &Path) -> Result<GitRevision, String> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let top = git(dir, &["rev-parse", "--show-toplevel"]).map_err(|e| match e {
            GitError::Failed => format!(
                "`{}` is not in a git repository: --git reads the old version of the files \
                 from the repository that holds them",
                dir.display()
            ),
            GitError::Run(why) => why,
        })?;
        let commit = git(
            dir,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &format!("{rev}^{{commit}}"),
            ],
        )
        .map_err(|e| match e {
            GitError::Failed => format!(
                "unknown revision `{rev}`: give a branch, tag or commit of the repository \
                 (in a CI checkout, fetch it first, for example `git fetch origin main`)"
            ),
            GitError::Run(why) => why,
        })?;
        let cwd = std::env::current_dir()
            .map_err(|e| format!("cannot find the current directory: {e}"))?;
        Ok(GitRevision {
            rev: rev.to_string(),
            commit: commit.trim().to_string(),
            top: PathBuf::from(top.trim_end_matches(['\n', '\r'])),
            cwd,
        })
    }

    /// `path` relative to the top of the repository, with `/` between components, as git
    /// names it in `REV:PATH`.
    fn in_repository(&self, path: &Path) -> Option<String> {
        let absolute = normalize(&self.cwd.join(path));
        let relative = absolute
            .strip_prefix(&self.top)
            .ok()
            .map(Path::to_path_buf)
            .or_else(|| {
                // The repository's path as git prints it has its symbolic links resolved.
                let parent = absolute.parent()?.canonicalize().ok()?;
                let top = self.top.canonicalize().ok()?;
                let name = absolute.file_name()?;
                parent.strip_prefix(&top).ok().map(|p| p.join(name))
            })?;
        let parts: Option<Vec<&str>> = relative.iter().map(|c| c.to_str()).collect();
        Some(parts?.join("/"))
    }
}

impl Files for GitRevision {
    /// The file's text at this revision.
    fn read(&self, path: &Path) -> Result<String, ReadError> {
        let Some(name) = self.in_repository(path) else {
            return Err(ReadError::Other(format!(
                "it is outside the git repository at `{}`",
                self.top.display()
            )));
        };
        let object = format!("{}:{name}", self.commit);
        let top = self.top.as_path();
        match git_bytes(top, &["cat-file", "blob", &object]) {
            Ok(bytes) => pogo_planner::files::text(bytes),
            Err(GitError::Run(why)) => Err(ReadError::Other(why)),
            Err(GitError::Failed) => match git(top, &["cat-file", "-t", &object]) {
                Ok(kind) if kind.trim() == "tree" => Err(ReadError::Directory),
                Ok(kind) => Err(ReadError::Other(format!(
                    "it is a {} at {}, not a file",
                    kind.trim(),
                    self.rev
                ))),
                Err(_) => Err(ReadError::NotFoundAt(self.rev.clone())),
            },
        }
    }
}

enum GitError {
    /// git could not be started.
    Run(String),
    /// git ran and failed.
    Failed,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    git_bytes(dir, args).and_then(|bytes| String::from_utf8(bytes).map_err(|_| GitError::Failed))
}

fn git_bytes(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| GitError::Run(format!("cannot run git: {e}")))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(GitError::Failed)
    }
}
