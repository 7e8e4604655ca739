//! `GET /v1/me`: who the gateway thinks you are, and what you may see for which purpose.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::Identified;
use crate::policy::{CategorySet, Policy, RoleSet, ScopeSet};

/// The caller's identity and permissions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// Certificate CN.
    pub client: String,
    /// Partner id.
    pub partner: String,
    /// Partner's legal name.
    pub partner_name: String,
    /// Roles this client may use.
    pub roles: Vec<String>,
    /// Per purpose and role: the categories readable and writable.
    pub permissions: Vec<PurposePermissions>,
}

/// What the caller's roles allow for one purpose.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PurposePermissions {
    /// Purpose id.
    pub purpose: String,
    /// One entry per role that has any grant for this purpose.
    pub roles: Vec<RolePermissions>,
}

/// What one role allows for one purpose.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RolePermissions {
    /// Role id.
    pub role: String,
    /// Categories readable without conditions.
    pub read: Vec<String>,
    /// Categories writable without conditions.
    pub write: Vec<String>,
    /// Categories readable only with the participant's consent for a scope.
    pub read_with_consent: Vec<ConsentGrant>,
    /// Roles this role may assign in a case.
    pub may_assign: Vec<String>,
    /// Of those, the roles it may give to its own partner even where they widen its view.
    pub may_self_assign: Vec<String>,
    /// Aggregate reports this role may fetch for this purpose (e.g. `/v1/reports/esf`):
    /// counts only, small cells suppressed.
    pub reports: Vec<String>,
}

/// Categories allowed under one consent scope.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentGrant {
    /// Consent scope id.
    pub scope: String,
    /// Categories.
    pub categories: Vec<String>,
}

fn names(policy: &Policy, set: CategorySet) -> Vec<String> {
    set.iter()
        .map(|c| policy.category_name(c).to_string())
        .collect()
}

/// The permission matrix of a client's roles, for `/v1/me`.
pub fn permissions(policy: &Policy, roles: RoleSet) -> Vec<PurposePermissions> {
    policy
        .all_purposes()
        .filter_map(|purpose| {
            let per_role: Vec<RolePermissions> = roles
                .iter()
                .filter_map(|role| {
                    let d = policy.decide(RoleSet::of(role), purpose);
                    if d.is_empty() {
                        return None;
                    }
                    let read = d.readable(ScopeSet::empty());
                    let read_with_consent = d
                        .consent_scopes()
                        .iter()
                        .map(|s| ConsentGrant {
                            scope: policy.scope_name(s).to_string(),
                            categories: names(policy, d.readable(ScopeSet::of(s)).difference(read)),
                        })
                        .filter(|g| !g.categories.is_empty())
                        .collect();
                    Some(RolePermissions {
                        role: policy.role_name(role).to_string(),
                        read: names(policy, read),
                        write: names(policy, d.writable(ScopeSet::empty())),
                        read_with_consent,
                        may_assign: d
                            .assignable()
                            .iter()
                            .map(|r| policy.role_name(r).to_string())
                            .collect(),
                        may_self_assign: d
                            .assignable()
                            .iter()
                            .filter(|r| d.may_self_assign(*r))
                            .map(|r| policy.role_name(r).to_string())
                            .collect(),
                        reports: if d.may_read_reports() {
                            vec!["/v1/reports/esf".to_string()]
                        } else {
                            Vec::new()
                        },
                    })
                })
                .collect();
            (!per_role.is_empty()).then(|| PurposePermissions {
                purpose: policy.purpose_name(purpose).to_string(),
                roles: per_role,
            })
        })
        .collect()
}

/// `GET /v1/me`.
#[utoipa::path(get, path = "/v1/me", tag = "identity",
    responses((status = 200, body = Me), (status = 403, body = super::error::ErrorBody)))]
pub async fn me(State(state): State<AppState>, who: Identified) -> ApiResult<Json<Me>> {
    let policy = &state.policy;
    let partner = policy.agreement().partner(&who.caller.partner);
    Ok(Json(Me {
        client: who.caller.client.to_string(),
        partner: who.caller.partner.to_string(),
        partner_name: partner.map(|p| p.name.clone()).unwrap_or_default(),
        roles: who
            .caller
            .allowed_roles
            .iter()
            .map(|r| policy.role_name(r).to_string())
            .collect(),
        permissions: permissions(policy, who.caller.allowed_roles),
    }))
}
