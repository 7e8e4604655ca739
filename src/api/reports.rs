//! `GET /v1/reports/esf`: the ESF+ indicators as aggregates, small cells suppressed. Counting
//! and suppression live in `partnergate_core::report`; this handler checks the grant, audits
//! the access (who, purpose, period; no participant) and picks the format.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::access::require_client_grant;
use super::audited::{record, refuse};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiQuery, Ctx};
use crate::audit::Action;
use crate::report;

/// Query parameters of `GET /v1/reports/esf`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EsfParams {
    /// First day of the period, `YYYY-MM-DD`. Required (400 `invalid_period` without it).
    #[param(required = true, format = Date)]
    pub from: Option<String>,
    /// Last day of the period (inclusive), `YYYY-MM-DD`, at most a year after `from` and not
    /// before it (400 `invalid_period`).
    #[param(required = true, format = Date)]
    pub to: Option<String>,
    /// `json` (default), `csv` or `html`.
    #[param(pattern = "^(json|csv|html)$")]
    pub format: Option<String>,
}

/// `GET /v1/reports/esf?from&to[&format]`: the ESF+ common indicators per gender, the result
/// indicators and each partner's inflow and outflow, for roles granted `reports:read` with
/// purpose `esf_reporting`. Cells below the agreement's threshold, and the cells that would
/// give them away through the totals, show the marker `c`.
#[utoipa::path(get, path = "/v1/reports/esf", tag = "reports", params(EsfParams, ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, description = "The report (JSON, CSV or HTML)"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn esf(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(p): ApiQuery<EsfParams>,
) -> ApiResult<impl IntoResponse> {
    let message = "reports need a role granted reports:read, with purpose esf_reporting";
    let roles = require_client_grant(
        &state,
        &ctx,
        Action::ReportRead,
        |d| d.may_read_reports(),
        message,
    )
    .await?;
    let deny = |error: ApiError| {
        let event = ctx.event(Action::ReportRead).roles(roles.clone());
        refuse(&state.audit, event.refused(error.code), error)
    };
    let (Some(from), Some(to)) = (&p.from, &p.to) else {
        let e = ApiError::bad_request("invalid_period", "from and to (YYYY-MM-DD) are required");
        return Err(deny(e).await);
    };
    let (from, to) = match report::period(from, to) {
        Ok(period) => period,
        Err(e) => return Err(deny(ApiError::bad_request("invalid_period", e.to_string())).await),
    };
    let format = p.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv" | "html") {
        let e = ApiError::bad_request("invalid_format", "format is json, csv or html");
        return Err(deny(e).await);
    }
    let people = report::collect::people(&state.vault).await?;
    let built = report::build(
        state.policy.agreement(),
        &people,
        from,
        to,
        crate::store::now(),
    );
    // An aggregate access: the period and format, never a participant.
    let event = ctx.event(Action::ReportRead).roles(roles);
    let event = event.granted_with(format!("esf {from}..{to} {format}"));
    record(&state.audit, vec![event]).await?;
    let (content_type, body) = match format {
        "csv" => ("text/csv; charset=utf-8", report::render::csv(&built)),
        "html" => ("text/html; charset=utf-8", report::render::html(&built)),
        _ => ("application/json", report::render::json(&built)),
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body))
}
