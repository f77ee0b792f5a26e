//! The small pieces every view shares: tables in one style, host lists cut and wrapped the
//! same way everywhere, counted nouns, one-line cuts, shell words and UTC times.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use comfy_table::{presets::UTF8_FULL_CONDENSED, ColumnConstraint, ContentArrangement, Table};

/// Host lists longer than this are cut in the tables unless `--full` is given.
const HOSTS_SHOWN: usize = 12;
/// Host lists wrap at about this many characters per line.
const WRAP: usize = 60;

/// The widest a table may be, in columns: 0 for no limit.
static TABLE_WIDTH: AtomicU16 = AtomicU16::new(0);

/// Tables made from now on fit into `columns` (their cells wrapped), or are as wide as their
/// cells with 0. The command line sets it once, from `--width` or the terminal (a fixed width
/// into a pipe, so that the same data always prints the same text).
pub fn set_table_width(columns: u16) {
    TABLE_WIDTH.store(columns, Ordering::Relaxed);
}

/// A table as text, fitted into the width [`set_table_width`] set: only columns of prose or
/// lists wrap (a cell longer than [`WRAPS_PAST`] characters with a blank in it); ids, host
/// names, numbers and times stay whole, however narrow the width.
pub fn render(table: &mut Table) -> String {
    if TABLE_WIDTH.load(Ordering::Relaxed) > 0 {
        for column in 0..table.column_count() {
            let wraps = table.column_cells_iter(column).flatten().any(|cell| {
                let text = cell.content();
                text.chars().count() > WRAPS_PAST && text.contains(char::is_whitespace)
            });
            if !wraps {
                if let Some(column) = table.column_mut(column) {
                    column.set_constraint(ColumnConstraint::ContentWidth);
                }
            }
        }
    }
    table.to_string()
}

/// Cells longer than this, with a blank in them, may wrap (a `2026-12-07 11:31:02` does not).
const WRAPS_PAST: usize = 20;

/// A table in pogo's style, as wide as [`set_table_width`] allows (through [`render`]). Its width never depends on
/// the terminal by itself.
pub fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    match TABLE_WIDTH.load(Ordering::Relaxed) {
        0 => table.set_content_arrangement(ContentArrangement::Disabled),
        width => table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width),
    };
    table
}

/// `a, b, c` wrapped at [`WRAP`] characters; long lists cut unless `full`.
pub fn host_list(hosts: &[String], full: bool) -> String {
    if hosts.is_empty() {
        return "(no targets)".to_string();
    }
    let shown = if full || hosts.len() <= HOSTS_SHOWN {
        hosts.len()
    } else {
        HOSTS_SHOWN
    };
    let mut words: Vec<String> = hosts[..shown].to_vec();
    if shown < hosts.len() {
        words.push(format!("... (+{} more)", hosts.len() - shown));
    }
    let mut out = String::new();
    let mut line_len = 0;
    for (i, word) in words.iter().enumerate() {
        let piece = if i + 1 < words.len() && !words[i + 1].starts_with("...") {
            format!("{word},")
        } else {
            word.clone()
        };
        if line_len > 0 && line_len + 1 + piece.len() > WRAP {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        line_len += piece.len();
        out.push_str(&piece);
    }
    out
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The first line of `text`, cut to `max` characters with `…` when it is longer or when more
/// lines follow.
pub fn cut(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max && line.len() == text.len() {
        return text.to_string();
    }
    let kept: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Whether `c` would act on a terminal rather than show: C0 controls but tab and newline
/// (ESC starts the sequences that clear a screen or set a window title), DEL, and C1
/// controls.
fn acts_on_terminal(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// `text` with what would act on a terminal shown instead, as `\x1b`, so that a host's
/// output cannot clear the operator's screen, retitle the window or forge a line: for every
/// view a person reads (live lines, summaries, `pogo log` on a terminal, the dashboard).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts_on_terminal(c) {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` as one word for a POSIX shell: quoted only when it must be.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    match plain {
        true => text.to_string(),
        false => format!("'{}'", text.replace('\'', r"'\''")),
    }
}

/// `2026-11-24 23:01:02`: a time in seconds since the Unix epoch, in UTC.
pub fn utc(secs: u64) -> String {
    // A run id is its start time in UTC; its `started` form is RFC 3339.
    let id = pogo_executor::rundir::RunId::new(UNIX_EPOCH + Duration::from_secs(secs), 0);
    id.started().replace('T', " ").replace('Z', "")
}

/// `3 succeeded, 1 failed`: each count that is not zero, with its word, in the order given.
pub fn counted(counts: &[(usize, &str)]) -> String {
    counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first `shown` items, then `and N more`.
pub fn list_cut(items: &[String], shown: usize) -> String {
    let mut text = items[..items.len().min(shown)].join(", ");
    if items.len() > shown {
        text.push_str(&format!(" and {} more", items.len() - shown));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_host_lists_are_cut_and_wrapped() {
        let hosts: Vec<String> = (1..=40).map(|i| format!("web{i:03}.example.com")).collect();
        let text = host_list(&hosts, false);
        assert!(text.ends_with("... (+28 more)"), "{text}");
        assert!(text.lines().all(|l| l.len() <= WRAP), "{text}");
        let full = host_list(&hosts, true);
        assert!(full.contains("web040.example.com"));
        assert!(!full.contains("more"));
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_795_561_262), "2026-11-24 23:01:02");
    }

    #[test]
    fn shell_words_are_quoted_only_when_they_must_be() {
        assert_eq!(shell_word("certs/ca.pem"), "certs/ca.pem");
        assert_eq!(shell_word("my ca.pem"), "'my ca.pem'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    /// A host printing a clear-screen, a window title or a carriage return cannot act on the
    /// operator's terminal through pogo's views.
    #[test]
    fn control_sequences_are_shown_not_acted_on() {
        assert_eq!(printable("plain\ttext"), "plain\ttext");
        assert_eq!(printable("\x1b[2Jgone"), "\\x1b[2Jgone");
        assert_eq!(printable("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
        assert_eq!(printable("ok\rhost2: Success"), "ok\\x0dhost2: Success");
        assert_eq!(printable("c1\u{9b}31m"), "c1\\x9b31m");
        assert!(matches!(printable("tidy"), std::borrow::Cow::Borrowed(_)));
    }
}

/// `text` wrapped at `width` columns on blanks (a word longer than that gets a line of its
/// own); each line ends with a newline.
pub fn wrap_words(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line > 0 && line + 1 + len > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += len;
    }
    out.push('\n');
    out
}
