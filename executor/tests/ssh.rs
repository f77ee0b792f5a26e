//! The SSH transport against a real `sshd` on loopback: every test starts its own (see
//! `common::Sshd`), with its own keys, and connects through host aliases of an ssh config file.
//! The "remote" processes run on this machine, so the tests check them in `/proc`.

mod common;

use std::time::Duration;

use common::{
    alive, assert_killed_on_target, eventually, long_command, marker, pgrp, run, run_with,
    stdout_of, texts, Sshd, SshdOptions, TEST_PASSWORD, TEST_USER,
};
use pogo_executor::transport::{
    CancelToken, ConnectErrorKind, ExitStatus, HostKeyPolicy, Kill, Outcome, Secret, SshOptions,
    SshTransport, Stream, Transport,
};
use tokio::sync::mpsc;

/// How the transport connects: a master per host, or an `ssh` per attempt. Most tests run
/// under both (see `in_both_modes!` at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PerHost,
    PerAttempt,
}

fn options(sshd: &Sshd, policy: HostKeyPolicy, mode: Mode) -> SshOptions {
    SshOptions {
        config_file: Some(sshd.config.clone()),
        host_key_policy: policy,
        connect_timeout: Some(Duration::from_secs(5)),
        kill_grace: Duration::from_secs(2),
        multiplex: mode == Mode::PerHost,
        ..SshOptions::default()
    }
}

fn transport(sshd: &Sshd, policy: HostKeyPolicy, mode: Mode) -> SshTransport {
    SshTransport::new(options(sshd, policy, mode)).unwrap()
}

/// This process's uid, which the remote side shares.
fn my_uid() -> String {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn unreachable_kind(outcome: &Outcome) -> ConnectErrorKind {
    match outcome {
        Outcome::Unreachable(error) => error.kind,
        other => panic!("expected unreachable, got {other:?}"),
    }
}

const SECOND: Option<Duration> = Some(Duration::from_secs(1));
const TEN_SECONDS: Option<Duration> = Some(Duration::from_secs(10));

async fn a_command_runs_and_its_output_is_captured(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let (result, lines) = run(
        &ssh,
        "ok",
        "echo hello; echo 'to stderr' >&2; echo \"user=$(id -u)\"; printf 'no line feed'",
        TEN_SECONDS,
    )
    .await;
    assert_eq!(
        result.outcome,
        Outcome::Exited(ExitStatus::Code(0)),
        "{}",
        sshd.log()
    );
    assert!(result.outcome.is_success());
    let mut texts = texts(&lines);
    texts.sort();
    assert_eq!(
        texts,
        [
            "stderr: to stderr",
            "stdout: hello",
            "stdout: no line feed",
            format!("stdout: user={}", my_uid()).as_str(),
        ],
        "the wrapper's pid report is not part of the output"
    );
}

async fn a_command_that_fails_is_a_failure_not_an_unreachable_host(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    for (command, code) in [
        ("exit 3", 3),
        // 255 is what `ssh` itself exits with when it cannot connect: not here.
        ("exit 255", 255),
        ("exit 127", 127),
        ("no-such-command-pogo", 127),
        // Killed by a signal: the shell's 128 + N.
        ("sh -c 'kill -9 $$'", 137),
    ] {
        let (result, _) = run(&ssh, "ok", command, TEN_SECONDS).await;
        assert_eq!(
            result.outcome,
            Outcome::Exited(ExitStatus::Code(code)),
            "{command}"
        );
    }
    // A command with quotes, newlines and backslashes arrives byte for byte.
    let command = "printf '%s\\n' \"a'b\" 'c\"d' 'e\\f'\necho \"$((6 * 7))\"";
    let (result, lines) = run(&ssh, "ok", command, TEN_SECONDS).await;
    assert!(result.outcome.is_success(), "{:?}", result.outcome);
    assert_eq!(stdout_of(&lines), ["a'b", "c\"d", "e\\f", "42"]);
    // `$$` is the login shell's, as with `ssh HOST COMMAND`: killing it ends the wrapper
    // before it can report, and the outcome is a signal, not a lost connection.
    let (result, _) = run(&ssh, "ok", "kill -9 $$", TEN_SECONDS).await;
    assert_eq!(result.outcome, Outcome::Exited(ExitStatus::Signal(None)));
}

async fn output_streams_as_it_comes_in_order(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let cancel = CancelToken::new();
    let (tx, mut rx) = mpsc::channel(16);
    let command =
        "echo one; sleep 1; echo two >&2; sleep 0.3; echo three; sleep 0.3; echo four >&2";
    let run = ssh.run("ok", command, TEN_SECONDS, &cancel, tx);
    tokio::pin!(run);
    // The first line arrives while the command is still running.
    let first = tokio::select! {
        batch = rx.recv() => batch.unwrap().into_iter().next().unwrap(),
        result = &mut run => panic!("the run ended before any output: {result:?}"),
    };
    assert_eq!(
        (first.stream, first.text().as_ref()),
        (Stream::Stdout, "one")
    );
    let mut rest = Vec::new();
    let collect = async {
        while let Some(batch) = rx.recv().await {
            rest.extend(batch);
        }
    };
    let (result, ()) = tokio::join!(run, collect);
    assert!(result.outcome.is_success(), "{:?}", result.outcome);
    assert_eq!(
        texts(&rest),
        ["stderr: two", "stdout: three", "stderr: four"]
    );
    assert!(result.duration >= Duration::from_millis(1500));
}

#[tokio::test]
async fn one_connection_per_host_is_reused_across_runs_and_closed_on_request() {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, Mode::PerHost);
    // SSH_CONNECTION names the client's port: the same port is the same TCP connection.
    let (first, a) = run(&ssh, "ok", "echo $SSH_CONNECTION", TEN_SECONDS).await;
    let (second, b) = run(&ssh, "ok", "echo $SSH_CONNECTION", TEN_SECONDS).await;
    assert!(first.outcome.is_success() && second.outcome.is_success());
    assert_eq!(stdout_of(&a), stdout_of(&b));
    assert_eq!(sshd.masters().len(), 1, "one master for the host");
    // A failed attempt does not lose the connection either.
    let (failed, _) = run(&ssh, "ok", "exit 1", TEN_SECONDS).await;
    assert_eq!(failed.outcome, Outcome::Exited(ExitStatus::Code(1)));
    let (third, c) = run(&ssh, "ok", "echo $SSH_CONNECTION", TEN_SECONDS).await;
    assert!(third.outcome.is_success());
    assert_eq!(stdout_of(&a), stdout_of(&c));

    ssh.close("ok").await;
    assert!(
        eventually(Duration::from_secs(5), || sshd.masters().is_empty()),
        "the master is gone once closed: {:?}",
        sshd.masters()
    );
    // Closing is not the end of the host: a later run connects again.
    let (again, _) = run(&ssh, "ok", "true", TEN_SECONDS).await;
    assert!(again.outcome.is_success());
    assert_eq!(sshd.masters().len(), 1);
    drop(ssh);
    assert!(
        eventually(Duration::from_secs(5), || sshd.masters().is_empty()),
        "dropping the transport shuts its masters down"
    );
}

#[tokio::test]
async fn the_phases_of_one_attempt_share_one_connection() {
    use pogo_executor::phases::{self, Phase, Phases, VerifyRun};
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, Mode::PerHost);
    let phases = Phases {
        before: Some("echo before $SSH_CONNECTION".into()),
        verify: Some(VerifyRun {
            command: "echo verify $SSH_CONNECTION".into(),
            within_ms: 10_000,
            every_ms: 1_000,
        }),
        after: Some("echo after $SSH_CONNECTION".into()),
    };
    let (tx, mut rx) = mpsc::channel(64);
    let ended = phases::attempt(
        &ssh,
        "ok",
        "echo command $SSH_CONNECTION",
        &phases,
        TEN_SECONDS,
        &CancelToken::new(),
        &tx,
    )
    .await;
    drop(tx);
    assert!(ended.result.outcome.is_success(), "{:?}", ended.result);
    assert_eq!(ended.phase, Phase::After);
    let mut connections = std::collections::BTreeSet::new();
    let mut ran = Vec::new();
    while let Some(output) = rx.recv().await {
        for line in output.lines() {
            let text = String::from_utf8_lossy(line).to_string();
            if let Some((phase, connection)) = text.split_once(' ') {
                if !phase.starts_with("---") {
                    ran.push(phase.to_string());
                    connections.insert(connection.to_string());
                }
            }
        }
    }
    assert_eq!(ran, ["before", "command", "verify", "after"]);
    // SSH_CONNECTION names the client's port: one port, one TCP connection for all four.
    assert_eq!(connections.len(), 1, "{connections:?}");
    assert_eq!(sshd.masters().len(), 1, "one master for the attempt");
}

/// On a terminal, Ctrl-C sends SIGINT to the whole foreground process group. The ssh the
/// transport starts must not be in it (the test's group stands for pogo's): pogo alone decides
/// what a Ctrl-C does, and a halt lets running hosts finish over their connections.
async fn ssh_runs_outside_the_callers_process_group_so_a_ctrl_c_does_not_reach_it(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    // An ssh that notes its /proc stat (pid, pgrp) while it connects, then is the real one.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncat /proc/$$/stat > {}/stat.$$\nexec ssh \"$@\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ssh = SshTransport::new(SshOptions {
        ssh_program: wrapper,
        ..options(&sshd, HostKeyPolicy::Strict, mode)
    })
    .unwrap();
    let (result, lines) = run(&ssh, "ok", "echo hello", TEN_SECONDS).await;
    assert!(result.outcome.is_success(), "{:?}", result.outcome);
    assert_eq!(stdout_of(&lines), ["hello"]);

    let mine = pgrp(std::process::id()).unwrap();
    let stats: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("stat."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(stats.len(), 1, "one ssh started: {stats:?}");
    let (pid, rest) = stats[0].split_once(' ').unwrap();
    let group = rest
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(2)
        .unwrap();
    assert_eq!(
        group, pid,
        "the connecting ssh leads a process group of its own"
    );
    assert_ne!(group, mine.to_string());
    // The master in the background is outside the caller's group too; an ssh per attempt is
    // gone with its attempt.
    let masters = sshd.masters();
    assert_eq!(masters.len(), usize::from(mode == Mode::PerHost));
    for master in masters {
        assert_ne!(pgrp(master), Some(mine), "master {master}");
    }
}

async fn a_host_where_nothing_listens_is_unreachable(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let (result, lines) = run(&ssh, "closed", "echo never", TEN_SECONDS).await;
    assert_eq!(unreachable_kind(&result.outcome), ConnectErrorKind::Connect);
    assert!(
        result.outcome.to_string().contains("Connection refused"),
        "{}",
        result.outcome
    );
    assert!(lines.is_empty());
    assert!(sshd.masters().is_empty());
}

async fn a_missing_ssh_config_is_a_local_error_not_the_host(mode: Mode) {
    let ssh = SshTransport::new(SshOptions {
        config_file: Some("/nonexistent/pogo/ssh_config".into()),
        multiplex: mode == Mode::PerHost,
        ..SshOptions::default()
    })
    .unwrap();
    let (result, _) = run(&ssh, "ok", "true", TEN_SECONDS).await;
    assert_eq!(
        unreachable_kind(&result.outcome),
        ConnectErrorKind::Local,
        "{}",
        result.outcome
    );
}

async fn a_key_that_is_not_authorized_is_an_authentication_failure(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let (result, _) = run(&ssh, "badkey", "echo never", TEN_SECONDS).await;
    assert_eq!(unreachable_kind(&result.outcome), ConnectErrorKind::Auth);
    assert!(
        result.outcome.to_string().contains("Permission denied"),
        "{}",
        result.outcome
    );
}

async fn a_changed_host_key_is_refused_unless_checking_is_off(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let before = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let ssh = transport(&sshd, policy, mode);
        let (result, lines) = run(&ssh, "mismatch", "echo never", TEN_SECONDS).await;
        assert_eq!(
            unreachable_kind(&result.outcome),
            ConnectErrorKind::HostKey,
            "{policy}: {}",
            result.outcome
        );
        assert!(lines.is_empty());
    }
    // Explicitly off: any key, none recorded.
    let ssh = transport(&sshd, HostKeyPolicy::Off, mode);
    let (result, _) = run(&ssh, "mismatch", "true", TEN_SECONDS).await;
    assert!(result.outcome.is_success(), "{}", result.outcome);
    assert_eq!(std::fs::read_to_string(&sshd.known_hosts).unwrap(), before);
}

async fn an_unknown_host_key_is_refused_under_strict_and_recorded_under_accept_new(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let strict = transport(&sshd, HostKeyPolicy::Strict, mode);
    let (result, _) = run(&strict, "unknown", "true", TEN_SECONDS).await;
    assert_eq!(
        unreachable_kind(&result.outcome),
        ConnectErrorKind::HostKey,
        "{}",
        result.outcome
    );

    let accept_new = transport(&sshd, HostKeyPolicy::AcceptNew, mode);
    let (result, _) = run(&accept_new, "unknown", "true", TEN_SECONDS).await;
    assert!(result.outcome.is_success(), "{}", result.outcome);
    let known = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    assert!(known.contains("pogo-unknown "), "{known}");

    // Now known: strict accepts it.
    strict.close("unknown").await;
    let (result, _) = run(&strict, "unknown", "true", TEN_SECONDS).await;
    assert!(result.outcome.is_success(), "{}", result.outcome);
}

async fn a_timed_out_command_is_killed_on_the_target(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let marker = marker("timeout");
    let command = long_command(&marker);
    let timeout = Some(Duration::from_secs(2));
    let outcome =
        assert_killed_on_target(&ssh, "ok", &command, &marker, timeout, false, |_, _| {}).await;
    assert_eq!(outcome, Outcome::TimedOut(Kill::Killed));
    // The connection survives for the retry (or a new one is made for it).
    let (retry, _) = run(&ssh, "ok", "true", TEN_SECONDS).await;
    assert!(retry.outcome.is_success());
    assert_eq!(sshd.masters().len(), usize::from(mode == Mode::PerHost));
}

async fn a_command_that_ignores_sigterm_gets_sigkill_on_the_target(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = SshTransport::new(SshOptions {
        kill_grace: Duration::from_secs(1),
        ..options(&sshd, HostKeyPolicy::Strict, mode)
    })
    .unwrap();
    let marker = marker("term");
    // An ignored signal stays ignored across fork and exec: the child ignores it too.
    let command = format!("trap '' TERM; {}", long_command(&marker));
    let outcome =
        assert_killed_on_target(&ssh, "ok", &command, &marker, SECOND, false, |_, _| {}).await;
    assert_eq!(outcome, Outcome::TimedOut(Kill::Killed));
}

async fn a_cancelled_command_is_killed_on_the_target(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let marker = marker("cancel");
    let command = long_command(&marker);
    let outcome =
        assert_killed_on_target(&ssh, "ok", &command, &marker, TEN_SECONDS, true, |_, _| {}).await;
    assert_eq!(outcome, Outcome::Cancelled(Kill::Killed));
    // A run after the token fired does not start.
    let cancel = CancelToken::new();
    cancel.cancel();
    let (result, lines) = run_with(&ssh, "ok", "echo never", TEN_SECONDS, &cancel).await;
    assert_eq!(result.outcome, Outcome::Cancelled(Kill::NotStarted));
    assert!(lines.is_empty());
}

async fn a_child_in_a_process_group_of_its_own_is_killed_with_the_session(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let marker = marker("pgrp");
    // perl's setpgrp: a process group of its own, in the same session (a non-interactive
    // `set -m` is refused without a terminal).
    let command = format!(
        "echo self $$; perl -e 'setpgrp(0, 0); exec \"sleep\", \"300\"' & echo child $!; \
         sleep 300; : {marker}"
    );
    let outcome =
        assert_killed_on_target(&ssh, "ok", &command, &marker, SECOND, false, |me, child| {
            // Give perl the moment it needs to call setpgrp.
            assert!(
                eventually(Duration::from_secs(2), || pgrp(child)
                    .is_some_and(|g| g == child)),
                "the child did not get a group of its own"
            );
            assert_ne!(pgrp(child), pgrp(me));
        })
        .await;
    assert_eq!(outcome, Outcome::TimedOut(Kill::Killed));
}

async fn an_abandoned_run_still_kills_the_command_on_the_target(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let marker = marker("drop");
    let command = long_command(&marker);
    let cancel = CancelToken::new();
    let (tx, mut rx) = mpsc::channel(16);
    let mut lines = Vec::new();
    {
        let run = ssh.run("ok", &command, TEN_SECONDS, &cancel, tx);
        tokio::pin!(run);
        while common::field(&lines, "child").is_empty() {
            tokio::select! {
                batch = rx.recv() => lines.extend(batch.unwrap()),
                result = &mut run => panic!("ended: {result:?}"),
            }
        }
        // The run's future is dropped here, unfinished.
    }
    let pids = [
        common::field(&lines, "self")[0],
        common::field(&lines, "child")[0],
    ];
    // The kill runs in the background: let the runtime get to it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&pid| common::alive(pid)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !pids.iter().any(|&pid| common::alive(pid)),
        "{pids:?} survived"
    );
    assert!(common::processes_matching(&marker).is_empty());
    // The background kill holds the master until it is done; then the master goes too.
    drop(ssh);
    while !sshd.masters().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sshd.masters(), Vec::<u32>::new());
}

async fn a_lost_connection_is_reported_and_the_next_run_connects_again(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let cancel = CancelToken::new();
    let (tx, mut rx) = mpsc::channel(16);
    let run_fut = ssh.run("ok", "echo up; sleep 3", TEN_SECONDS, &cancel, tx);
    tokio::pin!(run_fut);
    tokio::select! {
        batch = rx.recv() => assert_eq!(batch.unwrap().lines().next(), Some(&b"up"[..])),
        result = &mut run_fut => panic!("ended early: {result:?}"),
    }
    let masters = sshd.masters();
    assert_eq!(masters.len(), 1);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &masters[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let result = run_fut.await;
    assert_eq!(
        unreachable_kind(&result.outcome),
        ConnectErrorKind::Lost,
        "{}",
        result.outcome
    );
    let (again, lines) = run(&ssh, "ok", "echo back", TEN_SECONDS).await;
    assert!(again.outcome.is_success(), "{}", again.outcome);
    assert_eq!(stdout_of(&lines), ["back"]);
}

/// The password in any process's command line or environment on this machine.
fn password_exposed() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        for file in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
                if String::from_utf8_lossy(&bytes).contains(TEST_PASSWORD) {
                    found.push(format!("{}/{file}", entry.path().display()));
                }
            }
        }
    }
    found
}

fn password_transport(sshd: &Sshd, password: &str, mode: Mode) -> SshTransport {
    SshTransport::new(SshOptions {
        password: Some(Secret::new(password)),
        askpass_program: Some(env!("CARGO_BIN_EXE_pogo-askpass").into()),
        ..options(sshd, HostKeyPolicy::Strict, mode)
    })
    .unwrap()
}

#[test]
fn the_password_tests_set_up_their_account_only_when_told() {
    use std::collections::HashMap;
    let consent = |vars: &[(&str, &str)]| {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        common::account_consent(|name| vars.get(name).cloned())
    };
    let refused = consent(&[]).unwrap_err();
    assert!(refused.contains("POGO_TEST_ACCOUNT=1"), "{refused}");
    assert!(refused.contains(TEST_USER), "{refused}");
    assert!(consent(&[("CI", "1")]).is_err(), "CI must be `true`");
    assert!(consent(&[("POGO_TEST_ACCOUNT", "yes")]).is_err());
    assert_eq!(consent(&[("CI", "true")]), Ok(()));
    assert_eq!(consent(&[("POGO_TEST_ACCOUNT", "1")]), Ok(()));
}

async fn password_authentication_goes_through_the_askpass_helper(mode: Mode) {
    let sshd = Sshd::start(SshdOptions {
        password: true,
        ..SshdOptions::default()
    });
    let ssh = password_transport(&sshd, TEST_PASSWORD, mode);
    let (result, lines) = run(&ssh, "pw", "id -un; env", TEN_SECONDS).await;
    assert!(
        result.outcome.is_success(),
        "{}\nsshd log:\n{}",
        result.outcome,
        sshd.log()
    );
    let out = stdout_of(&lines);
    assert_eq!(out[0], TEST_USER);
    assert!(sshd
        .log()
        .contains(&format!("Accepted password for {TEST_USER}")));
    // Not in the remote command's environment, nor anywhere on this machine's command lines
    // and environments (the master is still running).
    assert!(
        !out.iter().any(|line| line.contains(TEST_PASSWORD)),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|line| line.contains("POGO_ASKPASS")),
        "{out:?}"
    );
    assert_eq!(password_exposed(), Vec::<String>::new());

    let wrong = password_transport(&sshd, "not-the-password", mode);
    let (result, _) = run(&wrong, "pw", "true", TEN_SECONDS).await;
    assert_eq!(
        unreachable_kind(&result.outcome),
        ConnectErrorKind::Auth,
        "{}",
        result.outcome
    );
}

/// Over ssh, the session's exit status arrives only once the output is closed: a command that
/// exited while a child it left holds its output, then was cancelled or timed out, was
/// reported "cancelled; the command was killed". The wrapper now reports the command's exit
/// on its own, and that wins; the race is run several times each way (bounded).
async fn a_command_that_finished_is_never_reported_cancelled_or_timed_out(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    // Connected once, so that each round measures the command alone.
    let (warm, _) = run(&ssh, "ok", "true", TEN_SECONDS).await;
    assert!(warm.outcome.is_success());
    let command = "(sleep 1.5) & exit 3";
    for round in 0..6u64 {
        let by_timeout = round % 2 == 1;
        let cancel = CancelToken::new();
        let (tx, _rx) = mpsc::channel(16);
        let timeout = if by_timeout {
            Some(Duration::from_millis(800))
        } else {
            TEN_SECONDS
        };
        let canceller = cancel.clone();
        let fire = tokio::spawn(async move {
            if !by_timeout {
                tokio::time::sleep(Duration::from_millis(800)).await;
                canceller.cancel();
            }
        });
        let result = ssh.run("ok", command, timeout, &cancel, tx).await;
        fire.await.unwrap();
        assert_eq!(
            result.outcome,
            Outcome::Exited(ExitStatus::Code(3)),
            "round {round}"
        );
    }
}

/// Without a terminal, a remote command outlived its session: a worker killed with SIGKILL, or
/// a connection lost, left it running on the target. The wrapper watches its stdin, which this
/// side holds open for the whole run, and ends the command's process group when it closes.
async fn a_lost_session_takes_the_remote_command_with_it(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let marker = marker("lost-session");
    let command = long_command(&marker);
    let cancel = CancelToken::new();
    let (tx, mut rx) = mpsc::channel(16);
    let run_fut = ssh.run("ok", &command, TEN_SECONDS, &cancel, tx);
    tokio::pin!(run_fut);
    // The command and its child run.
    let mut pids = Vec::new();
    while pids.len() < 2 {
        tokio::select! {
            batch = rx.recv() => {
                for line in batch.unwrap() {
                    let text = line.text().into_owned();
                    if let Some(pid) = text.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
                        pids.push(pid);
                    }
                }
            }
            result = &mut run_fut => panic!("ended early: {result:?}"),
        }
    }
    assert!(pids.iter().all(|&pid| alive(pid)));
    // The connection goes, as it does when the worker holding it is killed.
    let masters = sshd.masters();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &masters[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = run_fut.await;
    assert!(
        eventually(Duration::from_secs(10), || pids
            .iter()
            .all(|&pid| !alive(pid))),
        "the remote command and its child outlived the session: {pids:?}"
    );
}

/// The target runs what `ssh HOST COMMAND` runs: the login shell (and its forks) and the
/// command, no `/bin/sh`, `dd` or `cat` of pogo's. The session's processes are listed from
/// inside the command.
async fn the_target_runs_the_login_shell_and_the_command_only(mode: Mode) {
    let sshd = Sshd::start(SshdOptions::default());
    let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
    let user = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let entry = std::process::Command::new("getent")
        .arg("passwd")
        .arg(String::from_utf8_lossy(&user.stdout).trim())
        .output()
        .unwrap();
    let entry = String::from_utf8_lossy(&entry.stdout).into_owned();
    let shell = entry.trim().rsplit(':').next().unwrap();
    let shell = shell.rsplit('/').next().unwrap().to_string();
    let (result, lines) = run(&ssh, "ok", "ps -o comm= -s $$", TEN_SECONDS).await;
    assert!(result.outcome.is_success(), "{}", result.outcome);
    let names = stdout_of(&lines);
    assert!(names.contains(&shell), "{names:?}");
    assert!(
        names.iter().all(|name| *name == shell || name == "ps"),
        "only the login shell `{shell}` and the command: {names:?}"
    );
}

/// A login shell that is not POSIX (fish, csh) does not run pogo's wrapper at all (it refuses
/// it before running anything): the attempt is made again under `/bin/sh`, once, with nothing
/// of the refusal in the output, and later attempts on the host go straight to `/bin/sh`.
/// Killing works there too.
async fn a_login_shell_that_is_not_posix_gets_the_sh_wrapper(mode: Mode) {
    for shell in ["fish", "tcsh"] {
        let path = which(shell);
        let sshd = Sshd::start(SshdOptions {
            force_command: Some(format!("exec {path} -c \"$SSH_ORIGINAL_COMMAND\"")),
            ..SshdOptions::default()
        });
        let ssh = transport(&sshd, HostKeyPolicy::Strict, mode);
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("runs");
        let command = format!(
            "echo ran >> {}; echo \"posix $((1 + 1))\"; echo 'to stderr' >&2; exit 3",
            count.display()
        );
        for round in 1..=2 {
            let (result, lines) = run(&ssh, "ok", &command, TEN_SECONDS).await;
            assert_eq!(
                result.outcome,
                Outcome::Exited(ExitStatus::Code(3)),
                "{shell}, round {round}"
            );
            // stdout and stderr are two pipes: their lines' order between them is not kept.
            let mut texts = texts(&lines);
            texts.sort();
            assert_eq!(
                texts,
                ["stderr: to stderr", "stdout: posix 2"],
                "{shell}, round {round}"
            );
            let runs = std::fs::read_to_string(&count).unwrap();
            assert_eq!(
                runs.lines().count(),
                round,
                "{shell}: the command ran once a round"
            );
        }
        let marker = marker(shell);
        let outcome = assert_killed_on_target(
            &ssh,
            "ok",
            &long_command(&marker),
            &marker,
            SECOND,
            false,
            |_, _| {},
        )
        .await;
        assert_eq!(outcome, Outcome::TimedOut(Kill::Killed), "{shell}");
    }
}

fn which(program: &str) -> String {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "{program} is needed by this test (apt-get install {program}, as .ci/run does)"
    );
    path
}

/// Each test above that takes a [`Mode`], as a test per mode.
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod per_host {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Mode::PerHost).await
            })*
        }
        mod per_attempt {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Mode::PerAttempt).await
            })*
        }
    };
}

in_both_modes!(
    a_command_runs_and_its_output_is_captured,
    a_command_that_fails_is_a_failure_not_an_unreachable_host,
    output_streams_as_it_comes_in_order,
    ssh_runs_outside_the_callers_process_group_so_a_ctrl_c_does_not_reach_it,
    a_host_where_nothing_listens_is_unreachable,
    a_missing_ssh_config_is_a_local_error_not_the_host,
    a_key_that_is_not_authorized_is_an_authentication_failure,
    a_changed_host_key_is_refused_unless_checking_is_off,
    an_unknown_host_key_is_refused_under_strict_and_recorded_under_accept_new,
    a_timed_out_command_is_killed_on_the_target,
    a_command_that_ignores_sigterm_gets_sigkill_on_the_target,
    a_cancelled_command_is_killed_on_the_target,
    a_child_in_a_process_group_of_its_own_is_killed_with_the_session,
    an_abandoned_run_still_kills_the_command_on_the_target,
    a_lost_connection_is_reported_and_the_next_run_connects_again,
    password_authentication_goes_through_the_askpass_helper,
    a_command_that_finished_is_never_reported_cancelled_or_timed_out,
    a_lost_session_takes_the_remote_command_with_it,
    the_target_runs_the_login_shell_and_the_command_only,
    a_login_shell_that_is_not_posix_gets_the_sh_wrapper,
);
