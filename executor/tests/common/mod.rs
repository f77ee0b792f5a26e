//! Test support shared by the transport tests: running a command and collecting its output,
//! looking at processes, and a real `sshd` on loopback.

#![allow(dead_code)] // each test crate uses part of it

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pogo_executor::transport::{CancelToken, Outcome, OutputLine, RunResult, Stream, Transport};
use tokio::sync::mpsc;

/// Runs `command` on `host` and returns the result with every output line.
pub async fn run(
    transport: &dyn Transport,
    host: &str,
    command: &str,
    timeout: Option<Duration>,
) -> (RunResult, Vec<OutputLine>) {
    let cancel = CancelToken::new();
    run_with(transport, host, command, timeout, &cancel).await
}

pub async fn run_with(
    transport: &dyn Transport,
    host: &str,
    command: &str,
    timeout: Option<Duration>,
    cancel: &CancelToken,
) -> (RunResult, Vec<OutputLine>) {
    let (tx, mut rx) = mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(batch) = rx.recv().await {
            lines.extend(batch);
        }
        lines
    });
    let result = transport.run(host, command, timeout, cancel, tx).await;
    (result, collect.await.unwrap())
}

/// The lines as `stream: text`, for readable assertions.
pub fn texts(lines: &[OutputLine]) -> Vec<String> {
    lines
        .iter()
        .map(|line| format!("{}: {}", line.stream, line.text()))
        .collect()
}

pub fn stdout_of(lines: &[OutputLine]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| line.stream == Stream::Stdout)
        .map(|line| line.text().into_owned())
        .collect()
}

/// The value after `key ` in the output, e.g. `child 1234`.
pub fn field(lines: &[OutputLine], key: &str) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|line| {
            line.text()
                .strip_prefix(&format!("{key} "))?
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

/// A marker unique to this test run, to find its processes by command line.
pub fn marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("pogo-test-{name}-{}-{nanos}", std::process::id())
}

/// Whether process `pid` is alive (a zombie is dead: init reaps orphans when it gets to them).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("Z");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Live processes whose command line contains `needle` (what `pgrep -f` finds).
pub fn processes_matching(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && alive(pid) {
            found.push(pid);
        }
    }
    found
}

/// Waits up to `within` for `done`.
pub fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The command of the kill tests: a shell with a background child, both reporting their PIDs,
/// with `marker` in the shell's command line.
pub fn long_command(marker: &str) -> String {
    format!("echo self $$; sleep 300 & echo child $!; sleep 300; : {marker}")
}

/// The process group of `pid`.
pub fn pgrp(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Runs `command` (which prints `self PID` and `child PID`, and has `marker` in its command
/// line) until the timeout or, with `cancel_after_start`, a cancel once both reported; checks
/// that its processes are alive before and gone after. `check_started` sees the two PIDs.
pub async fn assert_killed_on_target(
    transport: &dyn Transport,
    host: &str,
    command: &str,
    marker: &str,
    timeout: Option<Duration>,
    cancel_after_start: bool,
    check_started: impl Fn(u32, u32),
) -> Outcome {
    let cancel = CancelToken::new();
    let (tx, mut rx) = mpsc::channel(16);
    let run = transport.run(host, command, timeout, &cancel, tx);
    tokio::pin!(run);
    let mut lines = Vec::new();
    // Watch the processes start.
    let result = loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(batch) = line else { break run.await };
                lines.extend(batch);
                if field(&lines, "child").len() == 1 && field(&lines, "self").len() == 1 {
                    let pids = [field(&lines, "self")[0], field(&lines, "child")[0]];
                    assert!(pids.iter().all(|&pid| alive(pid)), "{pids:?} run");
                    assert!(!processes_matching(marker).is_empty());
                    check_started(pids[0], pids[1]);
                    if cancel_after_start {
                        cancel.cancel();
                    }
                }
            }
            result = &mut run => break result,
        }
    };
    while let Some(batch) = rx.recv().await {
        lines.extend(batch);
    }
    let pids = [field(&lines, "self")[0], field(&lines, "child")[0]];
    assert!(
        pids.iter().all(|&pid| !alive(pid)),
        "{pids:?} still alive after {:?}",
        result.outcome
    );
    assert_eq!(processes_matching(marker), Vec::<u32>::new());
    assert!(
        result.duration < Duration::from_secs(8),
        "{:?}",
        result.duration
    );
    result.outcome
}

// ---------------------------------------------------------------------------------------------
// A real sshd on loopback.

pub const SSHD: &str = "/usr/sbin/sshd";
/// The account the password tests log in as, with a password known to the tests. `.ci/run`
/// creates it; [`ensure_test_user`] does too when it is missing, with [`account_consent`].
pub const TEST_USER: &str = "pogo-test";
pub const TEST_PASSWORD: &str = "pogo-test-Pa55word";

fn require_tools() {
    for tool in [SSHD, "/usr/bin/ssh", "/usr/bin/ssh-keygen"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: the SSH transport tests need OpenSSH's server and client \
             (apt-get install -y openssh-server openssh-client; .ci/run does this). \
             They do not skip."
        );
    }
}

fn is_root() -> bool {
    uid() == 0
}

fn uid() -> u32 {
    id("-u").parse().unwrap()
}

/// `id FLAG` (rather than a dependency of the tests' own).
fn id(flag: &str) -> String {
    let out = Command::new("id")
        .arg(flag)
        .output()
        .expect("failed to run id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The variable that lets the password tests set up [`TEST_USER`] on this machine.
pub const ACCOUNT_CONSENT: &str = "POGO_TEST_ACCOUNT";

/// Whether the password tests may create [`TEST_USER`] and set its published password on
/// this machine: only in CI (`CI=true`) or when asked (`POGO_TEST_ACCOUNT=1`). Otherwise the
/// reason, naming the variable: the tests fail with it, they never skip.
pub fn account_consent(var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    if var("CI").as_deref() == Some("true") || var(ACCOUNT_CONSENT).as_deref() == Some("1") {
        return Ok(());
    }
    Err(format!(
        "the password tests log in as the system account {TEST_USER}, whose password \
         ({TEST_PASSWORD}) is written in these tests: they create it if need be and set that \
         password on this machine. Set {ACCOUNT_CONSENT}=1 to let them (CI=true does too), \
         as root"
    ))
}

/// Makes sure [`TEST_USER`] exists with [`TEST_PASSWORD`]: creates it (no home directory, shell
/// `/bin/sh`) if it is missing and this runs as root, sets the password once per test process.
/// Only with [`account_consent`].
pub fn ensure_test_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if let Err(refused) = account_consent(|name| std::env::var(name).ok()) {
            panic!("{refused}");
        }
        let exists = Command::new("id")
            .arg(TEST_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(
            is_root(),
            "the password tests need the account {TEST_USER} with a known password, which \
             only root can set up (run them as root, as .ci/run does)"
        );
        if !exists {
            let status = Command::new("useradd")
                .args(["--system", "--no-create-home", "--home-dir", "/"])
                .args(["--shell", "/bin/sh", TEST_USER])
                .status()
                .expect("failed to run useradd");
            // Another test process may have created it meanwhile.
            assert!(
                status.success()
                    || Command::new("id")
                        .arg(TEST_USER)
                        .output()
                        .unwrap()
                        .status
                        .success(),
                "failed to create the account {TEST_USER}"
            );
        }
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("failed to run chpasswd");
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{TEST_USER}:{TEST_PASSWORD}\n").as_bytes())
            .unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
    });
}

fn keygen(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "pogo-test", "-f"])
        .arg(path)
        .status()
        .expect("failed to run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// A port with nothing listening (as far as anyone can tell).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Options of a test sshd.
#[derive(Default)]
pub struct SshdOptions {
    /// `PasswordAuthentication yes` (and the test account ensured).
    pub password: bool,
    /// sshd's `ForceCommand`, run by the login shell instead of the client's command (which it
    /// finds in `$SSH_ORIGINAL_COMMAND`): `exec fish -c "$SSH_ORIGINAL_COMMAND"` makes the
    /// account's shell fish as far as pogo can tell.
    pub force_command: Option<String>,
}

/// An `sshd` of the test's own on 127.0.0.1, with its own host key, authorized key and a client
/// config of host aliases; killed when dropped. Every test starts its own, so tests run in
/// parallel safely.
///
/// Aliases in [`Sshd::config`] (all to this sshd, as the current user with the authorized key
/// unless said; root in CI, which `PermitRootLogin yes` allows):
/// - `ok`: the host key is known (under the alias `pogo-ok`).
/// - `unknown`: a host key alias no known_hosts line has.
/// - `mismatch`: known_hosts has a different key for it.
/// - `badkey`: offers a key that is not authorized.
/// - `closed`: a port nothing listens on.
/// - `pw`: the test account, password authentication only.
pub struct Sshd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The client config with the aliases (`ssh -F`).
    pub config: PathBuf,
    pub known_hosts: PathBuf,
}

impl Sshd {
    pub fn start(options: SshdOptions) -> Sshd {
        require_tools();
        if options.password {
            ensure_test_user();
        }
        if is_root() {
            // sshd running as root wants its privilege separation directory.
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let dir = tempfile::Builder::new()
            .prefix("pogo-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let host_key = keygen(&d.join("host_key"));
        let client_key = keygen(&d.join("client_key"));
        let other_key = keygen(&d.join("other_key"));
        std::fs::write(d.join("authorized_keys"), format!("{client_key}\n")).unwrap();
        let known_hosts = d.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("pogo-ok {host_key}\npogo-mismatch {other_key}\n"),
        )
        .unwrap();

        // A port picked here may be taken before sshd binds it: try again with another.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let sshd_config = d.join("sshd_config");
            std::fs::write(
                &sshd_config,
                format!(
                    "Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {dir}/host_key\n\
                     PidFile none\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     PermitRootLogin yes\n\
                     AuthorizedKeysFile {dir}/authorized_keys\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication {password}\n\
                     KbdInteractiveAuthentication no\n\
                     AllowUsers {user} {TEST_USER}\n\
                     X11Forwarding no\n\
                     AllowTcpForwarding no\n\
                     PrintMotd no\n\
                     MaxStartups 100\n\
                     MaxSessions 50\n\
                     LogLevel VERBOSE\n\
                     {force}",
                    force = match &options.force_command {
                        Some(command) => format!("ForceCommand {command}\n"),
                        None => String::new(),
                    },
                    dir = d.display(),
                    password = if options.password { "yes" } else { "no" },
                    user = id("-un"),
                ),
            )
            .unwrap();
            let log_path = d.join("sshd.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&sshd_config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("failed to start sshd");
            let listening = format!("Server listening on 127.0.0.1 port {port}");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if last_log.contains(&listening) {
                    let config = d.join("ssh_config");
                    write_client_config(&config, d, port, &known_hosts);
                    return Sshd {
                        child,
                        dir,
                        port,
                        config,
                        known_hosts,
                    };
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("sshd did not start; its log:\n{last_log}");
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.path().join("sshd.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Live `ssh` client processes (masters) that use this sshd's client config.
    pub fn masters(&self) -> Vec<u32> {
        processes_matching(&self.config.display().to_string())
    }
}

impl Drop for Sshd {
    /// Stops sshd, and checks that no ssh master of the test is left (the transport, dropped
    /// before, must have shut them all down): leftovers are killed, and fail the test.
    fn drop(&mut self) {
        let gone = eventually(Duration::from_secs(5), || self.masters().is_empty());
        let leftovers = self.masters();
        for pid in &leftovers {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !gone && !std::thread::panicking() {
            panic!("ssh masters left running after the test: {leftovers:?}");
        }
    }
}

fn write_client_config(path: &Path, dir: &Path, port: u16, known_hosts: &Path) {
    let d = dir.display();
    let closed = free_port();
    let text = format!(
        "Host ok\n  HostKeyAlias pogo-ok\n\
         Host unknown\n  HostKeyAlias pogo-unknown\n\
         Host mismatch\n  HostKeyAlias pogo-mismatch\n\
         Host badkey\n  HostKeyAlias pogo-ok\n  IdentityFile {d}/other_key\n\
         Host closed\n  HostKeyAlias pogo-ok\n  Port {closed}\n\
         Host pw\n  HostKeyAlias pogo-ok\n  User {TEST_USER}\n  PubkeyAuthentication no\n  \
         PasswordAuthentication yes\n  PreferredAuthentications password\n\
         Host * !badkey\n  IdentityFile {d}/client_key\n\
         Host *\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
         IdentitiesOnly yes\n  IdentityAgent none\n  \
         UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  \
         PasswordAuthentication no\n  KbdInteractiveAuthentication no\n",
        kh = known_hosts.display(),
        user = id("-un"),
    );
    std::fs::write(path, text).unwrap();
}
