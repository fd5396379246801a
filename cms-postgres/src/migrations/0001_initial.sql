-- Schema version 1: events, documents, checkpoints, usage and the audit trail (the tables of cms-sqlite's
-- versions 1 and 2), created in the schema first on the search path.
--
-- Conventions (see the crate documentation):
-- - decimals are TEXT exactly as `Decimal::to_string` writes them, so `1.50` keeps its scale;
-- - recorded instants (event times, checkpoints) are RFC 3339 TEXT in UTC with nine fraction digits;
-- - usage instants are BIGINT nanoseconds since the Unix epoch (UTC), which sort and compare as instants;
-- - JSON (events, audit records, usage maps) is TEXT, kept byte for byte;
-- - text that is compared or ordered uses the "C" collation (byte order), which is Rust's `String` order,
--   whatever the database's default collation is.

-- The commercial event log: numbered from 1 without gaps (the store assigns `seq`; nothing is deleted). Two
-- writers that both take the next number collide on the primary key: the second gets a conflict.
CREATE TABLE events (
    seq   BIGINT NOT NULL CHECK (seq >= 1),
    actor TEXT NOT NULL,
    at    TEXT NOT NULL,
    event TEXT NOT NULL,  -- the `Event` as JSON (serde)
    CONSTRAINT events_seq_key PRIMARY KEY (seq)
);

-- Drafts, issued invoices and statements, month-end snapshots. Replaced by (kind, key), listed in key order.
CREATE TABLE documents (
    kind TEXT COLLATE "C" NOT NULL,
    key  TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    CONSTRAINT documents_kind_key PRIMARY KEY (kind, key)
);

-- One checkpoint per (region, subscriber); `subscriber` is NULL for a whole-stamp pull. NULLs are distinct in
-- a UNIQUE constraint (before PostgreSQL 15's NULLS NOT DISTINCT), so uniqueness is on expressions that tell
-- NULL from every text (even '').
CREATE TABLE checkpoints (
    region         TEXT COLLATE "C" NOT NULL,
    subscriber     TEXT COLLATE "C",
    granularity    TEXT NOT NULL CHECK (granularity IN ('hourly', 'daily')),
    reported_until TEXT NOT NULL
);
CREATE UNIQUE INDEX checkpoints_by_region_subscriber
    ON checkpoints (region, (subscriber IS NOT NULL), coalesce(subscriber, ''));

-- Usage, keyed by its natural key with subscription and resource uri folded to ASCII lower case and the
-- meter in canonical text (upper-case 8-4-4-4-12, whose text order is the meter's numeric order).
CREATE TABLE usage (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_folded  TEXT COLLATE "C" NOT NULL,
    meter                TEXT COLLATE "C" NOT NULL,
    start_ns             BIGINT NOT NULL,
    end_ns               BIGINT NOT NULL,
    resource_uri_folded  TEXT COLLATE "C" NOT NULL,
    -- The record as given.
    subscription         TEXT NOT NULL,
    resource_uri         TEXT NOT NULL,
    quantity             TEXT NOT NULL,
    location             TEXT NOT NULL,
    tags                 TEXT,  -- JSON object; NULL when empty
    additional_info      TEXT,  -- JSON object; NULL when empty
    cost_amount          TEXT,  -- NULL: no source cost
    cost_currency        TEXT,
    cost_minor_unit      BIGINT,
    adjustments          TEXT,  -- JSON array; NULL when empty
    CHECK ((cost_amount IS NULL) = (cost_currency IS NULL)
           AND (cost_amount IS NULL) = (cost_minor_unit IS NULL)),
    CONSTRAINT usage_natural_key UNIQUE (subscription_folded, meter, start_ns, end_ns, resource_uri_folded)
);
-- `for_each_usage` and `purge_usage`: the records of a period.
CREATE INDEX usage_by_start ON usage (start_ns);
-- `sample_interval`: a subscription's records without source cost, by usage start.
CREATE INDEX usage_by_subscription_start ON usage (subscription_folded, start_ns)
    WHERE cost_amount IS NULL;

-- The audit trail: one row per command, done or refused; `record` is the record's JSON (its hash covers
-- every field but itself, chained to the previous record's hash). Two writers that extend the same head
-- collide on the primary key (or on the head row): the second gets a conflict.
CREATE TABLE audit (
    seq    BIGINT NOT NULL CHECK (seq >= 1),
    record TEXT NOT NULL,
    CONSTRAINT audit_seq_key PRIMARY KEY (seq)
);

-- The head row names the last record, so rows cut from the end of the chain are noticed.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
