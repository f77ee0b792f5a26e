//! Password authentication for the SSH transport, through OpenSSH's `SSH_ASKPASS`.
//!
//! OpenSSH asks a helper program for a password when `SSH_ASKPASS` names one and
//! `SSH_ASKPASS_REQUIRE=force` is set: it runs the program with the prompt as its only argument
//! and reads the answer from its stdout. pogo's helper is the pogo binary itself (or any program
//! that calls [`askpass_main`]), and the password reaches it over a unix socket, so that it never
//! touches the disk, a command line or an environment:
//!
//! 1. For each connection that needs the password, the SSH transport binds a unix socket in the
//!    connection's private directory (mode 0700, made by `tempfile`, beside the control socket),
//!    and starts the `ssh` master process with `SSH_ASKPASS=<helper>`,
//!    `SSH_ASKPASS_REQUIRE=force`, `DISPLAY` (only if unset, for OpenSSH older than 8.4) and
//!    `POGO_ASKPASS=<socket path>` ([`ASKPASS_ENV`]): the path, never the password. These are
//!    set on the local `ssh` master only; the remote command's environment is made by `sshd`.
//! 2. `ssh` runs `<helper> "<prompt>"`. The helper sees `POGO_ASKPASS` ([`askpass_requested`])
//!    and runs [`askpass_main`]: it connects to the socket, sends the prompt's bytes and shuts
//!    down its writing half.
//! 3. The transport checks that the peer runs as the same user (`SO_PEERCRED`), then answers
//!    `+` followed by the password if the prompt asks for a password (it contains "password",
//!    and neither "passphrase", "new " nor "retype": a key's passphrase or a password change is
//!    refused), or `-` followed by a reason otherwise. It answers at most three prompts per
//!    connection attempt (`NumberOfPasswordPrompts=1` is set, so a wrong password fails fast).
//! 4. The helper prints the password and a line feed on stdout and exits 0, or prints the
//!    reason on stderr and exits 1, which makes `ssh` give up on that method.
//! 5. When the master has authenticated (or failed), the socket is closed and removed: the
//!    password is served only while that connection is being made.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// The environment variable that puts the pogo binary in askpass mode; its value is the path of
/// the socket to ask.
pub const ASKPASS_ENV: &str = "POGO_ASKPASS";

/// The longest prompt the helper sends.
const MAX_PROMPT: usize = 4096;
/// How many prompts one connection attempt may have answered.
const MAX_ANSWERS: usize = 3;
/// How long either side waits for the other.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A password. Its `Debug` shows nothing, and its bytes are overwritten when it is dropped (on a
/// best-effort basis: copies the allocator made when it grew are not).
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    pub fn new(password: impl Into<String>) -> Self {
        Secret {
            bytes: password.into().into_bytes(),
        }
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.fill(0);
        std::hint::black_box(&self.bytes);
    }
}

/// Whether this process was started by `ssh` as an askpass helper: the pogo binary checks this
/// first thing in `main`, before parsing arguments (its argument is a prompt, not a command
/// line), and then returns [`askpass_main`]'s exit code.
pub fn askpass_requested() -> bool {
    std::env::var_os(ASKPASS_ENV).is_some()
}

/// The askpass helper's `main`: asks the transport that started `ssh` for the answer to the
/// prompt in the first argument, prints it for `ssh`, and returns the exit code `ssh` expects.
/// It is a process entry point, so it prints (the answer on stdout, a refusal on stderr).
pub fn askpass_main() -> ExitCode {
    let Some(socket) = std::env::var_os(ASKPASS_ENV) else {
        eprintln!("pogo: askpass mode needs {ASKPASS_ENV}; it is meant to be started by ssh");
        return ExitCode::from(2);
    };
    let prompt = std::env::args_os().nth(1).unwrap_or_default();
    match ask(Path::new(&socket), prompt.as_bytes()) {
        Ok(Answer::Password(mut password)) => {
            password.push(b'\n');
            let written = io::stdout()
                .lock()
                .write_all(&password)
                .and_then(|()| io::stdout().flush());
            password.fill(0);
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Ok(Answer::Refused(reason)) => {
            eprintln!("pogo askpass: {reason}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!(
                "pogo askpass: failed to ask {}: {error}",
                socket.to_string_lossy()
            );
            ExitCode::FAILURE
        }
    }
}

enum Answer {
    Password(Vec<u8>),
    Refused(String),
}

/// The helper's side of the exchange.
fn ask(socket: &Path, prompt: &[u8]) -> io::Result<Answer> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.write_all(&prompt[..prompt.len().min(MAX_PROMPT)])?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    match reply.split_first() {
        Some((b'+', password)) => {
            let password = password.to_vec();
            reply.fill(0);
            Ok(Answer::Password(password))
        }
        Some((b'-', reason)) => Ok(Answer::Refused(
            String::from_utf8_lossy(reason).into_owned(),
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no answer from pogo (did the connection attempt end?)",
        )),
    }
}

/// Whether an OpenSSH prompt asks for the account's password (`user@host's password: `,
/// keyboard-interactive `Password: `), rather than a key's passphrase, a new password or a
/// confirmation.
pub(crate) fn is_password_prompt(prompt: &str) -> bool {
    let prompt = prompt.to_lowercase();
    prompt.contains("password")
        && !prompt.contains("passphrase")
        && !prompt.contains("new ")
        && !prompt.contains("retype")
}

/// The transport's side: serves one connection attempt's prompts until dropped.
pub(crate) struct AskpassServer {
    socket: PathBuf,
    task: JoinHandle<()>,
}

impl AskpassServer {
    /// Binds `dir/askpass` (`dir` must be private to this user) and serves `secret` there.
    pub(crate) fn start(dir: &Path, secret: Arc<Secret>) -> io::Result<Self> {
        let socket = dir.join("askpass");
        let listener = UnixListener::bind(&socket)?;
        let task = tokio::spawn(serve(listener, secret));
        Ok(AskpassServer { socket, task })
    }

    /// The environment the `ssh` process needs to use the helper `program`.
    pub(crate) fn ssh_env(&self, program: &Path) -> Vec<(&'static str, OsString)> {
        let mut env = vec![
            ("SSH_ASKPASS", program.as_os_str().to_owned()),
            ("SSH_ASKPASS_REQUIRE", "force".into()),
            (ASKPASS_ENV, self.socket.as_os_str().to_owned()),
        ];
        if std::env::var_os("DISPLAY").is_none() {
            // OpenSSH before 8.4 ignores SSH_ASKPASS without a display; no X server is used.
            env.push(("DISPLAY", "pogo-askpass:0".into()));
        }
        env
    }
}

impl Drop for AskpassServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn serve(listener: UnixListener, secret: Arc<Secret>) {
    let mut answered = 0;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ =
            tokio::time::timeout(EXCHANGE_TIMEOUT, answer(stream, &secret, &mut answered)).await;
    }
}

async fn answer(mut stream: UnixStream, secret: &Secret, answered: &mut usize) -> io::Result<()> {
    let same_user = stream
        .peer_cred()
        .map(|cred| cred.uid() == rustix::process::getuid().as_raw())
        .unwrap_or(false);
    if !same_user {
        return stream.write_all(b"-refused: not the same user").await;
    }
    let mut prompt = Vec::new();
    (&mut stream)
        .take(MAX_PROMPT as u64)
        .read_to_end(&mut prompt)
        .await?;
    let prompt = String::from_utf8_lossy(&prompt);
    if !is_password_prompt(&prompt) {
        let refusal = format!("-refused: pogo only answers password prompts, not {prompt:?}");
        return stream.write_all(refusal.as_bytes()).await;
    }
    if *answered >= MAX_ANSWERS {
        return stream
            .write_all(b"-refused: the password was already given")
            .await;
    }
    *answered += 1;
    let mut reply = Vec::with_capacity(secret.expose().len() + 1);
    reply.push(b'+');
    reply.extend_from_slice(secret.expose());
    let written = stream.write_all(&reply).await;
    reply.fill(0);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_prompts_are_told_from_others() {
        for prompt in [
            "root@127.0.0.1's password: ",
            "Password: ",
            "(pogo@web1) Password: ",
        ] {
            assert!(is_password_prompt(prompt), "{prompt}");
        }
        for prompt in [
            "Enter passphrase for key '/root/.ssh/id_ed25519': ",
            "New password: ",
            "Retype new password: ",
            "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
            "Verification code: ",
        ] {
            assert!(!is_password_prompt(prompt), "{prompt}");
        }
    }

    #[test]
    fn a_secret_does_not_show_in_debug_output() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert_eq!(secret.expose(), b"hunter2");
    }

    #[tokio::test]
    async fn the_helper_gets_the_password_for_a_password_prompt_only() {
        let dir = tempfile::tempdir().unwrap();
        let server = AskpassServer::start(dir.path(), Arc::new(Secret::new("s3cret pw"))).unwrap();
        let socket = server.socket.clone();
        let ask = |prompt: &'static str| {
            let socket = socket.clone();
            tokio::task::spawn_blocking(move || ask(&socket, prompt.as_bytes()))
        };
        match ask("pogo@web1's password: ").await.unwrap().unwrap() {
            Answer::Password(password) => assert_eq!(password, b"s3cret pw"),
            Answer::Refused(reason) => panic!("refused: {reason}"),
        }
        match ask("Enter passphrase for key 'k': ")
            .await
            .unwrap()
            .unwrap()
        {
            Answer::Password(_) => panic!("a passphrase prompt was answered"),
            Answer::Refused(reason) => assert!(reason.contains("only answers password")),
        }
        // Three answers per attempt at most.
        for _ in 0..2 {
            assert!(matches!(
                ask("Password: ").await.unwrap().unwrap(),
                Answer::Password(_)
            ));
        }
        assert!(matches!(
            ask("Password: ").await.unwrap().unwrap(),
            Answer::Refused(_)
        ));
        drop(server);
        assert!(!socket.exists(), "the socket is removed with the server");
        assert!(ask("Password: ").await.unwrap().is_err());
    }
}
