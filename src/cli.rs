//! The command implementations behind `src/main.rs`: plain functions returning text or errors.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{CONFIG_FILE, Settings};
use crate::pki::{self, CertificateAuthority, PkiPaths};
use crate::policy::{self, Agreement};
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
        let dir = policy_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("policies"));
        let _ = writeln!(text, "policy_dir = {:?}", dir.display().to_string());
        pki::write_file(&config_path, text.as_bytes(), 0o644).map_err(|e| e.to_string())?;
        let _ = writeln!(out, "created {}", config_path.display());
    }
    let settings = Settings::load(home).map_err(|e| e.to_string())?;
    let agreement = agreement(&settings.policy_dir())?;
    let clients: Vec<String> = agreement.clients.iter().map(|c| c.cn.to_string()).collect();
    let report = pki::init_pki(&settings.certs_dir(), &clients, force).map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "certificates: {} created, {} kept, in {}",
        report.created.len(),
        report.kept.len(),
        settings.certs_dir().display()
    );
    let created = vault::init_keys(&settings, force).await.map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "keys: master key {} ({}), database {}",
        if created { "created" } else { "kept" },
        settings.master_key_path().display(),
        settings.database_path().display()
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

/// `partnergate certs issue --client NAME`.
pub fn certs_issue(settings: &Settings, client: &str) -> Result<(), String> {
    let known = agreement(&settings.policy_dir())?.client(client).is_some();
    let ca = CertificateAuthority::load(PkiPaths::new(settings.certs_dir())).map_err(|e| e.to_string())?;
    ca.issue_client(client).map_err(|e| e.to_string())?;
    println!("issued {}", ca.paths().client_cert(client).display());
    if !known {
        println!(
            "note: {client} is not a client in the agreement yet; the gateway answers it 403 until it is added"
        );
    }
    Ok(())
}

/// `partnergate certs revoke --client NAME`.
pub fn certs_revoke(settings: &Settings, client: &str) -> Result<(), String> {
    let ca = CertificateAuthority::load(PkiPaths::new(settings.certs_dir())).map_err(|e| e.to_string())?;
    let serial = ca.revoke_client(client).map_err(|e| e.to_string())?;
    println!(
        "revoked {client} (serial {serial}); a running server refuses it within 2 seconds"
    );
    Ok(())
}

/// `partnergate policy compile`.
pub fn policy_compile(dir: &Path) -> Result<(), String> {
    let a = agreement(dir)?;
    policy::ensure_safe(&a).map_err(|e| e.to_string())?;
    let compiled = policy::compile(&a);
    policy::write_compiled(&compiled, dir).map_err(|e| e.to_string())?;
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
    if findings.iter().any(|f| f.severity == policy::Severity::Error) {
        return Err("the agreement is refused".into());
    }
    println!("agreement ok: {} grants checked", a.grants.len());
    Ok(())
}

/// `partnergate policy explain`.
pub fn policy_explain(dir: &Path, role: Option<&str>, purpose: Option<&str>, json: bool) -> Result<(), String> {
    let a = agreement(dir)?;
    let rows = policy::explain(&a, role, purpose);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?);
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

/// `partnergate demo`: loads the synthetic caseload into an empty database.
pub async fn demo_load(settings: &Settings, participants: usize, seed: u64) -> Result<(), String> {
    let _ = (store::open(&settings.database_path()).await.map_err(|e| e.to_string())?, participants, seed);
    Ok(())
}

/// The ready-to-paste curl commands the demo prints.
pub fn demo_commands(settings: &Settings) -> String {
    let certs = settings.certs_dir();
    let base = format!("https://localhost:{}", settings.config.listen.port());
    let curl = |client: &str| {
        format!(
            "curl --cacert {ca} --cert {cert} --key {key}",
            ca = certs.join("ca.pem").display(),
            cert = certs.join("clients").join(format!("{client}.pem")).display(),
            key = certs.join("clients").join(format!("{client}.key")).display(),
        )
    };
    let mut out = String::new();
    let _ = writeln!(out, "\nReady. Try, in another terminal:\n");
    let _ = writeln!(out, "# who am I, and what may I see?");
    let _ = writeln!(out, "{} {base}/v1/me\n", curl("crm.ocmw-gent"));
    out
}
