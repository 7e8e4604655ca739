//! Reads what the indicators need from the vault: per participant, gender, birth date, the
//! `esf` and `esf_special` fields and the partners involved. Nothing else is decrypted, and
//! nothing of it leaves [`super::build`] except counts.

use std::collections::HashMap;

use serde_json::Value;
use time::Date;

use super::Person;
use crate::store::reporting;
use crate::vault::crypto::ParticipantId;
use crate::vault::{Vault, VaultError};

/// Whether a field is one the report reads.
pub fn wanted(field: &str) -> bool {
    field == "identity.gender"
        || field == "identity.birth_date"
        || field.starts_with("esf.")
        || field.starts_with("esf_special.")
}

/// Every participant as the report sees them.
pub async fn people(vault: &Vault) -> Result<Vec<Person>, VaultError> {
    let mut partners: HashMap<Vec<u8>, Vec<String>> = HashMap::new();
    for (id, partner) in reporting::involved_partners(vault.store()).await? {
        partners.entry(id).or_default().push(partner);
    }
    let mut out = Vec::new();
    for raw in reporting::participant_ids(vault.store()).await? {
        let Some(id) = ParticipantId::from_slice(&raw) else {
            continue;
        };
        // Erased since the list was read: nothing to count.
        let Some(p) = vault.participant(&id).await? else {
            continue;
        };
        let mut fields = vault.read(&p, wanted).await?;
        let gender = match fields.remove("identity.gender") {
            Some(Value::String(g)) => Some(g),
            _ => None,
        };
        let birth_date = fields
            .remove("identity.birth_date")
            .and_then(|v| v.as_str().and_then(parse_date));
        out.push(Person {
            gender,
            birth_date,
            fields,
            partners: partners.remove(&raw).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}
