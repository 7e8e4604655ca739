//! The command implementations behind `src/main.rs`: plain functions returning text or errors.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{CONFIG_FILE, Settings};
use crate::pki::{self, CertificateAuthority, PkiPaths};
use crate::policy::{self, Agreement};
use crate::vault::crypto::ParticipantId;
use crate::{audit, store, vault};

fn agreement(dir: &Path) -> Result<Agreement, String> {
    Agreement::load(&dir.join(policy::AGREEMENT_FILE)).map_err(|e| e.to_string())
}

/// `partnergate init`: config, PKI, keys and database. Keeps what exists unless `force`.
pub async fn init(home: &Path, policy_dir: Option<&Path>, force: bool) -> Result<String, String> {
    std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
    let mut out = String::new();
    let config_path = home.join(CONFIG_FILE);
    if !config_path.exists() || force {
        let mut text = String::from(
            "# partnergate configuration. Paths are relative to this file's folder.\n\
             # Every key can be overridden by PARTNERGATE_<KEY> (see README).\n\
             listen = \"127.0.0.1:8443\"\n\
             health_listen = \"127.0.0.1:9464\"\n\
             certs_dir = \"certs\"\n\
             data_dir = \"data\"\n\
             log_format = \"text\"\n",
        );
        let dir = policy_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("policies"));
        let _ = writeln!(text, "policy_dir = {:?}", dir.display().to_string());
        pki::write_file(&config_path, text.as_bytes(), 0o644).map_err(|e| e.to_string())?;
        let _ = writeln!(out, "created {}", config_path.display());
    }
    let settings = Settings::load(home).map_err(|e| e.to_string())?;
    let agreement = agreement(&settings.policy_dir())?;
    let clients: Vec<String> = agreement.clients.iter().map(|c| c.cn.to_string()).collect();
    let report =
        pki::init_pki(&settings.certs_dir(), &clients, force).map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "certificates: {} created, {} kept, in {}",
        report.created.len(),
        report.kept.len(),
        settings.certs_dir().display()
    );
    let created = vault::init_keys(&settings, force)
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "keys: master key {} ({}), database {}",
        if created { "created" } else { "kept" },
        settings.master_key_path().display(),
        settings.database().describe()
    );
    let pki_paths = PkiPaths::new(settings.certs_dir());
    let new_signer = audit::init_signing_key(
        &settings.audit_signing_key_path(),
        &pki_paths.audit_public_key(),
    )
    .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "audit signing key {}; DPOs verify with {}",
        if new_signer { "created" } else { "kept" },
        pki_paths.audit_public_key().display()
    );
    Ok(out)
}

/// `partnergate certs issue --client NAME [--rotate]`.
pub fn certs_issue(
    settings: &Settings,
    client: &str,
    rotate: bool,
    crl_days: u32,
) -> Result<(), String> {
    let known = agreement(&settings.policy_dir())?.client(client).is_some();
    let validity = pki::crl_validity(crl_days).map_err(|e| e.to_string())?;
    let ca = CertificateAuthority::load(PkiPaths::new(settings.certs_dir()))
        .map_err(|e| e.to_string())?;
    let issued = ca
        .issue_or_rotate(client, rotate, validity)
        .map_err(|e| e.to_string())?;
    println!(
        "issued {} (serial {})",
        ca.paths().client_cert(client).display(),
        issued.serial
    );
    if let Some(old) = issued.revoked {
        println!(
            "revoked the previous certificate of {client} (serial {old}); a running server refuses it within 2 seconds, on open connections too"
        );
    }
    if !known {
        println!(
            "note: {client} is not a client in the agreement yet; the gateway answers it 403 until it is added"
        );
    }
    Ok(())
}

/// `partnergate certs revoke --client NAME | --serial HEX`.
pub fn certs_revoke(
    settings: &Settings,
    client: Option<&str>,
    serial: Option<&str>,
    crl_days: u32,
) -> Result<(), String> {
    let validity = pki::crl_validity(crl_days).map_err(|e| e.to_string())?;
    let ca = CertificateAuthority::load(PkiPaths::new(settings.certs_dir()))
        .map_err(|e| e.to_string())?;
    let (serial, client) = match (client, serial) {
        (Some(client), None) => (
            ca.revoke_client(client, validity)
                .map_err(|e| e.to_string())?,
            Some(client.to_string()),
        ),
        (None, Some(hex)) => {
            let serial = pki::Serial::parse_hex(hex).map_err(|e| e.to_string())?;
            let client = ca
                .revoke_serial(&serial, validity)
                .map_err(|e| e.to_string())?;
            (serial, client)
        }
        _ => return Err("give exactly one of --client and --serial".into()),
    };
    let whose = client.map(|c| format!("{c}, ")).unwrap_or_default();
    println!(
        "revoked ({whose}serial {serial}); a running server refuses it within 2 seconds, on open connections too"
    );
    Ok(())
}

/// `partnergate certs crl`: re-sign the revocation list before its nextUpdate passes.
pub fn certs_crl(settings: &Settings, crl_days: u32) -> Result<(), String> {
    let validity = pki::crl_validity(crl_days).map_err(|e| e.to_string())?;
    let ca = CertificateAuthority::load(PkiPaths::new(settings.certs_dir()))
        .map_err(|e| e.to_string())?;
    let crl = ca.resign_crl(validity).map_err(|e| e.to_string())?;
    let next = crl
        .next_update
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    println!(
        "re-signed {} (number {}, {} revoked, next update {next}); a running server picks it up within 2 seconds",
        ca.paths().crl().display(),
        crl.number,
        crl.revoked.len()
    );
    Ok(())
}

/// `partnergate policy compile`.
pub fn policy_compile(dir: &Path) -> Result<(), String> {
    policy::compile_dir(dir).map_err(|e| e.to_string())?;
    println!(
        "compiled {} into {} and {}",
        dir.join(policy::AGREEMENT_FILE).display(),
        dir.join(policy::MODEL_FILE).display(),
        dir.join(policy::POLICY_FILE).display()
    );
    Ok(())
}

/// `partnergate policy check`.
pub fn policy_check(dir: &Path) -> Result<(), String> {
    let a = agreement(dir)?;
    let findings = policy::check(&a);
    for f in &findings {
        println!("{f}");
    }
    if findings
        .iter()
        .any(|f| f.severity == policy::Severity::Error)
    {
        return Err("the agreement is refused".into());
    }
    // The compiled casbin policy must decide exactly like the agreement says, everywhere.
    let compiled = policy::Policy::from_agreement_str(a.source()).map_err(|e| e.to_string())?;
    let combinations = compiled
        .verify_against_enforcer()
        .map_err(|e| e.to_string())?;
    print!("{}", escalation_report(&compiled));
    println!(
        "agreement ok: {} grants, {combinations} decisions cross-checked against casbin",
        a.grants.len()
    );
    Ok(())
}

/// The escalation paths and self-unlocking consents of an agreement, as `policy check` prints
/// them: every way a partner could widen its own view by its own request.
pub fn escalation_report(p: &policy::Policy) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let paths = p.escalation_paths();
    let _ = writeln!(
        out,
        "escalation paths the agreement allows (self-assignments that widen the partner's own view): {}",
        paths.len()
    );
    for e in &paths {
        let _ = writeln!(
            out,
            "  [{}] {} -> {} (named in self_assign, purpose {}); {}",
            e.partners.join(", "),
            e.from.join("+"),
            e.to,
            e.via_purpose,
            e.widens.join("; ")
        );
    }
    let consents = p.self_widening_consents();
    let _ = writeln!(
        out,
        "consent scopes whose recording widens the recorder's own reading: {}",
        consents.len()
    );
    for c in &consents {
        let _ = writeln!(
            out,
            "  {} recorded by {}: unlocks {} ({})",
            c.scope,
            c.role,
            c.unlocks.join(", "),
            if c.refused {
                "refused: the agreement requires another role to record it"
            } else {
                "allowed, flagged in the audit record"
            }
        );
    }
    out
}

/// `partnergate policy explain`.
pub fn policy_explain(
    dir: &Path,
    role: Option<&str>,
    purpose: Option<&str>,
    json: bool,
) -> Result<(), String> {
    let a = agreement(dir)?;
    let rows = policy::explain(&a, role, purpose);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", policy::render_table(&rows));
    }
    Ok(())
}

/// `partnergate policy register --out DIR`.
pub fn policy_register(dir: &Path, out: &Path) -> Result<(), String> {
    let a = agreement(dir)?;
    for f in policy::register(&a, out).map_err(|e| e.to_string())? {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// `partnergate audit verify FILE --public-key KEY`: offline, no database, no master key.
pub fn audit_verify(file: &Path, public_key: &Path) -> Result<(), String> {
    let key = audit::load_public_key(public_key).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let report = audit::verify::verify_export(&text, &key);
    println!("{}", serde_json::to_string(&report).expect("json"));
    if report.ok {
        Ok(())
    } else {
        Err(format!(
            "verification failed at sequence {}: {}",
            report.first_bad.unwrap_or(0),
            report.problem.unwrap_or_default()
        ))
    }
}

/// Opens the vault the way `serve` does (for commands that work on the data offline).
pub async fn open_vault(settings: &Settings) -> Result<vault::Vault, String> {
    let db = store::Store::connect(&settings.database())
        .await
        .map_err(|e| e.to_string())?;
    let keyring = vault::load_keyring(settings).map_err(|e| e.to_string())?;
    vault::Vault::open(db, keyring, None)
        .await
        .map_err(|e| e.to_string())
}

/// Participants stored per transaction when loading demo data.
const SEED_BATCH: usize = 500;

/// One participant of the demo caseload (the synthetic caseload of `partnergate-devtools`).
#[derive(Debug, Clone, PartialEq)]
pub struct DemoParticipant {
    /// Field values by field name, e.g. `"identity.given_name" => "An"`.
    pub fields: std::collections::BTreeMap<String, serde_json::Value>,
    /// `(partner id, role)`; the first entry is the toeleider who registers the participant.
    pub involvements: Vec<(String, String)>,
    /// Consent scopes the participant gave.
    pub consents: Vec<String>,
    /// Case-note texts, written by the trajectgezel (or else the first partner involved).
    pub notes: Vec<String>,
}

/// Stores synthetic participants through the vault in batches, validating every field
/// against the agreement first (demo data is held to the same types as API input). Calls
/// `progress(done, total)` before the first batch and after each one. Returns the new ids in
/// order.
async fn store_synthetic(
    v: &vault::Vault,
    policy: &policy::Policy,
    people: &[DemoParticipant],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<ParticipantId>, String> {
    let total = people.len() as u64;
    progress(0, total);
    let mut ids = Vec::with_capacity(people.len());
    for batch in people.chunks(SEED_BATCH) {
        let mut prepared = Vec::with_capacity(batch.len());
        for p in batch {
            for (name, value) in &p.fields {
                policy
                    .validate_value(name, value)
                    .map_err(|e| format!("synthetic data: {e}"))?;
            }
            let insz = p
                .fields
                .get("identity.insz")
                .and_then(|v| v.as_str())
                .and_then(|s| vault::insz::Insz::parse(s).ok())
                .ok_or("synthetic data: invalid identity.insz")?;
            let author = p
                .involvements
                .iter()
                .find(|(_, r)| r == "trajectgezel")
                .or(p.involvements.first())
                .map(|(p, _)| p.clone())
                .ok_or("synthetic data: no involvement")?;
            let notes: Vec<(String, String)> = p
                .notes
                .iter()
                .map(|n| (author.clone(), n.clone()))
                .collect();
            prepared.push((
                ParticipantId::generate().map_err(|e| e.to_string())?,
                insz,
                notes,
            ));
        }
        let seeds: Vec<vault::Seed<'_>> = batch
            .iter()
            .zip(&prepared)
            .map(|(p, (id, insz, notes))| vault::Seed {
                id: *id,
                insz,
                fields: &p.fields,
                involvements: &p.involvements,
                consents: &p.consents,
                notes,
            })
            .collect();
        let stored = v.seed_many(&seeds).await.map_err(|e| e.to_string())?;
        if stored != seeds.len() {
            return Err("synthetic data: duplicate national number".into());
        }
        ids.extend(prepared.iter().map(|(id, _, _)| *id));
        progress(ids.len() as u64, total);
    }
    Ok(ids)
}

/// What the demo printout needs: the showcase participant's pid for each partner.
pub struct DemoInfo {
    /// partner id → that partner's pid of the showcase participant.
    pub pids: std::collections::BTreeMap<String, String>,
    /// The showcase participant's (synthetic) national number, for the look-up example.
    pub insz: String,
    /// How many participants this call stored (`None`: the demo data was there and was kept).
    pub loaded: Option<usize>,
}

/// `partnergate demo`: loads the showcase participant and the rest of the caseload (`caseload`
/// is only called then) into an empty database; an existing caseload is kept. `progress(done,
/// total)` reports the progress of the loading. Returns what the printed commands need.
pub async fn demo_load(
    settings: &Settings,
    showcase: DemoParticipant,
    caseload: impl FnOnce() -> Vec<DemoParticipant>,
    mut progress: impl FnMut(u64, u64),
) -> Result<DemoInfo, String> {
    let policy = policy::Policy::load(&settings.policy_dir()).map_err(|e| e.to_string())?;
    let v = open_vault(settings).await?;
    let insz_text = showcase.fields["identity.insz"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let insz = vault::insz::Insz::parse(&insz_text).map_err(|e| e.to_string())?;
    let (id, loaded) = match v.find_by_insz(&insz).await.map_err(|e| e.to_string())? {
        Some(id) => {
            eprintln!("demo data already loaded; keeping it");
            (id, None)
        }
        None => {
            let mut people = vec![showcase];
            people.extend(caseload());
            let ids = store_synthetic(&v, &policy, &people, &mut progress).await?;
            (ids[0], Some(people.len()))
        }
    };
    let pids = policy
        .agreement()
        .partners
        .iter()
        .map(|p| {
            (
                p.id.to_string(),
                v.index().pid_for(&p.id, &id).into_string(),
            )
        })
        .collect();
    v.store().close().await;
    Ok(DemoInfo {
        pids,
        insz: insz_text,
        loaded,
    })
}

/// The ready-to-paste curl commands the demo prints.
pub fn demo_commands(settings: &Settings, info: &DemoInfo) -> String {
    let certs = settings.certs_dir();
    let base = format!("https://localhost:{}", settings.config.listen.port());
    let curl = |client: &str| {
        format!(
            "curl -s --cacert {ca} --cert {cert} --key {key}",
            ca = certs.join("ca.pem").display(),
            cert = certs
                .join("clients")
                .join(format!("{client}.pem"))
                .display(),
            key = certs
                .join("clients")
                .join(format!("{client}.key"))
                .display(),
        )
    };
    let headers =
        |purpose: &str| format!("-H 'X-Purpose: {purpose}' -H 'X-Acting-User: demo-coach-1'");
    let pid = |partner: &str| info.pids.get(partner).cloned().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "\nReady. In another terminal, paste any of these:\n");
    let _ = writeln!(out, "# Who am I, and what may I see for which purpose?");
    let _ = writeln!(out, "{} {base}/v1/me\n", curl("crm.ocmw-gent"));
    let _ = writeln!(
        out,
        "# One participant (An Peeters, synthetic), four partners, four different views:"
    );
    // The same person through four partners' eyes.
    let views = [
        (
            "crm.jobandco",
            "jobandco",
            "jobandco is her trajectgezel: the full record, health and notes included",
        ),
        (
            "crm.ocmw-gent",
            "ocmw-gent",
            "OCMW Gent is her dossierbeheerder: status and progress, no health, no notes",
        ),
        (
            "crm.vdab",
            "vdab",
            "VDAB is spoc_vdab: identity, contact, ESF and trajectory; never life, health or notes",
        ),
        (
            "crm.caw-oost-vlaanderen",
            "caw-oost-vlaanderen",
            "CAW is brugfiguur: health only because she consented (health_sharing)",
        ),
    ];
    for (client, partner, comment) in views {
        let _ = writeln!(out, "# {comment}");
        let _ = writeln!(
            out,
            "{} {} {base}/v1/participants/{}\n",
            curl(client),
            headers("trajectory_guidance"),
            pid(partner)
        );
    }
    let _ = writeln!(
        out,
        "# Duplicate check by national number (VDAB's own pid comes back)"
    );
    let _ = writeln!(
        out,
        "{} {} -H 'Content-Type: application/json' -d '{{\"insz\": \"{}\"}}' {base}/v1/lookup\n",
        curl("crm.vdab"),
        headers("duplicate_check"),
        info.insz
    );
    let _ = writeln!(
        out,
        "# The DPO: verify the audit chain, then see who accessed what"
    );
    let _ = writeln!(
        out,
        "{} {} {base}/v1/audit/verify",
        curl("dpo.stad-gent"),
        headers("audit")
    );
    let _ = writeln!(
        out,
        "{} {} '{base}/v1/audit?limit=5'\n",
        curl("dpo.stad-gent"),
        headers("audit")
    );
    let _ = writeln!(
        out,
        "# The steering group: ESF+ indicators, small cells suppressed (format=json|csv|html)"
    );
    let _ = writeln!(
        out,
        "{} {} '{base}/v1/reports/esf?from=2024-01-01&to={}-12-31&format=csv'\n",
        curl("coord.stad-gent"),
        headers("esf_reporting"),
        crate::clock::today().year()
    );
    out
}

/// How long a running server may take to notice a changed key file (it polls every 2 s).
const KEY_RELOAD_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Counts participant keys and system secrets still wrapped under a master version below `v`.
async fn wrapped_below(db: &store::Store, v: u32) -> Result<i64, String> {
    store::stats::wrapped_below(db, v)
        .await
        .map_err(|e| e.to_string())
}

/// `partnergate keys rotate`: adds a master key version and re-wraps every data key and the
/// index secret under it, online. A running server picks up the new key file by itself; data
/// keys it wraps under the old version in the meantime are caught by a second pass.
pub async fn keys_rotate(settings: &Settings) -> Result<(), String> {
    if std::env::var_os(vault::MASTER_KEY_ENV).is_some() {
        return Err(format!(
            "the master keyring comes from {}: add a version there and re-wrap with the key file workflow",
            vault::MASTER_KEY_ENV
        ));
    }
    let path = settings.master_key_path();
    let version =
        vault::keys::MasterKeyring::add_version_to_file(&path).map_err(|e| e.to_string())?;
    println!("added master key version {version} to {}", path.display());
    let keyring = vault::load_keyring(settings).map_err(|e| e.to_string())?;
    let v = open_vault(settings).await?;
    let mut total = 0;
    loop {
        total += v.rewrap_all(&keyring).await.map_err(|e| e.to_string())?;
        tokio::time::sleep(KEY_RELOAD_GRACE).await;
        if wrapped_below(v.store(), version).await? == 0 {
            break;
        }
    }
    println!(
        "re-wrapped {total} keys under version {version}; retire the old versions with `partnergate keys retire --below {version}`"
    );
    Ok(())
}

/// `partnergate keys retire --below V`: removes old master versions once nothing uses them.
pub async fn keys_retire(settings: &Settings, below: u32) -> Result<(), String> {
    let v = open_vault(settings).await?;
    let left = wrapped_below(v.store(), below).await?;
    if left > 0 {
        return Err(format!(
            "{left} keys are still wrapped under a version below {below}; run `partnergate keys rotate` first"
        ));
    }
    let retired =
        vault::keys::MasterKeyring::retire_versions_below(&settings.master_key_path(), below)
            .map_err(|e| e.to_string())?;
    println!("retired master key versions {retired:?}");
    Ok(())
}

/// `partnergate partners`: each partner's membership, its clients with certificate expiry,
/// and how many participants it currently has a role for.
pub async fn partners(settings: &Settings) -> Result<String, String> {
    let a = agreement(&settings.policy_dir())?;
    let db = store::Store::connect(&settings.database())
        .await
        .map_err(|e| e.to_string())?;
    let counts = store::stats::participants_per_partner(&db)
        .await
        .map_err(|e| e.to_string())?;
    let counts: std::collections::HashMap<String, i64> = counts.into_iter().collect();
    let paths = PkiPaths::new(settings.certs_dir());
    let today = crate::store::today();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<28} {:<24} {:>12}  clients (certificate valid until)",
        "PARTNER", "KIND", "STATUS", "PARTICIPANTS"
    );
    for p in &a.partners {
        let status = match p.membership {
            policy::Membership::Active { since } => format!("active since {since}"),
            policy::Membership::Notice { until } => format!("notice until {until}"),
            policy::Membership::Exited { since } => format!("exited {since}"),
            policy::Membership::Subcontractor { since } => format!("subcontractor {since}"),
        };
        let status = if p.is_member_on(today) {
            status
        } else {
            format!("{status} (not a member)")
        };
        let clients: Vec<String> = a
            .clients
            .iter()
            .filter(|c| *c.partner == *p.id)
            .map(|c| {
                let until = std::fs::read_to_string(paths.client_cert(&c.cn))
                    .ok()
                    .and_then(|pem| pki::certificate_not_after(&pem))
                    .map(|t| t.date().to_string())
                    .unwrap_or_else(|| "no certificate".into());
                format!("{} ({until})", *c.cn)
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<22} {:<28} {:<24} {:>12}  {}",
            *p.id,
            *p.kind,
            status,
            counts.get(p.id.as_str()).copied().unwrap_or(0),
            clients.join(", ")
        );
    }
    db.close().await;
    Ok(out)
}

/// `partnergate audit report --out FILE`: the self-contained HTML report for a DPO.
pub async fn audit_report(settings: &Settings, out: &Path) -> Result<(), String> {
    let a = agreement(&settings.policy_dir())?;
    let db = store::Store::connect(&settings.database())
        .await
        .map_err(|e| e.to_string())?;
    let key = audit::load_public_key(&PkiPaths::new(settings.certs_dir()).audit_public_key())
        .map_err(|e| e.to_string())?;
    let verification = audit::verify_database(&db, &key)
        .await
        .map_err(|e| e.to_string())?;
    let records = audit::all_records(&db).await.map_err(|e| e.to_string())?;
    let partner_names = a
        .partners
        .iter()
        .map(|p| (p.id.to_string(), p.name.clone()))
        .collect();
    let html = audit::report::render(&audit::report::ReportInput {
        records: &records,
        verification: &verification,
        partner_names: &partner_names,
        generated_at: &store::now(),
        partnership: &a.meta.name,
    });
    std::fs::write(out, html).map_err(|e| format!("{}: {e}", out.display()))?;
    let chain = if verification.ok {
        "verified".to_string()
    } else {
        format!("BROKEN at sequence {}", verification.first_bad.unwrap_or(0))
    };
    println!(
        "wrote {} ({} records, chain {chain}, signed through {}, {} not yet signed)",
        out.display(),
        records.len(),
        verification.signed_through,
        verification.unsigned_tail
    );
    Ok(())
}

/// `partnergate audit export --out FILE`: an offline export up to the last signed checkpoint
/// (a running server signs at least every 30 seconds and at shutdown).
pub async fn audit_export(settings: &Settings, from: u64, out: &Path) -> Result<(), String> {
    let db = store::Store::connect(&settings.database())
        .await
        .map_err(|e| e.to_string())?;
    let last = store::audit::last_checkpoint(&db)
        .await
        .map_err(|e| e.to_string())?;
    let to = last.ok_or("no signed checkpoint yet: nothing can be exported verifiably")? as u64;
    let signer =
        audit::load_signing_key(&settings.audit_signing_key_path()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let header = audit::export(&db, from, to, &signer, &mut buf)
        .await
        .map_err(|e| e.to_string())?;
    std::fs::write(out, buf).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "exported records {}..={} to {}",
        header.from_seq,
        header.to_seq,
        out.display()
    );
    Ok(())
}
