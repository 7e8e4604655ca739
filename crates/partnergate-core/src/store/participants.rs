//! `participants` and `field_values`: the participant rows (keys, versions, flags, look-up
//! hash) and their sealed fields. Nothing here is ever plaintext.

use zeroize::{Zeroize, Zeroizing};

use super::{DbError, Store, WriteTx};
use crate::vault::crypto::ParticipantId;

const SELECT_ONE: &str = "SELECT id, version, restricted, objection, dek_version, master_version, wrapped_dek FROM participants WHERE id = $1";

/// A `participants` row as stored (without its look-up hash).
#[derive(Debug, sqlx::FromRow)]
pub struct Row {
    /// The random id.
    pub id: Vec<u8>,
    /// The record version (for If-Match).
    pub version: i64,
    /// Art. 18 restriction.
    pub restricted: bool,
    /// Art. 21 objection.
    pub objection: bool,
    /// The data-key version.
    pub dek_version: i64,
    /// The master key version the data key is wrapped under.
    pub master_version: i64,
    /// The wrapped data key.
    pub wrapped_dek: Vec<u8>,
}

/// A participant row to insert.
pub struct New<'a> {
    /// Its random id.
    pub id: &'a ParticipantId,
    /// The keyed hash of the national number (or a random one for a kept record).
    pub insz_hash: &'a [u8],
    /// The data-key version.
    pub dek_version: u32,
    /// The master key version the data key is wrapped under.
    pub master_version: u32,
    /// The wrapped data key.
    pub wrapped_dek: &'a [u8],
    /// Starts restricted (a record kept apart by an erasure).
    pub restricted: bool,
    /// Starts with an objection.
    pub objection: bool,
    /// Creation time.
    pub now: &'a str,
}

/// A processing flag's column.
#[derive(Debug, Clone, Copy)]
pub enum FlagColumn {
    /// `restricted` (Art. 18).
    Restricted,
    /// `objection` (Art. 21).
    Objection,
}

/// The participant row with this id.
pub async fn get(db: &Store, id: &ParticipantId) -> Result<Option<Row>, DbError> {
    on!(db, |c| sqlx::query_as(SELECT_ONE)
        .bind(&id.as_bytes()[..])
        .fetch_optional(c)
        .await)
}

/// The participant row with this id, read inside a write transaction.
pub async fn get_for_update(tx: &mut WriteTx, id: &ParticipantId) -> Result<Option<Row>, DbError> {
    on!(&mut *tx, |c| sqlx::query_as(SELECT_ONE)
        .bind(&id.as_bytes()[..])
        .fetch_optional(c)
        .await)
}

/// The id of the participant whose look-up hash is `insz_hash`.
pub async fn id_by_insz_hash(db: &Store, insz_hash: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
    let row: Option<(Vec<u8>,)> = on!(db, |c| sqlx::query_as(
        "SELECT id FROM participants WHERE insz_hash = $1"
    )
    .bind(insz_hash)
    .fetch_optional(c)
    .await)?;
    Ok(row.map(|(id,)| id))
}

/// Inserts a participant unless its look-up hash is taken. Returns whether it was inserted.
pub async fn insert(tx: &mut WriteTx, new: &New<'_>) -> Result<bool, DbError> {
    let n = on!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO participants (id, insz_hash, dek_version, master_version, wrapped_dek, version, restricted, objection, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9) ON CONFLICT (insz_hash) DO NOTHING",
    )
    .bind(&new.id.as_bytes()[..])
    .bind(new.insz_hash)
    .bind(i64::from(new.dek_version))
    .bind(i64::from(new.master_version))
    .bind(new.wrapped_dek)
    .bind(new.restricted)
    .bind(new.objection)
    .bind(new.now)
    .bind(new.now)
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(n > 0)
}

/// A whole new record: its row, sealed fields, first involvements, consents and sealed notes.
pub struct NewRecord<'a> {
    /// The participant row.
    pub row: New<'a>,
    /// (field, sealed value).
    pub fields: &'a [(String, Vec<u8>)],
    /// (partner, role), started by `started_by` at `row.now`.
    pub involvements: &'a [(String, String)],
    /// The partner that starts the involvements and records the consents.
    pub started_by: &'a str,
    /// Consent scopes in force.
    pub consents: &'a [String],
    /// The case notes, sealed.
    pub notes: &'a [NewNote<'a>],
}

/// A sealed case note to store with a new record.
pub struct NewNote<'a> {
    /// The note's random id.
    pub id: &'a ParticipantId,
    /// The partner that wrote it.
    pub author_partner: &'a str,
    /// When it was written.
    pub created_at: &'a str,
    /// The sealed text.
    pub sealed: &'a [u8],
}

/// Stores `record` and moves it to the end of the change log, unless its look-up hash is
/// taken. Returns whether it was stored; when it was not, nothing was written.
///
/// It opens the write savepoint ([`WriteTx::savepoint`]) first and releases it last, so a
/// caller that gets an error rolls back to that savepoint. On SQLite the whole record is one
/// script: one hand-off to sqlx's SQLite thread instead of one per statement, which is what a
/// registration costs on the single writer's serial path.
pub async fn insert_record(tx: &mut WriteTx, record: &NewRecord<'_>) -> Result<bool, DbError> {
    if let super::Backend::Sqlite(t) = &mut tx.tx {
        return insert_record_script(t, record).await;
    }
    tx.savepoint().await?;
    if !insert(tx, &record.row).await? {
        tx.release().await?;
        return Ok(false);
    }
    let (id, now, by) = (record.row.id, record.row.now, record.started_by);
    write_fields(tx, id, record.fields).await?;
    for (partner, role) in record.involvements {
        super::case::start_role(tx, id, partner, role, by, now).await?;
    }
    for scope in record.consents {
        super::case::record_consent(tx, id, scope, by, now).await?;
    }
    for n in record.notes {
        super::case::insert_note(tx, n.id, id, n.author_partner, n.created_at, n.sealed).await?;
    }
    super::changes::record(tx, id).await?;
    tx.release().await?;
    Ok(true)
}

/// [`insert_record`] as one SQLite script. Every statement after the participant's own insert
/// is guarded by its row, so a taken look-up hash writes nothing. Parameters are numbered
/// (`$n` is absolute across a script's statements in sqlx's SQLite driver).
async fn insert_record_script(
    c: &mut sqlx::SqliteConnection,
    r: &NewRecord<'_>,
) -> Result<bool, DbError> {
    const GUARD: &str = " WHERE EXISTS (SELECT 1 FROM participants WHERE id = $1)";
    let mut sql = String::from(
        "SAVEPOINT write;
         INSERT INTO participants (id, insz_hash, dek_version, master_version, wrapped_dek, version, restricted, objection, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $8) ON CONFLICT (insz_hash) DO NOTHING RETURNING 1;",
    );
    // One guarded `INSERT ... SELECT` per kind of row, over its rows' numbered parameters.
    let inserts = [
        (
            "INSERT INTO field_values (participant_id, field, sealed) SELECT $1, column1, column2",
            r.fields.len(),
            2,
            "",
        ),
        (
            "INSERT INTO involvements (participant_id, partner, role, started_at, started_by) SELECT $1, column1, column2, $8, $9",
            r.involvements.len(),
            2,
            " ON CONFLICT DO NOTHING",
        ),
        (
            "INSERT INTO consents (participant_id, scope, recorded_by, recorded_at) SELECT $1, column1, $9, $8",
            r.consents.len(),
            1,
            " ON CONFLICT DO NOTHING",
        ),
        (
            "INSERT INTO notes (id, participant_id, author_partner, created_at, sealed) SELECT column1, $1, column2, column3, column4",
            r.notes.len(),
            4,
            "",
        ),
    ];
    let mut next = 10; // $9 is started_by
    for (head, n, width, tail) in inserts.into_iter().filter(|(_, n, _, _)| *n > 0) {
        let rows: Vec<String> = (0..n)
            .map(|k| {
                let first = next + k * width;
                let cols: Vec<String> = (first..first + width).map(|i| format!("${i}")).collect();
                format!("({})", cols.join(", "))
            })
            .collect();
        next += n * width;
        sql.push_str(&format!(
            "{head} FROM (VALUES {}){GUARD}{tail};",
            rows.join(", ")
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO changes (participant_id, seq) SELECT $1, (SELECT coalesce(max(seq), 0) + 1 FROM changes){GUARD}
         ON CONFLICT (participant_id) DO UPDATE SET seq = excluded.seq;
         RELEASE SAVEPOINT write;"
    ));
    let row = &r.row;
    // Safe: the script is constant text and numbered placeholders; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&row.id.as_bytes()[..])
        .bind(row.insz_hash)
        .bind(i64::from(row.dek_version))
        .bind(i64::from(row.master_version))
        .bind(row.wrapped_dek)
        .bind(row.restricted)
        .bind(row.objection)
        .bind(row.now)
        .bind(r.started_by);
    for (field, sealed) in r.fields {
        q = q.bind(field.as_str()).bind(sealed.as_slice());
    }
    for (partner, role) in r.involvements {
        q = q.bind(partner.as_str()).bind(role.as_str());
    }
    for scope in r.consents {
        q = q.bind(scope.as_str());
    }
    for n in r.notes {
        q = q
            .bind(&n.id.as_bytes()[..])
            .bind(n.author_partner)
            .bind(n.created_at)
            .bind(n.sealed);
    }
    // `fetch_all` runs the script to its end; only the participant's insert returns a row.
    Ok(!q.fetch_all(c).await?.is_empty())
}

/// Moves the record to the next version if it is still at `expected`. Returns whether it was.
pub async fn bump_version(
    tx: &mut WriteTx,
    id: &ParticipantId,
    expected: i64,
    now: &str,
) -> Result<bool, DbError> {
    let n = on!(&mut *tx, |c| {
        sqlx::query(
        "UPDATE participants SET version = version + 1, updated_at = $1 WHERE id = $2 AND version = $3",
    )
    .bind(now)
    .bind(&id.as_bytes()[..])
    .bind(expected)
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(n > 0)
}

/// Gives the record a new look-up hash unless another record has it. Returns whether it moved.
pub async fn move_insz_hash(
    tx: &mut WriteTx,
    id: &ParticipantId,
    insz_hash: &[u8],
) -> Result<bool, DbError> {
    let n = on!(&mut *tx, |c| sqlx::query(
        "UPDATE participants SET insz_hash = $1 WHERE id = $2
         AND NOT EXISTS (SELECT 1 FROM participants WHERE insz_hash = $1 AND id <> $2)",
    )
    .bind(insz_hash)
    .bind(&id.as_bytes()[..])
    .execute(c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Sets a processing flag.
pub async fn set_flag(
    tx: &mut WriteTx,
    id: &ParticipantId,
    flag: FlagColumn,
    on: bool,
) -> Result<(), DbError> {
    let sql = match flag {
        FlagColumn::Restricted => "UPDATE participants SET restricted = $1 WHERE id = $2",
        FlagColumn::Objection => "UPDATE participants SET objection = $1 WHERE id = $2",
    };
    on!(&mut *tx, |c| sqlx::query(sql)
        .bind(on)
        .bind(&id.as_bytes()[..])
        .execute(c)
        .await
        .map(drop))?;
    Ok(())
}

/// Up to `limit` (id, master version, wrapped key) of records not wrapped under `current`.
pub async fn wrapped_not_under(
    db: &Store,
    current: u32,
    limit: i64,
) -> Result<Vec<(Vec<u8>, u32, Vec<u8>)>, DbError> {
    let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = on!(db, |c| {
        sqlx::query_as(
        "SELECT id, master_version, wrapped_dek FROM participants WHERE master_version <> $1 LIMIT $2",
    )
    .bind(i64::from(current))
    .bind(limit)
    .fetch_all(c)
    .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, v, w)| (id, v as u32, w))
        .collect())
}

/// Replaces a wrapped data key if it is still `old` (a concurrent erasure or rotation wins).
pub async fn replace_wrapped(
    tx: &mut WriteTx,
    id: &[u8],
    old: &[u8],
    (version, wrapped): (u32, &[u8]),
) -> Result<(), DbError> {
    on!(&mut *tx, |c| {
        sqlx::query(
        "UPDATE participants SET master_version = $1, wrapped_dek = $2 WHERE id = $3 AND wrapped_dek = $4",
    )
    .bind(i64::from(version))
    .bind(wrapped)
    .bind(id)
    .bind(old)
    .execute(c)
    .await.map(drop)
    })?;
    Ok(())
}

/// Writes (inserts or replaces) sealed field values.
pub async fn write_fields(
    tx: &mut WriteTx,
    id: &ParticipantId,
    sealed: &[(String, Vec<u8>)],
) -> Result<(), DbError> {
    if sealed.is_empty() {
        return Ok(());
    }
    // One statement for all fields (an agreement has far fewer than SQLite's variable limit).
    on!(&mut *tx, |c| {
        let mut q =
            sqlx::QueryBuilder::new("INSERT INTO field_values (participant_id, field, sealed) ");
        q.push_values(sealed, |mut row, (field, bytes)| {
            row.push_bind(&id.as_bytes()[..])
                .push_bind(field.as_str())
                .push_bind(bytes.as_slice());
        });
        q.push(" ON CONFLICT (participant_id, field) DO UPDATE SET sealed = excluded.sealed");
        q.build().execute(c).await?;
    });
    Ok(())
}

/// Deletes one field value.
pub async fn clear_field(tx: &mut WriteTx, id: &ParticipantId, field: &str) -> Result<(), DbError> {
    on!(&mut *tx, |c| sqlx::query(
        "DELETE FROM field_values WHERE participant_id = $1 AND field = $2"
    )
    .bind(&id.as_bytes()[..])
    .bind(field)
    .execute(c)
    .await
    .map(drop))?;
    Ok(())
}

/// Every sealed field value of a participant.
pub async fn sealed_fields(
    db: &Store,
    id: &ParticipantId,
) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    on!(db, |c| sqlx::query_as(
        "SELECT field, sealed FROM field_values WHERE participant_id = $1"
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(c)
    .await)
}

/// Every sealed field value of a participant, read inside a write transaction.
pub async fn sealed_fields_for_update(
    tx: &mut WriteTx,
    id: &ParticipantId,
) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    on!(&mut *tx, |c| sqlx::query_as(
        "SELECT field, sealed FROM field_values WHERE participant_id = $1"
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(c)
    .await)
}

/// The sealed fields of one participant as the database aggregates them: `field:hex(sealed)`
/// entries joined by `,`. Nothing is split or decoded until the fields are opened, and then only
/// the fields asked for: a sync page opens its participants on every core, and a field the
/// caller may not see costs no decoding.
#[derive(Debug, Default)]
pub struct SealedList(Option<String>);

impl SealedList {
    /// Each field with its sealed value still in hex, in the order the database listed them.
    /// An entry without `:` is an error (the list cannot be trusted past it).
    pub fn entries(&self) -> impl Iterator<Item = Result<SealedEntry<'_>, DbError>> {
        self.0
            .as_deref()
            .into_iter()
            .flat_map(|list| list.split(','))
            .map(|entry| {
                let (field, hex) = entry.split_once(':').ok_or_else(malformed)?;
                Ok(SealedEntry { field, hex })
            })
    }
}

/// One field of a [`SealedList`].
pub struct SealedEntry<'a> {
    /// The field name.
    pub field: &'a str,
    hex: &'a str,
}

impl SealedEntry<'_> {
    /// Decodes the sealed value into `buf` (replacing what it held), so that one buffer
    /// serves every field of a participant. The vault decrypts in that buffer, so it is wiped
    /// before it grows: a reallocation would free the last plaintext unwiped.
    pub fn sealed_into(&self, buf: &mut Zeroizing<Vec<u8>>) -> Result<(), DbError> {
        let len = self.hex.len() / 2;
        if buf.capacity() < len {
            buf.zeroize();
            **buf = Vec::with_capacity(len);
        }
        buf.clear();
        buf.resize(len, 0);
        hex::decode_to_slice(self.hex, buf).map_err(|_| malformed())
    }
}

fn malformed() -> DbError {
    DbError::Decode("a sealed field list that does not parse".into())
}

/// A participant row with `partner`'s active roles, the consents in force and the sealed
/// fields: everything one request about one participant needs.
#[derive(Debug)]
pub struct Loaded {
    /// The row.
    pub row: Row,
    /// The asking partner's active roles in the case.
    pub roles: Vec<String>,
    /// Consent scopes in force.
    pub consents: Vec<String>,
    /// The sealed fields.
    pub sealed: SealedList,
}

#[derive(sqlx::FromRow)]
struct LoadRow {
    #[sqlx(flatten)]
    row: Row,
    roles: Option<String>,
    consents: Option<String>,
    fields: Option<String>,
}

/// Splits a `group_concat` list. Agreement ids (roles, scopes, field names) never contain the
/// separators: they are lower-case letters, digits, `_` and `.`.
fn split_list(list: Option<String>) -> Vec<String> {
    list.map(|l| l.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// Reads one participant for `partner` in one query.
pub async fn load(
    db: &Store,
    partner: &str,
    id: &ParticipantId,
) -> Result<Option<Loaded>, DbError> {
    let sql = db.pick(
        "SELECT p.id, p.version, p.restricted, p.objection, p.dek_version, p.master_version, p.wrapped_dek,
           (SELECT group_concat(role, ',') FROM involvements i
             WHERE i.participant_id = p.id AND i.partner = $2 AND i.ended_at IS NULL) AS roles,
           (SELECT group_concat(scope, ',') FROM consents c
             WHERE c.participant_id = p.id AND c.withdrawn_at IS NULL) AS consents,
           (SELECT group_concat(field || ':' || hex(sealed), ',') FROM field_values f
             WHERE f.participant_id = p.id) AS fields
         FROM participants p WHERE p.id = $1",
        "SELECT p.id, p.version, p.restricted, p.objection, p.dek_version, p.master_version, p.wrapped_dek,
           (SELECT string_agg(role, ',') FROM involvements i
             WHERE i.participant_id = p.id AND i.partner = $2 AND i.ended_at IS NULL) AS roles,
           (SELECT string_agg(scope, ',') FROM consents c
             WHERE c.participant_id = p.id AND c.withdrawn_at IS NULL) AS consents,
           (SELECT string_agg(field || ':' || encode(sealed, 'hex'), ',') FROM field_values f
             WHERE f.participant_id = p.id) AS fields
         FROM participants p WHERE p.id = $1",
    );
    let row: Option<LoadRow> = on!(db, |c| sqlx::query_as(sql)
        .bind(&id.as_bytes()[..])
        .bind(partner)
        .fetch_optional(c)
        .await)?;
    Ok(row.map(|r| Loaded {
        row: r.row,
        roles: split_list(r.roles),
        consents: split_list(r.consents),
        sealed: SealedList(r.fields),
    }))
}

/// Many participants for `partner`, read with a query or two per table (a sync page). An erased
/// id has no row; every list only holds ids that were asked for.
pub struct Bulk {
    /// Participant rows found.
    pub rows: Vec<Row>,
    /// (participant id, role) of `partner`'s active roles.
    pub roles: Vec<(Vec<u8>, String)>,
    /// (participant id, scope) of consents in force.
    pub consents: Vec<(Vec<u8>, String)>,
    /// (participant id, sealed fields).
    pub sealed: Vec<(Vec<u8>, SealedList)>,
}

/// Reads many participants for `partner`: one query per table, the sealed fields in two halves.
pub async fn load_many(db: &Store, ids: &[ParticipantId], partner: &str) -> Result<Bulk, DbError> {
    if ids.is_empty() {
        return Ok(Bulk {
            rows: Vec::new(),
            roles: Vec::new(),
            consents: Vec::new(),
            sealed: Vec::new(),
        });
    }
    // `( $1, $2, ... )` of `ids`, in a query under construction.
    macro_rules! in_list {
        ($q:expr, $ids:expr) => {{
            let mut sep = $q.separated(", ");
            for id in $ids {
                sep.push_bind(id.as_bytes().to_vec());
            }
            sep.push_unseparated(")");
        }};
    }
    // One row per participant, not per field: rows cross a thread boundary one by one.
    let fields = db.pick(
        "SELECT participant_id, group_concat(field || ':' || hex(sealed), ',') FROM field_values WHERE participant_id IN (",
        "SELECT participant_id, string_agg(field || ':' || encode(sealed, 'hex'), ',') FROM field_values WHERE participant_id IN (",
    );
    // The sealed fields are most of the reading: two halves, read at once so that two SQLite
    // threads build them, beside the three small queries in turn. Three read connections at
    // most; with the one the feed reads its own state on, half the pool, as for verification.
    let (first, second) = ids.split_at(ids.len().div_ceil(2));
    let ((rows, roles, consents), mut sealed, rest) = on!(db, |c| {
        let mut rows = sqlx::QueryBuilder::new(
            "SELECT id, version, restricted, objection, dek_version, master_version, wrapped_dek FROM participants WHERE id IN (",
        );
        in_list!(rows, ids);
        let mut roles = sqlx::QueryBuilder::new(
            "SELECT participant_id, role FROM involvements WHERE ended_at IS NULL AND partner = ",
        );
        roles.push_bind(partner).push(" AND participant_id IN (");
        in_list!(roles, ids);
        let mut consents = sqlx::QueryBuilder::new(
            "SELECT participant_id, scope FROM consents WHERE withdrawn_at IS NULL AND participant_id IN (",
        );
        in_list!(consents, ids);
        let small = async {
            let rows = rows.build_query_as().fetch_all(c).await?;
            let roles = roles.build_query_as().fetch_all(c).await?;
            let consents = consents.build_query_as().fetch_all(c).await?;
            Ok::<_, DbError>((rows, roles, consents))
        };
        // One half's (participant id, sealed list) rows; none for an empty half.
        macro_rules! sealed_of {
            ($half:expr) => {
                async {
                    if $half.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut q = sqlx::QueryBuilder::new(fields);
                    in_list!(q, $half);
                    q.push(" GROUP BY participant_id");
                    q.build_query_as::<(Vec<u8>, Option<String>)>()
                        .fetch_all(c)
                        .await
                }
            };
        }
        tokio::try_join!(small, sealed_of!(first), sealed_of!(second))?
    });
    sealed.extend(rest);
    Ok(Bulk {
        rows,
        roles,
        consents,
        sealed: sealed
            .into_iter()
            .map(|(id, list)| (id, SealedList(list)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::{DbError, SealedList};

    fn parse(list: Option<&str>) -> Result<Vec<(String, Vec<u8>)>, DbError> {
        SealedList(list.map(str::to_string))
            .entries()
            .map(|e| {
                let e = e?;
                let mut bytes = Zeroizing::new(Vec::new());
                e.sealed_into(&mut bytes)?;
                Ok((e.field.to_string(), bytes.to_vec()))
            })
            .collect()
    }

    #[test]
    fn a_sealed_field_list_parses_into_names_and_bytes_or_is_refused() {
        assert_eq!(
            parse(Some("identity.given_name:00ff10,contact.phone:abcd")).unwrap(),
            vec![
                ("identity.given_name".to_string(), vec![0x00, 0xff, 0x10]),
                ("contact.phone".to_string(), vec![0xab, 0xcd]),
            ]
        );
        assert!(parse(None).unwrap().is_empty());
        for malformed in ["identity.given_name", "contact.phone:abc", "a:00,", "a:zz"] {
            assert!(parse(Some(malformed)).is_err(), "{malformed}");
        }
    }

    #[test]
    fn only_the_fields_opened_are_decoded() {
        let list = SealedList(Some("a.x:zz,b.y:abcd".to_string()));
        let entries: Vec<_> = list.entries().map(Result::unwrap).collect();
        assert_eq!(
            entries.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["a.x", "b.y"]
        );
        let mut buf = Zeroizing::new(vec![1, 2, 3, 4, 5]);
        assert!(entries[0].sealed_into(&mut buf).is_err());
        entries[1].sealed_into(&mut buf).unwrap();
        assert_eq!(*buf, [0xab, 0xcd]);
    }
}
