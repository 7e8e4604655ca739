//! The vault under real conditions: key rotation while serving, and tampered ciphertexts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::json;

use crate::fixtures::{self, as_, db, showcase};
use crate::harness::Home;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_under_concurrent_reads_loses_nothing() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 31).await;
    let path = Arc::new(format!("/v1/participants/{}", case.pids["jobandco"]));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let c = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
        let (path, stop, ok, bad) = (path.clone(), stop.clone(), ok.clone(), bad.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = c.get(&path).await.unwrap();
                if r.status == 200 && r.json()["fields"]["health.addiction"] == fixtures::ADDICTION
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let home_path = home.path().to_path_buf();
    let (rotated, out) =
        tokio::task::spawn_blocking(move || crate::harness::run(&home_path, &["keys", "rotate"]))
            .await
            .unwrap();
    assert!(rotated, "{out}");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "a read failed during rotation"
    );
    assert!(ok.load(Ordering::Relaxed) > 20);
    let mut conn = db(&home).await;
    let (old,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM participants WHERE master_version < 2")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(old, 0);
    let (ok, out) = home.run(&["keys", "retire", "--below", "2"]);
    assert!(ok, "{out}");
    let key_file = std::fs::read_to_string(home.path().join("data/master.key")).unwrap();
    assert!(!key_file.contains("\nv1:") && key_file.contains("\nv2:"));
    // Still readable, and new participants are wrapped under the new version.
    let r = as_(&gw.client("crm.jobandco"), "trajectory_guidance")
        .get(&path)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = as_(&gw.client("crm.vdab"), "trajectory_guidance")
        .post(
            "/v1/participants",
            &json!({"fields": {"identity.insz": fixtures::insz(32)}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let (old,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM participants WHERE master_version < 2")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(old, 0);
    // The gateway also starts cleanly on the retired keyring.
    gw.stop();
    let gw = home.start();
    assert_eq!(
        as_(&gw.client("crm.jobandco"), "trajectory_guidance")
            .get(&path)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_field_fails_closed_instead_of_answering() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 33).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    assert_eq!(job.get(&path).await.unwrap().status, 200);
    let mut conn = db(&home).await;
    // Copy the addiction ciphertext over the given name of the same participant.
    sqlx::query(
        "UPDATE field_values SET sealed = (SELECT sealed FROM field_values f WHERE f.participant_id = field_values.participant_id AND f.field = 'health.addiction')
         WHERE field = 'identity.given_name' AND participant_id IN (SELECT participant_id FROM field_values WHERE field = 'health.addiction')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let r = job.get(&path).await.unwrap();
    assert_eq!(r.status, 503);
    assert!(!String::from_utf8_lossy(&r.body).contains(fixtures::ADDICTION));
    // Every reader of that field fails closed, whatever its role.
    let r = as_(&gw.client("crm.vdab"), "trajectory_guidance")
        .get(&format!("/v1/participants/{}", case.pids["vdab"]))
        .await
        .unwrap();
    assert_eq!(r.status, 503);
}
