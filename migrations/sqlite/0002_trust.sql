-- Second round: nobody widens their own access (issue 12).

-- Idempotency rows are now keyed with an HMAC under a system key and bound to the participant
-- they concern (for the replay's audit record, and so that erasure removes them). Rows hashed
-- the old way can never match again: drop them (they expire after 24 hours anyway).
-- status 0 marks a key whose first request is still being answered.
DELETE FROM idempotency;
ALTER TABLE idempotency ADD COLUMN participant_id BLOB;
ALTER TABLE idempotency ADD COLUMN action TEXT NOT NULL DEFAULT '';
CREATE INDEX idempotency_participant ON idempotency (participant_id);
CREATE INDEX idempotency_created ON idempotency (created_at);

-- Why another partner's role was ended (a code from the API, never free text).
ALTER TABLE involvements ADD COLUMN end_reason TEXT;

-- A participant erased while retention keeps some categories (ESF evidence) is no longer found
-- by look-up or registration: its participants.insz_hash is replaced by random bytes. Only a
-- data-subject request still reaches what is kept, through this keyed hash.
CREATE TABLE erased_lookup (
    participant_id BLOB PRIMARY KEY REFERENCES participants(id) ON DELETE CASCADE,
    insz_hash      BLOB NOT NULL
) STRICT;
CREATE INDEX erased_lookup_hash ON erased_lookup (insz_hash);
