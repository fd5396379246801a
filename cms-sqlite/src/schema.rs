//! Schema migrations, versioned in this crate.
//!
//! [`MIGRATIONS`] is an ordered list of SQL scripts (`src/migrations/NNNN_name.sql`). The database records the
//! version it is at in `PRAGMA user_version` (0 for a new file) and is marked as a CMS store by `PRAGMA
//! application_id`. Opening applies each pending script in its own immediate transaction, together with the
//! new version number, so a crash leaves the database at one version or the next, never between; and two
//! processes opening the same new file do not both migrate it (the second sees the version the first wrote).
//!
//! A database at a version newer than [`SCHEMA_VERSION`] was written by a newer CMS: it is refused, never
//! downgraded. So is a SQLite database of another application.

use cms_core::CmsError;
use rusqlite::{Connection, TransactionBehavior};

use crate::codec::OrStore;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version the database is at after this script (1, 2, ...: one more than the one before).
    pub version: u32,
    /// A short name (the script's file name without number and extension).
    pub name: &'static str,
    /// The SQL, run as one batch.
    pub sql: &'static str,
}

/// Every migration, oldest first. Append only: a published script never changes.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("migrations/0001_initial.sql") },
    Migration { version: 2, name: "audit", sql: include_str!("migrations/0002_audit.sql") },
];

/// The schema version this crate writes and reads: the version of the last migration.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// `PRAGMA application_id` of a CMS store: "CMS1" in ASCII, so tools such as `file(1)` can tell our files.
pub const APPLICATION_ID: i32 = 0x434D_5331;

/// Bring the database to [`SCHEMA_VERSION`]; returns how many migrations were applied. `name` names the
/// database in errors.
pub(crate) fn migrate(connection: &mut Connection, name: &str) -> Result<u32, CmsError> {
    let mut applied = 0;
    // Refuses a database that is not ours or newer than this crate; an up-to-date one takes no write lock.
    let version = check_version(connection, name)?;
    for migration in MIGRATIONS.iter().filter(|migration| migration.version > version) {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_store(|| format!("migrate {name}: begin"))?;
        // Read inside the transaction: another process may have migrated since the last step.
        let version = check_version(&transaction, name)?;
        if version >= migration.version {
            continue;
        }
        transaction.execute_batch(migration.sql).or_store(|| {
            format!("migrate {name} to schema version {} ({})", migration.version, migration.name)
        })?;
        transaction
            .pragma_update(None, "user_version", migration.version)
            .and_then(|()| transaction.pragma_update(None, "application_id", APPLICATION_ID))
            .and_then(|()| transaction.commit())
            .or_store(|| {
                format!("migrate {name} to schema version {}: record the version", migration.version)
            })?;
        applied += 1;
    }
    Ok(applied)
}

/// The schema version of the database, after checking it is a CMS store this crate can use.
fn check_version(connection: &Connection, name: &str) -> Result<u32, CmsError> {
    let read = |pragma: &str| {
        connection
            .pragma_query_value(None, pragma, |row| row.get::<_, i64>(0))
            .or_store(|| format!("open {name}: read the {pragma}"))
    };
    let application_id = read("application_id")?;
    let version = read("user_version")?;
    if application_id != 0 && application_id != i64::from(APPLICATION_ID) {
        return Err(CmsError::Store {
            message: format!(
                "open {name}: not a CMS store (SQLite application id {application_id:#x}, expected \
                 {APPLICATION_ID:#x})"
            ),
        });
    }
    if application_id == 0 && version == 0 {
        let objects: i64 = connection
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .or_store(|| format!("open {name}: read the schema"))?;
        if objects > 0 {
            return Err(CmsError::Store {
                message: format!(
                    "open {name}: a SQLite database of another application (it has {objects} tables or \
                     indexes but no CMS schema version); use a new file for the CMS store"
                ),
            });
        }
    }
    match u32::try_from(version) {
        Ok(version) if version <= SCHEMA_VERSION => Ok(version),
        _ => Err(CmsError::Store {
            message: format!(
                "open {name}: schema version {version} is newer than this cms-sqlite knows \
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
}
