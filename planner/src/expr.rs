//! Tag expressions (`$colo.one`, `$frontend.$colo.east`) and host items (a host, a pattern,
//! or a tag expression), as tags, sequence steps and targets write them.

use crate::diag::{Diagnostic, Span};
use crate::hosts::{dedup_list_in_order, HostId, HostSet, HostTable};
use crate::pattern;

/// `$a` or `$a.$b` (AND): the hosts in every term's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagExpr {
    /// As written, `$` included.
    pub text: String,
    /// Tag paths, without `$`.
    pub terms: Vec<String>,
    /// Where it is written, for errors about it.
    pub span: Option<Span>,
}

impl TagExpr {
    /// Parses `$a`, `$a.b` (sub-tag `b` of `a`) or `$a.$b` (AND). The error is a fragment.
    pub fn parse(text: &str) -> Result<TagExpr, String> {
        let Some(body) = text.strip_prefix('$') else {
            return Err("a tag expression starts with `$`".to_string());
        };
        let mut terms = Vec::new();
        for term in body.split(".$") {
            check_tag_name(term)?;
            terms.push(term.to_string());
        }
        Ok(TagExpr {
            text: text.to_string(),
            terms,
            span: None,
        })
    }

    pub fn at(mut self, span: Span) -> TagExpr {
        self.span = Some(span);
        self
    }

    /// `self AND other`, written `$self.$other`, located where `other` is written.
    pub fn and(&self, other: &TagExpr) -> TagExpr {
        TagExpr {
            text: format!("{}.{}", self.text, other.text),
            terms: self.terms.iter().chain(&other.terms).cloned().collect(),
            span: other.span.clone(),
        }
    }
}

/// Checks a dotted tag path. The error is a fragment.
pub fn check_tag_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the tag name is missing".to_string());
    }
    for segment in name.split('.') {
        if segment.is_empty() {
            return Err("a dotted tag name has an empty part".to_string());
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '+')))
        {
            return Err(format!(
                "`{c}` cannot be part of a tag name; use letters, digits, `_` and `-`"
            ));
        }
    }
    Ok(())
}

/// One entry of a host list: hosts (a name or an expanded pattern), a tag expression, or an
/// exclusion of either (`!web3`, `!web[1-4]`, `!$role.db`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostItem {
    Hosts(Vec<HostId>),
    Tag(TagExpr),
    Except(Exclusion),
}

/// `!ENTRY` in a host list: hosts subtracted from the list's inclusions, whatever their order
/// (Ansible's `:!` rule). Host names are kept as text and looked up when the list is
/// evaluated, so that an exclusion never adds a host to the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// As written, `!` included.
    pub text: String,
    pub what: Excluded,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Excluded {
    Names(Vec<String>),
    Tag(TagExpr),
}

/// The hosts a host list names: its inclusions in order, each once, less its exclusions.
pub struct Listed {
    pub hosts: Vec<HostId>,
    /// Warnings for exclusions that removed nothing, with their place.
    pub unused: Vec<String>,
}

/// Evaluates `items`: `base` gives the inclusions when the list holds only exclusions (every
/// host of the config, for targets; lists that may not start from everything refuse such a
/// list before), `eval` the hosts of a tag expression.
pub fn evaluate<'a>(
    items: impl IntoIterator<Item = &'a HostItem>,
    hosts: &HostTable,
    base: impl FnOnce() -> Vec<HostId>,
    mut eval: impl FnMut(&TagExpr) -> Vec<HostId>,
) -> Listed {
    let mut included = Vec::new();
    let mut any_inclusion = false;
    let mut exclusions = Vec::new();
    for item in items {
        match item {
            HostItem::Hosts(ids) => {
                any_inclusion = true;
                included.extend_from_slice(ids);
            }
            HostItem::Tag(expr) => {
                any_inclusion = true;
                included.extend(eval(expr));
            }
            HostItem::Except(exclusion) => exclusions.push(exclusion),
        }
    }
    if !any_inclusion && !exclusions.is_empty() {
        included = base();
    }
    let mut included = dedup_list_in_order(included, hosts.len());
    let mut unused = Vec::new();
    if !exclusions.is_empty() {
        // One pass over the inclusions, whatever the number of exclusions.
        let listed = HostSet::of(&included, hosts.len());
        let mut removed = HostSet::with_capacity(hosts.len());
        for exclusion in exclusions {
            let ids: Vec<HostId> = match &exclusion.what {
                Excluded::Names(names) => names.iter().filter_map(|n| hosts.get(n)).collect(),
                Excluded::Tag(expr) => eval(expr),
            };
            if !ids.iter().any(|&h| listed.contains(h)) {
                unused.push(format!(
                    "{}: exclusion `{}` removes no host{}",
                    exclusion.span.location(),
                    cut(&exclusion.text),
                    if ids.is_empty() {
                        ": it names none"
                    } else {
                        ": none of its hosts is in the list"
                    }
                ));
            }
            for h in ids {
                removed.insert(h);
            }
        }
        included.retain(|&h| !removed.contains(h));
    }
    Listed {
        hosts: included,
        unused,
    }
}

/// `text`, cut to a length a message can quote.
pub(crate) fn cut(text: &str) -> String {
    if text.chars().count() > 80 {
        format!("{}...", text.chars().take(80).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Checks one host name as the config or targets give it, after expansion: the host-name rule
/// of every host in pogo, and no `!` (which only starts an exclusion). The error is a fragment.
pub fn check_host_name(name: &str) -> Result<(), String> {
    if let Some(problem) = pogo_model::host_name_problem(name) {
        return Err(problem);
    }
    if name.contains('!') {
        return Err(
            "a `!` in a host name is refused: `!` starts an exclusion, first in an entry \
             (`!web3`, `!$role.db`)"
                .to_string(),
        );
    }
    Ok(())
}

/// The part of `span` (the span of an item's whole text) that covers `len` characters from
/// `offset`, when the text sits on one line; otherwise the whole span. `quoted` shifts past
/// the opening quote.
fn narrow(span: &Span, offset: usize, len: usize, quoted: bool) -> Span {
    let shift = usize::from(quoted);
    if offset + len + shift <= span.width {
        Span {
            source: span.source.clone(),
            pos: crate::yaml::Pos {
                line: span.pos.line,
                col: span.pos.col + offset + shift,
            },
            width: len.max(1),
        }
    } else {
        span.clone()
    }
}

impl HostItem {
    /// Parses a comma list of host names, patterns and `$tag` expressions, interning hosts.
    /// Commas inside `[...]` and `{...}` belong to a pattern. `span` is where `text` is
    /// written (`quoted` when in quotes): tag expressions and errors point into it.
    pub fn parse_list(
        text: &str,
        hosts: &mut HostTable,
        span: &Span,
        quoted: bool,
    ) -> Result<Vec<HostItem>, Diagnostic> {
        let mut items = Vec::new();
        for (offset, part) in split_top_level(text) {
            let len = part.chars().count();
            if part.is_empty() {
                let (message, help, offset) = if text.trim().is_empty() {
                    (
                        "empty host name".to_string(),
                        "write a host name, a host pattern or a `$tag`",
                        0,
                    )
                } else {
                    (
                        format!("empty entry in the list `{}`", cut(text)),
                        "remove the extra comma",
                        offset,
                    )
                };
                return Err(
                    Diagnostic::at(narrow(span, offset, 1, quoted), message).with_help(help)
                );
            }
            if let Some(rest) = part.strip_prefix('!') {
                let at = narrow(span, offset, len, quoted);
                let what = if rest.is_empty() || rest.starts_with('!') {
                    return Err(
                        Diagnostic::at(at, format!("invalid exclusion `{}`", cut(part))).with_help(
                            "an exclusion is `!` and what it removes: `!web3`, `!web[1-4]`, \
                         `!$role.db`",
                        ),
                    );
                } else if rest.starts_with('$') {
                    Excluded::Tag(
                        TagExpr::parse(rest)
                            .map_err(|message| {
                                Diagnostic::at(
                                    at.clone(),
                                    format!("invalid tag expression `{}`: {message}", cut(rest)),
                                )
                            })?
                            .at(narrow(span, offset + 1, len - 1, quoted)),
                    )
                } else {
                    let names = pattern::expand(rest).map_err(|e| {
                        Diagnostic::at(
                            narrow(span, offset + 1 + e.offset, 1, quoted),
                            format!("invalid host pattern `{}`: {}", cut(rest), e.message),
                        )
                    })?;
                    for name in &names {
                        check_host_name(name).map_err(|problem| {
                            Diagnostic::at(
                                at.clone(),
                                format!("invalid host name `{}`: {problem}", cut(name)),
                            )
                        })?;
                    }
                    Excluded::Names(names)
                };
                items.push(HostItem::Except(Exclusion {
                    text: part.to_string(),
                    what,
                    span: at,
                }));
                continue;
            }
            if part.starts_with('$') {
                let expr = TagExpr::parse(part).map_err(|message| {
                    Diagnostic::at(
                        narrow(span, offset, len, quoted),
                        format!("invalid tag expression `{}`: {message}", cut(part)),
                    )
                })?;
                items.push(HostItem::Tag(expr.at(narrow(span, offset, len, quoted))));
                continue;
            }
            let bad_name = |name: &str, problem: String| {
                Diagnostic::at(
                    narrow(span, offset, len, quoted),
                    format!("invalid host name `{}`: {problem}", cut(name)),
                )
            };
            if pattern::is_plain_name(part) {
                // Explicit lists of big fleets are mostly plain names: no expansion needed.
                check_host_name(part).map_err(|problem| bad_name(part, problem))?;
                items.push(HostItem::Hosts(vec![hosts.intern(part)]));
                continue;
            }
            let pattern = pattern::Pattern::parse(part).map_err(|e| {
                Diagnostic::at(
                    narrow(span, offset + e.offset, 1, quoted),
                    format!("invalid host pattern `{}`: {}", cut(part), e.message),
                )
            })?;
            // Each name is checked and interned as it is made, with no `String` of its own:
            // a big fleet's patterns are most of its names. After a bad name the config has
            // an error, and neither it nor its host table is used.
            let mut ids = Vec::with_capacity(pattern.len_before_dedup());
            let mut bad = None;
            hosts.reserve(pattern.len_before_dedup(), pattern.max_len());
            pattern.for_each(|name| {
                if bad.is_none() {
                    match check_host_name(name) {
                        Ok(()) => ids.push(hosts.intern(name)),
                        Err(problem) => bad = Some(bad_name(name, problem)),
                    }
                }
            });
            if let Some(diagnostic) = bad {
                return Err(diagnostic);
            }
            items.push(HostItem::Hosts(ids));
        }
        Ok(items)
    }
}

/// Splits at commas outside brackets and braces, with each part's character offset. Blanks
/// around an entry are dropped (`a, b` is a natural way to write a list); blanks inside one
/// stay, and the pattern check refuses them.
fn split_top_level(text: &str) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    let (mut depth, mut start_byte, mut start_char) = (0i32, 0usize, 0usize);
    for (chars, (byte, c)) in text.char_indices().enumerate() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(trim_entry(start_char, &text[start_byte..byte]));
                start_byte = byte + 1;
                start_char = chars + 1;
            }
            _ => {}
        }
    }
    parts.push(trim_entry(start_char, &text[start_byte..]));
    parts
}

fn trim_entry(offset: usize, part: &str) -> (usize, &str) {
    let trimmed = part.trim_start();
    let leading = part[..part.len() - trimmed.len()].chars().count();
    (offset + leading, trimmed.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Source;

    fn parse(text: &str, hosts: &mut HostTable) -> Result<Vec<HostItem>, Diagnostic> {
        let source = Source::file("t.cfg", text);
        let span = Span::new(
            &source,
            crate::yaml::Pos { line: 1, col: 1 },
            text.chars().count(),
        );
        HostItem::parse_list(text, hosts, &span, false)
    }

    #[test]
    fn and_expression_splits_at_dollar_terms_only() {
        let expr = TagExpr::parse("$frontend.$colo.north_america").unwrap();
        assert_eq!(expr.terms, ["frontend", "colo.north_america"]);
        let expr = TagExpr::parse("$colo.north_america").unwrap();
        assert_eq!(expr.terms, ["colo.north_america"]);
    }

    #[test]
    fn malformed_expressions_are_refused() {
        assert!(TagExpr::parse("$").is_err());
        assert!(TagExpr::parse("$a.$").is_err());
        assert!(TagExpr::parse("$a..b").is_err());
        assert!(TagExpr::parse("$a b").is_err());
        assert!(TagExpr::parse("a").is_err());
    }

    #[test]
    fn lists_split_outside_brackets_only() {
        let mut hosts = HostTable::default();
        let items = parse("h[1-2,5],$db,x{a,b}", &mut hosts).unwrap();
        assert_eq!(items.len(), 3);
        let names: Vec<&str> = hosts.ids().map(|id| hosts.name(id)).collect();
        assert_eq!(names, ["h1", "h2", "h5", "xa", "xb"]);
        assert!(matches!(&items[1], HostItem::Tag(e) if e.terms == ["db"]));
        // A tag expression in a list points at itself, not at the whole list.
        let HostItem::Tag(expr) = &items[1] else {
            unreachable!()
        };
        let span = expr.span.as_ref().unwrap();
        assert_eq!((span.pos.col, span.width), (10, 3));
    }

    #[test]
    fn blanks_around_list_entries_are_dropped_but_not_inside() {
        let mut hosts = HostTable::default();
        parse("api-e01, api-e02 ,$db", &mut hosts).unwrap();
        assert_eq!(hosts.len(), 2);
        let problem = parse("a, b c", &mut hosts).unwrap_err();
        assert_eq!(problem.span.unwrap().pos.col, 5);
    }

    #[test]
    fn empty_list_entries_point_at_the_gap() {
        let mut hosts = HostTable::default();
        let problem = parse("a,,b", &mut hosts).unwrap_err();
        assert_eq!(problem.span.unwrap().pos.col, 3);
        assert!(problem.message.contains("empty entry"));
    }
}
