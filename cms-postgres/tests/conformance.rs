//! The store conformance suite of `cms-core` on a new schema, and what a new connection reads back after it.

mod support;

use cms_core::model::time::Period;
use cms_core::store::{MemoryStore, Store, conformance};

#[test]
fn a_new_schema_conforms() {
    let Some(scratch) = support::Scratch::new("a_new_schema_conforms") else { return };
    let mut store = scratch.store();
    conformance::run(&mut store).unwrap();
}

#[test]
fn a_new_connection_reads_what_the_suite_wrote_as_the_memory_store_holds_it() {
    let Some(scratch) = support::Scratch::new("reconnect_after_suite") else { return };
    let mut first = scratch.store();
    conformance::run(&mut first).unwrap();
    drop(first);
    let mut memory = MemoryStore::new();
    conformance::run(&mut memory).unwrap();

    let reconnected = scratch.store();
    assert_eq!(reconnected.migrations_applied(), 0);
    assert_eq!(reconnected.events().unwrap(), memory.events().unwrap());
    assert_eq!(reconnected.events_after(2).unwrap(), memory.events_after(2).unwrap());
    assert_eq!(reconnected.checkpoints().unwrap(), memory.checkpoints().unwrap());
    for kind in ["draft_invoice", "draft_statement"] {
        assert_eq!(reconnected.documents(kind, "").unwrap(), memory.documents(kind, "").unwrap());
    }
    let everything = Period::new(
        chrono::DateTime::UNIX_EPOCH,
        chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(365 * 100),
    )
    .unwrap();
    let collect = |store: &dyn Store| {
        let mut records = Vec::new();
        store
            .for_each_usage(&everything, &mut |record| {
                records.push(record.clone());
                Ok(())
            })
            .unwrap();
        records
    };
    assert_eq!(collect(&reconnected), collect(&memory), "same records, same order");
    assert_eq!(reconnected.audit_head().unwrap(), memory.audit_head().unwrap());
}
