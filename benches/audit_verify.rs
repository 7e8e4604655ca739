//! `audit verify` over a large log: appends N records through the real writer (hash chain,
//! signed checkpoints, SQLite file), then times the live verification.
//! Run: `cargo bench --bench audit_verify` (N from AUDIT_RECORDS, default 300000).

use std::time::Instant;

use partnergate::audit::{self, Action, Requester};
use partnergate::config::AuditConfig;

fn main() {
    let n: usize = std::env::var("AUDIT_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let db = partnergate::store::Store::open(&path).await.unwrap();
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let signer = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = ring::signature::KeyPair::public_key(&signer)
            .as_ref()
            .to_vec();
        let (log, task) =
            audit::writer::spawn(db.clone(), signer, "bench".into(), AuditConfig::default())
                .await
                .unwrap();
        let started = Instant::now();
        for chunk in 0..n / 1000 {
            let events = (0..1000)
                .map(|i| {
                    Requester {
                        request_id: format!("r{chunk}-{i}"),
                        client: "crm.jobandco".into(),
                        partner: Some("jobandco".into()),
                        acting_user: Some("coach-1".into()),
                        purpose: Some("trajectory_guidance".into()),
                    }
                    .event(Action::ParticipantRead)
                    .participant(format!("{:032x}", chunk * 1000 + i))
                    .roles(vec!["trajectgezel".into()])
                    .fields(vec![
                        "identity.given_name".into(),
                        "trajectory.status".into(),
                        "health.addiction".into(),
                    ])
                    .granted()
                })
                .collect();
            log.append(events).await.unwrap();
        }
        drop(log);
        task.await.unwrap();
        let appended = started.elapsed().as_secs_f64();
        let t = Instant::now();
        let report = audit::verify_database(&db, &public).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(report.ok, "{report:?}");
        println!(
            "appended {n} records in {appended:.2} s ({:.0}/s, batches of 1000)",
            n as f64 / appended
        );
        println!(
            "verified {} records, {} checkpoints in {secs:.3} s = {:.0} records/s = {:.2} s per 1M",
            report.records,
            report.checkpoints,
            report.records as f64 / secs,
            secs * 1e6 / report.records as f64
        );
    });
}
