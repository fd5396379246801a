-- The audit trail: one row per command, done or refused; `record` is the record's JSON (its hash covers
-- every field but itself, chained to the previous record's hash). The head row names the last record, so
-- rows cut from the end of the chain are noticed.
CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY,
    record TEXT NOT NULL
);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
