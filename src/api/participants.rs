//! Participant endpoints: register, look up, read, write, involvements, consents, notes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::access::{self, Access, DSR_PURPOSE, objection_applies, role_names};
use super::audited::{record, refuse};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, Ctx};
use super::idempotency::{self, Begin};
use crate::audit::Action;
use crate::audit::report::{RATE_LIMITED, SELF_ASSIGN, SELF_ESCALATION, WIDENS_OWN_READING};
use crate::policy::{CategorySet, Policy, RoleLevel, RoleSet, ScopeSet};
use crate::vault::crypto::ParticipantId;
use crate::vault::insz::{INSZ_FIELD, Insz};
use crate::vault::{CaseChange, CaseOutcome, Participant, WriteError};

/// The role a registering partner takes.
const REFERRER_ROLE: &str = "toeleider";

/// A record in: field name → value (`null` clears, on PATCH).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    /// `category.name` → value.
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, Value>,
}

/// A record out: only the fields this caller may see.
#[derive(Serialize, ToSchema)]
pub struct RecordOut {
    /// The caller's pseudonym for this participant.
    pub pid: String,
    /// Record version, for `If-Match`.
    pub version: i64,
    /// Visible fields.
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, Value>,
}

/// Answer to a write: the new version.
#[derive(Serialize, ToSchema)]
pub struct Written {
    /// The caller's pseudonym.
    pub pid: String,
    /// The record version after the write.
    pub version: i64,
}

/// Answer to a registration.
#[derive(Serialize, ToSchema)]
pub struct Registered {
    /// The caller's pseudonym.
    pub pid: String,
    /// Record version.
    pub version: i64,
    /// True when the national number was already registered (nothing was written).
    pub existing: bool,
}

/// Checks names, types and write permission of every field; nothing is written unless all pass.
fn check_fields(
    policy: &Policy,
    fields: &BTreeMap<String, Value>,
    writable: CategorySet,
) -> Result<(), ApiError> {
    let mut not_writable = Vec::new();
    for (name, value) in fields {
        let Some(field) = policy.field(name) else {
            return Err(ApiError::unprocessable(
                "unknown_field",
                format!("unknown field `{}`", clean_name(name)),
            ));
        };
        policy
            .validate_value(name, value)
            .map_err(|e| ApiError::unprocessable("invalid_value", e.to_string()))?;
        if !writable.contains(field.category) {
            not_writable.push(field.name.to_string());
        }
    }
    if !not_writable.is_empty() {
        return Err(ApiError::forbidden(
            "field_not_writable",
            format!(
                "not writable for your role and purpose: {}; nothing was written",
                not_writable.join(", ")
            ),
        ));
    }
    Ok(())
}

/// A caller-supplied name made safe to echo: known charset, bounded.
fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_'))
        .take(64)
        .collect()
}

fn parse_insz(value: Option<&Value>) -> Result<Insz, ApiError> {
    let text = value.and_then(Value::as_str).ok_or_else(|| {
        ApiError::unprocessable(
            "missing_insz",
            "identity.insz is required to register a participant",
        )
    })?;
    Insz::parse(text)
        .map_err(|e| ApiError::unprocessable("invalid_insz", format!("identity.insz: {e}")))
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// `POST /v1/participants`: register; the caller becomes toeleider.
#[utoipa::path(post, path = "/v1/participants", tag = "participants", request_body = RecordIn,
    params(("X-Purpose" = String, Header), ("X-Acting-User" = String, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Registered), (status = 200, body = Registered, description = "national number already registered"),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RecordIn>,
) -> ApiResult<Response> {
    let begin = idempotency::begin(&state, &ctx, &headers, REGISTER, "", &body.fields).await?;
    let slot = match begin {
        Begin::Replay(r) => return Ok(r),
        Begin::Go(slot) => slot,
    };
    let result = register_new(&state, &ctx, body.fields).await;
    idempotency::answer(&state, slot, result).await
}

const REGISTER: Action = Action::ParticipantRegister;

async fn register_new(
    state: &AppState,
    ctx: &Ctx,
    mut fields: BTreeMap<String, Value>,
) -> ApiResult<(StatusCode, Registered, ParticipantId)> {
    let policy = &state.policy;
    let deny = |roles: RoleSet, e: ApiError| {
        let event = ctx.event(REGISTER).roles(role_names(policy, roles));
        refuse(&state.audit, event.refused(e.code), e)
    };
    let referrer = policy
        .role(REFERRER_ROLE)
        .filter(|r| ctx.caller.allowed_roles.contains(*r));
    let Some(referrer) = referrer else {
        let e = ApiError::forbidden(
            "role_not_allowed",
            "this client may not refer participants (role toeleider)",
        );
        return Err(deny(RoleSet::empty(), e).await);
    };
    let roles = RoleSet::of(referrer);
    let partner = policy.agreement().partner(&ctx.caller.partner);
    if !partner.is_some_and(|p| p.may_take_new_roles_on(today())) {
        let e = ApiError::forbidden(
            "no_new_cases",
            "this partner is in its notice period or has left: it takes no new cases",
        );
        return Err(deny(roles, e).await);
    }
    let decision = policy.decide(roles, ctx.purpose);
    let checked = check_fields(policy, &fields, decision.writable(ScopeSet::empty()))
        .and_then(|()| parse_insz(fields.get(INSZ_FIELD)));
    let insz = match checked {
        Ok(insz) => insz,
        Err(e) => return Err(deny(roles, e).await),
    };
    fields.insert(INSZ_FIELD.into(), Value::String(insz.as_str().to_string()));

    let vault = &state.vault;
    if let Some(id) = vault.find_by_insz(&insz).await? {
        return existing(state, ctx, roles, id).await;
    }
    let id = ParticipantId::generate().map_err(|_| ApiError::storage())?;
    // The record of the write is durable before the write happens.
    let names: Vec<String> = fields.keys().cloned().collect();
    let event = ctx
        .event(REGISTER)
        .participant(vault.index().audit_pseudonym(&id))
        .roles(role_names(policy, roles))
        .fields(names)
        .granted();
    record(&state.audit, vec![event]).await?;
    if vault
        .register(&id, &insz, &fields, &ctx.caller.partner, REFERRER_ROLE)
        .await?
    {
        let pid = vault
            .index()
            .pid_for(&ctx.caller.partner, &id)
            .into_string();
        let body = Registered {
            pid,
            version: 1,
            existing: false,
        };
        return Ok((StatusCode::CREATED, body, id));
    }
    // Registered concurrently by someone else a moment ago.
    match vault.find_by_insz(&insz).await? {
        Some(id) => existing(state, ctx, roles, id).await,
        None => Err(ApiError::storage()),
    }
}

/// The answer for a national number that is already registered: the caller's pid, no write.
async fn existing(
    state: &AppState,
    ctx: &Ctx,
    roles: RoleSet,
    id: ParticipantId,
) -> ApiResult<(StatusCode, Registered, ParticipantId)> {
    let vault = &state.vault;
    let p = vault
        .participant(&id)
        .await?
        .ok_or_else(ApiError::storage)?;
    let event = ctx
        .event(REGISTER)
        .participant(vault.index().audit_pseudonym(&id))
        .roles(role_names(&state.policy, roles))
        .granted_with("existing");
    record(&state.audit, vec![event]).await?;
    let pid = vault
        .index()
        .pid_for(&ctx.caller.partner, &id)
        .into_string();
    let body = Registered {
        pid,
        version: p.version,
        existing: true,
    };
    Ok((StatusCode::OK, body, id))
}

/// Look-up body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupIn {
    /// The national register number.
    pub insz: String,
}

/// Look-up answer.
#[derive(Serialize, ToSchema)]
pub struct LookupOut {
    /// The caller's pseudonym.
    pub pid: String,
    /// Whether any partner currently has a role in the case.
    pub active: bool,
}

/// `POST /v1/lookup`: the duplicate check. Rate limited per client; a participant whose
/// processing is restricted, or whose objection stops the caller's processing, gives no pid.
#[utoipa::path(post, path = "/v1/lookup", tag = "participants", request_body = LookupIn,
    params(("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = LookupOut), (status = 404, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "no look-up grant, or `participant_restricted` / `participant_objected`"),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody, description = "over the look-up limit; see Retry-After")))]
pub async fn lookup(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<LookupIn>,
) -> ApiResult<Json<LookupOut>> {
    const ACTION: Action = Action::ParticipantLookup;
    let policy = &state.policy;
    let roles = ctx.caller.allowed_roles;
    let names = role_names(policy, roles);
    let deny = |e: ApiError| {
        let event = ctx.event(ACTION).roles(names.clone()).refused(e.code);
        refuse(&state.audit, event, e)
    };
    if !policy.decide(roles, ctx.purpose).may_lookup() {
        let e = ApiError::forbidden(
            "not_allowed",
            "your roles may not look up participants for this purpose",
        );
        return Err(deny(e).await);
    }
    if let Err(wait) = state.lookups.take(&ctx.caller.client) {
        let e = ApiError::too_many_requests(
            RATE_LIMITED,
            "too many look-ups from this client; wait as Retry-After says",
            wait.as_secs_f64().ceil() as u64,
        );
        return Err(deny(e).await);
    }
    let insz = match Insz::parse(&body.insz) {
        Ok(i) => i,
        Err(e) => {
            let e = ApiError::unprocessable("invalid_insz", format!("insz: {e}"));
            return Err(deny(e).await);
        }
    };
    let vault = &state.vault;
    let found = match vault.find_by_insz(&insz).await? {
        Some(id) => vault.participant(&id).await?,
        None => None,
    };
    let Some(p) = found else {
        let e = ctx.event(ACTION).roles(names).granted_with("not_found");
        record(&state.audit, vec![e]).await?;
        return Err(ApiError::participant_not_found());
    };
    let pseudonym = vault.index().audit_pseudonym(&p.id);
    if let Some(error) = withheld(policy, &ctx, &p) {
        let e = ctx.event(ACTION).participant(pseudonym).roles(names);
        return Err(refuse(&state.audit, e.refused(error.code), error).await);
    }
    let active = !vault.involvements(&p.id, None).await?.is_empty();
    let e = ctx.event(ACTION).participant(pseudonym).roles(names);
    record(&state.audit, vec![e.granted_with("found")]).await?;
    Ok(Json(LookupOut {
        pid: vault
            .index()
            .pid_for(&ctx.caller.partner, &p.id)
            .into_string(),
        active,
    }))
}

/// Why a found participant's pid is withheld from this caller, if it is: restriction
/// (Art. 18) or an objection (Art. 21) that stops the caller's legal basis. Data-subject
/// request handling is exempt.
fn withheld(policy: &Policy, ctx: &Ctx, p: &Participant) -> Option<ApiError> {
    if &*ctx.purpose_name == DSR_PURPOSE {
        return None;
    }
    if p.restricted {
        return Some(ApiError::forbidden(
            "participant_restricted",
            "processing of this participant is restricted (GDPR Art. 18): no pseudonym is given",
        ));
    }
    if p.objection && objection_applies(policy, &ctx.caller.partner, &ctx.purpose_name) {
        return Some(ApiError::forbidden(
            "participant_objected",
            "this participant objected to processing on your legal basis (GDPR Art. 21): no pseudonym is given",
        ));
    }
    None
}

/// `GET /v1/participants/{pid}`: the fields this caller may see for this purpose.
#[utoipa::path(get, path = "/v1/participants/{pid}", tag = "participants",
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = RecordOut), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
) -> ApiResult<Json<RecordOut>> {
    let access = access::resolve(&state, &ctx, &pid, Action::ParticipantRead).await?;
    let policy = &state.policy;
    let readable = access.readable();
    let fields = state.vault.open_snapshot(&access.snapshot, |f| {
        policy
            .field(f)
            .is_some_and(|r| readable.contains(r.category))
    })?;
    let names = fields.keys().cloned().collect();
    let event = access.event(&ctx, policy, Action::ParticipantRead);
    record(&state.audit, vec![event.fields(names).granted()]).await?;
    Ok(Json(RecordOut {
        pid,
        version: access.participant.version,
        fields,
    }))
}

fn if_match(headers: &HeaderMap) -> Result<i64, ApiError> {
    let raw = headers.get(axum::http::header::IF_MATCH).ok_or_else(|| {
        ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "missing_if_match",
            "If-Match with the record version is required",
        )
    })?;
    raw.to_str()
        .ok()
        .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_if_match",
                "If-Match must be the record version, e.g. \"3\"",
            )
        })
}

/// `PATCH /v1/participants/{pid}`: write fields, all or nothing. A corrected
/// `identity.insz` moves the look-up with it.
#[utoipa::path(patch, path = "/v1/participants/{pid}", tag = "participants", request_body = RecordIn,
    params(("pid" = String, Path), ("If-Match" = String, Header), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = Written), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`insz_taken`: the national number belongs to another participant"),
        (status = 412, body = ErrorBody), (status = 422, body = ErrorBody), (status = 428, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RecordIn>,
) -> ApiResult<Json<Written>> {
    const ACTION: Action = Action::ParticipantWrite;
    let access = access::resolve(&state, &ctx, &pid, ACTION).await?;
    let policy = &state.policy;
    // Only names the agreement knows go into the audit record, never what the caller typed.
    let names: Vec<String> = body
        .fields
        .keys()
        .filter(|n| policy.field(n).is_some())
        .cloned()
        .collect();
    let event = || access.event(&ctx, policy, ACTION).fields(names.clone());
    let deny = |e: ApiError| refuse(&state.audit, event().refused(e.code), e);
    let checked = if_match(&headers).and_then(|v| {
        check_fields(policy, &body.fields, access.writable())?;
        Ok(v)
    });
    let expected = match checked {
        Ok(v) => v,
        Err(e) => return Err(deny(e).await),
    };
    let mut fields = body.fields;
    let new_insz = match fields.get(INSZ_FIELD) {
        None => None,
        Some(Value::Null) => {
            let e = ApiError::unprocessable("insz_required", "identity.insz cannot be cleared");
            return Err(deny(e).await);
        }
        Some(v) => match parse_insz(Some(v)) {
            Ok(insz) => Some(insz),
            Err(e) => return Err(deny(e).await),
        },
    };
    let insz_taken = || {
        ApiError::conflict(
            "insz_taken",
            "this national number belongs to another participant; nothing was written",
        )
    };
    if let Some(insz) = &new_insz {
        fields.insert(INSZ_FIELD.into(), Value::String(insz.as_str().to_string()));
        let holder = state.vault.find_by_insz(insz).await?;
        if holder.is_some_and(|h| h != access.participant.id) {
            return Err(deny(insz_taken()).await);
        }
    }
    let stale = |current: i64| {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "stale_version",
            format!("the record is at version {current}; read it again and retry"),
        )
    };
    if access.participant.version != expected {
        return Err(deny(stale(access.participant.version)).await);
    }
    record(&state.audit, vec![event().granted()]).await?;
    let version = match state
        .vault
        .update(&access.participant, expected, &fields, new_insz.as_ref())
        .await
    {
        Ok(v) => v,
        Err(WriteError::Stale(current)) => return Err(deny(stale(current)).await),
        Err(WriteError::InszTaken) => return Err(deny(insz_taken()).await),
        Err(WriteError::NotFound) => return Err(ApiError::participant_not_found()),
        Err(WriteError::Vault(e)) => return Err(e.into()),
    };
    Ok(Json(Written { pid, version }))
}

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
    record(&state.audit, steps).await?;
    let outcome = state
        .vault
        .handover(
            &access.participant.id,
            &body.role,
            &body.from,
            &body.to,
            &ctx.caller.partner,
        )
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
    record(&state.audit, vec![event().granted_with(detail)]).await?;
    let starts = matches!(
        change,
        CaseChange::StartRole { .. } | CaseChange::RecordConsent { .. }
    );
    let outcome = state
        .vault
        .change_case(&access.participant.id, change)
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

/// A new case note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteIn {
    /// The note text.
    pub text: String,
}

/// A note's metadata, as answered on creation.
#[derive(Serialize, ToSchema)]
pub struct NoteCreated {
    /// Note id.
    pub id: String,
    /// The writing partner.
    pub author_partner: String,
    /// When.
    pub created_at: String,
}

/// A note, as read.
#[derive(Serialize, ToSchema)]
pub struct NoteOut {
    /// Note id.
    pub id: String,
    /// The writing partner.
    pub author_partner: String,
    /// When.
    pub created_at: String,
    /// The text.
    pub text: String,
}

/// The notes of a case.
#[derive(Serialize, ToSchema)]
pub struct NotesOut {
    /// Oldest first.
    pub notes: Vec<NoteOut>,
}

fn notes_category(policy: &Policy) -> Option<crate::policy::CategoryId> {
    policy.category("notes")
}

/// `GET /v1/participants/{pid}/notes`.
#[utoipa::path(get, path = "/v1/participants/{pid}/notes", tag = "notes",
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = NotesOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_notes(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
) -> ApiResult<Json<NotesOut>> {
    const ACTION: Action = Action::NotesRead;
    let access = access::resolve(&state, &ctx, &pid, ACTION).await?;
    let policy = &state.policy;
    if !notes_category(policy).is_some_and(|c| access.readable().contains(c)) {
        let error = ApiError::forbidden(
            "not_allowed",
            "your role may not read case notes for this purpose",
        );
        let event = access.event(&ctx, policy, ACTION).refused("no_grant");
        return Err(refuse(&state.audit, event, error).await);
    }
    let notes = state.vault.notes(&access.participant).await?;
    let fields = notes
        .iter()
        .map(|n| format!("notes.text/{}", n.id))
        .collect();
    let event = access.event(&ctx, policy, ACTION).fields(fields);
    record(&state.audit, vec![event.granted()]).await?;
    Ok(Json(NotesOut {
        notes: notes
            .into_iter()
            .map(|n| NoteOut {
                id: n.id,
                author_partner: n.author_partner,
                created_at: n.created_at,
                text: n.text,
            })
            .collect(),
    }))
}

/// `POST /v1/participants/{pid}/notes`.
#[utoipa::path(post, path = "/v1/participants/{pid}/notes", tag = "notes", request_body = NoteIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 201, body = NoteCreated), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_note(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NoteIn>,
) -> ApiResult<Response> {
    const ACTION: Action = Action::NotesWrite;
    let begin = idempotency::begin(&state, &ctx, &headers, ACTION, &pid, &body.text).await?;
    let slot = match begin {
        Begin::Replay(r) => return Ok(r),
        Begin::Go(slot) => slot,
    };
    let result = write_note(&state, &ctx, &pid, &body.text).await;
    idempotency::answer(&state, slot, result).await
}

async fn write_note(
    state: &AppState,
    ctx: &Ctx,
    pid: &str,
    text: &str,
) -> ApiResult<(StatusCode, NoteCreated, ParticipantId)> {
    const ACTION: Action = Action::NotesWrite;
    let access = access::resolve(state, ctx, pid, ACTION).await?;
    let policy = &state.policy;
    let checked = if !notes_category(policy).is_some_and(|c| access.writable().contains(c)) {
        Err(ApiError::forbidden(
            "not_allowed",
            "your role may not write case notes for this purpose",
        ))
    } else if text.trim().is_empty() {
        Err(ApiError::unprocessable(
            "invalid_value",
            "a note needs text",
        ))
    } else {
        policy
            .validate_value("notes.text", &Value::String(text.to_string()))
            .map_err(|e| ApiError::unprocessable("invalid_value", e.to_string()))
    };
    let event = access
        .event(ctx, policy, ACTION)
        .fields(vec!["notes.text".to_string()]);
    if let Err(e) = checked {
        return Err(refuse(&state.audit, event.refused(e.code), e).await);
    }
    record(&state.audit, vec![event.granted()]).await?;
    let note = state
        .vault
        .add_note(&access.participant, &ctx.caller.partner, text)
        .await?;
    let created = NoteCreated {
        id: note.id,
        author_partner: note.author_partner,
        created_at: note.created_at,
    };
    Ok((StatusCode::CREATED, created, access.participant.id))
}
