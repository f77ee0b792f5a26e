//! Errors that point at the text that caused them.
//!
//! Every config, spec and target error carries where it happened, and all errors of a file are
//! reported together, sorted by position, so that an operator fixes a file in one pass and
//! golden files of error output are stable.

use std::fmt;
use std::sync::Arc;

use crate::yaml::Pos;

/// Text that errors can point into: a file, or one command-line argument.
#[derive(Debug, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub text: String,
    pub kind: SourceKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    File,
    /// A command-line argument; `name` is the flag (`--targets`).
    Argument,
}

impl Source {
    pub fn file(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            name: name.into(),
            text: text.into(),
            kind: SourceKind::File,
        })
    }

    pub fn argument(flag: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            name: flag.into(),
            text: text.into(),
            kind: SourceKind::Argument,
        })
    }

    /// Line `line` (from 1), counting `\r\n`, `\n` and a lone `\r` as line breaks, as the YAML
    /// reader does when it numbers lines.
    fn line(&self, line: usize) -> Option<&str> {
        let mut rest = self.text.as_str();
        for _ in 1..line {
            let end = rest.find(['\n', '\r'])?;
            let skip = if rest[end..].starts_with("\r\n") {
                2
            } else {
                1
            };
            rest = &rest[end + skip..];
        }
        if line == 0 || rest.is_empty() {
            return None;
        }
        Some(&rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())])
    }
}

/// A place in a source: where a node starts and how many characters to underline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub source: Arc<Source>,
    pub pos: Pos,
    pub width: usize,
}

impl Span {
    pub fn new(source: &Arc<Source>, pos: Pos, width: usize) -> Span {
        Span {
            source: Arc::clone(source),
            pos,
            width: width.max(1),
        }
    }

    /// The start of a source, for errors about the file as a whole.
    pub fn start(source: &Arc<Source>) -> Span {
        Span::new(source, Pos { line: 1, col: 1 }, 1)
    }

    /// `file:line:col`, as warnings in a plan name their origin.
    pub fn location(&self) -> String {
        match self.source.kind {
            SourceKind::File => format!("{}:{}:{}", self.source.name, self.pos.line, self.pos.col),
            SourceKind::Argument => format!("{} `{}`", self.source.name, self.source.text),
        }
    }
}

/// One error, with where it happened and, when pogo can tell, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// Where; `None` only for errors about a file that could not be read at all.
    pub span: Option<Span>,
    /// The file an unlocated error is about.
    pub file: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn at(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: Some(span),
            file: None,
            help: None,
        }
    }

    pub fn about_file(file: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: None,
            file: Some(file.into()),
            help: None,
        }
    }

    /// Errors with no place in any file (conflicting options, say).
    pub fn general(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: None,
            file: None,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    fn sort_key(&self) -> (String, usize, usize, &str) {
        match &self.span {
            // Errors in command-line arguments keep the order of the arguments (the sort is
            // stable): every argument is its own line 1, so positions cannot order them.
            Some(span) if span.source.kind == SourceKind::Argument => {
                (span.source.name.clone(), 0, 0, "")
            }
            Some(span) => (
                span.source.name.clone(),
                span.pos.line,
                span.pos.col,
                &self.message,
            ),
            None => (self.file.clone().unwrap_or_default(), 0, 0, &self.message),
        }
    }
}

impl fmt::Display for Diagnostic {
    /// rustc-style: the message, the place, the offending line with a caret, the help.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        // `= help` lines up with the `|` gutter, which is as wide as the line number.
        let gutter = match &self.span {
            Some(span) if span.source.kind == SourceKind::File => {
                " ".repeat(span.pos.line.to_string().len() + 1)
            }
            Some(_) => "    ".to_string(),
            None => "  ".to_string(),
        };
        match &self.span {
            Some(span) if span.source.kind == SourceKind::Argument => {
                let indent = "   ";
                writeln!(f, "{indent}--> {}", span.source.name)?;
                let (line, under) = excerpt(&span.source.text, span);
                writeln!(f, "{indent} |")?;
                writeln!(f, "{indent} | {line}")?;
                writeln!(f, "{indent} | {under}")?;
            }
            Some(span) => {
                let number = span.pos.line.to_string();
                let indent = " ".repeat(number.len() + 1);
                writeln!(
                    f,
                    "{indent}--> {}:{}:{}",
                    span.source.name, span.pos.line, span.pos.col
                )?;
                if let Some(line) = span.source.line(span.pos.line) {
                    let (line, under) = excerpt(line, span);
                    writeln!(f, "{indent}|")?;
                    writeln!(f, "{number} | {line}")?;
                    writeln!(f, "{indent}| {under}")?;
                }
            }
            None => {
                if let Some(file) = &self.file {
                    writeln!(f, "  --> {file}")?;
                }
            }
        }
        if let Some(help) = &self.help {
            writeln!(f, "{gutter}= help: {help}")?;
        }
        Ok(())
    }
}

/// Longest line an error shows whole; a longer one is cut around the span, so that a
/// megabyte on one line (a host name, a minified file) gives a readable error.
const SHOWN_LINE: usize = 120;

/// The line to show and the underline of `span` in it. A tab before the span is repeated as a
/// tab, so the caret stays under the text however wide the terminal draws tabs.
fn excerpt(line: &str, span: &Span) -> (String, String) {
    let start = span.pos.col.saturating_sub(1);
    let length = line.chars().count();
    let (from, shown_width) = if length <= SHOWN_LINE {
        (0, span.width)
    } else {
        let from = start.saturating_sub(SHOWN_LINE / 3);
        (from, span.width.min(SHOWN_LINE - (start - from)))
    };
    let mut shown: String = line.chars().skip(from).take(SHOWN_LINE).collect();
    let mut under: String = line
        .chars()
        .skip(from)
        .chain(std::iter::repeat(' '))
        .take(start - from)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    if from > 0 {
        shown.insert_str(0, "...");
        under.insert_str(0, "   ");
    }
    if from + SHOWN_LINE < length {
        shown.push_str("...");
    }
    under.push_str(&"^".repeat(shown_width));
    (shown, under)
}

/// All the errors found in one attempt to compile a plan, sorted by place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub diagnostics: Vec<Diagnostic>,
}

impl PlanError {
    pub fn new(mut diagnostics: Vec<Diagnostic>) -> PlanError {
        diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        diagnostics.dedup();
        PlanError { diagnostics }
    }

    pub fn one(diagnostic: Diagnostic) -> PlanError {
        PlanError::new(vec![diagnostic])
    }
}

impl From<Diagnostic> for PlanError {
    fn from(diagnostic: Diagnostic) -> Self {
        PlanError::one(diagnostic)
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        if self.diagnostics.len() > 1 {
            writeln!(f, "\n{} errors", self.diagnostics.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanError {}

/// A collector for errors, so parsing goes on after the first one.
#[derive(Debug, Default)]
pub struct Errors(Vec<Diagnostic>);

impl Errors {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Adds an error and hands it back, so the caller can attach help.
    pub fn add(&mut self, diagnostic: Diagnostic) -> &mut Diagnostic {
        self.0.push(diagnostic);
        self.0.last_mut().expect("just pushed")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: PlanError) {
        self.0.extend(other.diagnostics);
    }

    /// `Ok(value)` when nothing went wrong, otherwise every error collected.
    pub fn finish<T>(self, value: T) -> Result<T, PlanError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(PlanError::new(self.0))
        }
    }
}

/// The closest of `candidates` to `name`, when one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, line: usize, col: usize, width: usize) -> String {
        let source = Source::file("t.cfg", text);
        Diagnostic::at(Span::new(&source, Pos { line, col }, width), "bad").to_string()
    }

    #[test]
    fn caret_under_text_after_a_tab_repeats_the_tab() {
        assert_eq!(
            render("tag:\n\ta: [h1]\n", 2, 2, 1),
            "error: bad\n  --> t.cfg:2:2\n  |\n2 | \ta: [h1]\n  | \t^\n"
        );
    }

    #[test]
    fn lone_carriage_returns_break_lines_as_in_the_yaml_reader() {
        let shown = render("tag:\r  a: [h1]\r  b: [h2]\r\n", 3, 3, 1);
        assert!(shown.contains("3 |   b: [h2]\n  |   ^\n"), "{shown}");
        let shown = render("a\r\nb\n", 2, 1, 1);
        assert!(shown.contains("2 | b\n"), "{shown}");
        assert!(!render("a\n", 5, 1, 1).contains('|'));
        // Past the last line break there is no line to show.
        assert!(!render("a\n", 2, 1, 1).contains('|'));
        assert!(!render("", 1, 1, 1).contains('|'));
    }

    #[test]
    fn errors_in_arguments_keep_the_argument_order() {
        let first = Source::argument("--targets", "web1,$zz");
        let second = Source::argument("--targets", "$nope");
        let file = Source::file("a.cfg", "tag:\n");
        let at = |source: &Arc<Source>, col| Span::new(source, Pos { line: 1, col }, 1);
        let error = PlanError::new(vec![
            Diagnostic::at(at(&first, 6), "undefined tag `$zz`"),
            Diagnostic::at(at(&second, 1), "undefined tag `$nope`"),
            Diagnostic::at(at(&file, 1), "in a file"),
        ]);
        let messages: Vec<&str> = error
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            messages,
            ["undefined tag `$zz`", "undefined tag `$nope`", "in a file"]
        );
    }
}
