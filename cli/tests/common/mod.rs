//! What the tests that run `pogo` share: where the repository is, and the check that a run
//! kept its plan's order and limits, from the times each host's command recorded.
// Each test file includes this module and uses part of it.
#![allow(dead_code)]

pub mod deploy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pogo_model::Plan;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the workspace")
        .to_path_buf()
}

pub fn config(name: &str) -> String {
    root().join(name).display().to_string()
}

/// The runs of each host's command, as `(start, end)` nanoseconds, read from the files in
/// `rec` where each host's command appends `start NANOS` and `end NANOS` (0: not ended yet).
pub fn read_spans(rec: &Path) -> BTreeMap<String, Vec<(u128, u128)>> {
    let mut spans = BTreeMap::new();
    for entry in std::fs::read_dir(rec).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let mut host: Vec<(u128, u128)> = Vec::new();
        for line in text.lines() {
            // A line being written is not complete yet.
            let Some((word, nanos)) = line.split_once(' ') else {
                continue;
            };
            let Ok(nanos) = nanos.parse::<u128>() else {
                continue;
            };
            match (word, host.last_mut()) {
                ("start", _) => host.push((nanos, 0)),
                ("end", Some(last)) => last.1 = nanos,
                _ => {}
            }
        }
        spans.insert(entry.file_name().to_string_lossy().into_owned(), host);
    }
    spans
}

/// Every host ran exactly once, no host of a slot started before every host of the slots
/// before it ended, and no constraint group ever had more hosts running than its limit.
/// Returns the peak of each group.
pub fn check_order_and_limits(
    plan: &Plan,
    spans: &BTreeMap<String, Vec<(u128, u128)>>,
) -> BTreeMap<String, usize> {
    let span = |host: &str| -> (u128, u128) {
        let host_spans = spans
            .get(host)
            .unwrap_or_else(|| panic!("{host} never ran"));
        assert_eq!(host_spans.len(), 1, "{host} ran {} times", host_spans.len());
        assert!(host_spans[0].1 > 0, "{host} never ended");
        host_spans[0]
    };
    for host in &plan.hosts {
        span(host);
    }
    assert_eq!(spans.len(), plan.hosts.len(), "only the plan's hosts run");
    let slot_hosts = |id: &str| -> &Vec<String> {
        &plan
            .slots()
            .find(|(_, slot)| slot.id == id)
            .expect("edges name slots")
            .1
            .hosts
    };
    for edge in &plan.edges {
        let Some(done) = slot_hosts(&edge.from).iter().map(|h| span(h).1).max() else {
            continue;
        };
        for host in slot_hosts(&edge.to) {
            assert!(
                span(host).0 > done,
                "{host} of {} started before {} was complete",
                edge.to,
                edge.from
            );
        }
    }
    let mut peaks = BTreeMap::new();
    for group in &plan.constraints {
        let mut moments: Vec<(u128, i32)> = Vec::new();
        for host in &group.hosts {
            let (start, end) = span(host);
            moments.push((start, 1));
            moments.push((end, -1));
        }
        // At equal instants, an end counts before a start.
        moments.sort();
        let (mut now, mut peak) = (0i32, 0i32);
        for (_, step) in moments {
            now += step;
            peak = peak.max(now);
        }
        assert!(
            peak as u64 <= group.max_parallel.value,
            "group {} had {peak} hosts running at once, limit {}",
            group.id,
            group.max_parallel.value
        );
        peaks.insert(group.id.clone(), peak as usize);
    }
    peaks
}

/// The output of a pogo command that ran to its end.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("pogo exits")
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Live (not zombie) processes whose command line contains `needle`, as `pgrep -f` finds
/// them, without needing procps.
/// `pogo ARGS` in `dir`, as an operator runs it there: its own state dir (`.pogo` in `dir`),
/// no colour, no stdin.
pub fn pogo_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pogo"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("POGO_STATE_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// [`pogo_command`], run to its end.
pub fn pogo_in(dir: &Path, args: &[&str]) -> Run {
    Run(pogo_command(dir, args).output().unwrap())
}

pub fn processes_matching(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let after = stat.rsplit_once(") ")?.1.to_string();
                after.chars().next()
            })
            == Some('Z');
        if cmdline.contains(needle) && !zombie {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// `GET path` over plain HTTP: the status code and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}
