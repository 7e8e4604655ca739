//! Who is asking, for what: the caller identity a certificate establishes, the context of one
//! request (caller, stated purpose, acting user), and the agreement's rules that decide a
//! caller's standing without any HTTP in them: [`standing`] is the one access decision, which
//! the API, the sync feed and data-subject requests all use.

use std::sync::Arc;

use crate::audit::{Action, AuditEvent, Draft, Requester};
use crate::policy::{
    CategorySet, Decision, LegalBasis, Policy, PurposeId, RoleLevel, RoleSet, ScopeSet,
};
use crate::vault::keys::IndexKeys;
use crate::vault::{Participant, Snapshot};

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

/// Why a caller has no standing towards a participant. The API answers every one of them like
/// a participant that does not exist; the sync feed turns them into removals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such participant for this partner (never was, or erased).
    Gone,
    /// Processing is restricted (Art. 18) and the purpose is not handling a data-subject request.
    Restricted,
    /// The participant objected (Art. 21) and the objection applies to this processing.
    Objection,
    /// The caller's partner holds no role in the case that its client may use, and no
    /// client-level role grants anything for the purpose.
    NotInvolved,
    /// The caller's roles grant nothing for the stated purpose.
    NoGrantForPurpose,
}

impl Refusal {
    /// The reason code in the audit record.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Gone => "unknown_pid",
            Refusal::Restricted => "restricted",
            Refusal::Objection => "objection",
            Refusal::NotInvolved => "not_involved",
            Refusal::NoGrantForPurpose => "no_grant_for_purpose",
        }
    }

    /// The reason a sync feed gives a client for removing the participant.
    pub fn removal(self) -> &'static str {
        match self {
            Refusal::Gone => "erased",
            Refusal::Restricted => "restricted",
            Refusal::Objection => "objection",
            Refusal::NotInvolved => "no_longer_involved",
            Refusal::NoGrantForPurpose => "no_longer_visible",
        }
    }
}

/// A refusal with what its audit record names.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub refusal: Refusal,
    /// The participant's audit pseudonym, when there is a participant.
    pub audit_id: Option<String>,
    /// The caller's effective roles in the case (empty when there is no participant).
    pub roles: RoleSet,
}

impl Refused {
    /// The audit record of this refusal of `action`.
    pub fn event(&self, ctx: &Context, policy: &Policy, action: Action) -> AuditEvent {
        let event = ctx.event(action).participant(self.audit_id.clone());
        let event = if self.roles.is_empty() {
            event
        } else {
            event.roles(role_names(policy, self.roles))
        };
        event.refused(self.refusal.code())
    }
}

/// A caller's standing towards one participant, for one purpose: what the one access decision
/// ([`standing`]) grants.
pub struct Standing {
    /// The participant row.
    pub participant: Participant,
    /// Its case and sealed fields, as loaded with it.
    pub snapshot: Snapshot,
    /// The participant's audit pseudonym.
    pub audit_id: String,
    /// The caller's case roles (its partner's roles in the case that its client may use).
    pub case_roles: RoleSet,
    /// Effective roles: the case roles plus client-level roles.
    pub roles: RoleSet,
    /// What those roles may do for the purpose.
    pub decision: Decision,
    /// Consent scopes in force.
    pub consents: ScopeSet,
}

impl Standing {
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
    pub fn event(&self, ctx: &Context, policy: &Policy, action: Action) -> Draft {
        ctx.event(action)
            .participant(self.audit_id.clone())
            .roles(self.role_names(policy))
    }
}

/// Whether the participant's restriction (Art. 18) or objection (Art. 21) stops this caller's
/// processing for the stated purpose. Handling a data-subject request is never stopped.
pub fn stopped(policy: &Policy, ctx: &Context, participant: &Participant) -> Option<Refusal> {
    if &*ctx.purpose_name == DSR_PURPOSE {
        return None;
    }
    if participant.restricted {
        return Some(Refusal::Restricted);
    }
    let objected =
        participant.objection && objection_applies(policy, &ctx.caller.partner, &ctx.purpose_name);
    objected.then_some(Refusal::Objection)
}

/// The access decision: the caller's standing towards the participant of `snapshot` (as
/// loaded for the caller's partner; `None` when there is none), for the stated purpose. Roles,
/// purpose, restriction, objection and consents are all weighed here and nowhere else.
pub fn standing(
    policy: &Policy,
    index: &IndexKeys,
    ctx: &Context,
    snapshot: Option<Snapshot>,
) -> Result<Standing, Refused> {
    let refused = |refusal, audit_id, roles| Refused {
        refusal,
        audit_id,
        roles,
    };
    let Some((participant, snapshot)) = snapshot.and_then(|s| Some((s.participant.clone()?, s)))
    else {
        return Err(refused(Refusal::Gone, None, RoleSet::EMPTY));
    };
    let audit_id = index.audit_pseudonym(&participant.id);
    let case_roles: RoleSet = snapshot
        .roles
        .iter()
        .filter_map(|r| policy.role(r))
        .filter(|r| ctx.caller.allowed_roles.contains(*r))
        .collect();
    let roles = case_roles.union(client_level_roles(policy, ctx.caller.allowed_roles));
    if let Some(refusal) = stopped(policy, ctx, &participant) {
        return Err(refused(refusal, Some(audit_id), roles));
    }
    let decision = policy.decide(roles, ctx.purpose);
    if decision.is_empty() {
        let refusal = if case_roles.is_empty() {
            Refusal::NotInvolved
        } else {
            Refusal::NoGrantForPurpose
        };
        return Err(refused(refusal, Some(audit_id), roles));
    }
    let consents: ScopeSet = snapshot
        .consents
        .iter()
        .filter_map(|s| policy.scope(s))
        .collect();
    Ok(Standing {
        participant,
        snapshot,
        audit_id,
        case_roles,
        roles,
        decision,
        consents,
    })
}
