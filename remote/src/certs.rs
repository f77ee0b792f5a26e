//! The deployment's certificates: a CA, and a certificate per dispatcher, worker and operator,
//! each carrying its role (see docs/certs.md).
//!
//! A certificate's subject says who holds it: the organizational unit (OU) is the role
//! (`operator`, `worker` or `dispatcher`, exactly one OU), the common name (CN) is the name.
//! Any CA can issue such certificates, pogo's own (`pogo certs init`) or an organisation's.
//!
//! Files in a certificate directory: `ca.pem`, `ca-key.pem`, `dispatcher.pem`,
//! `dispatcher-key.pem`, `worker-NAME.pem`, `worker-NAME-key.pem`, `operator-NAME.pem`,
//! `operator-NAME-key.pem`. Keys are written mode 0600, a new directory 0700, and no file is
//! ever overwritten.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The CA's certificate in a certificate directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key in a certificate directory.
pub const CA_KEY: &str = "ca-key.pem";
/// The organization (O) of every certificate pogo makes.
pub const ORGANIZATION: &str = "pogo";
/// The longest name: X.509's upper bound for a common name.
pub const MAX_NAME_LEN: usize = 64;

/// How long the CA made by [`init`] lasts at least: it must outlive the certificates it
/// issues later, renewals included.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What a certificate allows its holder to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Submits, watches, halts, resumes and retries jobs.
    Operator,
    /// Takes tasks and reports their results.
    Worker,
    /// Serves the API.
    Dispatcher,
}

impl Role {
    /// The role as certificates (OU) and the command line write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Worker => "worker",
            Role::Dispatcher => "dispatcher",
        }
    }
}

impl Role {
    /// `an operator`, `a worker`, `a dispatcher`.
    pub fn with_article(self) -> &'static str {
        match self {
            Role::Operator => "an operator",
            Role::Worker => "a worker",
            Role::Dispatcher => "a dispatcher",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "operator" => Ok(Role::Operator),
            "worker" => Ok(Role::Worker),
            "dispatcher" => Ok(Role::Dispatcher),
            other => Err(format!(
                "unknown role `{other}`: expected operator, worker or dispatcher"
            )),
        }
    }
}

/// Who a peer is, read from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    /// The certificate's common name.
    pub name: String,
}

/// Why certificates could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}")]
    Invalid(String),
    #[error("`{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(message: impl Into<String>) -> CertError {
    CertError::Invalid(message.into())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The validity period of a new certificate.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (clocks differ a little between machines) to `days` days from now.
    pub fn days_from_now(days: u32) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(u64::from(days) * 24 * 3600),
        }
    }
}

/// What `pogo certs init` makes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// DNS names and IP addresses the dispatcher is reached at.
    pub dispatcher_names: Vec<String>,
    pub workers: Vec<String>,
    pub operators: Vec<String>,
    /// The certificates' validity. The CA's starts at the same time and lasts ten years, or
    /// until `not_after` when that is later.
    pub validity: Validity,
}

/// A certificate and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the certificate of `role` and `name` lives in `dir`. There is one dispatcher
/// certificate per directory, whatever its name.
pub fn issued_paths(dir: &Path, role: Role, name: &str) -> Issued {
    // The dispatcher of the default name keeps the plain names; several dispatchers (on
    // one PostgreSQL) each have a pair of their own.
    let stem = match role {
        Role::Dispatcher if name == "dispatcher" => "dispatcher".to_string(),
        Role::Dispatcher | Role::Worker | Role::Operator => format!("{role}-{name}"),
    };
    Issued {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}-key.pem")),
    }
}

/// Checks a worker's, operator's or dispatcher's name: letters, digits, `.`, `_` and `-`,
/// not starting with `.`, at most 64 characters. It becomes part of file names and shows in
/// job listings.
pub fn check_name(name: &str) -> Result<(), CertError> {
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "name `{}`: `{}` is not allowed: use letters, digits, `.`, `_` and `-`",
            name.escape_debug(),
            bad.escape_debug()
        )));
    }
    if name.starts_with('.') {
        return Err(invalid(format!("name `{name}`: must not start with `.`")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "name `{name}`: longer than {MAX_NAME_LEN} characters"
        )));
    }
    Ok(())
}

/// The role and name in a peer's certificate (DER).
pub fn identity_of(cert_der: &[u8]) -> Result<Identity, CertError> {
    let cert = parse(cert_der)?;
    identity_in(&cert)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(invalid(format!("not a valid X.509 certificate: {e}"))),
    }
}

fn identity_in(cert: &X509Certificate<'_>) -> Result<Identity, CertError> {
    let subject = cert.subject();
    let what = format!("certificate of `{subject}`");
    fn text<'a>(
        attr: &x509_parser::x509::AttributeTypeAndValue<'a>,
        what: &str,
        field: &str,
    ) -> Result<&'a str, CertError> {
        attr.as_str()
            .map_err(|_| invalid(format!("{what}: its {field} is not a text string")))
    }
    let units: Vec<_> = subject.iter_organizational_unit().collect();
    let role = match units.as_slice() {
        [] => {
            return Err(invalid(format!(
                "{what}: no organizational unit (OU): pogo reads the role from it \
                 (operator, worker or dispatcher)"
            )))
        }
        [unit] => {
            let unit = text(unit, &what, "organizational unit (OU)")?;
            unit.parse::<Role>()
                .map_err(|e| invalid(format!("{what}: OU: {e}")))?
        }
        several => {
            return Err(invalid(format!(
                "{what}: {} organizational units (OU): pogo needs exactly one, the role \
                 (operator, worker or dispatcher)",
                several.len()
            )))
        }
    };
    let names: Vec<_> = subject.iter_common_name().collect();
    let name = match names.as_slice() {
        [] => {
            return Err(invalid(format!(
                "{what}: no common name (CN): pogo reads the {role}'s name from it"
            )))
        }
        [name] => text(name, &what, "common name (CN)")?,
        several => {
            return Err(invalid(format!(
                "{what}: {} common names (CN): pogo needs exactly one, the {role}'s name",
                several.len()
            )))
        }
    };
    check_name(name).map_err(|e| invalid(format!("{what}: CN: {e}")))?;
    Ok(Identity {
        role,
        name: name.to_string(),
    })
}

/// What `pogo certs show` tells of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Its role and name, or why pogo cannot read them (a CA has neither).
    pub identity: Result<Identity, String>,
    /// Whether it may sign certificates (basic constraints CA).
    pub is_ca: bool,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Subject alternative names: DNS names and IP addresses.
    pub names: Vec<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, ...); `None` when the certificate
    /// does not restrict them.
    pub extended_key_usage: Option<Vec<String>>,
}

impl CertInfo {
    /// What keeps pogo from using the certificate at `now`; empty when nothing does.
    pub fn problems(&self, now: SystemTime) -> Vec<String> {
        let mut problems = Vec::new();
        if now > self.not_after {
            problems.push(format!("expired on {}", format_utc(self.not_after)));
        } else if now < self.not_before {
            problems.push(format!("not valid before {}", format_utc(self.not_before)));
        }
        if self.is_ca {
            return problems;
        }
        let allows = |usage: &str| {
            self.extended_key_usage
                .as_ref()
                .is_none_or(|usages| usages.iter().any(|u| u == usage))
        };
        match &self.identity {
            Err(e) => problems.push(e.clone()),
            Ok(identity) if identity.role == Role::Dispatcher => {
                if !allows("serverAuth") {
                    problems.push(
                        "no serverAuth extended key usage: clients refuse it as a server".into(),
                    );
                }
                if self.names.is_empty() {
                    problems.push(
                        "no subject alternative names: clients cannot check the \
                         dispatcher's name against it"
                            .into(),
                    );
                }
            }
            Ok(_) => {
                if !allows("clientAuth") {
                    problems
                        .push("no clientAuth extended key usage: the dispatcher refuses it".into());
                }
            }
        }
        problems
    }
}

/// Reads a certificate (DER) for `pogo certs show`.
pub fn inspect(cert_der: &[u8]) -> Result<CertInfo, CertError> {
    let cert = parse(cert_der)?;
    let time = |t: &x509_parser::time::ASN1Time| from_unix(t.timestamp());
    let mut names = Vec::new();
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| invalid(format!("unreadable subject alternative names: {e}")))?;
    for name in sans.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(dns) => names.push(dns.to_string()),
            GeneralName::IPAddress(bytes) => match ip_of(bytes) {
                Some(ip) => names.push(ip.to_string()),
                None => names.push(format!("(IP address of {} bytes)", bytes.len())),
            },
            other => names.push(other.to_string()),
        }
    }
    let extended_key_usage = cert
        .extended_key_usage()
        .map_err(|e| invalid(format!("unreadable extended key usage: {e}")))?
        .map(|ext| {
            let eku = ext.value;
            let known = [
                (eku.server_auth, "serverAuth"),
                (eku.client_auth, "clientAuth"),
                (eku.any, "anyExtendedKeyUsage"),
                (eku.code_signing, "codeSigning"),
                (eku.email_protection, "emailProtection"),
                (eku.time_stamping, "timeStamping"),
                (eku.ocsp_signing, "OCSPSigning"),
            ];
            known
                .iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| name.to_string())
                .chain(eku.other.iter().map(|oid| oid.to_id_string()))
                .collect()
        });
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        identity: identity_in(&cert).map_err(|e| e.to_string()),
        is_ca: cert.is_ca(),
        not_before: time(&cert.validity().not_before),
        not_after: time(&cert.validity().not_after),
        names,
        extended_key_usage,
    })
}

/// Reads every certificate of a PEM file, for `pogo certs show`.
pub fn inspect_file(path: &Path) -> Result<Vec<CertInfo>, CertError> {
    let ders = read_certs(path)?;
    ders.iter()
        .map(|der| inspect(der).map_err(|e| invalid(format!("`{}`: {e}", path.display()))))
        .collect()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let text = std::fs::read(path).map_err(io_error(path))?;
    let ders = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("`{}`: not a valid PEM file: {e}", path.display())))?;
    if ders.is_empty() {
        return Err(invalid(format!(
            "`{}` holds no certificate (no `BEGIN CERTIFICATE` block)",
            path.display()
        )));
    }
    Ok(ders)
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn from_unix(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn to_unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// `2026-05-01 12:00:00 UTC`.
pub fn format_utc(t: SystemTime) -> String {
    match OffsetDateTime::from_unix_timestamp(to_unix(t)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{} seconds after 1970", to_unix(t)),
    }
}

fn x509_time(t: SystemTime, what: &str) -> Result<OffsetDateTime, CertError> {
    OffsetDateTime::from_unix_timestamp(to_unix(t))
        .ok()
        .filter(|t| (1950..=9999).contains(&t.year()))
        .ok_or_else(|| invalid(format!("{what} is out of range for a certificate")))
}

fn check_validity(validity: &Validity) -> Result<(), CertError> {
    if validity.not_after <= validity.not_before {
        return Err(invalid(format!(
            "the validity ends ({}) before it starts ({})",
            format_utc(validity.not_after),
            format_utc(validity.not_before)
        )));
    }
    Ok(())
}

fn new_key() -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| invalid(format!("cannot make a key: {e}")))
}

fn ca_params(validity: &Validity, key: &KeyPair) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    // Every CA gets a name of its own: a peer that finds its issuer by name then tells
    // "another deployment's CA" (unknown issuer) from "a forged certificate" (bad signature).
    // The first bytes of a fresh public key are as good as random.
    let tag: String = key
        .public_key_raw()
        .iter()
        .skip(1)
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    dn.push(DnType::CommonName, format!("pogo CA {tag}"));
    params.distinguished_name = dn;
    params.not_before = x509_time(validity.not_before, "the CA's start")?;
    let not_after = match validity.not_before.checked_add(CA_LIFETIME) {
        Some(ten_years) => validity.not_after.max(ten_years),
        None => validity.not_after,
    };
    params.not_after = x509_time(not_after, "the CA's end")?;
    // The CA signs end certificates only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn leaf_params(
    role: Role,
    name: &str,
    names: &[String],
    validity: &Validity,
) -> Result<CertificateParams, CertError> {
    check_name(name)?;
    check_validity(validity)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::OrganizationalUnitName, role.as_str());
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.not_before = x509_time(validity.not_before, "the start of the validity")?;
    params.not_after = x509_time(validity.not_after, "the end of the validity")?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    match role {
        Role::Dispatcher => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.subject_alt_names = dispatcher_sans(names)?;
        }
        Role::Worker | Role::Operator => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    Ok(params)
}

fn dispatcher_sans(names: &[String]) -> Result<Vec<SanType>, CertError> {
    if names.is_empty() {
        return Err(invalid(
            "a dispatcher certificate needs at least one DNS name or IP address",
        ));
    }
    let mut sans = Vec::new();
    for name in names {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | '_'));
                if !valid {
                    return Err(invalid(format!(
                        "`{}` is neither a DNS name nor an IP address",
                        name.escape_debug()
                    )));
                }
                let dns = name.clone().try_into().map_err(|e| {
                    invalid(format!("`{name}` cannot be a certificate's DNS name: {e}"))
                })?;
                SanType::DnsName(dns)
            }
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

/// A certificate and key, made in memory, to be written.
struct Pair {
    paths: Issued,
    cert: String,
    key: String,
}

fn make_leaf(
    issuer: &Issuer<'_, KeyPair>,
    dir: &Path,
    role: Role,
    name: &str,
    names: &[String],
    validity: &Validity,
) -> Result<Pair, CertError> {
    let params = leaf_params(role, name, names, validity)?;
    let key = new_key()?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| invalid(format!("cannot sign the {role} certificate `{name}`: {e}")))?;
    Ok(Pair {
        paths: issued_paths(dir, role, name),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Bundles a certificate, its key and the CA into a PKCS#12 file at `out` (mode 0600, never
/// over an existing file), encrypted with `password` (PBES2 with AES-256 and an HMAC-SHA256
/// MAC, which browsers and `openssl pkcs12` read): what a browser imports to reach the
/// dispatcher's dashboard with an operator's certificate. The key must belong to the
/// certificate, and the CA must be the certificate's issuer.
pub fn export_p12(
    cert: &Path,
    key: &Path,
    ca: &Path,
    password: &str,
    out: &Path,
) -> Result<(), CertError> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

    let first_cert = |path: &Path| -> Result<Vec<u8>, CertError> {
        CertificateDer::pem_file_iter(path)
            .map_err(|e| invalid(format!("`{}`: {e}", path.display())))?
            .next()
            .ok_or_else(|| invalid(format!("`{}` holds no certificate", path.display())))?
            .map(|der| der.to_vec())
            .map_err(|e| invalid(format!("`{}`: {e}", path.display())))
    };
    let cert_der = first_cert(cert)?;
    let ca_der = first_cert(ca)?;
    let key_der = PrivatePkcs8KeyDer::from_pem_file(key)
        .map_err(|e| {
            invalid(format!(
                "`{}`: not a PKCS#8 private key (`BEGIN PRIVATE KEY`): {e}",
                key.display()
            ))
        })?
        .secret_pkcs8_der()
        .to_vec();
    // The key must be the certificate's: compare the public key the key makes with the
    // certificate's.
    let pair = KeyPair::try_from(key_der.as_slice())
        .map_err(|e| invalid(format!("`{}`: {e}", key.display())))?;
    let info = inspect(&cert_der)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| invalid(format!("`{}`: {e}", cert.display())))?;
    if parsed.public_key().subject_public_key.data.as_ref() != pair.public_key_raw() {
        return Err(invalid(format!(
            "`{}` is not the key of `{}`",
            key.display(),
            cert.display()
        )));
    }
    let ca_info = inspect(&ca_der)?;
    if ca_info.subject != info.issuer {
        return Err(invalid(format!(
            "`{}` did not issue `{}` (its issuer is {})",
            ca.display(),
            cert.display(),
            info.issuer
        )));
    }
    let p12 = |e: p12_keystore::error::Error| invalid(format!("cannot make the PKCS#12 file: {e}"));
    let chain = PrivateKeyChain::new(
        // The local key id ties the key to its certificate in the file.
        pair.public_key_raw()
            .iter()
            .take(20)
            .copied()
            .collect::<Vec<u8>>(),
        PrivateKey::from_der(&key_der).map_err(p12)?,
        [
            Certificate::from_der(&cert_der).map_err(p12)?,
            Certificate::from_der(&ca_der).map_err(p12)?,
        ],
    );
    let mut store = KeyStore::new();
    let alias = match &info.identity {
        Ok(identity) => format!("pogo {} {}", identity.role, identity.name),
        Err(_) => "pogo".to_string(),
    };
    store.add_entry(&alias, KeyStoreEntry::PrivateKeyChain(chain));
    let bytes = store.writer(password).write().map_err(p12)?;
    let mut files = NewFiles::new();
    files.write_bytes(out, &bytes, true)?;
    files.keep();
    Ok(())
}

/// Files written by one call: removed again unless the call succeeds, so a failed `init`
/// leaves no half-made CA behind.
struct NewFiles {
    written: Vec<PathBuf>,
}

impl NewFiles {
    fn new() -> NewFiles {
        NewFiles {
            written: Vec::new(),
        }
    }

    fn write(&mut self, path: &Path, text: &str, private: bool) -> Result<(), CertError> {
        self.write_bytes(path, text.as_bytes(), private)
    }

    fn write_bytes(&mut self, path: &Path, bytes: &[u8], private: bool) -> Result<(), CertError> {
        // create_new: never overwrite, even a file that appeared since the check.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if private { 0o600 } else { 0o644 })
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => exists(path),
                _ => io_error(path)(e),
            })?;
        self.written.push(path.to_path_buf());
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_error(path))
    }

    fn write_pair(&mut self, pair: &Pair) -> Result<(), CertError> {
        self.write(&pair.paths.cert, &pair.cert, false)?;
        self.write(&pair.paths.key, &pair.key, true)
    }

    fn keep(mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.written)
    }
}

impl Drop for NewFiles {
    fn drop(&mut self) {
        for path in &self.written {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn exists(path: &Path) -> CertError {
    invalid(format!(
        "`{}` exists: pogo never overwrites a certificate or a key; move it away first",
        path.display()
    ))
}

fn refuse_existing<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<(), CertError> {
    for path in paths {
        if path.symlink_metadata().is_ok() {
            return Err(exists(path));
        }
    }
    Ok(())
}

fn check_unique(names: &[String], role: Role) -> Result<(), CertError> {
    for (i, name) in names.iter().enumerate() {
        check_name(name).map_err(|e| invalid(format!("{role} {e}")))?;
        if names[..i].contains(name) {
            return Err(invalid(format!("{role} `{name}` is given twice")));
        }
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    match dir.metadata() {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(invalid(format!("`{}` is not a directory", dir.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Parents as any directory; the one holding the keys for its owner only.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io_error(dir))
        }
        Err(e) => Err(io_error(dir)(e)),
    }
}

/// Creates the CA in `dir` and the certificates `options` asks for; returns the files written.
pub fn init(dir: &Path, options: &InitOptions) -> Result<Vec<PathBuf>, CertError> {
    check_validity(&options.validity)?;
    check_unique(&options.workers, Role::Worker)?;
    check_unique(&options.operators, Role::Operator)?;
    let (ca_cert, ca_key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    if ca_cert.symlink_metadata().is_ok() || ca_key.symlink_metadata().is_ok() {
        return Err(invalid(format!(
            "`{}` already holds a CA: add certificates with `pogo certs issue --dir {}`, \
             or choose another directory",
            dir.display(),
            dir.display()
        )));
    }

    let key = new_key()?;
    let params = ca_params(&options.validity, &key)?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| invalid(format!("cannot sign the CA certificate: {e}")))?;
    let ca = Pair {
        paths: Issued {
            cert: ca_cert,
            key: ca_key,
        },
        cert: cert.pem(),
        key: key.serialize_pem(),
    };
    let issuer = Issuer::new(params, key);
    let mut pairs = vec![ca];
    pairs.push(make_leaf(
        &issuer,
        dir,
        Role::Dispatcher,
        "dispatcher",
        &options.dispatcher_names,
        &options.validity,
    )?);
    for (role, names) in [
        (Role::Worker, &options.workers),
        (Role::Operator, &options.operators),
    ] {
        for name in names {
            pairs.push(make_leaf(&issuer, dir, role, name, &[], &options.validity)?);
        }
    }
    refuse_existing(
        pairs
            .iter()
            .flat_map(|pair| [pair.paths.cert.as_path(), pair.paths.key.as_path()]),
    )?;

    create_dir(dir)?;
    let mut files = NewFiles::new();
    for pair in &pairs {
        files.write_pair(pair)?;
    }
    Ok(files.keep())
}

/// Issues one more certificate with the CA in `dir`. `names` are the dispatcher's DNS names
/// and IP addresses (ignored for other roles).
pub fn issue(
    dir: &Path,
    role: Role,
    name: &str,
    names: &[String],
    validity: Validity,
) -> Result<Issued, CertError> {
    check_name(name)?;
    check_validity(&validity)?;
    let paths = issued_paths(dir, role, name);
    refuse_existing([paths.cert.as_path(), paths.key.as_path()])?;
    let (issuer, ca_not_after) = load_ca(dir)?;
    if validity.not_after > ca_not_after {
        return Err(invalid(format!(
            "the certificate would outlive the CA (`{}` ends {}): ask for fewer days, \
             or make a new CA",
            dir.join(CA_CERT).display(),
            format_utc(ca_not_after)
        )));
    }
    let pair = make_leaf(&issuer, dir, role, name, names, &validity)?;
    let mut files = NewFiles::new();
    files.write_pair(&pair)?;
    files.keep();
    Ok(pair.paths)
}

/// The CA of `dir`, ready to sign, and the end of its validity.
fn load_ca(dir: &Path) -> Result<(Issuer<'static, KeyPair>, SystemTime), CertError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let no_ca = |path: &Path| {
        invalid(format!(
            "`{}` does not exist: `{}` holds no CA (make one with `pogo certs init {}`)",
            path.display(),
            dir.display(),
            dir.display()
        ))
    };
    let read = |path: &Path| match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(no_ca(path)),
        Err(e) => Err(io_error(path)(e)),
    };
    let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);

    let ders = read_certs(&cert_path)?;
    let Some(der) = ders.first() else {
        return Err(no_ca(&cert_path));
    };
    let cert = parse(der).map_err(|e| invalid(format!("`{}`: {e}", cert_path.display())))?;
    if !cert.is_ca() {
        return Err(invalid(format!(
            "`{}` is not a CA certificate (its basic constraints do not say CA)",
            cert_path.display()
        )));
    }
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        invalid(format!(
            "`{}`: cannot read the CA's key ({e}): pogo reads unencrypted PKCS#8 keys \
             (`BEGIN PRIVATE KEY`); convert one with `openssl pkcs8 -topk8 -nocrypt`",
            key_path.display()
        ))
    })?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(invalid(format!(
            "`{}` is not the key of `{}`",
            key_path.display(),
            cert_path.display()
        )));
    }
    let not_after = from_unix(cert.validity().not_after.timestamp());
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
        .map_err(|e| invalid(format!("`{}`: {e}", cert_path.display())))?;
    Ok((issuer, not_after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn validity() -> Validity {
        Validity::days_from_now(30)
    }

    fn options(workers: &[&str], operators: &[&str]) -> InitOptions {
        InitOptions {
            dispatcher_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            workers: workers.iter().map(|s| s.to_string()).collect(),
            operators: operators.iter().map(|s| s.to_string()).collect(),
            validity: validity(),
        }
    }

    fn der_of(path: &Path) -> Vec<u8> {
        read_certs(path).unwrap().remove(0).to_vec()
    }

    fn mode(path: &Path) -> u32 {
        path.metadata().unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_a_ca_and_certificates_whose_identities_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deploy/certs");
        let written = init(&dir, &options(&["w1", "w2"], &["alice"])).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "ca-key.pem",
                "dispatcher.pem",
                "dispatcher-key.pem",
                "worker-w1.pem",
                "worker-w1-key.pem",
                "worker-w2.pem",
                "worker-w2-key.pem",
                "operator-alice.pem",
                "operator-alice-key.pem",
            ]
        );
        assert_eq!(mode(&dir), 0o700);
        assert_ne!(mode(&tmp.path().join("deploy")), 0o700);
        for path in written
            .iter()
            .filter(|p| p.to_str().unwrap().ends_with("-key.pem"))
        {
            assert_eq!(mode(path) & 0o077, 0, "{}", path.display());
        }

        let ca = inspect(&der_of(&dir.join("ca.pem"))).unwrap();
        assert!(ca.is_ca);
        assert!(ca.problems(SystemTime::now()).is_empty());
        assert!(ca.not_after > SystemTime::now() + CA_LIFETIME - Duration::from_secs(7200));

        let dispatcher = inspect(&der_of(&dir.join("dispatcher.pem"))).unwrap();
        assert_eq!(
            dispatcher.identity,
            Ok(Identity {
                role: Role::Dispatcher,
                name: "dispatcher".into()
            })
        );
        assert_eq!(dispatcher.names, ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(
            dispatcher.extended_key_usage,
            Some(vec!["serverAuth".to_string()])
        );
        assert!(!dispatcher.is_ca);
        assert!(
            dispatcher.subject.contains("O=pogo"),
            "{}",
            dispatcher.subject
        );

        let worker = identity_of(&der_of(&dir.join("worker-w2.pem"))).unwrap();
        assert_eq!((worker.role, worker.name.as_str()), (Role::Worker, "w2"));
        let operator = inspect(&der_of(&dir.join("operator-alice.pem"))).unwrap();
        assert_eq!(
            operator.identity,
            Ok(Identity {
                role: Role::Operator,
                name: "alice".into()
            })
        );
        assert_eq!(
            operator.extended_key_usage,
            Some(vec!["clientAuth".to_string()])
        );
        assert!(operator.problems(SystemTime::now()).is_empty());
    }

    #[test]
    fn init_refuses_a_directory_holding_a_ca_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path(), &options(&["w1"], &["alice"])).unwrap();
        let before = std::fs::read(tmp.path().join("ca-key.pem")).unwrap();
        let err = init(tmp.path(), &options(&["w9"], &[])).unwrap_err();
        assert!(err.to_string().contains("already holds a CA"), "{err}");
        assert_eq!(
            std::fs::read(tmp.path().join("ca-key.pem")).unwrap(),
            before
        );
        assert!(!tmp.path().join("worker-w9.pem").exists());
    }

    #[test]
    fn init_refuses_to_overwrite_any_file_and_writes_none() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("worker-w1-key.pem"), "mine").unwrap();
        let err = init(tmp.path(), &options(&["w1"], &[])).unwrap_err();
        assert!(
            err.to_string().contains("worker-w1-key.pem` exists"),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("worker-w1-key.pem")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn issue_adds_a_certificate_and_refuses_an_existing_name() {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path(), &options(&["w1"], &["alice"])).unwrap();
        let issued = issue(tmp.path(), Role::Worker, "w2", &[], validity()).unwrap();
        assert_eq!(issued, issued_paths(tmp.path(), Role::Worker, "w2"));
        assert_eq!(mode(&issued.key), 0o600);
        let info = inspect(&der_of(&issued.cert)).unwrap();
        assert_eq!(info.identity.unwrap().name, "w2");
        assert!(
            info.issuer.starts_with("O=pogo, CN=pogo CA "),
            "{}",
            info.issuer
        );

        let err = issue(tmp.path(), Role::Worker, "w1", &[], validity()).unwrap_err();
        assert!(err.to_string().contains("worker-w1.pem` exists"), "{err}");
        // Same name, other role: other files.
        issue(tmp.path(), Role::Operator, "w1", &[], validity()).unwrap();
    }

    #[test]
    fn issue_needs_a_ca_whose_key_matches() {
        let tmp = tempfile::tempdir().unwrap();
        let err = issue(tmp.path(), Role::Worker, "w1", &[], validity()).unwrap_err();
        assert!(err.to_string().contains("holds no CA"), "{err}");

        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        init(&a, &options(&[], &[])).unwrap();
        init(&b, &options(&[], &[])).unwrap();
        std::fs::remove_file(a.join("ca-key.pem")).unwrap();
        std::fs::copy(b.join("ca-key.pem"), a.join("ca-key.pem")).unwrap();
        let err = issue(&a, Role::Worker, "w1", &[], validity()).unwrap_err();
        assert!(err.to_string().contains("is not the key of"), "{err}");
        assert!(!a.join("worker-w1.pem").exists());
    }

    #[test]
    fn issue_refuses_a_certificate_that_outlives_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path(), &options(&[], &[])).unwrap();
        let err = issue(
            tmp.path(),
            Role::Worker,
            "w1",
            &[],
            Validity::days_from_now(20 * 365),
        )
        .unwrap_err();
        assert!(err.to_string().contains("outlive the CA"), "{err}");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "",
            ".hidden",
            "a/b",
            "../x",
            "a b",
            "é",
            "x\n",
            &"n".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["w1", "web-01.example.com", "A_b-c.d", "-x", &"n".repeat(64)] {
            check_name(good).unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        let err = init(tmp.path(), &options(&["ok", "../evil"], &[])).unwrap_err();
        assert!(
            err.to_string().starts_with("worker name `../evil`"),
            "{err}"
        );
        let err = init(tmp.path(), &options(&["w1", "w1"], &[])).unwrap_err();
        assert_eq!(err.to_string(), "worker `w1` is given twice");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        init(tmp.path(), &options(&[], &[])).unwrap();
        let err = issue(tmp.path(), Role::Operator, ".x", &[], validity()).unwrap_err();
        assert!(err.to_string().contains("must not start with `.`"), "{err}");
    }

    #[test]
    fn dispatcher_names_must_be_dns_names_or_ip_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path(), &options(&[], &[])).unwrap();
        std::fs::remove_file(tmp.path().join("dispatcher.pem")).unwrap();
        std::fs::remove_file(tmp.path().join("dispatcher-key.pem")).unwrap();
        let err = issue(tmp.path(), Role::Dispatcher, "d", &[], validity()).unwrap_err();
        assert!(err.to_string().contains("at least one DNS name"), "{err}");
        let bad = ["https://x".to_string()];
        let err = issue(tmp.path(), Role::Dispatcher, "d", &bad, validity()).unwrap_err();
        assert!(
            err.to_string().contains("neither a DNS name nor an IP"),
            "{err}"
        );
        let names = ["pogo.example.com".to_string(), "10.0.0.7".to_string()];
        // A dispatcher of another name than the default has files of its own (several
        // dispatchers share one PostgreSQL).
        let issued = issue(tmp.path(), Role::Dispatcher, "d", &names, validity()).unwrap();
        assert_eq!(issued.cert, tmp.path().join("dispatcher-d.pem"));
        assert_eq!(inspect(&der_of(&issued.cert)).unwrap().names, names);
    }

    fn self_signed_with(subject: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (ty, value) in subject {
            dn.push(ty.clone(), *value);
        }
        params.distinguished_name = dn;
        let key = new_key().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn identity_of_needs_one_known_role_and_one_name() {
        use DnType::{CommonName as CN, OrganizationalUnitName as OU};
        // rcgen keeps one value per attribute type: the same OID under another DnType
        // makes a second OU (or CN).
        let (ou2, cn2) = (
            DnType::CustomDnType(vec![2, 5, 4, 11]),
            DnType::CustomDnType(vec![2, 5, 4, 3]),
        );
        let cases: [(&[(DnType, &str)], &str); 6] = [
            (&[(CN, "w1")], "no organizational unit (OU)"),
            (&[(OU, "admin"), (CN, "w1")], "unknown role `admin`"),
            (
                &[(OU, "worker"), (ou2, "operator"), (CN, "w1")],
                "2 organizational units (OU): pogo needs exactly one",
            ),
            (&[(OU, "worker")], "no common name (CN)"),
            (
                &[(OU, "worker"), (CN, "a"), (cn2, "b")],
                "2 common names (CN)",
            ),
            (&[(OU, "operator"), (CN, "a b")], "CN: name `a b`"),
        ];
        for (subject, expected) in cases {
            let err = identity_of(&self_signed_with(subject)).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let ok = identity_of(&self_signed_with(&[(OU, "worker"), (CN, "w1")])).unwrap();
        assert_eq!(ok.role, Role::Worker);
        let err = identity_of(b"not a certificate").unwrap_err();
        assert!(
            err.to_string().contains("not a valid X.509 certificate"),
            "{err}"
        );
    }

    #[test]
    fn problems_say_why_pogo_would_refuse_a_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path(), &options(&[], &[])).unwrap();
        let past = Validity {
            not_before: SystemTime::now() - Duration::from_secs(10 * 86400),
            not_after: SystemTime::now() - Duration::from_secs(86400),
        };
        let issued = issue(tmp.path(), Role::Worker, "old", &[], past).unwrap();
        let info = inspect(&der_of(&issued.cert)).unwrap();
        let problems = info.problems(SystemTime::now());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("expired on "), "{problems:?}");

        let bare = inspect(&self_signed_with(&[(DnType::CommonName, "x")])).unwrap();
        assert!(bare.problems(SystemTime::now())[0].contains("no organizational unit"));
    }

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            format_utc(UNIX_EPOCH + Duration::from_secs(1_780_000_000)),
            "2026-05-28 20:26:40 UTC"
        );
    }
}
