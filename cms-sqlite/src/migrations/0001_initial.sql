-- Schema version 1: events, documents, checkpoints and usage.
--
-- Conventions (see the crate documentation):
-- - decimals are TEXT exactly as `Decimal::to_string` writes them, so `1.50` keeps its scale;
-- - recorded instants (event times, checkpoints) are RFC 3339 TEXT in UTC with nine fraction digits;
-- - usage instants are INTEGER nanoseconds since the Unix epoch (UTC), which sort and compare as instants;
-- - text compares with SQLite's BINARY collation (byte order), which is Rust's `String` order.

-- The commercial event log: numbered from 1 without gaps (the store assigns `seq`; nothing is deleted).
CREATE TABLE events (
    seq   INTEGER PRIMARY KEY CHECK (seq >= 1),
    actor TEXT NOT NULL,
    at    TEXT NOT NULL,
    event TEXT NOT NULL  -- the `Event` as JSON (serde)
);

-- Drafts now; issued invoices and statements later. Replaced by (kind, key), listed in key order.
CREATE TABLE documents (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

-- One checkpoint per (region, subscriber); `subscriber` is NULL for a whole-stamp pull. NULLs are distinct in
-- a UNIQUE constraint, so uniqueness is on an expression that tells NULL from every text (even '').
CREATE TABLE checkpoints (
    region         TEXT NOT NULL,
    subscriber     TEXT,
    granularity    TEXT NOT NULL CHECK (granularity IN ('hourly', 'daily')),
    reported_until TEXT NOT NULL
);
CREATE UNIQUE INDEX checkpoints_by_region_subscriber
    ON checkpoints (region, subscriber IS NOT NULL, ifnull(subscriber, ''));

-- Usage, keyed by its natural key with subscription and resource uri folded to ASCII lower case and the
-- meter in canonical text (upper-case 8-4-4-4-12, whose text order is the meter's numeric order).
CREATE TABLE usage (
    id                   INTEGER PRIMARY KEY,
    subscription_folded  TEXT NOT NULL,
    meter                TEXT NOT NULL,
    start_ns             INTEGER NOT NULL,
    end_ns               INTEGER NOT NULL,
    resource_uri_folded  TEXT NOT NULL,
    -- The record as given.
    subscription         TEXT NOT NULL,
    resource_uri         TEXT NOT NULL,
    quantity             TEXT NOT NULL,
    location             TEXT NOT NULL,
    tags                 TEXT,  -- JSON object; NULL when empty
    additional_info      TEXT,  -- JSON object; NULL when empty
    cost_amount          TEXT,  -- NULL: no source cost
    cost_currency        TEXT,
    cost_minor_unit      INTEGER,
    adjustments          TEXT,  -- JSON array; NULL when empty
    CHECK ((cost_amount IS NULL) = (cost_currency IS NULL)
           AND (cost_amount IS NULL) = (cost_minor_unit IS NULL)),
    UNIQUE (subscription_folded, meter, start_ns, end_ns, resource_uri_folded)
);
-- `for_each_usage`: the records of a period.
CREATE INDEX usage_by_start ON usage (start_ns);
-- `sample_interval`: a subscription's records without source cost, by usage start.
CREATE INDEX usage_by_subscription_start ON usage (subscription_folded, start_ns)
    WHERE cost_amount IS NULL;
