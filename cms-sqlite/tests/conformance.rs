//! The store conformance suite of `cms-core`, on a new file and in memory.

use cms_core::store::{MemoryStore, Store, conformance};
use cms_sqlite::SqliteStore;

#[test]
fn a_new_file_store_conforms() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(directory.path().join("cms.db")).unwrap();
    conformance::run(&mut store).unwrap();
}

#[test]
fn an_in_memory_store_conforms() {
    conformance::run(&mut SqliteStore::open_in_memory().unwrap()).unwrap();
}

#[test]
fn a_reopened_store_still_holds_what_the_suite_wrote() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cms.db");
    let mut first = SqliteStore::open(&path).unwrap();
    conformance::run(&mut first).unwrap();
    let mut memory = MemoryStore::new();
    conformance::run(&mut memory).unwrap();
    drop(first);

    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.events().unwrap(), memory.events().unwrap());
    assert_eq!(reopened.checkpoints().unwrap(), memory.checkpoints().unwrap());
    assert_eq!(
        reopened.documents("draft_invoice", "").unwrap(),
        memory.documents("draft_invoice", "").unwrap()
    );
}
