//! Schema versions: a new schema is migrated once even when several connections race for it, an up-to-date
//! one is left alone, a newer one and another application's tables are refused; `connect` uses the search
//! path's schema.

mod support;

use cms_core::CmsError;
use cms_core::store::Store;
use cms_postgres::PostgresStore;
use cms_postgres::schema::{MIGRATIONS, SCHEMA_VERSION};

#[test]
fn a_new_schema_gets_every_migration_and_a_reconnected_one_none() {
    let Some(scratch) = support::Scratch::new("new_schema_migrated") else { return };
    let store = scratch.store();
    assert_eq!(store.migrations_applied() as usize, MIGRATIONS.len());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.schema(), scratch.schema);
    assert!(store.name().ends_with(&format!("schema {}", scratch.schema)), "{}", store.name());
    let reconnected = scratch.store();
    assert_eq!(reconnected.migrations_applied(), 0);
    let mut client = scratch.client();
    let versions: Vec<(i32, String)> = client
        .query("SELECT version, name FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let expected: Vec<(i32, String)> = MIGRATIONS
        .iter()
        .map(|migration| (i32::try_from(migration.version).unwrap(), migration.name.to_owned()))
        .collect();
    assert_eq!(versions, expected);
}

#[test]
fn connections_that_race_for_a_new_schema_migrate_it_once() {
    let Some(scratch) = support::Scratch::new("migration_race") else { return };
    // With serializable as the session's default too: migrations must not take their snapshot before the lock.
    let separator = if scratch.url.contains('?') { '&' } else { '?' };
    let serializable =
        format!("{}{separator}options=-cdefault_transaction_isolation%3Dserializable", scratch.url);
    let barrier = std::sync::Barrier::new(6);
    let applied: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|index| {
                let (barrier, schema) = (&barrier, &scratch.schema);
                let url = if index % 2 == 0 { &scratch.url } else { &serializable };
                scope.spawn(move || {
                    barrier.wait();
                    PostgresStore::connect_in_schema(url, schema).unwrap().migrations_applied()
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    assert_eq!(applied.iter().sum::<u32>() as usize, MIGRATIONS.len(), "{applied:?}");
    assert!(scratch.store().events().unwrap().is_empty());
}

#[test]
fn a_schema_from_a_newer_cms_is_refused_and_left_as_it_is() {
    let Some(scratch) = support::Scratch::new("newer_schema") else { return };
    drop(scratch.store());
    let future = i32::try_from(SCHEMA_VERSION + 1).unwrap();
    let mut client = scratch.client();
    client.execute("INSERT INTO schema_version (version, name) VALUES ($1, 'future')", &[&future]).unwrap();
    let error = PostgresStore::connect_in_schema(&scratch.url, &scratch.schema).unwrap_err();
    let CmsError::Store { message } = &error else { panic!("{error:?}") };
    assert!(message.contains(&format!("schema version {future} is newer")), "{message}");
    assert!(message.contains(&scratch.schema), "{message}");
    let max: i32 = client.query_one("SELECT max(version) FROM schema_version", &[]).unwrap().get(0);
    assert_eq!(max, future, "no downgrade");
}

#[test]
fn a_schema_with_another_applications_tables_is_refused() {
    let Some(scratch) = support::Scratch::new("foreign_schema") else { return };
    let mut client = postgres::Client::connect(&scratch.url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".events (id int)",
            scratch.schema
        ))
        .unwrap();
    let error = PostgresStore::connect_in_schema(&scratch.url, &scratch.schema).unwrap_err();
    let CmsError::Store { message } = &error else { panic!("{error:?}") };
    assert!(message.contains("another application") && message.contains("events"), "{message}");
}

#[test]
fn connect_keeps_the_store_in_the_search_paths_schema() {
    let Some(scratch) = support::Scratch::new("search_path") else { return };
    let mut client = postgres::Client::connect(&scratch.url, postgres::NoTls).unwrap();
    client.batch_execute(&format!("CREATE SCHEMA \"{}\"", scratch.schema)).unwrap();
    let separator = if scratch.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}options=-csearch_path%3D{}", scratch.url, scratch.schema);
    let store = PostgresStore::connect(&url).unwrap();
    assert_eq!(store.schema(), scratch.schema);
    assert_eq!(store.migrations_applied() as usize, MIGRATIONS.len());
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = $1", &[&scratch.schema])
        .unwrap()
        .get(0);
    assert!(tables >= 7, "{tables}");
    let missing = format!("{}{separator}options=-csearch_path%3Dno_such_schema_here", scratch.url);
    let error = PostgresStore::connect(&missing).unwrap_err();
    assert!(error.to_string().contains("names no existing schema"), "{error}");
}
