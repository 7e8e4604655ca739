//! Who may do what with one participant: the caller's effective roles in that case, the
//! decision for the stated purpose, and the consents in force. Plain functions, no HTTP.

use super::AppState;
use super::error::ApiError;
use super::extract::Ctx;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::policy::{CategorySet, Decision, LegalBasis, Policy, RoleLevel, RoleSet, ScopeSet};
use crate::vault::Participant;
use crate::vault::records::Snapshot;

/// The purpose under which a restricted record may still be processed (GDPR Art. 18(2)).
pub const DSR_PURPOSE: &str = "dsr_handling";

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

    /// Audits a refusal of `action` (reason: the error's code) naming the fields concerned,
    /// and returns `error` (or 503).
    pub async fn deny(
        &self,
        state: &AppState,
        ctx: &Ctx,
        action: Action,
        fields: Vec<String>,
        error: ApiError,
    ) -> ApiError {
        let reason = Some(error.code.to_string());
        let e = self.event(ctx, &state.policy, action, fields, Outcome::Refused, reason);
        refuse(state, e, error).await
    }
    /// Audits a refusal of `action` on this participant and returns `error` (or 503).
    pub async fn refuse(
        &self,
        state: &AppState,
        ctx: &Ctx,
        action: Action,
        reason: String,
        error: ApiError,
    ) -> ApiError {
        let e = self.event(
            ctx,
            &state.policy,
            action,
            Vec::new(),
            Outcome::Refused,
            Some(reason),
        );
        refuse(state, e, error).await
    }

    /// Makes the record of a granted `action` on this participant durable.
    pub async fn grant(
        &self,
        state: &AppState,
        ctx: &Ctx,
        action: Action,
        fields: Vec<String>,
        reason: Option<String>,
    ) -> Result<(), ApiError> {
        audit(
            state,
            vec![self.event(ctx, &state.policy, action, fields, Outcome::Granted, reason)],
        )
        .await
    }

    /// An audit event about this participant.
    pub fn event(
        &self,
        ctx: &Ctx,
        policy: &Policy,
        action: Action,
        fields: Vec<String>,
        outcome: Outcome,
        reason: Option<String>,
    ) -> AuditEvent {
        ctx.event(
            action,
            Some(self.audit_id.clone()),
            self.role_names(policy),
            fields,
            outcome,
            reason,
        )
    }
}

/// Whether a participant's Art. 21 objection stops this processing: the legal basis of the
/// purpose for the caller's kind of partner is public task or legitimate interest (or unknown).
pub fn objection_applies(policy: &Policy, partner: &str, purpose: &str) -> bool {
    let a = policy.agreement();
    let basis = a
        .partner(partner)
        .and_then(|p| a.purpose(purpose)?.legal_basis.get(p.kind.as_str()))
        .map(|b| **b);
    !matches!(
        basis,
        Some(LegalBasis::Consent | LegalBasis::LegalObligation)
    )
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
    let e = ctx.event(
        action,
        None,
        names,
        Vec::new(),
        Outcome::Refused,
        Some("no_grant".into()),
    );
    Err(refuse(state, e, ApiError::forbidden("not_allowed", message)).await)
}

/// Names of a role set.
pub fn role_names(policy: &Policy, roles: RoleSet) -> Vec<String> {
    roles
        .iter()
        .map(|r| policy.role_name(r).to_string())
        .collect()
}

/// The client-level roles (dpo, administrator, ...) among a client's allowed roles.
pub fn client_level_roles(policy: &Policy, allowed: RoleSet) -> RoleSet {
    allowed
        .iter()
        .filter(|r| policy.role_level(*r) == RoleLevel::Client)
        .collect()
}

/// Audits a refusal of `action` before any participant is resolved (reason: the error's
/// code) and returns `error` (or 503).
pub async fn deny(
    state: &AppState,
    ctx: &Ctx,
    action: Action,
    roles: RoleSet,
    error: ApiError,
) -> ApiError {
    let e = ctx.event(
        action,
        None,
        role_names(&state.policy, roles),
        Vec::new(),
        Outcome::Refused,
        Some(error.code.to_string()),
    );
    refuse(state, e, error).await
}

/// Appends events and maps an audit failure to 503.
pub async fn audit(state: &AppState, events: Vec<AuditEvent>) -> Result<(), ApiError> {
    state
        .audit
        .append(events)
        .await
        .map(|_| ())
        .map_err(|_| ApiError::audit_unavailable())
}

/// Audits a refusal and returns `error` (or 503 when the audit log is down).
pub async fn refuse(state: &AppState, event: AuditEvent, error: ApiError) -> ApiError {
    match state.audit.append_one(event).await {
        Ok(_) => error,
        Err(_) => ApiError::audit_unavailable(),
    }
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
    let not_found = |audit_id: Option<String>, roles: Vec<String>, reason: &str| {
        ctx.event(
            action,
            audit_id,
            roles,
            Vec::new(),
            Outcome::Refused,
            Some(reason.to_string()),
        )
    };
    let snapshot = match vault.index().resolve_pid(&ctx.caller.partner, pid) {
        Some(id) => vault.load(&ctx.caller.partner, &id).await?,
        None => None,
    };
    let Some((participant, snapshot)) = snapshot.and_then(|s| Some((s.participant.clone()?, s)))
    else {
        return Err(refuse(
            state,
            not_found(None, Vec::new(), "unknown_pid"),
            ApiError::participant_not_found(),
        )
        .await);
    };
    let audit_id = vault.index().audit_pseudonym(&participant.id);
    if participant.restricted && &*ctx.purpose_name != DSR_PURPOSE {
        return Err(refuse(
            state,
            not_found(Some(audit_id), Vec::new(), "restricted"),
            ApiError::participant_not_found(),
        )
        .await);
    }
    if participant.objection
        && &*ctx.purpose_name != DSR_PURPOSE
        && objection_applies(policy, &ctx.caller.partner, &ctx.purpose_name)
    {
        let e = not_found(Some(audit_id), Vec::new(), "objection");
        return Err(refuse(state, e, ApiError::participant_not_found()).await);
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
        return Err(refuse(
            state,
            not_found(Some(audit_id), role_names(policy, roles), reason),
            ApiError::participant_not_found(),
        )
        .await);
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
