//! The single writer: group commit, hash chain and signed checkpoints.
//!
//! Requests enqueue their events, or a vault write with its events, and wait. The writer takes
//! everything queued and runs it in one transaction (`synchronous=FULL`): each vault write
//! inside its own savepoint, its records appended to the chain only if the write is kept. It
//! commits once and only then releases the waiting requests, so a burst of registrations costs
//! one fsync, not one per request. If the commit fails, every request in the batch gets an
//! error and answers 503: no answer leaves without its record, and no write without its record.

use std::time::{Duration, Instant};

use ring::signature::Ed25519KeyPair;
use tokio::sync::{mpsc, oneshot};

use super::commit::{Apply, Isolation};
use super::record::{AuditEvent, AuditRecord, checkpoint_message, hash, now};
use crate::config::AuditConfig;
use crate::store::{self, DbError, Store, WriteTx};

/// The audit store could not make a record durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The database refused the write.
    #[error("audit store unavailable")]
    Unavailable,
    /// The writer task has stopped.
    #[error("audit writer stopped")]
    Stopped,
    /// The vault write failed in the database; it and its records were rolled back.
    #[error("the write failed")]
    WriteFailed,
}

type Done = oneshot::Sender<Result<u64, AuditError>>;

/// A vault write with its result type erased: says whether to keep it.
type ErasedWrite = Apply<()>;

enum Job {
    Append(Vec<AuditEvent>, Done),
    /// The write is taken out when the writer runs it.
    Write(Option<ErasedWrite>, Isolation, Vec<AuditEvent>, Done),
    Checkpoint(Done),
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

    /// Runs `write` in the writer's next transaction, kept apart from the others as
    /// `isolation` says, and appends `events` with it if the write is kept: both are durable
    /// when this returns, or neither is.
    pub async fn write<T: Send + 'static>(
        &self,
        events: Vec<AuditEvent>,
        isolation: Isolation,
        write: Apply<T>,
    ) -> Result<T, AuditError> {
        let (value_tx, value_rx) = oneshot::channel();
        let erased: ErasedWrite = Box::new(move |tx| {
            Box::pin(async move {
                let applied = write(tx).await?;
                // Read by the caller only once the commit has succeeded.
                let _ = value_tx.send(applied.value);
                Ok(super::commit::Applied {
                    value: (),
                    keep: applied.keep,
                })
            })
        });
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job::Write(Some(erased), isolation, events, done))
            .await
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)??;
        value_rx.await.map_err(|_| AuditError::WriteFailed)
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
        // A write counts at least one towards the batch size, like a record.
        Job::Write(_, _, events, _) => events.len().max(1),
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

async fn read_head(db: &Store) -> Result<Head, DbError> {
    Ok(head_from(store::audit::head(db).await?))
}

fn head_from(stored: store::audit::StoredHead) -> Head {
    let (seq, hash) = match stored.last {
        Some((s, h)) => (s as u64, h.try_into().unwrap_or([0; 32])),
        None => (0, [0; 32]),
    };
    Head {
        seq,
        hash,
        checkpoint_seq: stored.checkpoint.map(|c| c as u64).unwrap_or(0),
        checkpoint_at: Instant::now(),
    }
}

/// Starts the writer task on `db` and returns the handle. It is the only writer of the audit
/// log, and takes its turns through the same gate as the store's other write transactions.
pub async fn spawn(
    db: Store,
    signer: Ed25519KeyPair,
    policy_version: String,
    config: AuditConfig,
) -> Result<(AuditLog, tokio::task::JoinHandle<()>), DbError> {
    let head = read_head(&db).await?;
    let (tx, rx) = mpsc::channel(16 * 1024);
    let writer = Writer {
        db,
        signer,
        policy_version,
        config,
        head,
    };
    let task = tokio::spawn(writer.run(rx));
    Ok((AuditLog { tx }, task))
}

struct Writer {
    db: Store,
    signer: Ed25519KeyPair,
    policy_version: String,
    config: AuditConfig,
    head: Head,
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
        let records_before = self.head.seq;
        let result = self.write(batch).await;
        match &result {
            Ok(_) => {
                let records = self.head.seq - records_before;
                metrics::counter!("partnergate_audit_records_total").increment(records);
                metrics::histogram!("partnergate_audit_batch_records").record(records as f64);
                metrics::histogram!("partnergate_audit_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                metrics::counter!("partnergate_audit_commit_failures_total").increment(1);
                tracing::error!(error = %e, jobs = batch.len(), "audit commit failed; refusing the batch");
                // The transaction rolled back: reload the head so the chain continues correctly.
                match read_head(&self.db).await {
                    Ok(h) => self.head = h,
                    Err(e) => tracing::error!(error = %e, "cannot re-read the audit head"),
                }
            }
        }
        // Hand out each job's own answer: its last sequence number, or why it failed.
        let answers = match result {
            Ok(answers) => answers,
            Err(_) => vec![Err(AuditError::Unavailable); batch.len()],
        };
        for (job, answer) in batch.drain(..).zip(answers) {
            let done = match job {
                Job::Append(_, done) | Job::Write(_, _, _, done) | Job::Checkpoint(done) => done,
            };
            let _ = done.send(answer);
        }
    }

    /// Continues from the head another instance left, read under the write lock. Only a head
    /// further on is followed: a head behind this writer's own (its records deleted) or beside it
    /// (rewritten) is not, so the next record still names the missing one and verification finds
    /// the gap, as with one instance.
    fn follow(&mut self, stored: store::audit::StoredHead) {
        let stored = head_from(stored);
        if stored.seq > self.head.seq {
            self.head.seq = stored.seq;
            self.head.hash = stored.hash;
        } else if stored.seq < self.head.seq || stored.hash != self.head.hash {
            tracing::error!(
                stored = stored.seq,
                written = self.head.seq,
                "the audit chain's head in the database is not the one this writer left; chaining on from its own"
            );
        }
        self.head.checkpoint_seq = self.head.checkpoint_seq.max(stored.checkpoint_seq);
    }

    /// Runs the batch in one transaction; returns each job's answer once it has committed.
    async fn write(&mut self, batch: &mut [Job]) -> Result<Vec<Result<u64, AuditError>>, DbError> {
        // Records only, on one process's database: no transaction to open first.
        let alone = !self.db.is_shared() && batch.iter().all(|j| matches!(j, Job::Append(..)));
        let mut tx = if alone {
            None
        } else {
            Some(self.db.begin_write().await?)
        };
        if self.db.is_shared()
            && let Some(tx) = tx.as_mut()
        {
            self.follow(store::audit::head_for_update(tx).await?);
        }
        let mut chain = Chain {
            seq: self.head.seq,
            prev: self.head.hash,
            time: now(),
            policy_version: &self.policy_version,
            rows: Vec::new(),
        };
        let mut force_checkpoint = false;
        let mut answers = Vec::with_capacity(batch.len());
        for job in batch.iter_mut() {
            let answer = match job {
                Job::Append(events, _) => Ok(chain.extend(events)),
                Job::Write(write, isolation, events, _) => {
                    let ran = match (write.take(), tx.as_mut()) {
                        (Some(write), Some(tx)) => run_write(tx, write, *isolation).await?,
                        _ => None,
                    };
                    match ran {
                        Some(true) => Ok(chain.extend(events)),
                        Some(false) => Ok(chain.seq),
                        None => Err(AuditError::WriteFailed),
                    }
                }
                Job::Checkpoint(_) => {
                    force_checkpoint = true;
                    Ok(0)
                }
            };
            answers.push(answer);
        }
        let (seq, prev, time) = (chain.seq, chain.prev, chain.time.clone());
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
        match tx {
            Some(mut tx) => {
                store::audit::append(&mut tx, &chain.rows, checkpoint.as_ref()).await?;
                tx.commit().await?;
            }
            None => {
                store::audit::append_committed(&self.db, &chain.rows, checkpoint.as_ref()).await?
            }
        }
        self.head.seq = seq;
        self.head.hash = prev;
        if checkpoint.is_some() {
            self.head.checkpoint_seq = seq;
            self.head.checkpoint_at = Instant::now();
        }
        // A checkpoint job answers with the head, as before.
        for (job, answer) in batch.iter().zip(answers.iter_mut()) {
            if matches!(job, Job::Checkpoint(_)) {
                *answer = Ok(seq);
            }
        }
        Ok(answers)
    }
}

/// The records a batch adds to the chain.
struct Chain<'a> {
    seq: u64,
    prev: [u8; 32],
    time: String,
    policy_version: &'a str,
    rows: Vec<store::audit::RecordRow>,
}

impl Chain<'_> {
    /// Chains `events` after the current head; returns the last sequence number.
    fn extend(&mut self, events: &[AuditEvent]) -> u64 {
        for event in events {
            self.seq += 1;
            let record = AuditRecord::new(
                event.clone(),
                self.seq,
                self.time.clone(),
                self.policy_version,
                &self.prev,
            );
            let text = record.canonical();
            self.prev = hash(text.as_bytes());
            self.rows.push((self.seq as i64, text, self.prev));
        }
        self.seq
    }
}

/// Runs one write in its savepoint (see [`Isolation`]). `Some(keep)` when it ran (a write that
/// is not kept is rolled back to the savepoint), `None` when it failed in the database (rolled
/// back too, and the rest of the batch goes on). An error here is the transaction's own failure.
async fn run_write(
    tx: &mut WriteTx,
    write: ErasedWrite,
    isolation: Isolation,
) -> Result<Option<bool>, DbError> {
    let own = isolation == Isolation::OwnSavepoint;
    if !own {
        tx.savepoint().await?;
    }
    let outcome = write(tx).await;
    match outcome {
        Ok(applied) if applied.keep => {
            if !own {
                tx.release().await?;
            }
            Ok(Some(true))
        }
        Ok(_) => {
            if !own {
                tx.rollback_to_savepoint().await?;
            }
            Ok(Some(false))
        }
        Err(e) => {
            tracing::error!(error = %e, "a vault write failed; rolled back");
            tx.rollback_to_savepoint().await?;
            Ok(None)
        }
    }
}
