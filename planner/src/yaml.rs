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

/// At most this many nodes may be copied for aliases (guards against "billion laughs" inputs
/// where a few lines of nested aliases expand to an enormous tree). Nodes written out in the
/// file are not counted: their number is bounded by the file's size, and a fleet of a million
/// hosts listed one by one is a real config.
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
                Event::SequenceEnd | Event::MappingEnd => {
                    self.stack.pop().map(|frame| self.close(frame))
                }
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
                message: format!("aliases expand to too many nodes (more than {MAX_NODES})"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(src: &str) -> Node {
        match parse(src) {
            Ok(Some(node)) => node,
            other => panic!("expected a document from {src:?}, got {other:?}"),
        }
    }

    fn err(src: &str) -> YamlError {
        match parse(src) {
            Err(e) => e,
            other => panic!("expected an error from {src:?}, got {other:?}"),
        }
    }

    /// The pairs of a mapping.
    fn pairs(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(pairs) => pairs,
            other => panic!("expected a mapping, got {other:?}"),
        }
    }

    fn items(node: &Node) -> &[Node] {
        match &node.value {
            Value::Seq(items) => items,
            other => panic!("expected a list, got {other:?}"),
        }
    }

    /// The key node and value node of `key` in a mapping.
    fn entry<'a>(node: &'a Node, key: &str) -> &'a (Node, Node) {
        pairs(node)
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .unwrap_or_else(|| panic!("no key {key:?}"))
    }

    fn get<'a>(node: &'a Node, key: &str) -> &'a Node {
        &entry(node, key).1
    }

    /// Line, column and width.
    fn at(node: &Node) -> (usize, usize, usize) {
        (node.pos.line, node.pos.col, node.width)
    }

    fn err_at(e: &YamlError) -> (usize, usize) {
        (e.pos.line, e.pos.col)
    }

    const SAMPLE: &str = "\
# sample configuration file
tag:
  colo:
    one:
      - host1
      - \"host2\"
    two: [host4, host5]
  db: db1
  empty:
sequence:
  foo:
    - $colo.one
";

    #[test]
    fn sample_keys_values_and_items_have_exact_positions() {
        let root = doc(SAMPLE);
        assert_eq!(at(&root), (2, 1, 1));
        assert_eq!(root.kind(), "a mapping");

        let (tag_key, tag) = entry(&root, "tag");
        assert_eq!(at(tag_key), (2, 1, 3));
        assert_eq!(at(tag), (3, 3, 1));

        let (colo_key, colo) = entry(tag, "colo");
        assert_eq!(at(colo_key), (3, 3, 4));
        assert_eq!(at(colo), (4, 5, 1));

        let (one_key, one) = entry(colo, "one");
        assert_eq!(at(one_key), (4, 5, 3));
        assert_eq!(at(one), (5, 7, 1));
        assert_eq!(one.kind(), "a list");
        let hosts = items(one);
        assert_eq!(hosts[0].as_str(), Some("host1"));
        assert_eq!(at(&hosts[0]), (5, 9, 5));
        assert!(!hosts[0].quoted);
        assert_eq!(hosts[1].as_str(), Some("host2"));
        assert_eq!(at(&hosts[1]), (6, 9, 7));
        assert!(hosts[1].quoted);

        let (two_key, two) = entry(colo, "two");
        assert_eq!(at(two_key), (7, 5, 3));
        assert_eq!(at(two), (7, 10, 1));
        let flow = items(two);
        assert_eq!(at(&flow[0]), (7, 11, 5));
        assert_eq!(at(&flow[1]), (7, 18, 5));
        assert_eq!(flow[1].as_str(), Some("host5"));

        let (db_key, db) = entry(tag, "db");
        assert_eq!(at(db_key), (8, 3, 2));
        assert_eq!(at(db), (8, 7, 3));

        // An empty value sits just after its `:`, on its key's line.
        let (empty_key, empty) = entry(tag, "empty");
        assert_eq!(at(empty_key), (9, 3, 5));
        assert_eq!(empty.value, Value::Null);
        assert_eq!(at(empty), (9, 9, 1));
        assert_eq!(empty.kind(), "null");

        let (seq_key, seq) = entry(&root, "sequence");
        assert_eq!(at(seq_key), (10, 1, 8));
        let (foo_key, foo) = entry(seq, "foo");
        assert_eq!(at(foo_key), (11, 3, 3));
        assert_eq!(at(foo), (12, 5, 1));
        let item = &items(foo)[0];
        assert_eq!(item.as_str(), Some("$colo.one"));
        assert_eq!(at(item), (12, 7, 9));
        assert_eq!(item.kind(), "a scalar");
    }

    #[test]
    fn null_forms_are_null_only_unquoted() {
        let root =
            doc("a:\nb: ~\nc: null\nd: Null\ne: NULL\nf: \"null\"\ng: 'null'\nh: nulls\ni: \"\"\n");
        for key in ["a", "b", "c", "d", "e"] {
            let node = get(&root, key);
            assert_eq!(node.value, Value::Null, "{key}");
            assert_eq!(node.as_str(), None);
            assert!(!node.quoted);
        }
        assert_eq!(at(get(&root, "b")), (2, 4, 1));
        assert_eq!(at(get(&root, "c")), (3, 4, 4));
        let f = get(&root, "f");
        assert_eq!(f.value, Value::Scalar("null".into()));
        assert!(f.quoted);
        assert_eq!(at(f), (6, 4, 6));
        assert_eq!(get(&root, "g").as_str(), Some("null"));
        assert_eq!(get(&root, "h").as_str(), Some("nulls"));
        let i = get(&root, "i");
        assert_eq!(i.as_str(), Some(""));
        assert_eq!(at(i), (9, 4, 2));
    }

    #[test]
    fn scalars_keep_their_text() {
        let root = doc("- on\n- 123\n- 1e3\n- true\n- 0x1F\n- 'it''s'\n- \"tab\\there\"\n");
        let texts: Vec<_> = items(&root).iter().map(|n| n.as_str()).collect();
        assert_eq!(
            texts,
            [
                Some("on"),
                Some("123"),
                Some("1e3"),
                Some("true"),
                Some("0x1F"),
                Some("it's"),
                Some("tab\there"),
            ]
        );
        // Widths are of the source text, quotes and escapes included.
        assert_eq!(at(&items(&root)[5]), (6, 3, 7));
        assert_eq!(at(&items(&root)[6]), (7, 3, 11));
    }

    #[test]
    fn duplicate_keys_are_kept_in_order() {
        let root = doc("a: 1\nb: 2\na: 3\n");
        let keys: Vec<_> = pairs(&root)
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str(), k.pos.line))
            .collect();
        assert_eq!(
            keys,
            [
                (Some("a"), Some("1"), 1),
                (Some("b"), Some("2"), 2),
                (Some("a"), Some("3"), 3),
            ]
        );
    }

    #[test]
    fn aliases_copy_the_anchored_node_at_their_own_position() {
        let root = doc("base: &b {x: 1}\nname: &n \"web\"\nuse: *b\nalso: *n\n");
        let base = get(&root, "base");
        let used = get(&root, "use");
        assert_eq!(at(base), (1, 10, 1));
        assert_eq!(at(used), (3, 6, 2));
        assert_eq!(used.value, base.value);
        // The copied children keep the anchored node's positions.
        assert_eq!(at(get(used, "x")), (1, 14, 1));
        let also = get(&root, "also");
        assert_eq!(also.as_str(), Some("web"));
        assert!(also.quoted);
        assert_eq!(at(also), (4, 7, 2));
        // An anchor may be redefined; an alias takes the latest.
        let root = doc("a: &x 1\nb: &x 2\nc: *x\n");
        assert_eq!(get(&root, "c").as_str(), Some("2"));
    }

    #[test]
    fn a_big_document_without_aliases_is_not_an_alias_bomb() {
        // The alias guard once counted every node, refusing a fleet of 500,000 hosts listed
        // one by one; only copies made for aliases count.
        let text = format!("[{}]", vec!["h"; MAX_NODES + 1].join(","));
        let node = parse(&text).unwrap().unwrap();
        assert!(matches!(node.value, Value::Seq(ref items) if items.len() == MAX_NODES + 1));
    }

    #[test]
    fn alias_errors() {
        let e = err("a: *nope\n");
        assert!(e.message.contains("unknown anchor"), "{e}");
        assert_eq!(err_at(&e), (1, 4));

        let e = err("- &a\n  - &b [*a]\n");
        assert_eq!(
            e.message,
            "an alias cannot refer to a node that contains it"
        );
        assert_eq!(err_at(&e), (2, 9));

        // Ten times ten times ... a million nodes from a few lines.
        let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e")] {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            src.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let e = err(&src);
        assert!(e.message.contains("too many nodes"), "{e}");
        assert_eq!(e.pos.line, 6);
    }

    #[test]
    fn tags_are_kept_as_written() {
        let root = doc(
            "cmd: !command \"x\"\nstr: !!str 1\nmap: !group\n  a: b\nbare: !t\nlist: !hosts [a]\n",
        );
        let cmd = get(&root, "cmd");
        assert_eq!(cmd.tag.as_deref(), Some("!command"));
        assert_eq!(cmd.as_str(), Some("x"));
        assert!(cmd.quoted);
        // A tagged scalar is placed at its text.
        assert_eq!(at(cmd), (1, 15, 3));
        assert_eq!(get(&root, "str").tag.as_deref(), Some("!!str"));
        let map = get(&root, "map");
        assert_eq!(map.tag.as_deref(), Some("!group"));
        assert_eq!(at(map), (4, 3, 1));
        // A tag with nothing after it: a null placed at its tag.
        let bare = get(&root, "bare");
        assert_eq!(bare.value, Value::Null);
        assert_eq!(bare.tag.as_deref(), Some("!t"));
        assert_eq!(at(bare), (5, 7, 1));
        let list = get(&root, "list");
        assert_eq!(list.tag.as_deref(), Some("!hosts"));
        assert_eq!(at(list), (6, 14, 1));
        assert_eq!(get(&doc("k: v\n"), "k").tag, None);
    }

    #[test]
    fn empty_input_gives_none() {
        for src in [
            "",
            "\n\n",
            "# only\n# comments\n",
            "---\n",
            "--- # empty\n",
            "...\n",
        ] {
            assert_eq!(parse(src), Ok(None), "{src:?}");
        }
        // `~` is a value: null.
        assert_eq!(doc("~\n").value, Value::Null);
        assert_eq!(doc("--- !t\n").tag.as_deref(), Some("!t"));
    }

    #[test]
    fn second_document_is_an_error_at_its_start() {
        let e = err("a: 1\n---\nb: 2\n");
        assert_eq!(
            e.message,
            "a config holds one YAML document, this file has 2"
        );
        assert_eq!(err_at(&e), (2, 1));
        assert_eq!(
            e.to_string(),
            "line 2, column 1: a config holds one YAML document, this file has 2"
        );
        let e = err("a\n...\nb\n");
        assert_eq!(err_at(&e), (3, 1));
        let e = err("---\na: 1\n---\nb: 2\n--- c\n");
        assert_eq!(
            e.message,
            "a config holds one YAML document, this file has 3"
        );
        assert_eq!(err_at(&e), (3, 1));
        let e = err("a: 1\n---\nb: [\n");
        assert_eq!(
            e.message,
            "a config holds one YAML document, this file has at least 2"
        );
    }

    #[test]
    fn scan_errors_point_at_the_right_line() {
        // A tab used for indentation.
        let e = err("a:\n\tb: 1\n");
        assert!(e.message.contains("tabs"), "{e}");
        assert_eq!(e.pos.line, 2);
        // yaml-rust2 marks this one at the start of `1`; the tab is on line 3.
        let e = err("a:\n  b: 1\n\tc: 2\n");
        assert!(e.message.contains("tab"), "{e}");
        assert_eq!(err_at(&e), (3, 1));
        // Unclosed quotes: at the opening quote.
        let e = err("key: \"abc\nnext: 1\n");
        assert_eq!(err_at(&e), (1, 6));
        let e = err("key: 'abc\n");
        assert_eq!(
            e.message,
            "while scanning a quoted scalar, found unexpected end of stream"
        );
        assert_eq!(err_at(&e), (1, 6));
        // Unclosed flow collections: just after the last thing written, not past the end.
        let e = err("key: [a, b\n");
        assert_eq!(
            e.message,
            "while parsing a flow sequence, expected ',' or ']'"
        );
        assert_eq!(err_at(&e), (1, 11));
        let e = err("key: [a, b  # note\n\n\n");
        assert_eq!(err_at(&e), (1, 11));
        let e = err("{a: 1\n");
        assert_eq!(err_at(&e), (1, 6));
        // A key without `:`: yaml-rust2 notices on the next key's line.
        let e = err("a: 1\nb\n\nc: 2\n");
        assert_eq!(e.message, "simple key expect ':'");
        assert_eq!(err_at(&e), (2, 2));
        // A bad escape in a string spanning lines: at the backslash.
        let e = err("a: \"line one\n  two \\q\"\n");
        assert!(e.message.contains("unknown escape"), "{e}");
        assert_eq!(err_at(&e), (2, 7));
        let e = err("a: \"bad \\x4\"\n");
        assert_eq!(err_at(&e), (1, 9));
        let e = err("a: b: c\n");
        assert_eq!(e.message, "mapping values are not allowed in this context");
        assert_eq!(err_at(&e), (1, 5));
        let e = err("a:\n  - b\n  c: d\n");
        assert_eq!(
            e.message,
            "while parsing a block collection, did not find expected '-' indicator"
        );
        assert_eq!(err_at(&e), (3, 3));
        let e = err("a: |\n\tx\n");
        assert_eq!(err_at(&e), (2, 1));
        let e = err("a: x\0b\n");
        assert_eq!(e.message, "the file contains a NUL character");
        assert_eq!(err_at(&e), (1, 5));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let ok = format!("{}x\n", "- ".repeat(MAX_DEPTH));
        let mut node = doc(&ok);
        for _ in 0..MAX_DEPTH {
            node = items(&node)[0].clone();
        }
        assert_eq!(node.as_str(), Some("x"));

        let e = err(&format!("{}x\n", "- ".repeat(MAX_DEPTH + 1)));
        assert_eq!(e.message, "nesting is too deep (more than 256 levels)");
        assert_eq!(err_at(&e), (1, 2 * MAX_DEPTH + 1));
        assert!(parse(&"- ".repeat(100_000)).is_err());
        assert!(parse(&"[".repeat(100_000)).is_err());
        assert!(parse(&"{a: ".repeat(100_000)).is_err());
        let indented: String = (0..1000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        assert!(parse(&indented).is_err());

        // An alias may not push a copy past the limit either.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let src = |n: usize| format!("a: &a {deep}\nb: {}*a{}\n", "[".repeat(n), "]".repeat(n));
        assert!(parse(&src(50)).is_ok());
        let e = err(&src(60));
        assert!(e.message.contains("too deep"), "{e}");
        assert_eq!(err_at(&e), (2, 64));
    }

    #[test]
    fn block_scalars_are_placed_at_their_indicator() {
        let root =
            doc("a: |\n  one\n  two\nb: >-  # folded\n\n  text\nc: |\nd: x\ne: |2+\n    y\n");
        let a = get(&root, "a");
        assert_eq!(a.as_str(), Some("one\ntwo\n"));
        assert!(a.quoted);
        assert_eq!(at(a), (1, 4, 1));
        let b = get(&root, "b");
        assert_eq!(b.as_str(), Some("\ntext"));
        assert_eq!(at(b), (4, 4, 2));
        let c = get(&root, "c");
        assert_eq!(c.as_str(), Some(""));
        assert_eq!(at(c), (7, 4, 1));
        assert_eq!(at(get(&root, "e")), (9, 4, 3));
        // Non-ASCII text in a block scalar does not shift what follows.
        let src = format!("a: |\n  {}\nb: x\n", "é".repeat(40));
        let root = doc(&src);
        assert_eq!(at(&entry(&root, "b").0), (3, 1, 1));
        assert_eq!(at(get(&root, "b")), (3, 4, 1));
        // At the very end of the input.
        let root = doc("- |");
        assert_eq!(at(&items(&root)[0]), (1, 3, 1));
    }

    #[test]
    fn multi_line_scalars_underline_their_first_line() {
        let root = doc("a: plain   \n  text\nb: \"two\n  lines\"\nc: 'x\n  y'\n");
        let a = get(&root, "a");
        assert_eq!(a.as_str(), Some("plain text"));
        assert_eq!(at(a), (1, 4, 5));
        let b = get(&root, "b");
        assert_eq!(b.as_str(), Some("two lines"));
        assert_eq!(at(b), (3, 4, 4));
        assert_eq!(at(get(&root, "c")), (5, 4, 2));
    }

    #[test]
    fn sequences_and_empty_items() {
        let root = doc("k:\n- a\n-\n- # note\n- !t\nm: [x, {y: , z}]\nn: {p: }\n");
        let k = get(&root, "k");
        // Not indented under its key: yaml-rust2 marks it after the `- `.
        assert_eq!(at(k), (2, 1, 1));
        let k = items(k);
        assert_eq!(at(&k[0]), (2, 3, 1));
        assert_eq!(k[1].value, Value::Null);
        assert_eq!(at(&k[1]), (3, 2, 1));
        assert_eq!(at(&k[2]), (4, 2, 1));
        assert_eq!(at(&k[3]), (5, 3, 1));
        let m = items(get(&root, "m"));
        assert_eq!(at(&m[1]), (6, 8, 1));
        assert_eq!(at(&entry(&m[1], "y").1), (6, 11, 1));
        assert_eq!(at(&entry(&m[1], "z").0), (6, 14, 1));
        assert_eq!(entry(&m[1], "z").1.value, Value::Null);
        assert_eq!(at(get(&root, "n")), (7, 4, 1));
        assert_eq!(at(get(get(&root, "n"), "p")), (7, 7, 1));
        // An explicit key and an empty key.
        let root = doc("? a\n: b\n: c\n");
        assert_eq!(at(&root), (1, 1, 1));
        let p = pairs(&root);
        assert_eq!(at(&p[0].0), (1, 3, 1));
        assert_eq!(p[1].0.value, Value::Null);
        assert_eq!(at(&p[1].0), (3, 1, 1));
    }

    #[test]
    fn columns_count_characters_and_all_line_breaks() {
        let root = doc("é: ü\nx: [é, {a: b}]\n");
        assert_eq!(at(get(&root, "é")), (1, 4, 1));
        assert_eq!(at(&items(get(&root, "x"))[1]), (2, 8, 1));
        let root = doc("\u{feff}a: 1\r\nb:\r\n  - x\r\nc: 2\rd: 3\n");
        assert_eq!(at(&entry(&root, "a").0), (1, 1, 1));
        assert_eq!(at(&items(get(&root, "b"))[0]), (3, 5, 1));
        assert_eq!(at(get(&root, "c")), (4, 4, 1));
        assert_eq!(at(get(&root, "d")), (5, 4, 1));
        // Tabs count as one column.
        let root = doc("a:\t\"x\"\n");
        assert_eq!(at(get(&root, "a")), (1, 4, 3));
    }

    /// Checks that every position lies within the source and every width is positive.
    fn check_tree(node: &Node, lines: &[usize]) {
        assert!(node.width >= 1);
        assert!(node.pos.line >= 1 && node.pos.line <= lines.len());
        assert!(node.pos.col >= 1 && node.pos.col <= lines[node.pos.line - 1] + 1);
        match &node.value {
            Value::Seq(items) => items.iter().for_each(|n| check_tree(n, lines)),
            Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
                check_tree(k, lines);
                check_tree(v, lines);
            }),
            Value::Null | Value::Scalar(_) => {}
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let alphabet: Vec<char> = " \n\n\t-:?,[]{}#&*!|>'\"%@`~.ab1é\\\r".chars().collect();
        let mut state: u64 = 0x5eed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..10_000 {
            let len = next() % 48;
            let src: String = (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect();
            let text = Source::new(&src);
            let lines: Vec<usize> = text.lines.iter().map(|&(s, e)| e - s).collect();
            match parse(&src) {
                Ok(Some(node)) => {
                    ok += 1;
                    check_tree(&node, &lines);
                }
                Ok(None) => ok += 1,
                Err(e) => {
                    failed += 1;
                    assert!(!e.message.is_empty());
                    let line = e.pos.line;
                    assert!(line >= 1 && line <= lines.len(), "{src:?}: {e}");
                    assert!(
                        e.pos.col >= 1 && e.pos.col <= lines[line - 1] + 1,
                        "{src:?}: {e}"
                    );
                }
            }
        }
        // The alphabet gives both outcomes plenty of exercise.
        assert!(ok > 1000 && failed > 1000, "ok {ok}, failed {failed}");
    }
}
