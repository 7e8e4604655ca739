//! Participant endpoints: register, look up, read and write a record.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::access::{self, role_names};
use super::audited::{record, refuse};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, Ctx};
use super::idempotency::{self, Begin};
use crate::access::Refusal;
use crate::audit::Action;
use crate::audit::report::RATE_LIMITED;
use crate::policy::{CategorySet, Policy, RoleSet, ScopeSet};
use crate::store::today;
use crate::vault::crypto::ParticipantId;
use crate::vault::insz::{INSZ_FIELD, Insz};
use crate::vault::{Participant, WriteError};

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
    // The record of the write is committed with the write, in one transaction.
    let names: Vec<String> = fields.keys().cloned().collect();
    let event = ctx
        .event(REGISTER)
        .participant(vault.index().audit_pseudonym(&id))
        .roles(role_names(policy, roles))
        .fields(names)
        .granted();
    let first = (&*ctx.caller.partner, REFERRER_ROLE);
    if vault
        .register(&id, &insz, &fields, first, vec![event])
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
    Some(match crate::access::stopped(policy, ctx, p)? {
        Refusal::Restricted => ApiError::forbidden(
            "participant_restricted",
            "processing of this participant is restricted (GDPR Art. 18): no pseudonym is given",
        ),
        _ => ApiError::forbidden(
            "participant_objected",
            "this participant objected to processing on your legal basis (GDPR Art. 21): no pseudonym is given",
        ),
    })
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
    raw.to_str().ok().and_then(version_of).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_if_match",
            "If-Match must be the record version, e.g. \"3\"",
        )
    })
}

/// The version in an `If-Match` value: `3`, `"3"` or `W/"3"`, nothing else (no sign, no
/// stray quotes), as the OpenAPI document states.
fn version_of(value: &str) -> Option<i64> {
    let s = value.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    let s = match s.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => s,
    };
    let digits = (1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| s.parse().ok()).flatten()
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
    let records = vec![event().granted()];
    let version = match state
        .vault
        .update(
            &access.participant,
            expected,
            &fields,
            new_insz.as_ref(),
            records,
        )
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
