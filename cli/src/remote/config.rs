//! Where the operator's (or a worker's) dispatcher settings come from: the dispatcher's URL
//! and the certificate, key and CA to talk to it with. Each comes from its flag, else from its
//! environment variable, else from the client config file: `$POGO_CLIENT_CONFIG`, else
//! `$XDG_CONFIG_HOME/pogo/client.toml`, else `~/.config/pogo/client.toml`, with the keys
//! `dispatcher`, `cert`, `key` and `ca` (relative paths are relative to the file's directory).
//!
//! Dispatchers that share a PostgreSQL database (one leads) are given together: a
//! comma-separated list in the flag or the variable, a list (or such a string) in the file.
//!
//! The same file holds the operator's defaults for local runs and plans, in its `[defaults]`
//! table (see [`crate::defaults`]).
//!
//! The resolver is given the environment as a function, so that tests never read the real
//! one (or the real home directory).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use pogo_remote::tls::TlsFiles;

/// The environment variable naming the client config file.
pub const CONFIG_ENV: &str = "POGO_CLIENT_CONFIG";

/// What the command line gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    pub dispatcher: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

/// Everything needed to reach a dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `https://HOST:PORT`.
    pub url: String,
    pub tls: TlsFiles,
}

/// One setting, and how to give it.
struct Setting {
    key: &'static str,
    flag: &'static str,
    env: &'static str,
    what: &'static str,
    example: &'static str,
}

const SETTINGS: [Setting; 4] = [
    Setting {
        key: "dispatcher",
        flag: "--dispatcher URL",
        env: "POGO_DISPATCHER",
        what: "the dispatcher's URL",
        example: "\"https://HOST:PORT\"",
    },
    Setting {
        key: "cert",
        flag: "--cert FILE",
        env: "POGO_CERT",
        what: "this client's certificate",
        example: "\"FILE\"",
    },
    Setting {
        key: "key",
        flag: "--key FILE",
        env: "POGO_KEY",
        what: "this client's private key",
        example: "\"FILE\"",
    },
    Setting {
        key: "ca",
        flag: "--ca FILE",
        env: "POGO_CA",
        what: "the deployment's CA certificate",
        example: "\"FILE\"",
    },
];

/// Where the client config file is: `(path, named)`, `named` when `$POGO_CLIENT_CONFIG` names
/// it (it must then exist). `None` without a home directory to look in.
pub fn config_path(env: &dyn Fn(&str) -> Option<OsString>) -> Option<(PathBuf, bool)> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(path) = set(CONFIG_ENV) {
        return Some((PathBuf::from(path), true));
    }
    let base = match set("XDG_CONFIG_HOME") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => PathBuf::from(set("HOME")?).join(".config"),
    };
    Some((base.join("pogo").join("client.toml"), false))
}

/// The settings a client config file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub dispatcher: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    /// The `[defaults]` table: each key of [`crate::defaults::DEFAULTS`] given, as text
    /// (paths made relative to the file's directory).
    pub defaults: std::collections::BTreeMap<&'static str, String>,
}

impl ConfigFile {
    /// Reads the file at `path`; `Ok(None)` when it does not exist and `named` is false.
    pub fn load(path: &Path, named: bool) -> Result<Option<ConfigFile>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => ConfigFile::parse(path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(None),
            Err(e) => Err(format!(
                "cannot read the client config `{}`{}: {e}",
                path.display(),
                if named {
                    format!(" (named by {CONFIG_ENV})")
                } else {
                    String::new()
                }
            )),
        }
    }

    /// Parses the text of the file at `path`: string values for the known keys only; paths
    /// relative to the file's directory.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, String> {
        let name = path.display();
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("cannot read the client config `{name}`: {e}"))?;
        let mut problems = Vec::new();
        let mut file = ConfigFile {
            path: path.to_path_buf(),
            ..ConfigFile::default()
        };
        let dir = path.parent().unwrap_or(Path::new(""));
        for (key, value) in &table {
            if key == "defaults" {
                match value.as_table() {
                    Some(defaults) => file.defaults = read_defaults(defaults, dir, &mut problems),
                    None => problems.push("`defaults` must be a table: [defaults]".into()),
                }
                continue;
            }
            // Several dispatchers, one leading: a list of URLs.
            if let (Some(list), "dispatcher") = (value.as_array(), key.as_str()) {
                let urls: Option<Vec<&str>> = list.iter().map(toml::Value::as_str).collect();
                match urls {
                    Some(urls) if !urls.is_empty() => file.dispatcher = Some(urls.join(",")),
                    _ => problems.push("`dispatcher` must be a URL or a list of URLs".into()),
                }
                continue;
            }
            let Some(text) = value.as_str() else {
                if SETTINGS.iter().any(|s| s.key == key) {
                    problems.push(format!("`{key}` must be a string"));
                } else {
                    problems.push(unknown(key));
                }
                continue;
            };
            let path = || Some(dir.join(text));
            match key.as_str() {
                "dispatcher" => file.dispatcher = Some(text.to_string()),
                "cert" => file.cert = path(),
                "key" => file.key = path(),
                "ca" => file.ca = path(),
                _ => problems.push(unknown(key)),
            }
        }
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(format!(
                "the client config `{name}` is invalid: {}",
                problems.join("; ")
            ))
        }
    }
}

fn unknown(key: &str) -> String {
    format!("unknown key `{key}` (the keys are dispatcher, cert, key, ca and [defaults])")
}

/// The `[defaults]` table: known keys, with strings (or whole numbers) for values.
fn read_defaults(
    table: &toml::Table,
    dir: &Path,
    problems: &mut Vec<String>,
) -> std::collections::BTreeMap<&'static str, String> {
    use crate::defaults::DEFAULTS;
    let mut found = std::collections::BTreeMap::new();
    for (key, value) in table {
        let Some(default) = DEFAULTS.iter().find(|d| d.key == key) else {
            let keys: Vec<&str> = DEFAULTS.iter().map(|d| d.key).collect();
            problems.push(format!(
                "unknown key `{key}` in [defaults] (the keys are {})",
                keys.join(", ")
            ));
            continue;
        };
        let text = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(n) => n.to_string(),
            _ => {
                problems.push(format!("`{key}` in [defaults] must be a string"));
                continue;
            }
        };
        let text = if default.path {
            dir.join(text).display().to_string()
        } else {
            text
        };
        found.insert(default.key, text);
    }
    found
}

/// A connection setting's key, and its value and where it came from, when something gives it.
pub type SettingSource = (&'static str, Option<(String, String)>);

/// Each connection setting as it resolves, for `pogo config`: its key, and its value and
/// where it came from (a flag, a variable, the file), or `None` when nothing gives it.
pub fn sources(
    given: &Given,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<SettingSource>, String> {
    let (values, _) = gather(given, env)?;
    Ok(SETTINGS
        .iter()
        .zip(values)
        .map(|(setting, value)| {
            (
                setting.key,
                value.map(|(v, from)| (v.to_string_lossy().into_owned(), from)),
            )
        })
        .collect())
}

/// The connection settings from the flags, else the environment, else the file (read only
/// when the first two leave something out), each with where it came from; and where the
/// file is.
#[allow(clippy::type_complexity)]
fn gather(
    given: &Given,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<([Option<(OsString, String)>; 4], Option<(PathBuf, bool)>), String> {
    let from_env = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut values: [Option<(OsString, String)>; 4] = [
        given
            .dispatcher
            .clone()
            .filter(|d| !d.is_empty())
            .map(|d| (OsString::from(d), "--dispatcher".to_string())),
        given
            .cert
            .clone()
            .map(|p| (p.into_os_string(), "--cert".to_string())),
        given
            .key
            .clone()
            .map(|p| (p.into_os_string(), "--key".to_string())),
        given
            .ca
            .clone()
            .map(|p| (p.into_os_string(), "--ca".to_string())),
    ];
    for (value, setting) in values.iter_mut().zip(&SETTINGS) {
        if value.is_none() {
            *value = from_env(setting.env).map(|v| (v, setting.env.to_string()));
        }
    }
    let location = config_path(env);
    if values.iter().any(Option::is_none) {
        if let Some((path, named)) = &location {
            if let Some(file) = ConfigFile::load(path, *named)? {
                let from_file = [
                    file.dispatcher.map(OsString::from),
                    file.cert.map(PathBuf::into_os_string),
                    file.key.map(PathBuf::into_os_string),
                    file.ca.map(PathBuf::into_os_string),
                ];
                for ((value, setting), found) in values.iter_mut().zip(&SETTINGS).zip(from_file) {
                    if value.is_none() {
                        *value =
                            found.map(|v| (v, format!("`{}` in {}", setting.key, path.display())));
                    }
                }
            }
        }
    }
    Ok((values, location))
}

/// The settings from the flags, else the environment, else the client config file (read only
/// when the first two leave something out). Every missing setting is named in one error, with
/// the three ways to give it.
pub fn resolve(
    given: &Given,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Connection, String> {
    let (values, location) = gather(given, env)?;
    let missing: Vec<&Setting> = values
        .iter()
        .zip(&SETTINGS)
        .filter(|(v, _)| v.is_none())
        .map(|(_, s)| s)
        .collect();
    if !missing.is_empty() {
        let file = match &location {
            Some((path, _)) => format!("the client config {}", path.display()),
            None => format!("the client config file (${CONFIG_ENV})"),
        };
        let mut message = format!(
            "missing {} to reach the dispatcher; give each as a flag, in the environment or in \
             {file}:",
            if missing.len() == 1 {
                "a setting"
            } else {
                "settings"
            }
        );
        for s in missing {
            message.push_str(&format!(
                "\n  {}: {}, or {}=..., or {} = {}",
                s.what, s.flag, s.env, s.key, s.example
            ));
        }
        return Err(message);
    }
    // Every one is there: the missing ones were reported.
    let [(url, url_from), (cert, _), (key, _), (ca, _)] = values.map(Option::unwrap_or_default);
    let url = url
        .into_string()
        .map_err(|u| format!("the dispatcher URL from {url_from} is not UTF-8: {u:?}"))?;
    if let Some(bad) = url
        .split(',')
        .map(str::trim)
        .find(|u| !u.starts_with("https://"))
    {
        return Err(format!(
            "the dispatcher URL from {url_from} is `{bad}`; it must start with https:// (the \
             dispatcher speaks HTTPS only)"
        ));
    }
    Ok(Connection {
        url,
        tls: TlsFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
            ca: PathBuf::from(ca),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn several_dispatchers_come_as_a_list_in_the_file_or_a_comma_list_elsewhere() {
        let home = tempfile::tempdir().expect("tempdir");
        write(
            home.path(),
            ".config/pogo/client.toml",
            "dispatcher = [\"https://d1:8443\", \"https://d2:8443\"]\ncert = \"c\"\n\
             key = \"k\"\nca = \"a\"\n",
        );
        let home_dir = home.path().to_str().expect("utf-8");
        let env = env_of(&[("HOME", home_dir)]);
        let c = resolve(&Given::default(), &env).expect("resolves");
        assert_eq!(c.url, "https://d1:8443,https://d2:8443");
        let env = env_of(&[
            ("HOME", home_dir),
            ("POGO_DISPATCHER", "https://d1:8443, http://d2:8443"),
        ]);
        let refused = resolve(&Given::default(), &env).unwrap_err();
        assert!(refused.contains("`http://d2:8443`"), "{refused}");
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file() {
        let home = tempfile::tempdir().expect("tempdir");
        write(
            home.path(),
            ".config/pogo/client.toml",
            "dispatcher = \"https://file:1\"\ncert = \"file.crt\"\nkey = \"file.key\"\n\
             ca = \"/abs/ca.crt\"\n",
        );
        let home_dir = home.path().to_str().expect("utf-8");
        let env = env_of(&[
            ("HOME", home_dir),
            ("POGO_DISPATCHER", "https://env:2"),
            ("POGO_KEY", "env.key"),
        ]);
        let given = Given {
            key: Some("flag.key".into()),
            ..Given::default()
        };
        let c = resolve(&given, &env).expect("resolves");
        assert_eq!(c.url, "https://env:2");
        assert_eq!(c.tls.key, PathBuf::from("flag.key"));
        // Relative paths in the file are relative to the file's directory.
        assert_eq!(c.tls.cert, home.path().join(".config/pogo/file.crt"));
        assert_eq!(c.tls.ca, PathBuf::from("/abs/ca.crt"));

        let given = Given {
            dispatcher: Some("https://flag:3".into()),
            ..given
        };
        assert_eq!(
            resolve(&given, &env).expect("resolves").url,
            "https://flag:3"
        );
    }

    #[test]
    fn the_file_is_found_by_env_then_xdg_then_home() {
        let env = env_of(&[
            ("HOME", "/home/op"),
            ("XDG_CONFIG_HOME", "/xdg"),
            (CONFIG_ENV, "/etc/pogo.toml"),
        ]);
        assert_eq!(
            config_path(&env),
            Some((PathBuf::from("/etc/pogo.toml"), true))
        );
        let env = env_of(&[("HOME", "/home/op"), ("XDG_CONFIG_HOME", "/xdg")]);
        assert_eq!(
            config_path(&env),
            Some((PathBuf::from("/xdg/pogo/client.toml"), false))
        );
        let env = env_of(&[("HOME", "/home/op"), ("XDG_CONFIG_HOME", "")]);
        assert_eq!(
            config_path(&env),
            Some((PathBuf::from("/home/op/.config/pogo/client.toml"), false))
        );
        assert_eq!(config_path(&env_of(&[])), None);
    }

    #[test]
    fn a_named_config_file_must_exist_and_a_default_one_need_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.toml");
        let env = env_of(&[(CONFIG_ENV, missing.to_str().expect("utf-8"))]);
        let error = resolve(&Given::default(), &env).expect_err("refused");
        assert!(error.contains("cannot read the client config"), "{error}");
        assert!(error.contains(CONFIG_ENV), "{error}");

        let env = env_of(&[("HOME", dir.path().to_str().expect("utf-8"))]);
        let error = resolve(&Given::default(), &env).expect_err("refused");
        assert!(error.starts_with("missing settings"), "{error}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "client.toml",
            "dispatcher = \"https://d:1\"\ncertificate = \"x\"\nca = 3\n",
        );
        let env = env_of(&[(CONFIG_ENV, path.to_str().expect("utf-8"))]);
        let error = resolve(&Given::default(), &env).expect_err("refused");
        assert!(error.contains("unknown key `certificate`"), "{error}");
        assert!(error.contains("`ca` must be a string"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn a_missing_setting_says_the_three_ways_to_give_it() {
        let env = env_of(&[
            ("HOME", "/nonexistent-home"),
            ("POGO_DISPATCHER", "https://d:1"),
            ("POGO_CERT", "c.crt"),
        ]);
        let error = resolve(&Given::default(), &env).expect_err("refused");
        assert!(
            error.contains("--key FILE, or POGO_KEY=..., or key = \"FILE\""),
            "{error}"
        );
        assert!(
            error.contains("--ca FILE, or POGO_CA=..., or ca = \"FILE\""),
            "{error}"
        );
        assert!(!error.contains("--cert"), "{error}");
        assert!(
            error.contains("/nonexistent-home/.config/pogo/client.toml"),
            "{error}"
        );
    }

    #[test]
    fn the_url_must_be_https() {
        let env = env_of(&[
            ("POGO_DISPATCHER", "http://d:1"),
            ("POGO_CERT", "c"),
            ("POGO_KEY", "k"),
            ("POGO_CA", "a"),
        ]);
        let error = resolve(&Given::default(), &env).expect_err("refused");
        assert!(error.contains("from POGO_DISPATCHER"), "{error}");
        assert!(error.contains("https://"), "{error}");
    }
}
