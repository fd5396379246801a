//! What a file store holds survives closing it, every value reads back exactly, and a failing call leaves
//! nothing behind.

mod common;

use cms_core::engine::Event;
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::money::Currency;
use cms_core::model::pricing::PriceList;
use cms_core::model::tiers::{Tier, TierMode};
use cms_core::model::time::{Period, parse_timestamp};
use cms_core::source::{Checkpoint, Granularity};
use cms_core::store::{Document, MemoryStore, Store};
use cms_core::{CmsError, Decimal};
use cms_sqlite::SqliteStore;
use common::{IP, VM, at, dec, full_record, meter, october, record, usage_of};

/// The same writes on any store.
fn write_everything(store: &mut dyn Store) {
    let mut list = PriceList::new("list", Currency::USD);
    let tier = |from: &str, rate: &str| Tier { from: dec(from), rate: dec(rate) };
    list.set(meter(VM), "vCPU-hours", TierMode::Graduated, vec![tier("0", "0.0100"), tier("100", "0.005")])
        .unwrap();
    list.set_flat(meter(IP), "IP-hours", dec("0.004"));
    let events = [
        Event::NodeAdded {
            id: "d".into(),
            kind: NodeKind::Distributor,
            parent: None,
            name: "Dïstributor".into(),
        },
        Event::PriceListCreated {
            list: cms_core::model::terms::sheet_list(list, "List", cms_core::model::time::Instant::MIN_UTC),
        },
        Event::PeriodClosed { period: Period::month(2026, 9).unwrap() },
    ];
    // Nanoseconds and a non-UTC offset in the input: the store keeps the instant exactly.
    let recorded =
        parse_timestamp("2026-10-05T09:00:00+01:00").unwrap() + chrono::Duration::nanoseconds(123_456_789);
    assert_eq!(store.append_events("alice", recorded, &events).unwrap(), 3);
    assert_eq!(store.append_events("bob", at(6, 0), &events[..1]).unwrap(), 4);

    store
        .put_documents(&[
            Document {
                kind: "draft_invoice".into(),
                key: "2026-10/t1".into(),
                body: r#"{"total":"1.50"}"#.into(),
            },
            Document { kind: "draft_invoice".into(), key: "2026-10/t2".into(), body: "{}".into() },
            Document { kind: "draft_statement".into(), key: "2026-10/p".into(), body: "[]".into() },
        ])
        .unwrap();

    let whole_stamp = Checkpoint {
        region: "east".into(),
        subscriber: None,
        granularity: Granularity::Daily,
        reported_until: at(3, 0),
    };
    // An empty subscriber is not the whole stamp: both are kept.
    let empty_subscriber = Checkpoint { subscriber: Some(String::new()), ..whole_stamp.clone() };
    let subscriber = Checkpoint {
        region: "east".into(),
        subscriber: Some("s1".into()),
        granularity: Granularity::Hourly,
        reported_until: at(2, 5),
    };
    let batch = [record("s1", VM, at(1, 0), 1, "2.50"), record("S2", IP, at(1, 0), 24, "24"), full_record()];
    let written = store.put_usage(&batch, Some(&subscriber)).unwrap();
    assert_eq!(written.inserted, 3);
    store.put_usage(&[], Some(&whole_stamp)).unwrap();
    store.put_usage(&[], Some(&empty_subscriber)).unwrap();
    let west = Checkpoint { region: "west".into(), ..subscriber };
    store.put_usage(&[record("s1", VM, at(1, 1), 1, "0")], Some(&west)).unwrap();
}

/// Everything a store reads back, as text that shows decimal scales and nanoseconds.
fn read_everything(store: &dyn Store) -> String {
    format!(
        "{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}",
        store.events().unwrap(),
        store.documents("draft_invoice", "").unwrap(),
        store.documents("draft_statement", "2026").unwrap(),
        store.checkpoints().unwrap(),
        usage_of(store, &october()),
        store.usage(&full_record().key()).unwrap(),
    )
}

#[test]
fn a_reopened_file_reads_back_what_was_written_exactly() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cms.db");
    let mut store = SqliteStore::open(&path).unwrap();
    write_everything(&mut store);
    let mut memory = MemoryStore::new();
    write_everything(&mut memory);
    let expected = read_everything(&memory);
    assert_eq!(read_everything(&store), expected);
    let wal = directory.path().join("cms.db-wal");
    assert!(wal.exists(), "a file store uses write-ahead logging");
    drop(store);

    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(read_everything(&reopened), expected);
    assert_eq!(reopened.checkpoints().unwrap(), memory.checkpoints().unwrap());
    assert_eq!(
        reopened.checkpoints().unwrap().len(),
        4,
        "(east, none), (east, \"\"), (east, s1), (west, s1)"
    );
    let full = reopened.usage(&full_record().key()).unwrap().unwrap();
    assert_eq!(format!("{full:?}"), format!("{:?}", full_record()));
    assert_eq!(full.quantity.to_string(), "1.50");
    assert_eq!(full.cost.unwrap().amount.to_string(), "12.3400");
    assert_eq!(full.cost.unwrap().currency.minor_unit, 4);
    assert_eq!(full.adjustments[0].cost_delta.unwrap().to_string(), "2.000");
}

#[test]
fn a_failing_put_usage_stores_neither_records_nor_checkpoint() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let checkpoint = Checkpoint {
        region: "east".into(),
        subscriber: None,
        granularity: Granularity::Hourly,
        reported_until: at(2, 0),
    };
    let good = record("s1", VM, at(1, 0), 1, "1");
    // Usage in 2300 is outside the instants the store keeps.
    let far = record("s-far", VM, parse_timestamp("2300-01-01T00:00:00Z").unwrap(), 1, "1");
    let error = store.put_usage(&[good.clone(), far], Some(&checkpoint)).unwrap_err();
    let CmsError::Store { message } = &error else { panic!("{error:?}") };
    assert!(message.starts_with("put usage of subscription s-far"), "{message}");
    assert!(message.contains("outside the instants"), "{message}");
    assert_eq!(store.usage(&good.key()).unwrap(), None, "the record before the failing one is rolled back");
    assert!(store.checkpoints().unwrap().is_empty(), "the checkpoint is rolled back");
    assert!(usage_of(&store, &october()).is_empty());
    // The store goes on working.
    assert_eq!(store.put_usage(&[good], Some(&checkpoint)).unwrap().inserted, 1);
    assert_eq!(store.checkpoints().unwrap(), [checkpoint]);
}

#[test]
fn keys_fold_case_and_corrections_replace_the_whole_record() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let first = record("Sub-A", VM, at(1, 0), 1, "1.5");
    store.put_usage(std::slice::from_ref(&first), None).unwrap();
    let mut shouted = first.clone();
    shouted.subscription = "SUB-A".into();
    shouted.resource_uri = first.resource_uri.to_uppercase();
    shouted.quantity = dec("1.500");
    let repeat = store.put_usage(&[shouted.clone()], None).unwrap();
    assert_eq!((repeat.inserted, repeat.duplicates), (0, 1));
    assert_eq!(
        store.usage(&shouted.key()).unwrap().unwrap().quantity.to_string(),
        "1.5",
        "a repeat changes nothing"
    );

    shouted.quantity = dec("2.00");
    shouted.location = "west".into();
    let corrected = store.put_usage(&[shouted.clone()], None).unwrap();
    assert_eq!(corrected.corrections.len(), 1);
    assert_eq!(corrected.corrections[0].key, shouted.key(), "the correction names the incoming key");
    assert_eq!(corrected.corrections[0].old_quantity.to_string(), "1.5");
    assert_eq!(corrected.corrections[0].new_quantity.to_string(), "2.00");
    let stored = store.usage(&first.key()).unwrap().unwrap();
    assert_eq!(stored, shouted, "the stored record is the correcting one, as spelled");
    assert_eq!(stored.quantity.to_string(), "2.00");
    assert_eq!(usage_of(&store, &october()), [shouted]);
}

#[test]
fn the_visiting_order_is_the_folded_key_order() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut memory = MemoryStore::new();
    let batch = [
        record("b", VM, at(1, 0), 1, "1"),
        record("A", VM, at(1, 1), 1, "1"),
        record("a", IP, at(1, 0), 24, "1"),
        record("a", VM, at(1, 0), 1, "1"),
        record("C", VM, at(31, 23), 1, "1"),
        record("c", VM, Period::month(2026, 11).unwrap().start, 1, "1"),
    ];
    assert_eq!(store.put_usage(&batch, None).unwrap(), memory.put_usage(&batch, None).unwrap());
    let visited = usage_of(&store, &october());
    assert_eq!(visited, usage_of(&memory, &october()));
    let order: Vec<_> =
        visited.iter().map(|record| (record.subscription.as_str(), record.meter, record.start)).collect();
    let (vm, ip) = (meter(VM), meter(IP));
    // Subscription ignoring case, then meter (F271A8A3... before FAB6EB84...), then usage start.
    assert_eq!(
        order,
        [
            ("a", ip, at(1, 0)),
            ("a", vm, at(1, 0)),
            ("A", vm, at(1, 1)),
            ("b", vm, at(1, 0)),
            ("C", vm, at(31, 23))
        ]
    );
    let all = Period::new(cms_core::model::time::Instant::MIN_UTC, cms_core::model::time::Instant::MAX_UTC)
        .unwrap();
    assert_eq!(usage_of(&store, &all).len(), 6);
}

#[test]
fn a_sample_interval_ignores_records_with_a_source_cost() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut costly = record("s1", VM, at(1, 0), 24, "1");
    costly.cost = Some(cms_core::model::usage::SourceCost { amount: Decimal::ONE, currency: Currency::EUR });
    store.put_usage(&[costly], None).unwrap();
    assert_eq!(store.sample_interval("S1", &october()).unwrap(), None);
    store.put_usage(&[record("s1", IP, at(2, 5), 1, "1"), record("s1", VM, at(3, 0), 1, "1")], None).unwrap();
    assert_eq!(
        store.sample_interval("S1", &october()).unwrap(),
        Some((at(2, 5), at(2, 6))),
        "the earliest start"
    );
    assert_eq!(store.sample_interval("s2", &october()).unwrap(), None);
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("notes.txt");
    std::fs::write(&path, "these are meeting notes, not a database\n".repeat(200)).unwrap();
    let error = SqliteStore::open(&path).unwrap_err();
    let CmsError::Store { message } = &error else { panic!("{error:?}") };
    assert!(message.contains("notes.txt") && message.contains("not a database"), "{message}");
    assert_eq!(error.code(), "store");
}

#[test]
fn a_database_of_another_application_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("other.db");
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("CREATE TABLE recipes (name TEXT)").unwrap();
    drop(other);
    let error = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(error.contains("another application"), "{error}");

    let marked = directory.path().join("marked.db");
    let other = rusqlite::Connection::open(&marked).unwrap();
    other.pragma_update(None, "application_id", 42).unwrap();
    drop(other);
    let error = SqliteStore::open(&marked).unwrap_err().to_string();
    assert!(error.contains("not a CMS store"), "{error}");
}

#[test]
fn a_missing_directory_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    let error = SqliteStore::open(directory.path().join("no/such/dir/cms.db")).unwrap_err().to_string();
    assert!(error.contains("no/such/dir/cms.db"), "{error}");
}

#[test]
fn two_connections_to_one_file_share_one_log() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cms.db");
    let mut first = SqliteStore::open(&path).unwrap();
    let mut second = SqliteStore::open(&path).unwrap();
    assert_eq!(second.migrations_applied(), 0, "the first connection migrated");
    let event = Event::NodeRenamed { id: "d".into(), name: "D".into() };
    assert_eq!(first.append_events("alice", at(1, 0), std::slice::from_ref(&event)).unwrap(), 1);
    assert_eq!(second.append_events("bob", at(1, 1), std::slice::from_ref(&event)).unwrap(), 2);
    assert_eq!(first.append_events("alice", at(1, 2), &[]).unwrap(), 2);
    let actors: Vec<_> =
        first.events().unwrap().into_iter().map(|record| (record.seq, record.actor)).collect();
    assert_eq!(actors, [(1, "alice".to_owned()), (2, "bob".to_owned())]);
    second.put_usage(&[record("s1", VM, at(1, 0), 1, "1")], None).unwrap();
    assert_eq!(first.put_usage(&[record("S1", VM, at(1, 0), 1, "1.0")], None).unwrap().duplicates, 1);
}
