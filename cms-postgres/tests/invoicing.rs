//! Invoice documents on PostgreSQL: the golden scenario of `tests/scenarios/invoicing.json` replayed with a
//! new connection (and engine) before every step, giving what the memory store gives; an issued body altered
//! behind the engine's back (raw SQL) is found by its hash.

mod support;

#[path = "../../cms-core/tests/support/invoicing_scenario.rs"]
mod invoicing_scenario;

use cms_core::engine::{Cms, INVOICE_DOCUMENT, Principal};
use cms_core::store::{MemoryStore, Store};
use cms_postgres::PostgresStore;

fn replay_with_reconnects(scratch: &support::Scratch) -> Cms<PostgresStore> {
    let mut reconnect = |cms: Cms<PostgresStore>| {
        drop(cms);
        Cms::open(scratch.store()).unwrap()
    };
    invoicing_scenario::replay(Cms::open(scratch.store()).unwrap(), &mut reconnect)
}

#[test]
fn the_golden_scenario_survives_a_reconnect_before_every_step_and_matches_the_memory_store() {
    let Some(scratch) = support::Scratch::new("golden_scenario") else { return };
    let on_server = replay_with_reconnects(&scratch);
    let in_memory = invoicing_scenario::replay(Cms::open(MemoryStore::new()).unwrap(), &mut |cms| cms);
    let operator = Principal::platform("operator");
    assert_eq!(on_server.state().issued, in_memory.state().issued, "same numbers, hashes, voids");
    assert_eq!(
        on_server.invoice_documents(&operator, None).unwrap(),
        in_memory.invoice_documents(&operator, None).unwrap()
    );
    assert_eq!(
        on_server.store().documents(INVOICE_DOCUMENT, "").unwrap(),
        in_memory.store().documents(INVOICE_DOCUMENT, "").unwrap(),
        "byte-identical bodies"
    );
    assert!(on_server.verify_documents().unwrap().is_empty());
    let verification = on_server.verify_audit(None).unwrap();
    assert_eq!(verification.broken, None);
    assert_eq!(on_server.store().audit_records().unwrap(), in_memory.store().audit_records().unwrap());
}

#[test]
fn a_body_altered_in_the_database_is_found() {
    let Some(scratch) = support::Scratch::new("altered_body") else { return };
    drop(replay_with_reconnects(&scratch));
    let changed = scratch
        .client()
        .execute(
            "UPDATE documents SET body = replace(body, '\"63.38\"', '\"6.38\"') \
             WHERE kind = $1 AND key LIKE '%platform-000001'",
            &[&INVOICE_DOCUMENT],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let cms = Cms::open(scratch.store()).unwrap();
    assert_eq!(cms.verify_documents().unwrap(), ["platform-000001"]);
    let error = cms.issued_document(&Principal::platform("operator"), "platform-000001").unwrap_err();
    assert_eq!(error.code(), "store");
}
