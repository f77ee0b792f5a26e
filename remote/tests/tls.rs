//! Real TLS handshakes over loopback with the configurations of `pogo_remote::tls` and
//! certificates made by `pogo_remote::certs`: who gets in, who is refused, and why.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pogo_remote::certs::{self, Identity, InitOptions, Role, Validity};
use pogo_remote::tls::{client_config, peer_identity, server_config, TlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn an_operator_connects_and_the_server_reads_its_identity() {
    let ca = Deployment::new();
    let server = server_config(&ca.dispatcher()).unwrap();
    let client = client_config(&ca.files(Role::Operator, "alice")).unwrap();
    let (served, received) = handshake(server, client, "localhost").await;
    assert_eq!(
        served.unwrap(),
        Identity {
            role: Role::Operator,
            name: "alice".into()
        }
    );
    assert_eq!(received.unwrap(), b"hello");
}

#[tokio::test]
async fn a_worker_connects_over_tls12_to_an_ip_address() {
    let ca = Deployment::new();
    let dispatcher = ca.dispatcher();
    let server = plain_server_config(
        &ca,
        &dispatcher.cert,
        &dispatcher.key,
        &rustls::version::TLS12,
    );
    let client = client_config(&ca.files(Role::Worker, "w1")).unwrap();
    let (served, received) = handshake(server, client, "127.0.0.1").await;
    assert_eq!(served.unwrap().name, "w1");
    assert_eq!(received.unwrap(), b"hello");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = Deployment::new();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let server = server_config(&ca.dispatcher()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.ca_der()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let (served, received) = handshake(server, client, "localhost").await;
        let served = rustls_error(served);
        assert!(
            matches!(served, Error::NoCertificatesPresented),
            "{version:?}: {served:?}"
        );
        let received = rustls_error(received);
        assert!(
            matches!(
                received,
                Error::AlertReceived(AlertDescription::CertificateRequired)
            ),
            "{version:?}: {received:?}"
        );
    }
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let ca = Deployment::new();
    let other = Deployment::new();
    let server = server_config(&ca.dispatcher()).unwrap();
    // The client trusts our dispatcher, but its own certificate comes from another CA.
    let files = TlsFiles {
        ca: ca.dir().join("ca.pem"),
        ..other.files(Role::Operator, "alice")
    };
    let client = client_config(&files).unwrap();
    let (served, received) = handshake(server, client, "localhost").await;
    let served = rustls_error(served);
    assert!(
        matches!(
            served,
            Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{served:?}"
    );
    let received = rustls_error(received);
    assert!(
        matches!(received, Error::AlertReceived(AlertDescription::UnknownCA)),
        "{received:?}"
    );
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let ca = Deployment::new();
    let now = SystemTime::now();
    let past = Validity {
        not_before: now - Duration::from_secs(30 * 86400),
        not_after: now - Duration::from_secs(86400),
    };
    let issued = certs::issue(&ca.dir(), Role::Worker, "old", &[], past).unwrap();
    let files = TlsFiles {
        cert: issued.cert,
        key: issued.key,
        ca: ca.dir().join("ca.pem"),
    };
    // pogo's own configuration refuses to load it...
    let err = client_config(&files).unwrap_err().to_string();
    assert!(err.contains("worker-old.pem`: expired on "), "{err}");
    // ...and a client that sends it all the same is refused by the dispatcher.
    let client = lenient_client(&ca, &files);
    let server = server_config(&ca.dispatcher()).unwrap();
    let (served, received) = handshake(server, client, "localhost").await;
    let served = rustls_error(served);
    assert!(
        matches!(
            served,
            Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{served:?}"
    );
    let received = rustls_error(received);
    assert!(
        matches!(
            received,
            Error::AlertReceived(AlertDescription::CertificateExpired)
        ),
        "{received:?}"
    );
}

#[tokio::test]
async fn a_dispatcher_certificate_for_another_name_fails_on_the_client() {
    let ca = Deployment::new();
    let server = server_config(&ca.dispatcher()).unwrap();
    let client = client_config(&ca.files(Role::Operator, "alice")).unwrap();
    let (served, received) = handshake(server, client, "pogo.example.com").await;
    let received = rustls_error(received);
    assert!(
        matches!(
            received,
            Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{received:?}"
    );
    let served = rustls_error(served);
    assert!(
        matches!(
            served,
            Error::AlertReceived(AlertDescription::BadCertificate)
        ),
        "{served:?}"
    );
}

#[tokio::test]
async fn a_server_with_a_worker_certificate_is_not_taken_for_the_dispatcher() {
    let ca = Deployment::new();
    // A certificate the CA signed for serving, but for a worker: pogo never makes one, an
    // organisation's CA might.
    let (cert, key) = ca.sign_custom(
        Role::Worker,
        "w9",
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let err = server_config(&TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        ca: ca.dir().join("ca.pem"),
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("custom-w9.pem` is a worker's certificate; the dispatcher needs its own"),
        "{err}"
    );

    let server = plain_server_config(&ca, &cert, &key, &rustls::version::TLS13);
    let client = client_config(&ca.files(Role::Operator, "alice")).unwrap();
    let (_, received) = handshake(server, client, "localhost").await;
    let received = rustls_error(received);
    match received {
        Error::InvalidCertificate(CertificateError::Other(other)) => {
            let message = format!("{:?}", other.0);
            assert_eq!(
                message,
                "the server's certificate is a worker's (`w9`), not a dispatcher's"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn peer_identity_reads_the_first_certificate() {
    let ca = Deployment::new();
    let files = ca.files(Role::Worker, "w1");
    let chain: Vec<_> = std::fs::read(&files.cert).map(|pem| ders(&pem)).unwrap();
    assert_eq!(peer_identity(&chain).unwrap().name, "w1");
    let err = peer_identity(&[]).unwrap_err();
    assert_eq!(err.to_string(), "the peer presented no certificate");
    let ca_only = ders(&std::fs::read(ca.dir().join("ca.pem")).unwrap());
    let err = peer_identity(&ca_only).unwrap_err();
    assert!(
        err.to_string().contains("no organizational unit (OU)"),
        "{err}"
    );
}

#[test]
fn configurations_name_the_file_that_is_wrong() {
    let ca = Deployment::new();
    let good = ca.files(Role::Operator, "alice");
    let dispatcher = ca.dispatcher();
    let cases = [
        (
            TlsFiles {
                cert: ca.dir().join("nope.pem"),
                ..good.clone()
            },
            "certificate `DIR/nope.pem` does not exist",
        ),
        (
            TlsFiles {
                key: good.cert.clone(),
                ..good.clone()
            },
            "`DIR/operator-alice.pem` holds no private key",
        ),
        (
            TlsFiles {
                cert: good.key.clone(),
                ..good.clone()
            },
            "`DIR/operator-alice-key.pem` holds no certificate",
        ),
        (
            TlsFiles {
                key: ca.dir().join("worker-w1-key.pem"),
                ..good.clone()
            },
            "`DIR/worker-w1-key.pem` is not the key of `DIR/operator-alice.pem`",
        ),
        (
            TlsFiles {
                ca: ca.dir().join("empty.pem"),
                ..good.clone()
            },
            "`DIR/empty.pem` holds no CA certificate",
        ),
        (
            TlsFiles {
                cert: ca.dir().join("ca.pem"),
                key: ca.dir().join("ca-key.pem"),
                ..good.clone()
            },
            "`DIR/ca.pem` is the CA's certificate; an operator or a worker needs its own",
        ),
        (
            dispatcher.clone(),
            "`DIR/dispatcher.pem` is a dispatcher's certificate; an operator or a worker needs its own",
        ),
    ];
    std::fs::write(ca.dir().join("empty.pem"), "").unwrap();
    let dir = ca.dir().display().to_string();
    for (files, expected) in cases {
        let err = client_config(&files).unwrap_err().to_string();
        assert!(
            err.replace(&dir, "DIR").contains(expected),
            "{err}\nexpected: {expected}"
        );
    }
    let err = server_config(&good).unwrap_err().to_string();
    assert!(
        err.contains(
            "operator-alice.pem` is an operator's certificate; the dispatcher needs its own"
        ),
        "{err}"
    );
    let config = server_config(&dispatcher).unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    let config = client_config(&good).unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
}

/// A client that sends a certificate pogo's own configuration would not load.
fn lenient_client(ca: &Deployment, files: &TlsFiles) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca_der()).unwrap();
    let chain = ders(&std::fs::read(&files.cert).unwrap());
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap()
}

/// A CA made by `pogo certs init`, with worker `w1` and operator `alice`, in a directory that
/// goes away with it.
struct Deployment {
    tmp: tempfile::TempDir,
}

impl Deployment {
    fn new() -> Deployment {
        let tmp = tempfile::tempdir().unwrap();
        let options = InitOptions {
            dispatcher_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            workers: vec!["w1".into()],
            operators: vec!["alice".into()],
            validity: Validity::days_from_now(30),
        };
        certs::init(&tmp.path().join("certs"), &options).unwrap();
        Deployment { tmp }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("certs")
    }

    fn files(&self, role: Role, name: &str) -> TlsFiles {
        let issued = certs::issued_paths(&self.dir(), role, name);
        TlsFiles {
            cert: issued.cert,
            key: issued.key,
            ca: self.dir().join("ca.pem"),
        }
    }

    fn dispatcher(&self) -> TlsFiles {
        self.files(Role::Dispatcher, "dispatcher")
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        ders(&std::fs::read(self.dir().join("ca.pem")).unwrap()).remove(0)
    }

    /// A certificate for `localhost` with this role, name and extended key usage, signed by
    /// the CA without pogo's checks.
    fn sign_custom(
        &self,
        role: Role,
        name: &str,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let read = |file: &str| std::fs::read_to_string(self.dir().join(file)).unwrap();
        let ca_key = rcgen::KeyPair::from_pem(&read("ca-key.pem")).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&read("ca.pem"), ca_key).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationalUnitName, role.as_str());
        dn.push(rcgen::DnType::CommonName, name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (cert_path, key_path) = (
            self.dir().join(format!("custom-{name}.pem")),
            self.dir().join(format!("custom-{name}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

fn ders(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A server configuration as the dispatcher's, from any certificate, with one TLS version.
fn plain_server_config(
    ca: &Deployment,
    cert: &Path,
    key: &Path,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca_der()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain = ders(&std::fs::read(cert).unwrap());
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// One connection over loopback: the server reads the client's identity and sends `hello`;
/// the client reads until the end. Returns what each side got. A side whose handshake failed
/// keeps its TCP connection open until the other side closes, so that the alert it sent is
/// read, not lost to a reset.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
    server_name: &str,
) -> (io::Result<Identity>, io::Result<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let serve = async {
        let (tcp, _) = listener.accept().await?;
        match acceptor.accept(tcp).into_fallible().await {
            Ok(mut tls) => {
                let certs = tls.get_ref().1.peer_certificates().unwrap_or_default();
                let identity = peer_identity(certs).map_err(io::Error::other)?;
                tls.write_all(b"hello").await?;
                tls.shutdown().await?;
                Ok(identity)
            }
            Err((error, mut tcp)) => {
                let mut rest = Vec::new();
                let _ = tcp.read_to_end(&mut rest).await;
                Err(error)
            }
        }
    };
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = connector.connect(name, tcp).await?;
        let mut received = Vec::new();
        tls.read_to_end(&mut received).await?;
        Ok(received)
    };
    let both = async { tokio::join!(serve, connect) };
    // A guard against a hang, not a timing assumption: a handshake takes milliseconds.
    tokio::time::timeout(Duration::from_secs(20), both)
        .await
        .expect("the handshake hung")
}

/// The rustls error behind the I/O error of tokio-rustls that `result` must be.
fn rustls_error<T: std::fmt::Debug>(result: io::Result<T>) -> Error {
    let error = match result {
        Ok(value) => panic!("expected a TLS error, got {value:?}"),
        Err(error) => error,
    };
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    {
        Some(tls) => tls.clone(),
        None => panic!("expected a TLS error, got {error}"),
    }
}

/// The `sh` blocks of docs/certs.md's "Using an existing CA", in order.
fn openssl_script() -> String {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/certs.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let start = doc
        .find("\n## Using an existing CA\n")
        .expect("docs/certs.md has a section `Using an existing CA`");
    let section = &doc[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut script = String::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```\n").expect("a closed code block");
        script.push_str(&body[..close]);
        rest = &body[close..];
    }
    assert!(script.contains("openssl x509 -req"), "{script}");
    script
}

fn run_sh(dir: &Path, script: &str) {
    let output = std::process::Command::new("sh")
        .args(["-eu", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
    assert!(
        output.status.success(),
        "the script failed ({}):\n{script}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Needs `openssl` (Debian package openssl): fails, not skips, without it.
#[tokio::test]
async fn the_openssl_commands_of_docs_certs_md_make_certificates_pogo_accepts() {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs openssl on PATH (apt-get install openssl)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_sh(dir, &openssl_script());

    for (file, role, name) in [
        ("dispatcher.pem", Role::Dispatcher, "dispatcher"),
        ("worker-w1.pem", Role::Worker, "w1"),
        ("operator-alice.pem", Role::Operator, "alice"),
    ] {
        let infos = certs::inspect_file(&dir.join(file)).unwrap();
        assert_eq!(
            infos[0].identity,
            Ok(Identity {
                role,
                name: name.into()
            })
        );
        assert_eq!(infos[0].problems(SystemTime::now()), Vec::<String>::new());
    }
    let dispatcher = certs::inspect_file(&dir.join("dispatcher.pem")).unwrap();
    assert_eq!(
        dispatcher[0].names,
        ["pogo.example.com", "localhost", "127.0.0.1", "::1"]
    );
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca-key.pem", "worker-w1-key.pem"] {
        let mode = dir.join(key).metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{key}: {mode:o}");
    }

    let files = |stem: &str| TlsFiles {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}-key.pem")),
        ca: dir.join("ca.pem"),
    };
    let server = server_config(&files("dispatcher")).unwrap();
    for (stem, name) in [("worker-w1", "w1"), ("operator-alice", "alice")] {
        let client = client_config(&files(stem)).unwrap();
        let (served, received) = handshake(server.clone(), client, "localhost").await;
        assert_eq!(served.unwrap().name, name);
        assert_eq!(received.unwrap(), b"hello");
    }

    // `pogo certs issue` signs with the openssl CA.
    let issued = certs::issue(dir, Role::Worker, "w2", &[], Validity::days_from_now(30)).unwrap();
    assert_eq!(issued.cert, dir.join("worker-w2.pem"));
    let client = client_config(&files("worker-w2")).unwrap();
    let (served, _) = handshake(server.clone(), client, "127.0.0.1").await;
    assert_eq!(served.unwrap().name, "w2");

    // RSA keys work too, as the page says.
    run_sh(
        dir,
        "openssl req -new -newkey rsa:2048 -nodes -keyout operator-rsa-key.pem \
         -out operator-rsa.csr -subj /O=pogo/OU=operator/CN=rsa\n\
         openssl x509 -req -in operator-rsa.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
         -days 825 -extfile client.ext -out operator-rsa.pem\n",
    );
    let client = client_config(&files("operator-rsa")).unwrap();
    let (served, _) = handshake(server, client, "localhost").await;
    assert_eq!(served.unwrap().name, "rsa");
}
