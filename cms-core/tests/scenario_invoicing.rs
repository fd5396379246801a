//! Replays `tests/scenarios/invoicing.json` on the engine with the in-memory store.

#[path = "support/invoicing_scenario.rs"]
mod invoicing_scenario;

use cms_core::engine::Cms;
use cms_core::store::MemoryStore;

#[test]
fn the_golden_invoicing_scenario() {
    let cms = invoicing_scenario::replay(Cms::open(MemoryStore::new()).unwrap(), &mut |cms| cms);
    assert_eq!(cms.state().issued.len(), 8, "every document of the scenario was issued");
    assert!(cms.verify_documents().unwrap().is_empty());
}
