//! Where a partner could widen its own view by its own request: self-assignments of roles and
//! consents that unlock the recorder's own reading. `policy check` lists both, the register
//! names them, and the API refuses every widening self-assignment the agreement does not name.

use std::collections::{BTreeSet, VecDeque};

use serde::Serialize;

use super::{CategorySet, Policy, RoleLevel, RoleSet, ScopeSet, Widening};

/// One self-assignment the agreement allows that widens the assigning partner's own view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EscalationPath {
    /// Partners that can take this step (they have clients for both ends).
    pub partners: Vec<String>,
    /// The case roles the partner holds before the step.
    pub from: Vec<String>,
    /// The role it gives itself.
    pub to: String,
    /// The purpose under which the assignment is made (the grant that names it).
    pub via_purpose: String,
    /// What it reads or writes afterwards that it did not before: `purpose: +categories`.
    pub widens: Vec<String>,
}

/// A consent scope whose recording widens the reading of a role that may record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfWideningConsent {
    /// The consent scope.
    pub scope: String,
    /// The recording role.
    pub role: String,
    /// Categories the recording unlocks for that role (over all purposes).
    pub unlocks: Vec<String>,
    /// The agreement requires another role to record it: the API refuses this recording.
    pub refused: bool,
}

impl Policy {
    /// Describes a widening as `purpose: reads +a, b; writes +c`.
    pub fn describe_widening(&self, w: &Widening) -> String {
        let names = |s: CategorySet| {
            s.iter()
                .map(|c| self.category_name(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !w.reads.is_empty() {
            parts.push(format!("reads +{}", names(w.reads)));
        }
        if !w.writes.is_empty() {
            parts.push(format!("writes +{}", names(w.writes)));
        }
        format!("{}: {}", self.purpose_name(w.purpose), parts.join("; "))
    }

    /// Every escalation path the agreement allows. Starting from each single case role a
    /// partner can hold, it follows every self-assignment the API would accept (those that
    /// do not widen, and those the agreement names in `self_assign`), and reports each step
    /// that widens. Chains show up as steps whose `from` holds more than one role.
    pub fn escalation_paths(&self) -> Vec<EscalationPath> {
        let mut steps: Vec<EscalationPath> = Vec::new();
        for partner in &self.agreement.partners {
            let clients: Vec<RoleSet> = self
                .agreement
                .clients
                .iter()
                .filter(|c| c.partner.value == partner.id.value)
                .map(|c| self.client_roles(&c.cn))
                .collect();
            let holdable: RoleSet = clients
                .iter()
                .fold(RoleSet::empty(), |a, b| a.union(*b))
                .iter()
                .filter(|r| self.role_level(*r) == RoleLevel::Case)
                .collect();
            let mut seen: BTreeSet<u32> = BTreeSet::new();
            let mut queue: VecDeque<RoleSet> = holdable.iter().map(RoleSet::of).collect();
            while let Some(held) = queue.pop_front() {
                if !seen.insert(held.bits()) {
                    continue;
                }
                for client in &clients {
                    // The caller's view: the partner's case roles its client may use.
                    let caller = held.intersection(*client);
                    for purpose in self.all_purposes() {
                        let d = self.decide(caller, purpose);
                        for to in d
                            .assignable()
                            .intersection(holdable)
                            .difference(held)
                            .iter()
                        {
                            let widens = self.widening(held, RoleSet::of(to));
                            if widens.is_empty() {
                                queue.push_back(held.union(RoleSet::of(to)));
                            } else if d.may_self_assign(to) {
                                queue.push_back(held.union(RoleSet::of(to)));
                                let step = EscalationPath {
                                    partners: vec![partner.id.value.clone()],
                                    from: held.iter().map(|r| self.role_name(r).into()).collect(),
                                    to: self.role_name(to).into(),
                                    via_purpose: self.purpose_name(purpose).into(),
                                    widens: widens
                                        .iter()
                                        .map(|w| self.describe_widening(w))
                                        .collect(),
                                };
                                merge_step(&mut steps, step);
                            }
                        }
                    }
                }
            }
        }
        steps
    }

    /// Every (scope, role) where a role that may record consents would unlock reading for
    /// itself by recording that scope.
    pub fn self_widening_consents(&self) -> Vec<SelfWideningConsent> {
        let mut out = Vec::new();
        for role in self.all_roles().iter() {
            let roles = RoleSet::of(role);
            let records = self
                .all_purposes()
                .any(|p| self.decide(roles, p).may_record_consent());
            if !records {
                continue;
            }
            for (i, _) in self.scopes.iter().enumerate() {
                let scope = super::ScopeId(i as u8);
                let unlocks = self.consent_widens(roles, ScopeSet::empty(), scope);
                if unlocks.is_empty() {
                    continue;
                }
                out.push(SelfWideningConsent {
                    scope: self.scope_name(scope).into(),
                    role: self.role_name(role).into(),
                    unlocks: unlocks
                        .iter()
                        .map(|c| self.category_name(c).into())
                        .collect(),
                    refused: self.needs_independent_recorder(scope),
                });
            }
        }
        out
    }
}

/// Adds a step, merging it with an equal step of another partner.
fn merge_step(steps: &mut Vec<EscalationPath>, step: EscalationPath) {
    let same = |s: &EscalationPath| {
        s.from == step.from
            && s.to == step.to
            && s.via_purpose == step.via_purpose
            && s.widens == step.widens
    };
    match steps.iter_mut().find(|s| same(s)) {
        Some(s) => {
            for p in step.partners {
                if !s.partners.contains(&p) {
                    s.partners.push(p);
                }
            }
        }
        None => steps.push(step),
    }
}
