//! Properties of the commercial model through the engine's month-end: price precedence, derived resale
//! chains, bulk increases (preview equals applying), and effective-dated versions. Expected figures are
//! computed by brute force in the tests, never by the code under test.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Months, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::billing::{BillingRules, Invoice, LineKind, MonthEndReport, NotBilledReason};
use cms_core::engine::{Cms, Event, Principal};
use cms_core::model::channel::{BillingProfile, Relationship};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::Currency;
use cms_core::model::price_book::{BookList, ChangeScope, ChangeSet, MeterFilter, PriceScope, PriceVersion};
use cms_core::model::pricing::{MeterPrice, PriceChange, PriceModel};
use cms_core::model::tiers::{Tier, TierMode, TierSchedule};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::UsageRecord;
use cms_core::source::PageOrigin;
use cms_core::store::MemoryStore;
use proptest::prelude::*;

/// Base VM Size Hours, Static IP Address Usage, `BlockBlobCapacity`: three meters that do not double count.
const METERS: [&str; 3] = [
    "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5",
    "F271A8A3-88C4-4D93-956A-063E1D2FA80B",
    "09F8879E-87E9-4305-A572-4B7BE209F857",
];

fn meter(index: usize) -> MeterId {
    METERS[index].parse().unwrap()
}

fn utc(month: u32, day: u32, hour: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
}

fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

fn november() -> Period {
    Period::month(2026, 11).unwrap()
}

fn list_effective() -> Instant {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn operator() -> Principal {
    Principal::platform("operator")
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: id.into() }
}

fn per_unit(rate: Decimal) -> MeterPrice {
    MeterPrice::new("unit", PriceModel::per_unit(rate))
}

fn graduated(tiers: &[(Decimal, Decimal)]) -> MeterPrice {
    let tiers = tiers.iter().map(|&(from, rate)| Tier { from, rate }).collect();
    MeterPrice::new(
        "unit",
        PriceModel::Tiered(TierSchedule::new(TierMode::Graduated, tiers, "test").unwrap()),
    )
}

fn own_list(id: &str, prices: BTreeMap<MeterId, MeterPrice>) -> BookList {
    let mut list = BookList::new(id, id, Currency::USD);
    list.versions.push(PriceVersion::own(list_effective(), prices));
    list
}

fn engine(events: &[Event]) -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    cms.execute_all(&operator(), utc(9, 15, 0), events).unwrap();
    cms
}

fn record(subscription: &str, meter_id: MeterId, start: Instant, quantity: Decimal) -> UsageRecord {
    UsageRecord {
        subscription: subscription.into(),
        meter: meter_id,
        start,
        end: start + Duration::hours(1),
        quantity,
        resource_uri: format!("/subscriptions/{subscription}/resourceGroups/rg/providers/x/r"),
        location: "local".into(),
        ..UsageRecord::default()
    }
}

fn ingest(cms: &mut Cms<MemoryStore>, records: &[UsageRecord]) {
    let summary = cms.ingest(records, &PageOrigin::named("page.json")).unwrap();
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
}

fn month_end(cms: &Cms<MemoryStore>, period: Period) -> MonthEndReport {
    cms.month_end(period, BillingRules::default()).unwrap()
}

fn tenant_totals(report: &MonthEndReport) -> BTreeMap<String, Decimal> {
    report
        .invoices
        .iter()
        .filter(|invoice| invoice.buyer_kind == NodeKind::Tenant)
        .map(|invoice| (invoice.buyer.clone(), invoice.total))
        .collect()
}

/// A quantity of 0.01 to 2000.00.
fn quantity() -> impl Strategy<Value = Decimal> {
    (1i64..200_000).prop_map(|hundredths| Decimal::new(hundredths, 2))
}

/// A unit rate of 0.0001 to 0.5000.
fn rate() -> impl Strategy<Value = Decimal> {
    (1i64..5000).prop_map(|ten_thousandths| Decimal::new(ten_thousandths, 4))
}

// ---- precedence ----------------------------------------------------------------------------------------

/// The scopes a list may be assigned at, most specific first for subscription s:
/// subscription s, tenant t, partner p, distributor d, region "east", the platform default.
const SCOPES: [&str; 6] = ["s", "t", "p", "d", "region", "default"];

fn scope(index: usize) -> PriceScope {
    match SCOPES[index] {
        "region" => PriceScope::Region("east".into()),
        "default" => PriceScope::Default,
        node => PriceScope::Node(node.into()),
    }
}

/// A distinct unit rate per (scope, meter): 0.01 x (scope + 1) + 0.001 x meter.
fn scope_rate(scope: usize, meter_index: usize) -> Decimal {
    Decimal::from(10 * (scope + 1) + meter_index) / Decimal::ONE_THOUSAND
}

/// The scopes on each subscription's path, in precedence order (indices into [`SCOPES`]):
/// s (region east) under t under p under d; s2 (region west) under t2 under p; s3 (no region) under t3 under
/// p2 under d.
fn path_of(subscription: &str) -> Vec<usize> {
    match subscription {
        "s" => vec![0, 1, 2, 3, 4, 5],
        "s2" => vec![2, 3, 5],
        _ => vec![3, 5],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Each scope gets no list, or a list pricing a random subset of the meters (a bit mask); every invoice
    /// line is priced by the most specific list on its path that prices its meter, and usage no list prices
    /// is reported as not billed.
    #[test]
    fn precedence_through_billing(masks in proptest::collection::vec(proptest::option::of(0u8..8), 6)) {
        let mut events = vec![
            add("d", NodeKind::Distributor, None),
            add("p", NodeKind::Partner, Some("d")),
            add("p2", NodeKind::Partner, Some("d")),
            add("t", NodeKind::Tenant, Some("p")),
            add("t2", NodeKind::Tenant, Some("p")),
            add("t3", NodeKind::Tenant, Some("p2")),
            add("s", NodeKind::Subscription, Some("t")),
            add("s2", NodeKind::Subscription, Some("t2")),
            add("s3", NodeKind::Subscription, Some("t3")),
        ];
        for (subscription, region) in [("s", Some("east")), ("s2", Some("west")), ("s3", None)] {
            let info = cms_core::model::channel::SubscriptionInfo {
                region: region.map(Into::into),
                ..Default::default()
            };
            events.push(Event::SubscriptionSet { id: subscription.into(), info });
        }
        for (index, mask) in masks.iter().enumerate() {
            let Some(mask) = mask else { continue };
            let prices = (0..3)
                .filter(|meter_index| mask & (1 << meter_index) != 0)
                .map(|meter_index| (meter(meter_index), per_unit(scope_rate(index, meter_index))))
                .collect();
            let id = format!("L-{}", SCOPES[index]);
            events.push(Event::PriceListCreated { list: own_list(&id, prices) });
            events.push(Event::PriceListAssigned { scope: scope(index), list: id });
        }
        let mut cms = engine(&events);
        let records: Vec<UsageRecord> = ["s", "s2", "s3"]
            .iter()
            .flat_map(|subscription| (0..3).map(move |m| record(subscription, meter(m), utc(10, 5, 0), Decimal::TEN)))
            .collect();
        ingest(&mut cms, &records);
        let report = month_end(&cms, october());
        for subscription in ["s", "s2", "s3"] {
            for meter_index in 0..3 {
                // Brute force: the first scope on the path whose list prices the meter.
                let winner = path_of(subscription).into_iter().find(|&index| {
                    masks[index].is_some_and(|mask| mask & (1 << meter_index) != 0)
                });
                let lines: Vec<_> = report
                    .invoices
                    .iter()
                    .flat_map(|invoice| &invoice.lines)
                    .filter(|line| line.subscription == subscription && line.meter == meter(meter_index))
                    .collect();
                let unbilled = report
                    .not_billed
                    .iter()
                    .filter(|entry| entry.subscription == subscription && entry.meter == meter(meter_index))
                    .count();
                if let Some(index) = winner {
                    prop_assert_eq!(lines.len(), 1);
                    prop_assert_eq!(&lines[0].price_list, &format!("L-{}", SCOPES[index]));
                    // 10 units at the winning list's rate.
                    prop_assert_eq!(lines[0].amount_exact, Decimal::TEN * scope_rate(index, meter_index));
                    prop_assert_eq!(unbilled, 0);
                } else {
                    prop_assert!(lines.is_empty());
                    prop_assert_eq!(unbilled, 1);
                    prop_assert!(report.not_billed.iter().all(|entry| entry.reason == NotBilledReason::NoPrice));
                }
            }
        }
    }
}

// ---- derived resale chains -----------------------------------------------------------------------------

/// A markup of -50 % to +99 %.
fn markup() -> impl Strategy<Value = Decimal> {
    (-50i64..100).prop_map(|hundredths| Decimal::new(hundredths, 2))
}

fn exact_of(invoice: &Invoice, subscriptions: &[&str]) -> Decimal {
    invoice
        .lines
        .iter()
        .filter(|line| subscriptions.contains(&line.subscription.as_str()))
        .map(|line| line.amount_exact)
        .sum()
}

fn invoice_of<'a>(report: &'a MonthEndReport, issuer: &str, buyer: &str) -> &'a Invoice {
    report.invoices.iter().find(|invoice| invoice.issuer == issuer && invoice.buyer == buyer).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// rd (resale) > rp (resale) > ta (sa1, sa2), tb (sb): rd buys at the default, rp at rd's list (the
    /// default + m1), the tenants at rp's (rd's + m2). For every tenant, its exact lines are the platform's
    /// exact lines for its subscriptions x (1 + m1) x (1 + m2), the middle level x (1 + m1); and the tenants'
    /// totals are the platform's invoice to rd plus both margins.
    #[test]
    fn derived_chains_through_billing(
        m1 in markup(),
        m2 in markup(),
        low in rate(),
        high in rate(),
        breakpoint in 1i64..1000,
        ip in rate(),
        quantities in proptest::collection::vec(quantity(), 6),
    ) {
        let mut std_prices = BTreeMap::new();
        std_prices.insert(meter(0), graduated(&[(Decimal::ZERO, low), (Decimal::from(breakpoint), high)]));
        std_prices.insert(meter(1), per_unit(ip));
        let derived = |id: &str, parent: &str, markup: Decimal| {
            let mut list = BookList::new(id, id, Currency::USD);
            list.versions.push(PriceVersion::derived(list_effective(), parent, markup));
            list
        };
        let resale = BillingProfile { relationship: Relationship::Resale, ..BillingProfile::default() };
        let mut cms = engine(&[
            add("rd", NodeKind::Distributor, None),
            add("rp", NodeKind::Partner, Some("rd")),
            add("ta", NodeKind::Tenant, Some("rp")),
            add("tb", NodeKind::Tenant, Some("rp")),
            add("sa1", NodeKind::Subscription, Some("ta")),
            add("sa2", NodeKind::Subscription, Some("ta")),
            add("sb", NodeKind::Subscription, Some("tb")),
            Event::BillingProfileSet { node: "rd".into(), profile: resale.clone() },
            Event::BillingProfileSet { node: "rp".into(), profile: resale },
            Event::PriceListCreated { list: own_list("std", std_prices) },
            Event::PriceListCreated { list: derived("rd-sell", "std", m1) },
            Event::PriceListCreated { list: derived("rp-sell", "rd-sell", m2) },
            Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
            Event::PriceListAssigned { scope: PriceScope::Node("rp".into()), list: "rd-sell".into() },
            Event::PriceListAssigned { scope: PriceScope::Node("ta".into()), list: "rp-sell".into() },
            Event::PriceListAssigned { scope: PriceScope::Node("tb".into()), list: "rp-sell".into() },
        ]);
        let mut records = Vec::new();
        for (index, (subscription, meter_index)) in
            [("sa1", 0), ("sa1", 1), ("sa2", 0), ("sa2", 1), ("sb", 0), ("sb", 1)].into_iter().enumerate()
        {
            // Two records each, on different days: the monthly sum is what tiers see.
            let half = quantities[index] / Decimal::TWO;
            records.push(record(subscription, meter(meter_index), utc(10, 3, 0), half));
            records.push(record(subscription, meter(meter_index), utc(10, 17, 5), quantities[index] - half));
        }
        ingest(&mut cms, &records);
        let report = month_end(&cms, october());
        prop_assert!(report.not_billed.is_empty(), "{:?}", report.not_billed);
        let (to_rd, to_rp) = (invoice_of(&report, "platform", "rd"), invoice_of(&report, "rd", "rp"));
        let factor_rd = Decimal::ONE + m1;
        let factor_rp = Decimal::ONE + m2;
        for (tenant, subscriptions) in [("ta", &["sa1", "sa2"][..]), ("tb", &["sb"][..])] {
            let platform = exact_of(to_rd, subscriptions);
            let middle = exact_of(to_rp, subscriptions);
            let sold = exact_of(invoice_of(&report, "rp", tenant), subscriptions);
            prop_assert_eq!(middle, platform * factor_rd);
            prop_assert_eq!(sold, platform * factor_rd * factor_rp);
            // Level by level, exactly: the tenant's price = the platform's revenue + rd's margin + rp's.
            prop_assert_eq!(sold, platform + (middle - platform) + (sold - middle));
        }
        // The statements, from rounded totals: rd sold to_rp, bought to_rd; rp sold both tenant invoices.
        let margins: BTreeMap<&str, (Decimal, Decimal, Decimal)> = report
            .margins
            .iter()
            .map(|margin| (margin.reseller.as_str(), (margin.sold, margin.bought, margin.margin)))
            .collect();
        let tenants_pay: Decimal = tenant_totals(&report).values().copied().sum();
        prop_assert_eq!(margins["rd"], (to_rp.total, to_rd.total, to_rp.total - to_rd.total));
        prop_assert_eq!(margins["rp"], (tenants_pay, to_rp.total, tenants_pay - to_rp.total));
        prop_assert_eq!(tenants_pay, to_rd.total + margins["rd"].2 + margins["rp"].2);
    }
}

// ---- a bulk increase: preview equals applying ----------------------------------------------------------

/// d > p1 > t1 (s1), t2 (s2); d > p2 > t3 (s3), t4 (s4). The default prices VM graduated and IP per unit;
/// p1's list prices VM per unit.
fn increase_engine(low: Decimal, high: Decimal, ip: Decimal, partner_vm: Decimal) -> Cms<MemoryStore> {
    let mut std_prices = BTreeMap::new();
    std_prices.insert(meter(0), graduated(&[(Decimal::ZERO, low), (Decimal::from(500), high)]));
    std_prices.insert(meter(1), per_unit(ip));
    let mut partner_prices = BTreeMap::new();
    partner_prices.insert(meter(0), per_unit(partner_vm));
    let mut events = vec![
        add("d", NodeKind::Distributor, None),
        add("p1", NodeKind::Partner, Some("d")),
        add("p2", NodeKind::Partner, Some("d")),
    ];
    for (tenant, partner) in [("t1", "p1"), ("t2", "p1"), ("t3", "p2"), ("t4", "p2")] {
        events.push(add(tenant, NodeKind::Tenant, Some(partner)));
        events.push(add(&tenant.replace('t', "s"), NodeKind::Subscription, Some(tenant)));
    }
    events.extend([
        Event::PriceListCreated { list: own_list("std", std_prices) },
        Event::PriceListCreated { list: own_list("p1-list", partner_prices) },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
        Event::PriceListAssigned { scope: PriceScope::Node("p1".into()), list: "p1-list".into() },
    ]);
    engine(&events)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The preview of a random increase (percent, scale, meter filter, exempt tenants) on October gives, per
    /// tenant, exactly what November bills once the increase is applied, for the same usage; exempt tenants
    /// pay October's figures again.
    #[test]
    fn bulk_increase_preview_equals_applying(
        rates in (rate(), rate(), rate(), rate()),
        percent in (-50i64..100).prop_map(|hundredths| Decimal::new(hundredths, 2)),
        scale in 2u32..7,
        only_vm in any::<bool>(),
        exempt in proptest::collection::vec(any::<bool>(), 4),
        usage in proptest::collection::vec((quantity(), 1u32..29, 0u32..24), 8..16),
    ) {
        let (low, high, ip, partner_vm) = rates;
        let mut cms = increase_engine(low, high, ip, partner_vm);
        let october_records: Vec<UsageRecord> = usage
            .iter()
            .enumerate()
            .map(|(index, &(amount, day, hour))| {
                let subscription = ["s1", "s2", "s3", "s4"][index % 4];
                record(subscription, meter((index / 4) % 2), utc(10, day, hour), amount)
            })
            .collect();
        ingest(&mut cms, &october_records);
        let october_report = month_end(&cms, october());
        cms.close_period(&operator(), utc(11, 1, 6), october()).unwrap();
        let exempt_tenants: BTreeSet<String> = ["t1", "t2", "t3", "t4"]
            .iter()
            .zip(&exempt)
            .filter(|(_, exempt)| **exempt)
            .map(|(tenant, _)| (*tenant).to_owned())
            .collect();
        let change = ChangeSet {
            id: "raise".into(),
            scope: ChangeScope::All,
            meters: if only_vm { MeterFilter::Meters(BTreeSet::from([meter(0)])) } else { MeterFilter::All },
            change: PriceChange::Percent(percent),
            effective: utc(11, 1, 0),
            scale,
            exempt_tenants: exempt_tenants.clone(),
        };
        let preview = cms.preview_change_set(&operator(), &change, BillingRules::default()).unwrap();
        let old: BTreeMap<String, Decimal> = preview.tenants.iter().map(|impact| (impact.id.clone(), impact.old)).collect();
        let new: BTreeMap<String, Decimal> = preview.tenants.iter().map(|impact| (impact.id.clone(), impact.new)).collect();
        prop_assert_eq!(&old, &tenant_totals(&october_report));
        cms.apply_change_set(&operator(), utc(11, 1, 7), change).unwrap();
        // The same records a calendar month later (days 1 to 28 exist in both months).
        let november_records: Vec<UsageRecord> = october_records
            .iter()
            .map(|record| {
                let start = record.start.checked_add_months(Months::new(1)).unwrap();
                UsageRecord { start, end: start + Duration::hours(1), ..record.clone() }
            })
            .collect();
        ingest(&mut cms, &november_records);
        let november_totals = tenant_totals(&month_end(&cms, november()));
        prop_assert_eq!(&november_totals, &new);
        for tenant in &exempt_tenants {
            prop_assert_eq!(november_totals.get(tenant), old.get(tenant), "{} is exempt", tenant);
        }
        // October as closed never changes.
        prop_assert_eq!(month_end(&cms, october()), october_report);
    }
}

// ---- effective dates -----------------------------------------------------------------------------------

/// d > p > t > s; one list at the default whose first version (from January) is followed by versions at
/// the given hours of October, each with its own price of the meter.
fn versioned_engine(first: MeterPrice, later: &[(u32, MeterPrice)]) -> Cms<MemoryStore> {
    let mut list = BookList::new("l", "l", Currency::USD);
    list.versions.push(PriceVersion::own(list_effective(), BTreeMap::from([(meter(0), first)])));
    for (hour, price) in later {
        let effective = october().start + Duration::hours(i64::from(*hour));
        list.versions.push(PriceVersion::own(effective, BTreeMap::from([(meter(0), price.clone())])));
    }
    engine(&[
        add("d", NodeKind::Distributor, None),
        add("p", NodeKind::Partner, Some("d")),
        add("t", NodeKind::Tenant, Some("p")),
        add("s", NodeKind::Subscription, Some("t")),
        Event::PriceListCreated { list },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "l".into() },
    ])
}

/// Usage records at distinct hours of October (hour offset -> quantity).
fn october_usage(usage: &BTreeMap<u32, Decimal>) -> Vec<UsageRecord> {
    usage
        .iter()
        .map(|(&hour, &amount)| {
            record("s", meter(0), october().start + Duration::hours(i64::from(hour)), amount)
        })
        .collect()
}

/// The effective instant of the version in effect at October hour `hour`: the latest version hour at or
/// before it, else the January version.
fn version_at(version_hours: &[u32], hour: u32) -> (usize, Instant) {
    match version_hours.iter().rposition(|&start| start <= hour) {
        Some(index) => (index + 1, october().start + Duration::hours(i64::from(version_hours[index]))),
        None => (0, list_effective()),
    }
}

/// The usage lines of the tenant's invoice by `price_effective`: (quantity, exact amount).
fn lines_by_version(report: &MonthEndReport) -> BTreeMap<Instant, (Decimal, Decimal)> {
    let invoice = report.invoices.iter().find(|invoice| invoice.buyer == "t").unwrap();
    let mut lines = BTreeMap::new();
    for line in invoice.lines.iter().filter(|line| line.kind == LineKind::Usage) {
        let previous = lines.insert(line.price_effective.unwrap(), (line.quantity, line.amount_exact));
        assert!(previous.is_none(), "one line per version");
    }
    lines
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Per-unit prices changing at random hours of the month: each line is priced by the version in effect
    /// when its usage started, and the month is the sum over versions of quantity x rate, exactly.
    #[test]
    fn effective_dates_through_billing(
        version_hours in proptest::collection::btree_set(1u32..744, 1..5),
        rates in proptest::collection::vec(rate(), 5),
        usage in proptest::collection::btree_map(0u32..744, quantity(), 1..40),
    ) {
        let version_hours: Vec<u32> = version_hours.into_iter().collect();
        let later: Vec<(u32, MeterPrice)> =
            version_hours.iter().enumerate().map(|(index, &hour)| (hour, per_unit(rates[index + 1]))).collect();
        let mut cms = versioned_engine(per_unit(rates[0]), &later);
        ingest(&mut cms, &october_usage(&usage));
        let report = month_end(&cms, october());
        // Brute force: each record to the version in effect at its start.
        let mut expected: BTreeMap<Instant, (Decimal, Decimal)> = BTreeMap::new();
        for (&hour, &amount) in &usage {
            let (index, effective) = version_at(&version_hours, hour);
            let entry = expected.entry(effective).or_default();
            entry.0 += amount;
            entry.1 += amount * rates[index];
        }
        prop_assert_eq!(lines_by_version(&report), expected.clone());
        let month: Decimal = expected.values().map(|(_, amount)| *amount).sum();
        let invoiced: Decimal = report.invoices[0].lines.iter().map(|line| line.amount_exact).sum();
        prop_assert_eq!(invoiced, month);
    }

    /// Graduated prices changing at random hours: tiers count the month across versions, so version k's
    /// line is `P_k(quantity up to its end) - P_k(quantity before it)`.
    #[test]
    fn tiers_continue_across_versions(
        version_hours in proptest::collection::btree_set(1u32..744, 1..5),
        schedules in proptest::collection::vec((rate(), rate(), 1i64..400), 5),
        usage in proptest::collection::btree_map(0u32..744, quantity(), 1..40),
    ) {
        let version_hours: Vec<u32> = version_hours.into_iter().collect();
        let price = |index: usize| {
            let (low, high, breakpoint) = schedules[index];
            graduated(&[(Decimal::ZERO, low), (Decimal::from(breakpoint), high)])
        };
        let later: Vec<(u32, MeterPrice)> =
            version_hours.iter().enumerate().map(|(index, &hour)| (hour, price(index + 1))).collect();
        let mut cms = versioned_engine(price(0), &later);
        ingest(&mut cms, &october_usage(&usage));
        let report = month_end(&cms, october());
        // Cumulative quantity at the start and end of each version's usage, in time order.
        let mut expected: BTreeMap<Instant, (Decimal, Decimal)> = BTreeMap::new();
        let mut spans: BTreeMap<usize, (Instant, Decimal, Decimal)> = BTreeMap::new();
        let mut counted = Decimal::ZERO;
        for (&hour, &amount) in &usage {
            let (index, effective) = version_at(&version_hours, hour);
            let span = spans.entry(index).or_insert((effective, counted, counted));
            span.2 += amount;
            counted += amount;
        }
        // P(q) = low x min(q, breakpoint) + high x max(q - breakpoint, 0), by hand.
        let by_hand = |index: usize, q: Decimal| {
            let (low, high, breakpoint) = schedules[index];
            let breakpoint = Decimal::from(breakpoint);
            low * q.min(breakpoint) + high * (q - breakpoint).max(Decimal::ZERO)
        };
        for (index, (effective, before, after)) in spans {
            expected.insert(effective, (after - before, by_hand(index, after) - by_hand(index, before)));
        }
        prop_assert_eq!(lines_by_version(&report), expected);
    }
}
