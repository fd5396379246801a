//! What the conformance suite does not reach: exact values, byte-order listing, batches that repeat a key,
//! refused commits that change nothing, long periods read in pages, and errors instead of panics.

mod support;

use chrono::{Duration, TimeZone, Utc};
use cms_core::CmsError;
use cms_core::engine::Event;
use cms_core::governance::audit::{AuditHead, AuditRecord, GENESIS, Outcome};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::{Adjustment, SourceCost, UsageRecord};
use cms_core::source::{Checkpoint, Granularity};
use cms_core::store::{Commit, Document, MemoryStore, Store};
use cms_postgres::{FETCH_ROWS, PostgresStore};

fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

fn record(subscription: &str, minute: i64, quantity: &str) -> UsageRecord {
    let start = october().start + Duration::minutes(minute);
    UsageRecord {
        subscription: subscription.into(),
        meter: MeterId::from_u128(0xFAB6_EB84_500B_4A09_A8CA_7358_F8BB_AEA5),
        start,
        end: start + Duration::hours(1),
        quantity: parse_decimal(quantity).unwrap(),
        resource_uri: format!("/subscriptions/{subscription}/vm"),
        location: "local".into(),
        ..UsageRecord::default()
    }
}

fn everything(store: &dyn Store, period: &Period) -> Vec<UsageRecord> {
    let mut records = Vec::new();
    store
        .for_each_usage(period, &mut |record| {
            records.push(record.clone());
            Ok(())
        })
        .unwrap();
    records
}

#[test]
fn every_value_reads_back_exactly() {
    let Some(scratch) = support::Scratch::new("exact_values") else { return };
    let mut store = scratch.store();
    let mut full = record("Sub-Ünïcode", 0, "123456789.1234567890123456789");
    full.start = Utc.with_ymd_and_hms(2026, 10, 5, 8, 30, 0).unwrap() + Duration::nanoseconds(7);
    full.end = full.start + Duration::nanoseconds(3_600_000_000_001);
    full.tags.insert("Department".into(), "Finance \"quoted\"".into());
    full.additional_info.insert("ImageType".into(), "Windows".into());
    let mut negative_zero = parse_decimal("0.000").unwrap();
    negative_zero.set_sign_negative(true);
    full.cost = Some(SourceCost { amount: negative_zero, currency: Currency::from_code("BHD").unwrap() });
    full.adjustments.push(Adjustment {
        billed_in: Period::month(2026, 11).unwrap(),
        delta: parse_decimal("-1.50").unwrap(),
        new_record: true,
        cost_delta: Some(parse_decimal("0.10").unwrap()),
    });
    let mut odd_currency = record("sub-b", 0, "0.0000000000000000000000000001");
    let mut currency = Currency::EUR;
    currency.minor_unit = 4_000_000_000;
    odd_currency.cost = Some(SourceCost { amount: parse_decimal("1.50").unwrap(), currency });
    let written = store.put_usage(&[full.clone(), odd_currency.clone()], None).unwrap();
    assert_eq!(written.inserted, 2);
    let read = store.usage(&full.key()).unwrap().unwrap();
    assert_eq!(read, full);
    assert_eq!(read.quantity.to_string(), "123456789.1234567890123456789");
    let cost = read.cost.unwrap();
    assert_eq!(cost.amount.to_string(), "-0.000", "a negative zero keeps its sign and scale");
    assert_eq!(cost.currency.minor_unit, 3);
    assert_eq!(store.usage(&odd_currency.key()).unwrap().unwrap(), odd_currency, "minor units beyond i32");

    let at = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + Duration::nanoseconds(999_999_999);
    let event =
        Event::NodeAdded { id: "d".into(), kind: NodeKind::Distributor, parent: None, name: "D ✓".into() };
    store.append_events("ålice", at, std::slice::from_ref(&event)).unwrap();
    let events = scratch.store().events().unwrap();
    assert_eq!((events[0].actor.as_str(), events[0].at, &events[0].event), ("ålice", at, &event));
}

#[test]
fn instants_and_text_it_cannot_keep_are_refused_with_an_error() {
    let Some(scratch) = support::Scratch::new("refused_values") else { return };
    let mut store = scratch.store();
    let mut far = record("sub-a", 0, "1");
    far.start = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap();
    let error = store.put_usage(&[record("sub-a", 1, "1"), far], None).unwrap_err();
    let CmsError::Store { message } = &error else { panic!("{error:?}") };
    assert!(message.contains("outside the instants"), "{message}");
    assert!(everything(&store, &october()).is_empty(), "nothing of the batch is stored");

    let at = october().start;
    let error = store.append_events(
        "nul\0actor",
        at,
        &[Event::LabelSet { kind: NodeKind::Tenant, label: "x".into() }],
    );
    let Err(CmsError::Store { message }) = &error else { panic!("{error:?}") };
    assert!(message.contains("commit of nul"), "the operation is named: {message}");
    assert!(store.events().unwrap().is_empty());
    let error = store.put_documents(&[Document { kind: "k".into(), key: "a\0".into(), body: "{}".into() }]);
    assert!(matches!(error, Err(CmsError::Store { .. })), "{error:?}");
    let ancient = Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap();
    assert!(matches!(store.append_events("a", ancient, &[]), Err(CmsError::Store { .. })));
}

#[test]
fn documents_list_by_prefix_in_byte_order_as_the_memory_store_does() {
    let Some(scratch) = support::Scratch::new("document_order") else { return };
    let mut store = scratch.store();
    let mut memory = MemoryStore::new();
    let keys =
        ["a", "B", "a/1", "a/10", "a/2", "é", "é/x", "e", "a\u{10FFFF}", "a\u{10FFFF}z", "ab", "a%", "a_"];
    let documents: Vec<Document> = keys
        .iter()
        .map(|key| Document { kind: "k".into(), key: (*key).into(), body: format!("{{\"key\":\"{key}\"}}") })
        .collect();
    store.put_documents(&documents).unwrap();
    memory.put_documents(&documents).unwrap();
    store.put_documents(&[Document { kind: "other".into(), key: "a".into(), body: "{}".into() }]).unwrap();
    for prefix in ["", "a", "a/", "a/1", "é", "a\u{10FFFF}", "a%", "a_", "z", "\u{10FFFF}"] {
        assert_eq!(
            store.documents("k", prefix).unwrap(),
            memory.documents("k", prefix).unwrap(),
            "{prefix:?}"
        );
    }
}

#[test]
fn a_key_given_twice_in_one_batch_is_inserted_then_compared_in_order() {
    let Some(scratch) = support::Scratch::new("repeated_key") else { return };
    let mut store = scratch.store();
    let mut memory = MemoryStore::new();
    let mut shouted = record("SUB-A", 0, "2.0");
    shouted.resource_uri = shouted.resource_uri.to_uppercase();
    let batches = [
        vec![record("sub-a", 0, "1"), shouted.clone(), record("sub-a", 0, "2.00"), record("sub-b", 0, "5")],
        vec![
            record("sub-b", 0, "5"),
            record("sub-b", 0, "6"),
            record("sub-b", 0, "5"),
            record("sub-c", 0, "1"),
        ],
    ];
    for batch in &batches {
        assert_eq!(store.put_usage(batch, None).unwrap(), memory.put_usage(batch, None).unwrap());
    }
    assert_eq!(everything(&store, &october()), everything(&memory, &october()));
}

#[test]
fn a_period_longer_than_a_fetch_is_read_whole_in_key_order() {
    let Some(scratch) = support::Scratch::new("long_period") else { return };
    let mut store = scratch.store();
    let mut memory = MemoryStore::new();
    let count = i64::from(FETCH_ROWS) * 2 + 17;
    let records: Vec<UsageRecord> = (0..count)
        .map(|minute| record(&format!("sub-{}", minute % 7), minute, &format!("{minute}.5")))
        .collect();
    let written = store.put_usage(&records, None).unwrap();
    assert_eq!(written.inserted, u64::try_from(count).unwrap());
    memory.put_usage(&records, None).unwrap();
    assert_eq!(everything(&store, &october()), everything(&memory, &october()));
    // Purge keeps to its period.
    let first_day = Period::new(october().start, october().start + Duration::days(1)).unwrap();
    let purged = store.purge_usage(&first_day, None).unwrap();
    assert_eq!(purged, memory.purge_usage(&first_day, None).unwrap());
    assert_eq!(everything(&store, &october()), everything(&memory, &october()));
}

#[test]
fn a_visitor_error_comes_back_as_it_is_and_a_visitor_cannot_call_the_store() {
    let Some(scratch) = support::Scratch::new("visitor") else { return };
    let mut store = scratch.store();
    store.put_usage(&[record("sub-a", 0, "1"), record("sub-a", 1, "1")], None).unwrap();
    let mut seen = 0;
    let error = store
        .for_each_usage(&october(), &mut |_| {
            seen += 1;
            Err(CmsError::Conflict { what: "the visitor's own".into() })
        })
        .unwrap_err();
    assert_eq!((seen, error), (1, CmsError::Conflict { what: "the visitor's own".into() }));
    let mut inner = None;
    store
        .for_each_usage(&october(), &mut |_| {
            inner = Some(store.events());
            Ok(())
        })
        .unwrap();
    let Some(Err(CmsError::Store { message })) = inner else { panic!("{inner:?}") };
    assert!(message.contains("in use"), "{message}");
    assert_eq!(store.events().unwrap(), [], "the store works again after the visit");
}

fn audit_record(seq: u64, prev: &str, events: Option<(u64, u64)>) -> AuditRecord {
    AuditRecord {
        seq,
        at: october().start,
        actor: "alice".into(),
        scope: "platform".into(),
        command: "test".into(),
        target: "t".into(),
        outcome: Outcome::Done,
        events,
        content: None,
        before: GENESIS.into(),
        after: GENESIS.into(),
        prev: prev.into(),
        hash: String::new(),
    }
    .seal()
    .unwrap()
}

#[test]
fn a_commit_that_does_not_extend_the_chain_or_reuses_a_document_changes_nothing() {
    let Some(scratch) = support::Scratch::new("refused_commits") else { return };
    let mut store = scratch.store();
    let event = [Event::LabelSet { kind: NodeKind::Tenant, label: "Department".into() }];
    let document = |key: &str| Document { kind: "issued".into(), key: key.into(), body: "{}".into() };
    let first = audit_record(1, GENESIS, Some((1, 1)));
    let commit = |audit: &AuditRecord, documents: &[Document]| -> Result<u64, CmsError> {
        scratch.store().commit(&Commit {
            actor: "alice",
            at: october().start,
            events: &event,
            documents,
            audit: Some(audit),
        })
    };
    assert_eq!(commit(&first, &[document("1")]).unwrap(), 1);
    let head = AuditHead { seq: 1, hash: first.hash.clone() };
    assert_eq!(store.audit_head().unwrap(), head);

    // The same record again (another writer's plan on the old head): refused.
    assert!(matches!(commit(&first, &[document("2")]), Err(CmsError::Conflict { .. })));
    // The right next record, but with a document that exists: refused, and its event is not kept.
    let second = audit_record(2, &first.hash, Some((2, 2)));
    let error = commit(&second, &[document("3"), document("1")]).unwrap_err();
    assert!(matches!(&error, CmsError::Conflict { what } if what.contains("issued 1 exists")), "{error:?}");
    // Names the wrong events: refused.
    assert!(matches!(
        commit(&audit_record(2, &first.hash, Some((1, 1))), &[]),
        Err(CmsError::Conflict { .. })
    ));
    // Audited usage and purges are checked the same way.
    let stale = audit_record(1, GENESIS, None);
    assert!(matches!(
        store.put_usage_audited(&[record("s", 0, "1")], None, Some(&stale)),
        Err(CmsError::Conflict { .. })
    ));
    assert!(matches!(store.purge_usage(&october(), Some(&stale)), Err(CmsError::Conflict { .. })));

    assert_eq!(store.events().unwrap().len(), 1);
    assert_eq!(store.audit_records().unwrap(), std::slice::from_ref(&first));
    assert_eq!(store.audit_head().unwrap(), head);
    assert_eq!(store.documents("issued", "").unwrap(), [document("1")]);
    assert!(everything(&store, &october()).is_empty());

    assert_eq!(commit(&second, &[document("2")]).unwrap(), 2);
    let third = audit_record(3, &second.hash, None);
    let checkpoint = Checkpoint {
        region: "east".into(),
        subscriber: None,
        granularity: Granularity::Daily,
        reported_until: october().end,
    };
    store.put_usage_audited(&[record("s", 0, "1")], Some(&checkpoint), Some(&third)).unwrap();
    let fourth = audit_record(4, &third.hash, None);
    assert_eq!(store.purge_usage(&october(), Some(&fourth)).unwrap(), 1);
    assert_eq!(store.audit_records().unwrap(), [first, second, third, fourth.clone()]);
    assert_eq!(store.audit_head().unwrap(), AuditHead { seq: 4, hash: fourth.hash });
    assert_eq!(store.checkpoints().unwrap(), [checkpoint]);
}

#[test]
fn checkpoints_keep_one_per_region_and_subscriber_in_memory_store_order() {
    let Some(scratch) = support::Scratch::new("checkpoints") else { return };
    let mut store = scratch.store();
    let mut memory = MemoryStore::new();
    let checkpoint = |region: &str, subscriber: Option<&str>, day: i64| Checkpoint {
        region: region.into(),
        subscriber: subscriber.map(Into::into),
        granularity: Granularity::Hourly,
        reported_until: october().start + Duration::days(day),
    };
    for checkpoint in [
        checkpoint("west", Some("b"), 1),
        checkpoint("east", Some(""), 1),
        checkpoint("east", None, 1),
        checkpoint("east", Some("B"), 1),
        checkpoint("east", None, 2),
        checkpoint("west", Some("b"), 3),
    ] {
        store.put_usage(&[], Some(&checkpoint)).unwrap();
        memory.put_usage(&[], Some(&checkpoint)).unwrap();
    }
    assert_eq!(store.checkpoints().unwrap(), memory.checkpoints().unwrap());
    assert_eq!(store.checkpoints().unwrap().len(), 4);
}

#[test]
fn sample_intervals_skip_records_with_a_source_cost_and_other_periods() {
    let Some(scratch) = support::Scratch::new("sample_interval") else { return };
    let mut store = scratch.store();
    let mut costly = record("sub-a", 0, "1");
    costly.end = costly.start + Duration::days(1);
    costly.cost = Some(SourceCost { amount: parse_decimal("1").unwrap(), currency: Currency::USD });
    store.put_usage(&[costly, record("sub-a", 90, "1")], None).unwrap();
    let interval = store.sample_interval("SUB-A", &october()).unwrap().unwrap();
    assert_eq!(interval.1 - interval.0, Duration::hours(1));
    assert_eq!(store.sample_interval("sub-a", &Period::month(2026, 9).unwrap()).unwrap(), None);
    assert_eq!(store.sample_interval("sub-a", &Period::month(2400, 1).unwrap()).unwrap(), None);
    let all = Period::new(Instant::MIN_UTC, Instant::MAX_UTC).unwrap();
    assert_eq!(store.sample_interval("sub-a", &all).unwrap(), Some(interval));
    assert!(
        store
            .usage(&{
                let mut far = record("sub-a", 0, "1");
                far.start = Instant::MAX_UTC;
                far.key()
            })
            .unwrap()
            .is_none()
    );
}

#[test]
fn errors_name_the_server_without_its_password() {
    let error = PostgresStore::connect("postgresql://cms:s3cret@127.0.0.1:1/cms").unwrap_err();
    let CmsError::Store { message } = &error else { panic!("{error:?}") };
    assert!(message.starts_with("connect to postgresql://cms@127.0.0.1:1/cms"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(matches!(PostgresStore::connect("not a url ="), Err(CmsError::Store { .. })));
    assert!(matches!(
        PostgresStore::connect_in_schema("postgresql://x@127.0.0.1:1/x", ""),
        Err(CmsError::Store { .. })
    ));
    let long = "s".repeat(64);
    assert!(matches!(
        PostgresStore::connect_in_schema("postgresql://x@127.0.0.1:1/x", &long),
        Err(CmsError::Store { .. })
    ));
}
