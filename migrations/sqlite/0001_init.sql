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
    restricted     INTEGER NOT NULL DEFAULT 0,   -- GDPR Art. 18: only storage and DSR handling
    objection      INTEGER NOT NULL DEFAULT 0,   -- GDPR Art. 21: no public-task/legitimate-interest processing
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

-- The latest change of every participant, in commit order: the partners' sync feeds page
-- through it. Kept after erasure (the id is random and no longer resolves), so feeds can still
-- announce the removal. seq is assigned inside the write transaction, so seq order is commit order.
CREATE TABLE changes (
    participant_id BLOB PRIMARY KEY,
    seq            INTEGER NOT NULL UNIQUE
) STRICT;

-- Which participants each client has been shown through its feed, so that losing sight of one
-- produces a removal, and only for clients that saw it.
CREATE TABLE sync_state (
    client         TEXT NOT NULL,
    participant_id BLOB NOT NULL,
    visible        INTEGER NOT NULL,
    PRIMARY KEY (client, participant_id)
) STRICT, WITHOUT ROWID;

-- Responses to POSTs sent with an Idempotency-Key, replayed when the same request comes again.
CREATE TABLE idempotency (
    client       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (client, key)
) STRICT;

-- Data-subject requests (GDPR Art. 15-21). Nothing personal in clear: the person is a keyed
-- hash and an internal id; request details (e.g. corrected values) are sealed with the
-- participant's own data key, so an erasure shreds them too.
CREATE TABLE dsr_requests (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    insz_hash        BLOB NOT NULL,
    participant_id   BLOB,
    received_at      TEXT NOT NULL,
    due              TEXT NOT NULL,
    extended_due     TEXT,
    extension_reason TEXT,
    state            TEXT NOT NULL,
    outcome          TEXT,
    details_sealed   BLOB,
    receipt          TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE INDEX dsr_due ON dsr_requests (state, due);

-- Each step of a request, so an interrupted execution resumes where it stopped.
CREATE TABLE dsr_steps (
    id         INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES dsr_requests(id),
    time       TEXT NOT NULL,
    step       TEXT NOT NULL,
    detail     TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX dsr_steps_once ON dsr_steps (request_id, step);

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
