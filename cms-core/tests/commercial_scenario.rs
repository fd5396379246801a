//! The engine-level commercial model as a provider lives it: onboarding a channel from a catalogue, pricing
//! it, a month of hourly usage, closing the month, a bulk increase previewed then applied, a tenant moving
//! partners mid-month, resale chains with margins, every price model and adjustment, the cost calculator,
//! reprocessing drafts, and what each principal may see.
//!
//! Every expected figure is computed by hand in the comments next to it; nothing expected is produced by
//! the code under test.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Months, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::billing::{
    BillingRules, CommissionStatement, FxApplied, Invoice, InvoiceLine, LineKind, MonthEndReport,
};
use cms_core::engine::{Cms, DRAFT_INVOICE, Event, Principal};
use cms_core::model::adjustments::{Credit, CreditScope, Discount, DiscountScope, Recurrence};
use cms_core::model::catalogue::{Offer, OfferState, Plan, Service};
use cms_core::model::channel::{BillingProfile, Relationship, SubscriptionInfo};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::price_book::{
    BookList, ChangeScope, ChangeSet, MeterFilter, PriceScope, PriceVersion, TierScope,
};
use cms_core::model::pricing::{CommissionPlan, MeterPrice, PriceChange, PriceModel};
use cms_core::model::tiers::{Tier, TierMode, TierSchedule};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::UsageRecord;
use cms_core::source::PageOrigin;
use cms_core::store::{MemoryStore, Store};

/// Base VM Size Hours (vCore-hours).
const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
/// Static IP Address Usage (IP-hours).
const IP: &str = "F271A8A3-88C4-4D93-956A-063E1D2FA80B";
/// `BlobDataTransOut` (GB egress): priced by package.
const EGRESS: &str = "3023FEF4-ECA5-4D7B-87B3-CFBC061931E8";
/// `BlobDataTransIn` (GB ingress): priced by a flat fee.
const INGRESS: &str = "9764F92C-E44A-498E-8DC1-AAD66587A810";
/// `BlockBlobCapacity` (GB-hours): priced by volume tiers.
const BLOB: &str = "09F8879E-87E9-4305-A572-4B7BE209F857";

// ---- small builders ------------------------------------------------------------------------------------

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

fn meter(text: &str) -> MeterId {
    text.parse().unwrap()
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

fn rules() -> BillingRules {
    BillingRules::default()
}

fn operator() -> Principal {
    Principal::platform("operator")
}

/// When the channel was set up (the core has no clock: every command says when it was recorded).
fn onboarded_at() -> Instant {
    utc(9, 15, 9)
}

/// From when the catalogue prices apply.
fn list_effective() -> Instant {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: format!("{id} name") }
}

fn per_unit(unit: &str, rate: &str) -> MeterPrice {
    MeterPrice::new(unit, PriceModel::per_unit(dec(rate)))
}

fn tiered(unit: &str, mode: TierMode, tiers: &[(&str, &str)]) -> MeterPrice {
    let tiers = tiers.iter().map(|(from, rate)| Tier { from: dec(from), rate: dec(rate) }).collect();
    MeterPrice::new(unit, PriceModel::Tiered(TierSchedule::new(mode, tiers, "test").unwrap()))
}

/// A USD list with one version from [`list_effective`].
fn book_list(id: &str, prices: Vec<(&str, MeterPrice)>) -> BookList {
    let mut list = BookList::new(id, &format!("{id} name"), Currency::USD);
    let prices = prices.into_iter().map(|(meter_id, price)| (meter(meter_id), price)).collect();
    list.versions.push(PriceVersion::own(list_effective(), prices));
    list
}

fn commission_plan(id: &str, bands: &[(&str, &str)]) -> CommissionPlan {
    let bands = bands.iter().map(|(from, rate)| Tier { from: dec(from), rate: dec(rate) }).collect();
    CommissionPlan::new(id, TierMode::Graduated, bands).unwrap()
}

fn resale() -> BillingProfile {
    BillingProfile { relationship: Relationship::Resale, ..BillingProfile::default() }
}

fn run<S: Store>(cms: &mut Cms<S>, events: Vec<Event>) {
    for event in events {
        cms.execute(&operator(), onboarded_at(), &event).unwrap_or_else(|error| panic!("{event:?}: {error}"));
    }
}

/// One hourly record of `quantity` starting at `start`.
fn record(subscription: &str, meter_id: &str, resource: &str, start: Instant, quantity: &str) -> UsageRecord {
    UsageRecord {
        subscription: subscription.into(),
        meter: meter(meter_id),
        start,
        end: start + Duration::hours(1),
        quantity: dec(quantity),
        resource_uri: format!("/subscriptions/{subscription}/resourceGroups/rg/providers/x/{resource}"),
        location: "local".into(),
        ..UsageRecord::default()
    }
}

fn ingest<S: Store>(cms: &mut Cms<S>, records: &[UsageRecord], name: &str) {
    let summary = cms.ingest(records, &PageOrigin::named(name)).unwrap();
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    assert_eq!(summary.stored, records.len() as u64, "every record of {name} is stored");
}

fn invoice<'a>(report: &'a MonthEndReport, issuer: &str, buyer: &str) -> &'a Invoice {
    report
        .invoices
        .iter()
        .find(|invoice| invoice.issuer == issuer && invoice.buyer == buyer)
        .unwrap_or_else(|| panic!("no invoice from {issuer} to {buyer} in {}", report.period))
}

fn tenant_invoice<'a>(report: &'a MonthEndReport, buyer: &str) -> &'a Invoice {
    invoice(report, "platform", buyer)
}

fn usage_lines<'a>(invoice: &'a Invoice, subscription: &str, meter_id: &str) -> Vec<&'a InvoiceLine> {
    invoice
        .lines
        .iter()
        .filter(|line| {
            line.kind == LineKind::Usage && line.subscription == subscription && line.meter == meter(meter_id)
        })
        .collect()
}

fn usage_line<'a>(invoice: &'a Invoice, subscription: &str, meter_id: &str) -> &'a InvoiceLine {
    let lines = usage_lines(invoice, subscription, meter_id);
    assert_eq!(
        lines.len(),
        1,
        "one line of {subscription} {meter_id} on {}'s invoice: {lines:#?}",
        invoice.buyer
    );
    lines[0]
}

/// A usage line's quantity, list, exact amount and rounded amount.
fn assert_line(line: &InvoiceLine, quantity: &str, list: &str, exact: &str, rounded: &str) {
    assert_eq!(
        (line.quantity, line.price_list.as_str(), line.amount_exact, line.amount),
        (dec(quantity), list, dec(exact), dec(rounded)),
        "line of {} {}",
        line.subscription,
        line.meter
    );
}

fn lines_of_kind(invoice: &Invoice, wanted: fn(&LineKind) -> bool) -> Vec<&InvoiceLine> {
    invoice.lines.iter().filter(|line| wanted(&line.kind)).collect()
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

fn commission<'a>(report: &'a MonthEndReport, partner: &str) -> &'a CommissionStatement {
    report
        .commissions
        .iter()
        .find(|statement| statement.partner == partner)
        .unwrap_or_else(|| panic!("no commission statement of {partner} in {}", report.period))
}

fn tenant_shares(statement: &CommissionStatement) -> Vec<(&str, Decimal)> {
    statement.tenants.iter().map(|share| (share.tenant.as_str(), share.revenue)).collect()
}

fn code<T: std::fmt::Debug>(result: Result<T, cms_core::CmsError>) -> &'static str {
    result.expect_err("refused").code()
}

// ---- the main scenario: a distributor, two partners, three tenants, four subscriptions ---------------

/// The catalogue (a service, a plan, a private offer), the channel, commission plans, override rate and
/// prices:
/// - `std`, the platform default: VM graduated 0.0537 up to 500 vCore-hours, 0.0425 above; IP 0.0036;
/// - `p1-list` at partner p1: VM 0.0481 per unit;
/// - commissions: the distributor's marginal bands 5 % to 100, 8 % above (p1 inherits them); p2's own
///   10 %; the distributor's override 2 %.
fn onboard_channel<S: Store>(cms: &mut Cms<S>) {
    let std = book_list(
        "std",
        vec![
            (VM, tiered("vCore-hours", TierMode::Graduated, &[("0", "0.0537"), ("500", "0.0425")])),
            (IP, per_unit("IP-hours", "0.0036")),
        ],
    );
    let p1_list = book_list("p1-list", vec![(VM, per_unit("vCore-hours", "0.0481"))]);
    run(
        cms,
        vec![
            Event::ServicePut {
                service: Service {
                    id: "iaas".into(),
                    name: "Infrastructure".into(),
                    meters: BTreeSet::from([meter(VM), meter(IP)]),
                },
            },
            Event::PlanPut {
                plan: Plan {
                    id: "standard".into(),
                    name: "Standard".into(),
                    services: vec!["iaas".into()],
                    quotas: BTreeMap::from([("vcpus".to_owned(), dec("200"))]),
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
            add("dist", NodeKind::Distributor, None),
            add("p1", NodeKind::Partner, Some("dist")),
            add("p2", NodeKind::Partner, Some("dist")),
            add("t1", NodeKind::Tenant, Some("p1")),
            add("t2", NodeKind::Tenant, Some("p1")),
            add("t3", NodeKind::Tenant, Some("p2")),
            Event::CommissionPlanPut { plan: commission_plan("network", &[("0", "0.05"), ("100", "0.08")]) },
            Event::CommissionPlanAssigned { node: "dist".into(), plan: "network".into() },
            Event::CommissionPlanPut { plan: commission_plan("flat10", &[("0", "0.10")]) },
            Event::CommissionPlanAssigned { node: "p2".into(), plan: "flat10".into() },
            Event::OverrideRateSet { node: "dist".into(), rate: dec("0.02") },
            Event::PriceListCreated { list: std },
            Event::PriceListCreated { list: p1_list },
            Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
            Event::PriceListAssigned { scope: PriceScope::Node("p1".into()), list: "p1-list".into() },
        ],
    );
}

fn gold() -> SubscriptionInfo {
    SubscriptionInfo { offer: Some("gold".into()), ..SubscriptionInfo::default() }
}

/// The partners onboard their subscriptions themselves, once the offer is public.
fn onboard_subscriptions<S: Store>(cms: &mut Cms<S>) {
    let contoso = Principal::at("contoso-admin", "p1");
    let fabrikam = Principal::at("fabrikam-admin", "p2");
    // A private offer takes new subscriptions only from the operator; the refusal changes nothing.
    assert_eq!(
        code(cms.onboard_subscription(&contoso, onboarded_at(), "s1", "t1", "Prod", gold())),
        "invalid_value"
    );
    assert!(cms.state().hierarchy.find("s1").is_none());
    run(cms, vec![Event::OfferStateSet { offer: "gold".into(), state: OfferState::Public }]);
    // A partner cannot onboard under a sibling partner's tenant: the tenant is unknown to it.
    assert_eq!(
        code(cms.onboard_subscription(&contoso, onboarded_at(), "s9", "t3", "X", gold())),
        "unknown_node"
    );
    for (principal, id, tenant) in
        [(&contoso, "s1", "t1"), (&contoso, "s2", "t1"), (&contoso, "s3", "t2"), (&fabrikam, "s4", "t3")]
    {
        cms.onboard_subscription(principal, onboarded_at(), id, tenant, &format!("{id} name"), gold())
            .unwrap();
    }
    assert_eq!(cms.state().channel.subscription("s4").and_then(|info| info.offer.as_deref()), Some("gold"));
}

/// The quantity of one hour of a subscription's meter.
#[derive(Clone, Copy)]
enum Pattern {
    /// The same every hour.
    Flat(&'static str),
    /// One quantity from 08:00 to 19:59, another the other twelve hours.
    Business(&'static str, &'static str),
}

/// Monthly sums over days 1..=30 (the 31st of October is the stamp's update window, without usage, so the
/// November copy of the same records keeps every sum):
/// - s1 VM: 12 x 3 + 12 x 1 = 48 a day, 1440; s1 IP: 2 x 24 = 48 a day, 1440;
/// - s2 VM: 0.5 x 24 = 12 a day, 360;
/// - s3 VM: 1.25 x 24 = 30 a day, 900; s3 IP: 24 a day, 720;
/// - s4 VM: 48 a day, 1440; s4 IP: 24 a day, 720.
const MAIN_USAGE: [(&str, &str, Pattern); 7] = [
    ("s1", VM, Pattern::Business("3", "1")),
    ("s1", IP, Pattern::Flat("2")),
    ("s2", VM, Pattern::Flat("0.5")),
    ("s3", VM, Pattern::Flat("1.25")),
    ("s3", IP, Pattern::Flat("1")),
    ("s4", VM, Pattern::Business("3", "1")),
    ("s4", IP, Pattern::Flat("1")),
];

fn hourly_usage(month: u32, usage: &[(&str, &str, Pattern)]) -> Vec<UsageRecord> {
    let mut records = Vec::new();
    for day in 1..=30 {
        for hour in 0..24 {
            for &(subscription, meter_id, pattern) in usage {
                let quantity = match pattern {
                    Pattern::Flat(quantity) => quantity,
                    Pattern::Business(day_time, _) if (8..20).contains(&hour) => day_time,
                    Pattern::Business(_, night) => night,
                };
                records.push(record(subscription, meter_id, "vm1", utc(month, day, hour), quantity));
            }
        }
    }
    records
}

/// The same records a calendar month later (Oct d -> Nov d, same hour).
fn shifted(records: &[UsageRecord]) -> Vec<UsageRecord> {
    records
        .iter()
        .map(|record| {
            let start = record.start.checked_add_months(Months::new(1)).unwrap();
            UsageRecord { start, end: start + (record.end - record.start), ..record.clone() }
        })
        .collect()
}

fn sums(records: &[UsageRecord]) -> BTreeMap<(String, MeterId), Decimal> {
    let mut sums = BTreeMap::new();
    for record in records {
        *sums.entry((record.subscription.clone(), record.meter)).or_default() += record.quantity;
    }
    sums
}

/// Onboard, ingest October, bill it and close it. Returns the engine and October as closed.
fn october_closed_on<S: Store>(store: S) -> (Cms<S>, MonthEndReport) {
    let mut cms = Cms::open(store).unwrap();
    onboard_channel(&mut cms);
    onboard_subscriptions(&mut cms);
    ingest(&mut cms, &hourly_usage(10, &MAIN_USAGE), "october.json");
    let before_close = cms.month_end(october(), rules()).unwrap();
    cms.close_period(&operator(), utc(11, 2, 6), october()).unwrap();
    let closed = cms.month_end(october(), rules()).unwrap();
    assert_eq!(closed, before_close, "closing changes no figure");
    (cms, closed)
}

fn october_closed() -> (Cms<MemoryStore>, MonthEndReport) {
    october_closed_on(MemoryStore::new())
}

/// +10 % on VM from November 1, new prices at 4 digits, t1 exempt, on every list.
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

#[test]
fn a_onboarded_channel_bills_october() {
    let (cms, report) = october_closed();
    assert_eq!(report.period, october());
    assert!(report.not_billed.is_empty(), "{:?}", report.not_billed);
    assert!(report.margins.is_empty(), "an all-agency channel has no margins");
    assert_eq!(report.invoices.len(), 3, "one invoice per tenant, from the platform");

    let t1 = tenant_invoice(&report, "t1");
    assert_eq!((t1.currency, t1.bill_to.as_str(), t1.payment_terms_days), (Currency::USD, "t1", 30));
    assert_eq!(t1.buyer_kind, NodeKind::Tenant);
    // s1 VM by p1's list: 1440 x 0.0481 = 69.264 -> 69.26.
    assert_line(usage_line(t1, "s1", VM), "1440", "p1-list", "69.264", "69.26");
    // s1 IP by the default (p1's list does not price IP): 1440 x 0.0036 = 5.184 -> 5.18.
    assert_line(usage_line(t1, "s1", IP), "1440", "std", "5.184", "5.18");
    // s2 VM: 360 x 0.0481 = 17.316 -> 17.32.
    assert_line(usage_line(t1, "s2", VM), "360", "p1-list", "17.316", "17.32");
    assert_eq!(t1.lines.len(), 3);
    // 69.26 + 5.18 + 17.32 = 91.76.
    assert_eq!(t1.total, dec("91.76"));
    for line in &t1.lines {
        assert_eq!((line.partner.as_deref(), line.distributor.as_deref()), (Some("p1"), Some("dist")));
        assert_eq!(line.price_effective, Some(list_effective()));
        assert_eq!(line.fx, None);
    }

    let t2 = tenant_invoice(&report, "t2");
    // s3 VM: 900 x 0.0481 = 43.29; s3 IP: 720 x 0.0036 = 2.592 -> 2.59; total 45.88.
    assert_line(usage_line(t2, "s3", VM), "900", "p1-list", "43.29", "43.29");
    assert_line(usage_line(t2, "s3", IP), "720", "std", "2.592", "2.59");
    assert_eq!(t2.total, dec("45.88"));

    let t3 = tenant_invoice(&report, "t3");
    // s4 VM by the default's graduated tiers: 500 x 0.0537 + 940 x 0.0425 = 26.85 + 39.95 = 66.80.
    assert_line(usage_line(t3, "s4", VM), "1440", "std", "66.80", "66.80");
    // s4 IP: 720 x 0.0036 = 2.592 -> 2.59; total 66.80 + 2.59 = 69.39.
    assert_line(usage_line(t3, "s4", IP), "720", "std", "2.592", "2.59");
    assert_eq!(t3.total, dec("69.39"));
    assert!(t3.lines.iter().all(|line| line.partner.as_deref() == Some("p2")));

    // p1 (the distributor's bands, inherited): revenue 91.76 + 45.88 = 137.64;
    // 100 x 5 % + 37.64 x 8 % = 5 + 3.0112 = 8.0112 -> 8.01.
    let p1 = commission(&report, "p1");
    assert_eq!((p1.payer.as_str(), p1.plan.as_deref()), ("platform", Some("network")));
    assert_eq!((p1.revenue, p1.commission), (dec("137.64"), dec("8.01")));
    let bands: Vec<(Decimal, Decimal)> = p1.bands.iter().map(|band| (band.quantity, band.amount)).collect();
    assert_eq!(bands, [(dec("100"), dec("5")), (dec("37.64"), dec("3.0112"))]);
    assert_eq!(tenant_shares(p1), [("t1", dec("91.76")), ("t2", dec("45.88"))]);
    // p2 (its own 10 %): revenue 69.39, commission 6.939 -> 6.94.
    let p2 = commission(&report, "p2");
    assert_eq!((p2.plan.as_deref(), p2.revenue, p2.commission), (Some("flat10"), dec("69.39"), dec("6.94")));
    assert_eq!(tenant_shares(p2), [("t3", dec("69.39"))]);
    assert_eq!(report.commissions.len(), 2);
    // The distributor's override: 2 % of 137.64 + 69.39 = 207.03, 4.1406 -> 4.14.
    assert_eq!(report.overrides.len(), 1);
    let dist = &report.overrides[0];
    assert_eq!((dist.distributor.as_str(), dist.revenue, dist.rate), ("dist", dec("207.03"), dec("0.02")));
    assert_eq!(dist.amount, dec("4.14"));

    assert!(cms.state().closed_periods.contains(&october()));
    // A closed month is closed once.
    let mut cms = cms;
    assert_eq!(code(cms.close_period(&operator(), utc(11, 3, 0), october())), "invalid_period");
}

/// October closed, the raise previewed then applied, November's usage (the same sums) ingested.
fn november_raised()
-> (Cms<MemoryStore>, MonthEndReport, cms_core::engine::ChangeSetPreview, Vec<UsageRecord>) {
    let (mut cms, october_report) = october_closed();
    let preview = cms.preview_change_set(&operator(), &raise(), rules()).unwrap();
    cms.apply_change_set(&operator(), utc(11, 2, 7), raise()).unwrap();
    let november_records = shifted(&hourly_usage(10, &MAIN_USAGE));
    assert_eq!(sums(&november_records), sums(&hourly_usage(10, &MAIN_USAGE)));
    assert!(november_records.iter().all(|record| november().contains(record.start)));
    ingest(&mut cms, &november_records, "november.json");
    (cms, october_report, preview, november_records)
}

#[test]
fn b_a_bulk_increase_previews_what_november_then_bills() {
    let (cms, october_report, preview, _) = november_raised();
    // New prices at 4 digits, half away from zero: std VM 0.0537 x 1.1 = 0.05907 -> 0.0591,
    // 0.0425 x 1.1 = 0.04675 -> 0.0468; p1-list VM 0.0481 x 1.1 = 0.05291 -> 0.0529; IP unchanged.
    assert_eq!((preview.change_set.as_str(), preview.period), ("nov-raise", october()));
    assert_eq!(preview.lists, ["p1-list", "std"]);
    let impacts = |list: &[cms_core::engine::Impact]| -> Vec<(String, Decimal, Decimal, Decimal)> {
        list.iter().map(|impact| (impact.id.clone(), impact.old, impact.new, impact.change)).collect()
    };
    let row = |id: &str, old: &str, new: &str, change: &str| (id.to_owned(), dec(old), dec(new), dec(change));
    // t1 is exempt: 91.76 either way.
    // t2: s3 VM 900 x 0.0529 = 47.61, IP 2.59: 50.20 (old 45.88, +4.32).
    // t3: s4 VM 500 x 0.0591 + 940 x 0.0468 = 29.55 + 43.992 = 73.542 -> 73.54, IP 2.59: 76.13 (old 69.39,
    //     +6.74).
    assert_eq!(
        impacts(&preview.tenants),
        [
            row("t1", "91.76", "91.76", "0"),
            row("t2", "45.88", "50.20", "4.32"),
            row("t3", "69.39", "76.13", "6.74")
        ]
    );
    // Old figures are October as invoiced.
    let old: BTreeMap<String, Decimal> =
        preview.tenants.iter().map(|impact| (impact.id.clone(), impact.old)).collect();
    assert_eq!(old, totals(&october_report));
    // Partners: p1 91.76 + 45.88 = 137.64 -> 91.76 + 50.20 = 141.96; p2 69.39 -> 76.13.
    assert_eq!(
        impacts(&preview.partners),
        [row("p1", "137.64", "141.96", "4.32"), row("p2", "69.39", "76.13", "6.74")]
    );
    assert_eq!(preview.tenants[1].name, "t2 name");
    assert!(preview.tenants.iter().all(|impact| impact.currency == Currency::USD));

    // November, the same quantities at the new prices, is what the preview said.
    let november_report = cms.month_end(november(), rules()).unwrap();
    let new: BTreeMap<String, Decimal> =
        preview.tenants.iter().map(|impact| (impact.id.clone(), impact.new)).collect();
    assert_eq!(totals(&november_report), new);
    // The exempt tenant pays October's prices, from the versions of January.
    let (t1_october, t1_november) =
        (tenant_invoice(&october_report, "t1"), tenant_invoice(&november_report, "t1"));
    for (before, after) in t1_october.lines.iter().zip(&t1_november.lines) {
        assert_eq!(
            (after.quantity, after.amount_exact, after.amount),
            (before.quantity, before.amount_exact, before.amount)
        );
        assert_eq!(after.price_effective, Some(list_effective()));
    }
    // t2 pays the new version: 900 x 0.0529 = 47.61, from November 1.
    let s3_vm = usage_line(tenant_invoice(&november_report, "t2"), "s3", VM);
    assert_line(s3_vm, "900", "p1-list", "47.61", "47.61");
    assert_eq!(s3_vm.price_effective, Some(utc(11, 1, 0)));
    // Commissions on November: p1 141.96 -> 5 + 41.96 x 8 % = 5 + 3.3568 = 8.3568 -> 8.36;
    // p2 76.13 x 10 % = 7.613 -> 7.61; override 2 % of 218.09 = 4.3618 -> 4.36.
    assert_eq!(commission(&november_report, "p1").commission, dec("8.36"));
    assert_eq!(commission(&november_report, "p2").commission, dec("7.61"));
    assert_eq!(
        (november_report.overrides[0].revenue, november_report.overrides[0].amount),
        (dec("218.09"), dec("4.36"))
    );

    // Issued invoices never change: October recomputed after the apply is October as closed.
    assert_eq!(cms.month_end(october(), rules()).unwrap(), october_report);
    // The scope of a change on one tenant: the tenant and its subscriptions.
    assert_eq!(
        cms.tenant_scope("t1").unwrap(),
        ChangeScope::Nodes(vec!["t1".into(), "s1".into(), "s2".into()])
    );
    assert_eq!(code(cms.tenant_scope("p1")), "unknown_node");
}

#[test]
fn b_a_preview_needs_a_closed_period_and_records_nothing() {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    onboard_channel(&mut cms);
    assert_eq!(code(cms.preview_change_set(&operator(), &raise(), rules())), "invalid_period");
    let (cms, _) = october_closed();
    let events = cms.store().events().unwrap().len();
    cms.preview_change_set(&operator(), &raise(), rules()).unwrap();
    assert_eq!(cms.store().events().unwrap().len(), events);
    assert_eq!(cms.state().terms.book.list("std").unwrap().versions.len(), 1);
}

#[test]
fn c_a_tenant_moving_partners_mid_month_splits_its_lines_and_commissions() {
    let (mut cms, october_report, _, _) = november_raised();
    cms.execute(
        &operator(),
        utc(11, 10, 10),
        &Event::NodeMoved { id: "t2".into(), parent: "p2".into(), effective: utc(11, 16, 0) },
    )
    .unwrap();
    let report = cms.month_end(november(), rules()).unwrap();
    let t2 = tenant_invoice(&report, "t2");
    let by_partner = |meter_id: &str, partner: &str| -> &InvoiceLine {
        let lines = usage_lines(t2, "s3", meter_id);
        assert_eq!(lines.len(), 2, "split at the move: {lines:#?}");
        lines.into_iter().find(|line| line.partner.as_deref() == Some(partner)).unwrap()
    };
    // Nov 1-15 (15 days x 30 = 450 vCore-hours) on p1's list, raised: 450 x 0.0529 = 23.805 -> 23.81.
    assert_line(by_partner(VM, "p1"), "450", "p1-list", "23.805", "23.81");
    // Nov 16-30 (450 more) on the default, raised, tiers continuing from 450:
    // P2(900) - P2(450) = (500 x 0.0591 + 400 x 0.0468) - 450 x 0.0591 = 50 x 0.0591 + 400 x 0.0468
    //                   = 2.955 + 18.72 = 21.675 -> 21.68 (half away from zero).
    assert_line(by_partner(VM, "p2"), "450", "std", "21.675", "21.68");
    // IP: 360 IP-hours each side, both on the default: 360 x 0.0036 = 1.296 -> 1.30 each.
    assert_line(by_partner(IP, "p1"), "360", "std", "1.296", "1.30");
    assert_line(by_partner(IP, "p2"), "360", "std", "1.296", "1.30");
    assert!(t2.lines.iter().all(|line| line.distributor.as_deref() == Some("dist")));
    // 23.81 + 21.68 + 1.30 + 1.30 = 48.09.
    assert_eq!((t2.lines.len(), t2.total), (4, dec("48.09")));
    // The other tenants are as before the move.
    assert_eq!(tenant_invoice(&report, "t1").total, dec("91.76"));
    assert_eq!(tenant_invoice(&report, "t3").total, dec("76.13"));

    // p1: t1 91.76 + t2 before the move (23.81 + 1.30 = 25.11) = 116.87;
    //     5 + 16.87 x 8 % = 5 + 1.3496 = 6.3496 -> 6.35.
    let p1 = commission(&report, "p1");
    assert_eq!((p1.revenue, p1.commission), (dec("116.87"), dec("6.35")));
    assert_eq!(tenant_shares(p1), [("t1", dec("91.76")), ("t2", dec("25.11"))]);
    // p2: t2 after the move (21.68 + 1.30 = 22.98) + t3 76.13 = 99.11; 10 % = 9.911 -> 9.91.
    let p2 = commission(&report, "p2");
    assert_eq!((p2.revenue, p2.commission), (dec("99.11"), dec("9.91")));
    assert_eq!(tenant_shares(p2), [("t2", dec("22.98")), ("t3", dec("76.13"))]);
    // The distributor's override on the whole: 116.87 + 99.11 = 215.98; 2 % = 4.3196 -> 4.32.
    assert_eq!((report.overrides[0].revenue, report.overrides[0].amount), (dec("215.98"), dec("4.32")));
    // October, closed before the move, is unchanged.
    assert_eq!(cms.month_end(october(), rules()).unwrap(), october_report);
}

// ---- d. resale ------------------------------------------------------------------------------------------

/// platform > rd (distributor, resale) > rp (partner, resale) > rt1 (rs1), rt2 (rs2). rd buys at the
/// default (`std`); rp buys from rd at `rd-sell` (std + 10 %, assigned at rp); the tenants buy from rp at
/// `rp-sell` (rd-sell + 20 %, assigned at each tenant).
fn resale_engine() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let std = book_list(
        "std",
        vec![
            (VM, tiered("vCore-hours", TierMode::Graduated, &[("0", "0.0537"), ("500", "0.0425")])),
            (IP, per_unit("IP-hours", "0.0036")),
        ],
    );
    let derived = |id: &str, parent: &str, markup: &str| {
        let mut list = BookList::new(id, id, Currency::USD);
        list.versions.push(PriceVersion::derived(list_effective(), parent, dec(markup)));
        list
    };
    run(
        &mut cms,
        vec![
            add("rd", NodeKind::Distributor, None),
            add("rp", NodeKind::Partner, Some("rd")),
            add("rt1", NodeKind::Tenant, Some("rp")),
            add("rt2", NodeKind::Tenant, Some("rp")),
            add("rs1", NodeKind::Subscription, Some("rt1")),
            add("rs2", NodeKind::Subscription, Some("rt2")),
            Event::BillingProfileSet { node: "rd".into(), profile: resale() },
            Event::BillingProfileSet { node: "rp".into(), profile: resale() },
            Event::PriceListCreated { list: std },
            Event::PriceListCreated { list: derived("rd-sell", "std", "0.10") },
            Event::PriceListCreated { list: derived("rp-sell", "rd-sell", "0.20") },
            Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
            Event::PriceListAssigned { scope: PriceScope::Node("rp".into()), list: "rd-sell".into() },
            Event::PriceListAssigned { scope: PriceScope::Node("rt1".into()), list: "rp-sell".into() },
            Event::PriceListAssigned { scope: PriceScope::Node("rt2".into()), list: "rp-sell".into() },
            Event::CommissionPlanPut { plan: commission_plan("network", &[("0", "0.05")]) },
            Event::CommissionPlanAssigned { node: "rd".into(), plan: "network".into() },
        ],
    );
    // rs1: VM 1440, IP 1440; rs2: VM 360, IP 720.
    let usage = [
        ("rs1", VM, Pattern::Business("3", "1")),
        ("rs1", IP, Pattern::Flat("2")),
        ("rs2", VM, Pattern::Flat("0.5")),
        ("rs2", IP, Pattern::Flat("1")),
    ];
    ingest(&mut cms, &hourly_usage(10, &usage), "resale-october.json");
    cms
}

#[test]
fn d_resellers_buy_at_their_parent_price_and_keep_the_margin() {
    let cms = resale_engine();
    let report = cms.month_end(october(), rules()).unwrap();
    assert!(report.not_billed.is_empty(), "{:?}", report.not_billed);
    assert_eq!(report.invoices.len(), 4, "platform -> rd, rd -> rp, rp -> rt1, rp -> rt2");

    // The platform invoices rd at the default:
    // rs1 VM 500 x 0.0537 + 940 x 0.0425 = 66.80; rs1 IP 1440 x 0.0036 = 5.184 -> 5.18;
    // rs2 VM 360 x 0.0537 = 19.332 -> 19.33; rs2 IP 720 x 0.0036 = 2.592 -> 2.59; total 93.90.
    let platform_to_rd = invoice(&report, "platform", "rd");
    assert_eq!(platform_to_rd.buyer_kind, NodeKind::Distributor);
    assert_line(usage_line(platform_to_rd, "rs1", VM), "1440", "std", "66.80", "66.80");
    assert_line(usage_line(platform_to_rd, "rs1", IP), "1440", "std", "5.184", "5.18");
    assert_line(usage_line(platform_to_rd, "rs2", VM), "360", "std", "19.332", "19.33");
    assert_line(usage_line(platform_to_rd, "rs2", IP), "720", "std", "2.592", "2.59");
    assert_eq!(platform_to_rd.total, dec("93.90"));

    // rd invoices rp at rd-sell = std x 1.1: 73.48; 5.7024 -> 5.70; 21.2652 -> 21.27; 2.8512 -> 2.85;
    // total 103.30.
    let rd_to_rp = invoice(&report, "rd", "rp");
    assert_eq!(rd_to_rp.buyer_kind, NodeKind::Partner);
    assert_line(usage_line(rd_to_rp, "rs1", VM), "1440", "rd-sell", "73.48", "73.48");
    assert_line(usage_line(rd_to_rp, "rs1", IP), "1440", "rd-sell", "5.7024", "5.70");
    assert_line(usage_line(rd_to_rp, "rs2", VM), "360", "rd-sell", "21.2652", "21.27");
    assert_line(usage_line(rd_to_rp, "rs2", IP), "720", "rd-sell", "2.8512", "2.85");
    assert_eq!(rd_to_rp.total, dec("103.30"));

    // rp invoices its tenants at rp-sell = rd-sell x 1.2 (std x 1.32):
    // rt1: 73.48 x 1.2 = 88.176 -> 88.18; 5.7024 x 1.2 = 6.84288 -> 6.84; total 95.02.
    let rt1 = invoice(&report, "rp", "rt1");
    assert_line(usage_line(rt1, "rs1", VM), "1440", "rp-sell", "88.176", "88.18");
    assert_line(usage_line(rt1, "rs1", IP), "1440", "rp-sell", "6.84288", "6.84");
    assert_eq!(rt1.total, dec("95.02"));
    // rt2: 21.2652 x 1.2 = 25.51824 -> 25.52; 2.8512 x 1.2 = 3.42144 -> 3.42; total 28.94.
    let rt2 = invoice(&report, "rp", "rt2");
    assert_line(usage_line(rt2, "rs2", VM), "360", "rp-sell", "25.51824", "25.52");
    assert_line(usage_line(rt2, "rs2", IP), "720", "rp-sell", "3.42144", "3.42");
    assert_eq!(rt2.total, dec("28.94"));

    // Margins: rd sold 103.30, bought 93.90: 9.40; rp sold 95.02 + 28.94 = 123.96, bought 103.30: 20.66.
    let margins: Vec<(&str, Decimal, Decimal, Decimal)> = report
        .margins
        .iter()
        .map(|margin| (margin.reseller.as_str(), margin.sold, margin.bought, margin.margin))
        .collect();
    assert_eq!(
        margins,
        [
            ("rd", dec("103.30"), dec("93.90"), dec("9.40")),
            ("rp", dec("123.96"), dec("103.30"), dec("20.66"))
        ]
    );
    // Level by level: what the tenants pay = the platform's revenue + each reseller's margin.
    // 123.96 = 93.90 + 9.40 + 20.66.
    let tenants_pay: Decimal = totals(&report).values().copied().sum();
    let platform_revenue = platform_to_rd.total;
    let margin_sum: Decimal = report.margins.iter().map(|margin| margin.margin).sum();
    assert_eq!(tenants_pay, dec("123.96"));
    assert_eq!(tenants_pay, platform_revenue + margin_sum);
    // Resellers earn margins, not commissions or overrides.
    assert!(report.commissions.is_empty(), "{:?}", report.commissions);
    assert!(report.overrides.is_empty());
}

#[test]
fn d_a_change_on_the_parent_reaches_derived_prices() {
    let mut cms = resale_engine();
    cms.close_period(&operator(), utc(11, 2, 6), october()).unwrap();
    let change = ChangeSet {
        id: "std-vm".into(),
        scope: ChangeScope::Lists(vec!["std".into()]),
        meters: MeterFilter::Meters(BTreeSet::from([meter(VM)])),
        change: PriceChange::Percent(dec("0.10")),
        effective: utc(11, 1, 0),
        scale: 4,
        exempt_tenants: BTreeSet::new(),
    };
    let preview = cms.preview_change_set(&operator(), &change, rules()).unwrap();
    assert_eq!(preview.lists, ["std"], "derived lists follow their parent without a version of their own");
    let tenants: Vec<(&str, Decimal, Decimal)> =
        preview.tenants.iter().map(|impact| (impact.id.as_str(), impact.old, impact.new)).collect();
    // std VM raised: 0.0591 to 500, 0.0468 above.
    // rt1: VM (500 x 0.0591 + 940 x 0.0468) x 1.32 = 73.542 x 1.32 = 97.07544 -> 97.08; IP 6.84; 103.92.
    // rt2: VM 360 x 0.0591 x 1.32 = 21.276 x 1.32 = 28.08432 -> 28.08; IP 3.42; 31.50.
    assert_eq!(tenants, [("rt1", dec("95.02"), dec("103.92")), ("rt2", dec("28.94"), dec("31.50"))]);
}

#[test]
fn d_preview_partners_are_agency_partners_only() {
    let mut cms = resale_engine();
    cms.close_period(&operator(), utc(11, 2, 6), october()).unwrap();
    let change = ChangeSet {
        id: "std-vm".into(),
        scope: ChangeScope::Lists(vec!["std".into()]),
        meters: MeterFilter::All,
        change: PriceChange::Percent(dec("0.10")),
        effective: utc(11, 1, 0),
        scale: 4,
        exempt_tenants: BTreeSet::new(),
    };
    let preview = cms.preview_change_set(&operator(), &change, rules()).unwrap();
    // `ChangeSetPreview::partners`: "Per agency partner (its network's revenue)"; rp resells.
    assert!(preview.partners.is_empty(), "{:?}", preview.partners);
}

// ---- e. price models and adjustments --------------------------------------------------------------------

fn usd(amount: &str) -> Decimal {
    dec(amount)
}

fn credit(id: &str, tenant: &str, amount: &str, reason: &str) -> Credit {
    Credit {
        id: id.into(),
        scope: CreditScope::Tenant(tenant.into()),
        amount: usd(amount),
        currency: Currency::USD,
        recurrence: Recurrence::OneOff { period: october() },
        reason: reason.into(),
    }
}

/// platform > d > p > tmodels (m-1, m-2), tpool (pool-a, pool-b), tmin-under (min-u), tmin-over (min-o),
/// tdisc (disc-1), tcredit (credit-1); platform > peu (a partner invoiced in EUR) > teur (eur-1).
/// Lists:
/// - `base`, the default: VM 0.05; IP 0.004; egress 1.25 per started 100 GB; ingress a flat 15 a month;
///   blob capacity by volume: 0.002 up to 1000, 0.0015 up to 10000, 0.001 above;
/// - `pooled` at tpool, tiers counted per tenant: VM graduated 0.06 up to 1000, 0.03 above;
/// - `commit` at tmin-under and tmin-over: VM 0.05, a minimum of 50 a month.
fn models_engine() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let base = book_list(
        "base",
        vec![
            (VM, per_unit("vCore-hours", "0.05")),
            (IP, per_unit("IP-hours", "0.004")),
            (EGRESS, MeterPrice::new("GB", PriceModel::Package { size: dec("100"), price: dec("1.25") })),
            (INGRESS, MeterPrice::new("month", PriceModel::FlatFee { amount: dec("15") })),
            (
                BLOB,
                tiered(
                    "GB-hours",
                    TierMode::Volume,
                    &[("0", "0.002"), ("1000", "0.0015"), ("10000", "0.001")],
                ),
            ),
        ],
    );
    let mut pooled = book_list(
        "pooled",
        vec![(VM, tiered("vCore-hours", TierMode::Graduated, &[("0", "0.06"), ("1000", "0.03")]))],
    );
    pooled.tier_scope = TierScope::Tenant;
    let mut commit = book_list("commit", vec![(VM, per_unit("vCore-hours", "0.05"))]);
    commit.minimum_commitment = Some(dec("50"));
    let mut events = vec![add("d", NodeKind::Distributor, None), add("p", NodeKind::Partner, Some("d"))];
    for (tenant, subscriptions) in [
        ("tmodels", &["m-1", "m-2"][..]),
        ("tpool", &["pool-a", "pool-b"]),
        ("tmin-under", &["min-u"]),
        ("tmin-over", &["min-o"]),
        ("tdisc", &["disc-1"]),
        ("tcredit", &["credit-1"]),
    ] {
        events.push(add(tenant, NodeKind::Tenant, Some("p")));
        events.extend(subscriptions.iter().map(|id| add(id, NodeKind::Subscription, Some(tenant))));
    }
    let eur = BillingProfile { currency: Some(Currency::EUR), ..BillingProfile::default() };
    events.extend([
        add("peu", NodeKind::Partner, None),
        add("teur", NodeKind::Tenant, Some("peu")),
        add("eur-1", NodeKind::Subscription, Some("teur")),
        Event::BillingProfileSet { node: "peu".into(), profile: eur },
        Event::ExchangeRateSet {
            from: Currency::USD,
            to: Currency::EUR,
            effective: utc(9, 1, 0),
            rate: dec("0.92"),
        },
        Event::PriceListCreated { list: base },
        Event::PriceListCreated { list: pooled },
        Event::PriceListCreated { list: commit },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "base".into() },
        Event::PriceListAssigned { scope: PriceScope::Node("tpool".into()), list: "pooled".into() },
        Event::PriceListAssigned { scope: PriceScope::Node("tmin-under".into()), list: "commit".into() },
        Event::PriceListAssigned { scope: PriceScope::Node("tmin-over".into()), list: "commit".into() },
        Event::DiscountSet {
            discount: Discount::new(
                "d-vm-a",
                DiscountScope::Resource {
                    subscription: "disc-1".into(),
                    resource_uri: "/subscriptions/disc-1/resourceGroups/rg/providers/x/vm-a".into(),
                },
                MeterFilter::All,
                dec("0.25"),
                list_effective(),
                None,
            )
            .unwrap(),
        },
        Event::CreditGranted { credit: credit("c-outage", "tcredit", "25", "outage") },
        Event::CreditGranted { credit: credit("c-goodwill", "tmodels", "1", "goodwill") },
    ]);
    run(&mut cms, events);
    let r = |subscription, meter_id, resource, day, quantity| {
        record(subscription, meter_id, resource, utc(10, day, 0), quantity)
    };
    let records = [
        r("m-1", EGRESS, "blob", 1, "100.2"),
        r("m-1", EGRESS, "blob", 2, "150.3"),
        r("m-1", INGRESS, "blob", 3, "0.001"),
        r("m-1", BLOB, "blob", 1, "2500"),
        r("m-1", BLOB, "blob", 2, "2500"),
        r("m-2", BLOB, "blob", 1, "1000"),
        r("pool-a", VM, "vm1", 1, "300"),
        r("pool-a", VM, "vm1", 2, "400"),
        r("pool-b", VM, "vm1", 1, "600"),
        r("min-u", VM, "vm1", 1, "600"),
        r("min-o", VM, "vm1", 1, "1200"),
        r("disc-1", VM, "vm-a", 1, "300"),
        r("disc-1", VM, "vm-b", 1, "100"),
        r("credit-1", VM, "vm1", 1, "200"),
        r("eur-1", VM, "vm1", 1, "1000"),
        r("eur-1", IP, "ip1", 1, "744"),
    ];
    ingest(&mut cms, &records, "models.json");
    cms
}

fn is_usage(kind: &LineKind) -> bool {
    *kind == LineKind::Usage
}

#[test]
fn e_package_flat_fee_and_volume_tiers() {
    let report = models_engine().month_end(october(), rules()).unwrap();
    assert!(report.not_billed.is_empty(), "{:?}", report.not_billed);
    let models = tenant_invoice(&report, "tmodels");
    // Egress 100.2 + 150.3 = 250.5 GB: ceil(250.5 / 100) = 3 started packages x 1.25 = 3.75.
    assert_line(usage_line(models, "m-1", EGRESS), "250.5", "base", "3.75", "3.75");
    // Ingress 0.001 GB: above zero, so the flat 15.
    assert_line(usage_line(models, "m-1", INGRESS), "0.001", "base", "15", "15.00");
    // Blob 2500 + 2500 = 5000 GB-hours reaches the 1000-10000 band: all 5000 x 0.0015 = 7.50.
    assert_line(usage_line(models, "m-1", BLOB), "5000", "base", "7.5", "7.50");
    // Exactly 1000 stays in the first band: 1000 x 0.002 = 2.00.
    assert_line(usage_line(models, "m-2", BLOB), "1000", "base", "2", "2.00");
    // The goodwill credit of 1.00, then 3.75 + 15.00 + 7.50 + 2.00 - 1.00 = 27.25.
    let credits = lines_of_kind(models, |kind| matches!(kind, LineKind::Credit { .. }));
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].amount, dec("-1.00"));
    assert_eq!(models.total, dec("27.25"));
}

#[test]
fn e_tiers_pooled_per_tenant_share_the_pooled_amount_exactly() {
    let report = models_engine().month_end(october(), rules()).unwrap();
    let pool = tenant_invoice(&report, "tpool");
    // Pooled: 700 + 600 = 1300 vCore-hours; 1000 x 0.06 + 300 x 0.03 = 60 + 9 = 69 (each alone: 42 + 36 =
    // 78). Shares by quantity: pool-a 69 x 700 / 1300 = 37.1538... -> 37.15, pool-b (the last by id) what is
    // left, 31.8461... -> 31.85.
    let (a, b) = (usage_line(pool, "pool-a", VM), usage_line(pool, "pool-b", VM));
    assert_eq!((a.quantity, a.price_list.as_str(), a.amount), (dec("700"), "pooled", dec("37.15")));
    assert_eq!((b.quantity, b.price_list.as_str(), b.amount), (dec("600"), "pooled", dec("31.85")));
    assert_eq!(a.amount_exact + b.amount_exact, dec("69"), "the shares add up to the pooled amount exactly");
    // 69 x 700 / 1300 to 1e-20.
    let share = dec("37.15384615384615384615384615");
    assert!((a.amount_exact - share).abs() < dec("0.00000000000000000001"), "{}", a.amount_exact);
    assert_eq!(pool.total, dec("69.00"));
}

#[test]
fn e_minimum_commitment_trues_up_only_when_under() {
    let report = models_engine().month_end(october(), rules()).unwrap();
    // Under: 600 x 0.05 = 30.00 against 50: a true-up of 20.00; total 50.00.
    let under = tenant_invoice(&report, "tmin-under");
    assert_line(usage_line(under, "min-u", VM), "600", "commit", "30", "30.00");
    let true_ups = lines_of_kind(under, |kind| matches!(kind, LineKind::MinimumCommitment { .. }));
    assert_eq!(true_ups.len(), 1);
    assert_eq!(true_ups[0].kind, LineKind::MinimumCommitment { commitment: dec("50") });
    assert_eq!((true_ups[0].price_list.as_str(), true_ups[0].amount), ("commit", dec("20.00")));
    assert_eq!(under.total, dec("50.00"));
    // Over: 1200 x 0.05 = 60.00, no true-up.
    let over = tenant_invoice(&report, "tmin-over");
    assert!(lines_of_kind(over, |kind| matches!(kind, LineKind::MinimumCommitment { .. })).is_empty());
    assert_eq!(over.total, dec("60.00"));
}

#[test]
fn e_a_resource_discount_takes_only_that_resource_share() {
    let report = models_engine().month_end(october(), rules()).unwrap();
    let invoice = tenant_invoice(&report, "tdisc");
    // VM: vm-a 300 + vm-b 100 = 400 x 0.05 = 20.00 on one usage line.
    assert_line(usage_line(invoice, "disc-1", VM), "400", "base", "20", "20.00");
    // 25 % off vm-a's share only: 20 x 300 / 400 = 15, x 0.25 = 3.75.
    let discounts = lines_of_kind(invoice, |kind| matches!(kind, LineKind::Discount { .. }));
    assert_eq!(discounts.len(), 1);
    assert_eq!(discounts[0].kind, LineKind::Discount { discount: "d-vm-a".into(), percent: dec("0.25") });
    assert_eq!(
        (discounts[0].quantity, discounts[0].amount_exact, discounts[0].amount),
        (dec("300"), dec("-3.75"), dec("-3.75"))
    );
    // 20.00 - 3.75 = 16.25.
    assert_eq!(invoice.total, dec("16.25"));
}

#[test]
fn e_a_credit_never_takes_an_invoice_below_zero() {
    let report = models_engine().month_end(october(), rules()).unwrap();
    let invoice = tenant_invoice(&report, "tcredit");
    // 200 x 0.05 = 10.00; a credit of 25 uses 10.00 of it; total 0.00 (the rest is lost).
    assert_line(usage_line(invoice, "credit-1", VM), "200", "base", "10", "10.00");
    let credits = lines_of_kind(invoice, |kind| matches!(kind, LineKind::Credit { .. }));
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].kind, LineKind::Credit { credit: "c-outage".into(), reason: "outage".into() });
    assert_eq!(credits[0].amount, dec("-10.00"));
    assert_eq!(invoice.total, dec("0.00"));
    assert_eq!(lines_of_kind(invoice, is_usage).len(), 1);
}

#[test]
fn e_a_tenant_billed_in_euros_records_the_rate() {
    let report = models_engine().month_end(october(), rules()).unwrap();
    let invoice = tenant_invoice(&report, "teur");
    assert_eq!(invoice.currency, Currency::EUR);
    let fx = Some(FxApplied { from: Currency::USD, rate: dec("0.92") });
    // VM 1000 x 0.05 = 50 USD x 0.92 = 46.00 EUR.
    let vm = usage_line(invoice, "eur-1", VM);
    assert_line(vm, "1000", "base", "46", "46.00");
    assert_eq!(vm.fx, fx);
    // IP 744 x 0.004 = 2.976 USD x 0.92 = 2.73792 -> 2.74 EUR.
    let ip = usage_line(invoice, "eur-1", IP);
    assert_line(ip, "744", "base", "2.73792", "2.74");
    assert_eq!(ip.fx, fx);
    // 46.00 + 2.74 = 48.74 EUR.
    assert_eq!(invoice.total, dec("48.74"));
    // peu earns on 48.74 (no plan reaches it: 0.00).
    let peu = commission(&report, "peu");
    assert_eq!((peu.revenue, peu.plan.as_deref(), peu.commission), (dec("48.74"), None, dec("0.00")));
}

#[test]
fn e_the_partner_revenue_is_net_of_discounts_credits_and_with_true_ups() {
    let report = models_engine().month_end(october(), rules()).unwrap();
    let p = commission(&report, "p");
    // tcredit 0.00, tdisc 16.25, tmin-over 60.00, tmin-under 50.00, tmodels 27.25, tpool 69.00: 222.50.
    assert_eq!(
        tenant_shares(p),
        [
            ("tcredit", dec("0.00")),
            ("tdisc", dec("16.25")),
            ("tmin-over", dec("60.00")),
            ("tmin-under", dec("50.00")),
            ("tmodels", dec("27.25")),
            ("tpool", dec("69.00"))
        ]
    );
    assert_eq!((p.revenue, p.plan.as_deref(), p.commission), (dec("222.50"), None, dec("0.00")));
    assert!(report.overrides.is_empty(), "no override rate is set");
}

#[test]
fn e_credits_never_take_a_discounted_invoice_below_zero() {
    let mut cms = models_engine();
    run(
        &mut cms,
        vec![
            add("tdc", NodeKind::Tenant, Some("p")),
            add("dc-1", NodeKind::Subscription, Some("tdc")),
            Event::DiscountSet {
                discount: Discount::new(
                    "d-dc",
                    DiscountScope::Subscription("dc-1".into()),
                    MeterFilter::All,
                    dec("0.25"),
                    list_effective(),
                    None,
                )
                .unwrap(),
            },
            Event::CreditGranted { credit: credit("c-dc", "tdc", "30", "migration") },
        ],
    );
    ingest(&mut cms, &[record("dc-1", VM, "vm1", utc(10, 5, 0), "400")], "dc.json");
    let report = cms.month_end(october(), rules()).unwrap();
    let invoice = tenant_invoice(&report, "tdc");
    // 400 x 0.05 = 20.00, 25 % off: -5.00; what is charged is 15.00, so the credit of 30 uses 15.00.
    let credits = lines_of_kind(invoice, |kind| matches!(kind, LineKind::Credit { .. }));
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].amount, dec("-15.00"), "a credit reduces what was charged, after discounts");
    assert_eq!(invoice.total, dec("0.00"), "never below zero: {:#?}", invoice.lines);
}

/// platform > d > p > t (a, b); one list at the default, VM graduated 0.06 to 1000 then 0.03, tiers counted
/// per tenant; `extra` events on top.
fn pooled_engine(extra: Vec<Event>) -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let mut pool = book_list(
        "pool",
        vec![(VM, tiered("vCore-hours", TierMode::Graduated, &[("0", "0.06"), ("1000", "0.03")]))],
    );
    pool.tier_scope = TierScope::Tenant;
    let mut events = vec![
        add("d", NodeKind::Distributor, None),
        add("p", NodeKind::Partner, Some("d")),
        add("t", NodeKind::Tenant, Some("p")),
        add("a", NodeKind::Subscription, Some("t")),
        add("b", NodeKind::Subscription, Some("t")),
        Event::PriceListCreated { list: pool },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "pool".into() },
    ];
    events.extend(extra);
    run(&mut cms, events);
    cms
}

#[test]
fn e_pooled_tiers_continue_across_a_price_version() {
    // A second version from October 16 with the same prices: nothing about the price changes.
    let same = vec![(VM, tiered("vCore-hours", TierMode::Graduated, &[("0", "0.06"), ("1000", "0.03")]))];
    let version = PriceVersion::own(
        utc(10, 16, 0),
        same.into_iter().map(|(meter_id, price)| (meter(meter_id), price)).collect(),
    );
    let mut cms = pooled_engine(vec![Event::PriceVersionAdded { list: "pool".into(), version }]);
    let records = [
        record("a", VM, "vm1", utc(10, 1, 0), "500"),
        record("b", VM, "vm1", utc(10, 2, 0), "400"),
        record("a", VM, "vm1", utc(10, 20, 0), "500"),
        record("b", VM, "vm1", utc(10, 21, 0), "400"),
    ];
    ingest(&mut cms, &records, "pool.json");
    let report = cms.month_end(october(), rules()).unwrap();
    let invoice = tenant_invoice(&report, "t");
    // The tenant's month: 1800 vCore-hours, 1000 x 0.06 + 800 x 0.03 = 60 + 24 = 84.00. Before October 16
    // the pool counted 900 (54.00); after it, tiers continue from 900: P(1800) - P(900) = 84 - 54 = 30.
    let after: Decimal = invoice
        .lines
        .iter()
        .filter(|line| line.price_effective == Some(utc(10, 16, 0)))
        .map(|line| line.amount_exact)
        .sum();
    assert_eq!(after, dec("30"), "tiers count the month across versions: {:#?}", invoice.lines);
    assert_eq!(invoice.total, dec("84.00"));
}

#[test]
fn e_pooled_tiers_count_each_buyer_once_in_a_resale_chain() {
    // p resells, buying at the same list its tenant buys at (it sells at list price).
    let mut cms = pooled_engine(vec![Event::BillingProfileSet { node: "p".into(), profile: resale() }]);
    let records =
        [record("a", VM, "vm1", utc(10, 1, 0), "700"), record("b", VM, "vm1", utc(10, 1, 0), "600")];
    ingest(&mut cms, &records, "pool.json");
    let report = cms.month_end(october(), rules()).unwrap();
    // The tenant's pool: 1300 vCore-hours, 60 + 300 x 0.03 = 69.00, at both levels of the chain.
    assert_eq!(invoice(&report, "p", "t").total, dec("69.00"), "{:#?}", report.invoices);
    assert_eq!(invoice(&report, "platform", "p").total, dec("69.00"));
    assert_eq!(report.margins[0].margin, dec("0.00"));
}

#[test]
fn e_a_minimum_commitment_is_due_without_usage_of_its_list() {
    let mut cms = models_engine();
    run(
        &mut cms,
        vec![
            add("tidle", NodeKind::Tenant, Some("p")),
            add("idle-1", NodeKind::Subscription, Some("tidle")),
            Event::PriceListAssigned { scope: PriceScope::Node("tidle".into()), list: "commit".into() },
        ],
    );
    // Only IP, which `commit` does not price: 100 x 0.004 = 0.40 by the default.
    ingest(&mut cms, &[record("idle-1", IP, "ip1", utc(10, 5, 0), "100")], "idle.json");
    let report = cms.month_end(october(), rules()).unwrap();
    let invoice = tenant_invoice(&report, "tidle");
    // The commitment of 50 a month is due in full: a true-up of 50.00, total 50.40.
    let true_ups = lines_of_kind(invoice, |kind| matches!(kind, LineKind::MinimumCommitment { .. }));
    assert_eq!(true_ups.len(), 1, "{:#?}", invoice.lines);
    assert_eq!(true_ups[0].amount, dec("50.00"));
    assert_eq!(invoice.total, dec("50.40"));
}

#[test]
fn e_a_distributor_without_override_bills_a_network_in_two_currencies() {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let eur = BillingProfile { currency: Some(Currency::EUR), ..BillingProfile::default() };
    run(
        &mut cms,
        vec![
            add("d", NodeKind::Distributor, None),
            add("pus", NodeKind::Partner, Some("d")),
            add("peu", NodeKind::Partner, Some("d")),
            add("tus", NodeKind::Tenant, Some("pus")),
            add("teu", NodeKind::Tenant, Some("peu")),
            add("sus", NodeKind::Subscription, Some("tus")),
            add("seu", NodeKind::Subscription, Some("teu")),
            Event::BillingProfileSet { node: "peu".into(), profile: eur },
            Event::ExchangeRateSet {
                from: Currency::USD,
                to: Currency::EUR,
                effective: utc(9, 1, 0),
                rate: dec("0.92"),
            },
            Event::PriceListCreated { list: book_list("base", vec![(VM, per_unit("vCore-hours", "0.05"))]) },
            Event::PriceListAssigned { scope: PriceScope::Default, list: "base".into() },
        ],
    );
    let records =
        [record("sus", VM, "vm1", utc(10, 1, 0), "100"), record("seu", VM, "vm1", utc(10, 1, 0), "100")];
    ingest(&mut cms, &records, "two-currencies.json");
    // No override rate anywhere, so no override statement that would have to be in one currency.
    let report = cms.month_end(october(), rules()).expect("month-end of a network in two currencies");
    // 100 x 0.05 = 5.00 USD; 5.00 x 0.92 = 4.60 EUR.
    assert_eq!(totals(&report), expected(&[("teu", "4.60"), ("tus", "5.00")]));
    assert!(report.overrides.is_empty());
}

// ---- f. the cost calculator -----------------------------------------------------------------------------

/// A priced estimate line: list, scope, exact amount.
type Estimated = (String, PriceScope, Decimal);

/// An estimate's (list, scope, exact amount) per meter.
fn estimated(lines: &[cms_core::model::price_book::EstimateLine]) -> Vec<(MeterId, Option<Estimated>)> {
    lines
        .iter()
        .map(|line| {
            (
                line.meter,
                line.price.as_ref().map(|price| (price.list.clone(), price.scope.clone(), price.amount)),
            )
        })
        .collect()
}

#[test]
fn f_estimates_equal_the_invoiced_amounts_for_the_same_quantities() {
    let (cms, october_report) = october_closed();
    let mid_october = utc(10, 15, 12);
    let s1 = cms
        .estimate(
            &operator(),
            "s1",
            &[(meter(VM), dec("1440")), (meter(IP), dec("1440")), (meter(EGRESS), dec("5"))],
            mid_october,
        )
        .unwrap();
    // VM 1440 x 0.0481 = 69.264 (p1's list); IP 1440 x 0.0036 = 5.184 (the default); egress: no price.
    assert_eq!(
        estimated(&s1),
        [
            (meter(VM), Some(("p1-list".into(), PriceScope::Node("p1".into()), dec("69.264")))),
            (meter(IP), Some(("std".into(), PriceScope::Default, dec("5.184")))),
            (meter(EGRESS), None),
        ]
    );
    let t1 = tenant_invoice(&october_report, "t1");
    assert_eq!(s1[0].price.as_ref().unwrap().amount, usage_line(t1, "s1", VM).amount_exact);
    assert_eq!(s1[1].price.as_ref().unwrap().amount, usage_line(t1, "s1", IP).amount_exact);
    assert_eq!(s1[0].price.as_ref().unwrap().unit, "vCore-hours");
    // s4 on the default's graduated tiers: 1440 -> 66.80, as invoiced.
    let s4 = cms.estimate(&operator(), "s4", &[(meter(VM), dec("1440"))], mid_october).unwrap();
    assert_eq!(s4[0].price.as_ref().unwrap().amount, dec("66.80"));
    assert_eq!(
        s4[0].price.as_ref().unwrap().amount,
        usage_line(tenant_invoice(&october_report, "t3"), "s4", VM).amount_exact
    );
    // A tenant as buyer: t3's prices, the default.
    let t3 = cms.estimate(&operator(), "t3", &[(meter(VM), dec("1440"))], mid_october).unwrap();
    assert_eq!(t3[0].price.as_ref().unwrap().amount, dec("66.80"));
    // A negative quantity is an error.
    assert_eq!(
        code(cms.estimate(&operator(), "s1", &[(meter(VM), dec("-1"))], mid_october)),
        "negative_quantity"
    );
}

#[test]
fn f_estimates_after_the_increase_equal_novembers_invoice() {
    let (cms, _, _, _) = november_raised();
    let november_report = cms.month_end(november(), rules()).unwrap();
    let mid_november = utc(11, 10, 0);
    // s3 (t2): 900 x 0.0529 = 47.61, as on November's invoice.
    let s3 = cms.estimate(&operator(), "s3", &[(meter(VM), dec("900"))], mid_november).unwrap();
    assert_eq!(s3[0].price.as_ref().unwrap().amount, dec("47.61"));
    assert_eq!(
        s3[0].price.as_ref().unwrap().amount,
        usage_line(tenant_invoice(&november_report, "t2"), "s3", VM).amount_exact
    );
    // s1 (t1, exempt): still 1440 x 0.0481 = 69.264.
    let s1 = cms.estimate(&operator(), "s1", &[(meter(VM), dec("1440"))], mid_november).unwrap();
    assert_eq!(s1[0].price.as_ref().unwrap().amount, dec("69.264"));
    // s4 (t3): 500 x 0.0591 + 940 x 0.0468 = 73.542.
    let s4 = cms.estimate(&operator(), "s4", &[(meter(VM), dec("1440"))], mid_november).unwrap();
    assert_eq!(s4[0].price.as_ref().unwrap().amount, dec("73.542"));
    // As of October the same subscription still gets October's prices.
    let before = cms.estimate(&operator(), "s4", &[(meter(VM), dec("1440"))], utc(10, 10, 0)).unwrap();
    assert_eq!(before[0].price.as_ref().unwrap().amount, dec("66.80"));
}

#[test]
fn f_estimates_of_other_price_models_equal_the_invoice() {
    let cms = models_engine();
    let report = cms.month_end(october(), rules()).unwrap();
    let items = [(meter(EGRESS), dec("250.5")), (meter(INGRESS), dec("0.001")), (meter(BLOB), dec("5000"))];
    let lines = cms.estimate(&operator(), "m-1", &items, utc(10, 15, 0)).unwrap();
    let amounts: Vec<Decimal> = lines.iter().map(|line| line.price.as_ref().unwrap().amount).collect();
    // 3 packages x 1.25 = 3.75; the flat 15; 5000 x 0.0015 = 7.5.
    assert_eq!(amounts, [dec("3.75"), dec("15"), dec("7.5")]);
    let invoice = tenant_invoice(&report, "tmodels");
    for (line, meter_id) in lines.iter().zip([EGRESS, INGRESS, BLOB]) {
        assert_eq!(line.price.as_ref().unwrap().amount, usage_line(invoice, "m-1", meter_id).amount_exact);
    }
}

// ---- g. reprocessing drafts -----------------------------------------------------------------------------

#[test]
fn g_reprocess_recomputes_open_drafts_and_leaves_closed_months() {
    let (mut cms, october_report, _, _) = november_raised();
    let range = Period::new(utc(10, 1, 0), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()).unwrap();
    let first = cms.reprocess(&operator(), range, Some("t1"), None, rules()).unwrap();
    assert_eq!(first.closed, [october()]);
    let changes: Vec<(&str, Option<Decimal>, Decimal)> =
        first.drafts.iter().map(|draft| (draft.key.as_str(), draft.old, draft.new)).collect();
    // t1 (exempt) in November: 91.76, no draft before.
    assert_eq!(changes, [("2026-11/platform/t1", None, dec("91.76"))]);

    // A new version of p1's list from November 20: VM 0.0500 (t1 is not exempt from it).
    let mut prices = BTreeMap::new();
    prices.insert(meter(VM), per_unit("vCore-hours", "0.0500"));
    let version = PriceVersion::own(utc(11, 20, 0), prices);
    cms.execute(&operator(), utc(11, 18, 0), &Event::PriceVersionAdded { list: "p1-list".into(), version })
        .unwrap();
    let second = cms.reprocess(&operator(), range, Some("t1"), None, rules()).unwrap();
    assert_eq!(second.closed, [october()]);
    // Nov 1-19 at January's 0.0481 (the Nov 1 version exempts t1), Nov 20-30 at 0.0500:
    // s1 VM 19 x 48 = 912 x 0.0481 = 43.8672 -> 43.87; 11 x 48 = 528 x 0.05 = 26.40;
    // s2 VM 19 x 12 = 228 x 0.0481 = 10.9668 -> 10.97; 11 x 12 = 132 x 0.05 = 6.60; s1 IP 5.18.
    // 43.87 + 26.40 + 10.97 + 6.60 + 5.18 = 93.02.
    let changes: Vec<(&str, Option<Decimal>, Decimal)> =
        second.drafts.iter().map(|draft| (draft.key.as_str(), draft.old, draft.new)).collect();
    assert_eq!(changes, [("2026-11/platform/t1", Some(dec("91.76")), dec("93.02"))]);

    let drafts = cms.drafts(&operator(), november()).unwrap();
    assert_eq!(drafts.len(), 1);
    let draft = &drafts[0];
    assert_eq!((draft.buyer.as_str(), draft.period, draft.total), ("t1", november(), dec("93.02")));
    let s1_vm = usage_lines(draft, "s1", VM);
    let by_version: Vec<(Option<Instant>, Decimal, Decimal)> =
        s1_vm.iter().map(|line| (line.price_effective, line.quantity, line.amount)).collect();
    assert_eq!(
        by_version,
        [
            (Some(list_effective()), dec("912"), dec("43.87")),
            (Some(utc(11, 20, 0)), dec("528"), dec("26.40"))
        ]
    );
    let stored = cms.store().documents(DRAFT_INVOICE, "2026-").unwrap();
    assert_eq!(stored.iter().map(|doc| doc.key.as_str()).collect::<Vec<_>>(), ["2026-11/platform/t1"]);
    // The closed month: no draft, and its invoices as closed.
    assert!(cms.drafts(&operator(), october()).unwrap().is_empty());
    assert_eq!(cms.month_end(october(), rules()).unwrap(), october_report);
}

#[test]
fn g_a_price_version_inside_a_closed_month_leaves_its_invoices_as_issued() {
    let (mut cms, october_report) = october_closed();
    // A version of p1's list from October 20, after October was invoiced.
    let mut prices = BTreeMap::new();
    prices.insert(meter(VM), per_unit("vCore-hours", "0.0999"));
    let version = PriceVersion::own(utc(10, 20, 0), prices);
    let appended = cms.execute(
        &operator(),
        utc(11, 5, 0),
        &Event::PriceVersionAdded { list: "p1-list".into(), version },
    );
    // Refused ("applying it never touches an issued invoice"), and October stays as issued.
    assert_eq!(appended.unwrap_err().code(), "invalid_value");
    assert_eq!(
        totals(&cms.month_end(october(), rules()).unwrap()),
        totals(&october_report),
        "October was issued with 91.76 / 45.88 / 69.39"
    );
}

#[test]
fn g_a_change_set_inside_a_closed_month_leaves_its_invoices_as_issued() {
    let (mut cms, october_report) = october_closed();
    // The raise, dated back to October 15, after October was invoiced.
    let retro = ChangeSet {
        id: "retro".into(),
        effective: utc(10, 15, 0),
        exempt_tenants: BTreeSet::new(),
        ..raise()
    };
    // Refused: "applying it never touches an issued invoice"; October stays as issued.
    assert_eq!(cms.apply_change_set(&operator(), utc(11, 5, 0), retro).unwrap_err().code(), "invalid_value");
    assert_eq!(totals(&cms.month_end(october(), rules()).unwrap()), totals(&october_report));
}

#[test]
fn g_an_undated_change_after_closing_leaves_the_closed_month_as_issued() {
    let (mut cms, october_report) = october_closed();
    // Assignments are not dated: giving t1 its own list re-prices open months only.
    cms.execute(
        &operator(),
        utc(11, 5, 0),
        &Event::PriceListAssigned { scope: PriceScope::Node("t1".into()), list: "std".into() },
    )
    .unwrap();
    let recomputed = cms.month_end_in(cms.billing_context(), october(), rules()).unwrap();
    assert_ne!(totals(&recomputed), totals(&october_report), "the assignment does change t1's price");
    assert_eq!(cms.month_end(october(), rules()).unwrap(), october_report, "October is served as stored");
}

#[test]
fn g_a_move_or_discount_inside_a_closed_month_leaves_its_invoices_as_issued() {
    for event in [
        Event::NodeMoved { id: "t2".into(), parent: "p2".into(), effective: utc(10, 10, 0) },
        Event::DiscountSet {
            discount: Discount::new(
                "late",
                DiscountScope::Tenant("t1".into()),
                MeterFilter::All,
                dec("0.5"),
                utc(10, 1, 0),
                None,
            )
            .unwrap(),
        },
    ] {
        let (mut cms, october_report) = october_closed();
        // Refused, and October (invoices and statements) stays as issued.
        assert_eq!(cms.execute(&operator(), utc(11, 5, 0), &event).unwrap_err().code(), "invalid_value");
        assert_eq!(cms.month_end(october(), rules()).unwrap(), october_report, "after {event:?}");
    }
}

// ---- h. scoping -----------------------------------------------------------------------------------------

fn buyers(report: &MonthEndReport) -> Vec<&str> {
    report.invoices.iter().map(|invoice| invoice.buyer.as_str()).collect()
}

#[test]
fn h_a_partner_sees_only_its_subtree() {
    let (mut cms, _) = october_closed();
    let contoso = Principal::at("contoso-admin", "p1");
    let now = utc(11, 3, 0);
    let nodes: Vec<(String, usize)> =
        cms.nodes(&contoso, now).unwrap().into_iter().map(|node| (node.id, node.depth)).collect();
    let expected_nodes: Vec<(String, usize)> =
        [("p1", 0), ("t1", 1), ("s1", 2), ("s2", 2), ("t2", 1), ("s3", 2)]
            .map(|(id, depth)| (id.to_owned(), depth))
            .to_vec();
    assert_eq!(nodes, expected_nodes);
    let subscriptions: Vec<String> =
        cms.subscriptions(&contoso, now).unwrap().into_iter().map(|node| node.id).collect();
    assert_eq!(subscriptions, ["s1", "s2", "s3"]);
    assert_eq!(cms.node(&contoso, "s3", now).unwrap().subscription.unwrap().offer.as_deref(), Some("gold"));
    // A sibling's tenant, the sibling, the distributor above: unknown, as if they did not exist.
    for id in ["t3", "s4", "p2", "dist", "platform", "nobody"] {
        assert_eq!(code(cms.node(&contoso, id, now)), "unknown_node", "{id}");
    }
    assert_eq!(code(cms.estimate(&contoso, "s4", &[(meter(VM), dec("1"))], now)), "unknown_node");
    assert_eq!(code(cms.estimate(&contoso, "t3", &[(meter(VM), dec("1"))], now)), "unknown_node");
    assert_eq!(code(cms.reprocess(&contoso, november(), Some("t3"), None, rules())), "unknown_node");
    assert_eq!(
        code(cms.nodes(&Principal::at("ghost", "nowhere"), now)),
        "unknown_node",
        "a principal of no node sees nothing"
    );

    // Its month-end: its tenants' invoices, its own commission statement, no override.
    let report = cms.month_end_for(&contoso, october(), rules()).unwrap();
    assert_eq!(buyers(&report), ["t1", "t2"]);
    assert_eq!(report.commissions.iter().map(|s| s.partner.as_str()).collect::<Vec<_>>(), ["p1"]);
    assert_eq!(report.commissions[0].commission, dec("8.01"));
    assert!(report.overrides.is_empty());
    let fabrikam = cms.month_end_for(&Principal::at("fabrikam-admin", "p2"), october(), rules()).unwrap();
    assert_eq!(buyers(&fabrikam), ["t3"]);
    assert_eq!(fabrikam.commissions.iter().map(|s| s.partner.as_str()).collect::<Vec<_>>(), ["p2"]);
    // The distributor sees its whole network and its override; a tenant sees its own invoice only.
    let northwind = cms.month_end_for(&Principal::at("northwind-admin", "dist"), october(), rules()).unwrap();
    assert_eq!(buyers(&northwind), ["t1", "t2", "t3"]);
    assert_eq!((northwind.commissions.len(), northwind.overrides.len()), (2, 1));
    let adatum = cms.month_end_for(&Principal::at("adatum-admin", "t1"), october(), rules()).unwrap();
    assert_eq!(buyers(&adatum), ["t1"]);
    assert!(adatum.commissions.is_empty() && adatum.overrides.is_empty());
    // Usage counts cover each one's own subscriptions: the two partners' add up to the platform's.
    let whole = cms.month_end_for(&operator(), october(), rules()).unwrap().stats.rows;
    let rows = |report: &MonthEndReport| report.stats.rows;
    assert!(rows(&adatum) > 0 && rows(&adatum) < rows(&report) && rows(&fabrikam) > 0, "{whole}");
    assert_eq!(rows(&report) + rows(&fabrikam), whole);
    assert_eq!(rows(&northwind), whole);

    // A preview by the partner covers its own network only.
    let preview = cms.preview_change_set(&contoso, &raise(), rules()).unwrap();
    assert_eq!(preview.tenants.iter().map(|impact| impact.id.as_str()).collect::<Vec<_>>(), ["t1", "t2"]);
    assert_eq!(preview.partners.iter().map(|impact| impact.id.as_str()).collect::<Vec<_>>(), ["p1"]);
    // Reprocessing by the partner stores its tenants' drafts only.
    cms.apply_change_set(&operator(), utc(11, 2, 7), raise()).unwrap();
    ingest(&mut cms, &shifted(&hourly_usage(10, &MAIN_USAGE)), "november.json");
    let done = cms.reprocess(&contoso, november(), None, None, rules()).unwrap();
    let keys: Vec<&str> = done.drafts.iter().map(|draft| draft.key.as_str()).collect();
    assert_eq!(keys, ["2026-11/platform/t1", "2026-11/platform/t2"]);
}

#[test]
fn d_one_quantity_priced_along_the_chain_matches_the_invoices() {
    let cms = resale_engine();
    let report = cms.month_end(october(), rules()).unwrap();
    let levels = cms.price_chain(&operator(), "rs1", meter(VM), dec("1440"), utc(10, 15, 0)).unwrap();
    let rows: Vec<(&str, &str, &str, Decimal, Decimal)> = levels
        .iter()
        .map(|level| {
            (level.seller.as_str(), level.buyer.as_str(), level.list.as_str(), level.amount, level.margin)
        })
        .collect();
    // 66.80 at the default; x 1.1 = 73.48 (rd keeps 6.68); x 1.2 = 88.176 (rp keeps 14.696).
    assert_eq!(
        rows,
        [
            ("platform", "rd", "std", dec("66.80"), dec("66.80")),
            ("rd", "rp", "rd-sell", dec("73.48"), dec("6.68")),
            ("rp", "rt1", "rp-sell", dec("88.176"), dec("14.696")),
        ]
    );
    // The margins add up to what the tenant pays: 66.80 + 6.68 + 14.696 = 88.176.
    assert_eq!(levels.iter().map(|level| level.margin).sum::<Decimal>(), dec("88.176"));
    for (level, (issuer, buyer)) in levels.iter().zip([("platform", "rd"), ("rd", "rp"), ("rp", "rt1")]) {
        assert_eq!(level.amount, usage_line(invoice(&report, issuer, buyer), "rs1", VM).amount_exact);
    }
    // The cost calculator prices a subscription as its tenant buys it: 88.176.
    let estimate = cms.estimate(&operator(), "rs1", &[(meter(VM), dec("1440"))], utc(10, 15, 0)).unwrap();
    assert_eq!(estimate[0].price.as_ref().unwrap().amount, dec("88.176"));
}

#[test]
fn d_an_exempt_tenant_keeps_its_price_at_every_level_of_the_chain() {
    let mut cms = resale_engine();
    cms.close_period(&operator(), utc(11, 2, 6), october()).unwrap();
    let change = ChangeSet {
        id: "std-vm".into(),
        scope: ChangeScope::Lists(vec!["std".into()]),
        meters: MeterFilter::Meters(BTreeSet::from([meter(VM)])),
        change: PriceChange::Percent(dec("0.10")),
        effective: utc(11, 1, 0),
        scale: 4,
        exempt_tenants: BTreeSet::from(["rt1".to_owned()]),
    };
    cms.apply_change_set(&operator(), utc(11, 2, 7), change).unwrap();
    let usage = [
        ("rs1", VM, Pattern::Business("3", "1")),
        ("rs1", IP, Pattern::Flat("2")),
        ("rs2", VM, Pattern::Flat("0.5")),
        ("rs2", IP, Pattern::Flat("1")),
    ];
    ingest(&mut cms, &shifted(&hourly_usage(10, &usage)), "resale-november.json");
    let report = cms.month_end(november(), rules()).unwrap();
    // rt1 is exempt: its usage is bought and sold at October's prices at every level.
    // Platform -> rd: rs1 VM 66.80, IP 5.18; rs2 VM 360 x 0.0591 = 21.276 -> 21.28, IP 2.59: 95.85.
    let platform_to_rd = invoice(&report, "platform", "rd");
    assert_line(usage_line(platform_to_rd, "rs1", VM), "1440", "std", "66.80", "66.80");
    assert_line(usage_line(platform_to_rd, "rs2", VM), "360", "std", "21.276", "21.28");
    assert_eq!(platform_to_rd.total, dec("95.85"));
    // rd -> rp: 73.48, 5.70; rs2 VM 21.276 x 1.1 = 23.4036 -> 23.40, IP 2.85: 105.43.
    assert_eq!(invoice(&report, "rd", "rp").total, dec("105.43"));
    // rp -> rt1 as in October, 95.02; rp -> rt2: 23.4036 x 1.2 = 28.08432 -> 28.08, IP 3.42: 31.50.
    assert_eq!(totals(&report), expected(&[("rt1", "95.02"), ("rt2", "31.50")]));
    // Margins: rd 105.43 - 95.85 = 9.58; rp 95.02 + 31.50 - 105.43 = 21.09; 95.85 + 9.58 + 21.09 = 126.52.
    let margins: Vec<(&str, Decimal)> =
        report.margins.iter().map(|margin| (margin.reseller.as_str(), margin.margin)).collect();
    assert_eq!(margins, [("rd", dec("9.58")), ("rp", dec("21.09"))]);
}

#[test]
fn h_after_a_move_past_invoices_stay_with_the_branch_they_billed() {
    let (mut cms, _, _, _) = november_raised();
    let moved = Event::NodeMoved { id: "t2".into(), parent: "p2".into(), effective: utc(11, 16, 0) };
    cms.execute(&operator(), utc(11, 10, 10), &moved).unwrap();
    let contoso = cms.month_end_for(&Principal::at("contoso-admin", "p1"), october(), rules()).unwrap();
    let fabrikam = cms.month_end_for(&Principal::at("fabrikam-admin", "p2"), october(), rules()).unwrap();
    // In October t2 was p1's tenant: p1 earned commission on its 45.88 and sees the invoice behind it; p2,
    // a sibling branch then, does not.
    assert_eq!(tenant_shares(&contoso.commissions[0]), [("t1", dec("91.76")), ("t2", dec("45.88"))]);
    assert_eq!(buyers(&contoso), ["t1", "t2"]);
    assert_eq!(buyers(&fabrikam), ["t3"]);
}
