//! Schema migrations, versioned in this crate.
//!
//! [`MIGRATIONS`] is an ordered list of SQL scripts (`src/migrations/NNNN_name.sql`). The schema records the
//! versions applied in its `schema_version` table (one row per migration: version, name, when). Connecting
//! applies the pending scripts in one transaction that first takes a transaction-level advisory lock keyed
//! by the schema's name ([`ADVISORY_LOCK_CLASS`] and a hash of the name): two processes connecting to a new
//! schema at once queue on the lock, and the second finds the tables the first created. PostgreSQL's DDL is
//! transactional, so a failed migration leaves the schema as it was.
//!
//! A schema at a version newer than [`SCHEMA_VERSION`] was written by a newer CMS: it is refused, never
//! downgraded. So is a schema that has tables of ours but no `schema_version` (another application's).

use cms_core::CmsError;
use postgres::{Client, IsolationLevel};

use crate::codec::{OrStore, describe};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version the schema is at after this script (1, 2, ...: one more than the one before).
    pub version: u32,
    /// A short name (the script's file name without number and extension).
    pub name: &'static str,
    /// The SQL, run as one batch.
    pub sql: &'static str,
}

/// Every migration, oldest first. Append only: a published script never changes.
pub const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "initial", sql: include_str!("migrations/0001_initial.sql") }];

/// The schema version this crate writes and reads: the version of the last migration.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The first key of the advisory lock migrations take ("CMS1" in ASCII); the second is a hash of the schema
/// name, so migrations of different schemas do not wait for each other.
pub const ADVISORY_LOCK_CLASS: i32 = 0x434D_5331;

/// The tables of the store (besides `schema_version`): finding one in a schema without `schema_version`
/// means the schema belongs to another application.
const TABLES: &[&str] = &["events", "documents", "checkpoints", "usage", "audit", "audit_head"];

/// A PostgreSQL identifier, quoted (`"a""b"` for `a"b`).
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The advisory lock's second key for `schema`: FNV-1a of its name.
fn lock_key(schema: &str) -> i32 {
    let hash =
        schema.bytes().fold(0x811C_9DC5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    i32::from_be_bytes(hash.to_be_bytes())
}

/// Bring `schema` (already the session's whole search path) to [`SCHEMA_VERSION`], creating the schema first
/// when `create` is set; returns how many migrations were applied. `name` names the database in errors.
pub(crate) fn migrate(client: &mut Client, schema: &str, create: bool, name: &str) -> Result<u32, CmsError> {
    let context = |what: &str| format!("migrate {name}: {what}");
    // READ COMMITTED whatever the database's default: each statement sees what committed before it, so after
    // waiting for the lock this transaction sees the tables the lock's previous holder created (a
    // serializable snapshot would be taken before the wait, by the statement that takes the lock).
    let mut transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .map_err(|error| describe(&error))
        .or_store(|| context("begin"))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1, $2)", &[&ADVISORY_LOCK_CLASS, &lock_key(schema)])
        .map_err(|error| describe(&error))
        .or_store(|| context("take the migration lock"))?;
    if create {
        transaction
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_identifier(schema)))
            .map_err(|error| describe(&error))
            .or_store(|| context("create the schema"))?;
    }
    let version = current_version(&mut transaction, schema, name)?;
    let mut applied = 0;
    for migration in MIGRATIONS.iter().filter(|migration| migration.version > version) {
        let step = || context(&format!("schema version {} ({})", migration.version, migration.name));
        transaction.batch_execute(migration.sql).map_err(|error| describe(&error)).or_store(step)?;
        transaction
            .execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                &[&i32::try_from(migration.version).or_store(step)?, &migration.name],
            )
            .map_err(|error| describe(&error))
            .or_store(step)?;
        applied += 1;
    }
    transaction.commit().map_err(|error| describe(&error)).or_store(|| context("commit"))?;
    Ok(applied)
}

/// The schema's version (0 for a new one, after creating `schema_version`), after checking it is a CMS
/// store this crate can use. Runs under the migration lock.
fn current_version(
    transaction: &mut postgres::Transaction<'_>,
    schema: &str,
    name: &str,
) -> Result<u32, CmsError> {
    let context = || format!("migrate {name}: read the schema version");
    let tables: Vec<String> = transaction
        .query(
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = ANY($2) \
             ORDER BY tablename",
            &[&schema, &[&["schema_version"], TABLES].concat()],
        )
        .map_err(|error| describe(&error))
        .or_store(context)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|error| describe(&error))
        .or_store(context)?;
    if !tables.iter().any(|table| table == "schema_version") {
        if !tables.is_empty() {
            return Err(CmsError::Store {
                message: format!(
                    "open {name}: schema {schema:?} has tables of another application ({}) but no CMS schema \
                     version; use a new schema for the CMS store",
                    tables.join(", ")
                ),
            });
        }
        transaction
            .batch_execute(
                "CREATE TABLE schema_version (\
                     version    INTEGER PRIMARY KEY CHECK (version >= 1), \
                     name       TEXT NOT NULL, \
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .map_err(|error| describe(&error))
            .or_store(context)?;
        return Ok(0);
    }
    read_version(transaction, name)
}

/// The highest version in `schema_version`, refused when it is newer than this crate knows.
pub(crate) fn read_version(client: &mut impl postgres::GenericClient, name: &str) -> Result<u32, CmsError> {
    let version: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .and_then(|row| row.try_get(0))
        .map_err(|error| describe(&error))
        .or_store(|| format!("open {name}: read the schema version"))?;
    match u32::try_from(version) {
        Ok(version) if version <= SCHEMA_VERSION => Ok(version),
        _ => Err(CmsError::Store {
            message: format!(
                "open {name}: schema version {version} is newer than this cms-postgres knows \
                 ({SCHEMA_VERSION}); it was written by a newer CMS, use that version (no downgrade)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
        }
        assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len());
    }

    #[test]
    fn identifiers_are_quoted_and_lock_keys_differ_by_schema() {
        assert_eq!(quote_identifier("cms"), "\"cms\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_ne!(lock_key("cms_a"), lock_key("cms_b"));
        assert_eq!(lock_key("cms_a"), lock_key("cms_a"));
    }
}
