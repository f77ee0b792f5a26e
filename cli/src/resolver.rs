//! Runs the commands of external tags (`tag: !command CMD`) through the shell.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pogo_planner::TagResolver;

/// How long an inventory command may take before pogo gives up on it.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `sh -c CMD` in the config's directory, with no input, and takes its output.
pub struct Shell;

impl TagResolver for Shell {
    fn run(&self, command: &str, dir: &Path) -> Result<String, String> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start: {e}"))?;
        // Both pipes are drained while the command runs, so a chatty command cannot block.
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let out = std::thread::spawn(move || {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).map(|_| buf)
        });
        let err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "did not finish within {} s and was stopped",
                        TIMEOUT.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("could not be waited for: {e}")),
            }
        };
        let stdout = out.join().ok().and_then(Result::ok).unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if !status.success() {
            let said = String::from_utf8_lossy(&stderr);
            let said = said.trim();
            let what = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(if said.is_empty() {
                what
            } else {
                let first: Vec<&str> = said.lines().take(5).collect();
                format!("{what}: {}", first.join(" / "))
            });
        }
        String::from_utf8(stdout)
            .map_err(|_| "printed something that is not UTF-8 text".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_of_a_successful_command_is_returned() {
        let out = Shell.run("printf 'h1\\nh2\\n'", Path::new("")).unwrap();
        assert_eq!(out, "h1\nh2\n");
    }

    #[test]
    fn failing_commands_say_how_and_what_they_printed() {
        let err = Shell
            .run("echo inventory down >&2; exit 3", Path::new(""))
            .unwrap_err();
        assert!(err.contains("exited with status 3"), "{err}");
        assert!(err.contains("inventory down"), "{err}");
    }

    #[test]
    fn commands_run_in_the_config_directory() {
        let dir = std::env::temp_dir();
        let out = Shell.run("pwd", &dir).unwrap();
        assert_eq!(
            Path::new(out.trim()).canonicalize().unwrap(),
            dir.canonicalize().unwrap()
        );
    }
}
