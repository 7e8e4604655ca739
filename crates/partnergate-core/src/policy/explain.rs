//! `partnergate policy explain`: who may do what, for which purpose, as rows.

use serde::Serialize;

use super::agreement::Agreement;
use super::compile::rules;

/// One permission: role × purpose × object × action, with its condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainRow {
    /// Role id.
    pub role: String,
    /// Purpose id.
    pub purpose: String,
    /// A category id, or a pseudo-object (`participant`, `consent`, `audit`, `dsr`,
    /// `reports`, `involvement:<role>`).
    pub object: String,
    /// `read`, `write`, `lookup`, `record`, `assign`, `self_assign` or `end`.
    pub action: String,
    /// `None` when unconditional, else the consent scope that must be in force.
    pub consent: Option<String>,
}

/// The permissions of the agreement, optionally filtered by role and/or purpose, ordered
/// by role, purpose, then object as declared in the agreement.
pub fn explain(
    agreement: &Agreement,
    role: Option<&str>,
    purpose: Option<&str>,
) -> Vec<ExplainRow> {
    let pos = |list: Vec<&str>, x: &str| list.iter().position(|y| *y == x).unwrap_or(usize::MAX);
    let role_ids: Vec<&str> = agreement.roles.iter().map(|r| r.id.as_str()).collect();
    let purpose_ids: Vec<&str> = agreement.purposes.iter().map(|p| p.id.as_str()).collect();
    let cat_ids: Vec<&str> = agreement.categories.iter().map(|c| c.id.as_str()).collect();
    let mut rows: Vec<ExplainRow> = rules(agreement)
        .into_iter()
        .filter(|r| role.is_none_or(|x| r.role == x) && purpose.is_none_or(|x| r.purpose == x))
        .map(|r| ExplainRow {
            consent: r.condition.strip_prefix("consent:").map(str::to_string),
            role: r.role,
            purpose: r.purpose,
            object: r.object,
            action: r.action,
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            pos(role_ids.clone(), &r.role),
            pos(purpose_ids.clone(), &r.purpose),
            // Categories first in declaration order, then pseudo-objects by name.
            pos(cat_ids.clone(), &r.object),
            r.object.clone(),
            r.action != "read",
            r.consent.clone(),
        )
    });
    rows
}

/// Renders rows as an aligned plain-text table.
pub fn render_table(rows: &[ExplainRow]) -> String {
    let header = ["ROLE", "PURPOSE", "OBJECT", "ACTION", "CONDITION"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.role.clone(),
                r.purpose.clone(),
                r.object.clone(),
                r.action.clone(),
                r.consent
                    .as_ref()
                    .map(|s| format!("consent {s}"))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: Vec<&str>| {
        let parts: Vec<String> = cols
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
