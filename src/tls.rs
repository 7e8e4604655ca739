//! Mutual TLS: the listener, the client-certificate verifier with its revocation list, and
//! the caller identity derived once per connection.
//!
//! A connection that presents no certificate, one from another CA, an expired or a revoked
//! one never finishes its handshake. A certificate that verifies yields a [`Peer`]: the
//! [`ConnIdentity`] every request on that connection carries as an extension, and the
//! certificate's serial, checked against the current revocation list on every request
//! ([`TlsReloader::check`]) so a revocation also reaches connections that are already open.
//!
//! Handshakes in progress are bounded in total and per source address and time out early
//! ([`HandshakeLimits`]), so clients that connect and never speak cannot lock partners out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use hyper_util::rt::TokioIo;
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{CertificateError, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::LazyConfigAcceptor;

use crate::config::TlsConfig;
use crate::pki::{self, Crl, PkiPaths, Serial};
use crate::policy::Policy;

/// How often the server looks at the revocation list on disk (and re-checks its nextUpdate).
/// With the per-request check this bounds how long a revoked certificate keeps working.
pub const CRL_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A revocation list this close to its nextUpdate is warned about in the log.
const CRL_WARN_BEFORE: time::Duration = time::Duration::days(1);

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
    /// The revocation list is not one of the partnership CA.
    #[error("{0}")]
    Crl(#[from] pki::PkiError),
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

/// The server configuration and the revocation list it was built with, swapped as one so the
/// handshake and the per-request check never disagree.
struct Loaded {
    config: Arc<ServerConfig>,
    crl: Crl,
    revoked: std::collections::HashSet<Serial>,
}

/// Builds the server configuration from the PKI files: the server chain, the partnership CA as
/// the only trust anchor for clients, and the revocation list (required, signed by the CA,
/// enforced past its nextUpdate: fail closed).
fn load(pki: &PkiPaths) -> Result<Loaded, TlsError> {
    let ca =
        CertificateDer::from_pem_file(pki.ca_cert()).map_err(|e| pem_err(&pki.ca_cert(), e))?;
    let crl_der = CertificateRevocationListDer::from_pem_file(pki.crl())
        .map_err(|e| pem_err(&pki.crl(), e))?;
    // Parsed from the same bytes rustls gets, and checked against the CA.
    let crl = pki::parse_crl(crl_der.as_ref(), ca.as_ref(), &pki.crl())?;
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls([crl_der])
        // A list past its nextUpdate may miss revocations: refuse every client until re-signed.
        .enforce_revocation_expiration()
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
    Ok(Loaded {
        config: Arc::new(config),
        revoked: crl.serials().collect(),
        crl,
    })
}

/// Builds the server configuration from the PKI files (see [`TlsReloader`] for the one the
/// server uses, which also keeps the revocation list for per-request checks).
pub fn server_config(pki: &PkiPaths) -> Result<Arc<ServerConfig>, TlsError> {
    Ok(load(pki)?.config)
}

pub use crate::access::Caller;

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

    /// The partner, when the agreement names the client.
    pub fn partner(&self) -> Option<&str> {
        match self {
            ConnIdentity::Known(c) => Some(&c.partner),
            ConnIdentity::UnknownClient { .. } => None,
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

/// What the handshake established about one connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Who is calling, as every request on the connection sees it.
    pub identity: Arc<ConnIdentity>,
    /// The serial number of the client certificate, checked against the revocation list on
    /// every request.
    pub serial: Serial,
}

/// Why a request on an open connection is refused before it reaches the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The connection's certificate was revoked after its handshake.
    CertificateRevoked,
    /// The revocation list is past its nextUpdate: no certificate can be trusted.
    RevocationListExpired,
}

impl Refusal {
    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::CertificateRevoked => "certificate_revoked",
            Refusal::RevocationListExpired => "revocation_list_expired",
        }
    }
}

/// Freshness of the revocation list as last logged, so each change is logged once.
const UNKNOWN: u8 = u8::MAX;
const FRESH: u8 = 0;
const EXPIRING: u8 = 1;
const STALE: u8 = 2;

/// Holds the current server configuration and revocation list and swaps both when the list
/// changes on disk, so `certs revoke` takes effect without a restart: for new connections at
/// the handshake, for open ones at their next request.
pub struct TlsReloader {
    current: ArcSwap<Loaded>,
    pki: PkiPaths,
    crl_stamp: Mutex<Option<(SystemTime, u64)>>,
    freshness: AtomicU8,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl TlsReloader {
    /// Loads the configuration for the first time. A revocation list past its nextUpdate does
    /// not stop the server: it starts, logs the problem and refuses every client until
    /// `partnergate certs crl` re-signs the list.
    pub fn new(pki: PkiPaths) -> Result<Arc<Self>, TlsError> {
        let stamp = stamp(&pki.crl());
        let loaded = load(&pki)?;
        let reloader = Arc::new(Self {
            current: ArcSwap::from_pointee(loaded),
            pki,
            crl_stamp: Mutex::new(stamp),
            freshness: AtomicU8::new(UNKNOWN),
        });
        reloader.observe_freshness();
        Ok(reloader)
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load().config.clone()
    }

    /// Whether a request on a connection whose certificate has `serial` may proceed under the
    /// current revocation list. Cheap: one atomic load and one hash lookup.
    pub fn check(&self, serial: &Serial) -> Result<(), Refusal> {
        let loaded = self.current.load();
        if loaded.revoked.contains(serial) {
            return Err(Refusal::CertificateRevoked);
        }
        if loaded.crl.is_stale(OffsetDateTime::now_utc()) {
            return Err(Refusal::RevocationListExpired);
        }
        Ok(())
    }

    /// The nextUpdate of the revocation list in force.
    pub fn crl_next_update(&self) -> OffsetDateTime {
        self.current.load().crl.next_update
    }

    /// Rebuilds the configuration if the revocation list changed on disk. A list that does
    /// not load (unreadable, not signed by the CA) keeps the previous one and is logged:
    /// never fall back to none.
    pub fn reload_if_changed(&self) {
        let now_stamp = stamp(&self.pki.crl());
        let mut seen = self.crl_stamp.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == now_stamp {
            return;
        }
        match load(&self.pki) {
            Ok(loaded) => {
                let (entries, number) = (loaded.revoked.len(), loaded.crl.number);
                self.current.store(Arc::new(loaded));
                *seen = now_stamp;
                tracing::info!(entries, number, "revocation list reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "revocation list changed but does not load; keeping the previous one")
            }
        }
    }

    /// One tick of the reload task: reload a changed list, then re-check its nextUpdate
    /// (a list goes stale by the clock alone).
    pub fn poll(&self) {
        self.reload_if_changed();
        self.observe_freshness();
    }

    /// Publishes the seconds left until the list's nextUpdate (negative once past) as the
    /// gauge `partnergate_crl_next_update_seconds`, and logs each change of freshness once.
    pub fn observe_freshness(&self) {
        let next = self.crl_next_update();
        let left = next - OffsetDateTime::now_utc();
        metrics::gauge!("partnergate_crl_next_update_seconds").set(left.as_seconds_f64());
        let state = if left <= time::Duration::ZERO {
            STALE
        } else if left <= CRL_WARN_BEFORE {
            EXPIRING
        } else {
            FRESH
        };
        if self.freshness.swap(state, Ordering::Relaxed) == state {
            return;
        }
        let next_update = next
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        match state {
            STALE => tracing::error!(
                %next_update,
                "revocation list is past its nextUpdate: refusing every client until it is re-signed with `partnergate certs crl`"
            ),
            EXPIRING => tracing::warn!(
                %next_update,
                "revocation list expires within a day; re-sign it with `partnergate certs crl`"
            ),
            _ => tracing::info!(%next_update, "revocation list is current"),
        }
    }
}

/// Limits on handshakes in progress, from `[tls]` in the configuration.
#[derive(Clone, Copy, Debug)]
pub struct HandshakeLimits {
    /// Time to receive the whole ClientHello.
    pub client_hello_timeout: Duration,
    /// Time to finish the whole handshake.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once, in total.
    pub max_handshakes: usize,
    /// Handshakes in progress at once from one source address.
    pub max_handshakes_per_ip: usize,
}

impl From<&TlsConfig> for HandshakeLimits {
    fn from(c: &TlsConfig) -> Self {
        Self {
            client_hello_timeout: Duration::from_secs(c.client_hello_timeout_secs),
            handshake_timeout: Duration::from_secs(c.handshake_timeout_secs),
            max_handshakes: c.max_handshakes,
            max_handshakes_per_ip: c.max_handshakes_per_ip,
        }
    }
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        (&TlsConfig::default()).into()
    }
}

/// The address a per-source limit counts against: an IPv4 address, or an IPv6 /64 (one
/// site's allocation, which a single client can spread over at will).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// Handshake slots: a global semaphore and a count per source address.
struct Slots {
    global: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    per_source_max: usize,
}

/// Why a new connection got no handshake slot.
#[derive(Clone, Copy, Debug)]
enum NoSlot {
    PerSource,
    Global,
}

/// One handshake slot; given back on drop.
struct Slot {
    slots: Arc<Slots>,
    key: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Slots {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, NoSlot> {
        let key = source_key(ip);
        let mut map = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key).or_insert(0);
        if *n >= self.per_source_max {
            return Err(NoSlot::PerSource);
        }
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| NoSlot::Global)?;
        *n += 1;
        Ok(Slot {
            slots: self.clone(),
            key,
            _permit: permit,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .slots
            .per_source
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                // Only sources with a handshake in progress take memory.
                map.remove(&self.key);
            }
        }
    }
}

/// A TLS stream whose handshake finished, with the identity of its peer.
pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Why a handshake did not finish.
enum HandshakeFailure {
    HelloTimeout,
    Timeout,
    Refused(std::io::Error),
}

/// Reads the ClientHello within its timeout, then finishes the handshake with the
/// configuration current at that moment, within what is left of the handshake timeout.
async fn handshake(
    tcp: TcpStream,
    tls: &TlsReloader,
    limits: HandshakeLimits,
) -> Result<TlsStream, HandshakeFailure> {
    let started = Instant::now();
    let start = tokio::time::timeout(
        limits.client_hello_timeout,
        LazyConfigAcceptor::new(Acceptor::default(), tcp),
    )
    .await
    .map_err(|_| HandshakeFailure::HelloTimeout)?
    .map_err(HandshakeFailure::Refused)?;
    let left = limits.handshake_timeout.saturating_sub(started.elapsed());
    tokio::time::timeout(left, start.into_stream(tls.current()))
        .await
        .map_err(|_| HandshakeFailure::Timeout)?
        .map_err(HandshakeFailure::Refused)
}

/// The certificate error behind a refused handshake, if that is what it was.
fn certificate_error(e: &std::io::Error) -> Option<&CertificateError> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(c) => Some(c),
        _ => None,
    }
}

/// Counts a failed handshake by reason, and logs it without anything the client sent.
fn record_failure(failure: &HandshakeFailure) {
    let reason = match failure {
        HandshakeFailure::HelloTimeout => "client_hello_timeout",
        HandshakeFailure::Timeout => "timeout",
        HandshakeFailure::Refused(e) => match certificate_error(e) {
            Some(CertificateError::Revoked) => {
                metrics::counter!("partnergate_revocation_refusals_total", "stage" => "handshake", "reason" => Refusal::CertificateRevoked.code()).increment(1);
                "certificate_revoked"
            }
            Some(
                CertificateError::ExpiredRevocationList
                | CertificateError::ExpiredRevocationListContext { .. },
            ) => {
                metrics::counter!("partnergate_revocation_refusals_total", "stage" => "handshake", "reason" => Refusal::RevocationListExpired.code()).increment(1);
                "revocation_list_expired"
            }
            _ => "refused",
        },
    };
    metrics::counter!("partnergate_tls_handshake_failures_total", "reason" => reason).increment(1);
    match failure {
        HandshakeFailure::Refused(e) => tracing::info!(error = %e, reason, "TLS handshake refused"),
        _ => tracing::debug!(reason, "TLS handshake timed out"),
    }
}

/// How long shutdown waits for handshakes in progress to notice it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Accepts TCP connections and runs each TLS handshake in its own task, within
/// [`HandshakeLimits`]: a connection over the total or per-source cap is closed at once (the
/// accept loop never waits for a slot), and one that does not send its ClientHello in time
/// loses its slot. Each verified connection goes with its [`Peer`] to `serve`. Stops when
/// `shutdown` flips, abandoning handshakes in progress.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    tls: Arc<TlsReloader>,
    policy: Arc<Policy>,
    limits: HandshakeLimits,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TokioIo<TlsStream>, Peer) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Slots {
        global: Arc::new(Semaphore::new(limits.max_handshakes)),
        per_source: Mutex::new(HashMap::new()),
        per_source_max: limits.max_handshakes_per_ip,
    });
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Map away the watch guard: it is not Send.
            _ = shutdown.wait_for(|stop| *stop).map(drop) => break,
        };
        let slot = match slots.take(remote.ip()) {
            Ok(s) => s,
            Err(why) => {
                // Shed at once: waiting here would stall every other client behind it.
                let reason = match why {
                    NoSlot::PerSource => "per_ip_limit",
                    NoSlot::Global => "global_limit",
                };
                metrics::counter!("partnergate_tls_handshakes_shed_total", "reason" => reason)
                    .increment(1);
                tracing::debug!(reason, "connection closed: too many handshakes in progress");
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let policy = policy.clone();
        let serve = serve.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let stream = tokio::select! {
                r = handshake(tcp, &tls, limits) => match r {
                    Ok(s) => s,
                    Err(failure) => {
                        record_failure(&failure);
                        return;
                    }
                },
                // Shutdown does not wait for clients that are slow to say hello.
                _ = stop.wait_for(|stop| *stop).map(drop) => return,
            };
            let peer = {
                let (_, conn) = stream.get_ref();
                let cert = conn.peer_certificates().and_then(|c| c.first());
                match cert.and_then(|c| Some((c, certificate_serial(c)?))) {
                    Some((cert, serial)) => Peer {
                        identity: Arc::new(ConnIdentity::from_certificate(cert, &policy)),
                        serial,
                    },
                    // The verifier requires a certificate that parses; this cannot happen,
                    // but a connection whose serial is unknown could never be revoked: close.
                    None => return,
                }
            };
            let connection = serve(TokioIo::new(stream), peer);
            // The connection future owns what it needs; drop the factory (and only then the
            // slot, which shutdown waits for) so shutdown is not kept waiting by its handles.
            drop(serve);
            drop(slot);
            connection.await;
        });
    }
    // Handshake tasks hold clones of `serve`; wait (briefly) until they have let go.
    let all = u32::try_from(limits.max_handshakes).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, slots.global.acquire_many(all)).await;
}

/// The serial number of a DER certificate.
fn certificate_serial(cert: &CertificateDer<'_>) -> Option<Serial> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(Serial::from_bytes(c.raw_serial()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_counted_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(source_key(mapped), "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn one_source_cannot_take_every_slot_and_slots_come_back() {
        let slots = Arc::new(Slots {
            global: Arc::new(Semaphore::new(3)),
            per_source: Mutex::new(HashMap::new()),
            per_source_max: 2,
        });
        let flood: IpAddr = "127.0.0.2".parse().unwrap();
        let partner: IpAddr = "127.0.0.1".parse().unwrap();
        let a = slots.take(flood).unwrap();
        let _b = slots.take(flood).unwrap();
        assert!(matches!(slots.take(flood), Err(NoSlot::PerSource)));
        let _p = slots.take(partner).unwrap();
        assert!(matches!(slots.take(partner), Err(NoSlot::Global)));
        drop(a);
        assert!(slots.take(flood).is_ok());
    }
}
