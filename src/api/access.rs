//! Who may do what with one participant: the caller's effective roles in that case, the
//! decision for the stated purpose, and the consents in force. Plain functions, no HTTP.

use super::AppState;
use super::audited::refuse;
use super::error::ApiError;
use super::extract::Ctx;
pub use crate::access::{client_level_roles, role_names};
use crate::audit::{Action, Draft};
use crate::policy::Decision;
use crate::vault::crypto::ParticipantId;

/// A caller's standing towards one participant (the core's access decision).
pub use crate::access::Standing as Access;

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

/// Resolves `pid` for the caller and decides its standing ([`crate::access::standing`]). A
/// participant the caller may not see at all is answered exactly like one that does not
/// exist: 404, audited with the reason.
pub async fn resolve(
    state: &AppState,
    ctx: &Ctx,
    pid: &str,
    action: Action,
) -> Result<Access, ApiError> {
    let vault = &state.vault;
    let snapshot = match vault.index().resolve_pid(&ctx.caller.partner, pid) {
        Some(id) => vault.load(&ctx.caller.partner, &id).await?,
        None => None,
    };
    match crate::access::standing(&state.policy, vault.index(), ctx, snapshot) {
        Ok(standing) => Ok(standing),
        Err(refused) => {
            let event = refused.event(ctx, &state.policy, action);
            Err(refuse(&state.audit, event, ApiError::participant_not_found()).await)
        }
    }
}

impl From<crate::vault::VaultError> for ApiError {
    fn from(e: crate::vault::VaultError) -> Self {
        if let crate::vault::VaultError::Audit(e) = e {
            return e.into();
        }
        // Vault errors name operations and key versions, never values.
        tracing::error!(error = %e, "vault error");
        ApiError::storage()
    }
}
