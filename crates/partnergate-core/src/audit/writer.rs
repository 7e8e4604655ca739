//! The single audit writer: group commit, hash chain and signed checkpoints.
//!
//! Requests enqueue their events and wait. The writer takes everything queued, appends it to
//! the chain in one transaction on its own connection (`synchronous=FULL`), commits once and
//! only then releases the waiting requests. If the commit fails, every request in the batch
//! gets an error and answers 503: no answer leaves without its record.

use std::time::{Duration, Instant};

use ring::signature::Ed25519KeyPair;
use tokio::sync::{mpsc, oneshot};

use super::record::{AuditEvent, AuditRecord, checkpoint_message, hash, now};
use crate::config::AuditConfig;
use crate::store::{AuditConn, DbError};

/// The audit store could not make a record durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The database refused the write.
    #[error("audit store unavailable")]
    Unavailable,
    /// The writer task has stopped.
    #[error("audit writer stopped")]
    Stopped,
}

enum Job {
    Append(Vec<AuditEvent>, oneshot::Sender<Result<u64, AuditError>>),
    Checkpoint(oneshot::Sender<Result<u64, AuditError>>),
}

/// A cheap, cloneable handle for appending to the audit log.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
}

impl AuditLog {
    /// Appends `events` and returns once they are durable, with the last sequence number.
    pub async fn append(&self, events: Vec<AuditEvent>) -> Result<u64, AuditError> {
        if events.is_empty() {
            return Ok(0);
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job::Append(events, done))
            .await
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }

    /// Appends one event.
    pub async fn append_one(&self, event: AuditEvent) -> Result<u64, AuditError> {
        self.append(vec![event]).await
    }

    /// Signs a checkpoint at the current head (if it has none) and returns its sequence.
    pub async fn checkpoint(&self) -> Result<u64, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job::Checkpoint(done))
            .await
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }
}

fn job_records(job: &Job) -> usize {
    match job {
        Job::Append(events, _) => events.len(),
        Job::Checkpoint(_) => 0,
    }
}

/// Where the chain stands.
struct Head {
    seq: u64,
    hash: [u8; 32],
    checkpoint_seq: u64,
    checkpoint_at: Instant,
}

async fn read_head(conn: &mut AuditConn) -> Result<Head, DbError> {
    let stored = conn.head().await?;
    let (seq, hash) = match stored.last {
        Some((s, h)) => (s as u64, h.try_into().unwrap_or([0; 32])),
        None => (0, [0; 32]),
    };
    Ok(Head {
        seq,
        hash,
        checkpoint_seq: stored.checkpoint.map(|c| c as u64).unwrap_or(0),
        checkpoint_at: Instant::now(),
    })
}

/// Starts the writer task on its own connection and returns the handle.
pub async fn spawn(
    mut conn: AuditConn,
    signer: Ed25519KeyPair,
    policy_version: String,
    config: AuditConfig,
    gate: crate::store::WriteGate,
) -> Result<(AuditLog, tokio::task::JoinHandle<()>), DbError> {
    let head = read_head(&mut conn).await?;
    let (tx, rx) = mpsc::channel(16 * 1024);
    let writer = Writer {
        conn,
        signer,
        policy_version,
        config,
        head,
        gate,
    };
    let task = tokio::spawn(writer.run(rx));
    Ok((AuditLog { tx }, task))
}

struct Writer {
    conn: AuditConn,
    signer: Ed25519KeyPair,
    policy_version: String,
    config: AuditConfig,
    head: Head,
    gate: crate::store::WriteGate,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::new();
        // recv returns None once every handle is dropped: the queue is drained, then we stop.
        while let Some(first) = rx.recv().await {
            let mut count = job_records(&first);
            batch.push(first);
            while count < self.config.max_batch {
                match rx.try_recv() {
                    Ok(job) => {
                        count += job_records(&job);
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut batch).await;
        }
        // Sign the tail so a clean shutdown leaves every record covered by a checkpoint.
        let mut last = vec![Job::Checkpoint(oneshot::channel().0)];
        self.commit(&mut last).await;
    }

    async fn commit(&mut self, batch: &mut Vec<Job>) {
        let started = Instant::now();
        let start_seq = self.head.seq;
        let result = self.write(batch).await;
        let records: usize = batch.iter().map(job_records).sum();
        match &result {
            Ok(()) => {
                metrics::counter!("partnergate_audit_records_total").increment(records as u64);
                metrics::histogram!("partnergate_audit_batch_records").record(records as f64);
                metrics::histogram!("partnergate_audit_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                metrics::counter!("partnergate_audit_commit_failures_total").increment(1);
                tracing::error!(error = %e, records, "audit commit failed; refusing the batch");
                // The transaction rolled back: reload the head so the chain continues correctly.
                match read_head(&mut self.conn).await {
                    Ok(h) => self.head = h,
                    Err(e) => tracing::error!(error = %e, "cannot re-read the audit head"),
                }
            }
        }
        // Hand out each job's own last sequence number.
        let mut running = start_seq;
        let head = self.head.seq;
        for job in batch.drain(..) {
            let ok = result.is_ok();
            let reply = |end: u64| {
                if ok {
                    Ok(end)
                } else {
                    Err(AuditError::Unavailable)
                }
            };
            match job {
                Job::Append(events, done) => {
                    running += events.len() as u64;
                    let _ = done.send(reply(running));
                }
                Job::Checkpoint(done) => {
                    let _ = done.send(reply(head));
                }
            }
        }
    }

    async fn write(&mut self, batch: &[Job]) -> Result<(), DbError> {
        let _turn = self.gate.enter().await;
        let mut seq = self.head.seq;
        let mut prev = self.head.hash;
        let time = now();
        let mut force_checkpoint = false;
        let mut rows: Vec<(i64, String, [u8; 32])> = Vec::new();
        for job in batch {
            match job {
                Job::Append(events, _) => {
                    for event in events {
                        seq += 1;
                        let record = AuditRecord::new(
                            event.clone(),
                            seq,
                            time.clone(),
                            &self.policy_version,
                            &prev,
                        );
                        let text = record.canonical();
                        prev = hash(text.as_bytes());
                        rows.push((seq as i64, text, prev));
                    }
                }
                Job::Checkpoint(_) => force_checkpoint = true,
            }
        }
        let due = seq - self.head.checkpoint_seq >= self.config.checkpoint_every
            || self.head.checkpoint_at.elapsed()
                >= Duration::from_secs(self.config.checkpoint_seconds);
        let checkpoint = (seq > self.head.checkpoint_seq && (force_checkpoint || due)).then(|| {
            let hash_hex = hex::encode(prev);
            let sig = self.signer.sign(&checkpoint_message(seq, &hash_hex, &time));
            (
                seq as i64,
                prev.to_vec(),
                time.clone(),
                sig.as_ref().to_vec(),
            )
        });
        self.conn.append(&rows, checkpoint.as_ref()).await?;
        let signed = checkpoint.is_some();
        self.head.seq = seq;
        self.head.hash = prev;
        if signed {
            self.head.checkpoint_seq = seq;
            self.head.checkpoint_at = Instant::now();
        }
        Ok(())
    }
}
