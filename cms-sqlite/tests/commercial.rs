//! The commercial scenario of `cms-core/tests/commercial_scenario.rs` (onboarding from a catalogue, October
//! billed and closed, a bulk increase previewed then applied, November billed, a tenant moving partners
//! mid-November, drafts reprocessed) on a SQLite file: the figures are the hand-computed ones, the memory
//! store gives identical reports, and reopening the file gives identical month-end reports.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Months, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::billing::{BillingRules, MonthEndReport};
use cms_core::engine::{Cms, Event, Principal};
use cms_core::model::catalogue::{Offer, OfferState, Plan, Service};
use cms_core::model::channel::SubscriptionInfo;
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::money::Currency;
use cms_core::model::price_book::{BookList, ChangeScope, ChangeSet, MeterFilter, PriceScope, PriceVersion};
use cms_core::model::pricing::{CommissionPlan, MeterPrice, PriceChange, PriceModel};
use cms_core::model::tiers::{Tier, TierMode, TierSchedule};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::UsageRecord;
use cms_core::source::PageOrigin;
use cms_core::store::{MemoryStore, Store};
use cms_sqlite::SqliteStore;
use common::{IP, VM, dec, meter, record};

fn utc(month: u32, day: u32, hour: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
}

fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

fn november() -> Period {
    Period::month(2026, 11).unwrap()
}

fn rules() -> BillingRules {
    BillingRules::default()
}

fn operator() -> Principal {
    Principal::platform("operator")
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: format!("{id} name") }
}

fn tiers(pairs: &[(&str, &str)]) -> Vec<Tier> {
    pairs.iter().map(|(from, rate)| Tier { from: dec(from), rate: dec(rate) }).collect()
}

fn book_list(id: &str, prices: Vec<(&str, MeterPrice)>) -> BookList {
    let mut list = BookList::new(id, id, Currency::USD);
    let prices = prices.into_iter().map(|(meter_id, price)| (meter(meter_id), price)).collect();
    list.versions.push(PriceVersion::own(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(), prices));
    list
}

/// The channel of the core scenario: dist > p1 > t1 (s1, s2), t2 (s3); dist > p2 > t3 (s4); the default
/// `std` (VM graduated 0.0537 to 500 then 0.0425, IP 0.0036) and `p1-list` at p1 (VM 0.0481); commissions
/// 5 % to 100 then 8 % (the distributor's), 10 % (p2's own); an override of 2 %.
fn onboard<S: Store>(cms: &mut Cms<S>) {
    let graduated =
        TierSchedule::new(TierMode::Graduated, tiers(&[("0", "0.0537"), ("500", "0.0425")]), "vm").unwrap();
    let std = book_list(
        "std",
        vec![
            (VM, MeterPrice::new("vCore-hours", PriceModel::Tiered(graduated))),
            (IP, MeterPrice::new("IP-hours", PriceModel::per_unit(dec("0.0036")))),
        ],
    );
    let p1_list =
        book_list("p1-list", vec![(VM, MeterPrice::new("vCore-hours", PriceModel::per_unit(dec("0.0481"))))]);
    let network =
        CommissionPlan::new("network", TierMode::Graduated, tiers(&[("0", "0.05"), ("100", "0.08")]))
            .unwrap();
    let flat10 = CommissionPlan::new("flat10", TierMode::Graduated, tiers(&[("0", "0.10")])).unwrap();
    let events = vec![
        Event::ServicePut {
            service: Service {
                id: "iaas".into(),
                name: "IaaS".into(),
                meters: BTreeSet::from([meter(VM), meter(IP)]),
            },
        },
        Event::PlanPut {
            plan: Plan {
                id: "standard".into(),
                name: "Standard".into(),
                services: vec!["iaas".into()],
                quotas: BTreeMap::new(),
            },
        },
        Event::OfferPut {
            offer: Offer {
                id: "gold".into(),
                name: "Gold".into(),
                base_plan: "standard".into(),
                addon_plans: Vec::new(),
                state: OfferState::Private,
            },
        },
        Event::OfferStateSet { offer: "gold".into(), state: OfferState::Public },
        add("dist", NodeKind::Distributor, None),
        add("p1", NodeKind::Partner, Some("dist")),
        add("p2", NodeKind::Partner, Some("dist")),
        add("t1", NodeKind::Tenant, Some("p1")),
        add("t2", NodeKind::Tenant, Some("p1")),
        add("t3", NodeKind::Tenant, Some("p2")),
        Event::CommissionPlanPut { plan: network },
        Event::CommissionPlanAssigned { node: "dist".into(), plan: "network".into() },
        Event::CommissionPlanPut { plan: flat10 },
        Event::CommissionPlanAssigned { node: "p2".into(), plan: "flat10".into() },
        Event::OverrideRateSet { node: "dist".into(), rate: dec("0.02") },
        Event::PriceListCreated { list: std },
        Event::PriceListCreated { list: p1_list },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
        Event::PriceListAssigned { scope: PriceScope::Node("p1".into()), list: "p1-list".into() },
    ];
    cms.execute_all(&operator(), utc(9, 15, 9), &events).unwrap();
    let gold = SubscriptionInfo { offer: Some("gold".into()), ..SubscriptionInfo::default() };
    for (partner, id, tenant) in
        [("p1", "s1", "t1"), ("p1", "s2", "t1"), ("p1", "s3", "t2"), ("p2", "s4", "t3")]
    {
        let principal = Principal::at(&format!("{partner}-admin"), partner);
        cms.onboard_subscription(&principal, utc(9, 15, 10), id, tenant, id, gold.clone()).unwrap();
    }
}

/// Days 1..=30 of October, hourly: s1 VM 3 (08-20) / 1 -> 1440, s1 IP 2 -> 1440, s2 VM 0.5 -> 360,
/// s3 VM 1.25 -> 900, s3 IP 1 -> 720, s4 VM 3 / 1 -> 1440, s4 IP 1 -> 720.
fn october_usage() -> Vec<UsageRecord> {
    let mut records = Vec::new();
    for day in 1..=30 {
        for hour in 0..24 {
            let business = if (8..20).contains(&hour) { "3" } else { "1" };
            let start = utc(10, day, hour);
            for (subscription, meter_id, quantity) in [
                ("s1", VM, business),
                ("s1", IP, "2"),
                ("s2", VM, "0.5"),
                ("s3", VM, "1.25"),
                ("s3", IP, "1"),
                ("s4", VM, business),
                ("s4", IP, "1"),
            ] {
                records.push(record(subscription, meter_id, start, 1, quantity));
            }
        }
    }
    records
}

fn november_usage() -> Vec<UsageRecord> {
    october_usage()
        .into_iter()
        .map(|record| {
            let start = record.start.checked_add_months(Months::new(1)).unwrap();
            UsageRecord { start, end: start + Duration::hours(1), ..record }
        })
        .collect()
}

fn raise() -> ChangeSet {
    ChangeSet {
        id: "nov-raise".into(),
        scope: ChangeScope::All,
        meters: MeterFilter::Meters(BTreeSet::from([meter(VM)])),
        change: PriceChange::Percent(dec("0.10")),
        effective: utc(11, 1, 0),
        scale: 4,
        exempt_tenants: BTreeSet::from(["t1".to_owned()]),
    }
}

fn totals(report: &MonthEndReport) -> BTreeMap<String, Decimal> {
    report
        .invoices
        .iter()
        .filter(|invoice| invoice.buyer_kind == NodeKind::Tenant)
        .map(|invoice| (invoice.buyer.clone(), invoice.total))
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, Decimal> {
    pairs.iter().map(|(id, amount)| ((*id).to_owned(), dec(amount))).collect()
}

fn commissions(report: &MonthEndReport) -> Vec<(String, Decimal, Decimal)> {
    report
        .commissions
        .iter()
        .map(|statement| (statement.partner.clone(), statement.revenue, statement.commission))
        .collect()
}

fn row(partner: &str, revenue: &str, commission: &str) -> (String, Decimal, Decimal) {
    (partner.to_owned(), dec(revenue), dec(commission))
}

/// Everything the scenario produces: October and November as billed, the preview, the drafts.
#[derive(Debug, PartialEq)]
struct Outcome {
    october: MonthEndReport,
    november: MonthEndReport,
    preview: cms_core::engine::ChangeSetPreview,
    drafts: Vec<cms_core::billing::Invoice>,
}

/// Run the scenario on a store, checking the hand-computed figures at every step.
fn live<S: Store>(cms: &mut Cms<S>) -> Outcome {
    onboard(cms);
    let stored = cms.ingest(&october_usage(), &PageOrigin::named("october.json")).unwrap();
    assert_eq!(stored.stored, 30 * 24 * 7);
    let october_report = cms.month_end(october(), rules()).unwrap();
    // t1: 1440 x 0.0481 = 69.264 -> 69.26, 1440 x 0.0036 = 5.184 -> 5.18, 360 x 0.0481 = 17.316 -> 17.32:
    //     91.76; t2: 900 x 0.0481 = 43.29, 720 x 0.0036 = 2.592 -> 2.59: 45.88;
    // t3: 500 x 0.0537 + 940 x 0.0425 = 66.80, 2.59: 69.39.
    assert_eq!(totals(&october_report), expected(&[("t1", "91.76"), ("t2", "45.88"), ("t3", "69.39")]));
    // p1 137.64: 5 + 37.64 x 8 % = 8.0112 -> 8.01; p2 69.39 x 10 % = 6.939 -> 6.94; override 207.03 x 2 % =
    // 4.1406 -> 4.14.
    assert_eq!(commissions(&october_report), [row("p1", "137.64", "8.01"), row("p2", "69.39", "6.94")]);
    assert_eq!(october_report.overrides[0].amount, dec("4.14"));
    cms.close_period(&operator(), utc(11, 2, 6), october()).unwrap();

    let preview = cms.preview_change_set(&operator(), &raise(), rules()).unwrap();
    // t2: 900 x 0.0529 = 47.61 + 2.59 = 50.20; t3: 500 x 0.0591 + 940 x 0.0468 = 73.542 -> 73.54 + 2.59 =
    // 76.13; t1 exempt.
    let new: BTreeMap<String, Decimal> =
        preview.tenants.iter().map(|impact| (impact.id.clone(), impact.new)).collect();
    assert_eq!(new, expected(&[("t1", "91.76"), ("t2", "50.20"), ("t3", "76.13")]));
    cms.apply_change_set(&operator(), utc(11, 2, 7), raise()).unwrap();
    cms.ingest(&november_usage(), &PageOrigin::named("november.json")).unwrap();
    assert_eq!(totals(&cms.month_end(november(), rules()).unwrap()), new);

    let moved = Event::NodeMoved { id: "t2".into(), parent: "p2".into(), effective: utc(11, 16, 0) };
    cms.execute(&operator(), utc(11, 10, 10), &moved).unwrap();
    let november_report = cms.month_end(november(), rules()).unwrap();
    // t2: 450 x 0.0529 = 23.805 -> 23.81; P(900) - P(450) = 50 x 0.0591 + 400 x 0.0468 = 21.675 -> 21.68;
    // IP 360 x 0.0036 = 1.296 -> 1.30 twice: 48.09.
    assert_eq!(totals(&november_report), expected(&[("t1", "91.76"), ("t2", "48.09"), ("t3", "76.13")]));
    // p1: 91.76 + 25.11 = 116.87 -> 5 + 16.87 x 8 % = 6.3496 -> 6.35; p2: 22.98 + 76.13 = 99.11 -> 9.91;
    // override 215.98 x 2 % = 4.3196 -> 4.32.
    assert_eq!(commissions(&november_report), [row("p1", "116.87", "6.35"), row("p2", "99.11", "9.91")]);
    assert_eq!(november_report.overrides[0].amount, dec("4.32"));
    assert_eq!(cms.month_end(october(), rules()).unwrap(), october_report, "October stays as closed");

    cms.reprocess(&operator(), november(), Some("t1"), None, rules()).unwrap();
    let drafts = cms.drafts(&operator(), november()).unwrap();
    assert_eq!(drafts.iter().map(|draft| draft.total).collect::<Vec<_>>(), [dec("91.76")]);
    Outcome { october: october_report, november: november_report, preview, drafts }
}

#[test]
fn the_commercial_scenario_on_a_sqlite_file_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("commercial.db");
    let outcome = {
        let mut cms = Cms::open(SqliteStore::open(&path).unwrap()).unwrap();
        live(&mut cms)
    };
    // The memory store tells the same story, figure for figure.
    let mut in_memory = Cms::open(MemoryStore::new()).unwrap();
    assert_eq!(live(&mut in_memory), outcome);

    // Reopened: the events replay into the same state, and month-end gives identical reports.
    let mut reopened = Cms::open(SqliteStore::open(&path).unwrap()).unwrap();
    assert!(reopened.state().closed_periods.contains(&october()));
    assert_eq!(reopened.month_end(october(), rules()).unwrap(), outcome.october);
    assert_eq!(reopened.month_end(november(), rules()).unwrap(), outcome.november);
    assert_eq!(reopened.drafts(&operator(), november()).unwrap(), outcome.drafts);
    assert_eq!(reopened.state().terms, in_memory.state().terms);
    assert_eq!(reopened.state().channel, in_memory.state().channel);
    // Usage pulled again after the restart is recognised: nothing is stored twice.
    let again = reopened.ingest(&november_usage(), &PageOrigin::named("november-again.json")).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 30 * 24 * 7));
    assert_eq!(reopened.month_end(november(), rules()).unwrap(), outcome.november);
    // The cost calculator agrees with November's invoice after the restart.
    let estimate = reopened.estimate(&operator(), "s3", &[(meter(VM), dec("450"))], utc(11, 10, 0)).unwrap();
    // 450 x 0.0529 = 23.805, the first half of November's split line.
    assert_eq!(estimate[0].price.as_ref().unwrap().amount, dec("23.805"));
}
