//! A small YAML tree that remembers where every node was written.
//!
//! pogo's config errors must name the file, line and column and point at the offending text, so
//! the config loader does not use a serde-based YAML library (those lose positions). Instead this
//! module builds its own small tree from the [`yaml_rust2`] event parser:
//!
//! * every node carries its position ([`Pos`], 1-based line and column, columns counted in
//!   characters) and the width of its source text on that line, for underlining;
//! * every scalar is kept as the string written: pogo decides what a value means, so `on`, `123`
//!   or `1e3` stay strings. Only the null forms (empty, `~`, `null`, `Null`, `NULL`, unquoted)
//!   are recognised, as [`Value::Null`];
//! * duplicate mapping keys are kept, in document order, so the caller can report them;
//! * aliases are resolved to a copy of the anchored node.
//!
//! Notes on yaml-rust2's positions (its `Marker`): `line()` is 1-based, `col()` is 0-based and
//! counts characters (a tab counts as one). `index()` is meant to count characters too, but drifts
//! after a block scalar holding non-ASCII text, so it is not used here. Several events are not
//! marked where their text starts, and this module corrects them:
//!
//! * a block mapping is marked at the `:` of its first key (we use the first key's position);
//! * a sequence that is not indented under its key (`key:\n- a`) is marked after its first `- `;
//! * a block scalar (`|`, `>`) is marked at its first content line (we use the indicator);
//! * an empty node is marked at the token that follows it, often on a later line (we use the
//!   place just after the `:`, `-`, `,` or `?` that introduced it, or its tag or anchor).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, Scanner, TScalarStyle, TokenType};

/// Collections may nest at most this deep; deeper input is refused (the tree's recursive drop,
/// clone and comparison must not overflow the stack).
const MAX_DEPTH: usize = 256;

/// At most this many nodes, counting the copies made for aliases (guards against "billion
/// laughs" inputs where a few lines of nested aliases expand to an enormous tree).
const MAX_NODES: usize = 1_000_000;

/// A position in the source: 1-based line, 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A plain empty scalar, `~`, `null`, `Null` or `NULL` (unquoted only).
    Null,
    /// Any other scalar, exactly as its value reads (quotes removed, escapes resolved).
    Scalar(String),
    Seq(Vec<Node>),
    /// Key/value pairs in document order; duplicate keys are KEPT (the caller reports them).
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    /// Where the node starts (for a scalar: its first character, including an opening quote).
    pub pos: Pos,
    /// How many characters to underline on the line of `pos`: for a scalar the width of its
    /// source text on that line (quotes included; for a multi-line scalar, up to the end of that
    /// line); for a collection 1. Never 0 (use 1 for an empty plain scalar/null).
    pub width: usize,
    /// True for single- or double-quoted scalars and block scalars (`|`, `>`).
    pub quoted: bool,
    /// The YAML tag written on the node (`!command` → Some("!command")), if any.
    pub tag: Option<String>,
}

impl Node {
    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A short word for error messages: "a mapping", "a list", "a scalar", "null" (nothing).
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Scalar(_) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Lowercase fragment describing the problem, e.g. "did not find expected key" as yaml-rust2
    /// says it, or "a config holds one YAML document, this file has 2".
    pub message: String,
    pub pos: Pos,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.pos.line, self.pos.col, self.message
        )
    }
}

impl std::error::Error for YamlError {}

/// Parses one YAML document. An empty file (or only comments) gives Ok(None).
///
/// A document that holds nothing but `---` (an empty root node without tag or anchor) also gives
/// Ok(None). Aliases (`*a`) resolve to a clone of the anchored node (keeping the alias's own
/// position). More than one document is an error at the start of the second. Never panics;
/// nesting deeper than 256 levels is refused with an error.
pub fn parse(src: &str) -> Result<Option<Node>, YamlError> {
    // yaml-rust2 does not skip a byte order mark; editors do not count it as a column.
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let text = Source::new(src);
    // yaml-rust2 reads a NUL character as the end of the input and would silently ignore the
    // rest of the file.
    if let Some(at) = text.find_nul() {
        return Err(YamlError {
            message: "the file contains a NUL character".to_string(),
            pos: at.pos(),
        });
    }
    Builder::new(src, &text).run()
}

/// A position as yaml-rust2 marks it: 1-based line, 0-based column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Mk {
    line: usize,
    col: usize,
}

impl Mk {
    fn of(m: &Marker) -> Mk {
        Mk {
            line: m.line(),
            col: m.col(),
        }
    }

    fn pos(self) -> Pos {
        Pos {
            line: self.line.max(1),
            col: self.col + 1,
        }
    }

    fn right(self, n: usize) -> Mk {
        Mk {
            line: self.line,
            col: self.col + n,
        }
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_flow(c: char) -> bool {
    matches!(c, ',' | '[' | ']' | '{' | '}')
}

/// The source split into lines the way yaml-rust2 counts them (`\n`, `\r` and `\r\n` each end a
/// line), as characters so that columns index directly.
struct Source {
    chars: Vec<char>,
    /// Per line (0-based here): start and end (exclusive, before the line break) in `chars`.
    lines: Vec<(usize, usize)>,
}

impl Source {
    fn new(src: &str) -> Source {
        let chars: Vec<char> = src.chars().collect();
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\r' if chars.get(i + 1) == Some(&'\n') => {
                    lines.push((start, i));
                    i += 2;
                    start = i;
                }
                '\r' | '\n' => {
                    lines.push((start, i));
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        lines.push((start, chars.len()));
        Source { chars, lines }
    }

    /// The characters of a line (1-based), without its line break; empty past the end.
    fn line(&self, line: usize) -> &[char] {
        match line.checked_sub(1).and_then(|l| self.lines.get(l)) {
            Some(&(start, end)) => &self.chars[start..end],
            None => &[],
        }
    }

    /// The rest of the line from a position.
    fn from(&self, m: Mk) -> &[char] {
        let line = self.line(m.line);
        &line[m.col.min(line.len())..]
    }

    fn at(&self, m: Mk) -> Option<char> {
        self.line(m.line).get(m.col).copied()
    }

    fn find_nul(&self) -> Option<Mk> {
        self.lines
            .iter()
            .enumerate()
            .find_map(|(l, &(start, end))| {
                self.chars[start..end]
                    .iter()
                    .position(|&c| c == '\0')
                    .map(|col| Mk { line: l + 1, col })
            })
    }

    /// Just after the last character that is neither white space nor part of a trailing
    /// comment, at or before `m`; None if the input has no such character.
    fn end_of_content(&self, m: Mk) -> Option<Mk> {
        let last = m.line.min(self.lines.len());
        for line in (1..=last).rev() {
            let text = self.line(line);
            let limit = if line == m.line {
                m.col.min(text.len())
            } else {
                text.len()
            };
            let text = &text[..limit];
            let text = &text[..comment_start(text).unwrap_or(text.len())];
            if let Some(end) = text.iter().rposition(|&c| !is_blank(c)) {
                return Some(Mk { line, col: end + 1 });
            }
        }
        None
    }

    /// Whether only white space and line breaks follow `m`.
    fn only_space_after(&self, m: Mk) -> bool {
        let Some(&(start, end)) = m.line.checked_sub(1).and_then(|l| self.lines.get(l)) else {
            return true;
        };
        let from = (start + m.col).min(end);
        self.chars[from..].iter().all(|c| c.is_whitespace())
    }
}

/// Where a comment starts on a line, guessed by skipping quoted text; None if there is none.
fn comment_start(line: &[char]) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        match quote {
            Some('"') if c == '\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if i == 0 || is_blank(line[i - 1]) => return Some(i),
                '"' | '\'' if i == 0 || is_blank(line[i - 1]) || is_flow(line[i - 1]) => {
                    quote = Some(c);
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// A token that may introduce an empty node; used to place empty nodes (see `Builder::empty_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intro {
    /// A one-character indicator: `:`, `,`, `[`, `{` or `?`.
    Indicator,
    /// `---`.
    DocStart,
    /// A block sequence entry; yaml-rust2 marks it after the `-` and the blanks that follow.
    Entry,
    /// A tag or an anchor.
    Property,
    /// Anything else (scalars, aliases, closing brackets, ...).
    Other,
}

/// What the builder knows about a finished node.
struct Built {
    node: Node,
    /// Number of nodes in the tree.
    size: usize,
    /// Collection levels in the tree: 0 for a scalar.
    height: usize,
}

enum Items {
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>, Option<Node>),
}

/// A collection being built.
struct Frame {
    items: Items,
    /// Where yaml-rust2 marked the collection's start.
    mark: Mk,
    /// Where it starts, if known already; otherwise it is where its first child starts.
    pos: Option<Mk>,
    anchor: usize,
    tag: Option<String>,
    size: usize,
    height: usize,
}

struct Builder<'a> {
    text: &'a Source,
    src: &'a str,
    parser: Parser<std::str::Chars<'a>>,
    stack: Vec<Frame>,
    /// Finished anchored nodes, by yaml-rust2's anchor id.
    anchors: HashMap<usize, Built>,
    nodes: usize,
    /// Tokens that may introduce an empty node, in source order; scanned on first need.
    intros: Option<Vec<(Mk, Intro)>>,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str, text: &'a Source) -> Builder<'a> {
        Builder {
            text,
            src,
            parser: Parser::new_from_str(src),
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            intros: None,
        }
    }

    fn next(&mut self) -> Result<(Event, Mk), YamlError> {
        match self.parser.next_token() {
            Ok((event, mark)) => Ok((event, Mk::of(&mark))),
            Err(e) => Err(self.scan_error(&e)),
        }
    }

    fn run(mut self) -> Result<Option<Node>, YamlError> {
        let mut root: Option<Built> = None;
        // Whether the root is an empty node without tag or anchor (the document is just `---`).
        let mut root_empty = false;
        let mut docs = 0;
        loop {
            let (event, mark) = self.next()?;
            let done = match event {
                Event::StreamEnd => break,
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => None,
                Event::DocumentStart => {
                    docs += 1;
                    if docs > 1 {
                        return Err(self.extra_documents(mark));
                    }
                    None
                }
                Event::Scalar(value, style, anchor, tag) => {
                    root_empty = self.stack.is_empty()
                        && value.is_empty()
                        && style == TScalarStyle::Plain
                        && anchor == 0
                        && tag.is_none();
                    Some(self.scalar(value, style, anchor, tag.as_ref(), mark)?)
                }
                Event::Alias(id) => Some(self.alias(id, mark)?),
                Event::SequenceStart(anchor, tag) => {
                    self.open(Items::Seq(Vec::new()), anchor, tag.as_ref(), mark)?;
                    None
                }
                Event::MappingStart(anchor, tag) => {
                    self.open(Items::Map(Vec::new(), None), anchor, tag.as_ref(), mark)?;
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                    Some(frame) => Some(self.close(frame)),
                    None => None,
                },
            };
            if let Some(built) = done {
                if let Some(frame) = self.stack.last_mut() {
                    frame.push(built);
                } else {
                    root = Some(built);
                }
            }
        }
        if root_empty {
            return Ok(None);
        }
        Ok(root.map(|b| b.node))
    }

    /// The error for a second document, once the rest of the input has been counted.
    fn extra_documents(&mut self, at: Mk) -> YamlError {
        let mut docs = 2;
        let complete = loop {
            match self.parser.next_token() {
                Ok((Event::StreamEnd, _)) => break true,
                Ok((Event::DocumentStart, _)) => docs += 1,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        let count = if complete {
            docs.to_string()
        } else {
            format!("at least {docs}")
        };
        YamlError {
            message: format!("a config holds one YAML document, this file has {count}"),
            pos: at.pos(),
        }
    }

    /// Whether the next node completed goes in as a mapping key.
    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                items: Items::Map(_, None),
                ..
            })
        )
    }

    fn count(&mut self, n: usize, at: Mk) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                message: format!(
                    "the document holds too many nodes once aliases are expanded \
                     (more than {MAX_NODES})"
                ),
                pos: at.pos(),
            });
        }
        Ok(())
    }

    fn scalar(
        &mut self,
        value: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        mark: Mk,
    ) -> Result<Built, YamlError> {
        let (at, width) = match style {
            TScalarStyle::Plain if value.is_empty() => {
                let key = self.expecting_key();
                (self.empty_at(mark, key), 1)
            }
            TScalarStyle::Plain => (mark, self.plain_width(mark, &value)),
            TScalarStyle::SingleQuoted => (mark, self.quoted_width(mark, '\'')),
            TScalarStyle::DoubleQuoted => (mark, self.quoted_width(mark, '"')),
            TScalarStyle::Literal | TScalarStyle::Folded => self.block_header(mark, &value),
        };
        self.count(1, at)?;
        let plain = style == TScalarStyle::Plain;
        let value = if plain && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL") {
            Value::Null
        } else {
            Value::Scalar(value)
        };
        let built = Built {
            node: Node {
                value,
                pos: at.pos(),
                width: width.max(1),
                quoted: !plain,
                tag: tag.map(tag_text),
            },
            size: 1,
            height: 0,
        };
        Ok(self.anchored(anchor, built))
    }

    fn alias(&mut self, id: usize, mark: Mk) -> Result<Built, YamlError> {
        let Some(target) = self.anchors.get(&id) else {
            // yaml-rust2 rejects unknown names, so the anchor is on a node still being read.
            return Err(YamlError {
                message: "an alias cannot refer to a node that contains it".to_string(),
                pos: mark.pos(),
            });
        };
        let (size, height) = (target.size, target.height);
        if self.stack.len() + height > MAX_DEPTH {
            return Err(too_deep(mark));
        }
        self.count(size, mark)?;
        let mut node = self.anchors[&id].node.clone();
        node.pos = mark.pos();
        let name = self.text.from(mark);
        node.width = if name.first() == Some(&'*') {
            1 + name[1..]
                .iter()
                .take_while(|&&c| !c.is_whitespace() && !is_flow(c))
                .count()
        } else {
            1
        };
        Ok(Built { node, size, height })
    }

    fn open(
        &mut self,
        items: Items,
        anchor: usize,
        tag: Option<&Tag>,
        mark: Mk,
    ) -> Result<(), YamlError> {
        let seq = matches!(items, Items::Seq(_));
        let first = self.text.at(mark);
        let pos = match first {
            Some('[' | '-') if seq => Some(mark),
            Some('{' | '?') if !seq => Some(mark),
            // A sequence not indented under its key is marked after its first `- `.
            _ if seq => {
                let line = self.text.line(mark.line);
                line.iter()
                    .position(|&c| !is_blank(c))
                    .filter(|&col| col <= mark.col && line[col] == '-')
                    .map(|col| Mk {
                        line: mark.line,
                        col,
                    })
            }
            // A block mapping is marked at its first `:`; it starts with its first key.
            _ => None,
        };
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(pos.unwrap_or(mark)));
        }
        self.count(1, pos.unwrap_or(mark))?;
        self.stack.push(Frame {
            items,
            mark,
            pos,
            anchor,
            tag: tag.map(tag_text),
            size: 1,
            height: 1,
        });
        Ok(())
    }

    fn close(&mut self, frame: Frame) -> Built {
        let value = match frame.items {
            Items::Seq(items) => Value::Seq(items),
            Items::Map(pairs, _) => Value::Map(pairs),
        };
        let built = Built {
            node: Node {
                value,
                pos: frame.pos.unwrap_or(frame.mark).pos(),
                width: 1,
                quoted: false,
                tag: frame.tag,
            },
            size: frame.size,
            height: frame.height,
        };
        self.anchored(frame.anchor, built)
    }

    fn anchored(&mut self, anchor: usize, built: Built) -> Built {
        if anchor > 0 {
            let copy = Built {
                node: built.node.clone(),
                size: built.size,
                height: built.height,
            };
            self.anchors.insert(anchor, copy);
        }
        built
    }

    /// Width of a plain scalar on its first line. Its text there is the start of its value.
    fn plain_width(&self, mark: Mk, value: &str) -> usize {
        let line = self.text.from(mark);
        let mut value = value.chars();
        let mut n = 0;
        for &c in line {
            match value.next() {
                Some(v) if v == c => n += 1,
                _ => break,
            }
        }
        if value.next().is_some() {
            // Continued on the next line: drop the blanks before the line break.
            while n > 0 && is_blank(line[n - 1]) {
                n -= 1;
            }
        }
        n
    }

    /// Width of a quoted scalar on its first line, quotes included.
    fn quoted_width(&self, mark: Mk, quote: char) -> usize {
        let line = self.text.from(mark);
        if line.first() != Some(&quote) {
            return 1;
        }
        let mut i = 1;
        while i < line.len() {
            match line[i] {
                '\'' if quote == '\'' && line.get(i + 1) == Some(&'\'') => i += 2,
                '\\' if quote == '"' => i += 2,
                c if c == quote => return i + 1,
                _ => i += 1,
            }
        }
        // Continued on the next line: up to the end of this one.
        let mut n = line.len();
        while n > 1 && is_blank(line[n - 1]) {
            n -= 1;
        }
        n
    }

    /// Position and width of a block scalar's header (`|`, `>-`, `|2+`, ...). yaml-rust2 marks
    /// the first content line, or, if there is none, the header itself (at the end of the input)
    /// or whatever follows.
    fn block_header(&self, mark: Mk, value: &str) -> (Mk, usize) {
        if value.chars().all(|c| c == '\n') {
            if let Some(width) = header_width(self.text.from(mark)) {
                return (mark, width);
            }
        }
        // Only blank lines separate the header from where yaml-rust2 marked the scalar.
        for line in (1..mark.line).rev() {
            let text = self.text.line(line);
            if text.iter().all(|&c| is_blank(c)) {
                continue;
            }
            for col in 0..text.len() {
                if col > 0 && !is_blank(text[col - 1]) {
                    continue;
                }
                if let Some(width) = header_width(&text[col..]) {
                    return (Mk { line, col }, width);
                }
            }
            break;
        }
        (mark, 1)
    }

    /// Where to put an empty node that yaml-rust2 marked at `mark` (the token after it): on
    /// its tag or anchor if it has one, else just after the indicator that introduced it.
    fn empty_at(&mut self, mark: Mk, key: bool) -> Mk {
        let after_colon = self.text.at(mark) == Some(':');
        self.scan_intros();
        let intros = self.intros.as_deref().unwrap_or_default();
        let i = intros.partition_point(|&(at, _)| at < mark);
        let Some(&(at, intro)) = i.checked_sub(1).and_then(|i| intros.get(i)) else {
            return mark;
        };
        match intro {
            Intro::Property => {
                let mut first = i - 1;
                while first > 0 && intros[first - 1].1 == Intro::Property {
                    first -= 1;
                }
                intros[first].0
            }
            // An empty key before a `:`: mark is that `:` (unless a `?` introduced the key).
            _ if key && after_colon && !(intro == Intro::Indicator && self.is_at(at, '?')) => mark,
            Intro::Indicator => at.right(1),
            Intro::DocStart => at.right(3),
            Intro::Entry => self.after_dash(at).unwrap_or(at),
            // `{a: }`: yaml-rust2 marks the empty value at its `:`.
            Intro::Other if after_colon => mark.right(1),
            // After a key with no `:` (`? a`) or a flow key with no value (`{a, b}`): just
            // after the text before.
            Intro::Other => self.text.end_of_content(mark).unwrap_or(mark),
        }
    }

    fn is_at(&self, m: Mk, c: char) -> bool {
        self.text.at(m) == Some(c)
    }

    /// Just after the `-` of a block sequence entry that yaml-rust2 marked at `m`, i.e. after
    /// the `-` and the blanks and comment that follow it.
    fn after_dash(&self, m: Mk) -> Option<Mk> {
        let line = self.text.line(m.line);
        let end = m.col.min(line.len());
        (0..end)
            .filter(|&col| line[col] == '-')
            .find(|&col| {
                let rest = &line[col + 1..end];
                let blanks = rest.iter().take_while(|&&c| is_blank(c)).count();
                (rest.is_empty() || blanks > 0)
                    && (blanks == rest.len() || rest[blanks] == '#')
                    && (col == 0 || is_blank(line[col - 1]))
            })
            .map(|col| Mk {
                line: m.line,
                col: col + 1,
            })
    }

    fn scan_intros(&mut self) {
        if self.intros.is_none() {
            let mut scanner = Scanner::new(self.src.chars());
            let mut intros = Vec::new();
            for token in scanner.by_ref() {
                let at = Mk::of(&token.0);
                let first = self.text.at(at);
                let intro = match token.1 {
                    TokenType::Value | TokenType::FlowEntry | TokenType::FlowSequenceStart => {
                        Intro::Indicator
                    }
                    // Keys are marked at the key unless written with `?`; a flow mapping
                    // opened by `key: value` in a flow sequence has no `{`.
                    TokenType::Key if first == Some('?') => Intro::Indicator,
                    TokenType::FlowMappingStart if first == Some('{') => Intro::Indicator,
                    TokenType::FlowMappingEnd if first == Some('}') => Intro::Other,
                    TokenType::DocumentStart => Intro::DocStart,
                    TokenType::BlockEntry => Intro::Entry,
                    TokenType::Tag(..) | TokenType::Anchor(_) => Intro::Property,
                    TokenType::Scalar(..)
                    | TokenType::Alias(_)
                    | TokenType::FlowSequenceEnd
                    | TokenType::DocumentEnd
                    | TokenType::VersionDirective(..)
                    | TokenType::TagDirective(..) => Intro::Other,
                    _ => continue,
                };
                intros.push((at, intro));
            }
            intros.sort_by_key(|&(at, _)| at);
            self.intros = Some(intros);
        }
    }

    /// Converts a yaml-rust2 error, moving its position where yaml-rust2 is known to be vague.
    fn scan_error(&self, e: &ScanError) -> YamlError {
        let info = e.info();
        let mut at = Mk::of(e.marker());
        if info.contains("found a tab") {
            // Marked at the start of the plain scalar; the tab is on a later line.
            if let Some(tab) = self.leading_tab_after(at) {
                at = tab;
            }
        } else if info.contains("escape") || info.contains("hexadecimal") {
            // Marked at the opening quote; the bad escape may be lines further.
            if let Some(bad) = self.bad_escape(at) {
                at = bad;
            }
        } else if info.starts_with("simple key expect") {
            // Marked where yaml-rust2 gave up waiting for the `:`, often lines later: point
            // just after the key, where the `:` is missing.
            if let Some(end) = self.text.end_of_content(at) {
                at = end;
            }
        } else if info.contains("block scalar content cannot start with a tab") {
            at = Mk {
                line: at.line + 1,
                col: 0,
            };
        } else if self.text.only_space_after(at) {
            // At the end of the input (an unclosed `[`, `{`, ...): point just after the last
            // thing written, where the missing text belongs.
            if let Some(end) = self.text.end_of_content(at) {
                at = end;
            }
        }
        let mut message = info.to_string();
        if let Some(first) = message.chars().next() {
            if first.is_uppercase() {
                message = first
                    .to_lowercase()
                    .chain(message.chars().skip(1))
                    .collect();
            }
        }
        YamlError {
            message,
            pos: at.pos(),
        }
    }

    /// The first tab in the indentation of a non-empty line after `m`'s line.
    fn leading_tab_after(&self, m: Mk) -> Option<Mk> {
        (m.line + 1..=self.text.lines.len()).find_map(|line| {
            let text = self.text.line(line);
            let indent = text.iter().take_while(|&&c| is_blank(c)).count();
            if indent == text.len() {
                return None;
            }
            text[..indent]
                .iter()
                .position(|&c| c == '\t')
                .map(|col| Mk { line, col })
        })
    }

    /// The first invalid escape in the double-quoted scalar opening at `m`.
    fn bad_escape(&self, m: Mk) -> Option<Mk> {
        if self.text.at(m) != Some('"') {
            return None;
        }
        let mut line = m.line;
        let mut col = m.col + 1;
        while line <= self.text.lines.len() {
            let text = self.text.line(line);
            while col < text.len() {
                match text[col] {
                    '"' => return None,
                    '\\' => {
                        let Some(&c) = text.get(col + 1) else {
                            break; // an escaped line break
                        };
                        let digits = match c {
                            'x' => 2,
                            'u' => 4,
                            'U' => 8,
                            '0' | 'a' | 'b' | 't' | '\t' | 'n' | 'v' | 'f' | 'r' | 'e' | ' '
                            | '"' | '/' | '\\' | 'N' | '_' | 'L' | 'P' => 0,
                            _ => return Some(Mk { line, col }),
                        };
                        let hex: String = text[(col + 2).min(text.len())..]
                            .iter()
                            .take(digits)
                            .collect();
                        let valid = hex.chars().count() == digits
                            && (digits == 0
                                || u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .is_some());
                        if !valid {
                            return Some(Mk { line, col });
                        }
                        col += 2 + digits;
                    }
                    _ => col += 1,
                }
            }
            line += 1;
            col = 0;
        }
        None
    }
}

impl Frame {
    fn push(&mut self, child: Built) {
        self.size = self.size.saturating_add(child.size);
        self.height = self.height.max(child.height + 1);
        if self.pos.is_none() {
            // The first child of a block mapping is its first key.
            self.pos = Some(Mk {
                line: child.node.pos.line,
                col: child.node.pos.col - 1,
            });
        }
        match &mut self.items {
            Items::Seq(items) => items.push(child.node),
            Items::Map(_, key @ None) => *key = Some(child.node),
            Items::Map(pairs, key) => {
                if let Some(k) = key.take() {
                    pairs.push((k, child.node));
                }
            }
        }
    }
}

/// Width of a block scalar header at the start of `text`, if `text` starts with one: `|` or
/// `>`, indentation and chomping indicators, then only blanks or a comment.
fn header_width(text: &[char]) -> Option<usize> {
    if !matches!(text.first(), Some('|' | '>')) {
        return None;
    }
    let width = 1 + text[1..]
        .iter()
        .take_while(|c| matches!(c, '+' | '-' | '0'..='9'))
        .count();
    let rest = &text[width..];
    let blanks = rest.iter().take_while(|&&c| is_blank(c)).count();
    let ok = blanks == rest.len() || (blanks > 0 && rest[blanks] == '#');
    ok.then_some(width)
}

/// The tag as written: yaml-rust2 hands it over resolved (`!!str` as `tag:yaml.org,2002:str`).
fn tag_text(tag: &Tag) -> String {
    match (tag.handle.as_str(), tag.suffix.as_str()) {
        ("tag:yaml.org,2002:", suffix) => format!("!!{suffix}"),
        ("", "!") => "!".to_string(),
        ("", suffix) => format!("!<{suffix}>"),
        (handle, suffix) => format!("{handle}{suffix}"),
    }
}

fn too_deep(at: Mk) -> YamlError {
    YamlError {
        message: format!("nesting is too deep (more than {MAX_DEPTH} levels)"),
        pos: at.pos(),
    }
}
