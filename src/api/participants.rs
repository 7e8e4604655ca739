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
use super::access::{self, Access, audit, refuse, role_names};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, Ctx};
use super::idempotency::{Idempotency, answer};
use crate::audit::Outcome;
use crate::policy::{CategorySet, Policy, RoleLevel, RoleSet, ScopeSet};
use crate::vault::crypto::ParticipantId;
use crate::vault::insz::Insz;
use crate::vault::{CaseChange, WriteError};

/// The field holding the national register number.
pub const INSZ_FIELD: &str = "identity.insz";
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
    params(("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 201, body = Registered), (status = 200, body = Registered, description = "national number already registered"),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RecordIn>,
) -> ApiResult<Response> {
    let idem = Idempotency::from_headers(&headers, &ctx.caller.client, "register", &body.fields)?;
    if let Some(k) = &idem
        && let Some(replay) = k.replay(&state).await?
    {
        return Ok(replay);
    }
    let policy = &state.policy;
    let referrer = policy
        .role(REFERRER_ROLE)
        .filter(|r| ctx.caller.allowed_roles.contains(*r));
    let refused = |code: &'static str, msg: &'static str| {
        (
            ctx.event(
                "participant.register",
                None,
                Vec::new(),
                Vec::new(),
                Outcome::Refused,
                Some(code.into()),
            ),
            ApiError::forbidden(code, msg),
        )
    };
    let Some(referrer) = referrer else {
        let (e, err) = refused(
            "role_not_allowed",
            "this client may not refer participants (role toeleider)",
        );
        return Err(refuse(&state, e, err).await);
    };
    let partner = policy.agreement().partner(&ctx.caller.partner);
    if !partner.is_some_and(|p| p.may_take_new_roles_on(today())) {
        let (e, err) = refused(
            "no_new_cases",
            "this partner is in its notice period or has left: it takes no new cases",
        );
        return Err(refuse(&state, e, err).await);
    }
    let roles = RoleSet::of(referrer);
    let decision = policy.decide(roles, ctx.purpose);
    if let Err(err) = check_fields(policy, &body.fields, decision.writable(ScopeSet::empty())) {
        let e = ctx.event(
            "participant.register",
            None,
            role_names(policy, roles),
            Vec::new(),
            Outcome::Refused,
            Some(err.code.into()),
        );
        return Err(refuse(&state, e, err).await);
    }
    let insz = parse_insz(body.fields.get(INSZ_FIELD))?;
    let mut fields = body.fields;
    fields.insert(INSZ_FIELD.into(), Value::String(insz.as_str().to_string()));

    let vault = &state.vault;
    if let Some(id) = vault.find_by_insz(&insz).await? {
        let (status, body) = existing(&state, &ctx, roles, &id).await?;
        return answer(&state, idem.as_ref(), status, body).await;
    }
    let id = ParticipantId::generate().map_err(|_| ApiError::storage())?;
    // The record of the write is durable before the write happens.
    let names: Vec<String> = fields.keys().cloned().collect();
    let event = ctx.event(
        "participant.register",
        Some(vault.index().audit_pseudonym(&id)),
        role_names(policy, roles),
        names,
        Outcome::Granted,
        None,
    );
    audit(&state, vec![event]).await?;
    let (status, body) = match vault
        .register(&id, &insz, &fields, &ctx.caller.partner, REFERRER_ROLE)
        .await?
    {
        true => {
            let pid = vault
                .index()
                .pid_for(&ctx.caller.partner, &id)
                .into_string();
            (
                StatusCode::CREATED,
                Registered {
                    pid,
                    version: 1,
                    existing: false,
                },
            )
        }
        // Registered concurrently by someone else a moment ago.
        false => match vault.find_by_insz(&insz).await? {
            Some(id) => existing(&state, &ctx, roles, &id).await?,
            None => return Err(ApiError::storage()),
        },
    };
    answer(&state, idem.as_ref(), status, body).await
}

/// The answer for a national number that is already registered: the caller's pid, no write.
async fn existing(
    state: &AppState,
    ctx: &Ctx,
    roles: RoleSet,
    id: &ParticipantId,
) -> ApiResult<(StatusCode, Registered)> {
    let vault = &state.vault;
    let p = vault.participant(id).await?.ok_or_else(ApiError::storage)?;
    let event = ctx.event(
        "participant.register",
        Some(vault.index().audit_pseudonym(id)),
        role_names(&state.policy, roles),
        Vec::new(),
        Outcome::Granted,
        Some("existing".into()),
    );
    audit(state, vec![event]).await?;
    let pid = vault.index().pid_for(&ctx.caller.partner, id).into_string();
    Ok((
        StatusCode::OK,
        Registered {
            pid,
            version: p.version,
            existing: true,
        },
    ))
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

/// `POST /v1/lookup`: the duplicate check.
#[utoipa::path(post, path = "/v1/lookup", tag = "participants", request_body = LookupIn,
    params(("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = LookupOut), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn lookup(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<LookupIn>,
) -> ApiResult<Json<LookupOut>> {
    let policy = &state.policy;
    let roles = ctx.caller.allowed_roles;
    let names = role_names(policy, roles);
    if !policy.decide(roles, ctx.purpose).may_lookup() {
        let e = ctx.event(
            "participant.lookup",
            None,
            names,
            Vec::new(),
            Outcome::Refused,
            Some("no_grant_for_purpose".into()),
        );
        return Err(refuse(
            &state,
            e,
            ApiError::forbidden(
                "not_allowed",
                "your roles may not look up participants for this purpose",
            ),
        )
        .await);
    }
    let insz = Insz::parse(&body.insz)
        .map_err(|e| ApiError::unprocessable("invalid_insz", format!("insz: {e}")))?;
    let vault = &state.vault;
    let Some(id) = vault.find_by_insz(&insz).await? else {
        audit(
            &state,
            vec![ctx.event(
                "participant.lookup",
                None,
                names,
                Vec::new(),
                Outcome::Granted,
                Some("not_found".into()),
            )],
        )
        .await?;
        return Err(ApiError::participant_not_found());
    };
    let active = !vault.involvements(&id, None).await?.is_empty();
    audit(
        &state,
        vec![ctx.event(
            "participant.lookup",
            Some(vault.index().audit_pseudonym(&id)),
            names,
            Vec::new(),
            Outcome::Granted,
            Some("found".into()),
        )],
    )
    .await?;
    Ok(Json(LookupOut {
        pid: vault
            .index()
            .pid_for(&ctx.caller.partner, &id)
            .into_string(),
        active,
    }))
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
    let access = access::resolve(&state, &ctx, &pid, "participant.read").await?;
    let policy = &state.policy;
    let readable = access.readable();
    let fields = state.vault.open_snapshot(&access.snapshot, |f| {
        policy
            .field(f)
            .is_some_and(|r| readable.contains(r.category))
    })?;
    let names = fields.keys().cloned().collect();
    audit(
        &state,
        vec![access.event(
            &ctx,
            policy,
            "participant.read",
            names,
            Outcome::Granted,
            None,
        )],
    )
    .await?;
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

/// `PATCH /v1/participants/{pid}`: write fields, all or nothing.
#[utoipa::path(patch, path = "/v1/participants/{pid}", tag = "participants", request_body = RecordIn,
    params(("pid" = String, Path), ("If-Match" = String, Header), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = Written), (status = 403, body = ErrorBody), (status = 412, body = ErrorBody), (status = 428, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RecordIn>,
) -> ApiResult<Json<Written>> {
    let expected = if_match(&headers)?;
    let access = access::resolve(&state, &ctx, &pid, "participant.write").await?;
    let policy = &state.policy;
    let names: Vec<String> = body.fields.keys().map(|n| clean_name(n)).collect();
    let refused = |reason: &str| {
        access.event(
            &ctx,
            policy,
            "participant.write",
            names.clone(),
            Outcome::Refused,
            Some(reason.to_string()),
        )
    };
    if let Err(err) = check_fields(policy, &body.fields, access.writable()) {
        return Err(refuse(&state, refused(err.code), err).await);
    }
    let mut fields = body.fields;
    if let Some(v) = fields.get(INSZ_FIELD).filter(|v| !v.is_null()) {
        let insz = parse_insz(Some(v))?;
        fields.insert(INSZ_FIELD.into(), Value::String(insz.as_str().to_string()));
    } else if fields.contains_key(INSZ_FIELD) {
        return Err(ApiError::unprocessable(
            "insz_required",
            "identity.insz cannot be cleared",
        ));
    }
    let stale = |current: i64| {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "stale_version",
            format!("the record is at version {current}; read it again and retry"),
        )
    };
    if access.participant.version != expected {
        return Err(refuse(
            &state,
            refused("stale_version"),
            stale(access.participant.version),
        )
        .await);
    }
    audit(
        &state,
        vec![access.event(
            &ctx,
            policy,
            "participant.write",
            names.clone(),
            Outcome::Granted,
            None,
        )],
    )
    .await?;
    let version = match state
        .vault
        .update(&access.participant, expected, &fields)
        .await
    {
        Ok(v) => v,
        Err(WriteError::Stale(current)) => {
            return Err(refuse(&state, refused("stale_version"), stale(current)).await);
        }
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

/// Checks that `partner` may hold `role`: a case role, a partner that takes new cases, and a
/// client of that partner allowed to use the role.
fn check_assignable(
    policy: &Policy,
    body: &InvolvementIn,
    starting: bool,
) -> Result<crate::policy::RoleId, ApiError> {
    let role = policy
        .role(&body.role)
        .filter(|r| policy.role_level(*r) == RoleLevel::Case)
        .ok_or_else(|| {
            ApiError::unprocessable("unknown_role", "role is not a case role of the agreement")
        })?;
    let agreement = policy.agreement();
    let partner = agreement.partner(&body.partner).ok_or_else(|| {
        ApiError::unprocessable("unknown_partner", "partner is not in the agreement")
    })?;
    if starting {
        if !partner.may_take_new_roles_on(today()) {
            return Err(ApiError::conflict(
                "no_new_cases",
                "that partner is in its notice period or has left: it takes no new roles",
            ));
        }
        let can_hold = agreement
            .clients
            .iter()
            .any(|c| *c.partner == body.partner && c.roles.iter().any(|r| **r == body.role));
        if !can_hold {
            return Err(ApiError::unprocessable(
                "role_not_held",
                "no client of that partner may use this role",
            ));
        }
    }
    Ok(role)
}

async fn involvement(
    state: AppState,
    ctx: Ctx,
    pid: String,
    body: InvolvementIn,
    starting: bool,
) -> ApiResult<Response> {
    let action = if starting {
        "involvement.start"
    } else {
        "involvement.end"
    };
    let access = access::resolve(&state, &ctx, &pid, action).await?;
    let role = check_assignable(&state.policy, &body, starting)?;
    let allowed = if starting {
        access.decision.may_assign(role)
    } else {
        access.decision.may_end(role)
    };
    let by = &*ctx.caller.partner;
    let (partner, role) = (body.partner.as_str(), body.role.as_str());
    let change = if starting {
        CaseChange::StartRole { partner, role, by }
    } else {
        CaseChange::EndRole { partner, role, by }
    };
    let refusal = ApiError::forbidden("not_allowed", "your role may not assign or end this role");
    let absent = "that partner does not hold that role in this case";
    let detail = format!("{partner}:{role}");
    apply_case_change(
        &state,
        &ctx,
        &access,
        action,
        allowed.then_some(detail).ok_or(refusal),
        change,
        &body,
        absent,
    )
    .await
}

/// `POST /v1/participants/{pid}/involvements`: start a role in the case.
#[utoipa::path(post, path = "/v1/participants/{pid}/involvements", tag = "cases", request_body = InvolvementIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 201, body = InvolvementIn), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn start_involvement(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    ApiJson(body): ApiJson<InvolvementIn>,
) -> ApiResult<impl IntoResponse> {
    involvement(state, ctx, pid, body, true).await
}

/// `DELETE /v1/participants/{pid}/involvements`: end a role in the case.
#[utoipa::path(delete, path = "/v1/participants/{pid}/involvements", tag = "cases", request_body = InvolvementIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn end_involvement(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    ApiJson(body): ApiJson<InvolvementIn>,
) -> ApiResult<impl IntoResponse> {
    involvement(state, ctx, pid, body, false).await
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
        "consent.record"
    } else {
        "consent.withdraw"
    };
    let access = access::resolve(&state, &ctx, &pid, action).await?;
    if state.policy.scope(&body.scope).is_none() {
        return Err(ApiError::unprocessable(
            "unknown_scope",
            "scope is not a consent scope of the agreement",
        ));
    }
    let (scope, by) = (body.scope.as_str(), &*ctx.caller.partner);
    let change = if recording {
        CaseChange::RecordConsent { scope, by }
    } else {
        CaseChange::WithdrawConsent { scope, by }
    };
    let allowed = access.decision.may_record_consent();
    let refusal = ApiError::forbidden("not_allowed", "your role may not record consents");
    let absent = "no consent for that scope is in force";
    apply_case_change(
        &state,
        &ctx,
        &access,
        action,
        allowed.then(|| scope.to_string()).ok_or(refusal),
        change,
        &body,
        absent,
    )
    .await
}

/// Audits and applies one change to the case. `allowed` carries the audit detail, or the
/// refusal to answer with. A start answers 201 (200 if it was already so), an end 204 (404 if
/// there was nothing to end).
#[allow(clippy::too_many_arguments)]
async fn apply_case_change<B: Serialize>(
    state: &AppState,
    ctx: &Ctx,
    access: &Access,
    action: &'static str,
    allowed: Result<String, ApiError>,
    change: CaseChange<'_>,
    body: &B,
    absent: &'static str,
) -> ApiResult<Response> {
    let detail = match allowed {
        Ok(detail) => detail,
        Err(error) => {
            return Err(access
                .refuse(state, ctx, action, "not_allowed".into(), error)
                .await);
        }
    };
    access
        .grant(state, ctx, action, Vec::new(), Some(detail))
        .await?;
    let starts = matches!(
        change,
        CaseChange::StartRole { .. } | CaseChange::RecordConsent { .. }
    );
    let changed = state
        .vault
        .change_case(&access.participant.id, change)
        .await?;
    Ok(match (starts, changed) {
        (true, true) => (StatusCode::CREATED, Json(body)).into_response(),
        (true, false) => (StatusCode::OK, Json(body)).into_response(),
        (false, true) => StatusCode::NO_CONTENT.into_response(),
        (false, false) => return Err(ApiError::not_found(absent)),
    })
}

/// `POST /v1/participants/{pid}/consents`: record the participant's consent for a scope.
#[utoipa::path(post, path = "/v1/participants/{pid}/consents", tag = "cases", request_body = ConsentIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 201, body = ConsentIn), (status = 403, body = ErrorBody)))]
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
    responses((status = 204), (status = 404, body = ErrorBody)))]
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
    let access = access::resolve(&state, &ctx, &pid, "notes.read").await?;
    let policy = &state.policy;
    if !notes_category(policy).is_some_and(|c| access.readable().contains(c)) {
        let error = ApiError::forbidden(
            "not_allowed",
            "your role may not read case notes for this purpose",
        );
        return Err(access
            .refuse(&state, &ctx, "notes.read", "no_grant".into(), error)
            .await);
    }
    let notes = state.vault.notes(&access.participant).await?;
    let fields = notes
        .iter()
        .map(|n| format!("notes.text/{}", n.id))
        .collect();
    audit(
        &state,
        vec![access.event(&ctx, policy, "notes.read", fields, Outcome::Granted, None)],
    )
    .await?;
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
    let idem = Idempotency::from_headers(
        &headers,
        &ctx.caller.client,
        &format!("note/{pid}"),
        &body.text,
    )?;
    if let Some(k) = &idem
        && let Some(replay) = k.replay(&state).await?
    {
        return Ok(replay);
    }
    let access = access::resolve(&state, &ctx, &pid, "notes.write").await?;
    let policy = &state.policy;
    if !notes_category(policy).is_some_and(|c| access.writable().contains(c)) {
        let error = ApiError::forbidden(
            "not_allowed",
            "your role may not write case notes for this purpose",
        );
        return Err(access
            .refuse(&state, &ctx, "notes.write", "no_grant".into(), error)
            .await);
    }
    policy
        .validate_value("notes.text", &Value::String(body.text.clone()))
        .map_err(|e| ApiError::unprocessable("invalid_value", e.to_string()))?;
    if body.text.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "a note needs text",
        ));
    }
    audit(
        &state,
        vec![access.event(
            &ctx,
            policy,
            "notes.write",
            vec!["notes.text".into()],
            Outcome::Granted,
            None,
        )],
    )
    .await?;
    let note = state
        .vault
        .add_note(&access.participant, &ctx.caller.partner, &body.text)
        .await?;
    let created = NoteCreated {
        id: note.id,
        author_partner: note.author_partner,
        created_at: note.created_at,
    };
    answer(&state, idem.as_ref(), StatusCode::CREATED, created).await
}
