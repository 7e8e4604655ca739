//! Data-subject requests, for the DPO (purpose `dsr_handling`). The logic is in [`crate::dsr`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::access::{about, require_client_grant};
use super::audited::record;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Ctx};
use crate::audit::Action;
use crate::dsr::{self, DsrError, NewRequest, Request};

impl From<DsrError> for ApiError {
    fn from(e: DsrError) -> Self {
        match e {
            DsrError::Invalid(code, msg) => ApiError::unprocessable(code, msg),
            DsrError::NotFound => ApiError::not_found("no such request"),
            DsrError::Conflict(msg) => ApiError::conflict("wrong_state", msg),
            DsrError::Vault(e) => e.into(),
        }
    }
}

/// Refuses anyone but the DPO; `write` asks for the right to handle, not only read, requests.
async fn require_dpo(
    state: &AppState,
    ctx: &Ctx,
    action: Action,
    write: bool,
) -> Result<Vec<String>, ApiError> {
    let message = "only a DPO handles data-subject requests, with purpose dsr_handling";
    let allowed = |d: &crate::policy::Decision| {
        if write {
            d.may_handle_dsr()
        } else {
            d.may_read_dsr()
        }
    };
    require_client_grant(state, ctx, action, allowed, message).await
}

/// `POST /v1/dsr`: log a request; its deadline is one month from receipt.
#[utoipa::path(post, path = "/v1/dsr", tag = "dsr", request_body = NewRequest, params(("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 201, body = Request), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewRequest>,
) -> ApiResult<(StatusCode, Json<Request>)> {
    let roles = require_dpo(&state, &ctx, Action::DsrCreate, true).await?;
    let (request, who) = dsr::create(&state.policy, &state.vault, &body).await?;
    let detail = format!("{} {}", request.kind.as_str(), request.id);
    let event = about(&state, &ctx, Action::DsrCreate, who).roles(roles);
    record(&state.audit, vec![event.granted_with(detail)]).await?;
    Ok((StatusCode::CREATED, Json(request)))
}

/// The list of requests.
#[derive(Serialize, ToSchema)]
pub struct RequestList {
    /// Overdue first, then by deadline.
    pub requests: Vec<Request>,
}

/// `GET /v1/dsr`: every request with its deadline, overdue ones first.
#[utoipa::path(get, path = "/v1/dsr", tag = "dsr", params(("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = RequestList), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Json<RequestList>> {
    let roles = require_dpo(&state, &ctx, Action::DsrList, false).await?;
    let requests = dsr::list(&state.store).await?;
    let event = ctx.event(Action::DsrList).roles(roles).granted();
    record(&state.audit, vec![event]).await?;
    Ok(Json(RequestList { requests }))
}

/// `GET /v1/dsr/{id}`: one request with its history.
#[utoipa::path(get, path = "/v1/dsr/{id}", tag = "dsr", params(("id" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = Request), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Request>> {
    let roles = require_dpo(&state, &ctx, Action::DsrRead, false).await?;
    let request = dsr::get(&state.store, &id).await?;
    let event = ctx.event(Action::DsrRead).roles(roles).granted_with(id);
    record(&state.audit, vec![event]).await?;
    Ok(Json(request))
}

/// An extension of the deadline.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// 1 or 2 months (`2.0` counts as 2, as in JSON Schema).
    #[serde(deserialize_with = "super::integral::u8")]
    pub months: u8,
    /// Why (complexity, number of requests).
    pub reason: String,
}

/// A refusal.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// Why the request is refused.
    pub reason: String,
}

/// `POST /v1/dsr/{id}/verify`: the DPO verified the requester's identity.
#[utoipa::path(post, path = "/v1/dsr/{id}/verify", tag = "dsr", params(("id" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = Request), (status = 409, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Request>> {
    let roles = require_dpo(&state, &ctx, Action::DsrVerify, true).await?;
    let who = dsr::person(&state.store, &id).await?;
    let event = about(&state, &ctx, Action::DsrVerify, who).roles(roles);
    record(&state.audit, vec![event.granted_with(id.clone())]).await?;
    Ok(Json(dsr::verify(&state.store, &id).await?))
}

/// `POST /v1/dsr/{id}/extend`: extend the deadline by up to two months, with a reason.
#[utoipa::path(post, path = "/v1/dsr/{id}/extend", tag = "dsr", request_body = Extension, params(("id" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = Request), (status = 409, body = ErrorBody, description = "`wrong_state`: the request is finished"), (status = 422, body = ErrorBody)))]
pub async fn extend(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Extension>,
) -> ApiResult<Json<Request>> {
    let roles = require_dpo(&state, &ctx, Action::DsrExtend, true).await?;
    let event = ctx.event(Action::DsrExtend).roles(roles);
    record(&state.audit, vec![event.granted_with(id.clone())]).await?;
    Ok(Json(
        dsr::extend(&state.store, &id, body.months, &body.reason).await?,
    ))
}

/// `POST /v1/dsr/{id}/refuse`: refuse with a reason.
#[utoipa::path(post, path = "/v1/dsr/{id}/refuse", tag = "dsr", request_body = Refusal, params(("id" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = Request), (status = 409, body = ErrorBody)))]
pub async fn refuse_request(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Refusal>,
) -> ApiResult<Json<Request>> {
    let roles = require_dpo(&state, &ctx, Action::DsrRefuse, true).await?;
    let event = ctx.event(Action::DsrRefuse).roles(roles);
    record(&state.audit, vec![event.granted_with(id.clone())]).await?;
    Ok(Json(dsr::refuse(&state.store, &id, &body.reason).await?))
}

/// `POST /v1/dsr/{id}/execute`: run the request; resumes an interrupted run, harmless twice.
#[utoipa::path(post, path = "/v1/dsr/{id}/execute", tag = "dsr", params(("id" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = Request), (status = 409, body = ErrorBody)))]
pub async fn execute(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Request>> {
    let roles = require_dpo(&state, &ctx, Action::DsrExecute, true).await?;
    let who = dsr::person(&state.store, &id).await?;
    // The intent is on record before anything changes.
    let event = about(&state, &ctx, Action::DsrExecute, who).roles(roles.clone());
    record(&state.audit, vec![event.granted_with(id.clone())]).await?;
    let done = dsr::execute(
        &state.policy,
        &state.vault,
        state.receipt_signer.as_ref(),
        &id,
    )
    .await?;
    // The erasure's closing record, once, when the request completes (also after a resume).
    if done.finished_now
        && done.request.kind == dsr::Kind::Erasure
        && done.request.state == dsr::State::Completed
    {
        let event = about(&state, &ctx, Action::ParticipantErased, done.participant);
        let event = event.roles(roles).granted_with(format!("dsr {id}"));
        record(&state.audit, vec![event]).await?;
    }
    Ok(Json(done.request))
}

/// Export format.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportFormat {
    /// `json` (default) or `html`.
    pub format: Option<String>,
}

/// `GET /v1/dsr/{id}/export`: the person's data and disclosure history, as JSON or as a page
/// to hand to them.
#[utoipa::path(get, path = "/v1/dsr/{id}/export", tag = "dsr", params(("id" = String, Path), ExportFormat, ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, description = "the export: JSON, or with `format=html` a page to hand to the person",
            content((Object = "application/json"), (String = "text/html"))),
        (status = 409, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<ExportFormat>,
) -> ApiResult<Response> {
    let roles = require_dpo(&state, &ctx, Action::DsrExport, true).await?;
    let bundle = dsr::export_bundle(&state.policy, &state.vault, &id).await?;
    let fields: Vec<String> = bundle["data"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(cat, fs)| {
            fs.as_object()
                .into_iter()
                .flatten()
                .map(move |(f, _)| format!("{cat}.{f}"))
        })
        .collect();
    let who = dsr::person(&state.store, &id).await?;
    let event = about(&state, &ctx, Action::DsrExport, who);
    let event = event.roles(roles).fields(fields).granted_with(id);
    record(&state.audit, vec![event]).await?;
    Ok(match f.format.as_deref() {
        Some("html") => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            dsr::render_html(&bundle),
        )
            .into_response(),
        None | Some("json") => Json(bundle).into_response(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                "format is json or html",
            ));
        }
    })
}
