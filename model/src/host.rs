//! The host-name rule, the same in the planner, the plan reader and every transport.
//!
//! A host name is 1 to 253 bytes (a DNS name's limit), with no whitespace and no control
//! characters (a name is printed on one line, in `host: message` lines and in tables, and a
//! newline in it could forge a line of output), and does not start with `-` (ssh would read it
//! as an option).

/// The longest host name, in bytes.
pub const MAX_HOST_NAME: usize = 253;

/// What is wrong with `name` as a host name, or `None` when it is a valid one.
pub fn host_name_problem(name: &str) -> Option<String> {
    // The common case, checked a byte at a time: printable ASCII (no blank, no control
    // character), of an allowed length, not starting with `-`.
    if (1..=MAX_HOST_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_graphic())
        && !name.starts_with('-')
    {
        return None;
    }
    if name.is_empty() {
        return Some("a host name cannot be empty".to_string());
    }
    if name.len() > MAX_HOST_NAME {
        return Some(format!(
            "a host name is at most {MAX_HOST_NAME} bytes, and this one has {}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "a host name cannot hold whitespace or control characters, and this one has {}",
            c.escape_default()
        ));
    }
    if name.starts_with('-') {
        return Some("a host name cannot start with `-`".to_string());
    }
    None
}

/// `name` as it can be quoted in a message: at most 64 characters (then `...` and how long
/// it was), control characters escaped, so that a hostile name cannot flood or forge output.
pub fn shown_host_name(name: &str) -> String {
    const SHOWN: usize = 64;
    let mut shown: String = name
        .chars()
        .take(SHOWN)
        .flat_map(|c| {
            let escape = c.is_control() || (c.is_whitespace() && c != ' ');
            let text: String = if escape {
                c.escape_default().collect()
            } else {
                c.to_string()
            };
            text.chars().collect::<Vec<_>>()
        })
        .collect();
    if name.chars().nth(SHOWN).is_some() {
        shown.push_str(&format!("... ({} bytes)", name.len()));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert_eq!(host_name_problem("web1.example.com"), None);
        assert_eq!(host_name_problem(&"a".repeat(253)), None);
        for bad in [
            "",
            "h1\nhost2: Success",
            "a b",
            "-oProxyCommand=x",
            "tab\there",
        ] {
            assert!(host_name_problem(bad).is_some(), "{bad:?}");
        }
        let long = "a".repeat(254);
        assert_eq!(
            host_name_problem(&long).unwrap(),
            "a host name is at most 253 bytes, and this one has 254"
        );
        assert_eq!(
            host_name_problem("h1\nx").unwrap(),
            "a host name cannot hold whitespace or control characters, and this one has \\n"
        );
    }

    /// The byte-at-a-time fast path and the rule as written agree, on every character of
    /// the Basic Multilingual Plane in every position.
    #[test]
    fn the_fast_path_keeps_the_rule() {
        fn by_definition(name: &str) -> bool {
            !name.is_empty()
                && name.len() <= MAX_HOST_NAME
                && !name.chars().any(|c| c.is_whitespace() || c.is_control())
                && !name.starts_with('-')
        }
        for c in (0..=0xffff_u32).filter_map(char::from_u32) {
            for name in [
                c.to_string(),
                format!("{c}web1"),
                format!("web{c}1"),
                format!("web1{c}"),
                format!("{}{c}", "a".repeat(MAX_HOST_NAME - c.len_utf8())),
                format!("{}{c}", "a".repeat(MAX_HOST_NAME + 1 - c.len_utf8())),
            ] {
                assert_eq!(
                    host_name_problem(&name).is_none(),
                    by_definition(&name),
                    "{name:?}"
                );
            }
        }
    }

    #[test]
    fn a_shown_name_is_short_and_on_one_line() {
        assert_eq!(shown_host_name("h1\nhost2"), "h1\\nhost2");
        let shown = shown_host_name(&"x".repeat(10_000_000));
        assert_eq!(shown, format!("{}... (10000000 bytes)", "x".repeat(64)));
    }
}
