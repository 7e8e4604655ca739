//! Mutual TLS: the listener, the client-certificate verifier with its revocation list, and
//! the caller identity derived once per connection.
//!
//! A connection that presents no certificate, one from another CA, an expired or a revoked
//! one never finishes its handshake. A certificate that verifies yields a [`ConnIdentity`]
//! that every request on that connection carries as an extension.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::pki::PkiPaths;
use crate::policy::{Policy, RoleSet};

/// How long a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most handshakes in progress at once; more wait, they do not spawn unbounded work.
pub const MAX_CONCURRENT_HANDSHAKES: usize = 256;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing or unreadable.
    #[error("cannot read {path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built (bad CA or CRL).
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The crypto provider partnergate uses everywhere: ring, AEAD suites only.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions partnergate speaks: TLS 1.3, then 1.2. Nothing older.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Builds the server configuration from the PKI files: the server chain, the partnership CA as
/// the only trust anchor for clients, and the revocation list (required: fail closed).
pub fn server_config(pki: &PkiPaths) -> Result<Arc<ServerConfig>, TlsError> {
    let ca =
        CertificateDer::from_pem_file(pki.ca_cert()).map_err(|e| pem_err(&pki.ca_cert(), e))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let crl = CertificateRevocationListDer::from_pem_file(pki.crl())
        .map_err(|e| pem_err(&pki.crl(), e))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls([crl])
        .build()?;
    let chain = CertificateDer::pem_file_iter(pki.server_cert())
        .map_err(|e| pem_err(&pki.server_cert(), e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&pki.server_cert(), e))?;
    let key = PrivateKeyDer::from_pem_file(pki.server_key())
        .map_err(|e| pem_err(&pki.server_key(), e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client of the agreement, as established by its certificate.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The certificate's subject CN, the client name in the agreement.
    pub client: Arc<str>,
    /// The partner organisation this client belongs to.
    pub partner: Arc<str>,
    /// The roles the agreement lets this client use.
    pub allowed_roles: RoleSet,
}

/// What one verified connection is, decided once at the handshake.
#[derive(Clone, Debug)]
pub enum ConnIdentity {
    /// A client the agreement names.
    Known(Caller),
    /// A certificate the CA signed for a name the agreement does not know.
    UnknownClient {
        /// The CN it presented (a technical client name, not personal data).
        cn: Arc<str>,
    },
}

impl ConnIdentity {
    /// Derives the identity from the verified end-entity certificate.
    pub fn from_certificate(cert: &CertificateDer<'_>, policy: &Policy) -> Self {
        let cn = common_name(cert).unwrap_or_default();
        match policy.agreement().client(&cn) {
            Some(client) => ConnIdentity::Known(Caller {
                client: cn.as_str().into(),
                partner: client.partner.as_str().into(),
                allowed_roles: policy.client_roles(&cn),
            }),
            None => ConnIdentity::UnknownClient {
                cn: sanitize_cn(&cn).into(),
            },
        }
    }

    /// The client name as presented.
    pub fn cn(&self) -> &str {
        match self {
            ConnIdentity::Known(c) => &c.client,
            ConnIdentity::UnknownClient { cn } => cn,
        }
    }
}

/// Keeps an unknown CN safe for logs: printable ASCII, bounded length.
fn sanitize_cn(cn: &str) -> String {
    cn.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

/// The subject common name of a DER certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

/// Holds the current server configuration and swaps it when the revocation list changes,
/// so `certs revoke` takes effect for new connections without a restart.
pub struct TlsReloader {
    current: ArcSwap<ServerConfig>,
    pki: PkiPaths,
    crl_mtime: std::sync::Mutex<Option<SystemTime>>,
}

impl TlsReloader {
    /// Loads the configuration for the first time.
    pub fn new(pki: PkiPaths) -> Result<Arc<Self>, TlsError> {
        let config = server_config(&pki)?;
        let mtime = std::fs::metadata(pki.crl()).and_then(|m| m.modified()).ok();
        Ok(Arc::new(Self {
            current: ArcSwap::new(config),
            pki,
            crl_mtime: std::sync::Mutex::new(mtime),
        }))
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Rebuilds the configuration if the revocation list changed on disk. A list that does
    /// not parse keeps the previous configuration and is logged: never fall back to none.
    pub fn reload_if_changed(&self) {
        let mtime = std::fs::metadata(self.pki.crl())
            .and_then(|m| m.modified())
            .ok();
        let mut seen = self.crl_mtime.lock().expect("not poisoned");
        if *seen == mtime {
            return;
        }
        match server_config(&self.pki) {
            Ok(config) => {
                self.current.store(config);
                *seen = mtime;
                tracing::info!("revocation list reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "revocation list changed but does not load; keeping the previous one")
            }
        }
    }
}

/// A TLS stream whose handshake finished, with the identity of its peer.
pub type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Accepts TCP connections, runs the TLS handshake with a timeout and a concurrency cap, and
/// hands each verified connection with its identity to `serve`. Stops when `shutdown` flips.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    tls: Arc<TlsReloader>,
    policy: Arc<Policy>,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TokioIo<TlsStream>, Arc<ConnIdentity>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let handshakes = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            break;
        };
        let acceptor = TlsAcceptor::from(tls.current());
        let policy = policy.clone();
        let serve = serve.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics::counter!("partnergate_tls_handshake_failures_total").increment(1);
                    tracing::info!(error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    metrics::counter!("partnergate_tls_handshake_failures_total").increment(1);
                    tracing::info!("TLS handshake timed out");
                    return;
                }
            };
            drop(permit);
            let identity = {
                let (_, conn) = stream.get_ref();
                match conn.peer_certificates().and_then(|c| c.first()) {
                    Some(cert) => ConnIdentity::from_certificate(cert, &policy),
                    // The verifier requires a certificate; this cannot happen, but fail closed.
                    None => return,
                }
            };
            let connection = serve(TokioIo::new(stream), Arc::new(identity));
            // The connection future owns what it needs; drop the factory so shutdown is not
            // kept waiting by the handles it holds.
            drop(serve);
            connection.await;
        });
    }
}
