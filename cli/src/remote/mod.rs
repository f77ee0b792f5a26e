//! Remote apply, from the command line: the dispatcher and worker daemons (`pogo dispatcher`,
//! `pogo worker`) and the operator's commands that talk to a dispatcher (`pogo apply
//! --dispatcher`, `pogo jobs`, `pogo status`, `pogo log JOB`, `pogo halt`, `pogo resume`,
//! `pogo retry`, `pogo workers`). Each runs a small tokio runtime of its own around the async
//! client of `pogo_remote`; the rest of the CLI stays synchronous.

/// The help paragraph on where the dispatcher settings come from, for `concat!` in helps.
macro_rules! config_help {
    () => {
        "The dispatcher's URL and the certificate, key and CA to reach it with come from \
         --dispatcher, --cert, --key and --ca, else from POGO_DISPATCHER, POGO_CERT, POGO_KEY \
         and POGO_CA, else from the client config file ($POGO_CLIENT_CONFIG, else \
         $XDG_CONFIG_HOME/pogo/client.toml, else ~/.config/pogo/client.toml): a TOML file with \
         the keys `dispatcher`, `cert`, `key` and `ca`, paths relative to its directory."
    };
}
pub(crate) use config_help;

pub mod config;
pub mod fleet;
pub mod follow;
pub mod ops;
pub mod serve;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;
use pogo_remote::api::JobSummary;
use pogo_remote::client::{Client, ClientError};

use pogo_views::text::shell_word;

use crate::failure::{invalid, Failure};
use config::{Connection, Given};

/// How to reach the dispatcher: the flags every command that talks to one shares. What they
/// leave out comes from the environment, then from the client config file (see [`config`]).
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Dispatcher connection")]
pub struct DispatcherFlags {
    /// The dispatcher, https://HOST:PORT; given bare, the configured one [default:
    /// $POGO_DISPATCHER, else `dispatcher` in the client config file]
    #[arg(
        long,
        value_name = "URL",
        num_args = 0..=1,
        default_missing_value = "",
    )]
    pub dispatcher: Option<String>,
    /// This client's certificate (PEM), made by the deployment's CA [default: $POGO_CERT,
    /// else `cert` in the client config file]
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// This client's private key (PEM) [default: $POGO_KEY, else `key` in the client config
    /// file]
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The deployment's CA certificate (PEM) [default: $POGO_CA, else `ca` in the client
    /// config file]
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl DispatcherFlags {
    /// Whether `--dispatcher` was given, bare or with a URL.
    pub fn is_given(&self) -> bool {
        self.dispatcher.is_some()
    }

    /// Whether a dispatcher is given or configured (flags, environment or client config
    /// file, with everything needed to reach it): then `last` names its newest job.
    pub fn configured(&self) -> bool {
        self.is_given() || self.connection().is_ok()
    }

    /// Whether `run` names a job on a dispatcher rather than a local run: given with
    /// `--dispatcher`, an id starting with `job-`, or `last` while a dispatcher is configured.
    pub fn names_job(&self, run: &str) -> bool {
        self.is_given() || run.starts_with("job-") || (run == "last" && self.configured())
    }

    /// The TLS flags that were given, for commands that use them only with `--dispatcher`.
    pub fn tls_flags_given(&self) -> Vec<&'static str> {
        [
            ("--cert", self.cert.is_some()),
            ("--key", self.key.is_some()),
            ("--ca", self.ca.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// The settings, from the flags, the environment and the client config file.
    pub fn connection(&self) -> Result<Connection, Failure> {
        let given = Given {
            dispatcher: self.dispatcher.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.ca.clone(),
        };
        config::resolve(&given, &|name| std::env::var_os(name)).map_err(invalid)
    }

    /// A client of the dispatcher.
    pub fn client(&self) -> Result<Client, Failure> {
        let connection = self.connection()?;
        Client::new(&connection.url, &connection.tls).map_err(client_failure)
    }

    /// The flags to repeat in the commands pogo suggests: those given on the command line
    /// (the rest come from the same environment and config file next time).
    pub fn repeat(&self) -> String {
        let mut text = String::new();
        if let Some(url) = self.dispatcher.as_deref().filter(|u| !u.is_empty()) {
            text.push_str(&format!(" --dispatcher {}", shell_word(url)));
        }
        for (flag, path) in [
            ("--cert", &self.cert),
            ("--key", &self.key),
            ("--ca", &self.ca),
        ] {
            if let Some(path) = path {
                text.push_str(&format!(
                    " {flag} {}",
                    shell_word(&path.display().to_string())
                ));
            }
        }
        text
    }
}

/// A bare `--dispatcher` would take the word after it for its URL (`pogo status --dispatcher
/// last`). A URL has `://` in it: a word without one, and not a flag, is the command's first
/// argument, so the flag is made bare (`--dispatcher=`) before the command line is parsed.
/// Only the commands that talk to a configured dispatcher are rewritten (not `pogo worker`,
/// whose `--dispatcher` always takes a URL), and nothing after `--`.
pub fn separate_bare_dispatcher(args: Vec<OsString>) -> Vec<OsString> {
    const OWN_URL: [&str; 2] = ["worker", "dispatcher"];
    let command = args
        .iter()
        .skip(1)
        .find(|arg| !arg.to_string_lossy().starts_with('-'))
        .map(|arg| arg.to_string_lossy().into_owned());
    if command.as_deref().is_some_and(|c| OWN_URL.contains(&c)) {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        if arg == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        let next_is_argument = args.peek().is_some_and(|next| {
            let next = next.to_string_lossy();
            !next.starts_with('-') && !next.contains("://")
        });
        if arg == "--dispatcher" && next_is_argument {
            out.push(OsString::from("--dispatcher="));
        } else {
            out.push(arg);
        }
    }
    out
}

/// The runtime a remote command runs its client on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| invalid(format!("cannot start the async runtime: {e}")))
}

/// A client error for the operator: its text, and what to check when a certificate was
/// refused or a role does not allow the call.
pub fn client_failure(error: ClientError) -> Failure {
    let hint = match &error {
        // The client explains the certificates it knows to be at fault; a bare TLS failure
        // is explained here.
        ClientError::Connect { message, .. } | ClientError::Refused { message, .. }
            if tls_trouble(message) && !message.contains("certificate") =>
        {
            "\nthe TLS handshake failed: the dispatcher refused this client's certificate, or \
             this client refused the dispatcher's. Check that --cert and --key were made by the \
             CA the dispatcher trusts, that --ca is that CA, and that the certificate has not \
             expired"
        }
        ClientError::Status {
            status: 401 | 403, ..
        } => {
            "\nthese commands need an operator certificate from the deployment's CA: `pogo \
             certs issue --dir CA_DIR --role operator NAME` makes one"
        }
        _ => "",
    };
    invalid(format!("{error}{hint}"))
}

/// Whether a connection error reads like a refused or unusable certificate (not a connection
/// that merely broke, which TLS also reports).
fn tls_trouble(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "certificate",
        "handshake",
        "alert",
        "unknownca",
        "unknown ca",
    ]
    .iter()
    .any(|word| message.contains(word))
}

/// A random id for one submission of a job (`SubmitJob::submission`): repeating the request
/// with it can never make a second job.
pub fn submission_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut id = String::new();
    for part in 0..2u32 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u32(part);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id
}

/// The job `given` names: `last` (the newest), an id, or the start of one (with or without
/// `job-`). `jobs` come newest first, as the dispatcher lists them.
pub fn resolve_job(given: &str, jobs: &[JobSummary]) -> Result<String, String> {
    if given == "last" {
        return jobs
            .first()
            .map(|j| j.id.clone())
            .ok_or_else(|| "the dispatcher has no jobs yet".to_string());
    }
    if let Some(job) = jobs.iter().find(|j| j.id == given) {
        return Ok(job.id.clone());
    }
    let with_prefix = format!("job-{given}");
    let matches: Vec<&str> = jobs
        .iter()
        .map(|j| j.id.as_str())
        .filter(|id| !given.is_empty() && (id.starts_with(given) || id.starts_with(&with_prefix)))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "no job `{given}` on the dispatcher; `pogo jobs` lists them"
        )),
        many => {
            let shown: Vec<&str> = many.iter().take(10).copied().collect();
            let more = if many.len() > shown.len() {
                format!(" and {} more", many.len() - shown.len())
            } else {
                String::new()
            };
            Err(format!(
                "`{given}` is the start of {} job ids: {}{more}; give more of the id",
                many.len(),
                shown.join(", ")
            ))
        }
    }
}

/// Whether `given` is a whole job id, `job-YYYYMMDDTHHMMSSZ-xxxx`, which needs no lookup.
fn is_whole_job_id(given: &str) -> bool {
    given
        .strip_prefix("job-")
        .is_some_and(|rest| pogo_executor::rundir::RunId::parse(rest).is_some())
}

/// The job `given` names, asking the dispatcher's list when it is not a whole id.
pub async fn find_job(client: &Client, given: &str) -> Result<String, Failure> {
    if is_whole_job_id(given) {
        return Ok(given.to_string());
    }
    let jobs = client.jobs().await.map_err(client_failure)?;
    resolve_job(given, &jobs).map_err(invalid)
}

/// Asks for the SSH password on the terminal, without echo: for a local run or a job.
pub fn ask_password() -> Result<String, Failure> {
    rpassword::prompt_password("Password: ")
        .map_err(|e| invalid(format!("cannot read a password from the terminal: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pogo_remote::api::{Counts, JobState};

    pub(crate) fn job(id: &str) -> JobSummary {
        JobSummary {
            id: id.to_string(),
            state: JobState::Running,
            command: "true".to_string(),
            hosts: 1,
            counts: Counts::default(),
            submitted_at: 0,
            submitted_by: "op".to_string(),
            reasons: Vec::new(),
            last_event: 0,
            closed: false,
            closed_by: None,
            closed_at: None,
            approvals: Vec::new(),
        }
    }

    #[test]
    fn jobs_are_named_by_last_by_id_or_by_a_unique_prefix() {
        let jobs = [
            job("job-20261124T230300Z-00aa"),
            job("job-20261124T230102Z-3f9a"),
            job("job-20261124T230102Z-3f00"),
        ];
        assert_eq!(
            resolve_job("last", &jobs).as_deref(),
            Ok("job-20261124T230300Z-00aa")
        );
        assert_eq!(
            resolve_job("job-20261124T230102Z-3f9a", &jobs).as_deref(),
            Ok("job-20261124T230102Z-3f9a")
        );
        assert_eq!(
            resolve_job("job-20261124T2303", &jobs).as_deref(),
            Ok("job-20261124T230300Z-00aa")
        );
        // The `job-` may be left out.
        assert_eq!(
            resolve_job("20261124T230102Z-3f9", &jobs).as_deref(),
            Ok("job-20261124T230102Z-3f9a")
        );
        let error = resolve_job("20261124T2301", &jobs).expect_err("ambiguous");
        assert!(error.contains("start of 2 job ids"), "{error}");
        assert!(error.contains("job-20261124T230102Z-3f9a"), "{error}");
        assert!(error.contains("job-20261124T230102Z-3f00"), "{error}");
        let error = resolve_job("job-2027", &jobs).expect_err("none");
        assert!(error.contains("no job `job-2027`"), "{error}");
        let error = resolve_job("last", &[]).expect_err("none");
        assert!(error.contains("no jobs"), "{error}");
    }

    #[test]
    fn whole_ids_need_no_lookup() {
        assert!(is_whole_job_id("job-20261124T230102Z-3f9a"));
        assert!(!is_whole_job_id("job-20261124T2301"));
        assert!(!is_whole_job_id("20261124T230102Z-3f9a"));
    }

    #[test]
    fn a_bare_dispatcher_flag_leaves_the_argument_after_it_to_the_command() {
        let words = |line: &str| -> Vec<OsString> { line.split(' ').map(OsString::from).collect() };
        let seen = |line: &str| -> Vec<String> {
            separate_bare_dispatcher(words(line))
                .into_iter()
                .map(|w| w.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            seen("pogo status --dispatcher job-1 --why"),
            ["pogo", "status", "--dispatcher=", "job-1", "--why"]
        );
        assert_eq!(
            seen("pogo log --dispatcher https://d:1 last"),
            ["pogo", "log", "--dispatcher", "https://d:1", "last"]
        );
        assert_eq!(
            seen("pogo jobs --dispatcher --json"),
            ["pogo", "jobs", "--dispatcher", "--json"]
        );
        assert_eq!(
            seen("pogo worker --dispatcher d:1"),
            ["pogo", "worker", "--dispatcher", "d:1"]
        );
        assert_eq!(
            seen("pogo apply -- --dispatcher x"),
            ["pogo", "apply", "--", "--dispatcher", "x"]
        );
    }

    #[test]
    fn suggested_commands_repeat_the_flags_given() {
        let flags = DispatcherFlags {
            dispatcher: Some("https://d:8443".into()),
            ca: Some("my ca.pem".into()),
            ..DispatcherFlags::default()
        };
        assert_eq!(
            flags.repeat(),
            " --dispatcher https://d:8443 --ca 'my ca.pem'"
        );
        assert_eq!(DispatcherFlags::default().repeat(), "");
    }

    #[test]
    fn a_refused_certificate_says_so() {
        let failure = client_failure(ClientError::Connect {
            url: "https://d:1".into(),
            message: "received fatal alert: UnknownCA".into(),
        });
        assert!(failure.message.contains("refused"), "{}", failure.message);
        assert!(
            failure.message.contains("certificate"),
            "{}",
            failure.message
        );
        let failure = client_failure(ClientError::Status {
            status: 403,
            message: "a worker certificate cannot submit jobs".into(),
        });
        assert!(
            failure.message.contains("operator certificate"),
            "{}",
            failure.message
        );
    }
}
