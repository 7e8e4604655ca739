//! Commands that work on the data directly, with the gateway stopped: `report esf` and
//! `retention plan|run`. They audit like the API does, through their own audit writer, so they
//! refuse to run beside a live gateway (two writers would fork the chain); a running gateway
//! serves the report at `GET /v1/reports/esf` and purges by itself every day.

use std::path::Path;
use std::time::Duration;

use crate::audit::{self, Action, AuditEvent, AuditLog, Requester};
use crate::config::Settings;
use crate::policy::Policy;
use crate::store::{self, Store};
use crate::{cli, report};

/// Refuses when something answers on the configured health address: a gateway is running.
pub fn ensure_gateway_stopped(settings: &Settings) -> Result<(), String> {
    let addr = settings.config.health_listen;
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
        return Err(format!(
            "a gateway answers on {addr}: stop it first (two audit writers would fork the chain), or use the API"
        ));
    }
    Ok(())
}

/// An audit writer of this process, and the task to await after the last handle is dropped.
pub struct OfflineAudit {
    /// Where events go.
    pub log: AuditLog,
    task: tokio::task::JoinHandle<()>,
}

impl OfflineAudit {
    /// Starts a writer on `db` (the installation's database), as `serve` does.
    pub async fn start(settings: &Settings, policy: &Policy, db: &Store) -> Result<Self, String> {
        let signer = audit::load_signing_key(&settings.audit_signing_key_path())
            .map_err(|e| format!("{e}; run `partnergate init`"))?;
        let (log, task) = audit::writer::spawn(
            db.clone(),
            signer,
            policy.version().to_string(),
            settings.config.audit.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Self { log, task })
    }

    /// Appends events and waits until they are durable.
    pub async fn append(&self, events: Vec<AuditEvent>) -> Result<u64, String> {
        self.log.append(events).await.map_err(|e| e.to_string())
    }

    /// Signs the tail and stops the writer.
    pub async fn finish(self) {
        let _ = self.log.checkpoint().await;
        drop(self.log);
        let _ = self.task.await;
    }
}

/// The requester of an offline command: no certificate (`-`), the operator's stated id.
pub fn operator(command: &str, acting_user: &str, purpose: &str) -> Requester {
    Requester {
        request_id: format!("cli-{command}-{}", crate::api::new_request_id()),
        client: "-".into(),
        partner: None,
        acting_user: Some(acting_user.to_string()),
        purpose: Some(purpose.to_string()),
    }
}

/// `partnergate report esf --from --to --out DIR`: writes `esf-FROM-TO.json`, `.csv` and
/// `.html` (the same suppressed cells in each) and audits one aggregate access.
pub async fn report_esf(
    settings: &Settings,
    from: &str,
    to: &str,
    out: &Path,
    acting_user: &str,
) -> Result<String, String> {
    let (from, to) = report::period(from, to).map_err(|e| e.to_string())?;
    ensure_gateway_stopped(settings)?;
    let policy = Policy::load(&settings.policy_dir()).map_err(|e| e.to_string())?;
    let vault = cli::open_vault(settings).await?;
    let people = report::collect::people(&vault)
        .await
        .map_err(|e| e.to_string())?;
    let built = report::build(policy.agreement(), &people, from, to, store::now());
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let audit = OfflineAudit::start(settings, &policy, vault.store()).await?;
    let event = operator("report", acting_user, "esf_reporting").event(Action::ReportRead);
    audit
        .append(vec![event.granted_with(format!("esf {from}..{to} files"))])
        .await?;
    audit.finish().await;
    let stem = format!("esf-{from}-{to}");
    let mut written = Vec::new();
    for (ext, body) in [
        ("json", report::render::json(&built)),
        ("csv", report::render::csv(&built)),
        ("html", report::render::html(&built)),
    ] {
        let path = out.join(format!("{stem}.{ext}"));
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(format!("wrote {}\n", written.join(", ")))
}

/// `partnergate retention plan`: the dry run. Per category, how many participants' fields are
/// due now, in which months the others fall due, and how many have no date yet. Counts only;
/// reads the trajectory end dates inside this process and prints none.
pub async fn retention_plan(settings: &Settings) -> Result<String, String> {
    use std::fmt::Write as _;
    let policy = Policy::load(&settings.policy_dir()).map_err(|e| e.to_string())?;
    let vault = cli::open_vault(settings).await?;
    let holdings = crate::retention::holdings(&vault)
        .await
        .map_err(|e| e.to_string())?;
    let today = crate::clock::today();
    let plan = crate::retention::plan(policy.agreement(), &holdings, today);
    let mut out = format!(
        "retention plan on {today} for {} participants (counts only; `retention run` purges what is due now)\n",
        holdings.len()
    );
    for c in plan {
        let later: Vec<String> = c
            .later
            .iter()
            .take(6)
            .map(|(m, n)| format!("{m}: {n}"))
            .collect();
        let more = c.later.len().saturating_sub(6);
        let _ = writeln!(
            out,
            "{:<12} {:<48} due now: {:>5}  later: {}{}  no date yet: {}",
            c.category,
            c.rule,
            c.due_now,
            if later.is_empty() {
                "-".to_string()
            } else {
                later.join(", ")
            },
            if more > 0 {
                format!(" (+{more} months)")
            } else {
                String::new()
            },
            c.no_date_yet
        );
    }
    Ok(out)
}

/// `partnergate retention run`: purges what is due today, with the gateway stopped (a running
/// gateway purges by itself every day at `[retention] hour`).
pub async fn retention_run(settings: &Settings) -> Result<String, String> {
    ensure_gateway_stopped(settings)?;
    let policy = Policy::load(&settings.policy_dir()).map_err(|e| e.to_string())?;
    let vault = cli::open_vault(settings).await?;
    let audit = OfflineAudit::start(settings, &policy, vault.store()).await?;
    let result = crate::retention::run(
        policy.agreement(),
        &vault,
        &audit.log,
        crate::clock::today(),
    )
    .await;
    audit.finish().await;
    let s = result.map_err(|e| e.to_string())?;
    let per: Vec<String> = s
        .per_category
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    Ok(format!(
        "retention run on {}: {} participants purged ({} field values; {}), {} keys shredded\n",
        s.day,
        s.participants,
        s.fields,
        if per.is_empty() {
            "nothing due".to_string()
        } else {
            per.join(", ")
        },
        s.shredded
    ))
}

/// `partnergate audit prune --archive DIR`: archives the records older than `[retention]
/// audit_years` (or `older_than_years`) into DIR, verifies the archive read back, records the
/// pruning in the log, and only then removes them. The live chain starts at the signed
/// checkpoint on the last archived record.
pub async fn audit_prune(
    settings: &Settings,
    archive_dir: &Path,
    older_than_years: Option<u32>,
) -> Result<String, String> {
    ensure_gateway_stopped(settings)?;
    let years = older_than_years.unwrap_or(settings.config.retention.audit_years);
    let cutoff = crate::clock::now()
        .replace_year(crate::clock::now().year() - years as i32)
        .unwrap_or_else(|_| crate::clock::now() - time::Duration::days(365 * i64::from(years)));
    let cutoff = audit::record::format_time(cutoff);
    let db = Store::connect(&settings.database())
        .await
        .map_err(|e| e.to_string())?;
    let Some(range) = audit::prune::prunable(&db, &cutoff)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(format!(
            "nothing to prune: no signed records older than {years} years (before {cutoff})\n"
        ));
    };
    let policy = Policy::load(&settings.policy_dir()).map_err(|e| e.to_string())?;
    let signer =
        audit::load_signing_key(&settings.audit_signing_key_path()).map_err(|e| e.to_string())?;
    let public_key = ring::signature::KeyPair::public_key(&signer)
        .as_ref()
        .to_vec();
    let archive = audit::prune::archive(&db, &signer, &public_key, range, archive_dir)
        .await
        .map_err(|e| e.to_string())?;
    let name = archive
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The pruning is itself on record, before anything goes.
    let log = OfflineAudit::start(settings, &policy, &db).await?;
    let event = operator("audit-prune", "operator", "audit").event(Action::AuditPrune);
    let detail = format!(
        "archived {}..={} to {name} (sha256 {})",
        archive.range.0, archive.range.1, archive.sha256
    );
    let appended = log.append(vec![event.granted_with(detail)]).await;
    if let Err(e) = appended {
        log.finish().await;
        return Err(e);
    }
    let removed = audit::prune::prune(&db, archive.range.1)
        .await
        .map_err(|e| e.to_string());
    log.finish().await;
    let removed = removed?;
    Ok(format!(
        "archived records {}..={} to {} (verified), removed {removed} from the live log; it now starts at the signed checkpoint on {}\n",
        archive.range.0,
        archive.range.1,
        archive.path.display(),
        archive.range.1
    ))
}
