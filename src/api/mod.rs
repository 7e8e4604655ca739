//! The HTTP API: routes, extractors, the error type and thin handlers.
//!
//! Handlers read their inputs, call a plain function of the layer below, and answer. The
//! logic lives in [`crate::policy`], [`crate::vault`] and [`crate::audit`].

pub mod access;
mod audit;
pub mod audited;
mod body;
mod cases;
mod changes;
mod dsr;
pub mod error;
pub mod extract;
mod idempotency;
mod integral;
pub mod limit;
mod me;
mod notes;
pub mod openapi;
mod participants;
mod reports;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tracing::Instrument;

use crate::audit::AuditLog;
use crate::policy::Policy;
use crate::store::Store;
use extract::RequestId;

pub use error::{ApiError, ApiResult};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The compiled agreement.
    pub policy: Arc<Policy>,
    /// The database.
    pub store: Store,
    /// The audit log writer.
    pub audit: AuditLog,
    /// The participant vault.
    pub vault: Arc<crate::vault::Vault>,
    /// Signs erasure receipts (the audit checkpoint key).
    pub receipt_signer: Arc<ring::signature::Ed25519KeyPair>,
    /// The Ed25519 public key of audit checkpoints.
    pub audit_public_key: Arc<[u8]>,
    /// The per-client look-up rate limit.
    pub lookups: Arc<limit::Limiter>,
}

/// Builds the `/v1` router.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/me", get(me::me))
        .route("/participants", post(participants::register))
        .route("/lookup", post(participants::lookup))
        .route(
            "/participants/{pid}",
            get(participants::read).patch(participants::update),
        )
        .route(
            "/participants/{pid}/involvements",
            post(cases::start_involvement).delete(cases::end_involvement),
        )
        .route("/participants/{pid}/handover", post(cases::handover))
        .route(
            "/participants/{pid}/consents",
            post(cases::record_consent).delete(cases::withdraw_consent),
        )
        .route(
            "/participants/{pid}/notes",
            get(notes::list_notes).post(notes::add_note),
        )
        .route("/changes", get(changes::changes))
        .route("/audit", get(audit::search))
        .route("/audit/verify", get(audit::verify))
        .route("/audit/export", get(audit::export))
        .route("/dsr", get(dsr::list).post(dsr::create))
        .route("/dsr/{id}", get(dsr::get))
        .route("/dsr/{id}/verify", post(dsr::verify))
        .route("/dsr/{id}/extend", post(dsr::extend))
        .route("/dsr/{id}/refuse", post(dsr::refuse_request))
        .route("/dsr/{id}/execute", post(dsr::execute))
        .route("/dsr/{id}/export", get(dsr::export))
        .route("/reports/esf", get(reports::esf))
        .route("/openapi.json", get(openapi_json))
        // After routing, so the span and metrics carry the route template.
        .route_layer(middleware::from_fn(observe));
    Router::new()
        .nest("/v1", v1)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The OpenAPI document (any verified client may read it), made from the loaded agreement.
/// It is not cached: it takes about a millisecond, and clients fetch it rarely.
async fn openapi_json(
    axum::extract::State(state): axum::extract::State<AppState>,
    _who: extract::Identified,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::json(&state.policy),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Gives every request an id, a tracing span and metrics; the path in logs and metrics is the
/// route template (`/v1/participants/{pid}`), never the concrete path.
async fn observe(mut req: Request, next: Next) -> Response {
    let id = new_request_id();
    req.extensions_mut().insert(RequestId(id.as_str().into()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    span.in_scope(|| tracing::info!(status, elapsed_ms = elapsed * 1000.0, "handled"));
    metrics::counter!("partnergate_http_requests_total", "route" => route.clone(), "method" => method.to_string(), "status" => status.to_string()).increment(1);
    metrics::histogram!("partnergate_http_request_seconds", "route" => route).record(elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// A fresh request id: 96 random bits, hex. Every request gets one, refused ones too.
pub fn new_request_id() -> String {
    let mut b = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("the OS random generator works");
    hex::encode(b)
}
