//! Who may do what with one participant: the caller's effective roles in that case, the
//! decision for the stated purpose, and the consents in force. Plain functions, no HTTP.

use super::AppState;
use super::audited::refuse;
use super::error::ApiError;
use super::extract::Ctx;
pub use crate::access::{DSR_PURPOSE, client_level_roles, objection_applies, role_names};
use crate::audit::{Action, AuditEvent, Draft};
use crate::policy::{CategorySet, Decision, Policy, RoleSet, ScopeSet};
use crate::vault::Participant;
use crate::vault::Snapshot;
use crate::vault::crypto::ParticipantId;

/// A caller's standing towards one participant, for one purpose.
pub struct Access {
    /// The participant row.
    pub participant: Participant,
    /// Its case and sealed fields, as loaded with it.
    pub snapshot: Snapshot,
    /// The participant's audit pseudonym.
    pub audit_id: String,
    /// Effective roles: case roles from involvements plus client-level roles.
    pub roles: RoleSet,
    /// What those roles may do for the purpose.
    pub decision: Decision,
    /// Consent scopes in force.
    pub consents: ScopeSet,
}

impl Access {
    /// Readable categories, consents applied.
    pub fn readable(&self) -> CategorySet {
        self.decision.readable(self.consents)
    }
    /// Writable categories, consents applied.
    pub fn writable(&self) -> CategorySet {
        self.decision.writable(self.consents)
    }
    /// Role names for the audit record.
    pub fn role_names(&self, policy: &Policy) -> Vec<String> {
        role_names(policy, self.roles)
    }

    /// The case roles the caller's partner holds in this case, whichever of its clients may
    /// use them: the partner's own view, against which self-widening is measured.
    pub fn partner_roles(&self, policy: &Policy) -> RoleSet {
        self.snapshot
            .roles
            .iter()
            .filter_map(|r| policy.role(r))
            .collect()
    }

    /// Starts the audit event of `action` on this participant, with the caller's effective
    /// roles.
    pub fn event(&self, ctx: &Ctx, policy: &Policy, action: Action) -> Draft {
        ctx.event(action)
            .participant(self.audit_id.clone())
            .roles(self.role_names(policy))
    }
}

/// Checks that the caller's client-level roles (dpo, administrator, ...) pass `allowed` for
/// the stated purpose, and returns their names; otherwise audits the refusal.
pub async fn require_client_grant(
    state: &AppState,
    ctx: &Ctx,
    action: Action,
    allowed: impl Fn(&Decision) -> bool,
    message: &'static str,
) -> Result<Vec<String>, ApiError> {
    let roles = client_level_roles(&state.policy, ctx.caller.allowed_roles);
    let names = role_names(&state.policy, roles);
    if allowed(&state.policy.decide(roles, ctx.purpose)) {
        return Ok(names);
    }
    let e = ctx.event(action).roles(names).refused("no_grant");
    let error = ApiError::forbidden("not_allowed", message);
    Err(refuse(&state.audit, e, error).await)
}

/// Starts the audit event of `action` about a participant known by id, when there is one;
/// the record names its audit pseudonym.
pub fn about(
    state: &AppState,
    ctx: &Ctx,
    action: Action,
    participant: Option<ParticipantId>,
) -> Draft {
    let audit_id = participant.map(|p| state.vault.index().audit_pseudonym(&p));
    ctx.event(action).participant(audit_id)
}

/// Resolves `pid` for the caller and computes its access. A participant the caller may not
/// see at all is answered exactly like one that does not exist: 404, audited with the reason.
pub async fn resolve(
    state: &AppState,
    ctx: &Ctx,
    pid: &str,
    action: Action,
) -> Result<Access, ApiError> {
    let policy = &state.policy;
    let vault = &state.vault;
    // Every refusal here answers like a participant that does not exist.
    let not_found = |e: AuditEvent| refuse(&state.audit, e, ApiError::participant_not_found());
    let snapshot = match vault.index().resolve_pid(&ctx.caller.partner, pid) {
        Some(id) => vault.load(&ctx.caller.partner, &id).await?,
        None => None,
    };
    let Some((participant, snapshot)) = snapshot.and_then(|s| Some((s.participant.clone()?, s)))
    else {
        return Err(not_found(ctx.event(action).refused("unknown_pid")).await);
    };
    let audit_id = vault.index().audit_pseudonym(&participant.id);
    let about = || ctx.event(action).participant(audit_id.clone());
    if participant.restricted && &*ctx.purpose_name != DSR_PURPOSE {
        return Err(not_found(about().refused("restricted")).await);
    }
    if participant.objection
        && &*ctx.purpose_name != DSR_PURPOSE
        && objection_applies(policy, &ctx.caller.partner, &ctx.purpose_name)
    {
        return Err(not_found(about().refused("objection")).await);
    }
    let case_roles: RoleSet = snapshot
        .roles
        .iter()
        .filter_map(|r| policy.role(r))
        .filter(|r| ctx.caller.allowed_roles.contains(*r))
        .collect();
    let roles = case_roles.union(client_level_roles(policy, ctx.caller.allowed_roles));
    let decision = policy.decide(roles, ctx.purpose);
    if decision.is_empty() {
        let reason = if case_roles.is_empty() {
            "not_involved"
        } else {
            "no_grant_for_purpose"
        };
        let e = about().roles(role_names(policy, roles)).refused(reason);
        return Err(not_found(e).await);
    }
    let consents: ScopeSet = snapshot
        .consents
        .iter()
        .filter_map(|s| policy.scope(s))
        .collect();
    Ok(Access {
        participant,
        snapshot,
        audit_id,
        roles,
        decision,
        consents,
    })
}

impl From<crate::vault::VaultError> for ApiError {
    fn from(e: crate::vault::VaultError) -> Self {
        // Vault errors name operations and key versions, never values.
        tracing::error!(error = %e, "vault error");
        ApiError::storage()
    }
}
