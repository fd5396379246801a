//! The audit trail altered directly in PostgreSQL, behind the engine's back: a record edited, deleted or
//! moved, the tail cut off (with or without the head row and the events), an event edited. Each is found,
//! at the first record that does not hold, when the chain is checked against the head exported before.

mod support;

use cms_core::engine::{Cms, Event, Principal};
use cms_core::governance::audit::{AuditHead, AuditRecord, BrokenLink, verify};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::money::parse_decimal;
use cms_core::model::time::parse_timestamp;
use cms_core::model::usage::UsageRecord;
use cms_core::source::PageOrigin;
use cms_core::store::Store;
use serde_json::Value;

/// A history of a few kinds of command: the golden scenario's set-up (one event each), an ingestion (no
/// events), a refused command (no events) and one more event. Returns the records and the exported head.
fn history(scratch: &support::Scratch) -> (Vec<AuditRecord>, AuditHead) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/invoicing.json");
    let vector: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let at = parse_timestamp(vector["setup_at"].as_str().unwrap()).unwrap();
    let operator = Principal::platform("operator");
    let mut cms = Cms::open(scratch.store()).unwrap();
    for event in vector["setup"].as_array().unwrap() {
        cms.execute(&operator, at, &serde_json::from_value(event.clone()).unwrap()).unwrap();
    }
    let start = parse_timestamp("2026-10-03T00:00:00Z").unwrap();
    let record = UsageRecord {
        subscription: "s1".into(),
        meter: "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5".parse().unwrap(),
        start,
        end: start + chrono::Duration::hours(1),
        quantity: parse_decimal("10").unwrap(),
        resource_uri: "/subscriptions/s1/vm".into(),
        location: "local".into(),
        ..UsageRecord::default()
    };
    cms.ingest(&[record], &PageOrigin::named("page 1")).unwrap();
    let orphan = Event::NodeAdded {
        id: "x".into(),
        kind: NodeKind::Tenant,
        parent: Some("nobody".into()),
        name: "X".into(),
    };
    assert!(cms.execute(&operator, at, &orphan).is_err());
    cms.execute(&operator, at, &Event::NodeRenamed { id: "t3".into(), name: "Tenant Three".into() }).unwrap();
    let (records, head) = cms.export_audit().unwrap();
    assert_eq!(cms.verify_audit(Some(&head)).unwrap().broken, None);
    (records, head)
}

/// What the engine's verification finds, after opening it on the tampered schema.
fn broken_after_open(scratch: &support::Scratch, head: &AuditHead) -> BrokenLink {
    let cms = Cms::open(scratch.store()).unwrap();
    cms.verify_audit(Some(head)).unwrap().broken.expect("the tampering is found")
}

/// The audit record that recorded event `seq`.
fn recorder(records: &[AuditRecord], seq: u64) -> u64 {
    records
        .iter()
        .find(|record| record.events.is_some_and(|(first, last)| (first..=last).contains(&seq)))
        .map(|record| record.seq)
        .unwrap()
}

fn execute(scratch: &support::Scratch, sql: &str) -> u64 {
    scratch.client().execute(sql, &[]).unwrap()
}

#[test]
fn an_edited_record_is_found_at_its_number() {
    let Some(scratch) = support::Scratch::new("tamper_edit") else { return };
    let (_, head) = history(&scratch);
    let changed = execute(
        &scratch,
        "UPDATE audit SET record = replace(record, '\"actor\":\"operator\"', '\"actor\":\"mallory\"') WHERE seq = 5",
    );
    assert_eq!(changed, 1);
    let broken = broken_after_open(&scratch, &head);
    assert_eq!(broken.seq, 5, "{broken:?}");
    assert!(broken.reason.contains("edited"), "{broken:?}");
}

#[test]
fn a_deleted_record_is_found_at_its_number() {
    let Some(scratch) = support::Scratch::new("tamper_delete") else { return };
    let (_, head) = history(&scratch);
    assert_eq!(execute(&scratch, "DELETE FROM audit WHERE seq = 7"), 1);
    let broken = broken_after_open(&scratch, &head);
    assert_eq!(broken.seq, 7, "{broken:?}");
    assert!(broken.reason.contains("missing or out of place"), "{broken:?}");
}

#[test]
fn two_records_swapped_are_found_at_the_first() {
    let Some(scratch) = support::Scratch::new("tamper_swap") else { return };
    let (_, head) = history(&scratch);
    let changed = execute(
        &scratch,
        "UPDATE audit SET record = swapped.record FROM audit AS swapped \
         WHERE (audit.seq, swapped.seq) IN ((3, 4), (4, 3))",
    );
    assert_eq!(changed, 2);
    let broken = broken_after_open(&scratch, &head);
    assert_eq!(broken.seq, 3, "{broken:?}");
}

#[test]
fn a_tail_cut_off_with_its_head_row_is_found_after_the_last_record_left() {
    let Some(scratch) = support::Scratch::new("tamper_tail") else { return };
    let (records, head) = history(&scratch);
    let kept = &records[records.len() - 3];
    let mut client = scratch.client();
    let deleted =
        client.execute("DELETE FROM audit WHERE seq > $1", &[&i64::try_from(kept.seq).unwrap()]).unwrap();
    assert_eq!(deleted, 2);
    client
        .execute(
            "UPDATE audit_head SET seq = $1, hash = $2",
            &[&i64::try_from(kept.seq).unwrap(), &kept.hash],
        )
        .unwrap();
    // The events of the records cut off stay: the engine opens (it replays every event).
    let broken = broken_after_open(&scratch, &head);
    assert_eq!(broken.seq, kept.seq + 1, "{broken:?}");
}

#[test]
fn a_tail_truncated_consistently_is_found_only_against_the_exported_head() {
    let Some(scratch) = support::Scratch::new("tamper_truncate") else { return };
    let (records, head) = history(&scratch);
    // Cut back to before the ingestion: the records from it on, the event they recorded, the head row.
    let ingestion = records.iter().position(|record| record.command == "ingest").unwrap();
    let kept = &records[ingestion - 1];
    let kept_event = kept.events.unwrap().1;
    let mut client = scratch.client();
    let kept_seq = i64::try_from(kept.seq).unwrap();
    client.execute("DELETE FROM audit WHERE seq > $1", &[&kept_seq]).unwrap();
    client.execute("DELETE FROM events WHERE seq > $1", &[&i64::try_from(kept_event).unwrap()]).unwrap();
    client.execute("UPDATE audit_head SET seq = $1, hash = $2", &[&kept_seq, &kept.hash]).unwrap();
    let cms = Cms::open(scratch.store()).unwrap();
    assert_eq!(cms.verify_audit(None).unwrap().broken, None, "a consistent cut looks whole on its own");
    let broken = cms.verify_audit(Some(&head)).unwrap().broken.unwrap();
    assert_eq!(broken.seq, kept.seq + 1, "{broken:?}");
    assert!(broken.reason.contains(&format!("reaches {}", head.seq)), "{broken:?}");
}

#[test]
fn an_edited_event_is_found_at_the_record_that_recorded_it() {
    let Some(scratch) = support::Scratch::new("tamper_event") else { return };
    let (records, head) = history(&scratch);
    let changed = execute(
        &scratch,
        "UPDATE events SET event = replace(event, '\"name\":\"Tenant 1\"', '\"name\":\"Tenant X\"') WHERE seq = 4",
    );
    assert_eq!(changed, 1);
    // The engine opens on the edited log (a renamed tenant replays fine) and believes it ...
    let cms = Cms::open(scratch.store()).unwrap();
    assert_eq!(cms.state().hierarchy.get("t1").map(|node| node.name.as_str()), Some("Tenant X"));
    // ... but the chain does not.
    let broken = cms.verify_audit(Some(&head)).unwrap().broken.unwrap();
    assert_eq!(broken.seq, recorder(&records, 4), "{broken:?}");
    assert!(broken.reason.contains("an event was edited"), "{broken:?}");
}

#[test]
fn an_event_edited_so_that_the_engine_cannot_open_is_found_from_the_store() {
    let Some(scratch) = support::Scratch::new("tamper_event_unopenable") else { return };
    let (records, head) = history(&scratch);
    let changed = execute(
        &scratch,
        "UPDATE events SET event = replace(event, '\"parent\":\"t1\"', '\"parent\":\"nobody\"') WHERE seq = 7",
    );
    assert_eq!(changed, 1);
    assert!(Cms::open(scratch.store()).is_err(), "subscription s1 under an unknown tenant does not replay");
    let store = scratch.store();
    let verification = verify(&store.audit_records().unwrap(), &store.events().unwrap(), Some(&head));
    let broken = verification.broken.unwrap();
    assert_eq!(broken.seq, recorder(&records, 7), "{broken:?}");
}
