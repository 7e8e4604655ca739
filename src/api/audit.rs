//! The DPO's view of the audit log: search, verify, export. Reading the log is itself logged.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::access::require_client_grant;
use super::audited::{record, refuse};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiQuery, Ctx};
use crate::audit::{self as log, Action, AuditQuery, AuditRecord, VerifyReport};
use crate::vault::insz::Insz;

/// Refuses anyone whose client-level roles do not grant reading the audit log for the purpose.
async fn require_dpo(state: &AppState, ctx: &Ctx, action: Action) -> Result<Vec<String>, ApiError> {
    let message = "only a DPO may read the audit log, with purpose audit";
    require_client_grant(state, ctx, action, |d| d.may_read_audit(), message).await
}

/// The largest sequence number the document allows (2^53-1: exact in every JSON number).
const MAX_SEQ: u64 = 9_007_199_254_740_991;

/// Query parameters of `GET /v1/audit`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// National number of the participant whose accesses you want (turned into the audit
    /// pseudonym; never stored or logged).
    pub insz: Option<String>,
    /// Partner id.
    pub partner: Option<String>,
    /// Client certificate name.
    pub client: Option<String>,
    /// Acting user id.
    pub acting_user: Option<String>,
    /// Purpose id.
    pub purpose: Option<String>,
    /// `granted` or `refused`.
    pub decision: Option<String>,
    /// From (RFC 3339), inclusive.
    pub since: Option<String>,
    /// Until (RFC 3339), exclusive.
    pub until: Option<String>,
    /// Only records after this sequence number.
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub after: Option<u64>,
    /// Page size (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One page of audit records.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Records, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<AuditRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// `GET /v1/audit`: search the log (DPO only). Also answers breach questions: "which
/// participants did client X or acting user Y access between t1 and t2".
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(SearchParams, ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody, description = "`invalid_insz`")))]
pub async fn search(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> ApiResult<Json<AuditPage>> {
    let roles = require_dpo(&state, &ctx, Action::AuditSearch).await?;
    // A malformed query is a refused access like any other.
    let deny = |error: ApiError| {
        let event = ctx.event(Action::AuditSearch).roles(roles.clone());
        refuse(&state.audit, event.refused(error.code), error)
    };
    let participant = match &p.insz {
        Some(text) => {
            let insz = match Insz::parse(text) {
                Ok(i) => i,
                Err(e) => {
                    let e = ApiError::unprocessable("invalid_insz", format!("insz: {e}"));
                    return Err(deny(e).await);
                }
            };
            // Unknown numbers search for a pseudonym that matches nothing.
            Some(match state.vault.find_by_insz(&insz).await? {
                Some(id) => state.vault.index().audit_pseudonym(&id),
                None => "none".to_string(),
            })
        }
        None => None,
    };
    if let Some(d) = &p.decision
        && d != "granted"
        && d != "refused"
    {
        let e = ApiError::bad_request("invalid_decision", "decision is granted or refused");
        return Err(deny(e).await);
    }
    // What the document states is what is accepted: out of range is refused, not clamped.
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) || p.after.is_some_and(|n| n > MAX_SEQ) {
        let e = ApiError::bad_request("invalid_query", "limit is 1–1000; after at most 2^53-1");
        return Err(deny(e).await);
    }
    let q = AuditQuery {
        participant: participant.clone(),
        partner: p.partner,
        client: p.client,
        acting_user: p.acting_user,
        purpose: p.purpose,
        decision: p.decision,
        since: p.since,
        until: p.until,
        after: p.after,
        limit: Some(limit),
    };
    let records = log::search(&state.store, &q).await?;
    let event = ctx.event(Action::AuditSearch).participant(participant);
    let event = event
        .roles(roles)
        .granted_with(format!("{} records", records.len()));
    record(&state.audit, vec![event]).await?;
    let next_after = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(AuditPage {
        records,
        next_after,
    }))
}

/// `GET /v1/audit/verify`: verify the whole chain and every checkpoint signature. Records after
/// the last signed checkpoint are reported as `unsigned_tail`, apart from faults.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = VerifyReport), (status = 403, body = ErrorBody)))]
pub async fn verify(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Json<VerifyReport>> {
    let roles = require_dpo(&state, &ctx, Action::AuditVerify).await?;
    // The request's own record goes first: the writer chains it onto the head it holds in
    // memory, so rows deleted from the unsigned tail leave a gap that this verification sees.
    let event = ctx.event(Action::AuditVerify).roles(roles).granted();
    record(&state.audit, vec![event]).await?;
    let report = log::verify_database(&state.store, &state.audit_public_key).await?;
    Ok(Json(report))
}

/// Range of `GET /v1/audit/export`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// First sequence number (default 1).
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub from: Option<u64>,
    /// Last sequence number (default: the head).
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub to: Option<u64>,
}

/// `GET /v1/audit/export`: JSON lines with the signed checkpoints that cover them, for
/// `partnergate audit verify FILE --public-key certs/audit-signing.pub`.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(ExportParams, ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(p): ApiQuery<ExportParams>,
) -> ApiResult<impl IntoResponse> {
    let roles = require_dpo(&state, &ctx, Action::AuditExport).await?;
    if [p.from, p.to].into_iter().flatten().any(|n| n > MAX_SEQ) {
        let e = ApiError::bad_request("invalid_query", "from and to are at most 2^53-1");
        let event = ctx.event(Action::AuditExport).roles(roles);
        return Err(refuse(&state.audit, event.refused(e.code), e).await);
    }
    // The export's own record goes first, then a checkpoint signs the head including it.
    let event = ctx.event(Action::AuditExport).roles(roles).granted();
    let head = record(&state.audit, vec![event]).await?;
    state.audit.checkpoint().await?;
    let mut out = Vec::new();
    log::export(
        &state.store,
        p.from.unwrap_or(1),
        p.to.unwrap_or(head).min(head),
        &state.receipt_signer,
        &mut out,
    )
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out))
}
