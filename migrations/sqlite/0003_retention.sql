-- Retention that purges by itself (issue 16).

-- The last retention purge of each participant and the change it made, so that the feeds can
-- tell recipients the fields went because their retention expired (`retention_expired`), not
-- for another reason. Kept after the key is shredded, like `changes`: the id no longer resolves.
CREATE TABLE retention_purges (
    participant_id BLOB PRIMARY KEY,
    seq            INTEGER NOT NULL,           -- changes.seq of the purge
    shredded       INTEGER NOT NULL,           -- 1 when nothing remained and the key went
    purged_at      TEXT NOT NULL
) STRICT;
