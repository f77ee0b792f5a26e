//! Tag expressions (`$colo.one`, `$frontend.$colo.east`) and host items (a host, a pattern,
//! or a tag expression), as tags, sequence steps and targets write them.

use crate::diag::Span;
use crate::hosts::{HostId, HostTable};
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

/// One entry of a host list: hosts (a name or an expanded pattern), or a tag expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostItem {
    Hosts(Vec<HostId>),
    Tag(TagExpr),
}

/// Why a host item is invalid, and where in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemProblem {
    pub message: String,
    /// Character offset of the problem in the item's text, when known.
    pub offset: Option<usize>,
    pub help: Option<String>,
}

impl ItemProblem {
    /// The span of the problem inside a node spanning `node` (a quote shifts it by one).
    pub fn span_in(&self, node: Span, quoted: bool) -> Span {
        match self.offset {
            Some(offset) if offset < node.width => Span {
                pos: crate::yaml::Pos {
                    line: node.pos.line,
                    col: node.pos.col + offset + usize::from(quoted),
                },
                width: 1,
                source: node.source,
            },
            _ => node,
        }
    }
}

impl HostItem {
    /// Parses a comma list of host names, patterns and `$tag` expressions, interning hosts.
    /// Commas inside `[...]` and `{...}` belong to a pattern.
    pub fn parse_list(text: &str, hosts: &mut HostTable) -> Result<Vec<HostItem>, ItemProblem> {
        let mut items = Vec::new();
        for (offset, part) in split_top_level(text) {
            if part.is_empty() {
                return Err(ItemProblem {
                    message: if text.trim().is_empty() {
                        "empty host name".to_string()
                    } else {
                        format!("empty entry in the list `{text}`")
                    },
                    offset: Some(offset),
                    help: Some("remove the extra comma".to_string()),
                });
            }
            if part.starts_with('$') {
                let expr = TagExpr::parse(part).map_err(|message| ItemProblem {
                    message: format!("invalid tag expression `{part}`: {message}"),
                    offset: Some(offset),
                    help: None,
                })?;
                items.push(HostItem::Tag(expr));
                continue;
            }
            let names = pattern::expand(part).map_err(|e| ItemProblem {
                message: format!("invalid host pattern `{part}`: {}", e.message),
                offset: Some(offset + e.offset),
                help: None,
            })?;
            let ids = names.into_iter().map(|n| hosts.intern(n)).collect();
            items.push(HostItem::Hosts(ids));
        }
        Ok(items)
    }
}

/// Splits at commas outside brackets and braces, with each part's character offset.
fn split_top_level(text: &str) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    let (mut depth, mut start_byte, mut start_char) = (0i32, 0usize, 0usize);
    for (chars, (byte, c)) in text.char_indices().enumerate() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push((start_char, &text[start_byte..byte]));
                start_byte = byte + 1;
                start_char = chars + 1;
            }
            _ => {}
        }
    }
    parts.push((start_char, &text[start_byte..]));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let items = HostItem::parse_list("h[1-2,5],$db,x{a,b}", &mut hosts).unwrap();
        assert_eq!(items.len(), 3);
        let names: Vec<&str> = hosts.ids().map(|id| hosts.name(id)).collect();
        assert_eq!(names, ["h1", "h2", "h5", "xa", "xb"]);
        assert!(matches!(&items[1], HostItem::Tag(e) if e.terms == ["db"]));
    }

    #[test]
    fn empty_list_entries_point_at_the_gap() {
        let mut hosts = HostTable::default();
        let problem = HostItem::parse_list("a,,b", &mut hosts).unwrap_err();
        assert_eq!(problem.offset, Some(2));
        assert!(problem.message.contains("empty entry"));
    }
}
