//! Ingestion semantics as a provider lives them: re-pulls, corrections, exclusions, granularities, late usage
//! of invoiced periods, checkpoints.

use chrono::{Duration, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::billing::{BillingRules, LineKind, MonthEndReport, NotBilledReason};
use cms_core::engine::{Cms, Event, IngestPolicy};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, Rounding, parse_decimal};
use cms_core::model::pricing::PriceList;
use cms_core::model::tiers::{Tier, TierMode};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::UsageRecord;
use cms_core::source::{Checkpoint, Granularity, PageBytesSource, PageOrigin, ReportedWindow};
use cms_core::store::{MemoryStore, Store};
use proptest::prelude::*;

const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
const IP: &str = "F271A8A388C44D93956A063E1D2FA80B";
const VM_HOURS: &str = "6DAB500F-A4FD-49C4-956D-229BB9C8C793";
const DYNAMIC_IP: &str = "9E2739BA-8674-4796-B465-F64674B822BA";
const SQL: &str = "CBCFEF9A-B91F-4597-A4D3-01FE334BED82";
const MYSQL: &str = "E6D8CFCD-7734-495E-B1CC-5AB0B9C24BD3";

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

fn meter(text: &str) -> MeterId {
    text.parse().unwrap()
}

fn at(day: u32, hour: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap()
}

fn record(subscription: &str, meter_id: &str, start: Instant, hours: i64, quantity: &str) -> UsageRecord {
    UsageRecord {
        subscription: subscription.into(),
        meter: meter(meter_id),
        start,
        end: start + Duration::hours(hours),
        quantity: dec(quantity),
        resource_uri: format!("/subscriptions/{subscription}/resourceGroups/rg/providers/x/vm"),
        location: "east".into(),
        ..UsageRecord::default()
    }
}

/// platform > d > p > t1 (s1, s2), t2 (s3); VM graduated 0.01 to 100 then 0.005; IP 0.004.
fn engine() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let mut list = PriceList::new("list", Currency::USD);
    let tier = |from: &str, rate: &str| Tier { from: dec(from), rate: dec(rate) };
    list.set(meter(VM), "vCPU-hours", TierMode::Graduated, vec![tier("0", "0.01"), tier("100", "0.005")])
        .unwrap();
    list.set_flat(meter(IP), "IP-hours", dec("0.004"));
    list.set_flat(meter(VM_HOURS), "VM-hours", dec("1"));
    list.set_flat(meter(DYNAMIC_IP), "IP-hours", dec("0.004"));
    list.set_flat(meter(SQL), "MB-hours", dec("0.0001"));
    list.set_flat(meter(MYSQL), "MB-hours", dec("0.00005"));
    let add = |id: &str, kind, parent: Option<&str>| Event::NodeAdded {
        id: id.into(),
        kind,
        parent: parent.map(Into::into),
        name: id.into(),
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
    ] {
        cms.execute(&op(), recorded_at(), &event).unwrap();
    }
    cms
}

fn origin() -> PageOrigin {
    PageOrigin::named("page-1.json")
}

fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

fn november() -> Period {
    Period::month(2026, 11).unwrap()
}

fn month_end(cms: &Cms<MemoryStore>, period: Period) -> MonthEndReport {
    cms.month_end(period, BillingRules::default()).unwrap()
}

fn total(report: &MonthEndReport, tenant: &str) -> Decimal {
    report
        .invoices
        .iter()
        .find(|invoice| invoice.buyer == tenant)
        .map_or(Decimal::ZERO, |invoice| invoice.total)
}

#[test]
fn re_pulls_change_nothing_and_corrections_are_reported() {
    let mut cms = engine();
    let batch: Vec<_> = (0..24).map(|hour| record("s1", VM, at(1, hour), 1, "2")).collect();
    let first = cms.ingest(&batch, &origin()).unwrap();
    assert_eq!((first.received, first.stored, first.duplicates), (24, 24, 0));
    let before = month_end(&cms, october());
    let again = cms.ingest(&batch[6..18], &origin()).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 12), "an overlapping re-pull stores nothing");
    assert_eq!(month_end(&cms, october()), before);
    let mut corrected = batch[3].clone();
    corrected.quantity = dec("4");
    let summary = cms.ingest(&[corrected], &origin()).unwrap();
    assert_eq!(summary.corrections.len(), 1);
    assert_eq!(summary.corrections[0].old_quantity, dec("2"));
    assert_eq!(total(&month_end(&cms, october()), "t1"), dec("0.50"), "50 vCPU-hours at 0.01");
}

#[test]
fn excluded_subscriptions_and_unknowns_are_reported() {
    let mut cms = engine();
    let policy = IngestPolicy { excluded_subscriptions: ["S3".to_owned()].into(), ..IngestPolicy::default() };
    cms.execute(&op(), recorded_at(), &Event::IngestPolicySet { policy }).unwrap();
    let custom = "00000000-0000-4000-8000-0000000000aa";
    let batch = [
        record("s3", VM, at(1, 0), 1, "5"),
        record("s9", VM, at(1, 0), 1, "5"),
        record("s1", custom, at(1, 0), 1, "5"),
        record("s1", VM_HOURS, at(1, 0), 1, "1"),
    ];
    let summary = cms.ingest(&batch, &origin()).unwrap();
    assert_eq!((summary.excluded, summary.stored), (1, 3));
    assert_eq!(summary.unknown_subscriptions.get("s9"), Some(&1));
    assert_eq!(summary.unknown_meters.get(&meter(custom)), Some(&1));
    assert_eq!(summary.double_counting, 1);
    let report = month_end(&cms, october());
    let reasons: Vec<_> =
        report.not_billed.iter().map(|entry| (entry.subscription.as_str(), entry.reason)).collect();
    assert!(reasons.contains(&("s9", NotBilledReason::UnknownSubscription)));
    assert!(reasons.contains(&("s1", NotBilledReason::NoPrice)));
    assert!(
        reasons.contains(&("s1", NotBilledReason::DoubleCounts)),
        "VM size hours is not priced by default"
    );
    let priced = cms
        .month_end(october(), BillingRules { price_double_counting: true, ..BillingRules::default() })
        .unwrap();
    assert!(priced.not_billed.iter().all(|entry| entry.reason != NotBilledReason::DoubleCounts));
}

#[test]
fn one_granularity_per_subscription_and_period() {
    let mut cms = engine();
    cms.ingest(&[record("s1", IP, at(1, 0), 1, "1")], &origin()).unwrap();
    let batch = [
        record("s1", IP, at(2, 0), 24, "24"),
        record("s2", IP, at(2, 0), 24, "24"),
        record("s1", IP, at(1, 1), 1, "1"),
        record("s1", IP, at(1, 2), 3, "1"),
    ];
    let summary = cms.ingest(&batch, &PageOrigin::named("page-9.json")).unwrap();
    assert_eq!(summary.stored, 2);
    assert_eq!(summary.refused.len(), 2);
    assert_eq!(summary.refused[0].code, "mixed_granularity");
    assert!(
        summary.refused[0].message.starts_with("page-9.json record 0: subscription s1 would mix"),
        "{}",
        summary.refused[0].message
    );
    assert_eq!(summary.refused[1].code, "bad_interval");
    let next_month = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let later = cms.ingest(&[record("s1", IP, next_month, 24, "24")], &origin()).unwrap();
    assert_eq!(later.stored, 1, "another period may use another granularity");
}

#[test]
fn daily_ip_meters_bill_like_hourly_ones() {
    let hourly: Vec<_> =
        (0..24 * 30).map(|hour| record("s1", IP, at(1, 0) + Duration::hours(hour), 1, "2")).collect();
    let daily: Vec<_> =
        (0..30).map(|day| record("s1", IP, at(1, 0) + Duration::days(day), 24, "48")).collect();
    let (mut by_hour, mut by_day) = (engine(), engine());
    by_hour.ingest(&hourly, &origin()).unwrap();
    by_day.ingest(&daily, &origin()).unwrap();
    let (hour_report, day_report) = (month_end(&by_hour, october()), month_end(&by_day, october()));
    assert_eq!(total(&hour_report, "t1"), dec("5.76"), "1440 IP-hours at 0.004");
    assert_eq!(total(&day_report, "t1"), total(&hour_report, "t1"));
}

/// Every meter whose daily quantity is value x hours (IPs x hours, database MB x hours) bills the same from
/// daily records as from the hourly ones they sum: the rule needs no conversion, as the daily value is
/// already in the meter's per-hour unit.
#[test]
fn daily_value_times_hours_meters_bill_like_hourly_ones() {
    let flagged: Vec<&str> = cms_core::model::meter::catalogue()
        .iter()
        .filter(|info| info.flags.contains(cms_core::model::meter::MeterFlags::DAILY_VALUE_TIMES_HOURS))
        .map(|info| info.name)
        .collect();
    assert_eq!(
        flagged,
        [
            "Dynamic IP Address Usage",
            "DatabaseSizeHourSqlMeter",
            "DatabaseSizeHourMySqlMeter",
            "Static IP Address Usage"
        ]
    );
    // (meter, value each hour, expected October total: 720 hours x value x price)
    for (meter_id, value, expected) in
        [(IP, "2", "5.76"), (DYNAMIC_IP, "3", "8.64"), (SQL, "10240", "737.28"), (MYSQL, "2048.5", "73.75")]
    {
        let hourly: Vec<_> = (0..24 * 30)
            .map(|hour| record("s1", meter_id, at(1, 0) + Duration::hours(hour), 1, value))
            .collect();
        let per_day = (dec(value) * Decimal::from(24)).to_string();
        let daily: Vec<_> =
            (0..30).map(|day| record("s1", meter_id, at(1, 0) + Duration::days(day), 24, &per_day)).collect();
        let (mut by_hour, mut by_day) = (engine(), engine());
        assert_eq!(by_hour.ingest(&hourly, &origin()).unwrap().stored, 720);
        assert_eq!(by_day.ingest(&daily, &origin()).unwrap().stored, 30);
        let (hour_report, day_report) = (month_end(&by_hour, october()), month_end(&by_day, october()));
        assert_eq!(total(&hour_report, "t1"), dec(expected), "{meter_id} hourly");
        assert_eq!(total(&day_report, "t1"), dec(expected), "{meter_id} daily");
        let quantities = |report: &MonthEndReport| -> Vec<Decimal> {
            report.invoices.iter().flat_map(|invoice| &invoice.lines).map(|line| line.quantity).collect()
        };
        assert_eq!(quantities(&day_report), quantities(&hour_report), "{meter_id}");
    }
}

/// A page whose second record is bad is refused whole: its first record, good on its own, is not stored,
/// and the same record arrives later as new, not as a duplicate.
#[test]
fn a_refused_page_stores_none_of_its_records() {
    let good = |hour: u32| {
        format!(
            r#"{{"properties":{{"subscriptionId":"s1","usageStartTime":"2026-10-01T{hour:02}:00:00Z","usageEndTime":"2026-10-01T{:02}:00:00Z","meterId":"{VM}","quantity":10,"instanceData":null}}}}"#,
            hour + 1
        )
    };
    let mut cms = engine();
    let first = format!(r#"{{"value":[{}]}}"#, good(0));
    cms.pull(&mut PageBytesSource::new([("page-1.json".to_owned(), first.into_bytes())])).unwrap();
    let before = month_end(&cms, october());
    let stored = |cms: &Cms<MemoryStore>| {
        let mut count = 0;
        cms.store()
            .for_each_usage(&october(), &mut |_| {
                count += 1;
                Ok(())
            })
            .unwrap();
        count
    };
    assert_eq!(stored(&cms), 1);
    for (bad, code) in [
        (good(2).replace(r#""subscriptionId":"s1""#, r#""subscriptionId":5"#), "bad_json"),
        (good(2).replace(r#""quantity":10"#, r#""quantity":{}"#), "bad_decimal"),
        (good(2).replace(r#""quantity":10"#, r#""quantity":"10""#), "bad_decimal"),
    ] {
        let page = format!(r#"{{"value":[{},{bad}]}}"#, good(1));
        let error =
            cms.pull(&mut PageBytesSource::new([("page-2.json".to_owned(), page.into_bytes())])).unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(error.to_string().starts_with("page-2.json record 1: "), "{error}");
        assert_eq!(stored(&cms), 1, "record 0 of the refused page is not stored");
        assert_eq!(month_end(&cms, october()), before);
    }
    let fixed = format!(r#"{{"value":[{},{}]}}"#, good(1), good(2));
    let summary =
        cms.pull(&mut PageBytesSource::new([("page-2.json".to_owned(), fixed.into_bytes())])).unwrap();
    assert_eq!((summary.stored, summary.duplicates), (2, 0), "both records are new");
    assert_eq!(total(&month_end(&cms, october()), "t1"), dec("0.30"), "30 vCPU-hours at 0.01");
}

#[test]
fn late_usage_of_a_closed_period_is_an_adjustment_on_the_next_invoice() {
    let mut cms = engine();
    // 90 vCPU-hours in October: 0.90. Invoiced, then closed.
    let batch: Vec<_> = (0..9).map(|hour| record("s1", VM, at(1, hour), 1, "10")).collect();
    cms.ingest(&batch, &origin()).unwrap();
    let issued = month_end(&cms, october());
    assert_eq!(total(&issued, "t1"), dec("0.90"));
    cms.close_period(&op(), recorded_at(), october()).unwrap();
    // 30 late vCPU-hours cross the tier: October becomes 100 x 0.01 + 20 x 0.005 = 1.10.
    let late = [
        record("s1", VM, at(5, 0), 1, "10"),
        record("s1", VM, at(5, 1), 1, "10"),
        record("s1", VM, at(5, 2), 1, "10"),
    ];
    let summary = cms.ingest(&late, &origin()).unwrap();
    assert_eq!(summary.late_adjustments, 3);
    assert_eq!(summary.stored, 3);
    assert_eq!(month_end(&cms, october()), issued, "an invoiced period re-rates to the same figures");
    let replay = cms.ingest(&late, &origin()).unwrap();
    assert_eq!((replay.duplicates, replay.late_adjustments), (3, 0), "late records are deduplicated too");
    // November: usage of its own plus the adjustment line.
    cms.ingest(&[record("s2", VM, Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap(), 1, "1")], &origin())
        .unwrap();
    let next = month_end(&cms, november());
    let invoice = next.invoices.iter().find(|invoice| invoice.buyer == "t1").unwrap();
    let adjustment =
        invoice.lines.iter().find(|line| matches!(line.kind, LineKind::Adjustment { .. })).unwrap();
    assert_eq!(adjustment.kind, LineKind::Adjustment { adjusts: october() });
    assert_eq!((adjustment.quantity, adjustment.amount), (dec("30"), dec("0.20")), "1.10 - 0.90");
    assert_eq!(invoice.total, dec("0.21"));
    // A correction of an invoiced record lowers it: a negative adjustment, billed in the next open period.
    cms.close_period(&op(), recorded_at(), november()).unwrap();
    let mut lowered = late[0].clone();
    lowered.quantity = dec("4");
    cms.ingest(&[lowered], &origin()).unwrap();
    let december = month_end(&cms, Period::month(2026, 12).unwrap());
    let line = &december.invoices[0].lines[0];
    assert_eq!(line.kind, LineKind::Adjustment { adjusts: october() });
    assert_eq!((line.quantity, line.amount), (dec("-6"), dec("-0.03")), "114 vCPU-hours: 1.07 - 1.10");
    assert_eq!(month_end(&cms, november()), next, "November stays as issued");
}

#[test]
fn late_usage_beyond_the_look_back_window_is_refused() {
    let mut cms = engine();
    for month in [8, 9, 10] {
        cms.close_period(&op(), recorded_at(), Period::month(2026, month).unwrap()).unwrap();
    }
    let august = Utc.with_ymd_and_hms(2026, 8, 20, 0, 0, 0).unwrap();
    let september = Utc.with_ymd_and_hms(2026, 9, 20, 0, 0, 0).unwrap();
    let summary = cms
        .ingest(
            &[record("s1", VM, august, 1, "1"), record("s1", VM, september, 1, "1")],
            &PageOrigin::named("late.json"),
        )
        .unwrap();
    assert_eq!(summary.stored, 1, "September is within two periods of October");
    assert_eq!(summary.refused.len(), 1);
    assert_eq!(summary.refused[0].code, "late_usage_refused");
    assert!(
        summary.refused[0].message.starts_with("late.json record 0: usage of 2026-08"),
        "{}",
        summary.refused[0].message
    );
    assert!(cms.close_period(&op(), recorded_at(), october()).is_err(), "a period closes once");
    assert_eq!(
        cms.execute(
            &op(),
            recorded_at(),
            &Event::PeriodClosed { period: Period::new(at(1, 0), at(2, 0)).unwrap() }
        )
        .unwrap_err()
        .code(),
        "invalid_period"
    );
}

#[test]
fn pulls_record_checkpoints_with_the_last_page_of_a_window() {
    struct Windows {
        pages: Vec<(PageOrigin, Vec<u8>)>,
    }
    impl cms_core::source::UsageSource for Windows {
        fn next_page(&mut self) -> Result<Option<cms_core::source::SourcedPage>, cms_core::CmsError> {
            if self.pages.is_empty() {
                return Ok(None);
            }
            let (origin, bytes) = self.pages.remove(0);
            let page = cms_core::formats::usage_api::parse_page(&bytes, &origin.name)?;
            Ok(Some(cms_core::source::SourcedPage { origin, page }))
        }
    }
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/azure-stack-hub-sample-usage.json"
    ))
    .unwrap();
    let window = ReportedWindow {
        start: Utc.with_ymd_and_hms(2025, 3, 10, 13, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2025, 3, 10, 14, 0, 0).unwrap(),
        granularity: Granularity::Hourly,
    };
    let origin = |completes| PageOrigin {
        name: "https://adminmanagement.local/...".into(),
        region: "east".into(),
        subscriber: Some("3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11".into()),
        window: Some(window),
        completes_window: completes,
    };
    let mut cms = engine();
    let mut source = Windows { pages: vec![(origin(false), sample.clone()), (origin(true), sample)] };
    let summary = cms.pull(&mut source).unwrap();
    assert_eq!((summary.pages, summary.received, summary.stored, summary.duplicates), (2, 40, 20, 20));
    let expected = Checkpoint {
        region: "east".into(),
        subscriber: Some("3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11".into()),
        granularity: Granularity::Hourly,
        reported_until: window.end,
    };
    assert_eq!(cms.checkpoints().unwrap(), [expected]);
    assert_eq!(summary.unknown_subscriptions.len(), 3, "the sample's subscriptions are not in this channel");
    let mut loose = PageBytesSource::new([("x.json".to_owned(), b"{\"value\":[]}".to_vec())]);
    cms.pull(&mut loose).unwrap();
    assert_eq!(cms.checkpoints().unwrap().len(), 1, "a loose page sets no checkpoint");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever arrives late and whenever, the amounts invoiced for one (subscription, meter, period) add up
    /// to the rounded price of its final quantity; and a closed period re-rates to what it issued.
    #[test]
    fn invoiced_amounts_add_up_to_the_final_quantity(
        on_time in proptest::collection::vec((0u32..28, 0i64..40), 1..8),
        waves in proptest::collection::vec(proptest::collection::vec((0u32..28, 0i64..40), 0..5), 1..3),
    ) {
        let mut cms = engine();
        let mut periods = vec![october()];
        let batch: Vec<_> = on_time.iter().map(|(day, q)| record("s1", VM, at(day + 1, 0), 1, &q.to_string())).collect();
        cms.ingest(&batch, &origin()).unwrap();
        let mut invoiced = Decimal::ZERO;
        let mut issued = Vec::new();
        for wave in &waves {
            let period = *periods.last().unwrap();
            let report = month_end(&cms, period);
            invoiced += report.invoices.iter().flat_map(|invoice| &invoice.lines)
                .filter(|line| line.kind == LineKind::Usage && period == october()
                    || matches!(line.kind, LineKind::Adjustment { adjusts } if adjusts == october()))
                .map(|line| line.amount).sum::<Decimal>();
            issued.push((period, report));
            cms.close_period(&op(), recorded_at(), period).unwrap();
            periods.push(period.next_month().unwrap());
            let late: Vec<_> = wave.iter().map(|(day, q)| record("s1", VM, at(day + 1, 0), 1, &q.to_string())).collect();
            cms.ingest(&late, &origin()).unwrap();
        }
        let last = *periods.last().unwrap();
        invoiced += month_end(&cms, last).invoices.iter().flat_map(|invoice| &invoice.lines)
            .filter(|line| matches!(line.kind, LineKind::Adjustment { adjusts } if adjusts == october()))
            .map(|line| line.amount).sum::<Decimal>();
        let mut final_quantity = Decimal::ZERO;
        cms.store().for_each_usage(&october(), &mut |record| {
            final_quantity += record.quantity;
            Ok(())
        }).unwrap();
        let book = &cms.state().terms.book;
        let price = book.price_of_list("list", meter(VM), october().start, None).unwrap().unwrap();
        let expected = Rounding::CENTS.apply(price.amount(final_quantity).unwrap());
        prop_assert_eq!(invoiced, expected);
        for (period, report) in issued {
            prop_assert_eq!(month_end(&cms, period), report);
        }
    }
}

/// The operator recording the test's commands.
fn op() -> cms_core::engine::Principal {
    cms_core::engine::Principal::platform("test-operator")
}

/// When the test's commands are recorded (the core has no clock).
fn recorded_at() -> cms_core::model::time::Instant {
    cms_core::model::time::parse_timestamp("2026-11-26T12:00:00Z").unwrap()
}
