//! Case endpoints: partners' roles in a case (start, end, handover) and consents. Nobody
//! widens their own access here: self-assignments and self-unlocking consents are checked
//! against the agreement.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::access::{self, Access};
use super::audited::refuse;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, Ctx};
use crate::audit::Action;
use crate::audit::report::{SELF_ASSIGN, SELF_ESCALATION, WIDENS_OWN_READING};
use crate::policy::{Policy, RoleLevel, RoleSet};
use crate::store::today;
use crate::vault::{CaseChange, CaseOutcome};

/// An involvement: a partner's role in the case.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvolvementIn {
    /// Partner id.
    pub partner: String,
    /// Case role id.
    pub role: String,
}

/// Ending a role. Ending another partner's role needs a reason.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvolvementEnd {
    /// Partner id.
    pub partner: String,
    /// Case role id.
    pub role: String,
    /// Why the role ends; required when it is another partner's role.
    #[serde(default)]
    pub reason: Option<EndReason>,
}

/// Why a role in a case ends: a code, never free text (it goes into the audit record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Another partner takes over.
    Handover,
    /// The trajectory is closed.
    CaseClosed,
    /// The contribution is no longer needed.
    NoLongerNeeded,
    /// The participant asked for it.
    ParticipantRequest,
    /// A conflict between the participant and the partner.
    Conflict,
    /// The partner leaves the partnership.
    PartnerLeft,
    /// Documented in the partners' own files.
    Other,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Handover => "handover",
            EndReason::CaseClosed => "case_closed",
            EndReason::NoLongerNeeded => "no_longer_needed",
            EndReason::ParticipantRequest => "participant_request",
            EndReason::Conflict => "conflict",
            EndReason::PartnerLeft => "partner_left",
            EndReason::Other => "other",
        }
    }
}

/// A handover of a role from one partner to another, in one step.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverIn {
    /// Case role id, e.g. `trajectgezel`.
    pub role: String,
    /// The partner that holds the role now.
    pub from: String,
    /// The partner that takes it over.
    pub to: String,
}

/// Checks that `partner` may hold `role`: a case role, a partner of the agreement and, when
/// starting, one that takes new cases and has a client allowed to use the role.
fn check_assignable(
    policy: &Policy,
    partner: &str,
    role: &str,
    starting: bool,
) -> Result<crate::policy::RoleId, ApiError> {
    let role_id = policy
        .role(role)
        .filter(|r| policy.role_level(*r) == RoleLevel::Case)
        .ok_or_else(|| {
            ApiError::unprocessable("unknown_role", "role is not a case role of the agreement")
        })?;
    let agreement = policy.agreement();
    let p = agreement.partner(partner).ok_or_else(|| {
        ApiError::unprocessable("unknown_partner", "partner is not in the agreement")
    })?;
    if starting {
        if !p.may_take_new_roles_on(today()) {
            return Err(ApiError::conflict(
                "no_new_cases",
                "that partner is in its notice period or has left: it takes no new roles",
            ));
        }
        let can_hold = agreement
            .clients
            .iter()
            .any(|c| *c.partner == partner && c.roles.iter().any(|r| **r == role));
        if !can_hold {
            return Err(ApiError::unprocessable(
                "role_not_held",
                "no client of that partner may use this role",
            ));
        }
    }
    Ok(role_id)
}

/// Whether giving `role` to the caller's own partner stays within what the agreement allows:
/// `Ok(false)` when it widens nothing, `Ok(true)` for a widening the agreement names in
/// `self_assign`, and the refusal otherwise.
fn self_assignment(
    policy: &Policy,
    access: &Access,
    role: crate::policy::RoleId,
) -> Result<bool, ApiError> {
    let held = access.partner_roles(policy);
    if held.contains(role) || policy.widening(held, RoleSet::of(role)).is_empty() {
        return Ok(false);
    }
    if access.decision.may_self_assign(role) {
        return Ok(true);
    }
    Err(ApiError::forbidden(
        SELF_ESCALATION,
        "this role would show your own organisation more than its current roles in this case; another partner has to assign it",
    ))
}

/// Refuses a second holder of a one-per-case role before anything is recorded.
async fn check_free(
    state: &AppState,
    access: &Access,
    role: crate::policy::RoleId,
    partner: &str,
) -> Result<(), ApiError> {
    if !state.policy.one_per_case(role) {
        return Ok(());
    }
    let name = state.policy.role_name(role);
    let taken = state
        .vault
        .involvements(&access.participant.id, None)
        .await?
        .iter()
        .any(|i| i.role == name && i.partner != partner);
    if taken { Err(role_taken()) } else { Ok(()) }
}

fn role_taken() -> ApiError {
    ApiError::conflict(
        "role_taken",
        "another partner holds this role in the case; hand it over with POST /v1/participants/{pid}/handover",
    )
}

/// `POST /v1/participants/{pid}/involvements`: start a role in the case.
#[utoipa::path(post, path = "/v1/participants/{pid}/involvements", tag = "cases", request_body = InvolvementIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 201, body = InvolvementIn), (status = 200, body = InvolvementIn, description = "already so"),
        (status = 403, body = ErrorBody, description = "`not_allowed`, or `self_escalation`: the role would widen your own view"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`role_taken` or `no_new_cases`"),
        (status = 422, body = ErrorBody)))]
pub async fn start_involvement(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    ApiJson(body): ApiJson<InvolvementIn>,
) -> ApiResult<Response> {
    const ACTION: Action = Action::InvolvementStart;
    let access = access::resolve(&state, &ctx, &pid, ACTION).await?;
    let policy = &state.policy;
    let event = || access.event(&ctx, policy, ACTION);
    let deny = |e: ApiError| refuse(&state.audit, event().refused(e.code), e);
    let own = body.partner == *ctx.caller.partner;
    let checked = check_assignable(policy, &body.partner, &body.role, true).and_then(|role| {
        if !access.decision.may_assign(role) {
            return Err(not_allowed());
        }
        let named = own && self_assignment(policy, &access, role)?;
        Ok((role, named))
    });
    let (role, named) = match checked {
        Ok(x) => x,
        Err(e) => return Err(deny(e).await),
    };
    if let Err(e) = check_free(&state, &access, role, &body.partner).await {
        return Err(deny(e).await);
    }
    // The DPO report lists the self-assignments the agreement names.
    let suffix = if named {
        format!(";{SELF_ASSIGN}")
    } else {
        String::new()
    };
    let detail = format!("{}:{}{suffix}", body.partner, body.role);
    let change = CaseChange::StartRole {
        partner: &body.partner,
        role: &body.role,
        by: &ctx.caller.partner,
        one_per_case: policy.one_per_case(role),
    };
    commit_case_change(&state, &ctx, &access, ACTION, detail, change, &body).await
}

/// `DELETE /v1/participants/{pid}/involvements`: end a role in the case. Ending another
/// partner's role needs a `reason`.
#[utoipa::path(delete, path = "/v1/participants/{pid}/involvements", tag = "cases", request_body = InvolvementEnd,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn end_involvement(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    ApiJson(body): ApiJson<InvolvementEnd>,
) -> ApiResult<Response> {
    const ACTION: Action = Action::InvolvementEnd;
    let access = access::resolve(&state, &ctx, &pid, ACTION).await?;
    let other = body.partner != *ctx.caller.partner;
    let checked =
        check_assignable(&state.policy, &body.partner, &body.role, false).and_then(|role| {
            if !access.decision.may_end(role) {
                return Err(not_allowed());
            }
            if other && body.reason.is_none() {
                return Err(ApiError::unprocessable(
                    "reason_required",
                    "ending another partner's role needs a reason: handover, case_closed, no_longer_needed, participant_request, conflict, partner_left or other",
                ));
            }
            Ok(())
        });
    if let Err(e) = checked {
        let event = access.event(&ctx, &state.policy, ACTION).refused(e.code);
        return Err(refuse(&state.audit, event, e).await);
    }
    let reason = body.reason.map(EndReason::as_str);
    let detail = match reason {
        Some(r) => format!("{}:{};reason={r}", body.partner, body.role),
        None => format!("{}:{}", body.partner, body.role),
    };
    let change = CaseChange::EndRole {
        partner: &body.partner,
        role: &body.role,
        by: &ctx.caller.partner,
        reason,
    };
    commit_case_change(&state, &ctx, &access, ACTION, detail, change, &body).await
}

/// `POST /v1/participants/{pid}/handover`: one partner's role passes to another in one
/// transaction (the way to change the trajectgezel). Both steps are audited.
#[utoipa::path(post, path = "/v1/participants/{pid}/handover", tag = "cases", request_body = HandoverIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = HandoverIn), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`not_current_holder`, `role_taken` or `no_new_cases`"),
        (status = 422, body = ErrorBody)))]
pub async fn handover(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    ApiJson(body): ApiJson<HandoverIn>,
) -> ApiResult<Response> {
    const ACTION: Action = Action::InvolvementHandover;
    let access = access::resolve(&state, &ctx, &pid, ACTION).await?;
    let policy = &state.policy;
    let event = || access.event(&ctx, policy, ACTION);
    let deny = |e: ApiError| refuse(&state.audit, event().refused(e.code), e);
    let checked = check_assignable(policy, &body.from, &body.role, false)
        .and_then(|_| check_assignable(policy, &body.to, &body.role, true))
        .and_then(|role| {
            if body.from == body.to {
                return Err(ApiError::unprocessable(
                    "same_partner",
                    "a handover goes from one partner to another",
                ));
            }
            if !(access.decision.may_assign(role) && access.decision.may_end(role)) {
                return Err(not_allowed());
            }
            let own = body.to == *ctx.caller.partner;
            Ok(own && self_assignment(policy, &access, role)?)
        });
    let named = match checked {
        Ok(named) => named,
        Err(e) => return Err(deny(e).await),
    };
    let not_holder = || {
        ApiError::conflict(
            "not_current_holder",
            "the `from` partner does not hold this role in the case now",
        )
    };
    let holds = state
        .vault
        .involvements(&access.participant.id, Some(&body.from))
        .await?
        .iter()
        .any(|i| i.role == body.role);
    if !holds {
        return Err(deny(not_holder()).await);
    }
    // The DPO report lists the self-assignments the agreement names.
    let suffix = if named {
        format!(";{SELF_ASSIGN}")
    } else {
        String::new()
    };
    let ended = format!("{}:{};reason=handover", body.from, body.role);
    let started = format!("{}:{};handover{suffix}", body.to, body.role);
    let step = |action, detail| access.event(&ctx, policy, action).granted_with(detail);
    let steps = vec![
        step(Action::InvolvementEnd, ended),
        step(Action::InvolvementStart, started),
    ];
    // The records are committed with the handover itself, or not at all.
    let roles = (body.role.as_str(), body.from.as_str(), body.to.as_str());
    let outcome = state
        .vault
        .handover(&access.participant.id, roles, &ctx.caller.partner, steps)
        .await?;
    match outcome {
        CaseOutcome::Changed => Ok((StatusCode::OK, Json(body)).into_response()),
        CaseOutcome::Unchanged => Err(deny(not_holder()).await),
        CaseOutcome::Taken => Err(deny(role_taken()).await),
    }
}

fn not_allowed() -> ApiError {
    ApiError::forbidden("not_allowed", "your role may not assign or end this role")
}

/// A consent scope.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    /// Scope id from the agreement.
    pub scope: String,
}

async fn consent(
    state: AppState,
    ctx: Ctx,
    pid: String,
    body: ConsentIn,
    recording: bool,
) -> ApiResult<Response> {
    let action = if recording {
        Action::ConsentRecord
    } else {
        Action::ConsentWithdraw
    };
    let access = access::resolve(&state, &ctx, &pid, action).await?;
    let policy = &state.policy;
    let event = || access.event(&ctx, policy, action);
    let deny = |e: ApiError| refuse(&state.audit, event().refused(e.code), e);
    let checked = policy
        .scope(&body.scope)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "unknown_scope",
                "scope is not a consent scope of the agreement",
            )
        })
        .and_then(|scope| {
            if access.decision.may_record_consent() {
                Ok(scope)
            } else {
                Err(ApiError::forbidden(
                    "not_allowed",
                    "your role may not record consents",
                ))
            }
        });
    let scope = match checked {
        Ok(s) => s,
        Err(e) => return Err(deny(e).await),
    };
    let mut detail = body.scope.clone();
    if recording {
        // A consent that unlocks the recorder's own reading is flagged, or refused where the
        // agreement wants another role to record it.
        let unlocks = policy.consent_widens(access.partner_roles(policy), access.consents, scope);
        if !unlocks.is_empty() {
            if policy.needs_independent_recorder(scope) {
                let e = ApiError::forbidden(
                    "independent_recorder_required",
                    "this consent would widen your own reading; the agreement wants another role in the case to record it",
                );
                return Err(deny(e).await);
            }
            detail.push(';');
            detail.push_str(WIDENS_OWN_READING);
        }
    }
    let (scope, by) = (body.scope.as_str(), &*ctx.caller.partner);
    let change = if recording {
        CaseChange::RecordConsent { scope, by }
    } else {
        CaseChange::WithdrawConsent { scope, by }
    };
    commit_case_change(&state, &ctx, &access, action, detail, change, &body).await
}

/// Audits and applies one allowed change to the case. A start answers 201 (200 if it was
/// already so), an end 204 (404 if there was nothing to end).
async fn commit_case_change<B: Serialize>(
    state: &AppState,
    ctx: &Ctx,
    access: &Access,
    action: Action,
    detail: String,
    change: CaseChange<'_>,
    body: &B,
) -> ApiResult<Response> {
    let event = || access.event(ctx, &state.policy, action);
    let records = vec![event().granted_with(detail)];
    let starts = matches!(
        change,
        CaseChange::StartRole { .. } | CaseChange::RecordConsent { .. }
    );
    let outcome = state
        .vault
        .change_case(&access.participant.id, change, records)
        .await?;
    Ok(match (starts, outcome) {
        (_, CaseOutcome::Taken) => {
            let error = role_taken();
            return Err(refuse(&state.audit, event().refused(error.code), error).await);
        }
        (true, CaseOutcome::Changed) => (StatusCode::CREATED, Json(body)).into_response(),
        (true, CaseOutcome::Unchanged) => (StatusCode::OK, Json(body)).into_response(),
        (false, CaseOutcome::Changed) => StatusCode::NO_CONTENT.into_response(),
        (false, CaseOutcome::Unchanged) => {
            return Err(ApiError::not_found(
                "nothing to end: it is not in force in this case",
            ));
        }
    })
}

/// `POST /v1/participants/{pid}/consents`: record the participant's consent for a scope.
#[utoipa::path(post, path = "/v1/participants/{pid}/consents", tag = "cases", request_body = ConsentIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 201, body = ConsentIn), (status = 200, body = ConsentIn, description = "already in force"),
        (status = 403, body = ErrorBody, description = "`not_allowed`, or `independent_recorder_required`"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn record_consent(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    ApiJson(body): ApiJson<ConsentIn>,
) -> ApiResult<impl IntoResponse> {
    consent(state, ctx, pid, body, true).await
}

/// `DELETE /v1/participants/{pid}/consents`: withdraw it; effective on the next request.
#[utoipa::path(delete, path = "/v1/participants/{pid}/consents", tag = "cases", request_body = ConsentIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn withdraw_consent(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    ApiJson(body): ApiJson<ConsentIn>,
) -> ApiResult<impl IntoResponse> {
    consent(state, ctx, pid, body, false).await
}
