//! The run journal: an append-only file of records (one JSON object per line) that is made
//! durable before anything it says is reported, so that a run can be resumed after a halt, an
//! interruption or a crash without running a succeeded host again.
//!
//! Records are written in batches: the runner appends what happened since its last write and
//! syncs once (group commit). A run of 10,000 hosts makes 20,000 records; one fsync each would
//! cost more than the commands themselves, while one per batch keeps the guarantee that
//! matters, durable before reported.
//!
//! A crash can leave a torn last line. Reading ignores an incomplete final line (it was never
//! reported), and reopening for append cuts it off so the next record starts on its own line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot {action} journal `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal `{path}` is damaged at line {line}: {message}")]
    Damaged {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// An open journal of records of type `R`.
#[derive(Debug)]
pub struct Journal<R> {
    file: File,
    path: PathBuf,
    buffer: Vec<u8>,
    /// How many times records were made durable (one `fdatasync` each).
    syncs: u64,
    _records: PhantomData<fn(R)>,
}

impl<R: Serialize + DeserializeOwned> Journal<R> {
    /// Creates a new, empty journal; refuses to overwrite an existing one.
    pub fn create(path: &Path) -> Result<Journal<R>, JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)
            .map_err(|source| io("create", path, source))?;
        sync_parent(path)?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            buffer: Vec::new(),
            syncs: 0,
            _records: PhantomData,
        })
    }

    /// Reads every complete record of an existing journal and opens it for appending,
    /// cutting off a torn last line.
    pub fn reopen(path: &Path) -> Result<(Journal<R>, Vec<R>), JournalError> {
        let (records, complete_len) = read_records(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| io("open", path, source))?;
        file.set_len(complete_len)
            .and_then(|()| file.seek(SeekFrom::End(0)).map(|_| ()))
            .and_then(|()| file.sync_data())
            .map_err(|source| io("repair", path, source))?;
        let journal = Journal {
            file,
            path: path.to_path_buf(),
            buffer: Vec::new(),
            syncs: 0,
            _records: PhantomData,
        };
        Ok((journal, records))
    }

    /// Writes `records` and makes them durable (one sync for the batch). Only after this
    /// returns may they be reported.
    pub fn append(&mut self, records: &[R]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        self.buffer.clear();
        for record in records {
            serde_json::to_writer(&mut self.buffer, record).expect("records serialise");
            self.buffer.push(b'\n');
        }
        self.syncs += 1;
        self.file
            .write_all(&self.buffer)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| io("write", &self.path, source))
    }

    /// How many batches were made durable so far (one `fdatasync` each).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every complete record of a journal, for reading a finished or running run.
pub fn read<R: DeserializeOwned>(path: &Path) -> Result<Vec<R>, JournalError> {
    read_records(path).map(|(records, _)| records)
}

/// The records, and the length in bytes of the complete lines that hold them.
fn read_records<R: DeserializeOwned>(path: &Path) -> Result<(Vec<R>, u64), JournalError> {
    let file = File::open(path).map_err(|source| io("open", path, source))?;
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut complete_len = 0u64;
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| io("read", path, source))?;
        if read == 0 || line.last() != Some(&b'\n') {
            // End of file, or a torn final line that was never synced as a whole.
            break;
        }
        let record = serde_json::from_slice(&line).map_err(|e| JournalError::Damaged {
            path: path.to_path_buf(),
            line: number,
            message: e.to_string(),
        })?;
        records.push(record);
        complete_len += read as u64;
    }
    Ok((records, complete_len))
}

/// A new file's directory entry must be durable too, or a crash can lose the whole file.
fn sync_parent(path: &Path) -> Result<(), JournalError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| io("sync the directory of", path, source))
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Record {
        host: String,
        n: u32,
    }

    fn rec(host: &str, n: u32) -> Record {
        Record {
            host: host.into(),
            n,
        }
    }

    fn temp_journal() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.ndjson");
        (dir, path)
    }

    #[test]
    fn appended_records_read_back_in_order() {
        let (_dir, path) = temp_journal();
        let mut journal = Journal::create(&path).unwrap();
        journal.append(&[rec("a", 1), rec("b", 2)]).unwrap();
        journal.append(&[]).unwrap();
        journal.append(&[rec("c", 3)]).unwrap();
        assert_eq!(
            read::<Record>(&path).unwrap(),
            [rec("a", 1), rec("b", 2), rec("c", 3)]
        );
    }

    #[test]
    fn an_existing_journal_is_never_overwritten() {
        let (_dir, path) = temp_journal();
        Journal::<Record>::create(&path).unwrap();
        assert!(Journal::<Record>::create(&path).is_err());
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_off_on_reopen() {
        let (_dir, path) = temp_journal();
        let mut journal = Journal::create(&path).unwrap();
        journal.append(&[rec("a", 1)]).unwrap();
        drop(journal);
        // A crash in the middle of a write.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"host":"b","#).unwrap();
        drop(file);
        assert_eq!(read::<Record>(&path).unwrap(), [rec("a", 1)]);

        let (mut journal, records) = Journal::<Record>::reopen(&path).unwrap();
        assert_eq!(records, [rec("a", 1)]);
        journal.append(&[rec("c", 3)]).unwrap();
        assert_eq!(read::<Record>(&path).unwrap(), [rec("a", 1), rec("c", 3)]);
    }

    #[test]
    fn a_damaged_complete_line_is_an_error_naming_the_line() {
        let (_dir, path) = temp_journal();
        std::fs::write(&path, "{\"host\":\"a\",\"n\":1}\nnot json\n").unwrap();
        let err = read::<Record>(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::Damaged { line: 2, .. }),
            "{err}"
        );
    }
}
