//! `Idempotency-Key` on POST: a retried registration or note returns the first answer instead
//! of doing the work twice.
//!
//! The first request with a key claims it (a row with status 0); concurrent retries wait for
//! its answer, so two retries at once still do the work once. The stored request hash is an
//! HMAC under a system key, rows are bound to the participant they concern (erasure removes
//! them) and expire after [`TTL`]. Every replay is audited like the answer it repeats.

use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::access::about;
use super::audited::{record, refuse};
use super::error::ApiError;
use super::extract::{Ctx, valid_actor};
use crate::audit::Action;
use crate::store::idempotency as store;
use crate::vault::crypto::ParticipantId;

/// How long a key's answer is kept.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// A claim older than this whose request never answered (a crash) may be taken over.
const STALE_CLAIM: Duration = Duration::from_secs(60);
/// How long a retry waits for the first request's answer.
const WAIT: Duration = Duration::from_secs(5);

/// A request's idempotency key, bound to the client and a keyed hash of the request.
struct Idempotency {
    client: String,
    key: String,
    action: Action,
    request_hash: [u8; 32],
}

/// What a request with an optional key may do.
pub enum Begin {
    /// The same request was answered before: its answer, already audited as a replay.
    Replay(Response),
    /// Do the work, then pass the slot (if a key was given) to [`answer`].
    Go(Option<Slot>),
}

enum Claim {
    Replay(Response),
    Fresh(Slot),
}

/// Reads the key of a POST (if any) and claims it: a replay answers at once.
pub async fn begin(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    action: Action,
    scope: &str,
    body: &impl Serialize,
) -> Result<Begin, ApiError> {
    let Some(key) = Idempotency::from_headers(state, ctx, headers, action, scope, body).await?
    else {
        return Ok(Begin::Go(None));
    };
    Ok(match key.claim(state, ctx).await? {
        Claim::Replay(r) => Begin::Replay(r),
        Claim::Fresh(slot) => Begin::Go(Some(slot)),
    })
}

/// A claimed key whose answer is still to come.
pub struct Slot(Idempotency);

impl Idempotency {
    /// Reads `Idempotency-Key`; `None` when absent. The hash covers the action and body, so
    /// the same key with a different request is refused rather than replayed. A malformed
    /// key is refused, audited.
    async fn from_headers(
        state: &AppState,
        ctx: &Ctx,
        headers: &HeaderMap,
        action: Action,
        scope: &str,
        body: &impl Serialize,
    ) -> Result<Option<Self>, ApiError> {
        let Some(raw) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let Some(key) = raw.to_str().ok().filter(|k| valid_actor(k)) else {
            let e = ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 128 visible ASCII characters",
            );
            return Err(refuse(&state.audit, ctx.event(action).refused(e.code), e).await);
        };
        let body = serde_json::to_vec(body).expect("json");
        let request_hash = state.vault.index().idempotency_hash(&[
            action.as_str().as_bytes(),
            scope.as_bytes(),
            &body,
        ]);
        Ok(Some(Self {
            client: ctx.caller.client.to_string(),
            key: key.to_string(),
            action,
            request_hash,
        }))
    }

    /// Claims the key, or replays the answer it already has (waiting while another request
    /// with the same key is still answering).
    async fn claim(self, state: &AppState, ctx: &Ctx) -> Result<Claim, ApiError> {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = crate::store::now();
            let mut tx = state.store.begin_write().await?;
            store::purge_expired(&mut tx, TTL).await?;
            let (client, key) = (&self.client, &self.key);
            let action = self.action.as_str();
            if store::claim(&mut tx, client, key, &self.request_hash, action, &now).await? {
                tx.commit().await?;
                return Ok(Claim::Fresh(Slot(self)));
            }
            let stored = store::read(&mut tx, client, key).await?;
            let participant = stored
                .participant
                .as_deref()
                .and_then(ParticipantId::from_slice);
            if stored.request_hash != self.request_hash {
                drop(tx);
                let e = ApiError::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                );
                let event = about(state, ctx, self.action, participant).refused(e.code);
                return Err(refuse(&state.audit, event, e).await);
            }
            if stored.status != 0 {
                drop(tx);
                let (status, body) = (stored.status, stored.body);
                return replay(state, ctx, self.action, participant, status, body).await;
            }
            if stored.created_at < crate::store::ago(STALE_CLAIM) {
                // The first request died before answering: take the claim over.
                let taken =
                    store::take_over(&mut tx, client, key, &stored.created_at, &now).await?;
                tx.commit().await?;
                if taken {
                    return Ok(Claim::Fresh(Slot(self)));
                }
                continue;
            }
            drop(tx);
            if Instant::now() >= deadline {
                let e = ApiError::conflict(
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being answered; retry shortly",
                );
                return Err(refuse(&state.audit, ctx.event(self.action).refused(e.code), e).await);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Slot {
    /// Stores the answer for replays, bound to the participant it concerns.
    async fn complete(
        &self,
        state: &AppState,
        status: StatusCode,
        body: &impl Serialize,
        participant: &ParticipantId,
    ) -> Result<(), ApiError> {
        let body = serde_json::to_vec(body).expect("json");
        let (client, key) = (&self.0.client, &self.0.key);
        let (status, participant) = (status.as_u16(), &participant.as_bytes()[..]);
        store::complete(&state.store, client, key, status, &body, participant).await?;
        Ok(())
    }

    /// Gives the key up after a refusal or failure, so that a corrected retry can use it.
    async fn release(&self, state: &AppState) {
        let r = store::release(&state.store, &self.0.client, &self.0.key).await;
        if let Err(e) = r {
            // The claim then expires on its own after STALE_CLAIM.
            tracing::warn!(error = %e, "could not release an idempotency claim");
        }
    }
}

/// Finishes a request that may carry a claimed key: stores and sends the answer, or releases
/// the claim and sends the error.
pub async fn answer<T: Serialize>(
    state: &AppState,
    slot: Option<Slot>,
    result: Result<(StatusCode, T, ParticipantId), ApiError>,
) -> Result<Response, ApiError> {
    match (result, slot) {
        (Ok((status, body, participant)), slot) => {
            if let Some(s) = slot {
                s.complete(state, status, &body, &participant).await?;
            }
            Ok((status, Json(body)).into_response())
        }
        (Err(e), Some(s)) => {
            s.release(state).await;
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

async fn replay(
    state: &AppState,
    ctx: &Ctx,
    action: Action,
    participant: Option<ParticipantId>,
    status: i64,
    body: Vec<u8>,
) -> Result<Claim, ApiError> {
    let event = about(state, ctx, action, participant).granted_with("idempotent_replay");
    record(&state.audit, vec![event]).await?;
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    let mut res = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    res.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(Claim::Replay(res))
}
