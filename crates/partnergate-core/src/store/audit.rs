//! `audit_records` and `audit_checkpoints`: the writer's head and appends (in its
//! transaction), and every read of the log: search, the verifier's chunks, the export's
//! streaming read, checkpoints.

use futures_util::TryStreamExt;
use sqlx::Row;

use super::{DbError, Store, WriteTx};
use crate::audit::AuditQuery;

/// A signed checkpoint as stored: sequence, hash, time, signature.
pub type CheckpointRow = (i64, Vec<u8>, String, Vec<u8>);

/// One record as appended: sequence, canonical text, hash.
pub type RecordRow = (i64, String, [u8; 32]);

/// Records per INSERT statement (3 bound values each, well under SQLite's variable limit).
const INSERT_CHUNK: usize = 500;

/// Where the chain stands in the database.
pub struct StoredHead {
    /// The last record's sequence and hash, if there is a record.
    pub last: Option<(i64, Vec<u8>)>,
    /// The last checkpoint's sequence, if there is a checkpoint.
    pub checkpoint: Option<i64>,
}

/// Reads the head of the chain inside a write transaction: with several instances on one
/// database, the head another instance left is only known once this one holds the write lock.
pub async fn head_for_update(tx: &mut WriteTx) -> Result<StoredHead, DbError> {
    let last: Option<(i64, Vec<u8>)> = on!(&mut *tx, |c| sqlx::query_as(
        "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
    )
    .fetch_optional(c)
    .await)?;
    let (checkpoint,): (Option<i64>,) = on!(&mut *tx, |c| sqlx::query_as(
        "SELECT max(seq) FROM audit_checkpoints"
    )
    .fetch_one(c)
    .await)?;
    Ok(StoredHead { last, checkpoint })
}

/// Reads the head of the chain.
pub async fn head(db: &Store) -> Result<StoredHead, DbError> {
    let last: Option<(i64, Vec<u8>)> = on!(db, |c| sqlx::query_as(
        "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
    )
    .fetch_optional(c)
    .await)?;
    let (checkpoint,): (Option<i64>,) = on!(db, |c| sqlx::query_as(
        "SELECT max(seq) FROM audit_checkpoints"
    )
    .fetch_one(c)
    .await)?;
    Ok(StoredHead { last, checkpoint })
}

/// One multi-row insert of `chunk` (at most [`INSERT_CHUNK`] records).
fn insert_records<DB: sqlx::Database>(chunk: &[RecordRow]) -> sqlx::QueryBuilder<DB>
where
    DB::Arguments: Default,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> &'t [u8]: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut insert = sqlx::QueryBuilder::new("INSERT INTO audit_records (seq, record, hash) ");
    insert.push_values(chunk, |mut row, (seq, text, hash)| {
        row.push_bind(*seq)
            .push_bind(text.as_str())
            .push_bind(&hash[..]);
    });
    insert
}

/// Appends `records` and, if given, a signed `checkpoint`, in the writer's transaction.
pub async fn append(
    tx: &mut WriteTx,
    records: &[RecordRow],
    checkpoint: Option<&CheckpointRow>,
) -> Result<(), DbError> {
    // Multi-row inserts: one statement per chunk instead of one round trip per record.
    for chunk in records.chunks(INSERT_CHUNK) {
        on!(&mut *tx, |c| insert_records(chunk)
            .build()
            .execute(c)
            .await
            .map(drop))?;
    }
    if let Some((seq, hash, time, signature)) = checkpoint {
        on!(&mut *tx, |c| sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, time, signature) VALUES ($1, $2, $3, $4)",
        )
        .bind(*seq)
        .bind(&hash[..])
        .bind(time)
        .bind(&signature[..])
        .execute(c)
        .await
        .map(drop))?;
    }
    Ok(())
}

/// Appends `records` with nothing else to write (a batch of records only) and commits. On
/// SQLite, records that fit one statement go in as that statement alone, which commits by
/// itself: one hand-off to SQLite's thread instead of three (begin, insert, commit).
pub async fn append_committed(
    db: &Store,
    records: &[RecordRow],
    checkpoint: Option<&CheckpointRow>,
) -> Result<(), DbError> {
    if records.is_empty() && checkpoint.is_none() {
        return Ok(());
    }
    if let super::Backend::Sqlite(pools) = &db.pools
        && checkpoint.is_none()
        && records.len() <= INSERT_CHUNK
    {
        let _turn = db.gate.enter().await;
        insert_records(records)
            .build()
            .execute(&pools.writes)
            .await?;
        return Ok(());
    }
    let mut tx = db.begin_write().await?;
    append(&mut tx, records, checkpoint).await?;
    tx.commit().await?;
    Ok(())
}

/// The checkpoints with sequence `from..=to`, in order.
pub async fn checkpoints(db: &Store, from: i64, to: i64) -> Result<Vec<CheckpointRow>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT seq, hash, time, signature FROM audit_checkpoints WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
    )
    .bind(from)
    .bind(to)
    .fetch_all(c)
    .await
    })
}

/// The last record's sequence.
pub async fn last_seq(db: &Store) -> Result<Option<i64>, DbError> {
    let (last,): (Option<i64>,) =
        on!(db, |c| sqlx::query_as("SELECT max(seq) FROM audit_records")
            .fetch_one(c)
            .await)?;
    Ok(last)
}

/// The last checkpoint's sequence.
pub async fn last_checkpoint(db: &Store) -> Result<Option<i64>, DbError> {
    let (last,): (Option<i64>,) = on!(db, |c| sqlx::query_as(
        "SELECT max(seq) FROM audit_checkpoints"
    )
    .fetch_one(c)
    .await)?;
    Ok(last)
}

/// Records `from..until` read in one row: the verifier moves a chunk at a time, because moving
/// rows one by one through the driver dominated verification time. It keeps the driver's row
/// and reads the records in place, because each copy of a chunk's 1.4 MB costs measurable time.
pub struct RecordChunk(super::Backend<sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow>);

/// How a stored hash that is not 32 bytes reads in a [`RecordChunk`]: all zeros, which no
/// record hashes to, so verification reports it as a mismatch at its own record.
const NOT_A_HASH: [u8; 32] = [0; 32];

impl RecordChunk {
    /// Each record's bytes (its canonical text, unless someone changed it) with its stored
    /// hash, in order. Bytes, not text: a record that is not UTF-8 must fail verification at
    /// that record, not fail the whole read.
    pub fn records(&self) -> Result<impl Iterator<Item = (&[u8], &[u8; 32])>, DbError> {
        let (records, hashes): (Option<&[u8]>, Option<&[u8]>) = match &self.0 {
            super::Backend::Sqlite(row) => (row.try_get(0)?, row.try_get(1)?),
            // PostgreSQL checks text against the database's encoding; a record it cannot
            // decode fails the read (fail closed).
            super::Backend::Postgres(row) => {
                let records: Option<&str> = row.try_get(0)?;
                (records.map(str::as_bytes), row.try_get(1)?)
            }
        };
        let mut hashes = hashes.unwrap_or_default().chunks_exact(32);
        Ok(split_records(records.unwrap_or_default()).map(move |t| {
            let stored = hashes.next().and_then(|h| h.try_into().ok());
            (t, stored.unwrap_or(&NOT_A_HASH))
        }))
    }
}

/// The records of an aggregated chunk. Canonical records never contain a raw newline (JSON
/// escapes it), so it separates them. memchr finds it a vector at a time; `<[u8]>::split`
/// compared byte by byte, 12 % of the CPU time of a verification.
fn split_records(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', chunk)
        .chain([chunk.len()])
        .map(move |end| {
            let record = &chunk[start..end];
            start = end + 1;
            record
        })
        .filter(|record| !record.is_empty())
}

/// Reads records with sequence `from..until` as one [`RecordChunk`]. The hashes come as raw
/// bytes, 32 per record (no hex to write and parse); one of another length reads as
/// [`NOT_A_HASH`], so the records and their hashes stay aligned.
pub async fn record_chunk(db: &Store, from: i64, until: i64) -> Result<RecordChunk, DbError> {
    let sql = db.pick(
        "SELECT CAST(group_concat(record, char(10)) AS BLOB),
                CAST(group_concat(CASE WHEN length(CAST(hash AS BLOB)) = 32 THEN CAST(hash AS BLOB)
                                       ELSE zeroblob(32) END, '') AS BLOB)
             FROM (SELECT record, hash FROM audit_records WHERE seq >= $1 AND seq < $2 ORDER BY seq)",
        "SELECT string_agg(record, chr(10) ORDER BY seq),
                string_agg(CASE WHEN length(hash) = 32 THEN hash ELSE decode(repeat('00', 32), 'hex') END,
                           ''::bytea ORDER BY seq)
             FROM audit_records WHERE seq >= $1 AND seq < $2",
    );
    use super::Target;
    Ok(RecordChunk(match db.target() {
        super::Backend::Sqlite(c) => {
            super::Backend::Sqlite(sqlx::query(sql).bind(from).bind(until).fetch_one(c).await?)
        }
        super::Backend::Postgres(c) => {
            super::Backend::Postgres(sqlx::query(sql).bind(from).bind(until).fetch_one(c).await?)
        }
    }))
}

/// The first checkpoint at or after `seq`, as the aggregate reads it (0 when there is none).
pub async fn checkpoint_from(db: &Store, seq: i64) -> Result<Option<(i64,)>, DbError> {
    let (first,): (Option<i64>,) = on!(db, |c| sqlx::query_as(
        "SELECT min(seq) FROM audit_checkpoints WHERE seq >= $1"
    )
    .bind(seq)
    .fetch_one(c)
    .await)?;
    Ok(Some((first.unwrap_or(0),)))
}

/// The last checkpoint before `seq`.
pub async fn checkpoint_before(db: &Store, seq: i64) -> Result<Option<CheckpointRow>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT seq, hash, time, signature FROM audit_checkpoints WHERE seq < $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(seq)
    .fetch_optional(c)
    .await
    })
}

/// The chain's hash at `seq`: the checkpoint's signed one when there is a checkpoint there,
/// else the record's.
pub async fn hash_at(db: &Store, seq: i64) -> Result<Option<Vec<u8>>, DbError> {
    let end: Option<(Vec<u8>,)> = on!(db, |c| sqlx::query_as(
        "SELECT hash FROM audit_checkpoints WHERE seq = $1
         UNION ALL SELECT hash FROM audit_records WHERE seq = $1 LIMIT 1",
    )
    .bind(seq)
    .fetch_optional(c)
    .await)?;
    Ok(end.map(|(h,)| h))
}

/// Appends the canonical text of records `from..=to` to `out`, one line each, streaming.
pub async fn write_records(
    db: &Store,
    from: i64,
    to: i64,
    out: &mut Vec<u8>,
) -> Result<(), DbError> {
    on!(db, |c| {
        let mut rows = sqlx::query_as::<_, (String,)>(
            "SELECT record FROM audit_records WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
        )
        .bind(from)
        .bind(to)
        .fetch(c);
        while let Some((text,)) = rows.try_next().await? {
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        }
    });
    Ok(())
}

/// One page of the log matching `q`, oldest first: each record's canonical text.
pub async fn search(db: &Store, q: &AuditQuery) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = on!(db, |c| {
        let mut b = sqlx::QueryBuilder::new("SELECT record FROM audit_records WHERE seq > ");
        b.push_bind(q.after.unwrap_or(0) as i64);
        let filters = [
            ("participant", &q.participant),
            ("partner", &q.partner),
            ("client", &q.client),
            ("acting_user", &q.acting_user),
            ("purpose", &q.purpose),
            ("decision", &q.decision),
        ];
        for (column, value) in filters {
            if let Some(v) = value {
                b.push(format_args!(" AND {column} = "));
                b.push_bind(v.clone());
            }
        }
        if let Some(s) = &q.since {
            b.push(" AND time >= ").push_bind(s.clone());
        }
        if let Some(u) = &q.until {
            b.push(" AND time < ").push_bind(u.clone());
        }
        b.push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(q.limit.unwrap_or(100).clamp(1, 1000)));
        b.build_query_as().fetch_all(c).await?
    });
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

/// How many records the log holds.
pub async fn count(db: &Store) -> Result<i64, DbError> {
    let (n,): (i64,) = on!(db, |c| sqlx::query_as("SELECT count(*) FROM audit_records")
        .fetch_one(c)
        .await)?;
    Ok(n)
}

/// The first sequence number in the live log.
pub async fn first_seq(db: &Store) -> Result<Option<i64>, DbError> {
    let (first,): (Option<i64>,) =
        on!(db, |c| sqlx::query_as("SELECT min(seq) FROM audit_records")
            .fetch_one(c)
            .await)?;
    Ok(first)
}

/// The last signed checkpoint whose record is older than `cutoff` (a stored time).
pub async fn last_checkpoint_before(db: &Store, cutoff: &str) -> Result<Option<i64>, DbError> {
    let (to,): (Option<i64>,) = on!(db, |c| {
        sqlx::query_as(
        "SELECT max(c.seq) FROM audit_checkpoints c JOIN audit_records r ON r.seq = c.seq WHERE r.time < $1",
    )
    .bind(cutoff)
    .fetch_one(c)
    .await
    })?;
    Ok(to)
}

/// Deletes the records up to `to` and the checkpoints before it (the one on `to` stays, as the
/// live chain's anchor). Returns how many records went.
pub async fn delete_through(tx: &mut WriteTx, to: i64) -> Result<u64, DbError> {
    let n = on!(&mut *tx, |c| sqlx::query(
        "DELETE FROM audit_records WHERE seq <= $1"
    )
    .bind(to)
    .execute(c)
    .await?
    .rows_affected());
    on!(&mut *tx, |c| sqlx::query(
        "DELETE FROM audit_checkpoints WHERE seq < $1"
    )
    .bind(to)
    .execute(c)
    .await
    .map(drop))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_split_at_every_newline_and_skip_empty_ones(
            chunk in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..64)
        ) {
            let expected: Vec<&[u8]> = chunk.split(|b| *b == b'\n').filter(|r| !r.is_empty()).collect();
            prop_assert_eq!(super::split_records(&chunk).collect::<Vec<_>>(), expected);
        }
    }
}
