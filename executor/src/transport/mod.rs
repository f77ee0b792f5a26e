//! Transports: how one command runs on one host.
//!
//! A [`Transport`] runs a command on a host once (one attempt): it streams the command's output
//! line by line as it arrives, enforces a timeout after which the command is killed **on the
//! target** (its whole process group, not just the local client), obeys a [`CancelToken`], and
//! tells a command that ran and failed apart from a host that could not be reached. Retries,
//! limits and order are the runner's business: it calls [`Transport::run`] again for a retry,
//! and [`Transport::close`] when it is done with a host.
//!
//! Two transports:
//!
//! - [`SshTransport`] (the default): one multiplexed OpenSSH master connection per host,
//!   honouring the user's `~/.ssh/config`, agent and known_hosts; see [`ssh`] for how a remote
//!   command is killed and [`askpass`] for password authentication.
//! - [`LocalTransport`]: `sh -c` on this machine with `POGO_HOST` set, for trying pogo without a
//!   fleet, for tests and demos.
//!
//! What both promise about a command:
//!
//! - It runs under `/bin/sh -c`, with its standard input from `/dev/null`.
//! - It is finished when it has exited **and** closed its output (as with `ssh host cmd`): a
//!   background process that keeps the command's stdout open keeps the command running, until
//!   the timeout kills it. Redirect what you leave running (`daemon >/dev/null 2>&1 &`).
//! - It runs in a process group of its own; on timeout or cancellation the group gets `SIGTERM`,
//!   then `SIGKILL` after a grace period. A process that starts a new session (`setsid`, a real
//!   daemon) leaves the group and is not killed.

pub mod askpass;
pub mod keeper;
pub mod local;
pub mod ssh;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

pub use askpass::{askpass_main, askpass_requested, Secret, ASKPASS_ENV};
pub use keeper::{keeper_main, keeper_requested};
pub use local::LocalTransport;
pub use ssh::{multiplex_for, HostKeyPolicy, SshOptions, SshTransport};

/// A boxed future, so that [`Transport`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs commands on hosts.
///
/// Implementations are shared between the tasks of a run (`Arc<dyn Transport>`): `run` may be
/// called for many hosts at once; for one host the runner runs one attempt at a time.
pub trait Transport: Send + Sync {
    /// Runs `command` on `host` once.
    ///
    /// Every output line is sent to `output` as it arrives (a slow receiver slows the command
    /// down rather than buffering without bound; a dropped receiver discards the output).
    /// `timeout` counts from the call, connecting included; when it expires, or when `cancel`
    /// fires, the command is killed on the target before this returns. Never panics on a
    /// command's or a host's failure: everything is in the [`RunResult`].
    fn run<'a>(
        &'a self,
        host: &'a str,
        command: &'a str,
        timeout: Option<Duration>,
        cancel: &'a CancelToken,
        output: mpsc::Sender<Output>,
    ) -> BoxFuture<'a, RunResult>;

    /// Closes the connection to `host`, if there is one: the runner is done with the host.
    /// A later `run` on the host connects again.
    fn close<'a>(&'a self, host: &'a str) -> BoxFuture<'a, ()>;
}

/// Which stream an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// One line of a command's output, without its line feed. Lines of stdout and stderr are
/// delivered in the order they arrive; within a stream the order is exact. Output is bytes,
/// not necessarily UTF-8. A line longer than [`MAX_LINE`] bytes is delivered in pieces, and a
/// last line without a line feed is delivered as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: Stream,
    /// A view of the buffer the line was read into: a line costs no allocation of its own.
    pub line: bytes::Bytes,
}

impl OutputLine {
    /// The line as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.line)
    }
}

/// Output lines of one stream, as a transport read them: a view of the read buffer and where
/// each line lies in it. Consecutive lines separated by one line feed lie next to each other, so
/// a log can copy a run of them in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stream: Stream,
    data: bytes::Bytes,
    /// Each line's start and end in `data`, without its line feed, in order.
    spans: Vec<(usize, usize)>,
}

impl Output {
    /// One line.
    pub fn line(stream: Stream, line: impl Into<bytes::Bytes>) -> Output {
        let data = line.into();
        let spans = vec![(0, data.len())];
        Output {
            stream,
            data,
            spans,
        }
    }

    /// The lines, in order.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans
            .iter()
            .map(|&(start, end)| &self.data[start..end])
    }

    /// The lines as runs: each item is the bytes of one or more consecutive lines with the
    /// single line feeds between them (none after the last), and how many lines it holds.
    pub fn runs(&self) -> impl Iterator<Item = (&[u8], usize)> + '_ {
        let mut spans = self.spans.iter().peekable();
        std::iter::from_fn(move || {
            let &(start, mut end) = spans.next()?;
            let mut count = 1;
            while let Some(&&(next_start, next_end)) = spans.peek() {
                if next_start != end + 1 || self.data[end] != b'\n' {
                    break;
                }
                end = next_end;
                count += 1;
                spans.next();
            }
            Some((&self.data[start..end], count))
        })
    }
}

impl IntoIterator for Output {
    type Item = OutputLine;
    type IntoIter = std::vec::IntoIter<OutputLine>;

    /// Each line on its own (a view of the same buffer, no copy).
    fn into_iter(self) -> Self::IntoIter {
        let stream = self.stream;
        self.spans
            .iter()
            .map(|&(start, end)| OutputLine {
                stream,
                line: self.data.slice(start..end),
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// The longest line delivered in one piece.
pub const MAX_LINE: usize = 64 * 1024;

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by a signal. Over SSH the signal's number is not reported by the
    /// multiplexing protocol (`None`); pogo's remote wrapper turns the usual case, a command
    /// killed by a signal, into the shell's code `128 + N`, so this is rare there.
    Signal(Option<i32>),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code {code}"),
            ExitStatus::Signal(Some(signal)) => write!(f, "killed by signal {signal}"),
            ExitStatus::Signal(None) => write!(f, "killed by a signal"),
        }
    }
}

/// What became of a command that had to be killed (timeout or cancellation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kill {
    /// The command had not started on the target: there was nothing to kill.
    NotStarted,
    /// The command's process group is gone from the target.
    Killed,
    /// The kill could not be confirmed: the command may still be running on the target.
    Unconfirmed(String),
}

impl fmt::Display for Kill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kill::NotStarted => f.write_str("the command had not started"),
            Kill::Killed => f.write_str("the command was killed on the target"),
            Kill::Unconfirmed(why) => {
                write!(f, "the command may still be running on the target: {why}")
            }
        }
    }
}

/// Why a host could not be reached. The command did not run, except for
/// [`ConnectErrorKind::Lost`], where it may have run in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    pub kind: ConnectErrorKind,
    /// What the connection said, for the operator (for SSH, the master's own messages).
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectErrorKind {
    /// No connection: refused, timed out, name not resolved, closed during the handshake.
    Connect,
    /// The host refused every credential offered.
    Auth,
    /// The host's key was not accepted under the host-key policy (unknown under `strict`, or
    /// different from the known one).
    HostKey,
    /// The connection was lost while the command ran: it may have run in part.
    Lost,
    /// The transport could not start on this machine (no `ssh` or `sh`, no temporary
    /// directory...).
    Local,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ConnectErrorKind::Connect => "could not connect",
            ConnectErrorKind::Auth => "authentication failed",
            ConnectErrorKind::HostKey => "host key not accepted",
            ConnectErrorKind::Lost => "connection lost while the command ran",
            ConnectErrorKind::Local => "could not start the transport",
        };
        if self.message.is_empty() {
            f.write_str(what)
        } else {
            write!(f, "{what}: {}", self.message)
        }
    }
}

impl std::error::Error for ConnectError {}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran and ended; it succeeded if its status is [`ExitStatus::success`].
    Exited(ExitStatus),
    /// The timeout expired; the command was killed (see [`Kill`]).
    TimedOut(Kill),
    /// The run was cancelled; the command was killed (see [`Kill`]).
    Cancelled(Kill),
    /// The host could not be reached: the command did not run (see [`ConnectError`]).
    Unreachable(ConnectError),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Exited(status) if status.success())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(status) => write!(f, "{status}"),
            Outcome::TimedOut(kill) => write!(f, "timed out; {kill}"),
            Outcome::Cancelled(kill) => write!(f, "cancelled; {kill}"),
            Outcome::Unreachable(error) => write!(f, "unreachable: {error}"),
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: Outcome,
    /// From the call to the end, connecting and killing included.
    pub duration: Duration,
}

/// Cancels runs: cloned into every run, fired once (for example on a second Ctrl-C). Runs
/// started after it fired are cancelled before they start anything.
#[derive(Debug, Clone)]
pub struct CancelToken {
    fired: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelToken {
    pub fn new() -> Self {
        CancelToken {
            fired: Arc::new(watch::Sender::new(false)),
        }
    }

    pub fn cancel(&self) {
        self.fired.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.fired.borrow()
    }

    /// Completes when the token fires (at once if it has).
    pub async fn cancelled(&self) {
        let mut rx = self.fired.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail for lack of one.
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

/// A transport and its options, as given for the run (paths made absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransportSpec {
    Local,
    Ssh {
        user: Option<String>,
        port: Option<u16>,
        identity: Option<PathBuf>,
        ssh_config: Option<PathBuf>,
        /// `strict`, `accept-new` or `off` (`HostKeyPolicy`'s names).
        known_hosts: String,
        /// Whether the operator gave a password (asked for again on a resume).
        password: bool,
    },
}

impl TransportSpec {
    /// `local` or `ssh`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportSpec::Local => "local",
            TransportSpec::Ssh { .. } => "ssh",
        }
    }
}

/// Builds the transport a run's [`TransportSpec`] describes,
/// with the SSH password when the operator gave one. The SSH transport's askpass helper is the
/// current executable (the pogo binary, see [`askpass_main`]).
///
/// Fails, with a message that reads after "failed to", on an unknown host-key policy or when
/// the SSH transport cannot start on this machine (no temporary directory, for example).
pub fn from_spec(
    spec: &TransportSpec,
    password: Option<Secret>,
) -> Result<Arc<dyn Transport>, String> {
    from_spec_kept(spec, password, None, true)
}

/// [`from_spec`], with the local transport's commands kept by `keeper` (the pogo binary,
/// started as their keeper: see [`keeper`]), as `pogo apply` and `pogo worker` do, and the SSH
/// transport's connections per host or per attempt as `multiplex` says
/// ([`SshOptions::multiplex`], [`multiplex_for`]).
pub fn from_spec_kept(
    spec: &TransportSpec,
    password: Option<Secret>,
    keeper: Option<std::path::PathBuf>,
    multiplex: bool,
) -> Result<Arc<dyn Transport>, String> {
    match spec {
        TransportSpec::Local => Ok(Arc::new(match keeper {
            Some(pogo) => LocalTransport::new().with_keeper(pogo),
            None => LocalTransport::new(),
        })),
        TransportSpec::Ssh {
            user,
            port,
            identity,
            ssh_config,
            known_hosts,
            // Whether there is a password is `password`'s business here.
            password: _,
        } => {
            let options = SshOptions {
                user: user.clone(),
                port: *port,
                identity: identity.clone(),
                config_file: ssh_config.clone(),
                host_key_policy: known_hosts.parse()?,
                password,
                askpass_program: None,
                multiplex,
                ..SshOptions::default()
            };
            let transport = SshTransport::new(options)
                .map_err(|e| format!("cannot start the ssh transport: {e}"))?;
            Ok(Arc::new(transport))
        }
    }
}

/// Runs one attempt against a deadline `timeout` from now, and measures it: the part of
/// [`Transport::run`] every transport shares.
/// The result for a host whose name breaks the host-name rule (`pogo_model::host_name_problem`):
/// a transport never passes such a name to a shell, ssh or an environment variable, whatever
/// the plan says. `None` for a valid name.
pub(crate) fn refused_host(host: &str) -> Option<RunResult> {
    let problem = pogo_model::host_name_problem(host)?;
    Some(RunResult {
        outcome: Outcome::Unreachable(ConnectError {
            kind: ConnectErrorKind::Local,
            message: format!(
                "host name `{}` refused: {problem}",
                pogo_model::shown_host_name(host)
            ),
        }),
        duration: Duration::ZERO,
    })
}

pub(crate) async fn timed<F, Fut>(timeout: Option<Duration>, attempt: F) -> RunResult
where
    F: FnOnce(Option<tokio::time::Instant>) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let start = tokio::time::Instant::now();
    // A timeout beyond what the clock can count is no timeout.
    let outcome = attempt(timeout.and_then(|timeout| start.checked_add(timeout))).await;
    RunResult {
        outcome,
        duration: start.elapsed(),
    }
}

/// Sends each line of `reader` to `output`, tagged with `stream`, until end of file. `keep`
/// sees every line first and may withhold it (the SSH wrapper's own report). Reading goes on
/// when the receiver is gone, so that the command never blocks on a full pipe.
pub(crate) async fn pump_lines<R, F>(
    mut reader: R,
    stream: Stream,
    output: &mpsc::Sender<Output>,
    mut keep: F,
) where
    R: AsyncRead + Unpin,
    F: FnMut(&[u8]) -> bool,
{
    let mut receiver_gone = false;
    // What is read and not yet cut into lines.
    let mut pending = bytes::BytesMut::with_capacity(256 * 1024);
    loop {
        if pending.capacity() - pending.len() < 64 * 1024 {
            pending.reserve(256 * 1024);
        }
        match reader.read_buf(&mut pending).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // The lines of one read go as one message, one view of the read buffer with the
        // lines' places in it: a flood of short lines costs one channel send (and one wake of
        // the writer) a read, not a line, and no allocation or reference count a line.
        let mut spans = Vec::new();
        let mut start = 0;
        loop {
            let rest = &pending[start..];
            let end = match memchr::memchr(b'\n', rest) {
                Some(newline) if newline <= MAX_LINE => start + newline,
                // A line longer than MAX_LINE comes in pieces, newline or not.
                _ if rest.len() >= MAX_LINE => start + MAX_LINE,
                _ => break,
            };
            if keep(&pending[start..end]) {
                spans.push((start, end));
            }
            start = if pending.get(end) == Some(&b'\n') {
                end + 1
            } else {
                end
            };
        }
        let data = pending.split_to(start).freeze();
        deliver(
            output,
            Output {
                stream,
                data,
                spans,
            },
            &mut receiver_gone,
        )
        .await;
    }
    if !pending.is_empty() && keep(&pending) {
        let last = Output::line(stream, pending.freeze());
        deliver(output, last, &mut receiver_gone).await;
    }
}

async fn deliver(output: &mpsc::Sender<Output>, batch: Output, receiver_gone: &mut bool) {
    if !batch.spans.is_empty() && !*receiver_gone && output.send(batch).await.is_err() {
        *receiver_gone = true;
    }
}

/// Shortens `message` to what fits on a line of a report.
pub(crate) fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<Vec<u8>> {
        let (tx, mut rx) = mpsc::channel(1024);
        pump_lines(input, Stream::Stdout, &tx, |_| true).await;
        drop(tx);
        let mut lines = Vec::new();
        while let Some(batch) = rx.recv().await {
            assert_eq!(batch.stream, Stream::Stdout);
            lines.extend(batch.lines().map(<[u8]>::to_vec));
        }
        lines
    }

    #[tokio::test]
    async fn lines_are_split_at_line_feeds_and_a_last_partial_line_is_kept() {
        assert_eq!(
            lines_of(b"a\n\nb\r\nc").await,
            vec![b"a".to_vec(), b"".to_vec(), b"b\r".to_vec(), b"c".to_vec()]
        );
        assert!(lines_of(b"").await.is_empty());
    }

    #[tokio::test]
    async fn a_long_line_comes_in_pieces() {
        let mut input = vec![b'x'; MAX_LINE * 2 + 10];
        input.push(b'\n');
        let lines = lines_of(&input).await;
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_LINE, MAX_LINE, 10]
        );
    }

    #[tokio::test]
    async fn reading_goes_on_when_the_receiver_is_gone() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        // Would block forever on a full channel if it did not notice.
        pump_lines(&b"1\n2\n3\n"[..], Stream::Stderr, &tx, |_| true).await;
    }

    #[tokio::test]
    async fn from_spec_builds_the_local_transport() {
        let transport = from_spec(&TransportSpec::Local, None).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let result = transport
            .run("web1", "echo $POGO_HOST", None, &CancelToken::new(), tx)
            .await;
        assert_eq!(result.outcome, Outcome::Exited(ExitStatus::Code(0)));
        assert_eq!(rx.recv().await.unwrap().lines().next(), Some(&b"web1"[..]));
        transport.close("web1").await;
    }

    /// Whatever a plan says, a transport never hands a bad host name to a shell or to ssh: a
    /// name with a newline would forge a line of output, an empty one would run with an empty
    /// `POGO_HOST`, one starting with `-` would be an ssh option.
    #[tokio::test]
    async fn every_transport_refuses_a_host_name_that_breaks_the_rule() {
        let ssh = TransportSpec::Ssh {
            user: None,
            port: None,
            identity: None,
            ssh_config: None,
            known_hosts: "strict".into(),
            password: false,
        };
        for spec in [TransportSpec::Local, ssh] {
            let transport = from_spec(&spec, None).unwrap();
            for host in ["h1\nhost2: Success", "", "-oProxyCommand=touch /tmp/x"] {
                let (tx, mut rx) = mpsc::channel(16);
                let result = transport
                    .run(host, "echo ran", None, &CancelToken::new(), tx)
                    .await;
                let Outcome::Unreachable(error) = &result.outcome else {
                    panic!("{host:?}: {:?}", result.outcome)
                };
                assert!(
                    error.message.starts_with("host name `"),
                    "{}",
                    error.message
                );
                assert!(!error.message.contains('\n'), "{}", error.message);
                assert!(rx.recv().await.is_none(), "nothing ran for {host:?}");
            }
        }
    }

    #[test]
    fn from_spec_builds_the_ssh_transport_and_checks_the_host_key_policy() {
        let ssh = |known_hosts: &str| TransportSpec::Ssh {
            user: Some("deploy".into()),
            port: Some(2222),
            identity: None,
            ssh_config: None,
            known_hosts: known_hosts.into(),
            password: true,
        };
        for policy in HostKeyPolicy::NAMES {
            assert!(from_spec(&ssh(policy), Some(Secret::new("pw"))).is_ok());
        }
        let error = from_spec(&ssh("sometimes"), None).err().unwrap();
        assert!(
            error.contains("unknown host-key policy `sometimes`"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_cancel_token_fires_once_for_everyone() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(!clone.is_cancelled());
        let waiter = tokio::spawn(async move { clone.cancelled().await });
        token.cancel();
        waiter.await.unwrap();
        assert!(token.is_cancelled());
        token.cancelled().await;
    }
}
