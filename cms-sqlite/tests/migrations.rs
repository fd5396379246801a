//! Schema versions: a new database is migrated, an up-to-date one is left alone, a newer one is refused.

use cms_core::CmsError;
use cms_core::store::Store;
use cms_sqlite::SqliteStore;
use cms_sqlite::schema::{APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION};

fn pragma(path: &std::path::Path, name: &str) -> i64 {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.pragma_query_value(None, name, |row| row.get(0)).unwrap()
}

#[test]
fn a_new_database_gets_every_migration_and_a_reopened_one_none() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cms.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.migrations_applied() as usize, MIGRATIONS.len());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);
    assert_eq!(pragma(&path, "user_version"), i64::from(SCHEMA_VERSION));
    assert_eq!(pragma(&path, "application_id"), i64::from(APPLICATION_ID));

    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.migrations_applied(), 0);
    assert_eq!(reopened.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SqliteStore::open_in_memory().unwrap().migrations_applied() as usize, MIGRATIONS.len());
}

#[test]
fn an_empty_file_is_a_new_store() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(store.events().unwrap().is_empty());
}

#[test]
fn a_database_from_a_newer_cms_is_refused_and_left_as_it_is() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cms.db");
    drop(SqliteStore::open(&path).unwrap());
    let future = SCHEMA_VERSION + 1;
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.pragma_update(None, "user_version", future).unwrap();
    drop(connection);

    let error = SqliteStore::open(&path).unwrap_err();
    let CmsError::Store { message } = &error else { panic!("{error:?}") };
    assert!(message.contains(&format!("schema version {future} is newer")), "{message}");
    assert!(message.contains("cms.db"), "{message}");
    assert_eq!(pragma(&path, "user_version"), i64::from(future), "no downgrade");
}

#[test]
fn a_negative_schema_version_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cms.db");
    drop(SqliteStore::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.pragma_update(None, "user_version", -1).unwrap();
    drop(connection);
    assert!(SqliteStore::open(&path).is_err());
}
