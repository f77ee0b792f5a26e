//! `pogo certs init`, `pogo certs issue` and `pogo certs show`: the deployment's CA and the
//! certificates of its dispatcher, workers and operators (`pogo_remote::certs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{Args, Subcommand, ValueEnum};
use pogo_remote::certs::{self, CertInfo, InitOptions, Issued, Role, Validity};

use crate::failure::{emit, exit, invalid, usage, Failure};
use pogo_views::text::{plural, shell_word};

#[derive(Args)]
#[command(
    about = "Make the deployment's CA and certificates, and check certificates",
    long_about = "Make and read the certificates of a remote deployment.\n\n\
        The dispatcher, every worker and every operator authenticate with a certificate \
        signed by the deployment's CA, and a certificate grants its own role only: a \
        worker's cannot submit jobs, an operator's cannot take tasks. The role is the \
        certificate subject's organizational unit (OU=operator, worker or dispatcher), the \
        name its common name (CN), so an organisation's own CA can issue them too (see \
        docs/certs.md).\n\n\
        `init` makes a CA and a first set of certificates in a directory, `issue` adds one \
        with that CA, `show` prints what a certificate says and whether pogo would accept it.",
    after_help = "Examples:\n  \
        pogo certs init certs --name pogo.example.com --worker w1 --worker w2 --operator alice\n  \
        pogo certs issue --dir certs --role worker w3\n  \
        pogo certs show certs/worker-w3.pem"
)]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make a CA and the first certificates: the dispatcher's, workers', operators'
    #[command(
        long_about = "Make a CA in DIR and, signed by it, a certificate for the dispatcher, \
            for each --worker and for each --operator.\n\n\
            Files: ca.pem and ca-key.pem (the CA), dispatcher.pem and dispatcher-key.pem, \
            worker-NAME.pem and worker-NAME-key.pem, operator-NAME.pem and \
            operator-NAME-key.pem. Keys are ECDSA P-256, written readable by their owner only \
            (mode 0600); DIR is made mode 0700 when it does not exist. pogo never overwrites \
            a certificate or a key, and refuses a DIR that already holds a CA: add \
            certificates to it with `pogo certs issue`.\n\n\
            The dispatcher's certificate names localhost, 127.0.0.1 and ::1, and each --name: \
            give the DNS names and addresses workers and operators reach it at. Without \
            --worker, one worker `worker-1` is made; without --operator, one operator named \
            after $USER. Certificates are valid for --days days; the CA for ten years, or as \
            long as them if that is longer. ca-key.pem signs new certificates: keep it off \
            the fleet.",
        after_help = "Examples:\n  \
            pogo certs init certs\n  \
            pogo certs init /etc/pogo/ca --name pogo.example.com --worker w1 --operator alice"
    )]
    Init(InitArgs),
    /// Issue one more certificate with the CA of a directory
    #[command(
        long_about = "Issue a certificate with the CA in --dir (its ca.pem and ca-key.pem): \
            for a new worker or operator, or a dispatcher's for new names, or to renew one \
            that expires. The files are ROLE-NAME.pem and ROLE-NAME-key.pem \
            (dispatcher.pem and dispatcher-key.pem for the dispatcher of the default name; \
            several dispatchers on one PostgreSQL each take a name); pogo never overwrites \
            them: to renew a certificate, move the old pair away first.\n\n\
            A dispatcher's certificate names localhost, 127.0.0.1 and ::1, and each --name.\n\n\
            The CA may be an organisation's own, if its key is an unencrypted PKCS#8 PEM \
            file (`BEGIN PRIVATE KEY`); docs/certs.md shows how to issue with openssl instead.",
        after_help = "Examples:\n  \
            pogo certs issue --dir certs --role worker w3\n  \
            pogo certs issue --dir certs --role operator carol --days 90\n  \
            pogo certs issue --dir certs --role dispatcher --name pogo.example.com"
    )]
    Issue(IssueArgs),
    /// Print a certificate's role, name, validity and names, and whether pogo accepts it
    #[command(
        long_about = "Print what pogo reads in certificates (PEM files; every certificate of \
            a file holding a chain): role (OU) and name (CN), issuer, validity, extended key \
            usage and, for a dispatcher, the DNS names and addresses it is valid for. Each \
            reason pogo would refuse one is listed as a `problem`: no role or an unknown one, \
            expired, the wrong key usage for its role, a dispatcher without names.\n\n\
            Exit status: 0 when pogo accepts every certificate, 1 otherwise.",
        after_help = "Examples:\n  \
            pogo certs show certs/dispatcher.pem\n  \
            pogo certs show certs/*.pem"
    )]
    Show(ShowArgs),
    /// Bundle a certificate, its key and the CA into a PKCS#12 file for a browser
    #[command(
        long_about = "Write NAME's certificate and key, with the CA, into one PKCS#12 file \
            (ROLE-NAME.p12 in --dir, or -o FILE) that a browser imports, to open the \
            dispatcher's dashboard at https://DISPATCHER/ui/ with an operator's certificate. \
            The file is encrypted with a password (PBES2, AES-256) asked twice on the \
            terminal, or read from the first line of --password-file; it is written mode \
            0600, and never over an existing file.\n\n\
            In Chromium: Settings, Privacy and security, Security, Manage certificates, \
            Import. The browser must also trust the deployment's CA (ca.pem) for the \
            dispatcher's own certificate: import it under Authorities. `pogo ui` needs \
            neither: it opens the dashboard on this machine with the certificate files.",
        after_help = "Examples:\n  \
            pogo certs p12 --dir certs alice\n  \
            pogo certs p12 --dir certs alice -o ~/alice.p12 --password-file pw.txt"
    )]
    P12(P12Args),
}

#[derive(Args)]
struct InitArgs {
    /// The directory to make the CA and the certificates in
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// A DNS name or IP address of the dispatcher, besides localhost, 127.0.0.1 and ::1;
    /// repeatable
    #[arg(long = "name", value_name = "DNS_OR_IP")]
    names: Vec<String>,
    /// Make a worker's certificate; repeatable [default: worker-1]
    #[arg(long = "worker", value_name = "NAME")]
    workers: Vec<String>,
    /// Make an operator's certificate; repeatable [default: $USER]
    #[arg(long = "operator", value_name = "NAME")]
    operators: Vec<String>,
    #[command(flatten)]
    days: DaysArg,
}

#[derive(Args)]
struct IssueArgs {
    /// Whose certificate: operator, worker or dispatcher
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Its name (the certificate's CN): letters, digits, `.`, `_` and `-` [default for a
    /// dispatcher: dispatcher]
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// The directory holding the CA (ca.pem, ca-key.pem); the new files go there too
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// For a dispatcher: a DNS name or IP address it is reached at, besides localhost,
    /// 127.0.0.1 and ::1; repeatable
    #[arg(long = "name", value_name = "DNS_OR_IP")]
    names: Vec<String>,
    #[command(flatten)]
    days: DaysArg,
}

#[derive(Args)]
struct P12Args {
    /// Whose certificate: its name (the certificate's CN)
    #[arg(value_name = "NAME")]
    name: String,
    /// Its role
    #[arg(long, value_enum, default_value = "operator")]
    role: RoleArg,
    /// The directory holding the CA (ca.pem) and the certificate and key
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Where to write the file [default: DIR/ROLE-NAME.p12]
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Read the password from the first line of this file instead of asking for it
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

#[derive(Args)]
struct DaysArg {
    /// How many days the certificates are valid
    #[arg(
        long,
        value_name = "N",
        default_value_t = 825,
        value_parser = clap::value_parser!(u32).range(1..=36500)
    )]
    days: u32,
}

#[derive(Args)]
struct ShowArgs {
    /// Certificate files (PEM)
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Operator,
    Worker,
    Dispatcher,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Operator => Role::Operator,
            RoleArg::Worker => Role::Worker,
            RoleArg::Dispatcher => Role::Dispatcher,
        }
    }
}

/// The names a dispatcher's certificate always carries, so that it can be tried on one
/// machine.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The port the printed commands suggest.
const PORT: u16 = 8443;

/// `pogo certs`.
pub fn run(args: CertsArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    match args.command {
        CertsCommand::Init(args) => init(args, out).map(|()| exit::OK),
        CertsCommand::Issue(args) => issue(args, out).map(|()| exit::OK),
        CertsCommand::Show(args) => show(args, out),
        CertsCommand::P12(args) => p12(args, out).map(|()| exit::OK),
    }
}

/// The password of a PKCS#12 file: from `--password-file`, or asked twice.
fn p12_password(file: Option<&Path>) -> Result<String, Failure> {
    let password = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        None => {
            let ask = |prompt: &str| {
                rpassword::prompt_password(prompt).map_err(|e| {
                    invalid(format!(
                        "cannot read a password from the terminal: {e}; give --password-file"
                    ))
                })
            };
            let first = ask("Password for the PKCS#12 file: ")?;
            if ask("Again: ")? != first {
                return Err(invalid("the two passwords differ"));
            }
            first
        }
    };
    if password.is_empty() {
        return Err(invalid(
            "the PKCS#12 file needs a password: it holds a private key",
        ));
    }
    Ok(password)
}

fn p12(args: P12Args, out: &mut dyn Write) -> Result<(), Failure> {
    let role = Role::from(args.role);
    certs::check_name(&args.name).map_err(failed)?;
    let issued = certs::issued_paths(&args.dir, role, &args.name);
    let output = args
        .output
        .unwrap_or_else(|| issued.cert.with_extension("p12"));
    let password = p12_password(args.password_file.as_deref())?;
    certs::export_p12(
        &issued.cert,
        &issued.key,
        &args.dir.join(certs::CA_CERT),
        &password,
        &output,
    )
    .map_err(failed)?;
    emit(
        out,
        &format!(
            "Wrote {} ({role} {}'s certificate and key, and the CA), mode 0600.\n\
             Import it in the browser (Chromium: Settings, Privacy and security, Security, \
             Manage certificates), and the CA ({}) under Authorities; then open \
             https://DISPATCHER/ui/\n",
            output.display(),
            args.name,
            args.dir.join(certs::CA_CERT).display()
        ),
    )
}

fn failed(error: certs::CertError) -> Failure {
    invalid(error.to_string())
}

/// `--name`s first (the name to reach the dispatcher at), then the local names.
fn dispatcher_names(names: &[String]) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for name in names.iter().map(String::as_str).chain(LOCAL_NAMES) {
        if !all.iter().any(|n| n == name) {
            all.push(name.to_string());
        }
    }
    all
}

/// The operator `init` makes when none is asked for.
fn default_operator() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| certs::check_name(user).is_ok())
        .unwrap_or_else(|| "operator".to_string())
}

fn init(args: InitArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let workers = match args.workers.is_empty() {
        true => vec!["worker-1".to_string()],
        false => args.workers,
    };
    let operators = match args.operators.is_empty() {
        true => vec![default_operator()],
        false => args.operators,
    };
    let options = InitOptions {
        dispatcher_names: dispatcher_names(&args.names),
        workers,
        operators,
        validity: Validity::days_from_now(args.days.days),
    };
    let written = certs::init(&args.dir, &options).map_err(failed)?;
    let dir = &args.dir;

    let mut text = format!(
        "Wrote {} to {} (keys readable by you only):\n",
        plural(written.len(), "file"),
        dir.display()
    );
    let describe = |path: &Path| -> String {
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
        if file == certs::CA_CERT {
            "the CA's certificate: every machine needs it".to_string()
        } else if file == certs::CA_KEY {
            "the CA's key: signs new certificates; keep it off the fleet".to_string()
        } else if file.ends_with("-key.pem") {
            String::new()
        } else if file == "dispatcher.pem" {
            format!("dispatcher, for {}", options.dispatcher_names.join(", "))
        } else {
            let stem = file.trim_end_matches(".pem");
            match stem.split_once('-') {
                Some((role, name)) => format!("{role} {name}"),
                None => String::new(),
            }
        }
    };
    let width = written
        .iter()
        .map(|p| p.display().to_string().chars().count())
        .max()
        .unwrap_or(0);
    for path in &written {
        let what = describe(path);
        let line = format!("  {:width$}  {what}", path.display().to_string());
        text.push_str(line.trim_end());
        text.push('\n');
    }
    let info = certs::inspect_file(&dir.join(certs::CA_CERT)).map_err(failed)?;
    text.push_str(&format!(
        "\nCertificates valid until {} ({}); the CA until {}.\n",
        day(options.validity.not_after),
        plural(args.days.days as usize, "day"),
        info.first().map_or(String::new(), |ca| day(ca.not_after)),
    ));

    let url = dispatcher_url(&args.names);
    let mut steps = String::from("\nNext steps\n");
    let dispatcher = certs::issued_paths(dir, Role::Dispatcher, "dispatcher");
    steps.push_str(&next_step(
        Role::Dispatcher,
        &dispatcher,
        dir,
        &url,
        &args.names,
    ));
    for (role, names) in [
        (Role::Worker, &options.workers),
        (Role::Operator, &options.operators),
    ] {
        for name in names {
            let issued = certs::issued_paths(dir, role, name);
            steps.push_str(&next_step(role, &issued, dir, &url, &args.names));
        }
    }
    steps.push_str(&format!(
        "  More certificates, with this CA:\n    pogo certs issue --dir {} --role worker NAME\n",
        shell_word(&dir.display().to_string())
    ));
    text.push_str(&steps);
    emit(out, &text)
}

fn issue(args: IssueArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let role = Role::from(args.role);
    let name = match (&args.name, role) {
        (Some(name), _) => name.clone(),
        (None, Role::Dispatcher) => "dispatcher".to_string(),
        (None, _) => {
            return Err(usage(format!(
                "{}'s certificate needs a NAME: `pogo certs issue --role {role} NAME`",
                role.with_article()
            )))
        }
    };
    if role != Role::Dispatcher && !args.names.is_empty() {
        return Err(usage(format!(
            "--name gives a dispatcher's DNS names and addresses: {}'s certificate has none",
            role.with_article()
        )));
    }
    let names = match role {
        Role::Dispatcher => dispatcher_names(&args.names),
        Role::Worker | Role::Operator => Vec::new(),
    };
    let validity = Validity::days_from_now(args.days.days);
    let issued = certs::issue(&args.dir, role, &name, &names, validity).map_err(failed)?;
    let mut text = format!(
        "Wrote {} and {} ({role} {name}, valid until {}).\n",
        issued.cert.display(),
        issued.key.display(),
        day(validity.not_after)
    );
    if role == Role::Dispatcher {
        text.push_str(&format!("It is valid for {}.\n", names.join(", ")));
    }
    // Where the dispatcher is, as its certificate in the same directory says.
    let reach = match role {
        Role::Dispatcher => args.names.clone(),
        Role::Worker | Role::Operator => {
            let cert = certs::issued_paths(&args.dir, Role::Dispatcher, "dispatcher").cert;
            certs::inspect_file(&cert)
                .ok()
                .and_then(|infos| infos.into_iter().next())
                .map(|info| info.names)
                .unwrap_or_default()
        }
    };
    let url = dispatcher_url(&reach);
    text.push_str("\nNext step\n");
    text.push_str(&next_step(role, &issued, &args.dir, &url, &reach));
    emit(out, &text)
}

/// `https://NAME:8443` for the first name that is not a local one (`localhost` otherwise).
fn dispatcher_url(names: &[String]) -> String {
    let host = names
        .iter()
        .find(|n| !LOCAL_NAMES.contains(&n.as_str()))
        .map_or("localhost", String::as_str);
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("https://[{host}]:{PORT}"),
        Err(_) => format!("https://{host}:{PORT}"),
    }
}

/// How the holder of `issued` uses it: the command line, or the client config.
fn next_step(role: Role, issued: &Issued, dir: &Path, url: &str, names: &[String]) -> String {
    let ca = dir.join(certs::CA_CERT);
    let file = |p: &Path| {
        p.file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned())
    };
    let word = |p: &Path| shell_word(&p.display().to_string());
    let tls = format!(
        "--cert {} --key {} --ca {}",
        word(&issued.cert),
        word(&issued.key),
        word(&ca)
    );
    match role {
        Role::Dispatcher => {
            // Reached only by name on this machine: listen on loopback alone.
            let listen = match names.iter().all(|n| LOCAL_NAMES.contains(&n.as_str())) {
                true => "127.0.0.1",
                false => "0.0.0.0",
            };
            format!(
                "  On the dispatcher's machine ({}, {}, {}):\n    \
                 pogo dispatcher --listen {listen}:{PORT} {tls} --state-dir pogo-state\n",
                file(&issued.cert),
                file(&issued.key),
                file(&ca)
            )
        }
        Role::Worker => format!(
            "  On the machine of worker {} ({}, {}, {}):\n    \
             pogo worker --dispatcher {url} {tls}\n",
            file(&issued.cert)
                .trim_start_matches("worker-")
                .trim_end_matches(".pem"),
            file(&issued.cert),
            file(&issued.key),
            file(&ca)
        ),
        Role::Operator => {
            let absolute = |p: &Path| {
                let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                toml_string(&p.display().to_string())
            };
            format!(
                "  For operator {}: ~/.config/pogo/client.toml (or POGO_DISPATCHER, \
                 POGO_CERT, POGO_KEY, POGO_CA):\n    \
                 dispatcher = {}\n    cert = {}\n    key = {}\n    ca = {}\n",
                file(&issued.cert)
                    .trim_start_matches("operator-")
                    .trim_end_matches(".pem"),
                toml_string(url),
                absolute(&issued.cert),
                absolute(&issued.key),
                absolute(&ca)
            )
        }
    }
}

/// A TOML basic string: JSON's escapes are TOML's too.
fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `2029-02-27`.
fn day(t: SystemTime) -> String {
    let full = certs::format_utc(t);
    full.split(' ').next().unwrap_or(&full).to_string()
}

fn show(args: ShowArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let now = SystemTime::now();
    let mut text = String::new();
    let mut refused = 0;
    for (i, path) in args.files.iter().enumerate() {
        let infos = certs::inspect_file(path).map_err(failed)?;
        if i > 0 {
            text.push('\n');
        }
        for (j, info) in infos.iter().enumerate() {
            match infos.len() {
                1 => text.push_str(&format!("{}\n", path.display())),
                n => text.push_str(&format!(
                    "{} (certificate {} of {n})\n",
                    path.display(),
                    j + 1
                )),
            }
            let problems = info.problems(now);
            if !problems.is_empty() {
                refused += 1;
            }
            text.push_str(&describe(info, &problems, now));
        }
    }
    emit(out, &text)?;
    match refused {
        0 => Ok(exit::OK),
        n => Err(invalid(format!(
            "pogo would refuse {} (see `problem` above)",
            plural(n, "certificate")
        ))),
    }
}

/// One `  key      value` line per fact of `info`, then one `problem` line per entry of
/// `problems` (from [`CertInfo::problems`]), as of `now`.
fn describe(info: &CertInfo, problems: &[String], now: SystemTime) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    match (&info.identity, info.is_ca) {
        (_, true) => rows.push(("role", "CA (signs certificates)".into())),
        (Ok(identity), false) => {
            rows.push(("role", identity.role.to_string()));
            rows.push(("name", identity.name.clone()));
        }
        (Err(_), false) => rows.push(("role", "(none pogo can read)".into())),
    }
    rows.push(("subject", info.subject.clone()));
    rows.push(("issuer", info.issuer.clone()));
    let left = match info.not_after.duration_since(now) {
        Ok(left) => format!(
            "{} left",
            plural(((left.as_secs() + 43_200) / 86_400) as usize, "day")
        ),
        Err(_) => "expired".to_string(),
    };
    rows.push((
        "valid",
        format!(
            "{} to {} ({left})",
            certs::format_utc(info.not_before),
            certs::format_utc(info.not_after)
        ),
    ));
    rows.push((
        "usage",
        match &info.extended_key_usage {
            Some(usages) if usages.is_empty() => "(none)".into(),
            Some(usages) => usages.join(", "),
            None => "any (no extended key usage)".into(),
        },
    ));
    if !info.names.is_empty() {
        rows.push(("names", info.names.join(", ")));
    }
    for problem in problems {
        rows.push(("problem", problem.clone()));
    }
    rows.iter()
        .map(|(key, value)| format!("  {key:<8} {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        certs: CertsArgs,
    }

    fn pogo_certs(args: &[&str]) -> (Result<u8, Failure>, String) {
        let cli = Cli::try_parse_from(std::iter::once("certs").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        let result = run(cli.certs, &mut out);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn init_lists_the_files_and_the_next_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let dir_text = dir.to_str().unwrap();
        let (result, out) = pogo_certs(&[
            "init",
            dir_text,
            "--name",
            "pogo.example.com",
            "--worker",
            "w1",
            "--operator",
            "alice",
        ]);
        assert_eq!(result.ok(), Some(exit::OK));
        let out = out.replace(dir_text, "DIR");
        assert!(
            out.starts_with("Wrote 8 files to DIR (keys readable by you only):\n  DIR/ca.pem "),
            "{out}"
        );
        assert!(out.contains("DIR/dispatcher.pem          dispatcher, for pogo.example.com, localhost, 127.0.0.1, ::1\n"), "{out}");
        assert!(
            out.contains("  DIR/worker-w1.pem           worker w1\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "    pogo dispatcher --listen 0.0.0.0:8443 --cert DIR/dispatcher.pem \
             --key DIR/dispatcher-key.pem --ca DIR/ca.pem --state-dir pogo-state\n"
            ),
            "{out}"
        );
        assert!(out.contains(
            "    pogo worker --dispatcher https://pogo.example.com:8443 --cert DIR/worker-w1.pem \
             --key DIR/worker-w1-key.pem --ca DIR/ca.pem\n"
        ), "{out}");
        assert!(out.contains(
            "    dispatcher = \"https://pogo.example.com:8443\"\n    cert = \"DIR/operator-alice.pem\"\n"
        ), "{out}");

        let (result, _) = pogo_certs(&["show", &format!("{dir_text}/dispatcher.pem")]);
        assert_eq!(result.ok(), Some(exit::OK));

        let (result, _) = pogo_certs(&["init", dir_text]);
        let failure = result.err().unwrap();
        assert_eq!(failure.code, exit::INVALID);
        assert!(
            failure.message.contains("already holds a CA"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn p12_bundles_an_operators_certificate_for_a_browser_and_openssl_reads_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        pogo_certs(&["init", dir, "--operator", "alice"])
            .0
            .ok()
            .unwrap();
        let password = tmp.path().join("pw");
        std::fs::write(&password, "s3cret\n").unwrap();
        let password = password.to_str().unwrap();
        let (result, out) =
            pogo_certs(&["p12", "--dir", dir, "alice", "--password-file", password]);
        assert_eq!(result.ok(), Some(exit::OK), "{out}");
        let file = tmp.path().join("operator-alice.p12");
        assert!(out.contains("operator-alice.p12"), "{out}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // openssl reads it with the password: the certificate, the CA and the key.
        let listed = std::process::Command::new("openssl")
            .args(["pkcs12", "-in", file.to_str().unwrap(), "-passin"])
            .arg(format!("file:{password}"))
            .args(["-nodes"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        assert!(
            text.contains("CN = alice") || text.contains("CN=alice"),
            "{text}"
        );
        assert!(text.contains("BEGIN PRIVATE KEY"), "{text}");
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{text}");
        // A wrong password is refused by openssl; an existing file is never overwritten.
        let wrong = std::process::Command::new("openssl")
            .args([
                "pkcs12",
                "-in",
                file.to_str().unwrap(),
                "-passin",
                "pass:wrong",
                "-nodes",
            ])
            .output()
            .unwrap();
        assert!(!wrong.status.success());
        let (result, _) = pogo_certs(&["p12", "--dir", dir, "alice", "--password-file", password]);
        let failure = result.err().unwrap();
        assert!(failure.message.contains("exists"), "{}", failure.message);
        // Another's key is refused.
        let (result, _) = pogo_certs(&[
            "p12",
            "--dir",
            dir,
            "worker-1",
            "--role",
            "worker",
            "--password-file",
            password,
        ]);
        assert_eq!(result.ok(), Some(exit::OK));
        std::fs::copy(
            tmp.path().join("worker-worker-1-key.pem"),
            tmp.path().join("operator-alice-key.pem.tmp"),
        )
        .unwrap();
        std::fs::rename(
            tmp.path().join("operator-alice-key.pem.tmp"),
            tmp.path().join("operator-alice-key.pem"),
        )
        .unwrap();
        let out = tmp.path().join("other.p12");
        let (result, _) = pogo_certs(&[
            "p12",
            "--dir",
            dir,
            "alice",
            "--password-file",
            password,
            "-o",
            out.to_str().unwrap(),
        ]);
        let failure = result.err().unwrap();
        assert!(
            failure.message.contains("is not the key of"),
            "{}",
            failure.message
        );
        assert!(!out.exists());
    }

    #[test]
    fn init_makes_worker_1_and_an_operator_by_default() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        let (result, out) = pogo_certs(&["init", dir]);
        assert_eq!(result.ok(), Some(exit::OK));
        assert!(tmp.path().join("worker-worker-1.pem").exists());
        let operator = default_operator();
        assert!(tmp.path().join(format!("operator-{operator}.pem")).exists());
        assert!(
            out.contains("pogo dispatcher --listen 127.0.0.1:8443 "),
            "{out}"
        );
        assert!(
            out.contains("--dispatcher https://localhost:8443 "),
            "{out}"
        );
    }

    #[test]
    fn issue_writes_one_pair_and_says_how_to_use_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        pogo_certs(&["init", dir, "--name", "10.1.2.3"])
            .0
            .ok()
            .unwrap();
        let (result, out) = pogo_certs(&[
            "issue", "--dir", dir, "--role", "worker", "w7", "--days", "10",
        ]);
        assert_eq!(result.ok(), Some(exit::OK), "{out}");
        let out = out.replace(dir, "DIR");
        assert!(
            out.starts_with(
                "Wrote DIR/worker-w7.pem and DIR/worker-w7-key.pem (worker w7, valid until "
            ),
            "{out}"
        );
        assert!(
            out.contains("pogo worker --dispatcher https://10.1.2.3:8443 --cert DIR/worker-w7.pem"),
            "{out}"
        );

        let (result, _) = pogo_certs(&["issue", "--dir", dir, "--role", "worker", "w7"]);
        let failure = result.err().unwrap();
        assert!(
            failure.message.contains("worker-w7.pem` exists"),
            "{}",
            failure.message
        );

        let (result, _) = pogo_certs(&["issue", "--dir", dir, "--role", "operator"]);
        let failure = result.err().unwrap();
        assert_eq!(failure.code, exit::USAGE);
        assert!(
            failure
                .message
                .contains("an operator's certificate needs a NAME"),
            "{}",
            failure.message
        );

        let (result, _) = pogo_certs(&[
            "issue", "--dir", dir, "--role", "worker", "w8", "--name", "x",
        ]);
        let failure = result.err().unwrap();
        assert_eq!(failure.code, exit::USAGE);
        assert!(
            failure.message.contains("a worker's certificate has none"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn show_lists_problems_and_fails_for_certificates_pogo_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        pogo_certs(&["init", dir, "--worker", "w1"]).0.ok().unwrap();
        let ca = format!("{dir}/ca.pem");
        let worker = format!("{dir}/worker-w1.pem");
        let (result, out) = pogo_certs(&["show", &ca, &worker]);
        assert_eq!(result.ok(), Some(exit::OK), "{out}");
        let out = out.replace(dir, "DIR");
        assert!(
            out.starts_with("DIR/ca.pem\n  role     CA (signs certificates)\n"),
            "{out}"
        );
        assert!(out.contains("\n\nDIR/worker-w1.pem\n  role     worker\n  name     w1\n  subject  O=pogo, OU=worker, CN=w1\n"), "{out}");
        assert!(out.contains("  usage    clientAuth\n"), "{out}");

        // An expired certificate: listed, with the problem, and the exit status says so.
        let now = SystemTime::now();
        let past = Validity {
            not_before: now - std::time::Duration::from_secs(10 * 86_400),
            not_after: now - std::time::Duration::from_secs(86_400),
        };
        certs::issue(tmp.path(), Role::Worker, "old", &[], past).unwrap();
        let old = format!("{dir}/worker-old.pem");
        let (result, out) = pogo_certs(&["show", &worker, &old]);
        let failure = result.err().unwrap();
        assert_eq!(failure.code, exit::INVALID);
        assert_eq!(
            failure.message,
            "error: pogo would refuse 1 certificate (see `problem` above)\n"
        );
        assert!(
            out.contains("(expired)\n  usage    clientAuth\n  problem  expired on "),
            "{out}"
        );

        // Not a certificate at all.
        let key = format!("{dir}/worker-w1-key.pem");
        let (result, _) = pogo_certs(&["show", &key]);
        let failure = result.err().unwrap();
        assert!(
            failure.message.contains("holds no certificate"),
            "{}",
            failure.message
        );
    }
}
