-- partnergate schema, SQLite dialect. Personal data is only ever stored sealed (AES-256-GCM);
-- identifiers are random; the national number only as a keyed hash.

-- Secrets wrapped under the master keyring (the index secret behind look-up hashes and pseudonyms).
CREATE TABLE system_secrets (
    name           TEXT PRIMARY KEY,
    master_version INTEGER NOT NULL,
    wrapped        BLOB NOT NULL
) STRICT;

CREATE TABLE participants (
    id             BLOB PRIMARY KEY,          -- 16 random bytes, never shown to partners
    insz_hash      BLOB NOT NULL UNIQUE,      -- HMAC-SHA256 of the national number
    dek_version    INTEGER NOT NULL,          -- bound into every field's AAD
    master_version INTEGER NOT NULL,          -- which master key wraps the data key
    wrapped_dek    BLOB NOT NULL,             -- deleted on erasure: crypto-shredding
    version        INTEGER NOT NULL,          -- record version for If-Match
    restricted     INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;

CREATE TABLE field_values (
    participant_id BLOB NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    field          TEXT NOT NULL,
    sealed         BLOB NOT NULL,             -- nonce || ciphertext || tag
    PRIMARY KEY (participant_id, field)
) STRICT, WITHOUT ROWID;

CREATE TABLE involvements (
    id             INTEGER PRIMARY KEY,
    participant_id BLOB NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    partner        TEXT NOT NULL,
    role           TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    started_by     TEXT NOT NULL,             -- partner that assigned it
    ended_at       TEXT,
    ended_by       TEXT
) STRICT;
CREATE UNIQUE INDEX involvements_active
    ON involvements (participant_id, partner, role) WHERE ended_at IS NULL;
CREATE INDEX involvements_partner ON involvements (partner, participant_id) WHERE ended_at IS NULL;

CREATE TABLE consents (
    id             INTEGER PRIMARY KEY,
    participant_id BLOB NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    recorded_by    TEXT NOT NULL,             -- partner
    recorded_at    TEXT NOT NULL,
    withdrawn_by   TEXT,
    withdrawn_at   TEXT
) STRICT;
CREATE UNIQUE INDEX consents_active ON consents (participant_id, scope) WHERE withdrawn_at IS NULL;

CREATE TABLE notes (
    id             BLOB PRIMARY KEY,
    participant_id BLOB NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    author_partner TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    sealed         BLOB NOT NULL
) STRICT;
CREATE INDEX notes_participant ON notes (participant_id, created_at);

-- Every change to a participant, in commit order: the partners' sync feeds read it. Kept after
-- erasure (the id is random and no longer resolves), so feeds can still announce the removal.
CREATE TABLE changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    participant_id BLOB NOT NULL,
    time           TEXT NOT NULL
) STRICT;
CREATE INDEX changes_participant ON changes (participant_id, seq);

-- The audit log: one canonical JSON record per row, chained by SHA-256. The search columns are
-- generated from the record itself, so they can never disagree with what the chain protects.
CREATE TABLE audit_records (
    seq         INTEGER PRIMARY KEY,
    record      TEXT NOT NULL,
    hash        BLOB NOT NULL,
    time        TEXT GENERATED ALWAYS AS (json_extract(record, '$.time')) VIRTUAL,
    client      TEXT GENERATED ALWAYS AS (json_extract(record, '$.client')) VIRTUAL,
    partner     TEXT GENERATED ALWAYS AS (json_extract(record, '$.partner')) VIRTUAL,
    acting_user TEXT GENERATED ALWAYS AS (json_extract(record, '$.acting_user')) VIRTUAL,
    purpose     TEXT GENERATED ALWAYS AS (json_extract(record, '$.purpose')) VIRTUAL,
    participant TEXT GENERATED ALWAYS AS (json_extract(record, '$.participant')) VIRTUAL,
    decision    TEXT GENERATED ALWAYS AS (json_extract(record, '$.decision')) VIRTUAL
) STRICT;
CREATE INDEX audit_participant ON audit_records (participant, seq);
CREATE INDEX audit_partner ON audit_records (partner, seq);
CREATE INDEX audit_time ON audit_records (time);

CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,              -- the last record it covers
    hash      BLOB NOT NULL,
    time      TEXT NOT NULL,
    signature BLOB NOT NULL
) STRICT;
