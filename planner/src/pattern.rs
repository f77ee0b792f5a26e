//! Host patterns: the glob syntax of the original Perl Pogo
//! (`String::Glob::Permute`), so existing host lists keep working.
//!
//! - `host[1-3,5,!2]` — numbers and ranges in brackets; `!N` or `!N-M`
//!   removes values wherever it appears in the bracket. A range whose two
//!   ends have the same width is zero padded (`[08-10]` → `08 09 10`); a
//!   single number keeps its text (`[08]` → `08`).
//! - `host{dev,prod}` — literal alternatives; an empty one is allowed
//!   (`web{,-canary}` → `web web-canary`).
//! - `a,b` — a comma outside brackets and braces separates whole patterns.
//!
//! With several groups the leftmost varies fastest (`a[1-2]b[3-4]` →
//! `a1b3 a2b3 a1b4 a2b4`), and duplicates are dropped keeping the first.
//! The size of an expansion is computed before anything is built, so a
//! typo such as `[1-1000000000]` is refused instead of exhausting memory.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// Most host names one pattern may expand to; beyond this a pattern is
/// almost certainly a typo, and refusing it keeps memory bounded.
pub const MAX_HOSTS_PER_PATTERN: usize = 100_000;

/// True when `s` uses pattern syntax (contains any of `[ ] { } ,`), i.e.
/// needs [`expand`] rather than being used as a host name directly.
#[must_use]
pub fn is_pattern(s: &str) -> bool {
    s.contains(['[', ']', '{', '}', ','])
}

/// True when `s` is one plain host name: no pattern syntax, not empty, no blank or control
/// character. Such a name is its own expansion, which lets big explicit host lists skip
/// [`expand`].
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && !is_pattern(s) && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Expands a pattern (or a plain host name, returned as a one-element vec
/// after validation) into host names, in expansion order, without
/// duplicates.
///
/// # Errors
///
/// A [`PatternError`] naming the problem and the character offset where it
/// is: bad syntax, whitespace or control characters, or an expansion of
/// more than [`MAX_HOSTS_PER_PATTERN`] hosts. No input makes this panic.
pub fn expand(pattern: &str) -> Result<Vec<String>, PatternError> {
    Ok(Pattern::parse(pattern)?.collect())
}

/// A checked pattern, ready to expand: [`expand`] in two steps, for a caller that makes room
/// for the names first and takes them one at a time, without a `String` for each.
pub struct Pattern {
    alternatives: Vec<Alternative>,
    total: usize,
}

impl Pattern {
    /// Parses `pattern` and checks the size of its expansion.
    ///
    /// # Errors
    ///
    /// As [`expand`].
    pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        let alternatives = parse(&chars)?;
        let total = check_size(&alternatives)?;
        Ok(Pattern {
            alternatives,
            total,
        })
    }

    /// How many names the expansion has before duplicates are dropped: at least as many as
    /// [`Pattern::for_each`] gives.
    pub fn len_before_dedup(&self) -> usize {
        self.total
    }

    /// The longest name the expansion can give, in bytes.
    pub fn max_len(&self) -> usize {
        self.alternatives
            .iter()
            .map(|a| {
                a.segments
                    .iter()
                    .map(|segment| match segment {
                        Segment::Literal(text) => text.len(),
                        Segment::Braces { options, .. } => {
                            options.iter().map(String::len).max().unwrap_or(0)
                        }
                        Segment::Brackets { includes, .. } => widest(includes),
                    })
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0)
    }

    /// Calls `each` with every name of the expansion, as [`expand`] orders them. A pattern
    /// whose names are certainly distinct (one alternative, as host ranges are) is expanded
    /// into one reused buffer; any other is expanded and deduplicated first.
    pub fn for_each(&self, mut each: impl FnMut(&str)) {
        if let [alternative] = self.alternatives.as_slice() {
            let groups = groups(alternative);
            if certainly_distinct(&groups) {
                each_host(alternative, &groups, &mut each);
                return;
            }
        }
        for host in self.collect() {
            each(&host);
        }
    }

    fn collect(&self) -> Vec<String> {
        let mut hosts = Vec::with_capacity(self.total);
        let mut distinct = self.alternatives.len() == 1;
        for alternative in &self.alternatives {
            distinct &= expand_alternative(alternative, &mut hosts);
        }
        if !distinct {
            dedupe(&mut hosts);
        }
        hosts
    }
}

/// Why a host pattern is invalid, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// Lowercase fragment that reads after "invalid host pattern `...`: ",
    /// e.g. "range 3-1 goes backwards; write 1-3". It never repeats the
    /// pattern itself.
    pub message: String,
    /// 0-based character (not byte) offset into the pattern where the
    /// problem is, for pointing a caret at it. May equal the pattern's
    /// length when something is missing at the end.
    pub offset: usize,
}

impl PatternError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        PatternError {
            message: message.into(),
            offset,
        }
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PatternError {}

/// One comma-separated part of the whole pattern.
struct Alternative {
    offset: usize,
    segments: Vec<Segment>,
}

enum Segment {
    Literal(String),
    Braces {
        offset: usize,
        options: Vec<String>,
    },
    Brackets {
        offset: usize,
        includes: Vec<Include>,
        /// Sorted, merged and disjoint, so membership and overlap need no
        /// enumeration of (possibly huge) ranges.
        removals: Vec<(u64, u64)>,
        /// Values produced before deduplication; at least 1.
        count: u128,
    },
}

impl Segment {
    /// Number of values a group contributes, or `None` for literal text.
    fn group_count(&self) -> Option<(u128, usize)> {
        match self {
            Segment::Literal(_) => None,
            Segment::Braces { offset, options } => Some((options.len() as u128, *offset)),
            Segment::Brackets { offset, count, .. } => Some((*count, *offset)),
        }
    }
}

struct Include {
    lo: u64,
    hi: u64,
    render: Render,
}

enum Render {
    /// A single number keeps exactly the text written (`08` stays `08`).
    Text(String),
    /// Zero pad to this width (0 means no padding).
    Padded(usize),
}

fn parse(chars: &[char]) -> Result<Vec<Alternative>, PatternError> {
    // Checked first: a blank is never part of a host name, and saying so
    // is more useful than whatever structural error it might also cause.
    if let Some(i) = chars
        .iter()
        .position(|c| c.is_whitespace() || c.is_control())
    {
        let c = chars[i];
        let message = if c.is_whitespace() {
            "whitespace is not allowed; blanks are never part of a host name".to_string()
        } else {
            format!("control character U+{:04X} is not allowed", c as u32)
        };
        return Err(PatternError::new(i, message));
    }
    if chars.is_empty() {
        return Err(PatternError::new(0, "empty pattern"));
    }

    let mut alternatives = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut literal = String::new();
    let mut alt_start = 0;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            ',' => {
                flush_literal(&mut literal, &mut segments);
                if segments.is_empty() {
                    let message = if i == 0 {
                        "empty alternative before the first comma"
                    } else {
                        "empty alternative between two commas"
                    };
                    return Err(PatternError::new(i, message));
                }
                alternatives.push(finish_alternative(alt_start, &mut segments)?);
                alt_start = i + 1;
                i += 1;
            }
            '[' => {
                flush_literal(&mut literal, &mut segments);
                let close = find_close(chars, i, ']')?;
                segments.push(parse_brackets(chars, i, close)?);
                i = close + 1;
            }
            '{' => {
                flush_literal(&mut literal, &mut segments);
                let close = find_close(chars, i, '}')?;
                segments.push(parse_braces(chars, i, close)?);
                i = close + 1;
            }
            ']' => return Err(PatternError::new(i, "stray `]` with no matching `[`")),
            '}' => return Err(PatternError::new(i, "stray `}` with no matching `{`")),
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    flush_literal(&mut literal, &mut segments);
    if segments.is_empty() {
        return Err(PatternError::new(
            chars.len(),
            "trailing comma leaves an empty alternative",
        ));
    }
    alternatives.push(finish_alternative(alt_start, &mut segments)?);
    Ok(alternatives)
}

fn flush_literal(literal: &mut String, segments: &mut Vec<Segment>) {
    if !literal.is_empty() {
        segments.push(Segment::Literal(std::mem::take(literal)));
    }
}

fn finish_alternative(
    offset: usize,
    segments: &mut Vec<Segment>,
) -> Result<Alternative, PatternError> {
    // Only braces with an empty option can produce nothing at all; an
    // empty host name would reach ssh as a confusing failure.
    let can_be_empty = segments.iter().all(|s| match s {
        Segment::Braces { options, .. } => options.iter().any(String::is_empty),
        _ => false,
    });
    if can_be_empty {
        return Err(PatternError::new(
            offset,
            "`{...}` here can expand to an empty host name",
        ));
    }
    Ok(Alternative {
        offset,
        segments: std::mem::take(segments),
    })
}

/// Index of the `close` matching the opener at `open`, rejecting nesting
/// and the wrong closer so the contents can be parsed as a flat list.
fn find_close(chars: &[char], open: usize, close: char) -> Result<usize, PatternError> {
    let opener = chars[open];
    for (i, &c) in chars.iter().enumerate().skip(open + 1) {
        if c == close {
            return Ok(i);
        }
        match c {
            '[' | '{' => {
                return Err(PatternError::new(
                    i,
                    format!("nested `{c}` inside `{opener}...{close}` is not allowed"),
                ))
            }
            ']' | '}' => {
                return Err(PatternError::new(
                    i,
                    format!("`{c}` does not close the `{opener}` opened earlier"),
                ))
            }
            _ => {}
        }
    }
    Err(PatternError::new(
        open,
        format!("unclosed `{opener}`; add a `{close}`"),
    ))
}

fn parse_braces(chars: &[char], open: usize, close: usize) -> Result<Segment, PatternError> {
    if close == open + 1 {
        return Err(PatternError::new(open, "empty braces `{}`"));
    }
    let options = chars[open + 1..close]
        .split(|&c| c == ',')
        .map(|part| part.iter().collect())
        .collect();
    Ok(Segment::Braces {
        offset: open,
        options,
    })
}

fn parse_brackets(chars: &[char], open: usize, close: usize) -> Result<Segment, PatternError> {
    if close == open + 1 {
        return Err(PatternError::new(open, "empty brackets `[]`"));
    }
    let mut includes = Vec::new();
    let mut removals = Vec::new();
    let mut start = open + 1;
    for part in chars[open + 1..close].split(|&c| c == ',') {
        if part.is_empty() {
            return Err(PatternError::new(start, "empty item in `[...]`"));
        }
        let (remove, body, body_start) = match part.split_first() {
            Some(('!', rest)) => (true, rest, start + 1),
            _ => (false, part, start),
        };
        let (lo, hi, render) = parse_item(body, body_start)?;
        if remove {
            removals.push((lo, hi));
        } else {
            includes.push(Include { lo, hi, render });
        }
        start += part.len() + 1;
    }

    removals.sort_unstable();
    let removals = merge(removals);
    let count: u128 = includes
        .iter()
        .map(|inc| span(inc.lo, inc.hi) - overlap(&removals, inc.lo, inc.hi))
        .sum();
    if count == 0 {
        return Err(PatternError::new(
            open,
            "nothing is left in `[...]` once its removals are applied",
        ));
    }
    Ok(Segment::Brackets {
        offset: open,
        includes,
        removals,
        count,
    })
}

/// Parses `N` or `N-M` (the part after any `!`) starting at `offset`.
fn parse_item(body: &[char], offset: usize) -> Result<(u64, u64, Render), PatternError> {
    let text: String = body.iter().collect();
    if body.is_empty() {
        return Err(PatternError::new(
            offset,
            "`!` must be followed by a number or range",
        ));
    }
    if let Some(bad) = body.iter().position(|c| !c.is_ascii_digit() && *c != '-') {
        return Err(PatternError::new(
            offset + bad,
            format!(
                "`{text}` is not a number or numeric range; `[...]` holds numbers such as 1-3 \
                 (write names as `{{a,b}}`)"
            ),
        ));
    }
    let Some(dash) = body.iter().position(|&c| c == '-') else {
        let value = parse_number(body, offset)?;
        return Ok((value, value, Render::Text(text)));
    };
    let (lo_digits, hi_digits) = (&body[..dash], &body[dash + 1..]);
    if lo_digits.is_empty() {
        return Err(PatternError::new(
            offset,
            format!("range `{text}` is missing its start number"),
        ));
    }
    if hi_digits.is_empty() {
        return Err(PatternError::new(
            offset + dash + 1,
            format!("range `{text}` is missing its end number"),
        ));
    }
    if let Some(extra) = hi_digits.iter().position(|&c| c == '-') {
        return Err(PatternError::new(
            offset + dash + 1 + extra,
            format!("range `{text}` has more than one `-`"),
        ));
    }
    let lo = parse_number(lo_digits, offset)?;
    let hi = parse_number(hi_digits, offset + dash + 1)?;
    if lo > hi {
        let lo_text: String = lo_digits.iter().collect();
        let hi_text: String = hi_digits.iter().collect();
        return Err(PatternError::new(
            offset,
            format!("range {lo_text}-{hi_text} goes backwards; write {hi_text}-{lo_text}"),
        ));
    }
    // Perl Pogo's rule: equal-width ends mean the width is intended.
    let width = if lo_digits.len() == hi_digits.len() {
        lo_digits.len()
    } else {
        0
    };
    Ok((lo, hi, Render::Padded(width)))
}

fn parse_number(digits: &[char], offset: usize) -> Result<u64, PatternError> {
    let mut value: u64 = 0;
    for &c in digits {
        let digit = u64::from(c.to_digit(10).unwrap_or(0));
        value = match value.checked_mul(10).and_then(|v| v.checked_add(digit)) {
            Some(v) => v,
            None => {
                let text: String = digits.iter().collect();
                return Err(PatternError::new(
                    offset,
                    format!(
                        "number {text} is too large; the largest allowed is {}",
                        u64::MAX
                    ),
                ));
            }
        };
    }
    Ok(value)
}

/// Number of values in `lo..=hi`; u128 because `0-u64::MAX` has 2^64.
fn span(lo: u64, hi: u64) -> u128 {
    u128::from(hi - lo) + 1
}

/// Merges sorted intervals, joining ones that overlap or touch.
fn merge(sorted: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// How many values of `lo..=hi` the merged `removals` cover.
fn overlap(removals: &[(u64, u64)], lo: u64, hi: u64) -> u128 {
    removals
        .iter()
        .filter(|&&(r_lo, r_hi)| r_lo <= hi && r_hi >= lo)
        .map(|&(r_lo, r_hi)| span(r_lo.max(lo), r_hi.min(hi)))
        .sum()
}

/// Total hosts before deduplication, refused when over the limit. Counts
/// in u128 with checked arithmetic so absurd patterns fail fast instead of
/// overflowing or allocating.
fn check_size(alternatives: &[Alternative]) -> Result<usize, PatternError> {
    let mut total: Option<u128> = Some(0);
    let mut first_over: Option<usize> = None;
    let mut largest: Option<(u128, usize)> = None;
    for alternative in alternatives {
        let mut product: Option<u128> = Some(1);
        for (count, offset) in alternative.segments.iter().filter_map(Segment::group_count) {
            product = product.and_then(|p| p.checked_mul(count));
            if largest.is_none_or(|(c, _)| count > c) {
                largest = Some((count, offset));
            }
        }
        total = total.and_then(|t| product.and_then(|p| t.checked_add(p)));
        if first_over.is_none() && total.is_none_or(|t| t > MAX_HOSTS_PER_PATTERN as u128) {
            first_over = Some(alternative.offset);
        }
    }
    match (total, first_over) {
        (Some(t), None) => Ok(usize::try_from(t).unwrap_or(MAX_HOSTS_PER_PATTERN)),
        (total, over) => {
            // Point at the biggest group, the likeliest typo; a long list
            // of plain names has none, so point where the limit was passed.
            let offset = match largest {
                Some((count, offset)) if count > 1 => offset,
                _ => over.unwrap_or(0),
            };
            let size = match total {
                Some(t) => t.to_string(),
                None => "an uncountable number of".to_string(),
            };
            Err(PatternError::new(
                offset,
                format!(
                    "expands to {size} hosts, more than the {MAX_HOSTS_PER_PATTERN} a pattern \
                     may name; is the range a typo?"
                ),
            ))
        }
    }
}

/// Appends the hosts of one alternative; returns true when they are
/// certainly distinct, so the caller may skip deduplication.
fn expand_alternative(alternative: &Alternative, hosts: &mut Vec<String>) -> bool {
    let groups = groups(alternative);
    each_host(alternative, &groups, &mut |host| {
        hosts.push(host.to_string())
    });
    certainly_distinct(&groups)
}

/// The values of each group of an alternative, materialised once (each is at most the
/// checked total).
fn groups(alternative: &Alternative) -> Vec<Values> {
    alternative
        .segments
        .iter()
        .filter_map(|segment| match segment {
            Segment::Literal(_) => None,
            Segment::Braces { options, .. } => Some(brace_values(options)),
            Segment::Brackets {
                includes,
                removals,
                count,
                ..
            } => Some(bracket_values(includes, removals, *count)),
        })
        .collect()
}

/// Calls `each` with the hosts of one alternative, built in one buffer: its groups combined
/// like an odometer whose leftmost wheel turns fastest.
fn each_host(alternative: &Alternative, groups: &[Values], each: &mut impl FnMut(&str)) {
    let literal_len: usize = alternative
        .segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => text.len(),
            _ => 0,
        })
        .sum();
    let capacity = literal_len + groups.iter().map(|g| g.max_len).sum::<usize>();

    let mut wheel = vec![0usize; groups.len()];
    let mut host = String::with_capacity(capacity);
    'hosts: loop {
        host.clear();
        let mut group = 0;
        for segment in &alternative.segments {
            if let Segment::Literal(text) = segment {
                host.push_str(text);
            } else {
                host.push_str(groups[group].get(wheel[group]));
                group += 1;
            }
        }
        each(&host);

        for (turn, values) in wheel.iter_mut().zip(groups) {
            *turn += 1;
            if *turn < values.len() {
                continue 'hosts;
            }
            *turn = 0;
        }
        break;
    }
}

/// Whether the hosts of an alternative with these groups are certainly distinct, so that
/// deduplication may be skipped. Distinct values per group do not make distinct hosts by
/// themselves (`{a,ab}{bc,c}` gives `abc` twice), but they do when at most one group varies
/// in length: every other boundary is then fixed.
fn certainly_distinct(groups: &[Values]) -> bool {
    groups.iter().all(|g| g.distinct)
        && groups.iter().filter(|g| g.min_len != g.max_len).count() <= 1
}

/// The values of one group in a single buffer, so a 100_000-value range
/// costs one allocation rather than one per value.
struct Values {
    text: String,
    ends: Vec<usize>,
    min_len: usize,
    max_len: usize,
    /// Known to hold no repeated value (false means "not known").
    distinct: bool,
}

impl Values {
    fn with_capacity(values: usize, bytes: usize, distinct: bool) -> Self {
        Values {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(values),
            min_len: usize::MAX,
            max_len: 0,
            distinct,
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }

    fn get(&self, i: usize) -> &str {
        &self.text[self.start(i)..self.ends[i]]
    }

    /// Marks the end of a value pushed onto `text`.
    fn finish_value(&mut self) {
        let len = self.text.len() - self.start(self.ends.len());
        self.min_len = self.min_len.min(len);
        self.max_len = self.max_len.max(len);
        self.ends.push(self.text.len());
    }
}

fn brace_values(options: &[String]) -> Values {
    let distinct = options.iter().collect::<HashSet<_>>().len() == options.len();
    let bytes = options.iter().map(String::len).sum();
    let mut values = Values::with_capacity(options.len(), bytes, distinct);
    for option in options {
        values.text.push_str(option);
        values.finish_value();
    }
    values
}

/// The longest value a bracket group renders, in bytes.
fn widest(includes: &[Include]) -> usize {
    includes
        .iter()
        .map(|inc| match &inc.render {
            Render::Text(text) => text.len(),
            Render::Padded(width) => (*width).max(decimal_len(inc.hi)),
        })
        .max()
        .unwrap_or(0)
}

fn bracket_values(includes: &[Include], removals: &[(u64, u64)], count: u128) -> Values {
    // Distinct numbers always render differently, so non-overlapping
    // ranges give distinct values.
    let mut spans: Vec<(u64, u64)> = includes.iter().map(|inc| (inc.lo, inc.hi)).collect();
    spans.sort_unstable();
    let distinct = spans.windows(2).all(|w| w[0].1 < w[1].0);

    let count = usize::try_from(count).unwrap_or(0);
    let widest = widest(includes);
    let mut values = Values::with_capacity(count, count.saturating_mul(widest), distinct);
    for include in includes {
        let mut v = include.lo;
        loop {
            // Jump over a whole removed interval rather than stepping
            // through it: `[0-18446744073709551615,!1-18446744073709551614]`
            // names only two hosts.
            let j = removals.partition_point(|&(_, r_hi)| r_hi < v);
            match removals.get(j) {
                Some(&(r_lo, r_hi)) if r_lo <= v => {
                    if r_hi >= include.hi {
                        break;
                    }
                    v = r_hi + 1;
                    continue;
                }
                _ => {}
            }
            match &include.render {
                Render::Text(text) => values.text.push_str(text),
                Render::Padded(width) => push_number(&mut values.text, v, *width),
            }
            values.finish_value();
            if v == include.hi {
                break;
            }
            v += 1;
        }
    }
    values
}

fn decimal_len(mut v: u64) -> usize {
    let mut len = 1;
    while v >= 10 {
        v /= 10;
        len += 1;
    }
    len
}

/// Writes `v` zero padded to `width`; by hand because `format!` costs
/// several times more in the 100_000-host case.
fn push_number(out: &mut String, mut v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut first = digits.len();
    loop {
        first -= 1;
        digits[first] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in digits.len() - first..width {
        out.push('0');
    }
    out.extend(digits[first..].iter().map(|&d| char::from(d)));
}

fn dedupe(hosts: &mut Vec<String>) {
    let keep: Vec<bool> = {
        let mut seen: HashSet<&str, BuildHasherDefault<Fnv1a>> =
            HashSet::with_capacity_and_hasher(hosts.len(), BuildHasherDefault::default());
        hosts.iter().map(|h| seen.insert(h.as_str())).collect()
    };
    if keep.iter().all(|&k| k) {
        return;
    }
    let mut keep = keep.into_iter();
    hosts.retain(|_| keep.next().unwrap_or(true));
}

/// FNV-1a: several times faster than the default SipHash on short host
/// names, and flooding resistance is moot for a user's own pattern.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn ok(pattern: &str) -> Vec<String> {
        match expand(pattern) {
            Ok(hosts) => hosts,
            Err(e) => panic!("{pattern:?} failed: {e} at {}", e.offset),
        }
    }

    fn hosts(list: &str) -> Vec<String> {
        list.split_whitespace().map(str::to_string).collect()
    }

    fn err(pattern: &str, fragment: &str, offset: usize) {
        match expand(pattern) {
            Ok(hosts) => panic!("{pattern:?} expanded to {hosts:?}; wanted an error"),
            Err(e) => {
                assert!(
                    e.message.contains(fragment),
                    "{pattern:?}: message {:?} lacks {fragment:?}",
                    e.message
                );
                assert_eq!(e.offset, offset, "{pattern:?}: {}", e.message);
                assert_eq!(e.to_string(), e.message);
                assert!(!e.message.contains(&format!("`{pattern}`")));
            }
        }
    }

    #[test]
    fn plain_names_are_their_own_expansion() {
        for name in ["web01", "db-e1.example.com", "h1#2", "ä"] {
            assert!(is_plain_name(name), "{name}");
            assert_eq!(expand(name).unwrap(), [name]);
        }
        for not_plain in ["", "web[1-2]", "a,b", "x{a}", "a b", "a\tb"] {
            assert!(!is_plain_name(not_plain), "{not_plain:?}");
        }
    }

    #[test]
    fn table_rows() {
        assert_eq!(ok("host[1-3]"), hosts("host1 host2 host3"));
        assert_eq!(ok("host[1-3,5,9]"), hosts("host1 host2 host3 host5 host9"));
        assert_eq!(ok("host[1-5,!3]"), hosts("host1 host2 host4 host5"));
        assert_eq!(ok("host[08-10]"), hosts("host08 host09 host10"));
        assert_eq!(ok("host{dev,prod}"), hosts("hostdev hostprod"));
        assert_eq!(ok("web{,-canary}"), hosts("web web-canary"));
        assert_eq!(ok("a[1-2]b[3-4]"), hosts("a1b3 a2b3 a1b4 a2b4"));
        assert_eq!(ok("h[1-2],db1"), hosts("h1 h2 db1"));
    }

    #[test]
    fn removals_apply_wherever_they_appear() {
        assert_eq!(ok("h[!3,1-5]"), hosts("h1 h2 h4 h5"));
        assert_eq!(ok("h[1-10,!2-8]"), hosts("h1 h9 h10"));
        assert_eq!(ok("h[!2-3,1-5,!5]"), hosts("h1 h4"));
        // Removal compares values, not text.
        assert_eq!(ok("h[08-10,!9]"), hosts("h08 h10"));
        // Removing something absent is harmless.
        assert_eq!(ok("h[1-2,!7]"), hosts("h1 h2"));
        // A huge range with a huge hole is cheap.
        assert_eq!(
            ok("h[0-18446744073709551615,!1-18446744073709551614]"),
            hosts("h0 h18446744073709551615")
        );
    }

    #[test]
    fn single_host_patterns() {
        assert_eq!(ok("host[1]"), hosts("host1"));
        assert_eq!(ok("host{a}"), hosts("hosta"));
        assert_eq!(ok("host[3-3]"), hosts("host3"));
        assert_eq!(ok("web1.example.com"), hosts("web1.example.com"));
        assert_eq!(ok("a-b!c"), hosts("a-b!c"));
    }

    #[test]
    fn zero_padding() {
        assert_eq!(ok("h[8-10]"), hosts("h8 h9 h10"));
        assert_eq!(ok("h[008-010]"), hosts("h008 h009 h010"));
        assert_eq!(ok("h[08]"), hosts("h08"));
        assert_eq!(ok("h[1-05]"), hosts("h1 h2 h3 h4 h5"));
        assert_eq!(ok("h[098-101]"), hosts("h098 h099 h100 h101"));
        assert_eq!(ok("h[07,8-9]"), hosts("h07 h8 h9"));
    }

    #[test]
    fn duplicates_keep_the_first() {
        assert_eq!(ok("h[1-3,2]"), hosts("h1 h2 h3"));
        assert_eq!(ok("h[3,1-3]"), hosts("h3 h1 h2"));
        assert_eq!(ok("a,b,a"), hosts("a b"));
        assert_eq!(ok("h{a,a}"), hosts("ha"));
        assert_eq!(ok("{a,ab}{bc,c}"), hosts("abc abbc ac"));
        assert_eq!(ok("[1,12][3,23]"), hosts("13 123 1223"));
        assert_eq!(ok("h[1-3,2-4]"), hosts("h1 h2 h3 h4"));
        assert_eq!(ok("h[1-2]{a,a}"), hosts("h1a h2a"));
        assert_eq!(ok("web{,}"), hosts("web"));
        assert_eq!(ok("h[1-2],h1,h[2-3]"), hosts("h1 h2 h3"));
    }

    #[test]
    fn other_combinations() {
        assert_eq!(ok("{a,b}[1-2]"), hosts("a1 b1 a2 b2"));
        assert_eq!(ok("[1-2]"), hosts("1 2"));
        assert_eq!(
            ok("db{1,2}.{east,west}"),
            hosts("db1.east db2.east db1.west db2.west")
        );
        assert_eq!(ok("ünï[1-2]"), hosts("ünï1 ünï2"));
    }

    #[test]
    fn is_pattern_detects_syntax() {
        for p in ["h[1-3]", "h{a,b}", "a,b", "h]", "}", "["] {
            assert!(is_pattern(p), "{p}");
        }
        for p in ["host1", "web-01.example.com", "", "a!b", "a-b"] {
            assert!(!is_pattern(p), "{p}");
        }
    }

    #[test]
    fn non_numeric_range() {
        err("host[a-c]", "is not a number or numeric range", 5);
        err("host[1-c]", "`1-c` is not a number", 7);
        err("host[1,x]", "(write names as `{a,b}`)", 7);
        err("host[!a]", "`a` is not a number", 6);
        err("host[١]", "is not a number", 5);
    }

    #[test]
    fn unclosed_groups() {
        err("host[3-1", "unclosed `[`", 4);
        err("host{a,b", "unclosed `{`", 4);
        err("ä[1", "unclosed `[`", 1);
    }

    #[test]
    fn stray_closers() {
        err("host]", "stray `]`", 4);
        err("host}", "stray `}`", 4);
        err("a[1]]", "stray `]`", 4);
        err("h[1-2}", "`}` does not close the `[`", 5);
        err("h{a]", "`]` does not close the `{`", 3);
    }

    #[test]
    fn empty_groups_and_items() {
        err("host[]", "empty brackets `[]`", 4);
        err("host{}", "empty braces `{}`", 4);
        err("h[1,,2]", "empty item", 4);
        err("h[,1]", "empty item", 2);
        err("h[1,]", "empty item", 4);
        err("h[!]", "`!` must be followed", 3);
        err("h[1-]", "missing its end number", 4);
        err("h[-3]", "missing its start number", 2);
        err("h[1-2-3]", "more than one `-`", 5);
    }

    #[test]
    fn backwards_range() {
        err("host[3-1]", "range 3-1 goes backwards; write 1-3", 5);
        err("h[1,10-08]", "range 10-08 goes backwards; write 08-10", 4);
        err("h[1-5,!4-2]", "range 4-2 goes backwards", 7);
    }

    #[test]
    fn whitespace_and_control_characters() {
        err("host 1", "whitespace is not allowed", 4);
        err(" host", "whitespace", 0);
        err("host\t", "whitespace", 4);
        err("h[1, 2]", "whitespace", 4);
        err("a, b", "whitespace", 2);
        err("é\u{a0}", "whitespace", 1);
        err("h\u{7}", "control character U+0007", 1);
        err("h\0", "control character U+0000", 1);
    }

    #[test]
    fn empty_pattern_and_alternatives() {
        err("", "empty pattern", 0);
        err("a,,b", "empty alternative between two commas", 2);
        err("a,", "trailing comma", 2);
        err(",a", "before the first comma", 0);
        err(",", "before the first comma", 0);
        err("{,a}", "empty host name", 0);
        err("x,{,}", "empty host name", 2);
    }

    #[test]
    fn removals_leaving_nothing() {
        err("h[1-3,!1-3]", "nothing is left", 1);
        err("h[!1]", "nothing is left", 1);
        err("a,h[5,!2-7]", "nothing is left", 3);
    }

    #[test]
    fn nested_groups() {
        err("h[1[2]]", "nested `[`", 3);
        err("h{a,{b}}", "nested `{`", 4);
        err("h{a,[1-2]}", "nested `[`", 4);
        err("h[{1}]", "nested `{`", 2);
    }

    #[test]
    fn size_limit() {
        let hosts = ok("h[1-100000]");
        assert_eq!(hosts.len(), MAX_HOSTS_PER_PATTERN);
        assert_eq!(hosts[0], "h1");
        assert_eq!(hosts[99_999], "h100000");
        assert_eq!(ok("h[1-1000]x[1-100]").len(), MAX_HOSTS_PER_PATTERN);

        err(
            "h[1-100001]",
            "expands to 100001 hosts, more than the 100000 a pattern may name; is the range a typo?",
            1,
        );
        err("h[1-100000],x", "expands to 100001 hosts", 1);
        err("a[1-1000]b[1-101]", "expands to 101000 hosts", 1);
        err(
            "h[0-18446744073709551615]",
            "expands to 18446744073709551616 hosts",
            1,
        );
        let uncountable = "[0-18446744073709551615]".repeat(3);
        err(&uncountable, "uncountable number of hosts", 0);

        let names = vec!["a"; MAX_HOSTS_PER_PATTERN + 1].join(",");
        err(&names, "expands to 100001 hosts", 200_000);
    }

    #[test]
    fn huge_numbers_are_refused_quickly() {
        let start = Instant::now();
        err(
            "h[1-99999999999999999999]",
            "number 99999999999999999999 is too large",
            4,
        );
        err("h[18446744073709551616]", "too large", 2);
        err(
            "h[1-18446744073709551615]",
            "expands to 18446744073709551615 hosts",
            1,
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(
            ok("h[18446744073709551615]"),
            hosts("h18446744073709551615")
        );
    }

    #[test]
    fn large_expansion_is_fast() {
        let start = Instant::now();
        let hosts = ok("host[000001-100000]");
        assert_eq!(hosts.len(), 100_000);
        assert_eq!(hosts[41], "host000042");
        // Generous so debug builds pass; release takes a few milliseconds.
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    /// A pattern taken a name at a time gives what `expand` gives, within the bounds it
    /// announces: streamed (one alternative of distinct values) or deduplicated first.
    #[test]
    fn names_one_at_a_time_are_the_expansion() {
        for text in [
            "web[1-3]",
            "a[1-2]b[3-4]",
            "{a,ab}{bc,c}",
            "x[01-10,!5]",
            "h{,-canary}[8-10]",
            "a,b,a",
            "db[1-3],db[2-5]",
            "n[1-3]{a,b}",
            "z[08]",
            "r[1-2,2-3]",
            "plain",
        ] {
            let pattern = Pattern::parse(text).unwrap();
            let mut names = Vec::new();
            pattern.for_each(|name| names.push(name.to_string()));
            assert_eq!(names, expand(text).unwrap(), "{text}");
            assert!(pattern.len_before_dedup() >= names.len(), "{text}");
            let longest = names.iter().map(String::len).max().unwrap();
            assert!(pattern.max_len() >= longest, "{text}");
        }
    }

    /// Small xorshift generator: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let alphabet: Vec<char> = "[]{},-!0123456789ab \té9".chars().collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..50_000 {
            let len = (rng.next() % 24) as usize;
            let pattern: String = (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect();
            match expand(&pattern) {
                Ok(hosts) => {
                    assert!(!hosts.is_empty(), "{pattern:?}");
                    assert!(hosts.len() <= MAX_HOSTS_PER_PATTERN, "{pattern:?}");
                    let unique: HashSet<&String> = hosts.iter().collect();
                    assert_eq!(unique.len(), hosts.len(), "{pattern:?}");
                    for host in &hosts {
                        assert!(!host.is_empty(), "{pattern:?}");
                        assert!(!is_pattern(host), "{pattern:?} gave {host:?}");
                        assert!(!host.chars().any(char::is_whitespace), "{pattern:?}");
                    }
                    if !is_pattern(&pattern) {
                        assert_eq!(hosts, vec![pattern.clone()]);
                    }
                }
                Err(e) => {
                    assert!(e.offset <= pattern.chars().count(), "{pattern:?}: {e:?}");
                    assert!(!e.message.is_empty());
                }
            }
        }
    }
}
