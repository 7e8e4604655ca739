//! The access/portability bundle (Art. 15, 20) and the page that hands it to the person.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::request::{self, get, participant_of};
use super::{DsrError, Kind, State};
use crate::audit::Action;
use crate::html::{Shell, escape as esc};
use crate::policy::Policy;
use crate::vault::Vault;

/// Actions that disclose or change a person's data, shown in the "who looked at my file" view.
const DISCLOSING: &[(Action, &str)] = &[
    (Action::ParticipantRead, "viewed"),
    (Action::NotesRead, "read case notes"),
    (Action::SyncDisclose, "received in its own system"),
    (Action::ParticipantLookup, "checked whether a file exists"),
    (Action::ParticipantRegister, "registered"),
    (Action::ParticipantWrite, "updated"),
    (Action::NotesWrite, "wrote a case note"),
];

/// The access/portability bundle: every field, note, involvement and consent about the
/// person, decrypted, and the disclosure history from the audit log (organisations only, never
/// the staff member).
pub async fn export_bundle(policy: &Policy, vault: &Vault, id: &str) -> Result<Value, DsrError> {
    let request = get(vault.store(), id).await?;
    if !matches!(request.kind, Kind::Access | Kind::Portability) {
        return Err(DsrError::Conflict(
            "only access and portability requests have an export".into(),
        ));
    }
    if request.state != State::Completed {
        return Err(DsrError::Conflict("execute the request first".into()));
    }
    let partner_name = |id: &str| {
        policy
            .agreement()
            .partner(id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let Some(p) = participant_of(vault, id).await? else {
        return Ok(
            serde_json::json!({"request": request, "generated_at": crate::store::now(), "held": false}),
        );
    };
    let fields = vault.read(&p, |_| true).await?;
    let mut data: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (name, value) in fields {
        if let Some((cat, field)) = name.split_once('.') {
            data.entry(cat.to_string())
                .or_default()
                .insert(field.to_string(), value);
        }
    }
    let notes: Vec<Value> = vault
        .notes(&p)
        .await?
        .into_iter()
        .map(|n| serde_json::json!({"written_by": partner_name(&n.author_partner), "at": n.created_at, "text": n.text}))
        .collect();
    let involvements: Vec<Value> = vault
        .involvement_history(&p.id)
        .await?
        .into_iter()
        .map(|i| serde_json::json!({"organisation": partner_name(&i.partner), "role": i.role, "from": i.started_at, "until": i.ended_at}))
        .collect();
    let consents: Vec<Value> = vault
        .consent_history(&p.id)
        .await?
        .into_iter()
        .map(|c| {
            let description = policy.agreement().scope(&c.scope).map(|s| s.description.clone()).unwrap_or_default();
            serde_json::json!({"scope": c.scope, "description": description, "recorded_by": partner_name(&c.recorded_by), "given": c.recorded_at, "withdrawn": c.withdrawn_at})
        })
        .collect();
    // The audit log outlives an erasure: the history of a record an erasure replaced by what
    // it kept still tells the person who received their data (Art. 15(1)(c), 19).
    let former = request::former_records(vault, id).await?;
    let mut pseudonyms = vec![vault.index().audit_pseudonym(&p.id)];
    pseudonyms.extend(former.iter().map(|(f, _)| vault.index().audit_pseudonym(f)));
    let mut disclosures = Vec::new();
    for audit_id in pseudonyms {
        let mut q = crate::audit::AuditQuery {
            participant: Some(audit_id),
            decision: Some("granted".into()),
            limit: Some(1000),
            ..Default::default()
        };
        loop {
            let page = crate::audit::search(vault.store(), &q).await?;
            for r in &page {
                let (Some(partner), Some((_, what))) = (
                    &r.partner,
                    DISCLOSING.iter().find(|(a, _)| a.as_str() == r.action),
                ) else {
                    continue;
                };
                let categories: BTreeSet<&str> = r
                    .fields
                    .iter()
                    .filter_map(|f| f.split_once('.').map(|x| x.0))
                    .collect();
                disclosures.push(serde_json::json!({
                    "time": r.time, "organisation": partner_name(partner), "what": what,
                    "purpose": r.purpose, "categories": categories,
                }));
            }
            match page.last() {
                Some(last) if page.len() == 1000 => q.after = Some(last.seq),
                _ => break,
            }
        }
    }
    disclosures.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    // Why, and until when, an erasure kept some of the data (Art. 15(1)(d)).
    let retention: Vec<Value> = former
        .iter()
        .flat_map(|(_, receipt)| {
            receipt["categories_kept"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|k| {
            serde_json::json!({
                "category": k["category"], "reason": k["reason"],
                "until": k["until"], "until_unknown": k["until_unknown"],
            })
        })
        .collect();
    Ok(serde_json::json!({
        "request": request,
        "generated_at": crate::store::now(),
        "held": true,
        "controllers": policy.agreement().meta.name,
        "data": data,
        "notes": notes,
        "involvements": involvements,
        "consents": consents,
        "disclosures": disclosures,
        "retention": retention,
    }))
}

/// A bundle value as escaped cell text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Null => "—".into(),
        Value::Bool(true) => "ja / yes".into(),
        Value::Bool(false) => "nee / no".into(),
        Value::Array(a) => esc(&a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ")),
        other => esc(&other.to_string()),
    }
}

/// The page shell of the participant's export: Dutch with English, self-contained.
const PAGE: Shell<'static> = Shell {
    lang: "nl",
    title: "Uw gegevens / Your data",
    css: "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}\
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:2px solid #2a6;padding-bottom:.2rem}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}\
th{background:#f3f7f4}.en{color:#666;font-size:.9em}.muted{color:#666}",
};

/// The bundle as a page to hand to the participant (Dutch with English, self-contained).
pub fn render_html(bundle: &Value) -> String {
    let mut h = String::new();
    PAGE.open(&mut h);
    h.push_str("<h1>Uw gegevens bij het partnerschap <span class=\"en\">/ Your data held by the partnership</span></h1>");
    h.push_str(&format!(
        "<p>{} — aangemaakt op / generated on {}</p>",
        text(&bundle["controllers"]),
        text(&bundle["generated_at"])
    ));
    if bundle["held"] == Value::Bool(false) {
        h.push_str("<p>Wij bewaren geen gegevens over u. <span class=\"en\">We hold no data about you.</span></p>");
        Shell::close(&mut h);
        return h;
    }
    h.push_str("<h2>Wat we over u bewaren <span class=\"en\">/ What we hold about you</span></h2>");
    for (cat, fields) in bundle["data"].as_object().into_iter().flatten() {
        h.push_str(&format!("<h3>{}</h3><table>", esc(cat)));
        for (name, v) in fields.as_object().into_iter().flatten() {
            h.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(name),
                text(v)
            ));
        }
        h.push_str("</table>");
    }
    let table = |h: &mut String, title: &str, rows: &Value, cols: &[(&str, &str)]| {
        h.push_str(&format!("<h2>{title}</h2>"));
        let rows = rows.as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            h.push_str("<p class=\"muted\">Geen / None</p>");
            return;
        }
        h.push_str("<table><tr>");
        for (_, label) in cols {
            h.push_str(&format!("<th>{label}</th>"));
        }
        h.push_str("</tr>");
        for r in rows {
            h.push_str("<tr>");
            for (key, _) in cols {
                h.push_str(&format!("<td>{}</td>", text(&r[*key])));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    };
    table(
        &mut h,
        "Wie begeleidt u <span class=\"en\">/ Who works with you</span>",
        &bundle["involvements"],
        &[
            ("organisation", "Organisatie / Organisation"),
            ("role", "Rol / Role"),
            ("from", "Van / From"),
            ("until", "Tot / Until"),
        ],
    );
    table(
        &mut h,
        "Uw toestemmingen <span class=\"en\">/ Your consents</span>",
        &bundle["consents"],
        &[
            ("description", "Waarvoor / For what"),
            ("recorded_by", "Genoteerd door / Recorded by"),
            ("given", "Gegeven / Given"),
            ("withdrawn", "Ingetrokken / Withdrawn"),
        ],
    );
    if bundle["retention"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
    {
        table(
            &mut h,
            "Bewaard na uw verzoek tot wissen <span class=\"en\">/ Kept after your erasure request</span>",
            &bundle["retention"],
            &[
                ("category", "Gegevens / Data"),
                ("reason", "Waarom / Why"),
                ("until", "Tot / Until"),
                ("until_unknown", "Geen datum omdat / No date because"),
            ],
        );
    }
    table(
        &mut h,
        "Notities <span class=\"en\">/ Case notes</span>",
        &bundle["notes"],
        &[
            ("at", "Datum / Date"),
            ("written_by", "Door / By"),
            ("text", "Tekst / Text"),
        ],
    );
    table(
        &mut h,
        "Wie heeft uw dossier gezien <span class=\"en\">/ Who looked at your file</span>",
        &bundle["disclosures"],
        &[
            ("time", "Wanneer / When"),
            ("organisation", "Organisatie / Organisation"),
            ("what", "Wat / What"),
            ("purpose", "Waarom / Purpose"),
            ("categories", "Welke gegevens / Which data"),
        ],
    );
    h.push_str("<p class=\"muted\">Vragen of klachten? Neem contact op met de functionaris voor gegevensbescherming (DPO) van het partnerschap, \
        of met de Gegevensbeschermingsautoriteit. <span class=\"en\">Questions or complaints? Contact the partnership's data-protection officer, or the Belgian Data Protection Authority.</span></p>");
    Shell::close(&mut h);
    h
}
