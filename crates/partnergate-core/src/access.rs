//! Who is asking, for what: the caller identity a certificate establishes, the context of one
//! request (caller, stated purpose, acting user), and the agreement's rules that decide a
//! caller's standing without any HTTP in them. The API and the sync feed both use these.

use std::sync::Arc;

use crate::audit::{Action, Draft, Requester};
use crate::policy::{LegalBasis, Policy, PurposeId, RoleLevel, RoleSet};

/// A client of the agreement, as established by its certificate.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The certificate's subject CN, the client name in the agreement.
    pub client: Arc<str>,
    /// The partner organisation this client belongs to.
    pub partner: Arc<str>,
    /// The roles the agreement lets this client use.
    pub allowed_roles: RoleSet,
}

/// Everything about a request for personal data: caller, purpose and acting user.
#[derive(Clone, Debug)]
pub struct Context {
    /// Who is calling.
    pub caller: Caller,
    /// This request's id.
    pub request_id: String,
    /// The stated purpose.
    pub purpose: PurposeId,
    /// The purpose's id, as stated.
    pub purpose_name: Arc<str>,
    /// The partner's staff member behind the request.
    pub acting_user: Arc<str>,
    /// The partner has left (only on the exit sync route).
    pub exited: bool,
}

impl Context {
    /// Starts the audit event of `action` in this request.
    pub fn event(&self, action: Action) -> Draft {
        Requester {
            request_id: self.request_id.clone(),
            client: self.caller.client.to_string(),
            partner: Some(self.caller.partner.to_string()),
            acting_user: Some(self.acting_user.to_string()),
            purpose: Some(self.purpose_name.to_string()),
        }
        .event(action)
    }
}

/// The purpose under which a restricted record may still be processed (GDPR Art. 18(2)).
pub const DSR_PURPOSE: &str = "dsr_handling";

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
