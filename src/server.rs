//! `partnergate serve`: wires the layers together and runs both listeners until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::api::extract::valid_actor;
use crate::api::{self, ApiError, AppState, audited};
use crate::audit::{Action, AuditLog, Requester};
use crate::config::Settings;
use crate::pki::PkiPaths;
use crate::policy::Policy;
use crate::tls::{self, HandshakeLimits, Peer, Refusal, TlsReloader};
use crate::{audit, store, vault};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The policy did not load.
    #[error("policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// The database did not open.
    #[error("{0}")]
    Store(#[from] store::StoreError),
    /// TLS could not be configured.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// A key file is missing or invalid.
    #[error("{0}")]
    Key(String),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the gateway until `shutdown` resolves. Prints the bound addresses to stdout (tests and
/// scripts read them when asking for port 0).
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let policy = Arc::new(Policy::load(&settings.policy_dir())?);
    let db = store::Store::connect(&settings.database()).await?;
    // After a crash the log may hold pages the file does not: fold them in before serving.
    db.checkpoint()
        .await
        .map_err(|e| ServeError::Store(e.into()))?;
    let signer = audit::load_signing_key(&settings.audit_signing_key_path())
        .map_err(|e| ServeError::Key(format!("{e}; run `partnergate init`")))?;
    let public_key: Arc<[u8]> = ring::signature::KeyPair::public_key(&signer)
        .as_ref()
        .into();
    let (audit_log, audit_task) = audit::writer::spawn(
        db.clone(),
        signer,
        policy.version().to_string(),
        settings.config.audit.clone(),
    )
    .await
    .map_err(|e| ServeError::Store(e.into()))?;

    let keyring = vault::load_keyring(&settings).map_err(|e| ServeError::Key(e.to_string()))?;
    let keyring_file = std::env::var_os(vault::MASTER_KEY_ENV)
        .is_none()
        .then(|| settings.master_key_path());
    let vault = Arc::new(
        vault::Vault::open(db.clone(), keyring, keyring_file.as_deref())
            .await
            .map_err(|e| ServeError::Key(e.to_string()))?,
    );
    // Vault writes commit with their audit records from here on.
    vault.attach_audit(audit_log.clone());

    let pki = PkiPaths::new(settings.certs_dir());
    let tls = TlsReloader::new(pki)?;
    let gate = Arc::new(ConnectionGate {
        tls: tls.clone(),
        audit: audit_log.clone(),
    });
    let audit_log_for_retention = audit_log.clone();
    let state = AppState {
        policy: policy.clone(),
        store: db.clone(),
        vault: vault.clone(),
        audit: audit_log,
        audit_public_key: public_key,
        lookups: Arc::new(api::limit::Limiter::new(settings.config.lookup_limit)),
        receipt_signer: Arc::new(
            audit::load_signing_key(&settings.audit_signing_key_path())
                .map_err(|e| ServeError::Key(e.to_string()))?,
        ),
    };
    let app = api::router(state);
    let retention = crate::retention::daily::spawn(
        policy.clone(),
        vault.clone(),
        audit_log_for_retention,
        settings.config.retention,
    );

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let api_listener = bind(settings.config.listen).await?;
    let health_listener = bind(settings.config.health_listen).await?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: settings.config.listen,
            source,
        })?;
    let health_addr = health_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: settings.config.health_listen,
            source,
        })?;
    println!("partnergate: api listening on https://{api_addr}");
    println!("partnergate: health listening on http://{health_addr}");
    tracing::info!(%api_addr, %health_addr, policy_version = policy.version(), "serving");
    if crate::clock::is_shifted() {
        tracing::warn!(now = %crate::clock::now(), "the clock is moved (PARTNERGATE_CLOCK); tests only");
    }

    let (stop_tx, stop_rx) = watch::channel(false);

    // Revocation lists take effect without a restart: poll the file, and reload on SIGHUP.
    let reload = {
        let tls = tls.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(tls::CRL_POLL_INTERVAL);
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => {}
                    _ = stop.changed() => break,
                }
                tls.poll();
                vault.reload_keyring_if_changed();
            }
        })
    };

    let health = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let p = prometheus.clone();
                async move { p.map(|p| p.render()).unwrap_or_default() }
            }),
        );
    let health_task = {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(health_listener, health)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
        })
    };

    let graceful = Arc::new(GracefulShutdown::new());
    let accept = {
        let graceful = graceful.clone();
        // Each connection holds only a watcher, so shutdown can wait for exactly those.
        let serve_conn = move |io, peer: Peer| {
            let app = app.clone();
            let gate = gate.clone();
            let watcher = graceful.watcher();
            let peer = Arc::new(peer);
            async move {
                let service = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        let (app, gate, peer) = (app.clone(), gate.clone(), peer.clone());
                        async move {
                            // Every request, routed or not, is checked against the revocation
                            // list in force now, not the one of the handshake.
                            if let Err(refusal) = gate.tls.check(&peer.serial) {
                                return Ok(gate.refuse(&peer, refusal, req.headers()).await);
                            }
                            req.extensions_mut().insert(peer.identity.clone());
                            app.oneshot(req.map(axum::body::Body::new)).await
                        }
                    },
                );
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .keep_alive(true)
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30));
                let _ = watcher.watch(builder.serve_connection(io, service)).await;
            }
        };
        tokio::spawn(tls::accept_loop(
            api_listener,
            tls,
            policy.clone(),
            HandshakeLimits::from(&settings.config.tls),
            stop_rx.clone(),
            serve_conn,
        ))
    };

    shutdown.await;
    tracing::info!("shutting down: no new connections, draining requests");
    let _ = stop_tx.send(true);
    let _ = accept.await;
    // The accept loop owned the last clone of `graceful` besides ours.
    if let Ok(graceful) = Arc::try_unwrap(graceful) {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    }
    let _ = health_task.await;
    let _ = reload.await;
    // The daily purge holds an audit handle: stop it (a purge in flight rolls back).
    if let Some(task) = retention {
        task.abort();
        let _ = task.await;
    }
    // Dropping the last handles lets the audit writer drain its queue and sign the tail.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, audit_task).await;
    let _ = db.checkpoint().await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Refuses requests on open connections whose certificate the revocation list in force no
/// longer accepts. Sits in front of the router, so unrouted requests are refused too.
struct ConnectionGate {
    tls: Arc<TlsReloader>,
    audit: AuditLog,
}

impl ConnectionGate {
    /// Audits the refusal and answers it with `Connection: close`, so hyper closes the
    /// connection after this response: the certificate is done on this connection.
    async fn refuse(&self, peer: &Peer, refusal: Refusal, headers: &HeaderMap) -> Response {
        let request_id = api::new_request_id();
        let identity = &peer.identity;
        metrics::counter!("partnergate_revocation_refusals_total", "stage" => "request", "reason" => refusal.code()).increment(1);
        tracing::info!(client = identity.cn(), %request_id, reason = refusal.code(), "request refused on an open connection; closing it");
        let event = Requester {
            request_id: request_id.clone(),
            client: identity.cn().to_string(),
            partner: identity.partner().map(str::to_string),
            acting_user: headers
                .get("x-acting-user")
                .and_then(|v| v.to_str().ok())
                .filter(|v| valid_actor(v))
                .map(str::to_string),
            purpose: None,
        }
        .event(Action::Request)
        .refused(format!("{} (open connection)", refusal.code()));
        let error = match refusal {
            Refusal::CertificateRevoked => ApiError::forbidden(
                refusal.code(),
                "this client certificate has been revoked; this connection is closed",
            ),
            Refusal::RevocationListExpired => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                refusal.code(),
                "the gateway's revocation list is out of date, so no certificate can be trusted; the operator must re-sign it",
            ),
        };
        let error = audited::refuse(&self.audit, event, error).await;
        let mut res = error.into_response();
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            res.headers_mut().insert("x-request-id", v);
        }
        res
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
