//! The fleet config: `tag`, `sequence` and `constraint`, read from YAML with positions.
//!
//! Parsing checks the shape of the file and collects every error it finds; meaning (which
//! tags exist, what a reference resolves to) is checked afterwards by [`crate::inventory`],
//! once the whole file is known, because a tag may be referenced before it is defined.

use std::collections::HashMap;
use std::sync::Arc;

use crate::diag::{suggest, Diagnostic, Errors, PlanError, Source, Span};
use crate::expr::{check_host_name, Exclusion, HostItem, TagExpr};
use crate::hosts::{HostId, HostTable};
use crate::resolve::{NoCommands, TagResolver, COMMAND_TAG};
use crate::yaml::{self, Node, Pos, Value};

/// Index of a tag in [`Config::tags`]; 0 is the root, which holds every top-level tag.
pub type TagId = usize;

pub const ROOT: TagId = 0;

/// A parsed config: the tag tree, the sequences and the constraints, before resolution.
#[derive(Debug)]
pub struct Config {
    pub source: Arc<Source>,
    /// Every host the file names, in order of first appearance.
    pub hosts: HostTable,
    pub tags: Vec<Tag>,
    pub tag_index: HashMap<String, TagId>,
    pub threads: Vec<ThreadDef>,
    pub constraints: Vec<ConstraintDef>,
    /// Tags whose hosts came from a command, in document order.
    pub external: Vec<ExternalTag>,
    /// What the config digest covers: the file's text, or the canonical form of an inline
    /// config (so reformatting a plan spec around it does not make plans stale).
    pub digest_input: String,
}

#[derive(Debug)]
pub struct Tag {
    /// Dotted path without `$` (`colo.one`); empty for the root.
    pub path: String,
    /// Members and sub-tags in document order: the order `$tag` resolves in.
    pub items: Vec<TagItem>,
    pub children: Vec<TagId>,
    /// Where the tag's own member list is written, when it has one.
    pub members_at: Option<Span>,
    /// Where the tag is first named.
    pub span: Span,
}

impl Tag {
    /// Whether hosts are listed on the tag itself rather than only on sub-tags.
    pub fn has_own_members(&self) -> bool {
        self.items.iter().any(|i| !matches!(i, TagItem::Child(_)))
    }
}

/// One entry of a tag's members. Boxed where large, so that the item of a plain host is 8
/// bytes: a million-host fleet lists two million of them (unboxed, each took the size of a tag
/// expression, over 100 bytes).
#[derive(Debug)]
pub enum TagItem {
    /// Hosts named one after another: a pattern's expansion, a run of plain names (never
    /// empty).
    Hosts(Vec<HostId>),
    Child(TagId),
    /// `$other` or `$a.$b` inside a tag: its members, resolved once the whole file is read.
    Ref(Box<TagExpr>),
    /// `!host`, `!pattern` or `!$tag`: subtracted from the tag's members once they are all in.
    Except(Box<Exclusion>),
}

/// A tag resolved by running a command, and what the command printed.
#[derive(Debug)]
pub struct ExternalTag {
    pub tag: TagId,
    pub command: String,
    pub hosts: Vec<HostId>,
}

#[derive(Debug)]
pub struct ThreadDef {
    pub name: String,
    pub span: Span,
    pub filter: Option<TagExpr>,
    pub steps: Vec<StepDef>,
}

#[derive(Debug)]
pub struct StepDef {
    /// The step as written (a list step is its items joined with `,`; an empty one is `[]`).
    pub text: String,
    pub span: Span,
    pub items: Vec<HostItem>,
}

#[derive(Debug)]
pub struct ConstraintDef {
    /// The AND of every key on the way down (`$frontend.$colo.north_america`).
    pub expr: TagExpr,
    pub limit: Limit,
    /// The `max_parallel` value.
    pub span: Span,
}

/// `max_parallel` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Count(u64),
    Percent(u32),
}

impl Limit {
    /// Resolves against `base`: a percentage rounds down and never goes below 1.
    pub fn resolve(self, base: u64) -> pogo_model::Amount {
        match self {
            Limit::Count(n) => pogo_model::Amount::number(n),
            Limit::Percent(p) => pogo_model::Amount {
                value: (base * u64::from(p) / 100).max(1),
                percent: Some(p),
                base: Some(base),
            },
        }
    }

    /// Parses `N` or `P%`. The error is a fragment that reads after "max_parallel ".
    pub fn parse(text: &str) -> Result<Limit, String> {
        let text = text.trim();
        if let Some(number) = text.strip_suffix('%') {
            return match number.trim().parse::<i64>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Limit::Percent(p as u32)),
                Ok(p) if p <= 0 => Err(format!(
                    "`{text}` would let no host run; a percentage is from 1% to 100%"
                )),
                Ok(_) => Err(format!("`{text}` is over 100%")),
                // Too many digits for a number is still a number: say what is wrong with it.
                Err(_) => match sign_of_whole_number(number.trim()) {
                    Some(Sign::Plus) => Err(format!("`{text}` is over 100%")),
                    Some(Sign::Minus) => Err(format!(
                        "`{text}` would let no host run; a percentage is from 1% to 100%"
                    )),
                    None => Err(format!(
                        "`{text}` is not a percentage; write a whole number from 1% to 100%"
                    )),
                },
            };
        }
        match text.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Limit::Count(n as u64)),
            Ok(0) => Err("0 would let no host run; the smallest limit is 1".to_string()),
            Ok(n) => Err(format!("{n} is negative; the smallest limit is 1")),
            Err(_) => match sign_of_whole_number(text) {
                Some(Sign::Plus) => Err(format!("`{text}` is too large to be a number of hosts")),
                Some(Sign::Minus) => Err(format!("{text} is negative; the smallest limit is 1")),
                None => Err(format!(
                    "`{text}` is neither a number of hosts (`2`) nor a percentage (`15%`)"
                )),
            },
        }
    }
}

enum Sign {
    Plus,
    Minus,
}

/// The sign of `text` when it is a whole number written in decimal, however long.
fn sign_of_whole_number(text: &str) -> Option<Sign> {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(digits) => (Sign::Minus, digits),
        None => (Sign::Plus, text.strip_prefix('+').unwrap_or(text)),
    };
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(sign)
}

/// The keys at the top level of a config.
pub const TOP_LEVEL_KEYS: [&str; 3] = ["tag", "sequence", "constraint"];

/// The name of the thread a list-form `sequence` makes.
pub const LIST_THREAD_NAME: &str = "main";

impl Config {
    /// Parses config text. `name` is how errors name the file. External tags (`!command`)
    /// are refused; see [`Config::parse_with`].
    pub fn parse(name: &str, text: &str) -> Result<Config, PlanError> {
        Config::parse_with(name, text, &NoCommands)
    }

    /// Parses config text, running external tag commands with `resolver`, in the directory of
    /// the file `name` names.
    pub fn parse_with(
        name: &str,
        text: &str,
        resolver: &dyn TagResolver,
    ) -> Result<Config, PlanError> {
        let source = Source::file(name, text);
        let root = match yaml::parse(text) {
            Ok(root) => root,
            Err(e) => return Err(yaml_error(&source, e).into()),
        };
        let Some(root) = root else {
            return Err(Diagnostic::at(Span::start(&source), "the config is empty")
                .with_help("a config needs at least `tag:`; see docs/config.md")
                .into());
        };
        let dir = std::path::Path::new(name)
            .parent()
            .unwrap_or(std::path::Path::new(""));
        Config::from_node(source, &root, text.to_string(), resolver, dir)
    }

    /// Builds a config from a YAML mapping inside another file (an inline config in a plan
    /// spec). Positions point into that file.
    pub fn from_node(
        source: Arc<Source>,
        root: &Node,
        digest_input: String,
        resolver: &dyn TagResolver,
        dir: &std::path::Path,
    ) -> Result<Config, PlanError> {
        let mut parser = Parser {
            source: Arc::clone(&source),
            resolver,
            dir,
            yaml_tags_used: std::collections::HashSet::new(),
            errors: Errors::default(),
            config: Config {
                hosts: HostTable::default(),
                tags: vec![Tag {
                    path: String::new(),
                    items: Vec::new(),
                    children: Vec::new(),
                    members_at: None,
                    span: parser_span(&source, root),
                }],
                tag_index: HashMap::new(),
                threads: Vec::new(),
                constraints: Vec::new(),
                external: Vec::new(),
                source,
                digest_input,
            },
        };
        parser.top_level(root);
        parser.unknown_yaml_tags(root);
        let Parser { errors, config, .. } = parser;
        errors.finish(config)
    }
}

/// Appends `hosts` to a tag's items: to its last run of hosts when it ends with one (a list
/// of plain names is one run), else as a new run; nothing when there are none.
fn push_hosts(items: &mut Vec<TagItem>, hosts: Vec<HostId>) {
    match items.last_mut() {
        Some(TagItem::Hosts(run)) => run.extend_from_slice(&hosts),
        _ if hosts.is_empty() => {}
        _ => items.push(TagItem::Hosts(hosts)),
    }
}

/// [`push_hosts`] of one host.
fn push_host(items: &mut Vec<TagItem>, host: HostId) {
    match items.last_mut() {
        Some(TagItem::Hosts(run)) => run.push(host),
        _ => items.push(TagItem::Hosts(vec![host])),
    }
}

fn parser_span(source: &Arc<Source>, node: &Node) -> Span {
    Span::new(source, node.pos, node.width)
}

pub(crate) fn yaml_error(source: &Arc<Source>, error: yaml::YamlError) -> Diagnostic {
    let help = flow_hint(&source.text, error.pos, &error.message);
    let diagnostic = Diagnostic::at(
        Span::new(source, error.pos, 1),
        format!("invalid YAML: {}", error.message),
    );
    match help {
        Some(help) => diagnostic.with_help(help),
        None => diagnostic,
    }
}

/// What most likely went wrong when YAML stumbles inside `[...]` or `{...}`: a host pattern
/// whose `[` YAML reads as a nested list, or a list never closed (YAML then notices only at
/// some later `:` or at the end of the file, far from the mistake).
fn flow_hint(text: &str, at: Pos, message: &str) -> Option<String> {
    if !(message.contains("flow") || message.contains("':' indicator")) {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let line = lines.get(at.line.checked_sub(1)?)?;
    let chars: Vec<char> = line.chars().collect();
    let here = chars.get(at.col.checked_sub(1)?).copied();
    let before = at.col.checked_sub(2).and_then(|i| chars.get(i)).copied();
    if here == Some('[') && before.is_some_and(|c| !c.is_whitespace() && !"[{,:".contains(c)) {
        // `[web[1-3], db1]`: YAML reads the pattern's `[` as a list.
        return Some(
            "inside `[...]`, quote host patterns (`[\"web[1-3]\", db1]`) or write a block list \
             with `- `"
                .to_string(),
        );
    }
    let (open_line, open_col, open) = unclosed_flow(&lines, at)?;
    let close = if open == '[' { ']' } else { '}' };
    Some(format!(
        "the `{open}` on line {open_line}, column {open_col} is never closed; add a `{close}` \
         where it ends"
    ))
}

/// The innermost `[` or `{` that opens a flow collection before `at` and is not closed by
/// then, skipping quoted text and comments.
fn unclosed_flow(lines: &[&str], at: Pos) -> Option<(usize, usize, char)> {
    let mut open: Vec<(usize, usize, char)> = Vec::new();
    for (index, line) in lines.iter().enumerate().take(at.line) {
        let number = index + 1;
        let chars: Vec<char> = line.chars().collect();
        let end = if number == at.line {
            at.col.saturating_sub(1).min(chars.len())
        } else {
            chars.len()
        };
        let mut quote: Option<char> = None;
        let mut i = 0;
        while i < end {
            let c = chars[i];
            let previous = i.checked_sub(1).map(|p| chars[p]);
            match quote {
                Some('"') if c == '\\' => i += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\''
                        if previous.is_none_or(|p| p.is_whitespace() || "[{,:".contains(p)) =>
                    {
                        quote = Some(c)
                    }
                    '#' if previous.is_none_or(char::is_whitespace) => break,
                    '[' | '{' => {
                        // Outside a flow collection, `[` opens one only where a value starts.
                        let starts_value = !open.is_empty()
                            || chars[..i]
                                .iter()
                                .rev()
                                .find(|c| !c.is_whitespace())
                                .is_none_or(|p| ":-?".contains(*p));
                        if starts_value {
                            open.push((number, i + 1, c));
                        }
                    }
                    ']' | '}' if !open.is_empty() => {
                        open.pop();
                    }
                    _ => {}
                },
            }
            i += 1;
        }
    }
    open.pop()
}

struct Parser<'r> {
    source: Arc<Source>,
    resolver: &'r dyn TagResolver,
    /// Where external tag commands run: the directory of the config (or spec) file.
    dir: &'r std::path::Path,
    /// Positions of the YAML tags (`!command`) that were understood.
    yaml_tags_used: std::collections::HashSet<Pos>,
    errors: Errors,
    config: Config,
}

impl Parser<'_> {
    fn span(&self, node: &Node) -> Span {
        parser_span(&self.source, node)
    }

    fn error(&mut self, node: &Node, message: impl Into<String>) -> &mut Diagnostic {
        let span = self.span(node);
        self.errors.add(Diagnostic::at(span, message))
    }

    /// The pairs of a mapping whose keys are scalars, reporting other keys and duplicates.
    fn pairs<'n>(
        &mut self,
        map: &'n [(Node, Node)],
        what: &str,
    ) -> Vec<(&'n str, &'n Node, &'n Node)> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut pairs = Vec::with_capacity(map.len());
        for (key, value) in map {
            let Some(text) = key.as_str() else {
                self.error(
                    key,
                    format!("a key in {what} must be a name, not {}", key.kind()),
                );
                continue;
            };
            if let Some(first) = seen.insert(text, key.pos.line) {
                self.error(
                    key,
                    format!("`{text}` appears twice in {what} (first on line {first})"),
                )
                .help = Some("merge the two entries into one".to_string());
                continue;
            }
            pairs.push((text, key, value));
        }
        pairs
    }

    fn top_level(&mut self, root: &Node) {
        let Value::Map(map) = &root.value else {
            self.error(
                root,
                format!(
                    "the config must be a mapping with `tag:`, not {}",
                    root.kind()
                ),
            );
            return;
        };
        let mut has_tag = false;
        for (key, key_node, value) in self.pairs(map, "the config") {
            match key {
                "tag" => {
                    has_tag = true;
                    self.tag_section(value);
                }
                "sequence" => self.sequence_section(value),
                "constraint" => self.constraint_section(value),
                other => {
                    let help = match suggest(other, TOP_LEVEL_KEYS) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "a config has only `tag`, `sequence` and `constraint`".to_string(),
                    };
                    self.error(key_node, format!("unknown key `{other}` in the config"))
                        .help = Some(help);
                }
            }
        }
        if !has_tag {
            self.error(root, "the config has no `tag:` section").help =
                Some("add `tag:` (it may be empty) at the top level".to_string());
        }
    }

    // ---- tags ----

    fn tag_section(&mut self, node: &Node) {
        match &node.value {
            Value::Null => {}
            Value::Map(map) => self.tag_map(map, ROOT),
            _ => {
                self.error(
                    node,
                    format!("`tag` must be a mapping of tag names, not {}", node.kind()),
                );
            }
        }
    }

    fn tag_map(&mut self, map: &[(Node, Node)], parent: TagId) {
        let what = if parent == ROOT {
            "`tag`".to_string()
        } else {
            format!("tag `{}`", self.config.tags[parent].path)
        };
        for (key, key_node, value) in self.pairs(map, &what) {
            let Some(tag) = self.tag_path(key, key_node, parent) else {
                continue;
            };
            if value.tag.as_deref() == Some(COMMAND_TAG) {
                if self.members_written(tag, value) {
                    self.external(tag, value);
                }
                continue;
            }
            match &value.value {
                Value::Map(inner) => self.tag_map(inner, tag),
                Value::Null => {
                    let path = self.config.tags[tag].path.clone();
                    self.error(
                        value_or_key(value, key_node),
                        format!("tag `{path}` is empty"),
                    )
                    .help =
                        Some("list its hosts, or write `[]` for a tag that has none".to_string());
                }
                Value::Scalar(_) => {
                    if self.members_written(tag, value) {
                        self.member(tag, value);
                        self.refuse_only_exclusions(tag, value);
                    }
                }
                Value::Seq(items) => {
                    if self.members_written(tag, value) {
                        for item in items {
                            self.member(tag, item);
                        }
                        self.refuse_only_exclusions(tag, value);
                    }
                }
            }
        }
    }

    /// `tag: !command CMD`: runs the command and takes each line it prints as a member.
    fn external(&mut self, tag: TagId, node: &Node) {
        self.yaml_tags_used.insert(node.pos);
        let path = self.config.tags[tag].path.clone();
        let Some(command) = node.as_str().filter(|c| !c.trim().is_empty()) else {
            self.error(node, format!("`!command` of tag `{path}` needs a command"))
                .help =
                Some("write the command after it: `web: !command inventory list web`".to_string());
            return;
        };
        let output = match self.resolver.run(command, self.dir) {
            Ok(output) => output,
            Err(why) => {
                self.error(node, format!("the command of tag `{path}` {why}"))
                    .help = Some("the command must print one host per line and exit 0".to_string());
                return;
            }
        };
        let mut hosts = Vec::new();
        for (number, line) in output.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let shown = crate::expr::cut(entry);
            let expanded = crate::pattern::expand(entry)
                .map_err(|e| e.message)
                .and_then(
                    |names| match names.iter().find_map(|n| check_host_name(n).err()) {
                        Some(problem) => Err(problem),
                        None => Ok(names),
                    },
                );
            match expanded {
                Ok(_) if entry.starts_with(['$', '!']) => {
                    self.error(
                        node,
                        format!("line {} of the output of tag `{path}`'s command is a tag reference or an exclusion (`{shown}`); it must print hosts", number + 1),
                    );
                    return;
                }
                Ok(names) => hosts.extend(names.iter().map(|n| self.config.hosts.intern(n))),
                Err(problem) => {
                    self.error(
                        node,
                        format!(
                            "line {} of the output of tag `{path}`'s command is not a host: `{shown}`: {problem}",
                            number + 1,
                        ),
                    );
                    return;
                }
            }
        }
        push_hosts(&mut self.config.tags[tag].items, hosts.clone());
        self.config.external.push(ExternalTag {
            tag,
            command: command.to_string(),
            hosts,
        });
    }

    /// YAML tags other than a tag's `!command` are mistakes (or features of other tools).
    fn unknown_yaml_tags(&mut self, node: &Node) {
        if let Some(tag) = &node.tag {
            if !self.yaml_tags_used.contains(&node.pos) {
                let help = if tag == COMMAND_TAG {
                    "`!command` goes on the value of a tag under `tag:`".to_string()
                } else if !tag.starts_with("!!") && matches!(node.value, Value::Null) {
                    format!(
                        "YAML reads an unquoted `!` as a tag; to exclude hosts, quote the \
                         entry: \"{tag}\""
                    )
                } else {
                    "the only YAML tag pogo knows is `!command`, for tags resolved by a command"
                        .to_string()
                };
                self.error(node, format!("unexpected YAML tag `{tag}`"))
                    .help = Some(help);
            }
        }
        match &node.value {
            Value::Seq(items) => items.iter().for_each(|n| self.unknown_yaml_tags(n)),
            Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
                self.unknown_yaml_tags(k);
                self.unknown_yaml_tags(v);
            }),
            Value::Null | Value::Scalar(_) => {}
        }
    }

    /// Finds or creates the tag a (possibly dotted) key names under `parent`.
    fn tag_path(&mut self, key: &str, key_node: &Node, parent: TagId) -> Option<TagId> {
        if key.starts_with('$') {
            self.error(key_node, format!("tag name `{key}` starts with `$`"))
                .help = Some(format!(
                "define tags without `$` (`{}:`) and refer to them with it",
                key.trim_start_matches('$')
            ));
            return None;
        }
        if let Err(message) = crate::expr::check_tag_name(key) {
            self.error(key_node, format!("invalid tag name `{key}`: {message}"));
            return None;
        }
        let mut current = parent;
        for segment in key.split('.') {
            let path = if self.config.tags[current].path.is_empty() {
                segment.to_string()
            } else {
                format!("{}.{segment}", self.config.tags[current].path)
            };
            current = match self.config.tag_index.get(&path) {
                Some(&id) => id,
                None => {
                    let id = self.config.tags.len();
                    self.config.tags.push(Tag {
                        path: path.clone(),
                        items: Vec::new(),
                        children: Vec::new(),
                        members_at: None,
                        span: self.span(key_node),
                    });
                    self.config.tag_index.insert(path, id);
                    self.config.tags[current].children.push(id);
                    self.config.tags[current].items.push(TagItem::Child(id));
                    id
                }
            };
        }
        Some(current)
    }

    /// Records that `tag`'s members are written at `node`; a second list is an error.
    fn members_written(&mut self, tag: TagId, node: &Node) -> bool {
        let span = self.span(node);
        if let Some(first) = &self.config.tags[tag].members_at {
            let message = format!(
                "the hosts of tag `{}` are listed twice (first on line {})",
                self.config.tags[tag].path, first.pos.line
            );
            self.errors
                .push(Diagnostic::at(span, message).with_help("list all its hosts in one place"));
            return false;
        }
        self.config.tags[tag].members_at = Some(span);
        true
    }

    fn member(&mut self, tag: TagId, node: &Node) {
        let path = &self.config.tags[tag].path;
        match &node.value {
            Value::Scalar(text)
                if crate::pattern::is_plain_name(text)
                    && !text.starts_with(['$', '!'])
                    && check_host_name(text).is_ok() =>
            {
                // One plain host name, the bulk of a big explicit list: no list to split.
                let id = self.config.hosts.intern(text);
                push_host(&mut self.config.tags[tag].items, id);
            }
            Value::Scalar(text) => {
                for item in self.host_items(text, node) {
                    match item {
                        HostItem::Hosts(hosts) => {
                            push_hosts(&mut self.config.tags[tag].items, hosts)
                        }
                        HostItem::Tag(expr) => self.config.tags[tag]
                            .items
                            .push(TagItem::Ref(Box::new(expr))),
                        HostItem::Except(exclusion) => self.config.tags[tag]
                            .items
                            .push(TagItem::Except(Box::new(exclusion))),
                    }
                }
            }
            // `- !web2` unquoted is a YAML tag on an empty node: that error says it all.
            Value::Null if node.tag.is_some() => {}
            Value::Null => {
                let message = format!("empty entry in the hosts of tag `{path}`");
                self.error(node, message).help =
                    Some("remove the `-` line or write a host name after it".to_string());
            }
            _ => {
                let message = format!(
                    "the hosts of tag `{path}` must be host names, patterns or `$tag`s, not {}",
                    node.kind()
                );
                self.error(node, message).help = Some(
                    "to nest tags, write a mapping (`one: [host1]`) instead of a list".to_string(),
                );
            }
        }
    }

    /// A tag's list of exclusions alone would have nothing to exclude from.
    fn refuse_only_exclusions(&mut self, tag: TagId, node: &Node) {
        let items = &self.config.tags[tag].items;
        let excludes = items.iter().any(|i| matches!(i, TagItem::Except(_)));
        let includes = items
            .iter()
            .any(|i| matches!(i, TagItem::Hosts(_) | TagItem::Ref(_)));
        if excludes && !includes {
            let path = self.config.tags[tag].path.clone();
            self.error(
                node,
                format!("the hosts of tag `{path}` are only exclusions, so it has none"),
            )
            .help = Some(
                "an exclusion removes hosts from the entries beside it: `[$colo.east, \"!$role.db\"]`"
                    .to_string(),
            );
        }
    }

    /// Host names, host patterns and `$tag` expressions (a comma list), as tags and steps
    /// hold them. Invalid entries are reported and left out.
    fn host_items(&mut self, text: &str, node: &Node) -> Vec<HostItem> {
        let span = self.span(node);
        match HostItem::parse_list(text, &mut self.config.hosts, &span, node.quoted) {
            Ok(items) => items,
            Err(diagnostic) => {
                self.errors.push(diagnostic);
                Vec::new()
            }
        }
    }

    // ---- sequences ----

    fn sequence_section(&mut self, node: &Node) {
        match &node.value {
            Value::Null => {}
            Value::Seq(items) => {
                let steps = self.steps(items, LIST_THREAD_NAME);
                self.config.threads.push(ThreadDef {
                    name: LIST_THREAD_NAME.to_string(),
                    span: self.span(node),
                    filter: None,
                    steps,
                });
            }
            Value::Map(map) => {
                for (name, key_node, value) in self.pairs(map, "`sequence`") {
                    let filter = if name.starts_with('$') {
                        match TagExpr::parse(name) {
                            Ok(expr) => Some(expr.at(self.span(key_node))),
                            Err(message) => {
                                self.error(
                                    key_node,
                                    format!("invalid thread filter `{name}`: {message}"),
                                );
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    let steps = match &value.value {
                        Value::Seq(items) => self.steps(items, name),
                        Value::Scalar(_) => self.steps(std::slice::from_ref(value), name),
                        Value::Null => {
                            self.error(key_node, format!("thread `{name}` has no steps"))
                                .help = Some(
                                "list its steps under it (`- $colo.east`), or remove the thread"
                                    .to_string(),
                            );
                            continue;
                        }
                        _ => {
                            let message = format!(
                                "thread `{name}` must be a list of steps, not {}",
                                value.kind()
                            );
                            self.error(value_or_key(value, key_node), message).help = Some(
                                "write its steps as a list: `- $colo.east`, `- $colo.west`"
                                    .to_string(),
                            );
                            continue;
                        }
                    };
                    self.config.threads.push(ThreadDef {
                        name: name.to_string(),
                        span: self.span(key_node),
                        filter,
                        steps,
                    });
                }
            }
            Value::Scalar(_) => {
                self.error(
                    node,
                    "`sequence` must be a list of steps or a mapping of threads, not a scalar",
                );
            }
        }
    }

    fn steps(&mut self, items: &[Node], thread: &str) -> Vec<StepDef> {
        let mut steps = Vec::with_capacity(items.len());
        for item in items {
            let before = steps.len();
            match &item.value {
                Value::Scalar(text) => {
                    let items = self.host_items(text, item);
                    steps.push(StepDef {
                        text: text.clone(),
                        span: self.span(item),
                        items,
                    });
                }
                Value::Seq(parts) => {
                    let mut texts = Vec::with_capacity(parts.len());
                    let mut host_items = Vec::with_capacity(parts.len());
                    for part in parts {
                        match part.as_str() {
                            Some(text) => {
                                texts.push(text.to_string());
                                host_items.extend(self.host_items(text, part));
                            }
                            None => {
                                self.error(
                                    part,
                                    format!(
                                        "a step of thread `{thread}` lists hosts, patterns or `$tag`s, not {}",
                                        part.kind()
                                    ),
                                );
                            }
                        }
                    }
                    // An empty step still needs a name that reads in slot ids (`main.[]`).
                    let text = if texts.is_empty() {
                        "[]".to_string()
                    } else {
                        texts.join(",")
                    };
                    steps.push(StepDef {
                        text,
                        span: self.span(item),
                        items: host_items,
                    });
                }
                Value::Null => {
                    self.error(item, format!("empty step in thread `{thread}`"))
                        .help = Some(
                        "remove the `-` line, or write `[]` for a deliberately empty step"
                            .to_string(),
                    );
                }
                Value::Map(_) => {
                    self.error(
                        item,
                        format!(
                            "a step of thread `{thread}` is a `$tag`, a host or a pattern (or a list of them), not a mapping"
                        ),
                    )
                    .help = Some(
                        "for several threads, make `sequence` a mapping of thread names to lists"
                            .to_string(),
                    );
                }
            }
            let only_exclusions = steps[before..].iter().any(|step| {
                !step.items.is_empty()
                    && step.items.iter().all(|i| matches!(i, HostItem::Except(_)))
            });
            if only_exclusions {
                self.error(
                    item,
                    format!("a step of thread `{thread}` is only exclusions, so it has no hosts"),
                )
                .help = Some(
                    "an exclusion removes hosts from the entries beside it: `[$colo.east, \"!$role.db\"]`"
                        .to_string(),
                );
            }
        }
        steps
    }

    // ---- constraints ----

    fn constraint_section(&mut self, node: &Node) {
        match &node.value {
            Value::Null => {}
            Value::Map(map) => self.constraint_map(map, None),
            _ => {
                self.error(
                    node,
                    format!(
                        "`constraint` must be a mapping of `$tag`s, not {}",
                        node.kind()
                    ),
                );
            }
        }
    }

    fn constraint_map(&mut self, map: &[(Node, Node)], outer: Option<&TagExpr>) {
        let what = match outer {
            Some(expr) => format!("the constraint on `{}`", expr.text),
            None => "`constraint`".to_string(),
        };
        for (key, key_node, value) in self.pairs(map, &what) {
            if key == "max_parallel" {
                let Some(expr) = outer else {
                    self.error(key_node, "`max_parallel` must be under a `$tag`")
                        .help =
                        Some("write `$tag:` and indent `max_parallel` under it".to_string());
                    continue;
                };
                self.max_parallel(expr, value);
                continue;
            }
            if !key.starts_with('$') {
                let help = match suggest(key, ["max_parallel"]) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if outer.is_some() => format!(
                        "a constraint holds `max_parallel` and nested `$tag`s; for a tag, write `${key}`"
                    ),
                    None => format!("constraints are keyed by tag: write `${key}`"),
                };
                self.error(key_node, format!("unknown key `{key}` in {what}"))
                    .help = Some(help);
                continue;
            }
            let expr = match TagExpr::parse(key) {
                Ok(expr) => expr.at(self.span(key_node)),
                Err(message) => {
                    self.error(
                        key_node,
                        format!("invalid tag expression `{key}`: {message}"),
                    );
                    continue;
                }
            };
            let expr = match outer {
                Some(outer) => outer.and(&expr),
                None => expr,
            };
            match &value.value {
                Value::Map(inner) if !inner.is_empty() => self.constraint_map(inner, Some(&expr)),
                _ => {
                    let message = format!("the constraint on `{}` sets no limit", expr.text);
                    self.error(value_or_key(value, key_node), message).help =
                        Some(format!("indent `max_parallel: N` (or `N%`) under `{key}:`"));
                }
            }
        }
    }

    fn max_parallel(&mut self, expr: &TagExpr, value: &Node) {
        let Some(text) = value.as_str() else {
            let message = format!("max_parallel of `{}` has no value", expr.text);
            let message = if matches!(value.value, Value::Null) {
                message
            } else {
                format!(
                    "max_parallel of `{}` must be a number or a percentage, not {}",
                    expr.text,
                    value.kind()
                )
            };
            self.error(value, message).help = Some(
                "write a number of hosts (`2`) or a percentage of the group (`15%`)".to_string(),
            );
            return;
        };
        match Limit::parse(text) {
            Ok(limit) => self.config.constraints.push(ConstraintDef {
                expr: expr.clone(),
                limit,
                span: self.span(value),
            }),
            Err(problem) => {
                self.error(
                    value,
                    format!("invalid max_parallel of `{}`: {problem}", expr.text),
                )
                .help = Some(
                    "write a number of hosts (`2`) or a percentage of the group (`15%`)"
                        .to_string(),
                );
            }
        }
    }
}

/// Errors about a value point at it, or at its key when nothing is written there.
fn value_or_key<'a>(value: &'a Node, key: &'a Node) -> &'a Node {
    if matches!(value.value, Value::Null) {
        key
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help_for(text: &str) -> Option<String> {
        match Config::parse("t.cfg", text) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => e.diagnostics[0].help.clone(),
        }
    }

    #[test]
    fn unclosed_flow_list_error_names_the_opening_bracket() {
        // YAML only notices at the next key, a line later.
        let help = help_for("tag:\n  colo:\n    one: [host1, host2\n    two: [host3]\n");
        assert_eq!(
            help.as_deref(),
            Some("the `[` on line 3, column 10 is never closed; add a `]` where it ends")
        );
        let help = help_for("tag:\n  web: [web1, \"a]b\", web2  # ] in a comment\n");
        assert!(help.unwrap().contains("line 2, column 8"));
        let help = help_for("tag: {web: [a]\n");
        assert!(help.unwrap().contains("the `{` on line 1, column 6"));
    }

    #[test]
    fn pattern_in_flow_list_error_suggests_quotes() {
        let help = help_for("tag:\n  web: [web[1-3], lb1]\n").unwrap();
        assert!(help.contains("quote host patterns"), "{help}");
        // A block list item is not a flow collection, whatever brackets its text holds.
        let help = help_for("tag:\n  web:\n    - web[1-3\n    - [a, b\n").unwrap();
        assert!(help.contains("line 4, column 7"), "{help}");
    }

    #[test]
    fn limits_too_large_for_a_number_say_so() {
        assert_eq!(
            Limit::parse("99999999999999999999"),
            Err("`99999999999999999999` is too large to be a number of hosts".to_string())
        );
        assert_eq!(
            Limit::parse("-99999999999999999999"),
            Err("-99999999999999999999 is negative; the smallest limit is 1".to_string())
        );
        assert_eq!(
            Limit::parse("99999999999999999999%"),
            Err("`99999999999999999999%` is over 100%".to_string())
        );
        assert_eq!(Limit::parse("+3"), Ok(Limit::Count(3)));
        assert!(Limit::parse("1e3")
            .unwrap_err()
            .contains("neither a number"));
    }

    #[test]
    fn empty_list_step_is_named_for_slot_ids() {
        let config =
            Config::parse("t.cfg", "tag:\n  a: [h1]\nsequence:\n  - []\n  - $a\n").unwrap();
        let texts: Vec<&str> = config.threads[0]
            .steps
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(texts, ["[]", "$a"]);
    }
}
