//! What group commit buys: audited records per second with one commit per record versus one
//! commit per batch, on a real SQLite file with `synchronous=FULL`, 64 concurrent writers.
//! Run: `cargo bench --bench audit_commit` (prints a table and a ratio measured in one run).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use partnergate::audit::{self, Action, AuditEvent, Requester};
use partnergate::config::AuditConfig;

fn event(i: u64) -> AuditEvent {
    Requester {
        request_id: format!("bench-{i}"),
        client: "crm.jobandco".into(),
        partner: Some("jobandco".into()),
        acting_user: Some("coach-1".into()),
        purpose: Some("trajectory_guidance".into()),
    }
    .event(Action::ParticipantRead)
    .participant(format!("{i:032x}"))
    .roles(vec!["trajectgezel".into()])
    .fields(vec![
        "identity.given_name".into(),
        "trajectory.status".into(),
    ])
    .granted()
}

async fn run(max_batch: usize, writers: usize, seconds: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let db = partnergate::store::Store::open(&path).await.unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let signer = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let config = AuditConfig {
        max_batch,
        ..AuditConfig::default()
    };
    let (log, task) = audit::writer::spawn(db.clone(), signer, "bench".into(), config)
        .await
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (log, done, stop) = (log.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64 * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                log.append_one(event(i)).await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let records = done.load(Ordering::Relaxed) as f64;
    drop(log);
    task.await.unwrap();
    let n = partnergate::store::audit::count(&db).await.unwrap();
    assert_eq!(
        n as f64, records,
        "every acknowledged record is in the table"
    );
    (records / elapsed, records)
}

fn main() {
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (single, n1) = run(1, 64, seconds).await;
        let (group, n2) = run(4096, 64, seconds).await;
        println!("audit commit, 64 concurrent writers, {seconds} s each, synchronous=FULL");
        println!("{:<28} {:>12} {:>10}", "mode", "records/s", "records");
        println!(
            "{:<28} {:>12.0} {:>10}",
            "one commit per record", single, n1
        );
        println!("{:<28} {:>12.0} {:>10}", "group commit", group, n2);
        println!("group commit / per-record commit = {:.1}x", group / single);
    });
}
