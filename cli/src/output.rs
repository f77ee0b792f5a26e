//! How much pogo says, and in colour or not: the global flags `--color`, `--quiet` and
//! `--verbose`, set once from the command line and read where output is made.

use std::sync::OnceLock;

use clap::ValueEnum;

/// When output is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set (to anything but nothing)
    #[default]
    Auto,
    /// Always, even into a pipe or a file
    Always,
    /// Never
    Never,
}

impl ColorWhen {
    /// clap's own colours (help, usage errors) follow the same choice.
    pub fn clap(self) -> clap::ColorChoice {
        match self {
            ColorWhen::Auto if no_color() => clap::ColorChoice::Never,
            ColorWhen::Auto => clap::ColorChoice::Auto,
            ColorWhen::Always => clap::ColorChoice::Always,
            ColorWhen::Never => clap::ColorChoice::Never,
        }
    }

    /// The choice given on a command line, read before clap parses it (clap's own output
    /// needs it first); `auto` when absent or not understood (clap then says so).
    pub fn from_args(args: &[std::ffi::OsString]) -> ColorWhen {
        let mut found = ColorWhen::Auto;
        let mut words = args.iter().map(|a| a.to_string_lossy());
        while let Some(word) = words.next() {
            if word == "--" {
                break;
            }
            let value = match word.strip_prefix("--color") {
                Some(rest) if rest.starts_with('=') => rest[1..].to_string(),
                Some("") => words.next().map(|w| w.to_string()).unwrap_or_default(),
                _ => continue,
            };
            if let Ok(when) = ColorWhen::from_str(&value, true) {
                found = when;
            }
        }
        found
    }
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The global output flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub color: ColorWhen,
    pub quiet: bool,
    pub verbose: bool,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

/// Sets the flags for the rest of the process (once; later calls are ignored).
pub fn set(output: Output) {
    let _ = OUTPUT.set(output);
}

/// The flags as set, or the defaults.
pub fn get() -> Output {
    OUTPUT.get().copied().unwrap_or_default()
}

impl Output {
    /// Whether to colour output written to a stream that `terminal` says is one.
    pub fn color(&self, terminal: bool) -> bool {
        match self.color {
            ColorWhen::Auto => terminal && !no_color(),
            ColorWhen::Always => true,
            ColorWhen::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<std::ffi::OsString> {
        line.split(' ').map(Into::into).collect()
    }

    #[test]
    fn the_color_flag_is_found_before_parsing_in_both_spellings() {
        assert_eq!(
            ColorWhen::from_args(&args("pogo diff a b")),
            ColorWhen::Auto
        );
        assert_eq!(
            ColorWhen::from_args(&args("pogo --color never diff")),
            ColorWhen::Never
        );
        assert_eq!(
            ColorWhen::from_args(&args("pogo diff --color=always a")),
            ColorWhen::Always
        );
        assert_eq!(
            ColorWhen::from_args(&args("pogo run -- --color never")),
            ColorWhen::Auto
        );
        let chosen = Output {
            color: ColorWhen::Always,
            ..Output::default()
        };
        assert!(chosen.color(false));
        let never = Output {
            color: ColorWhen::Never,
            ..Output::default()
        };
        assert!(!never.color(true));
    }
}
