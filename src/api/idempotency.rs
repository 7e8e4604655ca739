//! `Idempotency-Key` on POST: a retried registration or note returns the first answer instead
//! of doing the work twice.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::extract::valid_actor;

/// A request's idempotency key, bound to the client and a hash of the request.
pub struct Idempotency {
    client: String,
    key: String,
    request_hash: [u8; 32],
}

impl Idempotency {
    /// Reads `Idempotency-Key`; `None` when absent. The hash covers the operation and body,
    /// so the same key with a different request is refused rather than replayed.
    pub fn from_headers(
        headers: &HeaderMap,
        client: &str,
        operation: &str,
        body: &impl Serialize,
    ) -> Result<Option<Self>, ApiError> {
        let Some(raw) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = raw
            .to_str()
            .ok()
            .filter(|k| valid_actor(k))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 128 visible ASCII characters",
                )
            })?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(operation.as_bytes());
        ctx.update(&[0]);
        ctx.update(&serde_json::to_vec(body).expect("json"));
        Ok(Some(Self {
            client: client.to_string(),
            key: key.to_string(),
            request_hash: ctx.finish().as_ref().try_into().expect("32 bytes"),
        }))
    }

    /// The stored answer for this key, if the same request was answered before.
    pub async fn replay(&self, state: &AppState) -> Result<Option<Response>, ApiError> {
        let row: Option<(Vec<u8>, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT request_hash, status, body FROM idempotency WHERE client = ? AND key = ?",
        )
        .bind(&self.client)
        .bind(&self.key)
        .fetch_optional(&state.pool)
        .await?;
        let Some((hash, status, body)) = row else {
            return Ok(None);
        };
        if hash != self.request_hash {
            return Err(ApiError::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            ));
        }
        let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
        let mut res = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(Some(res))
    }

    /// Stores the answer and returns it.
    pub async fn remember(
        &self,
        state: &AppState,
        status: StatusCode,
        body: &impl Serialize,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO idempotency (client, key, request_hash, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (client, key) DO NOTHING",
        )
        .bind(&self.client)
        .bind(&self.key)
        .bind(&self.request_hash[..])
        .bind(i64::from(status.as_u16()))
        .bind(serde_json::to_vec(body).expect("json"))
        .bind(crate::store::now())
        .execute(&state.pool)
        .await?;
        Ok(())
    }
}

/// Answers `(status, body)`, remembering it under the key when there is one.
pub async fn answer<T: Serialize>(
    state: &AppState,
    key: Option<&Idempotency>,
    status: StatusCode,
    body: T,
) -> Result<Response, ApiError> {
    if let Some(k) = key {
        k.remember(state, status, &body).await?;
    }
    Ok((status, Json(body)).into_response())
}
