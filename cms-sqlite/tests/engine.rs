//! The engine on a SQLite file: state survives a restart, re-ingestion counts duplicates, and month-end
//! gives the figures it gives on the in-memory store.

mod common;

use chrono::{Duration, TimeZone, Utc};
use cms_core::billing::{BillingRules, MonthEndReport};
use cms_core::engine::{Cms, Event, Principal};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::money::Currency;
use cms_core::model::pricing::PriceList;
use cms_core::model::tiers::{Tier, TierMode};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::UsageRecord;
use cms_core::source::{Granularity, PageOrigin, ReportedWindow};
use cms_core::store::{MemoryStore, Store};
use cms_sqlite::SqliteStore;
use common::{IP, VM, at, dec, meter, october, record};

fn operator() -> Principal {
    Principal::platform("t")
}

fn recorded_at() -> Instant {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

/// platform > d > p > t1 (s1, s2), t2 (s3); VM graduated 0.01 to 100 then 0.005; IP 0.004.
fn onboard<S: Store>(cms: &mut Cms<S>) {
    let mut list = PriceList::new("list", Currency::USD);
    let tier = |from: &str, rate: &str| Tier { from: dec(from), rate: dec(rate) };
    list.set(meter(VM), "vCPU-hours", TierMode::Graduated, vec![tier("0", "0.01"), tier("100", "0.005")])
        .unwrap();
    list.set_flat(meter(IP), "IP-hours", dec("0.004"));
    let add = |id: &str, kind, parent: Option<&str>| Event::NodeAdded {
        id: id.into(),
        kind,
        parent: parent.map(Into::into),
        name: format!("Node {id}"),
    };
    for event in [
        add("d", NodeKind::Distributor, None),
        add("p", NodeKind::Partner, Some("d")),
        add("t1", NodeKind::Tenant, Some("p")),
        add("t2", NodeKind::Tenant, Some("p")),
        add("s1", NodeKind::Subscription, Some("t1")),
        add("s2", NodeKind::Subscription, Some("t1")),
        add("s3", NodeKind::Subscription, Some("t2")),
        Event::PriceListCreated {
            list: cms_core::model::terms::sheet_list(list, "List", cms_core::model::time::Instant::MIN_UTC),
        },
        Event::PriceListAssigned {
            scope: cms_core::model::price_book::PriceScope::Default,
            list: "list".into(),
        },
        Event::NodeRenamed { id: "t2".into(), name: "Tenant Two".into() },
    ] {
        cms.execute(&operator(), recorded_at(), &event).unwrap();
    }
}

/// October usage of three subscriptions, in the case the source happens to use.
fn october_usage() -> Vec<UsageRecord> {
    let mut records = Vec::new();
    for hour in 0..24 {
        records.push(record("s1", VM, at(1, hour), 1, "2.50"));
        records.push(record("S2", VM, at(2, hour), 1, "4"));
    }
    records.push(record("s3", IP, at(3, 0), 24, "24"));
    records
}

/// The last page of a reported window: ingesting it records a checkpoint.
fn completing_origin() -> PageOrigin {
    PageOrigin {
        name: "https://adminmanagement.local/usage?page=3".into(),
        region: "east".into(),
        subscriber: None,
        window: Some(ReportedWindow { start: at(1, 0), end: at(4, 0), granularity: Granularity::Hourly }),
        completes_window: true,
    }
}

fn month_end<S: Store>(cms: &Cms<S>, period: Period) -> MonthEndReport {
    cms.month_end(period, BillingRules::default()).unwrap()
}

/// The channel as comparable data: every node with its parent.
fn channel<S: Store>(cms: &Cms<S>) -> Vec<cms_core::model::hierarchy::Node> {
    cms.state().hierarchy.nodes().map(|(_, node)| node.clone()).collect()
}

#[test]
fn the_engine_resumes_from_a_sqlite_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cms.db");
    let mut memory = Cms::open(MemoryStore::new()).unwrap();
    onboard(&mut memory);
    let mut cms = Cms::open(SqliteStore::open(&path).unwrap()).unwrap();
    onboard(&mut cms);

    let records = october_usage();
    let first = cms.ingest(&records, &completing_origin()).unwrap();
    assert_eq!(first, memory.ingest(&records, &completing_origin()).unwrap());
    assert_eq!((first.stored, first.duplicates), (records.len() as u64, 0));
    assert_eq!(first.checkpoints.len(), 1);
    let before = month_end(&cms, october());
    assert_eq!(before, month_end(&memory, october()));
    drop(cms);

    let mut reopened = Cms::open(SqliteStore::open(&path).unwrap()).unwrap();
    assert_eq!(reopened.store().migrations_applied(), 0);
    assert_eq!(channel(&reopened), channel(&memory), "the channel is rebuilt from the stored events");
    assert_eq!(reopened.state().terms, memory.state().terms);
    assert_eq!(reopened.state().hierarchy.get("t2").unwrap().name, "Tenant Two");
    assert_eq!(reopened.checkpoints().unwrap(), memory.checkpoints().unwrap());
    assert_eq!(reopened.store().events().unwrap(), memory.store().events().unwrap());
    assert_eq!(month_end(&reopened, october()), before);

    let again = reopened.ingest(&records, &completing_origin()).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, records.len() as u64), "a re-pull is all duplicates");
    assert!(again.corrections.is_empty());
    assert_eq!(month_end(&reopened, october()), before);
}

#[test]
fn late_usage_and_corrections_bill_the_same_as_in_memory() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cms.db");
    let mut memory = Cms::open(MemoryStore::new()).unwrap();
    let mut cms = Cms::open(SqliteStore::open(&path).unwrap()).unwrap();
    onboard(&mut memory);
    onboard(&mut cms);
    let records = october_usage();
    let origin = PageOrigin::named("page-1.json");
    assert_eq!(cms.ingest(&records, &origin).unwrap(), memory.ingest(&records, &origin).unwrap());
    cms.close_period(&operator(), recorded_at(), october()).unwrap();
    memory.close_period(&operator(), recorded_at(), october()).unwrap();

    // After the close: a late record and a correction become adjustments billed in November.
    let mut corrected = records[0].clone();
    corrected.quantity = dec("3.75");
    let late = [record("s1", VM, at(20, 0), 1, "10"), corrected, record("s2", VM, at(4, 0), 1, "1.0")];
    let in_sqlite = cms.ingest(&late, &origin).unwrap();
    assert_eq!(in_sqlite, memory.ingest(&late, &origin).unwrap());
    assert_eq!(in_sqlite.late_adjustments, 3);
    drop(cms);

    let cms = Cms::open(SqliteStore::open(&path).unwrap()).unwrap();
    let stored = cms.store().usage(&late[1].key()).unwrap().unwrap();
    assert_eq!(stored, memory.store().usage(&late[1].key()).unwrap().unwrap());
    assert_eq!(stored.adjustments.len(), 1, "the correction is kept as an adjustment");
    let november = october().next_month().unwrap();
    for period in [october(), november] {
        assert_eq!(month_end(&cms, period), month_end(&memory, period), "{period}");
    }
    let mut visited = Vec::new();
    let everything = Period::new(october().start, november.end + Duration::days(1)).unwrap();
    cms.store()
        .for_each_usage(&everything, &mut |record| {
            visited.push(record.clone());
            Ok(())
        })
        .unwrap();
    assert_eq!(visited, common::usage_of(memory.store(), &everything));
}
