//! A host's log: the output of its attempts, appended to `logs/HOST.log` in the run's
//! directory.
//!
//! - **Buffered.** Lines go through a 256 KiB buffer, written when it is full, when the command
//!   has printed nothing for 50 ms (so a quiet command's lines are on disk at once, and a flood
//!   is written in large writes, not one `write` a line) and when the attempt ends.
//! - **Capped.** A host's log holds at most `max_output` bytes (the plan's, 10 MiB by default,
//!   as Pogo 4.0's); past it, the rest is counted and dropped, and a marker line says how much.
//! - **Second to the journal.** Before the disk fills, logs stop: when less than
//!   [`RESERVE`] is left on the log's filesystem, the output from then on is dropped, so the
//!   journal, which says what ran, can still be written.
//! - **Never silent.** A write that fails (a full disk, an I/O error), or output dropped to keep
//!   the reserve, is reported back ([`LogReport::lost`]): the run records it for the host,
//!   says it in the summary and exits with its own code.
//!
//! The file is created only when there is output, so 10,000 silent hosts leave no 10,000 empty
//! files. A retry's output starts under `--- attempt N ---`, and a resumed session's first
//! output after an earlier session's under `--- resumed ---`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::transport::{Output, Stream};

/// The default of a plan's `max_output`: 10 MiB of log per host.
pub const DEFAULT_MAX_OUTPUT: u64 = 10 << 20;

/// Room kept free on the logs' filesystem for the journal.
pub const RESERVE: u64 = 8 << 20;

/// How long output may wait in the buffer once the command is quiet.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// How much is written between two looks at the free space.
const SPACE_CHECK_EVERY: u64 = 1 << 20;

/// What writing an attempt's output came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    /// Bytes dropped past the host's `max_output`.
    pub cut: u64,
    /// Why output was lost, if it was: a failed write, or the disk nearly full.
    pub lost: Option<String>,
}

/// Where and how an attempt's output is written.
#[derive(Debug, Clone)]
pub struct LogTarget {
    pub path: PathBuf,
    pub attempt: u32,
    /// This session resumes an earlier one.
    pub resumed: bool,
    /// The most the host's log may hold, in bytes.
    pub max_output: u64,
    /// Room to keep free on the filesystem ([`RESERVE`]).
    pub reserve: u64,
}

struct Writer {
    target: LogTarget,
    file: Option<BufWriter<File>>,
    /// Bytes in the file (earlier attempts' included).
    size: u64,
    since_space_check: u64,
    report: LogReport,
}

impl Writer {
    fn new(target: LogTarget) -> Writer {
        Writer {
            target,
            file: None,
            size: 0,
            since_space_check: 0,
            report: LogReport::default(),
        }
    }

    fn lose(&mut self, why: String) {
        if self.report.lost.is_none() {
            self.report.lost = Some(why);
        }
        // Nothing more is written (what is buffered goes out as the file closes, if it can).
        self.file = None;
    }

    fn open(&mut self) -> bool {
        if self.file.is_some() {
            return true;
        }
        if self.report.lost.is_some() {
            return false;
        }
        let path = &self.target.path;
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        match opened {
            Ok(f) => {
                self.size = f.metadata().map_or(0, |m| m.len());
                let mut f = BufWriter::with_capacity(256 * 1024, f);
                let header = if self.target.attempt > 1 {
                    format!("--- attempt {} ---\n", self.target.attempt)
                } else if self.target.resumed && self.size > 0 {
                    "--- resumed ---\n".to_string()
                } else {
                    String::new()
                };
                if let Err(e) = f.write_all(header.as_bytes()) {
                    self.lose(format!("cannot write `{}`: {e}", path.display()));
                    return false;
                }
                self.size += header.len() as u64;
                self.file = Some(f);
                true
            }
            Err(e) => {
                self.lose(format!("cannot open `{}`: {e}", path.display()));
                false
            }
        }
    }

    /// Appends a read's lines: on stdout, each run of consecutive lines in one copy; on
    /// stderr, line by line, each behind its `stderr: ` prefix.
    fn output(&mut self, output: &Output) {
        match output.stream {
            Stream::Stdout => {
                for (run, lines) in output.runs() {
                    self.append(b"", run, lines);
                }
            }
            Stream::Stderr => {
                for line in output.lines() {
                    self.append(b"stderr: ", line, 1);
                }
            }
        }
    }

    /// Appends `lines` lines (`text`, their line feeds between them but not after the last),
    /// each behind `prefix`; past `max_output`, what does not fit is counted and dropped a
    /// whole line at a time.
    fn append(&mut self, prefix: &[u8], text: &[u8], lines: usize) {
        let length = (prefix.len() + text.len() + 1) as u64;
        if self.size + length > self.target.max_output {
            if lines > 1 {
                // Part of the run may fit: line by line from here.
                for line in text.split(|&b| b == b'\n') {
                    self.append(prefix, line, 1);
                }
            } else {
                self.report.cut += length;
            }
            return;
        }
        if !self.open() {
            return;
        }
        if self.since_space_check >= SPACE_CHECK_EVERY {
            self.since_space_check = 0;
            if let Some(free) = free_space(&self.target.path) {
                if free < self.target.reserve {
                    self.lose(format!(
                        "the disk of `{}` is nearly full ({} free): output dropped to keep \
                         room for the journal",
                        self.target.path.display(),
                        bytes(free)
                    ));
                    return;
                }
            }
        }
        let f = self.file.as_mut().expect("opened");
        let written = f
            .write_all(prefix)
            .and_then(|()| f.write_all(text))
            .and_then(|()| f.write_all(b"\n"));
        match written {
            Ok(()) => {
                self.size += length;
                self.since_space_check += length;
            }
            Err(e) => self.lose(format!(
                "cannot write `{}`: {e}",
                self.target.path.display()
            )),
        }
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.flush() {
                let why = format!("cannot write `{}`: {e}", self.target.path.display());
                self.lose(why);
            }
        }
    }

    fn finish(mut self) -> LogReport {
        if self.report.cut > 0 && self.report.lost.is_none() && self.open() {
            let marker = format!(
                "--- output cut at max_output ({}): {} more dropped ---\n",
                bytes(self.target.max_output),
                bytes(self.report.cut)
            );
            if let Some(f) = self.file.as_mut() {
                if let Err(e) = f.write_all(marker.as_bytes()) {
                    let why = format!("cannot write `{}`: {e}", self.target.path.display());
                    self.lose(why);
                }
            }
        }
        self.flush();
        self.report
    }
}

/// Writes an attempt's output lines to its log until the transport drops its sender.
/// Without a target (no log directory), the lines are read and dropped.
pub async fn write(target: Option<LogTarget>, mut lines: mpsc::Receiver<Output>) -> LogReport {
    let Some(target) = target else {
        while lines.recv().await.is_some() {}
        return LogReport::default();
    };
    let mut writer = Writer::new(target);
    let mut unflushed = false;
    loop {
        // While output flows, the buffer fills and goes out in large writes; once the
        // command has been quiet for FLUSH_AFTER, what is buffered goes to disk.
        let next = if unflushed {
            match tokio::time::timeout(FLUSH_AFTER, lines.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    writer.flush();
                    unflushed = false;
                    continue;
                }
            }
        } else {
            lines.recv().await
        };
        let Some(batch) = next else { break };
        writer.output(&batch);
        while let Ok(batch) = lines.try_recv() {
            writer.output(&batch);
        }
        unflushed = true;
    }
    writer.finish()
}

/// Bytes free to an unprivileged writer on the filesystem of `path`.
fn free_space(path: &Path) -> Option<u64> {
    let dir = path.parent()?;
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// `10 MiB`, `512 KiB`, `300 B`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Output {
        Output::line(Stream::Stdout, text.as_bytes().to_vec())
    }

    /// `text` as a transport reads it from `stream`.
    async fn read(stream: Stream, text: &str) -> Vec<Output> {
        let (tx, mut rx) = mpsc::channel(4);
        crate::transport::pump_lines(text.as_bytes(), stream, &tx, |_| true).await;
        drop(tx);
        let mut outputs = Vec::new();
        while let Some(output) = rx.recv().await {
            outputs.push(output);
        }
        outputs
    }

    async fn write_lines(target: LogTarget, lines: &[Output]) -> LogReport {
        let (tx, rx) = mpsc::channel(lines.len() + 1);
        for l in lines {
            tx.send(l.clone()).await.unwrap();
        }
        drop(tx);
        write(Some(target), rx).await
    }

    fn target(path: PathBuf) -> LogTarget {
        LogTarget {
            path,
            attempt: 1,
            resumed: false,
            max_output: DEFAULT_MAX_OUTPUT,
            reserve: 0,
        }
    }

    #[tokio::test]
    async fn output_past_max_output_is_counted_and_dropped_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        // One read of 100 lines: the run is cut at a line's end, as line by line.
        let text: String = (0..100).map(|i| format!("{i:09}\n")).collect();
        let lines = read(Stream::Stdout, &text).await;
        assert_eq!(lines.len(), 1, "one read");
        let report = write_lines(
            LogTarget {
                max_output: 250,
                ..target(path.clone())
            },
            &lines,
        )
        .await;
        // 25 lines of 10 bytes fit; 75 are dropped.
        assert_eq!(
            report,
            LogReport {
                cut: 750,
                lost: None
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 26);
        assert!(text.starts_with("000000000\n000000001\n"), "{text}");
        assert!(text.contains("\n000000024\n--- output cut"), "{text}");
        assert!(text.ends_with("--- output cut at max_output (250 B): 750 B more dropped ---\n"));
    }

    /// A full device: writes to /dev/full fail with ENOSPC, as on a full disk.
    #[tokio::test]
    async fn a_write_that_fails_is_reported_not_swallowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let report = write_lines(target(path), &[line("hello")]).await;
        let lost = report.lost.expect("the loss is reported");
        assert!(lost.contains("No space left on device"), "{lost}");
    }

    #[tokio::test]
    async fn output_stops_before_the_disk_fills_so_the_journal_can_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let big = "x".repeat(1023);
        let lines: Vec<Output> = (0..2048).map(|_| line(&big)).collect();
        let report = write_lines(
            LogTarget {
                reserve: u64::MAX,
                ..target(path.clone())
            },
            &lines,
        )
        .await;
        let lost = report.lost.expect("the loss is reported");
        assert!(lost.contains("nearly full"), "{lost}");
        // The first MiB went out before the first look at the free space.
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 1 << 20, "{size}");
    }

    /// Runs of stdout lines are copied whole; stderr lines get their prefix; lines a
    /// transport withheld or cut at MAX_LINE are not joined to their neighbours.
    #[tokio::test]
    async fn a_read_is_written_as_its_lines_were() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let long = "y".repeat(crate::transport::MAX_LINE + 3);
        let stdout = read(Stream::Stdout, &format!("a\n\nb\n{long}\nc")).await;
        let stderr = read(Stream::Stderr, "e1\ne2\n").await;
        let (tx, mut rx) = mpsc::channel(4);
        crate::transport::pump_lines(&b"keep\ndrop\nkeep too\n"[..], Stream::Stdout, &tx, |l| {
            l != b"drop"
        })
        .await;
        drop(tx);
        let withheld = rx.recv().await.unwrap();
        let all: Vec<Output> = [stdout, stderr, vec![withheld]].concat();
        let report = write_lines(target(path.clone()), &all).await;
        assert_eq!(report, LogReport::default());
        let expected = format!(
            "a\n\nb\n{}\nyyy\nc\nstderr: e1\nstderr: e2\nkeep\nkeep too\n",
            &long[..crate::transport::MAX_LINE]
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    }

    #[test]
    fn sizes_read_for_people() {
        assert_eq!(bytes(10 << 20), "10 MiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12), "12 B");
    }
}
