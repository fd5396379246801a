//! Invoice documents on a SQLite file: the golden scenario of `tests/scenarios/invoicing.json` replayed
//! with the engine closed and opened again before every step, giving what the memory store gives; issued
//! bodies altered behind the engine's back (raw SQL) are found by their hash.

#[path = "../../cms-core/tests/support/invoicing_scenario.rs"]
mod invoicing_scenario;

use cms_core::engine::{Cms, INVOICE_DOCUMENT, Principal};
use cms_core::store::{MemoryStore, Store};
use cms_sqlite::SqliteStore;

fn replay_on_file(path: &std::path::Path) -> Cms<SqliteStore> {
    let mut reopen = |cms: Cms<SqliteStore>| {
        drop(cms);
        Cms::open(SqliteStore::open(path).unwrap()).unwrap()
    };
    invoicing_scenario::replay(Cms::open(SqliteStore::open(path).unwrap()).unwrap(), &mut reopen)
}

#[test]
fn the_golden_scenario_survives_a_reopen_before_every_step_and_matches_the_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cms.db");
    let on_file = replay_on_file(&path);
    let in_memory = invoicing_scenario::replay(Cms::open(MemoryStore::new()).unwrap(), &mut |cms| cms);
    let operator = Principal::platform("operator");
    assert_eq!(on_file.state().issued, in_memory.state().issued, "same numbers, hashes, voids");
    assert_eq!(
        on_file.invoice_documents(&operator, None).unwrap(),
        in_memory.invoice_documents(&operator, None).unwrap()
    );
    assert_eq!(
        on_file.store().documents(INVOICE_DOCUMENT, "").unwrap(),
        in_memory.store().documents(INVOICE_DOCUMENT, "").unwrap(),
        "byte-identical bodies"
    );
    assert!(on_file.verify_documents().unwrap().is_empty());
}

#[test]
fn a_body_altered_in_the_database_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cms.db");
    drop(replay_on_file(&path));
    let connection = rusqlite::Connection::open(&path).unwrap();
    let changed = connection
        .execute(
            "UPDATE documents SET body = replace(body, '\"63.38\"', '\"6.38\"') WHERE kind = ?1 AND key LIKE '%platform-000001'",
            [INVOICE_DOCUMENT],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(connection);
    let cms = Cms::open(SqliteStore::open(&path).unwrap()).unwrap();
    assert_eq!(cms.verify_documents().unwrap(), ["platform-000001"]);
    let error = cms.issued_document(&Principal::platform("operator"), "platform-000001").unwrap_err();
    assert_eq!(error.code(), "store");
}
