//! The operator's defaults for local runs and plans: each from its flag, else its environment
//! variable, else the `[defaults]` table of the client config file (the file that names the
//! dispatcher, [`crate::remote::config`]), else pogo's built-in value.
//!
//! They are personal: they shape what this operator runs from this machine, never a reviewed
//! file. So `concurrent` and `timeout` apply to plans made without a plan spec (a spec's
//! options are its own, built-in defaults where it is silent, whoever compiles it), and `user`,
//! `identity` and `known_hosts` to new local runs over ssh (a resumed run keeps its own; a
//! job's workers have theirs).
//!
//! The file is read only when a default is needed (no flag, no variable), so a run given
//! every flag never depends on it.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::failure::{invalid, Failure};
use crate::remote::config::{config_path, ConfigFile};

/// One default: its key in the file, its variable and flag, its built-in value.
pub struct Default {
    pub key: &'static str,
    pub env: &'static str,
    pub flag: &'static str,
    /// What applies when nothing gives it, for a person.
    pub built_in: &'static str,
    /// A path: relative to the file's directory when the file gives it.
    pub path: bool,
}

pub const DEFAULTS: [Default; 6] = [
    Default {
        key: "user",
        env: "POGO_SSH_USER",
        flag: "--user",
        built_in: "ssh's own (~/.ssh/config, else the local user name)",
        path: false,
    },
    Default {
        key: "identity",
        env: "POGO_SSH_IDENTITY",
        flag: "--identity",
        built_in: "ssh's own (the agent, ~/.ssh/id_*)",
        path: true,
    },
    Default {
        key: "known_hosts",
        env: "POGO_KNOWN_HOSTS",
        flag: "--known-hosts",
        built_in: "strict",
        path: false,
    },
    Default {
        key: "concurrent",
        env: "POGO_CONCURRENT",
        flag: "--concurrent",
        built_in: "32",
        path: false,
    },
    Default {
        key: "timeout",
        env: "POGO_TIMEOUT",
        flag: "--timeout",
        built_in: "600 (seconds)",
        path: false,
    },
    Default {
        key: "state_dir",
        env: pogo_executor::rundir::STATE_DIR_ENV,
        flag: "--state-dir",
        built_in: ".pogo",
        path: true,
    },
];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "{flag}"),
            Source::Env(name) => write!(f, "${name}"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub value: String,
    pub source: Source,
}

impl Given {
    /// `--concurrent`, `$POGO_CONCURRENT` or `` `concurrent` in FILE ``: for errors about the
    /// value.
    pub fn origin(&self, key: &str) -> String {
        match &self.source {
            Source::File(path) => format!("`{key}` in [defaults] of {}", path.display()),
            other => other.to_string(),
        }
    }
}

type Env = dyn Fn(&str) -> Option<OsString>;

/// The client config file's path and its `[defaults]`.
type FileDefaults = (PathBuf, BTreeMap<&'static str, String>);

/// The defaults as the environment and the client config file give them.
pub struct Defaults<'e> {
    env: &'e Env,
    file: OnceCell<Result<Option<FileDefaults>, String>>,
}

impl<'e> Defaults<'e> {
    pub fn new(env: &'e Env) -> Defaults<'e> {
        Defaults {
            env,
            file: OnceCell::new(),
        }
    }

    /// The `key` default, from `flag` (when given), else the environment, else the file;
    /// `None` when the built-in value applies.
    pub fn get(&self, key: &str, flag: Option<&str>) -> Result<Option<Given>, Failure> {
        let default = DEFAULTS
            .iter()
            .find(|d| d.key == key)
            .expect("a known default");
        if let Some(value) = flag {
            return Ok(Some(Given {
                value: value.to_string(),
                source: Source::Flag(default.flag),
            }));
        }
        if let Some(value) = (self.env)(default.env).filter(|v| !v.is_empty()) {
            return Ok(Some(Given {
                value: value.to_string_lossy().into_owned(),
                source: Source::Env(default.env),
            }));
        }
        let file = self
            .file
            .get_or_init(|| {
                let Some((path, named)) = config_path(self.env) else {
                    return Ok(None);
                };
                Ok(ConfigFile::load(&path, named)?.map(|file| (path, file.defaults)))
            })
            .as_ref()
            .map_err(|e| invalid(e.clone()))?;
        Ok(file.as_ref().and_then(|(path, values)| {
            values.get(key).map(|value| Given {
                value: value.clone(),
                source: Source::File(path.clone()),
            })
        }))
    }
}

/// The defaults of this process's environment.
pub fn from_environment(key: &str, flag: Option<&str>) -> Result<Option<Given>, Failure> {
    let env = |name: &str| std::env::var_os(name);
    Defaults::new(&env).get(key, flag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn a_flag_beats_the_environment_which_beats_the_file_which_beats_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.toml");
        std::fs::write(
            &file,
            "[defaults]\nuser = \"deploy\"\nconcurrent = 10\nstate_dir = \"runs\"\n",
        )
        .unwrap();
        let named = (
            crate::remote::config::CONFIG_ENV,
            file.display().to_string(),
        );
        let env = env_of(&[named.clone(), ("POGO_CONCURRENT", "5".into())]);
        let defaults = Defaults::new(&env);
        let get = |key, flag| defaults.get(key, flag).unwrap();
        // The flag.
        let flagged = get("concurrent", Some("2")).unwrap();
        assert_eq!(
            (flagged.value.as_str(), flagged.origin("concurrent")),
            ("2", "--concurrent".into())
        );
        // The environment.
        let from_env = get("concurrent", None).unwrap();
        assert_eq!(from_env.value, "5");
        assert_eq!(from_env.source, Source::Env("POGO_CONCURRENT"));
        // The file, paths relative to its directory.
        let user = get("user", None).unwrap();
        assert_eq!(user.value, "deploy");
        assert_eq!(user.source, Source::File(file.clone()));
        assert_eq!(
            get("state_dir", None).unwrap().value,
            dir.path().join("runs").display().to_string()
        );
        // Nothing: the built-in value.
        assert_eq!(get("timeout", None), None);
    }

    #[test]
    fn a_file_with_an_unknown_default_is_refused_naming_the_key_but_only_when_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.toml");
        std::fs::write(&file, "[defaults]\nconcurency = 3\n").unwrap();
        let env = env_of(&[(
            crate::remote::config::CONFIG_ENV,
            file.display().to_string(),
        )]);
        let defaults = Defaults::new(&env);
        assert!(defaults.get("concurrent", Some("4")).is_ok());
        let refused = defaults.get("concurrent", None).err().unwrap().message;
        assert!(
            refused.contains("unknown key `concurency` in [defaults]"),
            "{refused}"
        );
        assert!(
            refused.contains("concurrent, timeout, state_dir"),
            "{refused}"
        );
    }
}

/// `pogo config`.
#[derive(clap::Args)]
#[command(
    long_about = "Show the settings pogo uses on this machine and where each comes from: the \
        dispatcher connection (dispatcher, cert, key, ca) and the defaults for local runs and \
        plans (user, identity, known_hosts, concurrent, timeout, state_dir).\n\n\
        Each comes from its flag, else its environment variable, else the client config file \
        ($POGO_CLIENT_CONFIG, else $XDG_CONFIG_HOME/pogo/client.toml, else \
        ~/.config/pogo/client.toml), else pogo's built-in value. In the file, the connection \
        settings are top-level keys and the defaults are under [defaults]; relative paths are \
        relative to the file's directory:\n\n\
        \x20   dispatcher = \"https://pogo.example.com:8443\"\n\
        \x20   cert = \"operator-alice.pem\"\n\
        \x20   key = \"operator-alice-key.pem\"\n\
        \x20   ca = \"ca.pem\"\n\n\
        \x20   [defaults]\n\
        \x20   user = \"deploy\"\n\
        \x20   identity = \"/home/alice/.ssh/deploy\"\n\
        \x20   known_hosts = \"accept-new\"\n\
        \x20   concurrent = \"10%\"\n\
        \x20   timeout = \"15m\"\n\
        \x20   state_dir = \"/home/alice/pogo-runs\"\n\n\
        concurrent and timeout apply to plans made without a plan spec (a spec's options are \
        its own); user, identity and known_hosts to new local runs over ssh (a resumed run \
        keeps its own, and a job's workers use theirs).",
    after_help = "Examples:\n  \
        pogo config\n  \
        POGO_CONCURRENT=5 pogo config --json"
)]
pub struct ConfigArgs {
    /// Print the settings as JSON
    #[arg(long)]
    json: bool,
}

/// One row of `pogo config`.
#[derive(serde::Serialize)]
struct Row {
    key: &'static str,
    value: Option<String>,
    /// `--flag`, `$VAR`, the file's path, or `built-in` / `not set`.
    from: String,
    env: &'static str,
}

pub fn show(args: ConfigArgs, out: &mut dyn std::io::Write) -> Result<u8, Failure> {
    use crate::remote::config::{sources, Given as Flags, CONFIG_ENV};
    let env = |name: &str| std::env::var_os(name);
    let location = config_path(&env);
    let connection = sources(&Flags::default(), &env).map_err(invalid)?;
    let envs = ["POGO_DISPATCHER", "POGO_CERT", "POGO_KEY", "POGO_CA"];
    let mut rows: Vec<Row> = connection
        .into_iter()
        .zip(envs)
        .map(|((key, value), env)| {
            // `--cert`, `POGO_CERT`, or `` `cert` in PATH ``.
            let (value, from) = match value {
                Some((value, from)) => match from.split_once(" in ") {
                    Some((_, path)) => (Some(value), path.to_string()),
                    None if from.starts_with("POGO_") => (Some(value), format!("${from}")),
                    None => (Some(value), from),
                },
                None => (None, "not set".to_string()),
            };
            Row {
                key,
                value,
                from,
                env,
            }
        })
        .collect();
    let defaults = Defaults::new(&env);
    for default in &DEFAULTS {
        let row = match defaults.get(default.key, None)? {
            Some(given) => Row {
                key: default.key,
                value: Some(given.value),
                from: given.source.to_string(),
                env: default.env,
            },
            None => Row {
                key: default.key,
                value: Some(default.built_in.to_string()),
                from: "built-in".to_string(),
                env: default.env,
            },
        };
        rows.push(row);
    }
    let (path, state) = match &location {
        Some((path, named)) => (
            Some(path.display().to_string()),
            match (path.exists(), named) {
                (true, true) => format!("named by ${CONFIG_ENV}"),
                (true, false) => "found".to_string(),
                (false, _) => "not found".to_string(),
            },
        ),
        None => (None, "no home directory to look in".to_string()),
    };
    if args.json {
        let json = serde_json::json!({ "file": path, "file_state": state, "settings": rows });
        let mut text = serde_json::to_string_pretty(&json)
            .map_err(|e| invalid(format!("cannot write JSON: {e}")))?;
        text.push('\n');
        crate::failure::emit(out, &text)?;
        return Ok(crate::failure::exit::OK);
    }
    let mut text = format!(
        "Client config file: {} ({state})\n\n",
        path.as_deref().unwrap_or("none")
    );
    let mut table = pogo_views::text::new_table();
    table.set_header(vec!["Setting", "Value", "From", "Variable"]);
    for (i, row) in rows.iter().enumerate() {
        if i == 4 {
            table.add_row(vec!["", "", "", ""]);
        }
        table.add_row(vec![
            row.key.to_string(),
            row.value.clone().unwrap_or_else(|| "-".to_string()),
            row.from.clone(),
            format!("${}", row.env),
        ]);
    }
    text.push_str(&format!("{}\n", pogo_views::text::render(&mut table)));
    text.push('\n');
    text.push_str(&pogo_views::text::wrap_words(
        "Each comes from its flag, else its variable, else the file, else pogo's built-in \
         value (`pogo config --help` shows the file's keys).",
        90,
    ));
    crate::failure::emit(out, &text)?;
    Ok(crate::failure::exit::OK)
}
