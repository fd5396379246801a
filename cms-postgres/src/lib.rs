//! # cms-postgres
//!
//! A [`Store`] of CMS on PostgreSQL: commercial events, documents, ingestion checkpoints, usage and the
//! audit trail in one schema of a PostgreSQL database, shared by every engine that connects to it. Use it
//! where several processes (a pull job, the operator's CLI, a portal) run engines on the same data; the
//! embedded cms-sqlite store is the default for one process.
//!
//! ```
//! use cms_core::engine::{Cms, Event, Principal};
//! use cms_core::model::hierarchy::NodeKind;
//! use cms_core::model::time::parse_timestamp;
//! use cms_postgres::PostgresStore;
//!
//! // A server for the example: `CMS_PG_URL`, e.g. postgresql://postgres@127.0.0.1:54329/postgres.
//! let Ok(url) = std::env::var("CMS_PG_URL") else { return Ok(()) };
//! # let schema = format!("cms_doc_{}", std::process::id());
//! let at = parse_timestamp("2026-10-05T08:30:00Z").unwrap_or_default();
//! let added = Event::NodeAdded { id: "d".into(), kind: NodeKind::Distributor, parent: None, name: "D".into() };
//!
//! let mut cms = Cms::open(PostgresStore::connect_in_schema(&url, &schema)?)?;
//! cms.execute(&Principal::platform("operator"), at, &added)?;
//!
//! // Another connection (another process, in real life) replays the events it finds in the schema.
//! let other = Cms::open(PostgresStore::connect_in_schema(&url, &schema)?)?;
//! assert!(other.state().hierarchy.get("d").is_some());
//! # drop((cms, other));
//! # let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
//! # client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Semantics
//! The same as [`cms_core::store::MemoryStore`] and cms-sqlite, which the conformance suite, the golden
//! invoicing scenario and the concurrency tests check:
//! - every trait call is one transaction at SERIALIZABLE isolation: `commit` writes its events, new documents
//!   and audit record together or not at all, `put_usage` its records, checkpoint and audit record;
//! - `commit` (and the audited `put_usage_audited`, `purge_usage`) refuses with [`CmsError::Conflict`],
//!   changing nothing, when its audit record does not extend the stored head ([`check_extends`]) or a new
//!   document's kind and key exist; so does any call whose event or audit number another writer took first
//!   (a unique violation on `events_seq_key` or `audit_seq_key`). The engine then refreshes and plans again;
//! - a serialization failure (SQLSTATE 40001) or a deadlock (40P01) runs the whole call again, up to
//!   [`ATTEMPTS`] times with a short randomised backoff, then ends as [`CmsError::Conflict`];
//! - usage is keyed by its natural key with subscription and resource uri folded to ASCII lower case; an exact
//!   repeat ([`cms_core::store::same_values`]: `1.5` equals `1.50`) is a duplicate, another quantity or source
//!   cost replaces the stored record and is reported as a correction (records of one call are taken in order,
//!   so a key given twice in a batch is inserted, then compared);
//! - [`Store::for_each_usage`] visits the records whose usage start lies in the period in folded key order
//!   (the order of `MemoryStore`), fetching [`FETCH_ROWS`] rows per round trip from one read-only,
//!   deferrable snapshot (it never fails half-way with a serialization failure);
//! - [`Store::sample_interval`] gives the interval of the subscription's record without source cost that
//!   starts first in the period;
//! - every value reads back exactly: decimals keep their scale, instants their nanoseconds.
//!
//! Usage instants must lie between 1677-09-21 and 2262-04-11 UTC (they are stored as integer nanoseconds),
//! recorded instants (event times, checkpoints) in the years 0000 to 9999; PostgreSQL text cannot hold the
//! character NUL, so actors, keys, bodies and usage texts with one are refused. Such values are refused with
//! [`CmsError::Store`], never stored inexactly; so is every database error, with the operation named.
//!
//! One store is one connection, used by one thread at a time (the store is `Send`, not `Sync`): run one
//! engine per connection, as many as needed on the same schema. A lost connection is not opened again: its
//! calls fail with [`CmsError::Store`] and the application connects anew. A visitor of `for_each_usage` must
//! not call the store it is visiting (that call fails with [`CmsError::Store`]).
//!
//! Between `events_after` and an `audit_head` that follows it the store returns the head read in the same
//! snapshot as the events, so that an engine's refresh (new events, then the head) never pairs a head with
//! events older than it while other writers commit. With such a pair the engine would seal an event-less
//! record (a refusal, an ingestion) on a state digest that misses the other writer's events, and the commit
//! would pass [`check_extends`]: the chain would break.
//!
//! ## Schema
//! Versioned in this crate ([`schema`]): connecting brings the schema to [`schema::SCHEMA_VERSION`] in one
//! transaction under an advisory lock (two processes connecting at once do not race) and refuses a newer one.
//! The tables (version 1), with text that is compared or ordered in the "C" collation (byte order, which is
//! Rust's `String` order, whatever the database's default):
//! - `schema_version (version, name, applied_at)`: one row per migration applied;
//! - `events (seq, actor, at, event)`: `seq` BIGINT from 1 without gaps (primary key `events_seq_key`), `at`
//!   RFC 3339 UTC text with nine fraction digits, `event` JSON text;
//! - `documents (kind, key, body)`, primary key `(kind, key)`; listed by key prefix with a range scan;
//! - `checkpoints (region, subscriber, granularity, reported_until)`, unique per region and subscriber
//!   (`subscriber` NULL for a whole-stamp pull; uniqueness is on expressions, as NULLs are distinct in a
//!   UNIQUE constraint before PostgreSQL 15);
//! - `usage`: the folded natural key (`subscription_folded`, `meter` as canonical text, `start_ns`, `end_ns`
//!   in nanoseconds, `resource_uri_folded`) under the UNIQUE constraint `usage_natural_key`, then the record as
//!   given (`subscription`, `resource_uri`, `quantity` as decimal text, `location`, `tags`, `additional_info`
//!   and `adjustments` as JSON text or NULL when empty, `cost_amount`, `cost_currency`, `cost_minor_unit` or
//!   NULLs); indexed by `start_ns` and, for records without source cost, by `(subscription_folded, start_ns)`;
//! - `audit (seq, record)`: the audit records as JSON text, primary key `audit_seq_key`;
//!   `audit_head (id = 1, seq, hash)`: the last record's number and hash, which the next record must extend.
//!
//! [`PostgresStore::connect`] uses the first schema of the connection's search path (usually `public`);
//! [`PostgresStore::connect_in_schema`] creates the named schema if missing. Either way the session's search
//! path is then that one schema and nothing else.
//!
//! ## Connection
//! `postgresql://user[:password]@host[:port]/database` or the key-value form of libpq (`host=... user=...`).
//! There is no TLS: connect over a local socket or loopback, or through a tunnel. Errors name the server
//! without its password. The session's `application_name` is `cms` unless the URL sets one.
//!
//! ## Tests
//! The tests in `tests/` need a server: `CMS_PG_URL` names it, and each test works in a fresh schema of its
//! own, dropped at the end. Without `CMS_PG_URL` they print a skip message and pass, unless `CMS_REQUIRE_PG=1`
//! (as `scripts/test.sh` sets it, after starting a throwaway cluster), when they fail.
#![forbid(unsafe_code)]

mod codec;
pub mod schema;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::time::Duration;

use cms_core::CmsError;
use cms_core::governance::audit::{AuditHead, AuditRecord};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::{UsageKey, UsageRecord};
use cms_core::source::Checkpoint;
use cms_core::store::{
    Commit, Document, EventRecord, Store, StoredCorrection, UsageWrite, check_extends, same_values,
};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, IsolationLevel, NoTls, Row, Statement, Transaction};

use crate::codec::{
    KeyColumns, OrStore, RECORD_COLUMNS, ValueColumns, checkpoint_columns, checkpoint_of_row, describe,
    instant_of_nanos, instant_of_text, period_nanos, prefix_upper_bound, record_of_row, text_of,
};
use crate::schema::quote_identifier;

/// How many times one call runs its transaction when it ends in a serialization failure or a deadlock;
/// the last failure is returned as [`CmsError::Conflict`].
pub const ATTEMPTS: u32 = 8;

/// The wait before the second attempt; it doubles at each attempt up to [`BACKOFF_MAX`], and each wait is
/// drawn between half and one and a half of that, so two writers that collided do not collide again in step.
pub const BACKOFF: Duration = Duration::from_millis(2);

/// The longest wait between two attempts (before the random spread).
pub const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Usage rows [`Store::for_each_usage`] fetches per round trip: memory stays bounded for any period, and
/// the round trips are few.
pub const FETCH_ROWS: i32 = 4096;

/// Usage records sent per bulk insert statement by `put_usage`.
const INSERT_ROWS: usize = 4096;

/// The constraints whose unique violation means another writer took the number first.
const TAKEN_CONSTRAINTS: &[&str] = &["events_seq_key", "audit_seq_key"];

/// A [`Store`] in a PostgreSQL schema (see the crate documentation).
pub struct PostgresStore {
    session: RefCell<Session>,
    /// The server without password, and the schema; names the store in errors.
    name: String,
    schema: String,
    migrations_applied: u32,
    /// The audit head read in the same snapshot as the events the last call (`events_after`) returned,
    /// returned by the next call if it is `audit_head` (any other call drops it). So an engine's refresh,
    /// which reads the new events and then the head, sees one state even while other writers commit:
    /// with a head newer than its events, the engine would seal an event-less record (a refusal, an
    /// ingestion) whose state digest misses the other writer's events, and the commit would pass
    /// [`check_extends`], breaking the chain.
    head_with_events: Cell<Option<AuditHead>>,
}

/// The connection and its prepared statements (by SQL text). Prepared statements belong to the session,
/// not to a transaction: they outlive a rollback.
struct Session {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PostgresStore")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("migrations_applied", &self.migrations_applied)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connect to the database at `url` and keep the store in the first schema of the connection's search
    /// path (usually `public`), creating its tables on first use and bringing an older schema up to date.
    /// Fails with [`CmsError::Store`] when the server cannot be reached, the search path names no existing
    /// schema, the schema has another application's tables, or a schema version newer than this crate knows.
    pub fn connect(url: &str) -> Result<Self, CmsError> {
        Self::open(url, None)
    }

    /// Connect to the database at `url` and keep the store in `schema`, creating the schema and its tables
    /// on first use (tests use a fresh schema each; one database can hold several stores). Fails as
    /// [`Self::connect`] does, and for a name PostgreSQL would cut (over 63 bytes) or cannot hold.
    pub fn connect_in_schema(url: &str, schema: &str) -> Result<Self, CmsError> {
        if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
            return Err(CmsError::Store {
                message: format!(
                    "connect in schema {schema:?}: a schema name has 1 to 63 bytes and no NUL character"
                ),
            });
        }
        Self::open(url, Some(schema))
    }

    fn open(url: &str, schema: Option<&str>) -> Result<Self, CmsError> {
        let mut config = Config::from_str(url)
            .map_err(|error| describe(&error))
            .or_store(|| "connect: the URL is not a PostgreSQL connection string".into())?;
        if config.get_application_name().is_none() {
            config.application_name("cms");
        }
        let server = server_name(&config);
        let mut client = config
            .connect(NoTls)
            .map_err(|error| describe(&error))
            .or_store(|| format!("connect to {server}"))?;
        let (schema, create) = if let Some(schema) = schema {
            (schema.to_owned(), true)
        } else {
            let current: Option<String> = client
                .query_one("SELECT current_schema()::text", &[])
                .and_then(|row| row.try_get(0))
                .map_err(|error| describe(&error))
                .or_store(|| format!("connect to {server}: read the current schema"))?;
            let schema = current.ok_or_else(|| CmsError::Store {
                message: format!(
                    "connect to {server}: the search path names no existing schema; name one with \
                     connect_in_schema"
                ),
            })?;
            (schema, false)
        };
        let name = format!("{server} schema {schema}");
        // The search path is this one schema, so that a schema created later elsewhere on the default path
        // (`"$user"`) cannot change what the store's tables resolve to.
        client
            .batch_execute(&format!("SET search_path TO {}", quote_identifier(&schema)))
            .map_err(|error| describe(&error))
            .or_store(|| format!("connect to {name}: set the search path"))?;
        let migrations_applied = schema::migrate(&mut client, &schema, create, &name)?;
        // Single-statement reads then run as implicit transactions at SERIALIZABLE, in one round trip.
        client
            .batch_execute("SET default_transaction_isolation TO 'serializable'")
            .map_err(|error| describe(&error))
            .or_store(|| format!("connect to {name}: set the isolation level"))?;
        Ok(Self {
            session: RefCell::new(Session { client, statements: HashMap::new() }),
            name,
            schema,
            migrations_applied,
            head_with_events: Cell::new(None),
        })
    }

    /// The server (without password) and schema, as errors name them.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema the store is in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// How many migrations connecting applied (0 when the schema was up to date).
    pub fn migrations_applied(&self) -> u32 {
        self.migrations_applied
    }

    /// The schema version the store is at (the highest version in `schema_version`).
    pub fn schema_version(&self) -> Result<u32, CmsError> {
        let name = self.name.clone();
        let mut session = self.session()?;
        schema::read_version(&mut session.client, &name)
    }

    fn session(&self) -> Result<std::cell::RefMut<'_, Session>, CmsError> {
        self.session.try_borrow_mut().map_err(|_| CmsError::Store {
            message: format!(
                "{}: the store is in use by a call that has not returned (a for_each_usage visitor called the \
                 store)",
                self.name
            ),
        })
    }

    /// Run `work` as one transaction (`Mode::Single`: one implicit transaction, for a single statement),
    /// again after a serialization failure or a deadlock, up to [`ATTEMPTS`] times. `what` names the
    /// operation in errors.
    fn transact<T>(
        &self,
        what: &dyn Fn() -> String,
        mode: Mode,
        mut work: impl FnMut(&mut Work<'_, '_>) -> Result<T, Failure>,
    ) -> Result<T, CmsError> {
        self.head_with_events.take();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = {
                let mut session = self.session()?;
                let Session { client, statements } = &mut *session;
                run_once(client, statements, mode, &mut work)
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(Failure::Database { error, .. }) if retryable(&error) && attempt < ATTEMPTS => {
                    std::thread::sleep(backoff(attempt));
                }
                Err(failure) => return Err(failure.into_cms(&what(), attempt)),
            }
        }
    }
}

/// The server a configuration names, without its password: `user@host:port/database`.
fn server_name(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let host = match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = config.get_ports().get(index).or_else(|| config.get_ports().first()).copied();
            format!("{host}:{}", port.unwrap_or(5432))
        })
        .collect();
    let host = if hosts.is_empty() { "localhost:5432".to_owned() } else { hosts.join(",") };
    let user = config.get_user().unwrap_or("");
    let database = config.get_dbname().unwrap_or(user);
    format!("postgresql://{user}@{host}/{database}")
}

/// How a call's transaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One statement, as its own implicit transaction (SERIALIZABLE, the session's default).
    Single,
    /// BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY ... COMMIT: several reads of one snapshot.
    ReadOnly,
    /// BEGIN ISOLATION LEVEL SERIALIZABLE ... COMMIT.
    ReadWrite,
}

fn run_once<T>(
    client: &mut Client,
    statements: &mut HashMap<String, Statement>,
    mode: Mode,
    work: &mut impl FnMut(&mut Work<'_, '_>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    match mode {
        Mode::Single => work(&mut Work { connection: Connection::Single(client), statements }),
        Mode::ReadOnly | Mode::ReadWrite => {
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .read_only(mode == Mode::ReadOnly)
                .start()
                .or_fail(|| "begin".into())?;
            let value =
                work(&mut Work { connection: Connection::Transaction(&mut transaction), statements })?;
            transaction.commit().or_fail(|| "commit".into())?;
            Ok(value)
        }
    }
}

/// Whether running the call again may succeed: a serialization failure or a deadlock.
fn retryable(error: &postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// The constraint of a unique violation that means another writer took an event or audit number first.
fn taken(error: &postgres::Error) -> Option<&str> {
    let database = error.as_db_error()?;
    if *database.code() != SqlState::UNIQUE_VIOLATION {
        return None;
    }
    database.constraint().filter(|constraint| TAKEN_CONSTRAINTS.contains(constraint))
}

/// The wait before attempt `attempt + 1`.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(10)).min(BACKOFF_MAX);
    // RandomState is seeded per instance: a cheap source of spread, no dependency needed.
    let spread = RandomState::new().hash_one((attempt, std::time::Instant::now())) % 1000;
    base * (500 + u32::try_from(spread).unwrap_or(500)) / 1000
}

/// Why a transaction did not commit.
enum Failure {
    /// The database said no (or the connection failed) while doing `context`.
    Database { context: String, error: postgres::Error },
    /// The call refused (a conflict the store found, a value it cannot keep): returned as it is.
    Refused(CmsError),
}

impl From<CmsError> for Failure {
    fn from(error: CmsError) -> Self {
        Self::Refused(error)
    }
}

impl Failure {
    fn into_cms(self, what: &str, attempts: u32) -> CmsError {
        match self {
            Self::Refused(error) => error,
            Self::Database { context, error } => {
                if let Some(constraint) = taken(&error) {
                    CmsError::Conflict {
                        what: format!("{what}: {context}: another writer got there first ({constraint})"),
                    }
                } else if retryable(&error) {
                    CmsError::Conflict {
                        what: format!(
                            "{what}: {context}: {} (still, after {attempts} attempts)",
                            describe(&error)
                        ),
                    }
                } else {
                    CmsError::Store { message: format!("{what}: {context}: {}", describe(&error)) }
                }
            }
        }
    }
}

/// Database errors as [`Failure::Database`], naming what was being done.
trait OrFail<T> {
    fn or_fail(self, context: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T> OrFail<T> for Result<T, postgres::Error> {
    fn or_fail(self, context: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|error| Failure::Database { context: context(), error })
    }
}

/// Where a call's statements run.
enum Connection<'s, 't> {
    Single(&'s mut Client),
    Transaction(&'s mut Transaction<'t>),
}

/// One attempt of a call: its connection or transaction, and the session's prepared statements.
struct Work<'s, 't> {
    connection: Connection<'s, 't>,
    statements: &'s mut HashMap<String, Statement>,
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

impl Work<'_, '_> {
    /// The prepared statement of `sql` (prepared on first use in the session).
    fn statement(&mut self, sql: &str) -> Result<Statement, Failure> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = match &mut self.connection {
            Connection::Single(client) => client.prepare(sql),
            Connection::Transaction(transaction) => transaction.prepare(sql),
        }
        .or_fail(|| format!("prepare {}", sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ")))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn execute(
        &mut self,
        sql: &str,
        params: &Params<'_>,
        context: impl FnOnce() -> String,
    ) -> Result<u64, Failure> {
        let statement = self.statement(sql)?;
        match &mut self.connection {
            Connection::Single(client) => client.execute(&statement, params),
            Connection::Transaction(transaction) => transaction.execute(&statement, params),
        }
        .or_fail(context)
    }

    fn query(
        &mut self,
        sql: &str,
        params: &Params<'_>,
        context: impl FnOnce() -> String,
    ) -> Result<Vec<Row>, Failure> {
        let statement = self.statement(sql)?;
        match &mut self.connection {
            Connection::Single(client) => client.query(&statement, params),
            Connection::Transaction(transaction) => transaction.query(&statement, params),
        }
        .or_fail(context)
    }

    fn query_opt(
        &mut self,
        sql: &str,
        params: &Params<'_>,
        context: impl FnOnce() -> String,
    ) -> Result<Option<Row>, Failure> {
        let statement = self.statement(sql)?;
        match &mut self.connection {
            Connection::Single(client) => client.query_opt(&statement, params),
            Connection::Transaction(transaction) => transaction.query_opt(&statement, params),
        }
        .or_fail(context)
    }

    /// The number of the last event (0 when there is none).
    fn last_event(&mut self) -> Result<u64, Failure> {
        let row = self.query_opt(LAST_EVENT, &[], || "read the last event number".into())?;
        let last: i64 = match row {
            Some(row) => row.try_get(0).or_fail(|| "read the last event number".into())?,
            None => 0,
        };
        Ok(u64::try_from(last).or_store(|| "the last event number".into())?)
    }

    /// The audit head row (genesis when there is none).
    fn head(&mut self) -> Result<AuditHead, Failure> {
        let context = || "read the audit head".to_owned();
        let Some(row) = self.query_opt(READ_HEAD, &[], context)? else { return Ok(AuditHead::genesis()) };
        let seq: i64 = row.try_get(0).or_fail(context)?;
        Ok(AuditHead { seq: u64::try_from(seq).or_store(context)?, hash: row.try_get(1).or_fail(context)? })
    }

    /// Check `audit` extends the head with the events `first..first + count`, for a call that writes it.
    fn check_audit(&mut self, audit: &AuditRecord, count: u64) -> Result<(), Failure> {
        let first = self.last_event()? + 1;
        check_extends(audit, &self.head()?, first, count)?;
        Ok(())
    }

    /// Insert an audit record (as `json`) and move the head to it.
    fn append_audit(&mut self, audit: &AuditRecord, json: &str) -> Result<(), Failure> {
        let seq = i64::try_from(audit.seq).or_store(|| "audit record number".into())?;
        self.execute(INSERT_AUDIT, &[&seq, &json], || format!("append audit record {seq}"))?;
        self.execute(MOVE_HEAD, &[&seq, &audit.hash], || format!("move the audit head to {seq}"))?;
        Ok(())
    }
}

const LAST_EVENT: &str = "SELECT seq FROM events ORDER BY seq DESC LIMIT 1";

const READ_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

const INSERT_AUDIT: &str = "INSERT INTO audit (seq, record) VALUES ($1, $2)";

const MOVE_HEAD: &str = "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash";

/// Events `$1, $1 + 1, ...`, one per JSON text of `$4`, all recorded by `$2` at `$3`: one round trip.
const INSERT_EVENTS: &str = "INSERT INTO events (seq, actor, at, event) \
     SELECT $1::bigint + appended.position - 1, $2::text, $3::text, appended.event \
     FROM unnest($4::text[]) WITH ORDINALITY AS appended (event, position)";

const READ_EVENTS: &str = "SELECT seq, actor, at, event FROM events WHERE seq > $1 ORDER BY seq";

const READ_AUDIT: &str = "SELECT seq, record FROM audit ORDER BY seq";

const INSERT_DOCUMENT: &str =
    "INSERT INTO documents (kind, key, body) VALUES ($1, $2, $3) ON CONFLICT (kind, key) DO NOTHING";

const UPSERT_DOCUMENT: &str = "INSERT INTO documents (kind, key, body) VALUES ($1, $2, $3) \
     ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body";

const READ_DOCUMENTS: &str =
    "SELECT key, body FROM documents WHERE kind = $1 AND key >= $2 AND key < $3 ORDER BY key";

const READ_DOCUMENTS_FROM: &str =
    "SELECT key, body FROM documents WHERE kind = $1 AND key >= $2 ORDER BY key";

const DELETE_CHECKPOINT: &str =
    "DELETE FROM checkpoints WHERE region = $1 AND subscriber IS NOT DISTINCT FROM $2::text";

const INSERT_CHECKPOINT: &str =
    "INSERT INTO checkpoints (region, subscriber, granularity, reported_until) VALUES ($1, $2, $3, $4)";

const READ_CHECKPOINTS: &str = "SELECT region, subscriber, granularity, reported_until FROM checkpoints \
     ORDER BY region, subscriber IS NOT NULL, subscriber";

/// The first occurrences of new keys, many records per round trip; returns the keys it inserted.
const INSERT_USAGE: &str = "INSERT INTO usage (subscription_folded, meter, start_ns, end_ns, \
     resource_uri_folded, subscription, resource_uri, quantity, location, tags, additional_info, cost_amount, \
     cost_currency, cost_minor_unit, adjustments) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], \
     $15::text[]) \
     ON CONFLICT ON CONSTRAINT usage_natural_key DO NOTHING \
     RETURNING subscription_folded, meter, start_ns, end_ns, resource_uri_folded";

const UPDATE_USAGE: &str = "UPDATE usage SET subscription = $2, resource_uri = $3, quantity = $4, \
     location = $5, tags = $6, additional_info = $7, cost_amount = $8, cost_currency = $9, \
     cost_minor_unit = $10, adjustments = $11 WHERE id = $1";

const KEY_MATCHES: &str = "subscription_folded = $1 AND meter = $2 AND start_ns = $3 AND end_ns = $4 \
     AND resource_uri_folded = $5";

const SAMPLE_INTERVAL: &str = "SELECT start_ns, end_ns FROM usage WHERE subscription_folded = $1 \
     AND cost_amount IS NULL AND start_ns BETWEEN $2 AND $3 ORDER BY start_ns LIMIT 1";

const PURGE_USAGE: &str = "DELETE FROM usage WHERE start_ns BETWEEN $1 AND $2";

fn usage_by_key() -> String {
    format!("SELECT {RECORD_COLUMNS}, id FROM usage WHERE {KEY_MATCHES}")
}

fn usage_of_period() -> String {
    format!(
        "SELECT {RECORD_COLUMNS} FROM usage WHERE start_ns BETWEEN $1 AND $2 \
         ORDER BY subscription_folded, meter, start_ns, end_ns, resource_uri_folded"
    )
}

impl Store for PostgresStore {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<u64, CmsError> {
        let actor = commit.actor;
        let what = || format!("commit of {actor} in {}", self.name);
        let at = text_of(commit.at).or_store(what)?;
        let events: Vec<String> = commit
            .events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()
            .or_store(|| format!("{}: an event as JSON", what()))?;
        let audit = commit
            .audit
            .map(|audit| serde_json::to_string(audit).map(|json| (audit, json)))
            .transpose()
            .or_store(|| format!("{}: the audit record as JSON", what()))?;
        let count = events.len() as u64;
        self.transact(&what, Mode::ReadWrite, |work| {
            let last = work.last_event()?;
            if let Some((audit, _)) = &audit {
                check_extends(audit, &work.head()?, last + 1, count)?;
            }
            if !events.is_empty() {
                let first = i64::try_from(last + 1).or_store(|| "event number".into())?;
                work.execute(INSERT_EVENTS, &[&first, &actor, &at, &events], || {
                    format!("append events {}..={}", last + 1, last + count)
                })?;
            }
            for document in commit.documents {
                let inserted =
                    work.execute(INSERT_DOCUMENT, &[&document.kind, &document.key, &document.body], || {
                        format!("insert document {} {}", document.kind, document.key)
                    })?;
                if inserted == 0 {
                    return Err(Failure::Refused(CmsError::Conflict {
                        what: format!("document {} {} exists", document.kind, document.key),
                    }));
                }
            }
            if let Some((audit, json)) = &audit {
                work.append_audit(audit, json)?;
            }
            Ok(last + count)
        })
    }

    fn events(&self) -> Result<Vec<EventRecord>, CmsError> {
        self.events_after(0)
    }

    fn events_after(&self, seq: u64) -> Result<Vec<EventRecord>, CmsError> {
        let what = || format!("read the events after {seq} in {}", self.name);
        let after = i64::try_from(seq).or_store(what)?;
        let (rows, head) = self.transact(&what, Mode::ReadOnly, |work| {
            Ok((work.query(READ_EVENTS, &[&after], String::new)?, work.head()?))
        })?;
        let events = rows.iter().map(event_of_row).collect::<Result<_, _>>()?;
        self.head_with_events.set(Some(head));
        Ok(events)
    }

    fn audit_records(&self) -> Result<Vec<AuditRecord>, CmsError> {
        let what = || format!("read the audit trail in {}", self.name);
        let rows = self.transact(&what, Mode::Single, |work| work.query(READ_AUDIT, &[], String::new))?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(|error| describe(&error)).or_store(what)?;
                let text: String = row
                    .try_get(1)
                    .map_err(|error| describe(&error))
                    .or_store(|| format!("read audit record {seq}"))?;
                serde_json::from_str(&text).or_store(|| format!("audit record {seq} is not a record"))
            })
            .collect()
    }

    // The method path (`Work::head`) is not general enough over `Work`'s lifetimes; the closure is.
    #[allow(clippy::redundant_closure_for_method_calls)]
    fn audit_head(&self) -> Result<AuditHead, CmsError> {
        // Right after `events_after`: the head of the same snapshot (see `PostgresStore::head_with_events`).
        if let Some(head) = self.head_with_events.take() {
            return Ok(head);
        }
        let what = || format!("read the audit head in {}", self.name);
        self.transact(&what, Mode::Single, |work| work.head())
    }

    fn put_documents(&mut self, documents: &[Document]) -> Result<(), CmsError> {
        let what = || format!("put {} documents in {}", documents.len(), self.name);
        self.transact(&what, Mode::ReadWrite, |work| {
            for document in documents {
                work.execute(UPSERT_DOCUMENT, &[&document.kind, &document.key, &document.body], || {
                    format!("put document {} {}", document.kind, document.key)
                })?;
            }
            Ok(())
        })
    }

    fn documents(&self, kind: &str, key_prefix: &str) -> Result<Vec<Document>, CmsError> {
        let what = || format!("read documents {kind} {key_prefix}* in {}", self.name);
        // A range scan of the primary key: the keys from the prefix up to the first text past every key that
        // starts with it (byte order, as in Rust).
        let rows = self.transact(&what, Mode::Single, |work| match prefix_upper_bound(key_prefix) {
            Some(bound) => work.query(READ_DOCUMENTS, &[&kind, &key_prefix, &bound], String::new),
            None => work.query(READ_DOCUMENTS_FROM, &[&kind, &key_prefix], String::new),
        })?;
        let mut documents = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get(0).map_err(|error| describe(&error)).or_store(what)?;
            if key.starts_with(key_prefix) {
                let body = row.try_get(1).map_err(|error| describe(&error)).or_store(what)?;
                documents.push(Document { kind: kind.to_owned(), key, body });
            }
        }
        Ok(documents)
    }

    fn put_usage_audited(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
        audit: Option<&AuditRecord>,
    ) -> Result<UsageWrite, CmsError> {
        let what = || format!("put {} usage records in {}", records.len(), self.name);
        let columns = UsageColumns::of(records)?;
        let checkpoint = checkpoint
            .map(|checkpoint| {
                checkpoint_columns(checkpoint).map(|(granularity, until)| (checkpoint, granularity, until))
            })
            .transpose()
            .or_store(|| format!("{}: the checkpoint", what()))?;
        let audit = audit
            .map(|audit| serde_json::to_string(audit).map(|json| (audit, json)))
            .transpose()
            .or_store(|| format!("{}: the audit record as JSON", what()))?;
        self.transact(&what, Mode::ReadWrite, |work| {
            if let Some((audit, _)) = &audit {
                work.check_audit(audit, 0)?;
            }
            if let Some((checkpoint, granularity, until)) = &checkpoint {
                let context = || {
                    format!(
                        "put the checkpoint of region {:?} subscriber {:?}",
                        checkpoint.region, checkpoint.subscriber
                    )
                };
                work.execute(DELETE_CHECKPOINT, &[&checkpoint.region, &checkpoint.subscriber], context)?;
                work.execute(
                    INSERT_CHECKPOINT,
                    &[&checkpoint.region, &checkpoint.subscriber, granularity, until],
                    context,
                )?;
            }
            let write = columns.write(work, records)?;
            // Last: the head row is the one every writer updates, so its lock is held for the shortest time.
            if let Some((audit, json)) = &audit {
                work.append_audit(audit, json)?;
            }
            Ok(write)
        })
    }

    fn purge_usage(&mut self, period: &Period, audit: Option<&AuditRecord>) -> Result<u64, CmsError> {
        let what = || format!("purge usage of {period} in {}", self.name);
        let audit = audit
            .map(|audit| serde_json::to_string(audit).map(|json| (audit, json)))
            .transpose()
            .or_store(|| format!("{}: the audit record as JSON", what()))?;
        self.transact(&what, Mode::ReadWrite, |work| {
            if let Some((audit, _)) = &audit {
                work.check_audit(audit, 0)?;
            }
            let deleted = match period_nanos(period) {
                Some((low, high)) => work.execute(PURGE_USAGE, &[&low, &high], String::new)?,
                None => 0,
            };
            if let Some((audit, json)) = &audit {
                work.append_audit(audit, json)?;
            }
            Ok(deleted)
        })
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, CmsError> {
        // The order of `MemoryStore`: by region, then the whole-stamp checkpoint, then by subscriber.
        let what = || format!("read checkpoints in {}", self.name);
        let rows =
            self.transact(&what, Mode::Single, |work| work.query(READ_CHECKPOINTS, &[], String::new))?;
        rows.iter().map(checkpoint_of_row).collect()
    }

    fn usage(&self, key: &UsageKey) -> Result<Option<UsageRecord>, CmsError> {
        let what = || {
            format!(
                "read usage of subscription {} (meter {}, start {}, resource {:?}) in {}",
                key.subscription,
                key.meter,
                key.start.to_rfc3339(),
                key.resource_uri,
                self.name
            )
        };
        // A key whose instants cannot be stored matches no stored record.
        let Ok(key) = KeyColumns::of(key) else { return Ok(None) };
        let sql = usage_by_key();
        let row =
            self.transact(&what, Mode::Single, |work| work.query_opt(&sql, &key.params(), String::new))?;
        row.as_ref().map(record_of_row).transpose()
    }

    fn sample_interval(
        &self,
        subscription: &str,
        period: &Period,
    ) -> Result<Option<(Instant, Instant)>, CmsError> {
        let Some((low, high)) = period_nanos(period) else { return Ok(None) };
        let what =
            || format!("read a usage interval of subscription {subscription} in {period} in {}", self.name);
        let folded = subscription.to_ascii_lowercase();
        let row = self.transact(&what, Mode::Single, |work| {
            work.query_opt(SAMPLE_INTERVAL, &[&folded, &low, &high], String::new)
        })?;
        let Some(row) = row else { return Ok(None) };
        let start: i64 = row.try_get(0).map_err(|error| describe(&error)).or_store(what)?;
        let end: i64 = row.try_get(1).map_err(|error| describe(&error)).or_store(what)?;
        Ok(Some((instant_of_nanos(start), instant_of_nanos(end))))
    }

    fn for_each_usage(
        &self,
        period: &Period,
        visit: &mut dyn FnMut(&UsageRecord) -> Result<(), CmsError>,
    ) -> Result<(), CmsError> {
        self.head_with_events.take();
        let Some((low, high)) = period_nanos(period) else { return Ok(()) };
        let what = || format!("read usage of {period} in {}", self.name);
        let sql = usage_of_period();
        let mut session = self.session()?;
        let Session { client, statements } = &mut *session;
        // READ ONLY DEFERRABLE: the snapshot is taken when it is safe, after which the transaction cannot
        // fail with a serialization failure; so it never has to run again after visiting some records.
        let mut transaction = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .read_only(true)
            .deferrable(true)
            .start()
            .map_err(|error| describe(&error))
            .or_store(|| format!("{}: begin", what()))?;
        let statement = if let Some(statement) = statements.get(&sql) {
            statement.clone()
        } else {
            let statement = transaction.prepare(&sql).map_err(|error| describe(&error)).or_store(what)?;
            statements.insert(sql.clone(), statement.clone());
            statement
        };
        let portal =
            transaction.bind(&statement, &[&low, &high]).map_err(|error| describe(&error)).or_store(what)?;
        loop {
            let rows = transaction
                .query_portal(&portal, FETCH_ROWS)
                .map_err(|error| describe(&error))
                .or_store(what)?;
            for row in &rows {
                // The visitor's own error goes back as it is.
                visit(&record_of_row(row)?)?;
            }
            if rows.len() < usize::try_from(FETCH_ROWS).unwrap_or(usize::MAX) {
                break;
            }
        }
        transaction.commit().map_err(|error| describe(&error)).or_store(|| format!("{}: commit", what()))
    }
}

/// An event of a row `(seq, actor, at, event)`.
fn event_of_row(row: &Row) -> Result<EventRecord, CmsError> {
    let seq: i64 = row.try_get(0).map_err(|error| describe(&error)).or_store(|| "read events".into())?;
    let read = || -> Result<EventRecord, String> {
        let at: String = row.try_get(2).map_err(|error| describe(&error))?;
        let event: String = row.try_get(3).map_err(|error| describe(&error))?;
        Ok(EventRecord {
            seq: u64::try_from(seq).map_err(|error| error.to_string())?,
            actor: row.try_get(1).map_err(|error| describe(&error))?,
            at: instant_of_text(&at)?,
            event: serde_json::from_str(&event).map_err(|error| format!("bad event {event}: {error}"))?,
        })
    };
    read().or_store(|| format!("read event {seq}"))
}

impl KeyColumns {
    /// The parameters of [`KEY_MATCHES`].
    fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [&self.subscription_folded, &self.meter, &self.start_ns, &self.end_ns, &self.resource_uri_folded]
    }
}

/// The columns of a batch of usage records, computed once before the transaction (and its retries).
struct UsageColumns {
    keys: Vec<KeyColumns>,
    values: Vec<ValueColumns>,
    /// Whether each record is the first of its key in the batch: only those go to the bulk insert, so a key
    /// given twice is inserted by its first record and compared with the second, in order.
    first: Vec<bool>,
}

impl UsageColumns {
    fn of(records: &[UsageRecord]) -> Result<Self, CmsError> {
        let mut keys = Vec::with_capacity(records.len());
        let mut values = Vec::with_capacity(records.len());
        for record in records {
            let context = || {
                format!(
                    "put usage of subscription {} (meter {}, start {}, resource {:?})",
                    record.subscription,
                    record.meter,
                    record.start.to_rfc3339(),
                    record.resource_uri
                )
            };
            keys.push(KeyColumns::of_record(record).or_store(context)?);
            values.push(ValueColumns::of(record).or_store(context)?);
        }
        let mut seen = HashSet::with_capacity(keys.len());
        let first = keys.iter().map(|key| seen.insert(key)).collect();
        Ok(Self { keys, values, first })
    }

    /// Store the records: bulk-insert the first record of each key that is new, then take the others in
    /// order, each a duplicate or a correction of what is stored by then.
    fn write(&self, work: &mut Work<'_, '_>, records: &[UsageRecord]) -> Result<UsageWrite, Failure> {
        let mut write = UsageWrite::default();
        let firsts: Vec<usize> = (0..records.len()).filter(|&index| self.first[index]).collect();
        let mut inserted = HashSet::new();
        for chunk in firsts.chunks(INSERT_ROWS) {
            let arrays = UsageArrays::of(self, records, chunk);
            let rows = work
                .query(INSERT_USAGE, &arrays.params(), || format!("insert {} usage records", chunk.len()))?;
            for row in rows {
                let context = || "read the inserted usage keys".to_owned();
                inserted.insert(KeyColumns {
                    subscription_folded: row.try_get(0).or_fail(context)?,
                    meter: row.try_get(1).or_fail(context)?,
                    start_ns: row.try_get(2).or_fail(context)?,
                    end_ns: row.try_get(3).or_fail(context)?,
                    resource_uri_folded: row.try_get(4).or_fail(context)?,
                });
            }
        }
        let select = usage_by_key();
        for (index, record) in records.iter().enumerate() {
            let key = &self.keys[index];
            if self.first[index] && inserted.contains(key) {
                write.inserted += 1;
                continue;
            }
            let context = || {
                format!(
                    "put usage of subscription {} (meter {}, start {}, resource {:?})",
                    record.subscription,
                    record.meter,
                    record.start.to_rfc3339(),
                    record.resource_uri
                )
            };
            let row = work.query_opt(&select, &key.params(), context)?.ok_or_else(|| CmsError::Store {
                message: format!("{}: the insert conflicted but no record has this key", context()),
            })?;
            let stored = record_of_row(&row)?;
            if same_values(&stored, record) {
                write.duplicates += 1;
                continue;
            }
            let id: i64 = row.try_get(13).or_fail(context)?;
            let values = &self.values[index];
            work.execute(
                UPDATE_USAGE,
                &[
                    &id,
                    &record.subscription,
                    &record.resource_uri,
                    &values.quantity,
                    &record.location,
                    &values.tags,
                    &values.additional_info,
                    &values.cost_amount,
                    &values.cost_currency,
                    &values.cost_minor_unit,
                    &values.adjustments,
                ],
                context,
            )?;
            write.corrections.push(StoredCorrection {
                key: record.key(),
                old_quantity: stored.quantity,
                new_quantity: record.quantity,
            });
        }
        Ok(write)
    }
}

/// The columns of some records of a batch as arrays, the parameters of [`INSERT_USAGE`].
#[derive(Default)]
struct UsageArrays<'a> {
    subscription_folded: Vec<&'a str>,
    meter: Vec<&'a str>,
    start_ns: Vec<i64>,
    end_ns: Vec<i64>,
    resource_uri_folded: Vec<&'a str>,
    subscription: Vec<&'a str>,
    resource_uri: Vec<&'a str>,
    quantity: Vec<&'a str>,
    location: Vec<&'a str>,
    tags: Vec<Option<&'a str>>,
    additional_info: Vec<Option<&'a str>>,
    cost_amount: Vec<Option<&'a str>>,
    cost_currency: Vec<Option<&'a str>>,
    cost_minor_unit: Vec<Option<i64>>,
    adjustments: Vec<Option<&'a str>>,
}

impl<'a> UsageArrays<'a> {
    /// The arrays of the records at `indexes`.
    fn of(columns: &'a UsageColumns, records: &'a [UsageRecord], indexes: &[usize]) -> Self {
        let mut arrays = Self::default();
        for &index in indexes {
            let (key, values, record) = (&columns.keys[index], &columns.values[index], &records[index]);
            arrays.subscription_folded.push(&key.subscription_folded);
            arrays.meter.push(&key.meter);
            arrays.start_ns.push(key.start_ns);
            arrays.end_ns.push(key.end_ns);
            arrays.resource_uri_folded.push(&key.resource_uri_folded);
            arrays.subscription.push(&record.subscription);
            arrays.resource_uri.push(&record.resource_uri);
            arrays.quantity.push(&values.quantity);
            arrays.location.push(&record.location);
            arrays.tags.push(values.tags.as_deref());
            arrays.additional_info.push(values.additional_info.as_deref());
            arrays.cost_amount.push(values.cost_amount.as_deref());
            arrays.cost_currency.push(values.cost_currency.as_deref());
            arrays.cost_minor_unit.push(values.cost_minor_unit);
            arrays.adjustments.push(values.adjustments.as_deref());
        }
        arrays
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 15] {
        [
            &self.subscription_folded,
            &self.meter,
            &self.start_ns,
            &self.end_ns,
            &self.resource_uri_folded,
            &self.subscription,
            &self.resource_uri,
            &self.quantity,
            &self.location,
            &self.tags,
            &self.additional_info,
            &self.cost_amount,
            &self.cost_currency,
            &self.cost_minor_unit,
            &self.adjustments,
        ]
    }
}
