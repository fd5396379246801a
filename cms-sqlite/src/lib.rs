//! # cms-sqlite
//!
//! The default [`Store`] of CMS: commercial events, documents, ingestion checkpoints and usage in one
//! embedded SQLite database file (SQLite is compiled into the crate; nothing to install or run).
//!
//! ```
//! use cms_core::engine::{Cms, Event, Principal};
//! use cms_core::model::hierarchy::NodeKind;
//! use cms_core::model::time::parse_timestamp;
//! use cms_sqlite::SqliteStore;
//!
//! let directory = tempfile::tempdir()?;
//! let path = directory.path().join("cms.db");
//! let at = parse_timestamp("2026-10-05T08:30:00Z").unwrap_or_default();
//! let added = Event::NodeAdded { id: "d".into(), kind: NodeKind::Distributor, parent: None, name: "D".into() };
//!
//! let mut cms = Cms::open(SqliteStore::open(&path)?)?;
//! cms.execute(&Principal::platform("operator"), at, &added)?;
//! drop(cms);
//!
//! // A second run replays the events it finds in the file.
//! let cms = Cms::open(SqliteStore::open(&path)?)?;
//! assert!(cms.state().hierarchy.get("d").is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Semantics
//! The same as [`cms_core::store::MemoryStore`], which the conformance suite and a property test check:
//! - every trait call is one transaction: `put_usage` stores its records and its checkpoint together or not
//!   at all (a failing record rolls back the whole call);
//! - usage is keyed by its natural key with subscription and resource uri folded to ASCII lower case; an exact
//!   repeat ([`cms_core::store::same_values`]: `1.5` equals `1.50`) is a duplicate, another quantity or source
//!   cost replaces the stored record and is reported as a correction;
//! - [`Store::for_each_usage`] visits the records whose usage start lies in the period in folded key order:
//!   subscription (lower case), meter, usage start, usage end, resource uri (lower case); the order of
//!   `MemoryStore`;
//! - [`Store::sample_interval`] gives the interval of the subscription's record without source cost that
//!   starts first in the period (the trait allows any one; this choice is cheap on the index);
//! - every value reads back exactly: decimals keep their scale, instants their nanoseconds.
//!
//! Usage instants must lie between 1677-09-21 and 2262-04-11 UTC (they are stored as integer nanoseconds),
//! recorded instants (event times, checkpoints) in the years 0000 to 9999; other instants are refused
//! with an error, not stored inexactly.
//!
//! ## Schema
//! Versioned in this crate ([`schema`]); opening a database brings it to [`schema::SCHEMA_VERSION`] and
//! refuses a newer one. Version 1:
//! - `events (seq INTEGER PRIMARY KEY, actor, at, event)`: `seq` from 1 without gaps, `at` RFC 3339 UTC
//!   text with nine fraction digits, `event` JSON;
//! - `documents (kind, key, body)`, primary key `(kind, key)`;
//! - `checkpoints (region, subscriber, granularity, reported_until)`, unique per region and subscriber
//!   (`subscriber` NULL for a whole-stamp pull; uniqueness is on an expression, as NULLs are distinct in a
//!   UNIQUE constraint);
//! - `usage`: the folded natural key (`subscription_folded`, `meter` as canonical text, `start_ns`, `end_ns`
//!   in nanoseconds, `resource_uri_folded`) under a UNIQUE constraint, then the record as given
//!   (`subscription`, `resource_uri`, `quantity` as decimal text, `location`, `tags`, `additional_info` and
//!   `adjustments` as JSON or NULL when empty, `cost_amount`, `cost_currency`, `cost_minor_unit` or NULLs);
//!   indexed by `start_ns` and, for records without source cost, by `(subscription_folded, start_ns)`.
//!
//! ## Connection settings
//! Files use write-ahead logging (readers do not block the writer) with `synchronous = NORMAL`: a crash of
//! the application loses no commit, a power cut may undo the last ones but never corrupts the file. Every
//! connection has `foreign_keys = ON`, a page cache of up to [`CACHE_KIB`] KiB, and waits up to
//! [`BUSY_TIMEOUT`] for a lock another process holds. Writes take the write lock when they begin
//! (`BEGIN IMMEDIATE`), so two writers queue instead of failing half-way.
#![forbid(unsafe_code)]

mod codec;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use cms_core::CmsError;
use cms_core::governance::audit::{AuditHead, AuditRecord};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::{UsageKey, UsageRecord};
use cms_core::source::Checkpoint;
use cms_core::store::{
    Commit, Document, EventRecord, Store, StoredCorrection, UsageWrite, check_extends, same_values,
};
use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::codec::{
    KeyColumns, OrStore, RECORD_COLUMNS, ValueColumns, checkpoint_columns, checkpoint_of_row,
    instant_of_nanos, instant_of_text, nanos_of, period_nanos, record_of_row, text_of,
};

/// How long a call waits for a lock another connection holds before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most memory a store's page cache takes, in KiB. SQLite's default (2 MiB) is small for usage: a large
/// `put_usage` then spills pages mid-transaction; 64 MiB makes 100k records about a third faster.
pub const CACHE_KIB: i64 = 64 * 1024;

/// A [`Store`] in a SQLite database: a file, or memory (see the crate documentation).
#[derive(Debug)]
pub struct SqliteStore {
    connection: Connection,
    /// The path, or `:memory:`; names the database in errors.
    name: String,
    migrations_applied: u32,
}

impl SqliteStore {
    /// Open the store in the file at `path`, creating the file (and its schema) on first use and bringing an
    /// older schema up to date. Fails with [`CmsError::Store`] when the file is not a SQLite database, is the
    /// database of another application, or has a schema newer than this crate knows.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CmsError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let connection = Connection::open(path).or_store(|| format!("open {name}"))?;
        Self::prepare(connection, name, true)
    }

    /// A store in memory, empty, gone when dropped: for tests and short-lived tools.
    pub fn open_in_memory() -> Result<Self, CmsError> {
        let connection = Connection::open_in_memory().or_store(|| "open an in-memory database".into())?;
        Self::prepare(connection, ":memory:".into(), false)
    }

    fn prepare(mut connection: Connection, name: String, file: bool) -> Result<Self, CmsError> {
        // First, so that switching to WAL and migrating wait for another process that opens the file too.
        connection.busy_timeout(BUSY_TIMEOUT).or_store(|| format!("open {name}: set the busy timeout"))?;
        if file {
            // Reading a pragma reads the file header: a file that is not SQLite fails here, with "file is not
            // a database".
            let journal_mode: String = connection
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .or_store(|| format!("open {name}: set write-ahead logging"))?;
            // WAL can be unavailable (some network file systems); SQLite then keeps its rollback journal,
            // where `synchronous` stays at its default, FULL.
            if journal_mode.eq_ignore_ascii_case("wal") {
                connection
                    .pragma_update(None, "synchronous", "NORMAL")
                    .or_store(|| format!("open {name}: set synchronous = NORMAL"))?;
            }
        }
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .or_store(|| format!("open {name}: set foreign_keys = ON"))?;
        // Negative: a size in KiB, not in pages.
        connection
            .pragma_update(None, "cache_size", -CACHE_KIB)
            .or_store(|| format!("open {name}: set the page cache size"))?;
        let migrations_applied = schema::migrate(&mut connection, &name)?;
        Ok(Self { connection, name, migrations_applied })
    }

    /// The file the store is in, or `:memory:`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many migrations opening this store applied (0 when the database was up to date).
    pub fn migrations_applied(&self) -> u32 {
        self.migrations_applied
    }

    /// The schema version the database is at (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, CmsError> {
        self.connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .or_store(|| format!("read the schema version of {}", self.name))
    }

    fn begin(&mut self, what: &str) -> Result<Transaction<'_>, CmsError> {
        let name = &self.name;
        self.connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_store(|| format!("{what} in {name}: begin"))
    }
}

const INSERT_EVENT: &str = "INSERT INTO events (seq, actor, at, event) VALUES (?1, ?2, ?3, ?4)";

const INSERT_DOCUMENT: &str =
    "INSERT INTO documents (kind, key, body) VALUES (?1, ?2, ?3) ON CONFLICT (kind, key) DO NOTHING";

const UPSERT_DOCUMENT: &str = "INSERT INTO documents (kind, key, body) VALUES (?1, ?2, ?3) \
     ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body";

const DELETE_CHECKPOINT: &str = "DELETE FROM checkpoints WHERE region = ?1 AND subscriber IS ?2";

const INSERT_CHECKPOINT: &str =
    "INSERT INTO checkpoints (region, subscriber, granularity, reported_until) VALUES (?1, ?2, ?3, ?4)";

const INSERT_USAGE: &str = "INSERT INTO usage (subscription_folded, meter, start_ns, end_ns, \
     resource_uri_folded, subscription, resource_uri, quantity, location, tags, additional_info, cost_amount, \
     cost_currency, cost_minor_unit, adjustments) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
     ON CONFLICT (subscription_folded, meter, start_ns, end_ns, resource_uri_folded) DO NOTHING";

const UPDATE_USAGE: &str = "UPDATE usage SET subscription = ?2, resource_uri = ?3, quantity = ?4, \
     location = ?5, tags = ?6, additional_info = ?7, cost_amount = ?8, cost_currency = ?9, \
     cost_minor_unit = ?10, adjustments = ?11 WHERE id = ?1";

const KEY_MATCHES: &str = "subscription_folded = ?1 AND meter = ?2 AND start_ns = ?3 AND end_ns = ?4 \
     AND resource_uri_folded = ?5";

impl Store for SqliteStore {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<u64, CmsError> {
        let actor = commit.actor;
        let at_text = text_of(commit.at).or_store(|| format!("commit of {actor}"))?;
        let transaction = self.begin("commit")?;
        let last = last_event(&transaction, "commit")?;
        if let Some(audit) = commit.audit {
            extend_audit(&transaction, audit, last, commit.events.len() as u64)?;
        }
        {
            let mut insert =
                transaction.prepare_cached(INSERT_EVENT).or_store(|| "commit: prepare".into())?;
            for (seq, event) in (last + 1..).zip(commit.events) {
                let seq = i64::try_from(seq).or_store(|| format!("event {seq}: sequence number"))?;
                let json =
                    serde_json::to_string(event).or_store(|| format!("append event {seq}: as JSON"))?;
                insert
                    .execute(params![seq, actor, at_text, json])
                    .or_store(|| format!("append event {seq} of {actor}"))?;
            }
            let mut insert_document =
                transaction.prepare_cached(INSERT_DOCUMENT).or_store(|| "commit: prepare".into())?;
            for document in commit.documents {
                let inserted = insert_document
                    .execute(params![document.kind, document.key, document.body])
                    .or_store(|| format!("insert document {} {}", document.kind, document.key))?;
                if inserted == 0 {
                    return Err(CmsError::Conflict {
                        what: format!("document {} {} exists", document.kind, document.key),
                    });
                }
            }
        }
        transaction.commit().or_store(|| "commit".into())?;
        Ok(last + commit.events.len() as u64)
    }

    fn events_after(&self, seq: u64) -> Result<Vec<EventRecord>, CmsError> {
        let seq = i64::try_from(seq).or_store(|| "read events: sequence number".into())?;
        read_events(
            &self.connection,
            "SELECT seq, actor, at, event FROM events WHERE seq > ?1 ORDER BY seq",
            seq,
        )
    }

    fn audit_records(&self) -> Result<Vec<AuditRecord>, CmsError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT seq, record FROM audit ORDER BY seq")
            .or_store(|| "read the audit trail: prepare".into())?;
        let mut rows = statement.query([]).or_store(|| "read the audit trail".into())?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().or_store(|| "read the audit trail".into())? {
            let seq: i64 = row.get(0).or_store(|| "read the audit trail: seq".into())?;
            let text: String = row.get(1).or_store(|| format!("read audit record {seq}"))?;
            records.push(
                serde_json::from_str(&text).or_store(|| format!("audit record {seq} is not a record"))?,
            );
        }
        Ok(records)
    }

    fn audit_head(&self) -> Result<AuditHead, CmsError> {
        read_head(&self.connection)
    }

    fn events(&self) -> Result<Vec<EventRecord>, CmsError> {
        read_events(
            &self.connection,
            "SELECT seq, actor, at, event FROM events WHERE seq > ?1 ORDER BY seq",
            0,
        )
    }

    fn put_documents(&mut self, documents: &[Document]) -> Result<(), CmsError> {
        let transaction = self.begin("put documents")?;
        {
            let mut upsert =
                transaction.prepare_cached(UPSERT_DOCUMENT).or_store(|| "put documents: prepare".into())?;
            for document in documents {
                upsert
                    .execute(params![document.kind, document.key, document.body])
                    .or_store(|| format!("put document {} {}", document.kind, document.key))?;
            }
        }
        transaction.commit().or_store(|| "put documents: commit".into())
    }

    fn documents(&self, kind: &str, key_prefix: &str) -> Result<Vec<Document>, CmsError> {
        let context = || format!("read documents {kind} {key_prefix}*");
        // Keys in order from the prefix on; the ones that start with it come first (byte order, as in Rust).
        let mut statement = self
            .connection
            .prepare_cached("SELECT key, body FROM documents WHERE kind = ?1 AND key >= ?2 ORDER BY key")
            .or_store(context)?;
        let mut rows = statement.query(params![kind, key_prefix]).or_store(context)?;
        let mut documents = Vec::new();
        while let Some(row) = rows.next().or_store(context)? {
            let key: String = row.get(0).or_store(context)?;
            if !key.starts_with(key_prefix) {
                break;
            }
            documents.push(Document { kind: kind.to_owned(), key, body: row.get(1).or_store(context)? });
        }
        Ok(documents)
    }

    fn put_usage_audited(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
        audit: Option<&AuditRecord>,
    ) -> Result<UsageWrite, CmsError> {
        let transaction = self.begin("put usage")?;
        if let Some(audit) = audit {
            extend_audit(&transaction, audit, last_event(&transaction, "put usage")?, 0)?;
        }
        if let Some(checkpoint) = checkpoint {
            put_checkpoint(&transaction, checkpoint)?;
        }
        let mut write = UsageWrite::default();
        {
            let mut writer = UsageWriter::prepare(&transaction)?;
            for record in records {
                writer.put(record, &mut write)?;
            }
        }
        transaction.commit().or_store(|| "put usage: commit".into())?;
        Ok(write)
    }

    fn purge_usage(&mut self, period: &Period, audit: Option<&AuditRecord>) -> Result<u64, CmsError> {
        let bound = |at: Instant| nanos_of(at).or_store(|| format!("purge usage of {period}"));
        let (start, end) = (bound(period.start)?, bound(period.end)?);
        let transaction = self.begin("purge usage")?;
        if let Some(audit) = audit {
            extend_audit(&transaction, audit, last_event(&transaction, "purge usage")?, 0)?;
        }
        let deleted = transaction
            .execute("DELETE FROM usage WHERE start_ns >= ?1 AND start_ns < ?2", params![start, end])
            .or_store(|| format!("purge usage of {period}"))?;
        transaction.commit().or_store(|| format!("purge usage of {period}: commit"))?;
        Ok(deleted as u64)
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, CmsError> {
        // The order of `MemoryStore`: by region, then the whole-stamp checkpoint, then by subscriber.
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT region, subscriber, granularity, reported_until FROM checkpoints \
                 ORDER BY region, subscriber IS NOT NULL, subscriber",
            )
            .or_store(|| "read checkpoints: prepare".into())?;
        let mut rows = statement.query([]).or_store(|| "read checkpoints".into())?;
        let mut checkpoints = Vec::new();
        while let Some(row) = rows.next().or_store(|| "read checkpoints".into())? {
            checkpoints.push(checkpoint_of_row(row)?);
        }
        Ok(checkpoints)
    }

    fn usage(&self, key: &UsageKey) -> Result<Option<UsageRecord>, CmsError> {
        let context = || {
            format!(
                "read usage of subscription {} (meter {}, start {}, resource {:?})",
                key.subscription,
                key.meter,
                key.start.to_rfc3339(),
                key.resource_uri
            )
        };
        // A key whose instants cannot be stored matches no stored record.
        let Ok(columns) = KeyColumns::of(key) else { return Ok(None) };
        let mut statement = self
            .connection
            .prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM usage WHERE {KEY_MATCHES}"))
            .or_store(context)?;
        let mut rows = statement
            .query(params![
                columns.subscription_folded,
                columns.meter,
                columns.start_ns,
                columns.end_ns,
                columns.resource_uri_folded
            ])
            .or_store(context)?;
        rows.next().or_store(context)?.map(record_of_row).transpose()
    }

    fn sample_interval(
        &self,
        subscription: &str,
        period: &Period,
    ) -> Result<Option<(Instant, Instant)>, CmsError> {
        let Some((low, high)) = period_nanos(period) else { return Ok(None) };
        let context = || format!("read a usage interval of subscription {subscription} in {period}");
        // `cost_amount IS NULL` lets SQLite use the partial index on (subscription_folded, start_ns).
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT start_ns, end_ns FROM usage WHERE subscription_folded = ?1 AND cost_amount IS NULL \
                 AND start_ns BETWEEN ?2 AND ?3 ORDER BY start_ns LIMIT 1",
            )
            .or_store(context)?;
        let interval: Option<(i64, i64)> = statement
            .query_row(params![subscription.to_ascii_lowercase(), low, high], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .or_store(context)?;
        Ok(interval.map(|(start, end)| (instant_of_nanos(start), instant_of_nanos(end))))
    }

    fn for_each_usage(
        &self,
        period: &Period,
        visit: &mut dyn FnMut(&UsageRecord) -> Result<(), CmsError>,
    ) -> Result<(), CmsError> {
        let Some((low, high)) = period_nanos(period) else { return Ok(()) };
        let context = || format!("read usage of {period}");
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM usage WHERE start_ns BETWEEN ?1 AND ?2 \
                 ORDER BY subscription_folded, meter, start_ns, end_ns, resource_uri_folded"
            ))
            .or_store(context)?;
        let mut rows = statement.query(params![low, high]).or_store(context)?;
        while let Some(row) = rows.next().or_store(context)? {
            // The visitor's own error goes back as it is.
            visit(&record_of_row(row)?)?;
        }
        Ok(())
    }
}

/// Record `checkpoint`, replacing the one of its region and subscriber.
fn put_checkpoint(transaction: &Transaction<'_>, checkpoint: &Checkpoint) -> Result<(), CmsError> {
    let context = || {
        format!("put the checkpoint of region {:?} subscriber {:?}", checkpoint.region, checkpoint.subscriber)
    };
    let (granularity, reported_until) = checkpoint_columns(checkpoint).or_store(context)?;
    transaction
        .prepare_cached(DELETE_CHECKPOINT)
        .and_then(|mut delete| delete.execute(params![checkpoint.region, checkpoint.subscriber]))
        .and_then(|_| transaction.prepare_cached(INSERT_CHECKPOINT))
        .and_then(|mut insert| {
            insert.execute(params![checkpoint.region, checkpoint.subscriber, granularity, reported_until])
        })
        .map(drop)
        .or_store(context)
}

/// The statements of `put_usage`, prepared once per call (and cached across calls).
struct UsageWriter<'t> {
    insert: CachedStatement<'t>,
    select: CachedStatement<'t>,
    update: CachedStatement<'t>,
}

impl<'t> UsageWriter<'t> {
    fn prepare(transaction: &'t Transaction<'_>) -> Result<Self, CmsError> {
        let prepare = |sql: &str| transaction.prepare_cached(sql).or_store(|| "put usage: prepare".into());
        Ok(Self {
            insert: prepare(INSERT_USAGE)?,
            select: prepare(&format!("SELECT {RECORD_COLUMNS}, id FROM usage WHERE {KEY_MATCHES}"))?,
            update: prepare(UPDATE_USAGE)?,
        })
    }

    /// Store one record: insert it when its key is new, else compare it with the stored one (a duplicate,
    /// or a correction that replaces it). Counts what happened in `write`.
    fn put(&mut self, record: &UsageRecord, write: &mut UsageWrite) -> Result<(), CmsError> {
        let context = || {
            format!(
                "put usage of subscription {} (meter {}, start {}, resource {:?})",
                record.subscription,
                record.meter,
                record.start.to_rfc3339(),
                record.resource_uri
            )
        };
        let key = KeyColumns::of_record(record).or_store(context)?;
        let values = ValueColumns::of(record).or_store(context)?;
        // Most records are new: try the insert first, and read the stored record only on a conflict.
        let inserted = self
            .insert
            .execute(params![
                key.subscription_folded,
                key.meter,
                key.start_ns,
                key.end_ns,
                key.resource_uri_folded,
                record.subscription,
                record.resource_uri,
                values.quantity,
                record.location,
                values.tags,
                values.additional_info,
                values.cost_amount,
                values.cost_currency,
                values.cost_minor_unit,
                values.adjustments,
            ])
            .or_store(context)?;
        if inserted > 0 {
            write.inserted += 1;
            return Ok(());
        }
        let (stored, id) = {
            let mut rows = self
                .select
                .query(params![
                    key.subscription_folded,
                    key.meter,
                    key.start_ns,
                    key.end_ns,
                    key.resource_uri_folded
                ])
                .or_store(context)?;
            let row = rows.next().or_store(context)?.ok_or_else(|| CmsError::Store {
                message: format!("{}: the insert conflicted but no record has this key", context()),
            })?;
            (record_of_row(row)?, row.get::<_, i64>(13).or_store(context)?)
        };
        if same_values(&stored, record) {
            write.duplicates += 1;
            return Ok(());
        }
        self.update
            .execute(params![
                id,
                record.subscription,
                record.resource_uri,
                values.quantity,
                record.location,
                values.tags,
                values.additional_info,
                values.cost_amount,
                values.cost_currency,
                values.cost_minor_unit,
                values.adjustments,
            ])
            .or_store(context)?;
        write.corrections.push(StoredCorrection {
            key: record.key(),
            old_quantity: stored.quantity,
            new_quantity: record.quantity,
        });
        Ok(())
    }
}

/// Read event rows (`seq, actor, at, event`) of a query with one integer parameter.
fn read_events(
    connection: &rusqlite::Connection,
    sql: &str,
    after: i64,
) -> Result<Vec<EventRecord>, CmsError> {
    let mut statement = connection.prepare_cached(sql).or_store(|| "read events: prepare".into())?;
    let mut rows = statement.query([after]).or_store(|| "read events".into())?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().or_store(|| "read events".into())? {
        let seq: i64 = row.get(0).or_store(|| "read events: sequence number".into())?;
        let read = || -> Result<EventRecord, String> {
            let get_error = |error: rusqlite::Error| error.to_string();
            let at: String = row.get(2).map_err(get_error)?;
            let event: String = row.get(3).map_err(get_error)?;
            Ok(EventRecord {
                seq: u64::try_from(seq).map_err(|error| error.to_string())?,
                actor: row.get(1).map_err(get_error)?,
                at: instant_of_text(&at)?,
                event: serde_json::from_str(&event).map_err(|error| format!("bad event {event}: {error}"))?,
            })
        };
        events.push(
            read().map_err(|message| CmsError::Store { message: format!("read event {seq}: {message}") })?,
        );
    }
    Ok(events)
}

/// The audit head row (genesis when there is none).
fn read_head(connection: &rusqlite::Connection) -> Result<AuditHead, CmsError> {
    let head = connection
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .optional()
        .or_store(|| "read the audit head".into())?;
    match head {
        None => Ok(AuditHead::genesis()),
        Some((seq, hash)) => {
            Ok(AuditHead { seq: u64::try_from(seq).or_store(|| "the audit head".into())?, hash })
        }
    }
}

/// The last event's sequence number (0 when there is none), read inside `what`'s transaction.
fn last_event(connection: &rusqlite::Connection, what: &str) -> Result<u64, CmsError> {
    let last: i64 = connection
        .query_row("SELECT ifnull(max(seq), 0) FROM events", [], |row| row.get(0))
        .or_store(|| format!("{what}: read the last sequence number"))?;
    u64::try_from(last).or_store(|| format!("{what}: the last sequence number"))
}

/// Check that `audit` extends the stored chain and names the `count` events after `last`, then append it.
fn extend_audit(
    connection: &rusqlite::Connection,
    audit: &AuditRecord,
    last: u64,
    count: u64,
) -> Result<(), CmsError> {
    check_extends(audit, &read_head(connection)?, last + 1, count)?;
    append_audit(connection, audit)
}

/// Insert an audit record and move the head to it.
fn append_audit(connection: &rusqlite::Connection, audit: &AuditRecord) -> Result<(), CmsError> {
    let seq = i64::try_from(audit.seq).or_store(|| "audit record number".into())?;
    let json = serde_json::to_string(audit).or_store(|| format!("audit record {seq}: as JSON"))?;
    connection
        .execute("INSERT INTO audit (seq, record) VALUES (?1, ?2)", params![seq, json])
        .or_store(|| format!("append audit record {seq}"))?;
    connection
        .execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            params![seq, audit.hash],
        )
        .or_store(|| format!("move the audit head to {seq}"))?;
    Ok(())
}
