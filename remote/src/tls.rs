//! rustls configurations from PEM files: the dispatcher's (a client certificate from the CA
//! is required) and the clients' (operator and worker: the dispatcher's certificate must come
//! from the CA and carry the dispatcher role, and the client shows its own).
//!
//! Both use the ring provider, TLS 1.2 and 1.3, and ALPN `http/1.1`. A certificate file may
//! hold a chain (the certificate first, then intermediates); the CA file may hold several
//! roots. Loading checks what the handshake would find only later: that the key is the
//! certificate's, and that the certificate is valid now and has the right role.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::certs::{self, Identity, Role};

/// A certificate, its key and the deployment's CA, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Why a TLS configuration could not be made, or a peer could not be identified.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// The only protocol pogo speaks over TLS.
pub const ALPN: &[u8] = b"http/1.1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The dispatcher's server configuration: it requires a client certificate signed by the CA.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = own_chain(
        &files.cert,
        &[Role::Dispatcher],
        "the dispatcher needs its own",
    )?;
    let key = load_key(&files.key)?;
    let roots = Arc::new(load_roots(&files.ca)?);
    let provider = provider();
    // Built without `allow_unauthenticated`: a client without a certificate is refused
    // during the handshake.
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError(format!("`{}`: {e}", files.ca.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError(format!("cannot configure TLS: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| key_error(files, e))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration (operator or worker).
pub fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, TlsError> {
    let chain = own_chain(
        &files.cert,
        &[Role::Operator, Role::Worker],
        "an operator or a worker needs its own",
    )?;
    let key = load_key(&files.key)?;
    let roots = Arc::new(load_roots(&files.ca)?);
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError(format!("`{}`: {e}", files.ca.display())))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError(format!("cannot configure TLS: {e}")))?
        // The usual checks (the CA, the name, the dates) and then one more: the role.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(DispatcherVerifier { inner }))
        .with_client_auth_cert(chain, key)
        .map_err(|e| key_error(files, e))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Who the peer of a finished handshake is, from the certificates it presented
/// (`ServerConnection::peer_certificates`, its own first). The dispatcher's configuration
/// has already checked that the CA signed it.
pub fn peer_identity(peer_certificates: &[CertificateDer<'_>]) -> Result<Identity, TlsError> {
    let Some(first) = peer_certificates.first() else {
        return Err(TlsError("the peer presented no certificate".into()));
    };
    certs::identity_of(first).map_err(|e| TlsError(format!("the peer's {e}")))
}

fn key_error(files: &TlsFiles, error: rustls::Error) -> TlsError {
    match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError(format!(
                "`{}` is not the key of `{}`",
                files.key.display(),
                files.cert.display()
            ))
        }
        other => TlsError(format!(
            "`{}`: cannot use this key with `{}`: {other}",
            files.key.display(),
            files.cert.display()
        )),
    }
}

fn pem_error(path: &Path, what: &str, error: pem::Error) -> TlsError {
    match error {
        pem::Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            TlsError(format!("{what} `{}` does not exist", path.display()))
        }
        pem::Error::Io(e) => TlsError(format!("cannot read {what} `{}`: {e}", path.display())),
        pem::Error::NoItemsFound => TlsError(format!(
            "`{}` holds no {what} (no PEM block of that kind)",
            path.display()
        )),
        other => TlsError(format!(
            "{what} `{}` is not a valid PEM file: {other}",
            path.display()
        )),
    }
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, what, e))?;
    if chain.is_empty() {
        return Err(pem_error(path, what, pem::Error::NoItemsFound));
    }
    Ok(chain)
}

/// This side's certificate chain, checked: valid now, one of `roles` (else: "`FILE` is a
/// worker's certificate; {needs}").
fn own_chain(
    path: &Path,
    roles: &[Role],
    needs: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = load_certs(path, "certificate")?;
    let info =
        certs::inspect(&chain[0]).map_err(|e| TlsError(format!("`{}`: {e}", path.display())))?;
    match &info.identity {
        Ok(identity) if !roles.contains(&identity.role) => {
            return Err(TlsError(format!(
                "`{}` is {}'s certificate; {needs}",
                path.display(),
                identity.role.with_article()
            )))
        }
        Err(_) if info.is_ca => {
            // The CA's certificate given in place of the holder's own.
            return Err(TlsError(format!(
                "`{}` is the CA's certificate; {needs}",
                path.display()
            )));
        }
        _ => {}
    }
    let problems = info.problems(SystemTime::now());
    if !problems.is_empty() {
        return Err(TlsError(format!(
            "`{}`: {} (see `pogo certs show {}`)",
            path.display(),
            problems.join("; "),
            path.display()
        )));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, "private key", e))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for der in load_certs(path, "CA certificate")? {
        roots.add(der).map_err(|e| {
            TlsError(format!(
                "`{}`: not a usable CA certificate: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// The CA's verifier, plus the role: a worker's or operator's certificate, though signed by
/// the same CA, must not pass for the dispatcher.
#[derive(Debug)]
struct DispatcherVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

/// Why a server's certificate was refused although the CA signed it.
struct NotADispatcher(String);

impl std::fmt::Debug for NotADispatcher {
    // rustls shows the cause of `CertificateError::Other` with `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for NotADispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotADispatcher {}

impl ServerCertVerifier for DispatcherVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let refuse = |why: String| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(NotADispatcher(why)),
            )))
        };
        match certs::identity_of(end_entity) {
            Ok(identity) if identity.role == Role::Dispatcher => Ok(verified),
            Ok(identity) => Err(refuse(format!(
                "the server's certificate is a {}'s (`{}`), not a dispatcher's",
                identity.role, identity.name
            ))),
            Err(e) => Err(refuse(format!("the server's {e}"))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
